/*
 * check_chup.c - decoding Chup envelopes, signatures, time stamps and the
 * mapping from Chup's vocabulary.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode_same.h"
#include "qgate_int.h"
#include "testutil.h"

static qg_store *st;
static qg_engine *eng;

static void
setup(void)
{
    st = tu_store_new();
    ck_assert_int_eq(qg_engine_new(&eng), 0);
    qg_engine_require_signature(eng, 0);
}

static void
teardown(void)
{
    qg_engine_free(eng);
    qg_store_close(st);
    tu_store_remove();
}

/* An unsigned delivery for live-queue 60001 with the given data fields
 * after "id" (state, state_name, ...). */
static qg_result
apply_data(const char *event, const char *fields)
{
    char body[2048];
    qg_result res;

    snprintf(body, sizeof(body),
             "{\"payload\":{\"event\":\"%s\",\"timestamp\":"
             "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":60001,%s}}}",
             event, fields);
    ck_assert_int_eq(
        qg_engine_apply(eng, st, body, strlen(body), QG_DRY_RUN, &res), 0);
    return res;
}

/* The signed bytes are the payload value exactly as it stands in the
 * body: here Chup's pretty-printed example, odd spacing and all. */
START_TEST(test_chup_payload_span_is_exact_bytes)
{
    size_t len;
    char *body = tu_fixture("chup/00-webhook-overview.json", &len);
    const char *start = strstr(body, "\"payload\": ") + 11;
    const char *end = strstr(body, ",\n  \"signature\"");
    qg__envelope env;
    char detail[256];

    ck_assert_int_eq(
        qg__envelope_parse(body, len, &env, detail, sizeof(detail)), QG_R_NONE);
    ck_assert_ptr_eq(env.payload_text.p, start);
    ck_assert_uint_eq(env.payload_text.len, (size_t)(end - start));
    ck_assert_uint_eq(env.signature.len, 64);
    ck_assert_int_eq(memcmp(env.signature.p, "e43bbd70", 8), 0);
    qg__envelope_free(&env);
    free(body);
}
END_TEST

/* Signing the pretty payload's own bytes verifies; the same payload
 * re-serialised (white space changed) does not. */
START_TEST(test_chup_signature_whitespace_matters)
{
    size_t len;
    char *body = tu_fixture("chup/00-webhook-overview.json", &len);
    char sig[65], *compact;
    const char *key = "clinic-secret";
    qg__envelope env;
    qg__span hex;
    char detail[256];

    /* json-c's tree, to write the payload out again */
    ck_assert_int_eq(
        qg__envelope_parse_tree(body, len, &env, detail, sizeof(detail)),
        QG_R_NONE);
    ck_assert_ptr_nonnull(env.payload);
    qg__signature_make(key, strlen(key), env.payload_text.p,
                       env.payload_text.len, sig);
    hex.p = sig;
    hex.len = 64;
    ck_assert_int_eq(
        qg__signature_check(key, strlen(key), env.payload_text, hex),
        QG_R_NONE);
    /* one key byte off */
    ck_assert_int_eq(qg__signature_check("clinic-secreT", strlen(key),
                                         env.payload_text, hex),
                     QG_R_BAD_SIGNATURE);
    /* re-serialised */
    compact = strdup(
        json_object_to_json_string_ext(env.payload, JSON_C_TO_STRING_PLAIN));
    {
        qg__span msg = {compact, strlen(compact)};

        ck_assert_int_eq(qg__signature_check(key, strlen(key), msg, hex),
                         QG_R_BAD_SIGNATURE);
    }
    free(compact);
    qg__envelope_free(&env);
    free(body);
}
END_TEST

/*
 * Both ways of decoding agree (decode_same.h), and the one-pass scan reads
 * the plain deliveries while json-c gets every body the scan does not
 * decide.  Each case is a delivery whose payload.data is {"id":60001,
 * FIELDS}, or a whole body when it starts with '{'.  fuzz_decode checks
 * the agreement on any bytes.
 */
