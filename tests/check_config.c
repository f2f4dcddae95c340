/*
 * check_config.c - qg_config_walk(): a configuration file's members and
 * elements handed over in order, with their types and values, the nested
 * ones walked in turn from their JSON; texts that are not what the caller
 * asked for refused; the callback's answer stopping the walk.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* What a walk handed over, one line per value:
 * "key#index/count type string integer json". */
static char seen[2048];

static int
record(void *arg, const qg_config_value *v)
{
    size_t n = strlen(seen);

    (void)arg;
    snprintf(seen + n, sizeof(seen) - n, "%s#%zu/%zu %d %s %lld %s\n",
             v->key ? v->key : "-", v->index, v->count, (int)v->type,
             v->string ? v->string : "-", (long long)v->integer, v->json);
    return 0;
}

START_TEST(test_config_members_in_order)
{
    static const char text[] =
        "{\"db\": \"var/q\", \"max_skew\": 300, \"require_signature\": false,"
        " \"big\": 18446744073709551615, \"rate\": 1.5, \"none\": null,"
        " \"sources\": [{\"name\": \"a\"}], \"o\": {}}\n";

    seen[0] = '\0';
    ck_assert_int_eq(qg_config_walk(text, QG_CONFIG_OBJECT, record, NULL), 0);
    ck_assert_str_eq(seen, "db#0/8 4 var/q 0 \"var\\/q\"\n"
                           "max_skew#1/8 2 - 300 300\n"
                           "require_signature#2/8 1 - 0 false\n"
                           "big#3/8 2 - 9223372036854775807 "
                           "18446744073709551615\n"
                           "rate#4/8 3 - 0 1.5\n"
                           "none#5/8 0 - 0 null\n"
                           "sources#6/8 5 - 0 [ { \"name\": \"a\" } ]\n"
                           "o#7/8 6 - 0 { }\n");
}
END_TEST

/* An array's json, walked in turn: its elements, without keys. */
START_TEST(test_config_nested_walk)
{
    seen[0] = '\0';
    ck_assert_int_eq(qg_config_walk("[ { \"name\": \"a\" }, true, \"x\" ]",
                                    QG_CONFIG_ARRAY, record, NULL),
                     0);
    ck_assert_str_eq(seen, "-#0/3 6 - 0 { \"name\": \"a\" }\n"
                           "-#1/3 1 - 1 true\n"
                           "-#2/3 4 x 0 \"x\"\n");
}
END_TEST

static int
stop_at_second(void *arg, const qg_config_value *v)
{
    (*(int *)arg)++;
    return v->index == 1 ? 7 : 0;
}

START_TEST(test_config_callback_stops)
{
    int calls = 0;

    ck_assert_int_eq(qg_config_walk("{\"a\": 1, \"b\": 2, \"c\": 3}",
                                    QG_CONFIG_OBJECT, stop_at_second, &calls),
                     7);
    ck_assert_int_eq(calls, 2);
}
END_TEST

/* Texts refused, and the code each one gives; fn is never called. */
static const struct {
    const char *text;
    qg_config_type type;
    int rc;
} refused[] = {
    {"[1]", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"{\"a\": 1}", QG_CONFIG_ARRAY, QG_ECONFIG},
    {"\"a\"", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"null", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"{\"a\": 1", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"{\"a\": 1} x", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"{\"a\": 1}{}", QG_CONFIG_OBJECT, QG_ECONFIG},
    /* what json-c lets through and qg_config_read() refuses */
    {"{\"a\": 1, \"a\": 2}", QG_CONFIG_OBJECT, QG_ECONFIG},
    {"[\"\xc0\xaf\"]", QG_CONFIG_ARRAY, QG_ECONFIG},
    {"{\"a\": 1}", QG_CONFIG_STRING, QG_EINVAL},
    {NULL, QG_CONFIG_OBJECT, QG_EINVAL},
};

START_TEST(test_config_refused)
{
    seen[0] = '\0';
    ck_assert_int_eq(
        qg_config_walk(refused[_i].text, refused[_i].type, record, NULL),
        refused[_i].rc);
    ck_assert_str_eq(seen, "");
}
END_TEST

START_TEST(test_config_trailing_space)
{
    seen[0] = '\0';
    ck_assert_int_eq(
        qg_config_walk("{\"a\": 1} \r\n", QG_CONFIG_OBJECT, record, NULL), 0);
    ck_assert_str_eq(seen, "a#0/1 2 - 1 1\n");
    ck_assert_int_eq(qg_config_walk("{}", QG_CONFIG_OBJECT, NULL, NULL),
                     QG_EINVAL);
}
END_TEST

Suite *config_suite(void);

Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *core = tcase_create("Core"), *errors = tcase_create("Errors");

    tcase_add_test(core, test_config_members_in_order);
    tcase_add_test(core, test_config_nested_walk);
    tcase_add_test(core, test_config_callback_stops);
    suite_add_tcase(s, core);
    tcase_add_loop_test(errors, test_config_refused, 0, (int)COUNT(refused));
    tcase_add_test(errors, test_config_trailing_space);
    suite_add_tcase(s, errors);
    return s;
}

int
main(void)
{
    return tu_run(config_suite());
}
