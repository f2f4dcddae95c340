/*
 * answers.c - what the gate answers: the webhook, the read API, and
 * /healthz, /readyz and /metrics.
 *
 * A delivery is read on libmicrohttpd's thread and prepared there (parsed,
 * authenticated); the committer (committer.c) decides and records it, and
 * the answer leaves only after the commit that holds it returned.
 * Meanwhile the connection is suspended, so no HTTP thread waits on the
 * disk.
 *
 * Routes: POST <path> (the webhook), GET /tickets (the search), /tickets/{id},
 * /tickets/{id}/history, /tickets/{id}/steps, /tickets/{id}/deliveries,
 * /overview, /machine, /rejections, /held, /outbox/dead, /waits and
 * /deliveries (the read API), GET /console/... (the console's files,
 * console.c), POST /rejections/{id}/replay and /outbox/dead/{id}/retry
 * (the console's admin actions), GET /healthz, /readyz, /metrics.  Under
 * `qgate console` (g->read_only) no source has a path, so no POST is a
 * webhook, and the admin actions are refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "console.h"
#include "serve.h"

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
    int webhook;      /* the request is for a source's webhook path */
    int source;       /* which (serve.h's index), when webhook */
    int console;      /* for the console: its headers (console_headers()) */
    int admin;        /* an admin POST (replay, retry): Allow: POST */
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
    char db[1100];

    if (rc != QG_ECORRUPT || atomic_exchange(&g->damaged, 1))
        return;
    log_event("error", "the store is damaged: stopping",
              ",\"db\":%s,\"error\":\"%s\"",
              log_string(g->c->db, db, sizeof(db)), qg_strerror(rc));
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
    if (r->console)
        console_headers(resp);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, "Allow",
                                r->webhook || r->admin ? "POST" : "GET");
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

/* The status for a verdict (docs/gate.md, "Answers to Chup"). */
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

    if (r->p.stopping)
        return answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
                            "the gate is stopping; nothing was written, "
                            "send it again");
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
    metrics_delivery(r->source, r->p.res.reason);
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    render_verdict(f, &r->p.res, NULL);
    fputc('\n', f);
    fclose(f);
    return answer(r, status_of(&r->p.res), buf, len, "application/json");
}

/* ----- the webhook ------------------------------------------------------ */

/*
 * Closes r's connection with no answer, which is all libmicrohttpd offers
 * once the body is being read, and logs why: the client sees only a
 * closed connection (and Chup sends the delivery again), so the log is
 * the one place that says what happened.  Returns MHD_NO.
 */
static enum MHD_Result
dropped(request *r, const char *why, int rc)
{
    log_event("error", "connection dropped",
              ",\"request_id\":\"%s\",\"reason\":\"%s\",\"error\":\"%s\"",
              r->id, why, qg_strerror(rc));
    return MHD_NO;
}

/* The index of the secret that signed p, or null: for the log line, which
 * never holds the secret itself. */
static const char *
secret_index(const qg_prepared *p, char *buf, size_t len)
{
    int i = qg_prepared_secret(p);

    if (i < 0)
        return "null";
    snprintf(buf, len, "%d", i);
    return buf;
}

/* A committed delivery's line, to be written with its group's.  Its
 * status is the answer's, about to be sent; its time runs to the commit. */
static void
log_delivery(request *r, log_lines *l)
{
    char idx[16];

    log_add(l, "info", "delivery",
            ",\"request_id\":\"%s\",\"status\":%d,\"verdict\":\"%s\","
            "\"code\":\"%s\",\"ticket\":%" PRIu64 ",\"live_queue_id\":%" PRId64
            ",\"event\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"secret\":%s,"
            "\"source\":\"%s\",\"us\":%" PRId64,
            r->id, status_of(&r->p.res), qg_verdict_name(r->p.res.verdict),
            qg_reason_name(r->p.res.reason), r->p.res.ticket,
            r->p.res.live_queue_id,
            r->p.res.event ? qg_event_name(r->p.res.event) : "",
            qg_state_name(r->p.res.from), qg_state_name(r->p.res.to),
            secret_index(r->p.prepared, idx, sizeof(idx)),
            r->g->sources[r->source].name, gate_now_us() - r->start_us);
}

