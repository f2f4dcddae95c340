/*
 * purge.c - dropping the raw bodies of old steps and refusals, keeping
 * what each step decided.
 *
 * A body holds a patient's name and phone number; what the store needs
 * for ever is the skeleton: the record's header (ids, event, from and to,
 * times, verdict, the payload's digest), its facts, and the digests
 * database, which still finds a redelivery.  Purging rewrites a record as
 * its header with REC_PURGED, the body's length and SHA-256 in the body's
 * place, and its facts (store_int.h); a rejection as a truncated entry
 * with a prefix of 0 bytes.
 *
 * The work goes in write transactions of PURGE_BATCH entries each, so
 * that the gate's commits wait at most for one batch, never for the
 * whole store.  A step still in the outbox or the dead list keeps its
 * body: it has yet to be forwarded.  That is checked in the transaction
 * that rewrites the step, so no forwarder can see it purged.
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"
#include "store_int.h"

/* Entries examined per write transaction. */
#define PURGE_BATCH 2000

/* The largest purged history record: header, PURGED_LEN, facts. */
#define PURGED_RECORD (RECORD_HDR + PURGED_LEN + FACTS_LEN)

/* One rewrite of a batch, made while the cursor reads and put after. */
typedef struct rewrite {
    unsigned char key[12];
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int is_unsigned; /* an unauthenticated or malformed rejection */
    int64_t shrinks; /* bytes the value loses */
} rewrite;

typedef struct batch {
    int64_t before_us;
    MDB_dbi dbi;
    unsigned char start[12]; /* the first key to examine */
    size_t slen;             /* 0: from the first key */
    int done;                /* the end of the database was reached */
    qg_purge_stats got;      /* this batch's counts */
    rewrite *rw;
    size_t nrw;
    /* (ticket, seq) of the outbox and the dead list, sorted */
    uint64_t *queued;
    size_t nqueued, capqueued;
} batch;

static int
by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* (ticket, seq) as one sortable number: tickets stay below 2^32 in any
 * store a clinic fills, and a collision only keeps a body. */
static uint64_t
step_key(uint64_t ticket, uint32_t seq)
{
    return ticket << 32 | seq;
}

/* The steps the outbox and the dead list hold, in this transaction. */
static int
load_queued(qg__txn *t, batch *b)
{
    MDB_dbi dbis[2] = {t->st->outbox, t->st->dead};
    MDB_cursor *cur;
    MDB_val k, v;
    int i, rc = 0;

    b->nqueued = 0;
    for (i = 0; i < 2 && rc == 0; i++) {
        if ((rc = mdb_cursor_open(t->txn, dbis[i], &cur)))
            return qg__from_mdb(rc);
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            const unsigned char *p = v.mv_data;

            if (v.mv_size < 12)
                continue;
            if (b->nqueued == b->capqueued) {
                size_t cap = b->capqueued ? b->capqueued * 2 : 256;
                uint64_t *q = realloc(b->queued, cap * sizeof(*q));

                if (q == NULL) {
                    mdb_cursor_close(cur);
                    return QG_ENOMEM;
                }
                b->queued = q;
                b->capqueued = cap;
            }
            b->queued[b->nqueued++] = step_key(get64(p), get32(p + 8));
        }
        mdb_cursor_close(cur);
        rc = rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
    }
    if (rc == 0 && b->nqueued > 0) /* qsort() takes no NULL, even empty */
        qsort(b->queued, b->nqueued, sizeof(*b->queued), by_u64);
    return rc;
}

static int
is_queued(const batch *b, uint64_t ticket, uint32_t seq)
{
    uint64_t key = step_key(ticket, seq);

    if (b->nqueued == 0)
        return 0;
    return bsearch(&key, b->queued, b->nqueued, sizeof(key), by_u64) != NULL;
}

/* The history record v purged into rw; 0, or 1 when it is not to be
 * purged (already, recent, or still to be forwarded). */
