/*
 * check_fhir.c - qg_fhir_ticket(): a ticket's path as FHIR R4 statuses,
 * step by step (the mapping table of docs/fhir.md), the forms, and what
 * it refuses.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qgate.h"
#include "qgate_int.h"
#include "testutil.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define SYSTEM   "https://clinic.example/chup"

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
    qg_store_close(st);
    tu_store_remove();
}

/* The resources of ticket as of step upto, line by line (NDJSON). */
static size_t
resources(uint64_t ticket, uint32_t upto, json_object **out, size_t cap)
{
    qg_fhir_options o = {SYSTEM, upto};
    char *text = NULL, *line, *save = NULL;
    size_t len, n = 0;

    ck_assert_int_eq(
        qg_fhir_ticket(st, ticket, QG_FHIR_NDJSON, &o, &text, &len), 0);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(len > 0 && text[len - 1] == '\n');
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        ck_assert_uint_lt(n, cap);
        out[n] = json_tokener_parse(line);
        ck_assert_msg(out[n] != NULL, "not JSON: %s", line);
        n++;
    }
    free(text);
    return n;
}

/* ----- Mapping ---------------------------------------------------------- */

/* Each fixture visit, step by step: the Encounter's status (and the
 * Appointment's, when the ticket has one) as of that step. */
typedef struct visit_case {
    const char *dir;
    const char *files[9];
    const char *encounter[9];
    const char *appointment[9]; /* NULL: no Appointment */
    size_t history;             /* statusHistory entries at the end */
} visit_case;

static const visit_case visits[] = {
    {"visits/walk-in/",
     {"01-join-live-queue.json", "02-alert.json", "03-move.json",
      "04-serving.json", "05-served.json", "06-pharmacy-received.json",
      "07-pharmacy-dispensed.json", "08-billing-paid.json",
      "09-end-visit.json"},
     /* queued and moved before any service: planned, the patient not
      * seen yet */
     {"planned", "planned", "planned", "in-progress", "in-progress",
      "in-progress", "in-progress", "in-progress", "finished"},
     {NULL},
     3},
    {"visits/appointment/",
     {"01-appointment.json", "02-reschedule.json", "03-join-live-queue.json",
      "04-no-show.json", "05-no-show-back-to-live-queue.json",
      "06-cancel-delete.json"},
     /* a no-show before any service is not yet a visit */
     {"planned", "planned", "arrived", "planned", "arrived", "cancelled"},
     {"booked", "booked", "arrived", "noshow", "arrived", "cancelled"},
     5},
    {"visits/no-show-cancelled/",
     {"01-join-live-queue.json", "02-no-show.json",
      "03-no-show-canceled-by-system.json"},
     {"planned", "planned", "cancelled"},
     {NULL},
     2},
};

START_TEST(test_fhir_statuses_step_by_step)
{
    const visit_case *v = &visits[_i];
    json_object *res[2];
    char rel[128];
    uint64_t ticket = 0;
    size_t k, n, i;

    for (k = 0; k < COUNT(v->files) && v->files[k]; k++) {
        qg_result r;

        snprintf(rel, sizeof(rel), "%s%s", v->dir, v->files[k]);
        r = tu_apply(eng, st, rel);
        ck_assert_int_eq(r.verdict, QG_ACCEPTED);
        ticket = r.ticket;
    }
    for (k = 0; k < COUNT(v->files) && v->files[k]; k++) {
        n = resources(ticket, (uint32_t)k + 1, res, COUNT(res));
        ck_assert_uint_eq(n, v->appointment[0] ? 2 : 1);
        ck_assert_str_eq(tu_gets(res[0], "resourceType"), "Encounter");
        ck_assert_msg(strcmp(tu_gets(res[0], "status"), v->encounter[k]) == 0,
                      "%s step %zu: Encounter %s, want %s", v->dir, k + 1,
                      tu_gets(res[0], "status"), v->encounter[k]);
        if (n == 2) {
            ck_assert_str_eq(tu_gets(res[1], "resourceType"), "Appointment");
            ck_assert_msg(
                strcmp(tu_gets(res[1], "status"), v->appointment[k]) == 0,
                "%s step %zu: Appointment %s, want %s", v->dir, k + 1,
                tu_gets(res[1], "status"), v->appointment[k]);
        }
        for (i = 0; i < n; i++)
            json_object_put(res[i]);
    }
    /* upto 0 is every step: the last status, its history whole, the
     * periods end to end, only the last open */
    n = resources(ticket, 0, res, COUNT(res));
    ck_assert_str_eq(tu_gets(res[0], "status"), v->encounter[k - 1]);
    {
        json_object *h = tu_get(res[0], "statusHistory");
        size_t nh = json_object_array_length(h);

        ck_assert_uint_eq(nh, v->history);
        for (i = 0; i + 1 < nh; i++)
            ck_assert_str_eq(
                tu_gets(tu_get(json_object_array_get_idx(h, i), "period"),
                        "end"),
                tu_gets(tu_get(json_object_array_get_idx(h, i + 1), "period"),
                        "start"));
        ck_assert(!json_object_object_get_ex(
            tu_get(json_object_array_get_idx(h, nh - 1), "period"), "end",
            NULL));
    }
    for (i = 0; i < n; i++)
        json_object_put(res[i]);
}
END_TEST

