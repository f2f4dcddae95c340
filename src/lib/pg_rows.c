/*
 * pg_rows.c - what the engine reads before deciding and writes after, in
 * the PostgreSQL store: the same rows, with the same meaning, as the LMDB
 * store's (store.c, held.c, source.c), so that the same deliveries give
 * the same tickets, histories, refusals and held deliveries on both.
 *
 * Gates that share the database decide concurrently.  LMDB has one
 * writer at a time; here each write transaction runs in READ COMMITTED
 * and serializes with the others on what it decides about, with
 * transaction-scoped advisory locks (pg_advisory_xact_lock), taken in the
 * lookups the engine makes before deciding, and only in write
 * transactions:
 *   - find_digest locks the payload's digest (of its source): a delivery
 *     that two gates receive at once is decided by one, and the other,
 *     once it has the lock, finds the step and answers duplicate;
 *   - find_alias and held_ids_for lock the Chup id (source, kind, id)
 *     they look up: two deliveries for a new ticket make one ticket;
 *   - get_ticket locks the ticket: steps of one ticket that arrive under
 *     different ids are decided one after the other.
 *   - held_get locks the held delivery: one gate releases or expires it,
 *     and another that read its id finds it gone (a conflict: gone()).
 * The lock is taken by one statement and the row read by the next: in
 * READ COMMITTED each statement sees what was committed before it began,
 * so the read sees what the transaction that held the lock wrote.  That
 * is why READ COMMITTED is enough, and SERIALIZABLE would only add
 * failures: every row a decision reads is behind a lock it holds.  Locks
 * in the lookups, rather than an operation of their own, keep the engine
 * as it is, and cover every path that reads an id (a refusal naming its
 * ticket, a held delivery released or expired).  A transaction that
 * holds locks only tries for more (qg__pg_lock()), so they never
 * deadlock; the unique indexes on a history's (ticket, seq) and (source,
 * digest) catch what the locks would miss; a lock held elsewhere and a
 * unique violation are conflicts, and the write runs again from its
 * start (pg.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain_int.h"
#include "pg_int.h"

/* The verdicts whose entries are bounded (store.c's is_unsigned()). */
static int
is_unsigned(unsigned verdict)
{
    return verdict == QG_UNAUTHENTICATED || verdict == QG_MALFORMED;
}

/* The sizes the LMDB store gives a rejection entry, so that the bound on
 * unsigned entries drops the same ones on both stores. */
#define REJECTION_HDR      48
#define REJ_EXTRA          48
#define REJ_RESOLVED_EXTRA 24

/* ----- locks ------------------------------------------------------------ */

/* A lock key: FNV-1a of what is locked.  Two things that hash alike only
 * wait for each other. */
static int64_t
lock_key(char tag, unsigned source, int64_t a, const unsigned char *bytes,
         size_t len)
{
    uint64_t h = 14695981039346656037u;
    unsigned char buf[10];
    size_t i;

    buf[0] = (unsigned char)tag;
    buf[1] = (unsigned char)source;
    put64(buf + 2, (uint64_t)a);
    for (i = 0; i < sizeof(buf); i++)
        h = (h ^ buf[i]) * 1099511628211u;
    for (i = 0; i < len; i++)
        h = (h ^ bytes[i]) * 1099511628211u;
    return (int64_t)h;
}

/* ----- tickets ---------------------------------------------------------- */

int
qg__pg_find_alias(qg__txn *t, qg_id_kind kind, int64_t id, uint64_t *ticket)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    if ((rc = qg__pg_lock(
             t, lock_key('a', t->source, (int64_t)kind << 56 ^ id, NULL, 0))))
        return rc;
    qg__pg_int(&p, t->source);
    qg__pg_int(&p, kind);
    qg__pg_int(&p, id);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT ticket FROM qgate.aliases WHERE source = "
                          "$1::int8 AND kind = $2::int8 AND chup_id = $3::int8",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0)
        *ticket = (uint64_t)qg__pg_get(r, 0, 0);
    PQclear(r);
    return rc;
}

static int
put_alias(qg__txn *t, qg_id_kind kind, int64_t id, uint64_t ticket)
{
    qg__pgparams p = {0};

    qg__pg_int(&p, t->source);
    qg__pg_int(&p, kind);
    qg__pg_int(&p, id);
    qg__pg_int(&p, (int64_t)ticket);
    return qg__pg_exec(t->be,
                       "INSERT INTO qgate.aliases VALUES ($1::int8, $2::int8, "
                       "$3::int8, $4::int8) ON CONFLICT (source, kind, "
                       "chup_id) DO UPDATE SET ticket = EXCLUDED.ticket",
                       &p, NULL);
}

