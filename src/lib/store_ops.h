/*
 * store_ops.h - the store's operations, as a backend implements them.
 * Private.
 *
 * The engine decides and the store records.  Every read and write of a
 * ticket, its history, its refusals, its held deliveries and its outbox
 * entries goes through one table of operations, in the way SQLite's VFS
 * or a libuv handle's methods do: the LMDB store (store.c and the files
 * beside it) fills one, the PostgreSQL store (pg_*.c) another, and nothing
 * above them (engine, CLI, gate) knows which it has.
 *
 * A store handle and every cursor a backend gives out begin with a
 * pointer to their backend's table (struct qg__store_head): the public
 * functions read it from there to dispatch.  An operation a backend does
 * not have is NULL, and its public function answers QG_ENOTSUP.
 *
 * The operations the engine runs are wrapped below as the qg__* functions
 * it has always called, so its recipe reads as before; their contracts
 * are in qgate_int.h, with the types they take.
 */
#ifndef QG_STORE_OPS_H
#define QG_STORE_OPS_H

#include <pthread.h>
#include <string.h>

#include "qgate_int.h"

typedef struct qg__store_ops {
    const char *name; /* "lmdb", "postgresql" */

    /* The handle.  close is called once, never with NULL. */
    void (*close)(qg_store *st);
    int (*id)(const qg_store *st, char out[QG_STORE_ID_LEN + 1]);
    int (*writable)(const qg_store *st);
    int (*probe)(qg_store *st);
    int (*copy)(qg_store *st, const char *dir);
    int (*check)(qg_store *st, char *detail, size_t dlen);

    /* Transactions, as qg__txn_begin() and the others describe them. */
    int (*txn_begin)(qg_store *st, int write, qg__txn *t);
    int (*txn_commit)(qg__txn *t);
    void (*txn_abort)(qg__txn *t);
    int (*txn_nest)(qg__txn *parent, qg__txn *child);
    int (*txn_nest_commit)(qg__txn *child);
    void (*txn_nest_abort)(qg__txn *child);
    int (*write)(qg_store *st, int (*fn)(qg__txn *, void *), void *arg);

    /* What the engine reads before deciding, and records after. */
    int (*find_alias)(qg__txn *t, qg_id_kind kind, int64_t id,
                      uint64_t *ticket);
    int (*get_ticket)(qg__txn *t, uint64_t ticket, qg__ticket_row *row);
    int (*find_digest)(qg__txn *t, const unsigned char *digest,
                       uint64_t *ticket, uint32_t *seq);
    int (*put_ticket)(qg__txn *t, const qg__ticket_row *row);
    int (*load_path)(qg__txn *t, uint64_t ticket, qg__path *path);
    int (*move_record)(qg__txn *t, uint64_t ticket, uint32_t seq, uint32_t pos,
                       qg_event ev, qg_state from, qg_state to, int late);
    int (*accept)(qg__txn *t, qg__ticket_row *row, qg__accepted *a);
    int (*refuse)(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
                  uint64_t *id);
    /* Sources, as the backend numbers them; qg__source_index() and
     * qg__source_name() (store_common.c) are built on these.  find: the
     * number of a name the store has, QG_NOTFOUND when it has none; add:
     * a new name's number, the next (QG_ETOOBIG when none is left); read:
     * the name of a number, QG_NOTFOUND when no source has it. */
    int (*source_find)(qg__txn *t, const char *name, unsigned *index);
    int (*source_add)(qg__txn *t, const char *name, unsigned *index);
    int (*source_read)(qg__txn *t, unsigned index,
                       char out[QG_SOURCE_NAME_MAX + 1]);

    /* Held deliveries. */
    int (*held_put)(qg__txn *t, const qg__step *s, uint64_t ticket, qg_event ev,
                    qg_state from, uint64_t *id);
    int (*held_find_digest)(qg__txn *t, const unsigned char *digest,
                            uint64_t *id);
    int (*held_any)(qg__txn *t);
    int (*held_get)(qg__txn *t, uint64_t id, qg__step *s, qg_held *out);
    int (*held_ids_for)(qg__txn *t, qg_id_kind kind, int64_t chup_id,
                        uint64_t **ids, size_t *n);
    int (*held_due)(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n);
    int (*held_delete)(qg__txn *t, uint64_t id);

    /* Readers: the public functions of the same names.  Arguments are
     * checked for NULL before these are called. */
    int (*history_open)(qg_store *st, uint64_t ticket, qg_order order,
                        qg_history **out);
    int (*history_next)(qg_history *h, qg_record *rec);
    int (*history_ticket)(qg_history *h, qg_ticket *out);
    int (*history_seek)(qg_history *h, uint32_t seq);
    qg__txn *(*history_txn)(qg_history *h);
    void (*history_close)(qg_history *h);
    int (*tickets_open)(qg_store *st, qg_tickets **out);
    int (*tickets_next)(qg_tickets *it, qg_ticket *out);
    void (*tickets_close)(qg_tickets *it);
    int (*rejections_open)(qg_store *st, uint64_t first, qg_rejections **out);
    int (*rejections_open_ticket)(qg_store *st, uint64_t ticket,
                                  qg_rejections **out);
    int (*rejections_next)(qg_rejections *rj, qg_rejection *out);
    void (*rejections_close)(qg_rejections *rj);
    int (*rejections_resolve)(qg_store *st, uint64_t id, uint64_t ticket,
                              uint32_t seq);
    int (*rejections_dropped)(qg_store *st, uint64_t *dropped);
    int (*held_open)(qg_store *st, qg_held_list **out);
    int (*held_next)(qg_held_list *hl, qg_held *out);
    void (*held_close)(qg_held_list *hl);
    int (*held_stats)(qg_store *st, uint64_t *count, int64_t *oldest_us);
    int (*counts)(qg_store *st, qg_counts *out);

    /* The outbox. */
    int (*outbox_open)(qg_store *st, int dead, qg_outbox **out);
    int (*outbox_next)(qg_outbox *ob, qg_outbox_entry *out);
    void (*outbox_close)(qg_outbox *ob);
    int (*outbox_stats)(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                        uint64_t *dead);
    int (*outbox_ack)(qg_store *st, uint64_t id);
    int (*outbox_defer)(qg_store *st, uint64_t id, int64_t next_attempt_us,
                        const char *error);
    int (*outbox_bury)(qg_store *st, uint64_t id, const char *error);
    int (*outbox_requeue)(qg_store *st, uint64_t id, uint64_t *moved);
    int (*outbox_resend)(qg_store *st, uint64_t ticket, int64_t since_us,
                         int64_t until_us, uint64_t *queued, uint64_t *waiting);
    int (*outbox_claim)(qg_store *st, uint64_t ticket, const char *owner,
                        int64_t now_us, int64_t lease_us);

    /* Retention and the audit chain. */
    int (*purge)(qg_store *st, int64_t before_us, qg_purge_stats *out);
    int (*chain_migrated)(const qg_store *st, uint64_t *records);
    /* NULL: the backend keeps no step summaries (qg_store_steps_built()). */
    int (*steps_built)(const qg_store *st, uint64_t *records);
    int (*verify_chain)(qg_store *st, const qg_seal *sealed,
                        qg_chain_finding *out);
    /* qg_chain_step_hashes() of ticket as t's snapshot has it: a read
     * transaction of its own, or a history cursor's. */
    int (*step_hashes)(qg__txn *t, uint64_t ticket, uint32_t n,
                       unsigned char (*hashes)[QG_CHAIN_HASH_LEN]);
    /* What verify compares.  steps_current: whether a QG_SUMMARY cursor
     * in t's snapshot reads the summaries (1) or the records (0), a
     * question of the whole snapshot, asked once a walk.  step_summary,
     * asked only when they are read: the summary of step (ticket, seq),
     * 0 or QG_ESTORE when the summaries lack it.  NULL, both: the backend
     * reads summaries from the records. */
    int (*steps_current)(qg__txn *t);
    int (*step_summary)(qg__txn *t, uint64_t ticket, uint32_t seq,
                        qg_record *out);
    int (*seal)(qg_store *st, const char *key_file, char *out, size_t len,
                char *err, size_t errlen);
} qg__store_ops;