static void
committed(pending *p)
{
    request *r = p->arg;

    if (!p->stopping)
        atomic_store(&r->g->write_failed, p->rc != 0);
    r->state = DONE;
    if (p->rc == 0)
        log_delivery(r, p->log);
    MHD_resume_connection(r->conn); /* r may be gone after this */
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
        metrics_delivery(r->source, QG_R_TOO_LARGE);
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

            metrics_delivery(r->source, QG_R_TOO_LARGE);
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
        rc = qg_engine_prepare(r->g->sources[r->source].eng,
                               r->body ? r->body : "", r->len, &r->p.prepared);
        pthread_rwlock_unlock(&r->g->eng_lock);
        if (rc)
            return dropped(r, "the delivery could not be prepared", rc);
        if ((rc = qg_prepared_secret(r->p.prepared)) >= 0)
            atomic_fetch_add(&gate_metrics.secret_matches[r->source][rc], 1);
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
                return dropped(r, "no memory for the body", QG_ENOMEM);
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
bearer_is(request *r, const char *token, size_t token_len)
{
    auth_scan a;

    /* Two headers are refused rather than one picked: a proxy in front may
     * have checked the other. */
    memset(&a, 0, sizeof(a));
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, scan_header, &a);
    return a.count == 1 && a.len == 7 + token_len &&
           strncmp(a.value, "Bearer ", 7) == 0 &&
           CRYPTO_memcmp(a.value + 7, token, token_len) == 0 &&
           value_ends_line(r, &a);
}

/* The read token, when the gate has one.  The admin token does not read:
 * it is for replay and retry only. */
static int
authorised(request *r)
{
    return r->g->token == NULL || bearer_is(r, r->g->token, r->g->token_len);
}

/* The JSON a read wrote into buf (an open_memstream() closed by now):
 * 200, or 503 naming the store's error when rc says the read failed. */
static enum MHD_Result
answer_rendered(request *r, int rc, char *buf, size_t len)
{
    if (rc) {
        free(buf);
        store_failed(r->g, rc);
        return answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "store_unavailable", qg_strerror(rc));
    }
    return answer(r, MHD_HTTP_OK, buf, len, "application/json");
}

static enum MHD_Result
tickets(request *r, const char *rest)
{
    char id[64], *buf = NULL, msg[128];
    size_t len = 0, n;
    const char *slash = strchr(rest, '/');
    int want_history = 0, want_steps = 0, want_deliveries = 0, rc;
    qg_ticket t;
    FILE *f;

    r->console = slash && (strcmp(slash, "/steps") == 0 ||
                           strcmp(slash, "/deliveries") == 0);
    if (!authorised(r))
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "a bearer token is required");
    if (slash) {
        want_history = strcmp(slash, "/history") == 0;
        want_steps = strcmp(slash, "/steps") == 0;
        want_deliveries = strcmp(slash, "/deliveries") == 0;
        if (!want_history && !want_steps && !want_deliveries)
            return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                                "no such resource");
    }
    /* The path arrives undecoded (no_unescape() in serve.c): "%2F",
     * "%00" or "%20" stay as sent.  The id is refused (400 bad_ticket)
     * unless it is one of the forms cli_lookup_ticket() reads, a bare
     * number, lq:ID, appt:ID or ticket:N, each number in decimal digits
     * with no sign, space or leading zero; an id too long for id[] is
     * refused without a lookup, and named cut to 40 bytes. */
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
        rc = render_history(f, r->g->st, t.id, 0);
    } else if (rc == 0 && want_steps) {
        rc = render_history(f, r->g->st, t.id, 1);
    } else if (rc == 0 && want_deliveries) {
        rc = console_deliveries(f, r->g, t.id);
    } else if (rc == 0) {
        render_ticket(f, &t);
        fputc('\n', f);
    }
    fclose(f);
    return answer_rendered(r, rc, buf, len);
}

