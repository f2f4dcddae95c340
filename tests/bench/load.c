/*
 * load.c - an HTTP/1.1 load generator for the gate and its baselines.
 *
 *   bench_load --port P[,P...] --bodies FILE [--host 127.0.0.1] [--path PATH]
 *              [--connections C] [--threads T] [--duration S]
 *              [--warmup S] [--rate R] [--first N] [--label NAME]
 *
 * Keep-alive connections, one request in flight on each, spread over T
 * threads, each thread an epoll loop.  Every request POSTs the next body
 * of FILE (one signed delivery per line, taken in order by all threads),
 * starting again from the first after the last (or after the first N:
 * a second run with the same N sends the gate only duplicates).
 *
 * Closed loop (no --rate): a connection sends its next request as soon as
 * the answer to the last one is in; latency runs from the send.  Open loop
 * (--rate R, requests per second over all threads): requests are due at
 * fixed times, R per second, whatever the server does; a due request
 * waits for a free connection, and its latency runs from the time it was
 * due, not from when it could be sent, so a stalled server is charged for
 * every request it held up (no coordinated omission).
 *
 * With several ports (several gates on one database), the connections
 * are spread over them in turn: connection i goes to port i mod n.
 *
 * Only requests due (or sent) after the warm-up count.  Prints one line of
 * key=value pairs: requests, throughput, latency percentiles in
 * microseconds, answers by status class, errors, and answers_all (the
 * warm-up's too, to share out CPU time).  Bounded: it stops after
 * warm-up + duration seconds, and waits at most 2 s for answers in flight.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_util.h"

#define RESP_MAX  65536
#define PORTS_MAX 16

typedef struct conn {
    int fd;
    int busy;
    int64_t start_ns; /* when the request was due (open) or sent (closed) */
    char head[512];
    size_t head_len;
    const char *body;
    size_t body_len;
    size_t sent; /* of head + body */
    char resp[RESP_MAX];
    size_t got;
    int target; /* its port's index in cfg.addrs */
} conn;

typedef struct worker {
    pthread_t thread;
    int id;
    conn *conns;
    int nconns;
    int ep;
    /* results */
    int64_t *lat_us;
    size_t nlat, caplat;
    unsigned long status[6]; /* by first digit */
    unsigned long errors, reconnects, late_sends;
    unsigned long answers; /* all, warm-up included */
} worker;

static struct {
    struct sockaddr_in addrs[PORTS_MAX];
    int naddrs;
    const char *host, *path;
    bench_lines bodies;
    atomic_size_t next_body;
    int connections, threads;
    double duration, warmup, rate;
    int64_t t0, measure_from, stop_at;
    atomic_int wrapped;
} cfg;

static void die(const char *what, const char *why) __attribute__((noreturn));

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "bench_load: %s: %s\n", what, why);
    exit(2);
}

static int
open_conn(worker *w, conn *c)
{
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&cfg.addrs[c->target],
                sizeof(cfg.addrs[c->target])) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->busy = 0;
    c->got = 0;
    return 0;
}

static void
close_conn(worker *w, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
}

static void
want_write(worker *w, conn *c, int on)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is left of the request; 0, or -1 on a broken connection. */
static int
flush_request(worker *w, conn *c)
{
    while (c->sent < c->head_len + c->body_len) {
        struct iovec iov[2];
        int n = 0;
        ssize_t k;

        if (c->sent < c->head_len) {
            iov[n].iov_base = c->head + c->sent;
            iov[n++].iov_len = c->head_len - c->sent;
            iov[n].iov_base = (void *)c->body;
            iov[n++].iov_len = c->body_len;
        } else {
            iov[n].iov_base = (void *)(c->body + (c->sent - c->head_len));
            iov[n++].iov_len = c->body_len - (c->sent - c->head_len);
        }
        k = writev(c->fd, iov, n);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(w, c, 1);
            return 0;
        }
        if (k <= 0)
            return -1;
        c->sent += (size_t)k;
    }
    want_write(w, c, 0);
    return 0;
}

