/*
 * pg_int.h - the PostgreSQL store, shared by its files (pg_conn.c:
 * statements, connections and transactions; pg.c: the handle, commit and
 * schema; pg_codec.c: parameters and rows; pg_rows.c: what the engine
 * reads and writes; pg_read.c: the readers; pg_chain.c: the hash chain;
 * pg_purge.c: purges; pg_outbox.c: the outbox).
 * Private.
 */
#ifndef QG_PG_INT_H
#define QG_PG_INT_H

#include <pthread.h>
#include <stdint.h>

#include "bigendian.h" /* put64(), get64(): libpq's network order */
#include "pq.h"        /* libpq, through the table it loads */
#include "qgate_int.h"

/* The schema this qgate writes (public.qgate_schema.version). */
#define QG__PG_SCHEMA_VERSION QG_PG_SCHEMA_VERSION

/* The statements a connection prepares, at most (qg__pg_exec()); past
 * them, a statement is parsed each time it runs, as before it was. */
#define QG__PG_STMTS 128
/* Statements sent ahead of the next one (qg__pg_exec()), at most. */
#define QG__PG_LATER 8

/* A statement prepared on a connection (pg_conn.c, stmt_name()). */
typedef struct qg__pgstmt {
    uint64_t hash; /* of sql */
    char *sql;     /* a copy; NULL: a free slot (its Parse failed) */
} qg__pgstmt;

/* A statement whose answer nothing waits for (qg__pg_lock(), savepoints),
 * sent with the next one: one round trip for both. */
typedef struct qg__pglater {
    const char *sql; /* static, or text */
    char text[40];
    int64_t key; /* its one parameter, $1::int8, when has_key */
    int has_key;
    int test; /* a false answer is a conflict: a lock tried and not got */
} qg__pglater;

/* A chain entry waiting for its transaction's commit (pg_conn.c keeps
 * them, pg_chain.c appends them). */
typedef struct qg__pgpending {
    uint64_t ticket, ref;
    int64_t time_us;
    unsigned char kind, op, has_leaf;
    unsigned char leaf[QG_CHAIN_HASH_LEN];
} qg__pgpending;

struct qg__pgchain {
    qg__pgpending *e;
    size_t n, cap;
    size_t *marks; /* n when savepoint depth d was taken: marks[d] */
    int nmarks;
};

/*
 * One connection of the pool.  A transaction holds it from begin to
 * commit or abort (qg__txn.be); nested transactions are savepoints on it.
 */
typedef struct qg__pgconn {
    PGconn *pg;
    struct qg__pgconn *next; /* in the pool's idle list */
    int write;               /* the open transaction is a write one */
    int broken;     /* the connection failed: closed, not pooled, on release */
    int retry;      /* a conflict with another writer (40001, 40P01, 23505):
                       the transaction is run again from its start */
    int depth;      /* savepoints open */
    int locks;      /* advisory locks taken in the transaction (pg_rows.c) */
    PGresult *kept; /* what held_get's step points into */
    int nstmts;
    qg__pgstmt stmts[QG__PG_STMTS]; /* prepared on this connection */
    int nlater;
    qg__pglater later[QG__PG_LATER]; /* not sent yet */
    struct qg__pgchain *chain;       /* entries to append at commit */
} qg__pgconn;

struct qg_store {
    qg__store_common common; /* first: see store_ops.h */
    char *conninfo;
    unsigned flags;
    int nosync;
    int notify;  /* NOTIFY qgate_steps on each accepted step (meta) */
    int version; /* the schema's version as found at open */
    uint64_t chain_migrated; /* records the migration of this handle chained */
    unsigned char id[16];
    size_t unsigned_log_max;
    pthread_mutex_t lock; /* guards idle, claims_swept_us */
    qg__pgconn *idle;
    int64_t claims_swept_us; /* run-out claims last deleted (pg_outbox.c) */
};

/* Parameters of one statement: every integer is sent as int8 and every
 * string or body as bytes, in binary; the statement casts ($1::int8). */
#define QG__PG_PARAMS 32
typedef struct qg__pgparams {
    int n;
    const char *v[QG__PG_PARAMS];
    int len[QG__PG_PARAMS];
    int fmt[QG__PG_PARAMS];
    unsigned char buf[QG__PG_PARAMS][8];
} qg__pgparams;

