/*
 * store.c - the LMDB store: tickets, their histories, the rejection log.
 *
 * Databases (all keys big-endian so they sort as numbers):
 *   meta        "format" -> u32 store format; "outbox" -> "1" once the
 *               store feeds an HIS (QG_OUTBOX, kept for good);
 *               "store_id" -> 16 random bytes, the store's id (given at
 *               creation, or at the first writable open of an older store);
 *               "outbox_next", "held_next" -> u64 counters;
 *               "rejections_unsigned_bytes", "rejections_unsigned_first",
 *               "rejections_dropped" -> u64, the bound on the log's
 *               unauthenticated and malformed entries; "write_probe" ->
 *               64 KiB rewritten by qg_store_probe(); "counts" -> the
 *               tickets by state and the refusals by reason (counts.c)
 *   tickets     u64 ticket -> ticket row (store_int.h: TICKET_LEN bytes,
 *               with the number of its newest chain entry)
 *   aliases     u8 kind | source << 2, i64 Chup id -> u64 ticket
 *               (source.c: source 0, the default, is the bare kind)
 *   history     u64 ticket, u32 seq -> record header + raw body
 *   digests     32-byte payload SHA-256 [, u8 source if not 0] -> u64
 *               ticket, u32 seq
 *   rejections  u64 id -> rejection header + detail + raw body (or, for
 *               unauthenticated and malformed deliveries, a prefix of it)
 *   outbox      u64 id -> outbox entry (a step waiting to be forwarded)
 *   dead        u64 id -> outbox entry that gave up (same id, same form)
 *   held        u64 id -> held delivery (held.c)
 *   held_by     u8 kind | source << 2, i64 Chup id, i64 event ms, u64 id
 *               -> "" (held.c)
 *   held_sums   32-byte payload SHA-256 [, u8 source] -> u64 held id
 *   refused_by  u64 ticket, u64 rejection id -> "" (refused.c)
 *   steps       u64 ticket, u32 seq -> the record's summary (steps.c)
 * A history record's seq is its place in order of acceptance, which never
 * changes; its place in event time (pos) is in its header and changes
 * when a late step is placed before it.  Stores written before pos
 * existed hold 0 there, which reads as pos = seq.
 * Values are written field by field at fixed offsets, never as C structs,
 * so the layout does not depend on the compiler.
 *
 * The transactions, the meta helpers and the records' encoders, which
 * the files beside this one share, are in txn.c, below them all.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "qgate_int.h"
#include "store_int.h"

#define STORE_FORMAT             1
#define DEFAULT_MAP_SIZE         ((size_t)64 << 20)
#define DEFAULT_MAP_MAX          ((size_t)64 << 30)
#define DEFAULT_UNSIGNED_LOG_MAX ((size_t)64 << 20)

int
qg__lmdb_writable(const qg_store *st)
{
    return !(st->flags & QG_RDONLY);
}

/*
 * An empty write transaction commits without touching the file, and a
 * one-page write fits in pages freed by earlier commits even when the file
 * cannot grow: neither says whether a batch of deliveries would commit.
 * So the probe rewrites a meta value of PROBE_BYTES, the size of a batch
 * of some thirty typical deliveries: fresh pages, flushed like any
 * commit's, from the free list if it has them, else from the file's end.
 */
#define PROBE_BYTES (64 << 10)

int
qg__lmdb_probe(qg_store *st)
{
    MDB_val k = {11, "write_probe"}, v = {PROBE_BYTES, NULL};
    qg__txn t;
    int rc;

    if (st == NULL || !qg__store_writable(st))
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 1, &t)))
        return rc;
    if ((rc = mdb_put(t.txn, st->meta, &k, &v, MDB_RESERVE))) {
        qg__txn_abort(&t);
        return qg__from_mdb(rc);
    }
    memset(v.mv_data, 0, PROBE_BYTES);
    put64(v.mv_data, (uint64_t)qg_time_now_us());
    return qg__txn_commit(&t);
}

int
qg__lmdb_copy(qg_store *st, const char *dir)
{
    if (st == NULL || dir == NULL)
        return QG_EINVAL;
    /* Compacting walks the trees in a read transaction of its own and,
     * unlike the plain copy, never takes the writers' lock. */
    return qg__from_mdb(mdb_env_copy2(st->env, dir, MDB_CP_COMPACT));
}

/* ----- checks ----------------------------------------------------------- */

/* Snapshots a writer may overtake before the check gives up (QG_EBUSY). */
#define CHECK_TRIES 16

int
qg__lmdb_check(qg_store *st, char *detail, size_t dlen)
{
    qg__txn t;
    int fd, rc, tries;

    if (detail && dlen)
        detail[0] = '\0';
    if (st == NULL)
        return QG_EINVAL;
    if (mdb_env_get_fd(st->env, &fd) != 0)
        return QG_EIO;
    /* The pages are read with pread(), not through the map, while a read
     * transaction holds the snapshot they belong to. */
    for (tries = 0; tries < CHECK_TRIES; tries++) {
        if ((rc = qg__txn_begin(st, 0, &t)))
            return rc;
        rc = qg__check_pages(fd, (uint64_t)mdb_txn_id(t.txn), detail, dlen);
        qg__txn_abort(&t);
        if (rc <= 0)
            return rc;
    }
    return QG_EBUSY;
}

/* LMDB's failed assertions call the program's function, if it set one;
 * LMDB then calls abort(). */
static void (*damage_hook)(const char *what);

void
qg_store_on_damage(void (*fn)(const char *what))
{
    damage_hook = fn;
}

static void
store_assert(MDB_env *env, const char *msg)
{
    (void)env;
    if (damage_hook)
        damage_hook(msg);
}

/* ----- open and close ------------------------------------------------- */

/*
 * Reads the store's id, or gives it one: at creation, and at the first
 * writable open of a store written before ids existed.  Read-only, such a
 * store has none (st->has_id 0).  The id is 16 bytes from getrandom(), so
 * that two stores feeding one HIS never name a step alike; it is in the
 * data file, so a copy (qg_store_copy()) restored in its place keeps it.
 */
static int
store_id(qg_store *st, MDB_txn *txn)
{
    MDB_val k = {8, (void *)"store_id"}, v;
    size_t got = 0;
    ssize_t n;
    int rc;

    if ((rc = mdb_get(txn, st->meta, &k, &v)) == 0) {
        if (v.mv_size != sizeof(st->id))
            return MDB_CORRUPTED;
        memcpy(st->id, v.mv_data, sizeof(st->id));
        st->has_id = 1;
        return 0;
    }
    if (rc != MDB_NOTFOUND || (st->flags & QG_RDONLY))
        return rc == MDB_NOTFOUND ? 0 : rc;
    while (got < sizeof(st->id)) {
        n = getrandom(st->id + got, sizeof(st->id) - got, 0);
        if (n < 0 && errno != EINTR)
            return EIO;
        if (n > 0)
            got += (size_t)n;
    }
    v.mv_size = sizeof(st->id);
    v.mv_data = st->id;
    if ((rc = mdb_put(txn, st->meta, &k, &v, 0)))
        return rc;
    st->has_id = 1;
    return 0;
}

