/*
 * gen_day.c - a captured day of Chup deliveries, for tests and benchmarks.
 *
 *   gen_day TICKETS SEED SECRET EXPECTED [DUP ILLEGAL STALE [BYTES]]
 *
 * Writes one signed delivery per line (the body form of fixtures/), the
 * tickets' visits interleaved in timestamp order over a clinic day, and
 * writes to EXPECTED what `qgate stats --json` must then report: tickets
 * per final state and steps per event, counted here as the visits are
 * drawn, independently of the engine.
 *
 * The optional arguments make the day a real one, for benchmarks: DUP,
 * ILLEGAL and STALE are percentages of the steps (2 1 0.5) after which
 * Chup sends again the same payload (a duplicate), a step the ticket's
 * state does not allow (rejected, illegal_transition), or a step older
 * than the one just accepted (rejected, stale); BYTES pads each delivery
 * with a clinical note to about that many bytes.  They are drawn from a
 * generator of their own, so the visits, and the expected stats, are the
 * same as without them; EXPECTED then also counts what was added.
 * Without them the output is exactly what it always was.
 *
 *   gen_day -r SHARE:K ...   or   gen_day -s SHARE:S ...
 *
 * deliver the same day with bounded reordering, as a sender's retries and
 * parallel workers do: SHARE percent of the deliveries, drawn from a
 * generator of their own, are sent up to K deliveries (-r) or S seconds
 * (-s) later than their turn, each by a uniform draw from 1..K or 1..S.
 * Only the order of the lines changes: the bodies and EXPECTED are those
 * of the day in order.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"

typedef struct step {
    int64_t ms;     /* when Chup sends it: the order of the day */
    int64_t stamp;  /* payload.timestamp: == ms, but for a stale step */
    uint32_t order; /* tie-break: position in its visit */
    uint32_t ticket;
    char chup[24];  /* Chup event name */
    char state[24]; /* state_name, "" for none */
    int64_t service;
    int64_t appt;
    char appt_time[12];
    qg_event ev; /* the canonical event it stands for */
} step;

static uint64_t rng, rng_extra;

static uint32_t
draw_from(uint64_t *r, uint32_t n) /* uniform in [0, n) */
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return (uint32_t)(*r % n);
}

static uint32_t
draw(uint32_t n)
{
    return draw_from(&rng, n);
}

static step *steps;
static size_t nsteps, capsteps;
static unsigned long events[QG_EVENT_COUNT], states[QG_STATE_COUNT];
static size_t pad_to; /* BYTES, 0 for no padding */

static step *
grow(void)
{
    if (nsteps == capsteps) {
        capsteps = capsteps ? capsteps * 2 : 1024;
        steps = realloc(steps, capsteps * sizeof(*steps));
        if (steps == NULL) {
            perror("gen_day");
            exit(2);
        }
    }
    return &steps[nsteps++];
}

static void
push(uint32_t ticket, int64_t *ms, const char *chup, const char *state,
     int64_t service, int64_t appt, qg_event ev)
{
    step *s = grow();

    memset(s, 0, sizeof(*s));
    *ms += 60000 * (1 + (int64_t)draw(20)); /* 1 to 20 minutes later */
    s->ms = *ms;
    s->stamp = *ms;
    s->ev = ev;
    s->order = (uint32_t)nsteps;
    s->ticket = ticket;
    snprintf(s->chup, sizeof(s->chup), "%s", chup);
    snprintf(s->state, sizeof(s->state), "%s", state);
    s->service = service;
    s->appt = appt;
    snprintf(s->appt_time, sizeof(s->appt_time), "10:30:00");
    events[ev]++;
}