static const struct {
    const char *fields;
    int scanned;
} two_ways[] = {
    {"\"state\":1", 1},
    {"\"state\":null,\"state_name\":\"In Queue\"", 1},
    {"\"state\":{\"name\":\"ARRIVED\",\"value\":3}", 1},
    {"\"state\":{\"name\":null,\"value\":-3,\"x\":[]}", 1},
    {"\"appointment_id\":9994,\"service_id\":206,\"staff_id\":262", 1},
    {"\"appointment_id\":null,\"appointment_date\":null", 1},
    {"\"appointment_date\":\"2024-01-18\",\"appointment_time\":\"20:50:00\"",
     1},
    {"\"service_id\":123456789012345678", 1},
    {"\"notes\":[],\"x\":{},\"y\":[1,[2,{\"a\":null}],true,false,\"s\"]", 1},
    {"\"notes\":{\"\\u0061\":1,\"b\":\"a\\\"b\\\\c\\/"
     "\\n\\u00e9\\ud83d\\ude00\"}",
     1},
    {"\"note\":\"x\\u0000y\"", 1},
    {" \"a\" :\r\n\t1 , \"b\":\"\xC3\xA9\" ", 1},
    /* not decided by the scan: json-c reads them, or refuses them */
    {"\"service_id\":1234567890123456789", 0},
    {"\"service_id\":9223372036854775807", 0},
    {"\"service_id\":9223372036854775808", 0},
    {"\"service_id\":1.5", 0},
    {"\"service_id\":1e3", 0},
    {"\"service_id\":007", 0},
    {"\"service_id\":0", 0},
    {"\"service_id\":-4", 0},
    {"\"service_id\":\"4\"", 0},
    {"\"state\":-0", 0},
    {"\"state\":true", 0},
    {"\"state\":{\"name\":\"A\\u0042\"}", 0},
    {"\"state\":{\"value\":3.0}", 0},
    {"\"state_name\":\"In\\tQueue\"", 0},
    {"\"state_name\":7", 0},
    {"\"\\u0069d\":2", 0},
    {"\"\":1", 0},
    {"\"a\\u0000\":1", 0},
    {"\"a\":1,\"a\":2", 0},
    {"\"id\":60002", 0},
    {"\"a\":True", 0},
    {"\"a\":nul", 0},
    {"\"a\":[1,]", 0},
    {"\"a\":\"\\x\"", 0},
    {"\"a\":\"\\u12G4\"", 0},
    {"\"a\":\"\\ud800\"", 0},
    {"\"a\":\"\xC0\xAF\"", 0},
    {"\"a\":\"tab\there\"", 0},
    {"\"a\":\f1", 0},
    {"\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]", 0},
    /* whole bodies */
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":7}},\"signature\":3}",
     1},
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":7}},\"signature\":"
     "\"\\u0061b\"}",
     1},
    {"{\"payload\":{\"event\":\"live\\u005fqueue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":7}}}",
     0},
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05 10:00\",\"data\":{\"id\":7}}}",
     0},
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":[]}}",
     0},
    {"{\"payload\":{\"timestamp\":\"2024-03-05T10:00:00+08:00\",\"data\":"
     "{\"id\":7}}}",
     0},
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":7}}} {}",
     0},
    {"{\"payload\":{\"event\":\"live_queue_created\",\"timestamp\":"
     "\"2024-03-05T10:00:00+08:00\",\"data\":{\"id\":7}},\"\\u0070ayload\":1}",
     0},
    {"\xEF\xBB\xBF{\"payload\":{}}", 0},
    {"[{\"payload\":{}}]", 0},
    {"{\"payload\":{}", 0},
};

START_TEST(test_chup_two_ways_agree_table)
{
    char body[1024], why[512] = "";
    int n, scanned = -1;

    if (two_ways[_i].fields[0] == '{' || two_ways[_i].fields[0] == '\xEF' ||
        two_ways[_i].fields[0] == '[')
        n = snprintf(body, sizeof(body), "%s", two_ways[_i].fields);
    else
        n = snprintf(body, sizeof(body),
                     "{\"payload\":{\"event\":\"live_queue_created\","
                     "\"timestamp\":\"2024-03-05T10:00:00+08:00\",\"data\":{"
                     "\"id\":60001,%s}},\"signature\":\"%064d\"}",
                     two_ways[_i].fields, 0);
    ck_assert_msg(decode_same(body, (size_t)n, &scanned, why, sizeof(why)),
                  "%s: %s", body, why);
    ck_assert_msg(scanned == two_ways[_i].scanned, "%s: scanned %d", body,
                  scanned);
}
END_TEST

/* Chup's own examples are plain: read in one pass, as json-c reads them. */
START_TEST(test_chup_examples_are_scanned)
{
    static const char *const files[] = {"chup/00-webhook-overview.json",
                                        "chup/01-join-live-queue.json"};
    char why[512] = "";
    size_t i, len;
    int scanned;

    for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
        char *body = tu_fixture(files[i], &len);

        ck_assert_msg(decode_same(body, len, &scanned, why, sizeof(why)),
                      "%s: %s", files[i], why);
        ck_assert_msg(scanned, "%s is not scanned", files[i]);
        free(body);
    }
}
END_TEST

