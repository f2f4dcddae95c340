/*
 * serve.c - qgate serve: the validating HTTP gate in front of the HIS.
 *
 * libmicrohttpd, epoll and a thread pool, receive each delivery; the
 * committer (committer.c) decides and records it, sharing commits between
 * deliveries that arrive together; the answer leaves only after the
 * commit that holds the delivery returned.  Meanwhile the connection is
 * suspended, so no HTTP thread waits on the disk.  Accepted steps go to the
 * outbox in the same transaction, and the forwarder (forward.c) passes them
 * on to the HIS.
 *
 * Routes: POST <path> (the webhook), GET /tickets/{id} and
 * /tickets/{id}/history (the read API), GET /healthz, /readyz, /metrics.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/resource.h>

#include "cli.h"
#include "gate.h"
#include "qgate_int.h"

/* The longest bearer token accepted, in bytes (docs/gate.md): as long as
 * the longest secret. */
#define TOKEN_MAX 4096

typedef struct gate {
    /* options: flags, then the config file, then defaults */
    const char *listen;
    const char *path;
    long max_body;
    long threads;
    long timeout;
    long max_connections;
    const char *upstream;
    const char *token_file;
    long forwarders;
    long forward_timeout;
    long max_age;
    long ready_max_outbox;
    const char *log;
    int insecure;
    long max_unsigned_log;
    long unsigned_rate;
    long unsigned_burst;
    long request_timeout;
    long max_per_address;

    cli *c;
    char *token; /* token_len bytes, printable ASCII; NULL without one */
    size_t token_len;
    qg_store *st;
    qg_engine *eng;
    pthread_rwlock_t eng_lock;
    committer *com;
    forwarder *fwd;
    ratelimit *rl;    /* unsigned deliveries, per source address */
    conntable *conns; /* deadlines, and room when full */
    struct MHD_Daemon *d;
    atomic_ulong next_request;
    atomic_long in_flight;   /* requests begun and not yet completed */
    atomic_long answering;   /* of those, deliveries handed to the committer */
    atomic_int write_failed; /* the last commit or write probe failed */
    atomic_int damaged;      /* the store was found damaged: stopping */
} gate;

typedef struct request {
    gate *g;
    struct MHD_Connection *conn;
    const char *method; /* libmicrohttpd's, at the start of the request */
    char id[24];
    int64_t start_us;
    int status;
    char *body;
    size_t len, cap;
    int too_large;
    int webhook;      /* the request is for the webhook path */
    long retry_after; /* seconds, sent with a 429 */
    /* READING the body; PREPARED: read and prepared, not yet queued (see
     * webhook_data); QUEUED for the committer, suspended; DONE: committed */
    enum { READING, PREPARED, QUEUED, DONE } state;
    pending p;
} request;

/* ----- answers ---------------------------------------------------------- */

/*
 * LMDB found damage in the store (QG_ECORRUPT) while the gate ran: stop,
 * as the gate refuses to start on a damaged store.  Writing on into it
 * could spread the damage; every delivery until the restore is answered
 * 503 and sent again by Chup.  The main thread takes the SIGTERM and stops
 * as for any other, then exits 2.
 */
static void
store_failed(gate *g, int rc)
{
    if (rc != QG_ECORRUPT || atomic_exchange(&g->damaged, 1))
        return;
    log_event("error", "the store is damaged: stopping",
              ",\"db\":\"%s\",\"error\":\"%s\"", g->c->db, qg_strerror(rc));
    kill(getpid(), SIGTERM);
}

static enum MHD_Result
answer(request *r, int status, char *body, size_t len, const char *type)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, "Allow", r->webhook ? "POST" : "GET");
    if (r->retry_after > 0) {
        char secs[24];

        snprintf(secs, sizeof(secs), "%ld", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    r->status = status;
    conntable_busy(r->g->conns, r->conn);
    ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* {"error": msg, "code": code} */
static enum MHD_Result
answer_error(request *r, int status, const char *code, const char *msg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return MHD_NO;
    fprintf(f, "{\"error\":");
    render_string(f, msg, strlen(msg));
    fprintf(f, ",\"code\":\"%s\"}\n", code);
    fclose(f);
    return answer(r, status, buf, len, "application/json");
}

/* The status for a verdict (README, "Answers to Chup"). */
static int
status_of(const qg_result *res)
{
    switch (res->verdict) {
    case QG_ACCEPTED:
    case QG_DUPLICATE:
    case QG_IGNORED:
        return MHD_HTTP_OK;
    case QG_REJECTED:
        return res->reason == QG_R_UNKNOWN_EVENT ||
                       res->reason == QG_R_UNKNOWN_STATE
                   ? MHD_HTTP_UNPROCESSABLE_CONTENT
                   : MHD_HTTP_CONFLICT;
    case QG_HELD:
        /* Stored durably and dealt with later: Chup must not resend. */
        return MHD_HTTP_ACCEPTED;
    case QG_UNAUTHENTICATED:
        return MHD_HTTP_UNAUTHORIZED;
    case QG_MALFORMED:
        break;
    }
    return MHD_HTTP_BAD_REQUEST;
}

static enum MHD_Result
answer_verdict(request *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (r->p.rc) {
        char msg[160];

        atomic_fetch_add(&gate_metrics.store_errors, 1);
        snprintf(msg, sizeof(msg),
                 "the store could not record the delivery (%s); nothing was "
                 "written, send it again",
                 qg_strerror(r->p.rc));
        log_event("error", "store unavailable",
                  ",\"request_id\":\"%s\",\"error\":\"%s\"", r->id,
                  qg_strerror(r->p.rc));
        store_failed(r->g, r->p.rc);
        return answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "store_unavailable", msg);
    }
    atomic_fetch_add(&gate_metrics.deliveries[r->p.res.reason], 1);
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    render_verdict(f, &r->p.res, NULL);
    fputc('\n', f);
    fclose(f);
    return answer(r, status_of(&r->p.res), buf, len, "application/json");
}

/* ----- the webhook ------------------------------------------------------ */

static void
committed(pending *p)
{
    request *r = p->arg;

    atomic_store(&r->g->write_failed, p->rc != 0);
    r->state = DONE;
    MHD_resume_connection(r->conn);
}

static int
is_json_type(const char *type)
{
    size_t n;

    if (type == NULL)
        return 1; /* Chup's documentation shows none; accept */
    n = strcspn(type, "; ");
    return (n == 16 && strncasecmp(type, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0);
}

/* The first call of a webhook request: what can be refused before reading
 * the body is refused now. */
static enum MHD_Result
webhook_start(request *r, const char *method)
{
    const char *cl, *type;
    char msg[128];

    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return answer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method_not_allowed",
                            "webhooks are delivered with POST");
    cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoll(cl, NULL, 10) > r->g->max_body) {
        snprintf(msg, sizeof(msg),
                 "the body is %s bytes; the limit is %ld bytes", cl,
                 r->g->max_body);
        atomic_fetch_add(&gate_metrics.deliveries[QG_R_TOO_LARGE], 1);
        return answer_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
    }
    type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(type)) {
        snprintf(msg, sizeof(msg),
                 "Content-Type \"%.64s\" is not JSON; expected "
                 "application/json",
                 type);
        return answer_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type", msg);
    }
    return MHD_YES;
}

