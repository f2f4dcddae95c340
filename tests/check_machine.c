/*
 * check_machine.c - the lifecycle machine against the specification table.
 *
 * The table below is written out from the specification (issue "Lifecycle
 * engine core", docs/lifecycle.md), not derived from machine/ticket.rl, so
 * a change to the chart that breaks the specification fails here.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* from, then "event to" pairs separated by '|' */
static const struct {
    qg_state from;
    const char *arms;
} spec[QG_STATE_COUNT] = {
    {QG_ST_NEW, "book booked|join queued|arrive arrived"},
    {QG_ST_BOOKED, "reschedule booked|alert booked|update booked|"
                   "join queued|arrive arrived|no_show no_show|"
                   "cancel cancelled"},
    {QG_ST_QUEUED, "alert queued|update queued|arrive arrived|"
                   "serve serving|move moved|no_show no_show|"
                   "cancel cancelled"},
    {QG_ST_ARRIVED, "alert arrived|update arrived|serve serving|"
                    "move moved|no_show no_show|cancel cancelled"},
    {QG_ST_SERVING, "alert serving|update serving|complete served|"
                    "move moved"},
    {QG_ST_SERVED, "update served|move moved|"
                   "rx_receive pharmacy_received|pay paid|"
                   "end_visit visit_ended"},
    {QG_ST_NO_SHOW, "update no_show|join queued|arrive arrived|"
                    "cancel cancelled"},
    {QG_ST_MOVED, "alert moved|update moved|arrive arrived|"
                  "serve serving|move moved|no_show no_show|"
                  "cancel cancelled"},
    {QG_ST_CANCELLED, ""},
    {QG_ST_PHARMACY_RECEIVED, "alert pharmacy_received|"
                              "update pharmacy_received|"
                              "rx_dispense pharmacy_dispensed"},
    {QG_ST_PHARMACY_DISPENSED, "update pharmacy_dispensed|move moved|"
                               "pay paid|end_visit visit_ended"},
    {QG_ST_PAID, "update paid|move moved|rx_receive pharmacy_received|"
                 "end_visit visit_ended"},
    {QG_ST_VISIT_ENDED, ""},
};

#define NEVENTS (QG_EVENT_COUNT - 1) /* the 15 real events */

/* The state the specification says event e leads to from s, or QG_ILLEGAL. */
static int
spec_next(qg_state s, qg_event e)
{
    char arms[512], *arm, *save = NULL;
    size_t i;

    for (i = 0; i < QG_STATE_COUNT && spec[i].from != s; i++)
        ;
    ck_assert_uint_lt(i, QG_STATE_COUNT);
    snprintf(arms, sizeof(arms), "%s", spec[i].arms);
    for (arm = strtok_r(arms, "|", &save); arm;
         arm = strtok_r(NULL, "|", &save)) {
        char ev[32], to[32];
        qg_state st;

        ck_assert_int_eq(sscanf(arm, "%31s %31s", ev, to), 2);
        if (strcmp(ev, qg_event_name(e)) != 0)
            continue;
        ck_assert_int_eq(qg_state_from_name(to, &st), 0);
        return (int)st;
    }
    return QG_ILLEGAL;
}

/* One loop iteration per cell of the 13 x 15 table. */
START_TEST(test_machine_cell_matches_spec)
{
    qg_state s = (qg_state)(_i / NEVENTS);
    qg_event e = (qg_event)(_i % NEVENTS + 1);
    int want = spec_next(s, e), got = qg_machine_next(s, e);

    ck_assert_msg(got == want, "%s in %s: machine says %s, spec says %s",
                  qg_event_name(e), qg_state_name(s),
                  got < 0 ? "illegal" : qg_state_name((qg_state)got),
                  want < 0 ? "illegal" : qg_state_name((qg_state)want));
    ck_assert_int_eq(!!(qg_machine_allowed(s) & (1u << e)), want >= 0);
}
END_TEST