static int
purge_record(batch *b, const MDB_val *k, const MDB_val *v, rewrite *rw)
{
    const unsigned char *p = v->mv_data;
    size_t body, tail;
    unsigned char *q;

    if (k->mv_size != 12 || v->mv_size < RECORD_HDR)
        return QG_ESTORE;
    body = get32(p + 88);
    tail = p[23] & REC_FACTS ? FACTS_LEN : 0;
    if (v->mv_size != RECORD_HDR + body + tail)
        return QG_ESTORE;
    if (p[23] & REC_PURGED || (int64_t)get64(p) >= b->before_us)
        return 1;
    if (is_queued(b, get64(k->mv_data),
                  get32((const unsigned char *)k->mv_data + 8))) {
        b->got.skipped++;
        return 1;
    }
    if ((q = malloc(PURGED_RECORD)) == NULL)
        return QG_ENOMEM;
    memcpy(q, p, RECORD_HDR);
    q[23] |= REC_PURGED;
    put32(q + 88, PURGED_LEN);
    put64(q + RECORD_HDR, body);
    qg__digest(p + RECORD_HDR, body, q + RECORD_HDR + 8);
    memcpy(q + RECORD_HDR + PURGED_LEN, p + RECORD_HDR + body, tail);
    memcpy(rw->key, k->mv_data, 12);
    rw->klen = 12;
    rw->val = q;
    rw->vlen = RECORD_HDR + PURGED_LEN + tail;
    rw->is_unsigned = 0;
    rw->shrinks = (int64_t)v->mv_size - (int64_t)rw->vlen;
    b->got.records++;
    b->got.bytes += body;
    return 0;
}

/* The rejection v purged into rw, as purge_record(). */
static int
purge_rejection(batch *b, const MDB_val *k, const MDB_val *v, rewrite *rw)
{
    const unsigned char *p = v->mv_data;
    size_t dlen, keep, ndlen;
    unsigned char *q, *extra;
    int cut;

    if (k->mv_size != 8 || v->mv_size < REJECTION_HDR)
        return QG_ESTORE;
    dlen = get32(p + 12);
    keep = get32(p + 40);
    cut = (p[44] & REJ_TRUNCATED) != 0;
    if (dlen == 0 || v->mv_size != REJECTION_HDR + dlen + keep ||
        (cut && dlen <= REJ_EXTRA))
        return QG_ESTORE;
    /* Nothing to purge in an empty body, and a prefix of 0 bytes could
     * not say it was one. */
    if (p[44] & REJ_PURGED || keep == 0 || (int64_t)get64(p) >= b->before_us)
        return 1;
    ndlen = cut ? dlen : dlen + REJ_EXTRA;
    if ((q = malloc(REJECTION_HDR + ndlen)) == NULL)
        return QG_ENOMEM;
    memcpy(q, p, REJECTION_HDR + dlen - (cut ? REJ_EXTRA : 0));
    extra = q + REJECTION_HDR + ndlen - REJ_EXTRA;
    if (cut) {
        memcpy(extra, p + REJECTION_HDR + dlen - REJ_EXTRA, REJ_EXTRA);
    } else {
        memset(extra, 0, REJ_EXTRA);
        put64(extra, keep);
        qg__digest(p + REJECTION_HDR + dlen, keep, extra + 8);
    }
    put32(q + 12, (uint32_t)ndlen);
    put32(q + 40, 0);
    q[44] |= REJ_TRUNCATED | REJ_PURGED;
    memcpy(rw->key, k->mv_data, 8);
    rw->klen = 8;
    rw->val = q;
    rw->vlen = REJECTION_HDR + ndlen;
    rw->is_unsigned = p[8] == QG_UNAUTHENTICATED || p[8] == QG_MALFORMED;
    rw->shrinks = (int64_t)v->mv_size - (int64_t)rw->vlen;
    b->got.rejections++;
    b->got.bytes += keep;
    return 0;
}

static void
free_rewrites(batch *b)
{
    size_t i;

    for (i = 0; i < b->nrw; i++)
        free(b->rw[i].val);
    b->nrw = 0;
}

/* One batch, in the write transaction t (qg__store_write(), which may call
 * it again after growing the map: it starts from b->start each time). */