/* Whether an unsigned delivery comes from an address over
 * --unsigned-rate; then r->retry_after says for how long. */
static int
over_rate(request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    r->retry_after =
        ratelimit_take(r->g->rl, ci ? ci->client_addr : NULL, gate_now_us());
    return r->retry_after > 0;
}

/* 429, and nothing recorded. */
static enum MHD_Result
answer_over_rate(request *r)
{
    char msg[160];

    atomic_fetch_add(&gate_metrics.rate_limited, 1);
    snprintf(msg, sizeof(msg),
             "too many unsigned deliveries from this address; this one was "
             "not recorded; retry after %ld s",
             r->retry_after);
    return answer_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", msg);
}

static enum MHD_Result
webhook_data(request *r, const char *data, size_t *size)
{
    char *grown;
    size_t want;
    int rc;

    if (*size == 0 && r->state == PREPARED) {
        r->state = QUEUED;
        conntable_busy(r->g->conns, r->conn);
        MHD_suspend_connection(r->conn);
        committer_submit(r->g->com, &r->p);
        return MHD_YES;
    }
    if (*size == 0) {
        /* The whole body is in: to the committer, and wait. */
        if (r->too_large) {
            char msg[96];

            atomic_fetch_add(&gate_metrics.deliveries[QG_R_TOO_LARGE], 1);
            snprintf(msg, sizeof(msg),
                     "the body is over the limit of %ld "
                     "bytes",
                     r->g->max_body);
            return answer_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                msg);
        }
        /* The CPU part here, on this HTTP thread; the store's part in the
         * committer.  The engine may be swapped by SIGHUP meanwhile: the
         * prepared delivery keeps what it needs of it. */
        pthread_rwlock_rdlock(&r->g->eng_lock);
        rc = qg_engine_prepare(r->g->eng, r->body ? r->body : "", r->len,
                               &r->p.prepared);
        pthread_rwlock_unlock(&r->g->eng_lock);
        if (rc)
            return MHD_NO;
        if (qg_prepared_unsigned(r->p.prepared) && over_rate(r))
            return answer_over_rate(r);
        /* Queued and suspended on the next call, not this one.  Here
         * libmicrohttpd (0.9.75) still means to read from the connection,
         * and a connection suspended in that state is read first when
         * resumed: a client that half-closed after its request (shutdown
         * SHUT_WR) reads as gone, and the connection is closed with the
         * delivery committed and its answer unsent.  Returning once with
         * no answer lets it record that it waits for us, in which state it
         * does not read; it calls again at once. */
        r->state = PREPARED;
        atomic_fetch_add(&r->g->answering, 1);
        r->p.done = committed;
        r->p.arg = r;
        return MHD_YES;
    }
    if (!r->too_large && r->len + *size > (size_t)r->g->max_body)
        r->too_large = 1; /* no Content-Length said so: read and drop */
    if (!r->too_large) {
        want = r->len + *size;
        if (want > r->cap) {
            r->cap = r->cap ? r->cap : 4096;
            while (r->cap < want)
                r->cap *= 2;
            if ((grown = realloc(r->body, r->cap)) == NULL)
                return MHD_NO;
            r->body = grown;
        }
        memcpy(r->body + r->len, data, *size);
        r->len += *size;
    }
    *size = 0;
    return MHD_YES;
}

/* ----- the read API and operations ---------------------------------------- */

/* The Authorization headers of a request, in the order received. */
typedef struct auth_scan {
    int count;
    const char *value; /* the first one's value */
    size_t len;
    const char *next; /* the name of the header after it, if any */
} auth_scan;

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
            size_t key_size, const char *value, size_t value_size)
{
    auth_scan *a = cls;

    (void)kind;
    if (a->count == 1 && a->next == NULL)
        a->next = key;
    if (key_size == strlen(MHD_HTTP_HEADER_AUTHORIZATION) &&
        strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0 &&
        a->count++ == 0) {
        a->value = value;
        a->len = value_size;
    }
    return MHD_YES;
}

