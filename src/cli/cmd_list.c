/*
 * cmd_list.c - qgate list: tickets, newest first.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static struct {
    long limit;
    int want_state;
    int64_t service_id;
} o = {-1, -1, 0};

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    CLI_SOURCE_OPTION,
    {"state", required_argument, NULL, 's'},
    {"service", required_argument, NULL, 'v'},
    CLI_SINCE_OPTION,
    CLI_UNTIL_OPTION,
    {"limit", required_argument, NULL, 'n'},
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    qg_state s;
    char *end;

    (void)c;
    switch (opt) {
    case 's':
        if (qg_state_from_name(arg, &s) != 0)
            return cli_fail("--state \"%s\": not a canonical state "
                            "(see qgate machine)",
                            arg);
        o.want_state = (int)s;
        return 0;
    case 'v':
        o.service_id = strtoll(arg, &end, 10);
        if (*end || arg[0] < '1' || arg[0] > '9' || o.service_id <= 0)
            return cli_fail("--service \"%s\": not a service id", arg);
        return 0;
    case 'n':
        o.limit = strtol(arg, &end, 10);
        if (*end || o.limit < 0)
            return cli_fail("--limit \"%s\": not a count", arg);
        return 0;
    }
    return EXIT_FAILED;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    long limit = o.limit, shown = 0;
    cli_ticket_filter filter;
    int rc;
    qg_tickets *it = NULL;
    qg_ticket t;
    char when[40], ids[48];
    int32_t offset;

    (void)argc;
    (void)argv;
    cli_ticket_filter_init(&filter);
    filter.source = c->source;
    filter.state = o.want_state;
    filter.service_id = o.service_id;
    filter.since = c->since;
    filter.until = c->until;
    if ((rc = qg_tickets_open(st, &it))) {
        rc = cli_store_fail(c, rc);
        goto done;
    }
    if (!c->json)
        printf("%8s  %-24s  %-18s  %5s  %7s  %s\n", "ticket", "ids", "state",
               "steps", "refused", "last step");
    while (limit != shown && (rc = qg_tickets_next(it, &t)) == 0) {
        if (!cli_ticket_matches(&filter, &t))
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
    return rc;
}

const cli_command cli_list = {
    .name = "list",
    .summary = "tickets, newest first",
    .usage = "usage: qgate list [--source NAME] [--state S] [--service ID] "
             "[--since T] [--until T] [--limit N] [--json]\n"
             "Tickets, newest first.  --since/--until select by the "
             "time of the ticket's last step;\n--service by the service "
             "its last step naming one gave.\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .run = run};
