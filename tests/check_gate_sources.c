/*
 * check_gate_sources.c - several clinics, one gate: config "sources",
 * each a Chup account at its own path with its own secret, its tickets
 * apart from the others', its steps to its own HIS.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gate_harness.h"

#define KEY_A "the-secret-of-clinic-a"
/* The named sources one gate serves (docs/gate.md). */
#define GATE_MAX_NAMED 16
#define KEY_B          "the-secret-of-clinic-b"

static char cfg[128];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Sources a (path by default) and b (a path of its own), each with its
 * secret and HIS (his.url/a, his.url/b; b's requests signed), and the
 * default source, --secret-file, to his.url/default. */
static void
write_config(void)
{
    char path[128], text[2048];

    snprintf(path, sizeof(path), "%s/a.secret", work);
    write_file(path, KEY_A "\n");
    snprintf(path, sizeof(path), "%s/b.secret", work);
    write_file(path, KEY_B "\n");
    snprintf(path, sizeof(path), "%s/b.whsec", work);
    write_file(path, "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    snprintf(text, sizeof(text),
             "{\"upstream\": \"%s/default\",\n"
             " \"sources\": [\n"
             "  {\"name\": \"a\", \"secret_file\": \"a.secret\",\n"
             "   \"upstream\": \"%s/a\"},\n"
             "  {\"name\": \"b\", \"path\": \"/clinic-b/chup\",\n"
             "   \"secret_file\": \"b.secret\", \"upstream\": \"%s/b\",\n"
             "   \"upstream_secret_file\": \"b.whsec\"}]}\n",
             his.url, his.url, his.url);
    snprintf(cfg, sizeof(cfg), "%s/qgate.json", work);
    write_file(cfg, text);
}

/* Posts entry id's join, signed with key, to path; returns the answer's
 * status, its verdict in verdict and ticket in *ticket. */
static long
post_join(const char *path, const char *key, long long id, char *verdict,
          size_t vlen, int64_t *ticket)
{
    answer a;
    size_t len;
    char *body;
    long status;

    secret_use(key);
    body = join_body(id, &len);
    ck_assert_ptr_nonnull(body);
    http("POST", path, as_json, body, len, &a);
    free(body);
    status = a.status;
    snprintf(verdict, vlen, "%s", a.json ? jstr(a.json, "verdict") : "");
    *ticket = a.json ? jint(a.json, "ticket") : 0;
    answer_free(&a);
    return status;
}

/* The same live-queue ids from clinics a and b are two tickets, each
 * source's deliveries pass only with its own secret, each source's steps
 * go to its own HIS, and the metrics and log lines name the source. */
START_TEST(test_sources_two_clinics_one_gate)
{
    static const struct {
        const char *path, *key;
        long long id;
        long status;
        const char *verdict;
    } steps[] = {
        {"/webhooks/chup/a", KEY_A, 30001, 200, "accepted"},
        {"/clinic-b/chup", KEY_B, 30001, 200, "accepted"},
        {"/webhooks/chup", NULL, 30001, 200, "accepted"},
        {"/webhooks/chup/a", KEY_A, 30002, 200, "accepted"},
        /* a's secret at b's path, b's at a's, the default's at b's */
        {"/clinic-b/chup", KEY_A, 30003, 401, "unauthenticated"},
        {"/webhooks/chup/a", KEY_B, 30003, 401, "unauthenticated"},
        {"/clinic-b/chup", NULL, 30003, 401, "unauthenticated"},
        /* a redelivery is a duplicate in its own source only */
        {"/webhooks/chup/a", KEY_A, 30001, 200, "duplicate"},
    };
    const char *opts[] = {"--config", cfg, NULL};
    char verdict[32], got[16], *text;
    int64_t tickets[COUNT(steps)];
    size_t i, to_a = 0, to_b = 0, to_default = 0;
    qg_store *st;
    qg_ticket ta, tb, td;

    his_start(HIS_ACCEPT);
    write_config();
    gate_start(opts);
    for (i = 0; i < COUNT(steps); i++) {
        long status = post_join(steps[i].path, steps[i].key, steps[i].id,
                                verdict, sizeof(verdict), &tickets[i]);

        ck_assert_msg(
            status == steps[i].status && strcmp(verdict, steps[i].verdict) == 0,
            "step %zu (%s, lq %lld): %ld %s, expected %ld %s", i, steps[i].path,
            steps[i].id, status, verdict, steps[i].status, steps[i].verdict);
    }
    ck_assert_int_ne(tickets[0], tickets[1]);
    ck_assert_int_ne(tickets[1], tickets[2]);
    ck_assert_int_ne(tickets[0], tickets[2]);
    ck_assert_int_eq(tickets[7], tickets[0]);

    /* Four steps accepted: each to its source's HIS, named by source. */
    wait_delivered(4, WAIT_MS);
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++) {
        const his_req *q = &his.reqs[i];
        json_object *root = json_tokener_parse(q->body), *data, *tk;
        const char *from;

        ck_assert_ptr_nonnull(root);
        ck_assert(json_object_object_get_ex(root, "data", &data) &&
                  json_object_object_get_ex(data, "ticket", &tk));
        from = jstr(tk, "source");
        snprintf(got, sizeof(got), "%" PRId64, jint(tk, "number"));
        ck_assert_str_eq(got, q->ticket);
        ck_assert_str_eq(from, q->source);
        if (strcmp(q->url, "/his/a") == 0) {
            to_a++;
            ck_assert_str_eq(from, "a");
            ck_assert_str_eq(q->wh_sig, "");
        } else if (strcmp(q->url, "/his/b") == 0) {
            to_b++;
            ck_assert_str_eq(from, "b");
            ck_assert_int_eq(strncmp(q->wh_sig, "v1,", 3), 0);
            ck_assert_int_eq(atoll(q->ticket), tickets[1]);
        } else {
            ck_assert_str_eq(q->url, "/his/default");
            to_default++;
            ck_assert_str_eq(from, "default");
            ck_assert_int_eq(atoll(q->ticket), tickets[2]);
        }
        json_object_put(root);
    }
    pthread_mutex_unlock(&his.lock);
    ck_assert_uint_eq(to_a, 2);
    ck_assert_uint_eq(to_b, 1);
    ck_assert_uint_eq(to_default, 1);

    ck_assert(gate_sample("qgate_deliveries_total{verdict=\"accepted\","
                          "code=\"none\",source=\"a\"}") == 2);
    ck_assert(gate_sample("qgate_deliveries_total{verdict=\"accepted\","
                          "code=\"none\",source=\"b\"}") == 1);
    ck_assert(gate_sample("qgate_deliveries_total{verdict=\"duplicate\","
                          "code=\"redelivery\",source=\"a\"}") == 1);
    ck_assert(gate_sample("qgate_deliveries_total{verdict="
                          "\"unauthenticated\",code=\"bad_signature\","
                          "source=\"b\"}") == 2);
    ck_assert(gate_sample("qgate_signature_matches_total{secret=\"0\","
                          "source=\"a\"}") == 3);
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "\"name\":\"b\",\"path\":\"/clinic-b/chup\"") !=
                      NULL,
                  "the listening line does not list source b");
    ck_assert_msg(strstr(text, "\"code\":\"bad_signature\"") != NULL &&
                      strstr(text, "\"source\":\"b\"") != NULL,
                  "no delivery line names source b");
    free(text);
    gate_stop();

    st = store_ro();
    ck_assert_int_eq(qg_store_ticket_in(st, "a", QG_ID_LIVE_QUEUE, 30001, &ta),
                     0);
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30001, &tb),
                     0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &td), 0);
    ck_assert_int_eq((int64_t)ta.id, tickets[0]);
    ck_assert_int_eq((int64_t)tb.id, tickets[1]);
    ck_assert_int_eq((int64_t)td.id, tickets[2]);
    ck_assert_str_eq(tb.source, "b");
    ck_assert_int_eq(qg_store_ticket_in(st, "b", QG_ID_LIVE_QUEUE, 30002, &tb),
                     QG_NOTFOUND);
    qg_store_close(st);
}
END_TEST

