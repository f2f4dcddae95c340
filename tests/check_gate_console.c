/*
 * check_gate_console.c - the web console as `qgate serve` answers it
 * (docs/console.md): its files, their security headers, and the JSON it
 * reads (/overview, /machine, /tickets/{id}/steps) with the token rules
 * of the read API.  What the pages do in a browser is tests/console_test.py.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gate_harness.h"

/* The headers every console answer carries, for which answer. */
static void
expect_console_headers(const answer *a, const char *what)
{
    char v[1024];

    head_value(a, "Content-Security-Policy", v, sizeof(v));
    ck_assert_msg(strstr(v, "default-src 'self'") &&
                      strstr(v, "script-src 'self'") &&
                      strstr(v, "frame-ancestors 'none'") &&
                      !strstr(v, "unsafe-inline") && !strstr(v, "unsafe-eval"),
                  "%s: Content-Security-Policy \"%s\"", what, v);
    head_value(a, "X-Content-Type-Options", v, sizeof(v));
    ck_assert_msg(same(v, "nosniff"), "%s: X-Content-Type-Options \"%s\"", what,
                  v);
    head_value(a, "X-Frame-Options", v, sizeof(v));
    ck_assert_msg(same(v, "DENY"), "%s: X-Frame-Options \"%s\"", what, v);
    head_value(a, "Referrer-Policy", v, sizeof(v));
    ck_assert_msg(same(v, "no-referrer"), "%s: Referrer-Policy \"%s\"", what,
                  v);
}

/* Each file under /console/ is the repository's, byte for byte, with its
 * type and the console's headers; /console (no slash) sends the browser
 * to /console/; anything else there is 404, and methods other than GET
 * are 405. */
