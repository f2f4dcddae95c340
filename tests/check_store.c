/*
 * check_store.c - the LMDB store as its users see it: what accepted and
 * refused deliveries leave behind, across reopening, at the map's limits,
 * on bad arguments, and with other processes reading and writing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "store_int.h"
#include "last_txnid.h"
#include "testutil.h"

#define WALK_IN     "visits/walk-in/"
#define APPOINTMENT "visits/appointment/"
#define SERVED      "illegal/served-before-arrive/"
#define SMALL_MAP   ((size_t)256 << 10)

static qg_store *st;
static qg_engine *eng;

/* ----- generated deliveries ------------------------------------------- */

/*
 * Tests that need many tickets make them from walk-in/01 with another
 * live-queue id (and, for one test, another client name), signed as the
 * fixtures are: lowercase hex HMAC-SHA256 of the exact payload bytes.
 */
#define ID_TEXT   "\"id\":30001,"
#define NAME_TEXT "\"client_name\":\"Nurul Aisyah binti Hassan\""

static char *tmpl;                      /* walk-in/01's payload text */
static const char *tmpl_id, *tmpl_name; /* where ID_TEXT, NAME_TEXT are */
static char secret[256];
static size_t secret_len;

static void
template_load(void)
{
    static const char head[] = "{\"payload\":";
    size_t len;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    char *key = tu_fixture("secret", &secret_len);
    char *end = strstr(body, ",\"signature\":\"");

    ck_assert(strncmp(body, head, strlen(head)) == 0 && end != NULL);
    tmpl = strndup(body + strlen(head), (size_t)(end - body) - strlen(head));
    ck_assert_ptr_nonnull(tmpl);
    tmpl_id = strstr(tmpl, ID_TEXT);
    tmpl_name = strstr(tmpl, NAME_TEXT);
    ck_assert(tmpl_id != NULL && tmpl_name != NULL && tmpl_id < tmpl_name);
    if (secret_len > 0 && key[secret_len - 1] == '\n')
        secret_len--;
    ck_assert(secret_len > 0 && secret_len < sizeof(secret));
    memcpy(secret, key, secret_len);
    free(key);
    free(body);
}

/* payload, of n bytes, in an envelope with its signature.  Returns a
 * malloc'd body, or NULL when out of memory. */
static char *
signed_body(const char *payload, size_t n, size_t *len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1], *body;
    size_t cap = n + 2 * EVP_MAX_MD_SIZE + 64;
    unsigned maclen, i;

    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)payload,
         n, mac, &maclen);
    for (i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    if ((body = malloc(cap)) != NULL)
        *len = (size_t)snprintf(body, cap,
                                "{\"payload\":%.*s,\"signature\":\"%s\"}\n",
                                (int)n, payload, hex);
    return body;
}

/*
 * A join of live-queue entry `id`, whose client_name is `client` (or the
 * fixture's when NULL).  Returns a malloc'd body, or NULL when out of
 * memory; it never fails the test, so forked writers may call it.
 */
static char *
join_body(long long id, const char *client, size_t *len)
{
    const char *name = client ? client : "Nurul Aisyah binti Hassan";
    const char *mid = tmpl_id + strlen(ID_TEXT);
    const char *tail = tmpl_name + strlen(NAME_TEXT);
    size_t cap = strlen(tmpl) + strlen(name) + 64;
    char *payload, *body;
    int n;

    if ((payload = malloc(cap)) == NULL)
        return NULL;
    n = snprintf(payload, cap, "%.*s\"id\":%lld,%.*s\"client_name\":\"%s\"%s",
                 (int)(tmpl_id - tmpl), tmpl, id, (int)(tmpl_name - mid), mid,
                 name, tail);
    body = signed_body(payload, (size_t)n, len);
    free(payload);
    return body;
}

/* Applies join_body(id, NULL).  Returns qg_engine_apply's code. */
static int
apply_join(qg_store *s, long long id, qg_result *res)
{
    size_t len;
    char *body = join_body(id, NULL, &len);
    int rc;

    if (body == NULL)
        return QG_ENOMEM;
    rc = qg_engine_apply(eng, s, body, len, 0, res);
    free(body);
    return rc;
}

/* ----- helpers ---------------------------------------------------------- */

static void
assert_bytes(const char *got, size_t got_len, const char *rel)
{
    size_t len;
    char *want = tu_fixture(rel, &len);

    ck_assert_msg(got_len == len && memcmp(got, want, len) == 0,
                  "stored body differs from %s (%zu bytes, want %zu)", rel,
                  got_len, len);
    free(want);
}

static void
setup(void)
{
    st = tu_store_new();
    eng = tu_engine();
    template_load();
}

static void
teardown(void)
{
    free(tmpl);
    tmpl = NULL;
    qg_engine_free(eng);
    eng = NULL;
    qg_store_close(st);
    st = NULL;
    tu_store_remove();
}

/* ----- Core ------------------------------------------------------------- */

static const tu_step appointment[] = {
    {APPOINTMENT "01-appointment.json", QG_EV_BOOK, QG_ST_NEW, QG_ST_BOOKED},
    {APPOINTMENT "02-reschedule.json", QG_EV_RESCHEDULE, QG_ST_BOOKED,
     QG_ST_BOOKED},
    {APPOINTMENT "03-join-live-queue.json", QG_EV_ARRIVE, QG_ST_BOOKED,
     QG_ST_ARRIVED},
    {APPOINTMENT "04-no-show.json", QG_EV_NO_SHOW, QG_ST_ARRIVED,
     QG_ST_NO_SHOW},
    {APPOINTMENT "05-no-show-back-to-live-queue.json", QG_EV_ARRIVE,
     QG_ST_NO_SHOW, QG_ST_ARRIVED},
    {APPOINTMENT "06-cancel-delete.json", QG_EV_CANCEL, QG_ST_ARRIVED,
     QG_ST_CANCELLED},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void
apply_visit(const tu_step *steps, size_t n)
{
    qg_result res;
    size_t i;

    for (i = 0; i < n; i++) {
        res = tu_apply(eng, st, steps[i].file);
        ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s (%s)", steps[i].file,
                      qg_verdict_name(res.verdict), res.detail);
    }
}

START_TEST(test_history_survives_reopen)
{
    qg_history *h = NULL;
    qg_record rec;
    qg_ticket t;
    int64_t last_ms = 0;
    size_t i = 0;
    int rc;

    apply_visit(tu_walk_in, COUNT(tu_walk_in));
    st = tu_store_reopen(st, 0);

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_uint_eq(t.records, COUNT(tu_walk_in));
    ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
    while ((rc = qg_history_next(h, &rec)) == 0) {
        ck_assert_uint_lt(i, COUNT(tu_walk_in));
        ck_assert_uint_eq(rec.ticket, t.id);
        ck_assert_uint_eq(rec.seq, i + 1);
        ck_assert_int_eq(rec.event, tu_walk_in[i].event);
        ck_assert_int_eq(rec.from, tu_walk_in[i].from);
        ck_assert_int_eq(rec.to, tu_walk_in[i].to);
        ck_assert_str_eq(rec.machine, qg_machine_version());
        ck_assert_int_gt(rec.event_ms, last_ms);
        last_ms = rec.event_ms;
        assert_bytes(rec.body, rec.body_len, tu_walk_in[i].file);
        i++;
    }
    qg_history_close(h);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    ck_assert_uint_eq(i, COUNT(tu_walk_in));
    ck_assert_int_eq(t.last_event_ms, last_ms);
}
END_TEST

/* Walks h to its end: the records returned, and the code it ended on. */
static int
walk_to_end(qg_history *h, size_t *n)
{
    qg_record rec;
    int rc;

    *n = 0;
    while ((rc = qg_history_next(h, &rec)) == 0)
        ++*n;
    return rc;
}

/*
 * A history that holds fewer records than its snapshot counts (a leaf a
 * damaged page made LMDB read as emptier) ends its walk with QG_ESTORE,
 * not with a silent short answer: a ticket's walk against its row's
 * count.  A walk a seek started midway is not judged.  A walk over every
 * ticket is held against the database's entries, which a record deleted
 * through LMDB lowers too: there it must stay sound, and damage_test's
 * random-in-leaf export shows it catching a damaged leaf.
 */
START_TEST(test_history_short_walk_is_damage)
{
    static const struct {
        int all;        /* a cursor over every ticket */
        qg_order order; /* QG_SUMMARY walks the step summaries */
        uint32_t seek;  /* 0: none */
        int want_rc;    /* what the walk ends on */
    } cases[] = {
        {0, QG_EVENT_ORDER, 0, QG_ESTORE},
        {0, QG_ARRIVAL_ORDER, 0, QG_ESTORE},
        {0, QG_EVENT_ORDER | QG_SUMMARY, 0, QG_ESTORE},
        {0, QG_ARRIVAL_ORDER, 2, QG_NOTFOUND},
        {1, QG_EVENT_ORDER, 0, QG_NOTFOUND},
        {1, QG_ARRIVAL_ORDER | QG_SUMMARY, 0, QG_NOTFOUND},
    };
    unsigned char key[12];
    qg_history *h;
    qg_ticket t;
    qg__txn tx;
    MDB_val k;
    size_t i, n;

    if (tu_store_is_pg())
        return; /* LMDB's pages */
    apply_visit(tu_walk_in, COUNT(tu_walk_in));
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    /* the sound store first: every walk ends on QG_NOTFOUND */
    for (i = 0; i < COUNT(cases); i++) {
        ck_assert_int_eq(qg_history_open_order(st, cases[i].all ? 0 : t.id,
                                               cases[i].order, &h),
                         0);
        ck_assert_int_eq(walk_to_end(h, &n), QG_NOTFOUND);
        ck_assert_uint_eq(n, COUNT(tu_walk_in));
        qg_history_close(h);
    }
    /* step 3 gone from the records and from the summaries alike */
    k = qg__step_key(key, t.id, 3);
    ck_assert_int_eq(qg__txn_begin(st, 1, &tx), 0);
    ck_assert_int_eq(mdb_del(tx.txn, st->history, &k, NULL), 0);
    ck_assert_int_eq(mdb_del(tx.txn, st->steps, &k, NULL), 0);
    ck_assert_int_eq(qg__txn_commit(&tx), 0);
    for (i = 0; i < COUNT(cases); i++) {
        ck_assert_int_eq(qg_history_open_order(st, cases[i].all ? 0 : t.id,
                                               cases[i].order, &h),
                         0);
        if (cases[i].seek)
            ck_assert_int_eq(qg_history_seek(h, cases[i].seek), 0);
        ck_assert_msg(walk_to_end(h, &n) == cases[i].want_rc,
                      "case %zu: ended otherwise", i);
        ck_assert_uint_eq(n, COUNT(tu_walk_in) - 1 -
                                 (cases[i].seek ? cases[i].seek - 1 : 0));
        qg_history_close(h);
    }
}
END_TEST