int
qg__pg_get_ticket(qg__txn *t, uint64_t ticket, qg__ticket_row *row)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    if ((rc = qg__pg_lock(t, lock_key('t', 0, (int64_t)ticket, NULL, 0))))
        return rc;
    qg__pg_int(&p, (int64_t)ticket);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT " QG__PG_TICKET_COLS
                          " FROM qgate.tickets WHERE id = $1::int8",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0)
        qg__pg_ticket_row(r, 0, 0, row);
    PQclear(r);
    return rc;
}

int
qg__pg_put_ticket(qg__txn *t, const qg__ticket_row *row)
{
    qg__pgparams p = {0};

    qg__pg_int(&p, (int64_t)row->t.id);
    qg__pg_int(&p, row->t.state);
    qg__pg_int(&p, row->flags);
    qg__pg_int(&p, row->source);
    qg__pg_int(&p, row->t.records);
    qg__pg_int(&p, row->t.rejections);
    qg__pg_int(&p, row->t.live_queue_id);
    qg__pg_int(&p, row->t.appointment_id);
    qg__pg_int(&p, row->t.last_event_ms);
    qg__pg_int(&p, row->t.first_received_us);
    qg__pg_int(&p, row->t.last_received_us);
    qg__pg_int(&p, row->t.service_id);
    qg__pg_int(&p, row->t.staff_id);
    qg__pg_bytes(&p, row->appointment_date, strnlen(row->appointment_date, 15));
    qg__pg_bytes(&p, row->appointment_time, strnlen(row->appointment_time, 15));
    return qg__pg_exec(
        t->be,
        "INSERT INTO qgate.tickets (" QG__PG_TICKET_COLS
        ") VALUES ($1::int8, $2::int8, $3::int8, $4::int8, $5::int8, "
        "$6::int8, $7::int8, $8::int8, $9::int8, $10::int8, $11::int8, "
        "$12::int8, $13::int8, $14::bytea, $15::bytea) ON CONFLICT (id) DO "
        "UPDATE SET state = EXCLUDED.state, flags = EXCLUDED.flags, source = "
        "EXCLUDED.source, records = EXCLUDED.records, rejections = "
        "EXCLUDED.rejections, live_queue_id = EXCLUDED.live_queue_id, "
        "appointment_id = EXCLUDED.appointment_id, last_event_ms = "
        "EXCLUDED.last_event_ms, first_received_us = "
        "EXCLUDED.first_received_us, last_received_us = "
        "EXCLUDED.last_received_us, service_id = EXCLUDED.service_id, "
        "staff_id = EXCLUDED.staff_id, appointment_date = "
        "EXCLUDED.appointment_date, appointment_time = "
        "EXCLUDED.appointment_time",
        &p, NULL);
}

/* ----- history ---------------------------------------------------------- */

