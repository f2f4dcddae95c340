/*
 * check_verify.c - qg_store_verify_ticket() finds what it promises to:
 * each kind of damage is made in a store with the internal writers, then
 * must be reported with the step and the fault named.
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"
#include "store_int.h"
#include "testutil.h"

static qg_store *st;
static qg_engine *eng;
static uint64_t walkin; /* the walk-in visit's ticket, 9 steps */

static void
setup(void)
{
    size_t i;
    qg_result res;

    st = tu_store_new();
    eng = tu_engine();
    for (i = 0; i < sizeof(tu_walk_in) / sizeof(*tu_walk_in); i++) {
        res = tu_apply(eng, st, tu_walk_in[i].file);
        ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    }
    walkin = res.ticket;
}

static void
teardown(void)
{
    qg_engine_free(eng);
    qg_store_close(st);
    tu_store_remove();
}

/* The damage each test makes, run in one write transaction. */
typedef struct damage {
    int kind;
    uint64_t ticket;
} damage;

enum {
    WRONG_STATE,
    WRONG_COUNT,
    LOST_ALIAS,
    ILLEGAL_STEP,
    FROM_MISMATCH,
    BAD_DIGEST
};

static int
do_damage(qg__txn *t, void *arg)
{
    damage *d = arg;
    qg__ticket_row row;
    qg_record rec;
    int rc;

    if ((rc = qg__get_ticket(t, d->ticket, &row)))
        return rc;
    switch (d->kind) {
    case WRONG_STATE:
        row.t.state = QG_ST_PAID;
        return qg__put_ticket(t, &row);
    case WRONG_COUNT:
        row.t.records = 8;
        return qg__put_ticket(t, &row);
    case LOST_ALIAS:
        row.t.live_queue_id = 777;
        return qg__put_ticket(t, &row);
    }
    /* a tenth step */
    memset(&rec, 0, sizeof(rec));
    rec.ticket = d->ticket;
    rec.seq = 10;
    rec.event_ms = row.t.last_event_ms + 1000;
    rec.from = QG_ST_VISIT_ENDED;
    rec.to = QG_ST_VISIT_ENDED;
    rec.event = QG_EV_UPDATE; /* illegal in a final state */
    rec.body = "{\"payload\":{}}";
    rec.body_len = strlen(rec.body);
    qg__digest("{}", 2, rec.digest);
    if (d->kind == FROM_MISMATCH) {
        rec.event = QG_EV_END_VISIT;
        rec.from = QG_ST_PAID;
    }
    if ((rc = qg__lmdb_append_record(t, &rec, NULL)))
        return rc;
    row.t.records = 10;
    return qg__put_ticket(t, &row);
}

static void
damage_and_verify(int kind, uint32_t seq, const char *says)
{
    damage d = {kind, walkin};
    qg_finding f;

    ck_assert_int_eq(qg__store_write(st, do_damage, &d), 0);
    ck_assert_int_eq(qg_store_verify_ticket(st, walkin, &f), 0);
    ck_assert_int_eq(f.found, 1);
    ck_assert_uint_eq(f.seq, seq);
    ck_assert_msg(strstr(f.what, says) != NULL, "\"%s\" does not say \"%s\"",
                  f.what, says);
}

START_TEST(test_verify_consistent_store_passes)
{
    qg_finding f;

    ck_assert_int_eq(qg_store_verify_ticket(st, walkin, &f), 0);
    ck_assert_int_eq(f.found, 0);
}
END_TEST

START_TEST(test_verify_wrong_state)
{
    damage_and_verify(WRONG_STATE, 0,
                      "the ticket is paid but its history "
                      "ends in visit_ended");
}
END_TEST

START_TEST(test_verify_wrong_count)
{
    damage_and_verify(WRONG_COUNT, 0, "counts 8 steps, its history holds 9");
}
END_TEST

START_TEST(test_verify_lost_alias)
{
    damage_and_verify(LOST_ALIAS, 0, "live-queue id 777 does not lead");
}
END_TEST

START_TEST(test_verify_step_the_machine_refuses)
{
    damage_and_verify(ILLEGAL_STEP, 10,
                      "does not take update from "
                      "visit_ended");
}
END_TEST

START_TEST(test_verify_step_from_wrong_state)
{
    damage_and_verify(FROM_MISMATCH, 10,
                      "starts from paid but the step "
                      "before ended in visit_ended");
}
END_TEST

/* A legal second step whose stored body is not what its digest says. */
static int
append_altered(qg__txn *t, void *arg)
{
    qg__ticket_row row;
    qg_record rec;
    size_t len;
    char *body = tu_fixture("visits/walk-in/02-alert.json", &len);
    int rc;

    if ((rc = qg__get_ticket(t, *(uint64_t *)arg, &row)))
        return rc;
    memset(&rec, 0, sizeof(rec));
    rec.ticket = row.t.id;
    rec.seq = 2;
    rec.event_ms = row.t.last_event_ms;
    rec.from = rec.to = QG_ST_QUEUED;
    rec.event = QG_EV_ALERT;
    rec.body = body;
    rec.body_len = len;
    qg__digest("something else", 14, rec.digest);
    rc = qg__lmdb_append_record(t, &rec, NULL);
    free(body);
    row.t.records = 2;
    return rc ? rc : qg__put_ticket(t, &row);
}

START_TEST(test_verify_body_not_matching_digest)
{
    qg_result res = tu_apply(eng, st,
                             "visits/no-show-cancelled/"
                             "01-join-live-queue.json");
    qg_finding f;

    ck_assert_int_eq(qg__store_write(st, append_altered, &res.ticket), 0);
    ck_assert_int_eq(qg_store_verify_ticket(st, res.ticket, &f), 0);
    ck_assert_int_eq(f.found, 1);
    ck_assert_uint_eq(f.seq, 2);
    ck_assert_str_eq(f.what, "stored body does not match its digest");
}
END_TEST

START_TEST(test_verify_unknown_ticket)
{
    qg_finding f;

    ck_assert_int_eq(qg_store_verify_ticket(st, 999, &f), QG_NOTFOUND);
    ck_assert_int_eq(qg_store_verify_ticket(st, 0, &f), QG_EINVAL);
}
END_TEST

static Suite *
verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *core = tcase_create("Core");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_verify_consistent_store_passes);
    tcase_add_test(core, test_verify_wrong_state);
    tcase_add_test(core, test_verify_wrong_count);
    tcase_add_test(core, test_verify_lost_alias);
    tcase_add_test(core, test_verify_step_the_machine_refuses);
    tcase_add_test(core, test_verify_step_from_wrong_state);
    tcase_add_test(core, test_verify_body_not_matching_digest);
    tcase_add_test(core, test_verify_unknown_ticket);
    suite_add_tcase(s, core);
    return s;
}

int
main(void)
{
    return tu_run(verify_suite());
}
