/*
 * console.c - the web console's files, the JSON it reads beside the
 * read API (GET /overview, /machine, /tickets/{id}/steps, /rejections,
 * /held, /outbox/dead, /waits) and what its admin buttons do (replay,
 * retry).
 *
 * The counts of /overview are those of `qgate stats --json` over the
 * whole store (states, refused, reasons, refused_dropped): the store keeps
 * them (qg_store_counts()), and `qgate stats` counts the same rows.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "console.h"
#include "durations.h"
#include "serve.h"

const console_asset *
console_find(const char *rest)
{
    const console_asset *a;

    if (*rest == '\0')
        rest = "index.html";
    for (a = console_assets; a->name; a++)
        if (strcmp(a->name, rest) == 0)
            return a;
    return NULL;
}

void
console_headers(struct MHD_Response *resp)
{
    /* Everything from the gate itself, and no inline script or style:
     * a value from a webhook body that slipped into the page as markup
     * still could not run.  No framing (clickjacking of the later
     * replay buttons), no referrer (ticket ids in the URL). */
    MHD_add_response_header(
        resp, "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
}

/* {"name":count,...} of the nonzero counts. */
static void
counts(FILE *f, const uint64_t *n, int count, const char *(*name)(int))
{
    int i, first = 1;

    fputc('{', f);
    for (i = 0; i < count; i++)
        if (n[i]) {
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", name(i), n[i]);
            first = 0;
        }
    fputc('}', f);
}

static const char *
state_name(int i)
{
    return qg_state_name((qg_state)i);
}

static const char *
reason_name(int i)
{
    return qg_reason_name((qg_reason)i);
}

int
console_overview(FILE *f, gate *g)
{
    uint64_t depth = 0, dead = 0, held = 0, dropped = 0;
    int64_t oldest = 0;
    qg_counts c;
    int rc;

    /* Kept by the store: a pass over every ticket and refusal on each
     * request grew with the store (docs/PERFORMANCE.md). */
    if ((rc = qg_store_counts(g->st, &c)) ||
        (rc = qg_rejections_dropped(g->st, &dropped)) ||
        (rc = qg_held_stats(g->st, &held, NULL)) ||
        (rc = qg_outbox_stats(g->st, &depth, &oldest, &dead)))
        return rc;
    fprintf(f, "{\"tickets\":%" PRIu64 ",\"states\":", c.tickets);
    counts(f, c.states, QG_STATE_COUNT, state_name);
    fprintf(f, ",\"refused\":%" PRIu64 ",\"reasons\":", c.refused);
    counts(f, c.reasons, QG_REASON_COUNT, reason_name);
    fprintf(f,
            ",\"refused_dropped\":%" PRIu64 ",\"held\":%" PRIu64
            ",\"outbox_depth\":%" PRIu64 ",\"oldest_us\":%" PRId64
            ",\"dead\":%" PRIu64 ",\"upstream\":%s,\"upstream_reachable\":%s"
            ",\"read_only\":%s,\"now_us\":%" PRId64 "}\n",
            dropped, held, depth, oldest, dead, g->upstream ? "true" : "false",
            g->upstream == NULL || forwarder_reachable(g->fwd) ? "true"
                                                               : "false",
            /* qgate console: the page shows no Replay or Retry button */
            g->read_only ? "true" : "false", gate_now_us());
    return 0;
}

/* ----- ticket search ---------------------------------------------------- */

int
console_search(FILE *f, gate *g, const cli_ticket_filter *filter, size_t limit)
{
    qg_tickets *it = NULL;
    qg_ticket t;
    size_t shown = 0;
    int rc;

    /* Newest first, as the store keeps them: a search that fills its
     * limit stops there, one more ticket read to say whether there are
     * more. */
    if ((rc = qg_tickets_open(g->st, &it)))
        return rc;
    fputs("{\"tickets\":[", f);
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        if (!cli_ticket_matches(filter, &t))
            continue;
        if (shown == limit)
            break;
        if (shown++)
            fputs(",\n", f);
        render_ticket(f, &t);
    }
    qg_tickets_close(it);
    if (rc && rc != QG_NOTFOUND)
        return rc;
    fprintf(f, "],\"more\":%s}\n", rc == 0 ? "true" : "false");
    return 0;
}

/* ----- refusals, held deliveries, dead letters -------------------------- */

/* The object a render_*() function wrote into buf, with the source and
 * the body as received (a JSON string, null when purged) added before
 * its closing brace: the console shows the body as text. */