int
qg__pg_find_digest(qg__txn *t, const unsigned char *digest, uint64_t *ticket,
                   uint32_t *seq)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    if ((rc = qg__pg_lock(t,
                          lock_key('d', t->source, 0, digest, QG__DIGEST_LEN))))
        return rc;
    qg__pg_int(&p, t->source);
    qg__pg_bytes(&p, digest, QG__DIGEST_LEN);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT ticket, seq FROM qgate.history WHERE "
                          "source = $1::int8 AND digest = $2::bytea",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0) {
        *ticket = (uint64_t)qg__pg_get(r, 0, 0);
        *seq = (uint32_t)qg__pg_get(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

/* The step's leaf, from what is written (chain_int.h): the body's digest
 * is the engine's when it took one. */
static int
chain_step(qg__txn *t, const qg_record *rec, const qg__facts *f,
           const unsigned char *body_digest)
{
    unsigned char digest[QG__DIGEST_LEN], leaf[QG_CHAIN_HASH_LEN];
    int rc;

    if (body_digest)
        memcpy(digest, body_digest, sizeof(digest));
    else if ((rc = qg__digest(rec->body, rec->body_len, digest)))
        return rc;
    if ((rc = qg__chain_leaf_record(rec, f, digest, leaf)))
        return rc;
    return qg__pg_chain_add(t, QG_CHAIN_STEP, QG__CHAIN_APPEND, rec->ticket,
                            rec->seq, rec->received_us, leaf);
}

static int
append_record(qg__txn *t, const qg_record *rec, const qg__facts *f,
              const unsigned char *body_digest)
{
    static const qg__facts none;
    qg__pgparams p = {0};
    int rc;

    if ((rc = chain_step(t, rec, f, body_digest)))
        return rc;
    if (f == NULL)
        f = &none;
    qg__pg_int(&p, (int64_t)rec->ticket);
    qg__pg_int(&p, rec->seq);
    qg__pg_int(&p, rec->pos);
    qg__pg_int(&p, t->source);
    qg__pg_int(&p, rec->received_us);
    qg__pg_int(&p, rec->event_ms);
    qg__pg_int(&p, rec->utc_offset_s);
    qg__pg_int(&p, rec->event);
    qg__pg_int(&p, rec->from);
    qg__pg_int(&p, rec->to);
    qg__pg_int(&p, rec->late != 0);
    qg__pg_int(&p, rec->released != 0);
    qg__pg_int(&p, rec->service_id);
    qg__pg_int(&p, rec->staff_id);
    qg__pg_bytes(&p, rec->digest, QG__DIGEST_LEN);
    qg__pg_bytes(&p, rec->machine, strnlen(rec->machine, 16));
    qg__pg_int(&p, f != &none);
    qg__pg_int(&p, f->em.rule);
    qg__pg_int(&p, f->em.event);
    qg__pg_int(&p, f->em.appointment != 0);
    qg__pg_int(&p, f->em.updated != 0);
    qg__pg_int(&p, f->state_event);
    qg__pg_bytes(&p, f->appointment_date, strnlen(f->appointment_date, 15));
    qg__pg_bytes(&p, f->appointment_time, strnlen(f->appointment_time, 15));
    qg__pg_bytes(&p, rec->body, rec->body_len);
    return qg__pg_exec(
        t->be,
        "INSERT INTO qgate.history (ticket, seq, pos, source, received_us, "
        "event_ms, utc_offset_s, event, from_state, to_state, late, released, "
        "service_id, staff_id, digest, machine, has_facts, rule, rule_event, "
        "by_appointment, updated, state_event, f_appointment_date, "
        "f_appointment_time, body) VALUES ($1::int8, $2::int8, $3::int8, "
        "$4::int8, $5::int8, $6::int8, $7::int8, $8::int8, $9::int8, "
        "$10::int8, $11::int8 <> 0, $12::int8 <> 0, $13::int8, $14::int8, "
        "$15::bytea, $16::text, $17::int8 <> 0, $18::int8, $19::int8, "
        "$20::int8 <> 0, $21::int8 <> 0, $22::int8, $23::bytea, $24::bytea, "
        "$25::bytea)",
        &p, NULL);
}

int
qg__pg_load_path(qg__txn *t, uint64_t ticket, qg__path *path)
{
    qg__pgparams p = {0};
    qg__path_step *s;
    PGresult *r;
    int i, n, rc;

    path->n = 0;
    qg__pg_int(&p, (int64_t)ticket);
    if ((rc = qg__pg_exec(
             t->be,
             "SELECT seq, pos, event_ms, event, from_state, to_state, "
             "service_id, has_facts, rule, rule_event, by_appointment, "
             "updated, state_event, f_appointment_date, f_appointment_time "
             "FROM qgate.history WHERE ticket = $1::int8 ORDER BY pos, seq",
             &p, &r)))
        return rc;
    n = PQntuples(r);
    if ((size_t)n > path->cap) {
        s = realloc(path->steps, (size_t)n * sizeof(*s));
        if (s == NULL) {
            PQclear(r);
            return QG_ENOMEM;
        }
        path->steps = s;
        path->cap = (size_t)n;
    }
    for (i = 0; i < n; i++) {
        s = &path->steps[i];
        memset(s, 0, sizeof(*s));
        s->seq = (uint32_t)qg__pg_get(r, i, 0);
        s->pos = (uint32_t)qg__pg_get(r, i, 1);
        s->event_ms = qg__pg_get(r, i, 2);
        s->event = (qg_event)qg__pg_get(r, i, 3);
        s->from = (qg_state)qg__pg_get(r, i, 4);
        s->to = (qg_state)qg__pg_get(r, i, 5);
        s->service_id = qg__pg_get(r, i, 6);
        s->has_facts = qg__pg_get(r, i, 7) != 0;
        if (s->has_facts) {
            s->f.em.rule = (qg__rule)qg__pg_get(r, i, 8);
            s->f.em.event = (qg_event)qg__pg_get(r, i, 9);
            s->f.em.appointment = (int)qg__pg_get(r, i, 10);
            s->f.em.updated = (int)qg__pg_get(r, i, 11);
            s->f.state_event = (qg_event)qg__pg_get(r, i, 12);
            s->f.service_id = s->service_id;
            qg__pg_copy(r, i, 13, s->f.appointment_date,
                        sizeof(s->f.appointment_date));
            qg__pg_copy(r, i, 14, s->f.appointment_time,
                        sizeof(s->f.appointment_time));
        }
    }
    path->n = (size_t)n;
    PQclear(r);
    return 0;
}

int
qg__pg_move_record(qg__txn *t, uint64_t ticket, uint32_t seq, uint32_t pos,
                   qg_event ev, qg_state from, qg_state to, int late)
{
    unsigned char leaf[QG_CHAIN_HASH_LEN];
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, seq);
    qg__pg_int(&p, pos);
    qg__pg_int(&p, ev);
    qg__pg_int(&p, from);
    qg__pg_int(&p, to);
    qg__pg_int(&p, late);
    if ((rc = qg__pg_exec(t->be,
                          "UPDATE qgate.history SET pos = $3::int8, event = "
                          "$4::int8, from_state = $5::int8, to_state = "
                          "$6::int8, late = CASE WHEN $7::int8 < 0 THEN late "
                          "ELSE $7::int8 <> 0 END WHERE ticket = $1::int8 AND "
                          "seq = $2::int8 RETURNING " QG__PG_CHAIN_STEP_COLS,
                          &p, &r)))
        return rc;
    rc = PQntuples(r) == 1 ? qg__pg_step_leaf(r, 0, leaf) : QG_NOTFOUND;
    PQclear(r);
    /* pos, event, from and to changed: the chain takes the new leaf */
    if (rc == 0)
        rc = qg__pg_chain_add(t, QG_CHAIN_STEP, QG__CHAIN_REWRITE, ticket, seq,
                              qg_time_now_us(), leaf);
    return rc;
}

/* A value of a sequence: ticket, refusal, held and outbox ids.  Unlike
 * LMDB's, they may have gaps (a transaction that took one and was undone
 * does not give it back), and are unique across the gates that share the
 * database. */
static int
next_id(qg__txn *t, const char *sql, uint64_t *id)
{
    PGresult *r;
    int rc;

    if ((rc = qg__pg_exec(t->be, sql, NULL, &r)))
        return rc;
    *id = (uint64_t)qg__pg_get(r, 0, 0);
    PQclear(r);
    return 0;
}

static int
outbox_put(qg__txn *t, uint64_t ticket, uint32_t seq, int64_t now)
{
    qg__pgparams p = {0};

    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, seq);
    qg__pg_int(&p, now);
    return qg__pg_exec(t->be,
                       "INSERT INTO qgate.outbox (id, ticket, seq, "
                       "created_us, next_attempt_us) VALUES "
                       "(nextval('qgate.outbox_ids'), $1::int8, $2::int8, "
                       "$3::int8, $3::int8)",
                       &p, NULL);
}