START_TEST(test_chup_signature_format)
{
    qg__span msg = {"{}", 2}, hex;
    char sig[65];

    qg__signature_make("k", 1, "{}", 2, sig);
    hex.p = NULL;
    hex.len = 0;
    ck_assert_int_eq(qg__signature_check("k", 1, msg, hex),
                     QG_R_MISSING_SIGNATURE);
    hex.p = sig;
    hex.len = 63;
    ck_assert_int_eq(qg__signature_check("k", 1, msg, hex),
                     QG_R_SIGNATURE_FORMAT);
    hex.len = 64;
    sig[0] = (char)(sig[0] >= 'a' ? sig[0] - 32 : 'G');
    ck_assert_int_eq(qg__signature_check("k", 1, msg, hex),
                     QG_R_SIGNATURE_FORMAT);
}
END_TEST

static const struct {
    const char *text;
    int ok;
    int64_t ms;
    int32_t offset_s;
} times[] = {
    {"2024-01-17T00:35:22+08:00", 1, 1705422922000, 28800},
    {"2024-01-16T16:35:22Z", 1, 1705422922000, 0},
    {"2024-01-16T16:35:22.250Z", 1, 1705422922250, 0},
    {"2024-01-16T11:35:22-0500", 1, 1705422922000, -18000},
    {"2024-02-29T00:00:00+00:00", 1, 1709164800000, 0},
    {"2023-02-29T00:00:00+00:00", 0, 0, 0},
    {"2024-01-17T00:35:22", 0, 0, 0},
    {"2024-01-17T24:00:00Z", 0, 0, 0},
    {"2024-13-01T00:00:00Z", 0, 0, 0},
    {"2024-01-17T00:35:22+08:00 ", 0, 0, 0},
    {"yesterday", 0, 0, 0},
    {"", 0, 0, 0},
};

START_TEST(test_chup_time_table)
{
    int64_t ms = 0;
    int32_t off = 0;
    int rc = qg_time_parse(times[_i].text, &ms, &off);

    ck_assert_msg((rc == 0) == times[_i].ok, "\"%s\": rc %d", times[_i].text,
                  rc);
    if (times[_i].ok) {
        char back[40];

        ck_assert_int_eq(ms, times[_i].ms);
        ck_assert_int_eq(off, times[_i].offset_s);
        qg_time_format(ms, off, back, sizeof(back));
        ck_assert_int_eq(strncmp(back, times[_i].text, 19), 0);
    }
}
END_TEST

/* state_name decides when it is known; else state.name; else the value;
 * names compare case-insensitively with ' ', '_' and '-' folded. */
static const struct {
    const char *fields;
    qg_verdict verdict;
    qg_event event;
} states[] = {
    {"\"state\":1", QG_ACCEPTED, QG_EV_JOIN},
    {"\"state\":{\"name\":\"ARRIVED\",\"value\":3}", QG_ACCEPTED, QG_EV_ARRIVE},
    {"\"state\":{\"name\":\"ARRIVED\",\"value\":3},\"state_name\":\"In "
     "Queue\"",
     QG_ACCEPTED, QG_EV_JOIN},
    {"\"state\":{\"name\":\"IN_QUEUE\",\"value\":77},\"state_name\":\"?\"",
     QG_ACCEPTED, QG_EV_JOIN},
    {"\"state\":{\"name\":\"??\",\"value\":3},\"state_name\":\"??\"",
     QG_ACCEPTED, QG_EV_ARRIVE},
    {"\"state_name\":\"in-queue\"", QG_ACCEPTED, QG_EV_JOIN},
    {"\"state_name\":\"IN_QUEUE\"", QG_ACCEPTED, QG_EV_JOIN},
    {"\"state\":2", QG_REJECTED, QG_EV_NONE},
    {"\"state_name\":\"Served\"", QG_REJECTED, QG_EV_COMPLETE},
    {"\"state_name\":7", QG_MALFORMED, QG_EV_NONE},
    {"\"state\":\"1\"", QG_MALFORMED, QG_EV_NONE},
    {"\"state\":{\"name\":\"ARRIVED\",\"value\":\"3\"}", QG_MALFORMED,
     QG_EV_NONE},
    {"\"service_id\":\"x\",\"state\":1", QG_MALFORMED, QG_EV_NONE},
    {"\"appointment_id\":-1,\"state\":1", QG_MALFORMED, QG_EV_NONE},
    {"\"appointment_id\":null,\"service_id\":null,\"state\":1", QG_ACCEPTED,
     QG_EV_JOIN},
    {"\"notes\":{\"items\":[],\"escapeWhenCastingToString\":false},"
     "\"state\":1",
     QG_ACCEPTED, QG_EV_JOIN},
};

