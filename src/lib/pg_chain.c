/*
 * pg_chain.c - the hash chain in the PostgreSQL store: the LMDB store's
 * chain (chain.c), with the same entries, leaves and verifier, kept in
 *
 *   qgate.chain (n bigint PRIMARY KEY, kind, op, ticket, ref, time_us,
 *                ticket_prev, leaf, ticket_prev_hash, hash)
 *
 * one row per entry, its columns the entry's fields (bytes 2-7 are zero
 * padding), indexed by (ticket, n) for each ticket's last entry.
 *
 * The chain is one for every gate writing to the database, and each
 * entry hashes the one before: appends must take turns.  A write
 * transaction does not append as it goes: its entries wait in its
 * connection and are appended just before its COMMIT (qg__pg_chain_flush()
 * from qg__pg_txn_commit()), under a transaction-scoped advisory lock on a
 * fixed key, which COMMIT releases.  So the chain's lock is held for the
 * tail of each transaction (a batch of the gate's group commit), not
 * while the engine decides.  The lock is taken waiting, although the
 * transaction holds others (which pg_rows.c only ever tries for): it is
 * the last lock taken, and its holder waits for nothing more before it
 * commits, so no cycle can go through it.
 *
 * Each ticket's last entry is found by the index, where the LMDB store
 * keeps its number in the ticket's row: the index needs no second write
 * of the row at commit, and a refusal or held delivery whose ticket has
 * no row (or a ticket deleted by hand) needs no row at all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain_int.h"
#include "pg_int.h"

/* The advisory lock of the chain's appends (any fixed key; pg.c's schema
 * lock is ...0001). */
#define CHAIN_LOCK "7160676174650002"
/* Entries per INSERT, rows per FETCH. */
#define INSERT_ROWS 256
#define FETCH_ROWS  1000

#define ENTRY_COLS                                                             \
    "n, kind, op, ticket, ref, time_us, ticket_prev, leaf, ticket_prev_hash, " \
    "hash"

/* ----- appending at commit ------------------------------------------------ */

/* A ticket's last entry, as the flush moves it. */
typedef struct head {
    uint64_t ticket, n;
    unsigned char hash[QG_CHAIN_HASH_LEN];
} head;

static int
by_ticket(const void *a, const void *b)
{
    uint64_t x = ((const head *)a)->ticket, y = ((const head *)b)->ticket;

    return x < y ? -1 : x > y;
}

/*
 * The INSERT of a batch of entries: one array a column, in binary
 * (PostgreSQL's array_recv(): the number of dimensions, a has-NULLs flag,
 * the element type, the dimension's length and lower bound, then each
 * element's length and bytes), unnested into rows.  Its text is the same
 * whatever the batch: prepared once per connection, as every other
 * statement is, where values written into an INSERT's text would make a
 * text never seen again.
 */
#define INSERT_SQL                                                             \
    "INSERT INTO qgate.chain (" ENTRY_COLS ") SELECT * FROM unnest("           \
    "$1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], "             \
    "$6::int8[], $7::int8[], $8::bytea[], $9::bytea[], $10::bytea[])"
#define INT_COLS   7 /* n, kind, op, ticket, ref, time_us, ticket_prev */
#define HASH_COLS  3 /* leaf, ticket_prev_hash, hash */
#define ARRAY_HEAD 20
#define INT_ELEM   (4 + 8)
#define HASH_ELEM  (4 + QG_CHAIN_HASH_LEN)
#define INT8_OID   20 /* pg_type.oid of int8 and bytea */
#define BYTEA_OID  17

/* The ten arrays of a batch, in one buffer: start[k] is column k's
 * header, at[k] where its next element goes. */
typedef struct batch {
    unsigned char *buf;
    unsigned char *start[INT_COLS + HASH_COLS];
    unsigned char *at[INT_COLS + HASH_COLS];
    uint32_t rows;
} batch;

