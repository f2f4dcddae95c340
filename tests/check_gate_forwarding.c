/*
 * check_gate_forwarding.c - `qgate serve` end to end: accepted steps
 * forwarded to the HIS, in ticket order, through failures and restarts.
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

static const char *const no_show_files[] = {
    NO_SHOW "01-join-live-queue.json", NO_SHOW "02-no-show.json",
    NO_SHOW "03-no-show-canceled-by-system.json"};

static void
assert_outbox_empty(void)
{
    qg_store *st = store_ro();
    uint64_t depth = 1, dead = 1;

    ck_assert_int_eq(qg_outbox_stats(st, &depth, NULL, &dead), 0);
    ck_assert_msg(depth == 0 && dead == 0, "outbox %" PRIu64 ", dead %" PRIu64,
                  depth, dead);
    qg_store_close(st);
}

/* The walk-in visit reaches the HIS step by step, each POST (with
 * --upstream-format chup) exactly the body Chup sent, named by the
 * headers. */
START_TEST(test_forward_visit_in_order)
{
    row rows[32];
    size_t n = read_expect("visits/EXPECT", rows, COUNT(rows)), i, len;
    const char *opts[] = {
        "--upstream", NULL, "--upstream-format", "chup", "--forward-timeout",
        "1",          NULL};
    char want[48];
    uint64_t t;
    qg_store *st;
    char *body;

    ck_assert_int_ge(n, 9);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(9, WAIT_MS);
    gate_stop();

    st = store_ro();
    t = ticket_of(st, 30001);
    qg_store_close(st);
    assert_outbox_empty();
    ck_assert_uint_eq(his.n, 9);
    ck_assert_uint_eq(his_ticket_order(t), 9);
    for (i = 0; i < 9; i++) {
        his_req *q = &his.reqs[i];

        ck_assert_str_eq(rows[i].col[0], walk_in_files[i]);
        ck_assert_str_eq(q->method, "POST");
        ck_assert_str_eq(q->url, "/his");
        ck_assert_str_eq(q->type, "application/json");
        ck_assert_str_eq(q->verdict, "accepted");
        snprintf(want, sizeof(want), "%" PRIu64 "-%zu", t, i + 1);
        ck_assert_str_eq(q->dkey, want);
        snprintf(want, sizeof(want), "%" PRIu64, t);
        ck_assert_str_eq(q->ticket, want);
        snprintf(want, sizeof(want), "%zu", i + 1);
        ck_assert_str_eq(q->seq, want);
        ck_assert_str_eq(q->lq, "30001");
        ck_assert_str_eq(q->event, rows[i].col[2]);
        ck_assert_str_eq(q->from, rows[i].col[3]);
        ck_assert_str_eq(q->to, rows[i].col[4]);
        body = tu_fixture(walk_in_files[i], &len);
        ck_assert_msg(q->len == len && memcmp(q->body, body, len) == 0,
                      "step %zu: the HIS got %zu bytes that differ from %s",
                      i + 1, q->len, walk_in_files[i]);
        free(body);
    }
}
END_TEST

/*
 * Two tickets while the HIS fails: only each ticket's first step is
 * tried, again and again; once the HIS accepts, each ticket's steps
 * arrive in order, none before the previous one was acknowledged.
 */
