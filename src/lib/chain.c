/*
 * chain.c - the hash chain over every stored record: accepted steps,
 * refusals, held deliveries.
 *
 * Records are rewritten in place (a late step re-derives pos, event,
 * from and to of the steps after it; a refusal gets its resolution;
 * purge replaces a body with its length and SHA-256) and some are deleted
 * by design (a held delivery released or expired, an unsigned refusal
 * over the log's bound).  So the chain does not live in the records: it
 * is a database of its own, appended to in the write transaction of the
 * record it covers, and never rewritten.
 *
 *   chain          u64 n (1, 2, ...) -> entry (ENTRY_LEN bytes)
 *   tickets        each ticket's row holds the number of its last entry
 *                  (store_int.h, ticket_head()): the row is written with
 *                  each step anyway, so the head costs no page of its
 *                  own; its hash is in the entry
 *   chain_tickets  u64 ticket -> u64 n of its last entry: where 0.4 kept
 *                  heads (moved to the rows at the first writable open),
 *                  and the head of a ticket appended to before it has a
 *                  row
 *
 * Entry: 0 kind (qg_chain_kind), 1 op (OP_*), 2-7 zero, 8 u64 ticket (0
 * if none), 16 u64 ref (seq, rejection id, held id), 24 i64 time (the
 * record's received time for an append, the rewrite's or drop's time
 * otherwise), 32 u64 n of the ticket's entry before (0 if none), 40 leaf,
 * 72 hash of the ticket's entry before (zero if none), 104 hash =
 * SHA-256(hash of entry n-1 (zero for n = 1) || bytes 0..103).
 *
 * The leaf is a SHA-256 over what of the record never changes but by a
 * rewrite that appends an entry of its own, and the body's digest: the
 * SHA-256 of the whole body as received, which purge keeps (and which a
 * truncated refusal kept from the start).  So purge needs no entry, and a
 * purged record verifies against the entry of its append.  A rewrite (a
 * late step's neighbours, a resolution) appends OP_REWRITE with the new
 * leaf; a deletion by design appends OP_DROP.  A record is checked
 * against the newest entry that names it.
 *
 * The leaf does not hold the record's key, so content moved to another
 * key (two records swapped) is told from content altered: its leaf is the
 * leaf of another entry.
 *
 * Both stores keep this chain.  What is the same on both is here and in
 * chain_int.h: the entries, the leaves (over the LMDB layout of a record,
 * which the PostgreSQL store builds from a row's fields), the verifier,
 * which asks a store only for its entries and its records' leaves, and
 * the seals.  Where the LMDB store keeps it (the databases above, the
 * heads, the migration) is here too; the PostgreSQL store's is in
 * pg_chain.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ossl.h" /* libcrypto, through the table it loads */
#include "qgate_int.h"
#include "chain_int.h"
#include "store_int.h"

#define ENTRY_LEN  QG__CHAIN_ENTRY_LEN
#define HASHED_LEN QG__CHAIN_HASHED_LEN
#define TICKET_VAL 8
#define HASH_LEN   QG_CHAIN_HASH_LEN

#define OP_APPEND  QG__CHAIN_APPEND
#define OP_REWRITE QG__CHAIN_REWRITE
#define OP_DROP    QG__CHAIN_DROP

/* Meta "chain": u64 entries the migration added (0 for a store created
 * with the chain); its presence says the chain covers the store.  Meta
 * "chain_part": u64 records chained so far by a migration not yet done
 * (migrate_batch()). */
#define META_CHAIN "chain"
#define META_PART  "chain_part"

/* ----- hashing ---------------------------------------------------------- */

/* The SHA-256 of a then b (b may be NULL), in ctx (NULL: one of its
 * own); QG_ENOMEM when libcrypto cannot allocate. */
static int
sha256(EVP_MD_CTX *ctx, const void *a, size_t alen, const void *b, size_t blen,
       unsigned char out[HASH_LEN])
{
    const EVP_MD *md = qg__sha256_md(); /* fetched once (signature.c) */
    unsigned int n = HASH_LEN;
    EVP_MD_CTX *own = NULL;
    int ok;

    if (md == NULL)
        return QG_ENOMEM;
    if (ctx == NULL && (ctx = own = EVP_MD_CTX_new()) == NULL)
        return QG_ENOMEM;
    ok = EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, a, alen) &&
         (b == NULL || EVP_DigestUpdate(ctx, b, blen)) &&
         EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(own);
    return ok ? 0 : QG_ENOMEM;
}

/*
 * The writer's context, kept by the store rather than made and freed
 * for each of a step's three hashes (an allocation and a cleansing each,
 * docs/PERFORMANCE.md, "The hash chain").  Only the one write transaction
 * uses it; readers (verify) make their own.  NULL when it cannot be made:
 * sha256() then makes one.
 */
static EVP_MD_CTX *
writer_ctx(qg_store *st)
{
    if (st->chain_sha == NULL)
        st->chain_sha = EVP_MD_CTX_new();
    return st->chain_sha;
}

void
qg__chain_close(qg_store *st)
{
    /* Not called without one: a store that never hashed (a read-only
     * audit command) has not loaded libcrypto, and this would load it. */
    if (st->chain_sha) {
        EVP_MD_CTX_free(st->chain_sha);
        st->chain_sha = NULL;
    }
}

/* ----- leaves ---------------------------------------------------------- */

/*
 * Each leaf is hashed over the record's bytes as the LMDB store lays them
 * out (store_int.h): the LMDB store hands its values to the functions
 * taking an MDB_val, the PostgreSQL store its rows' fields to those that
 * take fields (qg__chain_leaf_record() and the others), and both end in
 * the same *_parts() function.  One format, whichever store.
 */

/* A history record's leaf from its header (the purge flag and the stored
 * length are cleared here: purge changes them), its facts (NULL: none)
 * and the SHA-256 of the whole body as received. */
static int
step_leaf_parts(EVP_MD_CTX *ctx, const unsigned char *hdr,
                const unsigned char *facts, const unsigned char *digest,
                unsigned char leaf[HASH_LEN])
{
    unsigned char buf[RECORD_HDR + FACTS_LEN + HASH_LEN];
    size_t n = RECORD_HDR;

    memcpy(buf, hdr, RECORD_HDR);
    buf[23] &= (unsigned char)~REC_PURGED;
    memset(buf + 88, 0, 4);
    if (facts) {
        memcpy(buf + n, facts, FACTS_LEN);
        n += FACTS_LEN;
    }
    memcpy(buf + n, digest, HASH_LEN);
    return sha256(ctx, buf, n + HASH_LEN, NULL, 0, leaf);
}

/*
 * A history record's leaf: its header with the purge flag and the stored
 * length cleared, its facts, the body's digest: body_digest when the
 * engine took it while examining the delivery (the SHA-256 of the same
 * bytes, the whole body as received), else taken here.
 */
static int
step_leaf(EVP_MD_CTX *ctx, const MDB_val *v, const unsigned char *body_digest,
          unsigned char leaf[HASH_LEN])
{
    const unsigned char *p = v->mv_data;
    unsigned char digest[HASH_LEN];
    size_t body, tail;
    int rc;

    if (v->mv_size < RECORD_HDR)
        return QG_ESTORE;
    body = get32(p + 88);
    tail = p[23] & REC_FACTS ? FACTS_LEN : 0;
    if (v->mv_size != RECORD_HDR + body + tail ||
        (p[23] & REC_PURGED && body != PURGED_LEN))
        return QG_ESTORE;
    if (p[23] & REC_PURGED)
        memcpy(digest, p + RECORD_HDR + 8, HASH_LEN);
    else if (body_digest)
        memcpy(digest, body_digest, HASH_LEN);
    else if ((rc = sha256(ctx, p + RECORD_HDR, body, NULL, 0, digest)))
        return rc;
    return step_leaf_parts(ctx, p, tail ? p + RECORD_HDR + body : NULL, digest,
                           leaf);
}

