/*
 * check_pg.c - the PostgreSQL store: the same deliveries give the same
 * tickets, histories, refusals and held deliveries as the LMDB store;
 * several gates (handles) share one database; the server going away is
 * QG_EUNAVAIL, and the store reconnects once it is back.
 *
 * A throwaway server is started for the suite (tu_pg_start()); without
 * the server's programs the suite is skipped, unless CI is set.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#define QG__PQ_LINKED /* this test calls libpq itself */
#include "pg_int.h"
#include "qgate_int.h"
#include "testutil.h"

#define WINDOW 1200

static char pg_dir[256];    /* the server's socket directory and data */
static char uri[512];       /* the test's database */
static char admin_uri[512]; /* the server's "postgres" database */
static int pg_ok;

/* ----- the server --------------------------------------------------------- */

/* The suite's server (tu_pg_start()), and its "postgres" database. */
static void
suite_setup(void)
{
    char root[512];

    pg_ok = tu_pg_available() && tu_pg_start(root, sizeof(root)) == 0;
    if (!pg_ok)
        return;
    snprintf(pg_dir, sizeof(pg_dir), "%s", tu_pg_dir());
    snprintf(admin_uri, sizeof(admin_uri),
             "postgresql:///postgres?host=%s&user=qgate", pg_dir);
}

static void
suite_teardown(void)
{
    tu_pg_stop();
}

/* Stops the server at once, and waits until its socket is gone, so that
 * what follows sees no server. */
static void
pg_down(void)
{
    char sock[300];
    int i;

    snprintf(sock, sizeof(sock), "%s/.s.PGSQL.5432", pg_dir);
    ck_assert_int_eq(tu_pg_kill(), 0);
    for (i = 0; i < 300 && access(sock, F_OK) == 0; i++)
        usleep(20000);
    ck_assert_msg(access(sock, F_OK) != 0, "the server did not go away");
}

static void
quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* SQL on the server, as the test's own connection; the result cleared. */
static void
sql(const char *conninfo, const char *text)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    r = PQexec(c, text);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
                      PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", text, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The first value of a query's first row, as text. */
static void
sql_value(const char *text, char *out, size_t size)
{
    PGconn *c = PQconnectdb(uri);
    PGresult *r = PQexec(c, text);

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0,
                  "%s: %s", text, PQerrorMessage(c));
    snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

/* A fresh, empty database for each test. */
static void
setup(void)
{
    if (!pg_ok) {
        ck_assert_msg(getenv("CI") == NULL,
                      "no PostgreSQL server (tests/pg_server.sh)");
        return;
    }
    sql(admin_uri, "DROP DATABASE IF EXISTS qgt WITH (FORCE)");
    sql(admin_uri, "CREATE DATABASE qgt");
    snprintf(uri, sizeof(uri), "postgresql:///qgt?host=%s&user=qgate", pg_dir);
}

#define NEED_SERVER()                                                          \
    do {                                                                       \
        if (!pg_ok) {                                                          \
            fprintf(stderr, "check_pg: skipped, no PostgreSQL server\n");      \
            return;                                                            \
        }                                                                      \
    } while (0)

static qg_store *
pg_open(unsigned flags, int *rc)
{
    qg_store_options o = {0};
    qg_store *st = NULL;

    o.path = uri;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    *rc = qg_store_open(&o, &st);
    return st;
}

static qg_store *
pg_store(unsigned flags)
{
    int rc;
    qg_store *st = pg_open(flags, &rc);

    ck_assert_msg(rc == 0, "%s: %s", uri, qg_strerror(rc));
    ck_assert_str_eq(qg_store_backend(st), "postgresql");
    return st;
}

/* ----- comparing two stores -------------------------------------------- */

/* Compares everything (tu_compare_stores()); counts, what was compared. */
static void
same_stores(qg_store *a, qg_store *b, tu_compared *counts)
{
    tu_compare_stores(a, "LMDB", b, "PostgreSQL", TU_CMP_ALL, counts);
}

/* The outboxes, queued and dead, and their stats. */
static void
same_outbox(qg_store *a, qg_store *b, tu_compared *counts)
{
    tu_compare_stores(a, "LMDB", b, "PostgreSQL", TU_CMP_OUTBOX, counts);
}

/* The chain of a store: intact, and how long. */
static uint64_t
chain_intact(qg_store *st)
{
    qg_chain_finding f;

    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s: %s", qg_store_backend(st),
                  f.what);
    return f.entries;
}

/* ----- deliveries -------------------------------------------------------- */

static const char *const visits[] = {"walk-in", "appointment",
                                     "no-show-cancelled"};

/* The files of a visit, in name order (reversed: the other way). */
static int
visit_files(const char *visit, char files[][256], int most, int reversed)
{
    struct dirent **list;
    char dir[512];
    int n, i, m = 0;

    snprintf(dir, sizeof(dir), "%s/visits/%s", QG_FIXTURES, visit);
    n = scandir(dir, &list, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    for (i = 0; i < n; i++) {
        const char *name = list[reversed ? n - 1 - i : i]->d_name;

        if (strstr(name, ".json") && m < most &&
            strlen(visit) + strlen(name) < 200)
            snprintf(files[m++], 256, "visits/%.60s/%.120s", visit, name);
    }
    for (i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return m;
}

/* Applies one body to both stores: the same verdict on both. */
static void
apply_both(qg_engine *eng, qg_store *a, qg_store *b, const char *body,
           size_t len)
{
    qg_result ra, rb;

    ck_assert_int_eq(qg_engine_apply(eng, a, body, len, 0, &ra), 0);
    ck_assert_int_eq(qg_engine_apply(eng, b, body, len, 0, &rb), 0);
    ck_assert_int_eq(ra.verdict, rb.verdict);
    ck_assert_int_eq(ra.reason, rb.reason);
    ck_assert_str_eq(ra.detail, rb.detail);
    ck_assert_uint_eq(ra.ticket, rb.ticket);
    ck_assert_uint_eq(ra.seq, rb.seq);
    ck_assert_uint_eq(ra.rejection, rb.rejection);
}

static void
apply_file(qg_engine *eng, qg_store *a, qg_store *b, const char *rel)
{
    size_t len;
    char *body = tu_fixture(rel, &len);

    apply_both(eng, a, b, body, len);
    free(body);
}

/* Every visit in order, again (duplicates), in reverse order under
 * another source (held, then released), and some refusals. */
START_TEST(test_pg_same_as_lmdb_visits)
{
    static const char *const junk[] = {
        "not json", "{\"payload\":{},\"signature\":\"00\"}", "[]"};
    char files[32][256];
    tu_compared counts;
    qg_store *lm, *pg;
    qg_engine *eng;
    size_t v, i;
    int n, k;

    NEED_SERVER();
    lm = tu_store_new();
    pg = pg_store(0);
    eng = tu_engine();
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, WINDOW), 0);
    for (v = 0; v < sizeof(visits) / sizeof(*visits); v++) {
        n = visit_files(visits[v], files, 32, 0);
        ck_assert_int_gt(n, 2);
        for (k = 0; k < n; k++)
            apply_file(eng, lm, pg, files[k]);
        apply_file(eng, lm, pg, files[n / 2]); /* a redelivery */
    }
    ck_assert_int_eq(qg_engine_set_source(eng, "reversed"), 0);
    for (v = 0; v < sizeof(visits) / sizeof(*visits); v++) {
        n = visit_files(visits[v], files, 32, 1);
        for (k = 0; k < n; k++)
            apply_file(eng, lm, pg, files[k]);
    }
    /* a visit's later half only: held, waiting */
    ck_assert_int_eq(qg_engine_set_source(eng, "half"), 0);
    n = visit_files("walk-in", files, 32, 1);
    for (k = 0; k < n / 2; k++)
        apply_file(eng, lm, pg, files[k]);
    for (i = 0; i < sizeof(junk) / sizeof(*junk); i++)
        apply_both(eng, lm, pg, junk[i], strlen(junk[i]));
    ck_assert_int_eq(qg_rejections_resolve(lm, 1, 0, 0), 0);
    ck_assert_int_eq(qg_rejections_resolve(pg, 1, 0, 0), 0);

    same_stores(lm, pg, &counts);
    ck_assert_uint_ge(counts.tickets, 6);
    ck_assert_uint_ge(counts.refusals, 3);
    ck_assert_uint_ge(counts.held, 1);
    ck_assert_uint_gt(counts.released, 0);

    /* Purged alike: the same counts, bodies gone on both, both chains
     * intact (the leaves cover the bodies' digests, which purge keeps). */
    {
        qg_purge_stats pa, pb;
        int64_t now = qg_time_now_us() + 1;

        ck_assert_int_eq(qg_store_purge(lm, now, &pa), 0);
        ck_assert_int_eq(qg_store_purge(pg, now, &pb), 0);
        ck_assert_uint_gt(pa.records, 10);
        ck_assert_uint_gt(pa.rejections, 0);
        ck_assert_uint_eq(pa.records, pb.records);
        ck_assert_uint_eq(pa.rejections, pb.rejections);
        ck_assert_uint_eq(pa.bytes, pb.bytes);
        ck_assert_uint_eq(pa.skipped, pb.skipped);
        same_stores(lm, pg, &counts);
        ck_assert_int_eq(qg_store_purge(pg, now, &pb), 0);
        ck_assert_uint_eq(pb.records + pb.rejections + pb.bytes, 0);
    }
    qg_engine_free(eng);
    qg_store_close(pg);
    qg_store_close(lm);
    tu_store_remove();
}
END_TEST

