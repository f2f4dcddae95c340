/*
 * cmd_rejected.c - qgate rejected: the rejection log, and replaying it.
 *
 * --replay re-decides each logged delivery with the engine as configured
 * now (typically after a mapping fix), with qg_rejections_replay(), as the
 * gate's POST /rejections/{id}/replay does.  It first asks with a dry run, and
 * applies for real only what now passes, so a delivery that is still
 * refused is not logged a second time.  An entry that now passes (it is
 * accepted, a duplicate of an accepted step, or ignored) is marked
 * resolved with the step it became; the listing, the exit status and
 * later replays then leave it out (--all lists it again).  An entry that kept
 * only a prefix of its body (an unauthenticated or malformed delivery) cannot
 * be replayed and is skipped, with a message.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void
print_human(const qg_rejection *r)
{
    char when[40], ids[48] = "-";

    if (r->live_queue_id)
        snprintf(ids, sizeof(ids), "lq:%" PRId64, r->live_queue_id);
    else if (r->appointment_id)
        snprintf(ids, sizeof(ids), "appt:%" PRId64, r->appointment_id);
    printf("%6" PRIu64 "  %s  %-15s %-19s %-12s %s", r->id,
           cli_local_time(r->received_us / 1000, when, sizeof(when)),
           qg_verdict_name(r->verdict), qg_reason_name(r->reason), ids,
           r->detail);
    if (r->truncated)
        printf(" [first %zu of %zu bytes kept]", r->body_len, r->received_len);
    else if (r->body == NULL && r->received_len)
        printf(" [body purged]");
    if (r->resolved && r->resolved_seq)
        printf(" [resolved: ticket %" PRIu64 " step %" PRIu32 "]",
               r->resolved_ticket, r->resolved_seq);
    else if (r->resolved)
        printf(" [resolved: now ignored]");
    putchar('\n');
}

/* Re-decides one logged delivery (qg_rejections_replay()), which is
 * marked resolved when it now passes.  r is a copy of the entry, read
 * with no cursor left open (its body is not used).  Returns 1 when it now
 * passes, -1 when it was skipped (only a prefix of it was kept, or its
 * body was purged). */
static int
replay(cli *c, qg_engine *eng, qg_store *st, const qg_rejection *r, int *rc)
{
    qg_result res;
    qg_replay how = QG_REPLAY_REFUSED;
    char input[32];

    snprintf(input, sizeof(input), "rejection:%" PRIu64, r->id);
    /* Decided again among the tickets of the source it came from. */
    if ((*rc = qg_engine_set_source(eng, r->source)) == 0)
        *rc = qg_rejections_replay(eng, st, r->id, &res, &how);
    if (*rc) {
        *rc = *rc == QG_ECORRUPT ? cli_store_fail(c, *rc)
                                 : cli_fail("%s: %s", input, qg_strerror(*rc));
        return 0;
    }
    switch (how) {
    case QG_REPLAY_TRUNCATED:
        fprintf(stderr,
                "qgate: %s: skipped: only the first %zu of its %zu bytes "
                "were kept (%s), so it cannot be replayed\n",
                input, r->body_len, r->received_len,
                qg_verdict_name(r->verdict));
        return -1;
    case QG_REPLAY_PURGED:
        fprintf(stderr,
                "qgate: %s: skipped: its body was purged (qgate purge), so "
                "it cannot be replayed\n",
                input);
        return -1;
    case QG_REPLAY_RESOLVED:
        fprintf(stderr, "qgate: %s: skipped: resolved meanwhile\n", input);
        return -1;
    case QG_REPLAY_REFUSED:
    case QG_REPLAY_PASSED:
        break;
    }
    if (c->json) {
        render_verdict(stdout, &res, input);
        putchar('\n');
    } else {
        printf("%-16s %-15s %-19s %s\n", input, qg_verdict_name(res.verdict),
               qg_reason_name(res.reason), res.detail);
    }
    return how == QG_REPLAY_PASSED;
}