START_TEST(test_duplicate_after_reopen)
{
    const char *rel = tu_walk_in[0].file;
    qg_result res;
    qg_ticket t;

    ck_assert_int_eq(tu_apply(eng, st, rel).verdict, QG_ACCEPTED);
    st = tu_store_reopen(st, 0);

    res = tu_apply(eng, st, rel);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    ck_assert_int_eq(res.reason, QG_R_REDELIVERY);
    ck_assert_uint_eq(res.seq, 1);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(res.ticket, t.id);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_uint_eq(t.rejections, 0);
    ck_assert_int_eq(tu_count_rejections(st), 0);
}
END_TEST

START_TEST(test_ticket_found_by_either_id)
{
    qg_ticket by_appt, by_queue, by_ticket;

    apply_visit(appointment, COUNT(appointment));

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_APPOINTMENT, 9101, &by_appt), 0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30002, &by_queue),
                     0);
    ck_assert_int_eq(
        qg_store_ticket(st, QG_ID_TICKET, (int64_t)by_appt.id, &by_ticket), 0);
    ck_assert_uint_eq(by_appt.id, by_queue.id);
    ck_assert_uint_eq(by_ticket.id, by_queue.id);
    ck_assert_int_eq(by_queue.state, QG_ST_CANCELLED);
    ck_assert_uint_eq(by_queue.records, COUNT(appointment));
    ck_assert_int_eq(by_queue.appointment_id, 9101);
    ck_assert_int_eq(by_queue.live_queue_id, 30002);
}
END_TEST

START_TEST(test_rejection_logged_with_ticket)
{
    const char *illegal = SERVED "02-served.json";
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result first, res;
    qg_ticket t;

    first = tu_apply(eng, st, SERVED "01-join-live-queue.json");
    ck_assert_int_eq(first.verdict, QG_ACCEPTED);
    res = tu_apply(eng, st, illegal);
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_uint_eq(res.rejection, 1);

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_uint_eq(rej.id, res.rejection);
    ck_assert_int_eq(rej.verdict, QG_REJECTED);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(rej.live_queue_id, 40001);
    ck_assert_uint_eq(rej.ticket, first.ticket);
    ck_assert_int_eq(rej.event, QG_EV_COMPLETE);
    ck_assert_int_eq(rej.from, QG_ST_QUEUED);
    ck_assert_ptr_nonnull(strstr(rej.detail, "complete"));
    assert_bytes(rej.body, rej.body_len, illegal);
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 40001, &t), 0);
    ck_assert_uint_eq(t.rejections, 1);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_int_eq(t.state, QG_ST_QUEUED);
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), 2);
}
END_TEST

/* The entries of the log that name LMDB ticket `ticket` in its index. */
static size_t
index_entries(uint64_t ticket)
{
    unsigned char key[16];
    MDB_cursor *cur;
    MDB_val k = {16, key}, v;
    size_t n = 0;
    qg__txn t;
    int rc;

    put64(key, ticket);
    put64(key + 8, 0);
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    ck_assert_int_eq(mdb_cursor_open(t.txn, st->refused_by, &cur), 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || get64(k.mv_data) != ticket)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    qg__txn_abort(&t);
    return n;
}

/*
 * A store whose index lost entries, as one written meanwhile by a qgate
 * without it would have, gets it rebuilt at its next writable open; read
 * only, before that, the ticket's refusals are found all the same.
 */
START_TEST(test_refusals_index_rebuilt)
{
    MDB_val k = {10, (void *)"refused_by"};
    qg_result res;
    qg__txn t;

    if (tu_store_is_pg())
        return; /* LMDB's databases */
    tu_apply(eng, st, SERVED "01-join-live-queue.json");
    res = tu_apply(eng, st, SERVED "02-served.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_int_eq(qg__txn_begin(st, 1, &t), 0);
    ck_assert_int_eq(mdb_drop(t.txn, st->refused_by, 0), 0);
    ck_assert_int_eq(mdb_del(t.txn, st->meta, &k, NULL), 0);
    ck_assert_int_eq(qg__txn_commit(&t), 0);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(st->has_refused_by, 0);
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), 2);
    st = tu_store_reopen(st, 0);
    ck_assert_int_eq(st->has_refused_by, 1);
    ck_assert_uint_eq(index_entries(res.ticket), 1);
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), 2);

    /* the newest entry missing from the index: rebuilt too */
    ck_assert_int_eq(qg__txn_begin(st, 1, &t), 0);
    ck_assert_int_eq(mdb_drop(t.txn, st->refused_by, 0), 0);
    ck_assert_int_eq(qg__txn_commit(&t), 0);
    st = tu_store_reopen(st, 0);
    ck_assert_uint_eq(index_entries(res.ticket), 1);
}
END_TEST

/* The entries of the step summaries' database; -1 when it has none. */
static long
summary_entries(void)
{
    MDB_stat ms;
    qg__txn t;

    if (!st->has_steps)
        return -1;
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    ck_assert_int_eq(mdb_stat(t.txn, st->steps, &ms), 0);
    qg__txn_abort(&t);
    return (long)ms.ms_entries;
}

/* Rewrites the step summaries with fn, as a qgate that does not keep
 * them, or damage, would leave them. */
static void
alter_summaries(void (*fn)(MDB_cursor *cur))
{
    MDB_cursor *cur;
    qg__txn t;

    ck_assert_int_eq(qg__txn_begin(st, 1, &t), 0);
    ck_assert_int_eq(mdb_cursor_open(t.txn, st->steps, &cur), 0);
    fn(cur);
    mdb_cursor_close(cur);
    ck_assert_int_eq(qg__txn_commit(&t), 0);
}

/* The newest step's summary is gone: as if a qgate without summaries had
 * appended the step. */
static void
drop_newest(MDB_cursor *cur)
{
    MDB_val k, v;

    ck_assert_int_eq(mdb_cursor_get(cur, &k, &v, MDB_LAST), 0);
    ck_assert_int_eq(mdb_cursor_del(cur, 0), 0);
}

/* The first step's summary names service 7. */
static void
first_to_service_7(MDB_cursor *cur)
{
    unsigned char s[24];
    MDB_val k, v;

    ck_assert_int_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    ck_assert_uint_eq(v.mv_size, sizeof(s));
    memcpy(s, v.mv_data, sizeof(s));
    put64(s + 8, 7);
    v.mv_data = s;
    ck_assert_int_eq(mdb_cursor_put(cur, &k, &v, MDB_CURRENT), 0);
}

/* The first step of every ticket, summed up: its service. */
static int64_t
first_service(void)
{
    qg_history *h = NULL;
    qg_record r;

    ck_assert_int_eq(
        qg_history_open_order(st, 0, QG_ARRIVAL_ORDER | QG_SUMMARY, &h), 0);
    ck_assert_int_eq(qg_history_next(h, &r), 0);
    qg_history_close(h);
    return r.service_id;
}

/*
 * Summaries are read from their own database, written with each step.
 * When they no longer cover the history (a step appended by a qgate
 * without them), a reader in read-only walks the records instead, and the
 * next writable open builds them again.
 */
START_TEST(test_step_summaries_rebuilt)
{
    qg_finding f;

    if (tu_store_is_pg())
        return; /* LMDB's databases */
    apply_visit(tu_walk_in, COUNT(tu_walk_in));
    ck_assert_int_eq(summary_entries(), COUNT(tu_walk_in));
    ck_assert_uint_eq(tu_check_summaries(st), COUNT(tu_walk_in));

    /* read from the summaries, not from the records; verify tells */
    alter_summaries(first_to_service_7);
    ck_assert_int_eq(first_service(), 7);
    ck_assert_int_eq(qg_store_verify_ticket(st, 1, &f), 0);
    ck_assert_int_eq(f.found, 1);
    ck_assert_uint_eq(f.seq, 1);
    ck_assert_ptr_nonnull(strstr(f.what, "summary"));

    alter_summaries(drop_newest);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(summary_entries(), COUNT(tu_walk_in) - 1);
    ck_assert_uint_eq(tu_check_summaries(st), COUNT(tu_walk_in));
    ck_assert_int_ne(first_service(), 7); /* from the records */
    /* nor does verify compare them: stats reads neither service 7 nor
     * the newest step's missing summary */
    ck_assert_int_eq(qg_store_verify_ticket(st, 1, &f), 0);
    ck_assert_msg(!f.found, "%s", f.what);

    st = tu_store_reopen(st, 0);
    ck_assert_int_eq(summary_entries(), COUNT(tu_walk_in));
    ck_assert_uint_eq(tu_check_summaries(st), COUNT(tu_walk_in));
    ck_assert_int_ne(first_service(), 7); /* rebuilt whole */
    ck_assert_int_eq(qg_store_verify_ticket(st, 1, &f), 0);
    ck_assert_msg(!f.found, "%s", f.what);
}
END_TEST