/*
 * Ready when the store works and steps reach the HIS: not when a backlog
 * builds behind a HIS that does not take them (--ready-max-outbox), the
 * oldest waiting step is older than --ready-max-wait, or steps are in
 * the dead list (unless --ready-dead-ok).  The body says which.
 */
static enum MHD_Result
readyz(request *r)
{
    gate *g = r->g;
    uint64_t depth = 0, dead = 0;
    int64_t oldest = 0, age_s = 0;
    char *buf = NULL;
    size_t len = 0;
    int store_ok, reachable, backlog, too_old, has_dead, ready, n = 0;
    FILE *f;

    /* The store is ready when it can be read and the last write worked.
     * After a failed commit, each /readyz tries a write of its own, so
     * that readiness comes back without a delivery risking a 503. */
    if (atomic_load(&g->write_failed))
        atomic_store(&g->write_failed, qg_store_probe(g->st) != 0);
    store_ok = qg_outbox_stats(g->st, &depth, &oldest, &dead) == 0 &&
               !atomic_load(&g->write_failed);
    reachable = !g->forwarding || forwarder_reachable(g->fwd);
    if (oldest)
        age_s = (gate_now_us() - oldest) / 1000000;
    backlog = !reachable && depth >= (uint64_t)g->ready_max_outbox;
    too_old = g->ready_max_wait > 0 && depth && age_s > g->ready_max_wait;
    has_dead = !g->ready_dead_ok && dead > 0;
    ready = store_ok && !backlog && !too_old && !has_dead;
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    fprintf(f,
            "{\"ready\":%s,\"store\":%s,\"upstream_reachable\":%s,"
            "\"outbox_depth\":%" PRIu64 ",\"outbox_limit\":%ld,"
            "\"oldest_age_s\":%" PRId64 ",\"max_wait_s\":%ld,"
            "\"dead\":%" PRIu64 ",\"reasons\":[",
            ready ? "true" : "false", store_ok ? "true" : "false",
            reachable ? "true" : "false", depth, g->ready_max_outbox, age_s,
            g->ready_max_wait, dead);
    if (!store_ok)
        fprintf(f, "%s\"store_unavailable\"", n++ ? "," : "");
    if (backlog)
        fprintf(f, "%s\"outbox_backlog\"", n++ ? "," : "");
    if (too_old)
        fprintf(f, "%s\"oldest_step_too_old\"", n++ ? "," : "");
    if (has_dead)
        fprintf(f, "%s\"dead_steps\"", n++ ? "," : "");
    fprintf(f, "]}\n");
    fclose(f);
    return answer(r, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, buf,
                  len, "application/json");
}

/* The console's files, open to all (they hold code, no data), and the
 * JSON it reads, behind the token as the rest of the read API. */
static enum MHD_Result
console(request *r, const char *url)
{
    const console_asset *a;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int rc = 0;

    r->console = 1;
    if (strncmp(url, "/console/", 9) == 0) {
        if ((a = console_find(url + 9)) == NULL)
            return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                                "no such file in the console");
        if ((buf = malloc(a->len)) == NULL)
            return MHD_NO;
        memcpy(buf, a->data, a->len);
        return answer(r, MHD_HTTP_OK, buf, a->len, a->type);
    }
    if (!authorised(r))
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "a bearer token is required");
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    if (strcmp(url, "/machine") == 0)
        render_machine(f);
    else if (strcmp(url, "/held") == 0)
        rc = console_held(f, r->g);
    else if (strcmp(url, "/outbox/dead") == 0)
        rc = console_dead(f, r->g);
    else if (strcmp(url, "/waits") == 0)
        rc = console_waits(f, r->g);
    else if (strcmp(url, "/deliveries") == 0)
        metrics_minutes(f, 180); /* the overview's three hours */
    else
        rc = console_overview(f, r->g);
    fclose(f);
    return answer_rendered(r, rc, buf, len);
}

/* A query argument, NULL when absent or empty.  As the path, it arrives
 * undecoded (no_unescape() in serve.c). */
static const char *
query(request *r, const char *key)
{
    const char *v =
        MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);

    return v && *v ? v : NULL;
}

/* A time of the query: Unix milliseconds in decimal digits, or a
 * timestamp with its offset as qg_time_parse() reads it. */
