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

/* The chain hash of each step, for --hash: hashes[seq - 1], in h's
 * snapshot. */
static int
step_hashes(qg_history *h, const qg_ticket *t,
            unsigned char (**hashes)[QG_CHAIN_HASH_LEN])
{
    int rc;

    *hashes = calloc(t->records ? t->records : 1, sizeof(**hashes));
    if (*hashes == NULL)
        return cli_fail("out of memory");
    rc = qg_history_step_hashes(h, t->records, *hashes);
    if (rc == QG_NOTFOUND)
        return cli_fail("--hash: the store has no hash chain yet (a writable "
                        "open computes it)");
    return rc ? cli_fail("ticket %" PRIu64 ": %s", t->id, qg_strerror(rc)) : 0;
}

static int show_hash;

static int
history(cli *c, qg_store *st, const qg_ticket *t, long raw, qg_order order)
{
    unsigned char(*hashes)[QG_CHAIN_HASH_LEN] = NULL;
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
    if (show_hash && (rc = step_hashes(h, t, &hashes))) {
        qg_history_close(h);
        free(hashes);
        return rc;
    }
    cli_ticket_ids(t, name, sizeof(name));
    if (raw == 0 && !c->json) {
        printf("ticket %" PRIu64 " (%s): %s, %" PRIu32 " steps, %" PRIu32
               " refused; in %s order\n",
               t->id, name, qg_state_name(t->state), t->records, t->rejections,
               order == QG_ARRIVAL_ORDER ? "arrival" : "event-time");
        printf("%4s  %-26s  %-11s  %-40s  %-11s  %-9s  %-8s  %s\n", "#", "time",
               "event", "from -> to", "svc/staff", "in prev", "machine",
               show_hash ? "chain hash, note" : "note");
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
               "%.8s%s%s%s",
               r.seq,
               cli_event_time(r.event_ms, r.utc_offset_s, when, sizeof(when)),
               qg_event_name(r.event), qg_state_name(r.from),
               qg_state_name(r.to), ids,
               cli_duration(waited_ms, waited, sizeof(waited)), r.machine,
               hashes || note(&r)[0] ? "  " : "", hashes ? "" : note(&r),
               hashes ? "" : "\n");
        if (hashes) {
            int i;

            for (i = 0; i < QG_CHAIN_HASH_LEN; i++)
                printf("%02x", r.seq <= t->records ? hashes[r.seq - 1][i] : 0);
            printf("%s%s\n", note(&r)[0] ? "  " : "", note(&r));
        }
    }
    free(hashes);
    qg_history_close(h);
    if (rc != 0 && rc != QG_NOTFOUND)
        return rc == QG_ECORRUPT || rc == QG_ESTORE
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
                                        {"hash", no_argument, NULL, 'H'},
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
    if (opt == 'H') {
        show_hash = 1;
        return 0;
    }
    return EXIT_FAILED;
}

static int
ready_history(cli *c, int argc, char **argv)
{
    (void)argv;
    if (show_hash && (c->json || o.raw))
        return cli_fail("history: --hash is for the listing; qgate export "
                        "gives the hashes as data");
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
             "[--raw N] [--arrival] [--hash]\n"
             "       TICKET\n" TICKET_HELP
             "Steps are listed in event time (late ones at their place); "
             "--arrival lists\nthem in the order they were accepted.  # is "
             "that order.  --hash shows each\nstep's hash in the store's "
             "hash chain (qgate verify checks them).\n",
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
