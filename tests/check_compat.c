/*
 * check_compat.c - stores written by earlier versions: fixtures/stores/
 * holds one written by qgate 0.1, one by 0.3, before sources, and one by
 * 0.4, with each ticket's chain head in a database of its own (each
 * README says how), which today's code must read as written, verify, and
 * go on writing.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "last_txnid.h"
#include "store_int.h"
#include "testutil.h"

static char dir[64];
static qg_store *st;

/* A fresh copy of fixtures/stores/<version> in dir, not opened yet. */
static void
copy_store(const char *version)
{
    size_t len;
    char path[96], *data;

    snprintf(path, sizeof(path), "stores/%s/data.mdb", version);
    data = tu_fixture(path, &len);
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/qgate-compat-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    ck_assert_ptr_nonnull(f = fopen(path, "wb"));
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    free(data);
    st = NULL;
}

static void
setup_copy(void)
{
    copy_store("0.1");
}

/* Opens the copy in dir: qg_store_open()'s code. */
static int
try_open(unsigned flags, qg_store **s)
{
    qg_store_options o;

    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    *s = NULL;
    return qg_store_open(&o, s);
}

static qg_store *
open_copy(unsigned flags)
{
    qg_store *s;

    ck_assert_int_eq(try_open(flags, &s), 0);
    return s;
}

static void
setup(void)
{
    setup_copy();
    st = open_copy(0);
}

static void
teardown(void)
{
    qg_store_close(st);
    tu_remove_dir(dir);
}

/* The tickets as 0.1 left them: (live-queue id, state, steps, refused). */
static const struct {
    int64_t lq;
    qg_state state;
    uint32_t records, rejections;
} tickets[] = {
    {30001, QG_ST_SERVED, 4, 0},
    {40002, QG_ST_CANCELLED, 2, 1},
    {40004, QG_ST_ARRIVED, 2, 1},
    {30002, QG_ST_CANCELLED, 6, 0},
};

START_TEST(test_compat_01_reads_as_written)
{
    static const qg_reason reasons[] = {QG_R_TICKET_CLOSED, QG_R_STALE};
    char detail[256];
    qg_rejections *rj;
    qg_rejection rej;
    qg_finding f;
    qg_history *h;
    qg_record r;
    qg_ticket t;
    uint32_t n;
    size_t i;

    ck_assert_msg(qg_store_check(st, detail, sizeof(detail)) == 0, "%s",
                  detail);
    for (i = 0; i < sizeof(tickets) / sizeof(*tickets); i++) {
        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, tickets[i].lq, &t), 0);
        ck_assert_int_eq(t.state, tickets[i].state);
        ck_assert_uint_eq(t.records, tickets[i].records);
        ck_assert_uint_eq(t.rejections, tickets[i].rejections);
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
        ck_assert_msg(!f.found, "lq %lld: %s", (long long)tickets[i].lq,
                      f.what);
        /* 0.1 wrote no place in event time: it reads as the seq */
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        for (n = 0; qg_history_next(h, &r) == 0; n++) {
            ck_assert_uint_eq(r.seq, n + 1);
            ck_assert_uint_eq(r.pos, n + 1);
            ck_assert_int_eq(r.late, 0);
            ck_assert_int_eq(r.released, 0);
            ck_assert_int_gt((int)r.body_len, 0);
        }
        qg_history_close(h);
        ck_assert_uint_eq(n, tickets[i].records);
    }
    /* reasons are stored by number: 0.1's must still mean the same */
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
        ck_assert_int_eq(rej.verdict, QG_REJECTED);
        ck_assert_str_eq(qg_reason_name(rej.reason),
                         qg_reason_name(reasons[i]));
        ck_assert_int_gt((int)rej.body_len, 0);
    }
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
}
END_TEST

/* Today's engine goes on writing it: 0.1's missing alert is placed late
 * among 0.1's steps, and the visit then runs to its end. */
