/*
 * check_store_check.c - qg_store_check() and the check at open: sound
 * stores of every LMDB shape pass (no false alarm may stop the gate), and
 * damaged ones are refused with QG_ECORRUPT before LMDB reads them.
 * tests/damage_test.sh runs the commands on damaged stores.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"
#include "testutil.h"

static qg_store *st;

static void
setup(void)
{
    st = tu_store_new();
}

static void
teardown(void)
{
    qg_store_close(st);
    tu_store_remove();
}

static void
apply_fixtures(void)
{
    qg_engine *eng = tu_engine();
    size_t i;

    for (i = 0; i < sizeof(tu_walk_in) / sizeof(*tu_walk_in); i++)
        ck_assert_int_eq(tu_apply(eng, st, tu_walk_in[i].file).verdict,
                         QG_ACCEPTED);
    qg_engine_free(eng);
}

static char *
data_file(void)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/data.mdb", tu_store_dir());
    return path;
}

START_TEST(test_check_sound_store)
{
    char detail[256] = "x";

    ck_assert_int_eq(qg_store_check(st, detail, sizeof(detail)), 0);
    ck_assert_str_eq(detail, "");
    apply_fixtures();
    ck_assert_int_eq(qg_store_check(st, detail, sizeof(detail)), 0);
    ck_assert_str_eq(detail, "");
    ck_assert_int_eq(qg_store_check(st, NULL, 0), 0);
}
END_TEST

/*
 * Shapes qgate's own databases do not have today but LMDB does: sorted
 * duplicates kept in a sub-page and, past a page, in a sub-database;
 * values on overflow pages; a free list long enough for overflow pages of
 * its own; a deep tree.  All sound.
 */
static void
put_shapes(void)
{
    static unsigned char big[20000];
    MDB_txn *txn;
    MDB_dbi dups, bigs, many;
    MDB_val k, v;
    unsigned char key[8], val[16];
    unsigned i;

    ck_assert_int_eq(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    ck_assert_int_eq(
        mdb_dbi_open(txn, "t_dups", MDB_CREATE | MDB_DUPSORT, &dups), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "t_bigs", MDB_CREATE, &bigs), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "t_many", MDB_CREATE, &many), 0);
    for (i = 0; i < 3000; i++) {
        /* key 0 gets 2,000 duplicates (a sub-database), keys 1..4 a few
         * each (sub-pages) */
        put64(key, i < 2000 ? 0 : i % 5);
        put64(val, i);
        memset(val + 8, 'v', 8);
        k.mv_size = 8;
        k.mv_data = key;
        v.mv_size = 16;
        v.mv_data = val;
        ck_assert_int_eq(mdb_put(txn, dups, &k, &v, 0), 0);
    }
    for (i = 0; i < 20; i++) {
        put64(key, i);
        memset(big, (int)i, sizeof(big));
        k.mv_size = 8;
        k.mv_data = key;
        v.mv_size = sizeof(big) - i * 500;
        v.mv_data = big;
        ck_assert_int_eq(mdb_put(txn, bigs, &k, &v, 0), 0);
    }
    for (i = 0; i < 40000; i++) {
        put64(key, (uint64_t)i * 7919 % 40009);
        k.mv_size = 8;
        k.mv_data = key;
        v.mv_size = 8;
        v.mv_data = key;
        ck_assert_int_eq(mdb_put(txn, many, &k, &v, 0), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);

    /* Deletes in small transactions: pages go to the free list. */
    for (i = 0; i < 40000; i += 400) {
        unsigned j;

        ck_assert_int_eq(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
        for (j = i; j < i + 300; j++) {
            put64(key, (uint64_t)j * 7919 % 40009);
            k.mv_size = 8;
            k.mv_data = key;
            mdb_del(txn, many, &k, NULL);
        }
        put64(key, i / 400 % 20);
        k.mv_size = 8;
        k.mv_data = key;
        mdb_del(txn, bigs, &k, NULL);
        ck_assert_int_eq(mdb_txn_commit(txn), 0);
    }
}

START_TEST(test_check_lmdb_shapes_sound)
{
    char detail[256];
    int rc;

    apply_fixtures();
    put_shapes();
    rc = qg_store_check(st, detail, sizeof(detail));
    ck_assert_msg(rc == 0, "%s", detail);
    st = tu_store_reopen(st, QG_RDONLY);
    rc = qg_store_check(st, detail, sizeof(detail));
    ck_assert_msg(rc == 0, "%s", detail);
}
END_TEST

/*
 * LMDB does not write pages that a transaction allocated and freed again
 * (loose pages go to the free list unwritten), so a sound data file may
 * end before the meta page's last page.  Neither check may call that
 * damage.  Values of varied sizes, some deleted in the transaction that
 * wrote them, get there within a few dozen commits.
 */
START_TEST(test_check_short_but_sound)
{
    static char big[4000];
    MDB_envinfo info;
    MDB_stat ms;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k, v;
    struct stat sb;
    char key[16] = "", detail[256]; /* a key is all 16 bytes, zero-padded */
    uint32_t seed = 1;
    int round, i, shorter = 0, rc;

    k.mv_data = key;
    k.mv_size = sizeof(key);
    v.mv_data = big;
    for (round = 0; round < 200 && !shorter; round++) {
        ck_assert_int_eq(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
        ck_assert_int_eq(mdb_dbi_open(txn, "t_short", MDB_CREATE, &dbi), 0);
        for (i = 0; i < 50; i++) {
            snprintf(key, sizeof(key), "k%04d%06d", round, i);
            seed = seed * 1103515245u + 12345u;
            v.mv_size = 100 + (seed >> 16) % 3000;
            ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
        }
        for (i = 0; round % 3 == 0 && i < 50; i += 2) {
            snprintf(key, sizeof(key), "k%04d%06d", round, i);
            ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
        }
        for (i = 0; round % 5 == 1 && i < 40; i++) {
            snprintf(key, sizeof(key), "k%04d%06d", round - 1, i);
            mdb_del(txn, dbi, &k, NULL);
        }
        ck_assert_int_eq(mdb_txn_commit(txn), 0);
        mdb_env_info(st->env, &info);
        mdb_env_stat(st->env, &ms);
        ck_assert_int_eq(stat(data_file(), &sb), 0);
        shorter = (uint64_t)sb.st_size < (info.me_last_pgno + 1) * ms.ms_psize;
    }
    ck_assert_msg(shorter, "no commit left the file short of its last page");
    rc = qg_store_check(st, detail, sizeof(detail));
    ck_assert_msg(rc == 0, "%s", detail);
    st = tu_store_reopen(st, QG_RDONLY);
    rc = qg_store_check(st, detail, sizeof(detail));
    ck_assert_msg(rc == 0, "%s", detail);
}
END_TEST

START_TEST(test_check_zeroed_page_found)
{
    static const unsigned char zero[65536];
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    MDB_stat ms;
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t pgno;
    char detail[256];
    int fd;

    apply_fixtures();
    put_shapes();
    /* the leaf that holds a value: the map is page-aligned, and each page
     * starts with its number */
    ck_assert_int_eq(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "t_many", 0, &dbi), 0);
    put64(key, (uint64_t)350 * 7919 % 40009); /* not deleted */
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    mdb_env_stat(st->env, &ms);
    memcpy(&pgno,
           (const void *)((uintptr_t)v.mv_data & ~(uintptr_t)(ms.ms_psize - 1)),
           sizeof(pgno));
    mdb_txn_abort(txn);
    fd = open(data_file(), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, zero, ms.ms_psize, (off_t)(pgno * ms.ms_psize)),
                     (ssize_t)ms.ms_psize);
    close(fd);
    ck_assert_int_eq(qg_store_check(st, detail, sizeof(detail)), QG_ECORRUPT);
    ck_assert_msg(strstr(detail, "database \"t_many\"") &&
                      strstr(detail, "does not carry its own number"),
                  "%s", detail);
}
END_TEST

