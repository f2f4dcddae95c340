/*
 * check_gate_fhir.c - `qgate serve --upstream-format fhir`: each accepted
 * step reaches the HIS as a FHIR R4 transaction Bundle of conditional
 * updates, in the ticket's order, and a FHIR server that applies them
 * ends up holding what `qgate export --format fhir-ndjson` writes.
 *
 * The fake HIS (gate_harness.c) records the requests; the test plays the
 * FHIR server's part: it applies each bundle's PUTs, keyed by their
 * conditional URLs, in the order they were acknowledged.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>

#include "gate_harness.h"

#define SYSTEM "https://clinic.example/chup"

static const char *const appointment_files[] = {
    "visits/appointment/01-appointment.json",
    "visits/appointment/02-reschedule.json",
    "visits/appointment/03-join-live-queue.json",
    "visits/appointment/04-no-show.json",
    "visits/appointment/05-no-show-back-to-live-queue.json",
    "visits/appointment/06-cancel-delete.json"};

/* The FHIR server's part: one resource per conditional URL, replaced by
 * each PUT. */
typedef struct server {
    char url[8][256];
    json_object *res[8];
    size_t n;
} server;

static void
server_put(server *s, const char *url, json_object *res)
{
    size_t i;

    for (i = 0; i < s->n && strcmp(s->url[i], url) != 0; i++)
        ;
    if (i == s->n) {
        ck_assert_uint_lt(s->n, COUNT(s->url));
        snprintf(s->url[s->n++], sizeof(s->url[0]), "%s", url);
    } else {
        json_object_put(s->res[i]);
    }
    s->res[i] = json_object_get(res);
}

static json_object *
server_get(server *s, const char *url)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->url[i], url) == 0)
            return s->res[i];
    ck_abort_msg("the FHIR server holds nothing at %s", url);
    return NULL;
}

static void
server_free(server *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        json_object_put(s->res[i]);
}

/*
 * Checks request q, step i + 1 of a ticket, as a transaction Bundle whose
 * entries are the PUTs urls (in order), the Encounter with status
 * enc_status and the Appointment (when there is one) appt_status, then
 * applies it to s.
 */
static void
expect_bundle(server *s, const his_req *q, size_t i, const char *const *urls,
              size_t nurls, const char *enc_status, const char *appt_status)
{
    json_object *b = tu_json(q->body), *entries, *e, *res, *hist;
    size_t k, nhist;

    ck_assert_str_eq(q->type, "application/fhir+json");
    ck_assert_str_eq(tu_gets(b, "resourceType"), "Bundle");
    ck_assert_str_eq(tu_gets(b, "type"), "transaction");
    entries = tu_get(b, "entry");
    ck_assert_uint_eq(json_object_array_length(entries), nurls);
    for (k = 0; k < nurls; k++) {
        e = json_object_array_get_idx(entries, k);
        ck_assert_str_eq(tu_gets(tu_get(e, "request"), "method"), "PUT");
        ck_assert_str_eq(tu_gets(tu_get(e, "request"), "url"), urls[k]);
        ck_assert_msg(strncmp(tu_gets(e, "fullUrl"), "urn:uuid:", 9) == 0,
                      "fullUrl %s", tu_gets(e, "fullUrl"));
        res = tu_get(e, "resource");
        /* a conditional update's resource has no id of its own */
        ck_assert(!json_object_object_get_ex(res, "id", NULL));
        ck_assert_msg(strcmp(tu_gets(res, "status"),
                             k == 0 ? enc_status : appt_status) == 0,
                      "step %zu: %s status %s, want %s", i + 1,
                      tu_gets(res, "resourceType"), tu_gets(res, "status"),
                      k == 0 ? enc_status : appt_status);
        if (k == 0) {
            /* the history so far, ending in the status it is in; never
             * shorter than what the server already holds */
            hist = tu_get(res, "statusHistory");
            nhist = json_object_array_length(hist);
            ck_assert_uint_ge(nhist, 1);
            ck_assert_str_eq(
                tu_gets(json_object_array_get_idx(hist, nhist - 1), "status"),
                enc_status);
            if (i > 0)
                ck_assert_uint_ge(
                    nhist, json_object_array_length(tu_get(
                               server_get(s, urls[0]), "statusHistory")));
        }
        server_put(s, urls[k], res);
    }
    json_object_put(b);
}

/* What `qgate export --format fhir-ndjson --ticket lq` writes, line
 * `line` (0: the Encounter, 1: the Appointment), without its id. */
static json_object *
exported(const char *lq, int line)
{
    const char *args[] = {"export",      "--db",     db, "--format",
                          "fhir-ndjson", "--ticket", lq, "--fhir-system",
                          SYSTEM,        NULL};
    char *out = malloc(1 << 16), *p = out;
    json_object *o;
    int i;

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(run_cli(args, out, 1 << 16), 0);
    for (i = 0; i < line; i++) {
        p = strchr(p, '\n');
        ck_assert_ptr_nonnull(p);
        p++;
    }
    *strchr(p, '\n') = '\0';
    o = tu_json(p);
    json_object_object_del(o, "id");
    free(out);
    return o;
}