static void
batch_clear(batch *b)
{
    int k;

    for (k = 0; k < INT_COLS + HASH_COLS; k++)
        b->at[k] = b->start[k] + ARRAY_HEAD;
    b->rows = 0;
}

/* Room for rows entries (at most INSERT_ROWS). */
static int
batch_init(batch *b, size_t rows)
{
    size_t ilen = ARRAY_HEAD + rows * INT_ELEM;
    size_t hlen = ARRAY_HEAD + rows * HASH_ELEM;
    int k;

    if ((b->buf = malloc(INT_COLS * ilen + HASH_COLS * hlen)) == NULL)
        return QG_ENOMEM;
    for (k = 0; k < INT_COLS; k++)
        b->start[k] = b->buf + (size_t)k * ilen;
    for (k = 0; k < HASH_COLS; k++)
        b->start[INT_COLS + k] = b->buf + INT_COLS * ilen + (size_t)k * hlen;
    batch_clear(b);
    return 0;
}

static unsigned char *
put_int8(unsigned char *at, uint64_t v)
{
    put32(at, 8);
    put64(at + 4, v);
    return at + INT_ELEM;
}

static unsigned char *
put_hash(unsigned char *at, const unsigned char *hash)
{
    put32(at, QG_CHAIN_HASH_LEN);
    memcpy(at + 4, hash, QG_CHAIN_HASH_LEN);
    return at + HASH_ELEM;
}

/* Entry e, numbered n: a row of the batch, its fields at their offsets
 * in e (chain.c's header comment). */
static void
batch_add(batch *b, uint64_t n, const unsigned char *e)
{
    unsigned char **at = b->at;
    int k;

    at[0] = put_int8(at[0], n);
    at[1] = put_int8(at[1], e[0]);
    at[2] = put_int8(at[2], e[1]);
    for (k = 3; k < INT_COLS; k++) /* ticket, ref, time_us, ticket_prev */
        at[k] = put_int8(at[k], get64(e + 8 * (k - 2)));
    for (k = 0; k < HASH_COLS; k++) /* leaf, ticket_prev_hash, hash */
        at[INT_COLS + k] = put_hash(at[INT_COLS + k], e + 40 + 32 * k);
    b->rows++;
}

static int
batch_insert(qg__pgconn *c, batch *b)
{
    qg__pgparams p = {0};
    unsigned char *h;
    int k, rc;

    for (k = 0; k < INT_COLS + HASH_COLS; k++) {
        h = b->start[k];
        put32(h, 1);
        put32(h + 4, 0);
        put32(h + 8, k < INT_COLS ? INT8_OID : BYTEA_OID);
        put32(h + 12, b->rows);
        put32(h + 16, 1);
        qg__pg_bytes(&p, h, (size_t)(b->at[k] - h));
    }
    rc = qg__pg_exec(c, INSERT_SQL, &p, NULL);
    batch_clear(b);
    return rc;
}

/* The chain's last entry (number and hash: 0 and zero bytes when empty)
 * and the last of each ticket the pending entries name, sorted by ticket:
 * one statement, in the snapshot it takes after the lock. */