START_TEST(test_forward_failure_keeps_ticket_order)
{
    static const char *const files[] = {WALK_IN "01-join-live-queue.json",
                                        NO_SHOW "01-join-live-queue.json",
                                        WALK_IN "02-alert.json",
                                        NO_SHOW "02-no-show.json",
                                        WALK_IN "03-move.json",
                                        NO_SHOW
                                        "03-no-show-canceled-by-system.json",
                                        WALK_IN "04-serving.json",
                                        WALK_IN "05-served.json"};
    const char *opts[] = {"--upstream", NULL, "--forward-timeout", "1", NULL};
    uint64_t walk, noshow;
    double errors;
    size_t i, failed;
    qg_store *st;
    int ok;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok, his_count(500) >= 4, WAIT_MS);
    ck_assert_msg(ok, "the HIS saw %zu attempts while failing", his_count(-1));
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++)
        ck_assert_msg(strcmp(his.reqs[i].seq, "1") == 0,
                      "step %s of ticket %s was sent while step 1 failed",
                      his.reqs[i].seq, his.reqs[i].ticket);
    pthread_mutex_unlock(&his.lock);

    atomic_store(&his.mode, HIS_ACCEPT);
    wait_delivered(COUNT(files), 15000);
    failed = his_count(500);
    errors = gate_sample("qgate_forward_attempts_total{result=\"http_error\"}");
    ck_assert_msg(errors > 0 && errors == (double)failed,
                  "http_error attempts %g, the HIS answered 500 %zu times",
                  errors, failed);
    ck_assert_int_eq(gate_sample("qgate_forward_attempts_total{result=\"ok\"}"),
                     COUNT(files));
    gate_stop();

    st = store_ro();
    walk = ticket_of(st, 30001);
    noshow = ticket_of(st, 30003);
    qg_store_close(st);
    ck_assert_uint_eq(his_ticket_order(walk), 5);
    ck_assert_uint_eq(his_ticket_order(noshow), 3);
    ck_assert_uint_eq(his_count(200), COUNT(files));
    assert_outbox_empty();
}
END_TEST

/* /readyz until it answers `status`; its body is left in a. */
static int
wait_ready_status(long status, long ms, answer *a)
{
    int64_t until = now_ms() + ms;

    for (;;) {
        http("GET", "/readyz", NULL, NULL, 0, a);
        if (a->status == status || now_ms() >= until)
            return a->status == status;
        answer_free(a);
        sleep_ms(50);
    }
}

/*
 * A HIS that hangs holds up no answer to Chup; /readyz turns 503 once the
 * HIS is unreachable (timeouts) and the backlog is at the limit, and 200
 * again once the HIS answers.
 */
START_TEST(test_forward_hang_answers_quickly)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    json_object *v;
    answer a;
    size_t i;

    his_start(HIS_HANG);
    opts[1] = his.url;
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    expect(&a, 200, "accepted", "none", walk_in_files[0]);
    ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "one step waiting: %s", a.body);
    answer_free(&a);

    for (i = 1; i < 4; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        ck_assert_msg(a.ms < 2000, "%s answered in %" PRId64 " ms",
                      walk_in_files[i], a.ms);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS hangs and 4 steps wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "upstream_reachable", &v) &&
                      !json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 4,
                  "%s", a.body);
    answer_free(&a);

    /* another ticket, while both forwarders may be stuck on the HIS */
    post_fixture(no_show_files[0], &a);
    expect(&a, 200, "accepted", "none", no_show_files[0]);
    ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
    answer_free(&a);

    atomic_store(&his.mode, HIS_ACCEPT);
    ck_assert_msg(wait_ready_status(200, 15000, &a),
                  "the HIS answers again, yet /readyz: %ld %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++)
        if (his.reqs[i].status == 0)
            ck_assert_str_eq(his.reqs[i].seq, "1");
    pthread_mutex_unlock(&his.lock);
}
END_TEST

/* A HIS that answers, but 500 to every step, takes nothing: /readyz
 * turns 503 at the backlog limit as for one that is down. */