START_TEST(test_console_files)
{
    static const struct {
        const char *url, *file, *type;
    } files[] = {
        {"/console/", "index.html", "text/html; charset=utf-8"},
        {"/console/index.html", "index.html", "text/html; charset=utf-8"},
        {"/console/app.js", "app.js", "text/javascript; charset=utf-8"},
        {"/console/diagram.js", "diagram.js", "text/javascript; charset=utf-8"},
        {"/console/console.css", "console.css", "text/css; charset=utf-8"},
        {"/console/favicon.svg", "favicon.svg", "image/svg+xml"},
    };
    static const struct {
        const char *method, *url;
        long status;
        const char *code;
    } refused[] = {
        {"GET", "/console/nope.js", 404, "not_found"},
        {"GET", "/console/../serve.c", 404, "not_found"},
        {"POST", "/console", 405, "method_not_allowed"},
        {"POST", "/console/", 405, "method_not_allowed"},
        {"DELETE", "/console/app.js", 405, "method_not_allowed"},
        {"POST", "/overview", 405, "method_not_allowed"},
    };
    char rel[96], type[128];
    size_t i, len;
    char *want;
    answer a;

    gate_start(NULL);
    for (i = 0; i < COUNT(files); i++) {
        snprintf(rel, sizeof(rel), "../src/gate/console/%s", files[i].file);
        want = tu_fixture(rel, &len);
        http("GET", files[i].url, NULL, NULL, 0, &a);
        ck_assert_msg(a.status == 200, "%s: %ld", files[i].url, a.status);
        ck_assert_msg(a.len == len && memcmp(a.body, want, len) == 0,
                      "%s: %zu bytes, not those of %s (%zu)", files[i].url,
                      a.len, files[i].file, len);
        head_value(&a, "Content-Type", type, sizeof(type));
        ck_assert_msg(same(type, files[i].type), "%s: Content-Type %s",
                      files[i].url, type);
        expect_console_headers(&a, files[i].url);
        free(want);
        answer_free(&a);
    }
    http("GET", "/console", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 301);
    head_value(&a, "Location", type, sizeof(type));
    ck_assert_str_eq(type, "/console/");
    expect_console_headers(&a, "/console");
    answer_free(&a);
    for (i = 0; i < COUNT(refused); i++) {
        http(refused[i].method, refused[i].url, NULL, NULL, 0, &a);
        expect(&a, refused[i].status, NULL, refused[i].code, refused[i].url);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* The value of o[key] as a JSON string, "" when absent. */
static const char *
jtext(json_object *o, const char *key)
{
    json_object *v;

    if (o == NULL || !json_object_object_get_ex(o, key, &v))
        return "";
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* /overview counts what `qgate stats --json` counts over the same store:
 * tickets by state, refusals by reason; and says what is held and
 * waiting. */
START_TEST(test_overview_matches_stats)
{
    static const char *const stats[] = {"stats", "--json", "--db", db, NULL};
    static const char *const window[] = {"--reorder-window", "600", NULL};
    char out[1 << 14], states[1024], reasons[1024];
    json_object *cli;
    int64_t tickets, refused;
    size_t i;
    answer a;

    gate_start(window);
    for (i = 0; i < 9; i++) /* walk_in_files: the 9 steps */
        post_accepted(walk_in_files[i]);
    post_before(NO_SHOW "99-none.json");
    /* A refusal: a second end of a visit, whose ticket is closed. */
    post_before("illegal/second-end-visit/05-end-visit-again.json");
    post_fixture("illegal/second-end-visit/05-end-visit-again.json", &a);
    expect(&a, 409, "rejected", "ticket_closed", "a second end of visit");
    answer_free(&a);
    /* A held one: served before its entry joined, inside the window. */
    {
        size_t len;
        char *body = served_body(777001, &len);

        http("POST", WEBHOOK, as_json, body, len, &a);
        ck_assert_int_eq(a.status, 202);
        free(body);
        answer_free(&a);
    }
    http("GET", "/overview", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    expect_console_headers(&a, "/overview");
    snprintf(states, sizeof(states), "%s", jtext(a.json, "states"));
    snprintf(reasons, sizeof(reasons), "%s", jtext(a.json, "reasons"));
    tickets = jint(a.json, "tickets");
    refused = jint(a.json, "refused");
    ck_assert_int_eq(jint(a.json, "held"), 1);
    ck_assert_int_eq(jint(a.json, "outbox_depth"), 0);
    ck_assert_int_eq(jint(a.json, "dead"), 0);
    ck_assert_msg(same(jtext(a.json, "upstream"), "false") &&
                      same(jtext(a.json, "upstream_reachable"), "true"),
                  "%s", a.body);
    answer_free(&a);
    gate_stop();

    ck_assert_int_eq(run_cli(stats, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(cli = json_tokener_parse(out));
    ck_assert_msg(tickets == 3 && tickets == jint(cli, "tickets"),
                  "overview %lld tickets, stats %s", (long long)tickets, out);
    ck_assert_msg(refused == 1 && refused == jint(cli, "refused"),
                  "overview %lld refused, stats %s", (long long)refused, out);
    ck_assert_msg(same(states, jtext(cli, "states")),
                  "overview states %s, stats %s", states, out);
    ck_assert_msg(same(reasons, jtext(cli, "reasons")),
                  "overview reasons %s, stats %s", reasons, out);
    json_object_put(cli);
}
END_TEST

/* /machine is `qgate machine --json`: the compiled machine. */
START_TEST(test_machine_is_the_cli_s)
{
    static const char *const args[] = {"machine", "--json", NULL};
    char out[1 << 14];
    answer a;

    gate_start(NULL);
    http("GET", "/machine", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    gate_stop();
    ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
    ck_assert_msg(same(a.body, out), "gate %s\ncli %s", a.body, out);
    answer_free(&a);
}
END_TEST

/* /tickets/{id}/steps: the history, each record with the body exactly
 * as Chup sent it. */
START_TEST(test_steps_carry_the_bodies)
{
    json_object *s, *step, *body;
    size_t i, len;
    char *want;
    answer a;

    gate_start(NULL);
    for (i = 0; i < 9; i++) /* walk_in_files: the 9 steps */
        post_accepted(walk_in_files[i]);
    http("GET", "/tickets/lq:30001/steps", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json &&
                      json_object_is_type(a.json, json_type_array),
                  "%ld %s", a.status, a.body);
    ck_assert_uint_eq(json_object_array_length(a.json), 9);
    for (i = 0; i < 9; i++) {
        s = json_object_array_get_idx(a.json, i);
        ck_assert(json_object_object_get_ex(s, "step", &step));
        ck_assert(json_object_object_get_ex(s, "body", &body));
        ck_assert_int_eq(jint(step, "seq"), (int64_t)i + 1);
        want = tu_fixture(walk_in_files[i], &len);
        ck_assert_msg(json_object_get_string_len(body) == (int)len &&
                          memcmp(json_object_get_string(body), want, len) == 0,
                      "step %zu: the body is not %s", i + 1, walk_in_files[i]);
        free(want);
    }
    answer_free(&a);
    http("GET", "/tickets/99999/steps", NULL, NULL, 0, &a);
    expect(&a, 404, NULL, "not_found", "steps of a ticket not in the store");
    ck_assert_msg(strstr(a.body, "99999") != NULL, "%s", a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* With --token-file the console's JSON takes the read token; its files,
 * which hold no data, do not. */
START_TEST(test_console_token)
{
    static const char *const none[] = {NULL};
    static const char *const wrong[] = {"Authorization: Bearer c0nsole-tokeN",
                                        NULL};
    static const char *const right[] = {"Authorization: Bearer c0nsole-token",
                                        NULL};
    static const char *const data[] = {"/overview", "/machine",
                                       "/tickets/30001/steps"};
    static const char *const *const refused[] = {none, wrong};
    char token[128];
    const char *opts[3];
    size_t i, j;
    answer a;
    FILE *f;

    snprintf(token, sizeof(token), "%s/token", work);
    ck_assert_ptr_nonnull(f = fopen(token, "w"));
    fputs("c0nsole-token\n", f);
    fclose(f);
    opts[0] = "--token-file";
    opts[1] = token;
    opts[2] = NULL;
    gate_start(opts);
    post_accepted(WALK_IN "01-join-live-queue.json");
    for (i = 0; i < COUNT(data); i++) {
        for (j = 0; j < COUNT(refused); j++) {
            http("GET", data[i], refused[j], NULL, 0, &a);
            expect(&a, 401, NULL, "unauthorized", data[i]);
            expect_console_headers(&a, data[i]);
            answer_free(&a);
        }
        http("GET", data[i], right, NULL, 0, &a);
        ck_assert_msg(a.status == 200, "%s: %ld %s", data[i], a.status, a.body);
        expect_console_headers(&a, data[i]);
        answer_free(&a);
    }
    http("GET", "/console/", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

Suite *gate_console_suite(void);

Suite *
gate_console_suite(void)
{
    Suite *s = suite_create("gate_console");
    TCase *tc = tcase_create("Console");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_console_files);
    tcase_add_test(tc, test_overview_matches_stats);
    tcase_add_test(tc, test_machine_is_the_cli_s);
    tcase_add_test(tc, test_steps_carry_the_bodies);
    tcase_add_test(tc, test_console_token);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_console_suite());
}
