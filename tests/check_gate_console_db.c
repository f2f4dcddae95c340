/*
 * check_gate_console_db.c - `qgate console --db DIR` (docs/console.md,
 * "Read-only"): the console and its read JSON over a store that
 * `qgate apply` filled, answered as `qgate serve` answers them on the
 * same store; writes refused; the store's file untouched; a missing store
 * named.  And the ticket search, GET /tickets?..., against `qgate list`.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "gate_harness.h"

/* The fixtures the store is filled with: three visits and a refusal. */
static const char *const fixtures[] = {
    "visits/walk-in/01-join-live-queue.json",
    "visits/walk-in/02-alert.json",
    "visits/walk-in/03-move.json",
    "visits/walk-in/04-serving.json",
    "visits/walk-in/05-served.json",
    "visits/walk-in/06-pharmacy-received.json",
    "visits/walk-in/07-pharmacy-dispensed.json",
    "visits/walk-in/08-billing-paid.json",
    "visits/walk-in/09-end-visit.json",
    "visits/appointment/01-appointment.json",
    "visits/appointment/02-reschedule.json",
    "visits/appointment/03-join-live-queue.json",
    "visits/no-show-cancelled/01-join-live-queue.json",
    "visits/no-show-cancelled/02-no-show.json",
    "illegal/second-end-visit/05-end-visit-again.json",
};

/* `qgate apply` of each fixture, in order, into db. */
static void
fill_store(void)
{
    char path[512], out[1 << 14];
    const char *args[12];
    size_t i;
    int rc;

    for (i = 0; i < COUNT(fixtures); i++) {
        snprintf(path, sizeof(path), "%s/%s", QG_FIXTURES, fixtures[i]);
        args[0] = "apply";
        args[1] = "--db";
        args[2] = db;
        args[3] = "--secret-file";
        args[4] = QG_FIXTURES "/secret";
        args[5] = "--reorder-window";
        args[6] = "0";
        args[7] = "--max-skew";
        args[8] = "0";
        args[9] = path;
        args[10] = NULL;
        rc = run_cli(args, out, sizeof(out));
        /* the last one is refused (exit 1): a second end of the visit */
        ck_assert_msg(rc == (i + 1 == COUNT(fixtures) ? 1 : 0), "%s: exit %d",
                      fixtures[i], rc);
    }
}

/* What the console reads, asked of both programs. */
static const char *const reads[] = {
    "/overview",
    "/machine",
    "/tickets/30001",
    "/tickets/30001/steps",
    "/tickets/30001/history",
    "/tickets/appt:9101",
    "/rejections",
    "/rejections?reason=ticket_closed&limit=1",
    "/held",
    "/outbox/dead",
    "/waits",
    "/tickets?state=visit_ended",
    "/tickets?limit=2",
    "/console/",
    "/console/app.js",
    "/console/diagram.js",
    "/console/console.css",
};

/* The body of GET url, with /overview's clock ("now_us") taken out, and
 * its "read_only" too once it is checked: true from `qgate console`, which
 * is how the page knows to show no Replay or Retry button. */
static char *
read_body(const char *url, int read_only)
{
    json_object *o, *ro;
    char *body;
    answer a;

    http("GET", url, NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "%s: %ld %s", url, a.status, a.body);
    if (strcmp(url, "/overview") == 0) {
        o = json_tokener_parse(a.body);
        ck_assert_ptr_nonnull(o);
        json_object_object_del(o, "now_us");
        ck_assert_msg(json_object_object_get_ex(o, "read_only", &ro) &&
                          json_object_is_type(ro, json_type_boolean) &&
                          json_object_get_boolean(ro) == read_only,
                      "/overview says read_only %s: %s",
                      read_only ? "true" : "false", a.body);
        json_object_object_del(o, "read_only");
        body =
            strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        body = strdup(a.body);
    }
    answer_free(&a);
    return body;
}

/* data.mdb's bytes and times, to tell that nothing wrote to it. */
typedef struct file_state {
    struct stat st;
    char *bytes;
    size_t len;
} file_state;

static void
file_state_get(file_state *fs)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/data.mdb", db);
    ck_assert_int_eq(stat(path, &fs->st), 0);
    fs->bytes = read_from(path, 0);
    fs->len = (size_t)fs->st.st_size;
}

/* Every read answers as `qgate serve` answers it over the same store;
 * POST is refused everywhere (no webhook; replay and retry 403
 * read_only); /deliveries counts nothing; and data.mdb is the same,
 * byte for byte and in its times, after the session. */
