/*
 * cmd_export.c - qgate export: every history record, for spreadsheets and
 * warehouses.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int csv;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    {"format", required_argument, NULL, 'f'},
    CLI_SINCE_OPTION,
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)c;
    if (opt != 'f')
        return EXIT_FAILED;
    if (strcmp(arg, "csv") != 0 && strcmp(arg, "ndjson") != 0)
        return cli_fail("--format \"%s\": expected ndjson or csv", arg);
    csv = strcmp(arg, "csv") == 0;
    return 0;
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* NDJSON is the JSON form; --json with CSV asks for two things. */
    if (c->json && csv)
        return cli_fail("export: --json is --format ndjson; it cannot be "
                        "--format csv");
    return 0;
}

/* Lines are made in a buffer of this size and written a buffer at a
 * time: an export is millions of lines. */
#define EXPORT_BUFFER ((size_t)256 << 10)

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    unsigned long n = 0;
    qg_history *h = NULL;
    qg_ticket t = {0};
    qg_record r;
    char *buf;
    size_t used = 0;
    int rc;

    (void)argc;
    (void)argv;
    if ((buf = malloc(EXPORT_BUFFER)) == NULL)
        return cli_fail("out of memory");
    if ((rc = qg_history_open(st, 0, &h)))
        goto failed;
    if (csv)
        printf("ticket,live_queue_id,appointment_id,seq,timestamp,received,"
               "event,from,to,service_id,staff_id,machine,digest\n");
    while ((rc = qg_history_next(h, &r)) == 0) {
        /* The ticket as the cursor's snapshot has it: the same state the
         * records were read in, and no transaction of its own. */
        if (r.ticket != t.id && (rc = qg_history_ticket(h, &t)))
            goto failed;
        if (r.event_ms < c->since)
            continue;
        if (EXPORT_BUFFER - used < RENDER_EXPORT_MAX) {
            /* A write error is kept by stdio and reported at the end. */
            fwrite(buf, 1, used, stdout);
            used = 0;
        }
        used += render_export_line(buf + used, &t, &r, csv);
        cli_progress("records", ++n, 0);
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    fwrite(buf, 1, used, stdout);
    cli_progress("records", n, 1);
    qg_history_close(h);
    free(buf);
    return EXIT_OK;
failed:
    qg_history_close(h);
    free(buf);
    return cli_store_fail(c, rc);
}

const cli_command cli_export = {
    .name = "export",
    .summary = "every history record as NDJSON or CSV",
    .usage = "usage: qgate export [--format ndjson|csv | --json] "
             "[--since T]\n"
             "Every history record, by ticket then step.  --since "
             "selects by the step's Chup timestamp.\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .ready = ready,
    .run = run};