/* pg_codec.c: parameters in, values and rows out. */
void qg__pg_int(qg__pgparams *p, int64_t v);
void qg__pg_bytes(qg__pgparams *p, const void *v, size_t len);
void qg__pg_text(qg__pgparams *p, const char *s); /* NUL-terminated */
/* Binary result values: any integer width (and bool) as int64, NULL 0. */
int64_t qg__pg_get(const PGresult *r, int row, int col);
/* Bytes of a value; copied NUL-terminated, cut to size - 1. */
void qg__pg_copy(const PGresult *r, int row, int col, char *dst, size_t size);
/* A row read with the SELECT list QG__PG_TICKET_COLS, QG__PG_RECORD_COLS,
 * QG__PG_REJECTION_COLS or QG__PG_HELD_COLS, from column col on; what it
 * points to (a body, a detail) lives as long as r. */
void qg__pg_ticket_row(const PGresult *r, int i, int col, qg__ticket_row *row);
void qg__pg_record(const PGresult *r, int i, int col, qg_record *rec);
void qg__pg_rejection(const PGresult *r, int i, int col, qg_rejection *rej);
void qg__pg_held(const PGresult *r, int i, int col, qg__step *s, qg_held *h);

/* pg_conn.c: statements, connections and transactions */
/*
 * Runs sql on c with p's parameters (p may be NULL), results in binary.
 * *res (res may be NULL: the result is cleared) is the caller's, to be
 * PQclear()ed, when 0 is returned.  Errors: QG_EUNAVAIL (the connection
 * failed: c->broken set), QG_EBUSY (a conflict with another writer:
 * c->retry set), QG_ERDONLY, QG_ESTORE.
 */
int qg__pg_exec(qg__pgconn *c, const char *sql, const qg__pgparams *p,
                PGresult **res);
/* Queues sql (a static string, no parameters, no result wanted) to be
 * sent with c's next statement, in one round trip; its failure is that
 * statement's.  Errors (the queue flushed when full): as qg__pg_exec(). */
int qg__pg_later(qg__pgconn *c, const char *sql);

/* The transaction-scoped advisory lock on key (pg_advisory_xact_lock),
 * taken only in write transactions: see pg_rows.c.  It is sent with the
 * next statement (qg__pg_later()), which runs once the lock is got; a
 * lock tried and not got is that statement's QG_EBUSY. */
int qg__pg_lock(qg__txn *t, int64_t key);
/* Sends c's later statements at once when a lock waits among them, so
 * that it is got, or found taken (QG_EBUSY), before what follows (0 when
 * none waits).  Errors: as qg__pg_exec(). */
int qg__pg_send_locks(qg__pgconn *c);

/* The advisory lock that orders a purge's batch of steps and a resend
 * (pg_purge.c, pg_outbox.c), as LMDB's one writer orders them: any fixed
 * key, as pg.c's schema lock (...0001) and pg_chain.c's chain lock
 * (...0002) are. */
#define QG__PG_PURGE_LOCK INT64_C(7160676174650003)

/* A connection from st's pool, or a new one (fresh set); given back
 * (give) at the end of its transaction, or freed (free, NULL accepted). */
int qg__pg_conn_new(qg_store *st, qg__pgconn **out);
int qg__pg_conn_take(qg_store *st, qg__pgconn **out, int *fresh);
void qg__pg_conn_give(qg_store *st, qg__pgconn *c);
void qg__pg_conn_free(qg__pgconn *c);
/* The store's id (qg_store_id()), as the chain's seal names it. */
int qg__pg_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1]);
int qg__pg_txn_begin(qg_store *st, int write, qg__txn *t);
void qg__pg_txn_abort(qg__txn *t);
/* A read transaction in REPEATABLE READ, for a cursor's snapshot. */
int qg__pg_snapshot(qg_store *st, qg__txn *t);
int qg__pg_txn_nest(qg__txn *parent, qg__txn *child);
int qg__pg_txn_nest_commit(qg__txn *child);
void qg__pg_txn_nest_abort(qg__txn *child);
/* A write transaction's chain entries, kept in its connection until
 * pg_chain.c appends them at its commit (qg__pg_chain_flush()); a
 * savepoint's are undone with it (mark when it is taken, undo when it is
 * rolled back). */
int qg__pg_chain_add(qg__txn *t, qg_chain_kind kind, int op, uint64_t ticket,
                     uint64_t ref, int64_t time_us, const unsigned char *leaf);
void qg__pg_chain_reset(qg__pgconn *c);
void qg__pg_chain_mark(qg__pgconn *c, int depth);
void qg__pg_chain_undo(qg__pgconn *c, int depth);
void qg__pg_chain_free(qg__pgconn *c);

/* pg.c */
int qg__pg_txn_commit(qg__txn *t);
int qg__pg_meta_get(qg__txn *t, const char *key, uint64_t *v);
int qg__pg_meta_put(qg__txn *t, const char *key, uint64_t v);

