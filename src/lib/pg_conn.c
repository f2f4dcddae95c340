/*
 * pg_conn.c - the PostgreSQL store's connections: statements on a
 * connection (prepared, and pipelined with those sent later), the
 * handle's pool of connections, and the transactions and savepoints that
 * hold one, with the chain entries a write transaction carries to its
 * commit.  The lowest layer of the store: pg_chain.c appends those
 * entries with its statements, and pg.c commits.
 *
 * Connections: a transaction takes one from the handle's pool (or opens
 * one) and gives it back at commit or abort, so that the gate's HTTP
 * threads read while its committer writes.  A connection that fails is
 * closed instead of given back, and the next transaction opens another:
 * the store reconnects by itself.  A failure of the connection is
 * QG_EUNAVAIL, with nothing committed; so is a COMMIT whose answer was
 * lost, whose outcome is unknown: the delivery is then refused with 503
 * and Chup's retry is found to be a duplicate if it had committed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* ----- statements ------------------------------------------------------- */

/* The SQLSTATEs of a conflict with another transaction: run again. */
static int
is_conflict(const char *state)
{
    return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
           strcmp(state, "23505") == 0;
}

/* What a failed statement means, c->broken or c->retry set as it says. */
static int
failure(qg__pgconn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(c->pg) != CONNECTION_OK || state == NULL ||
        strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strcmp(state, "26000") == 0) {
        /* lost, or the server is shutting down, or the connection's
         * prepared statements are gone (a pooler's DISCARD ALL): the
         * connection goes, and the next one prepares its own */
        c->broken = 1;
        return QG_EUNAVAIL;
    }
    if (is_conflict(state)) {
        c->retry = 1;
        return QG_EBUSY;
    }
    if (strcmp(state, "25006") == 0)
        return QG_ERDONLY;
    if (strcmp(state, "53100") == 0)
        return QG_EFULL;
    return QG_ESTORE;
}

static int
succeeded(const PGresult *r)
{
    ExecStatusType status = PQresultStatus(r);

    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/* FNV-1a of a statement's text: its key among the prepared ones. */
static uint64_t
text_hash(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* A prepared statement's name: "qg" and the hash of its text, so that a
 * name means one text on every connection of every gate.  A pooler that
 * hands a session's statements to another (PgBouncer before 1.21 in
 * transaction mode) then runs the right one or none (26000: failure()),
 * never another statement under a name it reuses. */
static void
stmt_name(uint64_t h, char name[24])
{
    snprintf(name, 24, "qg%016" PRIx64, h);
}

/* The index of sql's prepared statement on c, or -1; *room (room may be
 * NULL) the slot a new one would take, -1 when c has QG__PG_STMTS. */
static int
lookup(const qg__pgconn *c, const char *sql, uint64_t h, int *room)
{
    int i, free_slot = -1;

    for (i = 0; i < c->nstmts; i++) {
        if (c->stmts[i].sql == NULL) {
            if (free_slot < 0)
                free_slot = i;
        } else if (c->stmts[i].hash == h && strcmp(c->stmts[i].sql, sql) == 0) {
            return i;
        }
    }
    if (room)
        *room = free_slot >= 0             ? free_slot
                : c->nstmts < QG__PG_STMTS ? c->nstmts
                                           : -1;
    return -1;
}

/* One statement of a pipeline. */
typedef struct item {
    const char *sql;
    const qg__pgparams *p;
    int test; /* qg__pglater.test */
    int stmt; /* c->stmts[stmt], or -1: parsed as it runs */
    int prep; /* its Parse is sent first, in the same pipeline */
} item;

/* Sends one statement, and first its Parse when it is new to c (unless c
 * has QG__PG_STMTS already); 0 when the connection failed. */
static int
send_item(qg__pgconn *c, item *it)
{
    const qg__pgparams *p = it->p;
    uint64_t h = text_hash(it->sql);
    char name[24];
    int room;

    it->prep = 0;
    it->stmt = -1;
    if ((it->stmt = lookup(c, it->sql, h, &room)) < 0 && room >= 0 &&
        (c->stmts[room].sql = strdup(it->sql)) != NULL) {
        c->stmts[room].hash = h;
        if (room == c->nstmts)
            c->nstmts++;
        it->stmt = room;
        it->prep = 1;
    }
    if (it->stmt < 0)
        return PQsendQueryParams(c->pg, it->sql, p ? p->n : 0, NULL,
                                 p ? p->v : NULL, p ? p->len : NULL,
                                 p ? p->fmt : NULL, 1);
    stmt_name(h, name);
    if (it->prep && !PQsendPrepare(c->pg, name, it->sql, 0, NULL))
        return 0;
    return PQsendQueryPrepared(c->pg, name, p ? p->n : 0, p ? p->v : NULL,
                               p ? p->len : NULL, p ? p->fmt : NULL, 1);
}

/* One answer of a pipeline, read up to the NULL that ends it; NULL when
 * the connection failed. */
static PGresult *
answer(qg__pgconn *c)
{
    PGresult *r = PQgetResult(c->pg), *more;

    while (r && (more = PQgetResult(c->pg)) != NULL)
        PQclear(more); /* one statement, one result: cannot happen */
    return r;
}

/* A statement's one result: *res, or its failure. */
static int
settle(qg__pgconn *c, PGresult *r, PGresult **res)
{
    int rc;

    if (r && succeeded(r)) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return 0;
    }
    rc = failure(c, r);
    PQclear(r);
    return rc;
}

