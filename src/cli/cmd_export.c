/*
 * cmd_export.c - qgate export: every history record, for spreadsheets and
 * warehouses; or the tickets as FHIR R4 resources (qg_fhir_ticket()).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* --format: ndjson and csv write records; the fhir forms, tickets. */
typedef enum format {
    FORMAT_NDJSON,
    FORMAT_CSV,
    FORMAT_FHIR,        /* one Bundle of type collection */
    FORMAT_FHIR_NDJSON, /* the resources, a line each (FHIR Bulk Data) */
    FORMAT_FHIR_BUNDLES /* a Bundle per ticket, a line each */
} format;

static const char *const format_names[] = {"ndjson", "csv", "fhir",
                                           "fhir-ndjson", "fhir-bundles"};

#define OPT_TICKET      1
#define OPT_FHIR_SYSTEM 2

static format fmt;
static int csv;
static const char *ticket_arg;
static const char *fhir_system;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    CLI_SOURCE_OPTION,
    {"format", required_argument, NULL, 'f'},
    {"ticket", required_argument, NULL, OPT_TICKET},
    {"fhir-system", required_argument, NULL, OPT_FHIR_SYSTEM},
    CLI_SINCE_OPTION,
    CLI_UNTIL_OPTION,
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    size_t i;

    (void)c;
    if (opt == OPT_TICKET) {
        ticket_arg = arg;
        return 0;
    }
    if (opt == OPT_FHIR_SYSTEM) {
        if (qg_fhir_system_check(arg))
            return cli_fail("--fhir-system \"%s\": " QG_FHIR_SYSTEM_RULE, arg);
        fhir_system = arg;
        return 0;
    }
    if (opt != 'f')
        return EXIT_FAILED;
    for (i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (strcmp(arg, format_names[i]) == 0)
            break;
    if (i == sizeof(format_names) / sizeof(format_names[0]))
        return cli_fail("--format \"%s\": expected ndjson, csv, fhir, "
                        "fhir-ndjson or fhir-bundles",
                        arg);
    fmt = (format)i;
    csv = fmt == FORMAT_CSV;
    return 0;
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* NDJSON is the JSON form; --json with CSV asks for two things. */
    if (c->json && fmt != FORMAT_NDJSON)
        return cli_fail("export: --json is --format ndjson; it cannot be "
                        "--format %s",
                        format_names[fmt]);
    if (fmt < FORMAT_FHIR && (ticket_arg || fhir_system))
        return cli_fail("export: --%s goes with the fhir formats",
                        ticket_arg ? "ticket" : "fhir-system");
    if (fmt < FORMAT_FHIR && c->until != INT64_MAX)
        return cli_fail("export: --until goes with the fhir formats");
    return 0;
}

/* One ticket in the chosen FHIR form; first says whether it opens the
 * Bundle's entries. */
static int
fhir_ticket(qg_store *st, uint64_t ticket, int first)
{
    static const qg_fhir_form forms[] = {[FORMAT_FHIR] = QG_FHIR_ENTRIES,
                                         [FORMAT_FHIR_NDJSON] = QG_FHIR_NDJSON,
                                         [FORMAT_FHIR_BUNDLES] =
                                             QG_FHIR_BUNDLE};
    qg_fhir_options o = {fhir_system, 0};
    char *text = NULL;
    size_t len;
    int rc;

    if ((rc = qg_fhir_ticket(st, ticket, forms[fmt], &o, &text, &len)))
        return rc;
    /* FHIR has no empty arrays: a Bundle of no ticket has no "entry". */
    if (fmt == FORMAT_FHIR)
        fputs(first ? ",\"entry\":[" : ",", stdout);
    fwrite(text, 1, len, stdout);
    if (fmt == FORMAT_FHIR_BUNDLES)
        fputc('\n', stdout);
    free(text);
    return 0;
}

/*
 * The FHIR forms write tickets, each whole: with --ticket that one; else
 * every ticket (of --source) with a step in [--since, --until), in ticket
 * order.
 */
static int
run_fhir(cli *c, qg_store *st)
{
    unsigned long n = 0;
    qg_history *h = NULL;
    qg_record r;
    qg_ticket t;
    uint64_t cur = 0;
    int in = 0, mine = 0, rc;

    if (ticket_arg && cli_find_ticket(st, c->source, ticket_arg, &t))
        return EXIT_FAILED;
    if (fmt == FORMAT_FHIR)
        printf("{\"resourceType\":\"Bundle\",\"type\":\"collection\"");
    if (ticket_arg) {
        if ((rc = fhir_ticket(st, t.id, 1)))
            goto failed;
        n = 1;
        goto end;
    }
    if ((rc = qg_history_open(st, 0, &h)))
        goto failed;
    for (;;) {
        int end = (rc = qg_history_next(h, &r)) == QG_NOTFOUND;

        if (rc != 0 && !end)
            goto failed;
        if (end || r.ticket != cur) {
            if (in && (rc = fhir_ticket(st, cur, n++ == 0)))
                goto failed;
            if (in)
                cli_progress("tickets", n, 0);
            if (end)
                break;
            cur = r.ticket;
            if ((rc = cli_ticket_in_source(c, st, cur)) < 0)
                goto failed;
            in = 0;
            mine = rc;
        }
        in |= mine && r.event_ms >= c->since && r.event_ms < c->until;
    }
    qg_history_close(h);
    h = NULL;
end:
    if (fmt == FORMAT_FHIR)
        printf("%s}\n", n > 0 ? "]" : "");
    cli_progress("tickets", n, 1);
    return EXIT_OK;
failed:
    qg_history_close(h);
    return cli_store_fail(c, rc);
}

