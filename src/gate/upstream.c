/*
 * upstream.c - what the HIS gets for one step: the body, the headers, the
 * signature.  docs/gate.md ("Forwarding to the HIS") is the contract.
 *
 * Every step has a delivery id, "<store id>-<ticket>-<seq>": the store's
 * random id (qg_store_id()) makes it unique across stores, ticket and seq
 * name the step in its history, which never renumbers.  So it is the same
 * on every attempt, after a restart, on a resend and from a backup
 * restored in the store's place, and the HIS can use it to drop what it
 * has already taken.  It is also the Standard Webhooks webhook-id, signed
 * with webhook-timestamp (the attempt's time) and the body.
 *
 * The qgate format is built from the history record's facts, with Chup's
 * delivery inserted under "chup" as the bytes received: they were checked
 * to be strict JSON when accepted, and re-serialising them would change
 * what the HIS can compare with Chup's own logs.  A step whose raw body
 * was purged still has its facts: it is sent with "chup": null.  The chup
 * format is those bytes alone, so such a step cannot be sent in it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/crypto.h>

#include "stdwebhooks.h"
#include "upstream.h"

struct upstream_builder {
    qg_store *st;
    upstream_format fmt;
    char store_id[QG_STORE_ID_LEN + 1];
    char *secret_file;       /* NULL: nothing is signed */
    const char *fhir_system; /* the fhir format's identifiers; NULL: default */
    pthread_mutex_t lock;
    swh_keys keys; /* guarded by lock; reloaded on SIGHUP */
};

static void
delivery_id(const char *store_id, uint64_t ticket, uint32_t seq, char *out,
            size_t len)
{
    snprintf(out, len, "%s-%" PRIu64 "-%" PRIu32, store_id, ticket, seq);
}

void
upstream_delivery_id(const qg_store *st, uint64_t ticket, uint32_t seq,
                     char out[UPSTREAM_ID_SIZE])
{
    char sid[QG_STORE_ID_LEN + 1];

    if (qg_store_id(st, sid) != 0)
        sid[0] = '\0';
    delivery_id(sid, ticket, seq, out, UPSTREAM_ID_SIZE);
}

