/*
 * chain_int.h - the hash chain's format, leaves, verifier and seals
 * (chain.c), shared by the two stores.  Private.
 *
 * One chain format and one verifier for both stores: an entry is the same
 * 136 bytes on each (chain.c's header comment), and a record's leaf is
 * hashed over its bytes as the LMDB store lays them out (store_int.h), so
 * the PostgreSQL store (pg_chain.c) hands the fields of its rows to the
 * qg__chain_leaf_*() functions below.  What differs is where entries and
 * records are kept: each store reads its entries into an array and
 * answers qg__chain_records' two questions, and qg__chain_check() does
 * the rest.
 */
#ifndef QG_CHAIN_INT_H
#define QG_CHAIN_INT_H

#include "qgate_int.h"

#define QG__CHAIN_ENTRY_LEN  136
#define QG__CHAIN_HASHED_LEN 104 /* the bytes an entry's hash covers */

/* An entry's op (byte 1). */
#define QG__CHAIN_APPEND  0
#define QG__CHAIN_REWRITE 1
#define QG__CHAIN_DROP    2

/* Leaves of the three records from their fields.  body_digest and
 * whole_digest: the SHA-256 of the whole body as received (kept by a
 * purge).  facts may be NULL (a record without them).  0 or QG_ENOMEM. */
int qg__chain_leaf_record(const qg_record *rec, const qg__facts *facts,
                          const unsigned char body_digest[QG__DIGEST_LEN],
                          unsigned char leaf[QG_CHAIN_HASH_LEN]);
int qg__chain_leaf_rejection(const qg_rejection *rej, unsigned source,
                             const unsigned char whole_digest[QG__DIGEST_LEN],
                             unsigned char leaf[QG_CHAIN_HASH_LEN]);
int qg__chain_leaf_held(const qg__step *s, uint64_t ticket, qg_event ev,
                        qg_state from, unsigned source,
                        const unsigned char body_digest[QG__DIGEST_LEN],
                        unsigned char leaf[QG_CHAIN_HASH_LEN]);

/* Fills entry e but its hash (leaf may be NULL: a drop; prev_n 0: the
 * ticket's first entry, prev_hash then unread), and its hash over the
 * hash of the entry before (zero bytes before the first).  ctx may be
 * NULL (an EVP_MD_CTX the caller keeps). */
void qg__chain_entry(unsigned char e[QG__CHAIN_ENTRY_LEN], qg_chain_kind kind,
                     int op, uint64_t ticket, uint64_t ref, int64_t time_us,
                     const unsigned char *leaf, uint64_t prev_n,
                     const unsigned char *prev_hash);
int qg__chain_entry_hash(void *ctx, const unsigned char prev[QG_CHAIN_HASH_LEN],
                         unsigned char e[QG__CHAIN_ENTRY_LEN]);

/* An entry as a store read it; newest holds the entry's number as stored
 * (its key) until qg__chain_check() has read it. */
/* The verifiers' hash tables of records: a 64-bit mix (MurmurHash3's
 * finalizer), and the start slot of record (kind, ticket, ref). */
static inline uint64_t
qg__chain_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static inline uint64_t
qg__chain_slot(unsigned kind, uint64_t ticket, uint64_t ref)
{
    return qg__chain_mix(kind * 0x9e3779b97f4a7c15ULL ^ qg__chain_mix(ticket) ^
                         ref);
}

typedef struct qg__chain_read {
    unsigned char raw[QG__CHAIN_ENTRY_LEN];
    size_t newest;
} qg__chain_read;

/*
 * A store's records, as the verifier asks for them, in the snapshot its
 * entries were read from:
 *   leaf  the leaf of record (kind, ticket, ref) as now stored (ticket is
 *         0 but for steps: refusals and held deliveries are keyed by id);
 *         QG_NOTFOUND when it is gone, QG_ESTORE when what is stored is
 *         no longer a record, or another error;
 *   each  calls fn with every stored record's key until fn returns
 *         nonzero; 0 or an error.
 */
typedef struct qg__chain_records {
    int (*leaf)(void *arg, unsigned kind, uint64_t ticket, uint64_t ref,
                unsigned char leaf[QG_CHAIN_HASH_LEN]);
    int (*each)(void *arg, int (*fn)(void *, unsigned, uint64_t, uint64_t),
                void *fnarg);
    void *arg;
} qg__chain_records;

/* Checks entries es[0..n) (links, then every record against them, then
 * sealed, if not NULL, against store_id, which may be NULL: no id) as
 * qg_store_verify_chain() says; es is changed.  0 with out filled, or an
 * error. */
int qg__chain_check(qg__chain_read *es, size_t n, const qg__chain_records *rs,
                    const qg_seal *sealed, const char *store_id,
                    qg_chain_finding *out);

/* The head line of qg_store_seal() for a chain of records entries whose
 * last hashes to hash, signed with key_file if not NULL. */
int qg__chain_seal(const char *store_id, uint64_t records,
                   const unsigned char hash[QG_CHAIN_HASH_LEN],
                   const char *key_file, char *out, size_t len, char *err,
                   size_t errlen);

#endif /* QG_CHAIN_INT_H */