START_TEST(test_chup_state_table)
{
    qg_result res = apply_data("live_queue_created", states[_i].fields);

    ck_assert_msg(res.verdict == states[_i].verdict, "%s: %s (%s), expected %s",
                  states[_i].fields, qg_verdict_name(res.verdict), res.detail,
                  qg_verdict_name(states[_i].verdict));
    ck_assert_int_eq(res.event, states[_i].event);
}
END_TEST

static char config_path[64];

static void
write_config(const char *text)
{
    FILE *f;
    int fd;

    snprintf(config_path, sizeof(config_path), "/tmp/qgate-map-XXXXXX");
    fd = mkstemp(config_path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

START_TEST(test_chup_mapping_override)
{
    char err[256];
    qg_result res;

    write_config("{\"events\": {\"queue_ticket_updated\": \"state\", "
                 "\"client_created\": null},"
                 " \"states\": {\"Waiting Room\": \"join\"},"
                 " \"state_values\": {\"7\": \"arrive\", \"1\": null}}");
    ck_assert_msg(qg_engine_load_mapping(eng, config_path, err, sizeof(err)) ==
                      0,
                  "%s", err);
    unlink(config_path);

    res = apply_data("queue_ticket_updated", "\"state_name\":\"waiting room\"");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.event, QG_EV_JOIN);
    res = apply_data("live_queue_created", "\"state\":7");
    ck_assert_int_eq(res.event, QG_EV_ARRIVE);
    /* removed entries are no longer known */
    res = apply_data("live_queue_created", "\"state\":1");
    ck_assert_int_eq(res.reason, QG_R_UNKNOWN_STATE);
    res = apply_data("client_created", "\"name\":\"x\"");
    ck_assert_int_eq(res.reason, QG_R_UNKNOWN_EVENT);
    /* defaults that were not overridden remain */
    res = apply_data("live_queue_created", "\"state_name\":\"Arrived\"");
    ck_assert_int_eq(res.event, QG_EV_ARRIVE);
}
END_TEST

static const struct {
    const char *text;
    int rc;
    const char *says;
} bad_configs[] = {
    {"{\"states\": {\"Waiting\": \"teleport\"}}", QG_ECONFIG, "teleport"},
    {"{\"events\": {\"x_updated\": \"sometimes\"}}", QG_ECONFIG, "sometimes"},
    {"{\"state_values\": {\"one\": \"join\"}}", QG_ECONFIG, "one"},
    {"{\"colours\": {}}", QG_ECONFIG, "colours"},
    {"{\"states\": [\"join\"]}", QG_ECONFIG, "states"},
    {"{\"states\": {\"Waiting\": 3}}", QG_ECONFIG, "Waiting"},
    {"[1]", QG_ECONFIG, "object"},
    {"{\"states\": ", QG_ECONFIG, "not valid JSON"},
};

/* A bad mapping file is refused with its key named, and the engine keeps
 * the mapping it had. */
START_TEST(test_chup_mapping_errors_table)
{
    char err[256] = "";
    qg_result res;

    write_config(bad_configs[_i].text);
    ck_assert_int_eq(qg_engine_load_mapping(eng, config_path, err, sizeof(err)),
                     bad_configs[_i].rc);
    unlink(config_path);
    ck_assert_msg(strstr(err, bad_configs[_i].says) != NULL,
                  "\"%s\" does not name \"%s\"", err, bad_configs[_i].says);
    res = apply_data("live_queue_created", "\"state\":1");
    ck_assert_int_eq(res.event, QG_EV_JOIN);
}
END_TEST

/* An unreadable file is an I/O error, and the message names it. */
START_TEST(test_chup_mapping_missing_file)
{
    char err[256] = "";

    ck_assert_int_eq(
        qg_engine_load_mapping(eng, "/nonexistent/map.json", err, sizeof(err)),
        QG_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/map.json"));
}
END_TEST

/* Text json-c 0.16 accepts, even with JSON_TOKENER_VALIDATE_UTF8, but that
 * is not JSON (RFC 8259) or not UTF-8 (RFC 3629): each is refused as
 * bad_json naming the offset of its first byte, which is 17 here, the
 * first byte inside the string.  The rest are the edges that stay valid. */
static const struct {
    const char *text;
    qg_reason reason;
    const char *says;
} strict_texts[] = {
    {"\xC0\xAF", QG_R_BAD_JSON, "overlong"},
    {"\xC1\xBF", QG_R_BAD_JSON, "overlong"},
    {"\xE0\x80\xAF", QG_R_BAD_JSON, "overlong"},
    {"\xF0\x80\x80\xAF", QG_R_BAD_JSON, "overlong"},
    {"\xED\xA0\x80", QG_R_BAD_JSON, "surrogate"},
    {"\xED\xBF\xBF", QG_R_BAD_JSON, "surrogate"},
    {"\xF4\x90\x80\x80", QG_R_BAD_JSON, "above U+10FFFF"},
    {"\xF5\x80\x80\x80", QG_R_BAD_JSON, "above U+10FFFF"},
    /* json-c refuses these itself, with its own message */
    {"\x80", QG_R_BAD_JSON, NULL},
    {"\xE2\x82", QG_R_BAD_JSON, NULL},
    {"\xFF", QG_R_BAD_JSON, NULL},
    {"\x01", QG_R_BAD_JSON, "control character 0x01"},
    {"\x1F", QG_R_BAD_JSON, "control character 0x1f"},
    {"\t", QG_R_BAD_JSON, "control character 0x09"},
    {"\n", QG_R_BAD_JSON, "control character 0x0a"},
    {"\\ud800", QG_R_BAD_JSON, "unpaired surrogate"},
    {"\\uDBFF\\u0041", QG_R_BAD_JSON, "unpaired surrogate"},
    {"\\udc00", QG_R_BAD_JSON, "unpaired surrogate"},
    {"\xC2\xA0", QG_R_NONE, NULL},
    {"\xE2\x82\xAC", QG_R_NONE, NULL},
    {"\xED\x9F\xBF", QG_R_NONE, NULL},     /* U+D7FF */
    {"\xEE\x80\x80", QG_R_NONE, NULL},     /* U+E000 */
    {"\xF0\x9F\x98\x80", QG_R_NONE, NULL}, /* U+1F600 */
    {"\xF4\x8F\xBF\xBF", QG_R_NONE, NULL}, /* U+10FFFF */
    {"\\ud83d\\ude00", QG_R_NONE, NULL},
    {"\\u0001\\t\x7F", QG_R_NONE, NULL},
};

/* {"payload":{"a":VALUE}}, VALUE in quotes with quoted, through the
 * decoder: refused for reason want (or accepted, QG_R_NONE) and, with
 * says, a detail that holds says and names byte at. */
static void
assert_strict_value(int i, const char *value, int quoted, qg_reason want,
                    const char *says, unsigned at)
{
    const char *q = quoted ? "\"" : "";
    char body[128], detail[256] = "", where[32];
    qg__envelope env;
    qg_reason r;
    int n = snprintf(body, sizeof(body), "{\"payload\":{\"a\":%s%s%s}}", q,
                     value, q);

    r = qg__envelope_parse(body, (size_t)n, &env, detail, sizeof(detail));
    qg__envelope_free(&env);
    ck_assert_msg(r == want, "case %d: %s (%s)", i, qg_reason_name(r), detail);
    snprintf(where, sizeof(where), "at byte %u", at);
    if (says)
        ck_assert_msg(strstr(detail, says) != NULL &&
                          strstr(detail, where) != NULL,
                      "case %d: \"%s\"", i, detail);
}

START_TEST(test_chup_strict_text_table)
{
    assert_strict_value(_i, strict_texts[_i].text, 1, strict_texts[_i].reason,
                        strict_texts[_i].says, 17);
}
END_TEST

/* Numbers json-c 0.16 takes even in strict mode but RFC 8259 does not:
 * each is refused as bad_json naming the byte where it starts (16 for a
 * value of "a" itself) and saying why.  fuzz_span found NaN: json-c keeps it,
 * and NaN equals nothing, not even the payload's own span parsed again.  The
 * rest are the valid forms next to them, still accepted. */
static const struct {
    const char *value;
    qg_reason reason;
    const char *says;
    unsigned at;
} number_texts[] = {
    {"NaN", QG_R_BAD_JSON, "NaN: NaN and Infinity are not numbers", 16},
    {"Infinity", QG_R_BAD_JSON, "Infinity: NaN and Infinity", 16},
    {"-Infinity", QG_R_BAD_JSON, "-Infinity: NaN and Infinity", 16},
    {"1.", QG_R_BAD_JSON, "1.: a decimal point needs a digit", 16},
    {"-1.", QG_R_BAD_JSON, "a decimal point needs a digit", 16},
    {"1.e5", QG_R_BAD_JSON, "1.e5: a decimal point needs a digit", 16},
    {"0.", QG_R_BAD_JSON, "a decimal point needs a digit", 16},
    {"00", QG_R_BAD_JSON, "00: a number may not start with a zero", 16},
    {"-01", QG_R_BAD_JSON, "-01: a number may not start with a zero", 16},
    {"-00.5", QG_R_BAD_JSON, "a number may not start with a zero", 16},
    {"[1,2.]", QG_R_BAD_JSON, "at byte 19: 2.:", 19},
    {"{\"b\":NaN}", QG_R_BAD_JSON, "at byte 21: NaN:", 21},
    {"0", QG_R_NONE, NULL, 0},
    {"-0", QG_R_NONE, NULL, 0},
    {"10", QG_R_NONE, NULL, 0},
    {"0.5", QG_R_NONE, NULL, 0},
    {"-0.0e-1", QG_R_NONE, NULL, 0},
    {"1e5", QG_R_NONE, NULL, 0},
    {"1E+2", QG_R_NONE, NULL, 0},
    {"100.25", QG_R_NONE, NULL, 0},
    {"[0,-0,1.5e10]", QG_R_NONE, NULL, 0},
};

START_TEST(test_chup_strict_number_table)
{
    assert_strict_value(_i, number_texts[_i].value, 0, number_texts[_i].reason,
                        number_texts[_i].says, number_texts[_i].at);
}
END_TEST

/* A key repeated in any object is refused (bad_envelope), as json-c
 * would keep only the last: compared as json-c reads them, escapes
 * decoded.  The detail names both places. */
static const struct {
    const char *payload;
    qg_reason reason;
    const char *says;
} key_cases[] = {
    {"{\"data\":{\"id\":7001,\"id\":7002}}", QG_R_BAD_ENVELOPE,
     "key \"id\" at byte 30 repeats the one at byte 20"},
    {"{\"a\":[{\"b\":{\"c\":1,\"d\":2,\"c\":3}}]}", QG_R_BAD_ENVELOPE,
     "key \"c\" at byte 35 repeats the one at byte 23"},
    {"{\"\\u0069d\":1,\"id\":2}", QG_R_BAD_ENVELOPE, "repeats"},
    {"{\"\\/\":1,\"/\":2}", QG_R_BAD_ENVELOPE, "repeats"},
    {"{\"\\u00e9\":1,\"\xC3\xA9\":2}", QG_R_BAD_ENVELOPE, "repeats"},
    {"{\"\\ud83d\\ude00\":1,\"\xF0\x9F\x98\x80\":2}", QG_R_BAD_ENVELOPE,
     "repeats"},
    {"{\"x\":1,\"y\":2,\"z\":3,\"w\":4,\"y\":5}", QG_R_BAD_ENVELOPE,
     "key \"y\" at byte 36 repeats the one at byte 18"},
    {"{\"id\":1,\"id\\u0000x\":2}", QG_R_BAD_ENVELOPE, "\\u0000"},
    {"{\"\\u0000\":1}", QG_R_BAD_ENVELOPE, "\\u0000"},
    /* not repeats */
    {"{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}", QG_R_NONE, NULL},
    {"{\"id\":1,\"Id\":2,\"id \":3,\"i\":4,\"\\u0069e\":5}", QG_R_NONE, NULL},
    {"{\"a\":\"a\",\"b\":\"a\",\"c\":[\"c\",\"c\"]}", QG_R_NONE, NULL},
    {"{}", QG_R_NONE, NULL},
};

START_TEST(test_chup_repeated_keys_table)
{
    char body[256], detail[256] = "";
    qg__envelope env;
    qg_reason r;
    int n =
        snprintf(body, sizeof(body), "{\"payload\":%s}", key_cases[_i].payload);

    r = qg__envelope_parse(body, (size_t)n, &env, detail, sizeof(detail));
    qg__envelope_free(&env);
    ck_assert_msg(r == key_cases[_i].reason, "%s: %s (%s)",
                  key_cases[_i].payload, qg_reason_name(r), detail);
    if (key_cases[_i].says)
        ck_assert_msg(strstr(detail, key_cases[_i].says) != NULL, "%s: \"%s\"",
                      key_cases[_i].payload, detail);
}
END_TEST

/* Bodies with no key at all, or objects with none, go through the key
 * check too.  fuzz_decode found it doing arithmetic on its still empty
 * (NULL) key list for "{}", which clang's UBSan refuses. */
START_TEST(test_chup_strict_keyless_bodies)
{
    static const char *const bodies[] = {
        "{}", " {}\n", "[]", "[{}]", "{\"payload\":{}}", "[[],[{}]]"};
    static const qg_reason want[] = {QG_R_MISSING_FIELD, QG_R_MISSING_FIELD,
                                     QG_R_BAD_ENVELOPE,  QG_R_BAD_ENVELOPE,
                                     QG_R_NONE,          QG_R_BAD_ENVELOPE};
    char detail[256];
    qg__envelope env;
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
        qg_reason r = qg__envelope_parse(bodies[i], strlen(bodies[i]), &env,
                                         detail, sizeof(detail));

        qg__envelope_free(&env);
        ck_assert_msg(r == want[i], "%s: %s (%s)", bodies[i], qg_reason_name(r),
                      detail);
    }
}
END_TEST

/* Ids are positive integers below 2^63.  json-c gives INT64_MAX for any
 * larger integer through json_object_get_int64(), so the two must be told
 * apart by the value's own type. */
static const struct {
    const char *id;
    qg_reason reason;
} ids[] = {
    {"1", QG_R_NONE},
    {"9223372036854775807", QG_R_NONE},
    {"9223372036854775808", QG_R_BAD_VALUE},
    {"18446744073709551615", QG_R_BAD_VALUE},
    {"18446744073709551616", QG_R_BAD_VALUE},
    {"99999999999999999999999", QG_R_BAD_VALUE},
    {"0", QG_R_BAD_VALUE},
    {"-1", QG_R_BAD_VALUE},
    {"-9223372036854775808", QG_R_BAD_VALUE},
    {"-99999999999999999999999", QG_R_BAD_VALUE},
    {"7001.0", QG_R_BAD_VALUE},
    {"7e3", QG_R_BAD_VALUE},
    {"\"7001\"", QG_R_WRONG_TYPE},
};

START_TEST(test_chup_id_range_table)
{
    char body[512];
    qg_result res;
    qg_ticket t;
    int n;

    /* as data.id, then as data.appointment_id */
    n = snprintf(body, sizeof(body),
                 "{\"payload\":{\"event\":\"live_queue_created\","
                 "\"timestamp\":\"2024-03-05T10:00:00+08:00\",\"data\":{"
                 "\"id\":%s,\"state\":1}}}",
                 ids[_i].id);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, (size_t)n, 0, &res), 0);
    ck_assert_msg(res.reason == ids[_i].reason, "id %s: %s (%s)", ids[_i].id,
                  qg_reason_name(res.reason), res.detail);
    if (res.reason == QG_R_NONE) {
        ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE,
                                         strtoll(ids[_i].id, NULL, 10), &t),
                         0);
        ck_assert_uint_eq(t.id, res.ticket);
    } else {
        ck_assert_ptr_nonnull(strstr(res.detail, "payload.data.id is"));
    }
    n = snprintf(body, sizeof(body),
                 "{\"payload\":{\"event\":\"live_queue_created\","
                 "\"timestamp\":\"2024-03-05T10:00:00+08:00\",\"data\":{"
                 "\"id\":60001,\"appointment_id\":%s,\"state\":1}}}",
                 ids[_i].id);
    ck_assert_int_eq(
        qg_engine_apply(eng, st, body, (size_t)n, QG_DRY_RUN, &res), 0);
    ck_assert_msg(res.reason == ids[_i].reason, "appointment_id %s: %s (%s)",
                  ids[_i].id, qg_reason_name(res.reason), res.detail);
}
END_TEST