/* The summaries are built again in batches, each a transaction of its
 * own, so that an interrupted rebuild keeps what it built; whatever the
 * batch, they end whole.  rebuild_commits(n): the transactions a reopen
 * writable commits once the newest summary is gone, with batches of n,
 * counted by LMDB's last transaction id (last_txnid.h). */
static size_t
rebuild_commits(size_t n)
{
    size_t before, was = qg__steps_batch;

    alter_summaries(drop_newest);
    before = last_txnid(st);
    qg__steps_batch = n;
    st = tu_store_reopen(st, 0);
    qg__steps_batch = was;
    ck_assert_int_eq(summary_entries(), COUNT(tu_walk_in));
    ck_assert_uint_eq(tu_check_summaries(st), COUNT(tu_walk_in));
    return last_txnid(st) - before;
}

START_TEST(test_step_summaries_rebuilt_in_batches)
{
    static const struct {
        size_t batch, commits; /* beyond a rebuild in one transaction */
    } cases[] = {{1, 8}, {2, 4}, {4, 2}, {8, 1}, {9, 0}, {1000, 0}};
    size_t i, whole;

    if (tu_store_is_pg())
        return;                                 /* LMDB's databases */
    apply_visit(tu_walk_in, COUNT(tu_walk_in)); /* 9 steps */
    whole = rebuild_commits(1000);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(
            rebuild_commits(cases[i].batch) == whole + cases[i].commits,
            "batches of %zu: %zu transactions, expected %zu", cases[i].batch,
            rebuild_commits(cases[i].batch), whole + cases[i].commits);
}
END_TEST

START_TEST(test_rejection_logged_without_ticket)
{
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result res;

    res = tu_apply(eng, st, "malformed/not-json.json");
    ck_assert_int_eq(res.verdict, QG_MALFORMED);

    ck_assert_int_eq(qg_rejections_open(st, res.rejection, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_uint_eq(rej.id, 1);
    ck_assert_int_eq(rej.verdict, QG_MALFORMED);
    ck_assert_int_eq(rej.reason, QG_R_BAD_JSON);
    ck_assert_uint_eq(rej.ticket, 0);
    assert_bytes(rej.body, rej.body_len, "malformed/not-json.json");
    qg_rejections_close(r);

    /* The log starts where asked: past its end there is nothing. */
    ck_assert_int_eq(qg_rejections_open(st, 2, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);
}
END_TEST

START_TEST(test_ignored_delivery_not_logged)
{
    qg_result res;

    tu_apply(eng, st, "malformed/not-json.json");
    ck_assert_int_eq(tu_count_rejections(st), 1);

    res = tu_apply(eng, st, "malformed/client-created.json");
    ck_assert_int_eq(res.verdict, QG_IGNORED);
    ck_assert_uint_eq(res.rejection, 0);
    ck_assert_int_eq(tu_count_rejections(st), 1);
}
END_TEST

/* Applies a fixture with QG_DRY_RUN. */
static qg_result
dry_apply(const char *rel)
{
    qg_result res;
    size_t len;
    char *body = tu_fixture(rel, &len);
    int rc = qg_engine_apply(eng, st, body, len, QG_DRY_RUN, &res);

    free(body);
    ck_assert_msg(rc == 0, "%s: %s", rel, qg_strerror(rc));
    return res;
}

START_TEST(test_dry_run_writes_nothing)
{
    qg_result res;
    qg_ticket t;

    res = dry_apply(tu_walk_in[0].file);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.from, QG_ST_NEW);
    ck_assert_int_eq(res.to, QG_ST_QUEUED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);

    res = dry_apply("malformed/not-json.json");
    ck_assert_int_eq(res.verdict, QG_MALFORMED);
    ck_assert_uint_eq(res.rejection, 0);
    ck_assert_int_eq(tu_count_rejections(st), 0);
}
END_TEST

START_TEST(test_dry_run_on_read_only_store)
{
    qg_result res;
    size_t len;
    char *body = tu_fixture(tu_walk_in[0].file, &len);

    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, QG_DRY_RUN, &res), 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.to, QG_ST_QUEUED);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), QG_ERDONLY);
    free(body);
}
END_TEST

/* ----- Limits ----------------------------------------------------------- */

/* A store of its own, in its own directory, to size its map. */
static char own_dir[64];
static qg_store *own;

static qg_store *
own_open_with(size_t map_size, size_t map_max, unsigned flags)
{
    qg_store_options o = {0};
    qg_store *s = NULL;

    o.path = own_dir;
    o.map_size = map_size;
    o.map_max = map_max;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    ck_assert_int_eq(qg_store_open(&o, &s), 0);
    return s;
}

static qg_store *
own_open(size_t map_size, size_t map_max)
{
    return own_open_with(map_size, map_max, 0);
}

static void
limits_setup(void)
{
    setup();
    snprintf(own_dir, sizeof(own_dir), "/tmp/qgate-map-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(own_dir));
}

static void
limits_teardown(void)
{
    qg_store_close(own);
    own = NULL;
    tu_remove_dir(own_dir);
    teardown();
}

START_TEST(test_map_full_grows)
{
    enum { N = 3000 };
    qg_result res;
    qg_ticket t;
    long long id;

    /* 3000 records of ~700 bytes need about ten times the first map. */
    own = own_open(SMALL_MAP, 0);
    for (id = 1; id <= N; id++) {
        ck_assert_int_eq(apply_join(own, id, &res), 0);
        ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    }
    for (id = 1; id <= N; id++) {
        ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, id, &t), 0);
        ck_assert_uint_eq(t.records, 1);
    }
}
END_TEST

/* A store written in its map (QG_WRITEMAP), growing as it goes, is the
 * same store to a process that opens it the usual way: every ticket,
 * every page sound, the chain whole. */
START_TEST(test_writemap_store)
{
    enum { N = 3000 };
    qg_chain_finding f;
    qg_result res;
    qg_ticket t;
    long long id;
    char detail[256];

    own = own_open_with(SMALL_MAP, 0, QG_WRITEMAP);
    for (id = 1; id <= N; id++) {
        ck_assert_int_eq(apply_join(own, id, &res), 0);
        ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    }
    ck_assert_int_eq(apply_join(own, 1, &res), 0);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    qg_store_close(own);
    own = own_open_with(SMALL_MAP, 0, QG_RDONLY);
    for (id = 1; id <= N; id++) {
        ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, id, &t), 0);
        ck_assert_uint_eq(t.records, 1);
    }
    ck_assert_msg(qg_store_check(own, detail, sizeof(detail)) == 0, "%s",
                  detail);
    ck_assert_int_eq(qg_store_verify_chain(own, NULL, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "chain: %s", f.what);
}
END_TEST

START_TEST(test_map_full_fails_cleanly)
{
    enum { LIMIT = 100000 };
    qg_result res;
    qg_ticket t;
    long long id, full = 0;
    int rc;

    own = own_open(SMALL_MAP, SMALL_MAP);
    for (id = 1; id <= LIMIT; id++) {
        rc = apply_join(own, id, &res);
        if (rc == QG_EFULL) {
            full = id;
            break;
        }
        ck_assert_msg(rc == 0, "id %lld: %s", id, qg_strerror(rc));
        ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    }
    ck_assert_msg(full > 1, "the map never filled (or at once)");

    /* A full store still recognises a redelivery: that writes nothing. */
    ck_assert_int_eq(apply_join(own, 1, &res), 0);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);

    qg_store_close(own);
    own = own_open(SMALL_MAP, SMALL_MAP);
    for (id = 1; id < full; id++) {
        ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, id, &t), 0);
        ck_assert_uint_eq(t.records, 1);
    }
    ck_assert_int_eq(qg_store_ticket(own, QG_ID_LIVE_QUEUE, full, &t),
                     QG_NOTFOUND);
    ck_assert_int_eq(qg_store_ticket(own, QG_ID_TICKET, full, &t), QG_NOTFOUND);
    ck_assert_int_eq(tu_count_rejections(own), 0);
}
END_TEST

START_TEST(test_large_body_kept_whole)
{
    enum { NAME_LEN = 200000 };
    char *name = malloc(NAME_LEN + 1), *body;
    qg_history *h = NULL;
    qg_record rec;
    qg_result res;
    size_t len;

    ck_assert_ptr_nonnull(name);
    memset(name, 'x', NAME_LEN);
    name[NAME_LEN] = '\0';
    body = join_body(50001, name, &len);
    ck_assert_ptr_nonnull(body);
    ck_assert_uint_gt(len, NAME_LEN);

    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s", res.detail);
    st = tu_store_reopen(st, 0);
    ck_assert_int_eq(qg_history_open(st, res.ticket, &h), 0);
    ck_assert_int_eq(qg_history_next(h, &rec), 0);
    ck_assert_uint_eq(rec.body_len, len);
    ck_assert(memcmp(rec.body, body, len) == 0);
    ck_assert_int_eq(qg_history_next(h, &rec), QG_NOTFOUND);
    qg_history_close(h);
    free(body);
    free(name);
}
END_TEST

/* A big body: join_body() with a long client name; unsigned when
 * `forge`, its signature then replaced by zeros. */
