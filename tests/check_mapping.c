/*
 * check_mapping.c - Chup's vocabulary to canonical events, as
 * docs/mapping.md documents it: the default tables, key by key; an
 * override file that changes one key and leaves every other; override
 * files that are refused, with the file, key and value named.
 *
 * Every row is checked through the public API: an unsigned delivery,
 * decided as a dry run on an empty store, and the canonical event (or the
 * refusal) that the engine gives it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static qg_store *st;
static qg_engine *eng;
static char map_path[64];

static void
setup(void)
{
    st = tu_store_new();
    ck_assert_int_eq(qg_engine_new(&eng), 0);
    qg_engine_require_signature(eng, 0);
    map_path[0] = '\0';
}

static void
teardown(void)
{
    if (map_path[0])
        unlink(map_path);
    qg_engine_free(eng);
    qg_store_close(st);
    tu_store_remove();
}

/* An unsigned delivery of `event` for Chup id 61001 with the data fields
 * after "id", decided as a dry run. */
static qg_result
decide(const char *event, const char *fields)
{
    char body[2048];
    qg_result res;

    snprintf(body, sizeof(body),
             "{\"payload\":{\"event\":\"%s\",\"timestamp\":"
             "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":61001%s%s}}}",
             event, fields[0] ? "," : "", fields);
    ck_assert_int_eq(
        qg_engine_apply(eng, st, body, strlen(body), QG_DRY_RUN, &res), 0);
    return res;
}

/* The canonical event a live_queue_created with this state_name gives,
 * or QG_EV_NONE when the state is not mapped (which must be said). */
static qg_event
state_event(const char *name)
{
    char fields[128];
    qg_result res;

    snprintf(fields, sizeof(fields), "\"state_name\":\"%s\"", name);
    res = decide("live_queue_created", fields);
    if (res.reason == QG_R_UNKNOWN_STATE)
        ck_assert_int_eq(res.event, QG_EV_NONE);
    return res.reason == QG_R_UNKNOWN_STATE ? QG_EV_NONE : res.event;
}

static qg_event
value_event(int value)
{
    char fields[64];
    qg_result res;

    snprintf(fields, sizeof(fields), "\"state\":%d", value);
    res = decide("live_queue_created", fields);
    return res.reason == QG_R_UNKNOWN_STATE ? QG_EV_NONE : res.event;
}