static int
send_request(worker *w, conn *c, int64_t start_ns)
{
    size_t i = atomic_fetch_add(&cfg.next_body, 1);

    if (i >= cfg.bodies.n)
        atomic_store(&cfg.wrapped, 1);
    i %= cfg.bodies.n;
    if (c->fd < 0 && open_conn(w, c) != 0)
        return -1;
    c->body = cfg.bodies.line[i];
    c->body_len = cfg.bodies.len[i];
    c->head_len = (size_t)snprintf(
        c->head, sizeof(c->head),
        "POST %s HTTP/1.1\r\nHost: %s:%u\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: %zu\r\n\r\n",
        cfg.path, cfg.host, (unsigned)ntohs(cfg.addrs[c->target].sin_port),
        c->body_len);
    c->sent = 0;
    c->got = 0;
    c->busy = 1;
    c->start_ns = start_ns;
    return flush_request(w, c);
}

/* Case-insensitive search for a header's value in the head. */
static const char *
header(const char *head, size_t len, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; i + n + 1 < len; i++)
        if (head[i] == '\n' && strncasecmp(head + i + 1, name, n) == 0 &&
            head[i + 1 + n] == ':')
            return head + i + 2 + n;
    return NULL;
}

/*
 * Whether c->resp holds a whole answer.  Returns its length, 0 when more
 * is needed, -1 when it cannot be read.  Sets *status and *close_after.
 */
static long
complete(conn *c, int *status, int *close_after)
{
    const char *end, *v;
    size_t head_len, body_len = 0;

    c->resp[c->got < RESP_MAX ? c->got : RESP_MAX - 1] = '\0';
    end = strstr(c->resp, "\r\n\r\n");
    if (end == NULL)
        return c->got >= RESP_MAX - 1 ? -1 : 0;
    head_len = (size_t)(end - c->resp) + 4;
    if (sscanf(c->resp, "HTTP/1.%*d %d", status) != 1)
        return -1;
    v = header(c->resp, head_len, "Connection");
    *close_after = v && strncasecmp(v + strspn(v, " "), "close", 5) == 0;
    if ((v = header(c->resp, head_len, "Content-Length")) != NULL) {
        body_len = strtoul(v, NULL, 10);
    } else if ((v = header(c->resp, head_len, "Transfer-Encoding")) != NULL &&
               strncasecmp(v + strspn(v, " "), "chunked", 7) == 0) {
        /* Chunk sizes until the zero chunk and its blank line. */
        const char *p = c->resp + head_len, *lim = c->resp + c->got;

        for (;;) {
            char *after;
            unsigned long size = strtoul(p, &after, 16);
            const char *crlf = strstr(p, "\r\n");

            if (crlf == NULL || after == p)
                return 0;
            p = crlf + 2 + size;
            if (size == 0) {
                if (p + 2 > lim)
                    return 0;
                return (long)(p + 2 - c->resp);
            }
            p += 2;
            if (p > lim)
                return 0;
        }
    } else if (*status != 204 && *status != 304 && *status >= 200) {
        return -1; /* read to close: never sent by the servers here */
    }
    if (head_len + body_len > RESP_MAX - 1)
        return -1;
    return c->got >= head_len + body_len ? (long)(head_len + body_len) : 0;
}

static void
record(worker *w, int64_t lat_ns, int status)
{
    if (w->nlat == w->caplat) {
        int64_t *grown;

        w->caplat = w->caplat ? w->caplat * 2 : 65536;
        grown = realloc(w->lat_us, w->caplat * sizeof(*grown));
        if (grown == NULL)
            die("latencies", "out of memory");
        w->lat_us = grown;
    }
    w->lat_us[w->nlat++] = lat_ns / 1000;
    w->status[status / 100 < 6 ? status / 100 : 0]++;
}

/* Reads from c; on a whole answer records it and frees c.  Returns -1
 * when the connection broke. */
static int
on_readable(worker *w, conn *c)
{
    for (;;) {
        ssize_t k = read(c->fd, c->resp + c->got, RESP_MAX - 1 - c->got);
        int status = 0, close_after = 0;
        long whole;

        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (k <= 0)
            return -1;
        c->got += (size_t)k;
        whole = complete(c, &status, &close_after);
        if (whole < 0)
            return -1;
        if (whole == 0)
            continue;
        if (!c->busy)
            return -1; /* an answer nobody asked for */
        w->answers++;
        /* Counted by when it was due or sent, so that answers still in
         * flight at the end count too. */
        if (c->start_ns >= cfg.measure_from && c->start_ns < cfg.stop_at)
            record(w, bench_now_ns() - c->start_ns, status);
        c->busy = 0;
        c->got = 0;
        if (close_after) {
            close_conn(w, c);
            w->reconnects++;
        }
        return 0;
    }
}