/* One visit, drawn from the shapes a clinic sees. */
static void
visit(uint32_t t, int64_t start)
{
    int64_t ms = start, lq = 100000 + t, appt = 0, svc = 220;
    int shape = (int)draw(100);
    qg_state end;
    const char *lqu = "live_queue_updated";

    if (shape < 15) { /* booked: the appointment comes first */
        appt = 500000 + t;
        push(t, &ms, "appointment_created", "Confirmed", svc, appt, QG_EV_BOOK);
        if (draw(4) == 0) {
            push(t, &ms, "appointment_updated", "Confirmed", svc, appt,
                 QG_EV_RESCHEDULE);
            snprintf(steps[nsteps - 1].appt_time, 12, "11:00:00");
        }
        push(t, &ms, "live_queue_created", "Arrived", svc, appt, QG_EV_ARRIVE);
    } else {
        push(t, &ms, "live_queue_created", "In Queue", svc, 0, QG_EV_JOIN);
    }
    if (shape >= 15 && shape < 22) { /* left before being seen */
        push(t, &ms, "live_queue_deleted", "Cancelled", svc, appt,
             QG_EV_CANCEL);
        states[QG_ST_CANCELLED]++;
        return;
    }
    if (shape >= 22 && shape < 30) { /* no show */
        push(t, &ms, lqu, "No Show", svc, appt, QG_EV_NO_SHOW);
        if (draw(2)) {
            push(t, &ms, lqu, "Cancelled", svc, appt, QG_EV_CANCEL);
            states[QG_ST_CANCELLED]++;
            return;
        }
        push(t, &ms, lqu, "Arrived", svc, appt, QG_EV_ARRIVE);
    }
    if (draw(3) == 0)
        push(t, &ms, lqu, "Alert", svc, appt, QG_EV_ALERT);
    if (draw(4) == 0) { /* sent on to another service's queue */
        svc = 221 + draw(5);
        push(t, &ms, lqu, "In Queue", svc, appt, QG_EV_MOVE);
    }
    push(t, &ms, lqu, "Serving", svc, appt, QG_EV_SERVE);
    push(t, &ms, lqu, "Served", svc, appt, QG_EV_COMPLETE);
    end = QG_ST_SERVED;
    if (draw(2)) {
        push(t, &ms, lqu, "Pharmacy Received", svc, appt, QG_EV_RX_RECEIVE);
        push(t, &ms, lqu, "Pharmacy Dispensed", svc, appt, QG_EV_RX_DISPENSE);
        end = QG_ST_PHARMACY_DISPENSED;
    }
    if (draw(4)) {
        push(t, &ms, lqu, "Paid", svc, appt, QG_EV_PAY);
        end = QG_ST_PAID;
    }
    if (draw(5)) {
        push(t, &ms, lqu, "Visit Ended", svc, appt, QG_EV_END_VISIT);
        end = QG_ST_VISIT_ENDED;
    }
    states[end]++;
    (void)lq;
}