/* A refusal's leaf from its header (the lengths and the truncation flags
 * are cleared here), its resolution's bytes (NULL: open), the digest of
 * the delivery as received and the detail's text. */
static int
refusal_leaf_parts(EVP_MD_CTX *ctx, const unsigned char *hdr,
                   const unsigned char *resolved, const unsigned char *digest,
                   const void *detail, size_t text,
                   unsigned char leaf[HASH_LEN])
{
    unsigned char buf[REJECTION_HDR + REJ_RESOLVED_EXTRA + HASH_LEN];
    size_t n = REJECTION_HDR;

    memcpy(buf, hdr, REJECTION_HDR);
    memset(buf + 12, 0, 4);
    memset(buf + 40, 0, 4);
    buf[44] &= (unsigned char)~(REJ_TRUNCATED | REJ_PURGED);
    if (resolved) {
        memcpy(buf + n, resolved, REJ_RESOLVED_EXTRA);
        n += REJ_RESOLVED_EXTRA;
    }
    memcpy(buf + n, digest, HASH_LEN);
    n += HASH_LEN;
    return sha256(ctx, buf, n, detail, text, leaf);
}

/*
 * A refusal's leaf: its header without the lengths and the truncation
 * flags (purge changes them), its detail and resolution, the digest of
 * the delivery as received (in the truncation's fields once truncated or
 * purged, else of the body kept whole).
 */
static int
refusal_leaf(EVP_MD_CTX *ctx, const MDB_val *v, unsigned char leaf[HASH_LEN])
{
    const unsigned char *p = v->mv_data, *resolved = NULL;
    unsigned char digest[HASH_LEN];
    size_t dlen, keep, text;
    int rc;

    if (v->mv_size < REJECTION_HDR)
        return QG_ESTORE;
    dlen = get32(p + 12);
    keep = get32(p + 40);
    if (dlen == 0 || v->mv_size != REJECTION_HDR + dlen + keep ||
        ((p[44] & REJ_TRUNCATED) && dlen <= REJ_EXTRA))
        return QG_ESTORE;
    text = strnlen((const char *)p + REJECTION_HDR, dlen - 1);
    if (p[44] & REJ_RESOLVED) {
        if (text + 1 + REJ_RESOLVED_EXTRA > dlen)
            return QG_ESTORE;
        resolved = p + REJECTION_HDR + text + 1;
    }
    if (p[44] & REJ_TRUNCATED)
        memcpy(digest, p + REJECTION_HDR + dlen - REJ_EXTRA + 8, HASH_LEN);
    else if ((rc =
                  sha256(ctx, p + REJECTION_HDR + dlen, keep, NULL, 0, digest)))
        return rc;
    return refusal_leaf_parts(ctx, p, resolved, digest, p + REJECTION_HDR, text,
                              leaf);
}

/* A held delivery's leaf: its header, its body's digest.  Held values
 * are never rewritten. */
static int
hold_leaf_parts(EVP_MD_CTX *ctx, const unsigned char *hdr,
                const unsigned char *digest, unsigned char leaf[HASH_LEN])
{
    unsigned char buf[HELD_HDR + HASH_LEN];

    memcpy(buf, hdr, HELD_HDR);
    memcpy(buf + HELD_HDR, digest, HASH_LEN);
    return sha256(ctx, buf, sizeof(buf), NULL, 0, leaf);
}

static int
hold_leaf(EVP_MD_CTX *ctx, const MDB_val *v, unsigned char leaf[HASH_LEN])
{
    unsigned char digest[HASH_LEN];
    int rc;

    if (v->mv_size < HELD_HDR ||
        v->mv_size != HELD_HDR + get32((const unsigned char *)v->mv_data + 28))
        return QG_ESTORE;
    if ((rc = sha256(ctx, (const unsigned char *)v->mv_data + HELD_HDR,
                     v->mv_size - HELD_HDR, NULL, 0, digest)))
        return rc;
    return hold_leaf_parts(ctx, v->mv_data, digest, leaf);
}

int
qg__chain_leaf_record(const qg_record *rec, const qg__facts *facts,
                      const unsigned char body_digest[QG__DIGEST_LEN],
                      unsigned char leaf[QG_CHAIN_HASH_LEN])
{
    unsigned char hdr[RECORD_HDR], f[FACTS_LEN];

    qg__record_header(hdr, rec, facts != NULL);
    if (facts)
        qg__facts_put(f, facts);
    return step_leaf_parts(NULL, hdr, facts ? f : NULL, body_digest, leaf);
}

int
qg__chain_leaf_rejection(const qg_rejection *rej, unsigned source,
                         const unsigned char whole_digest[QG__DIGEST_LEN],
                         unsigned char leaf[QG_CHAIN_HASH_LEN])
{
    unsigned char hdr[REJECTION_HDR], res[REJ_RESOLVED_EXTRA];

    qg__rejection_header(hdr, rej, source, 0, 0,
                         rej->resolved ? REJ_RESOLVED : 0);
    if (rej->resolved) {
        memset(res, 0, sizeof(res));
        put64(res, (uint64_t)rej->resolved_us);
        put64(res + 8, rej->resolved_ticket);
        put32(res + 16, rej->resolved_seq);
    }
    return refusal_leaf_parts(NULL, hdr, rej->resolved ? res : NULL,
                              whole_digest, rej->detail, strlen(rej->detail),
                              leaf);
}

int
qg__chain_leaf_held(const qg__step *s, uint64_t ticket, qg_event ev,
                    qg_state from, unsigned source,
                    const unsigned char body_digest[QG__DIGEST_LEN],
                    unsigned char leaf[QG_CHAIN_HASH_LEN])
{
    unsigned char hdr[HELD_HDR];

    qg__held_header(hdr, s, ticket, ev, from, source);
    return hold_leaf_parts(NULL, hdr, body_digest, leaf);
}

static int
leaf_of(EVP_MD_CTX *ctx, qg_chain_kind kind, const MDB_val *v,
        unsigned char leaf[HASH_LEN])
{
    switch (kind) {
    case QG_CHAIN_STEP:
        return step_leaf(ctx, v, NULL, leaf);
    case QG_CHAIN_REFUSAL:
        return refusal_leaf(ctx, v, leaf);
    case QG_CHAIN_HOLD:
        return hold_leaf(ctx, v, leaf);
    }
    return QG_ESTORE;
}

/* ----- appending ------------------------------------------------------- */

/* An entry's hash: over the hash of the entry before, then its bytes. */
static int
entry_hash(void *ctx, const unsigned char prev[HASH_LEN],
           const unsigned char *e, unsigned char out[HASH_LEN])
{
    return sha256(ctx, prev, HASH_LEN, e, HASHED_LEN, out);
}

/* The last entry's number and hash: 0 and zero bytes when empty. */
static int
chain_last(qg__txn *t, uint64_t *n, unsigned char hash[HASH_LEN])
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(t->txn, t->st->chain, &cur)))
        return qg__from_mdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *n = 0;
        memset(hash, 0, HASH_LEN);
        return 0;
    }
    if (rc)
        return qg__from_mdb(rc);
    if (k.mv_size != 8 || v.mv_size != ENTRY_LEN)
        return QG_ESTORE;
    *n = get64(k.mv_data);
    memcpy(hash, (const unsigned char *)v.mv_data + HASHED_LEN, HASH_LEN);
    return 0;
}

/*
 * Where a ticket's head is for this append: the row the engine holds
 * (row), else the ticket's row as stored (a copy in buf, found set), and
 * always the newer of that and chain_tickets, where 0.4 kept heads (until
 * the first writable open moves them: move_heads()) and where this
 * version keeps the head of a ticket that has no row yet.
 */
