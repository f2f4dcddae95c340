/*
 * txn.c - what the LMDB store's files share, below all of them: LMDB's
 * codes as QG_E* codes, the store's transactions, the meta database's
 * values and counters, the store's id, and the headers of the three
 * records as stored.
 *
 * store.c calls the hash chain's, the held deliveries' and the refusal
 * index's hooks (chain.c, held.c, refused.c); those files take what they
 * need from here, never from store.c, so that no call runs back up.
 *
 * Resizing the map is only allowed with no transaction open in the
 * process (mdb_env_set_mapsize), so every transaction is counted and a
 * resize waits, for a bounded time, until the count drops to zero.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>

#include "qgate_int.h"
#include "store_int.h"

#define RESIZE_WAIT_S 10

int
qg__from_mdb(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return QG_NOTFOUND;
    case MDB_MAP_FULL:
        return QG_EFULL;
    case MDB_READERS_FULL:
        return QG_EBUSY;
    case ENOMEM:
        return QG_ENOMEM;
    case EACCES:
    case EROFS:
        return QG_ERDONLY;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        return QG_EFORMAT;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return QG_ECORRUPT;
    }
    return QG_ESTORE;
}

/* ----- transactions --------------------------------------------------- */

static void
txn_counted(qg_store *st, int delta)
{
    pthread_mutex_lock(&st->lock);
    if (delta > 0) {
        while (st->resizing)
            pthread_cond_wait(&st->idle, &st->lock);
        st->active++;
    } else if (--st->active == 0) {
        pthread_cond_broadcast(&st->idle);
    }
    pthread_mutex_unlock(&st->lock);
}

/*
 * Sets the map size with no transaction of this process open: size 0
 * adopts a size another process set.  Waits at most RESIZE_WAIT_S for
 * open transactions (a caller holding a history cursor while writing would
 * otherwise wait forever) and then gives up with QG_EBUSY.
 */
static int
resize(qg_store *st, size_t size)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += RESIZE_WAIT_S;
    pthread_mutex_lock(&st->lock);
    while (st->resizing)
        pthread_cond_wait(&st->idle, &st->lock);
    st->resizing = 1;
    while (st->active > 0 && rc == 0)
        rc = pthread_cond_timedwait(&st->idle, &st->lock, &until);
    if (st->active == 0)
        rc = qg__from_mdb(mdb_env_set_mapsize(st->env, size));
    else
        rc = QG_EBUSY;
    st->resizing = 0;
    pthread_cond_broadcast(&st->idle);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static size_t
map_size(qg_store *st)
{
    MDB_envinfo info;

    mdb_env_info(st->env, &info);
    return info.me_mapsize;
}

int
qg__lmdb_txn_begin(qg_store *st, int write, qg__txn *t)
{
    int rc, tries;

    t->st = st;
    t->txn = NULL;
    t->source = 0;
    for (tries = 0; tries < WRITE_RETRIES; tries++) {
        txn_counted(st, +1);
        rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        if (rc == 0 && write) {
            /* the writer's own: see struct qg_store */
            st->chain_row = NULL;
            st->chain_direct = 0;
        }
        if (rc == 0)
            return 0;
        txn_counted(st, -1);
        t->txn = NULL;
        if (rc != MDB_MAP_RESIZED)
            return qg__from_mdb(rc);
        /* another process grew the map: adopt its size and retry */
        if ((rc = resize(st, 0)))
            return rc;
    }
    return QG_ESTORE;
}

int
qg__lmdb_txn_commit(qg__txn *t)
{
    int rc = mdb_txn_commit(t->txn);

    t->txn = NULL;
    txn_counted(t->st, -1);
    return qg__from_mdb(rc);
}

void
qg__lmdb_txn_abort(qg__txn *t)
{
    if (t->txn == NULL)
        return;
    mdb_txn_abort(t->txn);
    t->txn = NULL;
    txn_counted(t->st, -1);
}