static void
with_body(FILE *f, const char *buf, size_t len, const char *source,
          const char *body, size_t body_len)
{
    fwrite(buf, 1, len - 1, f);
    fputs(",\"source\":", f);
    render_string(f, source, strlen(source));
    fputs(",\"body\":", f);
    if (body)
        render_string(f, body, body_len);
    else
        fputs("null", f);
    fputc('}', f);
}

/* What one /rejections answer holds at most, bodies included: a refused
 * body may be as long as --max-body, and 1000 of those would not fit in
 * memory.  Past it the older matches are left out ("shown" says how many
 * are in). */
#define REJECTIONS_MAX_BYTES (16 << 20)

int
console_rejections(FILE *f, gate *g, int reason, int64_t since_ms,
                   int64_t until_ms, size_t limit)
{
    qg_rejections *log = NULL;
    qg_rejection rj;
    uint64_t *ring;
    unsigned long matched = 0, shown = 0;
    size_t i, n, len;
    char *buf;
    FILE *one;
    int rc;

    /* The log is read in id order, which is arrival order: a first pass
     * keeps the ids of the newest `limit` matches in a ring; the second
     * reads each of them again, newest first, with its body. */
    if ((ring = calloc(limit, sizeof(*ring))) == NULL)
        return QG_ENOMEM;
    if ((rc = qg_rejections_open(g->st, 1, &log)))
        goto free_ring;
    while ((rc = qg_rejections_next(log, &rj)) == 0)
        if ((reason < 0 || (int)rj.reason == reason) &&
            rj.received_us / 1000 >= since_ms &&
            rj.received_us / 1000 < until_ms)
            ring[matched++ % limit] = rj.id;
    qg_rejections_close(log);
    log = NULL;
    if (rc != QG_NOTFOUND)
        goto free_ring;
    rc = 0;
    n = matched < limit ? matched : limit;
    fprintf(f, "{\"matched\":%lu,\"rejections\":[", matched);
    for (i = 0; i < n && ftello(f) < REJECTIONS_MAX_BYTES; i++) {
        uint64_t id = ring[(matched - 1 - i) % limit];

        if ((rc = qg_rejections_open(g->st, id, &log)) ||
            (rc = qg_rejections_next(log, &rj)) || rj.id != id) {
            qg_rejections_close(log);
            log = NULL;
            if (rc && rc != QG_NOTFOUND)
                goto free_ring;
            rc = 0;
            continue; /* dropped since the first pass */
        }
        buf = NULL;
        if ((one = open_memstream(&buf, &len)) == NULL) {
            qg_rejections_close(log);
            rc = QG_ENOMEM;
            goto free_ring;
        }
        render_rejection(one, &rj);
        fclose(one);
        if (shown++)
            fputs(",\n", f);
        with_body(f, buf, len, rj.source, rj.body, rj.body_len);
        free(buf);
        qg_rejections_close(log);
        log = NULL;
    }
    fprintf(f, "],\"shown\":%lu}\n", shown);
free_ring:
    free(ring);
    return rc;
}

int
console_held(FILE *f, gate *g)
{
    int64_t now = gate_now_us(), window_us = g->c->reorder_window * 1000000;
    qg_held_list *hl = NULL;
    qg_held h;
    char *buf;
    size_t len;
    FILE *one;
    int rc, first = 1;

    if ((rc = qg_held_open(g->st, &hl)))
        return rc;
    fputs("{\"held\":[", f);
    while ((rc = qg_held_next(hl, &h)) == 0) {
        buf = NULL;
        if ((one = open_memstream(&buf, &len)) == NULL) {
            rc = QG_ENOMEM;
            break;
        }
        render_held(one, &h, now, h.received_us + window_us);
        fclose(one);
        if (!first)
            fputs(",\n", f);
        with_body(f, buf, len, h.source, h.body, h.body_len);
        free(buf);
        first = 0;
    }
    qg_held_close(hl);
    if (rc != QG_NOTFOUND)
        return rc;
    fputs("]}\n", f);
    return 0;
}

/*
 * When a refused delivery happened, as Chup wrote it: its body's
 * payload.timestamp, parsed as the engine reads it.  The rejection log
 * keeps no event time of its own.  0 when the body gives none (purged,
 * a prefix, not JSON, no timestamp).
 */