static int
read_heads(qg__pgconn *c, const struct qg__pgchain *ch, head **out,
           size_t *nout, uint64_t *last, unsigned char prev[32])
{
    qg__pgparams p = {0};
    head *h = NULL;
    char *list = NULL;
    size_t i, n = 0, m, at = 0;
    PGresult *r;
    int rc, j;

    *out = NULL;
    *nout = 0;
    *last = 0;
    memset(prev, 0, QG_CHAIN_HASH_LEN);
    if ((h = calloc(ch->n, sizeof(*h))) == NULL)
        return QG_ENOMEM;
    for (i = 0; i < ch->n; i++)
        if (ch->e[i].ticket)
            h[n++].ticket = ch->e[i].ticket;
    if (n)
        qsort(h, n, sizeof(*h), by_ticket);
    for (i = m = 1; i < n; i++)
        if (h[i].ticket != h[m - 1].ticket)
            h[m++] = h[i];
    n = n ? m : 0;
    if ((list = malloc(n * 21 + 1)) == NULL) {
        free(h);
        return QG_ENOMEM;
    }
    list[0] = '\0';
    for (i = 0; i < n; i++)
        at += (size_t)sprintf(list + at, "%s%" PRId64, i ? "," : "",
                              (int64_t)h[i].ticket);
    qg__pg_bytes(&p, list, at);
    /* the chain's last entry as ticket 0, which no ticket is */
    rc = qg__pg_exec(c,
                     "SELECT 0::int8, l.n, l.hash FROM (SELECT n, hash FROM "
                     "qgate.chain ORDER BY n DESC LIMIT 1) l UNION ALL "
                     "SELECT t, c.n, c.hash FROM unnest(string_to_array("
                     "$1::text, ',')::int8[]) AS t, LATERAL (SELECT n, hash "
                     "FROM qgate.chain WHERE ticket = t ORDER BY n DESC "
                     "LIMIT 1) c",
                     &p, &r);
    free(list);
    if (rc) {
        free(h);
        return rc;
    }
    for (j = 0; j < PQntuples(r); j++) {
        head key = {(uint64_t)qg__pg_get(r, j, 0), 0, {0}}, *at_h;

        if (PQgetlength(r, j, 2) != QG_CHAIN_HASH_LEN) {
            rc = QG_ESTORE;
            break;
        }
        if (key.ticket == 0) {
            *last = (uint64_t)qg__pg_get(r, j, 1);
            memcpy(prev, PQgetvalue(r, j, 2), QG_CHAIN_HASH_LEN);
            continue;
        }
        if ((at_h = bsearch(&key, h, n, sizeof(*h), by_ticket)) == NULL) {
            rc = QG_ESTORE;
            break;
        }
        at_h->n = (uint64_t)qg__pg_get(r, j, 1);
        memcpy(at_h->hash, PQgetvalue(r, j, 2), QG_CHAIN_HASH_LEN);
    }
    PQclear(r);
    if (rc) {
        free(h);
        return rc;
    }
    *out = h;
    *nout = n;
    return 0;
}

int
qg__pg_chain_flush(qg__pgconn *c)
{
    struct qg__pgchain *ch = c->chain;
    unsigned char e[QG__CHAIN_ENTRY_LEN], prev[QG_CHAIN_HASH_LEN];
    size_t i, nh = 0;
    head *heads = NULL, key, *hd;
    batch b = {0};
    uint64_t last;
    int rc;

    if (ch == NULL || ch->n == 0)
        return 0;
    /* The lock first, in a statement of its own: a READ COMMITTED
     * statement reads the snapshot it took when it began, so the reads
     * after it see what the lock's last holder committed. */
    if ((rc = qg__pg_exec(c, "SELECT pg_advisory_xact_lock(" CHAIN_LOCK ")",
                          NULL, NULL)) ||
        (rc = read_heads(c, ch, &heads, &nh, &last, prev)))
        return rc;
    if ((rc = batch_init(&b, ch->n < INSERT_ROWS ? ch->n : INSERT_ROWS)))
        goto done;
    for (i = 0; i < ch->n; i++) {
        const qg__pgpending *p = &ch->e[i];

        hd = NULL;
        if (p->ticket) {
            key.ticket = p->ticket;
            hd = bsearch(&key, heads, nh, sizeof(*heads), by_ticket);
        }
        qg__chain_entry(e, (qg_chain_kind)p->kind, p->op, p->ticket, p->ref,
                        p->time_us, p->has_leaf ? p->leaf : NULL,
                        hd ? hd->n : 0, hd ? hd->hash : NULL);
        if ((rc = qg__chain_entry_hash(NULL, prev, e)))
            goto done;
        memcpy(prev, e + QG__CHAIN_HASHED_LEN, QG_CHAIN_HASH_LEN);
        last++;
        if (hd) {
            hd->n = last;
            memcpy(hd->hash, prev, QG_CHAIN_HASH_LEN);
        }
        batch_add(&b, last, e);
        if ((b.rows == INSERT_ROWS || i + 1 == ch->n) &&
            (rc = batch_insert(c, &b)))
            goto done;
    }
    ch->n = 0;
done:
    free(b.buf);
    free(heads);
    return rc;
}

