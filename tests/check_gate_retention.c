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

Suite *gate_retention_suite(void);

Suite *
gate_retention_suite(void)
{
    Suite *s = suite_create("gate_retention");
    TCase *tc = tcase_create("Retention");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_backup_while_gate_takes_deliveries);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_retention_suite());
}
