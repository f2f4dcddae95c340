/*
 * check_source.c - several Chup accounts (sources) in one store: each
 * source's ids, duplicates, refusals and held deliveries are its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static qg_store *st;
static qg_engine *a, *b;

static void
setup(void)
{
    st = tu_store_new();
    a = tu_engine();
    b = tu_engine();
    ck_assert_int_eq(qg_engine_set_source(a, "a"), 0);
    ck_assert_int_eq(qg_engine_set_source(b, "b"), 0);
}

static void
teardown(void)
{
    qg_engine_free(a);
    qg_engine_free(b);
    qg_store_close(st);
    tu_store_remove();
}

/* The same walk-in (the same bytes, live queue 30001) from two clinics is
 * two visits: every step accepted in each, two tickets, each found by
 * 30001 only in its own source. */
START_TEST(test_source_same_ids_two_tickets)
{
    qg_ticket ta, tb, t;
    qg_finding f;
    qg_result res;
    qg_tickets *it;
    size_t i;
    int n;

    for (i = 0; i < 9; i++) {
        res = tu_apply(a, st, tu_walk_in[i].file);
        ck_assert_msg(res.verdict == QG_ACCEPTED, "a %s: %s",
                      tu_walk_in[i].file, res.detail);
        res = tu_apply(b, st, tu_walk_in[i].file);
        ck_assert_msg(res.verdict == QG_ACCEPTED, "b %s: %s",
                      tu_walk_in[i].file, res.detail);
        ck_assert_int_eq(res.from, tu_walk_in[i].from);
        ck_assert_int_eq(res.to, tu_walk_in[i].to);
    }
    ck_assert_int_eq(qg_store_ticket_in(st, "a", QG_ID_LIVE_QUEUE, 30001, &ta),
                     0);
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30001, &tb),
                     0);
    ck_assert_uint_ne(ta.id, tb.id);
    ck_assert_str_eq(ta.source, "a");
    ck_assert_str_eq(tb.source, "b");
    ck_assert_uint_eq(ta.records, 9);
    ck_assert_uint_eq(tb.records, 9);
    ck_assert_int_eq(ta.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(tb.state, QG_ST_VISIT_ENDED);
    /* the default source has no live queue 30001 */
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    ck_assert_int_eq(qg_store_ticket_named_in(st, "b", "30001", &t), 0);
    ck_assert_uint_eq(t.id, tb.id);
    /* a ticket number names its ticket in its own source only */
    ck_assert_int_eq(
        qg_store_ticket_in(st, "a", QG_ID_TICKET, (int64_t)tb.id, &t),
        QG_NOTFOUND);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_TICKET, (int64_t)tb.id, &t), 0);
    ck_assert_str_eq(t.source, "b");
    ck_assert_int_eq(qg_store_verify_ticket(st, ta.id, &f), 0);
    ck_assert_msg(!f.found, "a: %s", f.what);
    ck_assert_int_eq(qg_store_verify_ticket(st, tb.id, &f), 0);
    ck_assert_msg(!f.found, "b: %s", f.what);
    /* a redelivery is a duplicate within its source */
    res = tu_apply(b, st, tu_walk_in[3].file);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    ck_assert_uint_eq(res.ticket, tb.id);
    ck_assert_uint_eq(res.seq, 4);
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    for (n = 0; qg_tickets_next(it, &t) == 0; n++)
        ck_assert_str_eq(t.source, t.id == ta.id ? "a" : "b");
    qg_tickets_close(it);
    ck_assert_int_eq(n, 2);
    /* a cursor over every record names each record's ticket's source,
     * in both orders (the export reads tickets so) */
    for (i = 0; i < 2; i++) {
        qg_history *h;
        qg_record r;

        ck_assert_int_eq(qg_history_open_order(
                             st, 0, i ? QG_ARRIVAL_ORDER : QG_EVENT_ORDER, &h),
                         0);
        for (n = 0; qg_history_next(h, &r) == 0; n++) {
            ck_assert_int_eq(qg_history_ticket(h, &t), 0);
            ck_assert_uint_eq(t.id, r.ticket);
            ck_assert_str_eq(t.source, r.ticket == ta.id ? "a" : "b");
        }
        qg_history_close(h);
        ck_assert_int_eq(n, 18);
    }
}
END_TEST

