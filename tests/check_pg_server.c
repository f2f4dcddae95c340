/*
 * check_pg_server.c - the throwaway PostgreSQL server the Check suites start
 * (tu_pg_* in testutil.c, tests/pg_server.sh), seen through libpq as the
 * store will see it: it accepts connections at the URI it gives, runs as no
 * root, keeps committed rows over a restart and over a crash, leaves no
 * server behind, neither when stopped nor when its test dies, and holds
 * none of the test's file descriptors.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <libpq-fe.h>

#include "testutil.h"

static char uri[512];

/* Whether process pid runs (a zombie does not). */
static int
alive(long pid)
{
    char path[64], stat[256];
    FILE *f;
    const char *p;
    int running = 0;

    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    if (fgets(stat, sizeof(stat), f) != NULL &&
        (p = strrchr(stat, ')')) != NULL)
        running = p[1] == ' ' && p[2] != 'Z';
    fclose(f);
    return running;
}

/* The postmaster's pid, from the file the script writes in dir. */
static long
server_pid(const char *dir)
{
    char path[512];
    long pid = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/pid", dir);
    ck_assert_msg((f = fopen(path, "r")) != NULL, "no %s", path);
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return pid;
}

/* Waits up to seconds for pid to be gone; whether it is. */
static int
gone_within(long pid, int seconds)
{
    int i;

    for (i = 0; i < seconds * 10 && alive(pid); i++)
        usleep(100 * 1000);
    return !alive(pid);
}

static PGconn *
connect_ok(void)
{
    PGconn *c = PQconnectdb(uri);

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", uri,
                  PQerrorMessage(c));
    return c;
}

/* Runs sql, which must succeed; its first value ("" if none) in out. */
static void
exec_ok(PGconn *c, const char *sql, char *out, size_t len)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);

    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s",
                  sql, PQerrorMessage(c));
    if (out != NULL)
        snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

static void
pg_up(void)
{
    ck_assert_msg(tu_pg_start(uri, sizeof(uri)) == 0,
                  "tu_pg_start failed (its reason is on stderr)");
}

static void
pg_down(void)
{
    tu_pg_stop();
}

START_TEST(test_pg_start_gives_a_working_uri)
{
    char want[512], v[64];
    struct stat sb;
    PGconn *c;

    snprintf(want, sizeof(want), "postgresql:///qgate?host=%s&user=qgate",
             tu_pg_dir());
    ck_assert_str_eq(uri, want);
    c = connect_ok();
    exec_ok(c, "SELECT current_user", v, sizeof(v));
    ck_assert_str_eq(v, "qgate");
    exec_ok(c, "SELECT current_database()", v, sizeof(v));
    ck_assert_str_eq(v, "qgate");
    exec_ok(c,
            "SELECT pg_encoding_to_char(encoding) FROM pg_database "
            "WHERE datname = 'qgate'",
            v, sizeof(v));
    ck_assert_str_eq(v, "UTF8");
    /* A socket in the directory only: no TCP port to collide on. */
    exec_ok(c, "SHOW listen_addresses", v, sizeof(v));
    ck_assert_str_eq(v, "");
    PQfinish(c);
    /* initdb refuses root, so as root the server runs as another user. */
    snprintf(want, sizeof(want), "/proc/%ld", server_pid(tu_pg_dir()));
    ck_assert_int_eq(stat(want, &sb), 0);
    ck_assert_uint_ne(sb.st_uid, 0);
}
END_TEST

