/*
 * store_int.h - the store's layout, shared by the files that read and
 * write its databases (store.c, outbox.c).  Private.
 */
#ifndef QG_STORE_INT_H
#define QG_STORE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "bigendian.h"
#include "qgate_int.h"

/* The key of a ticket's step in history and steps: the ticket, then seq,
 * big-endian, so that a ticket's steps sort together and in order. */
static inline MDB_val
qg__step_key(unsigned char key[12], uint64_t ticket, uint32_t seq)
{
    MDB_val k = {12, key};

    put64(key, ticket);
    put32(key + 8, seq);
    return k;
}

struct qg_store {
    qg__store_common common; /* first: see store_ops.h */
    MDB_env *env;
    MDB_dbi meta, tickets, aliases, history, digests, rejections, outbox, dead;
    MDB_dbi held, held_by, held_sums;
    MDB_dbi chain, chain_tickets; /* chain.c */
    int has_chain;                /* 0: a store from before the chain, RDONLY */
    MDB_dbi refused_by;           /* refused.c */
    int has_refused_by;           /* 0: a store from before the index, RDONLY */
    MDB_dbi steps;                /* steps.c */
    int has_steps;                /* 0: a store from before them, RDONLY */
    uint64_t chain_migrated;      /* entries this open's migration added */
    uint64_t steps_built;         /* summaries this open's build wrote */
    /* The row the engine holds between qg__lmdb_accept() or _refuse() and
     * its qg__put_ticket(): the chain moves its head there, and the put
     * writes it.  chain_direct: this write transaction's chain wrote a
     * ticket row's head itself, so a row read before may be stale.  Both
     * belong to the write transaction (one at a time), cleared at its
     * start. */
    qg__ticket_row *chain_row;
    int chain_direct;
    struct evp_md_ctx_st *chain_sha; /* the writer's hashing (chain.c) */
    /* The SHA-256 of the body of the record qg__lmdb_accept() appends,
     * taken by the engine (qg__accepted); NULL: the chain hashes it. */
    const unsigned char *chain_body;
    unsigned flags;
    unsigned char id[16]; /* the store's id (meta "store_id") */
    int has_id;           /* 0: a store from before ids, opened read-only */
    size_t map_max;
    size_t unsigned_log_max; /* bound on unauthenticated, malformed entries */
    pthread_mutex_t lock;    /* guards the three fields below */
    pthread_cond_t idle;
    unsigned active; /* open transactions of this process */
    int resizing;
};

/*
 * A ticket row: TICKET_LEN bytes (store.c, decode_ticket()).  Bytes 3 and
 * 12-15, padding up to 0.4, hold the number of the ticket's newest chain
 * entry (chain.c): byte 3 its high 8 bits, 12-15 its low 32.  0: none, or
 * (a store from 0.4 not yet opened for writing) kept in chain_tickets.
 */
#define TICKET_LEN      104
#define TICKET_HEAD_MAX (((uint64_t)1 << 40) - 1)

static inline uint64_t
ticket_head(const unsigned char *row)
{
    return (uint64_t)row[3] << 32 | get32(row + 12);
}

static inline void
ticket_set_head(unsigned char *row, uint64_t n)
{
    row[3] = (unsigned char)(n >> 32);
    put32(row + 12, (uint32_t)n);
}

/*
 * A history record: RECORD_HDR bytes, the body, then with REC_FACTS the
 * FACTS_LEN bytes of qg__facts.  Header: 0 received_us, 8 event ms, 16
 * offset, 20 event, 21 from, 22 to, 23 flags, 24 service, 32 staff, 40
 * payload SHA-256, 72 machine, 88 u32 body length as stored, 92 pos.
 *
 * With REC_PURGED (qg_store_purge()) the body is gone and PURGED_LEN bytes
 * stand in its place: u64 the body's length, the SHA-256 of the whole
 * body, as received.  The payload's digest stays in the header and in the
 * digests database.
 */
#define RECORD_HDR   96
#define REC_LATE     0x1 /* placed before steps accepted earlier */
#define REC_RELEASED 0x2 /* held first, accepted later */
#define REC_FACTS    0x4 /* FACTS_LEN bytes of qg__facts follow the body */
#define REC_PURGED   0x8 /* the body was purged: PURGED_LEN bytes instead */
#define FACTS_LEN    40
#define PURGED_LEN   40

/* A rejection's layout is described in store.c, above append_rejection().
 * With REJ_PURGED the body was purged: the entry is REJ_TRUNCATED with a
 * prefix of 0 bytes (so versions before the flag read it as such), the
 * length and SHA-256 of the delivery as received in its REJ_EXTRA. */