/* ----- Paths the fixtures do not take --------------------------------- */

/* A signed live-queue step of entry 30001 at 2024-03-05 09:MM +08:00. */
static qg_result
step_at(int minute, const char *chup_event, const char *state, int service)
{
    char payload[1024], body[1200], sig[QG__HEX_SIG_LEN + 1];
    char *secret;
    size_t slen;
    qg_result res;

    snprintf(payload, sizeof(payload),
             "{\"event\":\"%s\",\"timestamp\":\"2024-03-05T09:%02d:00+08:00\","
             "\"data\":{\"id\":30001,\"appointment_id\":null,"
             "\"appointment_date\":null,\"appointment_time\":null,"
             "\"registered_client_id\":4101,\"state\":1,\"state_name\":"
             "\"%s\",\"service_id\":%d,\"service_name\":\"S%d\","
             "\"staff_id\":247,\"staff_name\":\"Dr Tan\",\"notes\":[]}}",
             chup_event, minute, state, service, service);
    secret = tu_fixture("secret", &slen);
    while (slen && secret[slen - 1] == '\n')
        slen--;
    qg__signature_make(secret, slen, payload, strlen(payload), sig);
    free(secret);
    snprintf(body, sizeof(body), "{\"payload\":%s,\"signature\":\"%s\"}",
             payload, sig);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, strlen(body), 0, &res), 0);
    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s %s: %s", chup_event, state,
                  res.detail);
    return res;
}

/* The rows of docs/fhir.md's table that depend on the path: moved once
 * the patient arrived or was seen, a no-show after service began (on
 * leave, not planned), a cancel after it (finished, not cancelled). */
static const struct {
    const char *what;
    struct {
        const char *chup, *state;
        int service;
        qg_state to;
        const char *encounter;
    } steps[6];
} paths[] = {
    {"moved after arriving: arrived",
     {{"live_queue_created", "In Queue", 220, QG_ST_QUEUED, "planned"},
      {"live_queue_updated", "Arrived", 220, QG_ST_ARRIVED, "arrived"},
      {"live_queue_updated", "Arrived", 221, QG_ST_MOVED, "arrived"}}},
    {"moved, no-show and cancel after service began",
     {{"live_queue_created", "In Queue", 220, QG_ST_QUEUED, "planned"},
      {"live_queue_updated", "Serving", 220, QG_ST_SERVING, "in-progress"},
      {"live_queue_updated", "Serving", 221, QG_ST_MOVED, "in-progress"},
      {"live_queue_updated", "No Show", 221, QG_ST_NO_SHOW, "onleave"},
      {"live_queue_updated", "Cancelled", 221, QG_ST_CANCELLED, "finished"}}},
};

START_TEST(test_fhir_statuses_by_path)
{
    json_object *res[2];
    qg_result r = {0};
    size_t k;

    for (k = 0; k < 6 && paths[_i].steps[k].chup; k++) {
        r = step_at((int)k * 5, paths[_i].steps[k].chup,
                    paths[_i].steps[k].state, paths[_i].steps[k].service);
        ck_assert_msg(r.to == paths[_i].steps[k].to, "%s, step %zu: %s",
                      paths[_i].what, k + 1, qg_state_name(r.to));
        ck_assert_uint_eq(resources(r.ticket, 0, res, 2), 1);
        ck_assert_msg(strcmp(tu_gets(res[0], "status"),
                             paths[_i].steps[k].encounter) == 0,
                      "%s, step %zu: Encounter %s, want %s", paths[_i].what,
                      k + 1, tu_gets(res[0], "status"),
                      paths[_i].steps[k].encounter);
        json_object_put(res[0]);
    }
}
END_TEST

/* The Appointment's start is Chup's date and time in the clinic's offset,
 * as rescheduled; the Encounter links to it by identifier. */
