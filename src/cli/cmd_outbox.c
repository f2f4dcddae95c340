/*
 * cmd_outbox.c - qgate outbox: accepted steps waiting for the HIS, the
 * dead list, and sending dead ones again.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void
print(cli *c, const qg_outbox_entry *e, int dead)
{
    char created[40], next[40];

    if (c->json) {
        render_outbox_entry(stdout, e, dead);
        putchar('\n');
        return;
    }
    printf("%8" PRIu64 "  %8" PRIu64 "  %4" PRIu32 "  %8" PRIu32
           "  %s  %s  %s\n",
           e->id, e->ticket, e->seq, e->attempts,
           cli_local_time(e->created_us / 1000, created, sizeof(created)),
           dead ? "-"
                : cli_local_time(e->next_attempt_us / 1000, next, sizeof(next)),
           e->last_error);
}

int
cmd_outbox(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"dead", no_argument, NULL, 'd'},
        {"retry", required_argument, NULL, 'r'},
        {"retry-all", no_argument, NULL, 'a'},
        {0}};
    int opt, rc, dead = 0, retry = 0;
    uint64_t id = 0, moved = 0, depth = 0, ndead = 0, n = 0;
    qg_store *st = NULL;
    qg_outbox *ob = NULL;
    qg_outbox_entry e;
    char *end;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        switch (opt) {
        case 'd':
            dead = 1;
            break;
        case 'r':
            id = strtoull(optarg, &end, 10);
            if (*end || id == 0)
                return cli_fail("--retry \"%s\": not an outbox id", optarg);
            retry = 1;
            break;
        case 'a':
            retry = 1;
            id = 0;
            break;
        case 'h':
            printf("usage: qgate outbox [--dead] [--json]\n"
                   "       qgate outbox --retry ID | --retry-all\n"
                   "Lists the steps waiting to be forwarded to the HIS (or, "
                   "with --dead,\nthose that gave up); --retry moves dead "
                   "ones back, to be sent again\nin their original order by "
                   "the running gate.\n");
            return EXIT_OK;
        default:
            return EXIT_FAILED;
        }
    }
    if (optind != argc)
        return cli_fail("outbox: unexpected argument \"%s\"", argv[optind]);
    if ((rc = cli_finish_options(c)) || (rc = cli_open_store(c, !retry, &st)))
        return rc;
    if (retry) {
        rc = qg_outbox_requeue(st, id, &moved);
        qg_store_close(st);
        if (rc == QG_NOTFOUND)
            return cli_fail("outbox: %" PRIu64 " is not in the dead list", id);
        if (rc)
            return cli_store_fail(c, rc);
        printf("%" PRIu64 " moved back to the outbox\n", moved);
        return EXIT_OK;
    }
    if ((rc = qg_outbox_stats(st, &depth, NULL, &ndead)) ||
        (rc = qg_outbox_open(st, dead, &ob)))
        goto failed;
    if (!c->json)
        printf("%8s  %8s  %4s  %8s  %-26s  %-26s  %s\n", "id", "ticket", "seq",
               "attempts", "queued", dead ? "" : "next attempt", "last error");
    while ((rc = qg_outbox_next(ob, &e)) == 0) {
        print(c, &e, dead);
        n++;
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    qg_outbox_close(ob);
    qg_store_close(st);
    if (!c->json)
        fprintf(stderr, "%" PRIu64 " waiting, %" PRIu64 " dead\n", depth,
                ndead);
    /* Dead entries need someone's attention. */
    return dead && n ? EXIT_FOUND : EXIT_OK;
failed:
    qg_outbox_close(ob);
    qg_store_close(st);
    return cli_store_fail(c, rc);
}
