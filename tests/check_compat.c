/*
 * check_compat.c - stores written by earlier versions: fixtures/stores/
 * holds one written by qgate 0.1 (its README says how), which today's
 * code must read as written, verify, and go on writing.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char dir[64];
static qg_store *st;

/* A fresh copy of the 0.1 store in dir, not opened yet. */
static void
setup_copy(void)
{
    size_t len;
    char *data = tu_fixture("stores/0.1/data.mdb", &len), path[96];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/qgate-compat-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    ck_assert_ptr_nonnull(f = fopen(path, "wb"));
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    free(data);
    st = NULL;
}

static qg_store *
open_copy(unsigned flags)
{
    qg_store_options o;
    qg_store *s = NULL;

    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    ck_assert_int_eq(qg_store_open(&o, &s), 0);
    return s;
}

static void
setup(void)
{
    setup_copy();
    st = open_copy(0);
}

static void
teardown(void)
{
    qg_store_close(st);
    tu_remove_dir(dir);
}

/* The tickets as 0.1 left them: (live-queue id, state, steps, refused). */
static const struct {
    int64_t lq;
    qg_state state;
    uint32_t records, rejections;
} tickets[] = {
    {30001, QG_ST_SERVED, 4, 0},
    {40002, QG_ST_CANCELLED, 2, 1},
    {40004, QG_ST_ARRIVED, 2, 1},
    {30002, QG_ST_CANCELLED, 6, 0},
};

START_TEST(test_compat_01_reads_as_written)
{
    static const qg_reason reasons[] = {QG_R_TICKET_CLOSED, QG_R_STALE};
    char detail[256];
    qg_rejections *rj;
    qg_rejection rej;
    qg_finding f;
    qg_history *h;
    qg_record r;
    qg_ticket t;
    uint32_t n;
    size_t i;

    ck_assert_msg(qg_store_check(st, detail, sizeof(detail)) == 0, "%s",
                  detail);
    for (i = 0; i < sizeof(tickets) / sizeof(*tickets); i++) {
        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, tickets[i].lq, &t), 0);
        ck_assert_int_eq(t.state, tickets[i].state);
        ck_assert_uint_eq(t.records, tickets[i].records);
        ck_assert_uint_eq(t.rejections, tickets[i].rejections);
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
        ck_assert_msg(!f.found, "lq %lld: %s", (long long)tickets[i].lq,
                      f.what);
        /* 0.1 wrote no place in event time: it reads as the seq */
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        for (n = 0; qg_history_next(h, &r) == 0; n++) {
            ck_assert_uint_eq(r.seq, n + 1);
            ck_assert_uint_eq(r.pos, n + 1);
            ck_assert_int_eq(r.late, 0);
            ck_assert_int_eq(r.released, 0);
            ck_assert_int_gt((int)r.body_len, 0);
        }
        qg_history_close(h);
        ck_assert_uint_eq(n, tickets[i].records);
    }
    /* reasons are stored by number: 0.1's must still mean the same */
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
        ck_assert_int_eq(rej.verdict, QG_REJECTED);
        ck_assert_str_eq(qg_reason_name(rej.reason),
                         qg_reason_name(reasons[i]));
        ck_assert_int_gt((int)rej.body_len, 0);
    }
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
}
END_TEST

/* Today's engine goes on writing it: 0.1's missing alert is placed late
 * among 0.1's steps, and the visit then runs to its end. */
START_TEST(test_compat_01_takes_late_steps)
{
    static const char *const rest[] = {
        "visits/walk-in/06-pharmacy-received.json",
        "visits/walk-in/07-pharmacy-dispensed.json",
        "visits/walk-in/08-billing-paid.json",
        "visits/walk-in/09-end-visit.json"};
    static const uint32_t by_event[] = {1, 5, 2, 3, 4, 6, 7, 8, 9};
    qg_engine *eng = tu_engine();
    qg_finding f;
    qg_history *h;
    qg_record r;
    qg_result res;
    qg_ticket t;
    size_t i;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 1200), 0);
    res = tu_apply(eng, st, "visits/walk-in/02-alert.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.late, 1);
    ck_assert_uint_eq(res.seq, 5);
    ck_assert_uint_eq(res.pos, 2);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(tu_apply(eng, st, rest[i]).verdict, QG_ACCEPTED);
    qg_engine_free(eng);

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
    ck_assert_msg(!f.found, "%s", f.what);
    ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++) {
        ck_assert_uint_lt(i, 9);
        ck_assert_uint_eq(r.seq, by_event[i]);
        ck_assert_uint_eq(r.pos, i + 1);
    }
    ck_assert_uint_eq(i, 9);
    qg_history_close(h);
}
END_TEST

/* 0.1 gave its stores no id (a 0.1 store cannot be opened read-only:
 * it lacks databases that read-only opens do not create).  The first
 * writable open gives it one, which it keeps, read-only or not. */
START_TEST(test_compat_01_gets_an_id_when_written)
{
    char first[QG_STORE_ID_LEN + 1], again[QG_STORE_ID_LEN + 1];

    ck_assert_int_eq(qg_store_id(NULL, first), QG_EINVAL);
    st = open_copy(0);
    ck_assert_int_eq(qg_store_id(st, first), 0);
    ck_assert_uint_eq(strlen(first), QG_STORE_ID_LEN);
    ck_assert_uint_eq(strspn(first, "0123456789abcdef"), QG_STORE_ID_LEN);
    ck_assert_str_ne(first, "00000000000000000000000000000000");
    qg_store_close(st);
    st = open_copy(QG_RDONLY);
    ck_assert_int_eq(qg_store_id(st, again), 0);
    ck_assert_str_eq(again, first);
    qg_store_close(st);
    st = open_copy(0);
    ck_assert_int_eq(qg_store_id(st, again), 0);
    ck_assert_str_eq(again, first);
}
END_TEST

static Suite *
compat_suite(void)
{
    Suite *s = suite_create("compat");
    TCase *core = tcase_create("Core"), *ids;

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_compat_01_reads_as_written);
    tcase_add_test(core, test_compat_01_takes_late_steps);
    suite_add_tcase(s, core);
    ids = tcase_create("Ids");
    tcase_add_checked_fixture(ids, setup_copy, teardown);
    tcase_add_test(ids, test_compat_01_gets_an_id_when_written);
    suite_add_tcase(s, ids);
    return s;
}

int
main(void)
{
    return tu_run(compat_suite());
}
