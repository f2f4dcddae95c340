/*
 * cmd_export.c - qgate export: every history record, for spreadsheets and
 * warehouses.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static void
row(int csv, const qg_ticket *t, const qg_record *r)
{
    char when[40], recv[40], digest[65];
    int i;

    for (i = 0; i < 32; i++)
        snprintf(digest + 2 * i, 3, "%02x", r->digest[i]);
    qg_time_format(r->event_ms, r->utc_offset_s, when, sizeof(when));
    qg_time_format(r->received_us / 1000, 0, recv, sizeof(recv));
    if (csv) {
        printf("%" PRIu64 ",", t->id);
        if (t->live_queue_id)
            printf("%" PRId64, t->live_queue_id);
        putchar(',');
        if (t->appointment_id)
            printf("%" PRId64, t->appointment_id);
        printf(",%" PRIu32 ",%s,%s,%s,%s,%s,%" PRId64 ",%" PRId64 ",%s,%s\n",
               r->seq, when, recv, qg_event_name(r->event),
               qg_state_name(r->from), qg_state_name(r->to), r->service_id,
               r->staff_id, r->machine, digest);
        return;
    }
    printf("{\"ticket\":%" PRIu64, t->id);
    printf(",\"live_queue_id\":");
    printf(t->live_queue_id ? "%" PRId64 : "null", t->live_queue_id);
    printf(",\"appointment_id\":");
    printf(t->appointment_id ? "%" PRId64 : "null", t->appointment_id);
    printf(
        ",\"seq\":%" PRIu32 ",\"timestamp\":\"%s\",\"received\":\"%s\","
        "\"event\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"service_id\":%" PRId64
        ",\"staff_id\":%" PRId64 ",\"machine\":\"%s\","
        "\"digest\":\"%s\"}\n",
        r->seq, when, recv, qg_event_name(r->event), qg_state_name(r->from),
        qg_state_name(r->to), r->service_id, r->staff_id, r->machine, digest);
}

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
        row(csv, &t, &r);
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
