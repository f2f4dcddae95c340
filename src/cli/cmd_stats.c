/*
 * cmd_stats.c - qgate stats: tickets per state, steps per event, refusals
 * per reason, and how long patients wait and are served.
 *
 * One pass over every history record, by ticket then step.  Durations:
 *   wait     entering the queue (queued, arrived or moved, from any other
 *            state) to the next serve;
 *   service  serve to the next complete;
 *   visit    first step to the last, for tickets in a final state.
 * A ticket counts when its first step's timestamp is in [--since, --until).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct samples {
    int64_t *v;
    size_t n, cap;
} samples;

enum { WAIT, SERVICE, VISIT, NKINDS };
static const char *const kind_names[NKINDS] = {"wait", "service", "visit"};

typedef struct stats {
    char store_id[QG_STORE_ID_LEN + 1]; /* "" when it has none yet */
    unsigned long tickets;
    unsigned long states[QG_STATE_COUNT];
    unsigned long events[QG_EVENT_COUNT];
    unsigned long reasons[QG_REASON_COUNT];
    unsigned long refused;
    uint64_t dropped; /* unsigned entries dropped from the log, ever */
    samples d[NKINDS];
} stats;

/* Per ticket, while its records go by. */
typedef struct walk {
    uint64_t ticket;
    int counted; /* in the time window */
    int64_t first_ms, last_ms;
    int64_t wait_start; /* -1 when not waiting */
    int64_t serve_start;
    int touches; /* a record with the --service id */
    qg_state state;
} walk;

static int
add(samples *s, int64_t v)
{
    int64_t *grown;

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        if ((grown = realloc(s->v, s->cap * sizeof(*grown))) == NULL)
            return -1;
        s->v = grown;
    }
    s->v[s->n++] = v;
    return 0;
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void
swap64(int64_t *a, int64_t *b)
{
    int64_t t = *a;

    *a = *b;
    *b = t;
}

/*
 * Puts into v[k] the value a sort would put there, smaller ones before
 * it and larger ones after (Hoare's selection, the middle of three as
 * pivot).  Sorting a million durations to read four of them took a
 * quarter of `stats`; a selection is linear.  Past `depth` rounds,
 * which only crafted input reaches, it sorts what is left instead.
 */