#define REJECTION_HDR      48
#define REJ_TRUNCATED      0x01u
#define REJ_RESOLVED       0x02u
#define REJ_PURGED         0x04u
#define REJ_EXTRA          48
#define REJ_RESOLVED_EXTRA 24

/* A held delivery: HELD_HDR bytes (held.c), then its body. */
#define HELD_HDR 184

/* The headers of the three records, as the LMDB store writes them
 * (txn.c), and the facts after a history record's body.  The
 * hash chain hashes them on both stores (chain.c): the PostgreSQL store
 * encodes its rows with the same functions. */
void qg__record_header(unsigned char *p, const qg_record *rec, int has_facts);
void qg__facts_put(unsigned char *f, const qg__facts *facts);
void qg__rejection_header(unsigned char *p, const qg_rejection *rej,
                          unsigned source, size_t dlen, size_t keep,
                          unsigned flags);
void qg__held_header(unsigned char *p, const qg__step *s, uint64_t ticket,
                     qg_event ev, qg_state from, unsigned source);

/* Meta: the bytes of unauthenticated and malformed rejections as stored;
 * absent in stores that predate the bound (counted when first needed). */
#define META_UNSIGNED_BYTES "rejections_unsigned_bytes"

/* Outbox entries (store.c): their two lengths (0.1's, and this version's,
 * which added why and when an entry was given up), their codec, and the
 * queueing of an accepted step in the transaction that records it
 * (qg__store_accept()). */
#define QG__OUTBOX_ENTRY_LEN_0_1 (40 + 128)
#define QG__OUTBOX_ENTRY_LEN     (QG__OUTBOX_ENTRY_LEN_0_1 + 8 + 128)
int qg__outbox_entry_len_ok(size_t len);
void qg__outbox_encode(unsigned char *p, const qg_outbox_entry *e);
/* QG_ESTORE when k or v is not an entry. */
int qg__outbox_decode(const MDB_val *k, const MDB_val *v, qg_outbox_entry *e);
int qg__outbox_enabled(const qg_store *st);
int qg__outbox_put(qg__txn *t, uint64_t ticket, uint32_t seq, int64_t now);
/* The next outbox entry id: entries are forwarded in id order. */
int qg__outbox_next_id(qg__txn *t, uint64_t *id);

/* The key of a payload digest in digests and held_sums: the digest for
 * the default source, as it always was; the digest and the source's
 * number for another, so that one source's payload never stands for
 * another's (source.c).  Returns the key's length. */
static inline size_t
digest_key(unsigned char key[QG__DIGEST_LEN + 1], const unsigned char *digest,
           unsigned source)
{
    memcpy(key, digest, QG__DIGEST_LEN);
    key[QG__DIGEST_LEN] = (unsigned char)source;
    return source ? QG__DIGEST_LEN + 1 : QG__DIGEST_LEN;
}

/* The received_us of history record (ticket, seq). */
int qg__record_received(qg__txn *t, uint64_t ticket, uint32_t seq, int64_t *us);

/* A cursor over one database, holding its read transaction: what the
 * store's and the outbox's cursors are made of. */
typedef struct qg__range {
    qg__txn t;
    MDB_cursor *cur;
    int started; /* cleared to begin again at start */
} qg__range;

int qg__range_open(qg_store *st, MDB_dbi dbi, qg__range *r);
/* First call: the first key >= start (start NULL: the first key); then
 * the next key.  0, QG_NOTFOUND at the end, or an error. */
int qg__range_next(qg__range *r, const void *start, size_t len, MDB_val *k,
                   MDB_val *v);
void qg__range_close(qg__range *r);

/* The rejection log's index by ticket (refused.c): opened, and built for
 * a store written before it, at open; an entry's key put and deleted with
 * the entry (ticket 0: nothing). */
int qg__refused_open(qg_store *st);
int qg__refused_put(qg__txn *t, uint64_t ticket, uint64_t id);
int qg__refused_del(qg__txn *t, uint64_t ticket, uint64_t id);

/* The step summaries (steps.c): opened, and built for a store written
 * before them or since by a qgate without them, at open.  put: the summary
 * of record (ticket, seq) from its header hdr, as now stored; decode: a
 * summary as a record with the summary's fields (qg__record_summary());
 * current: 1 when they cover the history in t's snapshot, else 0. */
int qg__steps_open(qg_store *st);
int qg__steps_put(qg__txn *t, uint64_t ticket, uint32_t seq,
                  const unsigned char *hdr);
int qg__steps_decode(const MDB_val *k, const MDB_val *v, qg_record *rec);
int qg__steps_current(qg__txn *t);
/* Summaries a transaction of that build writes, at most. */
extern size_t qg__steps_batch;
int qg__lmdb_step_summary(qg__txn *t, uint64_t ticket, uint32_t seq,
                          qg_record *out);
