/*
 * check_gate_reorder.c - `qgate serve` end to end: held and late steps
 * through the gate.
 *
 * The gate, the client and the fake HIS are in gate_harness.h.
 */
#define _GNU_SOURCE /* prlimit() */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gate_harness.h"

/* ----- Reorder ---------------------------------------------------------- */

/*
 * The walk-in visit out of order through the gate: an alert after the
 * move is accepted late, served before serving is held (202) and released
 * by serving.  The HIS gets the steps in the order they were accepted,
 * the late one marked with its place in event time.
 */
START_TEST(test_reorder_held_and_late_through_the_gate)
{
    static const struct {
        int file; /* index in walk_in_files */
        long status;
        const char *verdict, *code;
        int late;
    } order[] = {
        {0, 200, "accepted", "none", 0}, {2, 200, "accepted", "none", 0},
        {1, 200, "accepted", "none", 1}, {4, 202, "held", "early", 0},
        {3, 200, "accepted", "none", 0}, {5, 200, "accepted", "none", 0},
        {6, 200, "accepted", "none", 0}, {7, 200, "accepted", "none", 0},
        {8, 200, "accepted", "none", 0},
    };
    /* What the HIS receives, in order: the file, X-Qgate-Position (NULL
     * for the move, whose place is 2 or 3 as it was sent before or after
     * the late alert came) and X-Qgate-Late. */
    static const struct {
        int file;
        const char *pos, *late;
    } his_order[] = {{0, "1", "false"}, {2, NULL, "false"}, {1, "2", "true"},
                     {3, "4", "false"}, {4, "5", "false"},  {5, "6", "false"},
                     {6, "7", "false"}, {7, "8", "false"},  {8, "9", "false"}};
    const char *opts[] = {"--upstream",
                          NULL,
                          "--upstream-format",
                          "chup",
                          "--forward-timeout",
                          "10",
                          "--reorder-window",
                          "1200",
                          NULL};
    size_t i, n, len;
    answer a;
    char *body;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(order); i++) {
        const char *rel = walk_in_files[order[i].file];

        post_fixture(rel, &a);
        expect(&a, order[i].status, order[i].verdict, order[i].code, rel);
        ck_assert_int_eq(status_for(order[i].verdict, order[i].code),
                         order[i].status);
        if (order[i].status == 200)
            ck_assert_msg(strstr(a.body, order[i].late ? "\"late\":true"
                                                       : "\"late\":false"),
                          "%s: %s", rel, a.body);
        if (order[i].file == 3)
            ck_assert_msg(strstr(a.body, "\"released\":1") != NULL, "%s",
                          a.body);
        answer_free(&a);
    }
    wait_delivered(9, WAIT_MS);
    ck_assert_int_eq(gate_sample("qgate_late_total"), 1);
    ck_assert_int_eq(gate_sample("qgate_released_total"), 1);
    ck_assert_int_eq(gate_sample("qgate_held"), 0);
    ck_assert_int_eq(
        gate_sample("qgate_deliveries_total{verdict=\"held\",code=\"early\","
                    "source=\"default\"}"),
        1);
    gate_stop();

    /* Forwarding is at least once: a slow answer is sent again.  The
     * first acknowledged request of each step, in order of acceptance. */
    for (i = 0, n = 0; i < his.n; i++) {
        his_req *q = &his.reqs[i];

        if (q->status != 200 || strtoul(q->seq, NULL, 10) <= n)
            continue;
        ck_assert_uint_lt(n, 9);
        ck_assert_uint_eq(strtoul(q->seq, NULL, 10), n + 1);
        if (his_order[n].pos)
            ck_assert_str_eq(q->pos, his_order[n].pos);
        ck_assert_str_eq(q->late, his_order[n].late);
        body = tu_fixture(walk_in_files[his_order[n].file], &len);
        ck_assert_msg(q->len == len && memcmp(q->body, body, len) == 0,
                      "HIS request %zu is not %s", i + 1,
                      walk_in_files[his_order[n].file]);
        free(body);
        n++;
    }
    ck_assert_uint_eq(n, 9);
}
END_TEST

/* A held delivery whose window passes is refused by the gate on its own
 * clock, with no other delivery to wake it, for the reason it would have
 * had on arrival. */
START_TEST(test_reorder_window_expires_on_the_gate_clock)
{
    const char *opts[] = {"--reorder-window", "1", NULL};
    qg_rejections *rj;
    qg_rejection rej;
    qg_store *st;
    answer a;
    int ok;

    gate_start(opts);
    post_accepted(walk_in_files[0]);
    post_fixture(walk_in_files[4], &a);
    expect(&a, 202, "held", "early", walk_in_files[4]);
    answer_free(&a);
    WAIT_FOR(ok,
             gate_sample(
                 "qgate_held_expired_total{code=\"illegal_transition\"}") == 1,
             WAIT_MS);
    ck_assert_msg(ok, "the held delivery was not refused in %d ms", WAIT_MS);
    ck_assert_int_eq(gate_sample("qgate_held"), 0);
    gate_stop();

    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(rej.event, QG_EV_COMPLETE);
    ck_assert_msg(strstr(rej.detail, "; held ") != NULL, "%s", rej.detail);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
    qg_store_close(st);
}
END_TEST

Suite *gate_reorder_suite(void);

Suite *
gate_reorder_suite(void)
{
    Suite *s = suite_create("gate_reorder");
    TCase *tc = tcase_create("Reorder");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reorder_held_and_late_through_the_gate);
    tcase_add_test(tc, test_reorder_window_expires_on_the_gate_clock);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_reorder_suite());
}
