/*
 * check_outbox.c - the outbox as a forwarder sees it: what accepted steps
 * queue, one by one and in batches; how entries are deferred, buried and
 * requeued; what survives reopening; and the answers to bad arguments.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "testutil.h"

#define WALK_IN     "visits/walk-in/"
#define NO_SHOW     "visits/no-show-cancelled/"
#define SERVED      "illegal/served-before-arrive/"
#define SMALL_MAP   ((size_t)256 << 10)
#define MAX_ENTRIES 16

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static qg_store *st;     /* opened with QG_OUTBOX */
static qg_engine *eng;   /* checks signatures with fixtures/secret */
static qg_engine *plain; /* skips signatures, for generated bodies */
static char own_dir[64]; /* a second store's directory; "" if none */
static qg_store *own;

/* ----- helpers ---------------------------------------------------------- */

/* Two tickets' steps taking turns: walk-in, no-show, walk-in, ... */
static const char *const interleaved[] = {
    WALK_IN "01-join-live-queue.json",
    NO_SHOW "01-join-live-queue.json",
    WALK_IN "02-alert.json",
    NO_SHOW "02-no-show.json",
    WALK_IN "03-move.json",
};

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Applies a fixture to s and fails the test unless it is accepted. */
static qg_result
must_accept(qg_store *s, const char *rel)
{
    qg_result res = tu_apply(eng, s, rel);

    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s (%s)", rel,
                  qg_verdict_name(res.verdict), res.detail);
    return res;
}

/*
 * Reads the outbox (dead = 0) or the dead list (dead = 1) into out, which
 * may be NULL to count only.  Every listing is in strictly increasing id
 * order.  Returns how many entries there are.
 */
static size_t
read_entries(qg_store *s, int dead, qg_outbox_entry *out, size_t max)
{
    qg_outbox *ob = NULL;
    qg_outbox_entry e;
    uint64_t last = 0;
    size_t n = 0;
    int rc;

    ck_assert_int_eq(qg_outbox_open(s, dead, &ob), 0);
    while ((rc = qg_outbox_next(ob, &e)) == 0) {
        ck_assert_uint_lt(n, max);
        ck_assert_msg(e.id > last, "id %llu listed after %llu",
                      (unsigned long long)e.id, (unsigned long long)last);
        last = e.id;
        if (out)
            out[n] = e;
        n++;
    }
    qg_outbox_close(ob);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    return n;
}

static uint64_t
depth_of(qg_store *s)
{
    uint64_t depth = 12345;

    ck_assert_int_eq(qg_outbox_stats(s, &depth, NULL, NULL), 0);
    return depth;
}

static uint64_t
dead_of(qg_store *s)
{
    uint64_t dead = 12345;

    ck_assert_int_eq(qg_outbox_stats(s, NULL, NULL, &dead), 0);
    return dead;
}

/* Applies the interleaved steps and reads the five entries they queue. */
static void
apply_interleaved(qg_outbox_entry q[COUNT(interleaved)])
{
    size_t i;

    for (i = 0; i < COUNT(interleaved); i++)
        must_accept(st, interleaved[i]);
    ck_assert_uint_eq(read_entries(st, 0, q, COUNT(interleaved)),
                      COUNT(interleaved));
    ck_assert_uint_ne(q[0].ticket, q[1].ticket);
}

/* Fixture bodies, as a batch takes them. */
static void
load_bodies(const char *const *files, size_t n, qg_body *out)
{
    size_t i;

    for (i = 0; i < n; i++)
        out[i].body = tu_fixture(files[i], &out[i].len);
}

static void
free_bodies(qg_body *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free((char *)b[i].body);
}

/* A second store, in a directory of its own. */
static qg_store *
own_open(size_t map_size, unsigned flags)
{
    qg_store_options o = {0};
    qg_store *s = NULL;

    snprintf(own_dir, sizeof(own_dir), "/tmp/qgate-outbox-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(own_dir));
    o.path = own_dir;
    o.map_size = map_size;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    ck_assert_int_eq(qg_store_open(&o, &s), 0);
    return s;
}

static void
setup(void)
{
    st = tu_store_reopen(tu_store_new(), QG_OUTBOX);
    eng = tu_engine();
}

static void
teardown(void)
{
    qg_engine_free(plain);
    plain = NULL;
    qg_engine_free(eng);
    eng = NULL;
    qg_store_close(own);
    own = NULL;
    if (own_dir[0]) {
        tu_remove_dir(own_dir);
        own_dir[0] = '\0';
    }
    qg_store_close(st);
    st = NULL;
    tu_store_remove();
}

/* ----- Core ------------------------------------------------------------- */

START_TEST(test_outbox_walk_in_queued_in_order)
{
    qg_outbox_entry q[MAX_ENTRIES];
    qg_ticket t;
    int64_t now;
    size_t i, n;

    for (i = 0; i < COUNT(tu_walk_in); i++)
        must_accept(st, tu_walk_in[i].file);
    now = now_us();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);

    /* read_entries() checks that ids strictly increase. */
    n = read_entries(st, 0, q, MAX_ENTRIES);
    ck_assert_uint_eq(n, COUNT(tu_walk_in));
    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(q[i].ticket, t.id);
        ck_assert_uint_eq(q[i].seq, i + 1);
        ck_assert_uint_eq(q[i].attempts, 0);
        ck_assert_int_le(q[i].next_attempt_us, now);
        ck_assert_int_gt(q[i].created_us, 0);
        ck_assert_int_eq(q[i].last_attempt_us, 0);
        ck_assert_str_eq(q[i].last_error, "");
    }
    ck_assert_uint_eq(dead_of(st), 0);
}
END_TEST