static int
open_dbs(qg_store *st)
{
    static const char *const names[] = {
        "meta",   "tickets", "aliases", "history", "digests",  "rejections",
        "outbox", "dead",    "held",    "held_by", "held_sums"};
    MDB_dbi *const dbis[] = {&st->meta,    &st->tickets,  &st->aliases,
                             &st->history, &st->digests,  &st->rejections,
                             &st->outbox,  &st->dead,     &st->held,
                             &st->held_by, &st->held_sums};
    unsigned create = (st->flags & QG_RDONLY) ? 0 : MDB_CREATE;
    unsigned char fmt[4];
    MDB_val k = {6, (void *)"format"}, v;
    MDB_txn *txn;
    size_t i;
    int rc;

    /* Another process may grow the map between mdb_env_open() and here;
     * nothing of this process is open yet, so adopt its size and retry. */
    for (i = 0;; i++) {
        rc = mdb_txn_begin(st->env, NULL, create ? 0 : MDB_RDONLY, &txn);
        if (rc != MDB_MAP_RESIZED || i == WRITE_RETRIES)
            break;
        if ((rc = mdb_env_set_mapsize(st->env, 0)))
            break;
    }
    if (rc)
        return qg__from_mdb(rc);
    for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
        if ((rc = mdb_dbi_open(txn, names[i], create, dbis[i])))
            goto abort;
    }
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc == MDB_NOTFOUND && create) {
        put32(fmt, STORE_FORMAT);
        v.mv_size = 4;
        v.mv_data = fmt;
        rc = mdb_put(txn, st->meta, &k, &v, 0);
    } else if (rc == 0 &&
               (v.mv_size != 4 || get32(v.mv_data) != STORE_FORMAT)) {
        mdb_txn_abort(txn);
        return QG_EFORMAT;
    }
    if (rc)
        goto abort;
    /* A store that once fed an HIS goes on feeding it, whoever writes. */
    k.mv_size = 6;
    k.mv_data = "outbox";
    if (st->flags & QG_OUTBOX && create) {
        v.mv_size = 1;
        v.mv_data = "1";
        if ((rc = mdb_put(txn, st->meta, &k, &v, 0)))
            goto abort;
    } else if ((rc = mdb_get(txn, st->meta, &k, &v)) == 0) {
        st->flags |= QG_OUTBOX;
    } else if (rc != MDB_NOTFOUND) {
        goto abort;
    }
    if ((rc = store_id(st, txn)))
        goto abort;
    return qg__from_mdb(mdb_txn_commit(txn));
abort:
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? QG_NOTFOUND : qg__from_mdb(rc);
}

int
qg__lmdb_open(const qg_store_options *opts, qg_store **out)
{
    qg_store *st;
    unsigned envflags = MDB_NOTLS;
    struct stat sb;
    int rc, dead;

    if (out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if (opts == NULL || opts->path == NULL || opts->path[0] == '\0' ||
        (opts->flags & ~(QG_RDONLY | QG_OUTBOX | QG_WRITEMAP)) ||
        (opts->durability != QG_SYNC && opts->durability != QG_NOSYNC))
        return QG_EINVAL;
    if (stat(opts->path, &sb) != 0) {
        if (errno != ENOENT)
            return QG_EIO;
        if (opts->flags & QG_RDONLY)
            return QG_NOTFOUND;
        if (mkdir(opts->path, 0750) != 0 && errno != EEXIST)
            return QG_EIO;
    } else if (!S_ISDIR(sb.st_mode)) {
        return QG_EINVAL;
    }
    /* A data file cut short is mapped whole all the same, and the first
     * read past its end is a SIGBUS. */
    if ((rc = qg_store_check_file(opts->path, NULL, 0)))
        return rc;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return QG_ENOMEM;
    st->common.ops = &qg__lmdb_ops;
    st->flags = opts->flags;
    st->map_max = opts->map_max ? opts->map_max : DEFAULT_MAP_MAX;
    st->unsigned_log_max = opts->unsigned_log_max ? opts->unsigned_log_max
                                                  : DEFAULT_UNSIGNED_LOG_MAX;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->idle, NULL);
    if (opts->flags & QG_RDONLY)
        envflags |= MDB_RDONLY;
    if (opts->durability == QG_NOSYNC)
        envflags |= MDB_NOSYNC;
    /* A commit then writes nothing itself: its pages are already in the
     * map (docs/PERFORMANCE.md, "The gate at saturation").  LMDB nests
     * no transaction in such a store; see qg__lmdb_txn_nest(). */
    if ((opts->flags & (QG_WRITEMAP | QG_RDONLY)) == QG_WRITEMAP)
        envflags |= MDB_WRITEMAP;

    if ((rc = mdb_env_create(&st->env))) {
        rc = qg__from_mdb(rc);
        goto fail;
    }
    mdb_env_set_assert(st->env, store_assert);
    mdb_env_set_maxdbs(st->env, 32); /* 15 of qgate's own */
    mdb_env_set_maxreaders(st->env, 256);
    /* A store larger than the requested size keeps its own size. */
    mdb_env_set_mapsize(st->env,
                        opts->map_size ? opts->map_size : DEFAULT_MAP_SIZE);
    if ((rc = mdb_env_open(st->env, opts->path, envflags, 0640))) {
        rc = rc == ENOENT ? QG_NOTFOUND : qg__from_mdb(rc);
        goto fail;
    }
    /* Reader slots of processes that died holding them would pin old
     * pages forever; clear them now. */
    mdb_reader_check(st->env, &dead);
    if ((rc = open_dbs(st)) || (rc = qg__chain_open(st)) ||
        (rc = qg__refused_open(st)) || (rc = qg__steps_open(st)) ||
        (rc = qg__counts_open(st)))
        goto fail;
    *out = st;
    return 0;
fail:
    qg__lmdb_close(st);
    return rc;
}