START_TEST(test_compat_01_takes_late_steps)
{
    static const char *const rest[] = {
        "visits/walk-in/06-pharmacy-received.json",
        "visits/walk-in/07-pharmacy-dispensed.json",
        "visits/walk-in/08-billing-paid.json",
        "visits/walk-in/09-end-visit.json"};
    static const uint32_t by_event[] = {1, 5, 2, 3, 4, 6, 7, 8, 9};
    qg_engine *eng = tu_engine();
    qg_finding f;
    qg_history *h;
    qg_record r;
    qg_result res;
    qg_ticket t;
    size_t i;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 1200), 0);
    res = tu_apply(eng, st, "visits/walk-in/02-alert.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.late, 1);
    ck_assert_uint_eq(res.seq, 5);
    ck_assert_uint_eq(res.pos, 2);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(tu_apply(eng, st, rest[i]).verdict, QG_ACCEPTED);
    qg_engine_free(eng);

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
    ck_assert_msg(!f.found, "%s", f.what);
    ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++) {
        ck_assert_uint_lt(i, 9);
        ck_assert_uint_eq(r.seq, by_event[i]);
        ck_assert_uint_eq(r.pos, i + 1);
    }
    ck_assert_uint_eq(i, 9);
    qg_history_close(h);
}
END_TEST

/* 0.1 gave its stores no id (a 0.1 store cannot be opened read-only:
 * it lacks databases that read-only opens do not create).  The first
 * writable open gives it one, which it keeps, read-only or not. */
START_TEST(test_compat_01_gets_an_id_when_written)
{
    char first[QG_STORE_ID_LEN + 1], again[QG_STORE_ID_LEN + 1];

    ck_assert_int_eq(qg_store_id(NULL, first), QG_EINVAL);
    st = open_copy(0);
    ck_assert_int_eq(qg_store_id(st, first), 0);
    ck_assert_uint_eq(strlen(first), QG_STORE_ID_LEN);
    ck_assert_uint_eq(strspn(first, "0123456789abcdef"), QG_STORE_ID_LEN);
    ck_assert_str_ne(first, "00000000000000000000000000000000");
    qg_store_close(st);
    st = open_copy(QG_RDONLY);
    ck_assert_int_eq(qg_store_id(st, again), 0);
    ck_assert_str_eq(again, first);
    qg_store_close(st);
    st = open_copy(0);
    ck_assert_int_eq(qg_store_id(st, again), 0);
    ck_assert_str_eq(again, first);
}
END_TEST

/* ----- 0.3: one Chup account per store ------------------------------- */

static void
setup_03(void)
{
    copy_store("0.3");
    st = open_copy(0);
}

static void
setup_copy_03(void)
{
    copy_store("0.3");
}

/* The tickets as 0.3 left them (fixtures/stores/0.3/README.md). */
static const struct {
    int64_t lq;
    qg_state state;
    uint32_t records, rejections;
} tickets_03[] = {
    {30001, QG_ST_VISIT_ENDED, 9, 0}, {30002, QG_ST_CANCELLED, 6, 0},
    {40002, QG_ST_CANCELLED, 2, 1},   {30003, QG_ST_CANCELLED, 2, 0},
    {40005, QG_ST_SERVED, 3, 0},
};

/* A store from before sources opens as its default source, nothing
 * lost: every ticket by its ids, in the default source and by name, its
 * refusal and its held delivery, all of the default source. */
START_TEST(test_compat_03_one_default_source)
{
    char detail[256];
    qg_rejections *rj;
    qg_rejection rej;
    qg_held_list *hl;
    qg_tickets *it;
    qg_finding f;
    qg_held h;
    qg_ticket t, u;
    size_t i;
    int n;

    ck_assert_msg(qg_store_check(st, detail, sizeof(detail)) == 0, "%s",
                  detail);
    for (i = 0; i < sizeof(tickets_03) / sizeof(*tickets_03); i++) {
        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, tickets_03[i].lq, &t), 0);
        ck_assert_str_eq(t.source, QG_SOURCE_DEFAULT);
        ck_assert_int_eq(t.state, tickets_03[i].state);
        ck_assert_uint_eq(t.records, tickets_03[i].records);
        ck_assert_uint_eq(t.rejections, tickets_03[i].rejections);
        ck_assert_int_eq(qg_store_ticket_in(st, QG_SOURCE_DEFAULT,
                                            QG_ID_LIVE_QUEUE, tickets_03[i].lq,
                                            &u),
                         0);
        ck_assert_uint_eq(u.id, t.id);
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
        ck_assert_msg(!f.found, "lq %lld: %s", (long long)tickets_03[i].lq,
                      f.what);
    }
    ck_assert_int_eq(qg_store_ticket_named(st, "appt:9101", &t), 0);
    ck_assert_int_eq(t.live_queue_id, 30002);
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    for (n = 0; qg_tickets_next(it, &t) == 0; n++)
        ck_assert_str_eq(t.source, QG_SOURCE_DEFAULT);
    qg_tickets_close(it);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_int_eq(rej.reason, QG_R_TICKET_CLOSED);
    ck_assert_str_eq(rej.source, QG_SOURCE_DEFAULT);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    ck_assert_int_eq(qg_held_next(hl, &h), 0);
    ck_assert_int_eq(h.live_queue_id, 40005);
    ck_assert_int_eq(h.event, QG_EV_RX_DISPENSE);
    ck_assert_str_eq(h.source, QG_SOURCE_DEFAULT);
    ck_assert_int_eq(qg_held_next(hl, &h), QG_NOTFOUND);
    qg_held_close(hl);
}
END_TEST

