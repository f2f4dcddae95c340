/*
 * refused.c - the rejection log's index by ticket.
 *
 *   refused_by  u64 ticket, u64 rejection id -> ""
 *
 * One key for each entry of the rejection log that names a ticket, written
 * and deleted in the transaction that appends or drops the entry, so that
 * a ticket's refusals (the console's ticket page, qg_rejections_open_ticket())
 * are a range of this database rather than a pass over the whole log.
 * Purge and resolution rewrite an entry, never its ticket, so they leave
 * the index alone.
 *
 * meta "refused_by" says the index covers the log.  A store written before
 * it has the index built at its first writable open; read-only, such a
 * store has none, and its readers pass over the log as before.  A store a
 * qgate without the index wrote to since (an older binary on the same
 * folder) is caught at the next writable open by its newest entry, which
 * names a ticket the index does not hold with it, and rebuilt.
 */
#include <string.h>

#include <lmdb.h>

#include "qgate_int.h"
#include "store_int.h"

#define META_REFUSED_BY "refused_by"

static void
index_key(unsigned char key[16], uint64_t ticket, uint64_t id)
{
    put64(key, ticket);
    put64(key + 8, id);
}

int
qg__refused_put(qg__txn *t, uint64_t ticket, uint64_t id)
{
    unsigned char key[16];
    MDB_val k = {16, key}, v = {0, ""};

    if (ticket == 0)
        return 0;
    index_key(key, ticket, id);
    return qg__from_mdb(mdb_put(t->txn, t->st->refused_by, &k, &v, 0));
}

int
qg__refused_del(qg__txn *t, uint64_t ticket, uint64_t id)
{
    unsigned char key[16];
    MDB_val k = {16, key};
    int rc;

    if (ticket == 0)
        return 0;
    index_key(key, ticket, id);
    rc = mdb_del(t->txn, t->st->refused_by, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

/* The ticket of rejection value v (its header's bytes 16 to 23). */
static uint64_t
ticket_of(const MDB_val *v)
{
    return v->mv_size >= 24 ? get64((const unsigned char *)v->mv_data + 16) : 0;
}

/* Whether the index holds the log's newest entry, when that names a
 * ticket: 0 when it does not, 1 when it does or there is none. */
static int
newest_indexed(qg__txn *t)
{
    unsigned char key[16];
    MDB_cursor *cur;
    MDB_val k, v, ik = {16, key}, iv;
    int rc;

    if ((rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc)
        return qg__from_mdb(rc);
    if (k.mv_size != 8 || ticket_of(&v) == 0)
        return 1;
    index_key(key, ticket_of(&v), get64(k.mv_data));
    rc = mdb_get(t->txn, t->st->refused_by, &ik, &iv);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

/* Builds the index from the log, unless it covers it already. */
static int
build(qg__txn *t, void *arg)
{
    uint64_t *added = arg, done;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    *added = 0;
    if ((rc = qg__meta_get64(t, META_REFUSED_BY, &done)) == 0 &&
        (rc = newest_indexed(t)) != 0)
        return rc < 0 ? rc : 1; /* nothing to do: abort, write nothing */
    if (rc && rc != QG_NOTFOUND)
        return rc;
    if ((rc = mdb_drop(t->txn, t->st->refused_by, 0)))
        return qg__from_mdb(rc);
    if ((rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 8 || ticket_of(&v) == 0)
            continue;
        if ((rc = qg__refused_put(t, ticket_of(&v), get64(k.mv_data))))
            break;
        (*added)++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc < 0 ? rc : qg__from_mdb(rc);
    return qg__meta_put64(t, META_REFUSED_BY, 1);
}

int
qg__refused_open(qg_store *st)
{
    unsigned create = (st->flags & QG_RDONLY) ? 0 : MDB_CREATE;
    uint64_t done, added;
    qg__txn t;
    int rc;

    if ((rc = qg__txn_begin(st, !!create, &t)))
        return rc;
    rc = mdb_dbi_open(t.txn, "refused_by", create, &st->refused_by);
    if (rc == 0)
        rc = qg__meta_get64(&t, META_REFUSED_BY, &done);
    else
        rc = rc == MDB_NOTFOUND ? QG_NOTFOUND : qg__from_mdb(rc);
    if (rc && rc != QG_NOTFOUND) {
        qg__txn_abort(&t);
        return rc;
    }
    /* Read-only, a store from before the index stays without one.  The
     * transaction commits: the handle it opened stays open. */
    st->has_refused_by = rc == 0;
    if ((rc = qg__txn_commit(&t)) || !create)
        return rc;
    st->has_refused_by = 1;
    return qg__store_write(st, build, &added);
}