static int
query_time(const char *v, int64_t *ms)
{
    char *end;
    int32_t off;

    if (v[strspn(v, "0123456789")] == '\0') {
        errno = 0;
        *ms = strtoll(v, &end, 10);
        return *end == '\0' && errno == 0 ? 0 : -1;
    }
    return qg_time_parse(v, ms, &off) == 0 ? 0 : -1;
}

/* GET /rejections?reason=&since=&until=&limit=: the newest refusals, with
 * their bodies (console_rejections()). */
static enum MHD_Result
rejections(request *r)
{
    const char *reason = query(r, "reason"), *since = query(r, "since"),
               *until = query(r, "until"), *limit = query(r, "limit");
    int64_t since_ms = INT64_MIN, until_ms = INT64_MAX;
    long n = 100;
    char *buf = NULL, *end, msg[160];
    size_t len = 0;
    qg_reason code = QG_R_NONE;
    FILE *f;
    int rc;

    r->console = 1;
    if (!authorised(r))
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "a bearer token is required");
    if (reason && qg_reason_from_name(reason, &code) != 0) {
        snprintf(msg, sizeof(msg), "reason \"%.40s\": not a reason code",
                 reason);
        return answer_error(r, MHD_HTTP_BAD_REQUEST, "bad_query", msg);
    }
    if ((since && query_time(since, &since_ms)) ||
        (until && query_time(until, &until_ms))) {
        const char *bad =
            since && query_time(since, &since_ms) ? "since" : "until";

        snprintf(msg, sizeof(msg),
                 "%s \"%.40s\": expected Unix milliseconds or a time with "
                 "its offset",
                 bad, bad[0] == 's' ? since : until);
        return answer_error(r, MHD_HTTP_BAD_REQUEST, "bad_query", msg);
    }
    if (limit) {
        n = strtol(limit, &end, 10);
        if (*end || *limit < '1' || *limit > '9' || n < 1 || n > 1000) {
            snprintf(msg, sizeof(msg),
                     "limit \"%.40s\": expected a number from 1 to 1000",
                     limit);
            return answer_error(r, MHD_HTTP_BAD_REQUEST, "bad_query", msg);
        }
    }
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    rc = console_rejections(f, r->g, reason ? (int)code : -1, since_ms,
                            until_ms, (size_t)n);
    fclose(f);
    return answer_rendered(r, rc, buf, len);
}

/* GET /tickets?state=&service=&date=&limit=: the ticket search, filtered
 * as `qgate list` filters (console_search()). */
static enum MHD_Result
search(request *r)
{
    const char *state = query(r, "state"), *service = query(r, "service"),
               *date = query(r, "date"), *limit = query(r, "limit");
    cli_ticket_filter filter;
    long n = 100;
    char *buf = NULL, *end, msg[160];
    size_t len = 0;
    qg_state s;
    FILE *f;
    int rc;

    r->console = 1;
    if (!authorised(r))
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "a bearer token is required");
    cli_ticket_filter_init(&filter);
    msg[0] = '\0';
    if (state && qg_state_from_name(state, &s) != 0)
        snprintf(msg, sizeof(msg), "state \"%.40s\": not a canonical state",
                 state);
    else if (state)
        filter.state = (int)s;
    if (!msg[0] && service) {
        errno = 0;
        filter.service_id = strtoll(service, &end, 10);
        if (*end || errno || service[0] < '1' || service[0] > '9')
            snprintf(msg, sizeof(msg),
                     "service \"%.40s\": expected a service id, a number from "
                     "1",
                     service);
    }
    if (!msg[0] && date &&
        cli_day(r->g->st, date, &filter.since, &filter.until) != 0)
        snprintf(msg, sizeof(msg), "date \"%.40s\": expected a day, YYYY-MM-DD",
                 date);
    if (!msg[0] && limit) {
        n = strtol(limit, &end, 10);
        if (*end || *limit < '1' || *limit > '9' || n < 1 || n > 1000)
            snprintf(msg, sizeof(msg),
                     "limit \"%.40s\": expected a number from 1 to 1000",
                     limit);
    }
    if (msg[0])
        return answer_error(r, MHD_HTTP_BAD_REQUEST, "bad_query", msg);
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    rc = console_search(f, r->g, &filter, (size_t)n);
    fclose(f);
    return answer_rendered(r, rc, buf, len);
}