static int
body_event_time(const char *body, size_t len, int64_t *ms, int32_t *offset_s)
{
    json_tokener *tok;
    json_object *root, *payload, *ts;
    int ok = 0;

    if (body == NULL || len > (size_t)INT_MAX ||
        (tok = json_tokener_new()) == NULL)
        return 0;
    root = json_tokener_parse_ex(tok, body, (int)len);
    if (root && json_object_object_get_ex(root, "payload", &payload) &&
        json_object_object_get_ex(payload, "timestamp", &ts) &&
        json_object_is_type(ts, json_type_string) &&
        qg_time_parse(json_object_get_string(ts), ms, offset_s) == 0)
        ok = 1;
    json_object_put(root);
    json_tokener_free(tok);
    return ok;
}

/* buf (a rendered object) with ,"event_ms":ms, then ,"timestamp":T when
 * stamp (a held delivery's rendering has its own), and ,"event_time":
 * which, added before its closing brace; then its source and body. */
static int
with_time(FILE *f, const char *buf, size_t len, int64_t ms, int32_t offset_s,
          int stamp, const char *which, const char *source, const char *body,
          size_t body_len)
{
    char when[40], *out = NULL;
    size_t out_len = 0;
    FILE *one;

    if ((one = open_memstream(&out, &out_len)) == NULL)
        return QG_ENOMEM;
    fwrite(buf, 1, len - 1, one);
    fprintf(one, ",\"event_ms\":%" PRId64, ms);
    if (stamp)
        fprintf(one, ",\"timestamp\":\"%s\"",
                qg_time_format(ms, offset_s, when, sizeof(when)));
    fprintf(one, ",\"event_time\":\"%s\"}", which);
    fclose(one);
    with_body(f, out, out_len, source, body, body_len);
    free(out);
    return 0;
}

int
console_deliveries(FILE *f, gate *g, uint64_t ticket)
{
    int64_t now = gate_now_us(), window_us = g->c->reorder_window * 1000000;
    qg_rejections *log = NULL;
    qg_held_list *hl = NULL;
    qg_rejection rj;
    qg_held h;
    int64_t ms;
    int32_t off;
    char *buf;
    size_t len;
    FILE *one;
    int rc, first = 1, event;

    /* The ticket's entries of the log, by the store's index. */
    if ((rc = qg_rejections_open_ticket(g->st, ticket, &log)))
        return rc;
    fputs("{\"refused\":[", f);
    while ((rc = qg_rejections_next(log, &rj)) == 0) {
        buf = NULL;
        if ((one = open_memstream(&buf, &len)) == NULL) {
            rc = QG_ENOMEM;
            break;
        }
        render_rejection(one, &rj);
        fclose(one);
        event =
            body_event_time(rj.body, rj.truncated ? 0 : rj.body_len, &ms, &off);
        if (!event) {
            ms = rj.received_us / 1000;
            off = 0;
        }
        if (!first)
            fputs(",\n", f);
        rc = with_time(f, buf, len, ms, off, 1, event ? "event" : "received",
                       rj.source, rj.body, rj.body_len);
        free(buf);
        first = 0;
        if (rc)
            break;
    }
    qg_rejections_close(log);
    if (rc != QG_NOTFOUND)
        return rc;
    if ((rc = qg_held_open(g->st, &hl)))
        return rc;
    fputs("],\"held\":[", f);
    first = 1;
    while ((rc = qg_held_next(hl, &h)) == 0) {
        if (h.ticket != ticket)
            continue;
        buf = NULL;
        if ((one = open_memstream(&buf, &len)) == NULL) {
            rc = QG_ENOMEM;
            break;
        }
        render_held(one, &h, now, h.received_us + window_us);
        fclose(one);
        if (!first)
            fputs(",\n", f);
        rc = with_time(f, buf, len, h.event_ms, h.utc_offset_s, 0, "event",
                       h.source, h.body, h.body_len);
        free(buf);
        first = 0;
        if (rc)
            break;
    }
    qg_held_close(hl);
    if (rc != QG_NOTFOUND)
        return rc;
    fputs("]}\n", f);
    return 0;
}

int
console_dead(FILE *f, gate *g)
{
    qg_outbox *ob = NULL;
    qg_outbox_entry e;
    int rc, first = 1;

    if ((rc = qg_outbox_open(g->st, 1, &ob)))
        return rc;
    fputs("{\"dead\":[", f);
    while ((rc = qg_outbox_next(ob, &e)) == 0) {
        if (!first)
            fputs(",\n", f);
        render_outbox_entry(f, &e, 1);
        first = 0;
    }
    qg_outbox_close(ob);
    if (rc != QG_NOTFOUND)
        return rc;
    fputs("]}\n", f);
    return 0;
}