void
qg__lmdb_close(qg_store *st)
{
    if (st == NULL)
        return;
    if (st->env)
        mdb_env_close(st->env);
    qg__chain_close(st);
    pthread_cond_destroy(&st->idle);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* ----- rows ------------------------------------------------------------ */

static void
alias_key(unsigned char key[9], unsigned source, qg_id_kind kind, int64_t id)
{
    key[0] = (unsigned char)(kind | source << QG__SOURCE_SHIFT);
    put64(key + 1, (uint64_t)id);
}

int
qg__lmdb_find_alias(qg__txn *t, qg_id_kind kind, int64_t id, uint64_t *ticket)
{
    unsigned char key[9];
    MDB_val k = {9, key}, v;
    int rc;

    /* A source the store has not numbered has no ids yet. */
    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    alias_key(key, t->source, kind, id);
    if ((rc = mdb_get(t->txn, t->st->aliases, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size != 8)
        return QG_ESTORE;
    *ticket = get64(v.mv_data);
    return 0;
}

static int
put_alias(qg__txn *t, qg_id_kind kind, int64_t id, uint64_t ticket)
{
    unsigned char key[9], val[8];
    MDB_val k = {9, key}, v = {8, val};

    alias_key(key, t->source, kind, id);
    put64(val, ticket);
    return qg__from_mdb(mdb_put(t->txn, t->st->aliases, &k, &v, 0));
}

static void
copy_text(char *dst, const unsigned char *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n - 1] = '\0';
}

static int
decode_ticket(const MDB_val *k, const MDB_val *v, qg__ticket_row *row)
{
    const unsigned char *p = v->mv_data;

    if (k->mv_size != 8 || v->mv_size != TICKET_LEN)
        return QG_ESTORE;
    memset(row, 0, sizeof(*row));
    row->t.id = get64(k->mv_data);
    row->t.state = (qg_state)p[0];
    row->flags = p[1];
    row->source = p[2];
    row->t.records = get32(p + 4);
    row->t.rejections = get32(p + 8);
    row->t.live_queue_id = (int64_t)get64(p + 16);
    row->t.appointment_id = (int64_t)get64(p + 24);
    row->t.last_event_ms = (int64_t)get64(p + 32);
    row->t.first_received_us = (int64_t)get64(p + 40);
    row->t.last_received_us = (int64_t)get64(p + 48);
    row->t.service_id = (int64_t)get64(p + 56);
    row->t.staff_id = (int64_t)get64(p + 64);
    copy_text(row->appointment_date, p + 72, 16);
    copy_text(row->appointment_time, p + 88, 16);
    row->chain_head = ticket_head(p);
    return 0;
}

int
qg__lmdb_get_ticket(qg__txn *t, uint64_t ticket, qg__ticket_row *row)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    put64(key, ticket);
    if ((rc = mdb_get(t->txn, t->st->tickets, &k, &v)))
        return qg__from_mdb(rc);
    return decode_ticket(&k, &v, row);
}

int
qg__lmdb_put_ticket(qg__txn *t, const qg__ticket_row *row)
{
    unsigned char key[8], p[TICKET_LEN];
    MDB_val k = {8, key}, v = {TICKET_LEN, p};
    uint64_t head = row->chain_head;
    uint32_t was_records = 0;
    unsigned was = 0;
    int rc;

    memset(p, 0, sizeof(p));
    put64(key, row->t.id);
    /* The row as stored, for the counts (its page is the one the put
     * writes), and for the head below. */
    rc = mdb_get(t->txn, t->st->tickets, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    if (rc == 0 && v.mv_size == TICKET_LEN) {
        was = ((const unsigned char *)v.mv_data)[0];
        was_records = get32((const unsigned char *)v.mv_data + 4);
    }
    /* The head the chain moved in the row in hand, or, for another row
     * read before the chain wrote its head itself, the newer of the two. */
    if (t->st->chain_row == row)
        t->st->chain_row = NULL;
    else if (t->st->chain_direct && rc == 0 && v.mv_size == TICKET_LEN &&
             ticket_head(v.mv_data) > head)
        head = ticket_head(v.mv_data);
    v.mv_size = TICKET_LEN;
    v.mv_data = p;
    ticket_set_head(p, head);
    p[0] = (unsigned char)row->t.state;
    p[1] = row->flags;
    p[2] = row->source;
    put32(p + 4, row->t.records);
    put32(p + 8, row->t.rejections);
    put64(p + 16, (uint64_t)row->t.live_queue_id);
    put64(p + 24, (uint64_t)row->t.appointment_id);
    put64(p + 32, (uint64_t)row->t.last_event_ms);
    put64(p + 40, (uint64_t)row->t.first_received_us);
    put64(p + 48, (uint64_t)row->t.last_received_us);
    put64(p + 56, (uint64_t)row->t.service_id);
    put64(p + 64, (uint64_t)row->t.staff_id);
    memcpy(p + 72, row->appointment_date, strnlen(row->appointment_date, 15));
    memcpy(p + 88, row->appointment_time, strnlen(row->appointment_time, 15));
    if ((rc = mdb_put(t->txn, t->st->tickets, &k, &v, 0)))
        return qg__from_mdb(rc);
    return qg__counts_ticket(t, was, was_records, p[0], row->t.records);
}

static int
new_ticket_id(qg__txn *t, uint64_t *ticket)
{
    return qg__next_id(t, t->st->tickets, ticket);
}

int
qg__lmdb_find_digest(qg__txn *t, const unsigned char *digest, uint64_t *ticket,
                     uint32_t *seq)
{
    unsigned char key[QG__DIGEST_LEN + 1];
    MDB_val k = {0, key}, v;
    int rc;

    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    k.mv_size = digest_key(key, digest, t->source);
    if ((rc = mdb_get(t->txn, t->st->digests, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size != 12)
        return QG_ESTORE;
    *ticket = get64(v.mv_data);
    *seq = get32((const unsigned char *)v.mv_data + 8);
    return 0;
}

int
qg__lmdb_append_record(qg__txn *t, const qg_record *rec, const qg__facts *facts)
{
    unsigned char key[12], dval[12], *p, dkey[QG__DIGEST_LEN + 1];
    MDB_val k = qg__step_key(key, rec->ticket, rec->seq), v, dk = {0, dkey},
            dv = {12, dval};
    size_t tail = facts ? FACTS_LEN : 0;
    int rc;

    if (rec->body_len > UINT32_MAX - RECORD_HDR - FACTS_LEN)
        return QG_ETOOBIG;
    /* MDB_RESERVE: the record is written straight into the map. */
    v.mv_size = RECORD_HDR + rec->body_len + tail;
    v.mv_data = NULL;
    if ((rc = mdb_put(t->txn, t->st->history, &k, &v,
                      MDB_NOOVERWRITE | MDB_RESERVE)))
        return rc == MDB_KEYEXIST ? QG_ESTORE : qg__from_mdb(rc);
    p = v.mv_data;
    qg__record_header(p, rec, facts != NULL);
    memcpy(p + RECORD_HDR, rec->body, rec->body_len);
    if (facts)
        qg__facts_put(p + RECORD_HDR + rec->body_len, facts);
    if ((rc = qg__chain_step(t, rec->ticket, rec->seq, &v, 0)) ||
        (rc = qg__steps_put(t, rec->ticket, rec->seq, p)))
        return rc;

    dk.mv_size = digest_key(dkey, rec->digest, t->source);
    put64(dval, rec->ticket);
    put32(dval + 8, rec->seq);
    return qg__from_mdb(mdb_put(t->txn, t->st->digests, &dk, &dv, 0));
}

/* The facts after a record's body; 0 when it has none. */
static int
decode_facts(const MDB_val *v, qg__facts *out)
{
    const unsigned char *p = v->mv_data, *f;

    memset(out, 0, sizeof(*out));
    if (!(p[23] & REC_FACTS))
        return 0;
    f = p + RECORD_HDR + get32(p + 88);
    out->em.rule = (qg__rule)f[0];
    out->em.event = (qg_event)f[1];
    out->em.appointment = f[2];
    out->em.updated = f[3];
    out->state_event = (qg_event)f[4];
    out->service_id = (int64_t)get64(p + 24);
    memcpy(out->appointment_date, f + 8, 15);
    memcpy(out->appointment_time, f + 24, 15);
    return 1;
}

static int
decode_record(const MDB_val *k, const MDB_val *v, qg_record *rec)
{
    const unsigned char *p = v->mv_data;

    if (k->mv_size != 12 || v->mv_size < RECORD_HDR ||
        v->mv_size !=
            RECORD_HDR + get32(p + 88) + (p[23] & REC_FACTS ? FACTS_LEN : 0) ||
        (p[23] & REC_PURGED && get32(p + 88) != PURGED_LEN))
        return QG_ESTORE;
    memset(rec, 0, sizeof(*rec));
    rec->ticket = get64(k->mv_data);
    rec->seq = get32((const unsigned char *)k->mv_data + 8);
    rec->received_us = (int64_t)get64(p);
    rec->event_ms = (int64_t)get64(p + 8);
    rec->utc_offset_s = (int32_t)get32(p + 16);
    rec->event = (qg_event)p[20];
    rec->from = (qg_state)p[21];
    rec->to = (qg_state)p[22];
    rec->service_id = (int64_t)get64(p + 24);
    rec->staff_id = (int64_t)get64(p + 32);
    memcpy(rec->digest, p + 40, QG__DIGEST_LEN);
    memcpy(rec->machine, p + 72, 16);
    rec->machine[16] = '\0';
    rec->body_len = get32(p + 88);
    rec->body = (const char *)p + RECORD_HDR;
    if (p[23] & REC_PURGED) {
        rec->body = NULL;
        rec->body_len = 0;
    }
    rec->pos = get32(p + 92) ? get32(p + 92) : rec->seq;
    rec->late = (p[23] & REC_LATE) != 0;
    rec->released = (p[23] & REC_RELEASED) != 0;
    return 0;
}

int
qg__record_received(qg__txn *t, uint64_t ticket, uint32_t seq, int64_t *us)
{
    unsigned char key[12];
    MDB_val k = qg__step_key(key, ticket, seq), v;
    int rc;

    if ((rc = mdb_get(t->txn, t->st->history, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size < RECORD_HDR)
        return QG_ESTORE;
    *us = (int64_t)get64(v.mv_data);
    return 0;
}

static int
by_pos(const void *a, const void *b)
{
    const qg__path_step *x = a, *y = b;

    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A ticket's path from its records, or (dbi steps) from their summaries,
 * which have no facts. */
static int
path_of(qg__txn *t, MDB_dbi dbi, uint64_t ticket, qg__path *path)
{
    unsigned char start[12];
    qg_record rec;
    MDB_cursor *cur;
    MDB_val k = {12, start}, v;
    int rc, op = MDB_SET_RANGE, summary = dbi == t->st->steps;

    path->n = 0;
    put64(start, ticket);
    put32(start + 8, 0);
    if ((rc = mdb_cursor_open(t->txn, dbi, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 12 || get64(k.mv_data) != ticket)
            break;
        if ((rc = summary ? qg__steps_decode(&k, &v, &rec)
                          : decode_record(&k, &v, &rec)))
            goto done;
        if (path->n == path->cap) {
            size_t cap = path->cap ? path->cap * 2 : 16;
            qg__path_step *p = realloc(path->steps, cap * sizeof(*p));

            if (p == NULL) {
                rc = QG_ENOMEM;
                goto done;
            }
            path->steps = p;
            path->cap = cap;
        }
        path->steps[path->n].seq = rec.seq;
        path->steps[path->n].pos = rec.pos;
        path->steps[path->n].event_ms = rec.event_ms;
        path->steps[path->n].event = rec.event;
        path->steps[path->n].from = rec.from;
        path->steps[path->n].to = rec.to;
        path->steps[path->n].service_id = rec.service_id;
        path->steps[path->n].has_facts =
            !summary && decode_facts(&v, &path->steps[path->n].f);
        path->n++;
    }
    rc = rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
    if (rc == 0)
        qsort(path->steps, path->n, sizeof(*path->steps), by_pos);
done:
    mdb_cursor_close(cur);
    return rc;
}

int
qg__lmdb_load_path(qg__txn *t, uint64_t ticket, qg__path *path)
{
    return path_of(t, t->st->history, ticket, path);
}

void
qg__path_free(qg__path *path)
{
    free(path->steps);
    memset(path, 0, sizeof(*path));
}

int
qg__lmdb_move_record(qg__txn *t, uint64_t ticket, uint32_t seq, uint32_t pos,
                     qg_event ev, qg_state from, qg_state to, int late)
{
    unsigned char key[12], *copy;
    MDB_val k = qg__step_key(key, ticket, seq), v;
    int rc;

    if ((rc = mdb_get(t->txn, t->st->history, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size < RECORD_HDR)
        return QG_ESTORE;
    /* The value may sit on a page this transaction is about to copy: keep
     * a copy of it, not a pointer into the map, across the put. */
    if ((copy = malloc(v.mv_size)) == NULL)
        return QG_ENOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    copy[20] = (unsigned char)ev;
    copy[21] = (unsigned char)from;
    copy[22] = (unsigned char)to;
    if (late >= 0)
        copy[23] =
            (unsigned char)((copy[23] & ~REC_LATE) | (late ? REC_LATE : 0));
    put32(copy + 92, pos);
    v.mv_data = copy;
    rc = qg__from_mdb(mdb_put(t->txn, t->st->history, &k, &v, 0));
    /* pos, event, from and to changed: the chain takes the new leaf, and
     * the summary the new fields */
    if (rc == 0 && (rc = qg__chain_step(t, ticket, seq, &v, 1)) == 0)
        rc = qg__steps_put(t, ticket, seq, copy);
    free(copy);
    return rc;
}

/*
 * A rejection: REJECTION_HDR bytes, the detail with its NUL, the body.
 * Header: 0 received_us, 8 verdict, 9 reason, 10 event, 11 from, 12 u32
 * detail length (with what follows it), 16 ticket, 24 live-queue id, 32
 * appointment id, 40 u32 body length as stored, 44 flags, 45 the number
 * of the source it came from (source.c; 0 in stores before sources),
 * 46-47 zero.
 *
 * With REJ_TRUNCATED the body is a prefix, and the detail's region ends
 * with REJ_EXTRA bytes: u64 length received, its SHA-256, 8 zero bytes.
 * The region still ends with a NUL, so a store written so stays readable
 * by versions before the flag (they see the prefix as the body); no
 * format change was needed.
 *
 * With REJ_RESOLVED (qg_rejections_resolve()) the detail's NUL is
 * followed by REJ_RESOLVED_EXTRA bytes: i64 time resolved, u64 ticket,
 * u32 seq, 4 zero bytes; then the REJ_EXTRA bytes, if truncated.  Put
 * there, the truncation's fields stay at the region's end and the byte
 * before them stays a NUL, where versions before the flag look: they
 * read a resolved entry as the open entry it was.
 */
/* Meta keys of the bound on unauthenticated and malformed entries:
 * their bytes as stored, the lowest id that may be one, the count
 * dropped.  Absent in stores that predate the bound: the bytes are then
 * counted once, the first id is 1, nothing was dropped. */
#define META_UNSIGNED_FIRST "rejections_unsigned_first"
#define META_DROPPED        "rejections_dropped"

/* Whether a verdict's entries are kept as a prefix, and bounded. */
static int
is_unsigned(unsigned verdict)
{
    return verdict == QG_UNAUTHENTICATED || verdict == QG_MALFORMED;
}

/* The bytes of unsigned entries: from meta, or counted once. */
static int
unsigned_bytes(qg__txn *t, uint64_t *total)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = qg__meta_get64(t, META_UNSIGNED_BYTES, total)) != QG_NOTFOUND)
        return rc;
    *total = 0;
    if ((rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (v.mv_size >= REJECTION_HDR &&
            is_unsigned(((const unsigned char *)v.mv_data)[8]))
            *total += v.mv_size;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

/*
 * Drops unsigned entries older than `newest`, oldest first, while their
 * total is over the bound.  The scan starts at the lowest id that may be
 * one (below it are only other refusals), so each entry is passed over
 * at most once in the store's life.
 */
static int
trim_unsigned(qg__txn *t, uint64_t newest, uint64_t *total)
{
    unsigned char key[8];
    uint64_t first = 1, dropped = 0, id, ticket;
    MDB_cursor *cur;
    MDB_val k = {8, key}, v;
    int rc, op = MDB_SET_RANGE;

    if ((rc = qg__meta_get64(t, META_UNSIGNED_FIRST, &first)) &&
        rc != QG_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(t->txn, t->st->rejections, &cur)))
        return qg__from_mdb(rc);
    put64(key, first);
    while (*total > t->st->unsigned_log_max) {
        if ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)))
            break;
        op = MDB_NEXT;
        if (k.mv_size != 8 || (id = get64(k.mv_data)) >= newest)
            break;
        first = id + 1;
        if (v.mv_size < REJECTION_HDR ||
            !is_unsigned(((const unsigned char *)v.mv_data)[8]))
            continue;
        *total -= v.mv_size < *total ? v.mv_size : *total;
        ticket = get64((const unsigned char *)v.mv_data + 16);
        if ((rc = qg__counts_refusal(
                 t, id, ((const unsigned char *)v.mv_data)[9], 0)) ||
            (rc = qg__chain_drop(t, QG_CHAIN_REFUSAL, ticket, id)) ||
            (rc = qg__refused_del(t, ticket, id))) {
            mdb_cursor_close(cur);
            return rc;
        }
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
        dropped++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    if (dropped == 0)
        return 0;
    if ((rc = qg__meta_put64(t, META_UNSIGNED_FIRST, first)))
        return rc;
    if ((rc = qg__meta_get64(t, META_DROPPED, &id)) == QG_NOTFOUND)
        id = 0;
    else if (rc)
        return rc;
    return qg__meta_put64(t, META_DROPPED, id + dropped);
}

static int
append_rejection(qg__txn *t, const qg_rejection *rej, uint64_t *id)
{
    unsigned char key[8], *p, *extra;
    size_t dlen = strlen(rej->detail) + 1, keep = rej->body_len;
    MDB_val k = {8, key}, v;
    uint64_t total;
    int rc, cut = 0;

    if (rej->body_len > UINT32_MAX - REJECTION_HDR - dlen - REJ_EXTRA)
        return QG_ETOOBIG;
    if (is_unsigned(rej->verdict) && rej->body_len > QG_REJECTION_PREFIX) {
        keep = QG_REJECTION_PREFIX;
        cut = 1;
        dlen += REJ_EXTRA;
    }
    if ((rc = qg__next_id(t, t->st->rejections, id)))
        return rc;
    put64(key, *id);
    v.mv_size = REJECTION_HDR + dlen + keep;
    v.mv_data = NULL;
    if ((rc = mdb_put(t->txn, t->st->rejections, &k, &v, MDB_RESERVE)))
        return qg__from_mdb(rc);
    p = v.mv_data;
    qg__rejection_header(p, rej, t->source < QG_SOURCES_MAX ? t->source : 0,
                         dlen, keep, cut ? REJ_TRUNCATED : 0);
    memcpy(p + REJECTION_HDR, rej->detail, dlen - (cut ? REJ_EXTRA : 0));
    if (cut) {
        extra = p + REJECTION_HDR + dlen - REJ_EXTRA;
        memset(extra, 0, REJ_EXTRA);
        put64(extra, rej->body_len);
        qg__digest(rej->body, rej->body_len, extra + 8);
    }
    if (keep)
        memcpy(p + REJECTION_HDR + dlen, rej->body, keep);
    if ((rc = qg__chain_refusal(t, *id, &v, 0)) ||
        (rc = qg__refused_put(t, rej->ticket, *id)) ||
        (rc = qg__counts_refusal(t, *id, (unsigned char)rej->reason, 1)))
        return rc;
    if (!is_unsigned(rej->verdict))
        return 0;
    if ((rc = unsigned_bytes(t, &total)))
        return rc;
    total += v.mv_size;
    if ((rc = trim_unsigned(t, *id, &total)))
        return rc;
    return qg__meta_put64(t, META_UNSIGNED_BYTES, total);
}

/* ----- what the engine decided ------------------------------------------ */

int
qg__lmdb_accept(qg__txn *t, qg__ticket_row *row, qg__accepted *a)
{
    qg_record *rec = &a->rec;
    int rc;

    if (row->t.id == 0) {
        if ((rc = new_ticket_id(t, &row->t.id)))
            return rc;
        row->t.first_received_us = rec->received_us;
        row->source = (unsigned char)t->source;
    }
    if ((rc = qg__name_ticket(t, a, row, put_alias)))
        return rc;
    rec->ticket = row->t.id;
    rec->seq = row->t.records + 1;
    /* the chain moves the ticket's head in row, which the engine writes */
    t->st->chain_row = row;
    t->st->chain_body = a->body_digest;
    rc = qg__lmdb_append_record(t, rec, a->facts);
    t->st->chain_body = NULL;
    if (rc)
        return rc;
    qg__ticket_took(row, a);
    /* A store that feeds an HIS queues the step in the same transaction. */
    if (qg__outbox_enabled(t->st) &&
        (rc = qg__outbox_put(t, row->t.id, rec->seq, rec->received_us)))
        return rc;
    return 0;
}

int
qg__lmdb_refuse(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
                uint64_t *id)
{
    int rc;

    if (row && row->t.id)
        t->st->chain_row = row; /* as in qg__lmdb_accept() */
    if ((rc = append_rejection(t, rej, id)))
        return rc;
    if (row == NULL || row->t.id == 0)
        return 0;
    row->t.rejections++;
    return qg__put_ticket(t, row);
}

static int
decode_rejection(const MDB_val *k, const MDB_val *v, qg_rejection *rej)
{
    const unsigned char *p = v->mv_data, *extra = NULL, *resolved = NULL;
    size_t dlen, keep, text;

    if (k->mv_size != 8 || v->mv_size < REJECTION_HDR)
        return QG_ESTORE;
    dlen = text = get32(p + 12);
    keep = get32(p + 40);
    if (dlen == 0 || v->mv_size != REJECTION_HDR + dlen + keep ||
        p[REJECTION_HDR + dlen - 1] != '\0')
        return QG_ESTORE;
    if ((p[44] & REJ_PURGED) && !(p[44] & REJ_TRUNCATED))
        return QG_ESTORE;
    if (p[44] & REJ_TRUNCATED) {
        if (text <= REJ_EXTRA ||
            p[REJECTION_HDR + text - REJ_EXTRA - 1] != '\0')
            return QG_ESTORE;
        text -= REJ_EXTRA;
        extra = p + REJECTION_HDR + text;
        if (get64(extra) <= keep || get64(extra) > UINT32_MAX)
            return QG_ESTORE;
    }
    if (p[44] & REJ_RESOLVED) {
        if (text <= REJ_RESOLVED_EXTRA ||
            p[REJECTION_HDR + text - REJ_RESOLVED_EXTRA - 1] != '\0')
            return QG_ESTORE;
        text -= REJ_RESOLVED_EXTRA;
        resolved = p + REJECTION_HDR + text;
    }
    memset(rej, 0, sizeof(*rej));
    rej->id = get64(k->mv_data);
    rej->received_us = (int64_t)get64(p);
    rej->verdict = (qg_verdict)p[8];
    rej->reason = (qg_reason)p[9];
    rej->event = (qg_event)p[10];
    rej->from = (qg_state)p[11];
    rej->ticket = get64(p + 16);
    rej->live_queue_id = (int64_t)get64(p + 24);
    rej->appointment_id = (int64_t)get64(p + 32);
    rej->detail = (const char *)p + REJECTION_HDR;
    rej->body_len = keep;
    rej->body = (const char *)p + REJECTION_HDR + dlen;
    rej->received_len = keep;
    if (extra) {
        rej->truncated = 1;
        rej->received_len = (size_t)get64(extra);
        memcpy(rej->digest, extra + 8, sizeof(rej->digest));
    }
    if (extra && p[44] & REJ_PURGED) {
        rej->truncated = 0;
        rej->body = NULL;
    }
    if (resolved) {
        rej->resolved = 1;
        rej->resolved_us = (int64_t)get64(resolved);
        rej->resolved_ticket = get64(resolved + 8);
        rej->resolved_seq = get32(resolved + 16);
    }
    return 0;
}

/* The entry rewritten with its resolution: in place when it has one
 * already, else 24 bytes longer (see the layout above). */
static int
resolve(qg__txn *t, void *arg)
{
    const qg_rejection *want = arg;
    unsigned char key[8], *p, *q;
    MDB_val k = {8, key}, v, nv;
    qg_rejection old;
    size_t dlen, text, tail;
    uint64_t total = 0;
    int rc, grows;

    put64(key, want->id);
    if ((rc = mdb_get(t->txn, t->st->rejections, &k, &v)))
        return qg__from_mdb(rc);
    if ((rc = decode_rejection(&k, &v, &old)))
        return rc;
    p = v.mv_data;
    dlen = get32(p + 12);
    /* The bound on unsigned entries counts the bytes stored (read before
     * the put: counting them afresh would see the new size). */
    grows = !old.resolved;
    if (grows && is_unsigned(old.verdict) && (rc = unsigned_bytes(t, &total)))
        return rc;
    /* the detail and its NUL; after them, the fields of the flags */
    text = strlen(old.detail) + 1;
    nv.mv_size = v.mv_size + (grows ? REJ_RESOLVED_EXTRA : 0);
    if (nv.mv_size > UINT32_MAX)
        return QG_ETOOBIG;
    if ((q = malloc(nv.mv_size)) == NULL)
        return QG_ENOMEM;
    tail = v.mv_size - REJECTION_HDR - text -
           (old.resolved ? REJ_RESOLVED_EXTRA : 0);
    memcpy(q, p, REJECTION_HDR + text);
    q[44] |= REJ_RESOLVED;
    put32(q + 12, (uint32_t)(dlen + (grows ? REJ_RESOLVED_EXTRA : 0)));
    memset(q + REJECTION_HDR + text, 0, REJ_RESOLVED_EXTRA);
    put64(q + REJECTION_HDR + text, (uint64_t)want->resolved_us);
    put64(q + REJECTION_HDR + text + 8, want->resolved_ticket);
    put32(q + REJECTION_HDR + text + 16, want->resolved_seq);
    memcpy(q + REJECTION_HDR + text + REJ_RESOLVED_EXTRA, p + v.mv_size - tail,
           tail);
    nv.mv_data = q;
    rc = qg__from_mdb(mdb_put(t->txn, t->st->rejections, &k, &nv, 0));
    if (rc == 0)
        rc = qg__chain_refusal(t, want->id, &nv, 1);
    free(q);
    if (rc || !grows || !is_unsigned(old.verdict))
        return rc;
    return qg__meta_put64(t, META_UNSIGNED_BYTES, total + REJ_RESOLVED_EXTRA);
}

int
qg__lmdb_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket,
                            uint32_t seq)
{
    qg_rejection want;

    if (st == NULL || id == 0)
        return QG_EINVAL;
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
qg__lmdb_rejections_dropped(qg_store *st, uint64_t *dropped)
{
    qg__txn t;
    int rc;

    if (st == NULL || dropped == NULL)
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = qg__meta_get64(&t, META_DROPPED, dropped);
    if (rc == QG_NOTFOUND) {
        *dropped = 0;
        rc = 0;
    }
    qg__txn_abort(&t);
    return rc;
}

/* ----- reading --------------------------------------------------------- */

int
qg__range_open(qg_store *st, MDB_dbi dbi, qg__range *r)
{
    int rc;

    r->started = 0;
    if ((rc = qg__txn_begin(st, 0, &r->t)))
        return rc;
    if ((rc = mdb_cursor_open(r->t.txn, dbi, &r->cur))) {
        qg__txn_abort(&r->t);
        return qg__from_mdb(rc);
    }
    return 0;
}

int
qg__range_next(qg__range *r, const void *start, size_t len, MDB_val *k,
               MDB_val *v)
{
    int rc;

    if (r->started) {
        rc = mdb_cursor_get(r->cur, k, v, MDB_NEXT);
    } else if (start == NULL) {
        rc = mdb_cursor_get(r->cur, k, v, MDB_FIRST);
    } else {
        k->mv_size = len;
        k->mv_data = (void *)start;
        rc = mdb_cursor_get(r->cur, k, v, MDB_SET_RANGE);
    }
    r->started = 1;
    return qg__from_mdb(rc);
}

void
qg__range_close(qg__range *r)
{
    mdb_cursor_close(r->cur);
    qg__txn_abort(&r->t);
}

/*
 * A history cursor.  In arrival order it walks the history database's
 * keys.  In event order it does the same for every ticket whose row does
 * not say QG__TICKET_REORDERED, where the two orders agree (the common
 * case, and every store written before late steps existed); for a ticket
 * that does, it reads the ticket's seqs sorted by pos and fetches each
 * record by key.  With QG_SUMMARY it reads the summaries (steps.c) when
 * they cover the history in its snapshot, else the records, whose other
 * fields it then clears; over every ticket in event order, it reads each
 * ticket's summaries whole and puts them in order itself (gather()).
 */
struct qg_history {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__range r;
    MDB_dbi dbi; /* what r walks: history, or steps */
    int summary; /* QG_SUMMARY was asked for */
    unsigned char start[12];
    int all; /* every ticket, not only start's */
    qg_order order;
    qg_ticket row;     /* the ticket in the snapshot: a single ticket's, or
                        * with all the one of the last record returned once
                        * row.id == returned */
    uint64_t ticket;   /* the ticket of the last record read, 0 before any */
    uint64_t returned; /* the ticket of the last record returned */
    qg__path path;     /* the reordered ticket being read, else n = 0 */
    size_t at;         /* the next step of path to return */
    MDB_cursor *rows;  /* with all: over the tickets, beside the records */
    /* Over every ticket's summaries in event order: the ticket being
     * returned (gather()), and the entry read past its end. */
    qg_record *sums;
    size_t nsums, capsums, atsums;
    MDB_val peek_k, peek_v;
    int peeked;
    /* Records returned, and whether a seek skipped some: a walk from the
     * start that ends short of what its snapshot holds is a damaged page
     * read as fewer entries (short_walk()). */
    uint64_t count;
    int sought;
};

qg__txn *
qg__lmdb_history_txn(qg_history *h)
{
    return &h->r.t;
}

/*
 * The row of ticket, for a cursor over every ticket: read with a cursor
 * of its own that follows the records' tickets.  LMDB's MDB_SET_KEY looks
 * at the page the cursor is on before descending the tree, and the next
 * ticket is almost always there: cheaper than an mdb_get() a ticket.
 */
static int
walk_row(qg_history *h, uint64_t ticket, qg__ticket_row *row)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    if (h->rows == NULL &&
        (rc = mdb_cursor_open(h->r.t.txn, h->r.t.st->tickets, &h->rows)))
        return qg__from_mdb(rc);
    put64(key, ticket);
    if ((rc = mdb_cursor_get(h->rows, &k, &v, MDB_SET_KEY)))
        return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
    if ((rc = decode_ticket(&k, &v, row)))
        return rc;
    /* Kept for qg_history_ticket(): the export asks for every ticket. */
    h->row = row->t;
    qg__source_name(&h->r.t, row->source, h->row.source);
    return 0;
}

/* Switches h to the sorted walk of ticket when its row says reordered. */
static int
sort_ticket(qg_history *h, uint64_t ticket)
{
    qg__ticket_row row;
    int rc;

    h->path.n = 0;
    h->at = 0;
    if ((rc = walk_row(h, ticket, &row)))
        return rc;
    if (!(row.flags & QG__TICKET_REORDERED))
        return 0;
    return path_of(&h->r.t, h->dbi, ticket, &h->path);
}

/* Points h's cursor at the summaries if they cover the history. */
static int
use_steps(qg_history *h)
{
    qg__range *r = &h->r;
    int rc;

    if ((rc = qg__steps_current(&r->t)) <= 0)
        return rc;
    mdb_cursor_close(r->cur);
    if ((rc = mdb_cursor_open(r->t.txn, r->t.st->steps, &r->cur))) {
        r->cur = NULL;
        return qg__from_mdb(rc);
    }
    h->dbi = r->t.st->steps;
    return 0;
}

int
qg__lmdb_history_open(qg_store *st, uint64_t ticket, qg_order order,
                      qg_history **out)
{
    qg__ticket_row row;
    qg_history *h;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((order & ~QG_SUMMARY) != QG_EVENT_ORDER &&
        (order & ~QG_SUMMARY) != QG_ARRIVAL_ORDER)
        return QG_EINVAL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return QG_ENOMEM;
    h->ops = &qg__lmdb_ops;
    if ((rc = qg__range_open(st, st->history, &h->r))) {
        free(h);
        return rc;
    }
    h->dbi = st->history;
    h->summary = (order & QG_SUMMARY) != 0;
    h->order = order & ~QG_SUMMARY;
    if (h->summary && (rc = use_steps(h))) {
        qg__lmdb_history_close(h);
        return rc;
    }
    if (ticket && (rc = qg__get_ticket(&h->r.t, ticket, &row))) {
        qg__lmdb_history_close(h);
        return rc;
    }
    if (ticket) {
        h->row = row.t;
        qg__source_name(&h->r.t, row.source, h->row.source);
    }
    if (ticket && h->order == QG_EVENT_ORDER &&
        (row.flags & QG__TICKET_REORDERED)) {
        if ((rc = path_of(&h->r.t, h->dbi, ticket, &h->path))) {
            qg__lmdb_history_close(h);
            return rc;
        }
        h->ticket = ticket;
    }
    h->all = ticket == 0;
    put64(h->start, ticket);
    put32(h->start + 8, 0);
    *out = h;
    return 0;
}

int
qg__lmdb_history_ticket(qg_history *h, qg_ticket *out)
{
    qg__ticket_row row;
    int rc;

    if (h == NULL || out == NULL || (h->all && h->returned == 0))
        return QG_EINVAL;
    /* In event order the walk has read the row already; in arrival order
     * it is read once per ticket, in the cursor's transaction. */
    if (h->all && h->row.id != h->returned &&
        (rc = walk_row(h, h->returned, &row)))
        return rc;
    *out = h->row;
    return 0;
}

/* Decodes a record or a summary, as h was asked for, noting its ticket
 * for qg_history_ticket(). */
static int
decode_noted(qg_history *h, const MDB_val *k, const MDB_val *v, qg_record *rec)
{
    int rc;

    if (h->dbi == h->r.t.st->steps)
        rc = qg__steps_decode(k, v, rec);
    else if ((rc = decode_record(k, v, rec)) == 0 && h->summary)
        qg__record_summary(rec);
    if (rc == 0)
        h->returned = rec->ticket;
    return rc;
}

/* The next step of the sorted walk of h->ticket. */
static int
next_sorted(qg_history *h, qg_record *rec)
{
    unsigned char key[12];
    MDB_val k = qg__step_key(key, h->ticket, h->path.steps[h->at++].seq), v;
    int rc;

    if ((rc = mdb_get(h->r.t.txn, h->dbi, &k, &v)))
        return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
    return decode_noted(h, &k, &v, rec);
}

static int
by_record_pos(const void *a, const void *b)
{
    const qg_record *x = a, *y = b;

    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Reads the summaries of the ticket of k, v (the first one) into h->sums,
 * in event order, leaving in h->peek_k, _v the entry after them.  Put in
 * order of pos, a ticket's steps are in the order its row's
 * QG__TICKET_REORDERED asks for, and pos follows seq in a ticket without
 * the flag: so the rows, whose pages lie among the records', are not
 * read.
 */
static int
gather(qg_history *h, MDB_val *k, MDB_val *v)
{
    uint64_t ticket = get64(k->mv_data);
    qg_record *grown;
    int rc, sorted = 1;

    h->nsums = h->atsums = 0;
    do {
        if (h->nsums == h->capsums) {
            size_t cap = h->capsums ? 2 * h->capsums : 16;

            if ((grown = realloc(h->sums, cap * sizeof(*grown))) == NULL)
                return QG_ENOMEM;
            h->sums = grown;
            h->capsums = cap;
        }
        if ((rc = qg__steps_decode(k, v, &h->sums[h->nsums])))
            return rc;
        if (h->nsums && h->sums[h->nsums].pos < h->sums[h->nsums - 1].pos)
            sorted = 0;
        h->nsums++;
        rc = mdb_cursor_get(h->r.cur, k, v, MDB_NEXT);
    } while (rc == 0 && k->mv_size == 12 && get64(k->mv_data) == ticket);
    if (rc && rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    h->peeked = rc == 0;
    h->peek_k = *k;
    h->peek_v = *v;
    if (!sorted)
        qsort(h->sums, h->nsums, sizeof(*h->sums), by_record_pos);
    return 0;
}

/* The next record of h's walk, or QG_NOTFOUND past its end. */
static int
next_record(qg_history *h, qg_record *rec)
{
    MDB_val k, v;
    uint64_t ticket;
    int rc;

    for (;;) {
        if (h->atsums < h->nsums) {
            *rec = h->sums[h->atsums++];
            h->returned = rec->ticket;
            return 0;
        }
        if (h->path.n > 0) {
            if (h->at < h->path.n)
                return next_sorted(h, rec);
            if (!h->all)
                return QG_NOTFOUND;
            /* That ticket is done: go on from the next one. */
            h->path.n = 0;
            put64(h->start, h->ticket + 1);
            put32(h->start + 8, 0);
            h->r.started = 0;
        }
        if (h->peeked) {
            k = h->peek_k;
            v = h->peek_v;
            h->peeked = 0;
        } else if ((rc = qg__range_next(&h->r, h->start, sizeof(h->start), &k,
                                        &v))) {
            return rc;
        }
        if (k.mv_size != 12 || (!h->all && memcmp(k.mv_data, h->start, 8) != 0))
            return QG_NOTFOUND;
        ticket = get64(k.mv_data);
        if (h->all && h->order == QG_EVENT_ORDER && ticket != h->ticket) {
            h->ticket = ticket;
            if (h->dbi == h->r.t.st->steps) {
                if ((rc = gather(h, &k, &v)))
                    return rc;
                continue;
            }
            if ((rc = sort_ticket(h, ticket)))
                return rc;
            if (h->path.n > 0)
                continue;
        }
        return decode_noted(h, &k, &v, rec);
    }
}

/* 1 when h's walk, ended, returned fewer records than its snapshot
 * holds: the ticket's count in its row, or the entries of the database
 * walked for every ticket (LMDB counts them beside the tree's root). */
static int
short_walk(qg_history *h)
{
    MDB_stat ms;

    if (h->sought)
        return 0;
    if (!h->all)
        return h->count < h->row.records;
    if (mdb_stat(h->r.t.txn, h->dbi, &ms))
        return 0;
    return h->count < ms.ms_entries;
}

int
qg__lmdb_history_next(qg_history *h, qg_record *rec)
{
    int rc;

    if (h == NULL || rec == NULL)
        return QG_EINVAL;
    if ((rc = next_record(h, rec)) == 0)
        h->count++;
    else if (rc == QG_NOTFOUND && short_walk(h))
        rc = QG_ESTORE;
    return rc;
}

int
qg__lmdb_history_seek(qg_history *h, uint32_t seq)
{
    size_t i;

    if (h == NULL || h->all)
        return QG_EINVAL;
    h->sought = 1;
    if (h->path.n > 0) {
        for (i = 0; i < h->path.n && h->path.steps[i].seq != seq; i++)
            ;
        h->at = seq <= 1 && i == h->path.n ? 0 : i;
        return 0;
    }
    put32(h->start + 8, seq);
    h->r.started = 0;
    return 0;
}

void
qg__lmdb_history_close(qg_history *h)
{
    if (h == NULL)
        return;
    if (h->rows)
        mdb_cursor_close(h->rows);
    qg__range_close(&h->r);
    qg__path_free(&h->path);
    free(h->sums);
    free(h);
}

/*
 * A cursor over the log from an id, or over one ticket's entries: a range
 * of refused_by, each entry then read by its id (or, in a store opened
 * read-only from before the index, the whole log with the others passed
 * over).
 */
struct qg_rejections {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__range r;
    unsigned char start[16];
    size_t start_len;
    uint64_t ticket; /* 0: every entry from start */
    int indexed;     /* r is over refused_by */
};

static int
rejections_new(qg_store *st, uint64_t ticket, qg_rejections **out)
{
    qg_rejections *rj;
    int rc;

    if ((rj = calloc(1, sizeof(*rj))) == NULL)
        return QG_ENOMEM;
    rj->ops = &qg__lmdb_ops;
    rj->ticket = ticket;
    rj->indexed = ticket != 0 && st->has_refused_by;
    if ((rc = qg__range_open(st, rj->indexed ? st->refused_by : st->rejections,
                             &rj->r))) {
        free(rj);
        return rc;
    }
    *out = rj;
    return 0;
}

int
qg__lmdb_rejections_open(qg_store *st, uint64_t first, qg_rejections **out)
{
    int rc;

    if ((rc = rejections_new(st, 0, out)))
        return rc;
    put64((*out)->start, first);
    (*out)->start_len = 8;
    return 0;
}

int
qg__lmdb_rejections_open_ticket(qg_store *st, uint64_t ticket,
                                qg_rejections **out)
{
    int rc;

    if ((rc = rejections_new(st, ticket, out)))
        return rc;
    if ((*out)->indexed) {
        put64((*out)->start, ticket);
        put64((*out)->start + 8, 0);
        (*out)->start_len = 16;
    }
    return 0;
}

/* The next entry the cursor covers, as k and v of the log. */
static int
rejection_next_entry(qg_rejections *rj, MDB_val *k, MDB_val *v)
{
    MDB_val ik, iv;
    int rc;

    if (!rj->indexed) {
        do {
            if ((rc = qg__range_next(&rj->r, rj->start_len ? rj->start : NULL,
                                     rj->start_len, k, v)))
                return rc;
        } while (rj->ticket != 0 &&
                 (v->mv_size < REJECTION_HDR ||
                  get64((const unsigned char *)v->mv_data + 16) != rj->ticket));
        return 0;
    }
    /* The index is derived from the log: a key whose entry is gone (which
     * no writer leaves) is passed over, the log being what is read. */
    do {
        if ((rc = qg__range_next(&rj->r, rj->start, rj->start_len, &ik, &iv)))
            return rc;
        if (ik.mv_size != 16 || get64(ik.mv_data) != rj->ticket)
            return QG_NOTFOUND;
        k->mv_size = 8;
        k->mv_data = (unsigned char *)ik.mv_data + 8;
        rc = mdb_get(rj->r.t.txn, rj->r.t.st->rejections, k, v);
    } while (rc == MDB_NOTFOUND);
    return qg__from_mdb(rc);
}

int
qg__lmdb_rejections_next(qg_rejections *rj, qg_rejection *out)
{
    MDB_val k, v;
    int rc;

    if (rj == NULL || out == NULL)
        return QG_EINVAL;
    if ((rc = rejection_next_entry(rj, &k, &v)))
        return rc;
    if ((rc = decode_rejection(&k, &v, out)))
        return rc;
    qg__source_name(&rj->r.t, ((const unsigned char *)v.mv_data)[45],
                    out->source);
    return 0;
}

void
qg__lmdb_rejections_close(qg_rejections *rj)
{
    if (rj == NULL)
        return;
    qg__range_close(&rj->r);
    free(rj);
}

struct qg_tickets {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__range r;
};

int
qg__lmdb_tickets_open(qg_store *st, qg_tickets **out)
{
    qg_tickets *it;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((it = calloc(1, sizeof(*it))) == NULL)
        return QG_ENOMEM;
    it->ops = &qg__lmdb_ops;
    if ((rc = qg__range_open(st, st->tickets, &it->r))) {
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

int
qg__lmdb_tickets_next(qg_tickets *it, qg_ticket *out)
{
    qg__ticket_row row;
    MDB_val k, v;
    int rc;

    if (it == NULL || out == NULL)
        return QG_EINVAL;
    rc = mdb_cursor_get(it->r.cur, &k, &v, it->r.started ? MDB_PREV : MDB_LAST);
    it->r.started = 1;
    if (rc)
        return qg__from_mdb(rc);
    if ((rc = decode_ticket(&k, &v, &row)))
        return rc;
    *out = row.t;
    qg__source_name(&it->r.t, row.source, out->source);
    return 0;
}

void
qg__lmdb_tickets_close(qg_tickets *it)
{
    if (it == NULL)
        return;
    qg__range_close(&it->r);
    free(it);
}

/* ----- outbox entries ------------------------------------------------- */

/*
 * The outbox's entries are the store's format like its other rows, and the
 * store writes one in the transaction that records an accepted step when
 * it feeds an HIS; outbox.c reads, moves and rewrites them.
 *
 * Entry value: u64 ticket, u32 seq, u32 attempts, i64 created_us,
 * i64 next_attempt_us, i64 last_attempt_us, char last_error[128] (the
 * 168 bytes of 0.1), then i64 gave_up_us, char gave_up[128] (304 bytes).
 * Both lengths are read, so stores written before keep their entries; an
 * entry is written back at the length of this version.  A 0.1 dead entry
 * has its reason for giving up in last_error, and gave_up "".
 */
#define ENTRY_LEN_0_1 QG__OUTBOX_ENTRY_LEN_0_1
#define ENTRY_LEN     QG__OUTBOX_ENTRY_LEN

int
qg__outbox_entry_len_ok(size_t len)
{
    return len == ENTRY_LEN || len == ENTRY_LEN_0_1;
}

void
qg__outbox_encode(unsigned char *p, const qg_outbox_entry *e)
{
    memset(p, 0, ENTRY_LEN);
    put64(p, e->ticket);
    put32(p + 8, e->seq);
    put32(p + 12, e->attempts);
    put64(p + 16, (uint64_t)e->created_us);
    put64(p + 24, (uint64_t)e->next_attempt_us);
    put64(p + 32, (uint64_t)e->last_attempt_us);
    memcpy(p + 40, e->last_error, strnlen(e->last_error, 127));
    put64(p + ENTRY_LEN_0_1, (uint64_t)e->gave_up_us);
    memcpy(p + ENTRY_LEN_0_1 + 8, e->gave_up, strnlen(e->gave_up, 127));
}

int
qg__outbox_decode(const MDB_val *k, const MDB_val *v, qg_outbox_entry *e)
{
    const unsigned char *p = v->mv_data;

    if (k->mv_size != 8 || !qg__outbox_entry_len_ok(v->mv_size))
        return QG_ESTORE;
    memset(e, 0, sizeof(*e));
    e->id = get64(k->mv_data);
    e->ticket = get64(p);
    e->seq = get32(p + 8);
    e->attempts = get32(p + 12);
    e->created_us = (int64_t)get64(p + 16);
    e->next_attempt_us = (int64_t)get64(p + 24);
    e->last_attempt_us = (int64_t)get64(p + 32);
    memcpy(e->last_error, p + 40, 127);
    e->last_error[127] = '\0';
    if (v->mv_size == ENTRY_LEN) {
        e->gave_up_us = (int64_t)get64(p + ENTRY_LEN_0_1);
        memcpy(e->gave_up, p + ENTRY_LEN_0_1 + 8, 127);
        e->gave_up[127] = '\0';
    }
    return 0;
}

int
qg__outbox_enabled(const qg_store *st)
{
    return (st->flags & QG_OUTBOX) != 0;
}

/* Entry ids come from a counter in meta, never from the outbox's last
 * key: an emptied outbox must not give out an id the HIS has already seen
 * in a delivery header, nor one a dead entry still holds. */
int
qg__outbox_next_id(qg__txn *t, uint64_t *id)
{
    return qg__meta_counter(t, "outbox_next", id);
}

int
qg__outbox_put(qg__txn *t, uint64_t ticket, uint32_t seq, int64_t now)
{
    unsigned char key[8], val[ENTRY_LEN];
    MDB_val k = {8, key}, v = {ENTRY_LEN, val};
    qg_outbox_entry e;
    int rc;

    memset(&e, 0, sizeof(e));
    if ((rc = qg__outbox_next_id(t, &e.id)))
        return rc;
    e.ticket = ticket;
    e.seq = seq;
    e.created_us = now;
    e.next_attempt_us = now;
    put64(key, e.id);
    qg__outbox_encode(val, &e);
    return qg__from_mdb(mdb_put(t->txn, t->st->outbox, &k, &v, 0));
}

/* ----- the backend ----------------------------------------------------- */

const qg__store_ops qg__lmdb_ops = {
    .name = "lmdb",
    .close = qg__lmdb_close,
    .id = qg__lmdb_id,
    .writable = qg__lmdb_writable,
    .probe = qg__lmdb_probe,
    .copy = qg__lmdb_copy,
    .check = qg__lmdb_check,
    .txn_begin = qg__lmdb_txn_begin,
    .txn_commit = qg__lmdb_txn_commit,
    .txn_abort = qg__lmdb_txn_abort,
    .txn_nest = qg__lmdb_txn_nest,
    .txn_nest_commit = qg__lmdb_txn_nest_commit,
    .txn_nest_abort = qg__lmdb_txn_nest_abort,
    .write = qg__lmdb_write,
    .find_alias = qg__lmdb_find_alias,
    .get_ticket = qg__lmdb_get_ticket,
    .find_digest = qg__lmdb_find_digest,
    .put_ticket = qg__lmdb_put_ticket,
    .load_path = qg__lmdb_load_path,
    .move_record = qg__lmdb_move_record,
    .accept = qg__lmdb_accept,
    .refuse = qg__lmdb_refuse,
    .source_find = qg__lmdb_source_find,
    .source_add = qg__lmdb_source_add,
    .source_read = qg__lmdb_source_read,
    .held_put = qg__lmdb_held_put,
    .held_find_digest = qg__lmdb_held_find_digest,
    .held_any = qg__lmdb_held_any,
    .held_get = qg__lmdb_held_get,
    .held_ids_for = qg__lmdb_held_ids_for,
    .held_due = qg__lmdb_held_due,
    .held_delete = qg__lmdb_held_delete,
    .history_open = qg__lmdb_history_open,
    .history_next = qg__lmdb_history_next,
    .history_ticket = qg__lmdb_history_ticket,
    .history_seek = qg__lmdb_history_seek,
    .history_txn = qg__lmdb_history_txn,
    .history_close = qg__lmdb_history_close,
    .tickets_open = qg__lmdb_tickets_open,
    .tickets_next = qg__lmdb_tickets_next,
    .tickets_close = qg__lmdb_tickets_close,
    .rejections_open = qg__lmdb_rejections_open,
    .rejections_open_ticket = qg__lmdb_rejections_open_ticket,
    .rejections_next = qg__lmdb_rejections_next,
    .rejections_close = qg__lmdb_rejections_close,
    .rejections_resolve = qg__lmdb_rejections_resolve,
    .rejections_dropped = qg__lmdb_rejections_dropped,
    .held_open = qg__lmdb_held_open,
    .held_next = qg__lmdb_held_next,
    .held_close = qg__lmdb_held_close,
    .held_stats = qg__lmdb_held_stats,
    .counts = qg__lmdb_counts,
    .outbox_open = qg__lmdb_outbox_open,
    .outbox_next = qg__lmdb_outbox_next,
    .outbox_close = qg__lmdb_outbox_close,
    .outbox_stats = qg__lmdb_outbox_stats,
    .outbox_ack = qg__lmdb_outbox_ack,
    .outbox_defer = qg__lmdb_outbox_defer,
    .outbox_bury = qg__lmdb_outbox_bury,
    .outbox_requeue = qg__lmdb_outbox_requeue,
    .outbox_resend = qg__lmdb_outbox_resend,
    .outbox_claim = qg__lmdb_outbox_claim,
    .purge = qg__lmdb_purge,
    .chain_migrated = qg__lmdb_chain_migrated,
    .steps_built = qg__lmdb_steps_built,
    .verify_chain = qg__lmdb_verify_chain,
    .step_hashes = qg__lmdb_step_hashes,
    .steps_current = qg__steps_current,
    .step_summary = qg__lmdb_step_summary,
    .seal = qg__lmdb_seal,
};