/* An engine never given a source writes the default source, as before. */
START_TEST(test_source_default_is_as_before)
{
    qg_engine *d = tu_engine();
    qg_ticket t;

    ck_assert_str_eq(qg_engine_source(d), QG_SOURCE_DEFAULT);
    ck_assert_int_eq(tu_apply(d, st, tu_walk_in[0].file).verdict, QG_ACCEPTED);
    ck_assert_int_eq(tu_apply(a, st, tu_walk_in[0].file).verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_str_eq(t.source, QG_SOURCE_DEFAULT);
    ck_assert_uint_eq(t.id, 1);
    ck_assert_int_eq(
        qg_store_ticket_in(st, "default", QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.id, 1);
    ck_assert_int_eq(qg_store_ticket_in(st, "a", QG_ID_LIVE_QUEUE, 30001, &t),
                     0);
    ck_assert_uint_eq(t.id, 2);
    ck_assert_int_eq(qg_store_has_source(st, "default"), 1);
    ck_assert_int_eq(qg_store_has_source(st, "a"), 1);
    ck_assert_int_eq(qg_store_has_source(st, "b"), 0);
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    /* back to the default source */
    ck_assert_int_eq(qg_engine_set_source(a, NULL), 0);
    ck_assert_int_eq(tu_apply(a, st, tu_walk_in[0].file).verdict, QG_DUPLICATE);
    qg_engine_free(d);
}
END_TEST

/* A refusal is logged under the source it came from, a held delivery
 * waits among its own source's tickets: another source's step with the
 * same ids releases nothing of it, and its expiry is logged under its
 * source. */
START_TEST(test_source_refusals_and_held)
{
    static const char *const dbr[] = {
        "illegal/dispense-before-receive/01-join-live-queue.json",
        "illegal/dispense-before-receive/02-serving.json",
        "illegal/dispense-before-receive/03-served.json",
        "illegal/dispense-before-receive/04-pharmacy-dispensed.json"};
    qg_rejections *rj;
    qg_rejection rej;
    qg_held_list *hl;
    qg_held h;
    qg_result res;
    uint64_t expired;
    size_t i;

    ck_assert_int_eq(qg_engine_set_reorder_window(a, 1200), 0);
    ck_assert_int_eq(qg_engine_set_reorder_window(b, 1200), 0);
    for (i = 0; i < 4; i++)
        tu_apply(a, st, dbr[i]);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(tu_apply(b, st, dbr[i]).verdict, QG_ACCEPTED);
    res = tu_apply(b, st, "illegal/paid-after-cancel/01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    tu_apply(b, st, "illegal/paid-after-cancel/02-cancel-delete.json");
    res = tu_apply(b, st, "illegal/paid-after-cancel/03-billing-paid.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    ck_assert_int_eq(qg_held_next(hl, &h), 0);
    ck_assert_str_eq(h.source, "a");
    ck_assert_int_eq(h.live_queue_id, 40005);
    ck_assert_int_eq(qg_held_next(hl, &h), QG_NOTFOUND);
    qg_held_close(hl);
    /* b's redelivery of the held bytes is b's own: held for b too */
    res = tu_apply(b, st, dbr[3]);
    ck_assert_int_eq(res.verdict, QG_HELD);
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, &expired), 0);
    ck_assert_uint_eq(expired, 2);
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_str_eq(rej.source, "b");
    ck_assert_int_eq(rej.reason, QG_R_TICKET_CLOSED);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_str_eq(rej.source, "a");
    ck_assert_int_eq(rej.live_queue_id, 40005);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_str_eq(rej.source, "b");
    ck_assert_int_eq(rej.live_queue_id, 40005);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
}
END_TEST

/* One commit may hold deliveries of several sources (the gate's group
 * commit): each is decided among its own source's tickets. */
START_TEST(test_source_one_batch_two_sources)
{
    qg_prepared *p[4];
    qg_result res[4];
    qg_ticket ta, tb;
    size_t len;
    char *join = tu_fixture(tu_walk_in[0].file, &len), *alert;
    size_t alen;
    int rcs[4], i;

    alert = tu_fixture(tu_walk_in[1].file, &alen);
    ck_assert_int_eq(qg_engine_prepare(a, join, len, &p[0]), 0);
    ck_assert_int_eq(qg_engine_prepare(b, join, len, &p[1]), 0);
    ck_assert_int_eq(qg_engine_prepare(b, alert, alen, &p[2]), 0);
    ck_assert_int_eq(qg_engine_prepare(a, join, len, &p[3]), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(st, p, 4, res, rcs), 0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(rcs[i], 0);
    ck_assert_int_eq(res[0].verdict, QG_ACCEPTED);
    ck_assert_int_eq(res[1].verdict, QG_ACCEPTED);
    ck_assert_uint_ne(res[0].ticket, res[1].ticket);
    ck_assert_int_eq(res[2].verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res[2].ticket, res[1].ticket);
    ck_assert_int_eq(res[3].verdict, QG_DUPLICATE);
    ck_assert_uint_eq(res[3].ticket, res[0].ticket);
    ck_assert_int_eq(qg_store_ticket_in(st, "a", QG_ID_LIVE_QUEUE, 30001, &ta),
                     0);
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30001, &tb),
                     0);
    ck_assert_uint_eq(ta.records, 1);
    ck_assert_uint_eq(tb.records, 2);
    for (i = 0; i < 4; i++)
        qg_prepared_free(p[i]);
    free(join);
    free(alert);
}
END_TEST

/* A dry run for a source the store has not seen finds nothing of the
 * others' and numbers nothing. */
START_TEST(test_source_dry_run_unseen)
{
    qg_engine *c = tu_engine();
    qg_result res;
    size_t len;
    char *body = tu_fixture(tu_walk_in[0].file, &len);

    ck_assert_int_eq(tu_apply(a, st, tu_walk_in[0].file).verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_engine_set_source(c, "c"), 0);
    ck_assert_int_eq(qg_engine_apply(c, st, body, len, QG_DRY_RUN, &res), 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res.ticket, 0);
    ck_assert_int_eq(res.from, QG_ST_NEW);
    ck_assert_int_eq(qg_store_has_source(st, "c"), 0);
    free(body);
    qg_engine_free(c);
}
END_TEST

/* Names stand as they are in URL paths, log lines and metric labels. */
START_TEST(test_source_names)
{
    static const struct {
        const char *name;
        int ok;
    } names[] = {
        {"a", 1},
        {"clinic-north", 1},
        {"c_2", 1},
        {"0", 1},
        {"abcdefghijklmnopqrstuvwxyz012345", 1},  /* 32 */
        {"abcdefghijklmnopqrstuvwxyz0123456", 0}, /* 33 */
        {"", 0},
        {"-a", 0},
        {"_a", 0},
        {"Clinic", 0},
        {"a b", 0},
        {"a/b", 0},
        {"a.b", 0},
        {"é", 0},
    };
    size_t i;

    ck_assert_int_eq(qg_source_name_check(NULL), QG_EINVAL);
    for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
        ck_assert_msg((qg_source_name_check(names[i].name) == 0) == names[i].ok,
                      "\"%s\"", names[i].name);
        ck_assert_int_eq(qg_engine_set_source(a, names[i].name),
                         names[i].ok ? 0 : QG_EINVAL);
        /* a refused name keeps the source before it */
        if (names[i].ok)
            ck_assert_str_eq(qg_engine_source(a), names[i].name);
        else
            ck_assert_str_ne(qg_engine_source(a), names[i].name);
    }
    ck_assert_int_eq(qg_engine_set_source(NULL, "a"), QG_EINVAL);
    ck_assert_int_eq(qg_store_has_source(st, "A"), QG_EINVAL);
}
END_TEST