static char *
big_body(long long id, size_t name_len, int forge, size_t *len)
{
    char *name = malloc(name_len + 1), *body, *sig;

    ck_assert_ptr_nonnull(name);
    memset(name, 'x', name_len);
    name[name_len] = '\0';
    body = join_body(id, name, len);
    free(name);
    ck_assert_ptr_nonnull(body);
    if (forge) {
        ck_assert_ptr_nonnull(sig = strstr(body, ",\"signature\":\""));
        memset(sig + 14, '0', 64);
    }
    return body;
}

/* The entries of the rejection log for unauthenticated and malformed
 * deliveries keep a prefix, the length and the digest; other refusals
 * keep their whole body. */
START_TEST(test_rejection_unsigned_body_prefix)
{
    static const char junk_text[] = "not json at all ";
    size_t forged_len, signed_len, junk_len = 50000, i;
    char *forged = big_body(50002, 100000, 1, &forged_len);
    char *first = big_body(50001, 10, 0, &signed_len);
    char *again = big_body(50001, 100000, 0, &signed_len);
    char *junk = malloc(junk_len);
    unsigned char digest[32];
    unsigned int n = sizeof(digest);
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result res;

    ck_assert_ptr_nonnull(junk);
    for (i = 0; i < junk_len; i++)
        junk[i] = junk_text[i % (sizeof(junk_text) - 1)];
    ck_assert_int_eq(qg_engine_apply(eng, st, forged, forged_len, 0, &res), 0);
    ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
    ck_assert_int_eq(qg_engine_apply(eng, st, junk, junk_len, 0, &res), 0);
    ck_assert_int_eq(res.verdict, QG_MALFORMED);
    ck_assert_int_eq(qg_engine_apply(eng, st, first, strlen(first), 0, &res),
                     0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_engine_apply(eng, st, again, signed_len, 0, &res), 0);
    ck_assert_msg(res.verdict == QG_REJECTED, "%s", res.detail);
    tu_apply(eng, st, "malformed/not-json.json");
    st = tu_store_reopen(st, QG_RDONLY);

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.verdict, QG_UNAUTHENTICATED);
    ck_assert_int_eq(rej.truncated, 1);
    ck_assert_uint_eq(rej.body_len, QG_REJECTION_PREFIX);
    ck_assert_uint_eq(rej.received_len, forged_len);
    ck_assert(memcmp(rej.body, forged, rej.body_len) == 0);
    EVP_Digest(forged, forged_len, digest, &n, EVP_sha256(), NULL);
    ck_assert(memcmp(rej.digest, digest, sizeof(digest)) == 0);
    ck_assert_ptr_nonnull(strstr(rej.detail, "signature"));

    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.verdict, QG_MALFORMED);
    ck_assert_int_eq(rej.truncated, 1);
    ck_assert_uint_eq(rej.body_len, QG_REJECTION_PREFIX);
    ck_assert_uint_eq(rej.received_len, junk_len);
    ck_assert(memcmp(rej.body, junk, rej.body_len) == 0);
    EVP_Digest(junk, junk_len, digest, &n, EVP_sha256(), NULL);
    ck_assert(memcmp(rej.digest, digest, sizeof(digest)) == 0);

    /* a signed refusal: whole */
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.verdict, QG_REJECTED);
    ck_assert_int_eq(rej.truncated, 0);
    ck_assert_uint_eq(rej.body_len, signed_len);
    ck_assert_uint_eq(rej.received_len, signed_len);
    ck_assert(memcmp(rej.body, again, signed_len) == 0);

    /* a short malformed body: whole, as before */
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.verdict, QG_MALFORMED);
    ck_assert_int_eq(rej.truncated, 0);
    ck_assert_uint_eq(rej.received_len, rej.body_len);
    assert_bytes(rej.body, rej.body_len, "malformed/not-json.json");
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);
    free(forged);
    free(first);
    free(again);
    free(junk);
}
END_TEST

/* Reads entry id as a version before REJ_RESOLVED did (store.c's layout
 * as it was): the detail, the body, and a truncated entry's length. */
static void
old_reader(uint64_t id, const char *detail, size_t body_len,
           size_t received_len)
{
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    const unsigned char *p;
    size_t dlen, keep;
    qg__txn t;

    if (tu_store_is_pg())
        return; /* LMDB's bytes: a PostgreSQL store has columns */
    put64(key, id);
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    ck_assert_int_eq(mdb_get(t.txn, st->rejections, &k, &v), 0);
    p = v.mv_data;
    dlen = get32(p + 12);
    keep = get32(p + 40);
    ck_assert_uint_eq(v.mv_size, 48 + dlen + keep);
    ck_assert_uint_eq(p[48 + dlen - 1], 0);
    ck_assert_str_eq((const char *)p + 48, detail);
    ck_assert_uint_eq(keep, body_len);
    if (p[44] & 0x01) {
        ck_assert_uint_eq(p[48 + dlen - 48 - 1], 0);
        ck_assert_uint_eq(get64(p + 48 + dlen - 48), received_len);
    }
    qg__txn_abort(&t);
}

/* A resolved entry keeps its reason, detail and body (and a truncated
 * one its length and digest), says what it became, can be marked again,
 * and reads, as versions before the mark read it, as it was. */
START_TEST(test_rejection_resolved)
{
    size_t junk_len = 5000, full_len;
    char *junk = malloc(junk_len), detail[2][256];
    unsigned char digest[32];
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result res;
    int i;

    ck_assert_ptr_nonnull(junk);
    memset(junk, 'x', junk_len);
    ck_assert_int_eq(qg_engine_apply(eng, st, junk, junk_len, 0, &res), 0);
    ck_assert_int_eq(res.verdict, QG_MALFORMED);
    tu_apply(eng, st, SERVED "01-join-live-queue.json");
    ck_assert_int_eq(tu_apply(eng, st, SERVED "02-served.json").verdict,
                     QG_REJECTED);
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
        ck_assert_int_eq(rej.resolved, 0);
        snprintf(detail[i], sizeof(detail[i]), "%s", rej.detail);
        if (i == 0)
            memcpy(digest, rej.digest, sizeof(digest));
        else
            full_len = rej.body_len;
    }
    qg_rejections_close(r);

    ck_assert_int_eq(qg_rejections_resolve(st, 1, 0, 0), 0);
    ck_assert_int_eq(qg_rejections_resolve(st, 2, 7, 3), 0);
    ck_assert_int_eq(qg_rejections_resolve(st, 2, 1, 2), 0); /* replaced */
    ck_assert_int_eq(qg_rejections_resolve(st, 3, 1, 2), QG_NOTFOUND);
    ck_assert_int_eq(qg_rejections_resolve(st, 0, 1, 2), QG_EINVAL);
    ck_assert_int_eq(qg_rejections_resolve(NULL, 1, 1, 2), QG_EINVAL);

    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.resolved, 1);
    ck_assert_uint_eq(rej.resolved_ticket, 0);
    ck_assert_uint_eq(rej.resolved_seq, 0);
    ck_assert_int_gt(rej.resolved_us, 0);
    ck_assert_int_eq(rej.verdict, QG_MALFORMED);
    ck_assert_int_eq(rej.truncated, 1);
    ck_assert_uint_eq(rej.received_len, junk_len);
    ck_assert_uint_eq(rej.body_len, QG_REJECTION_PREFIX);
    ck_assert(memcmp(rej.body, junk, rej.body_len) == 0);
    ck_assert(memcmp(rej.digest, digest, sizeof(digest)) == 0);
    ck_assert_str_eq(rej.detail, detail[0]);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_int_eq(rej.resolved, 1);
    ck_assert_uint_eq(rej.resolved_ticket, 1);
    ck_assert_uint_eq(rej.resolved_seq, 2);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(rej.truncated, 0);
    ck_assert_uint_eq(rej.body_len, full_len);
    assert_bytes(rej.body, rej.body_len, SERVED "02-served.json");
    ck_assert_str_eq(rej.detail, detail[1]);
    qg_rejections_close(r);

    old_reader(1, detail[0], QG_REJECTION_PREFIX, junk_len);
    old_reader(2, detail[1], full_len, 0);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_rejections_resolve(st, 1, 0, 0), QG_ERDONLY);
    free(junk);
}
END_TEST

/* Unauthenticated and malformed entries stay under unsigned_log_max: the
 * oldest are dropped and counted, also across a reopen; signed refusals
 * are never dropped. */
START_TEST(test_rejection_unsigned_log_bounded)
{
    enum { N = 100, BOUND = 64 << 10 };
    qg_store_options o;
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result res;
    uint64_t dropped = 1, expect_id, bytes = 0;
    size_t len;
    char *body;
    int i, kept = 0;

    tu_apply(eng, st, SERVED "01-join-live-queue.json");
    res = tu_apply(eng, st, SERVED "02-served.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert_int_eq(qg_rejections_dropped(st, &dropped), 0);
    ck_assert_uint_eq(dropped, 0);
    qg_store_close(st);
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    o.unsigned_log_max = BOUND;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    for (i = 0; i < N; i++) {
        body = big_body(60000 + i, 10000, 1, &len);
        ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
        ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
        free(body);
    }
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
    ck_assert_uint_eq(rej.id, 1);
    ck_assert_int_eq(rej.verdict, QG_REJECTED);
    while (qg_rejections_next(r, &rej) == 0) {
        ck_assert_int_eq(rej.verdict, QG_UNAUTHENTICATED);
        if (kept == 0)
            expect_id = rej.id;
        ck_assert_uint_eq(rej.id, expect_id++);
        bytes += 48 + strlen(rej.detail) + 1 + 48 + rej.body_len;
        kept++;
    }
    qg_rejections_close(r);
    ck_assert_uint_eq(expect_id, N + 2); /* the newest are kept */
    ck_assert_uint_le(bytes, BOUND);
    ck_assert_uint_gt(bytes, BOUND - 4096);
    ck_assert_int_eq(qg_rejections_dropped(st, &dropped), 0);
    ck_assert_uint_eq(dropped, (uint64_t)(N - kept));
    ck_assert_int_gt((int)dropped, N / 2);
    /* the ticket's refusal, found by the index among the unsigned */
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), 2);
}
END_TEST