/* Applies the lines of f in the gate's batches of 16 to both stores. */
static size_t
apply_day(qg_engine *eng, qg_store *a, qg_store *b, FILE *f)
{
    qg_body bodies[16];
    qg_result ra[16], rb[16];
    int rca[16], rcb[16];
    char *line = NULL, *kept[16];
    size_t cap = 0, n = 0, i, total = 0;
    ssize_t len;

    for (;;) {
        len = getline(&line, &cap, f);
        if (len > 0) {
            kept[n] = strndup(line, (size_t)len - 1);
            bodies[n].body = kept[n];
            bodies[n].len = (size_t)len - 1;
            n++;
        }
        if (n == 16 || (len < 0 && n > 0)) {
            ck_assert_int_eq(qg_engine_apply_batch(eng, a, bodies, n, ra, rca),
                             0);
            ck_assert_int_eq(qg_engine_apply_batch(eng, b, bodies, n, rb, rcb),
                             0);
            for (i = 0; i < n; i++) {
                ck_assert_int_eq(rca[i], 0);
                ck_assert_int_eq(rcb[i], 0);
                ck_assert_int_eq(ra[i].verdict, rb[i].verdict);
                ck_assert_str_eq(ra[i].detail, rb[i].detail);
                free(kept[i]);
            }
            total += n;
            n = 0;
        }
        if (len < 0)
            break;
    }
    free(line);
    return total;
}

/* A generated day, its deliveries partly out of order, with duplicates,
 * illegal and stale steps, in the gate's batches: once with a reorder
 * window (steps held and placed late), once without (refused), each
 * under a source of its own. */
START_TEST(test_pg_same_as_lmdb_day)
{
    static const char *const sources[2] = {"windowed", "strict"};
    char cmd[1024], expected[512];
    tu_compared counts;
    qg_store *lm, *pg;
    qg_engine *eng;
    FILE *f;
    int pass;

    NEED_SERVER();
    lm = tu_store_new();
    pg = pg_store(0);
    eng = tu_engine();
    snprintf(expected, sizeof(expected), "%s/expected.json", tu_store_dir());
    snprintf(cmd, sizeof(cmd),
             "%s -r 15:6 60 11 qgate-development-secret %s 3 2 2", GEN_DAY,
             expected);
    for (pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(
            qg_engine_set_reorder_window(eng, pass == 0 ? WINDOW : 0), 0);
        ck_assert_int_eq(qg_engine_set_source(eng, sources[pass]), 0);
        ck_assert_ptr_nonnull(f = popen(cmd, "r"));
        ck_assert_uint_gt(apply_day(eng, lm, pg, f), 300);
        ck_assert_int_eq(pclose(f), 0);
    }
    same_stores(lm, pg, &counts);
    ck_assert_uint_eq(counts.tickets, 120);
    ck_assert_uint_gt(counts.refusals, 0);
    ck_assert_uint_gt(counts.late, 0);
    ck_assert_uint_gt(counts.released, 0);
    qg_engine_free(eng);
    qg_store_close(pg);
    qg_store_close(lm);
    tu_store_remove();
}
END_TEST

/* The bound on unauthenticated and malformed entries drops the same
 * ones, and cuts the same long bodies, on both stores. */
START_TEST(test_pg_same_as_lmdb_unsigned_bound)
{
    qg_store_options o = {0};
    char dir[512], body[5000];
    tu_compared counts;
    uint64_t dropped;
    qg_store *lm = NULL, *pg = NULL;
    qg_engine *eng;
    size_t len;
    int i;

    NEED_SERVER();
    snprintf(dir, sizeof(dir), "/tmp/qgate-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    o.path = dir;
    o.durability = QG_NOSYNC;
    o.unsigned_log_max = 16 << 10;
    ck_assert_int_eq(qg_store_open(&o, &lm), 0);
    o.path = uri;
    ck_assert_int_eq(qg_store_open(&o, &pg), 0);
    eng = tu_engine();
    for (i = 0; i < 24; i++) {
        /* not JSON, of growing length: the longer ones are cut */
        len = (size_t)snprintf(body, sizeof(body), "junk %d ", i);
        memset(body + len, 'x', (size_t)i * 200);
        len += (size_t)i * 200;
        apply_both(eng, lm, pg, body, len);
        if (i == 20) {
            apply_file(eng, lm, pg, tu_walk_in[0].file);
            ck_assert_int_eq(qg_rejections_resolve(lm, 21, 0, 0), 0);
            ck_assert_int_eq(qg_rejections_resolve(pg, 21, 0, 0), 0);
        }
    }
    same_stores(lm, pg, &counts);
    ck_assert_uint_lt(counts.refusals, 24);
    ck_assert_int_eq(qg_rejections_dropped(pg, &dropped), 0);
    ck_assert_uint_eq(counts.refusals + dropped, 24);
    qg_engine_free(eng);
    qg_store_close(pg);
    qg_store_close(lm);
    tu_remove_dir(dir);
}
END_TEST

/* ----- the store itself ------------------------------------------------- */

START_TEST(test_pg_reopen_keeps_everything)
{
    char id1[QG_STORE_ID_LEN + 1], id2[QG_STORE_ID_LEN + 1];
    qg_store *st;
    qg_engine *eng;
    qg_ticket t;
    size_t i;

    NEED_SERVER();
    st = pg_store(0);
    eng = tu_engine();
    for (i = 0; i < 9; i++)
        tu_apply(eng, st, tu_walk_in[i].file);
    ck_assert_int_eq(qg_store_id(st, id1), 0);
    qg_store_close(st);

    st = pg_store(0);
    ck_assert_int_eq(qg_store_id(st, id2), 0);
    ck_assert_str_eq(id1, id2);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.id, 1);
    ck_assert_uint_eq(t.records, 9);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_TICKET, 1, &t), 0);
    ck_assert_int_eq(qg_store_has_source(st, "default"), 1);
    ck_assert_int_eq(qg_store_has_source(st, "other"), 0);
    ck_assert_int_eq(qg_store_probe(st), 0);
    /* a redelivery after the reopen is still one */
    ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[3].file).verdict,
                     QG_DUPLICATE);
    qg_engine_free(eng);
    qg_store_close(st);
}
END_TEST

