/*
 * verify.c - checking a stored ticket against the current machine and
 * against the store's own indexes.
 *
 * Runs after a machine change (are old histories still legal words?) and
 * as an audit (was anything altered or lost?).  Everything is read in the
 * snapshot of one history cursor.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"

static int found(qg_finding *out, uint32_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
found(qg_finding *out, uint32_t seq, const char *fmt, ...)
{
    va_list ap;

    out->found = 1;
    out->seq = seq;
    va_start(ap, fmt);
    vsnprintf(out->what, sizeof(out->what), fmt, ap);
    va_end(ap);
    return 0;
}

/* The record's digest must be the SHA-256 of its payload's bytes, and the
 * digest index must lead back to the record.  A purged record has no body
 * to hash: its digest is checked against the index alone. */
static int
check_digest(qg__txn *t, const qg_record *r, qg_finding *out)
{
    unsigned char digest[QG__DIGEST_LEN];
    qg__envelope env;
    char detail[256];
    uint64_t ticket;
    uint32_t seq;
    int rc;

    if (r->body == NULL)
        goto indexed;
    if (qg__envelope_parse(r->body, r->body_len, &env, detail,
                           sizeof(detail)) != QG_R_NONE) {
        qg__envelope_free(&env);
        return found(out, r->seq, "stored body does not parse: %s", detail);
    }
    qg__digest(env.payload_text.p, env.payload_text.len, digest);
    qg__envelope_free(&env);
    if (memcmp(digest, r->digest, QG__DIGEST_LEN) != 0)
        return found(out, r->seq, "stored body does not match its digest");
indexed:
    rc = qg__find_digest(t, r->digest, &ticket, &seq);
    if (rc == QG_NOTFOUND)
        return found(out, r->seq, "digest is missing from the index");
    if (rc)
        return rc;
    if (ticket != r->ticket || seq != r->seq)
        return found(out, r->seq,
                     "digest index points at ticket %" PRIu64 " step %" PRIu32,
                     ticket, seq);
    return 0;
}

/* Whether the walk compares the step summaries with the records: a
 * backend without summaries, or a store whose summaries do not cover the
 * history (its readers walk the records), has nothing to compare.  The
 * snapshot's answer, asked once rather than for each record. */
static int
summaries_read(qg__txn *t)
{
    int (*current)(qg__txn *) = QG__OPS(t->st)->steps_current;

    return current ? current(t) : 0;
}

/* The step's summary, which `qgate stats` reads in its place, must say
 * what the record says. */
static int
check_summary(qg__txn *t, const qg_record *r, qg_finding *out)
{
    qg_record s;
    int rc;

    rc = QG__OPS(t->st)->step_summary(t, r->ticket, r->seq, &s);
    if (rc == QG_ESTORE)
        return found(out, r->seq, "the step's summary is missing");
    if (rc)
        return rc;
    if (s.event != r->event || s.from != r->from || s.to != r->to ||
        s.event_ms != r->event_ms || s.service_id != r->service_id ||
        s.pos != r->pos || s.late != r->late || s.released != r->released)
        return found(out, r->seq,
                     "the step's summary (read by stats) says %s from %s "
                     "to %s at %" PRId64 " ms, service %" PRId64
                     ", place %" PRIu32,
                     qg_event_name(s.event), qg_state_name(s.from),
                     qg_state_name(s.to), s.event_ms, s.service_id, s.pos);
    return 0;
}

static int
check_alias(qg__txn *t, uint64_t ticket, qg_id_kind kind, int64_t id,
            qg_finding *out)
{
    uint64_t got;
    int rc;

    if (id == 0)
        return 0;
    rc = qg__find_alias(t, kind, id, &got);
    if (rc == QG_NOTFOUND || (rc == 0 && got != ticket))
        return found(out, 0, "%s id %" PRId64 " does not lead to the ticket",
                     kind == QG_ID_LIVE_QUEUE ? "live-queue" : "appointment",
                     id);
    return rc;
}

int
qg_store_verify_ticket(qg_store *st, uint64_t ticket, qg_finding *out)
{
    qg__ticket_row row;
    qg_history *h = NULL;
    qg_record r;
    qg__txn *t;
    qg_state state = QG_ST_NEW;
    uint32_t n = 0, max_seq = 0;
    int64_t last_ms = INT64_MIN;
    int rc, summaries;

    if (st == NULL || out == NULL || ticket == 0)
        return QG_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = qg_history_open(st, ticket, &h)))
        return rc;
    t = qg__history_txn(h);
    if ((rc = qg__get_ticket(t, ticket, &row)))
        goto done;
    t->source = row.source; /* its ids are its source's */
    if ((summaries = summaries_read(t)) < 0) {
        rc = summaries;
        goto done;
    }
    while (!out->found && (rc = qg_history_next(h, &r)) == 0) {
        int next = qg_machine_next(r.from, r.event);

        if (r.pos != ++n)
            rc = found(out, r.seq,
                       "step %" PRIu32 " stands at place %" PRIu32
                       " in event time where %" PRIu32 " was expected",
                       r.seq, r.pos, n);

        else if (r.from != state)
            rc = found(out, r.seq,
                       "starts from %s but the step before "
                       "ended in %s",
                       qg_state_name(r.from), qg_state_name(state));
        else if (next < 0 || next != (int)r.to)
            rc = found(out, r.seq,
                       "the current machine (%s) does not take %s from %s "
                       "to %s",
                       qg_machine_version(), qg_event_name(r.event),
                       qg_state_name(r.from), qg_state_name(r.to));
        else if (r.event_ms < last_ms)
            rc = found(out, r.seq, "older than the step before it");
        else if ((rc = check_digest(t, &r, out)) == 0 && !out->found &&
                 summaries)
            rc = check_summary(t, &r, out);
        state = r.to;
        last_ms = r.event_ms;
        if (r.seq > max_seq)
            max_seq = r.seq;
    }
    if (rc == QG_NOTFOUND)
        rc = 0;
    if (rc || out->found)
        goto done;
    if (n != row.t.records)
        rc = found(out, 0,
                   "the ticket counts %" PRIu32 " steps, its history "
                   "holds %" PRIu32,
                   row.t.records, n);
    else if (max_seq != n)
        rc = found(out, max_seq,
                   "steps are numbered up to %" PRIu32 " but the history "
                   "holds %" PRIu32,
                   max_seq, n);
    else if (state != row.t.state)
        rc = found(out, 0, "the ticket is %s but its history ends in %s",
                   qg_state_name(row.t.state), qg_state_name(state));
    else if ((rc = check_alias(t, ticket, QG_ID_LIVE_QUEUE, row.t.live_queue_id,
                               out)) == 0 &&
             !out->found)
        rc = check_alias(t, ticket, QG_ID_APPOINTMENT, row.t.appointment_id,
                         out);
done:
    qg_history_close(h);
    return rc;
}
