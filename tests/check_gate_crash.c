/*
 * check_gate_crash.c - `qgate serve` end to end: kill -9 and SIGTERM under
 * load: nothing acknowledged is lost.
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

/* ----- Crash ------------------------------------------------------------ */

/* 6 rounds by default; QG_CRASH_ROUNDS (up to CRASH_MAX_ROUNDS) for the
 * long run that ctest labels "crash". */
#define CRASH_ROUNDS     6
#define CRASH_MAX_ROUNDS 100
#define CRASH_CLIENTS    4
#define CRASH_PER_ROUND  3000
#define CRASH_BASE       700000LL

enum { C_UNSENT, C_SENT, C_ACKED, C_OTHER };

/* Every CRASH_HELD_EVERY-th slot also sends a step of a ticket that never
 * joins (live-queue CRASH_HELD_BASE + slot): held, answered 202. */
#define CRASH_HELD_EVERY 10
#define CRASH_HELD_BASE  900000LL

static struct {
    atomic_int state[CRASH_MAX_ROUNDS * CRASH_PER_ROUND];
    atomic_int held[CRASH_MAX_ROUNDS * CRASH_PER_ROUND];
    atomic_long next;
    long end;
    atomic_int stop;
} crash;

/* Sends body (freed here), recording in *state whether the answer was the
 * one wanted: C_ACKED, or C_OTHER.  Returns 0, or -1 when there was no
 * body or no answer (the gate is gone). */
static int
crash_send(char *body, size_t len, atomic_int *state, long status,
           const char *verdict)
{
    CURLcode rc;
    answer a;

    if (body == NULL)
        return -1;
    atomic_store(state, C_SENT);
    rc = http_to(gate_port, "POST", WEBHOOK, as_json, body, len, &a);
    free(body);
    if (rc == CURLE_OK)
        atomic_store(state, a.status == status &&
                                    same(jstr(a.json, "verdict"), verdict)
                                ? C_ACKED
                                : C_OTHER);
    answer_free(&a);
    return rc == CURLE_OK ? 0 : -1;
}

static void *
crash_client(void *arg)
{
    long slot, guard;
    size_t len;
    char *body;

    (void)arg;
    for (guard = 0; guard < CRASH_PER_ROUND && !atomic_load(&crash.stop);
         guard++) {
        if ((slot = atomic_fetch_add(&crash.next, 1)) >= crash.end)
            break;
        body = join_body(CRASH_BASE + slot, &len);
        if (crash_send(body, len, &crash.state[slot], 200, "accepted"))
            break;
        if (slot % CRASH_HELD_EVERY)
            continue;
        body = served_body(CRASH_HELD_BASE + slot, &len);
        if (crash_send(body, len, &crash.held[slot], 202, "held"))
            break;
    }
    return NULL;
}

/* Whether live-queue id is held in st. */
static int
is_held(qg_store *st, long long id)
{
    qg_held_list *hl;
    qg_held h;
    int found = 0;

    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    while (!found && qg_held_next(hl, &h) == 0)
        found = h.live_queue_id == id;
    qg_held_close(hl);
    return found;
}

/* The HIS's acknowledged requests, sorted by delivery id, for lookups
 * that stay fast over a long crash run. */
static const his_req **his_sorted;
static size_t his_nsorted;

static int
by_delivery(const void *a, const void *b)
{
    return strcmp((*(const his_req *const *)a)->dkey,
                  (*(const his_req *const *)b)->dkey);
}

static void
his_index(void)
{
    size_t i;

    his_sorted = calloc(his.n + 1, sizeof(*his_sorted));
    ck_assert_ptr_nonnull(his_sorted);
    for (i = 0, his_nsorted = 0; i < his.n; i++)
        if (his.reqs[i].status == 200)
            his_sorted[his_nsorted++] = &his.reqs[i];
    qsort(his_sorted, his_nsorted, sizeof(*his_sorted), by_delivery);
}

/* The HIS's acknowledged request for step 1 of ticket t, or NULL. */
static const his_req *
his_find(uint64_t t)
{
    his_req want;
    const his_req *key = &want, **hit;

    snprintf(want.dkey, sizeof(want.dkey), "%" PRIu64 "-1", t);
    hit = bsearch(&key, his_sorted, his_nsorted, sizeof(*his_sorted),
                  by_delivery);
    return hit ? *hit : NULL;
}

static long
crash_rounds(void)
{
    const char *env = getenv("QG_CRASH_ROUNDS");
    long n = env ? strtol(env, NULL, 10) : CRASH_ROUNDS;

    return n < 1 ? 1 : n > CRASH_MAX_ROUNDS ? CRASH_MAX_ROUNDS : n;
}

/* After a kill: the store opens as it is (no repair step exists or is
 * needed) and every delivery of the round answered "accepted" is there,
 * once. */