int
qg__lmdb_txn_nest(qg__txn *parent, qg__txn *child)
{
    child->st = parent->st;
    child->txn = NULL;
    child->source = parent->source;
    /* LMDB has no nested transaction in a writable map. */
    if (parent->st->flags & QG_WRITEMAP)
        return QG_ENOTSUP;
    return qg__from_mdb(
        mdb_txn_begin(parent->st->env, parent->txn, 0, &child->txn));
}

int
qg__lmdb_txn_nest_commit(qg__txn *child)
{
    int rc = mdb_txn_commit(child->txn);

    child->txn = NULL;
    return qg__from_mdb(rc);
}

void
qg__lmdb_txn_nest_abort(qg__txn *child)
{
    if (child->txn)
        mdb_txn_abort(child->txn);
    child->txn = NULL;
    child->st->chain_row = NULL; /* the failed delivery's */
}

int
qg__lmdb_write(qg_store *st, int (*fn)(qg__txn *, void *), void *arg)
{
    qg__txn t;
    size_t size;
    int rc, tries;

    if (st->flags & QG_RDONLY)
        return QG_ERDONLY;
    for (tries = 0; tries < WRITE_RETRIES; tries++) {
        if ((rc = qg__txn_begin(st, 1, &t)))
            return rc;
        size = map_size(st);
        rc = fn(&t, arg);
        if (rc == 0) {
            rc = qg__txn_commit(&t);
        } else {
            qg__txn_abort(&t);
            if (rc > 0)
                return 0;
        }
        if (rc != QG_EFULL)
            return rc;
        /* Nothing was written; grow, unless another thread already did. */
        if (size >= st->map_max)
            return QG_EFULL;
        if (map_size(st) == size &&
            (rc = resize(st, size * 2 < st->map_max ? size * 2 : st->map_max)))
            return rc;
    }
    return QG_EFULL;
}

/* ----- meta ---------------------------------------------------------- */

int
qg__meta_get64(qg__txn *t, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc;

    if ((rc = mdb_get(t->txn, t->st->meta, &k, &d)))
        return qg__from_mdb(rc);
    if (d.mv_size != 8)
        return QG_ESTORE;
    *v = get64(d.mv_data);
    return 0;
}

int
qg__meta_put64(qg__txn *t, const char *key, uint64_t v)
{
    unsigned char buf[8];
    MDB_val k = {strlen(key), (void *)key}, d = {8, buf};

    put64(buf, v);
    return qg__from_mdb(mdb_put(t->txn, t->st->meta, &k, &d, 0));
}

int
qg__meta_counter(qg__txn *t, const char *name, uint64_t *id)
{
    unsigned char buf[8];
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc;

    rc = mdb_get(t->txn, t->st->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        *id = 1;
    else if (rc)
        return qg__from_mdb(rc);
    else if (v.mv_size != 8)
        return QG_ESTORE;
    else
        *id = get64(v.mv_data);
    put64(buf, *id + 1);
    v.mv_size = 8;
    v.mv_data = buf;
    return qg__from_mdb(mdb_put(t->txn, t->st->meta, &k, &v, 0));
}

int
qg__next_id(qg__txn *t, MDB_dbi dbi, uint64_t *id)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(t->txn, dbi, &cur)))
        return qg__from_mdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *id = 1;
        return 0;
    }
    if (rc)
        return qg__from_mdb(rc);
    if (k.mv_size != 8)
        return QG_ESTORE;
    *id = get64(k.mv_data) + 1;
    return 0;
}

/* The id store.c read from meta, or gave the store, at open. */
int
qg__lmdb_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    if (!st->has_id)
        return QG_NOTFOUND;
    for (i = 0; i < sizeof(st->id); i++) {
        out[2 * i] = hex[st->id[i] >> 4];
        out[2 * i + 1] = hex[st->id[i] & 15];
    }
    out[QG_STORE_ID_LEN] = '\0';
    return 0;
}

/* ----- records as stored --------------------------------------------- */

/* The layouts are in store_int.h; a rejection's in store.c, above
 * append_rejection(), with what follows its header. */

