/*
 * held.c - deliveries that came before the step they need.
 *
 * A held delivery is stored whole, with the facts the engine took from
 * its parse (a qg__step), so that it can be judged again from the store
 * alone whenever its ticket changes, and refused when the reorder window
 * passes.  Three databases (store.c has the list):
 *   held        u64 id -> header (HELD_HDR) + raw body
 *   held_by     u8 kind | source << 2, i64 Chup id, i64 event ms (biased),
 *               u64 id -> ""
 *               one key for each id the delivery names, so that a step
 *               accepted under either id finds it, in event time
 *   held_sums   payload SHA-256 [, u8 source if not 0] -> u64 id, so
 *               that a redelivery of a held delivery is a duplicate
 * Ids come from the meta counter "held_next" and are never reused.
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"
#include "store_int.h"

#define HELD_BY    25
#define EVENT_BIAS ((uint64_t)1 << 63) /* so that negative times sort */

static void
held_by_key(unsigned char key[HELD_BY], unsigned source, qg_id_kind kind,
            int64_t chup_id, int64_t event_ms, uint64_t id)
{
    key[0] = (unsigned char)(kind | source << QG__SOURCE_SHIFT);
    put64(key + 1, (uint64_t)chup_id);
    put64(key + 9, (uint64_t)event_ms ^ EVENT_BIAS);
    put64(key + 17, id);
}

static void
get_text(char *dst, const unsigned char *src, size_t size)
{
    memcpy(dst, src, size);
    dst[size - 1] = '\0';
}

int
qg__lmdb_held_put(qg__txn *t, const qg__step *s, uint64_t ticket, qg_event ev,
                  qg_state from, uint64_t *id)
{
    unsigned char key[8], by[HELD_BY], *p, dkey[QG__DIGEST_LEN + 1];
    MDB_val k = {8, key}, v, bk = {HELD_BY, by}, bv = {0, ""},
            dk = {digest_key(dkey, s->digest, t->source), dkey}, dv = {8, key};
    int rc;

    if (s->body_len > UINT32_MAX - HELD_HDR)
        return QG_ETOOBIG;
    if ((rc = qg__meta_counter(t, "held_next", id)))
        return rc;
    put64(key, *id);
    v.mv_size = HELD_HDR + s->body_len;
    v.mv_data = NULL;
    if ((rc = mdb_put(t->txn, t->st->held, &k, &v,
                      MDB_NOOVERWRITE | MDB_RESERVE)))
        return rc == MDB_KEYEXIST ? QG_ESTORE : qg__from_mdb(rc);
    p = v.mv_data;
    qg__held_header(p, s, ticket, ev, from, t->source);
    memcpy(p + HELD_HDR, s->body, s->body_len);
    if ((rc = qg__chain_hold(t, *id, &v)))
        return rc;

    if (s->live_queue_id) {
        held_by_key(by, t->source, QG_ID_LIVE_QUEUE, s->live_queue_id,
                    s->event_ms, *id);
        if ((rc = mdb_put(t->txn, t->st->held_by, &bk, &bv, 0)))
            return qg__from_mdb(rc);
    }
    if (s->appointment_id) {
        held_by_key(by, t->source, QG_ID_APPOINTMENT, s->appointment_id,
                    s->event_ms, *id);
        if ((rc = mdb_put(t->txn, t->st->held_by, &bk, &bv, 0)))
            return qg__from_mdb(rc);
    }
    return qg__from_mdb(mdb_put(t->txn, t->st->held_sums, &dk, &dv, 0));
}

int
qg__lmdb_held_any(qg__txn *t)
{
    MDB_stat ms;

    /* An error here only costs the caller a look it could have skipped. */
    return mdb_stat(t->txn, t->st->held, &ms) != 0 || ms.ms_entries > 0;
}

