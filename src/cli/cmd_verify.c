/*
 * cmd_verify.c - qgate verify: every stored ticket against the current
 * machine and the store's indexes.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static const struct option options[] = {
    CLI_COMMON_OPTIONS, CLI_SOURCE_OPTION, {0}};

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    unsigned long tickets = 0, bad = 0;
    qg_tickets *it = NULL;
    qg_ticket t;
    qg_finding f;
    char ids[48];
    int rc;

    (void)argc;
    (void)argv;
    if ((rc = qg_tickets_open(st, &it)))
        goto failed;
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        if (!cli_in_source(c, t.source))
            continue;
        tickets++;
        cli_progress("tickets", tickets, 0);
        if ((rc = qg_store_verify_ticket(st, t.id, &f)))
            goto failed;
        if (!f.found)
            continue;
        bad++;
        cli_ticket_ids(&t, ids, sizeof(ids));
        if (c->json) {
            printf("{\"ticket\":%" PRIu64 ",\"ids\":\"%s\",\"seq\":%" PRIu32
                   ",\"problem\":",
                   t.id, ids, f.seq);
            render_string(stdout, f.what, strlen(f.what));
            printf("}\n");
        } else {
            printf("ticket %" PRIu64 " (%s) step %" PRIu32 ": %s\n", t.id, ids,
                   f.seq, f.what);
        }
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    cli_progress("tickets", tickets, 1);
    qg_tickets_close(it);
    if (c->json)
        printf("{\"tickets\":%lu,\"failed\":%lu,\"machine\":\"%s\"}\n", tickets,
               bad, qg_machine_version());
    else
        printf("%lu tickets verified against machine %s: %lu failed\n", tickets,
               qg_machine_version(), bad);
    return bad ? EXIT_FOUND : EXIT_OK;
failed:
    qg_tickets_close(it);
    return cli_store_fail(c, rc);
}

const cli_command cli_verify = {
    .name = "verify",
    .summary = "replay every history through the machine",
    .usage = "usage: qgate verify [--json] [--db DIR] [--source NAME]\n"
             "Checks every page of the store, then replays every "
             "stored history through the\ncurrent machine and checks "
             "the store's indexes.\n"
             "Exit 1 when any ticket fails, 2 when the store is "
             "damaged.\n",
    .options = options,
    .store = CLI_READ,
    .check_store = 1,
    .run = run};
