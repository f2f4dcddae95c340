/*
 * check_gate_pg.c - several `qgate serve` processes on one PostgreSQL
 * database, end to end (docs/gate.md, "Several gates"; docs/postgresql.md,
 * "Forwarding from several gates").
 *
 * Each case posts one generated day (gen_day: duplicates, illegal and
 * stale steps among the visits) to three gates at once, from several
 * client threads, and to a single LMDB gate the same way, then compares
 * the two stores.  Deliveries to different gates race, so "the same" is
 * asked of what Chup itself keeps the same: a ticket's steps are sent in
 * order, each once answered, by one client thread (the visit's patient
 * picks it), while the tickets are spread over the threads and each step
 * goes to the next gate in turn.  The histories (every ticket's steps,
 * their events and states, in order) and the refusals must then be the
 * same, and the HIS, shared by the three gates, must get each ticket's
 * steps in order, with no gap, a step sent twice only under its delivery
 * id.
 *
 * Then the same under trouble: PostgreSQL restarted mid-day (the gates
 * answer 503 meanwhile, /readyz says not ready, and each delivery a 2xx
 * acknowledged is kept), and a gate killed with SIGKILL mid-day (the
 * others take over its tickets once its claims' leases run out).  A
 * delivery not answered 2xx or 4xx is sent again, to the next gate, as
 * Chup would.
 *
 * The PostgreSQL server is a throwaway one (tu_pg_start()); without its
 * programs the binary exits 77 (skipped) unless CI is set.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/types.h>
#include <sys/wait.h>

#include <libpq-fe.h>

#include "gate_harness.h"

#define GATES   3
#define CLIENTS 6
#define TICKETS 150
#define DAY_MAX 4096

static char uri[96];  /* fits db[] (checked in pg_setup) */
static char lmdb[96]; /* the reference: one LMDB gate's store */

typedef struct gate_proc {
    pid_t pid;
    int port;
    char log[96];
} gate_proc;

static gate_proc gates[GATES];
static int ngates;

/* ----- the day ---------------------------------------------------------- */

typedef struct delivery {
    char *body;
    size_t len;
    int client;         /* the thread that sends it: by patient */
    atomic_long status; /* the last answer: 0 none, -1 no answer */
    atomic_int resent;  /* sent again after a 5xx or no answer */
} delivery;

static delivery day[DAY_MAX];
static size_t nday;

static void
day_load(void)
{
    char cmd[512], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "%s %d 17 %s %s/expected 3 2 2", GEN_DAY,
             TICKETS, secret, work);
    ck_assert_ptr_nonnull(f = popen(cmd, "r"));
    nday = 0;
    while ((len = getline(&line, &cap, f)) > 1) {
        const char *p = strstr(line, "\"registered_client_id\":");

        ck_assert(nday < DAY_MAX);
        ck_assert_ptr_nonnull(p);
        day[nday].body = strndup(line, (size_t)len - 1);
        day[nday].len = (size_t)len - 1;
        day[nday].client = (int)(atol(p + 23) % CLIENTS);
        nday++;
    }
    free(line);
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_uint_gt(nday, TICKETS * 5);
}

static void
day_reset(void)
{
    size_t i;

    for (i = 0; i < nday; i++) {
        atomic_store(&day[i].status, 0);
        atomic_store(&day[i].resent, 0);
    }
}

/* ----- the gates -------------------------------------------------------- */

/* Starts n gates on the store in db (a URI: the same for all), each with
 * its own log; the harness's single-gate globals are borrowed. */
static void
gates_start(int n, const char *const *extra)
{
    int i;

    for (i = 0; i < n; i++) {
        snprintf(gates[i].log, sizeof(gates[i].log), "%s/gate%d.log", work, i);
        snprintf(logpath, sizeof(logpath), "%s", gates[i].log);
        gate_start(extra);
        gates[i].pid = gate_pid;
        gates[i].port = gate_port;
        gate_pid = 0;
    }
    ngates = n;
}

