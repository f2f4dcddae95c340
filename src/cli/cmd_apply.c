/*
 * cmd_apply.c - qgate apply and qgate check: deliveries through the engine.
 *
 * apply decides and records one input at a time, streaming.  check must
 * give the verdicts apply would, each input seeing the ones before it,
 * and write nothing: it reads every input first and decides them all in
 * one write transaction that is aborted (qg_engine_check_batch()).  A
 * dry run of each input alone would judge every input against the store
 * as it was, and refuse a visit's later steps.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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

/* Prints one verdict and counts it. */
static void
report(cli *c, const qg_result *res, const char *input, tally *t)
{
    if (c->json) {
        render_verdict(stdout, res, input);
        putchar('\n');
    } else {
        print_human(res, input);
    }
    t->count[res->verdict]++;
    t->total++;
    t->late += res->late != 0;
    t->released += res->released;
    cli_progress("deliveries", t->total, 0);
}

static int
one(cli *c, qg_engine *eng, qg_store *st, const char *body, size_t len,
    const char *input, tally *t)
{
    qg_result res;
    int rc;

    if ((rc = qg_engine_apply(eng, st, body, len, 0, &res)) == QG_ECORRUPT)
        return cli_store_fail(c, rc);
    if (rc)
        return cli_fail("%s: %s (nothing was written)", input, qg_strerror(rc));
    report(c, &res, input, t);
    return 0;
}

/* Held deliveries whose window passed, from an earlier run, go to the
 * rejection log before this run's deliveries are judged. */