/*
 * Whether nothing but its line end follows the header value a in the
 * request as received.  libmicrohttpd (0.9.75) measures header values with
 * strlen(), so "Bearer <token>\0x" reads as the token alone.  Its values
 * point into the received header block, where a line end (CR LF or LF,
 * overwritten with NULs) separates a value from the next header's name,
 * and the last value from the end of the block (its line end and the empty
 * line).  More there, or anything but NULs, is what followed a NUL inside
 * the value.  Were the values ever copied out of the block, this refuses
 * every token: it fails closed, and the tests say so.
 */
static int
value_ends_line(request *r, const auth_scan *a)
{
    const union MHD_ConnectionInfo *ci;
    uintptr_t end = (uintptr_t)(a->value + a->len), stop;
    const char *p;

    if (a->next) {
        stop = (uintptr_t)a->next;
        if (stop < end + 1 || stop > end + 2)
            return 0;
    } else {
        ci = MHD_get_connection_info(r->conn,
                                     MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        if (ci == NULL || r->method == NULL)
            return 0;
        stop = (uintptr_t)(r->method + ci->header_size);
        if (stop < end + 2 || stop > end + 4)
            return 0;
    }
    for (p = a->value + a->len; (uintptr_t)p < stop; p++)
        if (*p != '\0')
            return 0;
    return 1;
}

/* "Authorization: Bearer <token>", once, and exactly the token: compared by
 * the value's length, so neither a prefix nor the token with more after it
 * passes. */
static int
authorised(request *r)
{
    auth_scan a;

    if (r->g->token == NULL)
        return 1;
    /* Two headers are refused rather than one picked: a proxy in front may
     * have checked the other. */
    memset(&a, 0, sizeof(a));
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, scan_header, &a);
    return a.count == 1 && a.len == 7 + r->g->token_len &&
           strncmp(a.value, "Bearer ", 7) == 0 &&
           CRYPTO_memcmp(a.value + 7, r->g->token, r->g->token_len) == 0 &&
           value_ends_line(r, &a);
}

static enum MHD_Result
tickets(request *r, const char *rest)
{
    char id[64], *buf = NULL, msg[128];
    size_t len = 0, n;
    const char *slash = strchr(rest, '/');
    int want_history = 0, rc;
    qg_ticket t;
    FILE *f;

    if (!authorised(r))
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "a bearer token is required");
    if (slash) {
        if (strcmp(slash, "/history") != 0)
            return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                                "no such resource");
        want_history = 1;
    }
    /* The path arrives undecoded (no_unescape): "%2F", "%00" or "%20"
     * stay as sent, and the id is refused unless it is the number's one
     * spelling (cli_lookup_ticket). */
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) ? n : 40), rest);
    rc = n < sizeof(id) ? cli_lookup_ticket(r->g->st, id, &t) : QG_EINVAL;
    if (rc == QG_EINVAL || rc == QG_NOTFOUND) {
        snprintf(msg, sizeof(msg), "ticket \"%.40s\": %s", id,
                 rc == QG_EINVAL ? "expected a live-queue id, lq:ID, "
                                   "appt:ID or ticket:N"
                                 : "not in the store");
        return answer_error(
            r, rc == QG_EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_NOT_FOUND,
            rc == QG_EINVAL ? "bad_ticket" : "not_found", msg);
    }
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    if (rc == 0 && want_history) {
        rc = render_history(f, r->g->st, t.id);
    } else if (rc == 0) {
        render_ticket(f, &t);
        fputc('\n', f);
    }
    fclose(f);
    if (rc) {
        free(buf);
        store_failed(r->g, rc);
        return answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "store_unavailable", qg_strerror(rc));
    }
    return answer(r, MHD_HTTP_OK, buf, len, "application/json");
}

static enum MHD_Result
readyz(request *r)
{
    gate *g = r->g;
    uint64_t depth = 0;
    int64_t oldest = 0;
    char *buf = NULL;
    size_t len = 0;
    int store_ok, reachable, ready;
    FILE *f;

    /* The store is ready when it can be read and the last write worked.
     * After a failed commit, each /readyz tries a write of its own, so
     * that readiness comes back without a delivery risking a 503. */
    if (atomic_load(&g->write_failed))
        atomic_store(&g->write_failed, qg__store_probe(g->st) != 0);
    store_ok = qg_outbox_stats(g->st, &depth, &oldest, NULL) == 0 &&
               !atomic_load(&g->write_failed);
    reachable = g->upstream == NULL || forwarder_reachable(g->fwd);
    ready = store_ok && (reachable || depth < (uint64_t)g->ready_max_outbox);
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    fprintf(f,
            "{\"ready\":%s,\"store\":%s,\"upstream_reachable\":%s,"
            "\"outbox_depth\":%" PRIu64 ",\"outbox_limit\":%ld}\n",
            ready ? "true" : "false", store_ok ? "true" : "false",
            reachable ? "true" : "false", depth, g->ready_max_outbox);
    fclose(f);
    return answer(r, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, buf,
                  len, "application/json");
}