typedef struct head_at {
    qg__ticket_row *row;
    unsigned char buf[TICKET_LEN];
    int found;
    uint64_t n;
} head_at;

static int
head_get(qg__txn *t, uint64_t ticket, head_at *h)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int rc;

    put64(key, ticket);
    h->row = t->st->chain_row;
    h->found = 0;
    h->n = 0;
    if (h->row && h->row->t.id != ticket)
        h->row = NULL;
    if (h->row)
        h->n = h->row->chain_head;
    /* the row in hand was read before the chain wrote its head itself */
    if (h->row == NULL || t->st->chain_direct) {
        rc = mdb_get(t->txn, t->st->tickets, &k, &v);
        if (rc == 0 && v.mv_size != TICKET_LEN)
            return QG_ESTORE;
        if (rc == 0 && ticket_head(v.mv_data) > h->n)
            h->n = ticket_head(v.mv_data);
        if (rc == 0 && h->row == NULL) {
            memcpy(h->buf, v.mv_data, TICKET_LEN);
            h->found = 1;
        }
        if (rc && rc != MDB_NOTFOUND)
            return qg__from_mdb(rc);
    }
    rc = mdb_get(t->txn, t->st->chain_tickets, &k, &v);
    if (rc == 0 && v.mv_size != TICKET_VAL)
        return QG_ESTORE;
    if (rc == 0 && get64(v.mv_data) > h->n)
        h->n = get64(v.mv_data);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

/* Moves a ticket's head to entry n, where head_get() found it. */
static int
head_put(qg__txn *t, uint64_t ticket, head_at *h, uint64_t n)
{
    unsigned char key[8], val[TICKET_VAL];
    MDB_val k = {8, key}, v = {TICKET_LEN, h->buf};

    if (n > TICKET_HEAD_MAX)
        return QG_EFULL; /* 2^40 entries: some 150 TB of them alone */
    if (h->row) {
        h->row->chain_head = n; /* the engine's qg__put_ticket() writes it */
        return 0;
    }
    put64(key, ticket);
    if (h->found) {
        ticket_set_head(h->buf, n);
        t->st->chain_direct = 1;
        return qg__from_mdb(mdb_put(t->txn, t->st->tickets, &k, &v, 0));
    }
    put64(val, n);
    v.mv_size = TICKET_VAL;
    v.mv_data = val;
    return qg__from_mdb(mdb_put(t->txn, t->st->chain_tickets, &k, &v, 0));
}

void
qg__chain_entry(unsigned char e[QG__CHAIN_ENTRY_LEN], qg_chain_kind kind,
                int op, uint64_t ticket, uint64_t ref, int64_t time_us,
                const unsigned char *leaf, uint64_t prev_n,
                const unsigned char *prev_hash)
{
    memset(e, 0, ENTRY_LEN);
    e[0] = (unsigned char)kind;
    e[1] = (unsigned char)op;
    put64(e + 8, ticket);
    put64(e + 16, ref);
    put64(e + 24, (uint64_t)time_us);
    if (leaf)
        memcpy(e + 40, leaf, HASH_LEN);
    if (prev_n) {
        put64(e + 32, prev_n);
        memcpy(e + 72, prev_hash, HASH_LEN);
    }
}

int
qg__chain_entry_hash(void *ctx, const unsigned char prev[QG_CHAIN_HASH_LEN],
                     unsigned char e[QG__CHAIN_ENTRY_LEN])
{
    return entry_hash(ctx, prev, e, e + HASHED_LEN);
}

static int
append(qg__txn *t, qg_chain_kind kind, int op, uint64_t ticket, uint64_t ref,
       int64_t time_us, const unsigned char leaf[HASH_LEN])
{
    unsigned char e[ENTRY_LEN], key[8], prev[HASH_LEN];
    MDB_val k = {8, key}, v = {ENTRY_LEN, e};
    head_at h;
    uint64_t n;
    int rc;

    if ((rc = chain_last(t, &n, prev)))
        return rc;
    if (ticket && (rc = head_get(t, ticket, &h)))
        return rc;
    qg__chain_entry(e, kind, op, ticket, ref, time_us, leaf, 0, NULL);
    if (ticket && h.n) {
        /* the ticket's last entry, for its number and hash */
        put64(key, h.n);
        if ((rc = mdb_get(t->txn, t->st->chain, &k, &v)))
            return rc == MDB_NOTFOUND ? QG_ESTORE : qg__from_mdb(rc);
        if (v.mv_size != ENTRY_LEN)
            return QG_ESTORE;
        put64(e + 32, h.n);
        memcpy(e + 72, (const unsigned char *)v.mv_data + HASHED_LEN, HASH_LEN);
        v.mv_size = ENTRY_LEN;
        v.mv_data = e;
    }
    if ((rc = entry_hash(writer_ctx(t->st), prev, e, e + HASHED_LEN)))
        return rc;
    put64(key, n + 1);
    if ((rc = mdb_put(t->txn, t->st->chain, &k, &v, MDB_APPEND)))
        return qg__from_mdb(rc);
    return ticket ? head_put(t, ticket, &h, n + 1) : 0;
}

int
qg__chain_step(qg__txn *t, uint64_t ticket, uint32_t seq, const MDB_val *v,
               int rewrite)
{
    unsigned char leaf[HASH_LEN];
    int rc;

    if (!t->st->has_chain)
        return 0;
    /* the engine's digest of the body is of this record's only when it
     * is appended: a rewrite's record is another, read back */
    if ((rc = step_leaf(writer_ctx(t->st), v,
                        rewrite ? NULL : t->st->chain_body, leaf)))
        return rc;
    return append(t, QG_CHAIN_STEP, rewrite ? OP_REWRITE : OP_APPEND, ticket,
                  seq,
                  rewrite ? qg_time_now_us()
                          : (int64_t)get64((const unsigned char *)v->mv_data),
                  leaf);
}

int
qg__chain_refusal(qg__txn *t, uint64_t id, const MDB_val *v, int rewrite)
{
    unsigned char leaf[HASH_LEN];
    const unsigned char *p = v->mv_data;
    int rc;

    if (!t->st->has_chain)
        return 0;
    if ((rc = refusal_leaf(writer_ctx(t->st), v, leaf)))
        return rc;
    return append(t, QG_CHAIN_REFUSAL, rewrite ? OP_REWRITE : OP_APPEND,
                  get64(p + 16), id,
                  rewrite ? qg_time_now_us() : (int64_t)get64(p), leaf);
}

int
qg__chain_hold(qg__txn *t, uint64_t id, const MDB_val *v)
{
    unsigned char leaf[HASH_LEN];
    const unsigned char *p = v->mv_data;
    int rc;

    if (!t->st->has_chain)
        return 0;
    if ((rc = hold_leaf(writer_ctx(t->st), v, leaf)))
        return rc;
    return append(t, QG_CHAIN_HOLD, OP_APPEND, get64(p + 32), id,
                  (int64_t)get64(p), leaf);
}

int
qg__chain_drop(qg__txn *t, qg_chain_kind kind, uint64_t ticket, uint64_t ref)
{
    if (!t->st->has_chain)
        return 0;
    return append(t, kind, OP_DROP, ticket, ref, qg_time_now_us(), NULL);
}

/* ----- migration -------------------------------------------------------- */

/* A record of a store written before the chain, to be chained. */
typedef struct old_record {
    int64_t received_us;
    uint64_t ticket, ref;
    qg_chain_kind kind;
} old_record;

/* The records to chain, sorted, and where the migration stands. */
typedef struct old_list {
    old_record *r;
    size_t n, cap;
    int collected;  /* r holds every record, sorted */
    int done;       /* the chain covers the store */
    uint64_t added; /* records the batch chained */
} old_list;

