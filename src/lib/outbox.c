/*
 * outbox.c - accepted steps waiting to be forwarded (transactional outbox).
 *
 * The store queues a step in the transaction that records it
 * (qg__outbox_put() in store.c, which also holds the entries' format), so
 * the outbox holds exactly the accepted steps not yet delivered.  Entry
 * ids are the commit order; a forwarder keeps each ticket's order by
 * sending only the first entry of each ticket.  Here the outbox is read,
 * and entries are moved to the dead list and back, and queued again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

static int
put_entry(qg__txn *t, MDB_dbi dbi, const qg_outbox_entry *e)
{
    unsigned char key[8], val[QG__OUTBOX_ENTRY_LEN];
    MDB_val k = {8, key}, v = {QG__OUTBOX_ENTRY_LEN, val};

    put64(key, e->id);
    qg__outbox_encode(val, e);
    return qg__from_mdb(mdb_put(t->txn, dbi, &k, &v, 0));
}

static int
get_entry(qg__txn *t, MDB_dbi dbi, uint64_t id, qg_outbox_entry *e)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    put64(key, id);
    if ((rc = mdb_get(t->txn, dbi, &k, &v)))
        return qg__from_mdb(rc);
    return qg__outbox_decode(&k, &v, e);
}

static int
del_entry(qg__txn *t, MDB_dbi dbi, uint64_t id)
{
    unsigned char key[8];
    MDB_val k = {8, key};

    put64(key, id);
    return qg__from_mdb(mdb_del(t->txn, dbi, &k, NULL));
}

/* ----- reading -------------------------------------------------------- */

struct qg_outbox {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__range r;
};

int
qg__lmdb_outbox_open(qg_store *st, int dead, qg_outbox **out)
{
    qg_outbox *ob;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((ob = calloc(1, sizeof(*ob))) == NULL)
        return QG_ENOMEM;
    ob->ops = &qg__lmdb_ops;
    if ((rc = qg__range_open(st, dead ? st->dead : st->outbox, &ob->r))) {
        free(ob);
        return rc;
    }
    *out = ob;
    return 0;
}

int
qg__lmdb_outbox_next(qg_outbox *ob, qg_outbox_entry *out)
{
    MDB_val k, v;
    int rc;

    if (ob == NULL || out == NULL)
        return QG_EINVAL;
    if ((rc = qg__range_next(&ob->r, NULL, 0, &k, &v)))
        return rc;
    return qg__outbox_decode(&k, &v, out);
}

void
qg__lmdb_outbox_close(qg_outbox *ob)
{
    if (ob == NULL)
        return;
    qg__range_close(&ob->r);
    free(ob);
}

int
qg__lmdb_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                      uint64_t *dead)
{
    MDB_stat ms;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    qg_outbox_entry e;
    qg__txn t;
    int rc;

    if (st == NULL)
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    if ((rc = mdb_stat(t.txn, st->outbox, &ms)))
        goto done;
    if (depth)
        *depth = ms.ms_entries;
    if (oldest_us) {
        *oldest_us = 0;
        if ((rc = mdb_cursor_open(t.txn, st->outbox, &cur)))
            goto done;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && qg__outbox_decode(&k, &v, &e) == 0)
            *oldest_us = e.created_us;
        if (rc == MDB_NOTFOUND)
            rc = 0;
        mdb_cursor_close(cur);
        if (rc)
            goto done;
    }
    if (dead && (rc = mdb_stat(t.txn, st->dead, &ms)) == 0)
        *dead = ms.ms_entries;
done:
    qg__txn_abort(&t);
    return qg__from_mdb(rc);
}

/* ----- changing -------------------------------------------------------- */

typedef struct change {
    uint64_t id;
    int64_t next_us;
    const char *error;
    uint64_t moved;
} change;

static int
ack(qg__txn *t, void *arg)
{
    return del_entry(t, t->st->outbox, ((change *)arg)->id);
}

int
qg__lmdb_outbox_ack(qg_store *st, uint64_t id)
{
    change c = {id, 0, NULL, 0};

    if (st == NULL || id == 0)
        return QG_EINVAL;
    return qg__store_write(st, ack, &c);
}

