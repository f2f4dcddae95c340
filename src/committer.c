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
 */
#include <stdlib.h>

#include "gate.h"

struct committer {
    qg_store *st;
    size_t max_batch;
    void (*committed)(void *);
    void *committed_arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pending *head, *tail;
    int stopping;
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
        }
        p->done(p); /* p may be gone after this */
        p = next;
    }
    if (accepted && c->committed)
        c->committed(c->committed_arg);
    free(prepared);
    free(res);
    free(rcs);
}

static void *
loop(void *arg)
{
    committer *c = arg;
    pending *first, *last;
    size_t n;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->head == NULL)
            break; /* stopping, and nothing left */
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
committer_start(qg_store *st, size_t max_batch, void (*committed)(void *),
                void *committed_arg, committer **out)
{
    committer *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return QG_ENOMEM;
    c->st = st;
    c->max_batch = max_batch ? max_batch : 1;
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
    pthread_mutex_lock(&c->lock);
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

void
committer_stop(committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
