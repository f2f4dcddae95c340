/*
 * forward.c - passing accepted steps on to the HIS (the outbox drain).
 *
 * A dispatcher thread scans the outbox in id (commit) order and hands the
 * first entry of each ticket, when due, to a worker; a ticket with an
 * entry in flight is skipped, so step n+1 of a ticket is never sent
 * before step n was acknowledged.  Workers POST what upstream.c builds
 * for the step: the body in the HIS's format, headers naming the step and
 * a delivery id the HIS can use as an idempotency key, signed the
 * Standard Webhooks way; each attempt is signed afresh.  A 2xx
 * acknowledges; anything else is retried with exponential backoff and
 * jitter until the entry is older than max_age, when it (and the ticket's
 * later entries) move to the dead list.
 *
 * Gates sharing one database each run a forwarder: before it sends a
 * ticket's step, a forwarder claims the ticket for a lease
 * (qg_outbox_claim()), renewed with each step, so that one gate at a time
 * sends a ticket's steps, in order; a gate that dies leaves its tickets
 * to the others once its leases run out.
 *
 * Everything the forwarder knows is in the store, so a restarted gate
 * resumes where the last one stopped.  A crash between a delivery and its
 * acknowledgement sends that step again: the HIS sees it at least once,
 * with the same delivery id.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "gate.h"

#define SCAN_MAX   20000    /* entries looked at per scan */
#define LEASE_MIN  10000000 /* a claim lasts 4 timeouts, and at least 10 s */
#define SEEN_SLOTS 65536    /* > 2 * SCAN_MAX, a power of two */
#define DONE_MAX   1024     /* steps finished during one scan, remembered */

struct forwarder {
    qg_store *st;
    forward_options o;
    pthread_t dispatcher;
    pthread_t *workers;
    unsigned nworkers;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the dispatcher's */
    pthread_cond_t work; /* the workers' */
    qg_outbox_entry *queue;
    size_t qlen;
    uint64_t *inflight; /* tickets queued or being sent */
    size_t ninflight;
    int woken, stopping;
    atomic_int reachable;
    uint64_t *seen; /* the dispatcher's per-scan ticket set */
    /* Tickets whose step a worker finished while a scan ran: the scan's
     * snapshot may still show that step, and must not send it again. */
    int scanning, done_lost;
    uint64_t *done;
    size_t ndone;
    char owner[64]; /* this forwarder's name in claims: host/pid/random */
    int64_t lease_us;
};

/* Open addressing; 0 is the empty slot (ticket numbers start at 1).
 * Returns 1 if the ticket was already in the set. */
static int
seen_add(uint64_t *set, uint64_t ticket)
{
    size_t i = (size_t)(ticket * 0x9E3779B97F4A7C15ull) & (SEEN_SLOTS - 1);

    while (set[i] && set[i] != ticket)
        i = (i + 1) & (SEEN_SLOTS - 1);
    if (set[i])
        return 1;
    set[i] = ticket;
    return 0;
}

/* Whether a worker finished a step of ticket since the scan began (or
 * more steps than were remembered).  Under f->lock. */
static int
done_in_scan(const forwarder *f, uint64_t ticket)
{
    size_t i;

    for (i = 0; i < f->ndone; i++)
        if (f->done[i] == ticket)
            return 1;
    return f->done_lost;
}

static int
in_flight(const forwarder *f, uint64_t ticket)
{
    size_t i;

    for (i = 0; i < f->ninflight; i++)
        if (f->inflight[i] == ticket)
            return 1;
    return 0;
}

/* ----- one attempt ---------------------------------------------------- */

static size_t
discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

/* The route of e's step: its ticket's source's own upstream, or the
 * gate's.  A ticket that cannot be read takes the gate's, whose build
 * then says why. */
static forward_route
route_of(const forwarder *f, const qg_outbox_entry *e)
{
    forward_route r = {NULL, f->o.upstream, f->o.up};
    qg_ticket t;
    size_t i;

    if (f->o.nroutes == 0 ||
        qg_store_ticket(f->st, QG_ID_TICKET, (int64_t)e->ticket, &t) != 0)
        return r;
    for (i = 0; i < f->o.nroutes; i++)
        if (strcmp(f->o.routes[i].source, t.source) == 0)
            return f->o.routes[i];
    return r;
}

