/*
 * cmd_export.c - qgate export: every history record, for spreadsheets and
 * warehouses.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"

int
cmd_export(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"format", required_argument, NULL, 'f'},
        CLI_SINCE_OPTION,
        {0}};
    unsigned long n = 0;
    qg_store *st = NULL;
    qg_history *h = NULL;
    qg_ticket t = {0};
    qg_record r;
    int opt, rc, csv = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        switch (opt) {
        case 'f':
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "ndjson") != 0)
                return cli_fail("--format \"%s\": expected ndjson or csv",
                                optarg);
            csv = strcmp(optarg, "csv") == 0;
            break;
        case 'h':
            printf("usage: qgate export [--format ndjson|csv | --json] "
                   "[--since T]\n"
                   "Every history record, by ticket then step.  --since "
                   "selects by the step's Chup timestamp.\n" CLI_TIME_HELP);
            return EXIT_OK;
        default:
            return EXIT_FAILED;
        }
    }
    if (optind != argc)
        return cli_fail("export: unexpected argument \"%s\"", argv[optind]);
    /* NDJSON is the JSON form; --json with CSV asks for two things. */
    if (c->json && csv)
        return cli_fail("export: --json is --format ndjson; it cannot be "
                        "--format csv");
    if ((rc = cli_finish_options(c)) || (rc = cli_open_store(c, 1, &st)))
        return rc;
    if ((rc = qg_history_open(st, 0, &h)))
        goto failed;
    if (csv)
        printf("ticket,live_queue_id,appointment_id,seq,timestamp,received,"
               "event,from,to,service_id,staff_id,machine,digest\n");
    while ((rc = qg_history_next(h, &r)) == 0) {
        if (r.ticket != t.id &&
            (rc = qg_store_ticket(st, QG_ID_TICKET, (int64_t)r.ticket, &t)))
            goto failed;
        if (r.event_ms < c->since)
            continue;
        render_export_row(stdout, &t, &r, csv);
        cli_progress("records", ++n, 0);
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    cli_progress("records", n, 1);
    qg_history_close(h);
    qg_store_close(st);
    return EXIT_OK;
failed:
    qg_history_close(h);
    qg_store_close(st);
    return cli_store_fail(c, rc);
}