/* {"error": msg, "code": code}, as answers.c writes its errors. */
static int
refusal(FILE *f, int status, const char *code, const char *msg)
{
    fputs("{\"error\":", f);
    render_string(f, msg, strlen(msg));
    fprintf(f, ",\"code\":\"%s\"}\n", code);
    return status;
}

/* One replay at a time: two operators pressing Replay together decide
 * the entry once, and the second is told it was resolved. */
static pthread_mutex_t replaying = PTHREAD_MUTEX_INITIALIZER;

int
console_replay(FILE *f, gate *g, uint64_t id, int *rc)
{
    char source[QG_SOURCE_NAME_MAX + 1], input[32], msg[160];
    qg_rejections *log = NULL;
    qg_rejection rj;
    qg_replay how = QG_REPLAY_REFUSED;
    qg_result res;
    size_t i;

    snprintf(input, sizeof(input), "rejection:%" PRIu64, id);
    /* Which source's engine decides it: the one that refused it. */
    if ((*rc = qg_rejections_open(g->st, id, &log)) == 0 &&
        (*rc = qg_rejections_next(log, &rj)) == 0 && rj.id != id)
        *rc = QG_NOTFOUND;
    if (*rc == 0)
        snprintf(source, sizeof(source), "%s", rj.source);
    qg_rejections_close(log);
    if (*rc == QG_NOTFOUND) {
        *rc = 0;
        snprintf(msg, sizeof(msg), "%s: not in the rejection log", input);
        return refusal(f, 404, "not_found", msg);
    }
    if (*rc)
        return 0;
    for (i = 0; i < g->nsources; i++)
        if (strcmp(g->sources[i].name, source) == 0)
            break;
    if (i == g->nsources) {
        snprintf(msg, sizeof(msg),
                 "%s came from source \"%s\", which this gate does not serve",
                 input, source);
        return refusal(f, 409, "unknown_source", msg);
    }
    pthread_mutex_lock(&replaying);
    pthread_rwlock_rdlock(&g->eng_lock);
    *rc = qg_rejections_replay(g->sources[i].eng, g->st, id, &res, &how);
    pthread_rwlock_unlock(&g->eng_lock);
    pthread_mutex_unlock(&replaying);
    if (*rc == QG_NOTFOUND) { /* dropped meanwhile */
        *rc = 0;
        snprintf(msg, sizeof(msg), "%s: not in the rejection log", input);
        return refusal(f, 404, "not_found", msg);
    }
    if (*rc)
        return 0;
    switch (how) {
    case QG_REPLAY_RESOLVED:
        snprintf(msg, sizeof(msg), "%s was resolved already: not replayed",
                 input);
        return refusal(f, 409, "already_resolved", msg);
    case QG_REPLAY_TRUNCATED:
        snprintf(msg, sizeof(msg),
                 "%s kept only a prefix of its body: it cannot be replayed",
                 input);
        return refusal(f, 409, "cannot_replay", msg);
    case QG_REPLAY_PURGED:
        snprintf(msg, sizeof(msg),
                 "%s: its body was purged: it cannot be replayed", input);
        return refusal(f, 409, "cannot_replay", msg);
    case QG_REPLAY_REFUSED:
    case QG_REPLAY_PASSED:
        break;
    }
    if (how == QG_REPLAY_PASSED && res.verdict == QG_ACCEPTED)
        forwarder_wake(g->fwd); /* the step is in the outbox now */
    log_event("info", "replayed",
              ",\"rejection\":%" PRIu64 ",\"verdict\":\"%s\",\"code\":\"%s\","
              "\"resolved\":%s,\"ticket\":%" PRIu64,
              id, qg_verdict_name(res.verdict), qg_reason_name(res.reason),
              how == QG_REPLAY_PASSED ? "true" : "false", res.ticket);
    fprintf(f, "{\"rejection\":%" PRIu64 ",\"resolved\":%s,\"verdict\":", id,
            how == QG_REPLAY_PASSED ? "true" : "false");
    render_verdict(f, &res, input);
    fputs("}\n", f);
    return 200;
}

int
console_retry(FILE *f, gate *g, uint64_t id, int *rc)
{
    uint64_t moved = 0;
    char msg[96];

    /* qg_outbox_requeue() with id 0 would move them all: no such entry. */
    if (id == 0 ||
        (*rc = qg_outbox_requeue(g->st, id, &moved)) == QG_NOTFOUND) {
        *rc = 0;
        snprintf(msg, sizeof(msg),
                 "dead letter %" PRIu64 ": not in the dead list", id);
        return refusal(f, 404, "not_found", msg);
    }
    if (*rc)
        return 0;
    forwarder_wake(g->fwd);
    log_event("info", "dead letters retried",
              ",\"dead\":%" PRIu64 ",\"moved\":%" PRIu64, id, moved);
    fprintf(f, "{\"dead\":%" PRIu64 ",\"moved\":%" PRIu64 "}\n", id, moved);
    return 200;
}