/* The strings the gate reads must hold no NUL: json-c keeps the text
 * after "\u0000", but every C reader of it stops there, so
 * "2024-03-05T10:00:00+08:00\u0000junk" would pass as a time stamp.  A
 * NUL in a string the gate does not read is the HIS's business. */
static const struct {
    const char *event, *timestamp, *fields;
    qg_reason reason;
    const char *says;
} nuls[] = {
    {"live_queue_created\\u0000x", "2024-03-05T10:00:00+08:00", "\"state\":1",
     QG_R_BAD_VALUE, "payload.event"},
    {"live_queue_created", "2024-03-05T10:00:00+08:00\\u0000junk",
     "\"state\":1", QG_R_BAD_VALUE, "payload.timestamp"},
    {"live_queue_created", "2024-03-05T10:00:00+08:00",
     "\"state_name\":\"In Queue\\u0000\"", QG_R_BAD_VALUE,
     "payload.data.state_name"},
    {"live_queue_created", "2024-03-05T10:00:00+08:00",
     "\"state\":{\"name\":\"IN_QUEUE\\u0000\",\"value\":1}", QG_R_BAD_VALUE,
     "payload.data.state.name"},
    {"appointment_created", "2024-03-05T10:00:00+08:00",
     "\"state\":2,\"appointment_date\":\"2024-03-06\\u0000\"", QG_R_BAD_VALUE,
     "payload.data.appointment_date"},
    {"live_queue_created", "2024-03-05T10:00:00+08:00",
     "\"state\":1,\"client_name\":\"A\\u0000B\"", QG_R_NONE, NULL},
};