/* Today's engines go on writing it: the default source finds 0.3's
 * steps and held delivery (redeliveries are duplicates), and a second
 * source's same ids are new tickets that leave 0.3's as they were. */
START_TEST(test_compat_03_second_source_apart)
{
    static const char *const dbr[] = {
        "illegal/dispense-before-receive/01-join-live-queue.json",
        "illegal/dispense-before-receive/02-serving.json",
        "illegal/dispense-before-receive/03-served.json",
        "illegal/dispense-before-receive/04-pharmacy-dispensed.json"};
    qg_engine *d = tu_engine(), *b = tu_engine();
    qg_held_list *hl;
    qg_finding f;
    qg_held h;
    qg_result res;
    qg_ticket t;
    size_t i;
    int n;

    ck_assert_int_eq(qg_engine_set_reorder_window(d, 1200), 0);
    ck_assert_int_eq(qg_engine_set_reorder_window(b, 1200), 0);
    ck_assert_int_eq(qg_engine_set_source(b, "b"), 0);
    res = tu_apply(d, st, "visits/walk-in/05-served.json");
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    ck_assert_uint_eq(res.seq, 5);
    ck_assert_int_eq(tu_apply(d, st, dbr[3]).verdict, QG_DUPLICATE);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(tu_apply(b, st, dbr[i]).verdict, QG_ACCEPTED);
    ck_assert_int_eq(tu_apply(b, st, dbr[3]).verdict, QG_HELD);
    res = tu_apply(b, st, "visits/walk-in/01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.from, QG_ST_NEW);
    ck_assert_uint_eq(res.ticket, 7);

    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 9);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30001, &t),
                     0);
    ck_assert_uint_eq(t.id, 7);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 40005, &t), 0);
    ck_assert_uint_eq(t.records, 3);
    ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &f), 0);
    ck_assert_msg(!f.found, "%s", f.what);
    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    for (n = 0; qg_held_next(hl, &h) == 0; n++)
        ck_assert_str_eq(h.source, n == 0 ? QG_SOURCE_DEFAULT : "b");
    qg_held_close(hl);
    ck_assert_int_eq(n, 2);
    qg_engine_free(d);
    qg_engine_free(b);
}
END_TEST

/* ----- 0.3: the chain computed in batches ---------------------------- */

/* The last entry's hash of the chain over 0.3's 24 records, as the
 * migration in one transaction computed it (qgate seal of a copy, by the
 * qgate before batches). */
#define HEAD_03                                                                \
    "5b28bd092ae974f4826218068af80736733460ad60d7b20b07b8642737cd4c5d"
#define RECORDS_03 24

/* What a migration writes, as one buffer (malloc'd, *len bytes): every
 * chain entry, every ticket row (where the heads are) and chain_tickets,
 * each key and value with its length. */
static char *
chained(size_t *len)
{
    MDB_dbi dbs[3];
    MDB_cursor *cur;
    MDB_val k, v;
    qg__txn t;
    char *buf = NULL;
    FILE *f;
    int i, rc;

    dbs[0] = st->chain;
    dbs[1] = st->tickets;
    dbs[2] = st->chain_tickets;
    ck_assert_ptr_nonnull(f = open_memstream(&buf, len));
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(mdb_cursor_open(t.txn, dbs[i], &cur), 0);
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            fwrite(&k.mv_size, sizeof(k.mv_size), 1, f);
            fwrite(k.mv_data, 1, k.mv_size, f);
            fwrite(&v.mv_size, sizeof(v.mv_size), 1, f);
            fwrite(v.mv_data, 1, v.mv_size, f);
        }
        ck_assert_int_eq(rc, MDB_NOTFOUND);
        mdb_cursor_close(cur);
        fputc('|', f);
    }
    qg__txn_abort(&t);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