int qg__lmdb_steps_built(const qg_store *st, uint64_t *records);

/* The counts of tickets by state and refusals by reason (counts.c):
 * built at open for a store without them.  ticket: a row's state and
 * records go from (from, from_records), 0 records for a new row, to (to,
 * to_records); refusal: entry id of that reason was added to the log (1)
 * or dropped from it (0).  Both rewrite the counts in t, if it has them. */
int qg__counts_open(qg_store *st);
int qg__counts_ticket(qg__txn *t, unsigned from, uint32_t from_records,
                      unsigned to, uint32_t to_records);
int qg__counts_refusal(qg__txn *t, uint64_t id, unsigned reason, int added);
int qg__lmdb_counts(qg_store *st, qg_counts *out);

/* txn.c, below the other files of the LMDB store and calling none of
 * them: these, the records' headers above, and the transactions and the
 * store's id among the backend's operations below. */

/* An LMDB return code as a QG_E* code. */
int qg__from_mdb(int rc);

/* Tries of a transaction that another process's growth of the map
 * interrupts, and of a write that finds the map full. */
#define WRITE_RETRIES 16

/* A u64 value in meta: 0, QG_NOTFOUND when absent, QG_ESTORE when it is
 * not 8 bytes, or another error. */
int qg__meta_get64(qg__txn *t, const char *key, uint64_t *v);
int qg__meta_put64(qg__txn *t, const char *key, uint64_t v);

/* The key after the last one of dbi, as a u64 counter: 1 when empty. */
int qg__next_id(qg__txn *t, MDB_dbi dbi, uint64_t *id);

/* Takes the next value of a u64 counter in meta (1 first): ids that must
 * never be given out twice, even after their entries are gone. */
int qg__meta_counter(qg__txn *t, const char *name, uint64_t *id);

/* The hash chain (chain.c): opened after the other databases, computed
 * for a store written before it at its first writable open.  Each hook
 * appends one entry in the caller's write transaction; v is the record's
 * value as now stored.  A no-op in a store without a chain. */
int qg__chain_open(qg_store *st);
void qg__chain_close(qg_store *st);
/* Records a transaction of that migration chains, at most.  For tests:
 * when set, called before each batch's transaction; what it returns but 0
 * ends the migration with that code, as if the process died there. */
extern size_t qg__chain_batch;
extern int (*qg__chain_between)(void);
int qg__chain_step(qg__txn *t, uint64_t ticket, uint32_t seq, const MDB_val *v,
                   int rewrite);
int qg__chain_refusal(qg__txn *t, uint64_t id, const MDB_val *v, int rewrite);
int qg__chain_hold(qg__txn *t, uint64_t id, const MDB_val *v);
/* A record deleted by design: a held delivery released or expired, a
 * refusal dropped by the bound on unsigned entries. */
int qg__chain_drop(qg__txn *t, qg_chain_kind kind, uint64_t ticket,
                   uint64_t ref);

/* The LMDB backend's operations (store_ops.h), in the files that hold its
 * databases: store.c, txn.c (the transactions and the store's id),
 * held.c, source.c, outbox.c, chain.c, purge.c. */
int qg__lmdb_txn_begin(qg_store *st, int write, qg__txn *t);
int qg__lmdb_txn_commit(qg__txn *t);
void qg__lmdb_txn_abort(qg__txn *t);
int qg__lmdb_txn_nest(qg__txn *parent, qg__txn *child);
int qg__lmdb_txn_nest_commit(qg__txn *child);
void qg__lmdb_txn_nest_abort(qg__txn *child);
int qg__lmdb_write(qg_store *st, int (*fn)(qg__txn *, void *), void *arg);
int qg__lmdb_writable(const qg_store *st);
int qg__lmdb_probe(qg_store *st);
int qg__lmdb_copy(qg_store *st, const char *dir);
int qg__lmdb_check(qg_store *st, char *detail, size_t dlen);
int qg__lmdb_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1]);
void qg__lmdb_close(qg_store *st);
int qg__lmdb_find_alias(qg__txn *t, qg_id_kind kind, int64_t id,
                        uint64_t *ticket);
int qg__lmdb_get_ticket(qg__txn *t, uint64_t ticket, qg__ticket_row *row);
int qg__lmdb_put_ticket(qg__txn *t, const qg__ticket_row *row);
int qg__lmdb_find_digest(qg__txn *t, const unsigned char *digest,
                         uint64_t *ticket, uint32_t *seq);
