/*
 * pg_read.c - the PostgreSQL store's readers: histories, tickets, the
 * rejection log and held deliveries.
 *
 * Each cursor holds a REPEATABLE READ READ ONLY transaction, so that it
 * reads one snapshot as an LMDB read transaction does, and a server-side
 * cursor over its query, fetched FETCH_ROWS rows at a time: exporting
 * millions of records keeps one batch in memory.  The bodies a cursor
 * returns point into its batch: valid until its next call or close.
 * That cursor (qg__pgcursor, pg_int.h) is the outbox's list's too, which
 * takes its rows in one batch.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define FETCH_ROWS 500

int
qg__pg_cursor_open(qg_store *st, qg__pgcursor *k, const char *query,
                   const qg__pgparams *p, int flags)
{
    int rc;

    memset(k, 0, sizeof(*k));
    if ((rc = qg__pg_snapshot(st, &k->t)))
        return rc;
    if (query && (rc = qg__pg_cursor_query(k, query, p, flags)))
        qg__pg_cursor_close(k);
    return rc;
}

int
qg__pg_cursor_query(qg__pgcursor *k, const char *query, const qg__pgparams *p,
                    int flags)
{
    char sql[1024];
    int rc;

    if (k->declared) {
        if ((rc = qg__pg_exec(k->t.be, "CLOSE qgc", NULL, NULL)))
            return rc;
        k->declared = 0;
    }
    PQclear(k->batch);
    k->batch = NULL;
    k->at = k->n = 0;
    k->last = 0;
    if (flags & QG__PG_WHOLE) {
        /* The one batch, and the last: next never fetches. */
        if ((rc = qg__pg_exec(k->t.be, query, p, &k->batch)))
            return rc;
        k->n = PQntuples(k->batch);
        k->last = 1;
        return 0;
    }
    if ((size_t)snprintf(sql, sizeof(sql),
                         "DECLARE qgc NO SCROLL CURSOR FOR %s",
                         query) >= sizeof(sql))
        return QG_EINVAL;
    if ((rc = qg__pg_exec(k->t.be, sql, p, NULL)))
        return rc;
    k->declared = 1;
    return 0;
}

int
qg__pg_cursor_next(qg__pgcursor *k, int *row)
{
    int rc;

    if (k->at == k->n) {
        if (k->last || !k->declared)
            return QG_NOTFOUND;
        PQclear(k->batch);
        k->batch = NULL;
        k->at = k->n = 0;
        /* Asked in binary, like every statement (qg__pg_exec()). */
        if ((rc = qg__pg_exec(k->t.be, "FETCH 500 FROM qgc", NULL, &k->batch)))
            return rc;
        k->n = PQntuples(k->batch);
        k->last = k->n < FETCH_ROWS;
        if (k->n == 0)
            return QG_NOTFOUND;
    }
    *row = k->at++;
    return 0;
}

void
qg__pg_cursor_close(qg__pgcursor *k)
{
    PQclear(k->batch);
    k->batch = NULL;
    qg__pg_txn_abort(&k->t);
}

/* ----- histories -------------------------------------------------------- */

struct qg_history {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__pgcursor k;
    uint64_t ticket; /* 0: every ticket */
    qg_order order;
    int summary;       /* QG_SUMMARY: the whole rows, read as summaries */
    qg_ticket row;     /* ticket's, or the last returned record's */
    uint64_t returned; /* the ticket of the last record returned */
};

/* The history's queries: [QG_SUMMARY][every ticket][event order]. */
#define ONE_TICKET(cols, from)                                                 \
    "SELECT " cols " FROM qgate.history WHERE ticket = $1::int8 AND " from
#define EVERY_TICKET(cols, order)                                              \
    "SELECT " cols " FROM qgate.history ORDER BY ticket, " order
#define HISTORY_QUERIES(cols)                                                  \
    {                                                                          \
        {ONE_TICKET(cols, "seq >= $2::int8 ORDER BY seq"),                     \
         ONE_TICKET(cols, "pos >= $2::int8 ORDER BY pos, seq")},               \
        {                                                                      \
            EVERY_TICKET(cols, "seq"), EVERY_TICKET(cols, "pos, seq")          \
        }                                                                      \
    }
static const char *const history_query[2][2][2] = {
    HISTORY_QUERIES(QG__PG_RECORD_COLS), HISTORY_QUERIES(QG__PG_SUMMARY_COLS)};

/* Declares h's query from the record at pos (event order) or seq
 * (arrival order) from on. */
static int
history_from(qg_history *h, int64_t from)
{
    const char *q =
        history_query[h->summary][h->ticket == 0][h->order == QG_EVENT_ORDER];
    qg__pgparams p = {0};

    if (h->ticket == 0)
        return qg__pg_cursor_query(&h->k, q, NULL, 0);
    qg__pg_int(&p, (int64_t)h->ticket);
    qg__pg_int(&p, from);
    return qg__pg_cursor_query(&h->k, q, &p, 0);
}