START_TEST(test_pg_rdonly_refuses_writes)
{
    qg_store *st;
    qg_engine *eng;
    qg_result res;
    qg_ticket t;
    size_t len;
    char *body;
    int rc;

    NEED_SERVER();
    /* an empty database holds no store to read */
    ck_assert_ptr_null(pg_open(QG_RDONLY, &rc));
    ck_assert_int_eq(rc, QG_NOTFOUND);
    st = pg_store(0);
    eng = tu_engine();
    tu_apply(eng, st, tu_walk_in[0].file);
    qg_store_close(st);

    st = pg_store(QG_RDONLY);
    body = tu_fixture(tu_walk_in[1].file, &len);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), QG_ERDONLY);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, QG_DRY_RUN, &res), 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_rejections_resolve(st, 1, 0, 0), QG_ERDONLY);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    free(body);
    qg_engine_free(eng);
    qg_store_close(st);
}
END_TEST

START_TEST(test_pg_schema_version)
{
    qg_store *st;
    int rc, from = -1, to = -1;

    NEED_SERVER();
    st = pg_store(0);
    ck_assert_int_eq(qg_store_migrate(st, &from, &to), 0);
    ck_assert_int_eq(from, QG_PG_SCHEMA_VERSION);
    ck_assert_int_eq(to, QG_PG_SCHEMA_VERSION);
    qg_store_close(st);

    /* a newer qgate's schema */
    sql(uri, "UPDATE qgate_schema SET version = version + 1");
    ck_assert_ptr_null(pg_open(0, &rc));
    ck_assert_int_eq(rc, QG_EFORMAT);
    ck_assert_ptr_null(pg_open(QG_MIGRATE, &rc));
    ck_assert_int_eq(rc, QG_EFORMAT);
    /* an older one: to be migrated first, and this qgate knows no way */
    sql(uri, "UPDATE qgate_schema SET version = 0");
    ck_assert_ptr_null(pg_open(0, &rc));
    ck_assert_int_eq(rc, QG_EFORMAT);
}
END_TEST

/* The handle is LMDB's? Migration is PostgreSQL's alone. */
START_TEST(test_pg_migrate_lmdb)
{
    qg_store_options o = {0};
    qg_store *st = tu_store_new(), *again = NULL;

    ck_assert_int_eq(qg_store_migrate(st, NULL, NULL), QG_ENOTSUP);
    o.path = tu_store_dir();
    o.flags = QG_MIGRATE;
    ck_assert_int_eq(qg_store_open(&o, &again), QG_ENOTSUP);
    ck_assert_ptr_null(again);
    qg_store_close(st);
    tu_store_remove();
}
END_TEST

START_TEST(test_pg_outbox_sticks)
{
    qg_store *st;
    qg_engine *eng;
    char n[32];

    NEED_SERVER();
    eng = tu_engine();
    st = pg_store(QG_OUTBOX);
    tu_apply(eng, st, tu_walk_in[0].file);
    qg_store_close(st);
    st = pg_store(0); /* without the flag: the store feeds the HIS still */
    tu_apply(eng, st, tu_walk_in[1].file);
    qg_store_close(st);
    sql_value("SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM "
              "qgate.outbox",
              n, sizeof(n));
    ck_assert_str_eq(n, "2 1 2");
    qg_engine_free(eng);
}
END_TEST

/* The statements prepared on c's session: all of them (like NULL), or
 * those whose text starts with like's. */
static int
prepared_count(qg__pgconn *c, const char *like)
{
    const char *v[1] = {like};
    PGresult *r;
    int n;

    r = PQexecParams(c->pg,
                     like ? "SELECT count(*) FROM pg_prepared_statements "
                            "WHERE starts_with(statement, $1)"
                          : "SELECT count(*) FROM pg_prepared_statements",
                     like ? 1 : 0, NULL, like ? v : NULL, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* The pool's idle connection: one writer at a time here, so the one
 * every commit used. */
static qg__pgconn *
idle_conn(qg_store *st)
{
    qg__pgconn *c;

    pthread_mutex_lock(&st->lock);
    c = st->idle;
    pthread_mutex_unlock(&st->lock);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(c->next);
    return c;
}

/*
 * The chain's entries go in as parameters of one INSERT, whatever they
 * are: after 10 commits, each appending a refusal's entry, the
 * connection has that INSERT prepared once, and 290 commits more prepare
 * nothing new, so the connection's prepared statements stay the few
 * qgate runs again and again, not one a commit.
 */
START_TEST(test_pg_chain_insert_prepared_once)
{
    qg_engine *eng = tu_engine();
    qg__pgconn *c;
    qg_result res;
    int i, nstmts = -1, prepared = -1;
    qg_store *st;

    NEED_SERVER();
    st = pg_store(0);
    for (i = 0; i < 300; i++) {
        if (i == 10) {
            c = idle_conn(st);
            ck_assert_int_eq(prepared_count(c, "INSERT INTO qgate.chain"), 1);
            nstmts = c->nstmts;
            prepared = prepared_count(c, NULL);
        }
        res = tu_apply(eng, st, "illegal/served-before-arrive/02-served.json");
        ck_assert_int_eq(res.verdict, QG_REJECTED);
    }
    c = idle_conn(st);
    ck_assert_int_eq(prepared_count(c, "INSERT INTO qgate.chain"), 1);
    ck_assert_int_eq(c->nstmts, nstmts);
    ck_assert_int_eq(prepared_count(c, NULL), prepared);
    ck_assert_int_lt(prepared, 40);
    /* and the 300 entries went in, each hashing the one before */
    ck_assert_uint_eq(chain_intact(st), 300);
    qg_store_close(st);
    qg_engine_free(eng);
}
END_TEST

/*
 * A commit with more entries than one INSERT takes (256) sends them in
 * several, all by the one prepared statement: 600 refusals in one batch
 * leave 600 entries, each hashing the one before.
 */
START_TEST(test_pg_chain_batch_of_600)
{
    enum { N = 600 };
    qg_engine *eng = tu_engine();
    qg_prepared **p = calloc(N, sizeof(*p));
    qg_result *res = calloc(N, sizeof(*res));
    int *rcs = calloc(N, sizeof(*rcs));
    size_t len;
    char *body =
        tu_fixture("illegal/served-before-arrive/02-served.json", &len);
    qg_store *st;
    int i;

    NEED_SERVER();
    ck_assert(p && res && rcs);
    st = pg_store(0);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p[i]), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(st, p, N, res, rcs), 0);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(rcs[i], 0);
        ck_assert_int_eq(res[i].verdict, QG_REJECTED);
    }
    ck_assert_int_eq(prepared_count(idle_conn(st), "INSERT INTO qgate.chain"),
                     1);
    ck_assert_uint_eq(chain_intact(st), N);
    for (i = 0; i < N; i++)
        qg_prepared_free(p[i]);
    free(p);
    free(res);
    free(rcs);
    free(body);
    qg_store_close(st);
    qg_engine_free(eng);
}
END_TEST