int qg__lmdb_load_path(qg__txn *t, uint64_t ticket, qg__path *path);
int qg__lmdb_move_record(qg__txn *t, uint64_t ticket, uint32_t seq,
                         uint32_t pos, qg_event ev, qg_state from, qg_state to,
                         int late);
/* Appends rec; with facts (may be NULL) kept after its body.  Also what
 * tests use to damage a history. */
int qg__lmdb_append_record(qg__txn *t, const qg_record *rec,
                           const qg__facts *facts);
int qg__lmdb_accept(qg__txn *t, qg__ticket_row *row, qg__accepted *a);
int qg__lmdb_refuse(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
                    uint64_t *id);
int qg__lmdb_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket,
                                uint32_t seq);
int qg__lmdb_rejections_dropped(qg_store *st, uint64_t *dropped);
qg__txn *qg__lmdb_history_txn(qg_history *h);
int qg__lmdb_history_open(qg_store *st, uint64_t ticket, qg_order order,
                          qg_history **out);
int qg__lmdb_history_ticket(qg_history *h, qg_ticket *out);
int qg__lmdb_history_next(qg_history *h, qg_record *rec);
int qg__lmdb_history_seek(qg_history *h, uint32_t seq);
void qg__lmdb_history_close(qg_history *h);
int qg__lmdb_rejections_open(qg_store *st, uint64_t first, qg_rejections **out);
int qg__lmdb_rejections_open_ticket(qg_store *st, uint64_t ticket,
                                    qg_rejections **out);
int qg__lmdb_rejections_next(qg_rejections *rj, qg_rejection *out);
void qg__lmdb_rejections_close(qg_rejections *rj);
int qg__lmdb_tickets_open(qg_store *st, qg_tickets **out);
int qg__lmdb_tickets_next(qg_tickets *it, qg_ticket *out);
void qg__lmdb_tickets_close(qg_tickets *it);
int qg__lmdb_held_put(qg__txn *t, const qg__step *s, uint64_t ticket,
                      qg_event ev, qg_state from, uint64_t *id);
int qg__lmdb_held_any(qg__txn *t);
int qg__lmdb_held_find_digest(qg__txn *t, const unsigned char *digest,
                              uint64_t *id);
int qg__lmdb_held_get(qg__txn *t, uint64_t id, qg__step *s, qg_held *out);
int qg__lmdb_held_ids_for(qg__txn *t, qg_id_kind kind, int64_t chup_id,
                          uint64_t **ids, size_t *n);
int qg__lmdb_held_due(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n);
int qg__lmdb_held_delete(qg__txn *t, uint64_t id);
int qg__lmdb_held_open(qg_store *st, qg_held_list **out);
int qg__lmdb_held_next(qg_held_list *hl, qg_held *out);
void qg__lmdb_held_close(qg_held_list *hl);
int qg__lmdb_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us);
int qg__lmdb_source_find(qg__txn *t, const char *name, unsigned *index);
int qg__lmdb_source_add(qg__txn *t, const char *name, unsigned *index);
int qg__lmdb_source_read(qg__txn *t, unsigned index,
                         char out[QG_SOURCE_NAME_MAX + 1]);
int qg__lmdb_outbox_open(qg_store *st, int dead, qg_outbox **out);
int qg__lmdb_outbox_next(qg_outbox *ob, qg_outbox_entry *out);
void qg__lmdb_outbox_close(qg_outbox *ob);
int qg__lmdb_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                          uint64_t *dead);
int qg__lmdb_outbox_ack(qg_store *st, uint64_t id);
int qg__lmdb_outbox_defer(qg_store *st, uint64_t id, int64_t next_attempt_us,
                          const char *error);
int qg__lmdb_outbox_bury(qg_store *st, uint64_t id, const char *error);
int qg__lmdb_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved);
int qg__lmdb_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                           int64_t until_us, uint64_t *queued,
                           uint64_t *waiting);
int qg__lmdb_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                          int64_t now_us, int64_t lease_us);
int qg__lmdb_chain_migrated(const qg_store *st, uint64_t *records);
int qg__lmdb_verify_chain(qg_store *st, const qg_seal *sealed,
                          qg_chain_finding *out);
/* qg_chain_step_hashes() of ticket as t's snapshot has it. */
int qg__lmdb_step_hashes(qg__txn *t, uint64_t ticket, uint32_t n,
                         unsigned char (*hashes)[QG_CHAIN_HASH_LEN]);
int qg__lmdb_seal(qg_store *st, const char *key_file, char *out, size_t len,
                  char *err, size_t errlen);
int qg__lmdb_purge(qg_store *st, int64_t before_us, qg_purge_stats *out);

#endif /* QG_STORE_INT_H */