/*
 * Runs c's later statements, then sql (NULL: the later ones only), in
 * one round trip: libpq's pipeline mode, in order, a failure skipping
 * what follows it as it would one statement at a time.  A statement new
 * to c is prepared in the same pipeline, just before it runs: PostgreSQL
 * then parses it once per connection, and may plan it once.  Every
 * statement qgate runs is a literal, or built from a few fixed pieces
 * (savepoints by depth, to_dead()'s two WHEREs): the texts c prepares
 * are few, and keyed by text, not by pointer, so a text built in a
 * buffer is safe.
 */
static int
run(qg__pgconn *c, const char *sql, const qg__pgparams *p, PGresult **res)
{
    item items[QG__PG_LATER + 1];
    qg__pgparams keys[QG__PG_LATER];
    PGresult *r;
    char name[24];
    uint64_t h;
    int i, n = 0, rc = 0;

    for (i = 0; i < c->nlater; i++) {
        const qg__pglater *l = &c->later[i];

        keys[i].n = 0;
        if (l->has_key)
            qg__pg_int(&keys[i], l->key);
        items[n++] =
            (item){l->sql, l->has_key ? &keys[i] : NULL, l->test, -1, 0};
    }
    c->nlater = 0;
    if (sql)
        items[n++] = (item){sql, p, 0, -1, 0};
    if (n == 0)
        return 0;
    if (c->broken)
        return QG_EUNAVAIL;
    if (n == 1 && sql && lookup(c, sql, h = text_hash(sql), NULL) >= 0) {
        /* alone, and prepared already */
        stmt_name(h, name);
        r = PQexecPrepared(c->pg, name, p ? p->n : 0, p ? p->v : NULL,
                           p ? p->len : NULL, p ? p->fmt : NULL, 1);
        return settle(c, r, res);
    }
    if (!PQenterPipelineMode(c->pg))
        goto lost;
    for (i = 0; i < n; i++)
        if (!send_item(c, &items[i]))
            goto lost;
    if (!PQpipelineSync(c->pg))
        goto lost;
    for (i = 0; i < n; i++) {
        if (items[i].prep) {
            if ((r = answer(c)) == NULL)
                goto lost;
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                /* not prepared: the next use prepares it afresh */
                free(c->stmts[items[i].stmt].sql);
                c->stmts[items[i].stmt].sql = NULL;
                if (rc == 0)
                    rc = failure(c, r);
            }
            PQclear(r);
        }
        if ((r = answer(c)) == NULL)
            goto lost;
        if (rc == 0 && !succeeded(r)) {
            rc = failure(c, r);
        } else if (rc == 0 && items[i].test && qg__pg_get(r, 0, 0) == 0) {
            c->retry = 1; /* another transaction has the lock */
            rc = QG_EBUSY;
        } else if (rc == 0 && sql && i == n - 1 && res) {
            *res = r;
            r = NULL;
        }
        PQclear(r);
    }
    r = PQgetResult(c->pg);
    i = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (!i || !PQexitPipelineMode(c->pg))
        goto lost;
    return rc;