/* The first member of a store handle and of each of its cursors. */
struct qg__store_head {
    const qg__store_ops *ops;
};

/*
 * The first member of a store handle: its backend's table, then what
 * every backend keeps alike (store_common.c).  The names of its sources by
 * number, as read from the store: a number once given names the same
 * source for good, so a name read once is kept.  "" not read yet.
 * Guarded by names_lock, which qg_store_open() makes and qg_store_close()
 * ends.
 */
typedef struct qg__store_common {
    const qg__store_ops *ops; /* first: struct qg__store_head */
    pthread_mutex_t names_lock;
    char names[QG_SOURCES_MAX][QG_SOURCE_NAME_MAX + 1];
} qg__store_common;

#define QG__COMMON(st) ((qg__store_common *)(void *)(st))

/* The backend of a store, or of a cursor it gave out.  A pointer to a
 * structure may be converted to a pointer to its first member (C11
 * 6.7.2.1): that member is read, never the structure as another type. */
#define QG__OPS(p) (*(const qg__store_ops *const *)(const void *)(p))

/* The backends.  Each open() fills *out with a handle whose first member
 * points to its table; the public qg_store_open() chooses by the path. */
extern const qg__store_ops qg__lmdb_ops;
int qg__lmdb_open(const qg_store_options *opts, qg_store **out);
extern const qg__store_ops qg__pg_ops;
int qg__pg_open(const qg_store_options *opts, qg_store **out);

/* What both backends' accept do alike (store_common.c): point the step's
 * Chup ids at its ticket, through the backend's own put_alias; */
int qg__name_ticket(qg__txn *t, const qg__accepted *a, qg__ticket_row *row,
                    int (*put_alias)(qg__txn *, qg_id_kind, int64_t, uint64_t));