static enum MHD_Result
get(request *r, const char *url)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (strcmp(url, "/healthz") == 0)
        return answer(r, MHD_HTTP_OK, strdup("{\"status\":\"up\"}\n"), 16,
                      "application/json");
    if (strcmp(url, "/readyz") == 0)
        return readyz(r);
    if (strcmp(url, "/metrics") == 0) {
        if ((f = open_memstream(&buf, &len)) == NULL)
            return MHD_NO;
        metrics_render(f, r->g->st);
        fclose(f);
        return answer(r, MHD_HTTP_OK, buf, len,
                      "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strncmp(url, "/tickets/", 9) == 0 && url[9] != '\0')
        return tickets(r, url + 9);
    return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such resource");
}

/* ----- the handler ------------------------------------------------------ */

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *data, size_t *size,
       void **con_cls)
{
    gate *g = cls;
    request *r = *con_cls;
    const char *te, *cl;

    (void)version;
    if (r == NULL) {
        if ((r = calloc(1, sizeof(*r))) == NULL)
            return MHD_NO;
        r->g = g;
        r->conn = conn;
        r->method = method;
        r->start_us = gate_now_us();
        snprintf(r->id, sizeof(r->id), "%lx-%lu",
                 (unsigned long)(r->start_us / 1000000) & 0xfffff,
                 atomic_fetch_add(&g->next_request, 1));
        atomic_fetch_add(&g->in_flight, 1);
        *con_cls = r;
        r->webhook = strcmp(url, g->path) == 0;
        /* libmicrohttpd knows only chunked; any other coding it would read
         * as a body without end, until the idle timeout. */
        te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (te && strcasecmp(te, "chunked") != 0)
            return answer_error(r, MHD_HTTP_NOT_IMPLEMENTED, "not_implemented",
                                "only the chunked Transfer-Encoding is "
                                "understood; send a Content-Length");
        if (r->webhook)
            return webhook_start(r, method);
        /* A GET or HEAD without a body is answered on the next call: an
         * answer queued on this first one makes libmicrohttpd close the
         * connection after it (it assumes a body is left unread), and a
         * monitoring client would reconnect for every request. */
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        if ((strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
             strcmp(method, MHD_HTTP_METHOD_HEAD) == 0) &&
            te == NULL && (cl == NULL || strcmp(cl, "0") == 0))
            return MHD_YES;
        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
            strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
            return get(r, url);
        if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
            strcmp(url, "/metrics") == 0 || strncmp(url, "/tickets/", 9) == 0)
            return answer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "method_not_allowed",
                                "this resource is read with GET");
        return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                            "no such resource");
    }
    if (r->status)
        return MHD_YES; /* answered already; drop the rest of the body */
    if (!r->webhook)
        return get(r, url); /* the call after the first, with no body */
    if (r->state == DONE)
        return answer_verdict(r);
    if (r->state == QUEUED)
        return MHD_YES;
    return webhook_data(r, data, size);
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
          enum MHD_RequestTerminationCode toe)
{
    gate *g = cls;
    request *r = *con_cls;
    int64_t elapsed;

    conntable_idle(g->conns, conn);
    if (r == NULL)
        return;
    elapsed = gate_now_us() - r->start_us;
    metrics_request(r->status, elapsed);
    if (r->state == DONE && r->p.rc == 0)
        log_event("info", "delivery",
                  ",\"request_id\":\"%s\",\"status\":%d,\"verdict\":\"%s\","
                  "\"code\":\"%s\",\"ticket\":%" PRIu64
                  ",\"live_queue_id\":%" PRId64 ",\"event\":\"%s\","
                  "\"from\":\"%s\",\"to\":\"%s\",\"us\":%" PRId64,
                  r->id, r->status, qg_verdict_name(r->p.res.verdict),
                  qg_reason_name(r->p.res.reason), r->p.res.ticket,
                  r->p.res.live_queue_id,
                  r->p.res.event ? qg_event_name(r->p.res.event) : "",
                  qg_state_name(r->p.res.from), qg_state_name(r->p.res.to),
                  elapsed);
    else if (r->status >= 400 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_event(r->status >= 500 ? "error" : "info", "request",
                  ",\"request_id\":\"%s\",\"status\":%d,\"completed\":%s,"
                  "\"us\":%" PRId64,
                  r->id, r->status,
                  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "true" : "false",
                  elapsed);
    if (r->state != READING)
        atomic_fetch_sub(&g->answering, 1);
    qg_prepared_free(r->p.prepared);
    free(r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&g->in_flight, 1);
}

/* A request whose body is still coming when it ends (the client went away)
 * was queued nowhere: nothing to undo.  One that is QUEUED ends only after
 * its commit, because the connection is suspended until then. */

/* ----- options ---------------------------------------------------------- */

enum {
    OPT_LISTEN = 2000,
    OPT_PATH,
    OPT_MAX_BODY,
    OPT_THREADS,
    OPT_TIMEOUT,
    OPT_MAX_CONNECTIONS,
    OPT_DURABILITY,
    OPT_UPSTREAM,
    OPT_TOKEN_FILE,
    OPT_FORWARDERS,
    OPT_FORWARD_TIMEOUT,
    OPT_MAX_AGE,
    OPT_READY_MAX_OUTBOX,
    OPT_LOG,
    OPT_INSECURE,
    OPT_MAX_UNSIGNED_LOG,
    OPT_UNSIGNED_RATE,
    OPT_UNSIGNED_BURST,
    OPT_REQUEST_TIMEOUT,
    OPT_MAX_PER_ADDRESS
};

static const struct {
    const char *key; /* the config file's key; the flag is the same, '-' */
    int opt;
    int type; /* 's' string, 'p' path, 'n' positive number, 'b' boolean */
    size_t off_str, off_num;
} keys[] = {
#define S(k, o, f)                                                             \
    {                                                                          \
        k, o, 's', offsetof(gate, f), 0                                        \
    }
#define P(k, o, f)                                                             \
    {                                                                          \
        k, o, 'p', offsetof(gate, f), 0                                        \
    }
#define N(k, o, f)                                                             \
    {                                                                          \
        k, o, 'n', 0, offsetof(gate, f)                                        \
    }
    S("listen", OPT_LISTEN, listen),
    S("path", OPT_PATH, path),
    N("max_body", OPT_MAX_BODY, max_body),
    N("threads", OPT_THREADS, threads),
    N("timeout", OPT_TIMEOUT, timeout),
    N("max_connections", OPT_MAX_CONNECTIONS, max_connections),
    S("upstream", OPT_UPSTREAM, upstream),
    P("token_file", OPT_TOKEN_FILE, token_file),
    N("forwarders", OPT_FORWARDERS, forwarders),
    N("forward_timeout", OPT_FORWARD_TIMEOUT, forward_timeout),
    N("max_age", OPT_MAX_AGE, max_age),
    N("ready_max_outbox", OPT_READY_MAX_OUTBOX, ready_max_outbox),
    P("log", OPT_LOG, log),
    {"insecure_no_signature", OPT_INSECURE, 'b', 0, 0},
    N("max_unsigned_log", OPT_MAX_UNSIGNED_LOG, max_unsigned_log),
    N("unsigned_rate", OPT_UNSIGNED_RATE, unsigned_rate),
    N("unsigned_burst", OPT_UNSIGNED_BURST, unsigned_burst),
    N("request_timeout", OPT_REQUEST_TIMEOUT, request_timeout),
    N("max_per_address", OPT_MAX_PER_ADDRESS, max_per_address),
#undef S
#undef P
#undef N
};

/* Sets one option unless already set (flags come first and win). */
static int
set_option(gate *g, size_t i, const char *str, long num, int from_file)
{
    const char **sp = (const char **)((char *)g + keys[i].off_str);
    long *np = (long *)((char *)g + keys[i].off_num);

    switch (keys[i].type) {
    case 's':
    case 'p':
        if (*sp == NULL)
            *sp = from_file ? (keys[i].type == 'p' ? cli_config_path(g->c, str)
                                                   : cli_config_copy(g->c, str))
                            : str;
        return 0;
    case 'n':
        if (num <= 0)
            return cli_fail("%s: %ld is not a positive number", keys[i].key,
                            num);
        if (*np == 0)
            *np = num;
        return 0;
    }
    g->insecure |= num != 0;
    return 0;
}

int
serve_knows_key(const char *key)
{
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        if (strcmp(key, keys[i].key) == 0)
            return 1;
    return 0;
}

static int
config_key(cli *c, const char *key, json_object *val)
{
    gate *g = c->command;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
        if (strcmp(key, keys[i].key) != 0)
            continue;
        if ((keys[i].type == 'n' && !json_object_is_type(val, json_type_int)) ||
            (keys[i].type == 'b' &&
             !json_object_is_type(val, json_type_boolean)) ||
            ((keys[i].type == 's' || keys[i].type == 'p') &&
             !json_object_is_type(val, json_type_string)))
            return cli_fail("%s: key \"%s\": value %s has the wrong type",
                            c->config, key, json_object_to_json_string(val));
        return set_option(g, i,
                          json_object_is_type(val, json_type_string)
                              ? json_object_get_string(val)
                              : NULL,
                          keys[i].type == 'b'
                              ? json_object_get_boolean(val)
                              : (long)json_object_get_int64(val),
                          1);
    }
    return -1;
}