static void
write_map(const char *text)
{
    FILE *f;
    int fd;

    snprintf(map_path, sizeof(map_path), "/tmp/qgate-mapping-XXXXXX");
    fd = mkstemp(map_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(f = fdopen(fd, "w"));
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* ----- the defaults (docs/mapping.md, "Defaults") ------------------------ */

/* What an event's rule makes of a delivery: a fixed canonical event, the
 * event its state names ("state"), or not a lifecycle step ("ignore"). */
enum rule { FIXED, BY_STATE, IGNORE, UNKNOWN };

static const struct {
    const char *chup;
    enum rule rule;
    qg_event event; /* for FIXED */
} events[] = {
    {"appointment_created", FIXED, QG_EV_BOOK},
    {"appointment_updated", BY_STATE, QG_EV_NONE},
    {"appointment_deleted", FIXED, QG_EV_CANCEL},
    {"live_queue_created", BY_STATE, QG_EV_NONE},
    {"live_queue_updated", BY_STATE, QG_EV_NONE},
    {"live_queue_deleted", FIXED, QG_EV_CANCEL},
    {"client_created", IGNORE, QG_EV_NONE},
    {"client_updated", IGNORE, QG_EV_NONE},
    {"client_deleted", IGNORE, QG_EV_NONE},
    {"service_created", IGNORE, QG_EV_NONE},
    {"service_updated", IGNORE, QG_EV_NONE},
    {"service_staffs_updated", IGNORE, QG_EV_NONE},
    {"service_deleted", IGNORE, QG_EV_NONE},
    {"staff_created", IGNORE, QG_EV_NONE},
    {"staff_updated", IGNORE, QG_EV_NONE},
    {"staff_services_updated", IGNORE, QG_EV_NONE},
    {"staff_deleted", IGNORE, QG_EV_NONE},
    /* not published by Chup: not in the table */
    {"live_queue_called", UNKNOWN, QG_EV_NONE},
    {"appointment_confirmed", UNKNOWN, QG_EV_NONE},
    {"LIVE_QUEUE_CREATED", UNKNOWN, QG_EV_NONE},
};

/* Checks that Chup event i of the table is decided by its rule.  The
 * state named is "Serving", which no fixed event is: a fixed event must
 * not follow it, a "state" event must. */
static void
check_event_row(size_t i)
{
    qg_result res = decide(events[i].chup, "\"state_name\":\"Serving\"");
    const char *name = events[i].chup;

    switch (events[i].rule) {
    case FIXED:
        ck_assert_msg(res.event == events[i].event, "%s: %s, expected %s (%s)",
                      name, qg_event_name(res.event),
                      qg_event_name(events[i].event), res.detail);
        break;
    case BY_STATE:
        ck_assert_msg(res.event == QG_EV_SERVE, "%s: %s, expected serve (%s)",
                      name, qg_event_name(res.event), res.detail);
        break;
    case IGNORE:
        ck_assert_msg(res.verdict == QG_IGNORED &&
                          res.reason == QG_R_NOT_LIFECYCLE,
                      "%s: %s %s, expected ignored", name,
                      qg_verdict_name(res.verdict), qg_reason_name(res.reason));
        ck_assert_int_eq(res.event, QG_EV_NONE);
        break;
    case UNKNOWN:
        ck_assert_msg(res.verdict == QG_REJECTED &&
                          res.reason == QG_R_UNKNOWN_EVENT,
                      "%s: %s %s, expected unknown_event", name,
                      qg_verdict_name(res.verdict), qg_reason_name(res.reason));
        ck_assert_msg(strstr(res.detail, name) != NULL,
                      "%s: the refusal does not name it: %s", name, res.detail);
        break;
    }
}

START_TEST(test_mapping_default_events_table)
{
    check_event_row((size_t)_i);
}
END_TEST

/* A fixed event is the whole decision: a legal step from a new ticket
 * (appointment_created books one) is accepted as that event. */
START_TEST(test_mapping_fixed_event_accepted)
{
    qg_result res = decide("appointment_created", "\"appointment_id\":61001");

    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s %s (%s)",
                  qg_verdict_name(res.verdict), qg_reason_name(res.reason),
                  res.detail);
    ck_assert_int_eq(res.event, QG_EV_BOOK);
    ck_assert_int_eq(res.to, QG_ST_BOOKED);
}
END_TEST

static const struct {
    const char *name;
    qg_event event;
} states[] = {
    {"In Queue", QG_EV_JOIN},
    {"Arrived", QG_EV_ARRIVE},
    {"Serving", QG_EV_SERVE},
    {"Served", QG_EV_COMPLETE},
    {"Completed", QG_EV_COMPLETE},
    {"No Show", QG_EV_NO_SHOW},
    {"Cancelled", QG_EV_CANCEL},
    {"Canceled", QG_EV_CANCEL},
    {"Moved", QG_EV_MOVE},
    {"Pharmacy Received", QG_EV_RX_RECEIVE},
    {"Received", QG_EV_RX_RECEIVE},
    {"Pharmacy Dispensed", QG_EV_RX_DISPENSE},
    {"Dispensed", QG_EV_RX_DISPENSE},
    {"Paid", QG_EV_PAY},
    {"Visit Ended", QG_EV_END_VISIT},
    {"End Visit", QG_EV_END_VISIT},
    {"Ended", QG_EV_END_VISIT},
    {"Alert", QG_EV_ALERT},
    {"Alerted", QG_EV_ALERT},
    {"Booked", QG_EV_BOOK},
    {"Confirmed", QG_EV_BOOK},
    {"Rescheduled", QG_EV_RESCHEDULE},
};

/* Folds a documented name the way Chup might spell it: upper case with
 * '_' ("NO_SHOW"), lower case with '-' ("no-show"). */
static void
respell(const char *name, int upper, char sep, char *out, size_t cap)
{
    size_t i;

    for (i = 0; name[i] && i + 1 < cap; i++)
        out[i] = name[i] == ' ' ? sep
                 : upper        ? (char)toupper((unsigned char)name[i])
                                : (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
}

/* Each documented state name, in each spelling, by state_name and by
 * state.name, names its documented event. */
START_TEST(test_mapping_default_states_table)
{
    char spelt[64], fields[160];
    qg_result res;
    int form;

    for (form = 0; form < 3; form++) {
        if (form == 0)
            snprintf(spelt, sizeof(spelt), "%s", states[_i].name);
        else
            respell(states[_i].name, form == 1, form == 1 ? '_' : '-', spelt,
                    sizeof(spelt));
        ck_assert_msg(state_event(spelt) == states[_i].event,
                      "\"%s\": %s, expected %s", spelt,
                      qg_event_name(state_event(spelt)),
                      qg_event_name(states[_i].event));
        snprintf(fields, sizeof(fields),
                 "\"state\":{\"name\":\"%s\",\"value\":99}", spelt);
        res = decide("live_queue_created", fields);
        ck_assert_msg(res.event == states[_i].event,
                      "state.name \"%s\": %s, expected %s (%s)", spelt,
                      qg_event_name(res.event), qg_event_name(states[_i].event),
                      res.detail);
    }
}
END_TEST

/* The state values: 1 and 3 are published, no other is mapped; a name
 * that is not mapped is refused with unknown_state. */
START_TEST(test_mapping_default_values_and_unknowns)
{
    qg_result res;

    ck_assert_int_eq(value_event(1), QG_EV_JOIN);
    ck_assert_int_eq(value_event(3), QG_EV_ARRIVE);
    ck_assert_int_eq(value_event(2), QG_EV_NONE);
    ck_assert_int_eq(value_event(4), QG_EV_NONE);
    ck_assert_int_eq(value_event(0), QG_EV_NONE);
    res = decide("live_queue_created", "\"state_name\":\"Waiting Room\"");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_int_eq(res.reason, QG_R_UNKNOWN_STATE);
    ck_assert_int_eq(state_event("In  Queue"), QG_EV_NONE);
    ck_assert_int_eq(state_event("InQueue"), QG_EV_NONE);
}
END_TEST

/* ----- override files (docs/mapping.md, "The override file") ------------ */

/* Checks every row of the default tables but the one overridden:
 * skip_event, skip_state (a name of states[]) and skip_value (1 or 3, or
 * 0) name it. */
static void
check_defaults_but(const char *skip_event, const char *skip_state,
                   int skip_value)
{
    size_t i;

    for (i = 0; i < COUNT(events); i++)
        if (!skip_event || strcmp(events[i].chup, skip_event) != 0)
            check_event_row(i);
    for (i = 0; i < COUNT(states); i++)
        if (!skip_state || strcmp(states[i].name, skip_state) != 0)
            ck_assert_msg(state_event(states[i].name) == states[i].event,
                          "\"%s\" changed to %s", states[i].name,
                          qg_event_name(state_event(states[i].name)));
    if (skip_value != 1)
        ck_assert_int_eq(value_event(1), QG_EV_JOIN);
    if (skip_value != 3)
        ck_assert_int_eq(value_event(3), QG_EV_ARRIVE);
}

static void
load_ok(const char *text)
{
    char err[256] = "";

    write_map(text);
    ck_assert_msg(qg_engine_load_mapping(eng, map_path, err, sizeof(err)) == 0,
                  "%s: %s", text, err);
}

START_TEST(test_mapping_override_one_state)
{
    load_ok("{\"states\": {\"Paid\": \"alert\"}}");
    ck_assert_int_eq(state_event("Paid"), QG_EV_ALERT);
    ck_assert_int_eq(state_event("PAID"), QG_EV_ALERT);
    check_defaults_but(NULL, "Paid", 0);
}
END_TEST

START_TEST(test_mapping_override_adds_a_state)
{
    load_ok("{\"states\": {\"Waiting Room\": \"join\"}}");
    ck_assert_int_eq(state_event("Waiting Room"), QG_EV_JOIN);
    ck_assert_int_eq(state_event("waiting-room"), QG_EV_JOIN);
    check_defaults_but(NULL, NULL, 0);
}
END_TEST

START_TEST(test_mapping_override_removes_a_state)
{
    load_ok("{\"states\": {\"Served\": null}}");
    ck_assert_int_eq(state_event("Served"), QG_EV_NONE);
    /* its synonym is an entry of its own */
    ck_assert_int_eq(state_event("Completed"), QG_EV_COMPLETE);
    check_defaults_but(NULL, "Served", 0);
}
END_TEST

START_TEST(test_mapping_override_one_event)
{
    qg_result res;

    load_ok("{\"events\": {\"appointment_created\": \"ignore\"}}");
    res = decide("appointment_created", "\"appointment_id\":61001");
    ck_assert_int_eq(res.verdict, QG_IGNORED);
    ck_assert_int_eq(res.reason, QG_R_NOT_LIFECYCLE);
    check_defaults_but("appointment_created", NULL, 0);
}
END_TEST

START_TEST(test_mapping_override_adds_an_event)
{
    qg_result res;

    load_ok("{\"events\": {\"live_queue_called\": \"alert\"}}");
    res = decide("live_queue_called", "\"state_name\":\"Paid\"");
    ck_assert_int_eq(res.event, QG_EV_ALERT);
    check_defaults_but("live_queue_called", NULL, 0);
}
END_TEST

START_TEST(test_mapping_override_event_by_state)
{
    qg_result res;

    load_ok("{\"events\": {\"live_queue_deleted\": \"state\"}}");
    res = decide("live_queue_deleted", "\"state_name\":\"Paid\"");
    ck_assert_int_eq(res.event, QG_EV_PAY);
    check_defaults_but("live_queue_deleted", NULL, 0);
}
END_TEST

START_TEST(test_mapping_override_removes_an_event)
{
    qg_result res;

    load_ok("{\"events\": {\"client_created\": null}}");
    res = decide("client_created", "\"name\":\"x\"");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_int_eq(res.reason, QG_R_UNKNOWN_EVENT);
    check_defaults_but("client_created", NULL, 0);
}
END_TEST

START_TEST(test_mapping_override_one_value)
{
    load_ok("{\"state_values\": {\"3\": \"serve\", \"4\": \"pay\"}}");
    ck_assert_int_eq(value_event(3), QG_EV_SERVE);
    ck_assert_int_eq(value_event(4), QG_EV_PAY);
    /* a name still decides before the value */
    ck_assert_int_eq(state_event("Arrived"), QG_EV_ARRIVE);
    check_defaults_but(NULL, NULL, 3);
}
END_TEST

/* A second file overrides the mapping the first one left, not the
 * defaults alone. */
START_TEST(test_mapping_overrides_accumulate)
{
    load_ok("{\"states\": {\"Waiting Room\": \"join\"}}");
    unlink(map_path);
    load_ok("{\"states\": {\"Paid\": \"alert\"}}");
    ck_assert_int_eq(state_event("Waiting Room"), QG_EV_JOIN);
    ck_assert_int_eq(state_event("Paid"), QG_EV_ALERT);
    check_defaults_but(NULL, "Paid", 0);
}
END_TEST

/* ----- refused override files ------------------------------------------- */

/* Each is refused as a whole: the error names the file and what is at
 * fault (key, value), and the mapping in force stays as it was, even the
 * valid entries of the same file ("Waiting Room" is never mapped). */
static const struct {
    const char *text;
    int rc;
    const char *key, *value; /* each must be in the message; may be NULL */
} bad_maps[] = {
    {"{\"states\": {\"Waiting Room\": \"join\", \"Lobby\": \"teleport\"}}",
     QG_ECONFIG, "Lobby", "teleport"},
    {"{\"states\": {\"Waiting Room\": \"join\"}, \"colours\": {}}", QG_ECONFIG,
     "colours", NULL},
    {"{\"events\": {\"live_queue_called\": \"sometimes\"}, \"states\": "
     "{\"Waiting Room\": \"join\"}}",
     QG_ECONFIG, "live_queue_called", "sometimes"},
    {"{\"events\": {\"live_queue_called\": \"none\"}}", QG_ECONFIG,
     "live_queue_called", "none"},
    {"{\"states\": {\"Waiting Room\": \"join\", \"Lobby\": \"state\"}}",
     QG_ECONFIG, "Lobby", "state"},
    {"{\"states\": {\"Waiting Room\": \"join\", \"Lobby\": 3}}", QG_ECONFIG,
     "Lobby", NULL},
    {"{\"state_values\": {\"one\": \"join\"}}", QG_ECONFIG, "one", NULL},
    {"{\"state_values\": {\"4\": \"teleport\"}}", QG_ECONFIG, "4", "teleport"},
    {"{\"states\": [\"join\"]}", QG_ECONFIG, "states", NULL},
    {"{\"events\": \"ignore\"}", QG_ECONFIG, "events", NULL},
    {"[1]", QG_ECONFIG, NULL, NULL},
    {"{\"states\": {\"Waiting Room\": \"join\",}}", QG_ECONFIG, "byte", NULL},
    {"{\"states\": {\"Waiting Room\": \"join\"}} {}", QG_ECONFIG, NULL, NULL},
    {"{\"states\": {\"Waiting Room\": \"join\", \"Waiting Room\": \"join\"}}",
     QG_ECONFIG, NULL, NULL},
    {"", QG_ECONFIG, NULL, NULL},
};

START_TEST(test_mapping_bad_files_refused)
{
    char err[512] = "";
    int rc;

    load_ok("{\"states\": {\"Paid\": \"alert\"}}");
    unlink(map_path);
    write_map(bad_maps[_i].text);
    rc = qg_engine_load_mapping(eng, map_path, err, sizeof(err));
    ck_assert_msg(rc == bad_maps[_i].rc, "%s: %s, expected %s (%s)",
                  bad_maps[_i].text, qg_err_name(rc),
                  qg_err_name(bad_maps[_i].rc), err);
    ck_assert_msg(strstr(err, map_path) != NULL,
                  "%s: \"%s\" does not name the file", bad_maps[_i].text, err);
    if (bad_maps[_i].key)
        ck_assert_msg(strstr(err, bad_maps[_i].key) != NULL,
                      "%s: \"%s\" does not name \"%s\"", bad_maps[_i].text, err,
                      bad_maps[_i].key);
    if (bad_maps[_i].value)
        ck_assert_msg(strstr(err, bad_maps[_i].value) != NULL,
                      "%s: \"%s\" does not name \"%s\"", bad_maps[_i].text, err,
                      bad_maps[_i].value);
    /* the mapping in force is the one before the call */
    ck_assert_int_eq(state_event("Waiting Room"), QG_EV_NONE);
    ck_assert_int_eq(state_event("Paid"), QG_EV_ALERT);
    check_defaults_but(NULL, "Paid", 0);
}
END_TEST

START_TEST(test_mapping_missing_file_named)
{
    char err[256] = "";

    ck_assert_int_eq(qg_engine_load_mapping(eng, "/nonexistent/qgate-map.json",
                                            err, sizeof(err)),
                     QG_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/qgate-map.json"));
    ck_assert_int_eq(qg_engine_load_mapping(NULL, "x", err, sizeof(err)),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_load_mapping(eng, NULL, err, sizeof(err)),
                     QG_EINVAL);
    check_defaults_but(NULL, NULL, 0);
}
END_TEST

static Suite *
mapping_suite(void)
{
    Suite *s = suite_create("mapping");
    TCase *defaults = tcase_create("Defaults");
    TCase *overrides = tcase_create("Overrides");
    TCase *errors = tcase_create("Errors");

    tcase_add_checked_fixture(defaults, setup, teardown);
    tcase_add_checked_fixture(overrides, setup, teardown);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_loop_test(defaults, test_mapping_default_events_table, 0,
                        COUNT(events));
    tcase_add_test(defaults, test_mapping_fixed_event_accepted);
    tcase_add_loop_test(defaults, test_mapping_default_states_table, 0,
                        COUNT(states));
    tcase_add_test(defaults, test_mapping_default_values_and_unknowns);
    tcase_add_test(overrides, test_mapping_override_one_state);
    tcase_add_test(overrides, test_mapping_override_adds_a_state);
    tcase_add_test(overrides, test_mapping_override_removes_a_state);
    tcase_add_test(overrides, test_mapping_override_one_event);
    tcase_add_test(overrides, test_mapping_override_adds_an_event);
    tcase_add_test(overrides, test_mapping_override_event_by_state);
    tcase_add_test(overrides, test_mapping_override_removes_an_event);
    tcase_add_test(overrides, test_mapping_override_one_value);
    tcase_add_test(overrides, test_mapping_overrides_accumulate);
    tcase_add_loop_test(errors, test_mapping_bad_files_refused, 0,
                        COUNT(bad_maps));
    tcase_add_test(errors, test_mapping_missing_file_named);
    suite_add_tcase(s, defaults);
    suite_add_tcase(s, overrides);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(mapping_suite());
}
