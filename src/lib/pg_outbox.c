/*
 * pg_outbox.c - the PostgreSQL store's outbox: the steps waiting to be
 * forwarded to the HIS, and the dead list of those given up, with the
 * LMDB store's meaning (outbox.c): entries are forwarded in id order, a
 * step given up takes its ticket's later steps with it, a requeued entry
 * starts a second life, a resent step keeps its (ticket, seq).
 *
 * Ids come from a sequence: unique across the gates that share the
 * database, never reused, and with gaps where a transaction that took one
 * was undone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define ENTRY_COLS                                                             \
    "id, ticket, seq, attempts, created_us, next_attempt_us, "                 \
    "last_attempt_us, last_error, gave_up_us, gave_up"

static void
entry(const PGresult *r, int i, qg_outbox_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->id = (uint64_t)qg__pg_get(r, i, 0);
    e->ticket = (uint64_t)qg__pg_get(r, i, 1);
    e->seq = (uint32_t)qg__pg_get(r, i, 2);
    e->attempts = (uint32_t)qg__pg_get(r, i, 3);
    e->created_us = qg__pg_get(r, i, 4);
    e->next_attempt_us = qg__pg_get(r, i, 5);
    e->last_attempt_us = qg__pg_get(r, i, 6);
    qg__pg_copy(r, i, 7, e->last_error, sizeof(e->last_error));
    e->gave_up_us = qg__pg_get(r, i, 8);
    qg__pg_copy(r, i, 9, e->gave_up, sizeof(e->gave_up));
}

/* A reason as the LMDB store keeps it: 127 bytes at most. */
static void
reason(qg__pgparams *p, const char *s)
{
    s = s ? s : "";
    qg__pg_bytes(p, s, strnlen(s, 127));
}

/* ----- reading ---------------------------------------------------------- */

struct qg_outbox {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__pgcursor k; /* QG__PG_WHOLE: the outbox is short, the dead list too */
};

int
qg__pg_outbox_open(qg_store *st, int dead, qg_outbox **out)
{
    qg_outbox *ob;
    int rc;

    if ((ob = calloc(1, sizeof(*ob))) == NULL)
        return QG_ENOMEM;
    ob->ops = &qg__pg_ops;
    if ((rc = qg__pg_cursor_open(
             st, &ob->k,
             dead ? "SELECT " ENTRY_COLS " FROM qgate.dead ORDER BY id"
                  : "SELECT " ENTRY_COLS " FROM qgate.outbox ORDER BY id",
             NULL, QG__PG_WHOLE))) {
        free(ob);
        return rc;
    }
    *out = ob;
    return 0;
}

int
qg__pg_outbox_next(qg_outbox *ob, qg_outbox_entry *out)
{
    int i, rc;

    if ((rc = qg__pg_cursor_next(&ob->k, &i)))
        return rc;
    entry(ob->k.batch, i, out);
    return 0;
}

void
qg__pg_outbox_close(qg_outbox *ob)
{
    if (ob == NULL)
        return;
    qg__pg_cursor_close(&ob->k);
    free(ob);
}

int
qg__pg_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                    uint64_t *dead)
{
    PGresult *r;
    qg__txn t;
    int rc;

    if ((rc = qg__pg_txn_begin(st, 0, &t)))
        return rc;
    rc = qg__pg_exec(t.be,
                     "SELECT (SELECT count(*) FROM qgate.outbox), "
                     "(SELECT created_us FROM qgate.outbox ORDER BY id "
                     "LIMIT 1), (SELECT count(*) FROM qgate.dead)",
                     NULL, &r);
    if (rc == 0) {
        if (depth)
            *depth = (uint64_t)qg__pg_get(r, 0, 0);
        if (oldest_us)
            *oldest_us = qg__pg_get(r, 0, 1);
        if (dead)
            *dead = (uint64_t)qg__pg_get(r, 0, 2);
        PQclear(r);
    }
    qg__pg_txn_abort(&t);
    return rc;
}

/* ----- changes ---------------------------------------------------------- */

typedef struct change {
    uint64_t id;
    int64_t next_us;
    const char *error;
    uint64_t moved;
} change;

/* Runs sql on one entry: QG_NOTFOUND when it changed no row. */
static int
one(qg__txn *t, const char *sql, const qg__pgparams *p)
{
    PGresult *r;
    int rc;

    if ((rc = qg__pg_exec(t->be, sql, p, &r)))
        return rc;
    rc = strcmp(PQcmdTuples(r), "0") == 0 ? QG_NOTFOUND : 0;
    PQclear(r);
    return rc;
}