/* ----- the leaves of rows ------------------------------------------------- */

/* Whether a column's integer fits the byte the record's layout gives it. */
static int
byte_ok(const PGresult *r, int i, int col)
{
    int64_t v = qg__pg_get(r, i, col);

    return v >= 0 && v <= 255;
}

/* Whether a bytes column is n long (exact) or at most n (!exact). */
static int
len_ok(const PGresult *r, int i, int col, int n, int exact)
{
    int len = PQgetlength(r, i, col);

    return PQgetisnull(r, i, col) == 0 && (exact ? len == n : len <= n);
}

int
qg__pg_step_leaf(const PGresult *r, int i, unsigned char leaf[32])
{
    unsigned char digest[QG__DIGEST_LEN];
    qg_record rec;
    qg__facts f;
    int has_facts, col, rc;

    for (col = 5; col <= 7; col++)
        if (!byte_ok(r, i, col))
            return QG_ESTORE;
    if (!len_ok(r, i, 10, QG__DIGEST_LEN, 1) || !len_ok(r, i, 11, 16, 0) ||
        !len_ok(r, i, 24, 15, 0) || !len_ok(r, i, 25, 15, 0) ||
        !byte_ok(r, i, 18) || !byte_ok(r, i, 19) || !byte_ok(r, i, 22))
        return QG_ESTORE;
    qg__pg_record(r, i, 0, &rec);
    if (qg__pg_get(r, i, 16)) {
        if (!len_ok(r, i, 17, QG__DIGEST_LEN, 1) || PQgetlength(r, i, 15))
            return QG_ESTORE;
        memcpy(digest, PQgetvalue(r, i, 17), QG__DIGEST_LEN);
    } else if ((rc = qg__digest(PQgetvalue(r, i, 15),
                                (size_t)PQgetlength(r, i, 15), digest))) {
        return rc;
    }
    /* the header's stored length: zero in the leaf, whatever it is */
    rec.body_len = 0;
    memset(&f, 0, sizeof(f));
    has_facts = qg__pg_get(r, i, 18) != 0;
    if (has_facts) {
        f.em.rule = (qg__rule)qg__pg_get(r, i, 19);
        f.em.event = (qg_event)qg__pg_get(r, i, 20);
        f.em.appointment = qg__pg_get(r, i, 21) != 0;
        f.em.updated = qg__pg_get(r, i, 22) != 0;
        f.state_event = (qg_event)qg__pg_get(r, i, 23);
        qg__pg_copy(r, i, 24, f.appointment_date, sizeof(f.appointment_date));
        qg__pg_copy(r, i, 25, f.appointment_time, sizeof(f.appointment_time));
        if (!byte_ok(r, i, 20) || !byte_ok(r, i, 23))
            return QG_ESTORE;
    }
    return qg__chain_leaf_record(&rec, has_facts ? &f : NULL, digest, leaf);
}

int
qg__pg_rejection_leaf(const PGresult *r, int i, unsigned char leaf[32])
{
    unsigned char digest[QG__DIGEST_LEN];
    qg_rejection rej;
    int col, rc;

    for (col = 2; col <= 5; col++)
        if (!byte_ok(r, i, col))
            return QG_ESTORE;
    /* a NUL would end the detail the leaf hashes early */
    if (!byte_ok(r, i, 18) ||
        memchr(PQgetvalue(r, i, 9), 0, (size_t)PQgetlength(r, i, 9)))
        return QG_ESTORE;
    qg__pg_rejection(r, i, 0, &rej);
    if (qg__pg_get(r, i, 12) || qg__pg_get(r, i, 19)) {
        if (!len_ok(r, i, 13, QG__DIGEST_LEN, 1))
            return QG_ESTORE;
        memcpy(digest, PQgetvalue(r, i, 13), QG__DIGEST_LEN);
    } else if ((rc = qg__digest(PQgetvalue(r, i, 10),
                                (size_t)PQgetlength(r, i, 10), digest))) {
        return rc;
    }
    return qg__chain_leaf_rejection(&rej, (unsigned)qg__pg_get(r, i, 18),
                                    digest, leaf);
}

