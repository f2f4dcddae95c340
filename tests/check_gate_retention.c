/*
 * check_gate_retention.c - `qgate serve` end to end with what keeps its
 * data: `qgate backup` while the gate takes deliveries, and the daily
 * purge of --retention.
 *
 * The gate, the client and the fake HIS are in gate_harness.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <lmdb.h>

#include "gate_harness.h"

extern char **environ;

/* Starts `qgate backup --db db dest` and returns at once. */
static pid_t
backup_start(const char *dest)
{
    char *argv[] = {(char *)QGATE_BIN, "backup", "--db", db,
                    (char *)dest,      NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;

    ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, logpath,
                                     O_WRONLY | O_APPEND | O_CREAT, 0600);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, logpath,
                                     O_WRONLY | O_APPEND | O_CREAT, 0600);
    ck_assert_int_eq(posix_spawn(&pid, QGATE_BIN, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Posts body and requires a 200. */
static void
post_ok(char *body, size_t len)
{
    answer a;

    ck_assert_ptr_nonnull(body);
    http("POST", WEBHOOK, as_json, body, len, &a);
    free(body);
    ck_assert_msg(a.status == 200, "answered %ld: %s", a.status,
                  a.body ? a.body : "");
    answer_free(&a);
}

/* Serving, for entry id: legal once it has joined. */
static char *
serving_body(long long id, size_t *len)
{
    return step_body(id, "live_queue_updated", "2024-03-05T09:20:00+08:00",
                     "{\"name\":\"SERVING\",\"value\":4}", "Serving", len);
}

/* Every ticket of the copy is a ticket of the source (by live-queue id)
 * whose history begins with the copy's, step for step: the copy is the
 * store as it was at one moment.  Returns the copy's records. */
static uint64_t
copy_is_prefix(qg_store *copy, qg_store *src)
{
    qg_tickets *it = NULL;
    qg_history *hc = NULL, *hs = NULL;
    qg_ticket t, u;
    qg_record rc_, rs;
    uint64_t records = 0;
    int rc;

    ck_assert_int_eq(qg_tickets_open(copy, &it), 0);
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        ck_assert_int_eq(
            qg_store_ticket(src, QG_ID_LIVE_QUEUE, t.live_queue_id, &u), 0);
        ck_assert_uint_eq(u.id, t.id);
        ck_assert_uint_le(t.records, u.records);
        ck_assert_int_eq(
            qg_history_open_order(copy, t.id, QG_ARRIVAL_ORDER, &hc), 0);
        ck_assert_int_eq(
            qg_history_open_order(src, u.id, QG_ARRIVAL_ORDER, &hs), 0);
        while (qg_history_next(hc, &rc_) == 0) {
            ck_assert_int_eq(qg_history_next(hs, &rs), 0);
            ck_assert_uint_eq(rc_.seq, rs.seq);
            ck_assert_int_eq(rc_.event, rs.event);
            ck_assert_int_eq(memcmp(rc_.digest, rs.digest, 32), 0);
            ck_assert_uint_eq(rc_.body_len, rs.body_len);
            ck_assert_int_eq(memcmp(rc_.body, rs.body, rs.body_len), 0);
            records++;
        }
        qg_history_close(hc);
        qg_history_close(hs);
    }
    ck_assert_int_eq(rc, QG_NOTFOUND);
    qg_tickets_close(it);
    return records;
}

/*
 * Three backups taken while deliveries flow: each is a store that opens
 * and verifies, and each ticket in it holds a prefix of the ticket's
 * history in the store the gate went on writing.  The deliveries are
 * joins and, one behind, the same entries being served, so that a copy taken
 * between the two steps of a ticket holds its first step alone.
 */
START_TEST(test_backup_while_gate_takes_deliveries)
{
    enum { N = 240, BACKUPS = 3 };
    char dest[BACKUPS][128], out[4096];
    pid_t pid[BACKUPS];
    qg_store *src, *copy;
    qg_store_options o;
    size_t len;
    char *body;
    int i, b = 0, status;
    uint64_t records;

    gate_start(NULL);
    for (i = 0; i < N; i++) {
        if (i % (N / BACKUPS) == N / BACKUPS / 2 && b < BACKUPS) {
            snprintf(dest[b], sizeof(dest[b]), "%s/backup-%d", work, b);
            pid[b] = backup_start(dest[b]);
            b++;
        }
        body = join_body(70000 + i, &len);
        post_ok(body, len);
        if (i > 0) {
            body = serving_body(70000 + i - 1, &len);
            post_ok(body, len);
        }
    }
    ck_assert_int_eq(b, BACKUPS);
    for (b = 0; b < BACKUPS; b++) {
        ck_assert_int_eq(waitpid(pid[b], &status, 0), pid[b]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "backup %d failed; see %s", b, logpath);
    }
    gate_stop();

    src = store_ro();
    for (b = 0; b < BACKUPS; b++) {
        const char *verify[] = {"verify", "--db", dest[b], NULL};

        ck_assert_int_eq(run_cli(verify, out, sizeof(out)), 0);
        memset(&o, 0, sizeof(o));
        o.path = dest[b];
        o.flags = QG_RDONLY;
        ck_assert_int_eq(qg_store_open(&o, &copy), 0);
        records = copy_is_prefix(copy, src);
        ck_assert_msg(records > 0, "backup %d is empty", b);
        qg_store_close(copy);
    }
    qg_store_close(src);
}
END_TEST

/*
 * Makes ticket's steps `days` days older than they are: their received_us,
 * the time a purge compares, moved back in the history database itself,
 * with LMDB and no gate running.  What a store kept for days looks like.
 * The hash chain would rightly call that an edit: the chain goes too, so
 * the store is one from before the chain, whose records are as old as
 * they say, and the gate's open chains it as it is.
 */
static void
age_ticket(uint64_t ticket, int64_t days)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    unsigned char *copy;
    uint64_t t, us;
    int i, rc, n = 0;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
    ck_assert_int_eq(mdb_env_open(env, db, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "history", 0, &dbi), 0);
    ck_assert_int_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const unsigned char *key = k.mv_data;

        for (t = 0, i = 0; i < 8; i++)
            t = t << 8 | key[i];
        if (t != ticket)
            continue;
        ck_assert_ptr_nonnull(copy = malloc(v.mv_size));
        memcpy(copy, v.mv_data, v.mv_size);
        for (us = 0, i = 0; i < 8; i++)
            us = us << 8 | copy[i];
        us -= (uint64_t)(days * 86400 * 1000000);
        for (i = 7; i >= 0; i--, us >>= 8)
            copy[i] = (unsigned char)us;
        v.mv_data = copy;
        ck_assert_int_eq(mdb_cursor_put(cur, &k, &v, MDB_CURRENT), 0);
        free(copy);
        n++;
    }
    ck_assert_int_eq(rc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
    ck_assert_int_eq(mdb_dbi_open(txn, "chain", 0, &dbi), 0);
    ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "chain_tickets", 0, &dbi), 0);
    ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    k.mv_size = 5;
    k.mv_data = "chain";
    ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    ck_assert_int_gt(n, 0);
}

