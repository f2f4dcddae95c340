/*
 * cmd_outbox.c - qgate outbox: accepted steps waiting for the HIS, the
 * dead list, sending dead ones again, and sending delivered steps again
 * (--resend) to an HIS restored from a backup.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The last error, and when: "HTTP 500 (at ...)", or "" if none. */
static void
print_last_error(const qg_outbox_entry *e)
{
    char at[40];

    if (e->last_error[0] == '\0')
        return;
    printf("%s", e->last_error);
    if (e->last_attempt_us)
        printf(" (at %s)",
               cli_local_time(e->last_attempt_us / 1000, at, sizeof(at)));
}

static void
print(cli *c, const qg_outbox_entry *e, int dead)
{
    char created[40], next[40];

    if (c->json) {
        render_outbox_entry(stdout, e, dead);
        putchar('\n');
        return;
    }
    printf("%8" PRIu64 "  %8" PRIu64 "  %4" PRIu32 "  %8" PRIu32 "  %s  %s  ",
           e->id, e->ticket, e->seq, e->attempts,
           cli_local_time(e->created_us / 1000, created, sizeof(created)),
           dead
               ? (e->gave_up_us
                      ? cli_local_time(e->gave_up_us / 1000, next, sizeof(next))
                      : "-")
               : cli_local_time(e->next_attempt_us / 1000, next, sizeof(next)));
    /* A dead entry says why it was given up, then what the HIS did. */
    if (dead && e->gave_up[0]) {
        printf("%s", e->gave_up);
        if (e->last_error[0])
            printf("; last error: ");
    }
    print_last_error(e);
    putchar('\n');
}

static struct {
    int dead, retry, resend;
    uint64_t id;
    const char *ticket;
} o;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    CLI_SOURCE_OPTION,
    CLI_SINCE_OPTION,
    CLI_UNTIL_OPTION,
    {"dead", no_argument, NULL, 'd'},
    {"retry", required_argument, NULL, 'r'},
    {"retry-all", no_argument, NULL, 'a'},
    {"resend", no_argument, NULL, 's'},
    {"ticket", required_argument, NULL, 't'},
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    char *end;

    switch (opt) {
    case 'd':
        o.dead = 1;
        return 0;
    case 'r':
        o.id = strtoull(arg, &end, 10);
        if (*end || o.id == 0)
            return cli_fail("--retry \"%s\": not an outbox id", arg);
        o.retry = c->write = 1;
        return 0;
    case 'a':
        o.retry = c->write = 1;
        o.id = 0;
        return 0;
    case 's':
        o.resend = c->write = 1;
        return 0;
    case 't':
        o.ticket = arg;
        return 0;
    }
    return EXIT_FAILED;
}

/* Milliseconds as microseconds, the open ends kept open. */
static int64_t
to_us(int64_t ms)
{
    if (ms == INT64_MIN || ms == INT64_MAX)
        return ms;
    return ms * 1000;
}

/* --resend: the steps of --ticket, or received since --since (and before
 * --until), queued again from the histories. */
static int
resend(cli *c, qg_store *st)
{
    uint64_t queued = 0, waiting = 0;
    qg_ticket t;
    int rc;

    if (o.ticket == NULL && c->since_arg == NULL)
        return cli_fail("outbox --resend: give --ticket ID, or --since T "
                        "(and --until T), to say which steps to send again");
    memset(&t, 0, sizeof(t));
    if (o.ticket && (rc = cli_find_ticket(st, c->source, o.ticket, &t)))
        return rc;
    rc = qg_outbox_resend(st, t.id, to_us(c->since), to_us(c->until), &queued,
                          &waiting);
    if (rc == QG_EINVAL)
        return cli_fail("outbox --resend: the store %s feeds no HIS (no gate "
                        "has served it with --upstream)",
                        c->db);
    if (rc)
        return cli_store_fail(c, rc);
    if (c->json)
        printf("{\"queued\":%" PRIu64 ",\"waiting\":%" PRIu64 "}\n", queued,
               waiting);
    else
        printf("%" PRIu64 " steps queued to be sent again; %" PRIu64
               " still waiting in the outbox or the dead list, not queued "
               "twice\n",
               queued, waiting);
    return EXIT_OK;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    int rc, dead = o.dead;
    uint64_t id = o.id, moved = 0, depth = 0, ndead = 0, n = 0;
    qg_outbox *ob = NULL;
    qg_outbox_entry e;

    (void)argc;
    (void)argv;
    if (o.resend)
        return resend(c, st);
    if (o.ticket || c->since_arg || c->until_arg)
        return cli_fail("outbox: --ticket, --since and --until go with "
                        "--resend");
    if (o.retry) {
        rc = qg_outbox_requeue(st, id, &moved);
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
               "attempts", "queued", dead ? "gave up" : "next attempt",
               dead ? "why" : "last error");
    while ((rc = qg_outbox_next(ob, &e)) == 0) {
        if ((rc = cli_ticket_in_source(c, st, e.ticket)) <= 0) {
            if (rc < 0)
                goto failed;
            continue;
        }
        print(c, &e, dead);
        n++;
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    qg_outbox_close(ob);
    if (!c->json)
        fprintf(stderr, "%" PRIu64 " waiting, %" PRIu64 " dead\n", depth,
                ndead);
    /* Dead entries need someone's attention. */
    return dead && n ? EXIT_FOUND : EXIT_OK;
failed:
    qg_outbox_close(ob);
    return cli_store_fail(c, rc);
}

const cli_command cli_outbox = {
    .name = "outbox",
    .summary = "steps waiting for the HIS; retry dead ones",
    .usage = "usage: qgate outbox [--dead] [--source NAME] [--json]\n"
             "       qgate outbox --retry ID | --retry-all\n"
             "       qgate outbox --resend --ticket ID | --since T [--until "
             "T] [--json]\n"
             "Lists the steps waiting to be forwarded to the HIS (or, "
             "with --dead,\nthose that gave up); --retry moves dead "
             "ones back, to be sent again\nin their original order by "
             "the running gate.  --resend queues steps\nalready "
             "delivered again, from the histories, under the same "
             "delivery\nids: one ticket's, or those qgate received in "
             "[--since, --until);\nfor an HIS restored from a "
             "backup.\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .run = run};