int
qg__pg_accept(qg__txn *t, qg__ticket_row *row, qg__accepted *a)
{
    qg_record *rec = &a->rec;
    qg__pgparams p = {0};
    int rc;

    if (row->t.id == 0) {
        if ((rc = next_id(t, "SELECT nextval('qgate.ticket_ids')", &row->t.id)))
            return rc;
        row->t.first_received_us = rec->received_us;
        row->source = (unsigned char)t->source;
    }
    if ((rc = qg__name_ticket(t, a, row, put_alias)))
        return rc;
    rec->ticket = row->t.id;
    rec->seq = row->t.records + 1;
    if ((rc = append_record(t, rec, a->facts, a->body_digest)))
        return rc;
    qg__ticket_took(row, a);
    if ((t->st->flags & QG_OUTBOX) &&
        (rc = outbox_put(t, row->t.id, rec->seq, rec->received_us)))
        return rc;
    if (!t->st->notify)
        return 0;
    /* Delivered to listeners when (and only if) the transaction commits. */
    qg__pg_int(&p, (int64_t)rec->ticket);
    qg__pg_int(&p, rec->seq);
    return qg__pg_exec(t->be,
                       "SELECT pg_notify('qgate_steps', $1::int8::text || ' ' "
                       "|| $2::int8::text)",
                       &p, NULL);
}

/* ----- refusals --------------------------------------------------------- */

/* Drops unsigned entries older than newest, oldest first, while their
 * bytes are over the bound: store.c's trim_unsigned(). */