static int
defer(qg__txn *t, void *arg)
{
    change *c = arg;
    qg_outbox_entry e;
    int rc;

    if ((rc = get_entry(t, t->st->outbox, c->id, &e)))
        return rc;
    e.attempts++;
    e.last_attempt_us = qg_time_now_us();
    e.next_attempt_us = c->next_us;
    snprintf(e.last_error, sizeof(e.last_error), "%s",
             c->error ? c->error : "");
    return put_entry(t, t->st->outbox, &e);
}

int
qg__lmdb_outbox_defer(qg_store *st, uint64_t id, int64_t next_attempt_us,
                      const char *error)
{
    change c = {id, next_attempt_us, error, 0};

    if (st == NULL || id == 0)
        return QG_EINVAL;
    return qg__store_write(st, defer, &c);
}

/* Ids of the outbox entries after `after` that belong to `ticket`. */
static int
later_of_ticket(qg__txn *t, uint64_t after, uint64_t ticket, uint64_t **ids,
                size_t *n)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    MDB_cursor *cur;
    size_t cap = 0;
    uint64_t *grown;
    int mrc;

    *ids = NULL;
    *n = 0;
    if ((mrc = mdb_cursor_open(t->txn, t->st->outbox, &cur)))
        return qg__from_mdb(mrc);
    put64(key, after + 1);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!qg__outbox_entry_len_ok(v.mv_size) || get64(v.mv_data) != ticket)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            if ((grown = realloc(*ids, cap * sizeof(**ids))) == NULL) {
                mdb_cursor_close(cur);
                return QG_ENOMEM;
            }
            *ids = grown;
        }
        (*ids)[(*n)++] = get64(k.mv_data);
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : qg__from_mdb(mrc);
}

/* Moves one entry from the outbox to the dead list, saying why.  Its
 * last_error stays: "older than the maximum age" says nothing of why the
 * HIS never took the step; the last attempt's error does. */
static int
to_dead(qg__txn *t, uint64_t id, const char *why, int64_t now)
{
    qg_outbox_entry e;
    int rc;

    if ((rc = get_entry(t, t->st->outbox, id, &e)))
        return rc;
    snprintf(e.gave_up, sizeof(e.gave_up), "%s", why ? why : "");
    e.gave_up_us = now;
    if ((rc = put_entry(t, t->st->dead, &e)))
        return rc;
    return del_entry(t, t->st->outbox, id);
}

static int
bury(qg__txn *t, void *arg)
{
    change *c = arg;
    qg_outbox_entry e;
    uint64_t *later = NULL;
    size_t n = 0, i;
    char why[128];
    int64_t now = qg_time_now_us();
    int rc;

    c->moved = 0;
    if ((rc = get_entry(t, t->st->outbox, c->id, &e)) ||
        (rc = later_of_ticket(t, e.id, e.ticket, &later, &n)) ||
        (rc = to_dead(t, e.id, c->error, now)))
        goto done;
    c->moved = 1;
    /* The ticket's later steps may not overtake this one. */
    snprintf(why, sizeof(why),
             "held behind outbox entry %llu of the same ticket",
             (unsigned long long)e.id);
    for (i = 0; i < n && rc == 0; i++)
        if ((rc = to_dead(t, later[i], why, now)) == 0)
            c->moved++;
done:
    free(later);
    return rc;
}

int
qg__lmdb_outbox_bury(qg_store *st, uint64_t id, const char *error)
{
    change c = {id, 0, error, 0};

    if (st == NULL || id == 0)
        return QG_EINVAL;
    return qg__store_write(st, bury, &c);
}

/* Moves back every dead entry, or with ticket != 0 those of one ticket.
 * Ids stay, so the outbox's order is the original commit order.  The ids
 * are collected first: deleting under a moving cursor is easy to get
 * wrong, and this is no hot path. */
static int
requeue_all(qg__txn *t, uint64_t ticket, uint64_t *moved)
{
    qg_outbox_entry e;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t *ids = NULL, *grown;
    size_t n = 0, cap = 0, i;
    int rc = 0, mrc;

    if ((mrc = mdb_cursor_open(t->txn, t->st->dead, &cur)))
        return qg__from_mdb(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = qg__outbox_decode(&k, &v, &e)) ||
            (ticket && e.ticket != ticket))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((grown = realloc(ids, cap * sizeof(*ids))) == NULL) {
                rc = QG_ENOMEM;
                break;
            }
            ids = grown;
        }
        ids[n++] = e.id;
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = qg__from_mdb(mrc);
    for (i = 0; i < n && rc == 0; i++) {
        if ((rc = get_entry(t, t->st->dead, ids[i], &e)))
            break;
        /* A second life: due now, and its age (which decides when it
         * is given up again) counts from now. */
        e.attempts = 0;
        e.created_us = e.next_attempt_us = qg_time_now_us();
        e.last_attempt_us = 0;
        e.last_error[0] = '\0';
        e.gave_up_us = 0;
        e.gave_up[0] = '\0';
        if ((rc = put_entry(t, t->st->outbox, &e)) == 0 &&
            (rc = del_entry(t, t->st->dead, e.id)) == 0)
            (*moved)++;
    }
    free(ids);
    return rc;
}

