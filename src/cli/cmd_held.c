/*
 * cmd_held.c - qgate held: deliveries waiting for an earlier step, and
 * giving up on them now.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "cli.h"

static void
print(cli *c, const qg_held *h, int64_t now_us)
{
    int64_t expires_us = h->received_us + c->reorder_window * 1000000;
    char when[40], waited[24], left[24], ids[48];
    qg_ticket t;

    if (c->json) {
        render_held(stdout, h, now_us, expires_us);
        putchar('\n');
        return;
    }
    memset(&t, 0, sizeof(t));
    t.live_queue_id = h->live_queue_id;
    t.appointment_id = h->appointment_id;
    printf(
        "%6" PRIu64 "  %-20s %-12s %-20s %s  %9s  %9s\n", h->id,
        cli_ticket_ids(&t, ids, sizeof(ids)), qg_event_name(h->event),
        qg_state_name(h->from),
        cli_event_time(h->event_ms, h->utc_offset_s, when, sizeof(when)),
        cli_duration((now_us - h->received_us) / 1000, waited, sizeof(waited)),
        expires_us > now_us
            ? cli_duration((expires_us - now_us) / 1000, left, sizeof(left))
            : "due");
}

static int expire;

static const struct option options[] = {CLI_REORDER_OPTION,
                                        CLI_COMMON_OPTIONS,
                                        CLI_SOURCE_OPTION,
                                        {"expire", no_argument, NULL, 'x'},
                                        {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)arg;
    if (opt != 'x')
        return EXIT_FAILED;
    expire = c->write = 1;
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    uint64_t by_reason[QG_REASON_COUNT] = {0}, expired = 0, n = 0;
    int rc, i;
    qg_held_list *hl = NULL;
    int64_t now_us;
    qg_held h;

    (void)argc;
    (void)argv;
    if (expire) {
        if ((rc = qg_held_expire(st, INT64_MAX, by_reason, &expired))) {
            rc = cli_fail("%s: cannot expire held deliveries: %s", c->db,
                          qg_strerror(rc));
            goto done;
        }
        if (c->json) {
            printf("{\"expired\":%" PRIu64 ",\"by_reason\":{", expired);
            for (i = 0, n = 0; i < QG_REASON_COUNT; i++)
                if (by_reason[i])
                    printf("%s\"%s\":%" PRIu64, n++ ? "," : "",
                           qg_reason_name((qg_reason)i), by_reason[i]);
            printf("}}\n");
        } else {
            printf("%" PRIu64 " held deliver%s refused\n", expired,
                   expired == 1 ? "y" : "ies");
            for (i = 0; i < QG_REASON_COUNT; i++)
                if (by_reason[i])
                    printf("  %-22s %" PRIu64 "\n",
                           qg_reason_name((qg_reason)i), by_reason[i]);
        }
        rc = expired ? EXIT_FOUND : EXIT_OK;
        goto done;
    }
    if ((rc = qg_held_open(st, &hl))) {
        rc = cli_fail("%s: %s", c->db, qg_strerror(rc));
        goto done;
    }
    now_us = qg_time_now_us();
    if (!c->json)
        printf("%6s  %-20s %-12s %-20s %-26s  %9s  %9s\n", "id", "ticket",
               "event", "state on arrival", "timestamp", "held", "expires");
    while ((rc = qg_held_next(hl, &h)) == 0) {
        if (!cli_in_source(c, h.source))
            continue;
        print(c, &h, now_us);
        n++;
    }
    if (rc != QG_NOTFOUND) {
        rc = cli_fail("%s: %s", c->db, qg_strerror(rc));
        goto done;
    }
    rc = EXIT_OK;
    if (!c->json)
        fprintf(stderr, "%" PRIu64 " held\n", n);
done:
    qg_held_close(hl);
    return rc;
}

const cli_command cli_held = {
    .name = "held",
    .summary = "deliveries waiting for an earlier step",
    .usage = "usage: qgate held [--json] [--source NAME] "
             "[--reorder-window S]\n"
             "       qgate held --expire\n"
             "Lists the deliveries held for an earlier step: ticket, "
             "event, timestamp,\nhow long held and how long until the "
             "reorder window (default " CLI_XSTR(
                 CLI_DEFAULT_REORDER_WINDOW) " s) ends.\n--expire gives up "
                                             "on all of them now: each goes to "
                                             "the rejection log\nwith "
                                             "the reason it would have had on "
                                             "arrival.\n",
    .options = options,
    .store = CLI_READ,
    .option = option,
    .run = run};