static int
ack(qg__txn *t, void *arg)
{
    qg__pgparams p = {0};

    qg__pg_int(&p, (int64_t)((change *)arg)->id);
    return one(t, "DELETE FROM qgate.outbox WHERE id = $1::int8", &p);
}

int
qg__pg_outbox_ack(qg_store *st, uint64_t id)
{
    change c = {id, 0, NULL, 0};

    if (id == 0)
        return QG_EINVAL;
    return qg__store_write(st, ack, &c);
}

static int
defer(qg__txn *t, void *arg)
{
    change *c = arg;
    qg__pgparams p = {0};

    qg__pg_int(&p, (int64_t)c->id);
    qg__pg_int(&p, qg_time_now_us());
    qg__pg_int(&p, c->next_us);
    reason(&p, c->error);
    return one(t,
               "UPDATE qgate.outbox SET attempts = attempts + 1, "
               "last_attempt_us = $2::int8, next_attempt_us = $3::int8, "
               "last_error = $4::bytea WHERE id = $1::int8",
               &p);
}

int
qg__pg_outbox_defer(qg_store *st, uint64_t id, int64_t next_attempt_us,
                    const char *error)
{
    change c = {id, next_attempt_us, error, 0};

    if (id == 0)
        return QG_EINVAL;
    return qg__store_write(st, defer, &c);
}

/* Moves the outbox entries sql's WHERE names ($1 ticket, $2 id) to the
 * dead list, given up now for why. */
static int
to_dead(qg__txn *t, const char *where, uint64_t ticket, uint64_t id,
        int64_t now, const char *why, uint64_t *moved)
{
    qg__pgparams p = {0};
    char sql[1024];
    PGresult *r;
    int rc;

    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, (int64_t)id);
    qg__pg_int(&p, now);
    reason(&p, why);
    snprintf(sql, sizeof(sql),
             "WITH m AS (DELETE FROM qgate.outbox WHERE %s RETURNING *) "
             "INSERT INTO qgate.dead (" ENTRY_COLS
             ") SELECT id, ticket, seq, attempts, created_us, "
             "next_attempt_us, last_attempt_us, last_error, $3::int8, "
             "$4::bytea FROM m",
             where);
    if ((rc = qg__pg_exec(t->be, sql, &p, &r)))
        return rc;
    *moved += (uint64_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

static int
bury(qg__txn *t, void *arg)
{
    change *c = arg;
    qg__pgparams p = {0};
    int64_t now = qg_time_now_us();
    uint64_t ticket;
    char why[128];
    PGresult *r;
    int rc;

    c->moved = 0;
    qg__pg_int(&p, (int64_t)c->id);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT ticket FROM qgate.outbox WHERE id = $1::int8",
                          &p, &r)))
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return QG_NOTFOUND;
    }
    ticket = (uint64_t)qg__pg_get(r, 0, 0);
    PQclear(r);
    if ((rc = to_dead(t, "id = $2::int8 AND ticket = $1::int8", ticket, c->id,
                      now, c->error, &c->moved)))
        return rc;
    /* The ticket's later steps may not overtake this one. */
    snprintf(why, sizeof(why),
             "held behind outbox entry %llu of the same ticket",
             (unsigned long long)c->id);
    return to_dead(t, "ticket = $1::int8 AND id > $2::int8", ticket, c->id, now,
                   why, &c->moved);
}

int
qg__pg_outbox_bury(qg_store *st, uint64_t id, const char *error)
{
    change c = {id, 0, error, 0};

    if (id == 0)
        return QG_EINVAL;
    return qg__store_write(st, bury, &c);
}

/* Dead entries back to the outbox, for a second life: due now, their age
 * counted from now. */
static int
requeue(qg__txn *t, void *arg)
{
    change *c = arg;
    qg__pgparams p = {0};
    uint64_t ticket = 0;
    PGresult *r;
    int rc;

    c->moved = 0;
    if (c->id) {
        qg__pg_int(&p, (int64_t)c->id);
        if ((rc = qg__pg_exec(
                 t->be, "SELECT ticket FROM qgate.dead WHERE id = $1::int8", &p,
                 &r)))
            return rc;
        if (PQntuples(r) == 0) {
            PQclear(r);
            return QG_NOTFOUND;
        }
        ticket = (uint64_t)qg__pg_get(r, 0, 0);
        PQclear(r);
    }
    p.n = 0;
    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, qg_time_now_us());
    if ((rc = qg__pg_exec(t->be,
                          "WITH m AS (DELETE FROM qgate.dead WHERE $1::int8 = "
                          "0 OR ticket = $1::int8 RETURNING id, ticket, seq) "
                          "INSERT INTO qgate.outbox (id, ticket, seq, "
                          "created_us, next_attempt_us) SELECT id, ticket, "
                          "seq, $2::int8, $2::int8 FROM m",
                          &p, &r)))
        return rc;
    c->moved = (uint64_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int
qg__pg_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved)
{
    change c = {id, 0, NULL, 0};
    int rc;

    rc = qg__store_write(st, requeue, &c);
    if (moved)
        *moved = rc == 0 ? c.moved : 0;
    return rc;
}