static void
check_round(long round)
{
    qg_store *st = store_ro();
    long slot;
    qg_ticket t;

    for (slot = round * CRASH_PER_ROUND; slot < (round + 1) * CRASH_PER_ROUND;
         slot++) {
        if (atomic_load(&crash.state[slot]) != C_ACKED)
            continue;
        ck_assert_msg(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, CRASH_BASE + slot, &t) == 0 &&
                t.records == 1,
            "round %ld: live-queue %lld was acknowledged and is "
            "not in the store once",
            round, CRASH_BASE + slot);
        if (slot % CRASH_HELD_EVERY == 0 &&
            atomic_load(&crash.held[slot]) == C_ACKED)
            ck_assert_msg(is_held(st, CRASH_HELD_BASE + slot),
                          "round %ld: live-queue %lld was answered held and "
                          "is not held",
                          round, CRASH_HELD_BASE + slot);
    }
    qg_store_close(st);
}

/*
 * kill -9 under load, again and again: whatever the gate answered
 * "accepted" is in the store exactly once, after every round and at the
 * end, and on its way to the HIS (still in the outbox) or there already.
 * Run twice: the store written through the file, then in its map
 * (--writemap).
 */
START_TEST(test_kill9_keeps_acknowledged)
{
    /* chup: the HIS gets the bytes each step was accepted with */
    const char *opts[] = {"--upstream",
                          NULL,
                          "--upstream-format",
                          "chup",
                          "--forward-timeout",
                          "1",
                          "--reorder-window",
                          "3600",
                          NULL,
                          NULL};
    long rounds, sent = 0, acked = 0, unanswered = 0, kept = 0, lost = 0,
                 in_outbox = 0, at_his = 0, twice = 0, slot, held;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    qg_outbox_entry *box;
    pthread_t th[CRASH_CLIENTS];
    size_t nbox, i, len;
    qg_tickets *it;
    qg_finding fnd;
    qg_history *h;
    qg_record rec;
    qg_ticket t;
    qg_store *st;
    char *body;
    int ok;

    if (_i == 1)
        opts[8] = "--writemap";
    printf("crash: seed %u%s\n", seed, _i == 1 ? ", --writemap" : "");
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    for (rounds = 0; rounds < crash_rounds(); rounds++) {
        gate_start(opts);
        atomic_store(&crash.next, rounds * CRASH_PER_ROUND);
        crash.end = (rounds + 1) * CRASH_PER_ROUND;
        atomic_store(&crash.stop, 0);
        for (i = 0; i < CRASH_CLIENTS; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, crash_client, NULL),
                             0);
        sleep_ms(100 + (long)(rand_r(&seed) % 400));
        gate_kill();
        atomic_store(&crash.stop, 1);
        for (i = 0; i < CRASH_CLIENTS; i++)
            pthread_join(th[i], NULL);
        check_round(rounds);
    }
    /* once more, to forward what waits, and a clean stop */
    gate_start(opts);
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his.dropped, 0);
    his_index();

    st = store_ro();
    box = calloc((size_t)rounds * CRASH_PER_ROUND, sizeof(*box));
    ck_assert_ptr_nonnull(box);
    nbox = outbox_list(st, 0, box, (size_t)rounds * CRASH_PER_ROUND);
    for (slot = 0; slot < rounds * CRASH_PER_ROUND; slot++) {
        int s = atomic_load(&crash.state[slot]), rc, found = 0;

        if (s == C_UNSENT)
            continue;
        sent++;
        ck_assert_msg(s != C_OTHER,
                      "live-queue %lld: answered but not "
                      "accepted",
                      CRASH_BASE + slot);
        rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, CRASH_BASE + slot, &t);
        if (s == C_SENT) {
            unanswered++;
            if (rc == QG_NOTFOUND)
                continue;
        } else {
            acked++;
        }
        if (rc != 0 || t.records != 1) {
            lost++;
            fprintf(stderr, "live-queue %lld: %s, %u records\n",
                    CRASH_BASE + slot, qg_strerror(rc), rc ? 0 : t.records);
            continue;
        }
        kept += s == C_SENT;
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        ck_assert_int_eq(qg_history_next(h, &rec), 0);
        body = join_body(CRASH_BASE + slot, &len);
        ck_assert_msg(rec.body_len == len && memcmp(rec.body, body, len) == 0,
                      "live-queue %lld: the stored body differs",
                      CRASH_BASE + slot);
        qg_history_close(h);
        for (i = 0; i < nbox && !found; i++)
            found = box[i].ticket == t.id && box[i].seq == 1;
        if (found) {
            in_outbox++;
        } else {
            const his_req *q = his_find(t.id);

            if (q == NULL || q->len != len || memcmp(q->body, body, len)) {
                lost++;
                fprintf(stderr,
                        "live-queue %lld (ticket %" PRIu64
                        "): neither in the outbox nor at the HIS\n",
                        CRASH_BASE + slot, t.id);
            } else {
                at_his++;
            }
        }
        free(body);
    }
    /* every ticket whole; every step the HIS got was one the store holds */
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    while (qg_tickets_next(it, &t) == 0) {
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &fnd), 0);
        ck_assert_msg(!fnd.found, "ticket %" PRIu64 ": %s", t.id, fnd.what);
    }
    qg_tickets_close(it);
    /* each record and its chain entry committed together, or neither */
    {
        qg_chain_finding cf;

        ck_assert_int_eq(qg_store_verify_chain(st, NULL, &cf), 0);
        ck_assert_msg(cf.brk == QG_CHAIN_INTACT, "chain: %s", cf.what);
        ck_assert_uint_gt(cf.entries, 0);
    }
    for (i = 0; i < his.n; i++) {
        uint64_t tk = strtoull(his.reqs[i].ticket, NULL, 10);

        ck_assert_str_eq(his.reqs[i].seq, "1");
        ck_assert_int_eq(qg_history_open(st, tk, &h), 0);
        ck_assert_int_eq(qg_history_next(h, &rec), 0);
        ck_assert(rec.body_len == his.reqs[i].len &&
                  memcmp(rec.body, his.reqs[i].body, rec.body_len) == 0);
        qg_history_close(h);
    }
    /* a step acknowledged more than once: resent after a kill */
    for (i = 1; i < his_nsorted; i++)
        twice += strcmp(his_sorted[i - 1]->dkey, his_sorted[i]->dkey) == 0;
    free(his_sorted);
    his_sorted = NULL;
    qg_store_close(st);
    free(box);
    printf("crash: %ld rounds, %ld sent, %ld acknowledged, %ld unanswered "
           "(%ld of them recorded), %ld at the HIS (%ld sent twice), %ld "
           "still in the outbox, lost: %ld\n",
           rounds, sent, acked, unanswered, kept, at_his, twice, in_outbox,
           lost);
    ck_assert_int_gt(acked, 0);
    ck_assert_int_eq(lost, 0);
    /* held ones: every one answered 202 still held, none forwarded */
    st = store_ro();
    for (slot = 0, held = 0; slot < rounds * CRASH_PER_ROUND; slot++)
        if (atomic_load(&crash.held[slot]) == C_ACKED) {
            ck_assert(is_held(st, CRASH_HELD_BASE + slot));
            held++;
        }
    qg_store_close(st);
    printf("crash: %ld held deliveries acknowledged, all still held\n", held);
    ck_assert_int_gt(held, 0);
}
END_TEST