int
qg__pg_history_open(qg_store *st, uint64_t ticket, qg_order order,
                    qg_history **out)
{
    qg__ticket_row row;
    qg_history *h;
    int rc;

    if ((order & ~QG_SUMMARY) != QG_EVENT_ORDER &&
        (order & ~QG_SUMMARY) != QG_ARRIVAL_ORDER)
        return QG_EINVAL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return QG_ENOMEM;
    h->ops = &qg__pg_ops;
    h->ticket = ticket;
    h->order = order & ~QG_SUMMARY;
    h->summary = (order & QG_SUMMARY) != 0;
    /* The snapshot first: the ticket is read in it, then the query. */
    if ((rc = qg__pg_cursor_open(st, &h->k, NULL, NULL, 0))) {
        free(h);
        return rc;
    }
    if (ticket && (rc = qg__pg_get_ticket(&h->k.t, ticket, &row)) == 0) {
        h->row = row.t;
        qg__source_name(&h->k.t, row.source, h->row.source);
    }
    if (rc == 0)
        rc = history_from(h, 0);
    if (rc) {
        qg__pg_history_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

int
qg__pg_history_next(qg_history *h, qg_record *rec)
{
    int row, rc;

    if ((rc = qg__pg_cursor_next(&h->k, &row)))
        return rc;
    qg__pg_record(h->k.batch, row, 0, rec);
    if (h->summary)
        qg__record_summary(rec);
    h->returned = rec->ticket;
    return 0;
}

int
qg__pg_history_ticket(qg_history *h, qg_ticket *out)
{
    qg__ticket_row row;
    int rc;

    if (h->ticket == 0 && h->returned == 0)
        return QG_EINVAL;
    if (h->ticket == 0 && h->row.id != h->returned) {
        if ((rc = qg__pg_get_ticket(&h->k.t, h->returned, &row)))
            return rc == QG_NOTFOUND ? QG_ESTORE : rc;
        h->row = row.t;
        qg__source_name(&h->k.t, row.source, h->row.source);
    }
    *out = h->row;
    return 0;
}

/* As the LMDB store's: in event order, from the step seq names (from the
 * start for seq 0 or 1 when there is none, else past the end); in arrival
 * order, from seq on. */
int
qg__pg_history_seek(qg_history *h, uint32_t seq)
{
    qg__pgparams p = {0};
    PGresult *r;
    int64_t from = seq;
    int rc;

    if (h->ticket == 0)
        return QG_EINVAL;
    if (h->order == QG_EVENT_ORDER) {
        qg__pg_int(&p, (int64_t)h->ticket);
        qg__pg_int(&p, seq);
        if ((rc = qg__pg_exec(h->k.t.be,
                              "SELECT pos FROM qgate.history WHERE ticket = "
                              "$1::int8 AND seq = $2::int8",
                              &p, &r)))
            return rc;
        if (PQntuples(r))
            from = qg__pg_get(r, 0, 0);
        else
            from = seq <= 1 ? 0 : INT64_MAX;
        PQclear(r);
    }
    return history_from(h, from);
}

qg__txn *
qg__pg_history_txn(qg_history *h)
{
    return &h->k.t;
}

void
qg__pg_history_close(qg_history *h)
{
    if (h == NULL)
        return;
    qg__pg_cursor_close(&h->k);
    free(h);
}

/* ----- tickets, newest first -------------------------------------------- */

struct qg_tickets {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__pgcursor k;
};

int
qg__pg_tickets_open(qg_store *st, qg_tickets **out)
{
    qg_tickets *it;
    int rc;

    if ((it = calloc(1, sizeof(*it))) == NULL)
        return QG_ENOMEM;
    it->ops = &qg__pg_ops;
    if ((rc = qg__pg_cursor_open(st, &it->k,
                                 "SELECT " QG__PG_TICKET_COLS
                                 " FROM qgate.tickets ORDER BY id DESC",
                                 NULL, 0))) {
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

int
qg__pg_tickets_next(qg_tickets *it, qg_ticket *out)
{
    qg__ticket_row row;
    int i, rc;

    if ((rc = qg__pg_cursor_next(&it->k, &i)))
        return rc;
    qg__pg_ticket_row(it->k.batch, i, 0, &row);
    *out = row.t;
    qg__source_name(&it->k.t, row.source, out->source);
    return 0;
}

void
qg__pg_tickets_close(qg_tickets *it)
{
    if (it == NULL)
        return;
    qg__pg_cursor_close(&it->k);
    free(it);
}

/* ----- the rejection log ------------------------------------------------ */

struct qg_rejections {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__pgcursor k;
};

/* The log's entries the query (of one int8 parameter, v) selects. */
static int
rejections_query(qg_store *st, const char *sql, uint64_t v, qg_rejections **out)
{
    qg__pgparams p = {0};
    qg_rejections *rj;
    int rc;

    if ((rj = calloc(1, sizeof(*rj))) == NULL)
        return QG_ENOMEM;
    rj->ops = &qg__pg_ops;
    qg__pg_int(&p, (int64_t)v);
    if ((rc = qg__pg_cursor_open(st, &rj->k, sql, &p, 0))) {
        free(rj);
        return rc;
    }
    *out = rj;
    return 0;
}

int
qg__pg_rejections_open(qg_store *st, uint64_t first, qg_rejections **out)
{
    return rejections_query(st,
                            "SELECT " QG__PG_REJECTION_COLS
                            " FROM qgate.rejections WHERE id >= $1::int8 "
                            "ORDER BY id",
                            first, out);
}

int
qg__pg_rejections_open_ticket(qg_store *st, uint64_t ticket,
                              qg_rejections **out)
{
    return rejections_query(st,
                            "SELECT " QG__PG_REJECTION_COLS
                            " FROM qgate.rejections WHERE ticket = $1::int8 "
                            "ORDER BY id",
                            ticket, out);
}

int
qg__pg_rejections_next(qg_rejections *rj, qg_rejection *out)
{
    int i, rc;

    if ((rc = qg__pg_cursor_next(&rj->k, &i)))
        return rc;
    qg__pg_rejection(rj->k.batch, i, 0, out);
    qg__source_name(&rj->k.t, (unsigned)qg__pg_get(rj->k.batch, i, 18),
                    out->source);
    return 0;
}

void
qg__pg_rejections_close(qg_rejections *rj)
{
    if (rj == NULL)
        return;
    qg__pg_cursor_close(&rj->k);
    free(rj);
}

/* ----- held deliveries -------------------------------------------------- */

struct qg_held_list {
    const qg__store_ops *ops; /* first: see store_ops.h */
    qg__pgcursor k;
};

int
qg__pg_held_open(qg_store *st, qg_held_list **out)
{
    qg_held_list *hl;
    int rc;

    if ((hl = calloc(1, sizeof(*hl))) == NULL)
        return QG_ENOMEM;
    hl->ops = &qg__pg_ops;
    if ((rc = qg__pg_cursor_open(st, &hl->k,
                                 "SELECT " QG__PG_HELD_COLS
                                 " FROM qgate.held ORDER BY id",
                                 NULL, 0))) {
        free(hl);
        return rc;
    }
    *out = hl;
    return 0;
}

int
qg__pg_held_next(qg_held_list *hl, qg_held *out)
{
    qg__step s;
    int i, rc;

    if ((rc = qg__pg_cursor_next(&hl->k, &i)))
        return rc;
    qg__pg_held(hl->k.batch, i, 0, &s, out);
    qg__source_name(&hl->k.t, s.source, out->source);
    return 0;
}

void
qg__pg_held_close(qg_held_list *hl)
{
    if (hl == NULL)
        return;
    qg__pg_cursor_close(&hl->k);
    free(hl);
}

int
qg__pg_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us)
{
    PGresult *r;
    qg__txn t;
    int rc;

    if ((rc = qg__pg_txn_begin(st, 0, &t)))
        return rc;
    rc = qg__pg_exec(t.be,
                     "SELECT count(*), coalesce(min(received_us), 0) FROM "
                     "qgate.held",
                     NULL, &r);
    if (rc == 0) {
        if (count)
            *count = (uint64_t)qg__pg_get(r, 0, 0);
        if (oldest_us)
            *oldest_us = qg__pg_get(r, 0, 1);
        PQclear(r);
    }
    qg__pg_txn_abort(&t);
    return rc;
}

/* ----- counts ----------------------------------------------------------- */

/* Counted by the tables, in the one statement's snapshot: a row of counts
 * would serialise every gate that writes the database. */
int
qg__pg_counts(qg_store *st, qg_counts *out)
{
    PGresult *r;
    qg__txn t;
    int64_t code, n;
    int i, rc;

    if ((rc = qg__pg_txn_begin(st, 0, &t)))
        return rc;
    rc = qg__pg_exec(t.be,
                     "SELECT 0, state, count(*) FROM qgate.tickets "
                     "WHERE records > 0 GROUP BY state UNION ALL "
                     "SELECT 1, reason, count(*) FROM qgate.rejections "
                     "GROUP BY reason",
                     NULL, &r);
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        for (i = 0; i < PQntuples(r); i++) {
            code = qg__pg_get(r, i, 1);
            n = qg__pg_get(r, i, 2);
            if (qg__pg_get(r, i, 0) == 0 && code >= 0 &&
                code < QG_STATE_COUNT) {
                out->states[code] = (uint64_t)n;
                out->tickets += (uint64_t)n;
            } else if (qg__pg_get(r, i, 0) == 1 && code >= 0 &&
                       code < QG_REASON_COUNT) {
                out->reasons[code] = (uint64_t)n;
                out->refused += (uint64_t)n;
            }
        }
        PQclear(r);
    }
    qg__pg_txn_abort(&t);
    return rc;
}