/* The step hashes of h's ticket t in hex, hashes[seq - 1], as the
 * cursor's snapshot has them; "" where none (a store without a chain). */
static int
load_hashes(qg_history *h, const qg_ticket *t, char (**hex)[65], uint32_t *n)
{
    unsigned char(*raw)[QG_CHAIN_HASH_LEN];
    uint32_t i;
    int rc, j;

    free(*hex);
    *n = 0;
    if ((*hex = calloc(t->records ? t->records : 1, sizeof(**hex))) == NULL ||
        (raw = calloc(t->records ? t->records : 1, sizeof(*raw))) == NULL)
        return QG_ENOMEM;
    rc = qg_history_step_hashes(h, t->records, raw);
    /* by hand: snprintf() of each byte costs as much as the lookup */
    for (i = 0; rc == 0 && i < t->records; i++) {
        for (j = 0; j < QG_CHAIN_HASH_LEN; j++) {
            (*hex)[i][2 * j] = "0123456789abcdef"[raw[i][j] >> 4];
            (*hex)[i][2 * j + 1] = "0123456789abcdef"[raw[i][j] & 15];
        }
        (*hex)[i][2 * QG_CHAIN_HASH_LEN] = '\0';
    }
    free(raw);
    if (rc == QG_NOTFOUND) /* a store from before the chain, read-only */
        return 0;
    *n = t->records;
    return rc;
}

/* Lines are made in a buffer of this size and written a buffer at a
 * time: an export is millions of lines. */
#define EXPORT_BUFFER ((size_t)256 << 10)

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    char(*hashes)[65] = NULL;
    uint32_t nhashes = 0;
    unsigned long n = 0;
    qg_history *h = NULL;
    qg_ticket t = {0};
    qg_record r;
    char *buf;
    size_t used = 0;
    int rc;

    (void)argc;
    (void)argv;
    if (fmt >= FORMAT_FHIR)
        return run_fhir(c, st);
    if ((buf = malloc(EXPORT_BUFFER)) == NULL)
        return cli_fail("out of memory");
    if ((rc = qg_history_open(st, 0, &h)))
        goto failed;
    if (csv)
        printf("ticket,live_queue_id,appointment_id,seq,timestamp,received,"
               "event,from,to,service_id,staff_id,machine,digest,chain_hash\n");
    while ((rc = qg_history_next(h, &r)) == 0) {
        /* The ticket as the cursor's snapshot has it: the same state the
         * records were read in, and no transaction of its own. */
        if (r.ticket != t.id && ((rc = qg_history_ticket(h, &t)) ||
                                 (rc = load_hashes(h, &t, &hashes, &nhashes))))
            goto failed;
        if (r.event_ms < c->since || !cli_in_source(c, t.source))
            continue;
        if (EXPORT_BUFFER - used < RENDER_EXPORT_MAX) {
            /* A write error is kept by stdio and reported at the end. */
            fwrite(buf, 1, used, stdout);
            used = 0;
        }
        used += render_export_line(buf + used, &t, &r, csv,
                                   r.seq <= nhashes ? hashes[r.seq - 1] : "");
        cli_progress("records", ++n, 0);
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    fwrite(buf, 1, used, stdout);
    cli_progress("records", n, 1);
    qg_history_close(h);
    free(hashes);
    free(buf);
    return EXIT_OK;
failed:
    qg_history_close(h);
    free(hashes);
    free(buf);
    return cli_store_fail(c, rc);
}

const cli_command cli_export = {
    .name = "export",
    .summary = "every history record as NDJSON or CSV, or FHIR R4",
    .usage = "usage: qgate export [--format ndjson|csv | --json] "
             "[--source NAME] [--since T]\n"
             "       qgate export --format fhir|fhir-ndjson|fhir-bundles "
             "[--source NAME]\n"
             "                    [--ticket TICKET] [--since T] [--until T] "
             "[--fhir-system URI]\n"
             "Every history record, by ticket then step.  --since "
             "selects by the step's Chup timestamp.\n"
             "The fhir formats write tickets as FHIR R4 Encounters and "
             "Appointments (docs/fhir.md):\n"
             "one Bundle, NDJSON of resources (FHIR Bulk Data), or a Bundle "
             "a line per ticket; a\n"
             "ticket is written whole when one of its steps is in "
             "[--since, --until).  --fhir-system\n"
             "is the base of the identifier systems (default "
             "urn:qgate:STORE-ID:default).\n"
             "TICKET: a live-queue id (30001), lq:ID, appt:ID or "
             "ticket:N\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .ready = ready,
    .run = run};