static void
usage(void)
{
    printf("usage: qgate serve [OPTIONS]\n\n"
           "  --listen HOST:PORT      where to listen, HOST a name or address\n"
           "                          (127.0.0.1:8080)\n"
           "  --path PATH             the webhook's path (/webhooks/chup)\n"
           "  --secret-file F         the HMAC secret (required unless\n"
           "  --insecure-no-signature   which accepts unsigned deliveries)\n"
           "  --db DIR                the store ($QGATE_DB, ./var/qgate)\n"
           "  --durability MODE       sync | group | nosync (group)\n"
           "  --max-skew S            refuse steps dated more than S s ahead\n"
           "                          of this clock (300; 0: no check)\n"
           "  --upstream URL          the HIS endpoint accepted steps go to\n"
           "  --forwarders N          parallel forwarding workers (2)\n"
           "  --forward-timeout S     per attempt (10)\n"
           "  --max-age S             retry for this long, then dead-letter "
           "(86400)\n"
           "  --max-body BYTES        larger bodies get 413 (1048576)\n"
           "  --threads N             HTTP threads (2)\n"
           "  --timeout S             idle connection timeout (30; never 0)\n"
           "  --request-timeout S     a request's headers and body must be in\n"
           "                          within S of its connection or first\n"
           "                          line, however they trickle (10)\n"
           "  --max-connections N     when all are open, the one waiting\n"
           "                          longest for a request is closed (1024)\n"
           "  --max-per-address N     connections from one address (256)\n"
           "  --token-file F          bearer token for GET /tickets/...\n"
           "  --ready-max-outbox N    /readyz fails at this backlog when the\n"
           "                          HIS did not take the last step (1000)\n"
           "  --reorder-window S      a step not legal yet waits S seconds\n"
           "                          for an earlier one (1200; 0: judge on\n"
           "                          arrival, hold nothing)\n"
           "  --log FILE              JSON log lines (stderr); SIGHUP reopens\n"
           "  --max-unsigned-log BYTES  unauthenticated and malformed entries\n"
           "                          of the rejection log stay under this;\n"
           "                          the oldest are dropped (67108864)\n"
           "  --unsigned-rate N       unsigned deliveries a minute per source\n"
           "                          address; more get 429 (60)\n"
           "  --unsigned-burst N      of which at once (20)\n"
           "  --config FILE           the same keys, with '_' for '-'\n");
}

/* "http://HOST..." or "https://HOST...": the schemes the forwarder
 * speaks, with something where the host goes. */
