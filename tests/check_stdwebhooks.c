/*
 * check_stdwebhooks.c - what qgate signs for the HIS, against the
 * Standard Webhooks specification: its published test vector, one
 * signature per secret, and secret files refused line by line with the
 * file, the line and the fault named.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stdwebhooks.h"
#include "testutil.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The specification's example (also in every reference library's tests). */
#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS     1614265330
#define VEC_BODY   "{\"test\": 2432232314}"
#define VEC_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static char path[64];

static const char *
secret_file(const char *text)
{
    int fd;

    strcpy(path, "/tmp/qg-swh-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static swh_keys
load_ok(const char *text)
{
    swh_keys k;
    char err[256];

    ck_assert_msg(swh_keys_load(secret_file(text), &k, err, sizeof err) == 0,
                  "refused: %s", err);
    unlink(path);
    return k;
}

START_TEST(test_published_vector)
{
    swh_keys k = load_ok(VEC_SECRET "\n");
    char sig[SWH_SIG_SIZE];

    ck_assert_int_eq(k.n, 1);
    ck_assert_int_eq(
        swh_sign(&k, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), sig), 0);
    ck_assert_str_eq(sig, VEC_SIG);
}
END_TEST

/* The base64 alone, as the reference libraries also accept it. */
START_TEST(test_secret_without_prefix)
{
    swh_keys k = load_ok("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    char sig[SWH_SIG_SIZE];

    ck_assert_int_eq(
        swh_sign(&k, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), sig), 0);
    ck_assert_str_eq(sig, VEC_SIG);
}
END_TEST

/* A byte changed anywhere in id, timestamp or body changes the MAC. */
START_TEST(test_each_part_is_signed)
{
    swh_keys k = load_ok(VEC_SECRET);
    char sig[SWH_SIG_SIZE];

    swh_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJeK", VEC_TS, VEC_BODY,
             strlen(VEC_BODY), sig);
    ck_assert_str_ne(sig, VEC_SIG);
    swh_sign(&k, VEC_ID, VEC_TS + 1, VEC_BODY, strlen(VEC_BODY), sig);
    ck_assert_str_ne(sig, VEC_SIG);
    swh_sign(&k, VEC_ID, VEC_TS, "{\"test\": 2432232315}", strlen(VEC_BODY),
             sig);
    ck_assert_str_ne(sig, VEC_SIG);
}
END_TEST

/* Two secrets while the HIS rotates: two signatures, in the file's
 * order, comments and blank lines skipped. */
START_TEST(test_two_secrets_two_signatures)
{
    swh_keys k = load_ok("# new one first\n\n" VEC_SECRET "\r\n"
                         "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    char sig[SWH_SIG_SIZE], *space;

    ck_assert_int_eq(k.n, 2);
    swh_sign(&k, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), sig);
    space = strchr(sig, ' ');
    ck_assert_ptr_nonnull(space);
    ck_assert_int_eq((int)(space - sig), SWH_SIG_ONE);
    ck_assert(strncmp(sig, VEC_SIG, SWH_SIG_ONE) == 0);
    ck_assert(strncmp(space + 1, "v1,", 3) == 0);
    ck_assert_str_ne(space + 1, VEC_SIG);
    ck_assert_int_eq((int)strlen(space + 1), SWH_SIG_ONE);
}
END_TEST

static const struct {
    const char *text; /* the file */
    const char *says; /* in the error, after the file name */
} refused[] = {
    {"", ": no secret in the file"},
    {"# only a comment\n\n", ": no secret in the file"},
    {"whsec_\n", ":1: not a Standard Webhooks secret"},
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS\n",
     ":1: not a Standard Webhooks secret"},
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La*aSw\n",
     ":1: not base64 at character 35"},
    {"whsec_MfKQ9r8GKYqrTwjUPD8I=PZIo2LaLaSw\n",
     ":1: not base64 at character 27"},
    {"\nwhsec_c2hvcnQ=\n", ":2: 5 bytes; a secret is 24 to 64 bytes"},
    {VEC_SECRET "\nhunter2!\n", ":2: not base64 at character 8"},
    {VEC_SECRET "\nhunter2\n", ":2: not a Standard Webhooks secret"},
    {VEC_SECRET "\n" VEC_SECRET "\n" VEC_SECRET "\n" VEC_SECRET "\n" VEC_SECRET
                "\n" VEC_SECRET "\n" VEC_SECRET "\n" VEC_SECRET "\n" VEC_SECRET
                "\n",
     ":9: more than 8 secrets"},
};

START_TEST(test_refused_files)
{
    swh_keys k = {.n = 42};
    char err[256], want[256];
    const char *p = secret_file(refused[_i].text);

    ck_assert_int_eq(swh_keys_load(p, &k, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s%s", p, refused[_i].says);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "row %d: \"%s\"", _i,
                  err);
    ck_assert_int_eq(k.n, 42); /* untouched */
    ck_assert_ptr_null(strstr(err, "MfKQ9r8G"));
    unlink(p);
}
END_TEST

START_TEST(test_missing_file)
{
    swh_keys k;
    char err[256];

    ck_assert_int_eq(
        swh_keys_load("/nonexistent/upstream.secret", &k, err, sizeof err), -1);
    ck_assert_str_eq(err, "/nonexistent/upstream.secret: No such file or "
                          "directory");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("stdwebhooks");
    TCase *tc = tcase_create("Sign");

    tcase_add_test(tc, test_published_vector);
    tcase_add_test(tc, test_secret_without_prefix);
    tcase_add_test(tc, test_each_part_is_signed);
    tcase_add_test(tc, test_two_secrets_two_signatures);
    tcase_add_loop_test(tc, test_refused_files, 0, (int)COUNT(refused));
    tcase_add_test(tc, test_missing_file);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