/* pg_rows.c */
int qg__pg_find_alias(qg__txn *t, qg_id_kind kind, int64_t id,
                      uint64_t *ticket);
int qg__pg_get_ticket(qg__txn *t, uint64_t ticket, qg__ticket_row *row);
int qg__pg_find_digest(qg__txn *t, const unsigned char *digest,
                       uint64_t *ticket, uint32_t *seq);
int qg__pg_put_ticket(qg__txn *t, const qg__ticket_row *row);
int qg__pg_load_path(qg__txn *t, uint64_t ticket, qg__path *path);
int qg__pg_move_record(qg__txn *t, uint64_t ticket, uint32_t seq, uint32_t pos,
                       qg_event ev, qg_state from, qg_state to, int late);
int qg__pg_accept(qg__txn *t, qg__ticket_row *row, qg__accepted *a);
int qg__pg_refuse(qg__txn *t, qg__ticket_row *row, const qg_rejection *rej,
                  uint64_t *id);
int qg__pg_source_find(qg__txn *t, const char *name, unsigned *index);
int qg__pg_source_add(qg__txn *t, const char *name, unsigned *index);
int qg__pg_source_read(qg__txn *t, unsigned index,
                       char out[QG_SOURCE_NAME_MAX + 1]);
int qg__pg_held_put(qg__txn *t, const qg__step *s, uint64_t ticket, qg_event ev,
                    qg_state from, uint64_t *id);
int qg__pg_held_find_digest(qg__txn *t, const unsigned char *digest,
                            uint64_t *id);
int qg__pg_held_any(qg__txn *t);
int qg__pg_held_get(qg__txn *t, uint64_t id, qg__step *s, qg_held *out);
int qg__pg_held_ids_for(qg__txn *t, qg_id_kind kind, int64_t chup_id,
                        uint64_t **ids, size_t *n);
int qg__pg_held_due(qg__txn *t, int64_t before_us, uint64_t **ids, size_t *n);
int qg__pg_held_delete(qg__txn *t, uint64_t id);
int qg__pg_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket,
                              uint32_t seq);
int qg__pg_rejections_dropped(qg_store *st, uint64_t *dropped);

#define QG__PG_TICKET_COLS                                                     \
    "id, state, flags, source, records, rejections, live_queue_id, "           \
    "appointment_id, last_event_ms, first_received_us, last_received_us, "     \
    "service_id, staff_id, appointment_date, appointment_time"
#define QG__PG_RECORD_COLS                                                     \
    "ticket, seq, received_us, event_ms, utc_offset_s, event, from_state, "    \
    "to_state, service_id, staff_id, digest, machine, pos, late, released, "   \
    "body, purged"
/* QG__PG_RECORD_COLS for QG_SUMMARY: the same places, with NULL (read as
 * 0 and empty) for what a summary clears, so that no body is sent. */
#define QG__PG_SUMMARY_COLS                                                    \
    "ticket, seq, NULL, event_ms, NULL, event, from_state, to_state, "         \
    "service_id, NULL, NULL, NULL, pos, late, released, NULL, purged"
#define QG__PG_HELD_COLS                                                       \
    "id, received_us, event_ms, utc_offset_s, rule, rule_event, "              \
    "by_appointment, updated, state_event, event, from_state, source, "        \
    "ticket, live_queue_id, appointment_id, service_id, staff_id, "            \
    "appointment_date, appointment_time, digest, chup_event, body"
#define QG__PG_REJECTION_COLS                                                  \
    "id, received_us, verdict, reason, event, from_state, ticket, "            \
    "live_queue_id, appointment_id, detail, body, received_len, truncated, "   \
    "whole_digest, resolved, resolved_us, resolved_ticket, resolved_seq, "     \
    "source, purged"

/* pg_read.c */
/*
 * A reader's cursor: a snapshot (qg__pg_snapshot()) and the rows of its
 * query, a batch at a time.  Each reader below, and the outbox's list,
 * keeps one and only says its query and how a row reads.  A row's
 * pointers (a body) live until the cursor's next call or close.
 */
typedef struct qg__pgcursor {
    qg__txn t; /* its snapshot */
    PGresult *batch;
    int at, n;    /* the next row of batch, and its rows */
    int declared; /* "qgc" is declared in t */
    int last;     /* the batch was the last */
} qg__pgcursor;
/* Begins k's snapshot, then, unless query is NULL, runs query in it
 * (qg__pg_cursor_query()); on error nothing is left open. */
int qg__pg_cursor_open(qg_store *st, qg__pgcursor *k, const char *query,
                       const qg__pgparams *p, int flags);
