/*
 * pg.c - the PostgreSQL store: the handle, its commit and its write
 * transactions, its schema and its table of operations.  It stands on
 * pg_conn.c (statements, connections, the other transaction primitives)
 * and on pg_chain.c, whose flush its commit calls; pg_chain.c stands on
 * pg_conn.c only.
 *
 * Several gates share one database: each is a store handle on the same
 * URI.  What LMDB's single writer gave for free is here the database's:
 * the engine's write transactions run in READ COMMITTED and take
 * transaction-scoped advisory locks on what they decide about (pg_rows.c
 * says which and why), and a write that conflicts with another gate's
 * (serialization failure 40001, deadlock 40P01, unique violation 23505)
 * is undone and run again from its start, a bounded number of times.
 *
 * The schema (created by the first qg_store_open() on an empty database,
 * under an advisory lock so that two gates starting together do not
 * race) is versioned by public.qgate_schema; everything else is in the
 * PostgreSQL schema "qgate", apart from the tables of the HIS that may
 * share the database.  docs/postgresql.md describes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "pg_int.h"

/* Runs of a write transaction before a conflict is given up as QG_EBUSY,
 * and the longest pause between two runs, in microseconds. */
#define WRITE_TRIES 32
#define BACKOFF_US  20000
/* The advisory lock of schema creation and migration (any fixed key). */
#define SCHEMA_LOCK "7160676174650001"

/* ----- transactions ----------------------------------------------------- */

