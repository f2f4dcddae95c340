/*
 * gate.h - the parts `qgate serve` drives: group commit (committer.c),
 * forwarding to the HIS (forward.c), the connection table
 * (connections.c), the rate limit (ratelimit.c), metrics (metrics.c),
 * operational alerts (alert.c), structured logs (log.c) and the clock.  The
 * HTTP front itself (serve.c, options.c, answers.c) shares serve.h.
 */
#ifndef QG_GATE_H
#define QG_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <microhttpd.h>

#include "qgate.h"
#include "upstream.h"

/* ----- the clock ------------------------------------------------------- */

/* Microseconds since the epoch.  The wall clock, as the library's own
 * (src/lib/time.c), not a monotonic one: the outbox keeps the times the
 * gate gives it, and the library compares them with its clock. */
static inline int64_t
gate_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----- log.c ------------------------------------------------------------ */

/* One JSON object per line: {"ts", "level", "msg", fields...}.  fields is
 * a pre-rendered ",\"key\":value..." string or NULL.  Thread-safe. */
void log_open(const char *path); /* NULL: stderr; reopened by log_reopen */
int log_reopen(void);
void log_event(const char *level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Lines gathered to be written together, with one write(2): a committed
 * group's.  Zeroed to start; the buffer is kept from flush to flush. */
typedef struct log_lines {
    char *buf;
    size_t len, cap;
} log_lines;
/* Appends a line as log_event() would write it, stamped now.  When no
 * memory is found for it, writes the lines before it and then it, as
 * log_event(): no line is lost or put out of order. */
void log_add(log_lines *l, const char *level, const char *msg,
             const char *fields_fmt, ...) __attribute__((format(printf, 4, 5)));
/* Writes l's lines, whole and in order, and empties l.  Thread-safe
 * against the other log calls (one lock); l is the caller's. */
void log_flush(log_lines *l);
void log_lines_free(log_lines *l); /* frees the buffer; l can be reused */
/* s as the inside of a JSON string (quotes, backslashes and control
 * characters escaped), cut short to fit dst.  Returns dst. */
char *log_escape(const char *s, char *dst, size_t len);
/* s as a whole JSON string, quotes included, or null for NULL; cut short
 * to fit dst as log_escape().  Returns dst. */
char *log_string(const char *s, char *dst, size_t len);

/* ----- metrics.c -------------------------------------------------------- */

#define LATENCY_BUCKETS 12
#define BATCH_BUCKETS   10

enum forward_result { FWD_OK, FWD_HTTP_ERROR, FWD_NETWORK_ERROR, FWD_KINDS };

/* Why the gate closed a connection (connections.c). */
enum shed_reason {
    SHED_DEADLINE, /* its request was not whole within --request-timeout */
    SHED_IDLE,     /* kept alive, no new request within --timeout */
    SHED_FULL,     /* the oldest waiting when the table was full */
    SHED_KINDS
};

/* The most sources one gate serves, the default source included. */
#define GATE_SOURCES 17

typedef struct metrics {
    /* by source (serve.h's index), then reason (and verdict) */
    atomic_ulong deliveries[GATE_SOURCES][QG_REASON_COUNT];
    atomic_ulong store_errors;
    atomic_ulong http[6];                      /* 1xx..5xx by first digit */
    atomic_ulong latency[LATENCY_BUCKETS + 1]; /* cumulative later */
    atomic_ulong latency_count;
    atomic_ullong latency_sum_us;
    atomic_ulong batch[BATCH_BUCKETS + 1];
    atomic_ulong batch_count;
    atomic_ulong batch_sum;
    atomic_ulong forwards[FWD_KINDS];
    atomic_ulong dead_lettered;
    atomic_ulong late;     /* accepted steps placed before later ones */
    atomic_ulong released; /* held deliveries accepted once legal */
    /* held deliveries refused when their window passed, by reason */
    atomic_ulong expired[QG_REASON_COUNT];
    atomic_ulong rate_limited; /* unsigned deliveries answered 429 */
    atomic_ulong shed[SHED_KINDS];
    /* The first failed attempt after the HIS's last 2xx; 0 when the last
     * attempt was taken (or none was made). */
    _Atomic int64_t his_down_since_us;
    /* signed deliveries by source, then the index of the secret that
     * matched */
    atomic_ulong secret_matches[GATE_SOURCES][QG_SECRETS_MAX];
    atomic_uint secrets[GATE_SOURCES]; /* how many each engine holds */
} metrics;

extern metrics gate_metrics;
/* The names of the sources served, by index, for the metrics' source
 * label; NULL where none is served.  Set before the daemon starts. */
extern const char *gate_source_names[GATE_SOURCES];

/* Counts a delivery answered with reason's verdict in the current
 * minute, for the console's deliveries per minute (metrics_minutes()). */
void metrics_delivery(int source, qg_reason reason);
/* The deliveries of the last `minutes` minutes (at most
 * METRICS_MINUTES), counted since the gate started: {"start_ms":T,
 * "minute_ms":60000,"since_ms":STARTED,"verdicts":["accepted",...],
 * "counts":[[n,...],...]}, one row per minute from T, oldest first, one
 * count per verdict.  With the newline. */
#define METRICS_MINUTES 360
void metrics_minutes(FILE *f, int minutes);
void metrics_request(int status, int64_t elapsed_us);
void metrics_batch(size_t n);
/* Writes Prometheus text; outbox figures are read from the store. */
void metrics_render(FILE *f, qg_store *st);

/* ----- committer.c ------------------------------------------------------ */

/* One delivery waiting for its commit, prepared (parsed, authenticated)
 * by the thread that received it. */
typedef struct pending {
    qg_prepared *prepared;
    qg_result res;
    int rc;
    int stopping; /* not taken: the committer was closed (rc QG_EBUSY) */
    void (*done)(struct pending *); /* called after the commit, once */
    void *arg;
    /* For done(): the group's log lines, written with one write after
     * every done() of the group; NULL when p was not committed here
     * (p->stopping). */
    log_lines *log;
    struct pending *next;
} pending;

typedef struct committer committer;

typedef enum durability {
    DURABLE_SYNC,  /* one commit and one flush per delivery */
    DURABLE_GROUP, /* concurrent deliveries share a commit and a flush */
    DURABLE_NOSYNC /* shared commits, flushed when the OS likes */
} durability;

/* Starts the committer thread.  max_batch 1 commits one by one.  With a
 * reorder window (seconds, 0 for none) it also refuses, about once a
 * second, the held deliveries that waited longer. */
int committer_start(qg_store *st, size_t max_batch, int64_t window_s,
                    void (*committed)(void *), void *committed_arg,
                    committer **out);
/* Queues p; p->done is called from the committer thread after commit,
 * with p->log the group's lines (written after the group's last done()).
 * Once the committer is closed, p->done is called at once, here, with
 * p->stopping set and p->rc QG_EBUSY: nothing is left waiting on a
 * thread that is gone. */
void committer_submit(committer *c, pending *p);
/* Finishes what was queued and stops the thread; later submissions are
 * done at once (above).  The gate closes it before it stops
 * libmicrohttpd, which must find no connection suspended.  NULL ok. */
void committer_close(committer *c);
/* Closes it if need be, and frees it.  NULL ok. */
void committer_stop(committer *c);

/* ----- forward.c -------------------------------------------------------- */

/* Where the steps of one source go, when not to the gate's upstream. */
typedef struct forward_route {
    const char *source;
    const char *upstream;
    upstream_builder *up;
} forward_route;

typedef struct forward_options {
    const char *upstream; /* NULL when every step has a route */
    upstream_builder *up; /* builds each request (upstream.c) */
    /* The upstream of a step is its ticket's source's route, if it has
     * one, else the one above. */
    const forward_route *routes;
    size_t nroutes;
    unsigned workers;
    long timeout_ms;
    int64_t max_age_us; /* then dead-lettered */
    int64_t backoff_min_us, backoff_max_us;
} forward_options;

typedef struct forwarder forwarder;

/* Starts the dispatcher and the workers.  Returns 0, or -1 with errno
 * set (ENOMEM, or pthread_create()'s error) and nothing left running. */
int forwarder_start(qg_store *st, const forward_options *o, forwarder **out);
/* New entries were committed: look again now. */
void forwarder_wake(void *f);
/* Whether the upstream took the last step sent (a 2xx). */
int forwarder_reachable(forwarder *f);
/* Finishes attempts in flight, then stops.  NULL ok. */
void forwarder_stop(forwarder *f);

/* ----- retention.c ------------------------------------------------------ */

typedef struct retention retention;

/* Starts the thread that purges the bodies of what was received more than
 * `days` days ago (qg_store_purge()): at once, then every 24 hours, each
 * time logged.  Returns 0, or an errno value and nothing left running. */
int retention_start(qg_store *st, long days, retention **out);
/* Finishes a purge under way, then stops.  NULL ok. */
void retention_stop(retention *r);

/* ----- connections.c ---------------------------------------------------- */

typedef struct conntable conntable;

/* Starts the table and its thread that enforces the deadlines.
 * Returns 0, or -1 (out of memory, no thread). */
int conntable_start(long request_timeout_s, long idle_timeout_s,
                    unsigned max_connections, conntable **out);
/* After MHD_stop_daemon().  NULL ok. */
void conntable_stop(conntable *t);
/* MHD_OPTION_NOTIFY_CONNECTION, with the table as cls. */
void conntable_notify(void *cls, struct MHD_Connection *c,
                      void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* MHD_OPTION_URI_LOG_CALLBACK, with the table as cls: a request's first
 * line is in.  Returns NULL (the request's context starts empty). */
void *conntable_request_line(void *cls, const char *uri,
                             struct MHD_Connection *c);
/* c's request is whole, or answered: no deadline applies until it
 * completes, and it is never closed to make room. */
void conntable_busy(conntable *t, struct MHD_Connection *c);
/* c's request completed; kept alive, c waits for its next one. */
void conntable_idle(conntable *t, struct MHD_Connection *c);

/* ----- ratelimit.c ------------------------------------------------------ */

struct sockaddr;
typedef struct ratelimit ratelimit;

/* Buckets of `burst` tokens per source address, refilled at per_minute.
 * Returns 0, or -1 (arguments not positive, out of memory). */
int ratelimit_new(long per_minute, long burst, ratelimit **out);
/* Takes a token of addr's bucket.  Returns 0 when there was one, else the
 * whole seconds until there is (at least 1).  Thread-safe. */
long ratelimit_take(ratelimit *rl, const struct sockaddr *addr, int64_t now_us);
void ratelimit_free(ratelimit *rl); /* NULL ok */

/* ----- alert.c ---------------------------------------------------------- */

typedef struct alert_options {
    const char *url;            /* where alerts are POSTed */
    const char *secret_file;    /* whsec_ secrets, one a line; NULL: unsigned */
    long his_down_s;            /* HIS unreachable this long while steps wait */
    long refusals;              /* refusals a minute; 0: no such alert */
    long interval_s;            /* the same alert no more often */
    const char *listen, *store; /* named in every alert */
} alert_options;

/* Starts the alert thread.  Returns 0, or -1 with why in err (the secret
 * file).  Without a url, nothing is started and every call is a no-op. */
int alerts_start(qg_store *st, const alert_options *o, char *err,
                 size_t errlen);
/* e was moved to the dead list, given up for why.  Never blocks: queued
 * for the alert thread, or counted when the queue is full. */
void alerts_step_dead(const qg_outbox_entry *e, const char *why);
/* Sends nothing more; waits for the thread.  Safe when not started. */
void alerts_stop(void);
/* qgate_alerts_total and qgate_alerts_failed_total. */
void alerts_render(FILE *f);

#endif /* QG_GATE_H */