int
upstream_new(qg_store *st, upstream_format fmt, const char *secret_file,
             upstream_builder **out, char *err, size_t errlen)
{
    upstream_builder *u;
    int rc;

    if ((u = calloc(1, sizeof(*u))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    u->st = st;
    u->fmt = fmt;
    pthread_mutex_init(&u->lock, NULL);
    /* The gate opens its store for writing, which gives it an id. */
    if ((rc = qg_store_id(st, u->store_id))) {
        snprintf(err, errlen, "the store has no id: %s", qg_strerror(rc));
        goto fail;
    }
    if (secret_file) {
        if ((u->secret_file = strdup(secret_file)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (swh_keys_load(secret_file, &u->keys, err, errlen))
            goto fail;
    }
    *out = u;
    return 0;
fail:
    upstream_free(u);
    return -1;
}

void
upstream_set_fhir_system(upstream_builder *u, const char *system)
{
    u->fhir_system = system;
}

int
upstream_reload(upstream_builder *u, char *err, size_t errlen)
{
    swh_keys fresh;

    if (u == NULL || u->secret_file == NULL)
        return 0;
    memset(&fresh, 0, sizeof(fresh));
    if (swh_keys_load(u->secret_file, &fresh, err, errlen))
        return -1;
    pthread_mutex_lock(&u->lock);
    OPENSSL_cleanse(&u->keys, sizeof(u->keys));
    u->keys = fresh;
    pthread_mutex_unlock(&u->lock);
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return 0;
}

const char *
upstream_secret_file(const upstream_builder *u)
{
    return u ? u->secret_file : NULL;
}

void
upstream_free(upstream_builder *u)
{
    if (u == NULL)
        return;
    OPENSSL_cleanse(&u->keys, sizeof(u->keys));
    pthread_mutex_destroy(&u->lock);
    free(u->secret_file);
    free(u);
}

void
upstream_request_free(upstream_request *r)
{
    if (r == NULL)
        return;
    free(r->body);
    curl_slist_free_all(r->headers);
    r->body = NULL;
    r->headers = NULL;
}

/* ----- the step ---------------------------------------------------------- */

/* Reads the step's record, with a copy of its raw body (NULL when it was
 * purged), and its ticket.  Returns 0 or a QG_E* code. */
static int
load(qg_store *st, const qg_outbox_entry *e, qg_record *rec, char **raw,
     qg_ticket *t)
{
    qg_history *h = NULL;
    int rc;

    *raw = NULL;
    if ((rc = qg_store_ticket(st, QG_ID_TICKET, (int64_t)e->ticket, t)) ||
        (rc = qg_history_open(st, e->ticket, &h)) ||
        (rc = qg_history_seek(h, e->seq)) || (rc = qg_history_next(h, rec)))
        goto done;
    if (rec->seq != e->seq) {
        rc = QG_NOTFOUND;
        goto done;
    }
    if (rec->body_len > 0) {
        if ((*raw = malloc(rec->body_len)) == NULL) {
            rc = QG_ENOMEM;
            goto done;
        }
        memcpy(*raw, rec->body, rec->body_len);
    }
done:
    rec->body = NULL; /* it pointed into the closed cursor's map */
    qg_history_close(h);
    return rc;
}

/* "2024-03-05T09:00:00.000+08:00", or with offset 0 "...Z". */
static char *
iso_time(int64_t ms, int32_t offset_s, char *dst, size_t len)
{
    int64_t local = ms + (int64_t)offset_s * 1000;
    time_t secs = (time_t)(local / 1000 - (local % 1000 < 0));
    int millis = (int)(local - (int64_t)secs * 1000);
    int32_t off = offset_s < 0 ? -offset_s : offset_s;
    struct tm tm;
    char zone[16];

    gmtime_r(&secs, &tm);
    if (offset_s == 0)
        snprintf(zone, sizeof(zone), "Z");
    else
        snprintf(zone, sizeof(zone), "%c%02d:%02d", offset_s < 0 ? '-' : '+',
                 (int)(off / 3600), (int)(off / 60 % 60));
    snprintf(dst, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, millis, zone);
    return dst;
}

typedef struct raw_json {
    const char *p;
    size_t len;
} raw_json;

/* json-c serializer of "chup": the bytes as received, not re-encoded. */
static int
write_raw(struct json_object *jso, struct printbuf *pb, int level, int flags)
{
    const raw_json *r = json_object_get_userdata(jso);

    (void)level;
    (void)flags;
    return printbuf_memappend(pb, r->p, (int)r->len) < 0 ? -1 : 0;
}

static json_object *
id_or_null(int64_t id)
{
    return id > 0 ? json_object_new_int64(id) : NULL;
}

static int
add(json_object *o, const char *key, json_object *v)
{
    return json_object_object_add(o, key, v);
}

/* The qgate format (docs/gate.md); *out malloc'd.  Returns 0 or
 * QG_ENOMEM. */
static int
qgate_body(const upstream_builder *u, const char *delivery_id,
           const qg_record *r, const qg_ticket *t, const char *raw,
           size_t rawlen, char **out, size_t *outlen)
{
    json_object *root = json_object_new_object(), *data = NULL, *tk = NULL,
                *chup = NULL;
    raw_json rj = {raw, rawlen};
    char when[96], hex[2 * 32 + 1];
    const char *text;
    size_t i;
    int bad = root == NULL;

    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", r->digest[i]);
    if (!bad && (data = json_object_new_object()) == NULL)
        bad = 1;
    if (!bad && (tk = json_object_new_object()) == NULL)
        bad = 1;
    if (!bad && raw) {
        if ((chup = json_object_new_object()) == NULL)
            bad = 1;
        else
            json_object_set_serializer(chup, write_raw, &rj, NULL);
    }
    if (bad) {
        json_object_put(root);
        json_object_put(data);
        json_object_put(tk);
        return QG_ENOMEM;
    }
    add(tk, "number", json_object_new_uint64(t->id));
    add(tk, "live_queue_id", id_or_null(t->live_queue_id));
    add(tk, "appointment_id", id_or_null(t->appointment_id));
    add(tk, "source", json_object_new_string(t->source));
    add(root, "type", json_object_new_string("ticket.step"));
    add(root, "timestamp",
        json_object_new_string(iso_time(r->event_ms, 0, when, sizeof(when))));
    add(root, "data", data);
    add(data, "delivery_id", json_object_new_string(delivery_id));
    add(data, "store_id", json_object_new_string(u->store_id));
    add(data, "ticket", tk);
    add(data, "seq", json_object_new_int64(r->seq));
    add(data, "event", json_object_new_string(qg_event_name(r->event)));
    add(data, "from", json_object_new_string(qg_state_name(r->from)));
    add(data, "to", json_object_new_string(qg_state_name(r->to)));
    add(data, "event_time",
        json_object_new_string(
            iso_time(r->event_ms, r->utc_offset_s, when, sizeof(when))));
    add(data, "received_at",
        json_object_new_string(
            iso_time(r->received_us / 1000, 0, when, sizeof(when))));
    add(data, "late", json_object_new_boolean(r->late != 0));
    add(data, "position", json_object_new_int64(r->pos));
    add(data, "service_id", id_or_null(r->service_id));
    add(data, "staff_id", id_or_null(r->staff_id));
    add(data, "payload_sha256", json_object_new_string(hex));
    add(data, "chup", chup);
    text = json_object_to_json_string_ext(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL || (*out = strdup(text)) == NULL) {
        json_object_put(root);
        return QG_ENOMEM;
    }
    *outlen = strlen(*out);
    json_object_put(root);
    return 0;
}

static struct curl_slist *append(struct curl_slist *l, int *bad,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct curl_slist *
append(struct curl_slist *l, int *bad, const char *fmt, ...)
{
    struct curl_slist *n;
    char line[SWH_SIG_SIZE + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if ((n = curl_slist_append(l, line)) == NULL) {
        *bad = 1;
        return l;
    }
    return n;
}

int
upstream_build(upstream_builder *u, const qg_outbox_entry *e, int64_t now_us,
               upstream_request *out, char *why, size_t whylen)
{
    struct curl_slist *l = NULL;
    char sig[SWH_SIG_SIZE] = "", *raw = NULL;
    int64_t ts = now_us / 1000000;
    qg_record r;
    qg_ticket t;
    size_t rawlen;
    int rc, bad = 0, signing;

    memset(out, 0, sizeof(*out));
    if ((rc = load(u->st, e, &r, &raw, &t))) {
        snprintf(why, whylen,
                 "cannot read step %" PRIu32 " of ticket %" PRIu64 ": %s",
                 e->seq, e->ticket, qg_strerror(rc));
        return rc;
    }
    rawlen = raw ? r.body_len : 0;
    delivery_id(u->store_id, e->ticket, e->seq, out->delivery_id,
                sizeof(out->delivery_id));
    if (u->fmt == UPSTREAM_CHUP) {
        if (raw == NULL) {
            snprintf(why, whylen,
                     "step %" PRIu32 " of ticket %" PRIu64 ": its raw body "
                     "was purged; --upstream-format chup cannot send it "
                     "(qgate can)",
                     e->seq, e->ticket);
            return QG_NOTFOUND;
        }
        out->body = raw;
        out->len = rawlen;
        raw = NULL;
    } else if (u->fmt == UPSTREAM_FHIR) {
        /* The ticket as of this step: a FHIR server that applies the
         * bundles in order holds, after each, what the export writes for
         * the steps so far. */
        qg_fhir_options o = {u->fhir_system, e->seq};

        free(raw);
        raw = NULL;
        if ((rc = qg_fhir_ticket(u->st, e->ticket, QG_FHIR_TRANSACTION, &o,
                                 &out->body, &out->len))) {
            snprintf(why, whylen,
                     "cannot build the FHIR bundle of step %" PRIu32
                     " of ticket %" PRIu64 ": %s",
                     e->seq, e->ticket, qg_strerror(rc));
            return rc;
        }
    } else if ((rc = qgate_body(u, out->delivery_id, &r, &t, raw, rawlen,
                                &out->body, &out->len))) {
        free(raw);
        snprintf(why, whylen, "cannot build the body: %s", qg_strerror(rc));
        return rc;
    }
    free(raw);

    pthread_mutex_lock(&u->lock);
    signing = u->keys.n > 0;
    if (signing &&
        swh_sign(&u->keys, out->delivery_id, ts, out->body, out->len, sig))
        bad = 1;
    pthread_mutex_unlock(&u->lock);

    l = append(l, &bad, "Content-Type: %s",
               u->fmt == UPSTREAM_FHIR ? "application/fhir+json"
                                       : "application/json");
    l = append(l, &bad, "User-Agent: qgate/%s", qg_version());
    l = append(l, &bad, "webhook-id: %s", out->delivery_id);
    l = append(l, &bad, "webhook-timestamp: %" PRId64, ts);
    if (signing)
        l = append(l, &bad, "webhook-signature: %s", sig);
    l = append(l, &bad, "X-Qgate-Attempt: %" PRIu32, e->attempts + 1);
    l = append(l, &bad, "X-Qgate-Verdict: accepted");
    l = append(l, &bad, "X-Qgate-Delivery: %s", out->delivery_id);
    l = append(l, &bad, "X-Qgate-Ticket: %" PRIu64, e->ticket);
    l = append(l, &bad, "X-Qgate-Seq: %" PRIu32, e->seq);
    l = append(l, &bad, "X-Qgate-Source: %s", t.source);
    if (t.live_queue_id)
        l = append(l, &bad, "X-Qgate-Live-Queue-Id: %" PRId64, t.live_queue_id);
    if (t.appointment_id)
        l = append(l, &bad, "X-Qgate-Appointment-Id: %" PRId64,
                   t.appointment_id);
    l = append(l, &bad, "X-Qgate-Event: %s", qg_event_name(r.event));
    l = append(l, &bad, "X-Qgate-From: %s", qg_state_name(r.from));
    l = append(l, &bad, "X-Qgate-To: %s", qg_state_name(r.to));
    /* Where the step stands in event time when it is sent; a late one
     * arrived after steps with later timestamps, which the HIS has had. */
    l = append(l, &bad, "X-Qgate-Position: %" PRIu32, r.pos);
    l = append(l, &bad, "X-Qgate-Late: %s", r.late ? "true" : "false");
    out->headers = l;
    if (bad) {
        upstream_request_free(out);
        snprintf(why, whylen, "out of memory");
        return QG_ENOMEM;
    }
    return 0;
}