int
qg__pg_held_leaf(const PGresult *r, int i, unsigned char leaf[32])
{
    unsigned char digest[QG__DIGEST_LEN];
    qg__step s;
    qg_held h;
    int col, rc;

    for (col = 4; col <= 11; col++)
        if (!byte_ok(r, i, col))
            return QG_ESTORE;
    if (!len_ok(r, i, 17, 15, 0) || !len_ok(r, i, 18, 15, 0) ||
        !len_ok(r, i, 19, QG__DIGEST_LEN, 1) || !len_ok(r, i, 20, 47, 0))
        return QG_ESTORE;
    qg__pg_held(r, i, 0, &s, &h);
    if ((rc = qg__digest(s.body, s.body_len, digest)))
        return rc;
    return qg__chain_leaf_held(&s, h.ticket, h.event, h.from, s.source, digest,
                               leaf);
}

/* ----- reading rows in batches -------------------------------------------- */

/* Calls fn on every row of query, in c's open transaction, FETCH_ROWS at
 * a time through a cursor; fn's nonzero return ends the walk (and is
 * returned). */
static int
each_row(qg__pgconn *c, const char *query, const qg__pgparams *p,
         int (*fn)(void *, const PGresult *, int), void *arg)
{
    size_t len = strlen(query) + 64;
    char *sql = malloc(len);
    PGresult *r = NULL;
    int rc, i, n;

    if (sql == NULL)
        return QG_ENOMEM;
    snprintf(sql, len, "DECLARE qgchain NO SCROLL CURSOR FOR %s", query);
    rc = qg__pg_exec(c, sql, p, NULL);
    free(sql);
    if (rc)
        return rc;
    do {
        if ((rc = qg__pg_exec(c, "FETCH 1000 FROM qgchain", NULL, &r)))
            return rc;
        n = PQntuples(r);
        for (i = 0; i < n && rc == 0; i++)
            rc = fn(arg, r, i);
        PQclear(r);
    } while (rc == 0 && n == FETCH_ROWS);
    if (rc)
        return rc;
    return qg__pg_exec(c, "CLOSE qgchain", NULL, NULL);
}

/* ----- the records, by key ------------------------------------------------ */

/* A record's key and its leaf as now stored (or why there is none). */
typedef struct record {
    uint64_t ticket, ref;
    int64_t received_us;
    unsigned char kind;
    int rc; /* 0, or QG_ESTORE: no longer a record */
    unsigned char leaf[QG_CHAIN_HASH_LEN];
} record;

typedef struct records {
    record *r;
    size_t n, cap;
    size_t *slot, mask; /* index + 1 of each record, by key */
    int rc;             /* the first failure but QG_ESTORE */
} recset;

static int
record_add(recset *rs, unsigned kind, const PGresult *r, int i, uint64_t ticket,
           uint64_t ref, int64_t received_us,
           int (*leaf)(const PGresult *, int, unsigned char *))
{
    record *x;

    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 1024;

        if ((x = realloc(rs->r, cap * sizeof(*x))) == NULL)
            return QG_ENOMEM;
        rs->r = x;
        rs->cap = cap;
    }
    x = &rs->r[rs->n++];
    x->kind = (unsigned char)kind;
    x->ticket = ticket;
    x->ref = ref;
    x->received_us = received_us;
    if ((x->rc = leaf(r, i, x->leaf)))
        memset(x->leaf, 0, sizeof(x->leaf));
    return x->rc == QG_ESTORE ? 0 : x->rc;
}

