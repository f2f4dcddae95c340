/*
 * chup.c - decoding Chup Online webhook deliveries.
 *
 * A delivery is {"payload": {...}, "signature": "<hex>"}.  The signature is
 * over the exact bytes of the payload value, so besides reading the body
 * this file finds where that value starts and ends in it.
 *
 * Two ways, one answer.  A plain body, one whose every field the engine
 * reads is there and well typed, is read in one pass with no tree:
 * qg__json_scan() checks the grammar and the strict rules and notes the
 * values of the paths below.  Any other body, and any body whose
 * reader needs the rest of payload.data (qg__envelope_parse_tree()), is
 * parsed by json-c, and then walked by qg__json_strict(), which checks
 * what json-c lets through and notes the payload's span (qg__top).  The
 * scan decides nothing itself: where it would refuse, or could differ
 * from json-c, it hands the body to json-c, so every refusal and its text
 * come from one place.  tests/fuzz/fuzz_decode.c holds the two ways to
 * the same results.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"

static const char *
type_name(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
        return "a fraction";
    case json_type_int:
        return "an integer";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "unknown";
}

/* ----- the envelope -------------------------------------------------- */

static size_t
skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len &&
           (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/*
 * One tokener per thread, made on the thread's first delivery and reset
 * for each next one: json_tokener_new_ex() allocates the tokener, its
 * stack of QG__JSON_DEPTH levels and a string buffer, and the buffer
 * grows again on every delivery.  A thread-specific key rather than a
 * _Thread_local pointer, because the key's destructor frees the tokener
 * when its thread exits (libmicrohttpd's pool, a test's threads).  The
 * main thread runs no destructor at exit: its tokener stays reachable
 * through the key until the process ends, one per process.  The buffer
 * keeps the size of the longest string seen on that thread, at most the
 * largest body the gate accepts.  A tokener whose last parse failed is
 * replaced rather than reset (see qg__json_tokener()).
 */
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static pthread_key_t tokener_key;
static int tokener_keyed;

static void
tokener_free(void *tok)
{
    json_tokener_free(tok);
}

static void
tokener_key_make(void)
{
    tokener_keyed = pthread_key_create(&tokener_key, tokener_free) == 0;
}

struct json_tokener *
qg__json_tokener(void)
{
    struct json_tokener *tok;

    if (pthread_once(&tokener_once, tokener_key_make) != 0 || !tokener_keyed)
        return NULL;
    if ((tok = pthread_getspecific(tokener_key)) != NULL) {
        if (json_tokener_get_error(tok) == json_tokener_success) {
            json_tokener_reset(tok);
            return tok;
        }
        /* The last parse stopped early.  json_tokener_reset() (json-c
         * 0.16) leaves a pending high surrogate behind, which would turn
         * the next body's first \u escape into U+FFFD and that character:
         * start again from a new tokener. */
        if (pthread_setspecific(tokener_key, NULL) != 0)
            return NULL;
        json_tokener_free(tok);
    }
    if ((tok = json_tokener_new_ex(QG__JSON_DEPTH)) == NULL)
        return NULL;
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    if (pthread_setspecific(tokener_key, tok) != 0) {
        json_tokener_free(tok);
        return NULL;
    }
    return tok;
}

/* This thread's tokener, or, when none can be kept, one of the caller's
 * own (*own set: json_tokener_free() it).  NULL: out of memory. */
static struct json_tokener *
tokener_get(int *own)
{
    struct json_tokener *tok;

    *own = 0;
    if ((tok = qg__json_tokener()) != NULL)
        return tok;
    if ((tok = json_tokener_new_ex(QG__JSON_DEPTH)) == NULL)
        return NULL;
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    *own = 1;
    return tok;
}

/* Whether p[0..len) is one whole JSON document.  Strict json-c reports
 * a second document as an error at its first byte; this tells that case
 * from a broken first one.  Only runs on the error path. */
static int
is_document(const char *p, size_t len)
{
    struct json_tokener *tok;
    json_object *o;
    int whole, own;

    if (len == 0 || (tok = tokener_get(&own)) == NULL)
        return 0;
    o = json_tokener_parse_ex(tok, p, (int)len);
    whole = json_tokener_get_error(tok) == json_tokener_success &&
            skip_ws(p, json_tokener_get_parse_end(tok), len) == len;
    if (own)
        json_tokener_free(tok);
    json_object_put(o);
    return whole;
}

/* ----- one pass, for a plain body ----------------------------------- */

enum {
    P_PAYLOAD,
    P_SIGNATURE,
    P_EVENT,
    P_TIMESTAMP,
    P_DATA,
    P_ID,
    P_APPOINTMENT_ID,
    P_SERVICE_ID,
    P_STAFF_ID,
    P_APPOINTMENT_DATE,
    P_APPOINTMENT_TIME,
    P_STATE_NAME,
    P_STATE,
    P_STATE_LABEL,
    P_STATE_VALUE,
    P_COUNT
};

/* Every field qg__payload_head() and qg__payload_fields() read. */
static const qg__jpath paths[P_COUNT] = {
    [P_PAYLOAD] = {-1, "payload"},
    [P_SIGNATURE] = {-1, "signature"},
    [P_EVENT] = {P_PAYLOAD, "event"},
    [P_TIMESTAMP] = {P_PAYLOAD, "timestamp"},
    [P_DATA] = {P_PAYLOAD, "data"},
    [P_ID] = {P_DATA, "id"},
    [P_APPOINTMENT_ID] = {P_DATA, "appointment_id"},
    [P_SERVICE_ID] = {P_DATA, "service_id"},
    [P_STAFF_ID] = {P_DATA, "staff_id"},
    [P_APPOINTMENT_DATE] = {P_DATA, "appointment_date"},
    [P_APPOINTMENT_TIME] = {P_DATA, "appointment_time"},
    [P_STATE_NAME] = {P_DATA, "state_name"},
    [P_STATE] = {P_DATA, "state"},
    [P_STATE_LABEL] = {P_STATE, "name"},
    [P_STATE_VALUE] = {P_STATE, "value"},
};

static int
absent(const qg__jvalue *v)
{
    return v->kind == QG__J_ABSENT || v->kind == QG__J_NULL;
}

/* A string with no escape, copied into env->text: NULL when absent or
 * null.  -1 where get_string() would refuse it, or it needs decoding. */
static int
scan_text(qg__envelope *env, size_t *used, const qg__jvalue *v,
          const char **out)
{
    *out = NULL;
    if (absent(v))
        return 0;
    if (v->kind != QG__J_STRING || v->text.len >= sizeof(env->text) - *used)
        return -1;
    memcpy(env->text + *used, v->text.p, v->text.len);
    env->text[*used + v->text.len] = '\0';
    *out = env->text + *used;
    *used += v->text.len + 1;
    return 0;
}

/* An id as get_id() reads it: 0 when absent or null.  -1 where it would
 * refuse it. */
static int
scan_id(const qg__jvalue *v, int64_t *out)
{
    *out = 0;
    if (absent(v))
        return 0;
    if (v->kind != QG__J_INT || v->i <= 0)
        return -1;
    *out = v->i;
    return 0;
}

/* data.state as get_state() reads it; -1 where it would refuse it. */
static int
scan_state(qg__envelope *env, size_t *used, const qg__jvalue *v)
{
    qg__delivery *d = &env->d;
    const qg__jvalue *value = &v[P_STATE_VALUE];

    if (absent(&v[P_STATE]))
        return 0;
    if (v[P_STATE].kind == QG__J_INT) {
        d->state_value = v[P_STATE].i;
        d->has_state_value = 1;
        return 0;
    }
    if (v[P_STATE].kind != QG__J_OBJECT ||
        scan_text(env, used, &v[P_STATE_LABEL], &d->state_label))
        return -1;
    if (absent(value))
        return 0;
    if (value->kind != QG__J_INT)
        return -1;
    d->state_value = value->i;
    d->has_state_value = 1;
    return 0;
}

/* The envelope, and into env->d every field, in one pass; -1 when the
 * body is not plain or a field would be refused: json-c then decides. */
static int
envelope_scan(const char *body, size_t len, qg__envelope *env)
{
    qg__jvalue v[P_COUNT];
    qg__delivery *d = &env->d;
    const char *ts;
    size_t used = 0;

    if (qg__json_scan(body, len, paths, P_COUNT, v) ||
        v[P_PAYLOAD].kind != QG__J_OBJECT || v[P_DATA].kind != QG__J_OBJECT ||
        absent(&v[P_EVENT]) || absent(&v[P_TIMESTAMP]) || absent(&v[P_ID]) ||
        scan_text(env, &used, &v[P_EVENT], &d->event_name) ||
        scan_text(env, &used, &v[P_TIMESTAMP], &ts) ||
        qg_time_parse(ts, &d->event_ms, &d->utc_offset_s) < 0 ||
        scan_id(&v[P_ID], &d->id) ||
        scan_id(&v[P_APPOINTMENT_ID], &d->appointment_id) ||
        scan_id(&v[P_SERVICE_ID], &d->service_id) ||
        scan_id(&v[P_STAFF_ID], &d->staff_id) ||
        scan_text(env, &used, &v[P_APPOINTMENT_DATE], &d->appointment_date) ||
        scan_text(env, &used, &v[P_APPOINTMENT_TIME], &d->appointment_time) ||
        scan_text(env, &used, &v[P_STATE_NAME], &d->state_name) ||
        scan_state(env, &used, v))
        return -1;
    env->payload_text = v[P_PAYLOAD].text;
    /* As the tree's way: a signature that is not a string is none. */
    if (v[P_SIGNATURE].kind == QG__J_STRING ||
        v[P_SIGNATURE].kind == QG__J_ESCAPED)
        env->signature = v[P_SIGNATURE].text;
    env->scanned = d->scanned = 1;
    return 0;
}

qg_reason
qg__envelope_parse(const char *body, size_t len, qg__envelope *env,
                   char *detail, size_t dlen)
{
    memset(env, 0, sizeof(*env));
    if (envelope_scan(body, len, env) == 0)
        return QG_R_NONE;
    return qg__envelope_parse_tree(body, len, env, detail, dlen);
}

/* ----- json-c's way ----------------------------------------------------- */

qg_reason
qg__envelope_parse_tree(const char *body, size_t len, qg__envelope *env,
                        char *detail, size_t dlen)
{
    struct json_tokener *tok;
    enum json_tokener_error jerr;
    json_object *root, *sig;
    qg__top top;
    size_t end;
    qg_reason r;
    int own;

    memset(env, 0, sizeof(*env));
    if (len == 0 || skip_ws(body, 0, len) == len) {
        snprintf(detail, dlen, "the body is %s",
                 len ? "only white space" : "empty");
        return QG_R_BAD_JSON;
    }
    if ((tok = tokener_get(&own)) == NULL) {
        snprintf(detail, dlen, "out of memory parsing the body");
        return QG_R_BAD_JSON;
    }
    root = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    if (own)
        json_tokener_free(tok);

    if (jerr == json_tokener_continue) {
        snprintf(detail, dlen, "the body ends at byte %zu inside a value", len);
        return QG_R_BAD_JSON;
    }
    if (jerr != json_tokener_success && is_document(body, end)) {
        snprintf(detail, dlen,
                 "a second JSON value starts at byte %zu; expected one",
                 skip_ws(body, end, len));
        return QG_R_TRAILING_DATA;
    }
    if (jerr != json_tokener_success) {
        snprintf(detail, dlen, "invalid JSON at byte %zu: %s",
                 end > 0 ? end - 1 : 0, json_tokener_error_desc(jerr));
        return QG_R_BAD_JSON;
    }
    if (skip_ws(body, end, len) < len) {
        json_object_put(root);
        snprintf(detail, dlen,
                 "a second JSON value starts at byte %zu; expected one",
                 skip_ws(body, end, len));
        return QG_R_TRAILING_DATA;
    }
    if ((r = qg__json_strict(body, len, &top, detail, dlen))) {
        json_object_put(root);
        return r;
    }
    env->root = root;
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(detail, dlen, "the body is %s; expected an object",
                 type_name(root));
        return QG_R_BAD_ENVELOPE;
    }
    if (!json_object_object_get_ex(root, "payload", &env->payload)) {
        snprintf(detail, dlen, "payload is missing");
        return QG_R_MISSING_FIELD;
    }
    if (!json_object_is_type(env->payload, json_type_object)) {
        snprintf(detail, dlen, "payload is %s; expected an object",
                 type_name(env->payload));
        return QG_R_BAD_ENVELOPE;
    }
    /* A top-level key with an escape could name "payload" for json-c
     * and not for the spans, which match keys as written: refused.  A
     * repeated key, where json-c would keep the last, was refused by
     * qg__json_strict(), so each span is that of the one such key. */
    if (top.escaped_key != SIZE_MAX) {
        snprintf(detail, dlen,
                 "top-level key at byte %zu is written with an escape",
                 top.escaped_key);
        return QG_R_BAD_ENVELOPE;
    }
    env->payload_text = top.payload;
    env->signature = top.signature;
    if (json_object_object_get_ex(root, "signature", &sig) && sig &&
        !json_object_is_type(sig, json_type_string)) {
        env->signature.p = NULL;
        env->signature.len = 0;
    }
    return QG_R_NONE;
}