static conn *
idle_conn(worker *w)
{
    int i;

    for (i = 0; i < w->nconns; i++)
        if (!w->conns[i].busy)
            return &w->conns[i];
    return NULL;
}

static int
busy_count(worker *w)
{
    int i, n = 0;

    for (i = 0; i < w->nconns; i++)
        n += w->conns[i].busy;
    return n;
}

static void *
run(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[64];
    int64_t interval = 0, next_due = cfg.t0, now, drain_until;
    int i, n;

    if (cfg.rate > 0) {
        /* This thread's share of the rate, offset so threads interleave. */
        interval = (int64_t)(1e9 * cfg.threads / cfg.rate);
        next_due = cfg.t0 + interval * w->id / cfg.threads;
    }
    drain_until = cfg.stop_at + 2000000000LL;
    for (;;) {
        struct timespec ts;
        int64_t wait_ns;
        conn *c;

        now = bench_now_ns();
        if (now >= cfg.stop_at && (busy_count(w) == 0 || now >= drain_until))
            break;
        /* Send what is due. */
        while (now < cfg.stop_at && (c = idle_conn(w)) != NULL) {
            int64_t start = now;

            if (cfg.rate > 0) {
                if (next_due > now)
                    break;
                start = next_due;
                next_due += interval;
                if (now - start > 1000000)
                    w->late_sends++; /* no free connection in time */
            }
            if (send_request(w, c, start) != 0) {
                w->errors++;
                close_conn(w, c);
            }
        }
        wait_ns = 100000000; /* at most 100 ms without looking */
        /* The next due request, unless none can be sent before an answer
         * frees a connection. */
        if (cfg.rate > 0 && idle_conn(w) && next_due - now < wait_ns)
            wait_ns = next_due > now ? next_due - now : 0;
        if (now < cfg.stop_at && cfg.stop_at - now < wait_ns)
            wait_ns = cfg.stop_at - now;
        ts.tv_sec = wait_ns / 1000000000;
        ts.tv_nsec = wait_ns % 1000000000;
        n = epoll_pwait2(w->ep, evs, 64, &ts, NULL);
        now = bench_now_ns();
        for (i = 0; i < n; i++) {
            conn *cc = evs[i].data.ptr;

            if (cc->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && cc->busy &&
                flush_request(w, cc) != 0) {
                w->errors++;
                close_conn(w, cc);
                continue;
            }
            if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
                on_readable(w, cc) != 0) {
                if (cc->busy)
                    w->errors++;
                else
                    w->reconnects++; /* the server closed an idle one */
                close_conn(w, cc);
            }
        }
    }
    for (i = 0; i < w->nconns; i++)
        close_conn(w, &w->conns[i]);
    return NULL;
}

