/*
 * check_gate_metrics.c - `qgate serve` end to end: /metrics in the
 * Prometheus text format, counting what happened.
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
#include "promcheck.h"

/* The checker itself: it passes a text that uses the format's corners
 * and refuses each kind of fault. */
START_TEST(test_metrics_checker_refuses_faults)
{
    static const char good[] =
        "# a comment\n"
        "# HELP a_total A \\\\ counter\\n.\n"
        "# TYPE a_total counter\n"
        "a_total{x=\"q\\\"uote\",y=\"\"} 1 1700000000000\n"
        "a_total{x=\"b\",} 2.5e3\n"
        "\n"
        "# TYPE g gauge\n"
        "g -1\n"
        "g{k=\"v\"} NaN\n"
        "# TYPE h histogram\n"
        "h_bucket{k=\"1\",le=\"0.5\"} 1\n"
        "h_bucket{k=\"1\",le=\"+Inf\"} 3\n"
        "h_sum{k=\"1\"} 7\n"
        "h_count{k=\"1\"} 3\n"
        "h_bucket{k=\"2\",le=\"+Inf\"} 0\n"
        "h_sum{k=\"2\"} 0\n"
        "h_count{k=\"2\"} 0\n";
    static const char *const bad[] = {
        "x 1\n",
        "# TYPE x counter\nx 1",
        "# TYPE x counter\nx{a=\"b} 1\n",
        "# TYPE x counter\nx{a=b} 1\n",
        "# TYPE x counter\nx{1a=\"b\"} 1\n",
        "# TYPE x counter\nx{a=\"\\q\"} 1\n",
        "# TYPE x counter\nx one\n",
        "# TYPE x counter\nx  1\n",
        "# TYPE x counter\nx 1 soon\n",
        "# TYPE x counter\n# TYPE x gauge\nx 1\n",
        "# TYPE x counte\nx 1\n",
        "# TYPE 1x counter\n1x 1\n",
        "# TYPE x counter\n# TYPE y counter\nx 1\ny 1\nx 2\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh 1\n",
    };
    char err[256];
    size_t i;

    ck_assert_msg(prom_check(good, err, sizeof(err)) == 11, "%s", err);
    for (i = 0; i < COUNT(bad); i++)
        ck_assert_msg(prom_check(bad[i], err, sizeof(err)) == -1,
                      "accepted: %s", bad[i]);
}
END_TEST

/* /metrics after some traffic is valid exposition text with the families
 * the gate documents. */
START_TEST(test_metrics_exposition_format)
{
    static const struct {
        const char *name, *type;
    } families[] = {
        {"qgate_deliveries_total", "counter"},
        {"qgate_store_errors_total", "counter"},
        {"qgate_http_responses_total", "counter"},
        {"qgate_request_duration_seconds", "histogram"},
        {"qgate_commit_batch_size", "histogram"},
        {"qgate_outbox_depth", "gauge"},
        {"qgate_outbox_dead", "gauge"},
        {"qgate_forward_attempts_total", "counter"},
    };
    static const char *const plain[] = {"Content-Type: text/plain", NULL};
    char err[256], type[128], want[160];
    const char *opts[] = {"--upstream", NULL, NULL};
    answer a;
    size_t i;
    int samples;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    post_fixture(walk_in_files[0], &a);
    answer_free(&a);
    post_fixture("malformed/not-json.json", &a);
    answer_free(&a);
    http("POST", WEBHOOK, plain, "{}", 2, &a);
    answer_free(&a);
    http("GET", "/tickets/30001", NULL, NULL, 0, &a);
    answer_free(&a);
    wait_delivered(9, WAIT_MS);

    http("GET", "/metrics", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_msg(strncmp(head_value(&a, "Content-Type", type, sizeof(type)),
                          "text/plain; version=0.0.4", 25) == 0,
                  "Content-Type %s", type);
    samples = prom_check(a.body, err, sizeof(err));
    ck_assert_msg(samples > 0, "/metrics: %s\n%s", err, a.body);
    for (i = 0; i < COUNT(families); i++) {
        snprintf(want, sizeof(want), "# TYPE %s %s\n", families[i].name,
                 families[i].type);
        ck_assert_msg(strstr(a.body, want) != NULL, "no \"%.*s\"",
                      (int)strlen(want) - 1, want);
    }
    ck_assert_int_eq(
        sample_value(a.body, "qgate_forward_attempts_total{result=\"ok\"}"), 9);
    ck_assert_int_eq(sample_value(a.body, "qgate_outbox_depth"), 0);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The deliveries counter counts exactly the answers given, by verdict and
 * code: every fixture of malformed/EXPECT and visits/EXPECT, duplicates,
 * and bodies too large, announced or chunked. */
START_TEST(test_metrics_count_answers)
{
    /* every fixture twice, faster than the default --unsigned-rate */
    static const char *const opts[] = {"--max-body", "8192", "--unsigned-burst",
                                       "1000", NULL};
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    row rows[96];
    size_t n = read_expect("malformed/EXPECT", rows, COUNT(rows)), i;
    unsigned long tally[QG_REASON_COUNT] = {0};
    source big = {NULL, 65536, 0}, huge = {NULL, (size_t)32 << 20, 0};
    char sample[160], *text;
    qg_reason reason;
    answer a;
    double v;
    int r;

    n += read_expect("visits/EXPECT", rows + n, COUNT(rows) - n);
    gate_start(opts);
    for (r = 0; r < 2; r++) /* the second time: duplicates */
        for (i = 0; i < n; i++) {
            post_fixture(rows[i].col[0], &a);
            ck_assert_msg(qg_reason_from_name(jstr(a.json, "code"), &reason) ==
                              0,
                          "%s: %s", rows[i].col[0], a.body);
            tally[reason]++;
            answer_free(&a);
        }
    http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &big, 0, &a);
    expect(&a, 413, NULL, "too_large", "chunked");
    tally[QG_R_TOO_LARGE]++;
    answer_free(&a);
    http_full(gate_port, "POST", WEBHOOK, as_json, NULL, 0, &huge, 1, &a);
    expect(&a, 413, NULL, "too_large", "announced");
    tally[QG_R_TOO_LARGE]++;
    answer_free(&a);
    /* not deliveries */
    http("GET", WEBHOOK, NULL, NULL, 0, &a);
    answer_free(&a);
    http("POST", "/elsewhere", as_json, "{}", 2, &a);
    answer_free(&a);

    ck_assert_uint_eq(tally[QG_R_NONE], 18);
    text = scrape();
    for (i = 0; i < QG_REASON_COUNT; i++) {
        snprintf(sample, sizeof(sample),
                 "qgate_deliveries_total{verdict=\"%s\",code=\"%s\","
                 "source=\"default\"}",
                 qg_verdict_name(qg_reason_verdict((qg_reason)i)),
                 qg_reason_name((qg_reason)i));
        v = sample_value(text, sample);
        ck_assert_msg(v == (double)tally[i], "%s is %g, %lu answers", sample, v,
                      tally[i]);
    }
    free(text);
    gate_stop();
}
END_TEST

Suite *gate_metrics_suite(void);

Suite *
gate_metrics_suite(void)
{
    Suite *s = suite_create("gate_metrics");
    TCase *tc = tcase_create("Metrics");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_metrics_checker_refuses_faults);
    tcase_add_test(tc, test_metrics_exposition_format);
    tcase_add_test(tc, test_metrics_count_answers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_metrics_suite());
}