/*
 * A signed delivery that is malformed past its ids, or a forged one,
 * naming the walk-in's ticket by its live-queue id, is logged naming no
 * ticket: the engine reads a delivery's ids only once every malformed
 * reason is ruled out, and trusts none of a forged one's.  Hence no
 * delivery leaves an entry the unsigned bound drops with a key in the
 * index by ticket (test_refusals_index_follows_drops).
 */
START_TEST(test_rejection_unsigned_names_no_ticket)
{
    static const struct {
        const char *from, *to; /* in walk-in/01's payload */
        qg_verdict verdict;
        qg_reason reason;
    } cases[] = {
        {"\"timestamp\":\"2024-03-05T09:00:00+08:00\"",
         "\"timestamp\":\"yesterday\"", QG_MALFORMED, QG_R_BAD_VALUE},
        {"\"timestamp\":\"2024-03-05T09:00:00+08:00\"",
         "\"timestamp\":\"9999-12-31T23:59:59+08:00\"", QG_MALFORMED,
         QG_R_BAD_VALUE},
        {"\"event\":\"live_queue_created\",", "", QG_MALFORMED,
         QG_R_MISSING_FIELD},
        {"\"event\":\"live_queue_created\"", "\"event\":7", QG_MALFORMED,
         QG_R_WRONG_TYPE},
        {"\"state\":1,", "\"state\":true,", QG_MALFORMED, QG_R_WRONG_TYPE},
        {NULL, NULL, QG_UNAUTHENTICATED, QG_R_BAD_SIGNATURE},
    };
    char payload[4096], *at, *body;
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_result res;
    qg_ticket t;
    size_t i, len, n;

    ck_assert_int_eq(
        tu_apply(eng, st, WALK_IN "01-join-live-queue.json").verdict,
        QG_ACCEPTED);
    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        if (cases[i].from) {
            ck_assert_ptr_nonnull(at = strstr(tmpl, cases[i].from));
            n = (size_t)snprintf(payload, sizeof(payload), "%.*s%s%s",
                                 (int)(at - tmpl), tmpl, cases[i].to,
                                 at + strlen(cases[i].from));
            ck_assert_uint_lt(n, sizeof(payload));
            body = signed_body(payload, n, &len);
        } else {
            body = big_body(30001, 10, 1, &len);
        }
        ck_assert_ptr_nonnull(body);
        ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
        free(body);
        ck_assert_msg(
            res.verdict == cases[i].verdict && res.reason == cases[i].reason,
            "case %zu: %s: %s", i, qg_reason_name(res.reason), res.detail);
        ck_assert_uint_eq(res.ticket, 0);
        ck_assert_uint_eq(res.rejection, i + 1);
        ck_assert_int_eq(qg_rejections_open(st, res.rejection, &r), 0);
        ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
        ck_assert_msg(rej.ticket == 0 && rej.live_queue_id == 0,
                      "case %zu: logged naming ticket %" PRIu64, i, rej.ticket);
        qg_rejections_close(r);
    }
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.rejections, 0);
    ck_assert_int_eq(qg_rejections_open_ticket(st, t.id, &r), 0);
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);
}
END_TEST

/* The refusals test_refusals_index_follows_drops logs, each naming the
 * walk-in's ticket. */
static const struct {
    qg_verdict verdict;
    qg_reason reason;
    int dropped; /* unsigned: dropped over the bound */
} named[] = {
    {QG_MALFORMED, QG_R_MISSING_FIELD, 1},
    {QG_UNAUTHENTICATED, QG_R_BAD_SIGNATURE, 1},
    {QG_REJECTED, QG_R_ILLEGAL_TRANSITION, 0},
    {QG_MALFORMED, QG_R_BAD_VALUE, 1},
};

/* Logs named[], each naming ticket *arg, as the engine logs a refusal. */
static int
refuse_named(qg__txn *t, void *arg)
{
    uint64_t ticket = *(uint64_t *)arg, id;
    qg__ticket_row row;
    qg_rejection rej;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(named) / sizeof(*named); i++) {
        if ((rc = qg__get_ticket(t, ticket, &row)))
            return rc;
        memset(&rej, 0, sizeof(rej));
        rej.received_us = qg_time_now_us();
        rej.verdict = named[i].verdict;
        rej.reason = named[i].reason;
        rej.ticket = ticket;
        rej.live_queue_id = 30001;
        rej.detail = qg_reason_name(named[i].reason);
        rej.body = "{\"payload\":{}}";
        rej.body_len = strlen(rej.body);
        if ((rc = qg__store_refuse(t, &row, &rej, &id)))
            return rc;
    }
    return 0;
}

/*
 * An unauthenticated or malformed entry dropped over unsigned_log_max
 * takes its key in the index by ticket with it (qg__refused_del()).  No
 * delivery writes such an entry naming a ticket today (the engine names
 * one only once it has read the delivery's ids, past every malformed
 * reason, and never for an unauthenticated one), so the entries are
 * logged as the engine logs refusals, naming the walk-in's ticket, as an
 * engine that named it would.  Forged deliveries then push the log over
 * its bound: the unsigned entries go, index keys and all, the rejected
 * one stays with its key, the ticket's refusals read by the index are the
 * log's, and the chain holds.
 */
START_TEST(test_refusals_index_follows_drops)
{
    qg_store_options o;
    qg_rejections *r = NULL;
    qg_rejection rej;
    qg_chain_finding f;
    qg_result res;
    uint64_t ticket, dropped = 0, id;
    size_t i, kept = 0, len;
    char *body;
    int rc;

    res = tu_apply(eng, st, WALK_IN "01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ticket = res.ticket;
    qg_store_close(st);
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    o.unsigned_log_max = 16 << 10;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    ck_assert_int_eq(qg__store_write(st, refuse_named, &ticket), 0);
    if (!tu_store_is_pg())
        ck_assert_uint_eq(index_entries(ticket),
                          sizeof(named) / sizeof(*named));
    for (i = 0; i < 100 && dropped < 3; i++) {
        body = big_body(60000 + (long long)i, 2000, 1, &len);
        ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
        ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
        free(body);
        ck_assert_int_eq(qg_rejections_dropped(st, &dropped), 0);
    }
    ck_assert_uint_ge(dropped, 3);

    /* what stays of named[] in the log is what the index gives */
    ck_assert_int_eq(qg_rejections_open_ticket(st, ticket, &r), 0);
    for (i = 0, id = 1; i < sizeof(named) / sizeof(*named); i++, id++) {
        if (named[i].dropped)
            continue;
        ck_assert_int_eq(qg_rejections_next(r, &rej), 0);
        ck_assert_uint_eq(rej.id, id);
        ck_assert_int_eq(rej.verdict, named[i].verdict);
        kept++;
    }
    ck_assert_int_eq(qg_rejections_next(r, &rej), QG_NOTFOUND);
    qg_rejections_close(r);
    for (i = 0, id = 1; i < sizeof(named) / sizeof(*named); i++, id++) {
        ck_assert_int_eq(qg_rejections_open(st, id, &r), 0);
        rc = qg_rejections_next(r, &rej);
        ck_assert_msg(rc == 0 && (rej.id == id) != named[i].dropped,
                      "refusal %" PRIu64 " (%s): %s", id,
                      qg_reason_name(named[i].reason),
                      named[i].dropped ? "not dropped" : "dropped");
        qg_rejections_close(r);
    }
    ck_assert_uint_ge(tu_check_refusals_by_ticket(st), 1);
    if (!tu_store_is_pg())
        ck_assert_uint_eq(index_entries(ticket), kept);
    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s", f.what);
}
END_TEST

/* ----- Errors ----------------------------------------------------------- */

START_TEST(test_store_open_bad_options)
{
    static const struct {
        const char *what;
        const char *path; /* in the fixture's directory; "" as is */
        unsigned flags;
        int durability;
        int want;
    } cases[] = {
        {"no path", NULL, 0, QG_SYNC, QG_EINVAL},
        {"empty path", "", 0, QG_SYNC, QG_EINVAL},
        {"unknown flag", "missing", 0x80, QG_SYNC, QG_EINVAL},
        {"unknown durability", "missing", 0, 7, QG_EINVAL},
        {"regular file", "plain", 0, QG_SYNC, QG_EINVAL},
        {"read-only, no directory", "missing", QG_RDONLY, QG_SYNC, QG_NOTFOUND},
        {"read-only, no store", "empty", QG_RDONLY, QG_SYNC, QG_NOTFOUND},
    };
    char path[512], empty[512];
    qg_store_options o;
    qg_store *s;
    struct stat sb;
    FILE *f;
    size_t i;

    snprintf(path, sizeof(path), "%s/plain", tu_store_dir());
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(empty, sizeof(empty), "%s/empty", tu_store_dir());
    ck_assert_int_eq(mkdir(empty, 0750), 0);

    s = NULL;
    ck_assert_int_eq(qg_store_open(NULL, &s), QG_EINVAL);
    ck_assert_ptr_null(s);
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    ck_assert_int_eq(qg_store_open(&o, NULL), QG_EINVAL);

    for (i = 0; i < COUNT(cases); i++) {
        memset(&o, 0, sizeof(o));
        if (cases[i].path && cases[i].path[0]) {
            snprintf(path, sizeof(path), "%s/%s", tu_store_dir(),
                     cases[i].path);
            o.path = path;
        } else {
            o.path = cases[i].path;
        }
        o.flags = cases[i].flags;
        o.durability = (qg_durability)cases[i].durability;
        s = NULL;
        ck_assert_msg(qg_store_open(&o, &s) == cases[i].want, "%s: want %s",
                      cases[i].what, qg_err_name(cases[i].want));
        ck_assert_msg(s == NULL, "%s: a store came back", cases[i].what);
    }

    /* Refused before acting: no directory was made. */
    snprintf(path, sizeof(path), "%s/missing", tu_store_dir());
    ck_assert_int_eq(stat(path, &sb), -1);
    ck_assert_int_eq(errno, ENOENT);
    tu_remove_dir(empty);
}
END_TEST

START_TEST(test_store_ticket_unknown_or_invalid)
{
    static const qg_id_kind kinds[] = {QG_ID_TICKET, QG_ID_LIVE_QUEUE,
                                       QG_ID_APPOINTMENT};
    qg_history *h = NULL;
    qg_ticket t;
    size_t i;

    ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[0].file).verdict,
                     QG_ACCEPTED);
    for (i = 0; i < COUNT(kinds); i++) {
        ck_assert_int_eq(qg_store_ticket(st, kinds[i], 777777, &t),
                         QG_NOTFOUND);
        ck_assert_int_eq(qg_store_ticket(st, kinds[i], 0, &t), QG_EINVAL);
        ck_assert_int_eq(qg_store_ticket(st, kinds[i], -1, &t), QG_EINVAL);
    }
    ck_assert_int_eq(qg_store_ticket(st, (qg_id_kind)3, 1, &t), QG_EINVAL);
    ck_assert_int_eq(qg_history_open(st, 777777, &h), QG_NOTFOUND);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(test_error_names_distinct)
{
    static const struct {
        int code;
        const char *name, *msg;
    } errs[] = {
#define XX(name, val, msg) {QG_##name, "QG_" #name, msg},
        QG_ERRNO_MAP(XX)
#undef XX
    };
    size_t i, j;

    for (i = 0; i < COUNT(errs); i++) {
        ck_assert_str_eq(qg_err_name(errs[i].code), errs[i].name);
        ck_assert_str_eq(qg_strerror(errs[i].code), errs[i].msg);
        ck_assert_str_ne(qg_err_name(errs[i].code), "QG_UNKNOWN");
        ck_assert_str_ne(qg_strerror(errs[i].code), "unknown error");
        for (j = 0; j < i; j++) {
            ck_assert_str_ne(qg_err_name(errs[i].code),
                             qg_err_name(errs[j].code));
            ck_assert_str_ne(qg_strerror(errs[i].code),
                             qg_strerror(errs[j].code));
        }
    }
    ck_assert_str_eq(qg_strerror(12345), "unknown error");
    ck_assert_str_eq(qg_err_name(12345), "QG_UNKNOWN");
}
END_TEST