lost:
    if (res) {
        PQclear(*res);
        *res = NULL;
    }
    c->broken = 1;
    return QG_EUNAVAIL;
}

int
qg__pg_exec(qg__pgconn *c, const char *sql, const qg__pgparams *p,
            PGresult **res)
{
    if (res)
        *res = NULL;
    if (c->broken)
        return QG_EUNAVAIL;
    return run(c, sql, p, res);
}

/* Queues a statement, sql (static) or text (copied), to be sent with the
 * next one (run()). */
static int
later(qg__pgconn *c, const char *sql, const char *text, int has_key,
      int64_t key, int test)
{
    qg__pglater *l;
    int rc;

    if (c->broken)
        return QG_EUNAVAIL;
    if (c->nlater == QG__PG_LATER && (rc = run(c, NULL, NULL, NULL)))
        return rc;
    l = &c->later[c->nlater++];
    if (text) {
        snprintf(l->text, sizeof(l->text), "%s", text);
        sql = l->text;
    }
    l->sql = sql;
    l->has_key = has_key;
    l->key = key;
    l->test = test;
    return 0;
}

int
qg__pg_later(qg__pgconn *c, const char *sql)
{
    return later(c, sql, NULL, 0, 0, 0);
}

/* Whether a lock waits among c's later statements. */
static int
lock_later(const qg__pgconn *c)
{
    int i;

    for (i = 0; i < c->nlater; i++)
        if (c->later[i].has_key)
            return 1;
    return 0;
}

/*
 * A transaction waits for a lock only while it holds none: then it
 * cannot be part of a deadlock.  Holding some, it only tries, and when
 * another transaction has the lock it gives up as a conflict: undone,
 * its locks released, it runs again from its start (pg_write()).  Left
 * to PostgreSQL, gates whose batches take the same locks in different
 * orders would deadlock, and wait deadlock_timeout (1 s) each time.
 */
int
qg__pg_lock(qg__txn *t, int64_t key)
{
    qg__pgconn *c = t->be;
    int first;

    if (!c->write)
        return 0;
    /* Sent with the statement that follows, the one that reads what the
     * lock guards: that statement runs once the lock is got, and sees
     * what the lock's last holder committed.  A lock tried and not got
     * is that statement's QG_EBUSY. */
    first = c->locks++ == 0;
    return later(c,
                 first ? "SELECT pg_advisory_xact_lock($1::int8)"
                       : "SELECT pg_try_advisory_xact_lock($1::int8)",
                 NULL, 1, key, !first);
}

int
qg__pg_send_locks(qg__pgconn *c)
{
    return lock_later(c) ? run(c, NULL, NULL, NULL) : 0;
}

/* ----- connections ------------------------------------------------------ */

/* libpq prints the server's notices to stderr; the library prints
 * nothing. */
static void
quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