START_TEST(test_pg_restart_keeps_committed_rows)
{
    char v[64];
    long before;
    PGconn *c = connect_ok();
    PGresult *r;

    exec_ok(c, "CREATE TABLE t (k int PRIMARY KEY, v text)", NULL, 0);
    exec_ok(c, "INSERT INTO t VALUES (1, 'kept')", NULL, 0);
    before = server_pid(tu_pg_dir());
    ck_assert_int_eq(tu_pg_restart(), 0);
    ck_assert_int_ne(server_pid(tu_pg_dir()), before);
    ck_assert(!alive(before));
    /* The old session went with the old server. */
    r = PQexec(c, "SELECT 1");
    ck_assert_int_ne(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQreset(c);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    exec_ok(c, "SELECT v FROM t WHERE k = 1", v, sizeof(v));
    ck_assert_str_eq(v, "kept");
    PQfinish(c);
}
END_TEST

START_TEST(test_pg_kill_drops_sessions_and_restart_recovers)
{
    char v[64];
    long pid = server_pid(tu_pg_dir());
    PGconn *c = connect_ok(), *d;
    PGresult *r;

    exec_ok(c, "CREATE TABLE t (k int PRIMARY KEY, v text)", NULL, 0);
    exec_ok(c, "INSERT INTO t VALUES (1, 'committed')", NULL, 0);
    ck_assert_int_eq(tu_pg_kill(), 0);
    ck_assert_msg(gone_within(pid, 10), "server %ld still runs", pid);
    r = PQexec(c, "SELECT 1");
    ck_assert_int_ne(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    d = PQconnectdb(uri);
    ck_assert_int_eq(PQstatus(d), CONNECTION_BAD);
    PQfinish(d);
    /* Back after crash recovery, with what was committed. */
    ck_assert_int_eq(tu_pg_restart(), 0);
    PQreset(c);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    exec_ok(c, "SELECT v FROM t WHERE k = 1", v, sizeof(v));
    ck_assert_str_eq(v, "committed");
    PQfinish(c);
}
END_TEST

START_TEST(test_pg_stop_leaves_nothing)
{
    char dir[256];
    long pid = server_pid(tu_pg_dir());
    struct stat sb;
    PGconn *c;

    snprintf(dir, sizeof(dir), "%s", tu_pg_dir());
    tu_pg_stop();
    ck_assert(!alive(pid));
    ck_assert_msg(stat(dir, &sb) != 0, "%s is still there", dir);
    ck_assert_str_eq(tu_pg_dir(), "");
    c = PQconnectdb(uri);
    ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
    PQfinish(c);
    tu_pg_stop(); /* twice is harmless */
}
END_TEST

/* A test process that dies with its server running (a crash, a failed
 * assertion in fork mode) leaves neither the server nor its directory. */
START_TEST(test_pg_dead_owner_leaves_no_server)
{
    char msg[512] = "", dir[256];
    struct stat sb;
    int fd[2], status, i;
    long pid;
    pid_t child;

    ck_assert_int_eq(pipe(fd), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        FILE *f;

        close(fd[0]);
        if (tu_pg_start(uri, sizeof(uri)) != 0)
            _exit(1);
        snprintf(msg, sizeof(msg), "%s/pid", tu_pg_dir());
        if ((f = fopen(msg, "r")) == NULL || fscanf(f, "%ld", &pid) != 1)
            _exit(1);
        snprintf(msg, sizeof(msg), "%ld %s", pid, tu_pg_dir());
        if (write(fd[1], msg, strlen(msg)) < 0)
            _exit(1);
        _exit(0); /* no tu_pg_stop() */
    }
    close(fd[1]);
    ck_assert_int_gt(read(fd[0], msg, sizeof(msg) - 1), 0);
    close(fd[0]);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(sscanf(msg, "%ld %255s", &pid, dir), 2);
    ck_assert_msg(gone_within(pid, 15), "server %ld outlived its owner", pid);
    for (i = 0; i < 50 && stat(dir, &sb) == 0; i++)
        usleep(100 * 1000);
    ck_assert_msg(stat(dir, &sb) != 0, "%s outlived its owner", dir);
}
END_TEST

/* The server and its watchdog outlive tu_pg_start(); they must not hold the
 * test's descriptors, or a pipe the test reads to its end would never end. */
START_TEST(test_pg_server_holds_no_descriptor_of_the_test)
{
    struct pollfd pfd;
    char c;
    int fd[2];

    ck_assert_int_eq(pipe(fd), 0);
    pg_up();
    close(fd[1]);
    pfd.fd = fd[0];
    pfd.events = POLLIN;
    ck_assert_msg(poll(&pfd, 1, 3000) == 1,
                  "the pipe's write end is held open past tu_pg_start()");
    ck_assert_int_eq(read(fd[0], &c, 1), 0);
    close(fd[0]);
    pg_down();
}
END_TEST

static Suite *
pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("Server");

    tcase_add_checked_fixture(tc, pg_up, pg_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pg_start_gives_a_working_uri);
    tcase_add_test(tc, test_pg_restart_keeps_committed_rows);
    tcase_add_test(tc, test_pg_kill_drops_sessions_and_restart_recovers);
    tcase_add_test(tc, test_pg_stop_leaves_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("Lifetime");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pg_dead_owner_leaves_no_server);
    tcase_add_test(tc, test_pg_server_holds_no_descriptor_of_the_test);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (!tu_pg_available())
        return 77; /* ctest's SKIP_RETURN_CODE */
    return tu_run(pg_suite());
}