/* SIGTERM to each gate still running: each must exit 0. */
static void
gates_stop(void)
{
    int i;

    for (i = 0; i < ngates; i++) {
        if (gates[i].pid <= 0)
            continue;
        gate_pid = gates[i].pid;
        snprintf(logpath, sizeof(logpath), "%s", gates[i].log);
        gate_stop();
        gates[i].pid = 0;
        gate_pid = 0;
    }
}

static void
gate_sigkill(int i)
{
    ck_assert_int_gt(gates[i].pid, 0);
    ck_assert_int_eq(kill(gates[i].pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(gates[i].pid, NULL, 0), gates[i].pid);
    gates[i].pid = 0;
}

/* ----- Chup, several threads ------------------------------------------- */

static atomic_long sent_count;
static atomic_int gate_dead[GATES];

/* Sends delivery d to the gates, starting at *turn, until it is answered
 * 2xx or 4xx; a 5xx or no answer goes to the next gate after a pause. */
static void
deliver(delivery *d, unsigned *turn)
{
    int tries;

    for (tries = 0; tries < 600; tries++) {
        unsigned g = (*turn)++ % (unsigned)ngates;
        answer a;
        CURLcode rc;
        long status;

        if (atomic_load(&gate_dead[g]))
            continue;
        rc = http_to(gates[g].port, "POST", WEBHOOK, as_json, d->body, d->len,
                     &a);
        status = rc == CURLE_OK ? a.status : -1;
        answer_free(&a);
        atomic_store(&d->status, status);
        if (status >= 200 && status < 500)
            break;
        atomic_store(&d->resent, 1);
        sleep_ms(50);
    }
    atomic_fetch_add(&sent_count, 1);
}

static void *
client(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned turn = (unsigned)me;
    size_t i;

    for (i = 0; i < nday; i++)
        if (day[i].client == me)
            deliver(&day[i], &turn);
    return NULL;
}

static pthread_t clients[CLIENTS];

static void
clients_start(void)
{
    intptr_t i;

    atomic_store(&sent_count, 0);
    for (i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&clients[i], NULL, client, (void *)i),
                         0);
}

static void
clients_join(void)
{
    int i;

    for (i = 0; i < CLIENTS; i++)
        pthread_join(clients[i], NULL);
}

/* ----- the stores compared ---------------------------------------------- */

static qg_store *
open_ro(const char *path)
{
    qg_store_options o;
    qg_store *st = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    o.path = path;
    o.flags = QG_RDONLY;
    rc = qg_store_open(&o, &st);
    ck_assert_msg(rc == 0, "%s: %s", path, qg_strerror(rc));
    return st;
}

/* The day, sent to one LMDB gate by the same threads in the same way:
 * the reference, in lmdb. */
static void
reference(void)
{
    static const char *const nosync[] = {"--durability", "nosync", NULL};

    snprintf(lmdb, sizeof(lmdb), "%s/lmdb", work);
    snprintf(db, sizeof(db), "%s", lmdb);
    day_reset();
    gates_start(1, nosync);
    clients_start();
    clients_join();
    gates_stop();
    day_reset();
}

/* Waits (up to ms) for the HIS to have taken every step. */
static void
wait_outbox_empty(long ms)
{
    qg_store *st = open_ro(uri);
    uint64_t depth = 1, dead = 1;
    int ok;

    WAIT_FOR(ok,
             qg_outbox_stats(st, &depth, NULL, &dead) == 0 && depth == 0 &&
                 dead == 0,
             ms);
    qg_store_close(st);
    ck_assert_msg(ok,
                  "the outbox still holds %" PRIu64 " steps (%" PRIu64 " dead)",
                  depth, dead);
}

/*
 * The HIS's requests for ticket t, in the order it answered them, as
 * his_ticket_order() reads them, but for one more case: the step last
 * acknowledged may come again (a gate died, or lost the database,
 * between the HIS's 2xx and its acknowledgement in the store, and
 * another gate sent it after the lease), under the same delivery id.
 * Anything else, a step skipped or one before the last acknowledged, is
 * out of order.  Returns the last step acknowledged.
 */