static int
by_received(const void *a, const void *b)
{
    const old_record *x = a, *y = b;

    if (x->received_us != y->received_us)
        return x->received_us < y->received_us ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->ticket != y->ticket)
        return x->ticket < y->ticket ? -1 : 1;
    return x->ref < y->ref ? -1 : x->ref > y->ref;
}

static int
collect(qg__txn *t, MDB_dbi dbi, qg_chain_kind kind, old_list *l)
{
    MDB_cursor *cur;
    MDB_val k, v;
    const unsigned char *p;
    old_record *r;
    int rc;

    if ((rc = mdb_cursor_open(t->txn, dbi, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        p = v.mv_data;
        if (v.mv_size < 8 || k.mv_size != (kind == QG_CHAIN_STEP ? 12u : 8u)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 1024;

            if ((r = realloc(l->r, cap * sizeof(*r))) == NULL) {
                mdb_cursor_close(cur);
                return QG_ENOMEM;
            }
            l->r = r;
            l->cap = cap;
        }
        r = &l->r[l->n++];
        r->received_us = (int64_t)get64(p);
        r->kind = kind;
        r->ticket = kind == QG_CHAIN_STEP ? get64(k.mv_data) : 0;
        r->ref = kind == QG_CHAIN_STEP
                     ? get32((const unsigned char *)k.mv_data + 8)
                     : get64(k.mv_data);
        if (kind == QG_CHAIN_REFUSAL && v.mv_size >= REJECTION_HDR)
            r->ticket = get64(p + 16);
        if (kind == QG_CHAIN_HOLD && v.mv_size >= HELD_HDR)
            r->ticket = get64(p + 32);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

static void
record_key(const old_record *r, unsigned char key[12], MDB_val *k)
{
    if (r->kind == QG_CHAIN_STEP) {
        put64(key, r->ticket);
        put32(key + 8, (uint32_t)r->ref);
        k->mv_size = 12;
    } else {
        put64(key, r->ref);
        k->mv_size = 8;
    }
    k->mv_data = key;
}

static MDB_dbi
record_db(const qg_store *st, qg_chain_kind kind)
{
    return kind == QG_CHAIN_STEP      ? st->history
           : kind == QG_CHAIN_REFUSAL ? st->rejections
                                      : st->held;
}

/* A chain computed afresh starts with no heads: a store whose chain was
 * dropped (by hand) keeps the heads of the old one in its rows. */
static int
clear_heads(qg__txn *t)
{
    unsigned char row[TICKET_LEN];
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_drop(t->txn, t->st->chain_tickets, 0)) ||
        (rc = mdb_cursor_open(t->txn, t->st->tickets, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (v.mv_size != TICKET_LEN || ticket_head(v.mv_data) == 0)
            continue;
        memcpy(row, v.mv_data, TICKET_LEN);
        ticket_set_head(row, 0);
        v.mv_data = row;
        if ((rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT)))
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : qg__from_mdb(rc);
}

/* Every record, in the order they are chained: by received time, then by
 * kind, ticket and ref, which no two records share (a step's key is its
 * ticket and seq, a refusal's and a held delivery's their id), so the
 * order does not depend on qsort's. */
static int
collect_all(qg__txn *t, old_list *l)
{
    int rc;

    l->n = 0;
    l->collected = 0;
    if ((rc = collect(t, t->st->history, QG_CHAIN_STEP, l)) ||
        (rc = collect(t, t->st->rejections, QG_CHAIN_REFUSAL, l)) ||
        (rc = collect(t, t->st->held, QG_CHAIN_HOLD, l)))
        return rc;
    if (l->n)
        qsort(l->r, l->n, sizeof(*l->r), by_received);
    l->collected = 1;
    return 0;
}

/* 0 when the chain's last entry is the append of l->r[at - 1], as the
 * batch that chained it wrote it; 1 when not. */
static int
chained_last(qg__txn *t, const old_list *l, uint64_t at)
{
    const old_record *r;
    const unsigned char *e;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if (at > l->n)
        return 1;
    r = &l->r[at - 1];
    if ((rc = mdb_cursor_open(t->txn, t->st->chain, &cur)))
        return qg__from_mdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc)
        return rc == MDB_NOTFOUND ? 1 : qg__from_mdb(rc);
    e = v.mv_data;
    return v.mv_size != ENTRY_LEN || e[0] != r->kind || e[1] != OP_APPEND ||
           get64(e + 8) != r->ticket || get64(e + 16) != r->ref ||
           (int64_t)get64(e + 24) != r->received_us;
}

/* Appends the entries of l->r[from] to l->r[end - 1]. */
static int
chain_range(qg__txn *t, const old_list *l, size_t from, size_t end)
{
    unsigned char key[12], leaf[HASH_LEN];
    const old_record *r;
    MDB_val k, v;
    size_t i;
    int rc;

    /* by index: an empty store has no array (l->r NULL) */
    for (i = from; i < end; i++) {
        r = &l->r[i];
        record_key(r, key, &k);
        if ((rc = mdb_get(t->txn, record_db(t->st, r->kind), &k, &v)))
            return qg__from_mdb(rc);
        if ((rc = leaf_of(writer_ctx(t->st), r->kind, &v, leaf)) ||
            (rc = append(t, r->kind, OP_APPEND, r->ticket, r->ref,
                         r->received_us, leaf)))
            return rc;
    }
    return 0;
}

/*
 * Chains every record of a store written before the chain, in the order
 * the records were received (the order they were appended in is not
 * kept; received time is as close as the store can tell), in
 * transactions of qg__chain_batch records.  A record dirties at most a
 * 26th of a chain page (136-byte entries, appended in key order) and one
 * page for its ticket's head (its row, or chain_tickets), so a batch of
 * 100,000 stays under 105,000 dirty pages, even when no two of its
 * records share a page of ticket rows: within the 131,071 LMDB keeps in
 * a transaction (MDB_IDL_UM_MAX) before it spills them to the file
 * mid-transaction (MDB_TXN_FULL where it cannot).  And what a batch
 * chained stays chained: a migration of millions of records takes a
 * minute or more, and one killed midway (a service's start timeout)
 * does not start again from nothing at the next start.
 *
 * Each batch reads "chain_part", the count of records chained so far, in
 * its own write transaction and writes it with its entries, so no record
 * is chained twice: a writable open after a crash goes on where the last
 * batch that committed ended, and of two processes opening the store at
 * once, each batch goes on where the other's left off.  The last batch
 * writes "chain" instead; until then the store has no chain for anyone (a
 * read-only open reads none, a writable one migrates first).
 *
 * The records are collected and sorted once, by this open's first batch,
 * and kept: 32 bytes a record, some 320 MB for ten million, where reading
 * them for each batch would read every record's page once a batch.  The
 * count stands for a place in that order only as long as the records stay
 * the same (a qgate before the chain may write to the store between an
 * interrupted migration and the next open): a batch that does not find
 * the last record of the count chained last starts the chain again.
 */
size_t qg__chain_batch = 100000; /* tests make it small */
int (*qg__chain_between)(void);  /* tests: see store_int.h */

static int
migrate_batch(qg__txn *t, void *arg)
{
    MDB_val part = {sizeof(META_PART) - 1, (void *)META_PART};
    old_list *l = arg;
    uint64_t at;
    size_t end;
    int rc;

    l->added = 0;
    l->done = 0;
    if ((rc = qg__meta_get64(t, META_CHAIN, &at)) != QG_NOTFOUND) {
        l->done = 1;
        return rc ? rc : 1; /* another process finished it */
    }
    if ((rc = qg__meta_get64(t, META_PART, &at)) == QG_NOTFOUND)
        at = 0;
    else if (rc)
        return rc;
    if (!l->collected && (rc = collect_all(t, l)))
        return rc;
    if (at > 0 && (rc = chained_last(t, l, at)) != 0) {
        if (rc < 0)
            return rc;
        if ((rc = mdb_drop(t->txn, t->st->chain, 0)))
            return qg__from_mdb(rc);
        if ((rc = collect_all(t, l)))
            return rc;
        at = 0;
    }
    /* A chain computed afresh starts with no heads. */
    if (at == 0 && (rc = clear_heads(t)))
        return rc;
    end = l->n - at > qg__chain_batch ? at + qg__chain_batch : l->n;
    if ((rc = chain_range(t, l, at, end)))
        return rc;
    l->added = end - at;
    if (end < l->n)
        return qg__meta_put64(t, META_PART, end);
    l->done = 1;
    if ((rc = mdb_del(t->txn, t->st->meta, &part, NULL)) && rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    return qg__meta_put64(t, META_CHAIN, l->n);
}

/* Runs the batches; st->chain_migrated counts the records they chained. */
static int
migrate(qg_store *st)
{
    old_list l;
    int rc;

    memset(&l, 0, sizeof(l));
    do {
        if (qg__chain_between && (rc = qg__chain_between()))
            break;
        if ((rc = qg__store_write(st, migrate_batch, &l)) == 0)
            st->chain_migrated += l.added;
    } while (rc == 0 && !l.done);
    free(l.r);
    return rc;
}

/*
 * Moves the heads a store written by 0.4 kept in chain_tickets into the
 * ticket rows, and empties chain_tickets: after this, an append reads
 * and writes no row but the ticket's own, which each step writes anyway.
 * A head whose ticket row is gone (a ticket deleted by hand) goes with
 * it: verify finds the ticket's entries without it.
 */
static int
move_heads(qg__txn *t, void *arg)
{
    unsigned char row[TICKET_LEN];
    MDB_cursor *cur;
    MDB_val k, v, rk, rv;
    uint64_t *moved = arg, n;
    int rc;

    *moved = 0;
    if ((rc = mdb_cursor_open(t->txn, t->st->chain_tickets, &cur)))
        return qg__from_mdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 8 || v.mv_size != TICKET_VAL) {
            rc = MDB_CORRUPTED;
            break;
        }
        n = get64(v.mv_data);
        rk = k;
        if ((rc = mdb_get(t->txn, t->st->tickets, &rk, &rv)) == MDB_NOTFOUND)
            continue;
        if (rc)
            break;
        if (rv.mv_size != TICKET_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (n <= ticket_head(rv.mv_data))
            continue;
        if (n > TICKET_HEAD_MAX) {
            mdb_cursor_close(cur);
            return QG_EFULL;
        }
        memcpy(row, rv.mv_data, TICKET_LEN);
        ticket_set_head(row, n);
        rv.mv_data = row;
        if ((rc = mdb_put(t->txn, t->st->tickets, &rk, &rv, 0)))
            break;
        ++*moved;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc == MDB_CORRUPTED ? QG_ESTORE : qg__from_mdb(rc);
    return qg__from_mdb(mdb_drop(t->txn, t->st->chain_tickets, 0));
}

int
qg__chain_open(qg_store *st)
{
    unsigned create = (st->flags & QG_RDONLY) ? 0 : MDB_CREATE;
    uint64_t done, moved;
    MDB_stat ms;
    qg__txn t;
    int rc, heads = 0;

    if ((rc = qg__txn_begin(st, !!create, &t)))
        return rc;
    rc = mdb_dbi_open(t.txn, "chain", create, &st->chain);
    if (rc == 0)
        rc = mdb_dbi_open(t.txn, "chain_tickets", create, &st->chain_tickets);
    if (rc == 0 && (rc = mdb_stat(t.txn, st->chain_tickets, &ms)) == 0)
        heads = ms.ms_entries > 0; /* a store written by 0.4 */
    if (rc == 0)
        rc = qg__meta_get64(&t, META_CHAIN, &done);
    else
        rc = qg__from_mdb(rc);
    if (rc && rc != QG_NOTFOUND) {
        qg__txn_abort(&t);
        return rc;
    }
    /* Read-only, a store from before the chain stays without one.  The
     * transaction commits: the handles it opened stay open. */
    st->has_chain = rc == 0;
    if ((rc = qg__txn_commit(&t)) || !create)
        return rc;
    /* Heads to move are those of a chain 0.4 wrote.  A migration leaves
     * none: it cleared them and wrote each in its ticket's row, but for a
     * ticket with no row, whose head stays in chain_tickets for its next
     * append (move_heads() would drop it); and what chain_tickets holds
     * when an interrupted migration goes on is of that kind. */
    if (st->has_chain)
        return heads ? qg__store_write(st, move_heads, &moved) : 0;
    rc = migrate(st);
    st->has_chain = rc == 0;
    return rc;
}

int
qg__lmdb_chain_migrated(const qg_store *st, uint64_t *records)
{
    if (st == NULL || records == NULL)
        return QG_EINVAL;
    *records = st->chain_migrated;
    return 0;
}

/* ----- verifying -------------------------------------------------------- */

/* An entry as read (chain_int.h). */
typedef qg__chain_read entry;

#define E_KIND(e)   ((e)->raw[0])
#define E_OP(e)     ((e)->raw[1])
#define E_TICKET(e) get64((e)->raw + 8)
#define E_REF(e)    get64((e)->raw + 16)
#define E_LEAF(e)   ((e)->raw + 40)
#define E_HASH(e)   ((e)->raw + HASHED_LEN)

/* Open addressing over indexes into the entries (+1; 0 is empty). */
typedef struct table {
    size_t *slot, mask;
} table;

static int
table_init(table *tb, size_t n)
{
    size_t cap = 16;

    while (cap < 2 * n + 16)
        cap *= 2;
    tb->mask = cap - 1;
    return (tb->slot = calloc(cap, sizeof(*tb->slot))) ? 0 : QG_ENOMEM;
}

/* The slot of record (kind, ticket, ref): refusals and holds are keyed by
 * ref alone (their ticket is a field, not a key). */
static size_t *
record_slot(table *tb, const entry *es, unsigned kind, uint64_t ticket,
            uint64_t ref)
{
    size_t i;

    if (kind != QG_CHAIN_STEP)
        ticket = 0;
    for (i = qg__chain_slot(kind, ticket, ref) & tb->mask; tb->slot[i];
         i = (i + 1) & tb->mask) {
        const entry *e = &es[tb->slot[i] - 1];

        if (E_KIND(e) == kind && E_REF(e) == ref &&
            (kind != QG_CHAIN_STEP || E_TICKET(e) == ticket))
            return &tb->slot[i];
    }
    return &tb->slot[i];
}

/* The slot of a ticket's last entry. */
static size_t *
ticket_slot(table *tb, const entry *es, uint64_t ticket)
{
    size_t i;

    for (i = qg__chain_mix(ticket) & tb->mask; tb->slot[i];
         i = (i + 1) & tb->mask)
        if (E_TICKET(&es[tb->slot[i] - 1]) == ticket)
            return &tb->slot[i];
    return &tb->slot[i];
}

/* The slot of the first entry with this leaf. */
static size_t *
leaf_slot(table *tb, const entry *es, const unsigned char leaf[HASH_LEN])
{
    size_t i;

    for (i = get64(leaf) & tb->mask; tb->slot[i]; i = (i + 1) & tb->mask)
        if (memcmp(E_LEAF(&es[tb->slot[i] - 1]), leaf, HASH_LEN) == 0)
            return &tb->slot[i];
    return &tb->slot[i];
}

static const char *
kind_name(unsigned kind)
{
    return kind == QG_CHAIN_STEP      ? "step"
           : kind == QG_CHAIN_REFUSAL ? "refusal"
           : kind == QG_CHAIN_HOLD    ? "held delivery"
                                      : "entry";
}

static const char *
break_name(qg_chain_break b)
{
    static const char *const names[] = {"intact",    "changed", "removed",
                                        "reordered", "added",   "unsealed"};

    return (unsigned)b < 6 ? names[b] : "?";
}

static int broke(qg_chain_finding *out, qg_chain_break b, unsigned kind,
                 uint64_t ticket, uint64_t ref, uint64_t n, const char *fmt,
                 ...) __attribute__((format(printf, 7, 8)));

/* Records the break; the line reads "step 3 of ticket 2 changed: ...". */
static int
broke(qg_chain_finding *out, qg_chain_break b, unsigned kind, uint64_t ticket,
      uint64_t ref, uint64_t n, const char *fmt, ...)
{
    char name[80], why[150];
    va_list ap;

    out->brk = b;
    out->kind = (qg_chain_kind)kind;
    out->ticket = ticket;
    out->ref = ref;
    out->entry = n;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (kind == QG_CHAIN_STEP)
        snprintf(name, sizeof(name), "step %" PRIu64 " of ticket %" PRIu64, ref,
                 ticket);
    else if (kind && ticket)
        snprintf(name, sizeof(name), "%s %" PRIu64 " (ticket %" PRIu64 ")",
                 kind_name(kind), ref, ticket);
    else if (kind)
        snprintf(name, sizeof(name), "%s %" PRIu64, kind_name(kind), ref);
    else
        snprintf(name, sizeof(name), "chain entry %" PRIu64, n);
    snprintf(out->what, sizeof(out->what), "%s %s: %s", name, break_name(b),
             why);
    return 0;
}

static void
hex(const unsigned char *p, size_t n, char *dst)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        dst[2 * i] = digits[p[i] >> 4];
        dst[2 * i + 1] = digits[p[i] & 15];
    }
    dst[2 * n] = '\0';
}

/* Entries this near are tried as the predecessor that an entry moved
 * from its place was hashed after. */
#define REORDER_WINDOW 8

/* Whether entry i (which does not hold after i - 1) holds after another
 * entry near it: then it was moved, not altered. */
static size_t
moved_from(const entry *es, size_t n, size_t i)
{
    unsigned char h[HASH_LEN];
    size_t j;

    for (j = i > REORDER_WINDOW ? i - REORDER_WINDOW : 0;
         j < n && j <= i + REORDER_WINDOW; j++) {
        if (j == i || j + 1 == i)
            continue;
        if (entry_hash(NULL, E_HASH(&es[j]), es[i].raw, h) == 0 &&
            memcmp(h, E_HASH(&es[i]), HASH_LEN) == 0)
            return j + 1;
    }
    /* the first entry, moved away from the start */
    memset(h, 0, HASH_LEN);
    return i > 0 && entry_hash(NULL, h, es[i].raw, h) == 0 &&
                   memcmp(h, E_HASH(&es[i]), HASH_LEN) == 0
               ? n + 1
               : 0;
}

/* Reads every entry into *esp, in order. */
static int
read_entries(qg__txn *t, entry **esp, size_t *np)
{
    MDB_cursor *cur;
    MDB_stat ms;
    MDB_val k, v;
    entry *es;
    size_t n = 0;
    int rc;

    *esp = NULL;
    *np = 0;
    if ((rc = mdb_stat(t->txn, t->st->chain, &ms)))
        return qg__from_mdb(rc);
    if ((es = calloc(ms.ms_entries + 1, sizeof(*es))) == NULL)
        return QG_ENOMEM;
    if ((rc = mdb_cursor_open(t->txn, t->st->chain, &cur))) {
        free(es);
        return qg__from_mdb(rc);
    }
    while (n < ms.ms_entries &&
           (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 8 || v.mv_size != ENTRY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(es[n].raw, v.mv_data, ENTRY_LEN);
        /* the key, where the hash does not look: kept in newest until
         * pass 1 has read it */
        es[n].newest = (size_t)get64(k.mv_data);
        n++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        free(es);
        return rc == MDB_CORRUPTED ? QG_ESTORE : qg__from_mdb(rc);
    }
    *esp = es;
    *np = n;
    return 0;
}

/* Pass 1: each entry's number, its hash over the entry before, its link
 * to its ticket's entry before. */
static int
check_links(entry *es, size_t n, qg_chain_finding *out)
{
    unsigned char prev[HASH_LEN], h[HASH_LEN];
    table tickets;
    size_t i, *slot, moved;
    uint64_t ticket;

    if (table_init(&tickets, n))
        return QG_ENOMEM;
    memset(prev, 0, HASH_LEN);
    for (i = 0; i < n && !out->brk; i++) {
        entry *e = &es[i];

        if (e->newest != i + 1) {
            broke(out, QG_CHAIN_REMOVED, 0, 0, 0, i + 1,
                  "missing (entry %zu follows entry %zu)", e->newest, i);
            break;
        }
        if (entry_hash(NULL, prev, e->raw, h)) {
            free(tickets.slot);
            return QG_ENOMEM;
        }
        if (memcmp(h, E_HASH(e), HASH_LEN) != 0) {
            moved = moved_from(es, n, i);
            if (moved)
                broke(out, QG_CHAIN_REORDERED, 0, 0, 0, i + 1,
                      "its hash holds after entry %zu, not after entry %zu",
                      moved > n ? (size_t)0 : moved, i);
            else
                broke(out, QG_CHAIN_CHANGED, 0, 0, 0, i + 1,
                      "its hash does not hold over its bytes and entry %zu", i);
            break;
        }
        memcpy(prev, E_HASH(e), HASH_LEN);
        if ((ticket = E_TICKET(e)) == 0)
            continue;
        slot = ticket_slot(&tickets, es, ticket);
        if (*slot ? get64(e->raw + 32) != *slot ||
                        memcmp(e->raw + 72, E_HASH(&es[*slot - 1]), HASH_LEN)
                  : get64(e->raw + 32) != 0) {
            broke(out, QG_CHAIN_REMOVED, 0, 0, 0, i + 1,
                  "ticket %" PRIu64 "'s chain leads back to entry %" PRIu64
                  ", its entry before is %zu",
                  ticket, get64(e->raw + 32), *slot);
            break;
        }
        *slot = i + 1;
    }
    free(tickets.slot);
    return 0;
}

/* A record a pass 3 met: an entry must name it. */
typedef struct pass3 {
    table *recs;
    const entry *es;
    qg_chain_finding *out;
} pass3;

static int
unnamed(void *arg, unsigned kind, uint64_t ticket, uint64_t ref)
{
    pass3 *p = arg;

    if (*record_slot(p->recs, p->es, kind, ticket, ref) == 0)
        broke(p->out, QG_CHAIN_ADDED, kind, ticket, ref, 0,
              "no chain entry covers it");
    return p->out->brk != QG_CHAIN_INTACT;
}

/* Pass 2: every record against the newest entry naming it, in the
 * chain's order; pass 3: every record named by an entry. */
static int
check_records(const qg__chain_records *rs, entry *es, size_t n,
              qg_chain_finding *out)
{
    unsigned char leaf[HASH_LEN];
    table recs = {0}, leaves = {0};
    size_t i, *slot;
    entry *e;
    uint64_t ticket, ref;
    pass3 p3;
    int rc = 0;

    if (table_init(&recs, n) || table_init(&leaves, n)) {
        rc = QG_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++) {
        e = &es[i];
        slot = record_slot(&recs, es, E_KIND(e), E_TICKET(e), E_REF(e));
        *slot = i + 1;
        if (E_OP(e) != OP_DROP && !*(slot = leaf_slot(&leaves, es, E_LEAF(e))))
            *slot = i + 1;
    }
    for (i = 0; i < n; i++) {
        e = &es[i];
        e->newest = *record_slot(&recs, es, E_KIND(e), E_TICKET(e), E_REF(e));
    }
    for (i = 0; i < n && !out->brk; i++) {
        e = &es[i];
        if (e->newest != i + 1)
            continue; /* judged at its newest entry */
        ticket = E_TICKET(e);
        ref = E_REF(e);
        rc = rs->leaf(rs->arg, E_KIND(e), ticket, ref, leaf);
        if (rc == QG_NOTFOUND) {
            rc = 0;
            if (E_OP(e) != OP_DROP)
                broke(out, QG_CHAIN_REMOVED, E_KIND(e), ticket, ref, i + 1,
                      "gone from the store (chain entry %zu)", i + 1);
            continue;
        }
        if (rc == QG_ESTORE && E_OP(e) != OP_DROP) {
            rc = 0;
            broke(out, QG_CHAIN_CHANGED, E_KIND(e), ticket, ref, i + 1,
                  "its bytes no longer form a record (chain entry %zu)", i + 1);
            continue;
        }
        if (rc && rc != QG_ESTORE)
            goto done;
        rc = 0;
        if (E_OP(e) == OP_DROP) {
            broke(out, QG_CHAIN_ADDED, E_KIND(e), ticket, ref, i + 1,
                  "back in the store after chain entry %zu dropped it", i + 1);
            continue;
        }
        if (memcmp(leaf, E_LEAF(e), HASH_LEN) == 0)
            continue;
        slot = leaf_slot(&leaves, es, leaf);
        if (*slot && E_KIND(&es[*slot - 1]) == E_KIND(e))
            broke(out, QG_CHAIN_REORDERED, E_KIND(e), ticket, ref, i + 1,
                  "it holds what chain entry %zu gave to %s %" PRIu64, *slot,
                  kind_name(E_KIND(e)), E_REF(&es[*slot - 1]));
        else
            broke(out, QG_CHAIN_CHANGED, E_KIND(e), ticket, ref, i + 1,
                  "its content no longer hashes to chain entry %zu", i + 1);
    }
    /* Pass 3: a record no entry names was put there by hand. */
    if (!out->brk) {
        p3.recs = &recs;
        p3.es = es;
        p3.out = out;
        rc = rs->each(rs->arg, unnamed, &p3);
    }
done:
    free(recs.slot);
    free(leaves.slot);
    return rc;
}

int
qg__chain_check(qg__chain_read *es, size_t n, const qg__chain_records *rs,
                const qg_seal *sealed, const char *store_id,
                qg_chain_finding *out)
{
    char got[2 * HASH_LEN + 1];
    int rc;

    memset(out, 0, sizeof(*out));
    out->entries = n;
    if ((rc = check_links(es, n, out)) || out->brk)
        return rc;
    if ((rc = check_records(rs, es, n, out)) || out->brk)
        return rc;
    if (sealed == NULL)
        return 0;
    if (store_id == NULL || strcmp(store_id, sealed->store_id) != 0)
        broke(out, QG_CHAIN_UNSEALED, 0, 0, 0, sealed->records,
              "the head was sealed for store %s, this is store %s",
              sealed->store_id, store_id ? store_id : "(none)");
    else if (sealed->records > n)
        broke(out, QG_CHAIN_UNSEALED, 0, 0, 0, sealed->records,
              "the head was sealed at %" PRIu64 " entries, the chain has %zu",
              sealed->records, n);
    else if (sealed->records > 0 && memcmp(E_HASH(&es[sealed->records - 1]),
                                           sealed->hash, HASH_LEN) != 0) {
        hex(E_HASH(&es[sealed->records - 1]), HASH_LEN, got);
        broke(out, QG_CHAIN_UNSEALED, 0, 0, 0, sealed->records,
              "the sealed head's hash does not hold: the entry now hashes to "
              "%.16s..., the chain was rewritten",
              got);
    }
    return 0;
}

/* The LMDB store's records, for qg__chain_check(). */
static int
lmdb_leaf(void *arg, unsigned kind, uint64_t ticket, uint64_t ref,
          unsigned char leaf[HASH_LEN])
{
    qg__txn *t = arg;
    old_record r = {0, ticket, ref, (qg_chain_kind)kind};
    unsigned char key[12];
    MDB_val k, v;
    int rc;

    record_key(&r, key, &k);
    rc = mdb_get(t->txn, record_db(t->st, r.kind), &k, &v);
    if (rc == MDB_NOTFOUND)
        return QG_NOTFOUND;
    /* QG_ESTORE says the bytes are no record: not this failure */
    if (rc)
        return qg__from_mdb(rc) == QG_ESTORE ? QG_EIO : qg__from_mdb(rc);
    return leaf_of(NULL, r.kind, &v, leaf);
}

static int
lmdb_each(void *arg, int (*fn)(void *, unsigned, uint64_t, uint64_t),
          void *fnarg)
{
    static const qg_chain_kind kinds[] = {QG_CHAIN_STEP, QG_CHAIN_REFUSAL,
                                          QG_CHAIN_HOLD};
    qg__txn *t = arg;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t ticket, ref;
    unsigned ki;
    int rc = 0, stop = 0;

    for (ki = 0; ki < 3 && !stop; ki++) {
        if ((rc = mdb_cursor_open(t->txn, record_db(t->st, kinds[ki]), &cur)))
            return qg__from_mdb(rc);
        while (!stop && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            if (kinds[ki] == QG_CHAIN_STEP && k.mv_size == 12) {
                ticket = get64(k.mv_data);
                ref = get32((const unsigned char *)k.mv_data + 8);
            } else if (k.mv_size == 8) {
                ticket = 0;
                ref = get64(k.mv_data);
            } else {
                continue;
            }
            stop = fn(fnarg, kinds[ki], ticket, ref);
        }
        mdb_cursor_close(cur);
        if (rc && rc != MDB_NOTFOUND)
            return qg__from_mdb(rc);
        rc = 0;
    }
    return rc;
}

int
qg__lmdb_verify_chain(qg_store *st, const qg_seal *sealed,
                      qg_chain_finding *out)
{
    char id[QG_STORE_ID_LEN + 1];
    qg__chain_records rs = {lmdb_leaf, lmdb_each, NULL};
    entry *es = NULL;
    size_t n = 0;
    qg__txn t;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!st->has_chain)
        return QG_NOTFOUND;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rs.arg = &t;
    if ((rc = read_entries(&t, &es, &n)) == 0)
        rc = qg__chain_check(es, n, &rs, sealed,
                             qg__lmdb_id(st, id) == 0 ? id : NULL, out);
    qg__txn_abort(&t);
    free(es);
    return rc;
}

/* ----- hashes of a ticket's steps --------------------------------------- */

/*
 * Back from the ticket's last entry, the first met of each step being its
 * newest.  The last entry's number is in the ticket's row, or in
 * chain_tickets in a store from 0.4 opened only to read (head_get()).
 */
int
qg__lmdb_step_hashes(qg__txn *t, uint64_t ticket, uint32_t n,
                     unsigned char (*hashes)[QG_CHAIN_HASH_LEN])
{
    unsigned char key[8], *seen;
    MDB_val k = {8, key}, v;
    const unsigned char *p;
    uint64_t at, ref;
    int rc;

    if (!t->st->has_chain)
        return QG_NOTFOUND;
    memset(hashes, 0, (size_t)n * HASH_LEN);
    if (n == 0)
        return 0;
    if ((seen = calloc(n, 1)) == NULL)
        return QG_ENOMEM;
    put64(key, ticket);
    at = 0;
    rc = qg__from_mdb(mdb_get(t->txn, t->st->tickets, &k, &v));
    if (rc == 0 && v.mv_size != TICKET_LEN)
        rc = QG_ESTORE;
    if (rc == 0)
        at = ticket_head(v.mv_data);
    if (rc == 0 || rc == QG_NOTFOUND)
        rc = qg__from_mdb(mdb_get(t->txn, t->st->chain_tickets, &k, &v));
    if (rc == 0 && v.mv_size != TICKET_VAL)
        rc = QG_ESTORE;
    if (rc == 0 && get64(v.mv_data) > at)
        at = get64(v.mv_data);
    if (rc == QG_NOTFOUND)
        rc = 0;
    while (rc == 0 && at != 0) {
        put64(key, at);
        k.mv_data = key;
        if ((rc = qg__from_mdb(mdb_get(t->txn, t->st->chain, &k, &v))))
            break;
        if (v.mv_size != ENTRY_LEN || get64((p = v.mv_data) + 8) != ticket) {
            rc = QG_ESTORE;
            break;
        }
        ref = get64(p + 16);
        if (p[0] == QG_CHAIN_STEP && p[1] != OP_DROP && ref >= 1 && ref <= n &&
            !seen[ref - 1]) {
            seen[ref - 1] = 1;
            memcpy(hashes[ref - 1], p + HASHED_LEN, HASH_LEN);
        }
        /* links only go back, so the walk ends */
        if (get64(p + 32) >= at) {
            rc = QG_ESTORE;
            break;
        }
        at = get64(p + 32);
    }
    free(seen);
    return rc;
}

/* ----- seals -------------------------------------------------------------- */

#define SEAL_MAGIC "qgate-seal/1"

static void say(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* The line before its signature: what is signed. */
static int
seal_text(const qg_seal *s, char *out, size_t len)
{
    char h[2 * HASH_LEN + 1], when[32];
    time_t secs = (time_t)(s->time_us / 1000000);
    struct tm tm;

    hex(s->hash, HASH_LEN, h);
    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if ((size_t)snprintf(out, len,
                         SEAL_MAGIC " store=%s records=%" PRIu64
                                    " time=%s sha256=%s",
                         s->store_id, s->records, when, h) >= len)
        return QG_EINVAL;
    return 0;
}

int
qg__chain_seal(const char *store_id, uint64_t records,
               const unsigned char hash[QG_CHAIN_HASH_LEN],
               const char *key_file, char *out, size_t len, char *err,
               size_t errlen)
{
    unsigned char sig[64], b64[100];
    size_t siglen = sizeof(sig);
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *ctx = NULL;
    qg_seal s;
    FILE *f;
    int rc;

    memset(&s, 0, sizeof(s));
    snprintf(s.store_id, sizeof(s.store_id), "%s", store_id);
    s.records = records;
    memcpy(s.hash, hash, HASH_LEN);
    s.time_us = qg_time_now_us();
    if ((rc = seal_text(&s, out, len)))
        return rc;
    if (key_file == NULL)
        return 0;
    if ((f = fopen(key_file, "r")) == NULL) {
        say(err, errlen, "%s: cannot be read", key_file);
        out[0] = '\0';
        return QG_ECONFIG;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
        say(err, errlen, "%s: not an Ed25519 private key in PEM", key_file);
        rc = QG_ECONFIG;
        goto done;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        rc = QG_ENOMEM;
        goto done;
    }
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out,
                       strlen(out)) != 1) {
        say(err, errlen, "%s: signing failed", key_file);
        rc = QG_ECONFIG;
        goto done;
    }
    EVP_EncodeBlock(b64, sig, (int)siglen);
    if (strlen(out) + 9 + strlen((char *)b64) + 1 > len) {
        rc = QG_EINVAL;
        goto done;
    }
    strcat(out, " ed25519=");
    strcat(out, (char *)b64);
done:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (rc)
        out[0] = '\0';
    return rc;
}

int
qg__lmdb_seal(qg_store *st, const char *key_file, char *out, size_t len,
              char *err, size_t errlen)
{
    char id[QG_STORE_ID_LEN + 1];
    unsigned char hash[HASH_LEN];
    uint64_t records;
    qg__txn t;
    int rc;

    say(err, errlen, "%s", "");
    if (st == NULL || out == NULL || len == 0)
        return QG_EINVAL;
    if (!st->has_chain || qg__lmdb_id(st, id))
        return QG_NOTFOUND;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = chain_last(&t, &records, hash);
    qg__txn_abort(&t);
    if (rc)
        return rc;
    return qg__chain_seal(id, records, hash, key_file, out, len, err, errlen);
}

static int
unhex(const char *s, unsigned char *out, size_t n)
{
    size_t i;
    int hi, lo;

    for (i = 0; i < n; i++) {
        hi = s[2 * i];
        lo = hi ? s[2 * i + 1] : 0;
        hi = hi >= '0' && hi <= '9'   ? hi - '0'
             : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10
                                      : -1;
        lo = lo >= '0' && lo <= '9'   ? lo - '0'
             : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10
                                      : -1;
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return s[2 * n] == '\0' || s[2 * n] == ' ' ? 0 : -1;
}

int
qg_seal_parse(const char *text, const char *pubkey_file, qg_seal *out,
              char *err, size_t errlen)
{
    char line[QG_SEAL_MAX], when[32], h[2 * HASH_LEN + 1], canon[QG_SEAL_MAX],
        *sig;
    unsigned char raw[100];
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *ctx = NULL;
    size_t n;
    struct tm tm;
    int rc = 0, used = 0, rawlen;
    FILE *f;

    say(err, errlen, "%s", "");
    if (text == NULL || out == NULL)
        return QG_EINVAL;
    memset(out, 0, sizeof(*out));
    n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' ||
                 text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    if (n >= sizeof(line)) {
        say(err, errlen, "the head is longer than %d bytes", QG_SEAL_MAX - 1);
        return QG_EINVAL;
    }
    memcpy(line, text, n);
    line[n] = '\0';
    if ((sig = strstr(line, " ed25519=")) != NULL) {
        *sig = '\0';
        sig += 9;
    }
    memset(&tm, 0, sizeof(tm));
    if (sscanf(line,
               SEAL_MAGIC " store=%32[0-9a-f] records=%" SCNu64
                          " time=%31s sha256=%64[0-9a-f]%n",
               out->store_id, &out->records, when, h, &used) != 4 ||
        line[used] != '\0' || strlen(out->store_id) != QG_STORE_ID_LEN ||
        unhex(h, out->hash, HASH_LEN) ||
        strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL) {
        say(err, errlen,
            "not a head of qgate seal (\"" SEAL_MAGIC
            " store=ID records=N time=T sha256=HEX [ed25519=SIG]\")");
        return QG_EINVAL;
    }
    out->time_us = (int64_t)timegm(&tm) * 1000000;
    /* what was signed is the line as qgate seal wrote it */
    if (seal_text(out, canon, sizeof(canon)) || strcmp(canon, line) != 0) {
        say(err, errlen, "the head is not in the form qgate seal writes");
        return QG_EINVAL;
    }
    if (sig == NULL && pubkey_file == NULL)
        return 0;
    if (sig == NULL) {
        say(err, errlen, "the head is not signed, but a public key was given");
        return QG_EINVAL;
    }
    out->is_signed = 1;
    if (pubkey_file == NULL) {
        say(err, errlen, "the head is signed: give the public key to check it");
        return QG_EINVAL;
    }
    if (strlen(sig) != 88 ||
        (rawlen = EVP_DecodeBlock(raw, (const unsigned char *)sig, 88)) != 66) {
        say(err, errlen,
            "the head's ed25519 signature is not 64 bytes of "
            "base64");
        return QG_EINVAL;
    }
    if ((f = fopen(pubkey_file, "r")) == NULL) {
        say(err, errlen, "%s: cannot be read", pubkey_file);
        return QG_ECONFIG;
    }
    key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
        say(err, errlen, "%s: not an Ed25519 public key in PEM", pubkey_file);
        rc = QG_ECONFIG;
        goto done;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        rc = QG_ENOMEM;
        goto done;
    }
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestVerify(ctx, raw, 64, (const unsigned char *)line,
                         strlen(line)) != 1) {
        say(err, errlen, "the head's signature does not verify with %s",
            pubkey_file);
        rc = QG_EINVAL;
    }
done:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}
