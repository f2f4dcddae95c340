/*
 * replay.c - deciding a refused delivery again: one way for the CLI's
 * `qgate rejected --replay` and the gate's POST /rejections/{id}/replay,
 * so that both mark the same entries resolved for the same reasons.
 *
 * Built on the public API only: the entry is read in a read transaction,
 * its body copied out and the cursor closed before anything is written
 * (a write that grows the map waits for this thread's cursors to end).
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"

int
qg_rejections_replay(qg_engine *eng, qg_store *st, uint64_t id, qg_result *res,
                     qg_replay *out)
{
    qg_rejections *log = NULL;
    qg_rejection r;
    char *body = NULL;
    size_t len = 0;
    int rc, passes;

    if (eng == NULL || st == NULL || res == NULL || out == NULL || id == 0)
        return QG_EINVAL;
    if ((rc = qg_rejections_open(st, id, &log)))
        return rc;
    /* The cursor starts at the first id at or after id: a dropped entry
     * reads as the next one. */
    if ((rc = qg_rejections_next(log, &r)) == 0 && r.id != id)
        rc = QG_NOTFOUND;
    if (rc)
        goto close_log;
    if (strcmp(r.source, qg_engine_source(eng)) != 0) {
        rc = QG_EINVAL; /* decided among another source's tickets */
        goto close_log;
    }
    if (r.resolved)
        *out = QG_REPLAY_RESOLVED;
    else if (r.truncated)
        *out = QG_REPLAY_TRUNCATED;
    else if (r.body == NULL && r.received_len)
        *out = QG_REPLAY_PURGED;
    else if ((body = malloc(r.body_len ? r.body_len : 1)) == NULL)
        rc = QG_ENOMEM;
    else {
        memcpy(body, r.body ? r.body : "", r.body_len);
        len = r.body_len;
        *out = QG_REPLAY_REFUSED;
    }
    qg_rejections_close(log);
    log = NULL;
    if (rc || body == NULL)
        goto free_body;
    rc = qg_engine_apply(eng, st, body, len, QG_DRY_RUN, res);
    if (rc == 0 && (res->verdict == QG_ACCEPTED || res->verdict == QG_IGNORED))
        rc = qg_engine_apply(eng, st, body, len, 0, res);
    /* A duplicate of a held delivery (seq 0) is not resolved yet: the
     * held one may still be refused. */
    passes =
        rc == 0 && (res->verdict == QG_ACCEPTED || res->verdict == QG_IGNORED ||
                    (res->verdict == QG_DUPLICATE && res->seq != 0));
    if (passes)
        rc = qg_rejections_resolve(st, id,
                                   res->verdict == QG_IGNORED ? 0 : res->ticket,
                                   res->verdict == QG_IGNORED ? 0 : res->seq);
    if (rc == 0 && passes)
        *out = QG_REPLAY_PASSED;
free_body:
    free(body);
close_log:
    qg_rejections_close(log);
    return rc;
}
