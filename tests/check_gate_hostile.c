/*
 * check_gate_hostile.c - `qgate serve` end to end: hostile clients: slow,
 * crowding, unsigned, cut off.
 *
 * The gate, the client and the fake HIS are in gate_harness.h.
 */
#define _GNU_SOURCE /* prlimit() */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gate_harness.h"

/* Whether the peer closed fd within ms (read returns 0 or an error). */
static int
closed_within(int fd, long ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[512];
    int64_t until = now_ms() + ms;

    while (now_ms() < until) {
        if (poll(&p, 1, 50) > 0) {
            ssize_t n = read(fd, buf, sizeof(buf));

            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

/*
 * Slowloris: a client that dribbles its headers one byte at a time is cut
 * off after the idle timeout, and serves nobody's harm meanwhile: other
 * clients are answered as usual.
 */
START_TEST(test_hostile_slowloris)
{
    const char *opts[] = {"--timeout", "2", NULL};
    const char *head = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fds[8], i, cut = 0;
    answer a;
    int64_t start;

    gate_start(opts);
    for (i = 0; i < 8; i++) {
        ck_assert_int_ge(fds[i] = connect_gate(), 0);
        ck_assert_int_eq(write(fds[i], head, strlen(head)),
                         (ssize_t)strlen(head));
    }
    start = now_ms();
    /* a byte every 0.5 s from each, and a real client meanwhile */
    while (now_ms() - start < 1500) {
        for (i = 0; i < 8; i++)
            (void)!write(fds[i], "a", 1);
        post_fixture(walk_in_files[0], &a);
        ck_assert_msg(a.status == 200, "a client beside slow ones: %ld",
                      a.status);
        answer_free(&a);
        sleep_ms(500);
    }
    /* then silence: each slow connection is closed after the timeout */
    for (i = 0; i < 8; i++)
        cut += closed_within(fds[i], 6000);
    for (i = 0; i < 8; i++)
        close(fds[i]);
    ck_assert_int_eq(cut, 8);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

/*
 * A client that trickles its headers, a byte every 0.3 s, never silent for
 * --timeout, is still cut off at --request-timeout: the deadline is for
 * the whole request, not between bytes.
 */
START_TEST(test_hostile_request_deadline)
{
    const char *opts[] = {"--request-timeout", "2", "--timeout", "30", NULL};
    const char *head = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    struct pollfd p;
    int64_t start, cut = 0;
    char buf[512];
    int fd;

    gate_start(opts);
    ck_assert_int_ge(fd = connect_gate(), 0);
    start = now_ms();
    ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    while (!cut && now_ms() - start < 8000) {
        (void)!write(fd, "a", 1);
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 300) > 0 && read(fd, buf, sizeof(buf)) <= 0)
            cut = now_ms() - start;
    }
    close(fd);
    ck_assert_msg(cut >= 1800 && cut <= 5000,
                  "a trickling request was cut after %" PRId64 " ms", cut);
    ck_assert(gate_sample(
                  "qgate_connections_shed_total{reason=\"deadline\"}") == 1.0);
    gate_stop();
}
END_TEST

/* Sends fixture `rel` as one POST on fd; returns the status of the
 * answer, read whole (by its Content-Length) within WAIT_MS, or -1. */
static int
post_on(int fd, const char *rel)
{
    char head[256], buf[8192], *end, *cl;
    size_t len, got = 0;
    char *body = tu_fixture(rel, &len);
    int64_t until = now_ms() + WAIT_MS;
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n",
             WEBHOOK, len);
    ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    ck_assert_int_eq(write(fd, body, len), (ssize_t)len);
    free(body);
    while (now_ms() < until && got < sizeof(buf) - 1) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        if ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) == NULL)
            continue;
        cl = strstr(buf, "\r\nContent-Length:"); /* as MHD writes it */
        if (cl && cl < end &&
            got >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
            return atoi(buf + 9);
    }
    return -1;
}

/*
 * On a kept-alive connection the request deadline runs from the request's
 * first line, not from the last answer: a pause longer than
 * --request-timeout between two deliveries is fine.  The wait for the
 * next request is bounded by --timeout, absolutely: trickling bytes that
 * never make a request line does not extend it.
 */
