/*
 * cmd_list.c - qgate list: tickets, newest first.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cmd_list(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"state", required_argument, NULL, 's'},
        CLI_SINCE_OPTION,
        CLI_UNTIL_OPTION,
        {"limit", required_argument, NULL, 'n'},
        {0}};
    long limit = -1, shown = 0;
    int want_state = -1, opt, rc;
    qg_store *st = NULL;
    qg_tickets *it = NULL;
    qg_ticket t;
    qg_state s;
    char *end, when[40], ids[48];
    int32_t offset;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        switch (opt) {
        case 's':
            if (qg_state_from_name(optarg, &s) != 0)
                return cli_fail("--state \"%s\": not a canonical state "
                                "(see qgate machine)",
                                optarg);
            want_state = (int)s;
            break;
        case 'n':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 0)
                return cli_fail("--limit \"%s\": not a count", optarg);
            break;
        case 'h':
            printf("usage: qgate list [--state S] [--since T] [--until T] "
                   "[--limit N] [--json]\n"
                   "Tickets, newest first.  --since/--until select by the "
                   "time of the ticket's last step.\n" CLI_TIME_HELP);
            return EXIT_OK;
        default:
            return EXIT_FAILED;
        }
    }
    if (optind != argc)
        return cli_fail("list: unexpected argument \"%s\"", argv[optind]);
    if ((rc = cli_finish_options(c)) || (rc = cli_open_store(c, 1, &st)))
        return rc;
    if ((rc = qg_tickets_open(st, &it))) {
        rc = cli_store_fail(c, rc);
        goto done;
    }
    if (!c->json)
        printf("%8s  %-24s  %-18s  %5s  %7s  %s\n", "ticket", "ids", "state",
               "steps", "refused", "last step");
    while (limit != shown && (rc = qg_tickets_next(it, &t)) == 0) {
        if ((want_state >= 0 && (int)t.state != want_state) ||
            t.last_event_ms < c->since || t.last_event_ms >= c->until)
            continue;
        shown++;
        if (c->json) {
            render_ticket(stdout, &t);
            putchar('\n');
            continue;
        }
        cli_ticket_ids(&t, ids, sizeof(ids));
        /* The ticket's row keeps no offset: its last step has it, one
         * lookup per line shown (none under --tz). */
        offset = 0;
        if (!cli_zone_given() &&
            (rc = cli_ticket_offset(st, &t, &offset)) != 0) {
            rc = cli_store_fail(c, rc);
            goto done;
        }
        printf("%8" PRIu64 "  %-24s  %-18s  %5" PRIu32 "  %7" PRIu32 "  %s\n",
               t.id, ids, qg_state_name(t.state), t.records, t.rejections,
               cli_event_time(t.last_event_ms, offset, when, sizeof(when)));
    }
    if (rc == QG_NOTFOUND || limit == shown)
        rc = 0;
    else if (rc)
        rc = cli_store_fail(c, rc);
done:
    qg_tickets_close(it);
    qg_store_close(st);
    return rc;
}
