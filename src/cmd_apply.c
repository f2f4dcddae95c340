/*
 * cmd_apply.c - qgate apply and qgate check: deliveries through the engine.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qgate_int.h"

#define MAX_BODY ((size_t)16 << 20)

/* Reads a whole file.  Returns 0, or EXIT_FAILED after saying why. */
static int
read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n = 0, got;
    char *p = NULL, *grown;

    if (f == NULL)
        return cli_fail("%s: %s", path, strerror(errno));
    do {
        if (n == cap || p == NULL) {
            cap = p ? cap * 2 : cap;
            if (cap > MAX_BODY + 1 || (grown = realloc(p, cap)) == NULL) {
                free(p);
                fclose(f);
                return cli_fail("%s: larger than %zu bytes", path, MAX_BODY);
            }
            p = grown;
        }
        got = fread(p + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    if (ferror(f)) {
        free(p);
        fclose(f);
        return cli_fail("%s: read error", path);
    }
    fclose(f);
    *buf = p;
    *len = n;
    return 0;
}

typedef struct tally {
    unsigned long count[QG_HELD + 1];
    unsigned long total, late, released;
} tally;

static void
print_human(const qg_result *res, const char *input)
{
    char who[40] = "-", step[64];

    if (res->live_queue_id)
        snprintf(who, sizeof(who), "lq:%" PRId64, res->live_queue_id);
    else if (res->appointment_id)
        snprintf(who, sizeof(who), "appt:%" PRId64, res->appointment_id);
    if (res->event && res->verdict == QG_ACCEPTED && res->late)
        snprintf(step, sizeof(step), "%s, late: step %" PRIu32 " of %" PRIu32,
                 qg_event_name(res->event), res->pos, res->seq);
    else if (res->event && res->verdict == QG_ACCEPTED)
        snprintf(step, sizeof(step), "%s %s -> %s", qg_event_name(res->event),
                 qg_state_name(res->from), qg_state_name(res->to));
    else if (res->event)
        snprintf(step, sizeof(step), "%s in %s", qg_event_name(res->event),
                 qg_state_name(res->from));
    else
        snprintf(step, sizeof(step), "-");
    printf("%-15s %-12s %-36s %s", qg_verdict_name(res->verdict), who, step,
           input);
    if (res->verdict != QG_ACCEPTED)
        printf("\n                %s: %s", qg_reason_name(res->reason),
               res->detail);
    else if (res->late)
        printf("\n                %s", res->detail);
    if (res->released)
        printf("\n                released %" PRIu32
               " held deliver%s; the ticket is %s",
               res->released, res->released == 1 ? "y" : "ies",
               qg_state_name(res->to));
    putchar('\n');
}

static int
one(cli *c, qg_engine *eng, qg_store *st, unsigned flags, const char *body,
    size_t len, const char *input, tally *t)
{
    qg_result res;
    int rc;

    if ((rc = qg_engine_apply(eng, st, body, len, flags, &res)) == QG_ECORRUPT)
        return cli_store_fail(c, rc);
    if (rc)
        return cli_fail("%s: %s (nothing was written)", input, qg_strerror(rc));
    if (c->json) {
        render_verdict(stdout, &res, input);
        putchar('\n');
    } else {
        print_human(&res, input);
    }
    t->count[res.verdict]++;
    t->total++;
    t->late += res.late != 0;
    t->released += res.released;
    cli_progress("deliveries", t->total, 0);
    return 0;
}

/* Held deliveries whose window passed, from an earlier run, go to the
 * rejection log before this run's deliveries are judged. */
static int
expire_held(cli *c, qg_store *st)
{
    uint64_t n;
    int rc;

    if ((rc = qg_held_expire(st, qg__now_us() - c->reorder_window * 1000000,
                             NULL, &n)))
        return cli_fail("%s: cannot expire held deliveries: %s", c->db,
                        qg_strerror(rc));
    if (n && !c->json)
        fprintf(stderr,
                "%" PRIu64 " held deliver%s waited past the %" PRId64
                " s reorder window: now refused (qgate rejected)\n",
                n, n == 1 ? "y" : "ies", c->reorder_window);
    return 0;
}

/* What is still held after the run, from this run or earlier ones. */
static int
report_held(cli *c, qg_store *st)
{
    uint64_t n;
    int64_t oldest;
    int rc;

    if ((rc = qg_held_stats(st, &n, &oldest)))
        return cli_fail("%s: cannot count held deliveries: %s", c->db,
                        qg_strerror(rc));
    if (n && !c->json)
        fprintf(stderr,
                "still held: %" PRIu64 " deliver%s waiting for an earlier "
                "step (qgate held lists them)\n",
                n, n == 1 ? "y" : "ies");
    return 0;
}

static int
run(cli *c, int argc, char **argv, unsigned flags)
{
    static const struct option opts[] = {
        CLI_REORDER_OPTION, CLI_COMMON_OPTIONS, CLI_MAX_SKEW_OPTION, {0}};
    qg_store *st = NULL;
    qg_engine *eng = NULL;
    tally t;
    int opt, i, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        if (opt == 'h') {
            printf("usage: qgate %s [--secret-file F | --no-verify] "
                   "[--reorder-window S] [--max-skew S] [--json] [--db DIR] "
                   "[--config F] [FILE... | -]\n"
                   "Each FILE holds one webhook body; - reads one body per "
                   "line from stdin.\n"
                   "--reorder-window S: a step may wait S seconds for an "
                   "earlier one\n(default %d; 0 judges every delivery on "
                   "arrival).\n"
                   "--max-skew S: refuse steps dated more than S seconds "
                   "ahead of this\nmachine's clock (%d; 0: no check).\n",
                   argv[0], CLI_DEFAULT_REORDER_WINDOW, QG_MAX_SKEW_DEFAULT);
            return EXIT_OK;
        }
        return EXIT_FAILED;
    }
    if (optind >= argc)
        return cli_fail("%s: no input (give FILE... or -)", argv[0]);
    if ((rc = cli_finish_options(c)) || (rc = cli_new_engine(c, &eng)) ||
        (rc = cli_open_store(c, flags & QG_DRY_RUN, &st)))
        goto done;
    memset(&t, 0, sizeof(t));
    if (!(flags & QG_DRY_RUN) && (rc = expire_held(c, st)))
        goto done;
    for (i = optind; i < argc && rc == 0; i++) {
        char *body = NULL, *line = NULL;
        size_t len = 0, cap = 0;
        ssize_t n;
        unsigned long lineno = 0;

        if (strcmp(argv[i], "-") != 0) {
            if ((rc = read_file(argv[i], &body, &len)) == 0)
                rc = one(c, eng, st, flags, body, len, argv[i], &t);
            free(body);
            continue;
        }
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
            char where[32];

            snprintf(where, sizeof(where), "stdin:%lu", ++lineno);
            if (n == 1 && line[0] == '\n')
                continue;
            rc = one(c, eng, st, flags, line, (size_t)n, where, &t);
        }
        free(line);
    }
    if (t.total >= 1000)
        cli_progress("deliveries", t.total, 1);
    if (rc == 0 && !c->json)
        fprintf(stderr,
                "%lu deliveries: %lu accepted, %lu duplicate, %lu rejected, "
                "%lu unauthenticated, %lu malformed, %lu ignored, %lu held\n",
                t.total, t.count[QG_ACCEPTED], t.count[QG_DUPLICATE],
                t.count[QG_REJECTED], t.count[QG_UNAUTHENTICATED],
                t.count[QG_MALFORMED], t.count[QG_IGNORED], t.count[QG_HELD]);
    if (rc == 0 && !c->json && (t.late || t.released))
        fprintf(stderr, "%lu placed late, %lu released from hold\n", t.late,
                t.released);
    if (rc == 0 && !(flags & QG_DRY_RUN))
        rc = report_held(c, st);
    if (rc == 0 && (t.count[QG_REJECTED] || t.count[QG_UNAUTHENTICATED] ||
                    t.count[QG_MALFORMED]))
        rc = EXIT_FOUND;
done:
    qg_store_close(st);
    qg_engine_free(eng);
    return rc;
}

int
cmd_apply(cli *c, int argc, char **argv)
{
    return run(c, argc, argv, 0);
}

int
cmd_check(cli *c, int argc, char **argv)
{
    return run(c, argc, argv, QG_DRY_RUN);
}