/* Whether the gate's log holds text after offset from. */
static int
logged(off_t from, const char *text)
{
    char *log = read_from(logpath, from);
    int found = strstr(log, text) != NULL;

    free(log);
    return found;
}

/* SIGHUP reloads every source's secrets; a source whose secret file no
 * longer loads keeps every source's running engine. */
START_TEST(test_sources_reload)
{
    const char *opts[] = {"--config", cfg, NULL};
    char path[128], verdict[32];
    int64_t ticket;
    off_t mark;
    int ok;

    snprintf(path, sizeof(path), "%s/a.secret", work);
    write_file(path, KEY_A "\n");
    snprintf(path, sizeof(path), "%s/b.secret", work);
    write_file(path, KEY_B "\n");
    snprintf(cfg, sizeof(cfg), "%s/qgate.json", work);
    write_file(cfg, "{\"sources\": [{\"name\": \"a\", \"secret_file\": "
                    "\"a.secret\"}, {\"name\": \"b\", \"secret_file\": "
                    "\"b.secret\"}]}\n");
    gate_start(opts);
    ck_assert_int_eq(post_join("/webhooks/chup/a", KEY_A, 40001, verdict,
                               sizeof(verdict), &ticket),
                     200);

    /* a's secret rotated */
    snprintf(path, sizeof(path), "%s/a.secret", work);
    write_file(path, "the-new-secret-of-clinic-a\n");
    mark = file_size(logpath);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    WAIT_FOR(ok, logged(mark, "\"msg\":\"reloaded\""), WAIT_MS);
    ck_assert_msg(ok, "no reload logged");
    ck_assert_int_eq(post_join("/webhooks/chup/a", "the-new-secret-of-clinic-a",
                               40002, verdict, sizeof(verdict), &ticket),
                     200);
    ck_assert_int_eq(post_join("/webhooks/chup/a", KEY_A, 40003, verdict,
                               sizeof(verdict), &ticket),
                     401);

    /* b's secret file gone: nothing changes, and the log says why */
    snprintf(path, sizeof(path), "%s/b.secret", work);
    ck_assert_int_eq(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/a.secret", work);
    write_file(path, KEY_A "\n");
    mark = file_size(logpath);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    WAIT_FOR(ok, logged(mark, "reload failed"), WAIT_MS);
    ck_assert_msg(ok, "no failed reload logged");
    ck_assert_msg(logged(mark, "source b: "), "the failed source is not named");
    ck_assert_int_eq(post_join("/webhooks/chup/a", "the-new-secret-of-clinic-a",
                               40004, verdict, sizeof(verdict), &ticket),
                     200);
    ck_assert_int_eq(post_join("/webhooks/chup/b", KEY_B, 40005, verdict,
                               sizeof(verdict), &ticket),
                     200);
    gate_stop();
}
END_TEST

/* A config the gate cannot serve is refused at start, naming the source
 * and what is wrong, before anything listens. */
START_TEST(test_sources_config_refused)
{
    struct {
        const char *sources, *says;
    } bad[] = {
        {"{\"sources\": {\"name\": \"a\"}}", "expected an array"},
        {"{\"sources\": [{\"secret_file\": \"a.secret\"}]}",
         "sources[0]: name missing"},
        {"{\"sources\": [{\"name\": \"A\", \"secret_file\": \"a.secret\"}]}",
         "sources[0]: name A"},
        {"{\"sources\": [{\"name\": \"default\", \"secret_file\": "
         "\"a.secret\"}]}",
         "not \"default\""},
        {"{\"sources\": [{\"name\": \"a\"}]}", "source \"a\": no "
                                               "secret_file"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"colour\": \"red\"}]}",
         "sources[0]: key \"colour\": unknown"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\"}, "
         "{\"name\": \"a\", \"secret_file\": \"a.secret\"}]}",
         "name \"a\" is taken by sources[0]"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"path\": \"/webhooks/chup\"}]}",
         "path \"/webhooks/chup\" is source \"default\"'s"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"path\": \"/metrics\"}]}",
         "not the gate's own"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"path\": \"/console/a\"}]}",
         "not the gate's own"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"path\": \"/overview\"}]}",
         "not the gate's own"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"a.secret\", "
         "\"upstream\": \"http://127.0.0.1:9/his\"}]}",
         "source \"default\" has no upstream"},
        {"{\"sources\": [{\"name\": \"a\", \"secret_file\": \"nowhere\"}]}",
         "/nowhere: No such file"},
        {NULL, "17 sources; a gate serves at most 16 besides the default"},
    };
    const char *opts[] = {"--config", cfg, NULL};
    char path[128], *text, many[2048];
    size_t i, n;
    int status;

    snprintf(path, sizeof(path), "%s/a.secret", work);
    write_file(path, KEY_A "\n");
    snprintf(cfg, sizeof(cfg), "%s/qgate.json", work);
    /* one source more than a gate serves */
    n = (size_t)snprintf(many, sizeof(many), "{\"sources\": [");
    for (i = 0; i < GATE_MAX_NAMED + 1; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n,
                              "%s{\"name\": \"s%zu\", \"secret_file\": "
                              "\"a.secret\"}",
                              i ? ", " : "", i);
    snprintf(many + n, sizeof(many) - n, "]}");
    bad[COUNT(bad) - 1].sources = many;
    for (i = 0; i < COUNT(bad); i++) {
        off_t mark = file_size(logpath);

        write_file(cfg, bad[i].sources);
        gate_spawn(opts, 0);
        status = gate_wait_exit(WAIT_MS);
        ck_assert_msg(status != -1 && WIFEXITED(status) &&
                          WEXITSTATUS(status) != 0,
                      "case %zu: the gate started", i);
        text = read_from(logpath, mark);
        ck_assert_msg(strstr(text, bad[i].says) != NULL,
                      "case %zu: \"%s\" not in: %s", i, bad[i].says, text);
        free(text);
    }
}
END_TEST

Suite *gate_sources_suite(void);

Suite *
gate_sources_suite(void)
{
    Suite *s = suite_create("gate_sources");
    TCase *tc = tcase_create("Sources");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_sources_two_clinics_one_gate);
    tcase_add_test(tc, test_sources_config_refused);
    tcase_add_test(tc, test_sources_reload);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_sources_suite());
}
