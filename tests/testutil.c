/*
 * testutil.c - helpers the Check suites share.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "testutil.h"

static char store_dir[256];
static char pg_db[64]; /* the database of a PostgreSQL store, else "" */
static char pg_dir[256];

const tu_step tu_walk_in[9] = {
    {TU_WALK_IN "01-join-live-queue.json", QG_EV_JOIN, QG_ST_NEW, QG_ST_QUEUED},
    {TU_WALK_IN "02-alert.json", QG_EV_ALERT, QG_ST_QUEUED, QG_ST_QUEUED},
    {TU_WALK_IN "03-move.json", QG_EV_MOVE, QG_ST_QUEUED, QG_ST_MOVED},
    {TU_WALK_IN "04-serving.json", QG_EV_SERVE, QG_ST_MOVED, QG_ST_SERVING},
    {TU_WALK_IN "05-served.json", QG_EV_COMPLETE, QG_ST_SERVING, QG_ST_SERVED},
    {TU_WALK_IN "06-pharmacy-received.json", QG_EV_RX_RECEIVE, QG_ST_SERVED,
     QG_ST_PHARMACY_RECEIVED},
    {TU_WALK_IN "07-pharmacy-dispensed.json", QG_EV_RX_DISPENSE,
     QG_ST_PHARMACY_RECEIVED, QG_ST_PHARMACY_DISPENSED},
    {TU_WALK_IN "08-billing-paid.json", QG_EV_PAY, QG_ST_PHARMACY_DISPENSED,
     QG_ST_PAID},
    {TU_WALK_IN "09-end-visit.json", QG_EV_END_VISIT, QG_ST_PAID,
     QG_ST_VISIT_ENDED},
};

char *
tu_fixture(const char *rel, size_t *len)
{
    char path[1024];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof(path), "%s/%s", QG_FIXTURES, rel);
    f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The PostgreSQL runs of the suites (tests/with_pg.sh): the server's
 * socket directory, NULL for LMDB. */
static const char *
pg_host(void)
{
    const char *h = getenv("QGATE_TEST_PG_HOST");

    return h && h[0] ? h : NULL;
}

int
tu_store_is_pg(void)
{
    return pg_host() != NULL;
}

/* Runs sql on database db of the test server; fails the test on error. */
static void
pg_admin(const char *db, const char *sql)
{
    char conninfo[512];
    PGconn *c;
    PGresult *r;

    snprintf(conninfo, sizeof(conninfo), "postgresql:///%s?host=%s&user=qgate",
             db, pg_host());
    c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", conninfo,
                  PQerrorMessage(c));
    r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* A fresh database on the test server for each store: its name, made of
 * the pid (Check forks a process per test) and a counter. */
static void
pg_store_new(void)
{
    static unsigned n;
    char sql[128];

    snprintf(pg_db, sizeof(pg_db), "qgate_t%ld_%u", (long)getpid(), ++n);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", pg_db);
    pg_admin("qgate", sql);
    snprintf(store_dir, sizeof(store_dir),
             "postgresql:///%s?host=%s&user=qgate", pg_db, pg_host());
}