void
qg__pg_conn_free(qg__pgconn *c)
{
    int i;

    if (c == NULL)
        return;
    PQclear(c->kept);
    qg__pg_chain_free(c);
    PQfinish(c->pg);
    for (i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    free(c);
}

/* A new connection, set up for the store's sessions. */
int
qg__pg_conn_new(qg_store *st, qg__pgconn **out)
{
    qg__pgconn *c;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return QG_ENOMEM;
    c->pg = PQconnectdb(st->conninfo);
    if (c->pg == NULL) {
        free(c);
        return QG_ENOMEM;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        qg__pg_conn_free(c);
        return QG_EUNAVAIL;
    }
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    /* QG_NOSYNC: a commit returns before its WAL is flushed; a crash of
     * the server may lose the last commits, never corrupt. */
    if (qg__pg_exec(c,
                    st->nosync ? "SET synchronous_commit = off"
                               : "SET synchronous_commit = on",
                    NULL, NULL)) {
        qg__pg_conn_free(c);
        return QG_EUNAVAIL;
    }
    *out = c;
    return 0;
}

/* A connection from the pool, or a new one; fresh says which. */
int
qg__pg_conn_take(qg_store *st, qg__pgconn **out, int *fresh)
{
    pthread_mutex_lock(&st->lock);
    *out = st->idle;
    if (*out)
        st->idle = (*out)->next;
    pthread_mutex_unlock(&st->lock);
    *fresh = *out == NULL;
    if (*out) {
        (*out)->next = NULL;
        return 0;
    }
    return qg__pg_conn_new(st, out);
}

void
qg__pg_conn_give(qg_store *st, qg__pgconn *c)
{
    PQclear(c->kept);
    c->kept = NULL;
    c->retry = 0;
    c->depth = 0;
    c->write = 0;
    c->locks = 0;
    c->nlater = 0;
    qg__pg_chain_reset(c);
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        qg__pg_conn_free(c);
        return;
    }
    pthread_mutex_lock(&st->lock);
    c->next = st->idle;
    st->idle = c;
    pthread_mutex_unlock(&st->lock);
}

/* ----- transactions ----------------------------------------------------- */

static int
begin(qg_store *st, qg__txn *t, int write, const char *sql)
{
    qg__pgconn *c;
    int rc, fresh;

    t->st = st;
    t->txn = NULL;
    t->be = NULL;
    t->source = 0;
    if (write && (st->flags & QG_RDONLY))
        return QG_ERDONLY;
    if (st->version != QG__PG_SCHEMA_VERSION)
        return QG_EFORMAT;
    /* Pooled connections may have died while idle (the server
     * restarted): each is dropped, until a fresh one answers or not. */
    for (;;) {
        if ((rc = qg__pg_conn_take(st, &c, &fresh)))
            return rc;
        c->write = write;
        if ((rc = qg__pg_exec(c, sql, NULL, NULL)) == 0) {
            t->be = c;
            return 0;
        }
        qg__pg_conn_give(st, c);
        if (rc != QG_EUNAVAIL || fresh)
            return rc;
    }
}