/* And, once the step is appended, bring the ticket's row up to it. */
void qg__ticket_took(qg__ticket_row *row, const qg__accepted *a);
/* Sources, on the backend's source_find, _add and _read: contracts in
 * qgate_int.h (source.c's part); source names are kept in the handle's
 * common part. */
int qg__source_index(qg__txn *t, const char *name, int create, unsigned *index);
void qg__source_name(qg__txn *t, unsigned index,
                     char out[QG_SOURCE_NAME_MAX + 1]);

/* Clears the fields of rec a summary has not (QG_SUMMARY), for a backend
 * that reads a summary from the whole record. */
void qg__record_summary(qg_record *rec);

/* Whether name is the default source's: NULL or "default". */
static inline int
qg__source_is_default(const char *name)
{
    return name == NULL || strcmp(name, QG_SOURCE_DEFAULT) == 0;
}

/* ----- the engine's operations, dispatched ----------------------------- */

static inline int
qg__txn_begin(qg_store *st, int write, qg__txn *t)
{
    return QG__OPS(st)->txn_begin(st, write, t);
}

static inline int
qg__txn_commit(qg__txn *t)
{
    return QG__OPS(t->st)->txn_commit(t);
}

static inline void
qg__txn_abort(qg__txn *t)
{
    QG__OPS(t->st)->txn_abort(t);
}

static inline int
qg__txn_nest(qg__txn *parent, qg__txn *child)
{
    return QG__OPS(parent->st)->txn_nest(parent, child);
}

static inline int
qg__txn_nest_commit(qg__txn *child)
{
    return QG__OPS(child->st)->txn_nest_commit(child);
}

static inline void
qg__txn_nest_abort(qg__txn *child)
{
    QG__OPS(child->st)->txn_nest_abort(child);
}

static inline int
qg__store_write(qg_store *st, int (*fn)(qg__txn *, void *), void *arg)
{
    return QG__OPS(st)->write(st, fn, arg);
}

static inline int
qg__store_writable(const qg_store *st)
{
    return QG__OPS(st)->writable(st);
}

static inline qg__txn *
qg__history_txn(qg_history *h)
{
    return QG__OPS(h)->history_txn(h);
}

static inline int
qg__find_alias(qg__txn *t, qg_id_kind kind, int64_t id, uint64_t *ticket)
{
    return QG__OPS(t->st)->find_alias(t, kind, id, ticket);
}

static inline int
qg__get_ticket(qg__txn *t, uint64_t ticket, qg__ticket_row *row)
{
    return QG__OPS(t->st)->get_ticket(t, ticket, row);
}

static inline int
qg__find_digest(qg__txn *t, const unsigned char *digest, uint64_t *ticket,
                uint32_t *seq)
{
    return QG__OPS(t->st)->find_digest(t, digest, ticket, seq);
}

static inline int
qg__put_ticket(qg__txn *t, const qg__ticket_row *row)
{
    return QG__OPS(t->st)->put_ticket(t, row);
}

static inline int
qg__load_path(qg__txn *t, uint64_t ticket, qg__path *path)
{
    return QG__OPS(t->st)->load_path(t, ticket, path);
}

static inline int
qg__move_record(qg__txn *t, uint64_t ticket, uint32_t seq, uint32_t pos,
                qg_event ev, qg_state from, qg_state to, int late)
{
    return QG__OPS(t->st)->move_record(t, ticket, seq, pos, ev, from, to, late);
}

static inline int
qg__store_accept(qg__txn *t, qg__ticket_row *row, qg__accepted *a)
{
    return QG__OPS(t->st)->accept(t, row, a);
}

static inline int
qg__store_refuse(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
                 uint64_t *id)
{
    return QG__OPS(t->st)->refuse(t, row, rej, id);
}

static inline int
qg__held_put(qg__txn *t, const qg__step *s, uint64_t ticket, qg_event ev,
             qg_state from, uint64_t *id)
{
    return QG__OPS(t->st)->held_put(t, s, ticket, ev, from, id);
}

static inline int
qg__held_find_digest(qg__txn *t, const unsigned char *digest, uint64_t *id)
{
    return QG__OPS(t->st)->held_find_digest(t, digest, id);
}

static inline int
qg__held_any(qg__txn *t)
{
    return QG__OPS(t->st)->held_any(t);
}

static inline int
qg__held_get(qg__txn *t, uint64_t id, qg__step *s, qg_held *out)
{
    return QG__OPS(t->st)->held_get(t, id, s, out);
}

static inline int
qg__held_ids_for(qg__txn *t, qg_id_kind kind, int64_t chup_id, uint64_t **ids,
                 size_t *n)
{
    return QG__OPS(t->st)->held_ids_for(t, kind, chup_id, ids, n);
}

static inline int
qg__held_due(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n)
{
    return QG__OPS(t->st)->held_due(t, before_us, ids, n);
}

static inline int
qg__held_delete(qg__txn *t, uint64_t id)
{
    return QG__OPS(t->st)->held_delete(t, id);
}

#endif /* QG_STORE_OPS_H */