static int
expire_held(cli *c, qg_store *st)
{
    uint64_t n;
    int rc;

    if ((rc = qg_held_expire(st, qg_time_now_us() - c->reorder_window * 1000000,
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

/* The inputs of a check, all read before any is decided: they are
 * decided together, in one transaction. */
typedef struct inputs {
    qg_body *bodies;
    char **bufs;  /* what to free: a file's bytes, or a line */
    char **names; /* the file's name, or "stdin:N" */
    size_t n, cap;
} inputs;

static void
inputs_free(inputs *in)
{
    size_t i;

    for (i = 0; i < in->n; i++) {
        free(in->bufs[i]);
        free(in->names[i]);
    }
    free(in->bodies);
    free(in->bufs);
    free(in->names);
    memset(in, 0, sizeof(*in));
}

/* Takes buf (owned from now on) as the next input.  0 or EXIT_FAILED. */
static int
inputs_add(inputs *in, char *buf, size_t len, const char *name)
{
    size_t cap = in->cap ? in->cap * 2 : 64;
    qg_body *bodies;
    char **bufs, **names;

    if (in->n == in->cap) {
        if ((bodies = realloc(in->bodies, cap * sizeof(*bodies))) != NULL)
            in->bodies = bodies;
        if ((bufs = realloc(in->bufs, cap * sizeof(*bufs))) != NULL)
            in->bufs = bufs;
        if ((names = realloc(in->names, cap * sizeof(*names))) != NULL)
            in->names = names;
        if (bodies == NULL || bufs == NULL || names == NULL) {
            free(buf);
            return cli_fail("out of memory");
        }
        in->cap = cap;
    }
    if ((in->names[in->n] = strdup(name)) == NULL) {
        free(buf);
        return cli_fail("out of memory");
    }
    in->bufs[in->n] = buf;
    in->bodies[in->n].body = buf;
    in->bodies[in->n].len = len;
    in->n++;
    return 0;
}

static int
read_inputs(int argc, char **argv, inputs *in)
{
    char *body, *line = NULL, where[32];
    unsigned long lineno = 0;
    size_t len, cap = 0;
    ssize_t n;
    int i, rc = 0;

    for (i = 0; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "-") != 0) {
            if ((rc = read_file(argv[i], &body, &len)) == 0)
                rc = inputs_add(in, body, len, argv[i]);
            continue;
        }
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
            snprintf(where, sizeof(where), "stdin:%lu", ++lineno);
            if (n == 1 && line[0] == '\n')
                continue;
            rc = inputs_add(in, line, (size_t)n, where);
            line = NULL;
            cap = 0;
        }
    }
    free(line);
    return rc;
}

/* Removes a temporary store and its folder. */
static void
remove_temp(const char *dir)
{
    char path[4200];

    if (dir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* A store in a new temporary folder: empty, or a copy of from. */
static int
open_temp(qg_store *from, qg_store **st, char *dir, size_t dirlen)
{
    const char *base = getenv("TMPDIR");
    qg_store_options o;
    int rc;

    snprintf(dir, dirlen, "%s/qgate-check.XXXXXX",
             base && base[0] ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = cli_fail("%s: cannot make a temporary folder: %s", dir,
                      strerror(errno));
        dir[0] = '\0';
        return rc;
    }
    if (from && (rc = qg_store_copy(from, dir)))
        return cli_fail("%s: cannot copy the store: %s", dir, qg_strerror(rc));
    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.durability = QG_NOSYNC; /* nothing is ever committed */
    if ((rc = qg_store_open(&o, st)))
        return cli_fail("%s: cannot open a temporary store: %s", dir,
                        qg_strerror(rc));
    return 0;
}

/*
 * The store a check decides against.  The check needs a write
 * transaction (which it aborts), so: the store itself when we may write
 * its data file; a temporary copy when we may only read it; an empty
 * temporary store when there is none, for a check must work before the
 * first apply.  dir names the temporary folder, "" when none.
 */
static int
open_check_store(cli *c, qg_store **st, char *dir, size_t dirlen)
{
    char data[4200];
    qg_store *ro = NULL;
    int rc;

    dir[0] = '\0';
    snprintf(data, sizeof(data), "%s/data.mdb", c->db);
    if (access(data, F_OK) != 0 && errno == ENOENT) {
        fprintf(stderr,
                "qgate: %s: no store there: checking as against an empty "
                "one\n",
                c->db);
        return open_temp(NULL, st, dir, dirlen);
    }
    if (access(data, W_OK) == 0 || (errno != EACCES && errno != EROFS))
        return cli_open_store(c, 0, st);
    if ((rc = cli_open_store(c, 1, &ro)))
        return rc;
    rc = open_temp(ro, st, dir, dirlen);
    qg_store_close(ro);
    return rc;
}

/* qgate check: every input decided in one transaction that is aborted,
 * after the expiry apply would do first, so that the verdicts are those
 * apply would give, state carried from one input to the next. */
static int
check_all(cli *c, qg_engine *eng, int argc, char **argv, tally *t)
{
    char dir[4200];
    inputs in = {0};
    qg_result *res = NULL;
    qg_store *st = NULL;
    uint64_t expired = 0;
    size_t i;
    int *rcs = NULL, rc;

    dir[0] = '\0';
    if ((rc = read_inputs(argc, argv, &in)) ||
        (rc = open_check_store(c, &st, dir, sizeof(dir))))
        goto done;
    res = calloc(in.n ? in.n : 1, sizeof(*res));
    rcs = calloc(in.n ? in.n : 1, sizeof(*rcs));
    if (res == NULL || rcs == NULL) {
        rc = cli_fail("out of memory");
        goto done;
    }
    rc = qg_engine_check_batch(eng, st,
                               qg_time_now_us() - c->reorder_window * 1000000,
                               in.bodies, in.n, res, rcs, &expired);
    if (rc == QG_ECORRUPT) {
        rc = cli_store_fail(c, rc);
        goto done;
    }
    if (rc) {
        rc = cli_fail("%s: cannot check: %s", c->db, qg_strerror(rc));
        goto done;
    }
    if (expired && !c->json)
        fprintf(stderr,
                "%" PRIu64 " held deliver%s waited past the %" PRId64
                " s reorder window: apply would refuse %s first\n",
                expired, expired == 1 ? "y" : "ies", c->reorder_window,
                expired == 1 ? "it" : "them");
    for (i = 0; i < in.n && rc == 0; i++) {
        if (rcs[i] == QG_ECORRUPT)
            rc = cli_store_fail(c, rcs[i]);
        else if (rcs[i])
            rc = cli_fail("%s: %s", in.names[i], qg_strerror(rcs[i]));
        else
            report(c, &res[i], in.names[i], t);
    }
done:
    qg_store_close(st);
    remove_temp(dir);
    free(res);
    free(rcs);
    inputs_free(&in);
    return rc;
}

static const struct option options[] = {CLI_REORDER_OPTION,
                                        CLI_COMMON_OPTIONS,
                                        CLI_MAX_SKEW_OPTION,
                                        CLI_SOURCE_OPTION,
                                        {0}};

static int
ready_apply(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    return argc == 0 ? cli_fail("apply: no input (give FILE... or -)") : 0;
}

static int
ready_check(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    return argc == 0 ? cli_fail("check: no input (give FILE... or -)") : 0;
}

/* The store is opened here, not by cli_run(): check reads a copy of it,
 * and apply first gives up on held deliveries past their window. */
static int
run(cli *c, int argc, char **argv, int checking)
{
    qg_store *st = NULL;
    qg_engine *eng = NULL;
    tally t;
    int i, rc;

    if ((rc = cli_new_engine(c, &eng)))
        goto done;
    memset(&t, 0, sizeof(t));
    if (checking) {
        rc = check_all(c, eng, argc, argv, &t);
        goto summary;
    }
    if ((rc = cli_open_store(c, 0, &st)) || (rc = expire_held(c, st)))
        goto done;
    for (i = 0; i < argc && rc == 0; i++) {
        char *body = NULL, *line = NULL;
        size_t len = 0, cap = 0;
        ssize_t n;
        unsigned long lineno = 0;

        if (strcmp(argv[i], "-") != 0) {
            if ((rc = read_file(argv[i], &body, &len)) == 0)
                rc = one(c, eng, st, body, len, argv[i], &t);
            free(body);
            continue;
        }
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
            char where[32];

            snprintf(where, sizeof(where), "stdin:%lu", ++lineno);
            if (n == 1 && line[0] == '\n')
                continue;
            rc = one(c, eng, st, line, (size_t)n, where, &t);
        }
        free(line);
    }
summary:
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
    if (rc == 0 && !checking)
        rc = report_held(c, st);
    if (rc == 0 && (t.count[QG_REJECTED] || t.count[QG_UNAUTHENTICATED] ||
                    t.count[QG_MALFORMED]))
        rc = EXIT_FOUND;
done:
    qg_store_close(st);
    qg_engine_free(eng);
    return rc;
}

static int
run_apply(cli *c, qg_store *st, int argc, char **argv)
{
    (void)st;
    return run(c, argc, argv, 0);
}

static int
run_check(cli *c, qg_store *st, int argc, char **argv)
{
    (void)st;
    return run(c, argc, argv, 1);
}

#define INPUT_HELP(cmd)                                                        \
    "usage: qgate " cmd " [--secret-file F | --no-verify] "                    \
    "[--source NAME] [--reorder-window S] [--max-skew S] [--json] [--db DIR] " \
    "[--config F] [FILE... | -]\n"                                             \
    "Each FILE holds one webhook body; - reads one body per "                  \
    "line from stdin.\n"                                                       \
    "--reorder-window S: a step may wait S seconds for an "                    \
    "earlier one\n(default " CLI_XSTR(                                         \
        CLI_DEFAULT_REORDER_WINDOW) "; 0 judges "                              \
                                    "every delivery on arrival).\n"            \
                                    "--max-skew S: refuse steps dated more "   \
                                    "than S seconds "                          \
                                    "ahead of this\nmachine's clock "          \
                                    "(" CLI_XSTR(                              \
                                        QG_MAX_SKEW_DEFAULT) "; 0: no "        \
                                                             "check).\n"

const cli_command cli_apply = {
    .name = "apply",
    .summary = "feed webhook bodies through the gate's engine",
    .usage = INPUT_HELP("apply"),
    .options = options,
    .store = CLI_NO_STORE,
    .args = 1,
    .ready = ready_apply,
    .run = run_apply};

const cli_command cli_check = {
    .name = "check",
    .summary = "the same verdicts as apply, writing nothing",
    .usage = INPUT_HELP("check") "check gives the verdicts apply would give, "
                                 "in order, each input seeing\nthe ones "
                                 "before it, and writes nothing; with no "
                                 "store at --db, as if\nover an empty one.\n",
    .options = options,
    .store = CLI_NO_STORE,
    .args = 1,
    .ready = ready_check,
    .run = run_check};