/*
 * A forwarder claims each ticket it sends, and the claims whose lease
 * ran out a lease ago go: forwarding a day's tickets, one every 100 ms,
 * each step renewing its ticket's 1 s lease, leaves the rows of the last
 * few leases, not one per ticket forwarded.  And leases hold as before:
 * a running one keeps a second gate out, one long run out (its row gone)
 * lets it in.
 */
START_TEST(test_pg_claims_do_not_pile_up)
{
    const int64_t t0 = 1000000000, lease = 1000000, step = 100000;
    const uint64_t tickets = 400;
    qg_store *st;
    char n[32];
    uint64_t k;
    int64_t at = t0;

    NEED_SERVER();
    st = pg_store(QG_OUTBOX);
    for (k = 1; k <= tickets; k++) {
        at = t0 + (int64_t)k * step;
        ck_assert_int_eq(qg_outbox_claim(st, k, "gate-a", at, lease), 0);
        /* the ticket's next step: a renewal */
        ck_assert_int_eq(qg_outbox_claim(st, k, "gate-a", at + step / 2, lease),
                         0);
    }
    sql_value("SELECT count(*) FROM qgate.claims", n, sizeof(n));
    /* run out for less than a lease (10), or for less than two, not swept
     * since (10 more), and the ones still running (10) */
    ck_assert_msg(atoi(n) >= 10 && atoi(n) <= 35, "%s claims of %" PRIu64, n,
                  tickets);
    ck_assert_int_eq(qg_outbox_claim(st, tickets, "gate-b", at, lease),
                     QG_EBUSY);
    ck_assert_int_eq(qg_outbox_claim(st, 1, "gate-b", at, lease), 0);
    qg_store_close(st);
}
END_TEST

/* The outbox's operations, on both stores alike. */
START_TEST(test_pg_outbox_same_as_lmdb)
{
    qg_store_options o = {0};
    char files[32][256], dir[512];
    uint64_t ma, mb, qa, qb, wa, wb;
    tu_compared n;
    qg_store *lm = NULL, *pg;
    qg_engine *eng;
    size_t v;
    int k, m;

    NEED_SERVER();
    snprintf(dir, sizeof(dir), "/tmp/qgate-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    o.path = dir;
    o.durability = QG_NOSYNC;
    o.flags = QG_OUTBOX;
    ck_assert_int_eq(qg_store_open(&o, &lm), 0);
    pg = pg_store(QG_OUTBOX);
    eng = tu_engine();
    for (v = 0; v < sizeof(visits) / sizeof(*visits); v++) {
        m = visit_files(visits[v], files, 32, 0);
        for (k = 0; k < m; k++)
            apply_file(eng, lm, pg, files[k]);
    }
    same_outbox(lm, pg, &n);
    ck_assert_uint_eq(n.outbox, 18);
    /* ticket 1: entries 1-9; ticket 2: 10-15; ticket 3: 16-18 */
    ck_assert_int_eq(qg_outbox_defer(lm, 1, 42, "timed out"), 0);
    ck_assert_int_eq(qg_outbox_defer(pg, 1, 42, "timed out"), 0);
    ck_assert_int_eq(qg_outbox_ack(lm, 2), 0);
    ck_assert_int_eq(qg_outbox_ack(pg, 2), 0);
    ck_assert_int_eq(qg_outbox_ack(lm, 2), QG_NOTFOUND);
    ck_assert_int_eq(qg_outbox_ack(pg, 2), QG_NOTFOUND);
    ck_assert_int_eq(qg_outbox_bury(lm, 12, "HTTP 400"), 0);
    ck_assert_int_eq(qg_outbox_bury(pg, 12, "HTTP 400"), 0);
    ck_assert_int_eq(qg_outbox_bury(pg, 99, "x"), QG_NOTFOUND);
    same_outbox(lm, pg, &n);
    ck_assert_uint_eq(n.outbox, 13);
    ck_assert_uint_eq(n.dead, 4);
    /* resent: ticket 1's step 2 (acked) is queued again; the rest wait */
    ck_assert_int_eq(qg_outbox_resend(lm, 1, INT64_MIN, INT64_MAX, &qa, &wa),
                     0);
    ck_assert_int_eq(qg_outbox_resend(pg, 1, INT64_MIN, INT64_MAX, &qb, &wb),
                     0);
    ck_assert_uint_eq(qa, 1);
    ck_assert_uint_eq(qb, qa);
    ck_assert_uint_eq(wb, wa);
    ck_assert_int_eq(qg_outbox_requeue(lm, 13, &ma), 0);
    ck_assert_int_eq(qg_outbox_requeue(pg, 13, &mb), 0);
    ck_assert_uint_eq(ma, 4);
    ck_assert_uint_eq(mb, ma);
    ck_assert_int_eq(qg_outbox_resend(lm, 0, INT64_MIN, INT64_MAX, &qa, &wa),
                     0);
    ck_assert_int_eq(qg_outbox_resend(pg, 0, INT64_MIN, INT64_MAX, &qb, &wb),
                     0);
    ck_assert_uint_eq(qb, qa);
    ck_assert_uint_eq(wb, wa);
    same_outbox(lm, pg, &n);
    ck_assert_uint_eq(n.outbox, 18);
    ck_assert_uint_eq(n.dead, 0);
    qg_engine_free(eng);
    qg_store_close(pg);
    qg_store_close(lm);
    tu_remove_dir(dir);
}
END_TEST

/* ----- a purge and a resend ---------------------------------------------- */

/* A purge or a resend run in a thread, and whether it has returned. */
typedef struct waiter {
    qg_store *st;
    int resend; /* qg_outbox_resend() of ticket 1, else qg_store_purge() */
    int rc, done;
    uint64_t queued;
    qg_purge_stats purged;
    pthread_mutex_t lock;
} waiter;

static void *
waiter_run(void *arg)
{
    waiter *w = arg;
    uint64_t queued = 0, waiting;
    qg_purge_stats purged;
    int rc;

    memset(&purged, 0, sizeof(purged));
    rc = w->resend ? qg_outbox_resend(w->st, 1, INT64_MIN, INT64_MAX, &queued,
                                      &waiting)
                   : qg_store_purge(w->st, qg_time_now_us() + 1, &purged);
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->queued = queued;
    w->purged = purged;
    w->done = 1;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int
waiter_done(waiter *w)
{
    int done;

    pthread_mutex_lock(&w->lock);
    done = w->done;
    pthread_mutex_unlock(&w->lock);
    return done;
}

/* A raw session in a transaction holding the purge's lock, as a purge's
 * batch or a resend takes it (QG__PG_PURGE_LOCK). */
static PGconn *
purge_lock_held(void)
{
    PGconn *c = PQconnectdb(uri);
    char text[96];
    PGresult *r;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    snprintf(text, sizeof(text),
             "BEGIN; SELECT pg_advisory_xact_lock(%" PRId64 ")",
             (int64_t)QG__PG_PURGE_LOCK);
    r = PQexec(c, text);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", text,
                  PQerrorMessage(c));
    PQclear(r);
    return c;
}

static void
commit(PGconn *c, const char *more)
{
    PGresult *r;

    if (more) {
        r = PQexec(c, more);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", more,
                      PQerrorMessage(c));
        PQclear(r);
    }
    r = PQexec(c, "COMMIT");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

/*
 * Runs a resend (resend set) or a purge in a thread while a raw session
 * holds the purge's lock, checks that it waits, then commits the
 * session's statement more and waits for the call to end: its answer is
 * in *w.
 */
static void
behind_the_lock(waiter *w, qg_store *st, int resend, const char *more)
{
    pthread_t th;
    PGconn *c;

    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    w->st = st;
    w->resend = resend;
    c = purge_lock_held();
    ck_assert_int_eq(pthread_create(&th, NULL, waiter_run, w), 0);
    usleep(300000);
    ck_assert_msg(!waiter_done(w), "the %s did not wait for the %s",
                  resend ? "resend" : "purge", resend ? "purge" : "resend");
    commit(c, more);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&w->lock);
    ck_assert_int_eq(w->rc, 0);
}

