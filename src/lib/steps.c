/*
 * steps.c - the step summaries: what a walk over every history needs of
 * each record, without its body.
 *
 *   steps  u64 ticket, u32 seq -> STEP_LEN bytes: 0 event ms, 8 service,
 *          16 pos as in the record's header, 20 event, 21 from, 22 to,
 *          23 flags (REC_LATE, REC_RELEASED)
 *
 * A history record is 1 KB or more, two or three to a page; its summary
 * is a 46-byte node, some sixty to a page as the engine writes them
 * (leaves split as keys arrive), ninety when built in key order.  `qgate stats`
 * and the gate's GET /waits read these (qg_history_open_order() with
 * QG_SUMMARY) and never touch the bodies' pages.  Keyed as history, so a walk
 * sees the steps in the same order.
 *
 * A summary is written in the transaction that writes its record, when the
 * record is appended and when a late step moves it (move changes pos,
 * event, from and to).  Purge rewrites a record's body, never its summary.
 *
 * The summaries cover the history when the two databases hold as many
 * entries: records are never deleted, and every write of a qgate without
 * the summaries appends a record (a move comes with the append of the
 * late step that caused it).  mdb_stat() reads both counts from the
 * snapshot's roots, so each cursor checks its own snapshot: one that finds
 * them apart (a store from before the summaries opened read-only, or one
 * an older qgate wrote to since) walks the records instead.  The first
 * writable open of such a store builds them again (build_all()).
 */
#include <string.h>

#include <lmdb.h>

#include "qgate_int.h"
#include "store_int.h"

#define STEP_LEN   24
#define STEP_FLAGS (REC_LATE | REC_RELEASED)

/* The summary of the record whose header is hdr (store_int.h). */
static void
summarize(unsigned char s[STEP_LEN], const unsigned char *hdr)
{
    memcpy(s, hdr + 8, 8);
    memcpy(s + 8, hdr + 24, 8);
    memcpy(s + 16, hdr + 92, 4);
    memcpy(s + 20, hdr + 20, 3);
    s[23] = hdr[23] & STEP_FLAGS;
}

int
qg__steps_put(qg__txn *t, uint64_t ticket, uint32_t seq,
              const unsigned char *hdr)
{
    unsigned char key[12], s[STEP_LEN];
    MDB_val k = qg__step_key(key, ticket, seq), v = {STEP_LEN, s};

    summarize(s, hdr);
    return qg__from_mdb(mdb_put(t->txn, t->st->steps, &k, &v, 0));
}

int
qg__steps_decode(const MDB_val *k, const MDB_val *v, qg_record *rec)
{
    const unsigned char *s = v->mv_data;

    if (k->mv_size != 12 || v->mv_size != STEP_LEN)
        return QG_ESTORE;
    memset(rec, 0, sizeof(*rec));
    rec->ticket = get64(k->mv_data);
    rec->seq = get32((const unsigned char *)k->mv_data + 8);
    rec->event_ms = (int64_t)get64(s);
    rec->service_id = (int64_t)get64(s + 8);
    rec->pos = get32(s + 16) ? get32(s + 16) : rec->seq;
    rec->event = (qg_event)s[20];
    rec->from = (qg_state)s[21];
    rec->to = (qg_state)s[22];
    rec->late = (s[23] & REC_LATE) != 0;
    rec->released = (s[23] & REC_RELEASED) != 0;
    return 0;
}

int
qg__steps_current(qg__txn *t)
{
    MDB_stat hs, ss;
    int rc;

    if (!t->st->has_steps)
        return 0;
    if ((rc = mdb_stat(t->txn, t->st->history, &hs)) ||
        (rc = mdb_stat(t->txn, t->st->steps, &ss)))
        return qg__from_mdb(rc);
    return hs.ms_entries == ss.ms_entries;
}

int
qg__lmdb_step_summary(qg__txn *t, uint64_t ticket, uint32_t seq, qg_record *out)
{
    unsigned char key[12];
    MDB_val k = qg__step_key(key, ticket, seq), v;
    int rc;

    if ((rc = mdb_get(t->txn, t->st->steps, &k, &v)))
        return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
    return qg__steps_decode(&k, &v, out);
}