START_TEST(test_stats_oldest_moves_on_ack)
{
    qg_outbox_entry q[MAX_ENTRIES], after[MAX_ENTRIES];
    uint64_t depth, dead;
    int64_t oldest;
    size_t i, n;

    for (i = 0; i < COUNT(tu_walk_in); i++)
        must_accept(st, tu_walk_in[i].file);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), COUNT(tu_walk_in));

    ck_assert_int_eq(qg_outbox_stats(st, &depth, &oldest, &dead), 0);
    ck_assert_uint_eq(depth, COUNT(tu_walk_in));
    ck_assert_int_eq(oldest, q[0].created_us);
    ck_assert_uint_eq(dead, 0);

    ck_assert_int_eq(qg_outbox_ack(st, q[0].id), 0);
    ck_assert_int_eq(qg_outbox_stats(st, &depth, &oldest, &dead), 0);
    ck_assert_uint_eq(depth, COUNT(tu_walk_in) - 1);
    ck_assert_int_eq(oldest, q[1].created_us);
    ck_assert_int_ne(oldest, q[0].created_us);
    ck_assert_uint_eq(dead, 0);

    n = read_entries(st, 0, after, MAX_ENTRIES);
    ck_assert_uint_eq(n, COUNT(tu_walk_in) - 1);
    for (i = 0; i < n; i++)
        ck_assert_uint_eq(after[i].id, q[i + 1].id);
}
END_TEST

START_TEST(test_outbox_refused_steps_not_queued)
{
    static const struct {
        const char *file;
        qg_verdict want;
    } deliveries[] = {
        {SERVED "01-join-live-queue.json", QG_ACCEPTED},
        {SERVED "02-served.json", QG_REJECTED},
        {SERVED "01-join-live-queue.json", QG_DUPLICATE},
        {"malformed/client-created.json", QG_IGNORED},
        {"malformed/not-json.json", QG_MALFORMED},
        {"malformed/signature-other-payload.json", QG_UNAUTHENTICATED},
        {WALK_IN "01-join-live-queue.json", QG_ACCEPTED},
        {WALK_IN "01-join-live-queue.json", QG_DUPLICATE},
    };
    qg_outbox_entry q[MAX_ENTRIES];
    uint64_t tickets[COUNT(deliveries)], depth;
    qg_result res;
    size_t i, accepted = 0;

    for (i = 0; i < COUNT(deliveries); i++) {
        res = tu_apply(eng, st, deliveries[i].file);
        ck_assert_msg(res.verdict == deliveries[i].want, "%s: %s, want %s",
                      deliveries[i].file, qg_verdict_name(res.verdict),
                      qg_verdict_name(deliveries[i].want));
        if (res.verdict == QG_ACCEPTED)
            tickets[accepted++] = res.ticket;
        depth = depth_of(st);
        ck_assert_msg(depth == accepted, "after %s: depth %llu, want %zu",
                      deliveries[i].file, (unsigned long long)depth, accepted);
    }
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), accepted);
    for (i = 0; i < accepted; i++) {
        ck_assert_uint_eq(q[i].ticket, tickets[i]);
        ck_assert_uint_eq(q[i].seq, 1);
    }
}
END_TEST

START_TEST(test_outbox_off_queues_nothing)
{
    uint64_t depth = 1, dead = 1;
    int64_t oldest = 1;
    qg_ticket t;
    size_t i;

    /* A store never opened with QG_OUTBOX feeds no HIS. */
    qg_store_close(st);
    tu_store_remove();
    st = tu_store_new();
    for (i = 0; i < COUNT(tu_walk_in); i++)
        must_accept(st, tu_walk_in[i].file);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, COUNT(tu_walk_in));

    ck_assert_int_eq(qg_outbox_stats(st, &depth, &oldest, &dead), 0);
    ck_assert_uint_eq(depth, 0);
    ck_assert_int_eq(oldest, 0);
    ck_assert_uint_eq(dead, 0);
    ck_assert_uint_eq(read_entries(st, 0, NULL, 0), 0);
}
END_TEST

START_TEST(test_defer_records_attempt)
{
    char long_error[301];
    qg_outbox_entry q[MAX_ENTRIES], e;
    int64_t before, after, next;

    must_accept(st, tu_walk_in[0].file);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 1);

    before = now_us();
    next = before + 60 * 1000000LL;
    ck_assert_int_eq(qg_outbox_defer(st, q[0].id, next, "connection refused"),
                     0);
    after = now_us();
    ck_assert_uint_eq(read_entries(st, 0, &e, 1), 1);
    ck_assert_uint_eq(e.id, q[0].id);
    ck_assert_uint_eq(e.ticket, q[0].ticket);
    ck_assert_uint_eq(e.seq, q[0].seq);
    ck_assert_int_eq(e.created_us, q[0].created_us);
    ck_assert_uint_eq(e.attempts, 1);
    ck_assert_int_eq(e.next_attempt_us, next);
    ck_assert_str_eq(e.last_error, "connection refused");
    ck_assert_int_gt(e.last_attempt_us, 0);
    ck_assert_int_ge(e.last_attempt_us, before);
    ck_assert_int_le(e.last_attempt_us, after);

    /* An error longer than the entry holds is cut, not overflowed. */
    memset(long_error, 'e', 300);
    long_error[300] = '\0';
    ck_assert_int_eq(qg_outbox_defer(st, q[0].id, next + 1, long_error), 0);
    ck_assert_uint_eq(read_entries(st, 0, &e, 1), 1);
    ck_assert_uint_eq(e.attempts, 2);
    ck_assert_int_eq(e.next_attempt_us, next + 1);
    ck_assert_uint_eq(strlen(e.last_error), 127);
    ck_assert(memcmp(e.last_error, long_error, 127) == 0);
    ck_assert_uint_eq(dead_of(st), 0);
}
END_TEST

