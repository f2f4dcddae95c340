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

/* The ticket's step hashes in hex, hashes[seq - 1]; "" where none (a
 * store without a chain, a step newer than the ticket read). */
static int
load_hashes(qg_store *st, const qg_ticket *t, char (**hex)[65], uint32_t *n)
{
    unsigned char(*raw)[QG_CHAIN_HASH_LEN];
    uint32_t i;
    int rc, j;

    free(*hex);
    *n = 0;
    if ((*hex = calloc(t->records ? t->records : 1, sizeof(**hex))) == NULL ||
        (raw = calloc(t->records ? t->records : 1, sizeof(*raw))) == NULL)
        return QG_ENOMEM;
    rc = qg_chain_step_hashes(st, t->id, t->records, raw);
    /* by hand: snprintf() of each byte costs as much as the lookup */
    for (i = 0; rc == 0 && i < t->records; i++) {
        for (j = 0; j < QG_CHAIN_HASH_LEN; j++) {
            (*hex)[i][2 * j] = "0123456789abcdef"[raw[i][j] >> 4];
            (*hex)[i][2 * j + 1] = "0123456789abcdef"[raw[i][j] & 15];
        }
        (*hex)[i][2 * QG_CHAIN_HASH_LEN] = '\0';
    }
    free(raw);
    if (rc == QG_NOTFOUND)
        return 0;
    *n = t->records;
    return rc;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    char(*hashes)[65] = NULL;
    uint32_t nhashes = 0;
    unsigned long n = 0;
    qg_history *h = NULL;
    qg_ticket t = {0};
    qg_record r;
    int rc;

    (void)argc;
    (void)argv;
    if ((rc = qg_history_open(st, 0, &h)))
        goto failed;
    if (csv)
        printf("ticket,live_queue_id,appointment_id,seq,timestamp,received,"
               "event,from,to,service_id,staff_id,machine,digest,chain_hash\n");
    while ((rc = qg_history_next(h, &r)) == 0) {
        if (r.ticket != t.id &&
            ((rc = qg_store_ticket(st, QG_ID_TICKET, (int64_t)r.ticket, &t)) ||
             (rc = load_hashes(st, &t, &hashes, &nhashes))))
            goto failed;
        if (r.event_ms < c->since)
            continue;
        render_export_row(stdout, &t, &r, csv,
                          r.seq <= nhashes ? hashes[r.seq - 1] : "");
        cli_progress("records", ++n, 0);
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    cli_progress("records", n, 1);
    qg_history_close(h);
    free(hashes);
    return EXIT_OK;
failed:
    qg_history_close(h);
    free(hashes);
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
