/*
 * check_durations.c - the percentiles and buckets of `qgate stats` and the
 * gate's GET /waits (src/cli/durations.c): nearest-rank over every sample,
 * as a sort of all of them gives, from a table of each value once with its
 * count, whose size follows the distinct durations, not the tickets.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durations.h"

#define MIN 60000 /* ms */

static void
add_all(samples *s, const int64_t *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(durations_add(s, v[i]), 0);
}

/* Each set with its nearest-rank p50, p90, p99 and max, worked by hand:
 * the sample of rank ceil(n p / 100) in a sort, counting from 1. */
static const struct {
    const char *what;
    int64_t v[12];
    size_t n;
    int64_t p50, p90, p99, max;
} sets[] = {
    {"one sample", {5 * MIN}, 1, 5 * MIN, 5 * MIN, 5 * MIN, 5 * MIN},
    {"ten distinct, given out of order",
     {7, 3, 10, 1, 9, 2, 8, 5, 4, 6},
     10,
     5,
     9,
     10,
     10},
    {"repeats: 7 of 1 minute, 3 of 2",
     {MIN, 2 * MIN, MIN, MIN, 2 * MIN, MIN, MIN, MIN, 2 * MIN, MIN},
     10,
     MIN,
     2 * MIN,
     2 * MIN,
     2 * MIN},
    {"negative (a step dated before the one it follows)",
     {-3000, 0, 3000, -3000},
     4,
     -3000,
     3000,
     3000,
     3000},
    {"the extremes of int64",
     {INT64_MAX, 0, INT64_MIN},
     3,
     0,
     INT64_MAX,
     INT64_MAX,
     INT64_MAX},
    {"all equal", {MIN, MIN, MIN, MIN, MIN}, 5, MIN, MIN, MIN, MIN},
    {"rank on a boundary: n p / 100 whole",
     {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120},
     12,
     60,
     110,
     120,
     120},
};

START_TEST(test_durations_percentile_table)
{
    durations d;
    samples *s = &d.d[WAIT];

    memset(&d, 0, sizeof(d));
    add_all(s, sets[_i].v, sets[_i].n);
    durations_order(&d);
    ck_assert_uint_eq(s->n, sets[_i].n);
    ck_assert_msg(
        durations_pct(s, 50) == sets[_i].p50 &&
            durations_pct(s, 90) == sets[_i].p90 &&
            durations_pct(s, 99) == sets[_i].p99 &&
            durations_pct(s, 100) == sets[_i].max,
        "%s: p50 %lld p90 %lld p99 %lld max %lld", sets[_i].what,
        (long long)durations_pct(s, 50), (long long)durations_pct(s, 90),
        (long long)durations_pct(s, 99), (long long)durations_pct(s, 100));
    durations_free(&d);
}
END_TEST

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* A small generator of its own, so that a failure reruns alike. */
static uint64_t
next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Against a sort of every sample: every percentile from 1 to 100, and the
 * count up to each sample value and to the values between, over spreads a
 * clinic has (minutes, seconds) and one it has not (every ms distinct). */
static const struct {
    const char *what;
    int64_t unit, spread;
} spreads[] = {
    {"whole minutes up to 3 hours", MIN, 180},
    {"seconds up to 2 hours", 1000, 7200},
    {"ms, nearly all distinct", 1, 1000000000},
    {"three values", MIN, 3},
    {"around zero", 1000, 20},
};

START_TEST(test_durations_match_a_sort)
{
    enum { N = 20000 };
    int64_t *v = malloc(N * sizeof(*v)), probe;
    uint64_t x = 0x9E3779B97F4A7C15u + (uint64_t)_i;
    durations d;
    samples *s = &d.d[SERVICE];
    size_t i, want, failures = 0;
    int p;

    ck_assert_ptr_nonnull(v);
    memset(&d, 0, sizeof(d));
    for (i = 0; i < N; i++) {
        v[i] = (int64_t)(next(&x) % (uint64_t)spreads[_i].spread) *
               spreads[_i].unit;
        if (_i == 4)
            v[i] -= 10 * spreads[_i].unit;
        failures += durations_add(s, v[i]) != 0;
    }
    ck_assert_uint_eq(failures, 0);
    durations_order(&d);
    qsort(v, N, sizeof(*v), cmp64);
    for (p = 1; p <= 100; p++) {
        size_t rank = (N * (size_t)p + 99) / 100;

        ck_assert_msg(durations_pct(s, p) == v[rank - 1],
                      "%s: p%d %lld, a sort gives %lld", spreads[_i].what, p,
                      (long long)durations_pct(s, p), (long long)v[rank - 1]);
    }
    for (i = 0; i < N; i += 97) {
        for (probe = v[i] - 1; probe <= v[i] + 1; probe++) {
            for (want = 0; want < N && v[want] <= probe; want++)
                ;
            ck_assert_msg(durations_upto(s, probe) == want,
                          "%s: %zu up to %lld, a sort gives %zu",
                          spreads[_i].what, durations_upto(s, probe),
                          (long long)probe, want);
        }
    }
    ck_assert_uint_eq(durations_upto(s, INT64_MIN), v[0] == INT64_MIN);
    ck_assert_uint_eq(durations_upto(s, INT64_MAX), N);
    durations_free(&d);
    free(v);
}
END_TEST

/* GET /waits' histogram: a sample on a bound counts in the bucket the
 * bound closes; past the last bound, in the open one. */