START_TEST(test_bury_takes_later_steps_of_ticket)
{
    qg_outbox_entry q[COUNT(interleaved)], dead[MAX_ENTRIES], live[MAX_ENTRIES];
    char held[64];
    int64_t before = qg_time_now_us();
    size_t i;

    apply_interleaved(q);
    ck_assert_int_eq(qg_outbox_defer(st, q[0].id, 0, "Connection refused"), 0);
    ck_assert_int_eq(qg_outbox_bury(st, q[0].id, "older than the maximum age"),
                     0);

    /* Walk-in's steps 1, 2, 3 are dead, in order, under their ids. */
    ck_assert_uint_eq(read_entries(st, 1, dead, MAX_ENTRIES), 3);
    for (i = 0; i < 3; i++) {
        ck_assert_uint_eq(dead[i].id, q[2 * i].id);
        ck_assert_uint_eq(dead[i].ticket, q[0].ticket);
        ck_assert_uint_eq(dead[i].seq, i + 1);
        ck_assert_int_ge(dead[i].gave_up_us, before);
    }
    /* The first says both why it was given up and what the HIS did. */
    ck_assert_str_eq(dead[0].gave_up, "older than the maximum age");
    ck_assert_str_eq(dead[0].last_error, "Connection refused");
    ck_assert_int_ge(dead[0].last_attempt_us, before);
    snprintf(held, sizeof(held), "held behind outbox entry %llu",
             (unsigned long long)q[0].id);
    for (i = 1; i < 3; i++) {
        ck_assert_msg(strstr(dead[i].gave_up, held) != NULL,
                      "dead entry %llu: \"%s\" does not say \"%s\"",
                      (unsigned long long)dead[i].id, dead[i].gave_up, held);
        ck_assert_str_eq(dead[i].last_error, "");
    }

    /* The other ticket's steps still wait, untouched. */
    ck_assert_uint_eq(read_entries(st, 0, live, MAX_ENTRIES), 2);
    for (i = 0; i < 2; i++) {
        ck_assert_uint_eq(live[i].id, q[2 * i + 1].id);
        ck_assert_uint_eq(live[i].ticket, q[1].ticket);
        ck_assert_str_eq(live[i].last_error, "");
    }
    ck_assert_uint_eq(depth_of(st), 2);
    ck_assert_uint_eq(dead_of(st), 3);
}
END_TEST

/* Cuts the value of dead entry id back to the 168 bytes 0.1 wrote, with
 * LMDB itself, as a store written by 0.1 holds it. */
static void
cut_to_0_1(uint64_t id)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char key[8], val[168];
    MDB_val k = {8, key}, v;
    int i;

    for (i = 0; i < 8; i++)
        key[i] = (unsigned char)(id >> (56 - 8 * i));
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, tu_store_dir(), 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "dead", 0, &dbi), 0);
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    ck_assert_uint_eq(v.mv_size, 304);
    memcpy(val, v.mv_data, sizeof(val));
    v.mv_size = sizeof(val);
    v.mv_data = val;
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A dead entry written by 0.1 (168 bytes, its reason in last_error) is
 * still read, listed and sent again. */
START_TEST(test_dead_entry_of_0_1_still_read)
{
    qg_outbox_entry q[COUNT(interleaved)], dead[MAX_ENTRIES];
    uint64_t moved = 0;

    apply_interleaved(q);
    ck_assert_int_eq(qg_outbox_defer(st, q[0].id, 0, "HTTP 500"), 0);
    ck_assert_int_eq(qg_outbox_bury(st, q[0].id, "gave up"), 0);
    qg_store_close(st);
    st = NULL;
    cut_to_0_1(q[0].id);
    st = tu_store_reopen(NULL, QG_OUTBOX);
    ck_assert_uint_eq(read_entries(st, 1, dead, MAX_ENTRIES), 3);
    ck_assert_uint_eq(dead[0].id, q[0].id);
    ck_assert_str_eq(dead[0].last_error, "HTTP 500");
    ck_assert_str_eq(dead[0].gave_up, "");
    ck_assert_int_eq(dead[0].gave_up_us, 0);
    ck_assert_str_ne(dead[1].gave_up, "");
    ck_assert_int_eq(qg_outbox_requeue(st, q[0].id, &moved), 0);
    ck_assert_uint_eq(moved, 3);
    ck_assert_uint_eq(dead_of(st), 0);
}
END_TEST

/* Once opened with QG_OUTBOX, a store queues whoever writes to it: a tu_step *
 * applied with the CLI into the gate's store still reaches the HIS. */
START_TEST(test_outbox_flag_stays_with_the_store)
{
    size_t i;

    st = tu_store_reopen(st, 0);
    for (i = 0; i < COUNT(tu_walk_in); i++)
        must_accept(st, tu_walk_in[i].file);
    ck_assert_uint_eq(depth_of(st), COUNT(tu_walk_in));
}
END_TEST

START_TEST(test_requeue_restores_order)
{
    qg_outbox_entry q[COUNT(interleaved)], live[MAX_ENTRIES];
    int64_t later = now_us() + 3600 * 1000000LL, now;
    uint64_t moved = 99;
    size_t i, n;

    apply_interleaved(q);
    ck_assert_int_eq(qg_outbox_defer(st, q[0].id, later, "timeout"), 0);
    ck_assert_int_eq(qg_outbox_defer(st, q[2].id, later, "timeout"), 0);
    ck_assert_int_eq(qg_outbox_bury(st, q[0].id, "gave up"), 0);
    ck_assert_uint_eq(dead_of(st), 3);

    /* One back brings its whole ticket back, so that none overtakes
     * another: same ids, due now, failures forgotten. */
    ck_assert_int_eq(qg_outbox_requeue(st, q[2].id, &moved), 0);
    ck_assert_uint_eq(moved, 3);
    ck_assert_uint_eq(dead_of(st), 0);
    ck_assert_uint_eq(read_entries(st, 0, live, MAX_ENTRIES),
                      COUNT(interleaved));

    /* Only dead entries can come back. */
    moved = 99;
    ck_assert_int_eq(qg_outbox_requeue(st, q[2].id, &moved), QG_NOTFOUND);
    ck_assert_uint_eq(moved, 0);
    ck_assert_int_eq(qg_outbox_requeue(st, q[4].id + 1000, NULL), QG_NOTFOUND);

    /* Buried again, all back at once. */
    ck_assert_int_eq(qg_outbox_bury(st, q[0].id, "gave up"), 0);
    ck_assert_uint_eq(dead_of(st), 3);
    /* The rest back: the outbox is as the steps queued it. */
    ck_assert_int_eq(qg_outbox_requeue(st, 0, &moved), 0);
    now = now_us();
    ck_assert_uint_eq(moved, 3);
    ck_assert_uint_eq(dead_of(st), 0);
    n = read_entries(st, 0, live, MAX_ENTRIES);
    ck_assert_uint_eq(n, COUNT(interleaved));
    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(live[i].id, q[i].id);
        ck_assert_uint_eq(live[i].ticket, q[i].ticket);
        ck_assert_uint_eq(live[i].seq, q[i].seq);
        ck_assert_uint_eq(live[i].attempts, 0);
        ck_assert_int_le(live[i].next_attempt_us, now);
        ck_assert_str_eq(live[i].last_error, "");
        ck_assert_str_eq(live[i].gave_up, "");
        ck_assert_int_eq(live[i].gave_up_us, 0);
    }

    /* With nothing dead, requeueing all moves none. */
    ck_assert_int_eq(qg_outbox_requeue(st, 0, &moved), 0);
    ck_assert_uint_eq(moved, 0);
}
END_TEST