static int
trim_unsigned(qg__txn *t, uint64_t newest, uint64_t *total)
{
    uint64_t first = 1, dropped = 0, id;
    qg__pgparams p = {0}, d = {0};
    PGresult *r;
    int i, n, rc;

    if ((rc = qg__pg_meta_get(t, "rejections_unsigned_first", &first)) &&
        rc != QG_NOTFOUND)
        return rc;
    qg__pg_int(&p, (int64_t)first);
    qg__pg_int(&p, (int64_t)newest);
    qg__pg_int(&p, QG_UNAUTHENTICATED);
    qg__pg_int(&p, QG_MALFORMED);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT id, stored_bytes, ticket FROM "
                          "qgate.rejections WHERE "
                          "id >= $1::int8 AND id < $2::int8 AND verdict IN "
                          "($3::int8, $4::int8) ORDER BY id",
                          &p, &r)))
        return rc;
    n = PQntuples(r);
    for (i = 0; i<n && * total> t->st->unsigned_log_max; i++) {
        id = (uint64_t)qg__pg_get(r, i, 0);
        *total -= (uint64_t)qg__pg_get(r, i, 1) < *total
                      ? (uint64_t)qg__pg_get(r, i, 1)
                      : *total;
        /* dropped by the bound: the chain says it went by design */
        if ((rc = qg__pg_chain_add(t, QG_CHAIN_REFUSAL, QG__CHAIN_DROP,
                                   (uint64_t)qg__pg_get(r, i, 2), id,
                                   qg_time_now_us(), NULL)))
            break;
        d.n = 0;
        qg__pg_int(&d, (int64_t)id);
        if ((rc = qg__pg_exec(
                 t->be, "DELETE FROM qgate.rejections WHERE id = $1::int8", &d,
                 NULL)))
            break;
        first = id + 1;
        dropped++;
    }
    PQclear(r);
    if (rc || dropped == 0)
        return rc;
    if ((rc = qg__pg_meta_put(t, "rejections_unsigned_first", first)))
        return rc;
    if ((rc = qg__pg_meta_get(t, "rejections_dropped", &id)) == QG_NOTFOUND)
        id = 0;
    else if (rc)
        return rc;
    return qg__pg_meta_put(t, "rejections_dropped", id + dropped);
}

/* A new refusal's leaf: whole, the digest of its body; cut to a prefix,
 * that of the whole delivery (whole). */
static int
chain_refusal(qg__txn *t, const qg_rejection *rej, uint64_t id,
              const unsigned char *whole)
{
    unsigned char digest[QG__DIGEST_LEN], leaf[QG_CHAIN_HASH_LEN];
    qg_rejection r = *rej;
    int rc;

    r.resolved = 0;
    if (whole)
        memcpy(digest, whole, sizeof(digest));
    else if ((rc = qg__digest(rej->body, rej->body_len, digest)))
        return rc;
    if ((rc = qg__chain_leaf_rejection(
             &r, t->source < QG_SOURCES_MAX ? t->source : 0, digest, leaf)))
        return rc;
    return qg__pg_chain_add(t, QG_CHAIN_REFUSAL, QG__CHAIN_APPEND, rej->ticket,
                            id, rej->received_us, leaf);
}

static int
append_rejection(qg__txn *t, const qg_rejection *rej, uint64_t *id)
{
    size_t dlen = strlen(rej->detail) + 1, keep = rej->body_len;
    unsigned char digest[QG__DIGEST_LEN];
    qg__pgparams p = {0};
    uint64_t total;
    int rc, cut = 0;

    if (rej->body_len > UINT32_MAX - REJECTION_HDR - dlen - REJ_EXTRA)
        return QG_ETOOBIG;
    if (is_unsigned(rej->verdict) && rej->body_len > QG_REJECTION_PREFIX) {
        keep = QG_REJECTION_PREFIX;
        cut = 1;
        dlen += REJ_EXTRA;
        qg__digest(rej->body, rej->body_len, digest);
    }
    if ((rc = next_id(t, "SELECT nextval('qgate.rejection_ids')", id)))
        return rc;
    qg__pg_int(&p, (int64_t)*id);
    qg__pg_int(&p, rej->received_us);
    qg__pg_int(&p, rej->verdict);
    qg__pg_int(&p, rej->reason);
    qg__pg_int(&p, rej->event);
    qg__pg_int(&p, rej->from);
    qg__pg_int(&p, (int64_t)rej->ticket);
    qg__pg_int(&p, rej->live_queue_id);
    qg__pg_int(&p, rej->appointment_id);
    qg__pg_int(&p, t->source < QG_SOURCES_MAX ? t->source : 0);
    qg__pg_text(&p, rej->detail);
    qg__pg_bytes(&p, rej->body, keep);
    qg__pg_int(&p, (int64_t)rej->body_len);
    qg__pg_int(&p, cut);
    if (cut)
        qg__pg_bytes(&p, digest, sizeof(digest));
    else
        qg__pg_bytes(&p, NULL, 0);
    qg__pg_int(&p, (int64_t)(REJECTION_HDR + dlen + keep));
    if ((rc = chain_refusal(t, rej, *id, cut ? digest : NULL)))
        return rc;
    if ((rc = qg__pg_exec(
             t->be,
             "INSERT INTO qgate.rejections (id, received_us, verdict, reason, "
             "event, from_state, ticket, live_queue_id, appointment_id, "
             "source, detail, body, received_len, truncated, whole_digest, "
             "stored_bytes) VALUES ($1::int8, $2::int8, $3::int8, $4::int8, "
             "$5::int8, $6::int8, $7::int8, $8::int8, $9::int8, $10::int8, "
             "$11::bytea, $12::bytea, $13::int8, $14::int8 <> 0, "
             "nullif($15::bytea, ''), $16::int8)",
             &p, NULL)))
        return rc;
    if (!is_unsigned(rej->verdict))
        return 0;
    if ((rc = qg__pg_meta_get(t, "rejections_unsigned_bytes", &total)))
        return rc;
    total += REJECTION_HDR + dlen + keep;
    if ((rc = trim_unsigned(t, *id, &total)))
        return rc;
    return qg__pg_meta_put(t, "rejections_unsigned_bytes", total);
}

