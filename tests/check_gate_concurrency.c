/*
 * check_gate_concurrency.c - `qgate serve` end to end: many clients at once:
 * conflicting steps and group commit.
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

/* ----- Concurrency ------------------------------------------------------ */

typedef struct shot {
    pthread_barrier_t *go;
    const char *body;
    size_t len;
    answer a;
} shot;

static void *
shoot(void *arg)
{
    shot *s = arg;

    pthread_barrier_wait(s->go);
    http_to(gate_port, "POST", WEBHOOK, as_json, s->body, s->len, &s->a);
    return NULL;
}

/* Fires n shots at once; each answer is left in its shot. */
static void
volley(shot *shots, size_t n)
{
    pthread_barrier_t go;
    pthread_t th[64];
    size_t i;

    ck_assert(n <= COUNT(th));
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (i = 0; i < n; i++) {
        shots[i].go = &go;
        ck_assert_int_eq(pthread_create(&th[i], NULL, shoot, &shots[i]), 0);
    }
    for (i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

#define CONFLICT_ROUNDS  5
#define CONFLICT_CLIENTS 16

/*
 * 16 clients post, at the same moment, conflicting next steps of one
 * queued ticket (Serving, No Show, Cancelled, Arrived, same timestamp,
 * four clients each).  The gate decides them one after another: what it
 * accepted is the ticket's history, a word of the machine, and everything
 * else was refused by the state it met.
 */
START_TEST(test_conflicting_steps_legal_history)
{
    static const struct {
        const char *state, *name;
    } steps[] = {
        {"{\"name\":\"SERVING\",\"value\":4}", "Serving"},
        {"{\"name\":\"NO_SHOW\",\"value\":6}", "No Show"},
        {"{\"name\":\"CANCELLED\",\"value\":7}", "Cancelled"},
        {"{\"name\":\"ARRIVED\",\"value\":3}", "Arrived"},
    };
    static shot shots[CONFLICT_ROUNDS][CONFLICT_CLIENTS];
    char *bodies[CONFLICT_ROUNDS][COUNT(steps)];
    size_t lens[CONFLICT_ROUNDS][COUNT(steps)], len, fixture_len, r, i, k;
    char *body, *fixture;
    qg_record recs[32];
    qg_history *h;
    qg_finding fnd;
    qg_ticket t;
    qg_store *st;
    unsigned records = 0, refused = 0;
    answer a;
    int rc;

    /* the generator writes what the fixtures hold */
    body = join_body(30001, &len);
    fixture = tu_fixture(WALK_IN "01-join-live-queue.json", &fixture_len);
    ck_assert(len == fixture_len && memcmp(body, fixture, len) == 0);
    free(body);
    free(fixture);

    gate_start(NULL);
    for (r = 0; r < CONFLICT_ROUNDS; r++) {
        ck_assert_ptr_nonnull(body = join_body(62001 + (long long)r, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        expect(&a, 200, "accepted", "none", "join");
        answer_free(&a);
        free(body);
        for (k = 0; k < COUNT(steps); k++) {
            bodies[r][k] =
                step_body(62001 + (long long)r, "live_queue_updated",
                          "2024-03-05T09:10:00+08:00", steps[k].state,
                          steps[k].name, &lens[r][k]);
            ck_assert_ptr_nonnull(bodies[r][k]);
        }
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            shots[r][i].body = bodies[r][i % COUNT(steps)];
            shots[r][i].len = lens[r][i % COUNT(steps)];
        }
        volley(shots[r], CONFLICT_CLIENTS);
    }
    gate_stop();

    st = store_ro();
    for (r = 0; r < CONFLICT_ROUNDS; r++) {
        uint32_t accepted_seq[COUNT(steps)] = {0}, n = 0;
        /* bit s: step s was answered "accepted"; the join is step 1 */
        uint32_t seen = 3;

        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, 62001 + (long long)r, &t), 0);
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        while (n < COUNT(recs) && (rc = qg_history_next(h, &recs[n])) == 0) {
            recs[n].body = NULL;
            n++;
        }
        qg_history_close(h);
        ck_assert(n >= 1 && n == t.records);
        /* a word of the machine */
        ck_assert(recs[0].from == QG_ST_NEW && recs[0].event == QG_EV_JOIN);
        for (k = 0; k < n; k++) {
            ck_assert_uint_eq(recs[k].seq, k + 1);
            ck_assert_int_eq(qg_machine_next(recs[k].from, recs[k].event),
                             (int)recs[k].to);
            if (k > 0)
                ck_assert_int_eq(recs[k].from, recs[k - 1].to);
        }
        ck_assert_int_eq(t.state, recs[n - 1].to);
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &fnd), 0);
        ck_assert_msg(!fnd.found, "ticket %" PRIu64 ": %s", t.id, fnd.what);

        /* each accepted answer is one record; each refusal met a state
         * of this history in which its event is illegal */
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            answer *s = &shots[r][i].a;
            const char *verdict = jstr(s->json, "verdict");
            int64_t seq = jint(s->json, "seq");
            qg_state from, to;
            qg_event ev;

            ck_assert_msg(s->rc == CURLE_OK && s->json, "round %zu: %s", r,
                          curl_easy_strerror(s->rc));
            if (!same(verdict, "accepted"))
                continue;
            ck_assert_int_eq(s->status, 200);
            ck_assert_msg(seq >= 2 && seq <= n, "accepted as step %" PRId64,
                          seq);
            ck_assert_msg(!(seen & (1u << seq)),
                          "two answers accepted as "
                          "step %" PRId64,
                          seq);
            seen |= 1u << seq;
            ck_assert_int_eq(qg_event_from_name(jstr(s->json, "event"), &ev),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "from"), &from),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "to"), &to), 0);
            ck_assert(recs[seq - 1].event == ev && recs[seq - 1].from == from &&
                      recs[seq - 1].to == to);
            accepted_seq[i % COUNT(steps)] = (uint32_t)seq;
        }
        ck_assert_msg(seen == (2u << n) - 1,
                      "round %zu: %u records, accepted answers 0x%x", r, n,
                      seen);
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            answer *s = &shots[r][i].a;
            const char *verdict = jstr(s->json, "verdict");
            qg_state from;
            qg_event ev;
            int met = 0;

            if (same(verdict, "accepted"))
                continue;
            if (same(verdict, "duplicate")) {
                ck_assert_int_eq(s->status, 200);
                ck_assert_int_eq(jint(s->json, "seq"),
                                 accepted_seq[i % COUNT(steps)]);
                continue;
            }
            ck_assert_msg(s->status == 409 && same(verdict, "rejected"),
                          "round %zu: %ld %s", r, s->status, s->body);
            ck_assert_int_eq(qg_event_from_name(jstr(s->json, "event"), &ev),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "from"), &from),
                             0);
            ck_assert_msg(qg_machine_next(from, ev) < 0, "%s", s->body);
            for (k = 0; k < n; k++)
                met |= recs[k].to == from;
            ck_assert_msg(met, "refused in a state the ticket never had: %s",
                          s->body);
        }
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            refused += shots[r][i].a.status == 409;
            answer_free(&shots[r][i].a);
        }
        for (k = 0; k < COUNT(steps); k++)
            free(bodies[r][k]);
        records += n;
    }
    qg_store_close(st);
    printf("conflicts: %d rounds of %d clients: %u records, %u refused\n",
           CONFLICT_ROUNDS, CONFLICT_CLIENTS, records, refused);
}
END_TEST