static int
is_http_url(const char *url)
{
    const char *rest;

    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return 0;
    return *rest != '\0' && strchr("/?#:", *rest) == NULL;
}

static int
parse(gate *g, cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"path", required_argument, NULL, OPT_PATH},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"durability", required_argument, NULL, OPT_DURABILITY},
        {"upstream", required_argument, NULL, OPT_UPSTREAM},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"forwarders", required_argument, NULL, OPT_FORWARDERS},
        {"forward-timeout", required_argument, NULL, OPT_FORWARD_TIMEOUT},
        {"max-age", required_argument, NULL, OPT_MAX_AGE},
        {"ready-max-outbox", required_argument, NULL, OPT_READY_MAX_OUTBOX},
        {"log", required_argument, NULL, OPT_LOG},
        {"insecure-no-signature", no_argument, NULL, OPT_INSECURE},
        CLI_REORDER_OPTION,
        CLI_MAX_SKEW_OPTION,
        {"max-unsigned-log", required_argument, NULL, OPT_MAX_UNSIGNED_LOG},
        {"unsigned-rate", required_argument, NULL, OPT_UNSIGNED_RATE},
        {"unsigned-burst", required_argument, NULL, OPT_UNSIGNED_BURST},
        {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
        {"max-per-address", required_argument, NULL, OPT_MAX_PER_ADDRESS},
        {0}};
    int opt, rc;
    size_t i;
    char *end;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        if (opt == 'h') {
            usage();
            return -1;
        }
        if (opt == OPT_DURABILITY) {
            if (strcmp(optarg, "sync") && strcmp(optarg, "group") &&
                strcmp(optarg, "nosync"))
                return cli_fail("--durability \"%s\": expected sync, group "
                                "or nosync",
                                optarg);
            c->durability = optarg;
            continue;
        }
        for (i = 0; i < sizeof(keys) / sizeof(*keys); i++)
            if (keys[i].opt == opt)
                break;
        if (i == sizeof(keys) / sizeof(*keys))
            return EXIT_FAILED;
        if (keys[i].type == 'n') {
            long n = strtol(optarg, &end, 10);

            if (*end || end == optarg)
                return cli_fail("--%s \"%s\": not a number", keys[i].key,
                                optarg);
            if ((rc = set_option(g, i, NULL, n, 0)))
                return rc;
        } else if ((rc = set_option(g, i, optarg, 1, 0))) {
            return rc;
        }
    }
    if (optind != argc)
        return cli_fail("serve: unexpected argument \"%s\"", argv[optind]);
    c->config_key = config_key;
    c->command = g;
    if ((rc = cli_finish_options(c)))
        return rc;
    /* defaults */
    if (g->listen == NULL)
        g->listen = "127.0.0.1:8080";
    if (g->path == NULL)
        g->path = "/webhooks/chup";
    if (g->max_body == 0)
        g->max_body = 1 << 20;
    if (g->threads == 0)
        g->threads = 2;
    if (g->timeout == 0)
        g->timeout = 30;
    if (g->max_connections == 0)
        g->max_connections = 1024;
    if (g->request_timeout == 0)
        g->request_timeout = 10;
    if (g->max_per_address == 0)
        g->max_per_address = 256;
    if (g->forwarders == 0)
        g->forwarders = 2;
    if (g->forward_timeout == 0)
        g->forward_timeout = 10;
    if (g->max_age == 0)
        g->max_age = 86400;
    if (g->ready_max_outbox == 0)
        g->ready_max_outbox = 1000;
    if (g->max_unsigned_log == 0)
        g->max_unsigned_log = 64L << 20;
    if (g->unsigned_rate == 0)
        g->unsigned_rate = 60;
    if (g->unsigned_burst == 0)
        g->unsigned_burst = 20;
    if (c->durability == NULL)
        c->durability = "group";
    if (g->path[0] != '/')
        return cli_fail("--path \"%s\": must start with /", g->path);
    /* Checked now rather than on the first forward, hours later, when
     * every accepted step would go dead for a typo. */
    if (g->upstream && !is_http_url(g->upstream))
        return cli_fail("--upstream \"%s\": expected an http:// or https:// "
                        "URL with a host",
                        g->upstream);
    if (!g->insecure && c->secret_file == NULL)
        return cli_fail("serve: no secret: give --secret-file FILE (or "
                        "--insecure-no-signature to accept unsigned "
                        "deliveries)");
    return 0;
}

/*
 * "127.0.0.1:8080", "[::1]:8080", "localhost:8080" or ":8080" (all IPv4
 * interfaces): the first address getaddrinfo() gives.  Returns 0, or -1
 * with why in err.
 */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
             char *err, size_t errlen)
{
    const char *colon = strrchr(s, ':');
    struct addrinfo hints, *res;
    char host[256], *end;
    long port;
    int rc;

    snprintf(err, errlen, "expected HOST:PORT");
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || colon[1] < '0' || colon[1] > '9' ||
        port > 65535)
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
    if (host[0] == '[') {
        if (strlen(host) < 3 || host[strlen(host) - 1] != ']')
            return -1;
        host[strlen(host) - 1] = '\0';
        memmove(host, host + 1, strlen(host));
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (host[0] == '\0')
        hints.ai_family = AF_INET; /* ":8080" has always meant 0.0.0.0 */
    if ((rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res))) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
                 gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this machine reaches
 * them. */
static int
is_loopback(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

    if (ss->ss_family == AF_INET)
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
           in6->sin6_addr.s6_addr[12] == 127;
}

/*
 * The listening socket, bound here rather than by libmicrohttpd: its own
 * failure message ("Failed to bind to port 0") would reach stderr before
 * ours, and says less.  Returns the socket, or -1 with errno set.
 */