/*
 * A purge's batch of steps and a resend are ordered, as LMDB's one writer
 * orders them.  While a purge's batch that has purged step 1 holds the
 * lock, a resend waits, and then queues the steps, step 1 purged, as it
 * would after the batch on LMDB; while a resend that has queued step 2
 * holds it, a purge waits, and then keeps step 2's body (skipped) and
 * purges step 3's: no step is purged under a resend that queues it.
 */
START_TEST(test_pg_purge_and_resend_ordered)
{
    qg_engine *eng;
    qg_store *st;
    waiter w;
    char n[64];

    NEED_SERVER();
    eng = tu_engine();
    st = pg_store(QG_OUTBOX);
    tu_apply(eng, st, tu_walk_in[0].file);
    tu_apply(eng, st, tu_walk_in[1].file);
    tu_apply(eng, st, tu_walk_in[2].file);
    sql(uri, "DELETE FROM qgate.outbox"); /* forwarded, acknowledged */

    /* a purge's batch under way, step 1 purged: the resend waits for its
     * commit, then queues the three steps */
    behind_the_lock(&w, st, 1,
                    "UPDATE qgate.history SET purged = true, body_len = "
                    "length(body), body_sha256 = sha256(body), body = "
                    "''::bytea WHERE ticket = 1 AND seq = 1");
    ck_assert_uint_eq(w.queued, 3);
    sql_value("SELECT count(*) FROM qgate.outbox WHERE ticket = 1", n,
              sizeof(n));
    ck_assert_str_eq(n, "3");

    /* a resend under way, step 2 queued: the purge waits for its commit,
     * then keeps step 2's body and purges step 3's */
    sql(uri, "DELETE FROM qgate.outbox");
    behind_the_lock(&w, st, 0,
                    "INSERT INTO qgate.outbox (id, ticket, seq, created_us, "
                    "next_attempt_us) VALUES (nextval('qgate.outbox_ids'), "
                    "1, 2, 0, 0)");
    ck_assert_uint_eq(w.purged.records, 1);
    ck_assert_uint_eq(w.purged.skipped, 1);
    sql_value("SELECT string_agg(seq || ':' || purged || ':' || (length(body) "
              "> 0), ' ' ORDER BY seq) FROM qgate.history WHERE ticket = 1",
              n, sizeof(n));
    ck_assert_str_eq(n, "1:true:false 2:false:true 3:true:false");
    qg_store_close(st);
    qg_engine_free(eng);
}
END_TEST

/* QG_NOSYNC is synchronous_commit off for the store's sessions. */
START_TEST(test_pg_durability)
{
    static const struct {
        qg_durability d;
        const char *want;
    } cases[] = {{QG_SYNC, "on"}, {QG_NOSYNC, "off"}};
    qg_store_options o = {0};
    qg_store *st;
    PGresult *r;
    qg__txn t;
    size_t i;

    NEED_SERVER();
    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        o.path = uri;
        o.durability = cases[i].d;
        st = NULL;
        ck_assert_int_eq(qg_store_open(&o, &st), 0);
        ck_assert_int_eq(qg__txn_begin(st, 1, &t), 0);
        ck_assert_int_eq(qg__pg_exec(t.be, "SHOW synchronous_commit", NULL, &r),
                         0);
        ck_assert_str_eq(PQgetvalue(r, 0, 0), cases[i].want);
        PQclear(r);
        qg__txn_abort(&t);
        qg_store_close(st);
    }
}
END_TEST

/* The view an HIS joins, and NOTIFY once the meta row asks for it. */
START_TEST(test_pg_view_and_notify)
{
    qg_store *st;
    qg_engine *eng;
    PGnotify *note;
    PGconn *c;
    PGresult *r;
    char v[256];

    NEED_SERVER();
    eng = tu_engine();
    st = pg_store(0);
    tu_apply(eng, st, tu_walk_in[0].file);
    qg_store_close(st);
    sql_value("SELECT source || ' ' || live_queue_id || ' ' || seq || ' ' || "
              "event || ' ' || from_state || ' ' || to_state || ' ' || "
              "(body->'payload'->>'event') FROM qgate.accepted_steps",
              v, sizeof(v));
    ck_assert_str_eq(v, "default 30001 1 join new queued live_queue_created");

    sql(uri, "INSERT INTO qgate.meta (key, n) VALUES ('notify', 1)");
    c = PQconnectdb(uri);
    r = PQexec(c, "LISTEN qgate_steps");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    st = pg_store(0);
    tu_apply(eng, st, tu_walk_in[1].file);
    r = PQexec(c, "SELECT 1"); /* reads what the server sent meanwhile */
    PQclear(r);
    ck_assert_ptr_nonnull(note = PQnotifies(c));
    ck_assert_str_eq(note->relname, "qgate_steps");
    ck_assert_str_eq(note->extra, "1 2");
    PQfreemem(note);
    PQfinish(c);
    qg_store_close(st);
    qg_engine_free(eng);
}
END_TEST