static void
usage(void)
{
    fprintf(
        stderr,
        "usage: bench_load --port P[,P...] --bodies FILE [--host H] [--path P] "
        "[--connections C] [--threads T] [--duration S] [--warmup S] "
        "[--rate R] [--first N] [--label NAME]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"bodies", required_argument, NULL, 'b'},
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},
        {"label", required_argument, NULL, 'l'},
        {"first", required_argument, NULL, 'f'},
        {0}};
    const char *bodies = NULL, *label = "run";
    const char *ports = NULL;
    char *end;
    long port;
    size_t first = 0;
    worker *ws;
    int64_t *all;
    size_t total = 0, k;
    unsigned long status[6] = {0}, errors = 0, reconnects = 0, late = 0;
    unsigned long answers = 0;
    int opt, i, j, spread = 0;
    double secs;

    cfg.host = "127.0.0.1";
    cfg.path = "/webhooks/chup";
    cfg.connections = 16;
    cfg.threads = 1;
    cfg.duration = 5;
    cfg.warmup = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            cfg.host = optarg;
            break;
        case 'p':
            ports = optarg;
            break;
        case 'P':
            cfg.path = optarg;
            break;
        case 'b':
            bodies = optarg;
            break;
        case 'c':
            cfg.connections = atoi(optarg);
            break;
        case 't':
            cfg.threads = atoi(optarg);
            break;
        case 'd':
            cfg.duration = strtod(optarg, NULL);
            break;
        case 'w':
            cfg.warmup = strtod(optarg, NULL);
            break;
        case 'r':
            cfg.rate = strtod(optarg, NULL);
            break;
        case 'l':
            label = optarg;
            break;
        case 'f':
            first = strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (!bodies || !ports || cfg.threads < 1 || cfg.connections < cfg.threads ||
        cfg.duration <= 0 || cfg.duration > 600 || cfg.warmup < 0 ||
        cfg.warmup > 60)
        usage();
    /* P or P,P,...: each a port of the same host */
    for (end = (char *)ports; *end; cfg.naddrs++) {
        struct sockaddr_in *a = &cfg.addrs[cfg.naddrs];

        if (cfg.naddrs == PORTS_MAX)
            die(ports, "at most 16 ports");
        port = strtol(end, &end, 10);
        if (port <= 0 || port > 65535 || (*end && *end != ','))
            die(ports, "not a port, or a list of them separated by commas");
        end += *end == ',';
        memset(a, 0, sizeof(*a));
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, cfg.host, &a->sin_addr) != 1)
            die(cfg.host, "not an IPv4 address");
    }
    if (cfg.naddrs == 0)
        usage();
    if (bench_lines_read(bodies, first, &cfg.bodies) != 0 || cfg.bodies.n == 0)
        die(bodies, "cannot read bodies");
    signal(SIGPIPE, SIG_IGN);

    ws = calloc((size_t)cfg.threads, sizeof(*ws));
    if (ws == NULL)
        die("workers", "out of memory");
    for (i = 0; i < cfg.threads; i++) {
        ws[i].id = i;
        ws[i].nconns =
            cfg.connections / cfg.threads + (i < cfg.connections % cfg.threads);
        ws[i].conns = calloc((size_t)ws[i].nconns, sizeof(conn));
        if ((ws[i].ep = epoll_create1(0)) < 0 || ws[i].conns == NULL)
            die("workers", strerror(errno));
        for (j = 0; j < ws[i].nconns; j++) {
            ws[i].conns[j].target = spread++ % cfg.naddrs;
            if (open_conn(&ws[i], &ws[i].conns[j]) != 0)
                die("connect", strerror(errno));
        }
    }
    cfg.t0 = bench_now_ns();
    cfg.measure_from = cfg.t0 + (int64_t)(cfg.warmup * 1e9);
    cfg.stop_at = cfg.measure_from + (int64_t)(cfg.duration * 1e9);
    for (i = 0; i < cfg.threads; i++)
        if (pthread_create(&ws[i].thread, NULL, run, &ws[i]) != 0)
            die("threads", strerror(errno));
    for (i = 0; i < cfg.threads; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].nlat;
    }

    all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL)
        die("latencies", "out of memory");
    for (i = 0, k = 0; i < cfg.threads; i++) {
        if (ws[i].nlat)
            memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof(*all));
        k += ws[i].nlat;
        for (j = 0; j < 6; j++)
            status[j] += ws[i].status[j];
        errors += ws[i].errors;
        reconnects += ws[i].reconnects;
        late += ws[i].late_sends;
        answers += ws[i].answers;
        free(ws[i].lat_us);
        free(ws[i].conns);
        close(ws[i].ep);
    }
    bench_sort(all, total);
    secs = cfg.duration;
    printf("label=%s mode=%s rate=%.0f connections=%d threads=%d "
           "duration_s=%.1f requests=%zu rps=%.0f p50_us=%" PRId64
           " p90_us=%" PRId64 " p99_us=%" PRId64 " p999_us=%" PRId64
           " max_us=%" PRId64 " s2xx=%lu s4xx=%lu s5xx=%lu other=%lu "
           "errors=%lu reconnects=%lu late_sends=%lu wrapped=%d "
           "answers_all=%lu\n",
           label, cfg.rate > 0 ? "open" : "closed", cfg.rate, cfg.connections,
           cfg.threads, secs, total, (double)total / secs,
           bench_percentile_sorted(all, total, 50),
           bench_percentile_sorted(all, total, 90),
           bench_percentile_sorted(all, total, 99),
           bench_percentile_sorted(all, total, 99.9),
           total ? all[total - 1] : 0, status[2], status[4], status[5],
           status[0] + status[1] + status[3], errors, reconnects, late,
           atomic_load(&cfg.wrapped), answers);
    free(all);
    free(ws);
    bench_lines_free(&cfg.bodies);
    return 0;
}