int
qg__pg_refuse(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
              uint64_t *id)
{
    int rc;

    if ((rc = append_rejection(t, rej, id)))
        return rc;
    if (row == NULL || row->t.id == 0)
        return 0;
    row->t.rejections++;
    return qg__pg_put_ticket(t, row);
}

static int
resolve(qg__txn *t, void *arg)
{
    const qg_rejection *want = arg;
    unsigned char leaf[QG_CHAIN_HASH_LEN];
    qg__pgparams p = {0};
    PGresult *r;
    uint64_t total;
    int rc, grows, verdict;

    qg__pg_int(&p, (int64_t)want->id);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT verdict, resolved FROM qgate.rejections "
                          "WHERE id = $1::int8 FOR UPDATE",
                          &p, &r)))
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return QG_NOTFOUND;
    }
    verdict = (int)qg__pg_get(r, 0, 0);
    grows = qg__pg_get(r, 0, 1) == 0;
    PQclear(r);
    qg__pg_int(&p, want->resolved_us);
    qg__pg_int(&p, (int64_t)want->resolved_ticket);
    qg__pg_int(&p, want->resolved_seq);
    qg__pg_int(&p, grows ? REJ_RESOLVED_EXTRA : 0);
    if ((rc = qg__pg_exec(t->be,
                          "UPDATE qgate.rejections SET resolved = true, "
                          "resolved_us = $2::int8, resolved_ticket = "
                          "$3::int8, resolved_seq = $4::int8, stored_bytes = "
                          "stored_bytes + $5::int8 WHERE id = $1::int8 "
                          "RETURNING " QG__PG_REJECTION_COLS,
                          &p, &r)))
        return rc;
    /* the resolution is in the leaf: the chain takes the new one */
    rc = PQntuples(r) == 1 ? qg__pg_rejection_leaf(r, 0, leaf) : QG_ESTORE;
    if (rc == 0)
        rc = qg__pg_chain_add(t, QG_CHAIN_REFUSAL, QG__CHAIN_REWRITE,
                              (uint64_t)qg__pg_get(r, 0, 6), want->id,
                              qg_time_now_us(), leaf);
    PQclear(r);
    if (rc)
        return rc;
    if (!grows || !is_unsigned((unsigned)verdict))
        return 0;
    if ((rc = qg__pg_meta_get(t, "rejections_unsigned_bytes", &total)))
        return rc;
    return qg__pg_meta_put(t, "rejections_unsigned_bytes",
                           total + REJ_RESOLVED_EXTRA);
}

int
qg__pg_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket,
                          uint32_t seq)
{
    qg_rejection want;

    if (!qg__store_writable(st))
        return QG_ERDONLY;
    memset(&want, 0, sizeof(want));
    want.id = id;
    want.resolved_us = qg_time_now_us();
    want.resolved_ticket = ticket;
    want.resolved_seq = seq;
    return qg__store_write(st, resolve, &want);
}

int
qg__pg_rejections_dropped(qg_store *st, uint64_t *dropped)
{
    qg__txn t;
    int rc;

    if ((rc = qg__pg_txn_begin(st, 0, &t)))
        return rc;
    rc = qg__pg_meta_get(&t, "rejections_dropped", dropped);
    if (rc == QG_NOTFOUND) {
        *dropped = 0;
        rc = 0;
    }
    qg__pg_txn_abort(&t);
    return rc;
}

/* ----- sources ---------------------------------------------------------- */

/* The PostgreSQL store's part of qg__source_index() and qg__source_name()
 * (store_common.c), in qgate.sources. */
