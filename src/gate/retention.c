/*
 * retention.c - serve --retention DAYS: the raw bodies of steps and
 * refusals older than DAYS are purged once at start, then every 24 hours
 * (qg_store_purge(), in its own thread).
 *
 * Its own thread rather than the committer's tick: a purge of a large
 * store takes many transactions, and deliveries must not wait behind
 * them.  qg_store_purge() takes the writer's lock a batch at a time, so
 * the committer's commits slip in between.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"

#define DAY_US (86400LL * 1000000)

struct retention {
    qg_store *st;
    int64_t keep_us;
    int64_t period_us;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
};

/* One purge, logged. */
static void
purge_once(retention *r)
{
    qg_purge_stats ps;
    int64_t before = gate_now_us() - r->keep_us, took = gate_now_us();
    char when[40];
    int rc = qg_store_purge(r->st, before, &ps);

    took = gate_now_us() - took;
    qg_time_format(before / 1000, 0, when, sizeof(when));
    log_event(rc ? "error" : "info", rc ? "purge failed" : "purged",
              ",\"before\":\"%s\",\"records\":%" PRIu64
              ",\"rejections\":%" PRIu64 ",\"bytes\":%" PRIu64
              ",\"skipped_outbox\":%" PRIu64 ",\"us\":%" PRId64 "%s%s%s",
              when, ps.records, ps.rejections, ps.bytes, ps.skipped, took,
              rc ? ",\"error\":\"" : "", rc ? qg_strerror(rc) : "",
              rc ? "\"" : "");
}

static void *
run(void *arg)
{
    retention *r = arg;
    struct timespec until;
    int64_t next;

    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->lock);
        purge_once(r);
        next = gate_now_us() + r->period_us;
        until.tv_sec = (time_t)(next / 1000000);
        until.tv_nsec = (long)(next % 1000000) * 1000;
        pthread_mutex_lock(&r->lock);
        while (!r->stopping && gate_now_us() < next)
            pthread_cond_timedwait(&r->wake, &r->lock, &until);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int
retention_start(qg_store *st, long days, retention **out)
{
    retention *r;
    int rc;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return ENOMEM;
    r->st = st;
    r->keep_us = (int64_t)days * DAY_US;
    r->period_us = DAY_US;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if ((rc = pthread_create(&r->thread, NULL, run, r))) {
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void
retention_stop(retention *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    /* A purge under way is finished first (each of its batches is
     * committed, so a stop that cannot wait, SIGKILL, loses nothing). */
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
