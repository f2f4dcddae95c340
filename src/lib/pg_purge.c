/*
 * pg_purge.c - qg_store_purge() on the PostgreSQL store: the LMDB store's
 * purge (purge.c), the same rules and counts.
 *
 * A step's body goes, its length and SHA-256 stay in the row (body_len,
 * body_sha256, purged); a refusal's body goes, and the length and SHA-256
 * of the delivery as received stay in received_len and whole_digest, as
 * a truncated refusal always kept them.  The hash chain's leaves cover
 * those digests, not the bodies (chain.c), so a purge appends no entry
 * and the chain still verifies.
 *
 * The work goes in write transactions of PURGE_BATCH rows each, one
 * statement each, so that the gates' commits wait at most for one batch.
 * A step still in the outbox or the dead list keeps its body (counted as
 * skipped): it has yet to be forwarded.  Rows another transaction holds
 * locked (a late step rewriting its followers) are passed over (SKIP
 * LOCKED) rather than waited for, so a purge never waits for a gate nor a
 * gate's rewrite for a purge; they are purged by the next run.
 *
 * A resend (pg_outbox.c) queues again steps that left the outbox, and so
 * must not interleave with a batch: the batch judges "still queued" by
 * its statement's snapshot, and a resend that commits after that
 * snapshot was taken queues a step whose body the batch then purges (the
 * HIS gets it with "chup": null).  The row locks do not order them: the
 * resend locks no history row, and what it holds COMMIT releases, maybe
 * before the batch comes to the row.  On LMDB one writer orders them.
 * Here a batch of steps and a resend take one advisory lock
 * (QG__PG_PURGE_LOCK), each as its transaction's first lock, and so wait
 * for it (qg__pg_lock()); the batch's statement is sent with the lock
 * and takes its snapshot once the lock is got, after the resend's
 * commit: a step a resend queued is skipped, or a step a batch purged is
 * resent purged, as on LMDB.  A batch of refusals takes no such lock:
 * nothing queues a refusal, and a replay (replay.c) copies a refusal's
 * body out in a read transaction before it writes, on both stores, so a
 * purge may come between the two on LMDB too.
 */
#include <string.h>

#include "pg_int.h"

#define PURGE_BATCH 2000

/* A rejection's sizes as the LMDB store counts them (pg_rows.c). */
#define REJ_EXTRA 48

typedef struct batch {
    int64_t before_us;
    int64_t ticket, seq, id; /* where the next batch begins (after) */
    int done;
    qg_purge_stats got;
} batch;

/*
 * The next PURGE_BATCH steps received before the time and not purged,
 * after (ticket, seq): those not queued purged, the queued counted.  The
 * last key examined says where the next batch begins.
 */
static int
history_batch(qg__txn *t, void *arg)
{
    batch *b = arg;
    qg__pgparams p = {0};
    PGresult *r;
    int rc;

    memset(&b->got, 0, sizeof(b->got));
    /* before the statement, which is sent with it: a resend under way
     * commits before the statement's snapshot is taken (above) */
    if ((rc = qg__pg_lock(t, QG__PG_PURGE_LOCK)))
        return rc;
    qg__pg_int(&p, b->before_us);
    qg__pg_int(&p, b->ticket);
    qg__pg_int(&p, b->seq);
    qg__pg_int(&p, PURGE_BATCH);
    if ((rc = qg__pg_exec(
             t->be,
             "WITH c AS (SELECT ticket, seq FROM qgate.history WHERE NOT "
             "purged AND received_us < $1::int8 AND (ticket, seq) > "
             "($2::int8, $3::int8) ORDER BY ticket, seq LIMIT $4::int8 FOR "
             "UPDATE SKIP LOCKED), "
             "q AS (SELECT c.ticket, c.seq, EXISTS (SELECT 1 FROM "
             "qgate.outbox o WHERE o.ticket = c.ticket AND o.seq = c.seq) OR "
             "EXISTS (SELECT 1 FROM qgate.dead d WHERE d.ticket = c.ticket "
             "AND d.seq = c.seq) AS queued FROM c), "
             "u AS (UPDATE qgate.history h SET purged = true, body_len = "
             "length(h.body), body_sha256 = pg_catalog.sha256(h.body), body "
             "= ''::bytea FROM q WHERE h.ticket = q.ticket AND h.seq = q.seq "
             "AND NOT q.queued RETURNING h.body_len) "
             "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM q WHERE "
             "queued), (SELECT count(*) FROM u), (SELECT coalesce(sum("
             "body_len), 0)::int8 FROM u), l.ticket, l.seq FROM (SELECT 1) AS "
             "one "
             "LEFT JOIN (SELECT ticket, seq FROM c ORDER BY ticket DESC, seq "
             "DESC LIMIT 1) AS l ON true",
             &p, &r)))
        return rc;
    b->done = qg__pg_get(r, 0, 0) < PURGE_BATCH;
    b->got.skipped = (uint64_t)qg__pg_get(r, 0, 1);
    b->got.records = (uint64_t)qg__pg_get(r, 0, 2);
    b->got.bytes = (uint64_t)qg__pg_get(r, 0, 3);
    if (!PQgetisnull(r, 0, 4)) {
        b->ticket = qg__pg_get(r, 0, 4);
        b->seq = qg__pg_get(r, 0, 5);
    }
    PQclear(r);
    return 0;
}

