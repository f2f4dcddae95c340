/*
 * check_gate_answers.c - `qgate serve` end to end: what the gate answers a
 * delivery, its read API and its reloads.
 *
 * The gate, the client and the fake HIS are in gate_harness.h.
 */
#define _GNU_SOURCE /* prlimit() */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gate_harness.h"

/* Each status the gate answers a delivery with, in one gate's life. */
START_TEST(test_webhook_status_table)
{
    static const struct {
        const char *file;
        long status;
        const char *verdict, *code;
    } rows[] = {
        {WALK_IN "01-join-live-queue.json", 200, "accepted", "none"},
        {WALK_IN "01-join-live-queue.json", 200, "duplicate", "redelivery"},
        {"malformed/client-created.json", 200, "ignored", "not_lifecycle"},
        /* 40001 was never seen: serving it is not a way to start */
        {"illegal/served-before-arrive/02-served.json", 409, "rejected",
         "illegal_transition"},
        {"illegal/paid-after-cancel/01-join-live-queue.json", 200, "accepted",
         "none"},
        {"illegal/paid-after-cancel/02-cancel-delete.json", 200, "accepted",
         "none"},
        {"illegal/paid-after-cancel/03-billing-paid.json", 409, "rejected",
         "ticket_closed"},
        {"illegal/stale/01-join-live-queue.json", 200, "accepted", "none"},
        {"illegal/stale/02-arrived.json", 200, "accepted", "none"},
        {"illegal/stale/03-serving-stale.json", 409, "rejected", "stale"},
        {"malformed/unknown-state.json", 422, "rejected", "unknown_state"},
        {"malformed/unknown-event.json", 422, "rejected", "unknown_event"},
        {"malformed/not-json.json", 400, "malformed", "bad_json"},
        {"malformed/truncated.json", 400, "malformed", "bad_json"},
        {"malformed/two-documents.json", 400, "malformed", "trailing_data"},
        {"malformed/signature-other-payload.json", 401, "unauthenticated",
         "bad_signature"},
        {"malformed/missing-signature.json", 401, "unauthenticated",
         "missing_signature"},
    };
    char id[64];
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < COUNT(rows); i++) {
        post_fixture(rows[i].file, &a);
        expect(&a, rows[i].status, rows[i].verdict, rows[i].code, rows[i].file);
        ck_assert_msg(head_value(&a, "X-Request-Id", id, sizeof(id))[0],
                      "%s: no X-Request-Id", rows[i].file);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Every row of malformed/EXPECT, answered with its verdict, code and the
 * status they go with. */
START_TEST(test_webhook_malformed_expect)
{
    row rows[128];
    size_t n = read_expect("malformed/EXPECT", rows, COUNT(rows)), i;
    answer a;
    /* More unsigned refusals than the default burst allows one address;
     * the rate limit has tests of its own. */
    static const char *const opts[] = {"--unsigned-burst", "1000", NULL};

    ck_assert_int_ge(n, 30);
    gate_start(opts);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 3);
        post_fixture(rows[i].col[0], &a);
        expect(&a, status_for(rows[i].col[1], rows[i].col[2]), rows[i].col[1],
               rows[i].col[2], rows[i].col[0]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* --max-skew: a step dated far ahead is refused by default (400,
 * bad_value, the skew named), and taken when the check is off. */
START_TEST(test_webhook_max_skew)
{
    static const char *const off[] = {"--max-skew", "0", NULL};
    answer a;

    gate_start(NULL);
    post_fixture("malformed/far-future.json", &a);
    expect(&a, 400, "malformed", "bad_value", "far future, default skew");
    ck_assert_msg(strstr(a.body, "at most 300 s of clock skew"), "%s", a.body);
    answer_free(&a);
    gate_stop();
    gate_start(off);
    post_fixture("malformed/far-future.json", &a);
    expect(&a, 200, "accepted", "none", "far future, --max-skew 0");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* Every sequence of illegal/EXPECT: the legal steps accepted, the last one
 * refused with its code, naming its event and the state it met. */
START_TEST(test_webhook_illegal_expect)
{
    row rows[16];
    size_t n = read_expect("illegal/EXPECT", rows, COUNT(rows)), i;
    answer a;

    ck_assert_int_ge(n, 6);
    gate_start(NULL);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 5);
        post_before(rows[i].col[0]);
        post_fixture(rows[i].col[0], &a);
        expect(&a, status_for(rows[i].col[1], rows[i].col[2]), rows[i].col[1],
               rows[i].col[2], rows[i].col[0]);
        ck_assert_msg(same(jstr(a.json, "event"), rows[i].col[3]) &&
                          same(jstr(a.json, "from"), rows[i].col[4]),
                      "%s: %s, want event %s from %s", rows[i].col[0], a.body,
                      rows[i].col[3], rows[i].col[4]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Every step of visits/EXPECT accepted with its event and states. */
START_TEST(test_webhook_visits_expect)
{
    row rows[32];
    size_t n = read_expect("visits/EXPECT", rows, COUNT(rows)), i;
    answer a;

    ck_assert_int_ge(n, 18);
    gate_start(NULL);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 5);
        post_fixture(rows[i].col[0], &a);
        expect(&a, 200, rows[i].col[1], "none", rows[i].col[0]);
        ck_assert_msg(same(jstr(a.json, "event"), rows[i].col[2]) &&
                          same(jstr(a.json, "from"), rows[i].col[3]) &&
                          same(jstr(a.json, "to"), rows[i].col[4]),
                      "%s: %s, want %s %s -> %s", rows[i].col[0], a.body,
                      rows[i].col[2], rows[i].col[3], rows[i].col[4]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* A body announced over --max-body is refused from its headers: a client
 * that asks to continue first, as curl does for a large body, gets the
 * 413 in place of "100 Continue" and sends none of it. */
START_TEST(test_webhook_too_large_refused_early)
{
    static const char *const opts[] = {"--max-body", "4096", NULL};
    source src = {NULL, (size_t)256 << 20, 0}; /* 256 MiB announced */
    answer a;

    gate_start(opts);
    http_full(gate_port, "POST", WEBHOOK, as_json, NULL, 0, &src, 1, &a);
    ck_assert_msg(a.status == 413, "status %ld (%s) after sending %zu bytes",
                  a.status, curl_easy_strerror(a.rc), src.pos);
    expect(&a, 413, NULL, "too_large", "256 MiB announced");
    ck_assert_msg(src.pos == 0,
                  "the client sent %zu of %zu bytes before the 413", src.pos,
                  src.total);
    ck_assert_msg(a.ms < 5000, "the 413 took %" PRId64 " ms", a.ms);
    ck_assert_msg(strstr(a.body, "4096") != NULL, "the limit is not named: %s",
                  a.body);
    answer_free(&a);

    /* the gate is none the worse */
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "after the 413");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* Without a Content-Length the size is found while reading: a chunked
 * body over the limit is 413, one under it is read whole and accepted. */
START_TEST(test_webhook_too_large_chunked)
{
    static const char *const opts[] = {"--max-body", "4096", NULL};
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    source big = {NULL, 65536, 0};
    source small;
    size_t len;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    answer a;

    gate_start(opts);
    ck_assert_int_eq(
        http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &big, 0, &a),
        CURLE_OK);
    expect(&a, 413, NULL, "too_large", "64 KiB chunked");
    ck_assert_uint_eq(big.pos, big.total);
    answer_free(&a);

    small.data = body;
    small.total = len;
    small.pos = 0;
    ck_assert_int_eq(
        http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &small, 0, &a),
        CURLE_OK);
    expect(&a, 200, "accepted", "none", "walk-in/01 chunked");
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* Only JSON is read: text/plain is 415 and leaves nothing behind, so the
 * same body as application/json with a charset is then accepted. */
START_TEST(test_webhook_media_type)
{
    static const char *const plain[] = {"Content-Type: text/plain", NULL};
    static const char *const charset[] = {
        "Content-Type: application/json; charset=utf-8", NULL};
    size_t len;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    answer a;

    gate_start(NULL);
    http("POST", WEBHOOK, plain, body, len, &a);
    expect(&a, 415, NULL, "unsupported_media_type", "text/plain");
    answer_free(&a);
    http("POST", WEBHOOK, charset, body, len, &a);
    expect(&a, 200, "accepted", "none", "application/json; charset=utf-8");
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* The webhook is POST only, and says so. */
START_TEST(test_webhook_wrong_method)
{
    static const char *const methods[] = {"GET", "PUT", "DELETE"};
    char allow[64];
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < COUNT(methods); i++) {
        http(methods[i], WEBHOOK, NULL, NULL, 0, &a);
        expect(&a, 405, NULL, "method_not_allowed", methods[i]);
        ck_assert_msg(
            strcmp(head_value(&a, "Allow", allow, sizeof(allow)), "POST") == 0,
            "%s: Allow \"%s\", want POST", methods[i], allow);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Anything but the webhook's path is 404 "not_found", whatever the
 * method. */
START_TEST(test_webhook_wrong_path)
{
    static const struct {
        const char *method, *path;
    } rows[] = {
        {"POST", "/elsewhere"},
        {"POST", WEBHOOK "/extra"},
        {"GET", "/elsewhere"},
        {"POST", "/webhooks"},
    };
    size_t len, i;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    char what[128];
    answer a;

    gate_start(NULL);
    for (i = 0; i < COUNT(rows); i++) {
        snprintf(what, sizeof(what), "%s %s", rows[i].method, rows[i].path);
        http(rows[i].method, rows[i].path, as_json,
             strcmp(rows[i].method, "POST") == 0 ? body : NULL, len, &a);
        expect(&a, 404, NULL, "not_found", what);
        answer_free(&a);
    }
    free(body);
    gate_stop();
}
END_TEST

/*
 * A store that cannot be written is 503 "store_unavailable", and the
 * delivery is not half-recorded.  The disk refusing to grow is made with
 * RLIMIT_FSIZE on the gate: LMDB's commit then fails with EFBIG.
 */
START_TEST(test_webhook_store_unavailable)
{
    long long id, failed = 0, accepted = 0, i;
    qg_store *st;
    qg_ticket t;
    size_t len;
    char *body;
    answer a;

    gate_start_limited(NULL, 96 << 10);
    for (id = 81000; id < 81000 + 400 && !failed; id++) {
        ck_assert_ptr_nonnull(body = join_body(id, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        if (a.status == 503) {
            expect(&a, 503, NULL, "store_unavailable", "full disk");
            failed = id;
        } else {
            expect(&a, 200, "accepted", "none", "before the disk is full");
            accepted++;
        }
        answer_free(&a);
        free(body);
    }
    ck_assert_msg(failed, "no 503 after %lld deliveries on a 96 KiB disk",
                  accepted);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    ck_assert_int_eq(gate_sample("qgate_store_errors_total"), 1);
    gate_stop();

    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, failed, &t),
                     QG_NOTFOUND);
    for (i = 81000; i < failed; i++) {
        ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, i, &t), 0);
        ck_assert_uint_eq(t.records, 1);
    }
    qg_store_close(st);
}
END_TEST

/* The read API after the walk-in visit: the ticket and its 9 steps. */
START_TEST(test_read_api_ticket_and_history)
{
    static const char *const events[] = {
        "join",       "alert",       "move", "serve",    "complete",
        "rx_receive", "rx_dispense", "pay",  "end_visit"};
    static const struct {
        const char *path;
        long status;
        const char *code;
    } missing[] = {
        {"/tickets/99999", 404, "not_found"},
        {"/tickets/99999/history", 404, "not_found"},
        {"/tickets/30001/other", 404, "not_found"},
        {"/tickets/abc", 400, "bad_ticket"},
    };
    char rel[128];
    json_object *rec;
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < 9; i++) {
        static const char *const files[] = {"01-join-live-queue.json",
                                            "02-alert.json",
                                            "03-move.json",
                                            "04-serving.json",
                                            "05-served.json",
                                            "06-pharmacy-received.json",
                                            "07-pharmacy-dispensed.json",
                                            "08-billing-paid.json",
                                            "09-end-visit.json"};

        snprintf(rel, sizeof(rel), WALK_IN "%s", files[i]);
        post_fixture(rel, &a);
        expect(&a, 200, "accepted", "none", rel);
        answer_free(&a);
    }
    http("GET", "/tickets/30001", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert_msg(same(jstr(a.json, "state"), "visit_ended") &&
                      jint(a.json, "records") == 9 &&
                      jint(a.json, "live_queue_id") == 30001,
                  "%s", a.body);
    answer_free(&a);

    http("GET", "/tickets/30001/history", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json &&
                      json_object_is_type(a.json, json_type_array),
                  "%ld %s", a.status, a.body);
    ck_assert_uint_eq(json_object_array_length(a.json), 9);
    for (i = 0; i < 9; i++) {
        rec = json_object_array_get_idx(a.json, i);
        ck_assert_int_eq(jint(rec, "seq"), (int64_t)i + 1);
        ck_assert_msg(same(jstr(rec, "event"), events[i]),
                      "record %zu: %s, want %s", i + 1,
                      json_object_to_json_string(rec), events[i]);
        if (i > 0)
            ck_assert(
                same(jstr(rec, "from"),
                     jstr(json_object_array_get_idx(a.json, i - 1), "to")));
    }
    answer_free(&a);

    for (i = 0; i < COUNT(missing); i++) {
        http("GET", missing[i].path, NULL, NULL, 0, &a);
        expect(&a, missing[i].status, NULL, missing[i].code, missing[i].path);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* With --token-file, reading tickets takes the bearer token; the webhook
 * and the operations endpoints do not. */
START_TEST(test_read_api_bearer_token)
{
    static const char *const none[] = {NULL};
    static const char *const wrong[] = {"Authorization: Bearer s3cret-tokeN",
                                        NULL};
    static const char *const longer[] = {
        "Authorization: Bearer s3cret-token-and-more", NULL};
    static const char *const basic[] = {"Authorization: Basic czNjcmV0", NULL};
    static const char *const right[] = {"Authorization: Bearer s3cret-token",
                                        NULL};
    static const char *const *const refused[] = {none, wrong, longer, basic};
    char token[128];
    const char *opts[3];
    answer a;
    size_t i;
    FILE *f;

    snprintf(token, sizeof(token), "%s/token", work);
    ck_assert_ptr_nonnull(f = fopen(token, "w"));
    fputs("s3cret-token\n", f);
    fclose(f);
    opts[0] = "--token-file";
    opts[1] = token;
    opts[2] = NULL;
    gate_start(opts);
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "webhook without a token");
    answer_free(&a);
    for (i = 0; i < COUNT(refused); i++) {
        http("GET", "/tickets/30001", refused[i], NULL, 0, &a);
        expect(&a, 401, NULL, "unauthorized",
               refused[i][0] ? refused[i][0] : "no token");
        answer_free(&a);
        http("GET", "/tickets/30001/history", refused[i], NULL, 0, &a);
        ck_assert_int_eq(a.status, 401);
        answer_free(&a);
    }
    http("GET", "/tickets/30001", right, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && same(jstr(a.json, "state"), "queued"),
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    http("GET", "/tickets/30001/history", right, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

START_TEST(test_health_and_ready_without_upstream)
{
    json_object *v;
    answer a;

    gate_start(NULL);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && same(jstr(a.json, "status"), "up"),
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json &&
                      json_object_object_get_ex(a.json, "ready", &v) &&
                      json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 0,
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* ----- Reload ----------------------------------------------------------- */

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Joins entry id with a state the default mapping does not know. */
static void
post_waiting_room(long long id, answer *a)
{
    size_t len;
    char *body =
        step_body(id, "live_queue_created", "2024-03-05T10:00:00+08:00", "42",
                  "Waiting Room", &len);

    ck_assert_ptr_nonnull(body);
    http("POST", WEBHOOK, as_json, body, len, a);
    free(body);
}

/*
 * SIGHUP reloads the mapping and the secret without a restart: a state
 * the mapping did not know is refused (422), known after the file is
 * changed and the gate told; a mapping that does not load keeps the
 * running one.  It also reopens the log file, as log rotation expects.
 */
START_TEST(test_sighup_reloads_mapping_and_log)
{
    char cfg[160], map[160], rotated[160];
    /* the JSON log where the test reads the gate's stderr too, so that
     * gate_start() sees the "listening" line */
    const char *log = logpath;
    const char *opts[] = {"--config", cfg, "--log", log, NULL};
    char *text;
    answer a;

    snprintf(cfg, sizeof(cfg), "%s/qgate.json", work);
    snprintf(map, sizeof(map), "%s/map.json", work);
    snprintf(rotated, sizeof(rotated), "%s.1", logpath);
    write_text(map, "{\"states\": {}}");
    write_text(cfg, "{\"mapping\": \"map.json\"}");
    gate_start(opts);

    /* 1: unknown to the mapping */
    post_waiting_room(62001, &a);
    expect(&a, 422, "rejected", "unknown_state", "before the reload");
    answer_free(&a);

    /* 2: a broken mapping file is refused and the running one kept */
    write_text(map, "{\"states\": {\"Waiting Room\": \"teleport\"}}");
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_waiting_room(62002, &a);
    expect(&a, 422, "rejected", "unknown_state", "after a bad reload");
    answer_free(&a);

    /* 3: fixed, rotated, told: the state is known and the log reopened */
    write_text(map, "{\"states\": {\"Waiting Room\": \"join\"}}");
    ck_assert_int_eq(rename(log, rotated), 0);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_waiting_room(62003, &a);
    expect(&a, 200, "accepted", "none", "after the reload");
    ck_assert_str_eq(jstr(a.json, "event"), "join");
    answer_free(&a);
    gate_stop();

    /* The log says what was reloaded, and why a reload failed: the
     * operator who sent the signal reads the JSON log, not stderr. */
    text = read_from(log, 0);
    ck_assert_msg(strstr(text, "\"msg\":\"reloaded\",\"mapping\":\"") != NULL &&
                      strstr(text, "/map.json\",\"secret\":\"") != NULL &&
                      strstr(text, "/secret\",\"secrets\":1,\"log\":\"") !=
                          NULL,
                  "the new log file lacks what was reloaded: %s", text);
    free(text);
    text = read_from(rotated, 0);
    ck_assert_msg(strstr(text, "\"level\":\"error\",\"msg\":\"reload "
                               "failed; keeping the running mapping and "
                               "secret\",\"error\":\"") != NULL &&
                      strstr(text, "teleport") != NULL,
                  "the rotated log lacks the failed reload's reason: %s", text);
    ck_assert_msg(strstr(text, "\nqgate: ") == NULL,
                  "the failed reload was said outside the JSON log: %s", text);
    free(text);
}
END_TEST

/* Posts join_body(id) and requires it accepted; what happened if not. */
static void
post_join_accepted(long long id, const char *when)
{
    answer a;
    size_t len;
    char *body = join_body(id, &len);

    ck_assert_ptr_nonnull(body);
    http("POST", WEBHOOK, as_json, body, len, &a);
    free(body);
    ck_assert_msg(a.status == 200 && same(jstr(a.json, "verdict"), "accepted"),
                  "%s: delivery %lld answered %ld %s", when, id, a.status,
                  a.body ? a.body : "");
    answer_free(&a);
}

/* Posts joins from *id on until the gate's log (read from `from`) holds
 * want, or fails the test; each one must be accepted. */
static void
post_until_logged(long long *id, off_t from, const char *want, const char *when)
{
    int64_t until = now_ms() + WAIT_MS;
    char *text = NULL;
    int ok = 0;

    while (!ok && now_ms() < until) {
        post_join_accepted((*id)++, when);
        free(text);
        text = read_from(logpath, from);
        ok = strstr(text, want) != NULL;
    }
    ck_assert_msg(ok, "%s: the log never said %s: %s", when, want, text);
    free(text);
}

/*
 * Rotating Chup's secret with no delivery refused, as docs/operations.md
 * tells it: the new secret added as a second line and SIGHUP while
 * deliveries signed with the old one flow, Chup switched (the metric moves
 * to index 1), the old line removed and SIGHUP while deliveries signed with
 * the new one flow.  Afterwards the old secret is refused.
 */
START_TEST(test_sighup_rotates_secrets)
{
    static const char old_key[] = "the-old-secret", new_key[] = "the-new-one";
    char file[160];
    const char *opts[] = {"--secret-file", file, NULL};
    long long id = 64001;
    off_t mark;
    char *text;
    answer a;
    size_t len;
    char *body;
    int i;

    snprintf(file, sizeof(file), "%s/chup.secret", work);
    write_text(file, "the-old-secret\n");
    secret_use(old_key);
    gate_start(opts);
    for (i = 0; i < 5; i++)
        post_join_accepted(id++, "before the rotation");
    ck_assert(gate_sample("qgate_signature_matches_total{secret=\"0\","
                          "source=\"default\"}") == 5);

    mark = file_size(logpath);
    write_text(file, "the-old-secret\nthe-new-one\n");
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    post_until_logged(&id, mark, "\"secrets\":2,", "adding the new secret");

    secret_use(new_key);
    for (i = 0; i < 5; i++)
        post_join_accepted(id++, "Chup switched");
    ck_assert(gate_sample("qgate_signature_matches_total{secret=\"1\","
                          "source=\"default\"}") == 5);
    text = read_from(logpath, mark);
    ck_assert_msg(strstr(text, "\"secret\":1,") != NULL &&
                      strstr(text, new_key) == NULL &&
                      strstr(text, old_key) == NULL,
                  "the delivery lines lack the secret's index, or hold a "
                  "secret: %s",
                  text);
    free(text);

    mark = file_size(logpath);
    write_text(file, "the-new-one\n");
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    post_until_logged(&id, mark, "\"secrets\":1,", "removing the old secret");
    post_join_accepted(id++, "after the rotation");

    secret_use(old_key);
    body = join_body(id++, &len);
    http("POST", WEBHOOK, as_json, body, len, &a);
    free(body);
    ck_assert_int_eq(a.status, 401);
    answer_free(&a);
    secret_use(NULL);
    gate_stop();
}
END_TEST

Suite *gate_answers_suite(void);

Suite *
gate_answers_suite(void)
{
    Suite *s = suite_create("gate_answers");
    TCase *tc = tcase_create("Answers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_webhook_status_table);
    tcase_add_test(tc, test_webhook_malformed_expect);
    tcase_add_test(tc, test_webhook_max_skew);
    tcase_add_test(tc, test_webhook_illegal_expect);
    tcase_add_test(tc, test_webhook_visits_expect);
    tcase_add_test(tc, test_webhook_too_large_refused_early);
    tcase_add_test(tc, test_webhook_too_large_chunked);
    tcase_add_test(tc, test_webhook_media_type);
    tcase_add_test(tc, test_webhook_wrong_method);
    tcase_add_test(tc, test_webhook_wrong_path);
    tcase_add_test(tc, test_webhook_store_unavailable);
    tcase_add_test(tc, test_read_api_ticket_and_history);
    tcase_add_test(tc, test_read_api_bearer_token);
    tcase_add_test(tc, test_health_and_ready_without_upstream);
    tcase_add_test(tc, test_sighup_reloads_mapping_and_log);
    tcase_add_test(tc, test_sighup_rotates_secrets);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_answers_suite());
}