START_TEST(test_durations_buckets)
{
    static const int64_t v[] = {-5, 10000, 10001, 30000, 21600000, 21600001};
    char *text = NULL;
    size_t len = 0;
    durations d;
    FILE *f;

    memset(&d, 0, sizeof(d));
    add_all(&d.d[VISIT], v, sizeof(v) / sizeof(v[0]));
    durations_order(&d);
    ck_assert_ptr_nonnull(f = open_memstream(&text, &len));
    durations_render(f, &d, 1);
    fclose(f);
    ck_assert_msg(strstr(text, "\"wait\":{\"count\":0,\"buckets\":[{\"le_ms\":"
                               "10000,\"count\":0}") != NULL,
                  "%s", text);
    ck_assert_msg(
        strstr(text,
               "\"visit\":{\"count\":6,\"p50_ms\":10001,\"p90_ms\":21600001,"
               "\"p99_ms\":21600001,\"max_ms\":21600001,\"buckets\":["
               "{\"le_ms\":10000,\"count\":2},{\"le_ms\":30000,\"count\":2},"
               "{\"le_ms\":60000,\"count\":0}") != NULL,
        "%s", text);
    ck_assert_msg(strstr(text, "{\"le_ms\":14400000,\"count\":0},{\"le_ms\":"
                               "21600000,\"count\":1},{\"le_ms\":null,"
                               "\"count\":1}]}}") != NULL,
                  "%s", text);
    free(text);
    durations_free(&d);
}
END_TEST

/* A million waits of a day's whole minutes keep one slot per minute seen:
 * the table's size follows the distinct durations, not the samples.  Check
 * records every assertion that passes (a write when it forks), so the loops
 * over many samples count their failures and assert once. */
START_TEST(test_durations_memory_follows_distinct_values)
{
    enum { N = 1000000 };
    uint64_t x = 42;
    durations d;
    samples *s = &d.d[WAIT];
    size_t i, failures = 0;

    memset(&d, 0, sizeof(d));
    for (i = 0; i < N; i++)
        failures += durations_add(s, (int64_t)(next(&x) % 1440) * MIN) != 0;
    ck_assert_uint_eq(failures, 0);
    ck_assert_uint_eq(s->n, N);
    ck_assert_uint_eq(s->distinct, 1440);
    ck_assert_uint_le(s->cap * sizeof(*s->slot), 64 * 1024);
    durations_order(&d);
    ck_assert_int_eq(durations_pct(s, 100), 1439 * MIN);
    ck_assert_uint_eq(durations_upto(s, 1439 * MIN), N);
    durations_free(&d);
}
END_TEST

/* The walk of one ticket's steps gives its wait, service and visit. */
START_TEST(test_durations_walk_of_a_ticket)
{
    static const struct {
        qg_event ev;
        qg_state from, to;
        int64_t at;
    } steps[] = {
        {QG_EV_JOIN, QG_ST_NEW, QG_ST_QUEUED, 0},
        {QG_EV_SERVE, QG_ST_QUEUED, QG_ST_SERVING, 16 * MIN},
        {QG_EV_COMPLETE, QG_ST_SERVING, QG_ST_SERVED, 27 * MIN},
        {QG_EV_END_VISIT, QG_ST_SERVED, QG_ST_VISIT_ENDED, 40 * MIN},
    };
    durations d;
    qg_record r;
    ticket_walk w;
    size_t i;

    memset(&d, 0, sizeof(d));
    memset(&w, 0, sizeof(w));
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        memset(&r, 0, sizeof(r));
        r.ticket = 7;
        r.seq = (uint32_t)i + 1;
        r.event = steps[i].ev;
        r.from = steps[i].from;
        r.to = steps[i].to;
        r.event_ms = steps[i].at;
        r.service_id = 220;
        ck_assert_int_eq(durations_step(&d, &w, &r, INT64_MIN, INT64_MAX, 0),
                         0);
    }
    ck_assert_int_eq(durations_end_ticket(&d, &w, 0), 0);
    durations_order(&d);
    ck_assert_uint_eq(d.tickets, 1);
    ck_assert_uint_eq(d.d[WAIT].n, 1);
    ck_assert_int_eq(durations_pct(&d.d[WAIT], 50), 16 * MIN);
    ck_assert_uint_eq(d.d[SERVICE].n, 1);
    ck_assert_int_eq(durations_pct(&d.d[SERVICE], 50), 11 * MIN);
    ck_assert_uint_eq(d.d[VISIT].n, 1);
    ck_assert_int_eq(durations_pct(&d.d[VISIT], 100), 40 * MIN);
    ck_assert_uint_eq(d.states[QG_ST_VISIT_ENDED], 1);
    durations_free(&d);
}
END_TEST

static Suite *
durations_suite(void)
{
    Suite *s = suite_create("durations");
    TCase *tc = tcase_create("percentiles");

    tcase_add_loop_test(tc, test_durations_percentile_table, 0,
                        sizeof(sets) / sizeof(sets[0]));
    tcase_add_loop_test(tc, test_durations_match_a_sort, 0,
                        sizeof(spreads) / sizeof(spreads[0]));
    tcase_add_test(tc, test_durations_buckets);
    tcase_add_test(tc, test_durations_memory_follows_distinct_values);
    tcase_add_test(tc, test_durations_walk_of_a_ticket);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(durations_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