void
qg__envelope_free(qg__envelope *env)
{
    if (env == NULL)
        return;
    json_object_put(env->root);
    env->root = NULL;
    env->payload = NULL;
}

/* ----- payload fields ------------------------------------------------- */

typedef enum need { OPTIONAL, REQUIRED } need;

/*
 * Reads a positive integer id, below 2^63.  Absent or null gives 0 when
 * optional.  json_object_get_int64() clamps every larger integer to
 * INT64_MAX, so that value alone cannot tell 2^63 - 1 (an id) from 2^63
 * or 10^30 (not one): json-c 0.14 and later keep integers from 2^63 to
 * 2^64 - 1 unsigned, and clamp larger ones to 2^64 - 1, so the unsigned
 * reading tells them apart.
 */
static qg_reason
get_id(json_object *obj, const char *key, need n, int64_t *out, char *detail,
       size_t dlen)
{
    json_object *v;
    int64_t id;

    *out = 0;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL) {
        if (n == OPTIONAL)
            return QG_R_NONE;
        snprintf(detail, dlen, "payload.data.%s is missing", key);
        return QG_R_MISSING_FIELD;
    }
    if (json_object_is_type(v, json_type_double)) {
        snprintf(detail, dlen,
                 "payload.data.%s is %.17g; expected a positive integer "
                 "below 2^63",
                 key, json_object_get_double(v));
        return QG_R_BAD_VALUE;
    }
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(detail, dlen,
                 "payload.data.%s is %s; expected a positive integer", key,
                 type_name(v));
        return QG_R_WRONG_TYPE;
    }
    id = json_object_get_int64(v);
    if (id <= 0 || json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
        snprintf(detail, dlen,
                 "payload.data.%s is %s; expected a positive integer below "
                 "2^63",
                 key, json_object_to_json_string(v));
        return QG_R_BAD_VALUE;
    }
    *out = id;
    return QG_R_NONE;
}