START_TEST(test_readyz_upstream_failing)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    json_object *v;
    answer a;
    size_t i;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 3; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS fails every step and 3 wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "upstream_reachable", &v) &&
                      !json_object_get_boolean(v),
                  "%s", a.body);
    answer_free(&a);
    atomic_store(&his.mode, HIS_ACCEPT);
    ck_assert_msg(wait_ready_status(200, 15000, &a),
                  "the HIS takes steps again, yet /readyz: %ld %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The same with nothing listening where the HIS should be. */
START_TEST(test_readyz_upstream_closed_port)
{
    char url[64];
    const char *opts[] = {
        "--upstream", url, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    json_object *v;
    answer a;
    size_t i;
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM, 0), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd); /* a port that was free a moment ago, and closed */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/his", ntohs(sin.sin_port));
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    expect(&a, 200, "accepted", "none", walk_in_files[0]);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "one step waiting: %s", a.body);
    answer_free(&a);
    for (i = 1; i < 3; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS is down and 3 steps wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "ready", &v) &&
                      !json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 3,
                  "%s", a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/*
 * Steps of two tickets go to a HIS that fails, under --max-age 1: they
 * all move to the dead list; `qgate outbox --dead` lists them (exit 1)
 * and `--retry-all` moves them back to the outbox (exit 0).  The gate is
 * stopped; the HIS is left accepting.
 */
static void
dead_letter_and_requeue(uint64_t *walk, uint64_t *noshow)
{
    static const char *const files[] = {
        WALK_IN "01-join-live-queue.json", NO_SHOW "01-join-live-queue.json",
        WALK_IN "02-alert.json", NO_SHOW "02-no-show.json",
        WALK_IN "03-move.json"};
    const char *opts[] = {"--upstream", his.url,     "--forward-timeout",
                          "1",          "--max-age", "1",
                          NULL};
    const char *dead_args[] = {"outbox", "--dead", "--json", "--db", db, NULL};
    const char *retry_args[] = {"outbox", "--retry-all", "--db", db, NULL};
    qg_outbox_entry e[16];
    uint64_t last[2] = {0, 0};
    char out[8192], *p;
    size_t i, n;
    qg_store *st;
    int ok, code;

    atomic_store(&his.mode, HIS_FAIL);
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok,
             gate_sample("qgate_outbox_dead") == 5 &&
                 gate_sample("qgate_outbox_depth") == 0,
             WAIT_MS);
    ck_assert_msg(ok, "not all dead after %d ms: depth %g, dead %g", WAIT_MS,
                  gate_sample("qgate_outbox_depth"),
                  gate_sample("qgate_outbox_dead"));
    /* given up once per ticket at least (its later steps go with it) */
    ck_assert_msg(gate_sample("qgate_forward_given_up_total") >= 2 &&
                      gate_sample("qgate_forward_given_up_total") <= 5,
                  "given up %g times",
                  gate_sample("qgate_forward_given_up_total"));
    gate_stop();

    st = store_ro();
    *walk = ticket_of(st, 30001);
    *noshow = ticket_of(st, 30003);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), 0);
    n = outbox_list(st, 1, e, COUNT(e));
    ck_assert_uint_eq(n, 5);
    for (i = 0; i < n; i++) {
        int k = e[i].ticket == *walk ? 0 : 1;

        ck_assert(e[i].ticket == *walk || e[i].ticket == *noshow);
        ck_assert(i == 0 || e[i].id > e[i - 1].id);
        ck_assert_uint_eq(e[i].seq, last[k] + 1);
        ck_assert_msg(e[i].gave_up[0], "dead entry %" PRIu64 " says nothing",
                      e[i].id);
        /* tried and failed: the HIS's answer is kept, not overwritten */
        if (e[i].attempts)
            ck_assert_str_eq(e[i].last_error, "HTTP 500");
        last[k] = e[i].seq;
    }
    ck_assert(last[0] == 3 && last[1] == 2);
    qg_store_close(st);

    code = run_cli(dead_args, out, sizeof(out));
    ck_assert_msg(code == 1, "outbox --dead: exit %d, want 1", code);
    for (n = 0, p = out; (p = strstr(p, "\"dead\":true")) != NULL; p++)
        n++;
    ck_assert_msg(n == 5, "outbox --dead listed %zu: %s", n, out);
    code = run_cli(retry_args, out, sizeof(out));
    ck_assert_msg(code == 0, "outbox --retry-all: exit %d", code);
    ck_assert_msg(strncmp(out, "5 ", 2) == 0, "retry-all said: %s", out);

    st = store_ro();
    ck_assert_uint_eq(outbox_list(st, 1, e, COUNT(e)), 0);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), 5);
    qg_store_close(st);
    atomic_store(&his.mode, HIS_ACCEPT);
}