static int
purge_batch(qg__txn *t, void *arg)
{
    batch *b = arg;
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t unsigned_shrinks = 0;
    uint64_t total;
    size_t seen = 0, i;
    int rc = 0, mrc = 0, r, op;
    int history = b->dbi == t->st->history;

    memset(&b->got, 0, sizeof(b->got));
    free_rewrites(b);
    b->done = 0;
    if (history && (rc = load_queued(t, b)))
        return rc;
    if ((mrc = mdb_cursor_open(t->txn, b->dbi, &cur)))
        return qg__from_mdb(mrc);
    k.mv_size = b->slen;
    k.mv_data = b->start;
    op = b->slen ? MDB_SET_RANGE : MDB_FIRST;
    while (seen < PURGE_BATCH &&
           (mrc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        op = MDB_NEXT;
        seen++;
        r = history ? purge_record(b, &k, &v, &b->rw[b->nrw])
                    : purge_rejection(b, &k, &v, &b->rw[b->nrw]);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0)
            b->nrw++;
        /* Where the next batch begins: just after this key. */
        if (k.mv_size == 12) {
            uint64_t ticket = get64(k.mv_data);
            uint32_t seq = get32((const unsigned char *)k.mv_data + 8);

            if (seq == UINT32_MAX)
                ticket++;
            put64(b->start, ticket);
            put32(b->start + 8, seq + 1);
            b->slen = 12;
        } else if (k.mv_size == 8) {
            put64(b->start, get64(k.mv_data) + 1);
            b->slen = 8;
        }
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc == MDB_NOTFOUND)
        b->done = 1;
    else if (rc == 0 && mrc)
        rc = qg__from_mdb(mrc);
    /* The rewrites go in after the cursor is closed: a put may move the
     * pages it was reading. */
    for (i = 0; rc == 0 && i < b->nrw; i++) {
        MDB_val rk = {b->rw[i].klen, b->rw[i].key},
                rv = {b->rw[i].vlen, b->rw[i].val};

        rc = qg__from_mdb(mdb_put(t->txn, b->dbi, &rk, &rv, 0));
        if (b->rw[i].is_unsigned)
            unsigned_shrinks += b->rw[i].shrinks;
    }
    /* The bound on unsigned entries counts their bytes as stored. */
    if (rc == 0 && unsigned_shrinks &&
        (rc = qg__meta_get64(t, META_UNSIGNED_BYTES, &total)) == 0)
        rc = qg__meta_put64(t, META_UNSIGNED_BYTES,
                            total > (uint64_t)unsigned_shrinks
                                ? total - (uint64_t)unsigned_shrinks
                                : 0);
    if (rc == QG_NOTFOUND)
        rc = 0; /* not counted yet: it will be, from what is stored */
    return rc;
}

/* Every batch of one database. */
static int
purge_db(qg_store *st, MDB_dbi dbi, batch *b, qg_purge_stats *total)
{
    int rc;

    b->dbi = dbi;
    b->slen = 0;
    do {
        if ((rc = qg__store_write(st, purge_batch, b)))
            break;
        total->records += b->got.records;
        total->rejections += b->got.rejections;
        total->bytes += b->got.bytes;
        total->skipped += b->got.skipped;
    } while (!b->done);
    free_rewrites(b);
    return rc;
}

int
qg__lmdb_purge(qg_store *st, int64_t before_us, qg_purge_stats *out)
{
    qg_purge_stats total;
    batch b;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (st == NULL)
        return QG_EINVAL;
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    memset(&total, 0, sizeof(total));
    memset(&b, 0, sizeof(b));
    b.before_us = before_us;
    if ((b.rw = calloc(PURGE_BATCH, sizeof(*b.rw))) == NULL)
        return QG_ENOMEM;
    if ((rc = purge_db(st, st->history, &b, &total)) == 0)
        rc = purge_db(st, st->rejections, &b, &total);
    free(b.rw);
    free(b.queued);
    if (out)
        *out = total;
    return rc;
}