/* ----- waiting times ---------------------------------------------------- */

/* One service's walk: its durations, and the ticket walked now. */
typedef struct service_walk {
    int64_t id; /* 0: every service, as `qgate stats` without --service */
    durations d;
} service_walk;

/* The walk of id in *all, added (zeroed) when it is not there yet. */
static service_walk *
service_of(service_walk **all, size_t *n, size_t *cap, int64_t id)
{
    service_walk *grown;
    size_t i;

    for (i = 0; i < *n; i++)
        if ((*all)[i].id == id)
            return &(*all)[i];
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        if ((grown = realloc(*all, *cap * sizeof(*grown))) == NULL)
            return NULL;
        *all = grown;
    }
    memset(&(*all)[*n], 0, sizeof(**all));
    (*all)[*n].id = id;
    return &(*all)[(*n)++];
}

/* A ticket's records, walked for every service (id 0) and for each
 * service one of them names: what `qgate stats` and `qgate stats
 * --service ID` would count of it. */
static int
walk_ticket(service_walk **all, size_t *n, size_t *cap, const qg_record *recs,
            size_t nrecs)
{
    service_walk *sw;
    size_t i, j;
    ticket_walk w;

    for (i = 0; i <= nrecs; i++) {
        int64_t id = i == 0 ? 0 : recs[i - 1].service_id;

        if (i > 0 && id == 0)
            continue;
        for (j = 1; j < i; j++) /* walked already for this service */
            if (recs[j - 1].service_id == id)
                break;
        if (i > 0 && j < i)
            continue;
        if ((sw = service_of(all, n, cap, id)) == NULL)
            return QG_ENOMEM;
        memset(&w, 0, sizeof(w));
        for (j = 0; j < nrecs; j++)
            if (durations_step(&sw->d, &w, &recs[j], INT64_MIN, INT64_MAX, id) <
                0)
                return QG_ENOMEM;
        if (nrecs && durations_end_ticket(&sw->d, &w, id) < 0)
            return QG_ENOMEM;
    }
    return 0;
}

static int
by_service(const void *a, const void *b)
{
    int64_t x = ((const service_walk *)a)->id,
            y = ((const service_walk *)b)->id;

    return (x > y) - (x < y);
}

int
console_waits(FILE *f, gate *g)
{
    service_walk *all = NULL;
    qg_record *recs = NULL, *grown, r;
    size_t n = 0, cap = 0, nrecs = 0, rcap = 0, i;
    qg_history *h = NULL;
    int rc;

    /* Every service at 0 first, even with no ticket. */
    if (service_of(&all, &n, &cap, 0) == NULL)
        return QG_ENOMEM;
    if ((rc = qg_history_open_order(g->st, 0, QG_EVENT_ORDER | QG_SUMMARY, &h)))
        goto free_all;
    while ((rc = qg_history_next(h, &r)) == 0) {
        if (r.seq == 1 && nrecs &&
            (rc = walk_ticket(&all, &n, &cap, recs, nrecs)))
            break;
        if (r.seq == 1)
            nrecs = 0;
        if (nrecs == rcap) {
            rcap = rcap ? rcap * 2 : 32;
            if ((grown = realloc(recs, rcap * sizeof(*grown))) == NULL) {
                rc = QG_ENOMEM;
                break;
            }
            recs = grown;
        }
        recs[nrecs++] = r; /* a summary: no body to outlive */
    }
    qg_history_close(h);
    if (rc != QG_NOTFOUND)
        goto free_all;
    if ((rc = walk_ticket(&all, &n, &cap, recs, nrecs)))
        goto free_all;
    qsort(all, n, sizeof(*all), by_service);
    fputs("{\"services\":[", f);
    for (i = 0; i < n; i++) {
        durations_order(&all[i].d);
        fputs(i ? ",\n{" : "{", f);
        render_id(f, "service_id", all[i].id, 1);
        fprintf(f, ",\"tickets\":%lu,\"durations\":", all[i].d.tickets);
        durations_render(f, &all[i].d, 1);
        fputc('}', f);
    }
    fputs("]}\n", f);
free_all:
    for (i = 0; i < n; i++)
        durations_free(&all[i].d);
    free(all);
    free(recs);
    return rc;
}