/* ----- resending -------------------------------------------------------- */

typedef struct resend_job {
    uint64_t ticket;
    int64_t since_us, until_us;
    uint64_t queued, waiting;
} resend_job;

/* Queues the selected steps of one ticket, in event time; the ticket's
 * entries that were in the outbox before move behind them (new ids, in
 * their order), so that they are not sent first. */
static int
resend_ticket(qg__txn *t, resend_job *j, uint64_t ticket, int64_t now)
{
    qg__pgparams p = {0}, q;
    PGresult *queued = NULL, *steps = NULL;
    uint64_t before = j->queued;
    int i, k, n, rc, found;

    qg__pg_int(&p, (int64_t)ticket);
    if ((rc = qg__pg_exec(t->be,
                          "SELECT id, seq, false FROM qgate.outbox WHERE "
                          "ticket = $1::int8 UNION ALL SELECT id, seq, true "
                          "FROM qgate.dead WHERE ticket = $1::int8 ORDER BY 1",
                          &p, &queued)) ||
        (rc = qg__pg_exec(t->be,
                          "SELECT seq, received_us FROM qgate.history WHERE "
                          "ticket = $1::int8 ORDER BY pos, seq",
                          &p, &steps)))
        goto done;
    n = PQntuples(queued);
    for (i = 0; i < PQntuples(steps) && rc == 0; i++) {
        int64_t seq = qg__pg_get(steps, i, 0), at = qg__pg_get(steps, i, 1);

        if (at < j->since_us || at >= j->until_us)
            continue;
        for (k = 0, found = 0; k < n && !found; k++)
            found = qg__pg_get(queued, k, 1) == seq;
        if (found) {
            j->waiting++;
            continue;
        }
        q = p;
        qg__pg_int(&q, seq);
        qg__pg_int(&q, now);
        if ((rc = qg__pg_exec(t->be,
                              "INSERT INTO qgate.outbox (id, ticket, seq, "
                              "created_us, next_attempt_us) VALUES "
                              "(nextval('qgate.outbox_ids'), $1::int8, "
                              "$2::int8, $3::int8, $3::int8)",
                              &q, NULL)) == 0)
            j->queued++;
    }
    for (k = 0; k < n && rc == 0 && j->queued > before; k++) {
        if (qg__pg_get(queued, k, 2))
            continue;
        q.n = 0;
        qg__pg_int(&q, qg__pg_get(queued, k, 0));
        rc = qg__pg_exec(t->be,
                         "UPDATE qgate.outbox SET id = "
                         "nextval('qgate.outbox_ids') WHERE id = $1::int8",
                         &q, NULL);
    }
done:
    PQclear(queued);
    PQclear(steps);
    return rc;
}

/*
 * The purge's lock first (pg_purge.c): waited for, it orders this resend
 * and a purge's batch of steps, so that the batch either sees the steps
 * queued here (and keeps their bodies), or purged them before these
 * statements read the history.  Taken before the ticket's lock
 * (qg__pg_get_ticket()), which is then only tried: a transaction waits
 * only for its first lock, and a gate holding the ticket's makes this
 * resend run again from its start.
 */