START_TEST(test_fhir_appointment_start_and_link)
{
    json_object *res[2], *ids, *a;
    qg_result r;

    tu_apply(eng, st, "visits/appointment/01-appointment.json");
    r = tu_apply(eng, st, "visits/appointment/02-reschedule.json");
    ck_assert_int_eq(r.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(resources(r.ticket, 1, res, 2), 2);
    ck_assert_str_eq(tu_gets(res[1], "start"), "2024-03-05T10:30:00+08:00");
    ck_assert_str_eq(tu_gets(res[1], "end"), tu_gets(res[1], "start"));
    json_object_put(res[0]);
    json_object_put(res[1]);
    ck_assert_uint_eq(resources(r.ticket, 0, res, 2), 2);
    ck_assert_str_eq(tu_gets(res[1], "start"), "2024-03-05T11:00:00+08:00");
    a = json_object_array_get_idx(tu_get(res[0], "appointment"), 0);
    ck_assert_str_eq(tu_gets(a, "type"), "Appointment");
    ck_assert_str_eq(tu_gets(tu_get(a, "identifier"), "system"),
                     SYSTEM "/appointment");
    ck_assert_str_eq(tu_gets(tu_get(a, "identifier"), "value"), "9101");
    ids = tu_get(res[1], "identifier");
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ids, 0), "system"),
                     SYSTEM "/appointment");
    ck_assert_str_eq(
        tu_gets(tu_get(tu_get(json_object_array_get_idx(
                                  tu_get(res[1], "participant"), 0),
                              "actor"),
                       "identifier"),
                "value"),
        "4102");
    json_object_put(res[0]);
    json_object_put(res[1]);
}
END_TEST

/* The walk-in visit's Encounter carries what an HIS files it by: the
 * ticket and the live queue as identifiers, the client as subject, the
 * current service, each member of staff once, the pharmacy and billing
 * steps as extensions, and the visit's period. */
START_TEST(test_fhir_walk_in_encounter_fields)
{
    json_object *res[2], *e, *ids, *parts, *ext;
    qg_result r;
    size_t i;

    for (i = 0; i < COUNT(tu_walk_in); i++)
        r = tu_apply(eng, st, tu_walk_in[i].file);
    ck_assert_uint_eq(resources(r.ticket, 0, res, 2), 1);
    e = res[0];
    ids = tu_get(e, "identifier");
    ck_assert_uint_eq(json_object_array_length(ids), 2);
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ids, 0), "system"),
                     SYSTEM "/ticket");
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ids, 1), "system"),
                     SYSTEM "/live-queue");
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ids, 1), "value"),
                     "30001");
    ck_assert_str_eq(
        tu_gets(tu_get(tu_get(e, "subject"), "identifier"), "value"), "4101");
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(
                                 tu_get(tu_get(e, "serviceType"), "coding"), 0),
                             "display"),
                     "Consultation");
    parts = tu_get(e, "participant");
    ck_assert_uint_eq(json_object_array_length(parts), 2);
    ck_assert_str_eq(
        tu_gets(tu_get(json_object_array_get_idx(parts, 1), "individual"),
                "display"),
        "Dr Tan");
    ext = tu_get(e, "extension");
    ck_assert_uint_eq(json_object_array_length(ext), 3);
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ext, 0), "url"),
                     "urn:qgate:fhir:extension:pharmacy-received");
    ck_assert_str_eq(tu_gets(json_object_array_get_idx(ext, 2), "url"),
                     "urn:qgate:fhir:extension:paid");
    ck_assert_str_eq(tu_gets(tu_get(e, "period"), "start"),
                     "2024-03-05T09:00:00+08:00");
    ck_assert_str_eq(tu_gets(tu_get(e, "period"), "end"),
                     "2024-03-05T09:55:00+08:00");
    json_object_put(e);
}
END_TEST

/* ----- Forms ------------------------------------------------------------ */

/* A transaction is conditional updates keyed by qgate's ticket, with no
 * resource id; a collection has ids and fullUrls, the same in every
 * call. */
START_TEST(test_fhir_forms)
{
    qg_fhir_options o = {SYSTEM, 0};
    char *a = NULL, *b = NULL, sid[QG_STORE_ID_LEN + 1], want[64];
    json_object *t, *c, *e;
    qg_result r = tu_apply(eng, st, "visits/walk-in/01-join-live-queue.json");

    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, QG_FHIR_TRANSACTION, &o, &a, NULL), 0);
    t = json_tokener_parse(a);
    ck_assert_str_eq(tu_gets(t, "type"), "transaction");
    e = json_object_array_get_idx(tu_get(t, "entry"), 0);
    ck_assert_str_eq(tu_gets(tu_get(e, "request"), "url"),
                     "Encounter?identifier=" SYSTEM "/ticket|1");
    ck_assert(!json_object_object_get_ex(tu_get(e, "resource"), "id", NULL));
    free(a);
    ck_assert_int_eq(qg_fhir_ticket(st, r.ticket, QG_FHIR_BUNDLE, &o, &a, NULL),
                     0);
    ck_assert_int_eq(qg_fhir_ticket(st, r.ticket, QG_FHIR_BUNDLE, &o, &b, NULL),
                     0);
    ck_assert_str_eq(a, b);
    c = json_tokener_parse(a);
    ck_assert_str_eq(tu_gets(c, "type"), "collection");
    e = json_object_array_get_idx(tu_get(c, "entry"), 0);
    ck_assert(!json_object_object_get_ex(e, "request", NULL));
    ck_assert_int_eq(qg_store_id(st, sid), 0);
    snprintf(want, sizeof(want), "%s-1", sid);
    ck_assert_str_eq(tu_gets(tu_get(e, "resource"), "id"), want);
    ck_assert_str_eq(
        tu_gets(e, "fullUrl"),
        tu_gets(json_object_array_get_idx(tu_get(t, "entry"), 0), "fullUrl"));
    json_object_put(t);
    json_object_put(c);
    free(a);
    free(b);
    /* with no system, the store's own */
    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, QG_FHIR_NDJSON, NULL, &a, NULL), 0);
    snprintf(want, sizeof(want), "urn:qgate:%s:default/ticket", sid);
    ck_assert_ptr_nonnull(strstr(a, want));
    free(a);
}
END_TEST

