/*
 * cmd_history.c - qgate history and qgate show: one ticket, read-only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "render.h"

static const char *
note(const qg_record *r)
{
    if (r->body == NULL)
        return r->late ? "late, body purged" : "body purged";
    if (r->late && r->released)
        return "late, was held";
    if (r->late)
        return "late";
    return r->released ? "was held" : "";
}

static int
history(cli *c, qg_store *st, const qg_ticket *t, long raw, qg_order order)
{
    qg_history *h = NULL;
    qg_ticket snap;
    qg_record r;
    int64_t prev_ms = -1;
    char name[64], when[40], waited[16], ids[40];
    int rc, first = 1;

    if ((rc = qg_history_open_order(st, t->id, order, &h)))
        return rc == QG_ECORRUPT
                   ? cli_store_fail(c, rc)
                   : cli_fail("ticket %" PRIu64 ": %s", t->id, qg_strerror(rc));
    /* The ticket as the cursor sees it: its count of steps matches the
     * rows below even while another process writes the store. */
    if (qg_history_ticket(h, &snap) == 0)
        t = &snap;
    cli_ticket_ids(t, name, sizeof(name));
    if (raw == 0 && !c->json) {
        printf("ticket %" PRIu64 " (%s): %s, %" PRIu32 " steps, %" PRIu32
               " refused; in %s order\n",
               t->id, name, qg_state_name(t->state), t->records, t->rejections,
               order == QG_ARRIVAL_ORDER ? "arrival" : "event-time");
        printf("%4s  %-26s  %-11s  %-40s  %-11s  %-9s  %-8s  %s\n", "#", "time",
               "event", "from -> to", "svc/staff", "in prev", "machine",
               "note");
    } else if (c->json && raw == 0) {
        printf("[");
    }
    while ((rc = qg_history_next(h, &r)) == 0) {
        int64_t waited_ms = prev_ms < 0 ? -1 : r.event_ms - prev_ms;

        prev_ms = r.event_ms;
        if (raw > 0) {
            if ((long)r.seq == raw) {
                if (r.body == NULL) {
                    qg_history_close(h);
                    return cli_fail("ticket %s: record %ld: its body was "
                                    "purged (qgate purge)",
                                    name, raw);
                }
                fwrite(r.body, 1, r.body_len, stdout);
                break;
            }
            continue;
        }
        if (c->json) {
            if (!first)
                fputs(",\n", stdout);
            render_record(stdout, &r, waited_ms);
            first = 0;
            continue;
        }
        snprintf(ids, sizeof(ids), "%" PRId64 "/%" PRId64, r.service_id,
                 r.staff_id);
        printf("%4" PRIu32 "  %-26s  %-11s  %-18s -> %-18s  %-11s  %-9s  "
               "%.8s%s%s\n",
               r.seq,
               cli_event_time(r.event_ms, r.utc_offset_s, when, sizeof(when)),
               qg_event_name(r.event), qg_state_name(r.from),
               qg_state_name(r.to), ids,
               cli_duration(waited_ms, waited, sizeof(waited)), r.machine,
               note(&r)[0] ? "  " : "", note(&r));
    }
    qg_history_close(h);
    if (rc != 0 && rc != QG_NOTFOUND)
        return rc == QG_ECORRUPT
                   ? cli_store_fail(c, rc)
                   : cli_fail("ticket %" PRIu64 ": %s", t->id, qg_strerror(rc));
    if (raw > 0 && rc == QG_NOTFOUND)
        return cli_fail("ticket %s: no record %ld (it has %" PRIu32 ")", name,
                        raw, t->records);
    if (c->json && raw == 0)
        printf("]\n");
    return EXIT_OK;
}

static int
show(cli *c, const qg_ticket *t)
{
    char name[64], allowed[256];
    unsigned mask = qg_machine_allowed(t->state);

    cli_ticket_ids(t, name, sizeof(name));
    if (!c->json) {
        printf("ticket %" PRIu64 " (%s)\n  state     %s\n  next      %s\n"
               "  steps     %" PRIu32 "\n  refused   %" PRIu32 "\n",
               t->id, name, qg_state_name(t->state),
               mask ? qg_events_format(mask, allowed, sizeof(allowed))
                    : "nothing (final state)",
               t->records, t->rejections);
        return EXIT_OK;
    }
    render_ticket(stdout, t);
    putchar('\n');
    return EXIT_OK;
}

static struct {
    qg_order order;
    long raw;
} o = {QG_EVENT_ORDER, 0};

/* show takes the same table, and refuses --raw and --arrival. */
static const struct option options[] = {CLI_COMMON_OPTIONS,
                                        CLI_SOURCE_OPTION,
                                        {"raw", required_argument, NULL, 'r'},
                                        {"arrival", no_argument, NULL, 'a'},
                                        {0}};

static int
option(cli *c, int opt, const char *arg)
{
    char *end;

    (void)c;
    if (opt == 'r') {
        o.raw = strtol(arg, &end, 10);
        if (*end || o.raw <= 0)
            return cli_fail("--raw: \"%s\" is not a record number", arg);
        return 0;
    }
    if (opt == 'a') {
        o.order = QG_ARRIVAL_ORDER;
        return 0;
    }
    return EXIT_FAILED;
}

static int
ready_history(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    return argc != 1 ? cli_fail("history: expected one TICKET") : 0;
}

static int
ready_show(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    return argc != 1 ? cli_fail("show: expected one TICKET") : 0;
}

static int
run_history(cli *c, qg_store *st, int argc, char **argv)
{
    qg_ticket t;
    int rc;

    (void)argc;
    if ((rc = cli_find_ticket(st, c->source, argv[0], &t)) == 0)
        rc = history(c, st, &t, o.raw, o.order);
    return rc;
}

static int
run_show(cli *c, qg_store *st, int argc, char **argv)
{
    qg_ticket t;
    int rc;

    (void)argc;
    if ((rc = cli_find_ticket(st, c->source, argv[0], &t)) == 0)
        rc = show(c, &t);
    return rc;
}

#define TICKET_HELP                                                            \
    "TICKET: a live-queue id (30001), lq:ID, appt:ID or ticket:N\n"

const cli_command cli_history = {
    .name = "history",
    .summary = "a ticket's timeline",
    .usage = "usage: qgate history [--json] [--db DIR] [--source NAME] "
             "[--raw N] [--arrival] TICKET\n" TICKET_HELP
             "Steps are listed in event time (late ones at their place); "
             "--arrival lists\nthem in the order they were accepted.  # is "
             "that order.\n",
    .options = options,
    .store = CLI_READ,
    .args = 1,
    .option = option,
    .ready = ready_history,
    .run = run_history};

const cli_command cli_show = {
    .name = "show",
    .summary = "a ticket's state, next events and counts",
    .usage = "usage: qgate show [--json] [--db DIR] [--source NAME] "
             "TICKET\n" TICKET_HELP,
    .options = options,
    .store = CLI_READ,
    .args = 1,
    .ready = ready_show,
    .run = run_show};