START_TEST(test_hostile_keepalive_bounds)
{
    const char *opts[] = {"--request-timeout", "2", "--timeout", "4", NULL};
    struct pollfd p;
    int64_t start, cut = 0;
    char buf[512];
    int fd;

    gate_start(opts);
    ck_assert_int_ge(fd = connect_gate(), 0);
    ck_assert_int_eq(post_on(fd, walk_in_files[0]), 200);
    ck_assert_msg(!closed_within(fd, 3000), "closed while kept alive");
    ck_assert_int_eq(post_on(fd, walk_in_files[1]), 200);
    start = now_ms();
    while (!cut && now_ms() - start < 10000) {
        (void)!write(fd, "a", 1);
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 300) > 0 && read(fd, buf, sizeof(buf)) <= 0)
            cut = now_ms() - start;
    }
    close(fd);
    ck_assert_msg(
        cut >= 3500 && cut <= 7000,
        "a kept-alive connection trickling was cut after %" PRId64 " ms", cut);
    ck_assert(gate_sample("qgate_connections_shed_total{reason=\"idle\"}") ==
              1.0);
    gate_stop();
}
END_TEST

/* Raises this process's limit on open files to n, or fails the test. */
static void
want_open_files(rlim_t n)
{
    struct rlimit rl;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        rl.rlim_max = n; /* only root may; then so be it */
    rl.rlim_cur = n;
    ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0,
                  "this test needs %lu open files (ulimit -n)",
                  (unsigned long)n);
}

/* A crowd of clients from one address, each trickling a header byte a
 * second; one the gate closes comes back after 0.5 s. */
#define CROWD_MAX 1500

typedef struct crowd {
    int n;
    const char *from;
    int fd[CROWD_MAX];
    int64_t next[CROWD_MAX]; /* when to send the next byte, or reconnect */
    atomic_int stop;
    atomic_int connected; /* the whole crowd connected once */
    atomic_long cut;      /* connections the gate closed */
} crowd;

/* A connection from address `from` to the gate, its request begun; -1
 * when the gate did not take it within 0.2 s. */
static int
trickler(const char *from)
{
    static const char head[] = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\n"
                               "X-Slow: ";
    struct timeval tv = {0, 200000};
    struct sockaddr_in src, dst;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    inet_pton(AF_INET, from, &src.sin_addr);
    dst = src;
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)gate_port);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 ||
        write(fd, head, sizeof(head) - 1) != (ssize_t)sizeof(head) - 1) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void *
crowd_run(void *arg)
{
    static struct pollfd p[CROWD_MAX];
    crowd *c = arg;
    char buf[512];
    int64_t now;
    int i;

    for (i = 0; i < c->n; i++) {
        c->fd[i] = trickler(c->from);
        c->next[i] = now_ms() + 1000;
    }
    atomic_store(&c->connected, 1);
    while (!atomic_load(&c->stop)) {
        for (i = 0; i < c->n; i++) {
            p[i].fd = c->fd[i];
            p[i].events = POLLIN;
            p[i].revents = 0;
        }
        poll(p, (nfds_t)c->n, 50);
        now = now_ms();
        for (i = 0; i < c->n; i++) {
            if (c->fd[i] >= 0 && p[i].revents &&
                read(c->fd[i], buf, sizeof(buf)) <= 0) {
                close(c->fd[i]);
                c->fd[i] = -1;
                c->next[i] = now + 500;
                atomic_fetch_add(&c->cut, 1);
            }
            if (now < c->next[i])
                continue;
            if (c->fd[i] < 0)
                c->fd[i] = trickler(c->from);
            else
                (void)!write(c->fd[i], "a", 1);
            c->next[i] = now + (c->fd[i] < 0 ? 500 : 1000);
        }
    }
    for (i = 0; i < c->n; i++)
        if (c->fd[i] >= 0)
            close(c->fd[i]);
    return NULL;
}