/*
 * The next PURGE_BATCH refusals with a body, received before the time and
 * not purged, after id.  As the LMDB store: the entry's stored size loses
 * its body and gains the truncation's fields if it was whole, and the
 * bound on unsigned entries counts that.
 */
static int
rejection_batch(qg__txn *t, void *arg)
{
    batch *b = arg;
    qg__pgparams p = {0};
    PGresult *r;
    uint64_t total;
    int64_t shrinks;
    int rc;

    memset(&b->got, 0, sizeof(b->got));
    qg__pg_int(&p, b->before_us);
    qg__pg_int(&p, b->id);
    qg__pg_int(&p, PURGE_BATCH);
    qg__pg_int(&p, REJ_EXTRA);
    qg__pg_int(&p, QG_UNAUTHENTICATED);
    qg__pg_int(&p, QG_MALFORMED);
    if ((rc = qg__pg_exec(
             t->be,
             "WITH c AS (SELECT id, length(body) AS was FROM qgate.rejections "
             "WHERE NOT purged AND length(body) > 0 AND received_us < $1::int8 "
             "AND id > $2::int8 ORDER BY id LIMIT $3::int8 FOR UPDATE SKIP "
             "LOCKED), "
             "u AS (UPDATE qgate.rejections j SET purged = true, "
             "whole_digest = CASE WHEN j.truncated THEN j.whole_digest ELSE "
             "pg_catalog.sha256(j.body) END, stored_bytes = j.stored_bytes - "
             "c.was + CASE WHEN j.truncated THEN 0 ELSE $4::int8 END, body = "
             "''::bytea FROM c WHERE j.id = c.id RETURNING j.verdict, "
             "j.truncated, c.was) "
             "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM u), "
             "(SELECT coalesce(sum(was), 0)::int8 FROM u), (SELECT "
             "coalesce(sum("
             "was - CASE WHEN truncated THEN 0 ELSE $4::int8 END), 0)::int8 "
             "FROM u "
             "WHERE verdict IN ($5::int8, $6::int8)), (SELECT max(id) FROM c)",
             &p, &r)))
        return rc;
    b->done = qg__pg_get(r, 0, 0) < PURGE_BATCH;
    b->got.rejections = (uint64_t)qg__pg_get(r, 0, 1);
    b->got.bytes = (uint64_t)qg__pg_get(r, 0, 2);
    shrinks = qg__pg_get(r, 0, 3);
    if (!PQgetisnull(r, 0, 4))
        b->id = qg__pg_get(r, 0, 4);
    PQclear(r);
    if (shrinks == 0)
        return 0;
    /* the bound on unsigned entries counts their bytes as stored */
    if ((rc = qg__pg_meta_get(t, "rejections_unsigned_bytes", &total)))
        return rc == QG_NOTFOUND ? 0 : rc;
    total = shrinks < 0                 ? total + (uint64_t)-shrinks
            : total > (uint64_t)shrinks ? total - (uint64_t)shrinks
                                        : 0;
    return qg__pg_meta_put(t, "rejections_unsigned_bytes", total);
}

static int
purge_all(qg_store *st, int (*fn)(qg__txn *, void *), batch *b,
          qg_purge_stats *total)
{
    int rc;

    b->done = 0;
    do {
        if ((rc = qg__store_write(st, fn, b)))
            return rc;
        total->records += b->got.records;
        total->rejections += b->got.rejections;
        total->bytes += b->got.bytes;
        total->skipped += b->got.skipped;
    } while (!b->done);
    return 0;
}

int
qg__pg_purge(qg_store *st, int64_t before_us, qg_purge_stats *out)
{
    qg_purge_stats total;
    batch b;
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    memset(&total, 0, sizeof(total));
    memset(&b, 0, sizeof(b));
    b.before_us = before_us;
    if ((rc = purge_all(st, history_batch, &b, &total)) == 0)
        rc = purge_all(st, rejection_batch, &b, &total);
    if (out)
        *out = total;
    return rc;
}