/* A store tells QG_SOURCES_MAX sources apart, the default one included;
 * a write for one more fails and writes nothing. */
START_TEST(test_source_limit)
{
    qg_engine *e = tu_engine();
    qg_result res;
    qg_ticket t;
    size_t len;
    char *body = tu_fixture(tu_walk_in[0].file, &len), name[16];
    int i;

    for (i = 1; i < QG_SOURCES_MAX; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        ck_assert_int_eq(qg_engine_set_source(e, name), 0);
        ck_assert_int_eq(qg_engine_apply(e, st, body, len, 0, &res), 0);
        ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    }
    ck_assert_int_eq(qg_engine_set_source(e, "one-more"), 0);
    ck_assert_int_eq(qg_engine_apply(e, st, body, len, 0, &res), QG_ETOOBIG);
    ck_assert_int_eq(qg_store_has_source(st, "one-more"), 0);
    ck_assert_int_eq(qg_store_ticket_in(st, "s63", QG_ID_LIVE_QUEUE, 30001, &t),
                     0);
    ck_assert_str_eq(t.source, "s63");
    ck_assert_uint_eq(t.id, QG_SOURCES_MAX - 1);
    free(body);
    qg_engine_free(e);
}
END_TEST

/* A delivery that fails on a store error in a group (here the source one
 * past the limit) is undone alone, the others in its group committed (a
 * source the group's first delivery numbered among them): by
 * a nested transaction each, or in a store that nests none (QG_WRITEMAP)
 * by a commit each. */
