/*
 * cmd_purge.c - qgate purge --before DATE: drops the raw bodies (names,
 * phone numbers) of steps and refusals received before DATE, keeping each
 * step's skeleton (qg_store_purge()).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define OPT_BEFORE 1100

static struct {
    const char *arg;
    int64_t before_ms;
} o;

static const struct option options[] = {
    CLI_COMMON_OPTIONS, {"before", required_argument, NULL, OPT_BEFORE}, {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)c;
    if (opt != OPT_BEFORE)
        return EXIT_FAILED;
    o.arg = arg;
    return cli_parse_when("--before", arg, &o.before_ms);
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argc;
    (void)argv;
    if (o.arg == NULL)
        return cli_fail("purge: give --before DATE: the bodies of what was "
                        "received before it are purged");
    /* A date ahead would purge what the gate records meanwhile too:
     * surely a typing error. */
    if (o.before_ms > qg_time_now_us() / 1000)
        return cli_fail("purge: --before \"%s\": in the future", o.arg);
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    qg_purge_stats ps;
    char when[40];
    int rc;

    (void)argc;
    (void)argv;
    rc = qg_store_purge(st, o.before_ms * 1000, &ps);
    qg_time_format(o.before_ms, 0, when, sizeof(when));
    if (c->json)
        printf("{\"before\":\"%s\",\"records\":%" PRIu64
               ",\"rejections\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"skipped_outbox\":%" PRIu64 ",\"complete\":%s}\n",
               when, ps.records, ps.rejections, ps.bytes, ps.skipped,
               rc ? "false" : "true");
    else
        printf("purged the bodies of %" PRIu64 " records and %" PRIu64
               " rejections received before %s: %" PRIu64 " bytes; %" PRIu64
               " records kept whole, still to be forwarded\n",
               ps.records, ps.rejections, when, ps.bytes, ps.skipped);
    if (rc)
        return cli_store_fail(c, rc);
    return EXIT_OK;
}

const cli_command cli_purge = {
    .name = "purge",
    .summary = "drop the raw bodies of old steps, keep what they decided",
    .usage =
        "usage: qgate purge --before DATE [--json] [--db DIR]\n"
        "Purges the raw bodies (patients' names and phone numbers) of the "
        "steps and\nrefusals received before DATE, and keeps each step's "
        "skeleton: ticket ids,\nevent, from and to, times, verdict and the "
        "body's digest; a redelivery is still\nfound.  Steps still in the "
        "outbox or on the dead list keep their bodies.\n"
        "DATE: 2024-03-05, 2024-03-05T09:00 (local time) or "
        "2024-03-05T09:00+08:00;\nnot in the future.  The gate may run "
        "meanwhile: the work goes in small\ntransactions.\n",
    .options = options,
    .store = CLI_WRITE,
    .option = option,
    .ready = ready,
    .run = run};
