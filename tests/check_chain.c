/*
 * check_chain.c - the hash chain through the library: what qgate rewrites
 * and deletes itself (a refusal's resolution, refusals dropped by the
 * bound on unsigned entries, held deliveries released) leaves it intact;
 * the heads qg_store_seal() writes and qg_seal_parse() reads back; the
 * arguments refused.  Tampering behind qgate's back is chain_test.sh's
 * (tests/tamper.c writes the file with liblmdb alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define WALK_IN "visits/walk-in/"

static qg_store *st;
static qg_engine *eng;

static void
setup(void)
{
    st = tu_store_new();
    eng = tu_engine();
}

static void
teardown(void)
{
    qg_engine_free(eng);
    eng = NULL;
    qg_store_close(st);
    st = NULL;
    tu_store_remove();
}

static qg_chain_finding
verify(const qg_seal *sealed)
{
    qg_chain_finding f;

    ck_assert_int_eq(qg_store_verify_chain(st, sealed, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "chain broken: %s", f.what);
    return f;
}

/* A resolution rewrites the refusal in place: one more entry, intact. */
START_TEST(test_chain_resolution_appends_a_rewrite)
{
    qg_result res;
    qg_chain_finding before, after;

    res = tu_apply(eng, st, WALK_IN "01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 0), 0);
    res = tu_apply(eng, st, WALK_IN "05-served.json");
    ck_assert_int_eq(res.verdict, QG_REJECTED);
    before = verify(NULL);
    ck_assert_uint_eq(before.entries, 2);
    ck_assert_int_eq(qg_rejections_resolve(st, 1, 1, 2), 0);
    after = verify(NULL);
    ck_assert_uint_eq(after.entries, 3);
}
END_TEST

/* Malformed deliveries over the log's bound are dropped: each drop is an
 * entry, and the chain still holds with the refusals gone. */
START_TEST(test_chain_bound_drops_are_entries)
{
    static const char body[] = "{\"payload\":{\"event\":";
    qg_store_options o = {0};
    qg_chain_finding f;
    qg_result res;
    uint64_t dropped = 0;
    int i;

    qg_store_close(st);
    o.path = tu_store_dir();
    o.durability = QG_NOSYNC;
    o.unsigned_log_max = 3 * (48 + 64 + sizeof(body));
    ck_assert_int_eq(qg_store_open(&o, &st), 0);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(
            qg_engine_apply(eng, st, body, sizeof(body) - 1, 0, &res), 0);
        ck_assert_int_eq(res.verdict, QG_MALFORMED);
    }
    ck_assert_int_eq(qg_rejections_dropped(st, &dropped), 0);
    ck_assert_uint_gt(dropped, 0);
    f = verify(NULL);
    ck_assert_uint_eq(f.entries, 10 + dropped);
}
END_TEST

/* Held, then released by the step it waited for: the hold is dropped
 * by design, the released step appended. */
START_TEST(test_chain_release_drops_the_hold)
{
    qg_result res;
    qg_chain_finding f;
    qg_held_list *hl;
    qg_held h;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 3600), 0);
    ck_assert_int_eq(
        tu_apply(eng, st, WALK_IN "01-join-live-queue.json").verdict,
        QG_ACCEPTED);
    res = tu_apply(eng, st, WALK_IN "05-served.json");
    ck_assert_int_eq(res.verdict, QG_HELD);
    ck_assert_uint_eq(verify(NULL).entries, 2);
    ck_assert_int_eq(tu_apply(eng, st, WALK_IN "04-serving.json").verdict,
                     QG_ACCEPTED);
    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    ck_assert_int_eq(qg_held_next(hl, &h), QG_NOTFOUND);
    qg_held_close(hl);
    /* join, hold, serving, drop of the hold, the released step */
    f = verify(NULL);
    ck_assert_uint_eq(f.entries, 5);
}
END_TEST

/* A head sealed now holds now, and after more deliveries. */
START_TEST(test_chain_seal_round_trip)
{
    char line[QG_SEAL_MAX], id[QG_STORE_ID_LEN + 1], err[256];
    qg_seal s;

    ck_assert_int_eq(
        tu_apply(eng, st, WALK_IN "01-join-live-queue.json").verdict,
        QG_ACCEPTED);
    ck_assert_int_eq(
        qg_store_seal(st, NULL, line, sizeof(line), err, sizeof(err)), 0);
    ck_assert_int_eq(qg_seal_parse(line, NULL, &s, err, sizeof(err)), 0);
    ck_assert_int_eq(qg_store_id(st, id), 0);
    ck_assert_str_eq(s.store_id, id);
    ck_assert_uint_eq(s.records, 1);
    ck_assert_int_eq(s.is_signed, 0);
    verify(&s);
    ck_assert_int_eq(tu_apply(eng, st, WALK_IN "02-alert.json").verdict,
                     QG_ACCEPTED);
    ck_assert_uint_eq(verify(&s).entries, 2);
    /* a head from the future of this store */
    s.records = 3;
    {
        qg_chain_finding f;

        ck_assert_int_eq(qg_store_verify_chain(st, &s, &f), 0);
        ck_assert_int_eq(f.brk, QG_CHAIN_UNSEALED);
        ck_assert_str_eq(f.what, "chain entry 3 unsealed: the head was "
                                 "sealed at 3 entries, the chain has 2");
    }
}
END_TEST

