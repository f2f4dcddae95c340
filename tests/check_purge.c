/*
 * check_purge.c - qg_store_purge(): the raw bodies of old steps and
 * refusals go, the skeleton of each stays (header, digest, its index
 * entry), steps still to be forwarded keep their bodies, and everything
 * that reads the store copes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "testutil.h"

#define WALK_IN  "visits/walk-in/"
#define SERVED   "illegal/served-before-arrive/"
#define STEPS    9
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const walk_in[STEPS] = {WALK_IN "01-join-live-queue.json",
                                           WALK_IN "02-alert.json",
                                           WALK_IN "03-move.json",
                                           WALK_IN "04-serving.json",
                                           WALK_IN "05-served.json",
                                           WALK_IN "06-pharmacy-received.json",
                                           WALK_IN "07-pharmacy-dispensed.json",
                                           WALK_IN "08-billing-paid.json",
                                           WALK_IN "09-end-visit.json"};

static qg_store *st;
static qg_engine *eng;

static void
setup(void)
{
    st = tu_store_new();
    eng = tu_engine();
}

static void
teardown(void)
{
    qg_engine_free(eng);
    eng = NULL;
    qg_store_close(st);
    st = NULL;
    tu_store_remove();
}

/* Applies the walk-in visit; every step must be accepted. */
static uint64_t
apply_visit(void)
{
    qg_result res;
    size_t i;

    for (i = 0; i < STEPS; i++) {
        res = tu_apply(eng, st, walk_in[i]);
        ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s", walk_in[i],
                      res.detail);
    }
    return res.ticket;
}

/* The ticket's records in arrival order, bodies not kept. */
static size_t
records(uint64_t ticket, qg_record *out, size_t cap, size_t *purged)
{
    qg_history *h = NULL;
    qg_record r;
    size_t n = 0;

    *purged = 0;
    ck_assert_int_eq(qg_history_open_order(st, ticket, QG_ARRIVAL_ORDER, &h),
                     0);
    while (qg_history_next(h, &r) == 0) {
        ck_assert(n < cap);
        if (r.body == NULL) {
            ck_assert_uint_eq(r.body_len, 0);
            ++*purged;
        }
        r.body = NULL;
        out[n++] = r;
    }
    qg_history_close(h);
    return n;
}

/* Every ticket of the store verifies, and so does the hash chain: a
 * purge keeps the digests its leaves cover. */
static void
verify_all(void)
{
    qg_tickets *it = NULL;
    qg_ticket t;
    qg_finding f;
    qg_chain_finding cf;

    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &cf), 0);
    ck_assert_msg(cf.brk == QG_CHAIN_INTACT, "%s", cf.what);

    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    while (qg_tickets_next(it, &t) == 0) {
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
        ck_assert_msg(!f.found, "ticket %llu step %u: %s",
                      (unsigned long long)t.id, f.seq, f.what);
    }
    qg_tickets_close(it);
}

/*
 * A purge of everything: each record keeps its header and digest and
 * loses its body, the refusal loses its body and keeps the SHA-256 of
 * it, the store verifies, a redelivery is still a duplicate, and a
 * second purge finds nothing to do.
 */
START_TEST(test_purge_keeps_the_skeleton)
{
    qg_record before[STEPS + 1], after[STEPS + 1];
    unsigned char sha[32];
    qg_rejections *rj = NULL;
    qg_rejection rej;
    qg_purge_stats ps;
    qg_result res;
    size_t n, purged, i, len;
    uint64_t ticket = apply_visit();
    char *body = tu_fixture(SERVED "02-served.json", &len);

    tu_apply(eng, st, SERVED "01-join-live-queue.json");
    res = tu_apply(eng, st, SERVED "02-served.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    n = records(ticket, before, COUNT(before), &purged);
    ck_assert_uint_eq(n, STEPS);
    ck_assert_uint_eq(purged, 0);

    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, STEPS + 1); /* and the other ticket's */
    ck_assert_uint_eq(ps.rejections, 1);
    ck_assert_uint_eq(ps.skipped, 0);
    ck_assert_uint_gt(ps.bytes, 1000);

    ck_assert_uint_eq(records(ticket, after, COUNT(after), &purged), STEPS);
    ck_assert_uint_eq(purged, STEPS);
    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(after[i].seq, before[i].seq);
        ck_assert_int_eq(after[i].event, before[i].event);
        ck_assert_int_eq(after[i].from, before[i].from);
        ck_assert_int_eq(after[i].to, before[i].to);
        ck_assert_int_eq(after[i].event_ms, before[i].event_ms);
        ck_assert_int_eq(after[i].received_us, before[i].received_us);
        ck_assert_int_eq(after[i].service_id, before[i].service_id);
        ck_assert_int_eq(memcmp(after[i].digest, before[i].digest, 32), 0);
        ck_assert_str_eq(after[i].machine, before[i].machine);
    }

    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_ptr_null(rej.body);
    ck_assert_uint_eq(rej.body_len, 0);
    ck_assert_uint_eq(rej.received_len, len);
    SHA256((const unsigned char *)body, len, sha);
    ck_assert_int_eq(memcmp(rej.digest, sha, 32), 0);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
    free(body);

    verify_all();
    /* the summaries stay as they were: stats reads the same steps */
    ck_assert_uint_eq(tu_check_summaries(st), STEPS + 1);
    res = tu_apply(eng, st, walk_in[4]);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    ck_assert_uint_eq(res.seq, 5);

    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, 0);
    ck_assert_uint_eq(ps.rejections, 0);
    ck_assert_uint_eq(ps.bytes, 0);
}
END_TEST