/* Sends one entry and records the outcome in the store. */
static void
attempt(forwarder *f, CURL *curl, const qg_outbox_entry *e)
{
    upstream_request req;
    char err[CURL_ERROR_SIZE] = "", why[256];
    long status = 0;
    int64_t delay;
    enum forward_result kind;
    forward_route to = route_of(f, e);
    CURLcode cc;
    int rc;

    if (to.up == NULL) {
        /* Only a step written for a source this gate does not serve,
         * say by qgate apply --source, and no --upstream to take it. */
        snprintf(why, sizeof(why),
                 "step %" PRIu32 " of ticket %" PRIu64 ": its source has no "
                 "upstream and the gate has no --upstream",
                 e->seq, e->ticket);
        log_event("error", "forward: no upstream for the step's source",
                  ",\"outbox\":%" PRIu64 ",\"error\":\"%s\"", e->id,
                  log_escape(why, err, sizeof(err)));
        qg_outbox_defer(f->st, e->id, gate_now_us() + f->o.backoff_max_us, why);
        return;
    }
    if ((rc =
             upstream_build(to.up, e, gate_now_us(), &req, why, sizeof(why)))) {
        /* The step is gone from the history, or cannot be sent in this
         * format: it never can be. */
        if (rc == QG_NOTFOUND && qg_outbox_bury(f->st, e->id, why) == 0)
            alerts_step_dead(e, why);
        log_event("error", "forward: cannot build the step's request",
                  ",\"outbox\":%" PRIu64 ",\"error\":\"%s\"", e->id,
                  log_escape(why, err, sizeof(err)));
        return;
    }
    curl_easy_setopt(curl, CURLOPT_URL, to.upstream);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, req.headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req.len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, f->o.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, f->o.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
    cc = curl_easy_perform(curl);
    if (cc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    upstream_request_free(&req);

    if (cc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&gate_metrics.forwards[FWD_OK], 1);
        atomic_store(&f->reachable, 1);
        atomic_store(&gate_metrics.his_down_since_us, 0);
        if ((rc = qg_outbox_ack(f->st, e->id)))
            log_event("error", "forward: cannot acknowledge",
                      ",\"outbox\":%" PRIu64 ",\"error\":\"%s\"", e->id,
                      qg_strerror(rc));
        return;
    }
    /* Reachable means taking steps: a HIS that answers 500 to every one
     * is as good as down for /readyz. */
    atomic_store(&f->reachable, 0);
    {
        int64_t none = 0;

        /* Since the first failure after the last 2xx. */
        atomic_compare_exchange_strong(&gate_metrics.his_down_since_us, &none,
                                       gate_now_us());
    }
    if (cc == CURLE_OK) {
        kind = FWD_HTTP_ERROR;
        snprintf(why, sizeof(why), "HTTP %ld", status);
    } else {
        kind = FWD_NETWORK_ERROR;
        snprintf(why, sizeof(why), "%.120s",
                 err[0] ? err : curl_easy_strerror(cc));
    }
    atomic_fetch_add(&gate_metrics.forwards[kind], 1);
    /* backoff_min * 2^attempts, capped, then 75%..125% of that */
    delay = f->o.backoff_min_us;
    for (unsigned i = 0; i < e->attempts && delay < f->o.backoff_max_us; i++)
        delay *= 2;
    if (delay > f->o.backoff_max_us)
        delay = f->o.backoff_max_us;
    delay = delay * 3 / 4 + (int64_t)(rand() % 1000) * (delay / 2) / 1000;
    qg_outbox_defer(f->st, e->id, gate_now_us() + delay, why);
    log_event("warn", "forward failed",
              ",\"outbox\":%" PRIu64 ",\"ticket\":%" PRIu64 ",\"seq\":%" PRIu32
              ",\"attempt\":%" PRIu32
              ",\"error\":\"%s\",\"retry_in_ms\":%" PRId64,
              e->id, e->ticket, e->seq, e->attempts + 1,
              kind == FWD_HTTP_ERROR ? why : "network error", delay / 1000);
}

static void *
worker(void *arg)
{
    forwarder *f = arg;
    CURL *curl = curl_easy_init();
    qg_outbox_entry e;
    size_t i;

    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (f->qlen == 0 && !f->stopping)
            pthread_cond_wait(&f->work, &f->lock);
        if (f->stopping)
            break;
        e = f->queue[--f->qlen];
        pthread_mutex_unlock(&f->lock);
        if (curl)
            attempt(f, curl, &e);
        pthread_mutex_lock(&f->lock);
        for (i = 0; i < f->ninflight; i++)
            if (f->inflight[i] == e.ticket) {
                f->inflight[i] = f->inflight[--f->ninflight];
                break;
            }
        if (f->scanning && f->ndone < DONE_MAX)
            f->done[f->ndone++] = e.ticket;
        else if (f->scanning)
            f->done_lost = 1;
        f->woken = 1;
        pthread_cond_signal(&f->wake);
    }
    pthread_mutex_unlock(&f->lock);
    curl_easy_cleanup(curl);
    return NULL;
}