/* The migration each test compares with: chained() after it. */
static char *whole;
static size_t whole_len;

static void
keep_whole(void)
{
    whole = chained(&whole_len);
}

static void
teardown_whole(void)
{
    free(whole);
    whole = NULL;
    teardown();
}

/* Asserts that the open store holds what keep_whole() kept; what names
 * the case. */
static void
assert_whole(const char *what, size_t batch, size_t dies)
{
    size_t len;
    char *got = chained(&len);

    ck_assert_msg(len == whole_len && memcmp(got, whole, len) == 0,
                  "%s, batches of %zu, dying before batch %zu: another chain",
                  what, batch, dies);
    free(got);
}

/* Asserts that the chain verifies, with one entry for each of n records,
 * and that this open chained `migrated` of them. */
static void
assert_chained(uint64_t n, uint64_t migrated)
{
    qg_chain_finding f;
    uint64_t got = 0;

    ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s", f.what);
    ck_assert_uint_eq(f.entries, n);
    ck_assert_int_eq(qg_store_chain_migrated(st, &got), 0);
    ck_assert_uint_eq(got, migrated);
}

/* Deletes a record of the copy in dir (no store open) with liblmdb, as
 * an older qgate deletes a held delivery or a refusal. */
static void
delete_record(const char *db, uint64_t id)
{
    unsigned char key[8];
    MDB_val k = {8, key};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int i;

    for (i = 0; i < 8; i++)
        key[i] = (unsigned char)(id >> (56 - 8 * i));
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 64), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
    ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A fresh copy of 0.3's store in dir, the last one closed and removed;
 * then, if db is set, its record id there deleted. */
static void
recopy_03(const char *db, uint64_t id)
{
    qg_store_close(st);
    st = NULL;
    tu_remove_dir(dir);
    copy_store("0.3");
    if (db)
        delete_record(db, id);
}

/* qg__chain_between for the tests: the migration dies before batch
 * die_at (1 for the first; 0: never), and waits a moment before each
 * batch (so that two processes' batches interleave). */
static size_t die_at, batches_begun;

static int
between(void)
{
    usleep(1000);
    return ++batches_begun == die_at ? QG_EIO : 0;
}

/* Opens the copy in dir writable with batches of batch records, the
 * migration dying before batch die (0: never): qg_store_open()'s code. */
static int
open_dying(size_t batch, size_t die)
{
    size_t was = qg__chain_batch;
    int rc;

    qg__chain_batch = batch;
    qg__chain_between = between;
    die_at = die;
    batches_begun = 0;
    rc = try_open(0, &st);
    qg__chain_batch = was;
    qg__chain_between = NULL;
    return rc;
}

/* Migrates a fresh copy of 0.3's store in one transaction, keeps what it
 * wrote (keep_whole()), and returns last_txnid(st) after it.  Its chain
 * ends where the qgate before batches ended it. */
static size_t
migrate_03_whole(void)
{
    char text[QG_SEAL_MAX];

    recopy_03(NULL, 0);
    st = open_copy(0);
    assert_chained(RECORDS_03, RECORDS_03);
    ck_assert_int_eq(qg_store_seal(st, NULL, text, sizeof(text), NULL, 0), 0);
    ck_assert_ptr_nonnull(strstr(text, " records=24 "));
    ck_assert_ptr_nonnull(strstr(text, "sha256=" HEAD_03));
    keep_whole();
    return last_txnid(st);
}

/* A store from before the chain is chained in transactions of
 * qg__chain_batch records, so that a large one stays within LMDB's dirty
 * pages a transaction; whatever the batch, the chain and the heads end
 * byte for byte as in one transaction, one transaction a batch. */
START_TEST(test_compat_03_chained_in_batches)
{
    static const struct {
        size_t batch, commits; /* beyond a migration in one transaction */
    } cases[] = {{1, 23}, {2, 11}, {3, 7}, {7, 3}, {23, 1}, {24, 0}, {1000, 0}};
    size_t i, whole_tx;

    whole_tx = migrate_03_whole();
    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        recopy_03(NULL, 0);
        ck_assert_int_eq(open_dying(cases[i].batch, 0), 0);
        assert_chained(RECORDS_03, RECORDS_03);
        assert_whole("0.3", cases[i].batch, 0);
        ck_assert_msg(last_txnid(st) == whole_tx + cases[i].commits,
                      "batches of %zu: %zu transactions more, expected %zu",
                      cases[i].batch, last_txnid(st) - whole_tx,
                      cases[i].commits);
    }
}
END_TEST