static int
add_step(void *arg, const PGresult *r, int i)
{
    return record_add(arg, QG_CHAIN_STEP, r, i, (uint64_t)qg__pg_get(r, i, 0),
                      (uint64_t)qg__pg_get(r, i, 1), qg__pg_get(r, i, 2),
                      qg__pg_step_leaf);
}

static int
add_refusal(void *arg, const PGresult *r, int i)
{
    return record_add(arg, QG_CHAIN_REFUSAL, r, i,
                      (uint64_t)qg__pg_get(r, i, 6),
                      (uint64_t)qg__pg_get(r, i, 0), qg__pg_get(r, i, 1),
                      qg__pg_rejection_leaf);
}

static int
add_hold(void *arg, const PGresult *r, int i)
{
    return record_add(arg, QG_CHAIN_HOLD, r, i, (uint64_t)qg__pg_get(r, i, 12),
                      (uint64_t)qg__pg_get(r, i, 0), qg__pg_get(r, i, 1),
                      qg__pg_held_leaf);
}

/* Every record of the database, with its leaf. */
static int
read_records(qg__pgconn *c, recset *rs)
{
    int rc;

    if ((rc =
             each_row(c, "SELECT " QG__PG_CHAIN_STEP_COLS " FROM qgate.history",
                      NULL, add_step, rs)) ||
        (rc = each_row(c,
                       "SELECT " QG__PG_REJECTION_COLS " FROM qgate.rejections",
                       NULL, add_refusal, rs)))
        return rc;
    return each_row(c, "SELECT " QG__PG_HELD_COLS " FROM qgate.held", NULL,
                    add_hold, rs);
}

/* The slot of (kind, ticket, ref); the ticket is a step's key alone. */
static size_t *
slot_of(recset *rs, unsigned kind, uint64_t ticket, uint64_t ref)
{
    size_t i;

    if (kind != QG_CHAIN_STEP)
        ticket = 0;
    for (i = qg__chain_slot(kind, ticket, ref) & rs->mask; rs->slot[i];
         i = (i + 1) & rs->mask) {
        const record *x = &rs->r[rs->slot[i] - 1];

        if (x->kind == kind && x->ref == ref &&
            (kind != QG_CHAIN_STEP || x->ticket == ticket))
            break;
    }
    return &rs->slot[i];
}

static int
index_records(recset *rs)
{
    size_t cap = 16, i;

    while (cap < 2 * rs->n + 16)
        cap *= 2;
    if ((rs->slot = calloc(cap, sizeof(*rs->slot))) == NULL)
        return QG_ENOMEM;
    rs->mask = cap - 1;
    for (i = 0; i < rs->n; i++)
        *slot_of(rs, rs->r[i].kind, rs->r[i].ticket, rs->r[i].ref) = i + 1;
    return 0;
}

static int
rs_leaf(void *arg, unsigned kind, uint64_t ticket, uint64_t ref,
        unsigned char leaf[QG_CHAIN_HASH_LEN])
{
    recset *rs = arg;
    size_t at = *slot_of(rs, kind, ticket, ref);

    if (at == 0)
        return QG_NOTFOUND;
    memcpy(leaf, rs->r[at - 1].leaf, QG_CHAIN_HASH_LEN);
    return rs->r[at - 1].rc;
}

static int
rs_each(void *arg, int (*fn)(void *, unsigned, uint64_t, uint64_t), void *fnarg)
{
    recset *rs = arg;
    size_t i;

    for (i = 0; i < rs->n; i++)
        if (fn(fnarg, rs->r[i].kind,
               rs->r[i].kind == QG_CHAIN_STEP ? rs->r[i].ticket : 0,
               rs->r[i].ref))
            break;
    return 0;
}

/* ----- verifying ---------------------------------------------------------- */

typedef struct entries {
    qg__chain_read *e;
    size_t n, cap;
} entries;