/*
 * Reads a string that may be absent or null (then NULL).  The gate reads
 * these as C strings, so one holding a NUL is refused: json-c keeps the
 * text after "\u0000", every reader of the C string stops there, and
 * "2024-03-05T10:00:00+08:00\u0000junk" would pass as a time stamp.
 */
static qg_reason
get_string(json_object *obj, const char *where, const char *key,
           const char **out, char *detail, size_t dlen)
{
    json_object *v;
    size_t n;

    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return QG_R_NONE;
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(detail, dlen, "%s.%s is %s; expected a string", where, key,
                 type_name(v));
        return QG_R_WRONG_TYPE;
    }
    *out = json_object_get_string(v);
    if ((n = strlen(*out)) != (size_t)json_object_get_string_len(v)) {
        snprintf(detail, dlen,
                 "%s.%s holds a NUL (\\u0000) after \"%.48s\"; the gate "
                 "cannot read it",
                 where, key, *out);
        *out = NULL;
        return QG_R_BAD_VALUE;
    }
    return QG_R_NONE;
}

qg_reason
qg__payload_head(const qg__envelope *env, qg__delivery *d, char *detail,
                 size_t dlen)
{
    const char *ts;
    qg_reason r;

    if (env->scanned) {
        *d = env->d;
        return QG_R_NONE;
    }
    memset(d, 0, sizeof(*d));
    if ((r = get_string(env->payload, "payload", "event", &d->event_name,
                        detail, dlen)))
        return r;
    if (d->event_name == NULL) {
        snprintf(detail, dlen, "payload.event is missing");
        return QG_R_MISSING_FIELD;
    }
    if ((r = get_string(env->payload, "payload", "timestamp", &ts, detail,
                        dlen)))
        return r;
    if (ts == NULL) {
        snprintf(detail, dlen, "payload.timestamp is missing");
        return QG_R_MISSING_FIELD;
    }
    if (qg_time_parse(ts, &d->event_ms, &d->utc_offset_s) < 0) {
        snprintf(detail, dlen,
                 "payload.timestamp \"%.64s\" is not ISO 8601 with an "
                 "offset",
                 ts);
        return QG_R_BAD_VALUE;
    }
    if (!json_object_object_get_ex(env->payload, "data", &d->data) ||
        d->data == NULL) {
        snprintf(detail, dlen, "payload.data is missing");
        return QG_R_MISSING_FIELD;
    }
    if (!json_object_is_type(d->data, json_type_object)) {
        snprintf(detail, dlen, "payload.data is %s; expected an object",
                 type_name(d->data));
        return QG_R_WRONG_TYPE;
    }
    return QG_R_NONE;
}