int
qg__pg_source_find(qg__txn *t, const char *name, unsigned *index)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    qg__pg_text(&p, name);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT num FROM qgate.sources WHERE name = $1::text",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0)
        *index = (unsigned)qg__pg_get(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Numbers as source.c does: 1, 2, ... in order of first write, never
 * reused.  Two gates numbering a new source at once: the second's insert
 * violates the name's or the number's uniqueness, a conflict, and its
 * decision runs again and finds the number. */
int
qg__pg_source_add(qg__txn *t, const char *name, unsigned *index)
{
    qg__pgparams p = {0};
    PGresult *r;
    int64_t next;
    int rc;

    if ((rc = qg__pg_exec(t->be,
                          "SELECT coalesce(max(num), 0) + 1 FROM qgate.sources",
                          NULL, &r)))
        return rc;
    next = qg__pg_get(r, 0, 0);
    PQclear(r);
    if (next >= QG_SOURCES_MAX)
        return QG_ETOOBIG;
    qg__pg_text(&p, name);
    qg__pg_int(&p, next);
    if ((rc = qg__pg_exec(t->be,
                          "INSERT INTO qgate.sources (name, num) VALUES "
                          "($1::text, $2::int8)",
                          &p, NULL)))
        return rc;
    *index = (unsigned)next;
    return 0;
}

int
qg__pg_source_read(qg__txn *t, unsigned index, char out[QG_SOURCE_NAME_MAX + 1])
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    qg__pg_int(&p, index);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT name FROM qgate.sources WHERE num = $1::int8",
                          &p, &r)))
        return rc;
    if (PQntuples(r) == 0)
        rc = QG_NOTFOUND;
    else if (PQgetlength(r, 0, 0) == 0 ||
             PQgetlength(r, 0, 0) > QG_SOURCE_NAME_MAX)
        rc = QG_ESTORE;
    else
        qg__pg_copy(r, 0, 0, out, QG_SOURCE_NAME_MAX + 1);
    PQclear(r);
    return rc;
}

/* ----- held deliveries -------------------------------------------------- */

int
qg__pg_held_put(qg__txn *t, const qg__step *s, uint64_t ticket, qg_event ev,
                qg_state from, uint64_t *id)
{
    unsigned char digest[QG__DIGEST_LEN], leaf[QG_CHAIN_HASH_LEN];
    qg__pgparams p = {0};
    int rc;

    if (s->body_len > UINT32_MAX / 2)
        return QG_ETOOBIG;
    if ((rc = next_id(t, "SELECT nextval('qgate.held_ids')", id)))
        return rc;
    qg__pg_int(&p, (int64_t)*id);
    qg__pg_int(&p, s->received_us);
    qg__pg_int(&p, s->event_ms);
    qg__pg_int(&p, s->utc_offset_s);
    qg__pg_int(&p, s->f.em.rule);
    qg__pg_int(&p, s->f.em.event);
    qg__pg_int(&p, s->f.em.appointment != 0);
    qg__pg_int(&p, s->f.em.updated != 0);
    qg__pg_int(&p, s->f.state_event);
    qg__pg_int(&p, ev);
    qg__pg_int(&p, from);
    qg__pg_int(&p, t->source);
    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, s->live_queue_id);
    qg__pg_int(&p, s->appointment_id);
    qg__pg_int(&p, s->f.service_id);
    qg__pg_int(&p, s->staff_id);
    qg__pg_bytes(&p, s->f.appointment_date, strnlen(s->f.appointment_date, 15));
    qg__pg_bytes(&p, s->f.appointment_time, strnlen(s->f.appointment_time, 15));
    qg__pg_bytes(&p, s->digest, QG__DIGEST_LEN);
    qg__pg_bytes(&p, s->chup_event, strnlen(s->chup_event, 47));
    qg__pg_bytes(&p, s->body, s->body_len);
    if (s->has_body_digest)
        memcpy(digest, s->body_digest, sizeof(digest));
    else if ((rc = qg__digest(s->body, s->body_len, digest)))
        return rc;
    if ((rc = qg__chain_leaf_held(s, ticket, ev, from, t->source, digest,
                                  leaf)) ||
        (rc = qg__pg_chain_add(t, QG_CHAIN_HOLD, QG__CHAIN_APPEND, ticket, *id,
                               s->received_us, leaf)))
        return rc;
    return qg__pg_exec(
        t->be,
        "INSERT INTO qgate.held (" QG__PG_HELD_COLS
        ") VALUES ($1::int8, $2::int8, $3::int8, $4::int8, $5::int8, "
        "$6::int8, $7::int8 <> 0, $8::int8 <> 0, $9::int8, $10::int8, "
        "$11::int8, $12::int8, $13::int8, $14::int8, $15::int8, $16::int8, "
        "$17::int8, $18::bytea, $19::bytea, $20::bytea, $21::bytea, "
        "$22::bytea)",
        &p, NULL);
}

int
qg__pg_held_find_digest(qg__txn *t, const unsigned char *digest, uint64_t *id)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    qg__pg_int(&p, t->source);
    qg__pg_bytes(&p, digest, QG__DIGEST_LEN);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT id FROM qgate.held WHERE source = $1::int8 "
                          "AND digest = $2::bytea",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0)
        *id = (uint64_t)qg__pg_get(r, 0, 0);
    PQclear(r);
    return rc;
}