START_TEST(test_destructors_accept_null)
{
    qg_ticket t;

    /* A crash here fails the test (fork mode). */
    qg_store_close(NULL);
    qg_history_close(NULL);
    qg_rejections_close(NULL);
    qg_engine_free(NULL);
    /* ... and the open store and engine are untouched. */
    ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[0].file).verdict,
                     QG_ACCEPTED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
}
END_TEST

/* ----- Processes -------------------------------------------------------- */

/*
 * Forks a writer that opens the fixture's store itself (a small map, so
 * that it grows under the other processes) and applies joins of ids
 * first .. first + n - 1.  The child never calls Check: it reports by its
 * exit status.  Its store is its own: LMDB forbids using an environment
 * after fork().
 */
static pid_t
spawn_writer(long long first, int n)
{
    qg_store_options o = {0};
    qg_store *s = NULL;
    qg_result res;
    long long id;
    pid_t pid;
    int rc;

    fflush(NULL);
    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid > 0)
        return pid;
    o.path = tu_store_dir();
    o.map_size = SMALL_MAP;
    o.durability = QG_NOSYNC;
    if ((rc = qg_store_open(&o, &s))) {
        fprintf(stderr, "writer: open: %s\n", qg_strerror(rc));
        _exit(2);
    }
    for (id = first; id < first + n; id++) {
        if ((rc = apply_join(s, id, &res))) {
            fprintf(stderr, "writer: id %lld: %s\n", id, qg_strerror(rc));
            _exit(3);
        }
        if (res.verdict != QG_ACCEPTED) {
            fprintf(stderr, "writer: id %lld: %s\n", id, res.detail);
            _exit(4);
        }
    }
    qg_store_close(s);
    _exit(0);
}

static void
assert_exited_ok(pid_t pid, int status)
{
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "writer %d: status %#x", (int)pid, status);
}

/*
 * Reads the ticket of live-queue entry id and its history, as a reader
 * beside a writer does, and fails the test on anything inconsistent.
 * Returns 1 when the ticket exists.
 */
static int
read_join(qg_store *s, long long id)
{
    qg_history *h = NULL;
    qg_state prev = QG_ST_NEW;
    qg_record rec;
    qg_ticket t;
    uint32_t n = 0;
    int rc;

    if ((rc = qg_store_ticket(s, QG_ID_LIVE_QUEUE, id, &t)) == QG_NOTFOUND)
        return 0;
    ck_assert_msg(rc == 0, "id %lld: %s", id, qg_strerror(rc));
    ck_assert_int_eq(t.live_queue_id, id);
    ck_assert_int_eq(qg_history_open(s, t.id, &h), 0);
    while ((rc = qg_history_next(h, &rec)) == 0) {
        ck_assert_uint_eq(rec.seq, ++n);
        ck_assert_int_eq(rec.from, prev);
        prev = rec.to;
    }
    qg_history_close(h);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    ck_assert_uint_eq(n, t.records);
    ck_assert_int_eq(prev, t.state);
    return 1;
}

START_TEST(test_reader_sees_consistent_history)
{
    enum { N = 2000 };
    static unsigned char seen[N + 1];
    qg_store_options o = {0};
    long long id;
    pid_t pid, done;
    int status;

    /* LMDB forbids opening one store twice in a process: the read-only
     * handle replaces the fixture's. */
    qg_store_close(st);
    st = NULL;
    memset(seen, 0, sizeof(seen));
    pid = spawn_writer(1, N);

    o.path = tu_store_dir();
    o.map_size = SMALL_MAP; /* so that the writer's growth reaches it */
    o.flags = QG_RDONLY;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    do {
        for (id = 1; id <= N; id++) {
            if (read_join(st, id))
                seen[id] = 1;
            else
                ck_assert_msg(!seen[id], "ticket %lld vanished", id);
        }
    } while ((done = waitpid(pid, &status, WNOHANG)) == 0);
    ck_assert_int_eq(done, pid);
    assert_exited_ok(pid, status);

    /* The writer is done: every ticket is there for the same reader. */
    for (id = 1; id <= N; id++)
        ck_assert_msg(read_join(st, id), "ticket %lld missing", id);
}
END_TEST

START_TEST(test_store_open_beside_growing_writer)
{
    enum { N = 4000 };
    qg_store_options o = {0};
    qg_store *rd;
    pid_t pid, done = 0;
    int status, rc = 0, opens = 0;

    qg_store_close(st);
    st = NULL;
    pid = spawn_writer(1, N);

    /* A store that grew past the map size asked for keeps its own size;
     * opening it while another process writes must not fail because the
     * writer grew it further in the meantime. */
    o.path = tu_store_dir();
    o.map_size = SMALL_MAP;
    o.flags = QG_RDONLY;
    do {
        rd = NULL;
        if ((rc = qg_store_open(&o, &rd)))
            break;
        qg_store_close(rd);
        opens++;
    } while ((done = waitpid(pid, &status, WNOHANG)) == 0);
    if (done == 0) /* let the writer finish before failing */
        done = waitpid(pid, &status, 0);
    ck_assert_msg(rc == 0, "open %d beside the writer: %s", opens + 1,
                  qg_strerror(rc));
    ck_assert_int_eq(done, pid);
    assert_exited_ok(pid, status);
}
END_TEST

START_TEST(test_two_writers_all_recorded)
{
    enum { N = 500, SECOND = 100001 };
    static unsigned char numbered[2 * N + 1];
    static const long long first[] = {1, SECOND};
    qg_ticket t;
    pid_t a, b;
    int status_a, status_b;
    long long id;
    size_t i;

    qg_store_close(st);
    st = NULL;
    memset(numbered, 0, sizeof(numbered));
    a = spawn_writer(first[0], N);
    b = spawn_writer(first[1], N);
    ck_assert_int_eq(waitpid(a, &status_a, 0), a);
    ck_assert_int_eq(waitpid(b, &status_b, 0), b);
    assert_exited_ok(a, status_a);
    assert_exited_ok(b, status_b);

    /* Every delivery has its own ticket: no number was handed out twice. */
    st = tu_store_reopen(NULL, 0);
    for (i = 0; i < COUNT(first); i++) {
        for (id = first[i]; id < first[i] + N; id++) {
            ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, id, &t), 0);
            ck_assert_uint_eq(t.records, 1);
            ck_assert_uint_ge(t.id, 1);
            ck_assert_uint_le(t.id, 2 * N);
            ck_assert_msg(!numbered[t.id], "ticket %llu given twice",
                          (unsigned long long)t.id);
            numbered[t.id] = 1;
        }
    }
}
END_TEST

/* ----- the suite -------------------------------------------------------- */