static uint32_t
his_order(uint64_t t, size_t *again)
{
    char want[24], id[48], err[256] = "";
    uint32_t acked = 0, seq;
    size_t i;

    snprintf(want, sizeof(want), "%" PRIu64, t);
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n && !err[0]; i++) {
        his_req *q = &his.reqs[i];

        if (strcmp(q->ticket, want) != 0)
            continue;
        seq = (uint32_t)strtoul(q->seq, NULL, 10);
        snprintf(id, sizeof(id), "%s-%" PRIu32, want, seq);
        if (seq == acked && acked > 0)
            (*again)++;
        else if (seq != acked + 1)
            snprintf(err, sizeof(err),
                     "ticket %s: request %zu is for step %s while step %" PRIu32
                     " was the last acknowledged",
                     want, i, q->seq, acked);
        if (!err[0] && strcmp(q->dkey, id) != 0)
            snprintf(err, sizeof(err),
                     "ticket %s: delivery id \"%s\", want "
                     "<the store id>-%s",
                     want, q->delivery, id);
        else if (q->status == 200 && seq == acked + 1)
            acked = seq;
    }
    pthread_mutex_unlock(&his.lock);
    ck_assert_msg(err[0] == '\0', "%s", err);
    return acked;
}

/* Every ticket's steps reached the HIS in order, each acknowledged, none
 * skipped; a step sent again only as the last one acknowledged, under
 * its delivery id.  Returns how many were sent again. */
static size_t
his_has_every_step(void)
{
    qg_store *st = open_ro(uri);
    qg_tickets *it = NULL;
    qg_ticket t;
    size_t tickets = 0, again = 0;
    uint32_t acked;

    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    while (qg_tickets_next(it, &t) == 0) {
        acked = his_order(t.id, &again);
        ck_assert_msg(acked == t.records,
                      "ticket %" PRIu64 ": the HIS acknowledged %" PRIu32
                      " of its %" PRIu32 " steps",
                      t.id, acked, t.records);
        tickets++;
    }
    qg_tickets_close(it);
    qg_store_close(st);
    ck_assert_uint_eq(tickets, TICKETS);
    return again;
}

/* Every delivery got a final answer, 2xx or 4xx, in the end (after
 * being sent again where it got a 5xx or none).  That a 2xx delivery was
 * kept is what the comparison with the LMDB gate shows: it is never sent
 * again, so a lost one would be missing from a history. */
static void
every_delivery_answered(void)
{
    size_t i;

    for (i = 0; i < nday; i++) {
        long st = atomic_load(&day[i].status);

        ck_assert_msg(st >= 200 && st < 500, "delivery %zu: last answer %ld", i,
                      st);
    }
}

/* The harness's store is the database from now on. */
static void
use_pg(void)
{
    memcpy(db, uri, sizeof(uri));
}

/* ----- the cases -------------------------------------------------------- */

/* The gates' options: forwarding to the HIS, each delivery committed
 * before it is answered; short_lease: a forward timeout of 1 s, so that a
 * claim's lease is its least, 10 s (forward.c). */
static const char *const *
pg_options(int short_lease)
{
    static char upstream[96];
    static const char *opts[] = {
        "--upstream", upstream, "--durability", "sync", NULL, NULL, NULL};

    snprintf(upstream, sizeof(upstream), "%s", his.url);
    opts[4] = short_lease ? "--forward-timeout" : NULL;
    opts[5] = short_lease ? "1" : NULL;
    return opts;
}

static void
pg_setup(void)
{
    setup();
    if (tu_pg_start(uri, sizeof(uri)) != 0)
        ck_abort_msg("tu_pg_start failed (its reason is on stderr)");
    memset(gates, 0, sizeof(gates));
    memset((void *)gate_dead, 0, sizeof(gate_dead));
    ngates = 0;
    day_load();
}