/*
 * Slowloris, as the hardening review ran it: 1,500 connections from
 * 127.0.0.2 trickle their headers, coming back when closed.  Deliveries
 * from 127.0.0.1 are answered within 2 s all along.
 *   0: the defaults: --max-per-address keeps the crowd to 256 slots.
 *   1: no limit per address, so the crowd fills the table: the
 *      connections waiting longest for a whole request make room.
 */
START_TEST(test_hostile_slowloris_crowd)
{
    const char *opts[] = {"--max-per-address", "4096", NULL};
    static crowd c;
    pthread_t th;
    int64_t start, worst = 0;
    long long id = 80000 + _i * 1000;
    size_t len;
    char *body;
    answer a;
    int i;

    want_open_files(CROWD_MAX + 1024 + 256);
    gate_start(_i == 1 ? opts : NULL);
    memset(&c, 0, sizeof(c));
    c.n = CROWD_MAX;
    c.from = "127.0.0.2";
    ck_assert_int_eq(pthread_create(&th, NULL, crowd_run, &c), 0);
    for (i = 0; i < 30000 / 20 && !atomic_load(&c.connected); i++)
        sleep_ms(20);
    ck_assert(atomic_load(&c.connected));
    sleep_ms(1000);
    for (start = now_ms(); now_ms() - start < 5000; sleep_ms(250)) {
        ck_assert_ptr_nonnull(body = join_body(id++, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        free(body);
        ck_assert_msg(a.status == 200 && a.ms < 2000,
                      "beside the crowd: %ld in %" PRId64 " ms", a.status,
                      a.ms);
        if (a.ms > worst)
            worst = a.ms;
        answer_free(&a);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    ck_assert_msg(atomic_load(&c.cut) > 0, "the crowd was never cut");
    if (_i == 1)
        ck_assert(gate_sample("qgate_connections_shed_total{reason=\"full\"}") >
                  0.0);
    gate_stop();
}
END_TEST

/* The gate's soft limit on open files, from /proc, or -1. */
static long
gate_open_files(void)
{
    char path[64], *text, *line;
    long n = -1;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)gate_pid);
    text = read_from(path, 0);
    if ((line = strstr(text, "Max open files")) != NULL)
        n = strtol(line + strlen("Max open files"), NULL, 10);
    free(text);
    return n;
}

/*
 * The gate fits its limit on open files to --max-connections: it raises
 * the soft limit when the hard one allows, else lowers --max-connections
 * and says so; either way a crowd of idle connections beyond what fits
 * holds up nobody, because the oldest make room.
 */
START_TEST(test_hostile_open_files_fit)
{
    enum { CROWD = 170 }; /* more than 136, within this process's 200 */
    struct rlimit rl;
    int fds[CROWD], i;
    off_t from;
    char *text;
    answer a;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_max >= 1024 + 64, "needs ulimit -Hn of 1088");
    rl.rlim_cur = 200;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    from = file_size(logpath);
    gate_start(NULL);
    ck_assert_int_eq(gate_open_files(), 1024 + 64);
    gate_stop();

    rl.rlim_max = 200; /* this test's process only */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    gate_start(NULL);
    text = read_from(logpath, from);
    ck_assert_msg(strstr(text, "lowered to fit") &&
                      strstr(text, "\"max_connections\":136"),
                  "%s", text);
    free(text);
    for (i = 0; i < CROWD; i++)
        ck_assert_int_ge(fds[i] = connect_gate(), 0);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200 && a.ms < 2000,
                  "beside %d idle connections, 136 allowed: %ld in %" PRId64
                  " ms",
                  CROWD, a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        close(fds[i]);
    gate_stop();
}
END_TEST

/*
 * A client that closes in the middle of its body: nothing is recorded
 * (the delivery never arrived), nothing is answered, and the gate goes on
 * serving.
 */
START_TEST(test_hostile_close_mid_body)
{
    char head[256];
    size_t len;
    char *body = tu_fixture(walk_in_files[0], &len);
    qg_store *st;
    qg_ticket t;
    answer a;
    int fd, i;

    gate_start(NULL);
    for (i = 0; i < 20; i++) {
        ck_assert_int_ge(fd = connect_gate(), 0);
        snprintf(head, sizeof(head),
                 "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n",
                 WEBHOOK, len);
        ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
        ck_assert_int_eq(write(fd, body, len / 2), (ssize_t)(len / 2));
        close(fd);
    }
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    qg_store_close(st);
    free(body);
}
END_TEST