#define GROUP_CLIENTS 32

/* 32 tickets posted at once with --durability group: all accepted, in
 * fewer commits than deliveries. */
START_TEST(test_group_commit_shares_commits)
{
    static const char *const opts[] = {"--durability", "group", NULL};
    shot shots[GROUP_CLIENTS];
    double count, sum;
    char *text;
    size_t i;

    gate_start(opts);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        shots[i].body = join_body(63001 + (long long)i, &shots[i].len);
        ck_assert_ptr_nonnull(shots[i].body);
    }
    volley(shots, GROUP_CLIENTS);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        expect(&shots[i].a, 200, "accepted", "none", "concurrent join");
        answer_free(&shots[i].a);
        free((char *)shots[i].body);
    }
    text = scrape();
    count = sample_value(text, "qgate_commit_batch_size_count");
    sum = sample_value(text, "qgate_commit_batch_size_sum");
    free(text);
    printf("group commit: %d deliveries in %g commits\n", GROUP_CLIENTS, count);
    ck_assert_msg(sum == GROUP_CLIENTS, "batch sizes sum to %g", sum);
    ck_assert_msg(count >= 1 && count < GROUP_CLIENTS,
                  "%d concurrent deliveries took %g commits", GROUP_CLIENTS,
                  count);
    gate_stop();
}
END_TEST