START_TEST(test_machine_final_states_are_cancelled_and_visit_ended)
{
    int s;

    for (s = 0; s < QG_STATE_COUNT; s++)
        ck_assert_int_eq(qg_state_is_final((qg_state)s),
                         s == QG_ST_CANCELLED || s == QG_ST_VISIT_ENDED);
}
END_TEST

START_TEST(test_machine_names_round_trip)
{
    qg_state st;
    qg_event ev;
    int i;

    for (i = 0; i < QG_STATE_COUNT; i++) {
        ck_assert_int_eq(qg_state_from_name(qg_state_name((qg_state)i), &st),
                         0);
        ck_assert_int_eq(st, i);
    }
    for (i = 1; i < QG_EVENT_COUNT; i++) {
        ck_assert_int_eq(qg_event_from_name(qg_event_name((qg_event)i), &ev),
                         0);
        ck_assert_int_eq(ev, i);
    }
    ck_assert_str_eq(qg_state_name(QG_ST_PHARMACY_RECEIVED),
                     "pharmacy_received");
    ck_assert_str_eq(qg_event_name(QG_EV_RX_DISPENSE), "rx_dispense");
    ck_assert_int_eq(qg_state_from_name("Queued", &st), QG_NOTFOUND);
    ck_assert_int_eq(qg_event_from_name("none", &ev), QG_NOTFOUND);
}
END_TEST

START_TEST(test_machine_out_of_range_is_illegal)
{
    ck_assert_int_eq(qg_machine_next((qg_state)QG_STATE_COUNT, QG_EV_JOIN),
                     QG_ILLEGAL);
    ck_assert_int_eq(qg_machine_next(QG_ST_NEW, (qg_event)QG_EVENT_COUNT),
                     QG_ILLEGAL);
    ck_assert_int_eq(qg_machine_next(QG_ST_NEW, QG_EV_NONE), QG_ILLEGAL);
    ck_assert_ptr_null(qg_state_name((qg_state)99));
    ck_assert_ptr_null(qg_event_name((qg_event)99));
}
END_TEST

START_TEST(test_machine_version_is_16_hex)
{
    const char *v = qg_machine_version();

    ck_assert_uint_eq(strlen(v), 16);
    ck_assert_uint_eq(strspn(v, "0123456789abcdef"), 16);
}
END_TEST

/* A whole legal visit is a word of the machine; one illegal step is not. */
START_TEST(test_machine_walks_a_whole_visit)
{
    static const qg_event visit[] = {
        QG_EV_BOOK,        QG_EV_RESCHEDULE, QG_EV_JOIN,     QG_EV_ALERT,
        QG_EV_MOVE,        QG_EV_SERVE,      QG_EV_COMPLETE, QG_EV_RX_RECEIVE,
        QG_EV_RX_DISPENSE, QG_EV_PAY,        QG_EV_END_VISIT};
    qg_state s = QG_ST_NEW;
    size_t i;

    for (i = 0; i < sizeof(visit) / sizeof(*visit); i++) {
        int next = qg_machine_next(s, visit[i]);

        ck_assert_msg(next >= 0, "%s refused in %s", qg_event_name(visit[i]),
                      qg_state_name(s));
        s = (qg_state)next;
    }
    ck_assert_int_eq(s, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(qg_machine_next(s, QG_EV_END_VISIT), QG_ILLEGAL);
}
END_TEST

static Suite *
machine_suite(void)
{
    Suite *s = suite_create("machine");
    TCase *core = tcase_create("Core"), *limits = tcase_create("Limits");

    tcase_add_loop_test(core, test_machine_cell_matches_spec, 0,
                        QG_STATE_COUNT * NEVENTS);
    tcase_add_test(core,
                   test_machine_final_states_are_cancelled_and_visit_ended);
    tcase_add_test(core, test_machine_names_round_trip);
    tcase_add_test(core, test_machine_version_is_16_hex);
    tcase_add_test(core, test_machine_walks_a_whole_visit);
    tcase_add_test(limits, test_machine_out_of_range_is_illegal);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    return s;
}

int
main(void)
{
    return tu_run(machine_suite());
}