/* ----- the console's admin actions -------------------------------------- */

enum { NOT_ADMIN, REPLAY, RETRY };

/* Which admin action url names, and its id: /rejections/{id}/replay or
 * /outbox/dead/{id}/retry, the id in decimal digits with no sign or
 * leading zero, below 2^63.  Anything else is no admin path (404). */
static int
admin_route(const char *url, uint64_t *id)
{
    static const struct {
        const char *head, *tail;
        int kind;
    } routes[] = {{"/rejections/", "/replay", REPLAY},
                  {"/outbox/dead/", "/retry", RETRY}};
    const char *p;
    size_t i, n;

    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strncmp(url, routes[i].head, strlen(routes[i].head)) != 0)
            continue;
        p = url + strlen(routes[i].head);
        n = strspn(p, "0123456789");
        if (n == 0 || n > 19 || *p == '0' || strcmp(p + n, routes[i].tail))
            return NOT_ADMIN;
        errno = 0;
        *id = strtoull(p, NULL, 10);
        return errno || *id > INT64_MAX ? NOT_ADMIN : routes[i].kind;
    }
    return NOT_ADMIN;
}

/* Whether an admin request comes from the gate's own pages.  A browser
 * sends Origin with every POST from a page, and Sec-Fetch-Site; a page of
 * another site gets one of them wrong and is refused.  A client that
 * sends neither (curl) is no browser acting for someone else. */
static int
same_origin(request *r)
{
    const char *origin, *site, *host, *rest;

    site =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return 0;
    origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (origin == NULL)
        return 1;
    host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_HOST);
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return 0; /* "null" (a sandboxed frame, a file) and the like */
    return host != NULL && strcasecmp(rest, host) == 0;
}

/*
 * POST /rejections/{id}/replay and /outbox/dead/{id}/retry, the body read
 * and dropped.  Refused, in this order: without the admin token 401 (the
 * read token 403; a gate without --admin-token-file 403 admin_disabled),
 * from another origin 403, without Content-Type: application/json 415.
 * The JSON type is a CSRF defence: a form of another site cannot send it
 * without a CORS preflight, which the gate never grants.
 */
static enum MHD_Result
admin(request *r, const char *url)
{
    const char *type;
    char *buf = NULL;
    size_t len = 0, n;
    uint64_t id = 0;
    int kind = admin_route(url, &id), status, rc = 0;
    FILE *f;

    if (r->g->read_only)
        return answer_error(r, MHD_HTTP_FORBIDDEN, "read_only",
                            "the console is read-only (qgate console): "
                            "replay and retry are made by the gate that "
                            "writes the store");
    if (r->g->admin_token == NULL)
        return answer_error(r, MHD_HTTP_FORBIDDEN, "admin_disabled",
                            "replay and retry are off: the gate has no "
                            "--admin-token-file");
    if (!bearer_is(r, r->g->admin_token, r->g->admin_token_len)) {
        if (r->g->token && bearer_is(r, r->g->token, r->g->token_len))
            return answer_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
                                "the read token does not replay or retry: "
                                "they take the admin token");
        return answer_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "the admin token is required");
    }
    if (!same_origin(r))
        return answer_error(r, MHD_HTTP_FORBIDDEN, "cross_origin",
                            "a request from another site: the Origin or "
                            "Sec-Fetch-Site header names another origin "
                            "than this gate's");
    type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_TYPE);
    n = type ? strcspn(type, "; ") : 0;
    if (n != 16 || strncasecmp(type, "application/json", 16) != 0)
        return answer_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type",
                            "send Content-Type: application/json");
    if ((f = open_memstream(&buf, &len)) == NULL)
        return MHD_NO;
    status = kind == REPLAY ? console_replay(f, r->g, id, &rc)
                            : console_retry(f, r->g, id, &rc);
    fclose(f);
    if (rc)
        return answer_rendered(r, rc, buf, len);
    return answer(r, status, buf, len, "application/json");
}