/* The first line a command writes to stdout, and its exit status. */
static int
run_line(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");

    ck_assert_ptr_nonnull(f);
    if (fgets(out, (int)size, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return pclose(f);
}

START_TEST(test_pg_cli_db)
{
    char cmd[1024], out[1024], want[1024];

    NEED_SERVER();
    snprintf(cmd, sizeof(cmd), "%s db init --db '%s'", QGATE_BIN, uri);
    ck_assert_int_eq(run_line(cmd, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%s: schema version none -> 2 (created)", uri);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(run_line(cmd, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%s: schema version 2, as it was", uri);
    ck_assert_str_eq(out, want);
    snprintf(cmd, sizeof(cmd), "%s db migrate --db '%s'", QGATE_BIN, uri);
    ck_assert_int_eq(run_line(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, want);
    sql(uri, "UPDATE qgate_schema SET version = 3");
    snprintf(cmd, sizeof(cmd), "%s db migrate --db '%s' 2>&1", QGATE_BIN, uri);
    ck_assert_int_ne(run_line(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "cannot migrate the schema"));
    snprintf(cmd, sizeof(cmd), "%s db init --db /nonexistent 2>&1", QGATE_BIN);
    ck_assert_int_ne(run_line(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "is for a PostgreSQL store"));
}
END_TEST

/* ----- the hash chain ------------------------------------------------------
 */

/* The walk-in visit (ticket 1, entries 1-9), then a step and its refusal
 * on ticket 2 (entry 10; refusal 1, entry 11). */
static void
chained_visit(qg_store *st)
{
    qg_engine *eng = tu_engine();
    size_t i;

    for (i = 0; i < 9; i++)
        ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[i].file).verdict,
                         QG_ACCEPTED);
    ck_assert_int_eq(
        tu_apply(eng, st,
                 "illegal/served-before-arrive/01-join-live-queue.json")
            .verdict,
        QG_ACCEPTED);
    ck_assert_int_eq(
        tu_apply(eng, st, "illegal/served-before-arrive/02-served.json")
            .verdict,
        QG_REJECTED);
    qg_engine_free(eng);
}

/* Rows changed behind qgate's back, with SQL: verify names the first
 * break in chain order, its record and its entry. */
static const struct {
    const char *what; /* the change */
    int purge;        /* purge every body first */
    const char *sql;
    qg_chain_break brk;
    const char *said;
} tampered[] = {
    {"a byte of a body", 0,
     "UPDATE qgate.history SET body = overlay(body placing 'X' from 20) "
     "WHERE ticket = 1 AND seq = 4",
     QG_CHAIN_CHANGED,
     "step 4 of ticket 1 changed: its content no longer hashes to chain "
     "entry 4"},
    {"a step's staff", 0,
     "UPDATE qgate.history SET staff_id = staff_id + 1 WHERE ticket = 1 AND "
     "seq = 2",
     QG_CHAIN_CHANGED,
     "step 2 of ticket 1 changed: its content no longer hashes to chain "
     "entry 2"},
    {"a step deleted", 0,
     "DELETE FROM qgate.history WHERE ticket = 1 AND seq = 3", QG_CHAIN_REMOVED,
     "step 3 of ticket 1 removed: gone from the store (chain entry 3)"},
    {"a refusal's detail", 0,
     "UPDATE qgate.rejections SET detail = 'nothing to see'", QG_CHAIN_CHANGED,
     "refusal 1 (ticket 2) changed: its content no longer hashes to chain "
     "entry 11"},
    {"two steps swapped", 0,
     "UPDATE qgate.history SET seq = 100 WHERE ticket = 1 AND seq = 5;"
     "UPDATE qgate.history SET seq = 5 WHERE ticket = 1 AND seq = 6;"
     "UPDATE qgate.history SET seq = 6 WHERE ticket = 1 AND seq = 100",
     QG_CHAIN_REORDERED,
     "step 5 of ticket 1 reordered: it holds what chain entry 6 gave to step "
     "6"},
    {"an event out of its byte", 0,
     "UPDATE qgate.history SET event = event + 256 WHERE ticket = 1 AND seq "
     "= 7",
     QG_CHAIN_CHANGED,
     "step 7 of ticket 1 changed: its bytes no longer form a record (chain "
     "entry 7)"},
    {"an entry's time", 0,
     "UPDATE qgate.chain SET time_us = time_us + 1 WHERE n = 5",
     QG_CHAIN_CHANGED,
     "chain entry 5 changed: its hash does not hold over its bytes and entry "
     "4"},
    {"an entry deleted", 0, "DELETE FROM qgate.chain WHERE n = 5",
     QG_CHAIN_REMOVED,
     "chain entry 5 removed: missing (entry 6 follows entry 4)"},
    {"the last entry deleted", 0, "DELETE FROM qgate.chain WHERE n = 11",
     QG_CHAIN_ADDED, "refusal 1 added: no chain entry covers it"},
    {"a purged body's digest", 1,
     "UPDATE qgate.history SET body_sha256 = sha256('x') WHERE ticket = 1 AND "
     "seq = 1",
     QG_CHAIN_CHANGED,
     "step 1 of ticket 1 changed: its content no longer hashes to chain "
     "entry 1"},
    {"a purged refusal's digest", 1,
     "UPDATE qgate.rejections SET whole_digest = sha256('x')", QG_CHAIN_CHANGED,
     "refusal 1 (ticket 2) changed: its content no longer hashes to chain "
     "entry 11"},
};

START_TEST(test_pg_chain_tampered)
{
    qg_chain_finding f;
    qg_purge_stats ps;
    qg_store *st;

    NEED_SERVER();
    st = pg_store(0);
    chained_visit(st);
    if (tampered[_i].purge) {
        ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
        ck_assert_uint_eq(ps.records, 10);
        ck_assert_uint_eq(ps.rejections, 1);
    }
    ck_assert_uint_eq(chain_intact(st), 11);
    sql(uri, tampered[_i].sql);
    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), 0);
    ck_assert_msg(f.brk == tampered[_i].brk, "%s: %s", tampered[_i].what,
                  f.what);
    ck_assert_str_eq(f.what, tampered[_i].said);
    qg_store_close(st);
}
END_TEST

/* Every line a command writes to stdout, and its exit status. */
static int
run_all(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    return pclose(f);
}

/* qgate verify, seal, verify --sealed, history --hash and export on a
 * database, as on a folder. */
START_TEST(test_pg_cli_chain)
{
    char cmd[2048], out[16384], head[512];
    unsigned char h[9][QG_CHAIN_HASH_LEN];
    char hex[65];
    qg_store *st;
    int i;

    NEED_SERVER();
    st = pg_store(0);
    chained_visit(st);
    snprintf(cmd, sizeof(cmd), "%s verify --db '%s'", QGATE_BIN, uri);
    ck_assert_int_eq(run_all(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "chain: 11 entries intact\n") != NULL, "%s", out);
    snprintf(head, sizeof(head), "%s/head.txt", pg_dir);
    snprintf(cmd, sizeof(cmd), "%s seal --db '%s' > %s", QGATE_BIN, uri, head);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s verify --db '%s' --sealed @%s", QGATE_BIN,
             uri, head);
    ck_assert_int_eq(run_all(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "chain: 11 entries intact; the sealed head (11 "
                              "entries) holds\n") != NULL,
                  "%s", out);
    /* the hashes history and export show are the chain's */
    ck_assert_int_eq(qg_chain_step_hashes(st, 1, 9, h), 0);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[3][i]);
    snprintf(cmd, sizeof(cmd), "%s history --db '%s' --hash 30001", QGATE_BIN,
             uri);
    ck_assert_int_eq(run_all(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, hex) != NULL, "%s not in %s", hex, out);
    snprintf(cmd, sizeof(cmd), "%s export --db '%s'", QGATE_BIN, uri);
    ck_assert_int_eq(run_all(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, hex) != NULL, "%s not in %s", hex, out);
    ck_assert_ptr_null(strstr(out, "\"chain_hash\":null"));
    /* a body changed: verify says which, exit 1; the head no longer holds */
    sql(uri, tampered[0].sql);
    snprintf(cmd, sizeof(cmd), "%s verify --db '%s'", QGATE_BIN, uri);
    ck_assert_int_eq(WEXITSTATUS(run_all(cmd, out, sizeof(out))), 1);
    ck_assert_msg(strstr(out, "chain: step 4 of ticket 1 changed") != NULL,
                  "%s", out);
    qg_store_close(st);
}
END_TEST