/*
 * Many connections at once.  A crowd of idle connections within
 * --max-connections holds up nobody; one beyond it fills every slot, and
 * the others wait in the listen queue until the idle ones time out
 * (--timeout): the gate is never stuck.
 */
START_TEST(test_hostile_many_connections)
{
    enum { CROWD = 200 };
    const char *opts[] = {"--max-connections", "64", "--timeout", "2", NULL};
    int fds[CROWD], i, n = 0;
    answer a;

    gate_start(NULL);
    for (i = 0; i < CROWD; i++)
        if ((fds[i] = connect_gate()) >= 0)
            n++;
    ck_assert_int_eq(n, CROWD);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200 && a.ms < 3000,
                  "beside %d idle connections: %ld in %" PRId64 " ms", CROWD,
                  a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        close(fds[i]);
    gate_stop();

    gate_start(opts);
    for (i = 0; i < CROWD; i++)
        fds[i] = connect_gate();
    post_fixture(walk_in_files[1], &a);
    ck_assert_msg(a.status == 200 && a.ms < 10000,
                  "behind %d idle connections, 64 allowed: %ld in %" PRId64
                  " ms",
                  CROWD, a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    gate_stop();
}
END_TEST

/* An unsigned delivery of about n bytes: a well-formed envelope whose
 * signature is zeros (unauthenticated).  malloc'd. */
static char *
unsigned_body(size_t n, size_t *len)
{
    static const char head[] = "{\"payload\":{\"event\":\"live_queue_created\","
                               "\"pad\":\"";
    static const char tail[] = "\"},\"signature\":\"";
    size_t pad = n > 200 ? n - 200 : 1, at = 0;
    char *b = malloc(n + 256);

    ck_assert_ptr_nonnull(b);
    memcpy(b, head, sizeof(head) - 1);
    at = sizeof(head) - 1;
    memset(b + at, 'x', pad);
    at += pad;
    memcpy(b + at, tail, sizeof(tail) - 1);
    at += sizeof(tail) - 1;
    memset(b + at, '0', 64);
    at += 64;
    memcpy(b + at, "\"}\n", 3);
    *len = at + 3;
    return b;
}

/* Posts an unsigned body of `size` bytes n times; each must get `status`. */
static void
post_unsigned(int n, size_t size, long status)
{
    size_t len;
    char *body = unsigned_body(size, &len);
    answer a;
    int i;

    for (i = 0; i < n; i++) {
        http("POST", WEBHOOK, as_json, body, len, &a);
        ck_assert_msg(a.status == status, "unsigned delivery %d: %ld %s", i,
                      a.status, a.body);
        answer_free(&a);
    }
    free(body);
}

/* The store's file, in bytes. */
static off_t
store_bytes(void)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/data.mdb", db);
    return file_size(path);
}

/*
 * Unauthenticated junk does not fill the disk: 1,000 unsigned bodies of
 * 100 KB (100 MB sent, the rate limit lifted) grow the store by less than
 * 10 MB, because only a prefix of each is kept.
 */
START_TEST(test_hostile_unsigned_store_growth)
{
    const char *opts[] = {"--unsigned-rate", "1000000", "--unsigned-burst",
                          "1000000", NULL};
    answer a;
    off_t before, after;
    qg_store *st;
    qg_rejections *r = NULL;
    qg_rejection rej;
    size_t len;
    int n = 0;

    free(unsigned_body(100 * 1000, &len));
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    before = store_bytes();
    post_unsigned(1000, 100 * 1000, 401);
    gate_stop();
    after = store_bytes();
    ck_assert_msg(after - before < 10 * 1000 * 1000,
                  "1000 unsigned bodies of 100 KB grew the store by %lld "
                  "bytes",
                  (long long)(after - before));
    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while (qg_rejections_next(r, &rej) == 0) {
        ck_assert_int_eq(rej.verdict, QG_UNAUTHENTICATED);
        ck_assert_int_eq(rej.truncated, 1);
        ck_assert_uint_eq(rej.received_len, len);
        n++;
    }
    qg_rejections_close(r);
    qg_store_close(st);
    ck_assert_int_eq(n, 1000);
}
END_TEST