/*
 * The summaries are built in transactions of qg__steps_batch records: a
 * build interrupted midway keeps what its batches committed, and a batch's
 * dirty pages stay within the 128 Ki LMDB holds in memory before it
 * spills them to the file mid-transaction (some eleven million
 * summaries).  Until the last batch commits, the summaries are fewer than the
 * records, so every walk reads the records: a batch is never taken for
 * the whole.  fn may run again after a failure that wrote nothing
 * (qg__store_write()), so a batch reads where it starts from b->from and
 * says where the next starts in b->next, which the caller takes only once
 * the batch committed.
 */
size_t qg__steps_batch = 1000000; /* tests make it small */

typedef struct build {
    int started;            /* the first batch committed */
    unsigned char from[12]; /* after the first: the last key it wrote */
    int done;               /* set by the batch that reached the end */
    unsigned char next[12];
    size_t n; /* summaries the batch wrote */
} build;

/* One batch.  The walk is in key order: MDB_APPEND fills each leaf before
 * the next, as long as no summary past the batch's keys is there already
 * (one a concurrent writer put between batches), then a plain put.  A
 * record too damaged to have a header gets none, so the summaries never
 * cover the history and stats walks the records, where it finds the
 * damage as before: the store still opens. */
static int
build_batch(qg__txn *t, void *arg)
{
    build *b = arg;
    unsigned char s[STEP_LEN];
    MDB_cursor *cur, *out;
    MDB_val k, v, sv = {STEP_LEN, s};
    size_t n = 0;
    int rc;

    b->done = 0;
    b->n = 0;
    if (!b->started) {
        if ((rc = qg__steps_current(t)) != 0) {
            b->done = 1;
            return rc < 0 ? rc : 1; /* nothing to do: write nothing */
        }
        if ((rc = mdb_drop(t->txn, t->st->steps, 0)))
            return qg__from_mdb(rc);
    }
    if ((rc = mdb_cursor_open(t->txn, t->st->history, &cur)))
        return qg__from_mdb(rc);
    if ((rc = mdb_cursor_open(t->txn, t->st->steps, &out))) {
        mdb_cursor_close(cur);
        return qg__from_mdb(rc);
    }
    if (b->started) {
        k.mv_size = 12;
        k.mv_data = b->from;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == 12 && memcmp(k.mv_data, b->from, 12) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0 && n < qg__steps_batch;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 12 || v.mv_size < RECORD_HDR)
            continue;
        summarize(s, v.mv_data);
        rc = mdb_cursor_put(out, &k, &sv, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            rc = mdb_cursor_put(out, &k, &sv, 0);
        if (rc)
            break;
        memcpy(b->next, k.mv_data, 12);
        n++;
    }
    mdb_cursor_close(out);
    mdb_cursor_close(cur);
    b->n = n;
    if (rc == MDB_NOTFOUND)
        b->done = 1;
    else if (rc)
        return qg__from_mdb(rc);
    return 0;
}

/* Writes every record's summary, unless they cover the history already,
 * and counts them in st->steps_built for the programs to say. */
static int
build_all(qg_store *st)
{
    build b;
    int rc;

    memset(&b, 0, sizeof(b));
    while ((rc = qg__store_write(st, build_batch, &b)) == 0) {
        st->steps_built += b.n;
        if (b.done)
            break;
        b.started = 1;
        memcpy(b.from, b.next, 12);
    }
    return rc;
}

int
qg__lmdb_steps_built(const qg_store *st, uint64_t *records)
{
    if (st == NULL || records == NULL)
        return QG_EINVAL;
    *records = st->steps_built;
    return 0;
}

int
qg__steps_open(qg_store *st)
{
    unsigned create = (st->flags & QG_RDONLY) ? 0 : MDB_CREATE;
    qg__txn t;
    int rc;

    if ((rc = qg__txn_begin(st, !!create, &t)))
        return rc;
    rc = mdb_dbi_open(t.txn, "steps", create, &st->steps);
    if (rc && rc != MDB_NOTFOUND) {
        qg__txn_abort(&t);
        return qg__from_mdb(rc);
    }
    /* Read-only, a store from before the summaries stays without them.
     * The transaction commits: the handle it opened stays open. */
    st->has_steps = rc == 0;
    if ((rc = qg__txn_commit(&t)) || !create)
        return rc;
    return build_all(st);
}