/*
 * SIGTERM while a delivery is half sent: the gate lets the delivery
 * finish and be answered, turns away with 503 a delivery that begins
 * meanwhile (before reading its body), then exits 0.
 */
START_TEST(test_sigterm_finishes_request_in_flight)
{
    struct sockaddr_in sin;
    char head[256], resp[4096];
    size_t len, got = 0;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    int64_t until;
    struct pollfd pfd;
    qg_ticket t;
    qg_store *st;
    answer a;
    int fd, status, n;
    ssize_t r;

    gate_start(NULL);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)gate_port);
    ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM, 0), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    n = snprintf(head, sizeof(head),
                 "POST " WEBHOOK " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 len);
    ck_assert_int_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    ck_assert_int_eq(send(fd, body, len / 2, MSG_NOSIGNAL), (ssize_t)(len / 2));
    sleep_ms(200);
    ck_assert_int_eq(kill(gate_pid, SIGTERM), 0);
    sleep_ms(300);
    ck_assert_msg(waitpid(gate_pid, &status, WNOHANG) == 0,
                  "the gate exited with a request in flight");

    /* a delivery begun meanwhile is turned away, nothing written */
    post_fixture(WALK_IN "02-alert.json", &a);
    expect(&a, 503, NULL, "stopping", "a delivery begun after SIGTERM");
    answer_free(&a);

    ck_assert_int_eq(send(fd, body + len / 2, len - len / 2, MSG_NOSIGNAL),
                     (ssize_t)(len - len / 2));
    pfd.fd = fd;
    pfd.events = POLLIN;
    until = now_ms() + WAIT_MS;
    while (got < sizeof(resp) - 1 && now_ms() < until) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) <= 0)
            break;
        got += (size_t)r;
    }
    resp[got] = '\0';
    close(fd);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0 &&
                      strstr(resp, "\"verdict\":\"accepted\"") != NULL,
                  "the request in flight got: %s", resp);
    status = gate_wait_exit(WAIT_MS);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x", status);
    free(body);

    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_int_eq(tu_count_rejections(st), 0);
    qg_store_close(st);
}
END_TEST

Suite *gate_crash_suite(void);

Suite *
gate_crash_suite(void)
{
    Suite *s = suite_create("gate_crash");
    TCase *tc = tcase_create("Crash");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 1200);
    tcase_add_loop_test(tc, test_kill9_keeps_acknowledged, 0, 2);
    tcase_add_test(tc, test_sigterm_finishes_request_in_flight);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_crash_suite());
}