/*
 * Unsigned deliveries from one address beyond --unsigned-burst get 429
 * with Retry-After and are not recorded; a signed delivery from the same
 * address still passes.
 */
START_TEST(test_hostile_unsigned_rate_limited)
{
    const char *opts[] = {"--unsigned-rate", "6", "--unsigned-burst", "5",
                          NULL};
    char retry[32];
    size_t len;
    char *body = unsigned_body(1000, &len);
    qg_store *st;
    qg_rejections *r = NULL;
    qg_rejection rej;
    answer a;
    int n = 0;

    gate_start(opts);
    post_unsigned(5, 1000, 401);
    http("POST", WEBHOOK, as_json, body, len, &a);
    ck_assert_msg(a.status == 429 && same(jstr(a.json, "code"), "rate_limited"),
                  "%ld %s", a.status, a.body);
    ck_assert_ptr_nonnull(head_value(&a, "Retry-After", retry, sizeof(retry)));
    ck_assert_msg(atoi(retry) >= 1 && atoi(retry) <= 11, "Retry-After: %s",
                  retry);
    answer_free(&a);
    post_unsigned(3, 1000, 429);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200, "a signed delivery: %ld", a.status);
    answer_free(&a);
    ck_assert(gate_sample("qgate_unsigned_rate_limited_total") == 4.0);
    gate_stop();
    free(body);
    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while (qg_rejections_next(r, &rej) == 0)
        n++;
    qg_rejections_close(r);
    qg_store_close(st);
    ck_assert_int_eq(n, 5);
}
END_TEST

/*
 * The rejection log's unsigned entries stay under --max-unsigned-log; the
 * oldest are dropped, and /metrics, `qgate rejected` and `qgate stats`
 * count them.
 */
START_TEST(test_hostile_unsigned_log_bounded)
{
    const char *opts[] = {"--unsigned-rate",
                          "1000000",
                          "--unsigned-burst",
                          "1000000",
                          "--max-unsigned-log",
                          "65536",
                          NULL};
    const char *stats[] = {"stats", "--json", "--db", db, NULL};
    const char *rejected[] = {"rejected", "--db", db, NULL};
    char out[8192], want[64];
    off_t from;
    double dropped;
    char *text;

    gate_start(opts);
    post_unsigned(100, 10000, 401);
    dropped = gate_sample("qgate_rejections_dropped_total");
    gate_stop();
    /* each entry is about 3.3 KB: 65536 bytes hold 19 of them */
    ck_assert_msg(dropped >= 75 && dropped <= 90, "dropped %g", dropped);
    ck_assert_int_eq(run_cli(stats, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "\"refused_dropped\":%.0f,", dropped);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof(want), "\"refused\":%.0f,", 100 - dropped);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    from = file_size(logpath);
    ck_assert_int_eq(run_cli(rejected, out, sizeof(out)), 1);
    text = read_from(logpath, from);
    snprintf(want, sizeof(want), "%.0f older unauthenticated", dropped);
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    free(text);
}
END_TEST

Suite *gate_hostile_suite(void);

Suite *
gate_hostile_suite(void)
{
    Suite *s = suite_create("gate_hostile");
    TCase *tc = tcase_create("Hostile");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hostile_slowloris);
    tcase_add_test(tc, test_hostile_request_deadline);
    tcase_add_test(tc, test_hostile_open_files_fit);
    tcase_add_test(tc, test_hostile_keepalive_bounds);
    tcase_add_loop_test(tc, test_hostile_slowloris_crowd, 0, 2);
    tcase_add_test(tc, test_hostile_close_mid_body);
    tcase_add_test(tc, test_hostile_many_connections);
    tcase_add_test(tc, test_hostile_unsigned_store_growth);
    tcase_add_test(tc, test_hostile_unsigned_rate_limited);
    tcase_add_test(tc, test_hostile_unsigned_log_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_hostile_suite());
}
