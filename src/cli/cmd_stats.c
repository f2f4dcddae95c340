/*
 * cmd_stats.c - qgate stats: tickets per state, steps per event, refusals
 * per reason, and how long patients wait and are served.
 *
 * One pass over every history record, by ticket then step, with the walk
 * of durations.c (wait, service and visit durations), which the gate's
 * GET /waits shares.
 * A ticket counts when its first step's timestamp is in [--since, --until).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "durations.h"

typedef struct stats {
    char store_id[QG_STORE_ID_LEN + 1]; /* "" when it has none yet */
    durations w;                        /* tickets, events, durations */
    unsigned long reasons[QG_REASON_COUNT];
    unsigned long refused;
    uint64_t dropped; /* unsigned entries dropped from the log, ever */
} stats;

static void
print_json(const stats *st)
{
    int i, first;

    printf("{\"tickets\":%lu,\"states\":{", st->w.tickets);
    for (i = 0, first = 1; i < QG_STATE_COUNT; i++)
        if (st->w.states[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",", qg_state_name((qg_state)i),
                   st->w.states[i]);
            first = 0;
        }
    printf("},\"events\":{");
    for (i = 1, first = 1; i < QG_EVENT_COUNT; i++)
        if (st->w.events[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",", qg_event_name((qg_event)i),
                   st->w.events[i]);
            first = 0;
        }
    printf("},\"refused\":%lu,\"reasons\":{", st->refused);
    for (i = 0, first = 1; i < QG_REASON_COUNT; i++)
        if (st->reasons[i]) {
            printf("%s\"%s\":%lu", first ? "" : ",",
                   qg_reason_name((qg_reason)i), st->reasons[i]);
            first = 0;
        }
    printf("},\"refused_dropped\":%" PRIu64 ",\"durations\":", st->dropped);
    durations_render(stdout, &st->w, 0);
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

    printf("tickets: %lu\n", st->w.tickets);
    for (i = 0; i < QG_STATE_COUNT; i++)
        if (st->w.states[i])
            printf("  %-20s %8lu\n", qg_state_name((qg_state)i),
                   st->w.states[i]);
    printf("steps by event:\n");
    for (i = 1; i < QG_EVENT_COUNT; i++)
        if (st->w.events[i])
            printf("  %-20s %8lu\n", qg_event_name((qg_event)i),
                   st->w.events[i]);
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
        const samples *s = &st->w.d[i];

        if (s->n == 0) {
            printf("%-9s %8zu\n", duration_kinds[i], s->n);
            continue;
        }
        printf("%-9s %8zu %9s %9s %9s %9s\n", duration_kinds[i], s->n,
               cli_duration(durations_pct(s, 50), a, sizeof(a)),
               cli_duration(durations_pct(s, 90), b, sizeof(b)),
               cli_duration(durations_pct(s, 99), c, sizeof(c)),
               cli_duration(durations_pct(s, 100), d, sizeof(d)));
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
    ticket_walk w;
    int rc;

    (void)argc;
    (void)argv;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return cli_fail("out of memory");
    memset(&w, 0, sizeof(w));
    /* A store from before ids, read-only, has none: not an error. */
    if (qg_store_id(db, st->store_id) != 0)
        st->store_id[0] = '\0';
    /* The steps' summaries: stats needs none of the bodies' pages. */
    if ((rc = qg_history_open_order(db, 0, QG_EVENT_ORDER | QG_SUMMARY, &h)))
        goto failed;
    while ((rc = qg_history_next(h, &r)) == 0) {
        if ((rc = cli_ticket_in_source(c, db, r.ticket)) <= 0) {
            if (rc < 0)
                goto failed;
            continue;
        }
        if (r.seq == 1 && w.ticket &&
            durations_end_ticket(&st->w, &w, service) < 0)
            goto oom;
        if (durations_step(&st->w, &w, &r, c->since, c->until, service) < 0)
            goto oom;
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    if (w.ticket && durations_end_ticket(&st->w, &w, service) < 0)
        goto oom;
    qg_history_close(h);
    h = NULL;
    if ((rc = count_refusals(c, db, st, c->since, c->until)))
        goto failed;
    durations_order(&st->w);
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
    durations_free(&st->w);
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