/* The view of version 1, to make a database of that version. */
#define VIEW_V1                                                                \
    "CREATE VIEW qgate.accepted_steps AS"                                      \
    "  SELECT h.ticket, coalesce(s.name, 'default') AS source,"                \
    "  t.live_queue_id, t.appointment_id, h.seq, h.pos,"                       \
    "  e.name AS event, fs.name AS from_state, ts.name AS to_state,"           \
    "  to_timestamp(h.event_ms / 1000.0) AS event_time,"                       \
    "  h.utc_offset_s,"                                                        \
    "  to_timestamp(h.received_us / 1000000.0) AS received_time,"              \
    "  h.service_id, h.staff_id, h.late, h.released,"                          \
    "  qgate.try_jsonb(h.body) AS body,"                                       \
    "  qgate.try_text(h.body) AS body_text"                                    \
    "  FROM qgate.history h JOIN qgate.tickets t ON t.id = h.ticket"           \
    "  LEFT JOIN qgate.sources s ON s.num = h.source"                          \
    "  LEFT JOIN qgate.event_names e ON e.code = h.event"                      \
    "  LEFT JOIN qgate.state_names fs ON fs.code = h.from_state"               \
    "  LEFT JOIN qgate.state_names ts ON ts.code = h.to_state;"

/* A database of schema version 1 (no chain, no purge), with steps,
 * refusals and held deliveries: it opens only to be migrated; migrated,
 * every record is chained, in the order received, and the chain holds
 * and grows. */
START_TEST(test_pg_migrate_v1)
{
    char n[32], files[32][256], cmd[1024], out[2048], want[2048];
    uint64_t chained = 99, records;
    qg_chain_finding f;
    qg_store *st;
    qg_engine *eng;
    int rc, k, m;

    NEED_SERVER();
    st = pg_store(0);
    chained_visit(st);
    eng = tu_engine();
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, WINDOW), 0);
    ck_assert_int_eq(qg_engine_set_source(eng, "half"), 0);
    m = visit_files("walk-in", files, 32, 1);
    for (k = 0; k < m / 2; k++)
        tu_apply(eng, st, files[k]);
    ck_assert_int_eq(qg_rejections_resolve(st, 1, 0, 0), 0);
    qg_store_close(st);
    sql(uri, "DROP TABLE qgate.chain; DROP VIEW qgate.accepted_steps;"
             "ALTER TABLE qgate.history DROP COLUMN purged, DROP COLUMN "
             "body_len, DROP COLUMN body_sha256;"
             "ALTER TABLE qgate.rejections DROP COLUMN purged;"
             "DROP INDEX qgate.rejections_by_ticket;" VIEW_V1
             "UPDATE public.qgate_schema SET version = 1");
    sql_value("SELECT (SELECT count(*) FROM qgate.history) + (SELECT count(*) "
              "FROM qgate.rejections) + (SELECT count(*) FROM qgate.held)",
              n, sizeof(n));
    records = strtoull(n, NULL, 10);
    ck_assert_uint_gt(records, 12);
    sql_value("SELECT count(*) FROM qgate.held", n, sizeof(n));
    ck_assert_str_ne(n, "0");

    /* not without QG_MIGRATE, as any older schema */
    ck_assert_ptr_null(pg_open(0, &rc));
    ck_assert_int_eq(rc, QG_EFORMAT);
    ck_assert_ptr_null(pg_open(QG_RDONLY, &rc));
    ck_assert_int_eq(rc, QG_EFORMAT);
    st = pg_store(QG_MIGRATE);
    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), QG_EFORMAT);
    qg_store_close(st);
    /* qgate db migrate: qg_store_migrate(), and the records chained */
    snprintf(cmd, sizeof(cmd), "%s db migrate --db '%s' 2>&1", QGATE_BIN, uri);
    ck_assert_int_eq(run_all(cmd, out, sizeof(out)), 0);
    snprintf(want, sizeof(want),
             "qgate: %s: a store from before the hash chain: chained its "
             "%" PRIu64 " records\n%s: schema version 1 -> 2\n",
             uri, records, uri);
    ck_assert_str_eq(out, want);
    st = pg_store(0);
    ck_assert_uint_eq(chain_intact(st), records);

    /* a gate's open: nothing more to chain; what it appends links on */
    ck_assert_int_eq(qg_store_chain_migrated(st, &chained), 0);
    ck_assert_uint_eq(chained, 0);
    for (k = m / 2; k < m; k++)
        tu_apply(eng, st, files[k]);
    ck_assert_uint_gt(chain_intact(st), records + 1);
    sql_value("SELECT count(*) FROM qgate.accepted_steps WHERE NOT purged", n,
              sizeof(n));
    ck_assert_str_ne(n, "0");
    qg_engine_free(eng);
    qg_store_close(st);
}
END_TEST

/* ----- gates sharing the database ----------------------------------------- */

typedef struct racer {
    qg_store *st;
    qg_engine *eng;
    const char *body;
    size_t len;
    pthread_barrier_t *go;
    qg_result res;
    int rc;
} racer;

static void *
race(void *arg)
{
    racer *r = arg;

    pthread_barrier_wait(r->go);
    r->rc = qg_engine_apply(r->eng, r->st, r->body, r->len, 0, &r->res);
    return NULL;
}

/* Two gates receive every step of a visit at the same moment: each step
 * is accepted by one and found a duplicate by the other. */