#define LOGGED_JOINS 16 /* new tickets in the burst, beside the conflicts */

/* The delivery lines of text (the gate's log), parsed, in file order. */
static size_t
delivery_lines(char *text, json_object **out, size_t cap)
{
    size_t n = 0;
    char *line, *save = NULL;
    json_object *o;

    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if ((o = json_tokener_parse(line)) == NULL)
            ck_abort_msg("a log line is not one JSON object: %s", line);
        if (same(jstr(o, "msg"), "delivery") && n < cap)
            out[n++] = o;
        else
            json_object_put(o);
    }
    return n;
}

/*
 * A burst of concurrent deliveries, group committed, then SIGTERM: the
 * log holds one whole "delivery" line for each answer, with the answer's
 * request id and status, none lost at the stop.  The lines of a group
 * are in commit order: read in file order, the lines of the ticket whose
 * conflicting steps raced each start from the state the line before
 * left it in.
 */
START_TEST(test_group_commit_logs_each_delivery)
{
    static const char *const steps[][2] = {
        {"{\"name\":\"SERVING\",\"value\":4}", "Serving"},
        {"{\"name\":\"NO_SHOW\",\"value\":6}", "No Show"},
        {"{\"name\":\"CANCELLED\",\"value\":7}", "Cancelled"},
        {"{\"name\":\"ARRIVED\",\"value\":3}", "Arrived"},
    };
    const char *opts[] = {"--durability", "group", "--log", logpath, NULL};
    static shot shots[GROUP_CLIENTS];
    json_object *lines[GROUP_CLIENTS + 8];
    char ids[GROUP_CLIENTS][24], *text, *body;
    const char *state = NULL;
    size_t n, i, k, len;
    int64_t ticket = 0;
    answer a;

    gate_start(opts);
    ck_assert_ptr_nonnull(body = join_body(64001, &len));
    http("POST", WEBHOOK, as_json, body, len, &a);
    expect(&a, 200, "accepted", "none", "join");
    answer_free(&a);
    free(body);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        k = i % COUNT(steps);
        shots[i].body =
            i < LOGGED_JOINS
                ? join_body(64101 + (long long)i, &shots[i].len)
                : step_body(64001, "live_queue_updated",
                            "2024-03-05T09:10:00+08:00", steps[k][0],
                            steps[k][1], &shots[i].len);
        ck_assert_ptr_nonnull(shots[i].body);
    }
    volley(shots, GROUP_CLIENTS);
    gate_stop();

    text = read_from(logpath, 0);
    n = delivery_lines(text, lines, COUNT(lines));
    free(text);
    ck_assert_msg(n == GROUP_CLIENTS + 1, "%zu delivery lines for %d answers",
                  n, GROUP_CLIENTS + 1);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        unsigned found = 0;

        head_value(&shots[i].a, "X-Request-Id", ids[i], sizeof(ids[i]));
        ck_assert_msg(ids[i][0], "answer %zu has no X-Request-Id", i);
        for (k = 0; k < n; k++)
            if (same(jstr(lines[k], "request_id"), ids[i])) {
                found++;
                ck_assert_int_eq(jint(lines[k], "status"), shots[i].a.status);
            }
        ck_assert_msg(found == 1, "request %s (%ld) has %u delivery lines",
                      ids[i], shots[i].a.status, found);
        answer_free(&shots[i].a);
        free((char *)shots[i].body);
    }
    for (k = 0; k < n; k++) {
        if (k == 0)
            ticket = jint(lines[k], "ticket"); /* the join, answered first */
        if (jint(lines[k], "ticket") == ticket && state)
            ck_assert_msg(same(jstr(lines[k], "from"), state),
                          "line %zu of the ticket's starts from %s, not %s", k,
                          jstr(lines[k], "from"), state);
        if (jint(lines[k], "ticket") == ticket)
            state = jstr(lines[k], "to");
    }
    for (k = 0; k < n; k++)
        json_object_put(lines[k]);
}
END_TEST

Suite *gate_concurrency_suite(void);

Suite *
gate_concurrency_suite(void)
{
    Suite *s = suite_create("gate_concurrency");
    TCase *tc = tcase_create("Concurrency");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_conflicting_steps_legal_history);
    tcase_add_test(tc, test_group_commit_shares_commits);
    tcase_add_test(tc, test_group_commit_logs_each_delivery);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_concurrency_suite());
}
