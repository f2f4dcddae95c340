/*
 * check_gate_console.c - the web console as `qgate serve` answers it
 * (docs/console.md): its files, their security headers, and the JSON it
 * reads (/overview, /machine, /tickets/{id}/steps and /deliveries,
 * /rejections, /held, /outbox/dead) with the token rules of the read API, and
 * its admin actions (replay, retry) with theirs.  What the pages do in a
 * browser is tests/console_test.py.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* Writes token into work/name and returns the file's path. */
static const char *
token_file(const char *name, const char *token, char *path, size_t cap)
{
    FILE *f;

    snprintf(path, cap, "%s/%s", work, name);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fprintf(f, "%s\n", token);
    fclose(f);
    return path;
}

#define READ_TOKEN  "Authorization: Bearer c0nsole-token"
#define ADMIN_TOKEN "Authorization: Bearer adm1n-token"

/* A gate with the read token and the admin token, reordering nothing:
 * the walk-in's alert sent before its join is refused, and once the
 * join is in, replaying it passes. */
static void
admin_gate(const char *const *more)
{
    static char rd[128], adm[128];
    const char *opts[16] = {
        "--token-file",
        token_file("token", "c0nsole-token", rd, sizeof(rd)),
        "--admin-token-file",
        token_file("admin", "adm1n-token", adm, sizeof(adm)),
        "--reorder-window",
        "0"};
    size_t n = 6;

    while (more && *more && n < COUNT(opts) - 1)
        opts[n++] = *more++;
    opts[n] = NULL;
    gate_start(opts);
}