START_TEST(test_open_refuses_short_file)
{
    qg_store_options o;
    qg_store *again = (qg_store *)1;
    MDB_val k = {7, "history"}, v;
    MDB_txn *txn;
    MDB_stat ms;
    size_t root;
    char detail[256];

    apply_fixtures();
    /* The main database's root: the page that holds the record of the
     * history database (the map is page-aligned, each page starts with
     * its number).  LMDB reads it at open. */
    ck_assert_int_eq(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_get(txn, 1, &k, &v), 0);
    mdb_env_stat(st->env, &ms);
    memcpy(&root,
           (const void *)((uintptr_t)v.mv_data & ~(uintptr_t)(ms.ms_psize - 1)),
           sizeof(root));
    mdb_txn_abort(txn);
    qg_store_close(st);
    st = NULL;
    ck_assert_int_eq(truncate(data_file(), (off_t)(root * ms.ms_psize)), 0);
    ck_assert_int_eq(
        qg_store_check_file(tu_store_dir(), detail, sizeof(detail)),
        QG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(detail, "the file was cut short"));
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    o.flags = QG_RDONLY;
    ck_assert_int_eq(qg_store_open(&o, &again), QG_ECORRUPT);
    ck_assert_ptr_null(again);
}
END_TEST

START_TEST(test_open_refuses_zeroed_meta)
{
    static const unsigned char zero[65536];
    qg_store_options o;
    qg_store *again = (qg_store *)1;
    char detail[256];
    int fd;

    apply_fixtures();
    qg_store_close(st);
    st = NULL;
    fd = open(data_file(), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    /* meta page 1 starts at the page size; 4096 on the hosts we run */
    ck_assert_int_eq(pwrite(fd, zero, 4096, 4096), 4096);
    close(fd);
    memset(&o, 0, sizeof(o));
    o.path = tu_store_dir();
    ck_assert_int_eq(qg_store_open(&o, &again), QG_ECORRUPT);
    ck_assert_ptr_null(again);
    ck_assert_int_eq(
        qg_store_check_file(tu_store_dir(), detail, sizeof(detail)),
        QG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(detail, "meta page 1"));
}
END_TEST

START_TEST(test_check_errors)
{
    ck_assert_int_eq(qg_store_check(NULL, NULL, 0), QG_EINVAL);
    ck_assert_str_eq(qg_strerror(QG_ECORRUPT), "the store is damaged");
    ck_assert_str_eq(qg_err_name(QG_ECORRUPT), "QG_ECORRUPT");
}
END_TEST

static Suite *
store_check_suite(void)
{
    Suite *s = suite_create("store_check");
    TCase *core = tcase_create("Core");
    TCase *errors = tcase_create("Errors");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_check_sound_store);
    tcase_add_test(core, test_check_lmdb_shapes_sound);
    tcase_add_test(core, test_check_short_but_sound);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_check_zeroed_page_found);
    tcase_add_test(errors, test_open_refuses_short_file);
    tcase_add_test(errors, test_open_refuses_zeroed_meta);
    tcase_add_test(errors, test_check_errors);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(store_check_suite());
}