/* Restarts the gate with opts and requires the 5 requeued steps to reach
 * the HIS, each ticket's in order. */
static void
deliver_requeued(const char *const *opts, uint64_t walk, uint64_t noshow)
{
    size_t before = his_count(-1);
    int ok;

    gate_start(opts);
    WAIT_FOR(ok, his_count(200) >= 5, WAIT_MS);
    ck_assert_msg(ok,
                  "after --retry-all the restarted gate delivered %zu of 5 "
                  "(the HIS got %zu new requests; outbox %g, dead %g)",
                  his_count(200), his_count(-1) - before,
                  gate_sample("qgate_outbox_depth"),
                  gate_sample("qgate_outbox_dead"));
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(walk), 3);
    ck_assert_uint_eq(his_ticket_order(noshow), 2);
    ck_assert_uint_eq(his_count(200), 5);
    assert_outbox_empty();
}

/*
 * Dead-lettered, retried, and delivered in order by a gate restarted with
 * the default --max-age (loop 0), and as it ran, --max-age 1 included
 * (loop 1): the requeued steps are older than that by now, as every step
 * that died of age is older than the max age; retrying them must still
 * send them.
 */
START_TEST(test_forward_dead_letter_and_retry)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--max-age", "1", NULL};
    uint64_t walk, noshow;

    if (_i == 0)
        opts[4] = NULL; /* the default --max-age */
    his_start(HIS_FAIL);
    opts[1] = his.url;
    dead_letter_and_requeue(&walk, &noshow);
    deliver_requeued(opts, walk, noshow);
}
END_TEST

/*
 * A gate stopped while the HIS fails keeps the steps; restarted on the
 * same store with the HIS healthy, it delivers each once, in order.
 */
START_TEST(test_forward_resumes_after_restart)
{
    static const char *const files[] = {
        WALK_IN "01-join-live-queue.json", NO_SHOW "01-join-live-queue.json",
        WALK_IN "02-alert.json", NO_SHOW "02-no-show.json",
        WALK_IN "03-move.json"};
    const char *opts[] = {"--upstream", NULL, "--forward-timeout", "1", NULL};
    qg_outbox_entry e[16];
    uint64_t walk, noshow;
    qg_store *st;
    size_t i;
    int ok;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok, his_count(500) >= 2, WAIT_MS);
    ck_assert(ok);
    gate_stop();

    st = store_ro();
    walk = ticket_of(st, 30001);
    noshow = ticket_of(st, 30003);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), COUNT(files));
    ck_assert_uint_eq(outbox_list(st, 1, e, COUNT(e)), 0);
    qg_store_close(st);

    atomic_store(&his.mode, HIS_ACCEPT);
    gate_start(opts);
    wait_delivered(COUNT(files), 15000);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(walk), 3);
    ck_assert_uint_eq(his_ticket_order(noshow), 2);
    ck_assert_uint_eq(his_count(200), COUNT(files));
    assert_outbox_empty();
}
END_TEST

Suite *gate_forwarding_suite(void);

Suite *
gate_forwarding_suite(void)
{
    Suite *s = suite_create("gate_forwarding");
    TCase *tc = tcase_create("Forwarding");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_forward_visit_in_order);
    tcase_add_test(tc, test_forward_failure_keeps_ticket_order);
    tcase_add_test(tc, test_forward_hang_answers_quickly);
    tcase_add_test(tc, test_readyz_upstream_closed_port);
    tcase_add_test(tc, test_readyz_upstream_failing);
    tcase_add_loop_test(tc, test_forward_dead_letter_and_retry, 0, 2);
    tcase_add_test(tc, test_forward_resumes_after_restart);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_forwarding_suite());
}