START_TEST(test_chup_nul_in_read_strings_table)
{
    char body[512];
    qg_result res;
    int n = snprintf(body, sizeof(body),
                     "{\"payload\":{\"event\":\"%s\",\"timestamp\":\"%s\","
                     "\"data\":{\"id\":60001,%s}}}",
                     nuls[_i].event, nuls[_i].timestamp, nuls[_i].fields);

    ck_assert_int_eq(
        qg_engine_apply(eng, st, body, (size_t)n, QG_DRY_RUN, &res), 0);
    ck_assert_msg(res.reason == nuls[_i].reason, "case %d: %s (%s)", _i,
                  qg_reason_name(res.reason), res.detail);
    if (nuls[_i].says)
        ck_assert_msg(strstr(res.detail, nuls[_i].says) &&
                          strstr(res.detail, "NUL"),
                      "case %d: \"%s\"", _i, res.detail);
}
END_TEST

/* A delivery json-c gave up on in the middle of a surrogate pair must not
 * change how the next one on the same thread decodes.  json-c 0.16 keeps
 * the pending high surrogate through json_tokener_reset(), so a reused
 * tokener read the next "\u0065" as U+FFFD "e", and the next delivery's
 * "event" went missing. */
static const char *const broken_pairs[] = {
    "{\"payload\":{\"data\":{\"client_name\":\"\\uD83D",
    "{\"payload\":{\"data\":{\"client_name\":\"\\uD83D\\u",
    "{\"payload\":{\"data\":{\"client_name\":\"\\uD83D\\uZZZZ\"}}}",
    "{\"payload\":{\"data\":{\"client_name\":\"\\uD83D\\x\"}}}",
};