/* Each id has one spelling; a bare number is a live-queue id. */
/* Which backend a path opens: a PostgreSQL URI, or an LMDB folder. */
START_TEST(test_store_path_backend)
{
    static const struct {
        const char *path;
        int pg;
    } cases[] = {
        {"postgresql:///qgate?host=/run/postgresql", 1},
        {"postgres://gate@db.example/qgate", 1},
        {"postgresql:", 0},
        {"PostgreSQL://db/qgate", 0},
        {"/var/lib/qgate", 0},
        {"postgresql", 0},
        {"", 0},
        {NULL, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        ck_assert_msg(qg_store_is_postgresql(cases[i].path) == cases[i].pg,
                      "%s", cases[i].path ? cases[i].path : "NULL");
}
END_TEST

START_TEST(test_ticket_id_parse_forms)
{
    static const struct {
        const char *name;
        int rc;
        qg_id_kind kind;
        int64_t id;
    } cases[] = {
        {"30001", 0, QG_ID_LIVE_QUEUE, 30001},
        {"lq:30001", 0, QG_ID_LIVE_QUEUE, 30001},
        {"appt:9101", 0, QG_ID_APPOINTMENT, 9101},
        {"ticket:5", 0, QG_ID_TICKET, 5},
        {"9223372036854775807", 0, QG_ID_LIVE_QUEUE, INT64_MAX},
        {"9223372036854775808", QG_EINVAL, 0, 0},
        {"030001", QG_EINVAL, 0, 0},
        {"+30001", QG_EINVAL, 0, 0},
        {" 30001", QG_EINVAL, 0, 0},
        {"lq:", QG_EINVAL, 0, 0},
        {"ticket:0", QG_EINVAL, 0, 0},
        {"x:1", QG_EINVAL, 0, 0},
        {"", QG_EINVAL, 0, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        qg_id_kind kind = (qg_id_kind)-1;
        int64_t id = -1;

        ck_assert_int_eq(qg_ticket_id_parse(cases[i].name, &kind, &id),
                         cases[i].rc);
        if (cases[i].rc == 0) {
            ck_assert_int_eq(kind, cases[i].kind);
            ck_assert_int_eq(id, cases[i].id);
        } else {
            ck_assert_int_eq(id, -1);
        }
    }
    ck_assert_int_eq(qg_ticket_id_parse(NULL, NULL, NULL), QG_EINVAL);
}
END_TEST

/* ----- counts ----------------------------------------------------------- */

/* Whether the LMDB store holds counts, and their value. */
static int
counts_value(unsigned char *buf, size_t cap)
{
    MDB_val k = {6, (void *)"counts"}, v;
    qg__txn t;
    int rc;

    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    rc = mdb_get(t.txn, st->meta, &k, &v);
    ck_assert(rc == 0 || rc == MDB_NOTFOUND);
    if (rc == 0) {
        ck_assert_uint_le(v.mv_size, cap);
        memcpy(buf, v.mv_data, v.mv_size);
    }
    qg__txn_abort(&t);
    return rc == 0;
}

/* The counts a pass over every ticket and every entry of the rejection
 * log gives, as the console's overview made them before the store kept
 * them. */
static void
walk_counts(qg_counts *c, uint64_t *records, uint64_t *newest)
{
    qg_tickets *it = NULL;
    qg_rejections *log = NULL;
    qg_ticket t;
    qg_rejection rj;
    int rc;

    memset(c, 0, sizeof(*c));
    *records = *newest = 0;
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        *records += t.records;
        if ((unsigned)t.state < QG_STATE_COUNT && t.records) {
            c->states[t.state]++;
            c->tickets++;
        }
    }
    qg_tickets_close(it);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    ck_assert_int_eq(qg_rejections_open(st, 1, &log), 0);
    while ((rc = qg_rejections_next(log, &rj)) == 0) {
        *newest = rj.id;
        if ((unsigned)rj.reason < QG_REASON_COUNT) {
            c->reasons[rj.reason]++;
            c->refused++;
        }
    }
    qg_rejections_close(log);
    ck_assert_int_eq(rc, QG_NOTFOUND);
}

/* Fails the test unless the LMDB store's counts are those of want, of
 * records history records and a log whose newest entry is newest: kept
 * in step, not found stale and passed over for a walk. */
static void
assert_kept(const char *when, const qg_counts *want, uint64_t records,
            uint64_t newest)
{
    unsigned char v[512];
    int i;

    ck_assert_msg(counts_value(v, sizeof(v)), "%s: no counts kept", when);
    ck_assert_msg(get64(v) == records && get64(v + 8) == want->refused &&
                      get64(v + 16) == newest,
                  "%s: counts of %" PRIu64 " records, %" PRIu64
                  " refusals up to %" PRIu64 ", the store has %" PRIu64
                  ", %" PRIu64 ", %" PRIu64,
                  when, get64(v), get64(v + 8), get64(v + 16), records,
                  want->refused, newest);
    for (i = 0; i < QG_STATE_COUNT; i++)
        ck_assert_msg(get64(v + 24 + 8 * i) == want->states[i],
                      "%s: %" PRIu64 " tickets %s kept, a pass finds %" PRIu64,
                      when, get64(v + 24 + 8 * i), qg_state_name((qg_state)i),
                      want->states[i]);
    for (i = 0; i < QG_REASON_COUNT; i++)
        ck_assert_msg(get64(v + 24 + 8 * (QG_STATE_COUNT + i)) ==
                          want->reasons[i],
                      "%s: %" PRIu64 " refused %s kept, a pass finds %" PRIu64,
                      when, get64(v + 24 + 8 * (QG_STATE_COUNT + i)),
                      qg_reason_name((qg_reason)i), want->reasons[i]);
}

/* Fails the test, naming the state or reason, unless qg_store_counts()
 * says what the pass says and, kept set, a writable LMDB store keeps them;
 * returns the counts. */
static qg_counts
check_counts(const char *when, int kept)
{
    qg_counts got, want;
    uint64_t records, newest;
    int i;

    walk_counts(&want, &records, &newest);
    ck_assert_int_eq(qg_store_counts(st, &got), 0);
    for (i = 0; i < QG_STATE_COUNT; i++)
        ck_assert_msg(got.states[i] == want.states[i],
                      "%s: %" PRIu64 " tickets %s, a pass finds %" PRIu64, when,
                      got.states[i], qg_state_name((qg_state)i),
                      want.states[i]);
    for (i = 0; i < QG_REASON_COUNT; i++)
        ck_assert_msg(got.reasons[i] == want.reasons[i],
                      "%s: %" PRIu64 " refused %s, a pass finds %" PRIu64, when,
                      got.reasons[i], qg_reason_name((qg_reason)i),
                      want.reasons[i]);
    ck_assert_msg(got.tickets == want.tickets && got.refused == want.refused,
                  "%s: %" PRIu64 " tickets and %" PRIu64
                  " refused, a pass finds %" PRIu64 " and %" PRIu64,
                  when, got.tickets, got.refused, want.tickets, want.refused);
    /* a writable LMDB store keeps them: a pass would hide a wrong count */
    if (kept && !tu_store_is_pg() && qg__store_writable(st) == 1)
        assert_kept(when, &want, records, newest);
    return got;
}

static qg_counts
assert_counts(const char *when)
{
    return check_counts(when, 1);
}

/* A day at the gate, with a reorder window: what each delivery must be
 * ('A' accepted, 'L' placed late, 'H' held, 'D' duplicate, 'R' refused),
 * and, for a refusal, its reason. */
static const struct {
    const char *file;
    char verdict;
    qg_reason reason;
} day[] = {
    {WALK_IN "01-join-live-queue.json", 'A', QG_R_NONE},
    {WALK_IN "03-move.json", 'A', QG_R_NONE},
    {WALK_IN "02-alert.json", 'L', QG_R_NONE},
    {WALK_IN "01-join-live-queue.json", 'D', QG_R_REDELIVERY},
    {WALK_IN "05-served.json", 'H', QG_R_EARLY},
    {WALK_IN "04-serving.json", 'A', QG_R_NONE}, /* releases 05 */
    {WALK_IN "05-served.json", 'D', QG_R_REDELIVERY},
    {APPOINTMENT "01-appointment.json", 'A', QG_R_NONE},
    {APPOINTMENT "02-reschedule.json", 'A', QG_R_NONE},
    {APPOINTMENT "03-join-live-queue.json", 'A', QG_R_NONE},
    {"illegal/paid-after-cancel/01-join-live-queue.json", 'A', QG_R_NONE},
    {"illegal/paid-after-cancel/02-cancel-delete.json", 'A', QG_R_NONE},
    {"illegal/paid-after-cancel/03-billing-paid.json", 'R', QG_R_TICKET_CLOSED},
    {"malformed/not-json.json", 'R', QG_R_BAD_JSON},
    {"malformed/missing-signature.json", 'R', QG_R_MISSING_SIGNATURE},
    {"malformed/signature-short.json", 'R', QG_R_SIGNATURE_FORMAT},
    {SERVED "01-join-live-queue.json", 'A', QG_R_NONE},
    {SERVED "02-served.json", 'H', QG_R_EARLY}, /* expired below */
};

static char
verdict_letter(const qg_result *res)
{
    switch (res->verdict) {
    case QG_ACCEPTED:
        return res->late ? 'L' : 'A';
    case QG_HELD:
        return 'H';
    case QG_DUPLICATE:
        return 'D';
    default:
        return 'R';
    }
}

/* After each delivery of a day, and after its held deliveries expire,
 * the store's counts are what a pass over its tickets and log finds. */
START_TEST(test_counts_follow_a_day)
{
    qg_counts c;
    qg_result res;
    uint64_t expired = 0;
    size_t i;
    int states = 0, reasons = 0;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 1200), 0);
    for (i = 0; i < COUNT(day); i++) {
        res = tu_apply(eng, st, day[i].file);
        ck_assert_msg(verdict_letter(&res) == day[i].verdict &&
                          res.reason == day[i].reason,
                      "%s: %s %s, expected %c %s", day[i].file,
                      qg_verdict_name(res.verdict), qg_reason_name(res.reason),
                      day[i].verdict, qg_reason_name(day[i].reason));
        assert_counts(day[i].file);
    }
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, &expired), 0);
    ck_assert_uint_eq(expired, 1);
    c = assert_counts("expired");
    for (i = 0; i < QG_STATE_COUNT; i++)
        states += c.states[i] != 0;
    for (i = 0; i < QG_REASON_COUNT; i++)
        reasons += c.reasons[i] != 0;
    ck_assert_uint_eq(c.tickets, 4);
    ck_assert_int_ge(states, 3);
    ck_assert_int_ge(reasons, 4);
}
END_TEST

