/*
 * counts.c - the tickets by state and the refusals by reason, kept by the
 * LMDB store so that qg_store_counts() (the console's GET /overview, asked
 * every 5 seconds) reads one value instead of every ticket row and every
 * entry of the rejection log.
 *
 *   meta "counts"  COUNTS_LEN bytes of u64: 0 records, 8 refusals,
 *                  16 newest, 24 the tickets at each state, then the
 *                  refusals of each reason
 *
 * A ticket is counted at its state once it has records; an entry of the
 * rejection log at its reason.  The value is rewritten in the write
 * transaction that changes what it counts: qg__lmdb_put_ticket() when a
 * row's state or records change, append_rejection() and trim_unsigned()
 * (store.c) when an entry comes or goes.  Resolution and purge rewrite an
 * entry, never its reason, and the chain only moves a row's head, so they
 * leave it alone.  A nested transaction that aborts takes its changes to
 * the value with it.
 *
 * The first three fields say which store the counts are of: the history
 * records their tickets hold (the records of every ticket, as records are
 * never deleted and each is its ticket's), the entries of the log and the
 * id of its newest.  A snapshot where mdb_stat() and the log's last key
 * say otherwise was written by a qgate without the counts (a store from
 * before them, opened read-only, or one an older binary on the same folder
 * wrote to since): qg_store_counts() walks it as the console did, and the
 * next writable open counts it again.
 */
#include <string.h>

#include <lmdb.h>

#include "qgate_int.h"
#include "store_int.h"

#define META_COUNTS "counts"

enum {
    C_RECORDS,
    C_REFUSALS,
    C_NEWEST,
    C_STATES,
    C_REASONS = C_STATES + QG_STATE_COUNT,
    C_N = C_REASONS + QG_REASON_COUNT
};

#define COUNTS_LEN (C_N * 8)

/* 0, QG_NOTFOUND when the store has no counts (or counts of another
 * version's length: as good as none), or an error. */
static int
counts_get(qg__txn *t, uint64_t c[C_N])
{
    MDB_val k = {sizeof(META_COUNTS) - 1, (void *)META_COUNTS}, v;
    int i, rc;

    if ((rc = mdb_get(t->txn, t->st->meta, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size != COUNTS_LEN)
        return QG_NOTFOUND;
    for (i = 0; i < C_N; i++)
        c[i] = get64((const unsigned char *)v.mv_data + 8 * i);
    return 0;
}

static int
counts_put(qg__txn *t, const uint64_t c[C_N])
{
    unsigned char buf[COUNTS_LEN];
    MDB_val k = {sizeof(META_COUNTS) - 1, (void *)META_COUNTS},
            v = {COUNTS_LEN, buf};
    int i;

    for (i = 0; i < C_N; i++)
        put64(buf + 8 * i, c[i]);
    return qg__from_mdb(mdb_put(t->txn, t->st->meta, &k, &v, 0));
}

/* The first three fields as t's snapshot has them. */
static int
stamp(qg__txn *t, uint64_t c[C_N])
{
    MDB_stat hs, rs;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_stat(t->txn, t->st->history, &hs)) ||
        (rc = mdb_stat(t->txn, t->st->rejections, &rs)) ||
        (rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    c[C_RECORDS] = hs.ms_entries;
    c[C_REFUSALS] = rs.ms_entries;
    c[C_NEWEST] = rc == 0 && k.mv_size == 8 ? get64(k.mv_data) : 0;
    return 0;
}

/* 1 when c counts t's snapshot, 0 when a qgate without counts wrote it. */
static int
current(qg__txn *t, const uint64_t c[C_N])
{
    uint64_t now[C_N];
    int rc;

    if ((rc = stamp(t, now)))
        return rc;
    return memcmp(now, c, C_STATES * sizeof(*c)) == 0;
}

/* Counts t's snapshot by reading every ticket row and the header of every
 * entry of the log.  A row or an entry too short to be one is passed
 * over: a damaged store still opens, and its readers find the damage. */
static int
walk(qg__txn *t, uint64_t c[C_N])
{
    const unsigned char *p;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    memset(c, 0, C_N * sizeof(*c));
    if ((rc = stamp(t, c)) ||
        (rc = qg__from_mdb(mdb_cursor_open(t->txn, t->st->tickets, &cur))))
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        p = v.mv_data;
        if (v.mv_size == TICKET_LEN && p[0] < QG_STATE_COUNT && get32(p + 4))
            c[C_STATES + p[0]]++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND ||
        (rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        p = v.mv_data;
        if (v.mv_size >= REJECTION_HDR && p[9] < QG_REASON_COUNT)
            c[C_REASONS + p[9]]++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

int
qg__counts_ticket(qg__txn *t, unsigned from, uint32_t from_records, unsigned to,
                  uint32_t to_records)
{
    uint64_t c[C_N];
    int rc;

    if (from == to && from_records == to_records)
        return 0;
    /* none: a store counted by no open of this qgate, which walks */
    if ((rc = counts_get(t, c)))
        return rc == QG_NOTFOUND ? 0 : rc;
    c[C_RECORDS] += (uint64_t)to_records - from_records;
    if (from_records && from < QG_STATE_COUNT)
        c[C_STATES + from]--;
    if (to_records && to < QG_STATE_COUNT)
        c[C_STATES + to]++;
    return counts_put(t, c);
}

int
qg__counts_refusal(qg__txn *t, uint64_t id, unsigned reason, int added)
{
    uint64_t c[C_N];
    int rc;

    if ((rc = counts_get(t, c)))
        return rc == QG_NOTFOUND ? 0 : rc;
    if (added) {
        c[C_REFUSALS]++;
        c[C_NEWEST] = id;
    } else {
        c[C_REFUSALS]--;
    }
    if (reason < QG_REASON_COUNT)
        c[C_REASONS + reason] += added ? 1 : (uint64_t)-1;
    return counts_put(t, c);
}

/* Counts the store, unless the counts it has are current: nothing is
 * written then. */
static int
build(qg__txn *t, void *arg)
{
    uint64_t c[C_N];
    int rc;

    (void)arg;
    if ((rc = counts_get(t, c)) == 0 && (rc = current(t, c)) != 0)
        return rc < 0 ? rc : 1;
    if (rc && rc != QG_NOTFOUND)
        return rc;
    if ((rc = walk(t, c)))
        return rc;
    return counts_put(t, c);
}

int
qg__counts_open(qg_store *st)
{
    if (st->flags & QG_RDONLY)
        return 0;
    return qg__store_write(st, build, NULL);
}

int
qg__lmdb_counts(qg_store *st, qg_counts *out)
{
    uint64_t c[C_N];
    qg__txn t;
    int i, rc;

    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    if ((rc = counts_get(&t, c)) == 0 && (rc = current(&t, c)) == 1)
        rc = 0;
    else if (rc == 0 || rc == QG_NOTFOUND)
        rc = walk(&t, c);
    qg__txn_abort(&t);
    if (rc)
        return rc;
    memset(out, 0, sizeof(*out));
    for (i = 0; i < QG_STATE_COUNT; i++) {
        out->states[i] = c[C_STATES + i];
        out->tickets += out->states[i];
    }
    for (i = 0; i < QG_REASON_COUNT; i++) {
        out->reasons[i] = c[C_REASONS + i];
        out->refused += out->reasons[i];
    }
    return 0;
}