int
qg__pg_txn_commit(qg__txn *t)
{
    qg__pgconn *c = t->be;
    PGresult *r;
    int rc;

    if (c == NULL)
        return QG_EINVAL;
    t->be = NULL;
    /* A lock must be got before COMMIT is sent: not got, it is a
     * conflict, and what was decided under it is undone.  Savepoints'
     * ends go with the COMMIT. */
    rc = qg__pg_send_locks(c);
    if (c->retry || rc) {
        /* a statement of it conflicted and was undone by a savepoint */
        rc = c->retry ? QG_EBUSY : rc;
        c->nlater = 0;
        qg__pg_exec(c, "ROLLBACK", NULL, NULL);
        qg__pg_conn_give(t->st, c);
        return rc;
    }
    /* The transaction's chain entries, last: see pg_chain.c */
    if ((rc = qg__pg_chain_flush(c))) {
        c->nlater = 0;
        qg__pg_exec(c, "ROLLBACK", NULL, NULL);
        qg__pg_conn_give(t->st, c);
        return rc;
    }
    rc = qg__pg_exec(c, "COMMIT", NULL, &r);
    /* A transaction that failed answers COMMIT with ROLLBACK. */
    if (rc == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = QG_ESTORE;
    PQclear(r);
    qg__pg_conn_give(t->st, c);
    return rc;
}

static void
backoff(int tries)
{
    unsigned max = 250u << (tries < 6 ? tries : 6), r;

    if (max > BACKOFF_US)
        max = BACKOFF_US;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (unsigned)clock();
    usleep(r % max);
}

static int
pg_write(qg_store *st, int (*fn)(qg__txn *, void *), void *arg)
{
    qg__txn t;
    int rc, tries, retry;

    if (st->flags & QG_RDONLY)
        return QG_ERDONLY;
    for (tries = 0; tries < WRITE_TRIES; tries++) {
        if ((rc = qg__pg_txn_begin(st, 1, &t)))
            return rc;
        rc = fn(&t, arg);
        retry = ((qg__pgconn *)t.be)->retry;
        if (rc == 0 && !retry) {
            if ((rc = qg__pg_txn_commit(&t)) != QG_EBUSY)
                return rc;
            continue;
        }
        qg__pg_txn_abort(&t);
        if (!retry)
            return rc > 0 ? 0 : rc;
        /* Another gate wrote what this one read, or holds what it needs:
         * decide again, from the store as it now is (a redelivery then
         * finds its digest), after a pause that grows and differs from
         * one gate to the other, so that they stop meeting. */
        backoff(tries);
    }
    return QG_EBUSY;
}

static int
pg_writable(const qg_store *st)
{
    return !(st->flags & QG_RDONLY);
}

static int
pg_probe(qg_store *st)
{
    qg__txn t;
    int rc;

    if (!pg_writable(st))
        return QG_EINVAL;
    if ((rc = qg__pg_txn_begin(st, 1, &t)))
        return rc;
    rc = qg__pg_exec(t.be, "SELECT 1", NULL, NULL);
    if (rc) {
        qg__pg_txn_abort(&t);
        return rc;
    }
    return qg__pg_txn_commit(&t);
}

/* ----- meta ------------------------------------------------------------- */

int
qg__pg_meta_get(qg__txn *t, const char *key, uint64_t *v)
{
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    qg__pg_text(&p, key);
    if ((rc = qg__pg_exec(
             t->be, "SELECT n FROM qgate.meta WHERE key = $1::text", &p, &r)))
        return rc;
    rc = PQntuples(r) ? 0 : QG_NOTFOUND;
    if (rc == 0)
        *v = (uint64_t)qg__pg_get(r, 0, 0);
    PQclear(r);
    return rc;
}

int
qg__pg_meta_put(qg__txn *t, const char *key, uint64_t v)
{
    qg__pgparams p = {0};

    qg__pg_text(&p, key);
    qg__pg_int(&p, (int64_t)v);
    return qg__pg_exec(t->be,
                       "INSERT INTO qgate.meta (key, n) VALUES ($1::text, "
                       "$2::int8) ON CONFLICT (key) DO UPDATE SET n = "
                       "EXCLUDED.n",
                       &p, NULL);
}

/* ----- the schema ------------------------------------------------------- */

/*
 * Version 1.  Integers are Unix microseconds (_us) or milliseconds (_ms)
 * as in the LMDB store, and the engine's codes (state, event, verdict,
 * reason) as qgate.h numbers them; qgate.state_names and event_names
 * name them, for the view.  Strings that come from deliveries and may
 * be cut mid-character (dates, Chup's event name, a refusal's detail)
 * are bytea: text would refuse them.
 */
static const char schema_v1[] =
    "CREATE SCHEMA IF NOT EXISTS qgate;"
    "CREATE TABLE qgate.meta (key text PRIMARY KEY, n bigint, b bytea);"
    "CREATE TABLE qgate.sources (num smallint PRIMARY KEY"
    "  CHECK (num > 0), name text NOT NULL UNIQUE);"
    "CREATE TABLE qgate.state_names (code smallint PRIMARY KEY,"
    "  name text NOT NULL);"
    "CREATE TABLE qgate.event_names (code smallint PRIMARY KEY,"
    "  name text NOT NULL);"
    "CREATE SEQUENCE qgate.ticket_ids;"
    "CREATE TABLE qgate.tickets (id bigint PRIMARY KEY,"
    "  state smallint NOT NULL, flags smallint NOT NULL,"
    "  source smallint NOT NULL, records integer NOT NULL,"
    "  rejections integer NOT NULL, live_queue_id bigint NOT NULL,"
    "  appointment_id bigint NOT NULL, last_event_ms bigint NOT NULL,"
    "  first_received_us bigint NOT NULL, last_received_us bigint NOT NULL,"
    "  service_id bigint NOT NULL, staff_id bigint NOT NULL,"
    "  appointment_date bytea NOT NULL, appointment_time bytea NOT NULL);"
    "CREATE TABLE qgate.aliases (source smallint NOT NULL,"
    "  kind smallint NOT NULL, chup_id bigint NOT NULL,"
    "  ticket bigint NOT NULL, PRIMARY KEY (source, kind, chup_id));"
    "CREATE TABLE qgate.history (ticket bigint NOT NULL,"
    "  seq integer NOT NULL, pos integer NOT NULL,"
    "  source smallint NOT NULL, received_us bigint NOT NULL,"
    "  event_ms bigint NOT NULL, utc_offset_s integer NOT NULL,"
    "  event smallint NOT NULL, from_state smallint NOT NULL,"
    "  to_state smallint NOT NULL, late boolean NOT NULL,"
    "  released boolean NOT NULL, service_id bigint NOT NULL,"
    "  staff_id bigint NOT NULL, digest bytea NOT NULL,"
    "  machine text NOT NULL, has_facts boolean NOT NULL,"
    "  rule smallint NOT NULL, rule_event smallint NOT NULL,"
    "  by_appointment boolean NOT NULL, updated boolean NOT NULL,"
    "  state_event smallint NOT NULL, f_appointment_date bytea NOT NULL,"
    "  f_appointment_time bytea NOT NULL, body bytea NOT NULL,"
    "  PRIMARY KEY (ticket, seq));"
    /* one payload is one step per source: the redelivery check */
    "CREATE UNIQUE INDEX history_digest ON qgate.history (source, digest);"
    "CREATE SEQUENCE qgate.rejection_ids;"
    "CREATE TABLE qgate.rejections (id bigint PRIMARY KEY,"
    "  received_us bigint NOT NULL, verdict smallint NOT NULL,"
    "  reason smallint NOT NULL, event smallint NOT NULL,"
    "  from_state smallint NOT NULL, ticket bigint NOT NULL,"
    "  live_queue_id bigint NOT NULL, appointment_id bigint NOT NULL,"
    "  source smallint NOT NULL, detail bytea NOT NULL, body bytea NOT NULL,"
    "  received_len bigint NOT NULL, truncated boolean NOT NULL,"
    "  whole_digest bytea, resolved boolean NOT NULL DEFAULT false,"
    "  resolved_us bigint NOT NULL DEFAULT 0,"
    "  resolved_ticket bigint NOT NULL DEFAULT 0,"
    "  resolved_seq integer NOT NULL DEFAULT 0,"
    "  stored_bytes bigint NOT NULL);"
    "CREATE SEQUENCE qgate.held_ids;"
    "CREATE TABLE qgate.held (id bigint PRIMARY KEY,"
    "  received_us bigint NOT NULL, event_ms bigint NOT NULL,"
    "  utc_offset_s integer NOT NULL, rule smallint NOT NULL,"
    "  rule_event smallint NOT NULL, by_appointment boolean NOT NULL,"
    "  updated boolean NOT NULL, state_event smallint NOT NULL,"
    "  event smallint NOT NULL, from_state smallint NOT NULL,"
    "  source smallint NOT NULL, ticket bigint NOT NULL,"
    "  live_queue_id bigint NOT NULL, appointment_id bigint NOT NULL,"
    "  service_id bigint NOT NULL, staff_id bigint NOT NULL,"
    "  appointment_date bytea NOT NULL, appointment_time bytea NOT NULL,"
    "  digest bytea NOT NULL, chup_event bytea NOT NULL, body bytea NOT NULL);"
    "CREATE INDEX held_by_live_queue ON qgate.held"
    "  (source, live_queue_id, event_ms, id) WHERE live_queue_id <> 0;"
    "CREATE INDEX held_by_appointment ON qgate.held"
    "  (source, appointment_id, event_ms, id) WHERE appointment_id <> 0;"
    "CREATE UNIQUE INDEX held_digest ON qgate.held (source, digest);"
    "CREATE SEQUENCE qgate.outbox_ids;"
    "CREATE TABLE qgate.outbox (id bigint PRIMARY KEY,"
    "  ticket bigint NOT NULL, seq integer NOT NULL,"
    "  attempts integer NOT NULL DEFAULT 0, created_us bigint NOT NULL,"
    "  next_attempt_us bigint NOT NULL, last_attempt_us bigint NOT NULL"
    "  DEFAULT 0, last_error bytea NOT NULL DEFAULT '',"
    "  gave_up_us bigint NOT NULL DEFAULT 0,"
    "  gave_up bytea NOT NULL DEFAULT '');"
    "CREATE TABLE qgate.dead (LIKE qgate.outbox INCLUDING ALL);"
    "CREATE TABLE qgate.claims (ticket bigint PRIMARY KEY,"
    "  owner text NOT NULL, until_us bigint NOT NULL);"
    "CREATE FUNCTION qgate.try_jsonb(b bytea) RETURNS jsonb"
    "  LANGUAGE plpgsql IMMUTABLE AS $f$"
    "  BEGIN RETURN convert_from(b, 'UTF8')::jsonb;"
    "  EXCEPTION WHEN others THEN RETURN NULL; END $f$;"
    "CREATE FUNCTION qgate.try_text(b bytea) RETURNS text"
    "  LANGUAGE plpgsql IMMUTABLE AS $f$"
    "  BEGIN RETURN convert_from(b, 'UTF8');"
    "  EXCEPTION WHEN others THEN RETURN NULL; END $f$;"
    "CREATE VIEW qgate.accepted_steps AS"
    "  SELECT h.ticket, coalesce(s.name, 'default') AS source,"
    "  t.live_queue_id, t.appointment_id, h.seq, h.pos,"
    "  e.name AS event, fs.name AS from_state, ts.name AS to_state,"
    "  to_timestamp(h.event_ms / 1000.0) AS event_time,"
    "  h.utc_offset_s,"
    "  to_timestamp(h.received_us / 1000000.0) AS received_time,"
    "  h.service_id, h.staff_id, h.late, h.released,"
    "  qgate.try_jsonb(h.body) AS body,"
    "  qgate.try_text(h.body) AS body_text"
    "  FROM qgate.history h JOIN qgate.tickets t ON t.id = h.ticket"
    "  LEFT JOIN qgate.sources s ON s.num = h.source"
    "  LEFT JOIN qgate.event_names e ON e.code = h.event"
    "  LEFT JOIN qgate.state_names fs ON fs.code = h.from_state"
    "  LEFT JOIN qgate.state_names ts ON ts.code = h.to_state;"
    "CREATE TABLE public.qgate_schema (version integer NOT NULL);"
    "INSERT INTO public.qgate_schema VALUES (1);"
    "INSERT INTO qgate.meta (key, n) VALUES"
    "  ('rejections_unsigned_bytes', 0), ('rejections_unsigned_first', 1),"
    "  ('rejections_dropped', 0);";

/*
 * Version 2: the hash chain (pg_chain.c) and purged bodies (pg_purge.c).
 * A purged step keeps its body's length and SHA-256 (body_len,
 * body_sha256) and an empty body; a purged refusal the length and SHA-256
 * of the delivery as received, in received_len and whole_digest, as a
 * truncated one always did.  The view's body and body_text are NULL for
 * a purged step, and it says which are (a column added at its end).
 * Every column added has a constant default: no table is rewritten.  The
 * log's entries are indexed by ticket (qg_rejections_open_ticket()).
 */
static const char schema_v2[] =
    "CREATE TABLE qgate.chain (n bigint PRIMARY KEY,"
    "  kind smallint NOT NULL, op smallint NOT NULL, ticket bigint NOT NULL,"
    "  ref bigint NOT NULL, time_us bigint NOT NULL,"
    "  ticket_prev bigint NOT NULL, leaf bytea NOT NULL,"
    "  ticket_prev_hash bytea NOT NULL, hash bytea NOT NULL);"
    "CREATE INDEX chain_by_ticket ON qgate.chain (ticket, n)"
    "  WHERE ticket <> 0;"
    "ALTER TABLE qgate.history ADD COLUMN purged boolean NOT NULL"
    "  DEFAULT false, ADD COLUMN body_len bigint, ADD COLUMN body_sha256 bytea;"
    "ALTER TABLE qgate.rejections ADD COLUMN purged boolean NOT NULL"
    "  DEFAULT false;"
    "CREATE INDEX rejections_by_ticket ON qgate.rejections (ticket, id)"
    "  WHERE ticket <> 0;"
    "CREATE OR REPLACE VIEW qgate.accepted_steps AS"
    "  SELECT h.ticket, coalesce(s.name, 'default') AS source,"
    "  t.live_queue_id, t.appointment_id, h.seq, h.pos,"
    "  e.name AS event, fs.name AS from_state, ts.name AS to_state,"
    "  to_timestamp(h.event_ms / 1000.0) AS event_time,"
    "  h.utc_offset_s,"
    "  to_timestamp(h.received_us / 1000000.0) AS received_time,"
    "  h.service_id, h.staff_id, h.late, h.released,"
    "  CASE WHEN h.purged THEN NULL ELSE qgate.try_jsonb(h.body) END AS body,"
    "  CASE WHEN h.purged THEN NULL ELSE qgate.try_text(h.body) END"
    "  AS body_text, h.purged"
    "  FROM qgate.history h JOIN qgate.tickets t ON t.id = h.ticket"
    "  LEFT JOIN qgate.sources s ON s.num = h.source"
    "  LEFT JOIN qgate.event_names e ON e.code = h.event"
    "  LEFT JOIN qgate.state_names fs ON fs.code = h.from_state"
    "  LEFT JOIN qgate.state_names ts ON ts.code = h.to_state;";

/* The statements that take version v - 1 to v, for v > 1. */
static const char *const migrations[QG__PG_SCHEMA_VERSION + 1] = {NULL, NULL,
                                                                  schema_v2};

/* Runs statements with no parameters and no results, several in one
 * string (the simple query protocol, which qg__pg_exec() does not use). */
static int
script(qg__pgconn *c, const char *sql)
{
    PGresult *r = PQexec(c->pg, sql);
    int rc = 0;

    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = PQstatus(c->pg) != CONNECTION_OK ? QG_EUNAVAIL : QG_ESTORE;
    PQclear(r);
    return rc;
}

/* Fills the tables of names from the library's own. */
static int
names(qg__pgconn *c)
{
    static const char *const sql[2] = {
        "INSERT INTO qgate.state_names VALUES ($1::int8, $2::text)",
        "INSERT INTO qgate.event_names VALUES ($1::int8, $2::text)"};
    const char *name;
    int i, k, rc;

    for (k = 0; k < 2; k++) {
        for (i = 0;; i++) {
            qg__pgparams p = {0};

            name = k ? qg_event_name((qg_event)i) : qg_state_name((qg_state)i);
            if (name == NULL)
                break;
            qg__pg_int(&p, i);
            qg__pg_text(&p, name);
            if ((rc = qg__pg_exec(c, sql[k], &p, NULL)))
                return rc;
        }
    }
    return 0;
}

static int
random_id(unsigned char id[16])
{
    size_t got = 0;
    ssize_t n;

    while (got < 16) {
        n = getrandom(id + got, 16 - got, 0);
        if (n < 0 && errno != EINTR)
            return QG_EIO;
        if (n > 0)
            got += (size_t)n;
    }
    return 0;
}

/* The schema's version, 0 when the database has none; in c's open
 * transaction, if any. */
static int
schema_version(qg__pgconn *c, int *version)
{
    PGresult *r;
    int rc;

    *version = 0;
    if ((rc = qg__pg_exec(c,
                          "SELECT to_regclass('public.qgate_schema') "
                          "IS NOT NULL",
                          NULL, &r)))
        return rc;
    rc = qg__pg_get(r, 0, 0) ? 1 : 0;
    PQclear(r);
    if (rc == 0)
        return 0;
    if ((rc = qg__pg_exec(c, "SELECT max(version) FROM public.qgate_schema",
                          NULL, &r)))
        return rc;
    *version = (int)qg__pg_get(r, 0, 0);
    PQclear(r);
    return *version > 0 ? 0 : QG_EFORMAT;
}

/* Creates the schema, or migrates it to this version (migrate set), in
 * one transaction under the schema's advisory lock; *from is the version
 * found, *chained the records the chain's migration chained. */
static int
schema_setup(qg__pgconn *c, int migrate, int *from, uint64_t *chained)
{
    qg__pgparams p = {0};
    unsigned char id[16];
    char sql[64];
    int rc, v;

    *chained = 0;
    if ((rc = qg__pg_exec(c, "BEGIN", NULL, NULL)))
        return rc;
    if ((rc = qg__pg_exec(c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")",
                          NULL, NULL)) ||
        (rc = schema_version(c, from)))
        goto abort;
    if (*from == 0) {
        if ((rc = random_id(id)))
            goto abort;
        qg__pg_bytes(&p, id, sizeof(id));
        if ((rc = script(c, schema_v1)) || (rc = names(c)) ||
            (rc = qg__pg_exec(c,
                              "INSERT INTO qgate.meta (key, b) VALUES "
                              "('store_id', $1::bytea)",
                              &p, NULL)))
            goto abort;
    }
    /* A new schema is made as version 1 and migrated like an old one:
     * the steps that take version 1 to this one are the only ones. */
    v = *from ? *from : 1;
    if ((migrate || *from == 0) && v < QG__PG_SCHEMA_VERSION) {
        for (v++; v <= QG__PG_SCHEMA_VERSION; v++) {
            if (migrations[v] == NULL) {
                rc = QG_EFORMAT;
                goto abort;
            }
            if ((rc = script(c, migrations[v])))
                goto abort;
            /* the records of a database from before the chain */
            if (v == 2 && (rc = qg__pg_chain_migrate(c, chained)))
                goto abort;
        }
        snprintf(sql, sizeof(sql),
                 "UPDATE public.qgate_schema SET version = %d",
                 QG__PG_SCHEMA_VERSION);
        if ((rc = qg__pg_exec(c, sql, NULL, NULL)))
            goto abort;
    }
    return qg__pg_exec(c, "COMMIT", NULL, NULL);
abort:
    qg__pg_exec(c, "ROLLBACK", NULL, NULL);
    return rc;
}

/* Reads the store's id, its outbox flag (set for good with QG_OUTBOX) and
 * its NOTIFY flag. */
static int
read_meta(qg_store *st, qg__pgconn *c)
{
    PGresult *r;
    int i, rc;

    if (!(st->flags & QG_RDONLY) && (st->flags & QG_OUTBOX) &&
        (rc = qg__pg_exec(c,
                          "INSERT INTO qgate.meta (key, n) VALUES "
                          "('outbox', 1) ON CONFLICT (key) DO NOTHING",
                          NULL, NULL)))
        return rc;
    if ((rc = qg__pg_exec(c,
                          "SELECT key, n, b FROM qgate.meta WHERE key IN "
                          "('store_id', 'outbox', 'notify')",
                          NULL, &r)))
        return rc;
    rc = QG_ESTORE; /* without an id */
    for (i = 0; i < PQntuples(r); i++) {
        const char *key = PQgetvalue(r, i, 0);

        if (strcmp(key, "store_id") == 0 && PQgetlength(r, i, 2) == 16) {
            memcpy(st->id, PQgetvalue(r, i, 2), 16);
            rc = 0;
        } else if (strcmp(key, "outbox") == 0 && qg__pg_get(r, i, 1)) {
            st->flags |= QG_OUTBOX;
        } else if (strcmp(key, "notify") == 0) {
            st->notify = qg__pg_get(r, i, 1) != 0;
        }
    }
    PQclear(r);
    return rc;
}

static void
pg_close(qg_store *st)
{
    qg__pgconn *c;

    if (st == NULL)
        return;
    while ((c = st->idle)) {
        st->idle = c->next;
        qg__pg_conn_free(c);
    }
    pthread_mutex_destroy(&st->lock);
    free(st->conninfo);
    free(st);
}

int
qg__pg_open(const qg_store_options *opts, qg_store **out)
{
    qg_store *st;
    qg__pgconn *c = NULL;
    int rc, from;

    *out = NULL;
    if ((opts->flags & ~(QG_RDONLY | QG_OUTBOX | QG_MIGRATE)) ||
        (opts->durability != QG_SYNC && opts->durability != QG_NOSYNC))
        return QG_EINVAL;
    if ((rc = qg__pq_load()))
        return rc;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return QG_ENOMEM;
    st->common.ops = &qg__pg_ops;
    st->flags = opts->flags;
    st->nosync = opts->durability == QG_NOSYNC;
    st->unsigned_log_max =
        opts->unsigned_log_max ? opts->unsigned_log_max : (size_t)64 << 20;
    pthread_mutex_init(&st->lock, NULL);
    if ((st->conninfo = strdup(opts->path)) == NULL) {
        rc = QG_ENOMEM;
        goto fail;
    }
    if ((rc = qg__pg_conn_new(st, &c)) ||
        (rc = schema_version(c, &st->version)))
        goto fail;
    if (st->version == 0 && (st->flags & QG_RDONLY)) {
        rc = QG_NOTFOUND;
        goto fail;
    }
    if (st->version == 0) {
        if ((rc = schema_setup(c, 0, &from, &st->chain_migrated)) ||
            (rc = schema_version(c, &st->version)))
            goto fail;
    }
    /* An older schema opens only to be migrated (qgate db migrate); a
     * newer one is another qgate's. */
    if (st->version > QG__PG_SCHEMA_VERSION ||
        (st->version < QG__PG_SCHEMA_VERSION && !(st->flags & QG_MIGRATE))) {
        rc = QG_EFORMAT;
        goto fail;
    }
    if (st->version == QG__PG_SCHEMA_VERSION && (rc = read_meta(st, c)))
        goto fail;
    qg__pg_conn_give(st, c);
    *out = st;
    return 0;
fail:
    qg__pg_conn_free(c);
    pg_close(st);
    return rc;
}

int
qg_store_migrate(qg_store *st, int *from, int *to)
{
    qg__pgconn *c;
    int rc, was, fresh;

    if (st == NULL)
        return QG_EINVAL;
    if (QG__OPS(st) != &qg__pg_ops)
        return QG_ENOTSUP;
    if (st->flags & QG_RDONLY)
        return QG_ERDONLY;
    if ((rc = qg__pg_conn_take(st, &c, &fresh)))
        return rc;
    rc = schema_setup(c, 1, &was, &st->chain_migrated);
    if (rc == 0 && (rc = schema_version(c, &st->version)) == 0 &&
        st->version == QG__PG_SCHEMA_VERSION)
        rc = read_meta(st, c);
    qg__pg_conn_give(st, c);
    if (rc)
        return rc;
    if (from)
        *from = was;
    if (to)
        *to = st->version;
    return 0;
}

const qg__store_ops qg__pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .id = qg__pg_id,
    .writable = pg_writable,
    .probe = pg_probe,
    .txn_begin = qg__pg_txn_begin,
    .txn_commit = qg__pg_txn_commit,
    .txn_abort = qg__pg_txn_abort,
    .txn_nest = qg__pg_txn_nest,
    .txn_nest_commit = qg__pg_txn_nest_commit,
    .txn_nest_abort = qg__pg_txn_nest_abort,
    .write = pg_write,
    .find_alias = qg__pg_find_alias,
    .get_ticket = qg__pg_get_ticket,
    .find_digest = qg__pg_find_digest,
    .put_ticket = qg__pg_put_ticket,
    .load_path = qg__pg_load_path,
    .move_record = qg__pg_move_record,
    .accept = qg__pg_accept,
    .refuse = qg__pg_refuse,
    .source_find = qg__pg_source_find,
    .source_add = qg__pg_source_add,
    .source_read = qg__pg_source_read,
    .held_put = qg__pg_held_put,
    .held_find_digest = qg__pg_held_find_digest,
    .held_any = qg__pg_held_any,
    .held_get = qg__pg_held_get,
    .held_ids_for = qg__pg_held_ids_for,
    .held_due = qg__pg_held_due,
    .held_delete = qg__pg_held_delete,
    .history_open = qg__pg_history_open,
    .history_next = qg__pg_history_next,
    .history_ticket = qg__pg_history_ticket,
    .history_seek = qg__pg_history_seek,
    .history_txn = qg__pg_history_txn,
    .history_close = qg__pg_history_close,
    .tickets_open = qg__pg_tickets_open,
    .tickets_next = qg__pg_tickets_next,
    .tickets_close = qg__pg_tickets_close,
    .rejections_open = qg__pg_rejections_open,
    .rejections_open_ticket = qg__pg_rejections_open_ticket,
    .rejections_next = qg__pg_rejections_next,
    .rejections_close = qg__pg_rejections_close,
    .rejections_resolve = qg__pg_rejections_resolve,
    .rejections_dropped = qg__pg_rejections_dropped,
    .held_open = qg__pg_held_open,
    .held_next = qg__pg_held_next,
    .held_close = qg__pg_held_close,
    .held_stats = qg__pg_held_stats,
    .counts = qg__pg_counts,
    .outbox_open = qg__pg_outbox_open,
    .outbox_next = qg__pg_outbox_next,
    .outbox_close = qg__pg_outbox_close,
    .outbox_stats = qg__pg_outbox_stats,
    .outbox_ack = qg__pg_outbox_ack,
    .outbox_defer = qg__pg_outbox_defer,
    .outbox_bury = qg__pg_outbox_bury,
    .outbox_requeue = qg__pg_outbox_requeue,
    .outbox_resend = qg__pg_outbox_resend,
    .outbox_claim = qg__pg_outbox_claim,
    .purge = qg__pg_purge,
    .chain_migrated = qg__pg_chain_migrated,
    .verify_chain = qg__pg_verify_chain,
    .step_hashes = qg__pg_step_hashes,
    .seal = qg__pg_seal,
};
