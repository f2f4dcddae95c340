/*
 * console.c - the web console's files and the JSON it reads beside the
 * read API: GET /overview, /machine and /tickets/{id}/steps.
 *
 * The counts of /overview are those of `qgate stats --json` over the
 * whole store (states, refused, reasons, refused_dropped), read here with
 * the same cursors, so that the console and the CLI never disagree.
 */
#include <inttypes.h>
#include <string.h>

#include <microhttpd.h>

#include "console.h"
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
counts(FILE *f, const unsigned long *n, int first_i, int count,
       const char *(*name)(int))
{
    int i, first = 1;

    fputc('{', f);
    for (i = first_i; i < count; i++)
        if (n[i]) {
            fprintf(f, "%s\"%s\":%lu", first ? "" : ",", name(i), n[i]);
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
    unsigned long states[QG_STATE_COUNT] = {0}, reasons[QG_REASON_COUNT] = {0},
                  tickets = 0, refused = 0;
    uint64_t depth = 0, dead = 0, held = 0, dropped = 0;
    int64_t oldest = 0;
    qg_tickets *it = NULL;
    qg_rejections *log = NULL;
    qg_ticket t;
    qg_rejection rj;
    int rc;

    if ((rc = qg_tickets_open(g->st, &it)))
        return rc;
    /* A ticket exists once a step of it was accepted: each has records,
     * as each ticket that `qgate stats` walks does. */
    while ((rc = qg_tickets_next(it, &t)) == 0)
        if ((unsigned)t.state < QG_STATE_COUNT && t.records) {
            states[t.state]++;
            tickets++;
        }
    qg_tickets_close(it);
    if (rc != QG_NOTFOUND)
        return rc;
    if ((rc = qg_rejections_open(g->st, 1, &log)))
        return rc;
    while ((rc = qg_rejections_next(log, &rj)) == 0)
        if ((unsigned)rj.reason < QG_REASON_COUNT) {
            reasons[rj.reason]++;
            refused++;
        }
    qg_rejections_close(log);
    if (rc != QG_NOTFOUND)
        return rc;
    if ((rc = qg_rejections_dropped(g->st, &dropped)) ||
        (rc = qg_held_stats(g->st, &held, NULL)) ||
        (rc = qg_outbox_stats(g->st, &depth, &oldest, &dead)))
        return rc;
    fprintf(f, "{\"tickets\":%lu,\"states\":", tickets);
    counts(f, states, 0, QG_STATE_COUNT, state_name);
    fprintf(f, ",\"refused\":%lu,\"reasons\":", refused);
    counts(f, reasons, 0, QG_REASON_COUNT, reason_name);
    fprintf(f,
            ",\"refused_dropped\":%" PRIu64 ",\"held\":%" PRIu64
            ",\"outbox_depth\":%" PRIu64 ",\"oldest_us\":%" PRId64
            ",\"dead\":%" PRIu64 ",\"upstream\":%s,\"upstream_reachable\":%s"
            ",\"now_us\":%" PRId64 "}\n",
            dropped, held, depth, oldest, dead, g->upstream ? "true" : "false",
            g->upstream == NULL || forwarder_reachable(g->fwd) ? "true"
                                                               : "false",
            gate_now_us());
    return 0;
}