int
qg__lmdb_held_find_digest(qg__txn *t, const unsigned char *digest, uint64_t *id)
{
    unsigned char key[QG__DIGEST_LEN + 1];
    MDB_val k = {0, key}, v;
    int rc;

    if (t->source >= QG_SOURCES_MAX)
        return QG_NOTFOUND;
    k.mv_size = digest_key(key, digest, t->source);
    if ((rc = mdb_get(t->txn, t->st->held_sums, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size != 8)
        return QG_ESTORE;
    *id = get64(v.mv_data);
    return 0;
}

static int
decode_held(const MDB_val *k, const MDB_val *v, qg__step *s, qg_held *h)
{
    const unsigned char *p = v->mv_data;

    if (k->mv_size != 8 || v->mv_size < HELD_HDR ||
        v->mv_size != HELD_HDR + get32(p + 28))
        return QG_ESTORE;
    memset(s, 0, sizeof(*s));
    s->received_us = (int64_t)get64(p);
    s->event_ms = (int64_t)get64(p + 8);
    s->utc_offset_s = (int32_t)get32(p + 16);
    s->f.em.rule = (qg__rule)p[20];
    s->f.em.event = (qg_event)p[21];
    s->f.em.appointment = p[22];
    s->f.em.updated = p[23];
    s->f.state_event = (qg_event)p[24];
    s->body_len = get32(p + 28);
    s->live_queue_id = (int64_t)get64(p + 40);
    s->appointment_id = (int64_t)get64(p + 48);
    s->f.service_id = (int64_t)get64(p + 56);
    s->staff_id = (int64_t)get64(p + 64);
    get_text(s->f.appointment_date, p + 72, 16);
    get_text(s->f.appointment_time, p + 88, 16);
    memcpy(s->digest, p + 104, QG__DIGEST_LEN);
    get_text(s->chup_event, p + 136, 48);
    s->body = (const char *)p + HELD_HDR;
    s->source = p[27];

    memset(h, 0, sizeof(*h));
    h->id = get64(k->mv_data);
    h->received_us = s->received_us;
    h->ticket = get64(p + 32);
    h->live_queue_id = s->live_queue_id;
    h->appointment_id = s->appointment_id;
    h->event = (qg_event)p[25];
    h->from = (qg_state)p[26];
    h->event_ms = s->event_ms;
    h->utc_offset_s = s->utc_offset_s;
    memcpy(h->chup_event, s->chup_event, sizeof(h->chup_event));
    h->body = s->body;
    h->body_len = s->body_len;
    return 0;
}

int
qg__lmdb_held_get(qg__txn *t, uint64_t id, qg__step *s, qg_held *out)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    put64(key, id);
    if ((rc = mdb_get(t->txn, t->st->held, &k, &v)))
        return qg__from_mdb(rc);
    return decode_held(&k, &v, s, out);
}

int
qg__lmdb_held_ids_for(qg__txn *t, qg_id_kind kind, int64_t chup_id,
                      uint64_t **ids, size_t *n)
{
    unsigned char start[HELD_BY];
    MDB_cursor *cur;
    MDB_val k = {9, start}, v;
    size_t cap = 0;
    uint64_t *grown;
    int rc, op = MDB_SET_RANGE;

    *ids = NULL;
    *n = 0;
    if (t->source >= QG_SOURCES_MAX)
        return 0;
    held_by_key(start, t->source, kind, chup_id, 0, 0);
    if ((rc = mdb_cursor_open(t->txn, t->st->held_by, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != HELD_BY || memcmp(k.mv_data, start, 9) != 0)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            if ((grown = realloc(*ids, cap * sizeof(**ids))) == NULL) {
                rc = QG_ENOMEM;
                goto fail;
            }
            *ids = grown;
        }
        (*ids)[(*n)++] = get64((const unsigned char *)k.mv_data + 17);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
fail:
    mdb_cursor_close(cur);
    free(*ids);
    *ids = NULL;
    *n = 0;
    return rc;
}

int
qg__lmdb_held_due(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t cap = 0;
    uint64_t *grown;
    int rc, op = MDB_FIRST;

    *ids = NULL;
    *n = 0;
    if ((rc = mdb_cursor_open(t->txn, t->st->held, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8 || v.mv_size < HELD_HDR) {
            rc = QG_ESTORE;
            goto fail;
        }
        if ((int64_t)get64(v.mv_data) >= before_us)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((grown = realloc(*ids, cap * sizeof(**ids))) == NULL) {
                rc = QG_ENOMEM;
                goto fail;
            }
            *ids = grown;
        }
        (*ids)[(*n)++] = get64(k.mv_data);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
fail:
    mdb_cursor_close(cur);
    free(*ids);
    *ids = NULL;
    *n = 0;
    return rc;
}

int
qg__lmdb_held_delete(qg__txn *t, uint64_t id)
{
    unsigned char key[8], by[HELD_BY], digest[QG__DIGEST_LEN + 1];
    MDB_val k = {8, key}, v, bk = {HELD_BY, by}, dk = {QG__DIGEST_LEN, digest};
    int64_t lq, appt, event_ms;
    const unsigned char *p;
    unsigned source;
    int rc;

    put64(key, id);
    if ((rc = mdb_get(t->txn, t->st->held, &k, &v)))
        return qg__from_mdb(rc);
    if (v.mv_size < HELD_HDR)
        return QG_ESTORE;
    p = v.mv_data;
    event_ms = (int64_t)get64(p + 8);
    lq = (int64_t)get64(p + 40);
    appt = (int64_t)get64(p + 48);
    source = p[27];
    dk.mv_size = digest_key(digest, p + 104, source);
    /* released or expired: the chain says it went by design */
    if ((rc = qg__chain_drop(t, QG_CHAIN_HOLD, get64(p + 32), id)))
        return rc;
    if ((rc = mdb_del(t->txn, t->st->held, &k, NULL)))
        return qg__from_mdb(rc);
    if (lq) {
        held_by_key(by, source, QG_ID_LIVE_QUEUE, lq, event_ms, id);
        if ((rc = mdb_del(t->txn, t->st->held_by, &bk, NULL)))
            return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
    }
    if (appt) {
        held_by_key(by, source, QG_ID_APPOINTMENT, appt, event_ms, id);
        if ((rc = mdb_del(t->txn, t->st->held_by, &bk, NULL)))
            return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
    }
    rc = mdb_del(t->txn, t->st->held_sums, &dk, NULL);
    return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
}

/* ----- reading ---------------------------------------------------------- */

struct qg_held_list {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__txn t;
    MDB_cursor *cur;
    int started;
};

int
qg__lmdb_held_open(qg_store *st, qg_held_list **out)
{
    qg_held_list *hl;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((hl = calloc(1, sizeof(*hl))) == NULL)
        return QG_ENOMEM;
    hl->ops = st->common.ops; /* qg__lmdb_ops, held by store.c above */
    if ((rc = qg__txn_begin(st, 0, &hl->t))) {
        free(hl);
        return rc;
    }
    if ((rc = mdb_cursor_open(hl->t.txn, st->held, &hl->cur))) {
        qg__txn_abort(&hl->t);
        free(hl);
        return qg__from_mdb(rc);
    }
    *out = hl;
    return 0;
}

int
qg__lmdb_held_next(qg_held_list *hl, qg_held *out)
{
    qg__step s;
    MDB_val k, v;
    int rc;

    if (hl == NULL || out == NULL)
        return QG_EINVAL;
    rc = mdb_cursor_get(hl->cur, &k, &v, hl->started ? MDB_NEXT : MDB_FIRST);
    hl->started = 1;
    if (rc)
        return qg__from_mdb(rc);
    if ((rc = decode_held(&k, &v, &s, out)))
        return rc;
    qg__source_name(&hl->t, s.source, out->source);
    return 0;
}

void
qg__lmdb_held_close(qg_held_list *hl)
{
    if (hl == NULL)
        return;
    mdb_cursor_close(hl->cur);
    qg__txn_abort(&hl->t);
    free(hl);
}

int
qg__lmdb_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us)
{
    qg_held_list *hl;
    qg_held h;
    uint64_t n = 0;
    int64_t oldest = 0;
    int rc;

    if (st == NULL)
        return QG_EINVAL;
    if ((rc = qg__lmdb_held_open(st, &hl)))
        return rc;
    /* Held deliveries are few (those of one window) and ids follow
     * arrival, so the first is the oldest; count them all the same. */
    while ((rc = qg__lmdb_held_next(hl, &h)) == 0) {
        if (n++ == 0 || h.received_us < oldest)
            oldest = h.received_us;
    }
    qg__lmdb_held_close(hl);
    if (rc != QG_NOTFOUND)
        return rc;
    if (count)
        *count = n;
    if (oldest_us)
        *oldest_us = oldest;
    return 0;
}