static int
remember(uint64_t **ids, unsigned long *n, uint64_t id)
{
    uint64_t *grown;

    if ((*n & (*n - 1)) == 0) { /* at 0, 1, 2, 4, ...: double */
        grown = realloc(*ids, (*n ? *n * 2 : 1) * sizeof(**ids));
        if (grown == NULL)
            return cli_fail("out of memory");
        *ids = grown;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

static struct {
    int replaying, all, want_code;
    qg_engine *eng;
} o = {0, 0, -1, NULL};

static const struct option options[] = {CLI_COMMON_OPTIONS,
                                        CLI_SOURCE_OPTION,
                                        CLI_SINCE_OPTION,
                                        {"code", required_argument, NULL, 'C'},
                                        {"replay", no_argument, NULL, 'R'},
                                        {"all", no_argument, NULL, 'A'},
                                        {0}};

static int
option(cli *c, int opt, const char *arg)
{
    qg_reason code;

    switch (opt) {
    case 'C':
        if (qg_reason_from_name(arg, &code) != 0)
            return cli_fail("--code \"%s\": not a reason code (e.g. "
                            "illegal_transition, stale, bad_json)",
                            arg);
        o.want_code = (int)code;
        return 0;
    case 'R':
        o.replaying = c->write = 1;
        return 0;
    case 'A':
        o.all = 1;
        return 0;
    }
    return EXIT_FAILED;
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argc;
    (void)argv;
    /* A resolved entry replayed is a duplicate: nothing to learn. */
    if (o.all && o.replaying)
        return cli_fail("rejected: --replay takes the open entries only; "
                        "--all is for listing");
    return 0;
}

static int
prepare(cli *c)
{
    return o.replaying ? cli_new_engine(c, &o.eng) : 0;
}

static void
done(cli *c)
{
    (void)c;
    qg_engine_free(o.eng);
    o.eng = NULL;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    int rc, replaying = o.replaying, all = o.all, want_code = o.want_code;
    unsigned long seen = 0, passing = 0, skipped = 0, nids = 0, i;
    uint64_t *ids = NULL, dropped = 0;
    qg_engine *eng = o.eng;
    qg_rejections *log = NULL;
    qg_rejection r;

    (void)argc;
    (void)argv;
    if ((rc = qg_rejections_open(st, 1, &log))) {
        rc = cli_store_fail(c, rc);
        goto done;
    }
    while ((rc = qg_rejections_next(log, &r)) == 0) {
        if (r.received_us / 1000 < c->since || !cli_in_source(c, r.source) ||
            (want_code >= 0 && (int)r.reason != want_code) ||
            (r.resolved && !all))
            continue;
        seen += !r.resolved;
        if (replaying && (rc = remember(&ids, &nids, r.id)))
            goto done;
        else if (!replaying && c->json) {
            render_rejection(stdout, &r);
            putchar('\n');
        } else if (!replaying)
            print_human(&r);
    }
    if (rc != QG_NOTFOUND) {
        rc = cli_store_fail(c, rc);
        goto done;
    }
    rc = seen > 0 ? EXIT_FOUND : EXIT_OK;
    if (qg_rejections_dropped(st, &dropped) == 0 && dropped > 0)
        fprintf(stderr,
                "%" PRIu64 " older unauthenticated or malformed entries were "
                "dropped to bound the log\n",
                dropped);
    if (!replaying)
        goto done;
    /* Replaying writes; a read snapshot held meanwhile would keep the
     * store from reusing pages or growing, so each one is read alone. */
    qg_rejections_close(log);
    log = NULL;
    for (i = 0; i < nids; i++) {
        qg_rejections *one = NULL;

        /* The entry's fields are copied and its cursor closed before the
         * replay writes; its body is read again there. */
        if ((rc = qg_rejections_open(st, ids[i], &one)) == 0 &&
            (rc = qg_rejections_next(one, &r)) == 0) {
            r.body = r.detail = NULL;
            qg_rejections_close(one);
            one = NULL;
            switch (replay(c, eng, st, &r, &rc)) {
            case 1:
                passing++;
                break;
            case -1:
                skipped++;
                break;
            }
        } else if (rc == QG_ECORRUPT)
            rc = cli_store_fail(c, rc);
        else
            rc = cli_fail("rejection %" PRIu64 ": %s", ids[i], qg_strerror(rc));
        qg_rejections_close(one);
        if (rc)
            goto done;
        cli_progress("replayed", i + 1, 0);
    }
    cli_progress("replayed", nids, 1);
    fprintf(stderr, "%lu replayed: %lu now pass, %lu still refused", nids,
            passing, nids - passing - skipped);
    if (skipped)
        fprintf(stderr, ", %lu skipped (only a prefix kept, or purged)",
                skipped);
    fputc('\n', stderr);
    rc = passing == nids ? EXIT_OK : EXIT_FOUND;
done:
    free(ids);
    qg_rejections_close(log);
    return rc;
}

const cli_command cli_rejected = {
    .name = "rejected",
    .summary = "the rejection log; --replay re-applies it",
    .usage = "usage: qgate rejected [--all] [--source NAME] [--since T] "
             "[--code C] [--json]\n"
             "       qgate rejected --replay [--secret-file F | "
             "--no-verify] [--since T] [--code C]\n"
             "--since selects by the time the delivery was "
             "received.\n"
             "Open entries only: --replay marks those that now pass "
             "resolved; --all lists\nthem too.  Exit 1 while any "
             "listed entry is open.\n" CLI_TIME_HELP,
    .options = options,
    .store = CLI_READ,
    .option = option,
    .ready = ready,
    .prepare = prepare,
    .run = run,
    .done = done};