START_TEST(test_outbox_ids_not_reused_after_ack)
{
    qg_outbox_entry q[MAX_ENTRIES], e;
    uint64_t moved = 0;
    size_t i, n;

    for (i = 0; i < 3; i++)
        must_accept(st, tu_walk_in[i].file);
    n = read_entries(st, 0, q, MAX_ENTRIES);
    ck_assert_uint_eq(n, 3);

    /* Through the dead list and back, then delivered. */
    ck_assert_int_eq(qg_outbox_bury(st, q[0].id, "gave up"), 0);
    ck_assert_uint_eq(dead_of(st), 3);
    ck_assert_int_eq(qg_outbox_requeue(st, 0, &moved), 0);
    ck_assert_uint_eq(moved, 3);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(qg_outbox_ack(st, q[i].id), 0);
    ck_assert_uint_eq(depth_of(st), 0);
    ck_assert_uint_eq(dead_of(st), 0);

    /* A forwarder that remembers what it sent must not see an old id. */
    must_accept(st, tu_walk_in[3].file);
    ck_assert_uint_eq(read_entries(st, 0, &e, 1), 1);
    ck_assert_msg(e.id > q[n - 1].id,
                  "new entry got id %llu, already used (up to %llu)",
                  (unsigned long long)e.id, (unsigned long long)q[n - 1].id);
    ck_assert_uint_eq(e.seq, 4);
}
END_TEST

START_TEST(test_outbox_survives_reopen)
{
    qg_outbox_entry q[MAX_ENTRIES], live[MAX_ENTRIES], dead[MAX_ENTRIES],
        d0[MAX_ENTRIES], l0[MAX_ENTRIES], e;
    int64_t later = now_us() + 60 * 1000000LL;
    size_t i, nl, nd;

    for (i = 0; i < 3; i++)
        must_accept(st, tu_walk_in[i].file);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 3);
    ck_assert_int_eq(qg_outbox_defer(st, q[1].id, later, "HTTP 503"), 0);
    ck_assert_int_eq(qg_outbox_bury(st, q[2].id, "HTTP 400"), 0);
    nl = read_entries(st, 0, l0, MAX_ENTRIES);
    nd = read_entries(st, 1, d0, MAX_ENTRIES);
    ck_assert_uint_eq(nl, 2);
    ck_assert_uint_eq(nd, 1);

    st = tu_store_reopen(st, QG_OUTBOX);
    ck_assert_uint_eq(read_entries(st, 0, live, MAX_ENTRIES), nl);
    ck_assert_uint_eq(read_entries(st, 1, dead, MAX_ENTRIES), nd);
    for (i = 0; i < nl + nd; i++) {
        const qg_outbox_entry *a = i < nl ? &l0[i] : &d0[i - nl];
        const qg_outbox_entry *b = i < nl ? &live[i] : &dead[i - nl];

        ck_assert_uint_eq(b->id, a->id);
        ck_assert_uint_eq(b->ticket, a->ticket);
        ck_assert_uint_eq(b->seq, a->seq);
        ck_assert_uint_eq(b->attempts, a->attempts);
        ck_assert_int_eq(b->created_us, a->created_us);
        ck_assert_int_eq(b->next_attempt_us, a->next_attempt_us);
        ck_assert_int_eq(b->last_attempt_us, a->last_attempt_us);
        ck_assert_str_eq(b->last_error, a->last_error);
        ck_assert_str_eq(b->gave_up, a->gave_up);
        ck_assert_int_eq(b->gave_up_us, a->gave_up_us);
    }
    ck_assert_uint_eq(live[1].attempts, 1);
    ck_assert_str_eq(live[1].last_error, "HTTP 503");
    ck_assert_str_eq(dead[0].gave_up, "HTTP 400");
    ck_assert_int_gt(dead[0].gave_up_us, 0);

    /* Numbering goes on after the highest id, dead or not. */
    must_accept(st, tu_walk_in[3].file);
    ck_assert_uint_eq(read_entries(st, 0, live, MAX_ENTRIES), 3);
    e = live[2];
    ck_assert_uint_gt(e.id, q[2].id);
    ck_assert_uint_eq(e.seq, 4);
}
END_TEST

/* ----- Batch ------------------------------------------------------------ */

START_TEST(test_batch_walk_in_matches_sequential)
{
    enum { N = COUNT(tu_walk_in) };
    const char *files[N];
    qg_body bodies[N];
    qg_result res[N];
    int rcs[N];
    qg_outbox_entry q[MAX_ENTRIES];
    qg_history *hb = NULL, *hs = NULL;
    qg_record rb, rs;
    qg_ticket seq_t;
    size_t i;
    int rc;

    for (i = 0; i < N; i++)
        files[i] = tu_walk_in[i].file;
    load_bodies(files, N, bodies);
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, bodies, N, res, rcs), 0);
    free_bodies(bodies, N);
    for (i = 0; i < N; i++) {
        ck_assert_msg(rcs[i] == 0, "%s: %s", files[i], qg_err_name(rcs[i]));
        ck_assert_msg(res[i].verdict == QG_ACCEPTED, "%s: %s (%s)", files[i],
                      qg_verdict_name(res[i].verdict), res[i].detail);
        ck_assert_int_eq(res[i].event, tu_walk_in[i].event);
        ck_assert_int_eq(res[i].from, tu_walk_in[i].from);
        ck_assert_int_eq(res[i].to, tu_walk_in[i].to);
        ck_assert_uint_eq(res[i].seq, i + 1);
        ck_assert_uint_eq(res[i].ticket, res[0].ticket);
    }

    /* The same files one by one, in a store of their own. */
    own = own_open(0, 0);
    for (i = 0; i < N; i++)
        must_accept(own, files[i]);
    ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, 30001, &seq_t), 0);
    ck_assert_int_eq(qg_history_open(st, res[0].ticket, &hb), 0);
    ck_assert_int_eq(qg_history_open(own, seq_t.id, &hs), 0);
    for (i = 0; (rc = qg_history_next(hb, &rb)) == 0; i++) {
        ck_assert_int_eq(qg_history_next(hs, &rs), 0);
        ck_assert_uint_eq(rb.seq, rs.seq);
        ck_assert_int_eq(rb.event, rs.event);
        ck_assert_int_eq(rb.from, rs.from);
        ck_assert_int_eq(rb.to, rs.to);
        ck_assert_uint_eq(rb.body_len, rs.body_len);
        ck_assert(memcmp(rb.body, rs.body, rb.body_len) == 0);
    }
    ck_assert_int_eq(rc, QG_NOTFOUND);
    ck_assert_int_eq(qg_history_next(hs, &rs), QG_NOTFOUND);
    qg_history_close(hb);
    qg_history_close(hs);
    ck_assert_uint_eq(i, N);

    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), N);
    for (i = 0; i < N; i++) {
        ck_assert_uint_eq(q[i].ticket, res[0].ticket);
        ck_assert_uint_eq(q[i].seq, i + 1);
    }
}
END_TEST