static int
requeue(qg__txn *t, void *arg)
{
    change *c = arg;
    qg_outbox_entry e;
    int rc;

    c->moved = 0;
    if (c->id == 0)
        return requeue_all(t, 0, &c->moved);
    if ((rc = get_entry(t, t->st->dead, c->id, &e)))
        return rc;
    return requeue_all(t, e.ticket, &c->moved);
}

int
qg__lmdb_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved)
{
    change c = {id, 0, NULL, 0};
    int rc;

    if (st == NULL)
        return QG_EINVAL;
    rc = qg__store_write(st, requeue, &c);
    if (moved)
        *moved = rc == 0 ? c.moved : 0;
    return rc;
}

/* ----- resending ------------------------------------------------------- */

typedef struct step_ref {
    uint64_t ticket;
    uint32_t seq;
    uint64_t id; /* its entry */
    int dead;    /* in the dead list, not the outbox */
} step_ref;

static int
by_step(const void *a, const void *b)
{
    const step_ref *x = a, *y = b;

    if (x->ticket != y->ticket)
        return x->ticket < y->ticket ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The entry order of one ticket's entries, after by_step's ticket. */
static int
by_ticket_then_id(const void *a, const void *b)
{
    const step_ref *x = a, *y = b;

    if (x->ticket != y->ticket)
        return x->ticket < y->ticket ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct resend_job {
    uint64_t ticket;
    int64_t since_us, until_us;
    uint64_t queued, waiting;
    step_ref *queue; /* steps in the outbox or the dead list, sorted */
    size_t n, cap;
} resend_job;

/* Adds the steps of dbi's entries (the outbox or the dead list) to
 * j->queue. */
static int
collect_queued(qg__txn *t, MDB_dbi dbi, int dead, resend_job *j)
{
    qg_outbox_entry e;
    MDB_cursor *cur;
    MDB_val k, v;
    step_ref *grown;
    int rc = 0, mrc;

    if ((mrc = mdb_cursor_open(t->txn, dbi, &cur)))
        return qg__from_mdb(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = qg__outbox_decode(&k, &v, &e)))
            break;
        if (j->n == j->cap) {
            j->cap = j->cap ? j->cap * 2 : 64;
            if ((grown = realloc(j->queue, j->cap * sizeof(*grown))) == NULL) {
                rc = QG_ENOMEM;
                break;
            }
            j->queue = grown;
        }
        j->queue[j->n].ticket = e.ticket;
        j->queue[j->n].seq = e.seq;
        j->queue[j->n].id = e.id;
        j->queue[j->n++].dead = dead;
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = qg__from_mdb(mrc);
    return rc;
}

/*
 * Moves ticket's entries still in the outbox behind the ones just queued,
 * keeping their order and their state (attempts, next attempt, last
 * error): a forwarder sends a ticket's entries in id order, and a step
 * not yet delivered must not reach the HIS before the older steps it is
 * being sent again.  (One the forwarder is sending at this moment may
 * still arrive first, and, its entry gone, be sent again after them.)
 */
static int
requeue_waiting(qg__txn *t, const resend_job *j, uint64_t ticket)
{
    step_ref *ids;
    qg_outbox_entry e;
    size_t lo = 0, hi = j->n, n, i;
    int rc = 0;

    /* j->queue is sorted by ticket first: this ticket's entries are the
     * run from the first one not below it */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (j->queue[mid].ticket < ticket)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (n = 0; lo + n < j->n && j->queue[lo + n].ticket == ticket; n++)
        ;
    if (n == 0)
        return 0;
    if ((ids = malloc(n * sizeof(*ids))) == NULL)
        return QG_ENOMEM;
    memcpy(ids, j->queue + lo, n * sizeof(*ids));
    qsort(ids, n, sizeof(*ids), by_ticket_then_id);
    for (i = 0; i < n && rc == 0; i++) {
        if (ids[i].dead)
            continue;
        if ((rc = get_entry(t, t->st->outbox, ids[i].id, &e)) ||
            (rc = del_entry(t, t->st->outbox, e.id)) ||
            (rc = qg__outbox_next_id(t, &e.id)))
            break;
        rc = put_entry(t, t->st->outbox, &e);
    }
    free(ids);
    return rc;
}

/* Queues the selected steps of one ticket, in event time. */
static int
resend_ticket(qg__txn *t, resend_job *j, uint64_t ticket, int64_t now)
{
    qg__path path;
    step_ref key;
    int64_t received;
    uint64_t before = j->queued;
    size_t i;
    int rc = 0;

    memset(&path, 0, sizeof(path));
    if ((rc = qg__load_path(t, ticket, &path)))
        return rc;
    for (i = 0; i < path.n && rc == 0; i++) {
        if ((rc = qg__record_received(t, ticket, path.steps[i].seq, &received)))
            break;
        if (received < j->since_us || received >= j->until_us)
            continue;
        key.ticket = ticket;
        key.seq = path.steps[i].seq;
        if (j->n && bsearch(&key, j->queue, j->n, sizeof(key), by_step)) {
            j->waiting++;
            continue;
        }
        if ((rc = qg__outbox_put(t, ticket, key.seq, now)) == 0)
            j->queued++;
    }
    qg__path_free(&path);
    if (rc == 0 && j->queued > before)
        rc = requeue_waiting(t, j, ticket);
    return rc;
}

static int
resend(qg__txn *t, void *arg)
{
    resend_job *j = arg;
    qg__ticket_row row;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t *tickets = NULL, *grown;
    size_t n = 0, cap = 0, i;
    int64_t now = qg_time_now_us();
    int rc, mrc;

    j->queued = j->waiting = 0;
    j->n = 0;
    if ((rc = collect_queued(t, t->st->outbox, 0, j)) ||
        (rc = collect_queued(t, t->st->dead, 1, j)))
        return rc;
    /* (qsort() and bsearch() take no NULL array, even of 0 entries) */
    if (j->n)
        qsort(j->queue, j->n, sizeof(*j->queue), by_step);
    if (j->ticket) {
        if ((rc = qg__get_ticket(t, j->ticket, &row)))
            return rc;
        return resend_ticket(t, j, j->ticket, now);
    }
    /* The numbers first: the puts below must not move a cursor's pages. */
    if ((mrc = mdb_cursor_open(t->txn, t->st->tickets, &cur)))
        return qg__from_mdb(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            if ((grown = realloc(tickets, cap * sizeof(*grown))) == NULL) {
                mrc = ENOMEM;
                break;
            }
            tickets = grown;
        }
        tickets[n++] = get64(k.mv_data);
    }
    mdb_cursor_close(cur);
    rc = mrc == MDB_NOTFOUND ? 0 : qg__from_mdb(mrc);
    for (i = 0; i < n && rc == 0; i++)
        rc = resend_ticket(t, j, tickets[i], now);
    free(tickets);
    return rc;
}

int
qg__lmdb_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                       int64_t until_us, uint64_t *queued, uint64_t *waiting)
{
    resend_job j;
    int rc;

    if (queued)
        *queued = 0;
    if (waiting)
        *waiting = 0;
    if (st == NULL || since_us >= until_us || !qg__outbox_enabled(st))
        return QG_EINVAL;
    memset(&j, 0, sizeof(j));
    j.ticket = ticket;
    j.since_us = since_us;
    j.until_us = until_us;
    rc = qg__store_write(st, resend, &j);
    free(j.queue);
    if (rc == 0 && queued)
        *queued = j.queued;
    if (rc == 0 && waiting)
        *waiting = j.waiting;
    return rc;
}

/* LMDB lets one process write a store, so its forwarder is the only one:
 * every claim is its own, and there is nothing to record. */
int
qg__lmdb_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                      int64_t now_us, int64_t lease_us)
{
    (void)ticket;
    (void)owner;
    (void)now_us;
    (void)lease_us;
    return qg__store_writable(st) ? 0 : QG_ERDONLY;
}