/*
 * A migration that stops after some batches (the process dies: here
 * before a batch) leaves a store with no chain for anyone: a read-only
 * open has none to verify or to give hashes from.  The next writable
 * open goes on where the last batch that committed ended, chains only the
 * records left, and ends with the chain of one transaction.
 */
START_TEST(test_compat_03_migration_resumes)
{
    static const struct {
        size_t batch, dies, again;
    } cases[] = {{5, 1, 1000},  {5, 2, 1000}, {5, 4, 1000}, {5, 5, 1000},
                 {1, 24, 1000}, {3, 2, 5},    {7, 3, 1}};
    unsigned char h[9][QG_CHAIN_HASH_LEN];
    qg_chain_finding f;
    size_t i;

    migrate_03_whole();
    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        recopy_03(NULL, 0);
        ck_assert_int_eq(open_dying(cases[i].batch, cases[i].dies), QG_EIO);
        ck_assert_ptr_null(st);

        st = open_copy(QG_RDONLY);
        ck_assert_int_eq(qg_store_verify_chain(st, NULL, &f), QG_NOTFOUND);
        ck_assert_int_eq(qg_chain_step_hashes(st, 1, 9, h), QG_NOTFOUND);
        qg_store_close(st);

        ck_assert_int_eq(open_dying(cases[i].again, 0), 0);
        assert_chained(RECORDS_03,
                       RECORDS_03 - (cases[i].dies - 1) * cases[i].batch);
        assert_whole("0.3", cases[i].batch, cases[i].dies);
    }
}
END_TEST

/* Records that change between an interrupted migration and the next
 * (a qgate before the chain wrote to the store) cannot be placed by the
 * count of those chained: the migration starts again, and ends with the
 * chain of one transaction over the records as they now are.  Here 0.3's
 * refusal, among the first 20 records chained, is deleted. */
START_TEST(test_compat_03_migration_restarts_on_change)
{
    recopy_03("rejections", 1);
    st = open_copy(0);
    assert_chained(RECORDS_03 - 1, RECORDS_03 - 1);
    keep_whole();

    recopy_03(NULL, 0);
    ck_assert_int_eq(open_dying(20, 2), QG_EIO);
    delete_record("rejections", 1);
    st = open_copy(0);
    assert_chained(RECORDS_03 - 1, RECORDS_03 - 1);
    assert_whole("refusal deleted after", 20, 2);
}
END_TEST

/* A ticket whose row is gone (deleted by hand) keeps its head in
 * chain_tickets, where its next append finds it, whether the migration
 * ran in one go or resumed after the batch that chained its first
 * records (lq:40005's, received last): a resumed open does not take the
 * heads the migration wrote there for a store of 0.4's to move. */
START_TEST(test_compat_03_rowless_head_kept)
{
    static const struct {
        size_t batch, dies;
    } cases[] = {{22, 2}, {1, 23}, {1000, 0}};
    MDB_stat ms;
    qg__txn t;
    size_t i;

    recopy_03("tickets", 5);
    st = open_copy(0);
    assert_chained(RECORDS_03, RECORDS_03);
    keep_whole();
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    ck_assert_int_eq(mdb_stat(t.txn, st->chain_tickets, &ms), 0);
    qg__txn_abort(&t);
    ck_assert_uint_eq(ms.ms_entries, 1);
    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        recopy_03("tickets", 5);
        ck_assert_int_eq(open_dying(cases[i].batch, cases[i].dies),
                         cases[i].dies ? QG_EIO : 0);
        if (cases[i].dies)
            ck_assert_int_eq(open_dying(1000, 0), 0);
        assert_whole("row 5 deleted", cases[i].batch, cases[i].dies);
    }
}
END_TEST

/* Two processes opening the store at once each chain batches, never the
 * same records twice: between them they chain each record once, and the
 * chain is the chain of one transaction.  Both start together and pause
 * before each batch, so that their batches interleave.  The child
 * reports by its exit status (LMDB forbids an environment used across
 * fork()). */