START_TEST(test_batch_same_body_twice)
{
    const char *const files[] = {tu_walk_in[0].file, tu_walk_in[0].file};
    qg_body bodies[COUNT(files)];
    qg_result res[COUNT(files)];
    int rcs[COUNT(files)];

    load_bodies(files, COUNT(files), bodies);
    ck_assert_int_eq(
        qg_engine_apply_batch(eng, st, bodies, COUNT(files), res, rcs), 0);
    free_bodies(bodies, COUNT(files));
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(rcs[1], 0);
    ck_assert_int_eq(res[0].verdict, QG_ACCEPTED);
    ck_assert_int_eq(res[1].verdict, QG_DUPLICATE);
    ck_assert_int_eq(res[1].reason, QG_R_REDELIVERY);
    ck_assert_uint_eq(res[1].seq, res[0].seq);
    ck_assert_uint_eq(res[1].ticket, res[0].ticket);
    ck_assert_uint_eq(depth_of(st), 1);
}
END_TEST

START_TEST(test_batch_illegal_step_logged)
{
    static const char *const files[] = {
        WALK_IN "01-join-live-queue.json",
        SERVED "02-served.json", /* a ticket never joined: refused */
        WALK_IN "02-alert.json",
    };
    qg_body bodies[COUNT(files)];
    qg_result res[COUNT(files)];
    int rcs[COUNT(files)];
    qg_rejections *r = NULL;
    qg_rejection rej;
    size_t i;

    load_bodies(files, COUNT(files), bodies);
    ck_assert_int_eq(
        qg_engine_apply_batch(eng, st, bodies, COUNT(files), res, rcs), 0);
    for (i = 0; i < COUNT(files); i++)
        ck_assert_msg(rcs[i] == 0, "%s: %s", files[i], qg_err_name(rcs[i]));
    ck_assert_int_eq(res[0].verdict, QG_ACCEPTED);
    ck_assert_int_eq(res[1].verdict, QG_REJECTED);
    ck_assert_int_eq(res[1].reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_uint_gt(res[1].rejection, 0);
    ck_assert_int_eq(res[2].verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res[2].ticket, res[0].ticket);
    ck_assert_uint_eq(res[2].seq, 2);

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_uint_eq(rej.id, res[1].rejection);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(rej.live_queue_id, 40001);
    ck_assert_uint_eq(rej.body_len, bodies[1].len);
    ck_assert(memcmp(rej.body, bodies[1].body, rej.body_len) == 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);
    free_bodies(bodies, COUNT(files));

    ck_assert_uint_eq(depth_of(st), 2);
}
END_TEST

START_TEST(test_batch_bad_body_refused_alone)
{
    const char *const files[] = {tu_walk_in[0].file, tu_walk_in[1].file};
    qg_body bodies[3];
    qg_result res[3];
    int rcs[3];
    qg_ticket t;

    load_bodies(files, 1, &bodies[0]);
    bodies[1].body = NULL;
    bodies[1].len = 5;
    load_bodies(files + 1, 1, &bodies[2]);
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, bodies, 3, res, rcs), 0);
    free((char *)bodies[0].body);
    free((char *)bodies[2].body);
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(rcs[1], QG_EINVAL);
    ck_assert_int_eq(rcs[2], 0);
    ck_assert_int_eq(res[0].verdict, QG_ACCEPTED);
    ck_assert_int_eq(res[2].verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res[2].seq, 2);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 2);
    ck_assert_uint_eq(depth_of(st), 2);

    /* An empty batch is a batch that did nothing. */
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, NULL, 0, NULL, NULL), 0);
    ck_assert_uint_eq(depth_of(st), 2);
}
END_TEST

START_TEST(test_batch_read_only_or_null)
{
    qg_body body;
    qg_result res;
    qg_ticket t;
    int rc = 12345;

    body.body = tu_fixture(tu_walk_in[0].file, &body.len);
    ck_assert_int_eq(qg_engine_apply_batch(NULL, st, &body, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_batch(eng, NULL, &body, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, NULL, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);

    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, &body, 1, &res, &rc),
                     QG_ERDONLY);
    free((char *)body.body);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    ck_assert_uint_eq(depth_of(st), 0);
}
END_TEST

/*
 * Joins made from walk-in/01 with another live-queue id.  The signature
 * no longer matches, so they go through an engine that skips it.
 */
#define ID_TEXT "\"id\":30001"

static char *
join_body(const char *tmpl, const char *at, long long id, size_t *len)
{
    size_t cap = strlen(tmpl) + 32;
    char *body = malloc(cap);
    int n;

    ck_assert_ptr_nonnull(body);
    n = snprintf(body, cap, "%.*s\"id\":%lld%s", (int)(at - tmpl), tmpl, id,
                 at + strlen(ID_TEXT));
    ck_assert(n > 0 && (size_t)n < cap);
    *len = (size_t)n;
    return body;
}