static int
resend(qg__txn *t, void *arg)
{
    resend_job *j = arg;
    qg__ticket_row row;
    int64_t now = qg_time_now_us();
    PGresult *r;
    int i, rc;

    j->queued = j->waiting = 0;
    if ((rc = qg__pg_lock(t, QG__PG_PURGE_LOCK)))
        return rc;
    if (j->ticket) {
        if ((rc = qg__pg_get_ticket(t, j->ticket, &row)))
            return rc;
        return resend_ticket(t, j, j->ticket, now);
    }
    if ((rc = qg__pg_exec(t->be, "SELECT id FROM qgate.tickets ORDER BY id",
                          NULL, &r)))
        return rc;
    for (i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = resend_ticket(t, j, (uint64_t)qg__pg_get(r, i, 0), now);
    PQclear(r);
    return rc;
}

int
qg__pg_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                     int64_t until_us, uint64_t *queued, uint64_t *waiting)
{
    resend_job j;
    int rc;

    if (queued)
        *queued = 0;
    if (waiting)
        *waiting = 0;
    if (since_us >= until_us || !(st->flags & QG_OUTBOX))
        return QG_EINVAL;
    memset(&j, 0, sizeof(j));
    j.ticket = ticket;
    j.since_us = since_us;
    j.until_us = until_us;
    rc = qg__store_write(st, resend, &j);
    if (rc == 0 && queued)
        *queued = j.queued;
    if (rc == 0 && waiting)
        *waiting = j.waiting;
    return rc;
}

/* ----- claims ----------------------------------------------------------- */

/*
 * One row per ticket some forwarder claimed: who, and until when.  One
 * statement takes the row when it is missing, its lease has run out or it
 * is the owner's already (a renewal); otherwise it changes nothing and
 * returns no row.  ON CONFLICT locks the row and, in READ COMMITTED,
 * judges the WHERE on its newest version: of two gates claiming at once,
 * the second waits for the first's commit and then sees its lease.
 *
 * A row stays when the ticket's outbox empties: a lease that runs on
 * keeps a gate whose scan began before the owner's acknowledgement from
 * sending that step again, and the next step of the ticket goes to the
 * same gate, which renews.  The times are the gates' clocks, which must
 * agree to well within a lease.
 *
 * Rows whose lease ran out a lease ago or more are deleted, by a claim
 * once a lease (of the claimer's handle): a missing row and a run-out one
 * are taken alike, so this changes no claim's answer, even for a claimer
 * whose clock is behind by less than a lease.  SKIP LOCKED leaves a row
 * that another gate is claiming to the next sweep; without it, the
 * table would keep a row per ticket ever forwarded.
 */
typedef struct claim_job {
    uint64_t ticket;
    const char *owner;
    int64_t now_us, lease_us;
    int sweep;
} claim_job;

static int
claim(qg__txn *t, void *arg)
{
    claim_job *j = arg;
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    /* A claim lost in a crash of the server only lets another gate send
     * the step again, as a run-out lease does: not worth a WAL flush. */
    if ((rc = qg__pg_later(t->be, "SET LOCAL synchronous_commit = off")))
        return rc;
    qg__pg_int(&p, (int64_t)j->ticket);
    qg__pg_text(&p, j->owner);
    qg__pg_int(&p, j->now_us);
    qg__pg_int(&p, j->now_us + j->lease_us);
    if ((rc = qg__pg_exec(t->be,
                          "INSERT INTO qgate.claims AS c (ticket, owner, "
                          "until_us) VALUES ($1::int8, $2::text, $4::int8) "
                          "ON CONFLICT (ticket) DO UPDATE SET owner = "
                          "excluded.owner, until_us = excluded.until_us "
                          "WHERE c.owner = excluded.owner OR c.until_us <= "
                          "$3::int8 RETURNING 1",
                          &p, &r)))
        return rc;
    rc = PQntuples(r) == 1 ? 0 : QG_EBUSY;
    PQclear(r);
    if (rc || !j->sweep)
        return rc;
    p.n = 0;
    qg__pg_int(&p, j->now_us - j->lease_us);
    return qg__pg_exec(t->be,
                       "DELETE FROM qgate.claims WHERE ticket IN (SELECT "
                       "ticket FROM qgate.claims WHERE until_us < $1::int8 "
                       "FOR UPDATE SKIP LOCKED)",
                       &p, NULL);
}

int
qg__pg_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                    int64_t now_us, int64_t lease_us)
{
    claim_job j = {ticket, owner, now_us, lease_us, 0};
    int rc;

    if (lease_us > INT64_MAX - now_us || now_us < INT64_MIN + lease_us)
        return QG_EINVAL;
    pthread_mutex_lock(&st->lock);
    j.sweep =
        now_us > st->claims_swept_us &&
        (uint64_t)now_us - (uint64_t)st->claims_swept_us >= (uint64_t)lease_us;
    pthread_mutex_unlock(&st->lock);
    /* a refused claim is undone, and its sweep with it: the next one */
    if ((rc = qg__store_write(st, claim, &j)) == 0 && j.sweep) {
        pthread_mutex_lock(&st->lock);
        st->claims_swept_us = now_us;
        pthread_mutex_unlock(&st->lock);
    }
    return rc;
}
