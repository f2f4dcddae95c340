/*
 * committer.c - group commit: deliveries that arrive together share one
 * LMDB commit and one flush to disk.
 *
 * HTTP threads prepare a delivery (parse, authenticate: the CPU part),
 * queue it and suspend its connection; this thread takes everything
 * queued (up to max_batch), decides it in one write transaction
 * (qg_engine_apply_prepared), and only after the commit returns
 * calls each delivery's done(), which resumes its connection.  So no answer
 * leaves before its commit, and the flush cost is paid once per batch
 * instead of once per delivery.  While a batch commits, the next one
 * gathers: the busier the gate, the larger the batches.
 *
 * Each done() adds its delivery's log line to the batch's (p->log); they
 * are written together, one write(2) a batch, once every connection of
 * the batch is resumed.  The thread writes them before it takes the next
 * batch, and before it ends: a line is never left behind at SIGTERM.
 *
 * The same thread ends the wait of held deliveries (qg_held_expire), on
 * its own clock: the store has one writer here, and a held delivery is
 * refused even when no delivery for its ticket ever comes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "gate.h"

#define EXPIRY_CHECK_US 1000000 /* how often the held list is looked at */

struct committer {
    qg_store *st;
    size_t max_batch;
    int64_t window_us;
    int64_t next_check_us;
    void (*committed)(void *);
    void *committed_arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pending *head, *tail;
    log_lines lines; /* the batch's log lines; the thread's own */
    int stopping;
    int closed; /* the thread is gone: submissions are done at once */
};

static void
run_batch(committer *c, pending *first, size_t n)
{
    qg_prepared **prepared = calloc(n, sizeof(*prepared));
    qg_result *res = calloc(n, sizeof(*res));
    int *rcs = calloc(n, sizeof(*rcs));
    pending *p;
    size_t i;
    int rc, accepted = 0;

    if (prepared == NULL || res == NULL || rcs == NULL) {
        rc = QG_ENOMEM;
    } else {
        for (i = 0, p = first; i < n; i++, p = p->next)
            prepared[i] = p->prepared;
        rc = qg_engine_apply_prepared(c->st, prepared, n, res, rcs);
    }
    if (rc == 0)
        metrics_batch(n);
    for (i = 0, p = first; i < n; i++) {
        pending *next = p->next;

        p->rc = rc ? rc : rcs[i];
        if (p->rc == 0) {
            p->res = res[i];
            accepted |= res[i].verdict == QG_ACCEPTED;
            if (res[i].late)
                atomic_fetch_add(&gate_metrics.late, 1);
            atomic_fetch_add(&gate_metrics.released, res[i].released);
        }
        p->log = &c->lines;
        p->done(p); /* p may be gone after this */
        p = next;
    }
    log_flush(&c->lines);
    if (accepted && c->committed)
        c->committed(c->committed_arg);
    free(prepared);
    free(res);
    free(rcs);
}

/* Refuses the held deliveries whose window passed.  A read first: most
 * seconds nothing is due, and that must not take the writer's lock. */
static void
expire_held(committer *c)
{
    uint64_t by_reason[QG_REASON_COUNT] = {0}, held = 0, expired = 0;
    int64_t oldest = 0, before = gate_now_us() - c->window_us;
    int rc, i;

    if (qg_held_stats(c->st, &held, &oldest) || held == 0 || oldest >= before)
        return;
    if ((rc = qg_held_expire(c->st, before, by_reason, &expired))) {
        log_event("error", "cannot expire held deliveries", ",\"error\":\"%s\"",
                  qg_strerror(rc));
        return;
    }
    for (i = 0; i < QG_REASON_COUNT; i++)
        atomic_fetch_add(&gate_metrics.expired[i], by_reason[i]);
    log_event("warn", "held deliveries waited past the reorder window",
              ",\"refused\":%" PRIu64 ",\"window_s\":%" PRId64, expired,
              c->window_us / 1000000);
}

/* Waits for work, or until the next look at the held list is due. */
static void
wait_for_work(committer *c)
{
    struct timespec until;
    int64_t at;

    if (c->window_us == 0) {
        pthread_cond_wait(&c->wake, &c->lock);
        return;
    }
    at = c->next_check_us;
    until.tv_sec = (time_t)(at / 1000000);
    until.tv_nsec = (long)(at % 1000000) * 1000;
    pthread_cond_timedwait(&c->wake, &c->lock, &until);
}

static void *
loop(void *arg)
{
    committer *c = arg;
    pending *first, *last;
    size_t n;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (c->window_us && gate_now_us() >= c->next_check_us) {
            pthread_mutex_unlock(&c->lock);
            expire_held(c);
            pthread_mutex_lock(&c->lock);
            c->next_check_us = gate_now_us() + EXPIRY_CHECK_US;
        }
        while (c->head == NULL && !c->stopping &&
               (c->window_us == 0 || gate_now_us() < c->next_check_us))
            wait_for_work(c);
        if (c->head == NULL && !c->stopping)
            continue; /* time to look at the held list */
        if (c->head == NULL) {
            c->closed = 1; /* stopping, and nothing left: under the lock,
                            * so no submission is queued after it */
            break;
        }
        first = last = c->head;
        for (n = 1; n < c->max_batch && last->next; n++)
            last = last->next;
        c->head = last->next;
        if (c->head == NULL)
            c->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&c->lock);
        run_batch(c, first, n);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int
committer_start(qg_store *st, size_t max_batch, int64_t window_s,
                void (*committed)(void *), void *committed_arg, committer **out)
{
    committer *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return QG_ENOMEM;
    c->st = st;
    c->max_batch = max_batch ? max_batch : 1;
    c->window_us = window_s * 1000000;
    c->committed = committed;
    c->committed_arg = committed_arg;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, loop, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return QG_ENOMEM;
    }
    *out = c;
    return 0;
}

void
committer_submit(committer *c, pending *p)
{
    p->next = NULL;
    p->log = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        p->rc = QG_EBUSY;
        p->stopping = 1;
        p->done(p);
        return;
    }
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

void
committer_close(committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->stopping = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
}

void
committer_stop(committer *c)
{
    if (c == NULL)
        return;
    committer_close(c);
    log_lines_free(&c->lines);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