static int
listen_on(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd, one = 1, saved;

    if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     0)) < 0)
        return -1;
    /* As libmicrohttpd does: a restart binds while the old connections
     * linger in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* "[::]:8080" means IPv6 only, as it did when libmicrohttpd bound it */
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* libmicrohttpd's own messages, into the JSON log rather than raw lines
 * on stderr. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512], esc[1100];
    size_t n;

    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_event("warn", "libmicrohttpd", ",\"detail\":\"%s\"",
              log_escape(text, esc, sizeof(esc)));
}

/* The token file's bytes, less one trailing line end: all of them, or a
 * refusal to start.  Printable ASCII without spaces, as a header carries
 * it: a token no request could match would lock everyone out silently. */
static int
read_token(gate *g)
{
    FILE *f = fopen(g->token_file, "rb");
    char *buf;
    size_t n, i;
    int err;

    if (f == NULL)
        return cli_fail("%s: %s", g->token_file, strerror(errno));
    if ((buf = malloc(TOKEN_MAX + 3)) == NULL) {
        fclose(f);
        return cli_fail("%s: out of memory", g->token_file);
    }
    n = fread(buf, 1, TOKEN_MAX + 3, f);
    err = ferror(f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (err || n == 0 || n > TOKEN_MAX) {
        free(buf);
        if (err)
            return cli_fail("%s: read error", g->token_file);
        if (n == 0)
            return cli_fail("%s: the token is empty", g->token_file);
        return cli_fail("%s: the token is longer than %d bytes", g->token_file,
                        TOKEN_MAX);
    }
    for (i = 0; i < n; i++) {
        if (buf[i] < 0x21 || buf[i] > 0x7e) {
            OPENSSL_cleanse(buf, n);
            free(buf);
            return cli_fail("%s: byte %zu of the token is not printable "
                            "ASCII (spaces and line ends included)",
                            g->token_file, i + 1);
        }
    }
    g->token = buf;
    g->token_len = n;
    return 0;
}

/* Leaves the path as sent.  libmicrohttpd would decode it, turning "%2F"
 * into a '/' that splits the path and "%00" into an end of string; no
 * route of the gate needs an escape. */
static size_t
no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/*
 * Each connection is a descriptor: raises the soft limit on open files to
 * what --max-connections needs, as far as the hard limit allows, and
 * lowers --max-connections to fit when it cannot.  Running out of
 * descriptors would stop libmicrohttpd from accepting before the table is
 * full, and so before any connection is closed to make room.
 */
#define SPARE_FDS 64 /* the store, the log, the listener, epoll, curl */

static void
fit_fd_limit(gate *g)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)g->max_connections + SPARE_FDS;
    long fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                      ? need
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    fit = (long)(rl.rlim_cur > 2 * SPARE_FDS ? rl.rlim_cur - SPARE_FDS
                                             : rl.rlim_cur / 2);
    log_event("warn",
              "the limit on open files is too low for --max-connections; "
              "lowered to fit",
              ",\"max_connections\":%ld,\"open_files\":%ld", fit,
              (long)rl.rlim_cur);
    g->max_connections = fit;
}

/* A path as a JSON log value: "..." escaped, or null. */
static const char *
json_path(const char *path, char *dst, size_t len)
{
    char esc[1100];

    if (path == NULL)
        snprintf(dst, len, "null");
    else
        snprintf(dst, len, "\"%s\"", log_escape(path, esc, sizeof(esc)));
    return dst;
}

/*
 * SIGHUP: reopens the log file (for logrotate) and builds a new engine
 * from the secret file and the mapping as they are now, without a
 * restart.  An engine that does not build (a broken mapping, an unreadable
 * secret) leaves the running one in place; the reason goes to the JSON
 * log, which is where an operator who sent the signal looks.
 */
static void
reload(gate *g)
{
    qg_engine *fresh = NULL;
    char err[512], esc[1100], map[1100], secret[1100], logf[1100];
    int log_failed = log_reopen() != 0;

    if (log_failed)
        log_event("error", "reload: cannot reopen the log file; writing on",
                  ",\"log\":%s", json_path(g->log, logf, sizeof(logf)));
    if (cli_build_engine(g->c, &fresh, err, sizeof(err)) != 0) {
        log_event("error",
                  "reload failed; keeping the running mapping and secret",
                  ",\"error\":\"%s\"", log_escape(err, esc, sizeof(esc)));
        return;
    }
    pthread_rwlock_wrlock(&g->eng_lock);
    qg_engine_free(g->eng);
    g->eng = fresh;
    pthread_rwlock_unlock(&g->eng_lock);
    log_event("info", "reloaded", ",\"mapping\":%s,\"secret\":%s,\"log\":%s",
              json_path(g->c->mapping, map, sizeof(map)),
              json_path(g->c->no_verify ? NULL : g->c->secret_file, secret,
                        sizeof(secret)),
              json_path(log_failed ? NULL : g->log, logf, sizeof(logf)));
}