START_TEST(test_batch_map_grows)
{
    enum { TOTAL = 3000, PER_BATCH = 200, FIRST = 100001 };
    static qg_body bodies[PER_BATCH];
    static qg_result res[PER_BATCH];
    static int rcs[PER_BATCH];
    char path[128], *tmpl;
    const char *at;
    struct stat sb;
    qg_ticket t;
    size_t len, i;
    long long id, done;

    tmpl = tu_fixture(tu_walk_in[0].file, &len);
    at = strstr(tmpl, ID_TEXT);
    ck_assert_ptr_nonnull(at);
    ck_assert_int_eq(qg_engine_new(&plain), 0);
    qg_engine_require_signature(plain, 0);
    own = own_open(SMALL_MAP, QG_OUTBOX);

    for (done = 0; done < TOTAL; done += PER_BATCH) {
        for (i = 0; i < PER_BATCH; i++)
            bodies[i].body = join_body(tmpl, at, FIRST + done + (long long)i,
                                       &bodies[i].len);
        ck_assert_int_eq(
            qg_engine_apply_batch(plain, own, bodies, PER_BATCH, res, rcs), 0);
        free_bodies(bodies, PER_BATCH);
        for (i = 0; i < PER_BATCH; i++) {
            ck_assert_msg(rcs[i] == 0, "delivery %lld: %s", done + (long long)i,
                          qg_err_name(rcs[i]));
            ck_assert_msg(res[i].verdict == QG_ACCEPTED, "delivery %lld: %s",
                          done + (long long)i, res[i].detail);
        }
    }
    free(tmpl);

    /* The data file cannot be larger than the map: the map grew. */
    snprintf(path, sizeof(path), "%s/data.mdb", own_dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, (off_t)SMALL_MAP);

    for (id = FIRST; id < FIRST + TOTAL; id++) {
        ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, id, &t), 0);
        ck_assert_uint_eq(t.records, 1);
        ck_assert_int_eq(t.state, QG_ST_QUEUED);
    }
    ck_assert_uint_eq(depth_of(own), TOTAL);
    ck_assert_uint_eq(read_entries(own, 0, NULL, TOTAL), TOTAL);
}
END_TEST

/* ----- Errors ----------------------------------------------------------- */

static int
ack_op(qg_store *s, uint64_t id)
{
    return qg_outbox_ack(s, id);
}

static int
defer_op(qg_store *s, uint64_t id)
{
    return qg_outbox_defer(s, id, now_us(), "timeout");
}

static int
bury_op(qg_store *s, uint64_t id)
{
    return qg_outbox_bury(s, id, "gave up");
}

START_TEST(test_change_unknown_or_invalid_id)
{
    static const struct {
        const char *what;
        int (*op)(qg_store *, uint64_t);
    } ops[] = {
        {"ack", ack_op},
        {"defer", defer_op},
        {"bury", bury_op},
    };
    qg_outbox_entry q[MAX_ENTRIES], e;
    size_t i;

    must_accept(st, tu_walk_in[0].file);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 1);
    for (i = 0; i < COUNT(ops); i++) {
        ck_assert_msg(ops[i].op(st, q[0].id + 1000) == QG_NOTFOUND,
                      "%s of an unknown id", ops[i].what);
        ck_assert_msg(ops[i].op(st, 0) == QG_EINVAL, "%s of id 0", ops[i].what);
        ck_assert_msg(ops[i].op(NULL, q[0].id) == QG_EINVAL, "%s on no store",
                      ops[i].what);
    }

    /* None of them touched the real entry. */
    ck_assert_uint_eq(read_entries(st, 0, &e, 1), 1);
    ck_assert_uint_eq(e.id, q[0].id);
    ck_assert_uint_eq(e.attempts, 0);
    ck_assert_str_eq(e.last_error, "");
    ck_assert_uint_eq(dead_of(st), 0);
}
END_TEST

START_TEST(test_outbox_null_store_refused)
{
    qg_outbox *ob = NULL;
    uint64_t depth, dead, moved;
    int64_t oldest;

    ck_assert_int_eq(qg_outbox_open(NULL, 0, &ob), QG_EINVAL);
    ck_assert_int_eq(qg_outbox_open(st, 0, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_outbox_stats(NULL, &depth, &oldest, &dead), QG_EINVAL);
    ck_assert_int_eq(qg_outbox_requeue(NULL, 0, &moved), QG_EINVAL);
}
END_TEST

START_TEST(test_stats_outputs_optional)
{
    must_accept(st, tu_walk_in[0].file);
    ck_assert_int_eq(qg_outbox_stats(st, NULL, NULL, NULL), 0);
    qg_outbox_close(NULL);
    /* ... and the store is untouched. */
    ck_assert_uint_eq(depth_of(st), 1);
    ck_assert_uint_eq(dead_of(st), 0);
}
END_TEST

/* ----- the suite -------------------------------------------------------- */

Suite *outbox_suite(void);

/* ----- Resend ----------------------------------------------------------- */

/* Acknowledges every entry of the outbox: the HIS took them all. */
static void
ack_all(void)
{
    qg_outbox_entry q[MAX_ENTRIES];
    size_t n = read_entries(st, 0, q, MAX_ENTRIES), i;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(qg_outbox_ack(st, q[i].id), 0);
    ck_assert_uint_eq(depth_of(st), 0);
}

/* Delivered steps of both tickets are queued again by ticket, each
 * ticket's in event time (the walk-in's late alert at its place), and a
 * step still waiting is not queued twice. */
START_TEST(test_resend_every_ticket_in_ticket_order)
{
    static const char *const late[] = {
        WALK_IN "01-join-live-queue.json", NO_SHOW "01-join-live-queue.json",
        WALK_IN "03-move.json", WALK_IN "02-alert.json"};
    qg_outbox_entry q[MAX_ENTRIES];
    uint64_t queued = 9, waiting = 9, walk, noshow;
    qg_ticket t;
    size_t i;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 1200), 0);
    for (i = 0; i < COUNT(late); i++)
        must_accept(st, late[i]);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    walk = t.id;
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30003, &t), 0);
    noshow = t.id;
    ck_assert_uint_lt(walk, noshow);
    ack_all();

    ck_assert_int_eq(
        qg_outbox_resend(st, 0, INT64_MIN, INT64_MAX, &queued, &waiting), 0);
    ck_assert_uint_eq(queued, 4);
    ck_assert_uint_eq(waiting, 0);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 4);
    /* walk-in: join (seq 1), the late alert (seq 3), move (seq 2) */
    ck_assert_uint_eq(q[0].ticket, walk);
    ck_assert_uint_eq(q[0].seq, 1);
    ck_assert_uint_eq(q[1].ticket, walk);
    ck_assert_uint_eq(q[1].seq, 3);
    ck_assert_uint_eq(q[2].ticket, walk);
    ck_assert_uint_eq(q[2].seq, 2);
    ck_assert_uint_eq(q[3].ticket, noshow);
    ck_assert_uint_eq(q[3].seq, 1);

    /* all four are waiting now: none is queued twice */
    ck_assert_int_eq(
        qg_outbox_resend(st, 0, INT64_MIN, INT64_MAX, &queued, &waiting), 0);
    ck_assert_uint_eq(queued, 0);
    ck_assert_uint_eq(waiting, 4);
    ck_assert_uint_eq(depth_of(st), 4);
}
END_TEST