/* data.state is an integer (1) or an object {"name": "ARRIVED", "value":
 * 3}; both are published. */
static qg_reason
get_state(qg__delivery *d, char *detail, size_t dlen)
{
    json_object *st, *v;
    qg_reason r;

    if ((r = get_string(d->data, "payload.data", "state_name", &d->state_name,
                        detail, dlen)))
        return r;
    if (!json_object_object_get_ex(d->data, "state", &st) || st == NULL)
        return QG_R_NONE;
    if (json_object_is_type(st, json_type_int)) {
        d->state_value = json_object_get_int64(st);
        d->has_state_value = 1;
        return QG_R_NONE;
    }
    if (!json_object_is_type(st, json_type_object)) {
        snprintf(detail, dlen,
                 "payload.data.state is %s; expected an integer or "
                 "{\"name\", \"value\"}",
                 type_name(st));
        return QG_R_WRONG_TYPE;
    }
    if ((r = get_string(st, "payload.data.state", "name", &d->state_label,
                        detail, dlen)))
        return r;
    if (json_object_object_get_ex(st, "value", &v) && v != NULL) {
        if (!json_object_is_type(v, json_type_int)) {
            snprintf(detail, dlen,
                     "payload.data.state.value is %s; expected an integer",
                     type_name(v));
            return QG_R_WRONG_TYPE;
        }
        d->state_value = json_object_get_int64(v);
        d->has_state_value = 1;
    }
    return QG_R_NONE;
}