int
cmd_serve(cli *c, int argc, char **argv)
{
    gate g;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const union MHD_DaemonInfo *info;
    forward_options fo;
    sigset_t sigs;
    int rc, sig, lfd;
    int64_t deadline, grace;
    char err[512];

    memset(&g, 0, sizeof(g));
    g.c = c;
    if ((rc = parse(&g, c, argc, argv)))
        return rc < 0 ? EXIT_OK : rc;
    if (parse_listen(g.listen, &addr, &addrlen, err, sizeof(err)) < 0)
        return cli_fail("--listen \"%s\": %s", g.listen, err);
    if (g.token_file && (rc = read_token(&g)))
        return rc;
    log_open(g.log);
    if (!g.token_file && !is_loopback(&addr))
        log_event("warn",
                  "the read API (GET /tickets/...) is open to anyone who can "
                  "reach this address: give --token-file",
                  ",\"listen\":\"%s\"", log_escape(g.listen, err, sizeof(err)));
    if (g.insecure) {
        c->no_verify = 1;
        log_event("warn",
                  "signatures are not checked (--insecure-no-signature): "
                  "anyone who can reach the gate can write to the HIS",
                  NULL);
    }
    /* Every thread started from here on inherits these blocked; the main
     * thread takes them with sigwait(). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* as main() does: a write past a file-size
                                 limit fails with EFBIG, answered 503 */

    if ((rc = cli_new_engine(c, &g.eng)))
        goto free_token;
    {
        qg_store_options o;

        memset(&o, 0, sizeof(o));
        o.path = c->db;
        o.durability =
            strcmp(c->durability, "nosync") == 0 ? QG_NOSYNC : QG_SYNC;
        o.flags = g.upstream ? QG_OUTBOX : 0;
        o.unsigned_log_max = (size_t)g.max_unsigned_log;
        if ((rc = cli_open_store_with(c, &o, &g.st))) {
            qg_engine_free(g.eng);
            goto free_token;
        }
    }
    pthread_rwlock_init(&g.eng_lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fit_fd_limit(&g);
    if (ratelimit_new(g.unsigned_rate, g.unsigned_burst, &g.rl) ||
        conntable_start(g.request_timeout, g.timeout,
                        (unsigned)g.max_connections, &g.conns)) {
        rc = cli_fail("out of memory");
        goto out;
    }
    if (g.upstream) {
        memset(&fo, 0, sizeof(fo));
        fo.upstream = g.upstream;
        fo.workers = (unsigned)g.forwarders;
        fo.timeout_ms = g.forward_timeout * 1000;
        fo.max_age_us = (int64_t)g.max_age * 1000000;
        fo.backoff_min_us = 500000;
        fo.backoff_max_us = 300 * 1000000LL;
        if (forwarder_start(g.st, &fo, &g.fwd)) {
            rc = cli_fail("cannot start the forwarder: %s", strerror(errno));
            goto out;
        }
    }
    if (committer_start(g.st, strcmp(c->durability, "sync") == 0 ? 1 : 256,
                        c->reorder_window, forwarder_wake, g.fwd, &g.com)) {
        rc = cli_fail("cannot start the committer");
        goto out;
    }
    if ((lfd = listen_on(&addr, addrlen)) < 0) {
        rc = cli_fail("cannot listen on %s: %s", g.listen, strerror(errno));
        goto out;
    }
    g.d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, &g, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)g.threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)g.timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)g.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)g.max_per_address,
        MHD_OPTION_NOTIFY_CONNECTION, conntable_notify, g.conns,
        MHD_OPTION_URI_LOG_CALLBACK, conntable_request_line, g.conns,
        MHD_OPTION_NOTIFY_COMPLETED, completed, &g,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    if (g.d == NULL) {
        rc = cli_fail("cannot listen on %s: %s", g.listen, strerror(errno));
        close(lfd);
        goto out;
    }
    info = MHD_get_daemon_info(g.d, MHD_DAEMON_INFO_BIND_PORT);
    log_event("info", "listening",
              ",\"listen\":\"%s\",\"port\":%u,\"path\":\"%s\",\"db\":\"%s\","
              "\"durability\":\"%s\",\"reorder_window_s\":%" PRId64
              ",\"upstream\":%s%s%s,\"machine\":\"%s\","
              "\"version\":\"%s\"",
              g.listen, info ? (unsigned)info->port : 0u, g.path, c->db,
              c->durability, c->reorder_window, g.upstream ? "\"" : "",
              g.upstream ? g.upstream : "null", g.upstream ? "\"" : "",
              qg_machine_version(), qg_version());

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(&g);
            continue;
        }
        break;
    }
    log_event("info", "stopping: finishing requests in flight",
              ",\"signal\":\"%s\"", sig == SIGTERM ? "TERM" : "INT");
    {
        MHD_socket s = MHD_quiesce_daemon(g.d);

        if (s != MHD_INVALID_SOCKET)
            close(s);
    }
    /* Deliveries handed to the committer are committed and answered (up
     * to 30 s).  Bodies still arriving get 5 s to arrive; a client that
     * went silent or away mid-body delivered nothing, and may send again
     * to the next gate. */
    deadline = gate_now_us() + 30 * 1000000LL;
    grace = gate_now_us() + 5 * 1000000LL;
    while (gate_now_us() < deadline &&
           (atomic_load(&g.answering) > 0 ||
            (atomic_load(&g.in_flight) > 0 && gate_now_us() < grace)))
        usleep(10000);
    rc = atomic_load(&g.damaged)
             ? cli_store_damaged(c->db, "LMDB found a page that is not what "
                                        "it expected (`qgate verify` says "
                                        "where)")
             : EXIT_OK;
out:
    if (g.d)
        MHD_stop_daemon(g.d);
    conntable_stop(g.conns);
    committer_stop(g.com);
    forwarder_stop(g.fwd);
    qg_store_close(g.st);
    qg_engine_free(g.eng);
    ratelimit_free(g.rl);
    pthread_rwlock_destroy(&g.eng_lock);
    curl_global_cleanup();
free_token:
    if (g.token) {
        OPENSSL_cleanse(g.token, g.token_len);
        free(g.token);
    }
    if (rc == EXIT_OK)
        log_event("info", "stopped", NULL);
    return rc;
}