int
qg__pg_txn_begin(qg_store *st, int write, qg__txn *t)
{
    /* READ COMMITTED for writes: each statement sees what other gates
     * committed before it, which is what the advisory locks rely on. */
    return begin(st, t, write,
                 write ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                       : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

int
qg__pg_snapshot(qg_store *st, qg__txn *t)
{
    return begin(st, t, 0, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

void
qg__pg_txn_abort(qg__txn *t)
{
    qg__pgconn *c = t->be;

    if (c == NULL)
        return;
    t->be = NULL;
    c->nlater = 0; /* undone anyway */
    if (!c->broken)
        qg__pg_exec(c, "ROLLBACK", NULL, NULL);
    qg__pg_conn_give(t->st, c);
}

/* SAVEPOINT (how 0), RELEASE (1) or ROLLBACK TO and RELEASE (2) of the
 * savepoint of depth: sent with the next statement (qg__pg_exec()), as
 * nothing waits for their answers.  Only a lost connection (or a
 * transaction failed already) fails them, and the next statement says
 * so: what the savepoint held is then undone with the transaction. */
static int
nest_sql(qg__pgconn *c, int how, int depth)
{
    char sql[40];
    int rc;

    if (how == 0)
        snprintf(sql, sizeof(sql), "SAVEPOINT qg%d", depth);
    else if (how == 1)
        snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT qg%d", depth);
    else
        snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT qg%d", depth);
    if ((rc = later(c, NULL, sql, 0, 0, 0)) || how < 2)
        return rc;
    snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT qg%d", depth);
    return later(c, NULL, sql, 0, 0, 0);
}

int
qg__pg_txn_nest(qg__txn *parent, qg__txn *child)
{
    qg__pgconn *c = parent->be;
    int rc;

    child->st = parent->st;
    child->txn = NULL;
    child->be = NULL;
    child->source = parent->source;
    /* After a conflict the whole transaction runs again: going on with
     * the next delivery of a batch would only be undone. */
    if (c->retry)
        return QG_EBUSY;
    if ((rc = nest_sql(c, 0, c->depth + 1)))
        return rc;
    c->depth++;
    qg__pg_chain_mark(c, c->depth);
    child->be = c;
    return 0;
}

int
qg__pg_txn_nest_commit(qg__txn *child)
{
    qg__pgconn *c = child->be;
    int rc;

    if (c == NULL)
        return QG_EINVAL;
    child->be = NULL;
    rc = nest_sql(c, 1, c->depth);
    c->depth--;
    return rc;
}

void
qg__pg_txn_nest_abort(qg__txn *child)
{
    qg__pgconn *c = child->be;

    if (c == NULL)
        return;
    child->be = NULL;
    nest_sql(c, 2, c->depth);
    qg__pg_chain_undo(c, c->depth);
    c->depth--;
}

/* ----- chain entries waiting for the commit ----------------------------- */

static struct qg__pgchain *
chain_of(qg__pgconn *c)
{
    if (c->chain == NULL)
        c->chain = calloc(1, sizeof(*c->chain));
    return c->chain;
}

int
qg__pg_chain_add(qg__txn *t, qg_chain_kind kind, int op, uint64_t ticket,
                 uint64_t ref, int64_t time_us, const unsigned char *leaf)
{
    struct qg__pgchain *ch = chain_of(t->be);
    qg__pgpending *p;

    if (ch == NULL)
        return QG_ENOMEM;
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 64;

        if ((p = realloc(ch->e, cap * sizeof(*p))) == NULL)
            return QG_ENOMEM;
        ch->e = p;
        ch->cap = cap;
    }
    p = &ch->e[ch->n++];
    memset(p, 0, sizeof(*p));
    p->kind = (unsigned char)kind;
    p->op = (unsigned char)op;
    p->ticket = ticket;
    p->ref = ref;
    p->time_us = time_us;
    if (leaf) {
        p->has_leaf = 1;
        memcpy(p->leaf, leaf, QG_CHAIN_HASH_LEN);
    }
    return 0;
}

void
qg__pg_chain_reset(qg__pgconn *c)
{
    if (c->chain)
        c->chain->n = 0;
}

void
qg__pg_chain_mark(qg__pgconn *c, int depth)
{
    struct qg__pgchain *ch = chain_of(c);
    size_t *m;

    /* Without memory the savepoint's entries cannot be told apart: the
     * undo then keeps them, and verify would say so; never seen. */
    if (ch == NULL || depth < 0)
        return;
    if (depth >= ch->nmarks) {
        if ((m = realloc(ch->marks, (size_t)(depth + 8) * sizeof(*m))) == NULL)
            return;
        ch->marks = m;
        ch->nmarks = depth + 8;
    }
    ch->marks[depth] = ch->n;
}

void
qg__pg_chain_undo(qg__pgconn *c, int depth)
{
    struct qg__pgchain *ch = c->chain;

    if (ch && depth >= 0 && depth < ch->nmarks && ch->marks[depth] <= ch->n)
        ch->n = ch->marks[depth];
}

void
qg__pg_chain_free(qg__pgconn *c)
{
    if (c->chain == NULL)
        return;
    free(c->chain->e);
    free(c->chain->marks);
    free(c->chain);
    c->chain = NULL;
}

/* ----- the handle ------------------------------------------------------- */

int
qg__pg_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    /* opened to be migrated: the id is read once the schema is current */
    if (st->version != QG__PG_SCHEMA_VERSION)
        return QG_EFORMAT;
    for (i = 0; i < sizeof(st->id); i++) {
        out[2 * i] = hex[st->id[i] >> 4];
        out[2 * i + 1] = hex[st->id[i] & 15];
    }
    out[QG_STORE_ID_LEN] = '\0';
    return 0;
}