qg_reason
qg__payload_fields(qg__delivery *d, int need_state, char *detail, size_t dlen)
{
    qg_reason r;

    /* A scanned delivery's fields were read with its envelope. */
    if (!d->scanned &&
        ((r = get_id(d->data, "id", REQUIRED, &d->id, detail, dlen)) ||
         (r = get_id(d->data, "appointment_id", OPTIONAL, &d->appointment_id,
                     detail, dlen)) ||
         (r = get_id(d->data, "service_id", OPTIONAL, &d->service_id, detail,
                     dlen)) ||
         (r = get_id(d->data, "staff_id", OPTIONAL, &d->staff_id, detail,
                     dlen)) ||
         (r = get_string(d->data, "payload.data", "appointment_date",
                         &d->appointment_date, detail, dlen)) ||
         (r = get_string(d->data, "payload.data", "appointment_time",
                         &d->appointment_time, detail, dlen)) ||
         (r = get_state(d, detail, dlen))))
        return r;
    if (need_state && d->state_name == NULL && d->state_label == NULL &&
        !d->has_state_value) {
        snprintf(detail, dlen,
                 "payload.data.state and payload.data.state_name are "
                 "missing");
        return QG_R_MISSING_FIELD;
    }
    return QG_R_NONE;
}

qg_reason
qg__payload_skew(const qg__delivery *d, int64_t now_ms, int64_t max_skew_ms,
                 char *detail, size_t dlen)
{
    char when[40], now[40];

    if (max_skew_ms <= 0 || d->event_ms - now_ms <= max_skew_ms)
        return QG_R_NONE;
    snprintf(detail, dlen,
             "payload.timestamp %s is %" PRId64 " s ahead of the gate's "
             "clock (%s); at most %" PRId64 " s of clock skew is allowed",
             qg_time_format(d->event_ms, d->utc_offset_s, when, sizeof(when)),
             (d->event_ms - now_ms) / 1000,
             qg_time_format(now_ms, d->utc_offset_s, now, sizeof(now)),
             max_skew_ms / 1000);
    return QG_R_BAD_VALUE;
}