/* The console's address without its slash: a browser sent there gets its
 * page, and the page's relative links resolve under /console/. */
static enum MHD_Result
to_console(request *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if ((resp = MHD_create_response_from_buffer(
             0, NULL, MHD_RESPMEM_PERSISTENT)) == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/console/");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    console_headers(resp);
    r->status = MHD_HTTP_MOVED_PERMANENTLY;
    conntable_busy(r->g->conns, r->conn);
    ret = MHD_queue_response(r->conn, MHD_HTTP_MOVED_PERMANENTLY, resp);
    MHD_destroy_response(resp);
    return ret;
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
    if (strncmp(url, "/console/", 9) == 0 || strcmp(url, "/overview") == 0 ||
        strcmp(url, "/machine") == 0 || strcmp(url, "/held") == 0 ||
        strcmp(url, "/outbox/dead") == 0 || strcmp(url, "/waits") == 0 ||
        strcmp(url, "/deliveries") == 0)
        return console(r, url);
    if (strcmp(url, "/rejections") == 0)
        return rejections(r);
    if (strcmp(url, "/tickets") == 0)
        return search(r);
    if (strcmp(url, "/console") == 0)
        return to_console(r);
    return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such resource");
}

/* The paths read with GET only, for the 405 of other methods. */
static int
read_only_path(const char *url)
{
    static const char *const exact[] = {
        "/healthz",     "/readyz",  "/metrics",    "/console",
        "/overview",    "/machine", "/rejections", "/held",
        "/outbox/dead", "/waits",   "/deliveries", "/tickets"};
    size_t i;

    for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(url, exact[i]) == 0)
            return 1;
    return strncmp(url, "/tickets/", 9) == 0 ||
           strncmp(url, "/console/", 9) == 0;
}

/* ----- the handler ------------------------------------------------------ */

/* The source whose webhook path url is, or -1.  Paths are matched whole,
 * as sent: "/webhooks/chup/a" is source a's, "/webhooks/chup/a/" no
 * one's. */
static int
route(const gate *g, const char *url)
{
    size_t i;

    for (i = 0; i < g->nsources; i++)
        if (g->sources[i].path && strcmp(url, g->sources[i].path) == 0)
            return (int)i;
    return -1;
}

enum MHD_Result
answers_handle(void *cls, struct MHD_Connection *conn, const char *url,
               const char *method, const char *version, const char *data,
               size_t *size, void **con_cls)
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
        r->source = route(g, url);
        r->webhook = r->source >= 0;
        /* Stopping: what is in flight finishes, what begins now is turned
         * away before its body is read (and its connection closed). */
        if (atomic_load(&g->stopping))
            return answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
                                "the gate is stopping; nothing was read, send "
                                "it again");
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
        {
            uint64_t id;

            if (admin_route(url, &id) != NOT_ADMIN) {
                r->admin = r->console = 1;
                if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
                    return answer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
                                        "method_not_allowed",
                                        "replay and retry are POST only");
                return MHD_YES; /* answered once the body is read */
            }
        }
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
        if (read_only_path(url))
            return answer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "method_not_allowed",
                                "this resource is read with GET");
        return answer_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                            "no such resource");
    }
    if (r->status)
        return MHD_YES; /* answered already; drop the rest of the body */
    if (r->admin && *size) {
        *size = 0; /* an admin POST's body says nothing: the path does */
        return MHD_YES;
    }
    if (r->admin)
        return admin(r, url);
    if (!r->webhook)
        return get(r, url); /* the call after the first, with no body */
    if (r->state == DONE)
        return answer_verdict(r);
    if (r->state == QUEUED)
        return MHD_YES;
    return webhook_data(r, data, size);
}

/* A request whose body is still coming when it ends (the client went away)
 * was queued nowhere: nothing to undo.  One that is QUEUED ends only after
 * its commit, because the connection is suspended until then. */
void
answers_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
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
    /* A committed delivery's line went with its group's (committed()). */
    if (!(r->state == DONE && r->p.rc == 0) &&
        (r->status >= 400 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK))
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