/* A ticket whose newest step still waits: the resent steps go first, and
 * the waiting one moves behind them with its attempts and error kept, so
 * that the HIS gets the ticket's steps in order. */
START_TEST(test_resend_waiting_step_moves_behind)
{
    qg_outbox_entry q[MAX_ENTRIES];
    uint64_t queued = 9, waiting = 9, walk, other;
    qg_ticket t;

    must_accept(st, tu_walk_in[0].file);
    must_accept(st, tu_walk_in[1].file);
    ack_all();
    must_accept(st, tu_walk_in[2].file);
    must_accept(st, NO_SHOW "01-join-live-queue.json");
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 2);
    ck_assert_int_eq(
        qg_outbox_defer(st, q[0].id, now_us() + 60000000, "HTTP 503"), 0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    walk = t.id;
    other = q[1].ticket;

    ck_assert_int_eq(
        qg_outbox_resend(st, walk, INT64_MIN, INT64_MAX, &queued, &waiting), 0);
    ck_assert_uint_eq(queued, 2);
    ck_assert_uint_eq(waiting, 1);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 4);
    /* the other ticket's entry stays where it was, before them all */
    ck_assert(q[0].ticket == other && q[0].seq == 1);
    ck_assert(q[1].ticket == walk && q[1].seq == 1);
    ck_assert(q[2].ticket == walk && q[2].seq == 2);
    ck_assert(q[3].ticket == walk && q[3].seq == 3);
    ck_assert_uint_eq(q[3].attempts, 1);
    ck_assert_str_eq(q[3].last_error, "HTTP 503");
    ck_assert_uint_gt(q[3].id, q[2].id);

    /* nothing new to send: nothing moves */
    ck_assert_int_eq(
        qg_outbox_resend(st, walk, INT64_MIN, INT64_MAX, &queued, &waiting), 0);
    ck_assert_uint_eq(queued, 0);
    ck_assert_uint_eq(read_entries(st, 0, q + 4, MAX_ENTRIES - 4), 4);
    ck_assert_uint_eq(q[7].id, q[3].id);
}
END_TEST

/* One ticket, or a window of received times; errors leave nothing. */
START_TEST(test_resend_one_ticket_or_window)
{
    uint64_t queued = 9, waiting = 9, walk;
    int64_t mid;
    qg_ticket t;
    qg_outbox_entry q[MAX_ENTRIES];

    must_accept(st, interleaved[0]);
    must_accept(st, interleaved[1]);
    usleep(2000);
    mid = now_us();
    usleep(2000);
    must_accept(st, interleaved[2]);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    walk = t.id;
    ack_all();

    ck_assert_int_eq(
        qg_outbox_resend(st, walk, INT64_MIN, INT64_MAX, &queued, &waiting), 0);
    ck_assert_uint_eq(queued, 2);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 2);
    ck_assert(q[0].ticket == walk && q[0].seq == 1);
    ck_assert(q[1].ticket == walk && q[1].seq == 2);
    ack_all();

    /* received since mid: the walk-in's alert alone */
    ck_assert_int_eq(qg_outbox_resend(st, 0, mid, INT64_MAX, &queued, &waiting),
                     0);
    ck_assert_uint_eq(queued, 1);
    ck_assert_uint_eq(read_entries(st, 0, q, MAX_ENTRIES), 1);
    ck_assert(q[0].ticket == walk && q[0].seq == 2);
    ack_all();
    /* received before mid: both joins */
    ck_assert_int_eq(qg_outbox_resend(st, 0, INT64_MIN, mid, &queued, &waiting),
                     0);
    ck_assert_uint_eq(queued, 2);
    ack_all();

    ck_assert_int_eq(
        qg_outbox_resend(st, 999, INT64_MIN, INT64_MAX, &queued, &waiting),
        QG_NOTFOUND);
    ck_assert_uint_eq(queued, 0);
    ck_assert_int_eq(qg_outbox_resend(st, 0, mid, mid, &queued, &waiting),
                     QG_EINVAL);
    ck_assert_int_eq(
        qg_outbox_resend(NULL, 0, INT64_MIN, INT64_MAX, NULL, NULL), QG_EINVAL);
    ck_assert_uint_eq(depth_of(st), 0);
    /* a store that feeds no HIS has nothing to resend to */
    own = own_open(0, 0);
    ck_assert_int_eq(qg_outbox_resend(own, 0, INT64_MIN, INT64_MAX, NULL, NULL),
                     QG_EINVAL);
}
END_TEST

/* A claim's arguments, as a forwarder may get them wrong; a second
 * forwarder is kept out while the first one's lease runs, except on LMDB,
 * which has one writing process, whose forwarder holds every claim; a
 * read-only store grants none. */