START_TEST(test_compat_03_two_processes_migrate)
{
    uint64_t mine = 0;
    int status, fd[2];
    pid_t pid;
    char go;

    migrate_03_whole();
    recopy_03(NULL, 0);
    ck_assert_int_eq(pipe(fd), 0);
    fflush(NULL);
    ck_assert_int_ne(pid = fork(), -1);
    if (pid == 0) {
        if (read(fd[0], &go, 1) != 1 || open_dying(1, 0) ||
            qg_store_chain_migrated(st, &mine))
            _exit(255);
        qg_store_close(st);
        _exit((int)mine);
    }
    ck_assert_int_eq(write(fd[1], "", 1), 1);
    ck_assert_int_eq(open_dying(1, 0), 0);
    close(fd[0]);
    close(fd[1]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 255,
                  "child: status %#x", status);
    ck_assert_int_eq(qg_store_chain_migrated(st, &mine), 0);
    ck_assert_uint_eq(mine + (uint64_t)WEXITSTATUS(status), RECORDS_03);
    assert_chained(RECORDS_03, mine);
    assert_whole("two processes", 1, 0);
}
END_TEST

/* ----- 0.4: each ticket's chain head in a database of its own ------- */

static void
setup_04(void)
{
    copy_store("0.4");
}

/* What qgate 0.4's `history --hash` printed for the first and last steps
 * of lq:30001 (ticket 1) and lq:40005 (ticket 5): fixtures/stores/0.4. */
static const struct {
    uint64_t ticket;
    uint32_t seq;
    const char *hash;
} hashes_04[] = {
    {1, 1, "51e3240fa1ae49d9fd9b0ccffb82945b64078830e3642474fd83e763b43faba0"},
    {1, 9, "46a46aa738277235330a5fa7cca1e3ecaa7d8155eef0c3167e7eb59d0597b414"},
    {5, 1, "51cf320a30bb389bd0cb278e60640f10c97325ed3b62d3fa7eaccfbcb8c556ab"},
    {5, 3, "117c4b38a8363ba0dc6f8eb8409aeabffd7a4c9881edd772972bc5c31d2181a3"},
};

static void
check_hashes_04(void)
{
    unsigned char h[9][QG_CHAIN_HASH_LEN];
    char hex[2 * QG_CHAIN_HASH_LEN + 1];
    size_t i, j;

    for (i = 0; i < sizeof(hashes_04) / sizeof(*hashes_04); i++) {
        ck_assert_int_eq(qg_chain_step_hashes(st, hashes_04[i].ticket, 9, h),
                         0);
        for (j = 0; j < QG_CHAIN_HASH_LEN; j++)
            snprintf(hex + 2 * j, 3, "%02x", h[hashes_04[i].seq - 1][j]);
        ck_assert_str_eq(hex, hashes_04[i].hash);
    }
}

/* 0.4 kept each ticket's newest chain entry in chain_tickets; today it is
 * in the ticket's row.  Read-only, the store answers from chain_tickets;
 * its first writable open moves the heads, and the chain still verifies,
 * against the head 0.4 sealed, with the same hashes; and what is
 * appended next links to each ticket's entries of 0.4: a resolution of
 * lq:40002's refusal, and the expiry of lq:40005's held delivery (a drop
 * and a refusal). */
START_TEST(test_compat_04_heads_move_to_the_rows)
{
    char *text;
    qg_chain_finding f;
    qg_seal sealed;
    uint64_t expired = 0, migrated = 1;
    size_t len;
    qg_ticket t;

    st = open_copy(QG_RDONLY);
    check_hashes_04();
    qg_store_close(st);

    st = open_copy(0);
    ck_assert_int_eq(qg_store_chain_migrated(st, &migrated), 0);
    ck_assert_uint_eq(migrated, 0); /* the chain was there: only moved */
    check_hashes_04();
    text = tu_fixture("stores/0.4/seal.txt", &len);
    ck_assert_int_eq(qg_seal_parse(text, NULL, &sealed, NULL, 0), 0);
    free(text);
    ck_assert_int_eq(qg_store_verify_chain(st, &sealed, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s", f.what);
    ck_assert_uint_eq(f.entries, 24);

    ck_assert_int_eq(qg_rejections_resolve(st, 1, 3, 2), 0);
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, &expired), 0);
    ck_assert_uint_eq(expired, 1);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 40005, &t), 0);
    ck_assert_uint_eq(t.rejections, 1);
    ck_assert_int_eq(qg_store_verify_chain(st, &sealed, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s", f.what);
    ck_assert_uint_eq(f.entries, 27);
    check_hashes_04();
}
END_TEST

/* 0.4's refusals by ticket: read-only, from the log (no index yet); after
 * the first writable open, by the index built then; and a refusal added
 * since, by the index kept. */
START_TEST(test_compat_04_refusals_by_ticket)
{
    size_t before;

    st = open_copy(QG_RDONLY);
    before = tu_check_refusals_by_ticket(st);
    ck_assert_uint_ge(before, 2);
    qg_store_close(st);
    st = open_copy(0);
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), before);
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, NULL), 0);
    ck_assert_uint_eq(tu_check_refusals_by_ticket(st), before + 1);
}
END_TEST