/* Only what was received before the time goes: the steps after it keep
 * their bodies, byte for byte. */
START_TEST(test_purge_spares_what_is_newer)
{
    qg_record r[STEPS];
    qg_history *h = NULL;
    qg_record rec;
    qg_purge_stats ps;
    size_t purged;
    uint64_t ticket = apply_visit();
    int64_t cut;

    records(ticket, r, COUNT(r), &purged);
    cut = r[5].received_us; /* steps 1-5 were received before step 6 */
    ck_assert_int_gt(cut, r[4].received_us);
    ck_assert_int_eq(qg_store_purge(st, cut, &ps), 0);
    ck_assert_uint_eq(ps.records, 5);
    ck_assert_int_eq(qg_history_open_order(st, ticket, QG_ARRIVAL_ORDER, &h),
                     0);
    while (qg_history_next(h, &rec) == 0) {
        size_t len;
        char *want = tu_fixture(walk_in[rec.seq - 1], &len);

        if (rec.seq <= 5) {
            ck_assert_ptr_null(rec.body);
        } else {
            ck_assert_uint_eq(rec.body_len, len);
            ck_assert_int_eq(memcmp(rec.body, want, len), 0);
        }
        free(want);
    }
    qg_history_close(h);
    verify_all();
}
END_TEST

/* A step still in the outbox or on the dead list keeps its body, and is
 * counted; once delivered, the next purge takes it. */
START_TEST(test_purge_skips_the_outbox)
{
    qg_outbox *ob = NULL;
    qg_outbox_entry e[STEPS];
    qg_record r[STEPS];
    qg_purge_stats ps;
    size_t n = 0, purged, i;
    uint64_t ticket;

    st = tu_store_reopen(st, QG_OUTBOX);
    ticket = apply_visit();
    ck_assert_int_eq(qg_outbox_open(st, 0, &ob), 0);
    while (n < STEPS && qg_outbox_next(ob, &e[n]) == 0)
        n++;
    qg_outbox_close(ob);
    ck_assert_uint_eq(n, STEPS);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(qg_outbox_ack(st, e[i].id), 0);
    ck_assert_int_eq(qg_outbox_bury(st, e[3].id, "the HIS said no"), 0);

    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, 3);
    ck_assert_uint_eq(ps.skipped, STEPS - 3);
    records(ticket, r, COUNT(r), &purged);
    ck_assert_uint_eq(purged, 3);
    verify_all();

    /* the dead ones: requeued, then delivered */
    ck_assert_int_eq(qg_outbox_requeue(st, 0, NULL), 0);
    ck_assert_int_eq(qg_outbox_open(st, 0, &ob), 0);
    n = 0;
    while (n < STEPS && qg_outbox_next(ob, &e[n]) == 0)
        n++;
    qg_outbox_close(ob);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(qg_outbox_ack(st, e[i].id), 0);
    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, STEPS - 3);
    ck_assert_uint_eq(ps.skipped, 0);
    records(ticket, r, COUNT(r), &purged);
    ck_assert_uint_eq(purged, STEPS);
}
END_TEST

/* More records than one transaction takes: all are purged, none twice.
 * Applied in batches, as the gate does: 4,500 transactions of their own
 * would take most of the test's time on a PostgreSQL store. */
START_TEST(test_purge_in_batches)
{
    enum { N = 4500, BATCH = 64 };
    static char bodies[BATCH][1024];
    qg_body b[BATCH];
    qg_result res[BATCH];
    int rcs[BATCH];
    qg_engine *plain;
    qg_purge_stats ps;
    int i, k, n;

    ck_assert_int_eq(qg_engine_new(&plain), 0);
    qg_engine_require_signature(plain, 0);
    for (i = 0; i < N; i += n) {
        for (n = 0; n < BATCH && i + n < N; n++) {
            b[n].len = (size_t)snprintf(
                bodies[n], sizeof(bodies[n]),
                "{\"payload\":{\"event\":\"live_queue_created\","
                "\"timestamp\":\"2024-03-05T09:00:00+08:00\",\"data\":{"
                "\"id\":%d,\"state\":1,\"state_name\":\"In Queue\","
                "\"service_id\":220,\"staff_id\":246}},"
                "\"signature\":\"\"}",
                80000 + i + n);
            b[n].body = bodies[n];
        }
        ck_assert_int_eq(
            qg_engine_apply_batch(plain, st, b, (size_t)n, res, rcs), 0);
        for (k = 0; k < n; k++) {
            ck_assert_int_eq(rcs[k], 0);
            ck_assert_msg(res[k].verdict == QG_ACCEPTED, "%s", res[k].detail);
        }
    }
    qg_engine_free(plain);
    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, N);
    ck_assert_int_eq(qg_store_purge(st, qg_time_now_us() + 1, &ps), 0);
    ck_assert_uint_eq(ps.records, 0);
    verify_all();
}
END_TEST

START_TEST(test_purge_bad_arguments)
{
    qg_purge_stats ps;

    ck_assert_int_eq(qg_store_purge(NULL, 0, &ps), QG_EINVAL);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_store_purge(st, INT64_MAX, &ps), QG_ERDONLY);
}
END_TEST

Suite *purge_suite(void);

Suite *
purge_suite(void)
{
    Suite *s = suite_create("purge");
    TCase *core = tcase_create("Core"), *errors = tcase_create("Errors");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_purge_keeps_the_skeleton);
    tcase_add_test(core, test_purge_spares_what_is_newer);
    tcase_add_test(core, test_purge_skips_the_outbox);
    tcase_add_test(core, test_purge_in_batches);
    suite_add_tcase(s, core);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_purge_bad_arguments);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(purge_suite());
}