static int
by_time(const void *a, const void *b)
{
    const step *x = a, *y = b;

    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * The extras, after step i of its visit (never its last step, so that the
 * ticket is still open when they arrive): a redelivery of step i itself; a
 * step its state does not allow (a dispense, or a serve where a dispense
 * would be legal); an alert stamped 30 s before step i but sent after it.
 * Each share is a percentage of the visits' steps, drawn over the steps
 * that may take an extra.
 */
enum { EXTRA_DUP, EXTRA_ILLEGAL, EXTRA_STALE, EXTRA_KINDS };
static unsigned long extras[EXTRA_KINDS];

static void
add_extras(const double share[EXTRA_KINDS])
{
    size_t i, base = nsteps, open = 0;
    double scale;
    int k;

    for (i = 0; i + 1 < base; i++)
        open += steps[i + 1].ticket == steps[i].ticket;
    scale = open ? 1000.0 * (double)base / (double)open : 0;
    for (i = 0; i + 1 < base; i++) {
        if (steps[i + 1].ticket != steps[i].ticket)
            continue; /* the last step of a visit */
        for (k = 0; k < EXTRA_KINDS; k++) {
            step *s;

            if (draw_from(&rng_extra, 100000) >= share[k] * scale)
                continue;
            s = grow();
            *s = steps[i];
            s->order = (uint32_t)nsteps;
            if (k == EXTRA_DUP) {
                s->ms += 1000 * (1 + (int64_t)draw_from(&rng_extra, 30));
            } else if (k == EXTRA_ILLEGAL) {
                s->ms += 30000;
                s->stamp = s->ms;
                snprintf(s->chup, sizeof(s->chup), "live_queue_updated");
                snprintf(s->state, sizeof(s->state), "%s",
                         s->ev == QG_EV_RX_RECEIVE || s->ev == QG_EV_RX_DISPENSE
                             ? "Serving"
                             : "Pharmacy Dispensed");
            } else {
                s->ms += 1000;
                s->stamp -= 30000;
                snprintf(s->chup, sizeof(s->chup), "live_queue_updated");
                snprintf(s->state, sizeof(s->state), "Alert");
            }
            extras[k]++;
        }
    }
}

/* A clinical note of n characters, for BYTES. */
static void
note(char *dst, size_t n)
{
    static const char text[] = "Seen at triage; BP 128/84, pulse 76, "
                               "temperature 36.9 C. Follow up in two weeks "
                               "if the cough persists. ";
    size_t i;

    for (i = 0; i < n; i++)
        dst[i] = text[i % (sizeof(text) - 1)];
    dst[n] = '\0';
}

static void
emit(const step *s, const char *secret)
{
    char payload[8192], ts[40], sig[QG__HEX_SIG_LEN + 1], appt[200];
    char notes[6144] = "[]";
    int64_t id = s->appt && strncmp(s->chup, "appointment_", 12) == 0
                     ? s->appt
                     : 100000 + s->ticket;
    int pass, len;
    long fill;

    qg_time_format(s->stamp, 8 * 3600, ts, sizeof(ts));
    if (s->appt)
        snprintf(appt, sizeof(appt),
                 "\"appointment_id\":%" PRId64 ",\"appointment_date\":"
                 "\"%.10s\",\"appointment_time\":\"%s\"",
                 s->appt, ts, s->appt_time);
    else
        snprintf(appt, sizeof(appt),
                 "\"appointment_id\":null,\"appointment_date\":null,"
                 "\"appointment_time\":null");
    for (pass = 0; pass < 2; pass++) {
        len = snprintf(
            payload, sizeof(payload),
            "{\"event\":\"%s\",\"timestamp\":\"%s\",\"data\":{\"id\":%" PRId64
            ",%s,\"registered_client_id\":%" PRIu32
            ",\"registered_client_name\":\"Patient %" PRIu32 "\","
            "\"registered_client_phone\":\"6012%07" PRIu32 "\","
            "\"client_name\":\"Patient %" PRIu32 "\",\"state\":"
            "{\"name\":\"X\",\"value\":0},\"state_name\":\"%s\","
            "\"service_id\":%" PRId64 ",\"service_name\":\"Service %" PRId64
            "\",\"staff_id\":%" PRId64 ",\"staff_name\":\"Staff\","
            "\"notes\":%s,\"created_at\":\"%s\",\"updated_at\":\"%s\"}}",
            s->chup, ts, id, appt, s->ticket, s->ticket, s->ticket, s->ticket,
            s->state, s->service, s->service, s->service + 100, notes, ts, ts);
        /* The envelope adds 91 bytes to the payload; the note's frame 64
         * in place of "[]"'s 2. */
        fill = (long)pad_to - 91 - (len - 2) - 64;
        if (pass == 1 || fill < 16 || fill > (long)sizeof(notes) - 64)
            break;
        strcpy(notes, "{\"items\":[{\"id\":1,\"text\":\"");
        note(notes + strlen(notes), (size_t)fill);
        strcat(notes, "\"}],\"escapeWhenCastingToString\":false}");
    }
    qg__signature_make(secret, strlen(secret), payload, strlen(payload), sig);
    printf("{\"payload\":%s,\"signature\":\"%s\"}\n", payload, sig);
}

typedef struct sendkey {
    double at; /* when it is sent: its turn, or its time, plus a delay */
    size_t i;  /* its turn in the day in order */
} sendkey;

static int
by_send(const void *a, const void *b)
{
    const sendkey *x = a, *y = b;

    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Reorders the day in order: share percent of the steps are sent up to
 * `most` positions (by_seconds 0) or seconds (1) late. */
static void
reorder(double share, long most, int by_seconds, uint64_t seed)
{
    uint64_t r = seed ^ 0xd1b54a32d192ed03ull;
    sendkey *keys = calloc(nsteps, sizeof(*keys));
    step *sent = calloc(nsteps, sizeof(*sent));
    size_t i;

    if (keys == NULL || sent == NULL) {
        perror("gen_day");
        exit(2);
    }
    for (i = 0; i < nsteps; i++) {
        keys[i].i = i;
        keys[i].at = by_seconds ? (double)steps[i].ms / 1000 : (double)i;
        if (draw_from(&r, 10000) < (uint32_t)(share * 100))
            keys[i].at +=
                1 + draw_from(&r, (uint32_t)most) + (by_seconds ? 0.0 : 0.5);
    }
    qsort(keys, nsteps, sizeof(*keys), by_send);
    for (i = 0; i < nsteps; i++)
        sent[i] = steps[keys[i].i];
    free(steps);
    free(keys);
    steps = sent;
}

int
main(int argc, char **argv)
{
    double reorder_share = 0;
    long reorder_most = 0;
    int reorder_seconds = 0, opt;
    char *end;

    uint32_t tickets, t;
    int64_t day = 1709596800000; /* 2024-03-05T08:00:00+08:00 */
    FILE *f;
    size_t i;
    int first;
    double share[EXTRA_KINDS] = {0, 0, 0};

    while ((opt = getopt(argc, argv, "r:s:")) != -1) {
        reorder_share = strtod(optarg, &end);
        reorder_most = *end == ':' ? strtol(end + 1, &end, 10) : 0;
        reorder_seconds = opt == 's';
        if (*end || reorder_share <= 0 || reorder_share > 100 ||
            reorder_most <= 0) {
            fprintf(stderr,
                    "gen_day: -%c \"%s\": expected SHARE:MOST, a "
                    "percentage and a positive whole number\n",
                    opt, optarg);
            return 2;
        }
    }
    argc -= optind - 1;
    argv += optind - 1;
    if (argc != 5 && argc != 8 && argc != 9) {
        fprintf(stderr, "usage: gen_day [-r SHARE:K | -s SHARE:S] TICKETS "
                        "SEED SECRET EXPECTED [DUP ILLEGAL STALE [BYTES]]\n");
        return 2;
    }
    tickets = (uint32_t)strtoul(argv[1], NULL, 10);
    rng = strtoull(argv[2], NULL, 10) * 2654435761u + 88172645463325252ull;
    rng_extra = rng ^ 0x9e3779b97f4a7c15ull;
    for (i = 0; argc >= 8 && i < EXTRA_KINDS; i++)
        share[i] = strtod(argv[5 + i], NULL);
    if (argc == 9)
        pad_to = (size_t)strtoul(argv[8], NULL, 10);
    for (t = 1; t <= tickets; t++)
        visit(t, day + (int64_t)draw(10 * 3600) * 1000);
    if (argc >= 8)
        add_extras(share);
    qsort(steps, nsteps, sizeof(*steps), by_time);
    if (reorder_most)
        reorder(reorder_share, reorder_most, reorder_seconds, rng);
    for (i = 0; i < nsteps; i++)
        emit(&steps[i], argv[3]);

    if ((f = fopen(argv[4], "w")) == NULL) {
        perror(argv[4]);
        return 2;
    }
    fprintf(f, "{\"deliveries\":%zu,\"tickets\":%" PRIu32 ",\"states\":{",
            nsteps, tickets);
    for (i = 0, first = 1; i < QG_STATE_COUNT; i++)
        if (states[i]) {
            fprintf(f, "%s\"%s\":%lu", first ? "" : ",",
                    qg_state_name((qg_state)i), states[i]);
            first = 0;
        }
    fprintf(f, "},\"events\":{");
    for (i = 1, first = 1; i < QG_EVENT_COUNT; i++)
        if (events[i]) {
            fprintf(f, "%s\"%s\":%lu", first ? "" : ",",
                    qg_event_name((qg_event)i), events[i]);
            first = 0;
        }
    fprintf(f, "}");
    if (argc >= 8)
        fprintf(f, ",\"duplicates\":%lu,\"illegal\":%lu,\"stale\":%lu",
                extras[EXTRA_DUP], extras[EXTRA_ILLEGAL], extras[EXTRA_STALE]);
    fprintf(f, "}\n");
    free(steps);
    return fclose(f) == 0 ? 0 : 2;
}