void
qg__record_header(unsigned char *p, const qg_record *rec, int has_facts)
{
    memset(p, 0, RECORD_HDR);
    put64(p, (uint64_t)rec->received_us);
    put64(p + 8, (uint64_t)rec->event_ms);
    put32(p + 16, (uint32_t)rec->utc_offset_s);
    p[20] = (unsigned char)rec->event;
    p[21] = (unsigned char)rec->from;
    p[22] = (unsigned char)rec->to;
    p[23] = (unsigned char)((rec->late ? REC_LATE : 0) |
                            (rec->released ? REC_RELEASED : 0) |
                            (has_facts ? REC_FACTS : 0));
    put64(p + 24, (uint64_t)rec->service_id);
    put64(p + 32, (uint64_t)rec->staff_id);
    memcpy(p + 40, rec->digest, QG__DIGEST_LEN);
    memcpy(p + 72, rec->machine, strnlen(rec->machine, 16));
    put32(p + 88, (uint32_t)rec->body_len);
    put32(p + 92, rec->pos);
}

void
qg__facts_put(unsigned char *f, const qg__facts *facts)
{
    memset(f, 0, FACTS_LEN);
    f[0] = (unsigned char)facts->em.rule;
    f[1] = (unsigned char)facts->em.event;
    f[2] = (unsigned char)(facts->em.appointment != 0);
    f[3] = (unsigned char)(facts->em.updated != 0);
    f[4] = (unsigned char)facts->state_event;
    memcpy(f + 8, facts->appointment_date,
           strnlen(facts->appointment_date, 15));
    memcpy(f + 24, facts->appointment_time,
           strnlen(facts->appointment_time, 15));
}

void
qg__rejection_header(unsigned char *p, const qg_rejection *rej, unsigned source,
                     size_t dlen, size_t keep, unsigned flags)
{
    memset(p, 0, REJECTION_HDR);
    put64(p, (uint64_t)rej->received_us);
    p[8] = (unsigned char)rej->verdict;
    p[9] = (unsigned char)rej->reason;
    p[10] = (unsigned char)rej->event;
    p[11] = (unsigned char)rej->from;
    put32(p + 12, (uint32_t)dlen);
    put64(p + 16, rej->ticket);
    put64(p + 24, (uint64_t)rej->live_queue_id);
    put64(p + 32, (uint64_t)rej->appointment_id);
    put32(p + 40, (uint32_t)keep);
    p[44] = (unsigned char)flags;
    p[45] = (unsigned char)source;
}

static void
put_text(unsigned char *dst, const char *src, size_t size)
{
    memcpy(dst, src, strnlen(src, size - 1));
}

void
qg__held_header(unsigned char *p, const qg__step *s, uint64_t ticket,
                qg_event ev, qg_state from, unsigned source)
{
    memset(p, 0, HELD_HDR);
    put64(p, (uint64_t)s->received_us);
    put64(p + 8, (uint64_t)s->event_ms);
    put32(p + 16, (uint32_t)s->utc_offset_s);
    p[20] = (unsigned char)s->f.em.rule;
    p[21] = (unsigned char)s->f.em.event;
    p[22] = (unsigned char)(s->f.em.appointment != 0);
    p[23] = (unsigned char)(s->f.em.updated != 0);
    p[24] = (unsigned char)s->f.state_event;
    p[25] = (unsigned char)ev;
    p[26] = (unsigned char)from;
    p[27] = (unsigned char)source; /* 0 in stores before sources */
    put32(p + 28, (uint32_t)s->body_len);
    put64(p + 32, ticket);
    put64(p + 40, (uint64_t)s->live_queue_id);
    put64(p + 48, (uint64_t)s->appointment_id);
    put64(p + 56, (uint64_t)s->f.service_id);
    put64(p + 64, (uint64_t)s->staff_id);
    put_text(p + 72, s->f.appointment_date, 16);
    put_text(p + 88, s->f.appointment_time, 16);
    memcpy(p + 104, s->digest, QG__DIGEST_LEN);
    put_text(p + 136, s->chup_event, 48);
}