static void
pg_teardown(void)
{
    int i;
    size_t k;

    for (i = 0; i < GATES; i++)
        if (gates[i].pid > 0) {
            kill(gates[i].pid, SIGKILL);
            waitpid(gates[i].pid, NULL, 0);
            gates[i].pid = 0;
        }
    for (k = 0; k < nday; k++)
        free(day[k].body);
    nday = 0;
    tu_pg_stop();
    teardown();
}

/* The day, sent to one LMDB gate (the reference), then begun on
 * GATES gates on the database, forwarding to the HIS. */
static void
day_start(int short_lease)
{
    reference();
    his_start(HIS_ACCEPT);
    use_pg();
    gates_start(GATES, pg_options(short_lease));
    clients_start();
}

/* Once the clients are done: every delivery answered, every step
 * forwarded, the gates stopped; the database holds what the reference
 * does (what: TU_CMP_TICKETS, with or without TU_CMP_REFUSALS), and the
 * HIS got every step.  Returns how many steps the HIS got again. */
static size_t
day_end(unsigned what)
{
    qg_store *one, *many;

    every_delivery_answered();
    wait_outbox_empty(60000);
    gates_stop();
    one = open_ro(lmdb);
    many = open_ro(uri);
    tu_compare_stores(one, "one LMDB gate", many, "three gates on PostgreSQL",
                      what | TU_CMP_ALIKE, NULL);
    qg_store_close(one);
    qg_store_close(many);
    return his_has_every_step();
}

/* Three gates, one database, one day from six threads: the same
 * histories and refusals as one LMDB gate's, and the HIS gets every
 * ticket's steps in order. */
START_TEST(test_three_gates_as_one)
{
    size_t i, resent = 0;

    day_start(0);
    clients_join();
    for (i = 0; i < nday; i++)
        resent += (size_t)atomic_load(&day[i].resent);
    ck_assert_uint_eq(resent, 0); /* nothing went wrong */
    /* with every gate up, the leases keep each step to one gate */
    ck_assert_uint_eq(day_end(TU_CMP_TICKETS | TU_CMP_REFUSALS), 0);
}
END_TEST

static int
ready(int port)
{
    answer a;
    long status = 0;

    if (http_to(port, "GET", "/readyz", NULL, NULL, 0, &a) == CURLE_OK)
        status = a.status;
    answer_free(&a);
    return (int)status;
}

/* PostgreSQL goes down and comes back while the day is sent: the gates
 * answer 503 meanwhile (never 2xx), /readyz is not ready, then ready by
 * itself; what was answered 2xx is kept, what was not is sent again and
 * taken, and the stores end as one LMDB gate's. */
START_TEST(test_database_restarted_under_load)
{
    size_t i, resent = 0;
    int ok, g;

    day_start(0);
    WAIT_FOR(ok, atomic_load(&sent_count) > (long)nday / 3, 60000);
    ck_assert(ok);
    ck_assert_int_eq(tu_pg_kill(), 0);
    for (g = 0; g < GATES; g++) {
        WAIT_FOR(ok, ready(gates[g].port) == 503, WAIT_MS);
        ck_assert_msg(ok,
                      "gate %d: /readyz still ready with the database "
                      "down",
                      g);
    }
    sleep_ms(500);
    ck_assert_int_eq(tu_pg_restart(), 0);
    for (g = 0; g < GATES; g++) {
        WAIT_FOR(ok, ready(gates[g].port) == 200, WAIT_MS);
        ck_assert_msg(ok, "gate %d: /readyz not ready again", g);
    }
    clients_join();
    for (i = 0; i < nday; i++)
        resent += (size_t)atomic_load(&day[i].resent);
    ck_assert_uint_gt(resent, 0); /* the outage was felt */
    day_end(TU_CMP_TICKETS);
}
END_TEST

/* One of three gates is killed with SIGKILL mid-day: nothing it
 * acknowledged is lost, Chup's next tries go to the others, and once its
 * claims' leases have run out (10 s) the others forward its tickets: the
 * HIS gets every step, in order. */