qg_store *
tu_store_new(void)
{
    qg_store_options o = {0};
    qg_store *st = NULL;

    if (pg_host()) {
        pg_store_new();
    } else {
        snprintf(store_dir, sizeof(store_dir), "/tmp/qgate-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(store_dir));
    }
    o.path = store_dir;
    o.durability = QG_NOSYNC;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    return st;
}

qg_store *
tu_store_reopen(qg_store *st, unsigned flags)
{
    qg_store_options o = {0};

    qg_store_close(st);
    o.path = store_dir;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    st = NULL;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    return st;
}

const char *
tu_store_dir(void)
{
    return store_dir;
}

void
tu_remove_dir(const char *dir)
{
    char path[512];
    struct dirent *e;
    struct stat sb;
    DIR *d;

    if (dir == NULL || dir[0] == '\0' || (d = opendir(dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            tu_remove_dir(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void
tu_store_remove(void)
{
    char sql[128];

    if (pg_db[0]) {
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", pg_db);
        pg_admin("qgate", sql);
        pg_db[0] = '\0';
    } else {
        tu_remove_dir(store_dir);
    }
    store_dir[0] = '\0';
}

qg_engine *
tu_engine(void)
{
    qg_engine *eng = NULL;
    char path[1024], err[256];

    snprintf(path, sizeof(path), "%s/secret", QG_FIXTURES);
    ck_assert_int_eq(qg_engine_new(&eng), 0);
    ck_assert_msg(qg_engine_load_secret(eng, path, err, sizeof(err)) == 0, "%s",
                  err);
    return eng;
}

qg_result
tu_apply(qg_engine *eng, qg_store *st, const char *rel)
{
    qg_result res;
    size_t len;
    char *body = tu_fixture(rel, &len);
    int rc = qg_engine_apply(eng, st, body, len, 0, &res);

    free(body);
    ck_assert_msg(rc == 0, "%s: %s", rel, qg_strerror(rc));
    return res;
}

int
tu_count_rejections(qg_store *st)
{
    qg_rejections *r = NULL;
    qg_rejection rej;
    int n = 0, rc;

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while ((rc = qg_rejections_next(r, &rej)) == 0)
        n++;
    qg_rejections_close(r);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    return n;
}

size_t
tu_check_refusals_by_ticket(qg_store *st)
{
    enum { MAX = 4096 };
    static uint64_t ids[MAX], tickets[MAX];
    qg_rejections *r = NULL;
    qg_rejection rej;
    uint64_t none = 1;
    size_t n = 0, i, j, at, checked = 0;
    int rc;

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while ((rc = qg_rejections_next(r, &rej)) == 0) {
        ck_assert_uint_lt(n, MAX);
        ids[n] = rej.id;
        tickets[n++] = rej.ticket;
        if (rej.ticket >= none)
            none = rej.ticket + 1;
    }
    qg_rejections_close(r);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    for (i = 0; i <= n; i++) {
        uint64_t t = i < n ? tickets[i] : none; /* and one with none */

        if (t == 0)
            continue;
        for (j = 0; j < i; j++)
            if (tickets[j] == t)
                break;
        if (j < i)
            continue; /* seen */
        ck_assert_int_eq(qg_rejections_open_ticket(st, t, &r), 0);
        at = i;
        while ((rc = qg_rejections_next(r, &rej)) == 0) {
            while (at < n && tickets[at] != t)
                at++;
            ck_assert_msg(at < n,
                          "ticket %" PRIu64 ": refusal %" PRIu64
                          " is not in the log under it",
                          t, rej.id);
            ck_assert_uint_eq(rej.id, ids[at]);
            ck_assert_uint_eq(rej.ticket, t);
            at++;
        }
        ck_assert_int_eq(rc, QG_NOTFOUND);
        while (at < n && tickets[at] != t)
            at++;
        ck_assert_msg(at == n,
                      "ticket %" PRIu64 ": refusal %" PRIu64
                      " of the log is missing",
                      t, at < n ? ids[at] : 0);
        qg_rejections_close(r);
        checked++;
    }
    ck_assert_int_eq(qg_rejections_open_ticket(st, 0, &r), QG_EINVAL);
    return checked;
}

/* Asserts that summary s is record r's summary, fields a summary has not
 * cleared. */
static void
check_summary(const qg_record *s, const qg_record *r)
{
    static const unsigned char zero[32];

    ck_assert_msg(s->ticket == r->ticket && s->seq == r->seq,
                  "summary of %" PRIu64 "/%" PRIu32 " where the record is "
                  "%" PRIu64 "/%" PRIu32,
                  s->ticket, s->seq, r->ticket, r->seq);
    ck_assert_int_eq(s->event_ms, r->event_ms);
    ck_assert_int_eq(s->event, r->event);
    ck_assert_int_eq(s->from, r->from);
    ck_assert_int_eq(s->to, r->to);
    ck_assert_int_eq(s->service_id, r->service_id);
    ck_assert_uint_eq(s->pos, r->pos);
    ck_assert_int_eq(s->late, r->late);
    ck_assert_int_eq(s->released, r->released);
    ck_assert_int_eq(s->received_us, 0);
    ck_assert_int_eq(s->utc_offset_s, 0);
    ck_assert_int_eq(s->staff_id, 0);
    ck_assert_mem_eq(s->digest, zero, sizeof(s->digest));
    ck_assert_str_eq(s->machine, "");
    ck_assert_ptr_null(s->body);
    ck_assert_uint_eq(s->body_len, 0);
}

/* The records of ticket (0: every ticket) in order, in a new array of *n
 * (body not kept). */
static qg_record *
read_records(qg_store *st, uint64_t ticket, qg_order order, size_t *n)
{
    qg_record *all = NULL, r;
    qg_history *h = NULL;
    size_t cap = 0;
    int rc;

    *n = 0;
    ck_assert_int_eq(qg_history_open_order(st, ticket, order, &h), 0);
    while ((rc = qg_history_next(h, &r)) == 0) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            ck_assert_ptr_nonnull(all = realloc(all, cap * sizeof(*all)));
        }
        all[(*n)++] = r;
    }
    ck_assert_int_eq(rc, QG_NOTFOUND);
    qg_history_close(h);
    return all;
}

/* The records of ticket (0: every ticket) in order, whole and summed up,
 * compared; returns how many. */
static size_t
check_summaries_of(qg_store *st, uint64_t ticket, qg_order order)
{
    size_t n, ns, i;
    qg_record *r = read_records(st, ticket, order, &n),
              *s = read_records(st, ticket, order | QG_SUMMARY, &ns);

    ck_assert_uint_eq(ns, n);
    for (i = 0; i < n; i++)
        check_summary(&s[i], &r[i]);
    free(r);
    free(s);
    return n;
}

size_t
tu_check_summaries(qg_store *st)
{
    size_t n, i, got;
    qg_record *all = read_records(st, 0, QG_ARRIVAL_ORDER, &n);

    ck_assert_uint_eq(check_summaries_of(st, 0, QG_EVENT_ORDER), n);
    ck_assert_uint_eq(check_summaries_of(st, 0, QG_ARRIVAL_ORDER), n);
    /* each ticket alone, as the console's ticket page would walk it */
    for (i = 0; i < n; i++) {
        if (all[i].seq != 1)
            continue;
        got = check_summaries_of(st, all[i].ticket, QG_EVENT_ORDER);
        ck_assert_uint_eq(
            check_summaries_of(st, all[i].ticket, QG_ARRIVAL_ORDER), got);
    }
    free(all);
    return n;
}

int
tu_pg_available(void)
{
    const char *ci = getenv("CI");

    if (system("sh '" QG_PG_SERVER "' bindir >/dev/null 2>&1") == 0)
        return 1;
    if (ci != NULL && ci[0] != '\0') {
        fprintf(stderr, "CI is set and the PostgreSQL server binaries "
                        "are missing (.ci/deps-test installs postgresql): "
                        "the PostgreSQL cases run, and fail\n");
        return 1;
    }
    fprintf(stderr, "no PostgreSQL server binaries (initdb, pg_ctl, postgres "
                    "and psql, on PATH or in /usr/lib/postgresql/*/bin; "
                    "Debian: apt-get install postgresql): skipping the "
                    "PostgreSQL cases\n");
    return 0;
}

/* Runs `pg_server.sh command pg_dir`, with this process as the server's
 * owner if owner is set; its first line of output in out (when out is not
 * NULL).  0 if it exits 0.  Not popen(): the script's watchdog and the
 * server outlive the call, and must not hold this process's other file
 * descriptors (a pipe a test reads to its end, say), so the child closes
 * every one but the standard three before it runs the script. */
static int
pg_server(const char *command, int owner, char *out, size_t len)
{
    char pid[32] = "", line[512] = "";
    int fd[2], status, max;
    FILE *p;
    pid_t child;

    if (owner)
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    fflush(NULL);
    if (pipe(fd) != 0)
        return -1;
    if ((child = fork()) < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (child == 0) {
        if (dup2(fd[1], STDOUT_FILENO) < 0)
            _exit(127);
        max = (int)sysconf(_SC_OPEN_MAX);
        if (max <= 0 || max > 65536)
            max = 65536;
        for (int i = STDERR_FILENO + 1; i < max; i++)
            close(i);
        execl("/bin/sh", "sh", QG_PG_SERVER, command, pg_dir,
              owner ? pid : (char *)NULL, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    if ((p = fdopen(fd[0], "r")) == NULL) {
        close(fd[0]);
        waitpid(child, &status, 0);
        return -1;
    }
    if (fgets(line, sizeof(line), p) == NULL)
        line[0] = '\0';
    while (fgetc(p) != EOF) /* the rest, so that it does not block */
        ;
    fclose(p);
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    line[strcspn(line, "\n")] = '\0';
    if (out != NULL) {
        if (strlen(line) >= len) {
            fprintf(stderr, "tu_pg: %s: URI longer than %zu bytes\n", line,
                    len);
            return -1;
        }
        memcpy(out, line, strlen(line) + 1);
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int
tu_pg_start(char *uri, size_t len)
{
    if (pg_dir[0] != '\0') {
        fprintf(stderr, "tu_pg_start: a server already runs in %s\n", pg_dir);
        return -1;
    }
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/qgate-pg-XXXXXX");
    if (mkdtemp(pg_dir) == NULL) {
        perror("tu_pg_start: mkdtemp");
        pg_dir[0] = '\0';
        return -1;
    }
    /* Owned by this process: if it dies first, the watchdog stops it. */
    if (pg_server("start", 1, uri, len) != 0) {
        tu_pg_stop();
        return -1;
    }
    return 0;
}

int
tu_pg_restart(void)
{
    return pg_dir[0] == '\0' ? -1 : pg_server("restart", 0, NULL, 0);
}

int
tu_pg_kill(void)
{
    return pg_dir[0] == '\0' ? -1 : pg_server("kill", 0, NULL, 0);
}

void
tu_pg_stop(void)
{
    if (pg_dir[0] == '\0')
        return;
    pg_server("stop", 0, NULL, 0);
    tu_remove_dir(pg_dir);
    pg_dir[0] = '\0';
}

const char *
tu_pg_dir(void)
{
    return pg_dir;
}

int
tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

json_object *
tu_json(const char *text)
{
    json_object *o = json_tokener_parse(text);

    ck_assert_msg(o != NULL, "not JSON: %s", text);
    return o;
}

json_object *
tu_get(json_object *o, const char *key)
{
    json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s", key,
                  json_object_to_json_string(o));
    return v;
}

const char *
tu_gets(json_object *o, const char *key)
{
    return json_object_get_string(tu_get(o, key));
}