/* The refusal of admin_gate(): its id in the rejection log. */
static int64_t
refuse_then_join(void)
{
    static const char *const rd[] = {READ_TOKEN, NULL};
    json_object *list, *first;
    int64_t id;
    answer a;

    post_fixture(WALK_IN "02-alert.json", &a);
    ck_assert_msg(a.status >= 400 && a.status < 500, "the early alert: %ld %s",
                  a.status, a.body);
    answer_free(&a);
    post_accepted(WALK_IN "01-join-live-queue.json");
    http("GET", "/rejections", rd, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert_int_eq(jint(a.json, "matched"), 1);
    ck_assert(json_object_object_get_ex(a.json, "rejections", &list));
    first = json_object_array_get_idx(list, 0);
    id = jint(first, "id");
    answer_free(&a);
    return id;
}

/* The admin rules of docs/console.md, one row each: who may replay, from
 * where, with what, and how. */
START_TEST(test_admin_rules)
{
    static const char *const none[] = {"Content-Type: application/json", NULL};
    static const char *const rd[] = {READ_TOKEN,
                                     "Content-Type: application/json", NULL};
    static const char *const wrong[] = {"Authorization: Bearer adm1n-tokeN",
                                        "Content-Type: application/json", NULL};
    static const char *const untyped[] = {ADMIN_TOKEN, NULL};
    static const char *const text[] = {ADMIN_TOKEN, "Content-Type: text/plain",
                                       NULL};
    static const char *const form[] = {
        ADMIN_TOKEN, "Content-Type: application/x-www-form-urlencoded", NULL};
    static const char *const evil[] = {ADMIN_TOKEN,
                                       "Content-Type: application/json",
                                       "Origin: http://evil.example", NULL};
    static const char *const null_origin[] = {
        ADMIN_TOKEN, "Content-Type: application/json", "Origin: null", NULL};
    static const char *const cross_site[] = {
        ADMIN_TOKEN, "Content-Type: application/json",
        "Sec-Fetch-Site: cross-site", NULL};
    static const char *const same_site[] = {ADMIN_TOKEN,
                                            "Content-Type: application/json",
                                            "Sec-Fetch-Site: same-site", NULL};
    static const char *const admin_only[] = {ADMIN_TOKEN, NULL};
    static const struct {
        const char *method;
        const char *const *hdrs;
        long status;
        const char *code, *what;
    } rows[] = {
        {"POST", none, 401, "unauthorized", "no token"},
        {"POST", wrong, 401, "unauthorized", "a wrong token"},
        {"POST", rd, 403, "forbidden", "the read token"},
        {"POST", untyped, 415, "unsupported_media_type", "no Content-Type"},
        {"POST", text, 415, "unsupported_media_type", "text/plain"},
        {"POST", form, 415, "unsupported_media_type", "a form's type"},
        {"POST", evil, 403, "cross_origin", "Origin of another site"},
        {"POST", null_origin, 403, "cross_origin", "Origin: null"},
        {"POST", cross_site, 403, "cross_origin", "Sec-Fetch-Site cross-site"},
        {"POST", same_site, 403, "cross_origin", "Sec-Fetch-Site same-site"},
        {"GET", admin_only, 405, "method_not_allowed", "GET"},
        {"PUT", evil, 405, "method_not_allowed", "PUT"},
        {"DELETE", admin_only, 405, "method_not_allowed", "DELETE"},
    };
    char path[64], origin[96], allow[32];
    const char *ok[5];
    json_object *v;
    int64_t id;
    size_t i;
    answer a;

    admin_gate(NULL);
    id = refuse_then_join();
    snprintf(path, sizeof(path), "/rejections/%lld/replay", (long long)id);
    for (i = 0; i < COUNT(rows); i++) {
        http(rows[i].method, path, rows[i].hdrs, "{}", 2, &a);
        expect(&a, rows[i].status, NULL, rows[i].code, rows[i].what);
        expect_console_headers(&a, rows[i].what);
        if (rows[i].status == 405) {
            head_value(&a, "Allow", allow, sizeof(allow));
            ck_assert_str_eq(allow, "POST");
        }
        answer_free(&a);
    }
    /* The admin token does not read. */
    http("GET", "/rejections", admin_only, NULL, 0, &a);
    expect(&a, 401, NULL, "unauthorized", "GET /rejections, admin token");
    answer_free(&a);
    /* From the gate's own page: Origin its own, Sec-Fetch-Site
     * same-origin.  Replayed, the alert now follows the join. */
    snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%d", gate_port);
    ok[0] = ADMIN_TOKEN;
    ok[1] = "Content-Type: application/json; charset=utf-8";
    ok[2] = origin;
    ok[3] = "Sec-Fetch-Site: same-origin";
    ok[4] = NULL;
    http("POST", path, ok, "{}", 2, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert_int_eq(jint(a.json, "rejection"), id);
    ck_assert_str_eq(jtext(a.json, "resolved"), "true");
    ck_assert(json_object_object_get_ex(a.json, "verdict", &v));
    ck_assert_str_eq(jstr(v, "verdict"), "accepted");
    ck_assert_int_eq(jint(v, "seq"), 2);
    answer_free(&a);
    /* Twice replays once. */
    http("POST", path, ok, "{}", 2, &a);
    expect(&a, 409, NULL, "already_resolved", "the second replay");
    answer_free(&a);
    http("GET", "/tickets/lq:30001", rd, NULL, 0, &a);
    ck_assert_int_eq(jint(a.json, "records"), 2);
    answer_free(&a);
    /* No body, and no such entry. */
    http("POST", path, ok, NULL, 0, &a);
    expect(&a, 409, NULL, "already_resolved", "a replay without a body");
    answer_free(&a);
    http("POST", "/rejections/999/replay", ok, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "no such rejection");
    answer_free(&a);
    http("POST", "/rejections/01/replay", ok, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "a leading zero");
    answer_free(&a);
    http("POST", "/rejections/9223372036854775808/replay", ok, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "an id of 2^63");
    answer_free(&a);
    http("POST", "/rejections/9223372036854775807/replay", ok, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "no entry 2^63 - 1");
    ck_assert_msg(strstr(a.body, "9223372036854775807") != NULL, "%s", a.body);
    answer_free(&a);
    http("POST", "/outbox/dead/5/retry", ok, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "no such dead letter");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The gate refuses to start, naming the file, on an admin token file the
 * read token's rules refuse, and on an admin token equal to the read
 * token; the config file's admin_token_file is read as the flag. */
START_TEST(test_admin_token_file)
{
    static const struct {
        const char *content, *says, *what;
    } rows[] = {
        {"\n", "the token is empty", "an empty admin token"},
        {"two words\n", "not printable ASCII", "an admin token with a space"},
        {"c0nsole-token\n", "the admin token is the read token",
         "the read token as admin token"},
    };
    static const char *const hdrs[] = {"Authorization: Bearer from-the-config",
                                       "Content-Type: application/json", NULL};
    char rd[128], adm[160], cfg[160];
    const char *opts[5];
    off_t from;
    char *text;
    size_t i;
    answer a;
    FILE *f;
    int status;

    token_file("token", "c0nsole-token", rd, sizeof(rd));
    snprintf(adm, sizeof(adm), "%s/admin", work);
    opts[0] = "--token-file";
    opts[1] = rd;
    opts[2] = "--admin-token-file";
    opts[3] = adm;
    opts[4] = NULL;
    for (i = 0; i < COUNT(rows); i++) {
        ck_assert_ptr_nonnull(f = fopen(adm, "w"));
        fputs(rows[i].content, f);
        fclose(f);
        from = file_size(logpath);
        gate_spawn(opts, 0);
        status = gate_wait_exit(WAIT_MS);
        if (status == -1)
            gate_kill();
        text = read_from(logpath, from);
        ck_assert_msg(status != -1 && WIFEXITED(status) &&
                          WEXITSTATUS(status) == 2 &&
                          strstr(text, rows[i].says) && strstr(text, adm),
                      "%s: status 0x%x: %s", rows[i].what, status, text);
        free(text);
    }
    /* From the config file: the admin token replays (404: no such
     * entry, past every admin check). */
    token_file("admin", "from-the-config", adm, sizeof(adm));
    snprintf(cfg, sizeof(cfg), "%s/gate.json", work);
    ck_assert_ptr_nonnull(f = fopen(cfg, "w"));
    fprintf(f, "{\"admin_token_file\":\"%s\"}\n", adm);
    fclose(f);
    opts[0] = "--config";
    opts[1] = cfg;
    opts[2] = NULL;
    gate_start(opts);
    http("POST", "/rejections/7/replay", hdrs, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "replay with the config's admin token");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* A refusal from a source the gate no longer serves is not replayed: no
 * engine of this gate may decide it (409 unknown_source). */
START_TEST(test_replay_unknown_source)
{
    static const char *const adm[] = {ADMIN_TOKEN,
                                      "Content-Type: application/json", NULL};
    static const char unsigned_body[] = "{\"payload\":{}}";
    char cfg[128], path[128], admin[128];
    const char *opts[5];
    answer a;
    FILE *f;

    snprintf(path, sizeof(path), "%s/a.secret", work);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("clinic-a-secret\n", f);
    fclose(f);
    snprintf(cfg, sizeof(cfg), "%s/sources.json", work);
    ck_assert_ptr_nonnull(f = fopen(cfg, "w"));
    fputs("{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\"}]}\n",
          f);
    fclose(f);
    opts[0] = "--config";
    opts[1] = cfg;
    opts[2] = "--admin-token-file";
    opts[3] = token_file("admin", "adm1n-token", admin, sizeof(admin));
    opts[4] = NULL;
    gate_start(opts);
    http("POST", "/webhooks/chup/a", as_json, unsigned_body,
         sizeof(unsigned_body) - 1, &a);
    ck_assert_msg(a.status == 400 || a.status == 401, "%ld %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();
    admin_gate(NULL); /* the default source only */
    http("POST", "/rejections/1/replay", adm, "{}", 2, &a);
    expect(&a, 409, NULL, "unknown_source", "a refusal of source a");
    ck_assert_msg(strstr(jstr(a.json, "error"), "source \"a\"") != NULL, "%s",
                  a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* Without --admin-token-file nothing replays, whatever is sent. */
START_TEST(test_admin_disabled)
{
    static const char *const hdrs[] = {ADMIN_TOKEN,
                                       "Content-Type: application/json", NULL};
    answer a;

    gate_start(NULL);
    http("POST", "/rejections/1/replay", hdrs, "{}", 2, &a);
    expect(&a, 403, NULL, "admin_disabled", "no admin token file");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* GET /rejections filters by reason and time, newest first, with each
 * body as received; bad queries are 400. */
START_TEST(test_rejections_list)
{
    static const char *const rd[] = {READ_TOKEN, NULL};
    static const struct {
        const char *query;
        long status;
        int64_t matched;
    } rows[] = {
        {"", 200, 2},
        {"?reason=ticket_closed", 200, 1},
        {"?reason=stale", 200, 0},
        {"?limit=1", 200, 2},
        {"?since=0&until=1", 200, 0},
        {"?since=2000-01-01T00:00:00Z", 200, 2},
        {"?reason=nope", 400, 0},
        {"?since=yesterday", 400, 0},
        {"?limit=0", 400, 0},
        {"?limit=1001", 400, 0},
    };
    char url[128];
    json_object *list, *e;
    size_t i, len;
    char *want;
    answer a;

    admin_gate(NULL);
    refuse_then_join();
    /* A second end of a visit, whose ticket is closed. */
    post_before("illegal/second-end-visit/05-end-visit-again.json");
    post_fixture("illegal/second-end-visit/05-end-visit-again.json", &a);
    ck_assert_int_eq(a.status, 409);
    answer_free(&a);
    for (i = 0; i < COUNT(rows); i++) {
        snprintf(url, sizeof(url), "/rejections%s", rows[i].query);
        http("GET", url, rd, NULL, 0, &a);
        if (rows[i].status != 200) {
            expect(&a, rows[i].status, NULL, "bad_query", url);
            answer_free(&a);
            continue;
        }
        ck_assert_msg(a.status == 200 && a.json, "%s: %ld %s", url, a.status,
                      a.body);
        ck_assert_msg(jint(a.json, "matched") == rows[i].matched, "%s: %s", url,
                      a.body);
        expect_console_headers(&a, url);
        answer_free(&a);
    }
    /* Newest first, with the body as sent. */
    http("GET", "/rejections", rd, NULL, 0, &a);
    ck_assert(json_object_object_get_ex(a.json, "rejections", &list));
    ck_assert_uint_eq(json_object_array_length(list), 2);
    e = json_object_array_get_idx(list, 0);
    ck_assert_str_eq(jstr(e, "code"), "ticket_closed");
    ck_assert_str_eq(jstr(e, "source"), "default");
    want = tu_fixture("illegal/second-end-visit/05-end-visit-again.json", &len);
    ck_assert_msg(same(jstr(e, "body"), want), "body %s", jstr(e, "body"));
    free(want);
    ck_assert(jint(e, "id") > jint(json_object_array_get_idx(list, 1), "id"));
    /* Replayed, the closed ticket's refusal is still refused: answered
     * with its verdict, and not logged a second time. */
    {
        static const char *const adm[] = {
            ADMIN_TOKEN, "Content-Type: application/json", NULL};
        char *big = malloc(4000);
        json_object *v;

        snprintf(url, sizeof(url), "/rejections/%lld/replay",
                 (long long)jint(e, "id"));
        answer_free(&a);
        http("POST", url, adm, "{}", 2, &a);
        ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
        ck_assert_str_eq(jtext(a.json, "resolved"), "false");
        ck_assert(json_object_object_get_ex(a.json, "verdict", &v));
        ck_assert_str_eq(jstr(v, "code"), "ticket_closed");
        answer_free(&a);
        http("GET", "/rejections", rd, NULL, 0, &a);
        ck_assert_int_eq(jint(a.json, "matched"), 2);
        answer_free(&a);
        /* A malformed or unsigned delivery keeps only a prefix: no
         * replay. */
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', 4000);
        big[0] = '{';
        big[3999] = '}';
        http("POST", WEBHOOK, as_json, big, 4000, &a);
        ck_assert_msg(a.status == 400 || a.status == 401, "%ld", a.status);
        free(big);
        answer_free(&a);
        http("GET", "/rejections?limit=1", rd, NULL, 0, &a);
        ck_assert(json_object_object_get_ex(a.json, "rejections", &list));
        e = json_object_array_get_idx(list, 0);
        ck_assert_str_eq(jtext(e, "truncated"), "true");
        snprintf(url, sizeof(url), "/rejections/%lld/replay",
                 (long long)jint(e, "id"));
        answer_free(&a);
        http("POST", url, adm, "{}", 2, &a);
        expect(&a, 409, NULL, "cannot_replay", "a prefix kept");
    }
    answer_free(&a);
    http("GET", "/rejections?limit=1", rd, NULL, 0, &a);
    ck_assert(json_object_object_get_ex(a.json, "rejections", &list));
    ck_assert_uint_eq(json_object_array_length(list), 1);
    ck_assert_int_eq(jint(a.json, "shown"), 1);
    ck_assert_int_eq(jint(a.json, "matched"), 3);
    answer_free(&a);
    http("GET", "/held", rd, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && same(a.body, "{\"held\":[]}\n"), "%s",
                  a.body);
    answer_free(&a);
    http("GET", "/held", NULL, NULL, 0, &a);
    expect(&a, 401, NULL, "unauthorized", "/held without a token");
    answer_free(&a);
    http("POST", "/rejections", rd, NULL, 0, &a);
    expect(&a, 405, NULL, "method_not_allowed", "POST /rejections");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* A held delivery is listed with its body. */
START_TEST(test_held_list)
{
    static const char *const window[] = {"--reorder-window", "600", NULL};
    json_object *list, *e;
    size_t len;
    char *body;
    answer a;

    gate_start(window);
    body = served_body(777001, &len);
    http("POST", WEBHOOK, as_json, body, len, &a);
    ck_assert_int_eq(a.status, 202);
    answer_free(&a);
    http("GET", "/held", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert(json_object_object_get_ex(a.json, "held", &list));
    ck_assert_uint_eq(json_object_array_length(list), 1);
    e = json_object_array_get_idx(list, 0);
    ck_assert_int_eq(jint(e, "live_queue_id"), 777001);
    ck_assert_msg(same(jstr(e, "body"), body), "%s", a.body);
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* /tickets/{id}/deliveries: a ticket's refusals and held deliveries, for
 * the ticket page's timeline; another ticket's are not listed. */
START_TEST(test_ticket_deliveries)
{
    static const char *const window[] = {"--reorder-window", "600", NULL};
    json_object *refused, *held, *e;
    size_t i, len;
    char *body, *held_body;
    answer a;

    gate_start(window);
    for (i = 0; i < 9; i++) /* walk_in_files: the 9 steps */
        post_accepted(walk_in_files[i]);
    /* A second end of the visit: refused, the ticket is closed. */
    body = step_body(30001, "live_queue_updated", "2024-03-05T09:58:00+08:00",
                     "{\"name\":\"VISIT_ENDED\",\"value\":12}", "Visit Ended",
                     &len);
    ck_assert_ptr_nonnull(body);
    http("POST", WEBHOOK, as_json, body, len, &a);
    expect(&a, 409, "rejected", "ticket_closed", "a second end of visit");
    answer_free(&a);
    /* A dispensing at 09:30, while the patient was being served, before
     * the pharmacy received anything: held for an earlier step. */
    held_body =
        step_body(30001, "live_queue_updated", "2024-03-05T09:30:00+08:00",
                  "{\"name\":\"PHARMACY_DISPENSED\",\"value\":10}",
                  "Pharmacy Dispensed", &len);
    ck_assert_ptr_nonnull(held_body);
    http("POST", WEBHOOK, as_json, held_body, len, &a);
    expect(&a, 202, "held", "early", "an early dispensing");
    answer_free(&a);
    /* Another ticket's refusal, and its held delivery. */
    post_before("illegal/second-end-visit/05-end-visit-again.json");
    post_fixture("illegal/second-end-visit/05-end-visit-again.json", &a);
    ck_assert_int_eq(a.status, 409);
    answer_free(&a);
    {
        char *other = served_body(777001, &len);

        http("POST", WEBHOOK, as_json, other, len, &a);
        ck_assert_int_eq(a.status, 202);
        answer_free(&a);
        free(other);
    }

    http("GET", "/tickets/lq:30001/deliveries", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    expect_console_headers(&a, "/tickets/lq:30001/deliveries");
    ck_assert(json_object_object_get_ex(a.json, "refused", &refused));
    ck_assert(json_object_object_get_ex(a.json, "held", &held));
    ck_assert_msg(json_object_array_length(refused) == 1 &&
                      json_object_array_length(held) == 1,
                  "%s", a.body);
    {
        /* One "timestamp" each: the held one's rendering has its own. */
        const char *p;
        int n = 0;

        for (p = a.body; (p = strstr(p, "\"timestamp\":")) != NULL; p++)
            n++;
        ck_assert_msg(n == 2, "%d timestamps in %s", n, a.body);
    }
    e = json_object_array_get_idx(refused, 0);
    ck_assert_str_eq(jstr(e, "verdict"), "rejected");
    ck_assert_str_eq(jstr(e, "code"), "ticket_closed");
    ck_assert_int_eq(jint(e, "live_queue_id"), 30001);
    /* The refusal's event time is its body's payload.timestamp. */
    ck_assert_str_eq(jstr(e, "timestamp"), "2024-03-05T09:58:00+08:00");
    ck_assert_int_eq(jint(e, "event_ms"), 1709603880000LL);
    ck_assert_str_eq(jstr(e, "event_time"), "event");
    ck_assert_msg(same(jstr(e, "body"), body), "%s", a.body);
    e = json_object_array_get_idx(held, 0);
    ck_assert_int_eq(jint(e, "live_queue_id"), 30001);
    ck_assert_str_eq(jstr(e, "event"), "rx_dispense");
    ck_assert_str_eq(jstr(e, "timestamp"), "2024-03-05T09:30:00+08:00");
    ck_assert_int_eq(jint(e, "event_ms"), 1709602200000LL);
    ck_assert_str_eq(jstr(e, "event_time"), "event");
    ck_assert_msg(jint(e, "expires_us") > 0, "%s", a.body);
    ck_assert_msg(same(jstr(e, "body"), held_body), "%s", a.body);
    answer_free(&a);
    free(body);
    free(held_body);
    /* Both lists hold two entries, one of them the other ticket's. */
    http("GET", "/rejections", NULL, NULL, 0, &a);
    ck_assert_int_eq(jint(a.json, "matched"), 2);
    answer_free(&a);
    http("GET", "/held", NULL, NULL, 0, &a);
    ck_assert(json_object_object_get_ex(a.json, "held", &held));
    ck_assert_uint_eq(json_object_array_length(held), 2);
    answer_free(&a);

    http("GET", "/tickets/99999/deliveries", NULL, NULL, 0, &a);
    expect(&a, 404, NULL, "not_found", "deliveries of no ticket");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* A dead letter is listed, and Retry moves it back to the outbox, from
 * where it reaches the HIS. */
START_TEST(test_dead_retry)
{
    static const char *const rd[] = {READ_TOKEN,
                                     "Content-Type: application/json", NULL};
    static const char *const adm[] = {ADMIN_TOKEN,
                                      "Content-Type: application/json", NULL};
    const char *more[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--max-age", "1", NULL};
    char path[64];
    json_object *list;
    int64_t id;
    answer a;
    int ok;

    his_start(HIS_FAIL);
    more[1] = his.url;
    admin_gate(more);
    post_accepted(WALK_IN "01-join-live-queue.json");
    WAIT_FOR(ok, gate_sample("qgate_outbox_dead") == 1, WAIT_MS);
    ck_assert_msg(ok, "not dead after %d ms", WAIT_MS);
    http("GET", "/outbox/dead", rd, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert(json_object_object_get_ex(a.json, "dead", &list));
    ck_assert_uint_eq(json_object_array_length(list), 1);
    id = jint(json_object_array_get_idx(list, 0), "id");
    ck_assert_str_eq(jstr(json_object_array_get_idx(list, 0), "last_error"),
                     "HTTP 500");
    answer_free(&a);
    snprintf(path, sizeof(path), "/outbox/dead/%lld/retry", (long long)id);
    http("POST", path, rd, "{}", 2, &a);
    expect(&a, 403, NULL, "forbidden", "retry with the read token");
    answer_free(&a);
    atomic_store(&his.mode, HIS_ACCEPT);
    http("POST", path, adm, "{}", 2, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert_int_eq(jint(a.json, "moved"), 1);
    answer_free(&a);
    http("POST", path, adm, "{}", 2, &a);
    expect(&a, 404, NULL, "not_found", "a second retry");
    answer_free(&a);
    WAIT_FOR(ok, his_count(200) == 1, WAIT_MS);
    ck_assert_msg(ok, "the retried step did not reach the HIS");
    http("GET", "/outbox/dead", rd, NULL, 0, &a);
    ck_assert_msg(same(a.body, "{\"dead\":[]}\n"), "%s", a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* /waits gives, for every ticket and for each service, the durations of
 * `qgate stats --json` and `qgate stats --service ID --json`, with
 * histogram buckets that hold every sample. */
START_TEST(test_waits_match_stats)
{
    static const char *const kinds[] = {"wait", "service", "visit"};
    const char *args[] = {"stats", "--json", "--db", db, NULL, NULL, NULL};
    char out[1 << 14], svc[32], want[512], got[512];
    json_object *services, *e, *d, *cd, *k, *ck, *buckets, *cli;
    size_t i, j, b, nsvc;
    int64_t sum;
    answer a;

    gate_start(NULL);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    post_before(NO_SHOW "99-none.json");
    post_before("illegal/second-end-visit/05-end-visit-again.json");
    http("GET", "/waits", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    expect_console_headers(&a, "/waits");
    gate_stop();
    ck_assert(json_object_object_get_ex(a.json, "services", &services));
    nsvc = json_object_array_length(services);
    ck_assert_msg(nsvc >= 2, "one service at least besides all: %s", a.body);
    ck_assert_str_eq(
        jtext(json_object_array_get_idx(services, 0), "service_id"), "null");
    for (i = 0; i < nsvc; i++) {
        e = json_object_array_get_idx(services, i);
        args[4] = NULL;
        if (i > 0) {
            snprintf(svc, sizeof(svc), "%s", jtext(e, "service_id"));
            args[4] = "--service";
            args[5] = svc;
        }
        ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(cli = json_tokener_parse(out));
        ck_assert(json_object_object_get_ex(e, "durations", &d));
        ck_assert(json_object_object_get_ex(cli, "durations", &cd));
        ck_assert_int_eq(jint(e, "tickets"), jint(cli, "tickets"));
        for (j = 0; j < COUNT(kinds); j++) {
            ck_assert(json_object_object_get_ex(d, kinds[j], &k));
            ck_assert(json_object_object_get_ex(cd, kinds[j], &ck));
            ck_assert(json_object_object_get_ex(k, "buckets", &buckets));
            for (b = 0, sum = 0; b < json_object_array_length(buckets); b++)
                sum += jint(json_object_array_get_idx(buckets, b), "count");
            ck_assert_int_eq(sum, jint(k, "count"));
            json_object_object_del(k, "buckets");
            snprintf(got, sizeof(got), "%s",
                     json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN));
            snprintf(
                want, sizeof(want), "%s",
                json_object_to_json_string_ext(ck, JSON_C_TO_STRING_PLAIN));
            ck_assert_msg(same(got, want), "service %s %s: gate %s, stats %s",
                          i ? svc : "all", kinds[j], got, want);
        }
        json_object_put(cli);
    }
    /* Something to compare: the walk-in waited and was served. */
    e = json_object_array_get_idx(services, 0);
    ck_assert(json_object_object_get_ex(e, "durations", &d) &&
              json_object_object_get_ex(d, "wait", &k));
    ck_assert_int_gt(jint(k, "count"), 0);
    answer_free(&a);
}
END_TEST

/* /deliveries counts each delivery answered, by verdict, in the minute
 * it was answered, over the last three hours. */
START_TEST(test_deliveries_per_minute)
{
    static const char *const window[] = {"--reorder-window", "0", NULL};
    static const char *const want[] = {"accepted", "duplicate", "rejected"};
    static const int64_t want_n[] = {9, 1, 1};
    json_object *verdicts, *counts, *minute;
    int64_t sums[16] = {0}, total = 0;
    size_t i, j, nv, len;
    char *body;
    answer a;

    gate_start(window);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    post_fixture(WALK_IN "01-join-live-queue.json", &a); /* again */
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    body = served_body(777002, &len); /* served before joining: refused */
    http("POST", WEBHOOK, as_json, body, len, &a);
    ck_assert_int_eq(a.status, 409);
    free(body);
    answer_free(&a);
    http("POST", WEBHOOK, as_json, "{}", 2, &a); /* unsigned */
    ck_assert_int_ge(a.status, 400);
    answer_free(&a);
    http("GET", "/deliveries", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    expect_console_headers(&a, "/deliveries");
    ck_assert_int_eq(jint(a.json, "minute_ms"), 60000);
    ck_assert_int_eq(jint(a.json, "start_ms") % 60000, 0);
    ck_assert(jint(a.json, "since_ms") > 0);
    ck_assert(json_object_object_get_ex(a.json, "verdicts", &verdicts));
    ck_assert(json_object_object_get_ex(a.json, "counts", &counts));
    ck_assert_uint_eq(json_object_array_length(counts), 180);
    nv = json_object_array_length(verdicts);
    ck_assert_uint_le(nv, COUNT(sums));
    for (i = 0; i < 180; i++) {
        minute = json_object_array_get_idx(counts, i);
        ck_assert_uint_eq(json_object_array_length(minute), nv);
        for (j = 0; j < nv; j++) {
            sums[j] +=
                json_object_get_int64(json_object_array_get_idx(minute, j));
            total +=
                json_object_get_int64(json_object_array_get_idx(minute, j));
        }
    }
    for (i = 0; i < COUNT(want); i++) {
        for (j = 0; j < nv; j++)
            if (same(json_object_get_string(
                         json_object_array_get_idx(verdicts, j)),
                     want[i]))
                break;
        ck_assert_msg(j < nv && sums[j] == want_n[i], "%s: %lld, want %lld",
                      want[i], j < nv ? (long long)sums[j] : -1LL,
                      (long long)want_n[i]);
    }
    ck_assert_int_eq(total, 12);
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
    tcase_add_test(tc, test_admin_rules);
    tcase_add_test(tc, test_admin_disabled);
    tcase_add_test(tc, test_admin_token_file);
    tcase_add_test(tc, test_replay_unknown_source);
    tcase_add_test(tc, test_rejections_list);
    tcase_add_test(tc, test_held_list);
    tcase_add_test(tc, test_ticket_deliveries);
    tcase_add_test(tc, test_dead_retry);
    tcase_add_test(tc, test_waits_match_stats);
    tcase_add_test(tc, test_deliveries_per_minute);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_console_suite());
}