/* Declares a server-side cursor over query, fetched 500 rows at a time,
 * in place of k's query before; with QG__PG_WHOLE, runs query at once
 * instead, its rows one batch: for a list that stays short. */
int qg__pg_cursor_query(qg__pgcursor *k, const char *query,
                        const qg__pgparams *p, int flags);
#define QG__PG_WHOLE 0x1
/* The index in k->batch of the next row, fetched when needed; QG_NOTFOUND
 * past the last. */
int qg__pg_cursor_next(qg__pgcursor *k, int *row);
void qg__pg_cursor_close(qg__pgcursor *k);
int qg__pg_history_open(qg_store *st, uint64_t ticket, qg_order order,
                        qg_history **out);
int qg__pg_history_next(qg_history *h, qg_record *rec);
int qg__pg_history_ticket(qg_history *h, qg_ticket *out);
int qg__pg_history_seek(qg_history *h, uint32_t seq);
qg__txn *qg__pg_history_txn(qg_history *h);
void qg__pg_history_close(qg_history *h);
int qg__pg_tickets_open(qg_store *st, qg_tickets **out);
int qg__pg_tickets_next(qg_tickets *it, qg_ticket *out);
void qg__pg_tickets_close(qg_tickets *it);
int qg__pg_rejections_open(qg_store *st, uint64_t first, qg_rejections **out);
int qg__pg_rejections_open_ticket(qg_store *st, uint64_t ticket,
                                  qg_rejections **out);
int qg__pg_rejections_next(qg_rejections *rj, qg_rejection *out);
void qg__pg_rejections_close(qg_rejections *rj);
int qg__pg_held_open(qg_store *st, qg_held_list **out);
int qg__pg_held_next(qg_held_list *hl, qg_held *out);
void qg__pg_held_close(qg_held_list *hl);
int qg__pg_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us);
int qg__pg_counts(qg_store *st, qg_counts *out);

/* pg_chain.c: the hash chain.  A write transaction's entries wait in its
 * connection (qg__pg_chain_add(), pg_conn.c) and are appended at its
 * commit (flush, before COMMIT), under one lock for every gate.  The
 * leaves of rows read with QG__PG_CHAIN_STEP_COLS, QG__PG_REJECTION_COLS
 * and QG__PG_HELD_COLS: QG_ESTORE when a row is no longer a record. */
#define QG__PG_CHAIN_STEP_COLS                                                 \
    QG__PG_RECORD_COLS ", body_sha256, has_facts, rule, rule_event, "          \
                       "by_appointment, updated, state_event, "                \
                       "f_appointment_date, f_appointment_time"
int qg__pg_chain_flush(qg__pgconn *c);
int qg__pg_step_leaf(const PGresult *r, int i, unsigned char leaf[32]);
int qg__pg_rejection_leaf(const PGresult *r, int i, unsigned char leaf[32]);
int qg__pg_held_leaf(const PGresult *r, int i, unsigned char leaf[32]);
/* Chains every record of a database migrated to version 2, in c's open
 * transaction (pg.c's schema_setup()). */
int qg__pg_chain_migrate(qg__pgconn *c, uint64_t *records);
int qg__pg_chain_migrated(const qg_store *st, uint64_t *records);
int qg__pg_verify_chain(qg_store *st, const qg_seal *sealed,
                        qg_chain_finding *out);
/* qg_chain_step_hashes() of ticket as t's snapshot has it. */
int qg__pg_step_hashes(qg__txn *t, uint64_t ticket, uint32_t n,
                       unsigned char (*hashes)[QG_CHAIN_HASH_LEN]);
int qg__pg_seal(qg_store *st, const char *key_file, char *out, size_t len,
                char *err, size_t errlen);

/* pg_purge.c */
int qg__pg_purge(qg_store *st, int64_t before_us, qg_purge_stats *out);

/* pg_outbox.c */
int qg__pg_outbox_open(qg_store *st, int dead, qg_outbox **out);
int qg__pg_outbox_next(qg_outbox *ob, qg_outbox_entry *out);
void qg__pg_outbox_close(qg_outbox *ob);
int qg__pg_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                        uint64_t *dead);
int qg__pg_outbox_ack(qg_store *st, uint64_t id);
int qg__pg_outbox_defer(qg_store *st, uint64_t id, int64_t next_attempt_us,
                        const char *error);
int qg__pg_outbox_bury(qg_store *st, uint64_t id, const char *error);
int qg__pg_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved);
int qg__pg_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                         int64_t until_us, uint64_t *queued, uint64_t *waiting);
int qg__pg_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                        int64_t now_us, int64_t lease_us);

#endif /* QG_PG_INT_H */