/* ----- the dispatcher ------------------------------------------------- */

#define TOO_OLD "older than the maximum age; gave up"

/* Moves e, too old, and its ticket's later steps to the dead list; the
 * log line and the alert carry the last real error, which is what an
 * operator acts on ("Connection refused", "HTTP 500"). */
static void
give_up(forwarder *f, const qg_outbox_entry *e)
{
    char err[300], delivery[UPSTREAM_ID_SIZE];
    int rc;

    if ((rc = qg_outbox_bury(f->st, e->id, TOO_OLD))) {
        if (rc != QG_NOTFOUND)
            log_event("error", "forward: cannot move to the dead list",
                      ",\"outbox\":%" PRIu64 ",\"error\":\"%s\"", e->id,
                      qg_strerror(rc));
        return;
    }
    atomic_fetch_add(&gate_metrics.dead_lettered, 1);
    upstream_delivery_id(f->st, e->ticket, e->seq, delivery);
    log_event(
        "error", "forward gave up: moved to the dead list",
        ",\"outbox\":%" PRIu64 ",\"ticket\":%" PRIu64 ",\"seq\":%" PRIu32
        ",\"delivery\":\"%s\",\"attempts\":%" PRIu32 ",\"reason\":\"" TOO_OLD
        "\",\"last_error\":%s,\"last_error_us\":%" PRId64,
        e->id, e->ticket, e->seq, delivery, e->attempts,
        log_string(e->last_error[0] ? e->last_error : NULL, err, sizeof(err)),
        e->last_attempt_us);
    alerts_step_dead(e, TOO_OLD);
}

/* One scan: queues due heads of tickets not in flight, buries the too
 * old.  Returns when the next entry falls due (or now + 1 s). */
static int64_t
scan(forwarder *f)
{
    qg_outbox *ob = NULL;
    qg_outbox_entry e, *due = NULL, *bury = NULL;
    size_t ndue = 0, nbury = 0, free_slots, looked = 0, i;
    int old;
    int64_t now = gate_now_us(), next = now + 1000000;

    pthread_mutex_lock(&f->lock);
    free_slots = f->nworkers - f->ninflight;
    f->scanning = 1;
    f->ndone = 0;
    f->done_lost = 0;
    pthread_mutex_unlock(&f->lock);
    if (free_slots == 0 || qg_outbox_open(f->st, 0, &ob) != 0) {
        pthread_mutex_lock(&f->lock);
        f->scanning = 0;
        pthread_mutex_unlock(&f->lock);
        return next;
    }
    due = calloc(free_slots, sizeof(*due));
    bury = calloc(free_slots, sizeof(*bury));
    memset(f->seen, 0, SEEN_SLOTS * sizeof(*f->seen));
    while (due && bury && ndue < free_slots && nbury < free_slots &&
           looked++ < SCAN_MAX && qg_outbox_next(ob, &e) == 0) {
        if (seen_add(f->seen, e.ticket))
            continue; /* not the ticket's first entry */
        pthread_mutex_lock(&f->lock);
        i = (size_t)(in_flight(f, e.ticket) || done_in_scan(f, e.ticket));
        pthread_mutex_unlock(&f->lock);
        if (i)
            continue;
        old = f->o.max_age_us > 0 && now - e.created_us > f->o.max_age_us;
        if (!old && e.next_attempt_us > now) {
            if (e.next_attempt_us < next)
                next = e.next_attempt_us;
            continue;
        }
        /* Only what is to be done now is claimed.  Another gate's ticket
         * for now, or a store that cannot say: the next scan asks
         * again. */
        if (qg_outbox_claim(f->st, e.ticket, f->owner, now, f->lease_us))
            continue;
        if (old)
            bury[nbury++] = e;
        else
            due[ndue++] = e;
    }
    qg_outbox_close(ob);
    for (i = 0; i < nbury; i++)
        give_up(f, &bury[i]);
    pthread_mutex_lock(&f->lock);
    for (i = 0; i < ndue; i++) {
        if (done_in_scan(f, due[i].ticket))
            continue; /* finished while the scan ran: next scan */
        f->queue[f->qlen++] = due[i];
        f->inflight[f->ninflight++] = due[i].ticket;
    }
    f->scanning = 0;
    if (ndue)
        pthread_cond_broadcast(&f->work);
    pthread_mutex_unlock(&f->lock);
    free(due);
    free(bury);
    return nbury ? now : next;
}