START_TEST(test_source_limit_in_batch)
{
    static const unsigned flags[] = {0, QG_WRITEMAP};
    qg_engine *e, *more;
    qg_prepared *p[3];
    qg_result res[3];
    qg_ticket t;
    size_t len, alen;
    char *join, *alert, name[16];
    int rcs[3], i;

    if (flags[_i] == QG_WRITEMAP && tu_store_is_pg())
        return; /* LMDB's map; before anything is allocated */
    e = tu_engine();
    more = tu_engine();
    join = tu_fixture(tu_walk_in[0].file, &len);
    alert = tu_fixture(tu_walk_in[1].file, &alen);
    st = tu_store_reopen(st, flags[_i]);
    /* the default source, s1 to s62, and a (in the group) make 64 */
    for (i = 1; i < QG_SOURCES_MAX - 1; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        ck_assert_int_eq(qg_engine_set_source(e, name), 0);
        ck_assert_int_eq(qg_engine_apply(e, st, join, len, 0, &res[0]), 0);
    }
    ck_assert_int_eq(qg_engine_set_source(more, "one-more"), 0);
    ck_assert_int_eq(qg_engine_prepare(a, join, len, &p[0]), 0);
    ck_assert_int_eq(qg_engine_prepare(more, join, len, &p[1]), 0);
    ck_assert_int_eq(qg_engine_prepare(e, alert, alen, &p[2]), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(st, p, 3, res, rcs), 0);
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(res[0].verdict, QG_ACCEPTED);
    ck_assert_int_eq(rcs[1], QG_ETOOBIG);
    ck_assert_int_eq(rcs[2], 0);
    ck_assert_int_eq(res[2].verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_store_has_source(st, "one-more"), 0);
    ck_assert_int_eq(qg_store_ticket_in(st, "s62", QG_ID_LIVE_QUEUE, 30001, &t),
                     0);
    ck_assert_uint_eq(t.records, 2);
    ck_assert_int_eq(qg_store_ticket_in(st, "a", QG_ID_LIVE_QUEUE, 30001, &t),
                     0);
    ck_assert_uint_eq(t.records, 1);
    for (i = 0; i < 3; i++)
        qg_prepared_free(p[i]);
    free(join);
    free(alert);
    qg_engine_free(e);
    qg_engine_free(more);
}
END_TEST

static Suite *
source_suite(void)
{
    Suite *s = suite_create("source");
    TCase *core = tcase_create("Core"), *limits = tcase_create("Limits");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_source_same_ids_two_tickets);
    tcase_add_test(core, test_source_default_is_as_before);
    tcase_add_test(core, test_source_refusals_and_held);
    tcase_add_test(core, test_source_dry_run_unseen);
    tcase_add_test(core, test_source_one_batch_two_sources);
    suite_add_tcase(s, core);
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_add_test(limits, test_source_names);
    tcase_add_test(limits, test_source_limit);
    tcase_add_loop_test(limits, test_source_limit_in_batch, 0, 2);
    suite_add_tcase(s, limits);
    return s;
}

int
main(void)
{
    return tu_run(source_suite());
}