int
qg__pg_held_any(qg__txn *t)
{
    PGresult *r;
    int any;

    /* An error here only costs the caller a look it could have skipped. */
    if (qg__pg_exec(t->be, "SELECT EXISTS (SELECT 1 FROM qgate.held)", NULL,
                    &r))
        return 1;
    any = qg__pg_get(r, 0, 0) != 0;
    PQclear(r);
    return any;
}

/*
 * A held delivery the engine named by id and did not find.  In a write
 * transaction another gate released or expired it since the id was read
 * (held_due() takes no lock: expiry runs in every gate): a conflict, and
 * the write runs again without it.  Held ids are locked (held_get()), so
 * the second gate finds it gone only once the first has committed.
 */
static int
gone(qg__txn *t)
{
    qg__pgconn *c = t->be;

    if (!c->write)
        return QG_NOTFOUND;
    c->retry = 1;
    return QG_EBUSY;
}

int
qg__pg_held_get(qg__txn *t, uint64_t id, qg__step *s, qg_held *out)
{
    qg__pgconn *c = t->be;
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    if ((rc = qg__pg_lock(t, lock_key('h', 0, (int64_t)id, NULL, 0))))
        return rc;
    qg__pg_int(&p, (int64_t)id);
    if ((rc = qg__pg_exec(c,
                          "SELECT " QG__PG_HELD_COLS
                          " FROM qgate.held WHERE id = $1::int8",
                          &p, &r)))
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return gone(t);
    }
    /* The step's body points into the result: kept until the next one,
     * or the end of the transaction (the LMDB store's "until the next
     * write" is the stricter promise, and the engine copies it). */
    PQclear(c->kept);
    c->kept = r;
    qg__pg_held(r, 0, 0, s, out);
    return 0;
}

/* The ids of a statement's rows (first column), *ids malloc'd. */
static int
id_list(qg__txn *t, const char *sql, const qg__pgparams *p, uint64_t **ids,
        size_t *n)
{
    PGresult *r;
    int i, m, rc;

    *ids = NULL;
    *n = 0;
    if ((rc = qg__pg_exec(t->be, sql, p, &r)))
        return rc;
    m = PQntuples(r);
    if (m > 0 && (*ids = malloc((size_t)m * sizeof(**ids))) == NULL) {
        PQclear(r);
        return QG_ENOMEM;
    }
    for (i = 0; i < m; i++)
        (*ids)[i] = (uint64_t)qg__pg_get(r, i, 0);
    *n = (size_t)m;
    PQclear(r);
    return 0;
}

int
qg__pg_held_ids_for(qg__txn *t, qg_id_kind kind, int64_t chup_id,
                    uint64_t **ids, size_t *n)
{
    qg__pgparams p = {0};
    int rc;

    *ids = NULL;
    *n = 0;
    if (t->source >= QG_SOURCES_MAX || chup_id == 0)
        return 0;
    if ((rc = qg__pg_lock(t, lock_key('a', t->source,
                                      (int64_t)kind << 56 ^ chup_id, NULL, 0))))
        return rc;
    qg__pg_int(&p, t->source);
    qg__pg_int(&p, chup_id);
    return id_list(t,
                   kind == QG_ID_LIVE_QUEUE
                       ? "SELECT id FROM qgate.held WHERE source = $1::int8 "
                         "AND live_queue_id = $2::int8 ORDER BY event_ms, id"
                       : "SELECT id FROM qgate.held WHERE source = $1::int8 "
                         "AND appointment_id = $2::int8 ORDER BY event_ms, id",
                   &p, ids, n);
}

int
qg__pg_held_due(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n)
{
    qg__pgparams p = {0};

    qg__pg_int(&p, before_us);
    return id_list(t,
                   "SELECT id FROM qgate.held WHERE received_us < $1::int8 "
                   "ORDER BY id",
                   &p, ids, n);
}

int
qg__pg_held_delete(qg__txn *t, uint64_t id)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    qg__pg_int(&p, (int64_t)id);
    if ((rc = qg__pg_exec(t->be,
                          "DELETE FROM qgate.held WHERE id = $1::int8 "
                          "RETURNING ticket",
                          &p, &r)))
        return rc;
    /* released or expired: the chain says it went by design */
    rc = PQntuples(r) == 1 ? qg__pg_chain_add(t, QG_CHAIN_HOLD, QG__CHAIN_DROP,
                                              (uint64_t)qg__pg_get(r, 0, 0), id,
                                              qg_time_now_us(), NULL)
                           : gone(t);
    PQclear(r);
    return rc;
}