/* 0.4 kept no step summaries.  Read-only, the store has none and a walk
 * of them reads the records (stats gives the same numbers); the first
 * writable open builds them, one for each of its 22 steps, and says how
 * many (the programs tell the operator), which any open then reads. */
START_TEST(test_compat_04_step_summaries)
{
    uint64_t built;
    MDB_stat ms;
    qg__txn t;

    st = open_copy(QG_RDONLY);
    ck_assert_int_eq(st->has_steps, 0);
    ck_assert_uint_eq(tu_check_summaries(st), 22);
    ck_assert_int_eq(qg_store_steps_built(st, &built), 0);
    ck_assert_uint_eq(built, 0);
    qg_store_close(st);

    st = open_copy(0);
    ck_assert_int_eq(st->has_steps, 1);
    ck_assert_int_eq(qg_store_steps_built(st, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_store_steps_built(st, &built), 0);
    ck_assert_uint_eq(built, 22);
    ck_assert_int_eq(qg__txn_begin(st, 0, &t), 0);
    ck_assert_int_eq(mdb_stat(t.txn, st->steps, &ms), 0);
    qg__txn_abort(&t);
    ck_assert_uint_eq(ms.ms_entries, 22);
    ck_assert_uint_eq(tu_check_summaries(st), 22);
    qg_store_close(st);

    st = open_copy(0); /* built already: nothing to say */
    ck_assert_int_eq(qg_store_steps_built(st, &built), 0);
    ck_assert_uint_eq(built, 0);
    qg_store_close(st);

    st = open_copy(QG_RDONLY);
    ck_assert_int_eq(st->has_steps, 1);
    ck_assert_uint_eq(tu_check_summaries(st), 22);
}
END_TEST

static Suite *
compat_suite(void)
{
    Suite *s = suite_create("compat");
    TCase *core = tcase_create("Core"), *ids, *v03, *mig, *v04;

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_compat_01_reads_as_written);
    tcase_add_test(core, test_compat_01_takes_late_steps);
    suite_add_tcase(s, core);
    ids = tcase_create("Ids");
    tcase_add_checked_fixture(ids, setup_copy, teardown);
    tcase_add_test(ids, test_compat_01_gets_an_id_when_written);
    suite_add_tcase(s, ids);
    v03 = tcase_create("Before sources");
    tcase_add_checked_fixture(v03, setup_03, teardown);
    tcase_add_test(v03, test_compat_03_one_default_source);
    tcase_add_test(v03, test_compat_03_second_source_apart);
    suite_add_tcase(s, v03);
    mig = tcase_create("Chain migration");
    tcase_add_checked_fixture(mig, setup_copy_03, teardown_whole);
    tcase_add_test(mig, test_compat_03_chained_in_batches);
    tcase_add_test(mig, test_compat_03_migration_resumes);
    tcase_add_test(mig, test_compat_03_migration_restarts_on_change);
    tcase_add_test(mig, test_compat_03_rowless_head_kept);
    tcase_add_test(mig, test_compat_03_two_processes_migrate);
    suite_add_tcase(s, mig);
    v04 = tcase_create("Chain heads of 0.4");
    tcase_add_checked_fixture(v04, setup_04, teardown);
    tcase_add_test(v04, test_compat_04_heads_move_to_the_rows);
    tcase_add_test(v04, test_compat_04_refusals_by_ticket);
    tcase_add_test(v04, test_compat_04_step_summaries);
    suite_add_tcase(s, v04);
    return s;
}

int
main(void)
{
    return tu_run(compat_suite());
}
