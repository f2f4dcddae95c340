/*
 * store_api.c - the store's public functions: each checks the handle it is
 * given and passes the call to that handle's backend (store_ops.h).  The
 * functions built only on other operations (a ticket by any of its ids)
 * are here too, once for every backend.
 */
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"

/* A call to op of p's backend, or QG_ENOTSUP when it has none. */
#define CALL(p, op, ...)                                                       \
    (QG__OPS(p)->op ? QG__OPS(p)->op(__VA_ARGS__) : QG_ENOTSUP)

/* The backend a store path names: PostgreSQL for a connection URI, LMDB
 * for a directory. */
int
qg_store_is_postgresql(const char *path)
{
    return path && (strncmp(path, "postgresql://", 13) == 0 ||
                    strncmp(path, "postgres://", 11) == 0);
}

int
qg_store_open(const qg_store_options *opts, qg_store **out)
{
    int rc;

    if (out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if (opts == NULL || opts->path == NULL)
        return QG_EINVAL;
    if (qg_store_is_postgresql(opts->path))
        rc = qg__pg_open(opts, out);
    else if (opts->flags & QG_MIGRATE)
        return QG_ENOTSUP;
    else
        rc = qg__lmdb_open(opts, out);
    /* the backend's open reads no source name: the cache is made after */
    if (rc == 0)
        pthread_mutex_init(&QG__COMMON(*out)->names_lock, NULL);
    return rc;
}

void
qg_store_close(qg_store *st)
{
    if (st == NULL)
        return;
    pthread_mutex_destroy(&QG__COMMON(st)->names_lock);
    QG__OPS(st)->close(st);
}

const char *
qg_store_backend(const qg_store *st)
{
    return st ? QG__OPS(st)->name : NULL;
}

int
qg_store_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1])
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(st, id, st, out);
}

int
qg_store_probe(qg_store *st)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, probe, st);
}

int
qg_store_copy(qg_store *st, const char *dir)
{
    if (st == NULL || dir == NULL)
        return QG_EINVAL;
    return CALL(st, copy, st, dir);
}

int
qg_store_check(qg_store *st, char *detail, size_t dlen)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, check, st, detail, dlen);
}

/* ----- sources ---------------------------------------------------------- */

int
qg_store_has_source(qg_store *st, const char *name)
{
    unsigned index;
    qg__txn t;
    int rc;

    if (st == NULL ||
        (!qg__source_is_default(name) && qg_source_name_check(name)))
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = qg__source_index(&t, name, 0, &index);
    qg__txn_abort(&t);
    if (rc)
        return rc;
    return index != QG__SOURCE_UNSEEN;
}

int
qg_store_ticket(qg_store *st, qg_id_kind kind, int64_t id, qg_ticket *out)
{
    return qg_store_ticket_in(st, NULL, kind, id, out);
}

/* Source NULL: any source for a store's own ticket number, the default
 * source for Chup's ids (what qg_store_ticket() always did). */
int
qg_store_ticket_in(qg_store *st, const char *source, qg_id_kind kind,
                   int64_t id, qg_ticket *out)
{
    qg__ticket_row row;
    uint64_t ticket = (uint64_t)id;
    qg__txn t;
    int rc;

    if (st == NULL || out == NULL || id <= 0 || (unsigned)kind > 2 ||
        (source && strcmp(source, QG_SOURCE_DEFAULT) != 0 &&
         qg_source_name_check(source)))
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = qg__source_index(&t, source, 0, &t.source);
    if (rc == 0 && kind != QG_ID_TICKET)
        rc = qg__find_alias(&t, kind, id, &ticket);
    if (rc == 0 && (rc = qg__get_ticket(&t, ticket, &row)) == 0) {
        if (source && kind == QG_ID_TICKET && row.source != t.source) {
            rc = QG_NOTFOUND;
        } else {
            *out = row.t;
            qg__source_name(&t, row.source, out->source);
        }
    }
    qg__txn_abort(&t);
    return rc;
}

/* ----- cursors ---------------------------------------------------------- */

int
qg_history_open(qg_store *st, uint64_t ticket, qg_history **out)
{
    return qg_history_open_order(st, ticket, QG_EVENT_ORDER, out);
}

int
qg_history_open_order(qg_store *st, uint64_t ticket, qg_order order,
                      qg_history **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    return CALL(st, history_open, st, ticket, order, out);
}

int
qg_history_next(qg_history *h, qg_record *rec)
{
    if (h == NULL || rec == NULL)
        return QG_EINVAL;
    return CALL(h, history_next, h, rec);
}