/* Lines that are not heads: each refused, saying why. */
static const struct {
    const char *line;
    const char *why;
} bad_heads[] = {
    {"", "not a head of qgate seal"},
    {"qgate-seal/2 store=00000000000000000000000000000000 records=1 "
     "time=2026-01-01T00:00:00Z sha256="
     "0000000000000000000000000000000000000000000000000000000000000000",
     "not a head of qgate seal"},
    {"qgate-seal/1 store=00000000000000000000000000000000 records=1 "
     "time=2026-01-01T00:00:00Z sha256=00",
     "not a head of qgate seal"},
    {"qgate-seal/1 store=0000 records=1 time=2026-01-01T00:00:00Z sha256="
     "0000000000000000000000000000000000000000000000000000000000000000",
     "not a head of qgate seal"},
    {"qgate-seal/1 store=00000000000000000000000000000000 records=1 "
     "time=2026-01-01T00:00:00Z sha256="
     "0000000000000000000000000000000000000000000000000000000000000000 x",
     "not a head of qgate seal"},
    {"qgate-seal/1 store=00000000000000000000000000000000 records=01 "
     "time=2026-01-01T00:00:00Z sha256="
     "0000000000000000000000000000000000000000000000000000000000000000",
     "not in the form qgate seal writes"},
    {"qgate-seal/1 store=00000000000000000000000000000000 records=1 "
     "time=2026-01-01T00:00:00Z sha256="
     "0000000000000000000000000000000000000000000000000000000000000000 "
     "ed25519=AAAA",
     "the head is signed: give the public key"},
};

START_TEST(test_chain_bad_heads)
{
    char err[256];
    qg_seal s;

    ck_assert_int_eq(
        qg_seal_parse(bad_heads[_i].line, NULL, &s, err, sizeof(err)),
        QG_EINVAL);
    ck_assert_msg(strstr(err, bad_heads[_i].why) != NULL, "\"%s\": said \"%s\"",
                  bad_heads[_i].line, err);
}
END_TEST

START_TEST(test_chain_arguments)
{
    char line[QG_SEAL_MAX], err[64];
    unsigned char h[1][QG_CHAIN_HASH_LEN];
    qg_chain_finding f;
    uint64_t n = 7;
    qg_seal s;

    ck_assert_int_eq(qg_store_verify_chain(NULL, NULL, &f), QG_EINVAL);
    ck_assert_int_eq(qg_store_verify_chain(st, NULL, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_store_seal(st, NULL, line, 10, err, sizeof(err)),
                     QG_EINVAL);
    ck_assert_int_eq(qg_store_seal(NULL, NULL, line, sizeof(line), NULL, 0),
                     QG_EINVAL);
    ck_assert_int_eq(qg_seal_parse(NULL, NULL, &s, NULL, 0), QG_EINVAL);
    ck_assert_int_eq(qg_store_chain_migrated(st, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_store_chain_migrated(st, &n), 0);
    ck_assert_uint_eq(n, 0); /* a new store: nothing to migrate */
    ck_assert_int_eq(qg_chain_step_hashes(NULL, 1, 1, h), QG_EINVAL);
    ck_assert_int_eq(qg_store_seal(st, "/nonexistent/key.pem", line,
                                   sizeof(line), err, sizeof(err)),
                     QG_ECONFIG);
    ck_assert_str_eq(err, "/nonexistent/key.pem: cannot be read");
}
END_TEST

static Suite *
chain_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *core = tcase_create("Core"), *errors = tcase_create("Errors");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_chain_resolution_appends_a_rewrite);
    tcase_add_test(core, test_chain_bound_drops_are_entries);
    tcase_add_test(core, test_chain_release_drops_the_hold);
    tcase_add_test(core, test_chain_seal_round_trip);
    suite_add_tcase(s, core);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_loop_test(errors, test_chain_bad_heads, 0,
                        sizeof(bad_heads) / sizeof(*bad_heads));
    tcase_add_test(errors, test_chain_arguments);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(chain_suite());
}