START_TEST(test_chup_broken_pair_leaves_nothing_behind_table)
{
    const char *next = "{\"payload\":{\"\\u0065vent\":\"live_queue_created\","
                       "\"timestamp\":\"2024-03-05T10:00:00+08:00\","
                       "\"data\":{\"id\":60001,\"state\":1,"
                       "\"client_name\":\"Jos\\u00e9\"}}}";
    qg_result res;

    ck_assert_int_eq(qg_engine_apply(eng, st, broken_pairs[_i],
                                     strlen(broken_pairs[_i]), QG_DRY_RUN,
                                     &res),
                     0);
    ck_assert_msg(res.verdict == QG_MALFORMED, "case %d: %s (%s)", _i,
                  qg_reason_name(res.reason), res.detail);
    ck_assert_int_eq(
        qg_engine_apply(eng, st, next, strlen(next), QG_DRY_RUN, &res), 0);
    ck_assert_msg(res.reason == QG_R_NONE, "after case %d: %s (%s)", _i,
                  qg_reason_name(res.reason), res.detail);
}
END_TEST

static Suite *
chup_suite(void)
{
    Suite *s = suite_create("chup");
    TCase *core = tcase_create("Core"), *errors = tcase_create("Errors");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(core, test_chup_payload_span_is_exact_bytes);
    tcase_add_test(core, test_chup_signature_whitespace_matters);
    tcase_add_loop_test(core, test_chup_time_table, 0,
                        sizeof(times) / sizeof(*times));
    tcase_add_loop_test(core, test_chup_state_table, 0,
                        sizeof(states) / sizeof(*states));
    tcase_add_test(core, test_chup_mapping_override);
    tcase_add_test(errors, test_chup_signature_format);
    tcase_add_test(errors, test_chup_mapping_missing_file);
    tcase_add_loop_test(errors, test_chup_mapping_errors_table, 0,
                        sizeof(bad_configs) / sizeof(*bad_configs));
    tcase_add_loop_test(errors, test_chup_strict_text_table, 0,
                        sizeof(strict_texts) / sizeof(*strict_texts));
    tcase_add_loop_test(errors, test_chup_strict_number_table, 0,
                        sizeof(number_texts) / sizeof(*number_texts));
    tcase_add_loop_test(errors, test_chup_repeated_keys_table, 0,
                        sizeof(key_cases) / sizeof(*key_cases));
    tcase_add_test(errors, test_chup_strict_keyless_bodies);
    tcase_add_loop_test(errors, test_chup_two_ways_agree_table, 0,
                        sizeof(two_ways) / sizeof(two_ways[0]));
    tcase_add_test(core, test_chup_examples_are_scanned);
    tcase_add_loop_test(errors, test_chup_id_range_table, 0,
                        sizeof(ids) / sizeof(*ids));
    tcase_add_loop_test(errors,
                        test_chup_broken_pair_leaves_nothing_behind_table, 0,
                        sizeof(broken_pairs) / sizeof(broken_pairs[0]));
    tcase_add_loop_test(errors, test_chup_nul_in_read_strings_table, 0,
                        sizeof(nuls) / sizeof(*nuls));
    suite_add_tcase(s, core);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(chup_suite());
}