static void
select_nth(int64_t *v, size_t n, size_t k, int depth)
{
    size_t lo = 0, hi = n - 1;

    while (hi > lo) {
        size_t i, j, mid = lo + (hi - lo) / 2;
        int64_t pivot;

        if (depth-- <= 0) {
            qsort(v + lo, hi - lo + 1, sizeof(*v), cmp64);
            return;
        }
        if (v[mid] < v[lo])
            swap64(&v[mid], &v[lo]);
        if (v[hi] < v[lo])
            swap64(&v[hi], &v[lo]);
        if (v[hi] < v[mid])
            swap64(&v[hi], &v[mid]);
        pivot = v[mid];
        i = lo;
        j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                swap64(&v[i], &v[j]);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        /* [lo, j] <= pivot <= [i, hi], and (j, i) equal to the pivot */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Nearest-rank rank (0-based) of percentile p among n samples. */
static size_t
rank_of(size_t n, int p)
{
    size_t rank = (n * (size_t)p + 99) / 100;

    return rank ? rank - 1 : 0;
}

/*
 * Leaves s's max last and its p50, p90, p99 at their ranks, as a sort
 * would, in linear time: the largest rank first, then each smaller one
 * within the part before it.
 */
static void
order_samples(samples *s)
{
    static const int ps[] = {100, 99, 90, 50};
    size_t bound = s->n, r;
    int depth = 64, i;

    for (i = 0; i < 4 && bound > 0; i++) {
        r = i == 0 ? s->n - 1 : rank_of(s->n, ps[i]);
        if (r >= bound)
            continue; /* already in place: equal to a larger rank's */
        select_nth(s->v, bound, r, depth);
        bound = r;
    }
}

/* Nearest-rank percentile of samples put in order by order_samples(). */
static int64_t
pct(const samples *s, int p)
{
    return s->v[rank_of(s->n, p)];
}

static int
end_ticket(stats *st, const walk *w, int64_t service)
{
    if (!w->counted || (service && !w->touches))
        return 0;
    st->tickets++;
    st->states[w->state]++;
    if (qg_state_is_final(w->state) &&
        add(&st->d[VISIT], w->last_ms - w->first_ms) < 0)
        return -1;
    return 0;
}

static int
step(stats *st, walk *w, const qg_record *r, int64_t since, int64_t until,
     int64_t service)
{
    int mine = !service || r->service_id == service;

    if (r->seq == 1) {
        memset(w, 0, sizeof(*w));
        w->ticket = r->ticket;
        w->counted = r->event_ms >= since && r->event_ms < until;
        w->first_ms = r->event_ms;
        w->wait_start = w->serve_start = -1;
    }
    w->last_ms = r->event_ms;
    w->state = r->to;
    if (!w->counted)
        return 0;
    w->touches |= mine;
    if (mine)
        st->events[r->event]++;
    if (qg_state_is_waiting(r->to) && !qg_state_is_waiting(r->from))
        w->wait_start = r->event_ms;
    if (r->event == QG_EV_SERVE) {
        if (w->wait_start >= 0 && mine &&
            add(&st->d[WAIT], r->event_ms - w->wait_start) < 0)
            return -1;
        w->wait_start = -1;
        w->serve_start = r->event_ms;
    }
    if (r->event == QG_EV_COMPLETE) {
        if (w->serve_start >= 0 && mine &&
            add(&st->d[SERVICE], r->event_ms - w->serve_start) < 0)
            return -1;
        w->serve_start = -1;
    }
    return 0;
}

static void
print_json(const stats *st)
{
    int i, first;

    printf("{\"tickets\":%lu,\"states\":{", st->tickets);
    for (i = 0, first = 1; i < QG_STATE_COUNT; i++)
        if (st->states[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",", qg_state_name((qg_state)i),
                   st->states[i]);
            first = 0;
        }
    printf("},\"events\":{");
    for (i = 1, first = 1; i < QG_EVENT_COUNT; i++)
        if (st->events[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",", qg_event_name((qg_event)i),
                   st->events[i]);
            first = 0;
        }
    printf("},\"refused\":%lu,\"reasons\":{", st->refused);
    for (i = 0, first = 1; i < QG_REASON_COUNT; i++)
        if (st->reasons[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",",
                   qg_reason_name((qg_reason)i), st->reasons[i]);
            first = 0;
        }
    printf("},\"refused_dropped\":%" PRIu64 ",\"durations\":{", st->dropped);
    for (i = 0; i < NKINDS; i++) {
        const samples *s = &st->d[i];

        printf("%s\"%s\":{\"count\":%zu", i ? "," : "", kind_names[i], s->n);
        if (s->n)
            printf(",\"p50_ms\":%" PRId64 ",\"p90_ms\":%" PRId64
                   ",\"p99_ms\":%" PRId64 ",\"max_ms\":%" PRId64,
                   pct(s, 50), pct(s, 90), pct(s, 99), s->v[s->n - 1]);
        printf("}");
    }
    printf("}");
    /* Last, so that the fields before it keep their places. */
    if (st->store_id[0])
        printf(",\"store_id\":\"%s\"", st->store_id);
    else
        printf(",\"store_id\":null");
    printf("}\n");
}

static void
print_human(const stats *st)
{
    char a[16], b[16], c[16], d[16];
    int i;

    printf("tickets: %lu\n", st->tickets);
    for (i = 0; i < QG_STATE_COUNT; i++)
        if (st->states[i])
            printf("  %-20s %8lu\n", qg_state_name((qg_state)i), st->states[i]);
    printf("steps by event:\n");
    for (i = 1; i < QG_EVENT_COUNT; i++)
        if (st->events[i])
            printf("  %-20s %8lu\n", qg_event_name((qg_event)i), st->events[i]);
    printf("refused deliveries: %lu\n", st->refused);
    if (st->dropped)
        printf("  (and %" PRIu64 " unauthenticated or malformed, dropped from "
               "the log)\n",
               st->dropped);
    for (i = 0; i < QG_REASON_COUNT; i++)
        if (st->reasons[i])
            printf("  %-20s %8lu\n", qg_reason_name((qg_reason)i),
                   st->reasons[i]);
    printf("%-9s %8s %9s %9s %9s %9s\n", "duration", "count", "p50", "p90",
           "p99", "max");
    for (i = 0; i < NKINDS; i++) {
        const samples *s = &st->d[i];

        if (s->n == 0) {
            printf("%-9s %8zu\n", kind_names[i], s->n);
            continue;
        }
        printf("%-9s %8zu %9s %9s %9s %9s\n", kind_names[i], s->n,
               cli_duration(pct(s, 50), a, sizeof(a)),
               cli_duration(pct(s, 90), b, sizeof(b)),
               cli_duration(pct(s, 99), c, sizeof(c)),
               cli_duration(s->v[s->n - 1], d, sizeof(d)));
    }
    printf("store id: %s\n", st->store_id[0] ? st->store_id
                                             : "none yet (given at the first "
                                               "write)");
}

/* Refusals in the window (by the time they were received), of c's
 * source if it names one. */
static int
count_refusals(const cli *c, qg_store *db, stats *st, int64_t since,
               int64_t until)
{
    qg_rejections *log = NULL;
    qg_rejection r;
    int rc;

    if ((rc = qg_rejections_open(db, 1, &log)))
        return rc;
    while ((rc = qg_rejections_next(log, &r)) == 0) {
        if (r.received_us / 1000 < since || r.received_us / 1000 >= until ||
            (unsigned)r.reason >= QG_REASON_COUNT ||
            !cli_in_source(c, r.source))
            continue;
        st->reasons[r.reason]++;
        st->refused++;
    }
    qg_rejections_close(log);
    if (rc != QG_NOTFOUND)
        return rc;
    /* Dropped entries have no time: all of them, whatever the window. */
    return qg_rejections_dropped(db, &st->dropped);
}

static int64_t service;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    CLI_SOURCE_OPTION,
    CLI_SINCE_OPTION,
    CLI_UNTIL_OPTION,
    {"service", required_argument, NULL, 'v'},
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    char *end;

    (void)c;
    if (opt != 'v')
        return EXIT_FAILED;
    service = strtoll(arg, &end, 10);
    if (*end || service <= 0)
        return cli_fail("--service \"%s\": not a service id", arg);
    return 0;
}

static int
run(cli *c, qg_store *db, int argc, char **argv)
{
    qg_history *h = NULL;
    qg_record r;
    stats *st;
    walk w;
    int rc, i;

    (void)argc;
    (void)argv;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return cli_fail("out of memory");
    memset(&w, 0, sizeof(w));
    /* A store from before ids, read-only, has none: not an error. */
    if (qg_store_id(db, st->store_id) != 0)
        st->store_id[0] = '\0';
    if ((rc = qg_history_open(db, 0, &h)))
        goto failed;
    while ((rc = qg_history_next(h, &r)) == 0) {
        if ((rc = cli_ticket_in_source(c, db, r.ticket)) <= 0) {
            if (rc < 0)
                goto failed;
            continue;
        }
        if (r.seq == 1 && w.ticket && end_ticket(st, &w, service) < 0)
            goto oom;
        if (step(st, &w, &r, c->since, c->until, service) < 0)
            goto oom;
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    if (w.ticket && end_ticket(st, &w, service) < 0)
        goto oom;
    qg_history_close(h);
    h = NULL;
    if ((rc = count_refusals(c, db, st, c->since, c->until)))
        goto failed;
    for (i = 0; i < NKINDS; i++)
        if (st->d[i].n)
            order_samples(&st->d[i]);
    if (c->json)
        print_json(st);
    else
        print_human(st);
    rc = EXIT_OK;
    goto done;
oom:
    rc = cli_fail("out of memory");
    goto done;
failed:
    rc = cli_store_fail(c, rc);
done:
    qg_history_close(h);
    for (i = 0; i < NKINDS; i++)
        free(st->d[i].v);
    free(st);
    return rc;
}

const cli_command cli_stats = {
    .name = "stats",
    .summary = "states, events, refusals, waiting times",
    .usage = "usage: qgate stats [--source NAME] [--since T] [--until T] "
             "[--service ID] [--json]\n"
             "Tickets count when their first step is in the window; "
             "refusals when received in it.\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .run = run};