START_TEST(test_pg_two_gates_race)
{
    pthread_barrier_t go;
    pthread_t th[2];
    racer r[2];
    qg_engine *eng;
    qg_ticket t;
    size_t i, len;
    char *body;
    int k, accepted;

    NEED_SERVER();
    eng = tu_engine();
    memset(r, 0, sizeof(r));
    r[0].st = pg_store(0);
    r[1].st = pg_store(0);
    for (i = 0; i < 9; i++) {
        body = tu_fixture(tu_walk_in[i].file, &len);
        pthread_barrier_init(&go, NULL, 2);
        for (k = 0; k < 2; k++) {
            r[k].eng = eng;
            r[k].body = body;
            r[k].len = len;
            r[k].go = &go;
            ck_assert_int_eq(pthread_create(&th[k], NULL, race, &r[k]), 0);
        }
        for (k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        pthread_barrier_destroy(&go);
        accepted = 0;
        for (k = 0; k < 2; k++) {
            ck_assert_int_eq(r[k].rc, 0);
            ck_assert_msg(r[k].res.verdict == QG_ACCEPTED ||
                              r[k].res.reason == QG_R_REDELIVERY,
                          "%s: %s", tu_walk_in[i].file, r[k].res.detail);
            accepted += r[k].res.verdict == QG_ACCEPTED;
        }
        ck_assert_int_eq(accepted, 1);
        free(body);
    }
    ck_assert_int_eq(qg_store_ticket(r[0].st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 9);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(tu_count_rejections(r[1].st), 0);
    qg_store_close(r[0].st);
    qg_store_close(r[1].st);
    qg_engine_free(eng);
}
END_TEST

/* A gate of the day race: applies every line of lines in batches of 16,
 * counting the steps it accepted. */
typedef struct day_gate {
    qg_store *st;
    qg_engine *eng;
    qg_body *lines;
    size_t n;
    uint64_t accepted;
    int failed;
} day_gate;

static void *
day_run(void *arg)
{
    day_gate *g = arg;
    qg_result res[16];
    int rcs[16];
    size_t i, k, m;

    for (i = 0; i < g->n; i += m) {
        m = g->n - i < 16 ? g->n - i : 16;
        if (qg_engine_apply_batch(g->eng, g->st, g->lines + i, m, res, rcs)) {
            g->failed++;
            continue;
        }
        for (k = 0; k < m; k++) {
            g->failed += rcs[k] != 0;
            g->accepted += rcs[k] == 0 && res[k].verdict == QG_ACCEPTED;
        }
    }
    return NULL;
}

/* Two gates apply the same day at once, each in its own order of
 * batches: every step is accepted by one of them, as by one gate alone. */
START_TEST(test_pg_two_gates_day)
{
    char cmd[1024], expected[512], *line = NULL;
    qg_body lines[2048];
    pthread_t th[2];
    day_gate g[2];
    qg_store *lm;
    qg_engine *eng;
    qg_tickets *it;
    qg_ticket t;
    qg_finding f;
    qg_result res;
    uint64_t alone = 0, records = 0, tickets = 0;
    size_t cap = 0, n = 0, i;
    ssize_t len;
    FILE *fp;
    int k;

    NEED_SERVER();
    lm = tu_store_new();
    eng = tu_engine();
    snprintf(expected, sizeof(expected), "%s/expected.json", tu_store_dir());
    snprintf(cmd, sizeof(cmd), "%s 80 5 qgate-development-secret %s 3 2 2",
             GEN_DAY, expected);
    ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
    while ((len = getline(&line, &cap, fp)) > 0 && n < 2048) {
        lines[n].body = strndup(line, (size_t)len - 1);
        lines[n++].len = (size_t)len - 1;
    }
    free(line);
    ck_assert_int_eq(pclose(fp), 0);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(
            qg_engine_apply(eng, lm, lines[i].body, lines[i].len, 0, &res), 0);
        alone += res.verdict == QG_ACCEPTED;
    }
    memset(g, 0, sizeof(g));
    for (k = 0; k < 2; k++) {
        g[k].st = pg_store(0);
        g[k].eng = eng;
        g[k].lines = lines;
        g[k].n = n;
        ck_assert_int_eq(pthread_create(&th[k], NULL, day_run, &g[k]), 0);
    }
    for (k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ck_assert_int_eq(g[0].failed + g[1].failed, 0);
    ck_assert_uint_eq(g[0].accepted + g[1].accepted, alone);
    ck_assert_int_eq(qg_tickets_open(g[0].st, &it), 0);
    while (qg_tickets_next(it, &t) == 0) {
        tickets++;
        records += t.records;
        ck_assert_int_eq(qg_store_verify_ticket(g[0].st, t.id, &f), 0);
        ck_assert_msg(!f.found, "ticket %" PRIu64 ": %s", t.id, f.what);
    }
    qg_tickets_close(it);
    ck_assert_uint_eq(tickets, 80);
    ck_assert_uint_eq(records, alone);
    /* one chain, appended to by both at once: every entry links to the
     * one before, every record is covered; the same seen by each */
    ck_assert_uint_ge(chain_intact(g[0].st), records);
    ck_assert_uint_eq(chain_intact(g[1].st), chain_intact(g[0].st));
    for (i = 0; i < n; i++)
        free((char *)lines[i].body);
    for (k = 0; k < 2; k++)
        qg_store_close(g[k].st);
    qg_store_close(lm);
    qg_engine_free(eng);
    tu_store_remove();
}
END_TEST

typedef struct expirer {
    qg_store *st;
    pthread_barrier_t *go;
    uint64_t expired;
    int rc;
} expirer;

static void *
expire(void *arg)
{
    expirer *x = arg;

    pthread_barrier_wait(x->go);
    x->rc = qg_held_expire(x->st, INT64_MAX, NULL, &x->expired);
    return NULL;
}

/* Two gates expire the same held deliveries at once: each is refused
 * once, by one of them. */
START_TEST(test_pg_two_gates_expire)
{
    pthread_barrier_t go;
    pthread_t th[2];
    expirer x[2];
    qg_store *st;
    qg_engine *eng;
    uint64_t held;
    int k;

    NEED_SERVER();
    eng = tu_engine();
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, WINDOW), 0);
    st = pg_store(0);
    for (k = 8; k >= 4; k--)
        ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[k].file).verdict,
                         QG_HELD);
    qg_store_close(st);
    memset(x, 0, sizeof(x));
    pthread_barrier_init(&go, NULL, 2);
    for (k = 0; k < 2; k++) {
        x[k].st = pg_store(0);
        x[k].go = &go;
        ck_assert_int_eq(pthread_create(&th[k], NULL, expire, &x[k]), 0);
    }
    for (k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(x[0].rc, 0);
    ck_assert_int_eq(x[1].rc, 0);
    ck_assert_uint_eq(x[0].expired + x[1].expired, 5);
    ck_assert_int_eq(qg_held_stats(x[0].st, &held, NULL), 0);
    ck_assert_uint_eq(held, 0);
    ck_assert_int_eq(tu_count_rejections(x[0].st), 5);
    qg_store_close(x[0].st);
    qg_store_close(x[1].st);
    qg_engine_free(eng);
}
END_TEST

/* The server dies: QG_EUNAVAIL, nothing written; back, and the same
 * handle goes on, with what was committed before. */
START_TEST(test_pg_server_restart)
{
    qg_tickets *it;
    int rc;
    qg_store *st;
    qg_engine *eng;
    qg_result res;
    qg_ticket t;
    size_t len;
    char *body;

    qg_store_options o = {0};

    NEED_SERVER();
    eng = tu_engine();
    /* QG_SYNC: the server is killed, not stopped, and what was committed
     * before must be there when it is back */
    o.path = uri;
    o.durability = QG_SYNC;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    /* two connections in the pool, both to die with the server */
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    tu_apply(eng, st, tu_walk_in[0].file);
    qg_tickets_close(it);
    pg_down();
    body = tu_fixture(tu_walk_in[1].file, &len);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), QG_EUNAVAIL);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_EUNAVAIL);
    ck_assert_int_eq(qg_store_probe(st), QG_EUNAVAIL);
    ck_assert_ptr_null(pg_open(0, &rc));
    ck_assert_int_eq(rc, QG_EUNAVAIL);
    ck_assert_int_eq(tu_pg_restart(), 0);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res.seq, 2);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 2);
    free(body);
    qg_store_close(st);
    qg_engine_free(eng);
}
END_TEST

static Suite *
pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("Core");

    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pg_same_as_lmdb_visits);
    tcase_add_test(tc, test_pg_same_as_lmdb_day);
    tcase_add_test(tc, test_pg_same_as_lmdb_unsigned_bound);
    tcase_add_test(tc, test_pg_reopen_keeps_everything);
    tcase_add_test(tc, test_pg_rdonly_refuses_writes);
    tcase_add_test(tc, test_pg_schema_version);
    tcase_add_test(tc, test_pg_migrate_lmdb);
    tcase_add_test(tc, test_pg_outbox_sticks);
    tcase_add_test(tc, test_pg_outbox_same_as_lmdb);
    tcase_add_test(tc, test_pg_purge_and_resend_ordered);
    tcase_add_test(tc, test_pg_claims_do_not_pile_up);
    tcase_add_test(tc, test_pg_chain_insert_prepared_once);
    tcase_add_test(tc, test_pg_chain_batch_of_600);
    tcase_add_test(tc, test_pg_durability);
    tcase_add_test(tc, test_pg_view_and_notify);
    tcase_add_test(tc, test_pg_cli_db);
    tcase_add_loop_test(tc, test_pg_chain_tampered, 0,
                        sizeof(tampered) / sizeof(*tampered));
    tcase_add_test(tc, test_pg_cli_chain);
    tcase_add_test(tc, test_pg_migrate_v1);
    tcase_add_test(tc, test_pg_two_gates_race);
    tcase_add_test(tc, test_pg_two_gates_day);
    tcase_add_test(tc, test_pg_two_gates_expire);
    tcase_add_test(tc, test_pg_server_restart);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (!tu_pg_available())
        return 77; /* skipped: tu_pg_available() said why */
    return tu_run(pg_suite());
}