/* An entry's row as its 136 bytes; a column that cannot be the byte or
 * the hash its field is leaves bytes no hash holds over. */
static int
add_entry(void *arg, const PGresult *r, int i)
{
    entries *es = arg;
    qg__chain_read *x;
    int bad, col;

    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 1024;

        if ((x = realloc(es->e, cap * sizeof(*x))) == NULL)
            return QG_ENOMEM;
        es->e = x;
        es->cap = cap;
    }
    x = &es->e[es->n++];
    bad = !byte_ok(r, i, 1) || !byte_ok(r, i, 2);
    for (col = 7; col <= 9; col++)
        bad |= !len_ok(r, i, col, QG_CHAIN_HASH_LEN, 1);
    qg__chain_entry(x->raw, (qg_chain_kind)qg__pg_get(r, i, 1),
                    (int)qg__pg_get(r, i, 2), (uint64_t)qg__pg_get(r, i, 3),
                    (uint64_t)qg__pg_get(r, i, 4), qg__pg_get(r, i, 5), NULL, 0,
                    NULL);
    put64(x->raw + 32, (uint64_t)qg__pg_get(r, i, 6));
    if (!bad) {
        memcpy(x->raw + 40, PQgetvalue(r, i, 7), QG_CHAIN_HASH_LEN);
        memcpy(x->raw + 72, PQgetvalue(r, i, 8), QG_CHAIN_HASH_LEN);
        memcpy(x->raw + QG__CHAIN_HASHED_LEN, PQgetvalue(r, i, 9),
               QG_CHAIN_HASH_LEN);
    } else {
        /* no SHA-256 is all 0xff: "changed" */
        memset(x->raw + QG__CHAIN_HASHED_LEN, 0xff, QG_CHAIN_HASH_LEN);
    }
    x->newest = (size_t)qg__pg_get(r, i, 0);
    return 0;
}

int
qg__pg_verify_chain(qg_store *st, const qg_seal *sealed, qg_chain_finding *out)
{
    char id[QG_STORE_ID_LEN + 1];
    recset rs = {0};
    entries es = {0};
    qg__chain_records cr = {rs_leaf, rs_each, &rs};
    qg__txn t;
    int rc;

    memset(out, 0, sizeof(*out));
    /* one snapshot: entries and records are committed together */
    if ((rc = qg__pg_snapshot(st, &t)))
        return rc;
    if ((rc =
             each_row(t.be, "SELECT " ENTRY_COLS " FROM qgate.chain ORDER BY n",
                      NULL, add_entry, &es)) ||
        (rc = read_records(t.be, &rs)) || (rc = index_records(&rs)))
        goto done;
    rc = qg__chain_check(es.e, es.n, &cr, sealed,
                         qg__pg_id(st, id) == 0 ? id : NULL, out);
done:
    qg__pg_txn_abort(&t);
    free(es.e);
    free(rs.r);
    free(rs.slot);
    return rc;
}

/* ----- hashes of a ticket's steps ----------------------------------------- */

/* Newest first: the first met of each step is the newest. */
int
qg__pg_step_hashes(qg__txn *t, uint64_t ticket, uint32_t n,
                   unsigned char (*hashes)[QG_CHAIN_HASH_LEN])
{
    qg__pgparams p = {0};
    unsigned char *seen;
    uint64_t ref;
    PGresult *r;
    int rc, i;

    memset(hashes, 0, (size_t)n * QG_CHAIN_HASH_LEN);
    if (n == 0)
        return 0;
    if ((seen = calloc(n, 1)) == NULL)
        return QG_ENOMEM;
    qg__pg_int(&p, (int64_t)ticket);
    qg__pg_int(&p, QG_CHAIN_STEP);
    qg__pg_int(&p, QG__CHAIN_DROP);
    rc = qg__pg_exec(t->be,
                     "SELECT ref, hash FROM qgate.chain WHERE ticket = "
                     "$1::int8 AND kind = $2::int8 AND op <> $3::int8 ORDER "
                     "BY n DESC",
                     &p, &r);
    for (i = 0; rc == 0 && i < PQntuples(r); i++) {
        ref = (uint64_t)qg__pg_get(r, i, 0);
        if (ref < 1 || ref > n || seen[ref - 1])
            continue;
        if (PQgetlength(r, i, 1) != QG_CHAIN_HASH_LEN) {
            rc = QG_ESTORE;
            break;
        }
        seen[ref - 1] = 1;
        memcpy(hashes[ref - 1], PQgetvalue(r, i, 1), QG_CHAIN_HASH_LEN);
    }
    if (r)
        PQclear(r);
    free(seen);
    return rc;
}