/* ----- Bundles ---------------------------------------------------------- */

/* The walk-in visit: nine bundles, each the Encounter as of its step, in
 * order; the server's Encounter at the end is the export's. */
START_TEST(test_fhir_walk_in_bundles_in_order)
{
    static const char *const status[] = {
        "planned",     "planned",     "planned",
        "in-progress", "in-progress", "in-progress",
        "in-progress", "in-progress", "finished"};
    const char *opts[] = {
        "--upstream", NULL, "--upstream-format", "fhir", "--fhir-system",
        SYSTEM,       NULL};
    const char *urls[] = {"Encounter?identifier=" SYSTEM "/ticket|1"};
    server s = {0};
    json_object *want;
    size_t i;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(9, WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(1), 9);
    ck_assert_uint_eq(his.n, 9);
    for (i = 0; i < 9; i++)
        expect_bundle(&s, &his.reqs[i], i, urls, 1, status[i], NULL);
    want = exported("30001", 0);
    ck_assert_msg(json_object_equal(server_get(&s, urls[0]), want),
                  "the server holds\n%s\nthe export writes\n%s",
                  json_object_to_json_string(server_get(&s, urls[0])),
                  json_object_to_json_string(want));
    json_object_put(want);
    server_free(&s);
}
END_TEST

/* A ticket from an appointment: each bundle updates the Encounter and
 * the Appointment; the no-show and the return show in both. */
START_TEST(test_fhir_appointment_two_resources)
{
    static const char *const enc[] = {"planned", "planned", "arrived",
                                      "planned", "arrived", "cancelled"};
    static const char *const appt[] = {"booked", "booked",  "arrived",
                                       "noshow", "arrived", "cancelled"};
    const char *opts[] = {
        "--upstream", NULL, "--upstream-format", "fhir", "--fhir-system",
        SYSTEM,       NULL};
    const char *urls[] = {"Encounter?identifier=" SYSTEM "/ticket|1",
                          "Appointment?identifier=" SYSTEM "/appointment|9101"};
    server s = {0};
    json_object *want;
    size_t i;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(appointment_files); i++)
        post_accepted(appointment_files[i]);
    wait_delivered(COUNT(appointment_files), WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his.n, COUNT(appointment_files));
    for (i = 0; i < COUNT(appointment_files); i++)
        expect_bundle(&s, &his.reqs[i], i, urls, 2, enc[i], appt[i]);
    for (i = 0; i < 2; i++) {
        want = exported("appt:9101", (int)i);
        ck_assert_msg(json_object_equal(server_get(&s, urls[i]), want),
                      "the server holds\n%s\nthe export writes\n%s",
                      json_object_to_json_string(server_get(&s, urls[i])),
                      json_object_to_json_string(want));
        json_object_put(want);
    }
    server_free(&s);
}
END_TEST

/* Two tickets interleaved, the HIS failing for a while: each ticket's
 * bundles still reach it in the ticket's order, retried under the same
 * delivery id. */
START_TEST(test_fhir_order_kept_through_failures)
{
    const char *opts[] = {
        "--upstream", NULL, "--upstream-format", "fhir", "--fhir-system",
        SYSTEM,       NULL};
    size_t i;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 3; i++) {
        post_accepted(walk_in_files[i]);
        post_accepted(appointment_files[i]);
    }
    sleep_ms(1500);
    ck_assert_uint_gt(his_count(500), 0);
    atomic_store(&his.mode, HIS_ACCEPT);
    wait_delivered(6, 30000);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(1), 3);
    ck_assert_uint_eq(his_ticket_order(2), 3);
}
END_TEST

/* A --fhir-system that would break the conditional URLs stops the gate
 * before it listens, naming the value. */
START_TEST(test_fhir_bad_system_refused)
{
    const char *opts[] = {"--upstream-format", "fhir", "--fhir-system",
                          "https://clinic.example/a|b", NULL};
    char *text;
    int status;

    gate_spawn(opts, 0);
    status = gate_wait_exit(WAIT_MS);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "--fhir-system \"https://clinic.example/a|b\""),
                  "%s", text);
    free(text);
}
END_TEST

static Suite *
fhir_suite(void)
{
    Suite *s = suite_create("gate_fhir");
    TCase *tc = tcase_create("Bundles");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_fhir_walk_in_bundles_in_order);
    tcase_add_test(tc, test_fhir_appointment_two_resources);
    tcase_add_test(tc, test_fhir_order_kept_through_failures);
    tcase_add_test(tc, test_fhir_bad_system_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(fhir_suite());
}