/* The unsigned entries the bound drops leave the counts. */
START_TEST(test_counts_follow_drops)
{
    enum { N = 40, BOUND = 64 << 10 };
    qg_store_options o;
    qg_counts c;
    qg_result res;
    uint64_t dropped = 0;
    size_t len;
    char *body;
    int i;

    qg_store_close(st);
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    o.unsigned_log_max = BOUND;
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    tu_apply(eng, st, SERVED "01-join-live-queue.json");
    tu_apply(eng, st, SERVED "02-served.json");
    for (i = 0; i < N; i++) {
        body = big_body(60000 + i, 10000, 1, &len);
        ck_assert_int_eq(qg_engine_apply(eng, st, body, len, 0, &res), 0);
        ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
        free(body);
    }
    ck_assert_int_eq(qg_rejections_dropped(st, &dropped), 0);
    ck_assert_uint_gt(dropped, 0);
    c = assert_counts("dropped");
    ck_assert_uint_eq(c.refused, (uint64_t)N + 1 - dropped);
}
END_TEST

/* Puts value (NULL: deletes it) as a qgate without counts leaves it. */
static void
counts_set(const unsigned char *buf, size_t len)
{
    MDB_val k = {6, (void *)"counts"}, v = {len, (void *)buf};
    qg__txn t;

    ck_assert_int_eq(qg__txn_begin(st, 1, &t), 0);
    if (buf)
        ck_assert_int_eq(mdb_put(t.txn, st->meta, &k, &v, 0), 0);
    else
        ck_assert_int_eq(mdb_del(t.txn, st->meta, &k, NULL), 0);
    ck_assert_int_eq(qg__txn_commit(&t), 0);
}

/*
 * A store from before the counts is counted by a pass while read-only,
 * gets them at its next writable open, and they follow later writes.
 */
START_TEST(test_counts_built_for_older_store)
{
    unsigned char buf[512];
    qg_result res;

    if (tu_store_is_pg())
        return; /* LMDB's meta */
    apply_visit(tu_walk_in, 4);
    res = tu_apply(eng, st, SERVED "02-served.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    ck_assert(counts_value(buf, sizeof(buf)));
    counts_set(NULL, 0);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert(!counts_value(buf, sizeof(buf)));
    ck_assert_uint_eq(assert_counts("read-only, none").tickets, 1);
    st = tu_store_reopen(st, 0);
    ck_assert(counts_value(buf, sizeof(buf)));
    assert_counts("built");
    apply_visit(tu_walk_in + 4, 5);
    apply_visit(appointment, COUNT(appointment));
    tu_apply(eng, st, "malformed/not-json.json");
    ck_assert_uint_eq(assert_counts("written").tickets, 2);
}
END_TEST

/*
 * Counts an older qgate left behind as they were, having written a step
 * or a refusal since: not taken for the store's, and counted again at the
 * next writable open.
 */
START_TEST(test_counts_stale_after_older_writer)
{
    static const char *const since[] = {
        WALK_IN "02-alert.json",   /* a step: a record more */
        "malformed/not-json.json", /* a refusal: an entry more */
        SERVED "02-served.json",   /* a refusal naming a ticket */
    };
    unsigned char old[512], now[512];
    size_t i;

    if (tu_store_is_pg())
        return; /* LMDB's meta */
    tu_apply(eng, st, WALK_IN "01-join-live-queue.json");
    for (i = 0; i < COUNT(since); i++) {
        ck_assert(counts_value(old, sizeof(old)));
        tu_apply(eng, st, since[i]);
        counts_set(old, 8 * (3 + QG_STATE_COUNT + QG_REASON_COUNT));
        check_counts(since[i], 0);
        st = tu_store_reopen(st, 0);
        ck_assert(counts_value(now, sizeof(now)));
        ck_assert_msg(memcmp(old, now, 8 * 3) != 0, "%s: not counted again",
                      since[i]);
        assert_counts(since[i]);
    }
}
END_TEST

/*
 * A delivery of a group commit whose recording fails after its ticket
 * changed (its held step cannot be read to be released) is undone alone,
 * and its change to the counts with it.
 */
START_TEST(test_counts_batch_failure_undone)
{
    static const char *const files[] = {
        WALK_IN "04-serving.json", /* fails releasing 05 */
        APPOINTMENT "01-appointment.json",
    };
    MDB_val k = {8, NULL}, v = {10, (void *)"damaged.."};
    unsigned char key[8];
    qg_body bodies[COUNT(files)];
    qg_result res[COUNT(files)];
    int rcs[COUNT(files)];
    qg_ticket t;
    qg_held_list *hl = NULL;
    qg_held h;
    qg__txn tx;
    size_t i, len;

    if (tu_store_is_pg())
        return; /* LMDB's databases */
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 1200), 0);
    apply_visit(tu_walk_in, 3);
    ck_assert_int_eq(tu_apply(eng, st, WALK_IN "05-served.json").verdict,
                     QG_HELD);
    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    ck_assert_int_eq(qg_held_next(hl, &h), 0);
    qg_held_close(hl);
    put64(key, h.id);
    k.mv_data = key;
    ck_assert_int_eq(qg__txn_begin(st, 1, &tx), 0);
    ck_assert_int_eq(mdb_put(tx.txn, st->held, &k, &v, 0), 0);
    ck_assert_int_eq(qg__txn_commit(&tx), 0);

    for (i = 0; i < COUNT(files); i++) {
        bodies[i].body = tu_fixture(files[i], &len);
        bodies[i].len = len;
    }
    ck_assert_int_eq(
        qg_engine_apply_batch(eng, st, bodies, COUNT(files), res, rcs), 0);
    for (i = 0; i < COUNT(files); i++)
        free((char *)bodies[i].body);
    ck_assert_int_eq(rcs[0], QG_ESTORE);
    ck_assert_int_eq(rcs[1], 0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_int_eq(t.state, QG_ST_MOVED);
    ck_assert_uint_eq(assert_counts("batch").tickets, 2);
}
END_TEST

Suite *store_suite(void);

Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *core = tcase_create("Core");
    TCase *limits = tcase_create("Limits");
    TCase *errors = tcase_create("Errors");
    TCase *procs = tcase_create("Processes");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_history_survives_reopen);
    tcase_add_test(core, test_history_short_walk_is_damage);
    tcase_add_test(core, test_ticket_id_parse_forms);
    tcase_add_test(core, test_store_path_backend);
    tcase_add_test(core, test_duplicate_after_reopen);
    tcase_add_test(core, test_ticket_found_by_either_id);
    tcase_add_test(core, test_rejection_logged_with_ticket);
    tcase_add_test(core, test_rejection_logged_without_ticket);
    tcase_add_test(core, test_rejection_unsigned_names_no_ticket);
    tcase_add_test(core, test_ignored_delivery_not_logged);
    tcase_add_test(core, test_rejection_unsigned_body_prefix);
    tcase_add_test(core, test_rejection_resolved);
    tcase_add_test(core, test_refusals_index_rebuilt);
    tcase_add_test(core, test_step_summaries_rebuilt);
    tcase_add_test(core, test_step_summaries_rebuilt_in_batches);
    tcase_add_test(core, test_rejection_unsigned_log_bounded);
    tcase_add_test(core, test_refusals_index_follows_drops);
    tcase_add_test(core, test_dry_run_writes_nothing);
    tcase_add_test(core, test_dry_run_on_read_only_store);
    tcase_add_test(core, test_counts_follow_a_day);
    tcase_add_test(core, test_counts_follow_drops);
    tcase_add_test(core, test_counts_built_for_older_store);
    tcase_add_test(core, test_counts_stale_after_older_writer);
    tcase_add_test(core, test_counts_batch_failure_undone);
    suite_add_tcase(s, core);

    tcase_add_checked_fixture(limits, limits_setup, limits_teardown);
    tcase_set_timeout(limits, 60);
    tcase_add_test(limits, test_map_full_grows);
    tcase_add_test(limits, test_map_full_fails_cleanly);
    tcase_add_test(limits, test_writemap_store);
    tcase_add_test(limits, test_large_body_kept_whole);
    suite_add_tcase(s, limits);

    tcase_add_checked_fixture(errors, setup, teardown);
    /* A folder's faults: LMDB's. */
    if (!tu_store_is_pg())
        tcase_add_test(errors, test_store_open_bad_options);
    tcase_add_test(errors, test_store_ticket_unknown_or_invalid);
    tcase_add_test(errors, test_error_names_distinct);
    tcase_add_test(errors, test_destructors_accept_null);
    suite_add_tcase(s, errors);

    tcase_add_checked_fixture(procs, setup, teardown);
    /* PostgreSQL's: a database a test, and a server that shares the
     * cores with the writers */
    tcase_set_timeout(procs, tu_store_is_pg() ? 180 : 60);
    tcase_add_test(procs, test_reader_sees_consistent_history);
    tcase_add_test(procs, test_store_open_beside_growing_writer);
    tcase_add_test(procs, test_two_writers_all_recorded);
    suite_add_tcase(s, procs);

    return s;
}

int
main(void)
{
    return tu_run(store_suite());
}