/* ----- seals -------------------------------------------------------------- */

int
qg__pg_seal(qg_store *st, const char *key_file, char *out, size_t len,
            char *err, size_t errlen)
{
    char id[QG_STORE_ID_LEN + 1];
    unsigned char hash[QG_CHAIN_HASH_LEN];
    uint64_t records = 0;
    PGresult *r;
    qg__txn t;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (out == NULL || len == 0)
        return QG_EINVAL;
    if ((rc = qg__pg_id(st, id)))
        return rc;
    if ((rc = qg__pg_txn_begin(st, 0, &t)))
        return rc;
    rc = qg__pg_exec(t.be,
                     "SELECT n, hash FROM qgate.chain ORDER BY n DESC LIMIT 1",
                     NULL, &r);
    qg__pg_txn_abort(&t);
    if (rc)
        return rc;
    memset(hash, 0, sizeof(hash));
    if (PQntuples(r)) {
        records = (uint64_t)qg__pg_get(r, 0, 0);
        if (PQgetlength(r, 0, 1) == QG_CHAIN_HASH_LEN)
            memcpy(hash, PQgetvalue(r, 0, 1), QG_CHAIN_HASH_LEN);
        else
            rc = QG_ESTORE;
    }
    PQclear(r);
    if (rc)
        return rc;
    return qg__chain_seal(id, records, hash, key_file, out, len, err, errlen);
}

/* ----- migration ------------------------------------------------------------
 */

static int
by_received(const void *a, const void *b)
{
    const record *x = a, *y = b;

    if (x->received_us != y->received_us)
        return x->received_us < y->received_us ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->ticket != y->ticket)
        return x->ticket < y->ticket ? -1 : 1;
    return x->ref < y->ref ? -1 : x->ref > y->ref;
}

/*
 * As the LMDB store's first writable open of a store from before the
 * chain (chain.c, migrate()): every record, in the order received (the
 * order of appending was not kept), appended in this transaction.  A row
 * that is no longer a record is chained all the same, with the leaf it
 * has: verify then names it.
 */
int
qg__pg_chain_migrate(qg__pgconn *c, uint64_t *chained)
{
    recset rs = {0};
    qg__txn t = {0};
    size_t i;
    int rc;

    *chained = 0;
    t.be = c;
    if ((rc = read_records(c, &rs)))
        goto done;
    if (rs.n)
        qsort(rs.r, rs.n, sizeof(*rs.r), by_received);
    qg__pg_chain_reset(c);
    for (i = 0; i < rs.n && rc == 0; i++)
        rc = qg__pg_chain_add(&t, (qg_chain_kind)rs.r[i].kind, QG__CHAIN_APPEND,
                              rs.r[i].ticket, rs.r[i].ref, rs.r[i].received_us,
                              rs.r[i].leaf);
    if (rc == 0 && (rc = qg__pg_chain_flush(c)) == 0)
        *chained = rs.n;
done:
    qg__pg_chain_reset(c);
    free(rs.r);
    return rc;
}

int
qg__pg_chain_migrated(const qg_store *st, uint64_t *records)
{
    if (records == NULL)
        return QG_EINVAL;
    *records = st->chain_migrated;
    return 0;
}