static void *
dispatcher(void *arg)
{
    forwarder *f = arg;
    struct timespec until;
    int64_t next;

    for (;;) {
        pthread_mutex_lock(&f->lock);
        if (f->stopping) {
            pthread_mutex_unlock(&f->lock);
            break;
        }
        f->woken = 0;
        pthread_mutex_unlock(&f->lock);

        next = scan(f);

        pthread_mutex_lock(&f->lock);
        until.tv_sec = (time_t)(next / 1000000);
        until.tv_nsec = (long)(next % 1000000) * 1000;
        while (!f->woken && !f->stopping &&
               pthread_cond_timedwait(&f->wake, &f->lock, &until) == 0)
            ;
        pthread_mutex_unlock(&f->lock);
    }
    return NULL;
}

void
forwarder_wake(void *arg)
{
    forwarder *f = arg;

    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->woken = 1;
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->lock);
}

int
forwarder_reachable(forwarder *f)
{
    return f && atomic_load(&f->reachable);
}

/* Stops the threads started so far (the dispatcher only when
 * dispatcher_up) and frees f: forwarder_stop(), and the undoing of a
 * start that could not start every thread. */
static void
stop_threads(forwarder *f, unsigned nworkers, int dispatcher_up)
{
    unsigned i;

    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->wake);
    pthread_cond_broadcast(&f->work);
    pthread_mutex_unlock(&f->lock);
    if (dispatcher_up)
        pthread_join(f->dispatcher, NULL);
    for (i = 0; i < nworkers; i++)
        pthread_join(f->workers[i], NULL);
    pthread_cond_destroy(&f->work);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    free(f->workers);
    free(f->queue);
    free(f->inflight);
    free(f->seen);
    free(f->done);
    free(f);
}

/* Unique among the gates of one database, and readable in it: the host,
 * the pid, and a random number for a pid reused after a restart. */
static void
name_owner(char *out, size_t len)
{
    char host[40] = "";
    uint32_t r = 0;

    gethostname(host, sizeof(host) - 1);
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint32_t)gate_now_us();
    snprintf(out, len, "%s/%ld/%08" PRIx32, host[0] ? host : "-",
             (long)getpid(), r);
}

int
forwarder_start(qg_store *st, const forward_options *o, forwarder **out)
{
    forwarder *f;
    unsigned i;
    int rc;

    if ((f = calloc(1, sizeof(*f))) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    f->st = st;
    f->o = *o;
    f->nworkers = o->workers ? o->workers : 1;
    f->workers = calloc(f->nworkers, sizeof(*f->workers));
    f->queue = calloc(f->nworkers, sizeof(*f->queue));
    f->inflight = calloc(f->nworkers, sizeof(*f->inflight));
    f->seen = calloc(SEEN_SLOTS, sizeof(*f->seen));
    f->done = calloc(DONE_MAX, sizeof(*f->done));
    name_owner(f->owner, sizeof(f->owner));
    f->lease_us = (int64_t)o->timeout_ms * 4000;
    if (f->lease_us < LEASE_MIN)
        f->lease_us = LEASE_MIN;
    atomic_init(&f->reachable, 1); /* until an attempt says otherwise */
    if (!f->workers || !f->queue || !f->inflight || !f->seen || !f->done) {
        free(f->workers);
        free(f->queue);
        free(f->inflight);
        free(f->seen);
        free(f->done);
        free(f);
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->wake, NULL);
    pthread_cond_init(&f->work, NULL);
    /* A gate short of a worker would forward slower than configured
     * without a word, and one without its dispatcher not at all: the
     * start fails instead, with the threads it had started stopped. */
    for (i = 0; i < f->nworkers; i++) {
        if ((rc = pthread_create(&f->workers[i], NULL, worker, f))) {
            stop_threads(f, i, 0);
            errno = rc;
            return -1;
        }
    }
    if ((rc = pthread_create(&f->dispatcher, NULL, dispatcher, f))) {
        stop_threads(f, f->nworkers, 0);
        errno = rc;
        return -1;
    }
    *out = f;
    return 0;
}

void
forwarder_stop(forwarder *f)
{
    if (f == NULL)
        return;
    stop_threads(f, f->nworkers, 1);
}