/* How many of ticket's records have their body, and how many not. */
static void
bodies(qg_store *st, uint64_t ticket, int *kept, int *purged)
{
    qg_history *h = NULL;
    qg_record r;

    *kept = *purged = 0;
    ck_assert_int_eq(qg_history_open(st, ticket, &h), 0);
    while (qg_history_next(h, &r) == 0)
        ++*(r.body ? kept : purged);
    qg_history_close(h);
}

/*
 * A store with a visit three days old and one of today, and a gate
 * started with --retention 1: at start it purges the old visit's bodies
 * and logs the count, keeps today's, still finds a redelivery of an old
 * step, and the store verifies afterwards.
 */
START_TEST(test_retention_purges_old_bodies_at_start)
{
    char out[4096];
    const char *apply[] = {"apply",
                           "--db",
                           db,
                           "--secret-file",
                           QG_FIXTURES "/secret",
                           QG_FIXTURES "/" WALK_IN "01-join-live-queue.json",
                           QG_FIXTURES "/" WALK_IN "02-alert.json",
                           QG_FIXTURES "/" WALK_IN "03-move.json",
                           QG_FIXTURES "/" NO_SHOW "01-join-live-queue.json",
                           QG_FIXTURES "/" NO_SHOW "02-no-show.json",
                           NULL};
    const char *verify[] = {"verify", "--db", db, NULL};
    const char *opts[] = {"--retention", "1", NULL};
    qg_store *st;
    char *text = NULL;
    answer a;
    int ok, kept, purged;
    uint64_t old, recent;

    ck_assert_int_eq(run_cli(apply, out, sizeof(out)), 0);
    st = store_ro();
    old = ticket_of(st, 30001);
    recent = ticket_of(st, 30003);
    qg_store_close(st);
    age_ticket(old, 3);

    gate_start(opts);
    WAIT_FOR(ok,
             (free(text), text = read_from(logpath, 0),
              strstr(text, "\"msg\":\"purged\"") != NULL),
             WAIT_MS);
    ck_assert_msg(ok && strstr(text, "\"records\":3,\"rejections\":0,") &&
                      strstr(text, "\"retention_days\":1,"),
                  "the gate did not log the purge of 3 records: %s", text);
    free(text);
    post_fixture(WALK_IN "02-alert.json", &a);
    expect(&a, status_for("duplicate", "redelivery"), "duplicate", "redelivery",
           "a redelivery of a purged step");
    answer_free(&a);
    http("GET", "/tickets/30001/history", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_msg(a.body &&
                      strstr(a.body, "\"body_bytes\":0,\"purged\":true") &&
                      !strstr(a.body, "\"purged\":false"),
                  "the read API does not show the bodies purged: %s", a.body);
    answer_free(&a);
    gate_stop();

    st = store_ro();
    bodies(st, old, &kept, &purged);
    ck_assert_int_eq(kept, 0);
    ck_assert_int_eq(purged, 3);
    bodies(st, recent, &kept, &purged);
    ck_assert_int_eq(kept, 2);
    ck_assert_int_eq(purged, 0);
    qg_store_close(st);
    ck_assert_int_eq(run_cli(verify, out, sizeof(out)), 0);
}
END_TEST

/* Without --retention nothing is purged, however old. */
START_TEST(test_no_retention_keeps_everything)
{
    char out[4096];
    const char *apply[] = {"apply",
                           "--db",
                           db,
                           "--secret-file",
                           QG_FIXTURES "/secret",
                           QG_FIXTURES "/" WALK_IN "01-join-live-queue.json",
                           NULL};
    qg_store *st;
    char *text;
    int kept, purged;
    uint64_t old;

    ck_assert_int_eq(run_cli(apply, out, sizeof(out)), 0);
    st = store_ro();
    old = ticket_of(st, 30001);
    qg_store_close(st);
    age_ticket(old, 3000);
    gate_start(NULL);
    sleep_ms(300);
    gate_stop();
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "\"msg\":\"purged\"") == NULL &&
                      strstr(text, "\"retention_days\":0,") != NULL,
                  "%s", text);
    free(text);
    st = store_ro();
    bodies(st, old, &kept, &purged);
    ck_assert_int_eq(kept, 1);
    ck_assert_int_eq(purged, 0);
    qg_store_close(st);
}
END_TEST

Suite *gate_retention_suite(void);

Suite *
gate_retention_suite(void)
{
    Suite *s = suite_create("gate_retention");
    TCase *tc = tcase_create("Retention");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_backup_while_gate_takes_deliveries);
    tcase_add_test(tc, test_retention_purges_old_bodies_at_start);
    tcase_add_test(tc, test_no_retention_keeps_everything);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_retention_suite());
}
