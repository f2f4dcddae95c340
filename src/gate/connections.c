/*
 * connections.c - the gate's table of open connections: deadlines, and
 * room for new connections when the table is full.
 *
 * libmicrohttpd times a connection out only when it is silent for
 * --timeout seconds, so a client sending a byte now and then holds its
 * slot for ever; a thousand such clients hold them all, and when the
 * table is full libmicrohttpd leaves new connections in the listen queue.
 * This table, fed by libmicrohttpd's connection callbacks, adds:
 *
 *   - a deadline for a whole request: its headers and body must be in
 *     within --request-timeout of the connection's accept (or, on a kept
 *     alive connection, of the request's first line);
 *   - an absolute bound on the wait between requests of a kept-alive
 *     connection: --timeout since its last answer, however it trickles;
 *   - when the table is full, room for the newcomer: the connection that
 *     has waited longest for a whole request (reading one, or idle between
 *     two) is closed.
 *
 * A connection whose request is whole (decided, committing, answering)
 * is never closed here: its sender gets its answer.
 *
 * How a connection is closed: shutdown(2) of its socket.  libmicrohttpd
 * then reads the end of the stream and closes the connection itself, in
 * its own thread, as if the client had gone away.  The socket stays open
 * until libmicrohttpd closes it, which it does only after telling this
 * table (MHD_CONNECTION_NOTIFY_CLOSED), under the same lock: so the
 * descriptor shut down is always still the connection's own.  Rejected
 * alternatives: shortening a connection's timeout
 * (MHD_set_connection_option) is only allowed from the connection's own
 * thread and still lets each byte extend it; an accept loop of the gate's
 * own (MHD_add_connection) would duplicate libmicrohttpd's bookkeeping to
 * gain nothing over this.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <sys/socket.h>

#include "gate.h"

/* Which list a connection is on; SHUT: none, closed here and waiting for
 * libmicrohttpd to report it closed. */
enum { SHUT = -1, NONE, READING, IDLE };

typedef struct conn {
    struct conn *prev, *next;
    int list;
    int fd;
    int64_t since_us; /* when its deadline started */
} conn;

typedef struct list {
    conn *head, *tail; /* oldest first */
} list;

struct conntable {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t reaper;
    int stopping;
    int64_t request_us, idle_us;
    unsigned max;
    unsigned live; /* connections open and not shut down here */
    list reading, idle;
};

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static list *
list_of(conntable *t, int which)
{
    return which == READING ? &t->reading : which == IDLE ? &t->idle : NULL;
}

static void
unlink_conn(conntable *t, conn *e)
{
    list *l = list_of(t, e->list);

    if (l == NULL)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    e->list = NONE;
}

/* Moves e to the end of a list, its deadline starting at now_us. */
static void
append(conntable *t, conn *e, int which, int64_t now_us)
{
    list *l = list_of(t, which);

    unlink_conn(t, e);
    e->list = which;
    e->since_us = now_us;
    e->prev = l->tail;
    e->next = NULL;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

/* Closes e's connection (see the file's comment); it leaves the table
 * when libmicrohttpd says it closed. */
static void
shed(conntable *t, conn *e, enum shed_reason why)
{
    unlink_conn(t, e);
    e->list = SHUT; /* no longer live */
    t->live--;
    shutdown(e->fd, SHUT_RDWR);
    atomic_fetch_add(&gate_metrics.shed[why], 1);
}

/* The connection that has waited longest for a whole request. */
static conn *
oldest_waiting(conntable *t)
{
    conn *r = t->reading.head, *i = t->idle.head;

    if (r && i)
        return r->since_us <= i->since_us ? r : i;
    return r ? r : i;
}

static void *
reap(void *arg)
{
    conntable *t = arg;
    struct timespec until;
    int64_t now;

    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        now = mono_us();
        while (t->reading.head &&
               now - t->reading.head->since_us >= t->request_us)
            shed(t, t->reading.head, SHED_DEADLINE);
        while (t->idle.head && now - t->idle.head->since_us >= t->idle_us)
            shed(t, t->idle.head, SHED_IDLE);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L; /* deadlines are kept to 0.2 s */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->wake, &t->lock, &until);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int
conntable_start(long request_timeout_s, long idle_timeout_s,
                unsigned max_connections, conntable **out)
{
    conntable *t;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return -1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    t->request_us = (int64_t)request_timeout_s * 1000000;
    t->idle_us = (int64_t)idle_timeout_s * 1000000;
    t->max = max_connections;
    if (pthread_create(&t->reaper, NULL, reap, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void
conntable_stop(conntable *t)
{
    conn *e;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->reaper, NULL);
    /* libmicrohttpd has stopped and reported every connection closed;
     * nothing should be left, but free whatever is. */
    while ((e = t->reading.head) || (e = t->idle.head)) {
        unlink_conn(t, e);
        free(e);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void
conntable_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                 enum MHD_ConnectionNotificationCode code)
{
    conntable *t = cls;
    const union MHD_ConnectionInfo *ci;
    conn *e = *socket_context, *victim;

    pthread_mutex_lock(&t->lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL && (e = calloc(1, sizeof(*e))) != NULL) {
            e->fd = ci->connect_fd;
            append(t, e, READING, mono_us());
            t->live++;
            *socket_context = e;
            /* Full: make room for the next one now, so that it need not
             * wait for a deadline.  When every other connection has a
             * whole request, this one stays, and libmicrohttpd leaves the
             * next ones in the listen queue, as it would without us. */
            if (t->live >= t->max && (victim = oldest_waiting(t)) != NULL &&
                victim != e)
                shed(t, victim, SHED_FULL);
        }
    } else if (e != NULL) {
        if (e->list != SHUT)
            t->live--;
        unlink_conn(t, e);
        free(e);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&t->lock);
}

static conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

void *
conntable_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    conntable *t = cls;
    conn *e = conn_of(c);

    (void)uri;
    pthread_mutex_lock(&t->lock);
    /* A fresh connection's deadline runs from its accept; a kept-alive
     * one's from this, its next request's first line. */
    if (e && e->list == IDLE)
        append(t, e, READING, mono_us());
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

void
conntable_busy(conntable *t, struct MHD_Connection *c)
{
    conn *e = conn_of(c);

    if (e == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    if (e->list == READING || e->list == IDLE)
        unlink_conn(t, e);
    pthread_mutex_unlock(&t->lock);
}

void
conntable_idle(conntable *t, struct MHD_Connection *c)
{
    conn *e = conn_of(c);

    if (e == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    if (e->list != SHUT)
        append(t, e, IDLE, mono_us());
    pthread_mutex_unlock(&t->lock);
}