START_TEST(test_console_reads_as_serve)
{
    static const struct {
        const char *method, *url, *type;
        long status;
        const char *code;
    } refused[] = {
        {"POST", WEBHOOK, "application/json", 404, "not_found"},
        {"POST", "/", "application/json", 404, "not_found"},
        {"POST", "/overview", "application/json", 405, "method_not_allowed"},
        {"PUT", "/tickets/30001", "application/json", 405,
         "method_not_allowed"},
        {"POST", "/console/", "application/json", 405, "method_not_allowed"},
        {"POST", "/rejections/1/replay", "application/json", 403, "read_only"},
        {"POST", "/rejections/1/replay", NULL, 403, "read_only"},
        {"POST", "/outbox/dead/1/retry", "application/json", 403, "read_only"},
        {"GET", "/rejections/1/replay", NULL, 405, "method_not_allowed"},
    };
    char *served[COUNT(reads)], hdr[96], *body;
    const char *hdrs[2];
    file_state before, after;
    json_object *counts, *minute;
    size_t i, j, len;
    answer a;

    fill_store();
    gate_start(NULL);
    for (i = 0; i < COUNT(reads); i++)
        served[i] = read_body(reads[i], 0);
    gate_stop();

    file_state_get(&before);
    sleep_ms(20); /* a write in the session would move the times */
    gate_start_cmd("console", NULL, 0);
    for (i = 0; i < COUNT(reads); i++) {
        body = read_body(reads[i], 1);
        ck_assert_msg(same(body, served[i]), "%s:\nconsole %s\nserve %s",
                      reads[i], body, served[i]);
        free(body);
        free(served[i]);
    }
    for (i = 0; i < COUNT(refused); i++) {
        hdrs[0] = NULL;
        if (refused[i].type) {
            snprintf(hdr, sizeof(hdr), "Content-Type: %s", refused[i].type);
            hdrs[0] = hdr;
        }
        hdrs[1] = NULL;
        body = step_body(31001, "live_queue_joined",
                         "2024-03-05T09:00:00+08:00", "0", "Waiting", &len);
        http(refused[i].method, refused[i].url, hdrs, body, len, &a);
        expect(&a, refused[i].status, NULL, refused[i].code, refused[i].url);
        answer_free(&a);
        free(body);
    }
    /* No delivery is answered here: the chart is empty. */
    http("GET", "/deliveries", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(jint(a.json, "since_ms"), 0);
    ck_assert(json_object_object_get_ex(a.json, "counts", &counts));
    ck_assert_int_eq(json_object_array_length(counts), 180);
    for (i = 0; i < json_object_array_length(counts); i++) {
        minute = json_object_array_get_idx(counts, i);
        for (j = 0; j < json_object_array_length(minute); j++)
            ck_assert_int_eq(
                json_object_get_int64(json_object_array_get_idx(minute, j)), 0);
    }
    answer_free(&a);
    /* The delivery above was not taken: the ticket is not there. */
    http("GET", "/tickets/31001", NULL, NULL, 0, &a);
    expect(&a, 404, NULL, "not_found", "a ticket POSTed to the console");
    answer_free(&a);
    gate_stop();

    file_state_get(&after);
    ck_assert_int_eq(after.len, before.len);
    ck_assert_msg(memcmp(after.bytes, before.bytes, before.len) == 0,
                  "data.mdb changed during the console's session");
    ck_assert(after.st.st_mtim.tv_sec == before.st.st_mtim.tv_sec &&
              after.st.st_mtim.tv_nsec == before.st.st_mtim.tv_nsec);
    free(before.bytes);
    free(after.bytes);
}
END_TEST

/* A store that is not there: exit 2, naming the path, and nothing
 * created. */
START_TEST(test_console_missing_store)
{
    char none[128], out[256], *log;
    const char *args[] = {"console",  "--db",        none,
                          "--listen", "127.0.0.1:0", NULL};
    off_t from = file_size(logpath);
    struct stat st;

    snprintf(none, sizeof(none), "%s/no-such-store", work);
    ck_assert_int_eq(run_cli(args, out, sizeof(out)), 2);
    log = read_from(logpath, from);
    ck_assert_msg(strstr(log, none) && strstr(log, "no store there"), "%s",
                  log);
    free(log);
    ck_assert_int_ne(stat(none, &st), 0);
}
END_TEST

/* A database server's URI is refused (the console reads a folder); on an
 * address other than loopback without --token-file, a warning. */
START_TEST(test_console_uri_and_open_address)
{
    const char *args[] = {"console", "--db", "postgresql://localhost/qgate",
                          NULL};
    const char *open_addr[] = {"--listen", "0.0.0.0:0", NULL};
    off_t from = file_size(logpath);
    char out[256], *log;

    ck_assert_int_eq(run_cli(args, out, sizeof(out)), 2);
    log = read_from(logpath, from);
    ck_assert_msg(strstr(log, "postgresql://localhost/qgate") &&
                      strstr(log, "reads a store's folder"),
                  "%s", log);
    free(log);
    fill_store();
    from = file_size(logpath);
    gate_start_cmd("console", open_addr, 0);
    gate_stop();
    log = read_from(logpath, from);
    ck_assert_msg(strstr(log, "open to anyone who can reach this address"),
                  "%s", log);
    free(log);
}
END_TEST

/* --token-file: the JSON takes the token, the console's files do not. */
START_TEST(test_console_token)
{
    static const char *const right[] = {"Authorization: Bearer aud1tor-token",
                                        NULL};
    const char *opts[] = {"--token-file", NULL, NULL};
    char token[128];
    answer a;
    FILE *f;

    fill_store();
    snprintf(token, sizeof(token), "%s/token", work);
    ck_assert_ptr_nonnull(f = fopen(token, "w"));
    fputs("aud1tor-token\n", f);
    fclose(f);
    opts[1] = token;
    gate_start_cmd("console", opts, 0);
    http("GET", "/overview", NULL, NULL, 0, &a);
    expect(&a, 401, NULL, "unauthorized", "/overview without the token");
    answer_free(&a);
    http("GET", "/overview", right, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(jint(a.json, "tickets"), 3);
    answer_free(&a);
    http("GET", "/console/", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The ticket search finds what `qgate list` lists with the same filters,
 * in the same order; a bad filter is 400 naming it. */
START_TEST(test_search_as_list)
{
    static const struct {
        const char *query;
        const char *list[10]; /* qgate list's options for the same */
        int more;             /* the limit left some out */
    } table[] = {
        {"", {NULL}, 0},
        {"?state=visit_ended", {"--state", "visit_ended", NULL}, 0},
        {"?state=queued", {"--state", "queued", NULL}, 0},
        {"?service=220", {"--service", "220", NULL}, 0},
        {"?service=221", {"--service", "221", NULL}, 0},
        {"?service=999", {"--service", "999", NULL}, 0},
        {"?date=2024-03-05",
         {"--since", "2024-03-05", "--until", "2024-03-06", NULL},
         0},
        {"?date=2024-03-04",
         {"--since", "2024-03-04", "--until", "2024-03-05", NULL},
         0},
        {"?state=no_show&service=220&date=2024-03-05",
         {"--state", "no_show", "--service", "220", "--since", "2024-03-05",
          "--until", "2024-03-06", NULL},
         0},
        {"?limit=2", {"--limit", "2", NULL}, 1},
        {"?limit=3", {"--limit", "3", NULL}, 0},
        {"?state=visit_ended&limit=1",
         {"--state", "visit_ended", "--limit", "1", NULL},
         0},
    };
    static const char *const bad[] = {
        "?state=bogus",   "?service=0",       "?service=-1",     "?service=22x",
        "?date=2024-3-5", "?date=2024-02-30", "?date=yesterday", "?limit=0",
        "?limit=1001",    "?limit=-1",
    };
    const char *args[16];
    char url[128], out[1 << 15], *line, *save;
    json_object *found, *t;
    size_t i, j, n, total = 0;
    answer a;
    int more;

    fill_store();
    gate_start_cmd("console", NULL, 0);
    for (i = 0; i < COUNT(table); i++) {
        snprintf(url, sizeof(url), "/tickets%s", table[i].query);
        http("GET", url, NULL, NULL, 0, &a);
        ck_assert_msg(a.status == 200 && a.json, "%s: %ld %s", url, a.status,
                      a.body);
        ck_assert(json_object_object_get_ex(a.json, "tickets", &found));
        n = 0;
        args[n++] = "list";
        args[n++] = "--json";
        args[n++] = "--db";
        args[n++] = db;
        for (j = 0; table[i].list[j]; j++)
            args[n++] = table[i].list[j];
        args[n] = NULL;
        ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
        j = 0;
        for (line = strtok_r(out, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save), j++) {
            ck_assert_msg(j < json_object_array_length(found),
                          "%s: list has more: %s", url, line);
            t = json_object_array_get_idx(found, j);
            ck_assert_msg(
                same(json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN),
                     line),
                "%s: #%zu is %s, list says %s", url, j,
                json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN),
                line);
        }
        ck_assert_msg(j == json_object_array_length(found),
                      "%s: %zu tickets, list %zu", url,
                      json_object_array_length(found), j);
        more = same(jtext(a.json, "more"), "true");
        ck_assert_msg(more == table[i].more, "%s: more %d", url, more);
        if (i == 0)
            total = j;
        answer_free(&a);
    }
    ck_assert_int_eq(total, 3);
    for (i = 0; i < COUNT(bad); i++) {
        snprintf(url, sizeof(url), "/tickets%s", bad[i]);
        http("GET", url, NULL, NULL, 0, &a);
        expect(&a, 400, NULL, "bad_query", url);
        ck_assert_msg(strstr(a.body, strchr(bad[i], '=') + 1), "%s: %s", url,
                      a.body);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

Suite *gate_console_db_suite(void);

Suite *
gate_console_db_suite(void)
{
    Suite *s = suite_create("gate_console_db");
    TCase *tc = tcase_create("ConsoleDb");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_console_reads_as_serve);
    tcase_add_test(tc, test_console_missing_store);
    tcase_add_test(tc, test_console_token);
    tcase_add_test(tc, test_console_uri_and_open_address);
    tcase_add_test(tc, test_search_as_list);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_console_db_suite());
}