/* ----- Errors ----------------------------------------------------------- */

static const struct {
    const char *system;
    int ok;
} systems[] = {
    {"https://clinic.example/chup", 1},
    {"urn:oid:1.2.3.4", 1},
    {"", 0},
    {"clinic", 0},        /* no scheme */
    {"https://x/a|b", 0}, /* | splits the identifier token */
    {"https://x/a?b", 0}, /* ? and & would end the query */
    {"https://x/a&b", 0},
    {"https://x/a#b", 0},  /* a fragment */
    {"https://x/a b", 0},  /* a space */
    {"https://x/\"", 0},   /* a quote */
    {"https://x/a\\b", 0}, /* a backslash */
    {"https://x/\x01", 0}, /* a control character */
    {"1https://x", 0},     /* a scheme starts with a letter */
};

START_TEST(test_fhir_system_check)
{
    ck_assert_msg((qg_fhir_system_check(systems[_i].system) == 0) ==
                      systems[_i].ok,
                  "\"%s\": want %s", systems[_i].system,
                  systems[_i].ok ? "accepted" : "refused");
}
END_TEST

START_TEST(test_fhir_refusals)
{
    qg_fhir_options bad = {"https://x/a|b", 0}, early = {NULL, 0};
    char *out = (char *)1;
    char longsys[260];
    qg_result r = tu_apply(eng, st, "visits/walk-in/01-join-live-queue.json");

    ck_assert_int_eq(qg_fhir_ticket(NULL, 1, QG_FHIR_NDJSON, NULL, &out, NULL),
                     QG_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(qg_fhir_ticket(st, 0, QG_FHIR_NDJSON, NULL, &out, NULL),
                     QG_EINVAL);
    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, (qg_fhir_form)9, NULL, &out, NULL),
        QG_EINVAL);
    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, QG_FHIR_NDJSON, &bad, &out, NULL),
        QG_EINVAL);
    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, QG_FHIR_NDJSON, NULL, NULL, NULL),
        QG_EINVAL);
    ck_assert_int_eq(qg_fhir_ticket(st, 77, QG_FHIR_NDJSON, NULL, &out, NULL),
                     QG_NOTFOUND);
    ck_assert_ptr_null(out);
    memset(longsys, 'a', sizeof(longsys) - 1);
    memcpy(longsys, "urn:", 4);
    longsys[sizeof(longsys) - 1] = '\0';
    early.system = longsys;
    ck_assert_int_eq(
        qg_fhir_ticket(st, r.ticket, QG_FHIR_NDJSON, &early, &out, NULL),
        QG_EINVAL);
}
END_TEST

static Suite *
fhir_suite(void)
{
    Suite *s = suite_create("fhir");
    TCase *map = tcase_create("Mapping"), *forms = tcase_create("Forms"),
          *err = tcase_create("Errors");

    tcase_add_checked_fixture(map, setup, teardown);
    tcase_add_loop_test(map, test_fhir_statuses_step_by_step, 0,
                        (int)COUNT(visits));
    tcase_add_loop_test(map, test_fhir_statuses_by_path, 0, (int)COUNT(paths));
    tcase_add_test(map, test_fhir_appointment_start_and_link);
    tcase_add_test(map, test_fhir_walk_in_encounter_fields);
    suite_add_tcase(s, map);
    tcase_add_checked_fixture(forms, setup, teardown);
    tcase_add_test(forms, test_fhir_forms);
    suite_add_tcase(s, forms);
    tcase_add_checked_fixture(err, setup, teardown);
    tcase_add_loop_test(err, test_fhir_system_check, 0, (int)COUNT(systems));
    tcase_add_test(err, test_fhir_refusals);
    suite_add_tcase(s, err);
    return s;
}

int
main(void)
{
    return tu_run(fhir_suite());
}