int
qg_history_ticket(qg_history *h, qg_ticket *out)
{
    if (h == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(h, history_ticket, h, out);
}

int
qg_history_seek(qg_history *h, uint32_t seq)
{
    if (h == NULL)
        return QG_EINVAL;
    return CALL(h, history_seek, h, seq);
}

int
qg_history_step_hashes(qg_history *h, uint32_t n,
                       unsigned char (*hashes)[QG_CHAIN_HASH_LEN])
{
    qg_ticket t;
    int rc;

    if (h == NULL || hashes == NULL)
        return QG_EINVAL;
    /* the cursor's ticket, read once a ticket in its transaction */
    if ((rc = qg_history_ticket(h, &t)))
        return rc;
    return CALL(h, step_hashes, qg__history_txn(h), t.id, n, hashes);
}

void
qg_history_close(qg_history *h)
{
    if (h)
        QG__OPS(h)->history_close(h);
}

int
qg_tickets_open(qg_store *st, qg_tickets **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    return CALL(st, tickets_open, st, out);
}

int
qg_tickets_next(qg_tickets *it, qg_ticket *out)
{
    if (it == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(it, tickets_next, it, out);
}

void
qg_tickets_close(qg_tickets *it)
{
    if (it)
        QG__OPS(it)->tickets_close(it);
}

int
qg_rejections_open(qg_store *st, uint64_t first, qg_rejections **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    return CALL(st, rejections_open, st, first, out);
}

int
qg_rejections_open_ticket(qg_store *st, uint64_t ticket, qg_rejections **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if (ticket == 0)
        return QG_EINVAL;
    return CALL(st, rejections_open_ticket, st, ticket, out);
}

int
qg_rejections_next(qg_rejections *rj, qg_rejection *out)
{
    if (rj == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(rj, rejections_next, rj, out);
}

void
qg_rejections_close(qg_rejections *rj)
{
    if (rj)
        QG__OPS(rj)->rejections_close(rj);
}

int
qg_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket, uint32_t seq)
{
    if (st == NULL || id == 0)
        return QG_EINVAL;
    return CALL(st, rejections_resolve, st, id, ticket, seq);
}

int
qg_rejections_dropped(qg_store *st, uint64_t *dropped)
{
    if (st == NULL || dropped == NULL)
        return QG_EINVAL;
    return CALL(st, rejections_dropped, st, dropped);
}

int
qg_held_open(qg_store *st, qg_held_list **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    return CALL(st, held_open, st, out);
}

int
qg_held_next(qg_held_list *hl, qg_held *out)
{
    if (hl == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(hl, held_next, hl, out);
}

void
qg_held_close(qg_held_list *hl)
{
    if (hl)
        QG__OPS(hl)->held_close(hl);
}

int
qg_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, held_stats, st, count, oldest_us);
}

int
qg_store_counts(qg_store *st, qg_counts *out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(st, counts, st, out);
}

/* ----- the outbox ------------------------------------------------------- */

int
qg_outbox_open(qg_store *st, int dead, qg_outbox **out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    return CALL(st, outbox_open, st, dead, out);
}

int
qg_outbox_next(qg_outbox *ob, qg_outbox_entry *out)
{
    if (ob == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(ob, outbox_next, ob, out);
}

void
qg_outbox_close(qg_outbox *ob)
{
    if (ob)
        QG__OPS(ob)->outbox_close(ob);
}

int
qg_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                uint64_t *dead)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_stats, st, depth, oldest_us, dead);
}

int
qg_outbox_ack(qg_store *st, uint64_t id)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_ack, st, id);
}

int
qg_outbox_defer(qg_store *st, uint64_t id, int64_t next_attempt_us,
                const char *error)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_defer, st, id, next_attempt_us, error);
}

int
qg_outbox_bury(qg_store *st, uint64_t id, const char *error)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_bury, st, id, error);
}

int
qg_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_requeue, st, id, moved);
}

int
qg_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                 int64_t until_us, uint64_t *queued, uint64_t *waiting)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, outbox_resend, st, ticket, since_us, until_us, queued,
                waiting);
}

int
qg_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                int64_t now_us, int64_t lease_us)
{
    if (st == NULL || owner == NULL || ticket == 0 || lease_us <= 0 ||
        strlen(owner) > 63)
        return QG_EINVAL;
    return CALL(st, outbox_claim, st, ticket, owner, now_us, lease_us);
}

/* ----- retention and the audit chain ------------------------------------ */

int
qg_store_purge(qg_store *st, int64_t before_us, qg_purge_stats *out)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, purge, st, before_us, out);
}

int
qg_store_chain_migrated(const qg_store *st, uint64_t *records)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, chain_migrated, st, records);
}

int
qg_store_steps_built(const qg_store *st, uint64_t *records)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, steps_built, st, records);
}

int
qg_store_verify_chain(qg_store *st, const qg_seal *sealed,
                      qg_chain_finding *out)
{
    if (st == NULL || out == NULL)
        return QG_EINVAL;
    return CALL(st, verify_chain, st, sealed, out);
}

int
qg_chain_step_hashes(qg_store *st, uint64_t ticket, uint32_t n,
                     unsigned char (*hashes)[QG_CHAIN_HASH_LEN])
{
    qg__txn t;
    int rc;

    if (st == NULL || hashes == NULL)
        return QG_EINVAL;
    if (QG__OPS(st)->step_hashes == NULL)
        return QG_ENOTSUP;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = QG__OPS(st)->step_hashes(&t, ticket, n, hashes);
    qg__txn_abort(&t);
    return rc;
}

int
qg_store_seal(qg_store *st, const char *key_file, char *out, size_t len,
              char *err, size_t errlen)
{
    if (st == NULL)
        return QG_EINVAL;
    return CALL(st, seal, st, key_file, out, len, err, errlen);
}