START_TEST(test_gate_killed_under_load)
{
    int ok;

    day_start(1);
    WAIT_FOR(ok, atomic_load(&sent_count) > (long)nday / 2, 60000);
    ck_assert(ok);
    gate_sigkill(0);
    atomic_store(&gate_dead[0], 1);
    clients_join();
    day_end(TU_CMP_TICKETS);
}
END_TEST

/* A password in --db, in the URI's authority or as a parameter, is left
 * out of the gate's log: "***" instead. */
START_TEST(test_password_not_logged)
{
    char *text;
    size_t i;

    for (i = 0; i < 2; i++) {
        if (i == 0)
            snprintf(db, sizeof(db), "postgresql://qgate:s3cret@/qgate?host=%s",
                     tu_pg_dir());
        else
            snprintf(db, sizeof(db),
                     "postgresql:///qgate?host=%s&user=qgate&password=s3cret",
                     tu_pg_dir());
        snprintf(logpath, sizeof(logpath), "%s/password%zu.log", work, i);
        gate_start(NULL);
        gate_stop();
        text = read_from(logpath, 0);
        ck_assert_msg(strstr(text, "s3cret") == NULL, "%s", text);
        ck_assert_ptr_nonnull(
            strstr(text, i == 0 ? "qgate:***@" : "&password=***"));
        free(text);
    }
}
END_TEST

/* A gate on a database started with --retention 1 purges at start as on
 * a folder: the bodies of a visit three days old go, today's stay, and
 * the hash chain still verifies. */
START_TEST(test_retention_on_postgresql)
{
    char out[8192], *text = NULL;
    const char *apply[] = {
        "apply",
        "--db",
        db,
        "--secret-file",
        QG_FIXTURES "/secret",
        QG_FIXTURES "/visits/walk-in/01-join-live-queue.json",
        QG_FIXTURES "/visits/walk-in/02-alert.json",
        QG_FIXTURES "/visits/walk-in/03-move.json",
        QG_FIXTURES "/visits/no-show-cancelled/01-join-live-queue.json",
        NULL};
    const char *verify[] = {"verify", "--db", db, NULL};
    const char *opts[] = {"--retention", "1", NULL};
    PGconn *c;
    PGresult *r;
    int ok;

    snprintf(db, sizeof(db), "%s", uri);
    ck_assert_int_eq(run_cli(apply, out, sizeof(out)), 0);
    c = PQconnectdb(uri);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "UPDATE qgate.history SET received_us = received_us - "
                  "3 * 86400000000 WHERE ticket = 1");
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s",
                  PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(logpath, sizeof(logpath), "%s/retention.log", work);
    gate_start(opts);
    WAIT_FOR(ok,
             (free(text), text = read_from(logpath, 0),
              strstr(text, "\"msg\":\"purged\"") != NULL),
             WAIT_MS);
    ck_assert_msg(ok && strstr(text, "\"records\":3,\"rejections\":0,"),
                  "the gate did not log the purge of 3 records: %s", text);
    free(text);
    gate_stop();
    /* the steps were aged behind the chain's back: their leaves cover
     * received_us, so verify says so; the bodies' purge itself does not */
    ck_assert_int_eq(run_cli(verify, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "chain: step 1 of ticket 1 changed") != NULL,
                  "%s", out);
}
END_TEST

static Suite *
gate_pg_suite(void)
{
    Suite *s = suite_create("gate_pg");
    TCase *tc = tcase_create("several_gates");

    tcase_add_checked_fixture(tc, pg_setup, pg_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_three_gates_as_one);
    tcase_add_test(tc, test_database_restarted_under_load);
    tcase_add_test(tc, test_gate_killed_under_load);
    tcase_add_test(tc, test_password_not_logged);
    tcase_add_test(tc, test_retention_on_postgresql);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (!tu_pg_available())
        return 77;
    return tu_run(gate_pg_suite());
}