START_TEST(test_claim_arguments)
{
    static const struct {
        int null_store;
        uint64_t ticket;
        const char *owner;
        int64_t lease_us;
        int want;
    } rows[] = {
        {1, 1, "gate-a", 1000000, QG_EINVAL},
        {0, 0, "gate-a", 1000000, QG_EINVAL},
        {0, 1, NULL, 1000000, QG_EINVAL},
        {0, 1, "gate-a", 0, QG_EINVAL},
        {0, 1, "gate-a", -5, QG_EINVAL},
        {0, 1,
         "a-name-of-sixty-four-bytes-is-one-too-many-for-a-claims-owner-xx",
         1000000, QG_EINVAL},
        {0, 1, "gate-a", 1000000, 0},
        {0, 1, "gate-b", 1000000, QG_EBUSY}, /* LMDB: 0, see below */
        {0, 1, "gate-a", 1000000, 0},        /* renewed */
    };
    qg_store *ro;
    size_t i;

    for (i = 0; i < COUNT(rows); i++) {
        int want = rows[i].want;

        if (want == QG_EBUSY && !tu_store_is_pg())
            want = 0;
        ck_assert_msg(qg_outbox_claim(rows[i].null_store ? NULL : st,
                                      rows[i].ticket, rows[i].owner, now_us(),
                                      rows[i].lease_us) == want,
                      "row %zu", i);
    }
    ro = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_outbox_claim(ro, 1, "gate-a", now_us(), 1000000),
                     QG_ERDONLY);
    st = ro;
}
END_TEST

/* A lease is a time: while it runs only its owner renews it; once it
 * has run out (the owner died or hangs) the next forwarder takes the
 * ticket, and the old owner is then the one kept out.  Tickets are
 * claimed apart.  (LMDB grants every claim.) */
START_TEST(test_claim_lease_runs_out)
{
    static const struct {
        uint64_t ticket;
        const char *owner;
        int64_t at_us, lease_us;
        int want;
    } rows[] = {
        {7, "gate-a", 1000000, 500000, 0},
        {7, "gate-b", 1499999, 500000, QG_EBUSY}, /* a's lease runs */
        {8, "gate-b", 1499999, 500000, 0},        /* another ticket */
        {7, "gate-a", 1400000, 500000, 0},        /* renewed to 1.9 s */
        {7, "gate-b", 1600000, 500000, QG_EBUSY},
        {7, "gate-b", 1900000, 500000, 0}, /* run out: b takes it */
        {7, "gate-a", 2000000, 500000, QG_EBUSY},
        {7, "gate-b", 2000000, 500000, 0},
    };
    size_t i;

    for (i = 0; i < COUNT(rows); i++) {
        int want = rows[i].want;

        if (want == QG_EBUSY && !tu_store_is_pg())
            want = 0;
        ck_assert_msg(qg_outbox_claim(st, rows[i].ticket, rows[i].owner,
                                      rows[i].at_us, rows[i].lease_us) == want,
                      "row %zu", i);
    }
}
END_TEST

/* Each store has its own id, kept on reopening and in a copy. */
START_TEST(test_store_id_own_kept_and_copied)
{
    char a[QG_STORE_ID_LEN + 1], b[QG_STORE_ID_LEN + 1], c[QG_STORE_ID_LEN + 1],
        copy_dir[64];
    qg_store_options o = {0};
    qg_store *cp = NULL;

    ck_assert_int_eq(qg_store_id(st, a), 0);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), QG_STORE_ID_LEN);
    own = own_open(0, 0);
    ck_assert_int_eq(qg_store_id(own, b), 0);
    ck_assert_str_ne(a, b);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_store_id(st, c), 0);
    ck_assert_str_eq(c, a);

    snprintf(copy_dir, sizeof(copy_dir), "/tmp/qgate-copy-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(copy_dir));
    if (tu_store_is_pg()) {
        /* a database's copies are its server's (pg_dump) */
        ck_assert_int_eq(qg_store_copy(st, copy_dir), QG_ENOTSUP);
        tu_remove_dir(copy_dir);
        return;
    }
    ck_assert_int_eq(qg_store_copy(st, copy_dir), 0);
    o.path = copy_dir;
    ck_assert_int_eq(qg_store_open(&o, &cp), 0);
    ck_assert_int_eq(qg_store_id(cp, c), 0);
    ck_assert_str_eq(c, a);
    qg_store_close(cp);
    tu_remove_dir(copy_dir);
    ck_assert_int_eq(qg_store_id(NULL, c), QG_EINVAL);
}
END_TEST

Suite *
outbox_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *core = tcase_create("Core");
    TCase *batch = tcase_create("Batch");
    TCase *errors = tcase_create("Errors");
    TCase *resend = tcase_create("Resend");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_outbox_walk_in_queued_in_order);
    tcase_add_test(core, test_stats_oldest_moves_on_ack);
    tcase_add_test(core, test_outbox_refused_steps_not_queued);
    tcase_add_test(core, test_outbox_off_queues_nothing);
    tcase_add_test(core, test_outbox_flag_stays_with_the_store);
    /* An entry in 0.1's bytes: LMDB's. */
    if (!tu_store_is_pg())
        tcase_add_test(core, test_dead_entry_of_0_1_still_read);
    tcase_add_test(core, test_defer_records_attempt);
    tcase_add_test(core, test_bury_takes_later_steps_of_ticket);
    tcase_add_test(core, test_requeue_restores_order);
    tcase_add_test(core, test_outbox_ids_not_reused_after_ack);
    tcase_add_test(core, test_outbox_survives_reopen);
    suite_add_tcase(s, core);

    tcase_add_checked_fixture(batch, setup, teardown);
    tcase_set_timeout(batch, 60);
    tcase_add_test(batch, test_batch_walk_in_matches_sequential);
    tcase_add_test(batch, test_batch_same_body_twice);
    tcase_add_test(batch, test_batch_illegal_step_logged);
    tcase_add_test(batch, test_batch_bad_body_refused_alone);
    tcase_add_test(batch, test_batch_read_only_or_null);
    tcase_add_test(batch, test_batch_map_grows);
    suite_add_tcase(s, batch);

    tcase_add_checked_fixture(resend, setup, teardown);
    tcase_add_test(resend, test_resend_every_ticket_in_ticket_order);
    tcase_add_test(resend, test_resend_one_ticket_or_window);
    tcase_add_test(resend, test_resend_waiting_step_moves_behind);
    tcase_add_test(resend, test_store_id_own_kept_and_copied);
    tcase_add_test(resend, test_claim_arguments);
    tcase_add_test(resend, test_claim_lease_runs_out);
    suite_add_tcase(s, resend);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_change_unknown_or_invalid_id);
    tcase_add_test(errors, test_outbox_null_store_refused);
    tcase_add_test(errors, test_stats_outputs_optional);
    suite_add_tcase(s, errors);

    return s;
}

int
main(void)
{
    return tu_run(outbox_suite());
}
