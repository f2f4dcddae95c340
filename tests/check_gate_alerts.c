/*
 * check_gate_alerts.c - `qgate serve` end to end: the alerts it POSTs to
 * --alert-url when steps stop reaching the HIS, /readyz when they do, and
 * what the dead list keeps of why.
 *
 * The receiver is a second libmicrohttpd server here; it checks each
 * alert's Standard Webhooks signature with its own HMAC code, not the
 * gate's.  The gate, the client and the fake HIS are in gate_harness.h.
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gate_harness.h"
#include "promcheck.h"

/* ----- the alert receiver ----------------------------------------------- */

#define ALERTS_MAX 64

typedef struct alert_got {
    char alert[32], state[16];
    int verified; /* the signature checked out */
    int64_t at_ms;
    json_object *json; /* the whole body */
} alert_got;

static struct {
    struct MHD_Daemon *d;
    char url[64];
    atomic_int hang; /* answer nothing for 8 s */
    atomic_int stopping;
    pthread_mutex_t lock;
    alert_got got[ALERTS_MAX];
    size_t n;
} rcv;

static unsigned char key[32]; /* the secret's bytes */
static char secret_file[128];

typedef struct upload {
    char *body;
    size_t len;
} upload;

/* Whether sig (space-separated "v1,<base64>") holds the HMAC-SHA256 of
 * "id.ts.body" under key. */
static int
verify(const char *id, const char *ts, const char *body, size_t len,
       const char *sig)
{
    unsigned char mac[32];
    char b64[64], want[80];
    EVP_PKEY *pk;
    EVP_MD_CTX *m;
    size_t ml = sizeof(mac);
    const char *p;

    pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, key, sizeof(key));
    m = EVP_MD_CTX_new();
    if (!pk || !m || EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, pk) != 1 ||
        EVP_DigestSignUpdate(m, id, strlen(id)) != 1 ||
        EVP_DigestSignUpdate(m, ".", 1) != 1 ||
        EVP_DigestSignUpdate(m, ts, strlen(ts)) != 1 ||
        EVP_DigestSignUpdate(m, ".", 1) != 1 ||
        EVP_DigestSignUpdate(m, body, len) != 1 ||
        EVP_DigestSignFinal(m, mac, &ml) != 1) {
        EVP_MD_CTX_free(m);
        EVP_PKEY_free(pk);
        return 0;
    }
    EVP_MD_CTX_free(m);
    EVP_PKEY_free(pk);
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)ml);
    snprintf(want, sizeof(want), "v1,%s", b64);
    for (p = sig; (p = strstr(p, want)) != NULL; p++)
        if ((p == sig || p[-1] == ' ') &&
            (p[strlen(want)] == '\0' || p[strlen(want)] == ' '))
            return 1;
    return 0;
}

static enum MHD_Result
rcv_handle(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *data,
           size_t *size, void **con_cls)
{
    static char ok[] = "{}";
    upload *u = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    const char *id, *ts, *sig;
    json_object *j, *d, *v;
    alert_got g;
    int64_t until;
    char *grown;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    if (u == NULL) {
        if ((u = calloc(1, sizeof(*u))) == NULL)
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*size) {
        if ((grown = realloc(u->body, u->len + *size + 1)) == NULL)
            return MHD_NO;
        u->body = grown;
        memcpy(u->body + u->len, data, *size);
        u->len += *size;
        u->body[u->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    if (atomic_load(&rcv.hang)) {
        until = now_ms() + 8000;
        while (!atomic_load(&rcv.stopping) && now_ms() < until)
            sleep_ms(10);
    }
    memset(&g, 0, sizeof(g));
    g.at_ms = now_ms();
    id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id");
    ts =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-timestamp");
    sig =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-signature");
    g.verified =
        id && ts && sig && u->body && verify(id, ts, u->body, u->len, sig);
    if (u->body && (j = json_tokener_parse(u->body)) != NULL) {
        g.json = j;
        if (json_object_object_get_ex(j, "data", &d)) {
            if (json_object_object_get_ex(d, "alert", &v))
                snprintf(g.alert, sizeof(g.alert), "%s",
                         json_object_get_string(v));
            if (json_object_object_get_ex(d, "state", &v))
                snprintf(g.state, sizeof(g.state), "%s",
                         json_object_get_string(v));
        }
    }
    pthread_mutex_lock(&rcv.lock);
    if (rcv.n < ALERTS_MAX)
        rcv.got[rcv.n++] = g;
    else
        json_object_put(g.json);
    pthread_mutex_unlock(&rcv.lock);
    resp = MHD_create_response_from_buffer(2, ok, MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
rcv_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
    upload *u = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (u) {
        free(u->body);
        free(u);
        *con_cls = NULL;
    }
}

static void
rcv_start(int hang)
{
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&rcv.lock, NULL);
    rcv.n = 0;
    atomic_store(&rcv.hang, hang);
    atomic_store(&rcv.stopping, 0);
    rcv.d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
        NULL, NULL, rcv_handle, NULL, MHD_OPTION_SOCK_ADDR, &sin,
        MHD_OPTION_NOTIFY_COMPLETED, rcv_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    ck_assert_ptr_nonnull(rcv.d);
    info = MHD_get_daemon_info(rcv.d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(rcv.url, sizeof(rcv.url), "http://127.0.0.1:%u/alerts",
             (unsigned)info->port);
}

static void
rcv_stop(void)
{
    size_t i;

    if (rcv.d == NULL)
        return;
    atomic_store(&rcv.stopping, 1);
    MHD_stop_daemon(rcv.d);
    rcv.d = NULL;
    for (i = 0; i < rcv.n; i++)
        json_object_put(rcv.got[i].json);
    rcv.n = 0;
}

/* Alerts received of this alert and state. */
static size_t
rcv_count(const char *alert, const char *state)
{
    size_t i, n = 0;

    pthread_mutex_lock(&rcv.lock);
    for (i = 0; i < rcv.n; i++)
        if (strcmp(rcv.got[i].alert, alert) == 0 &&
            strcmp(rcv.got[i].state, state) == 0)
            n++;
    pthread_mutex_unlock(&rcv.lock);
    return n;
}

/* The first such alert (the receiver's copy; valid until rcv_stop()). */
static const alert_got *
rcv_find(const char *alert, const char *state)
{
    const alert_got *g = NULL;
    size_t i;

    pthread_mutex_lock(&rcv.lock);
    for (i = 0; i < rcv.n && g == NULL; i++)
        if (strcmp(rcv.got[i].alert, alert) == 0 &&
            strcmp(rcv.got[i].state, state) == 0)
            g = &rcv.got[i];
    pthread_mutex_unlock(&rcv.lock);
    return g;
}

/* data.detail of an alert. */
static json_object *
detail_of(const alert_got *g)
{
    json_object *d, *det;

    ck_assert(json_object_object_get_ex(g->json, "data", &d));
    ck_assert(json_object_object_get_ex(d, "detail", &det));
    return det;
}

/* The secret the gate signs with: whsec_ and the base64 of 32 bytes. */
static void
write_secret(void)
{
    char b64[64];
    FILE *f;
    size_t i;

    for (i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(i * 7 + 3);
    EVP_EncodeBlock((unsigned char *)b64, key, sizeof(key));
    snprintf(secret_file, sizeof(secret_file), "%s/alert.secret", work);
    ck_assert_ptr_nonnull(f = fopen(secret_file, "w"));
    fprintf(f, "# the alert receiver's\nwhsec_%s\n", b64);
    ck_assert_int_eq(fclose(f), 0);
}

static void
alerts_setup(void)
{
    setup();
    write_secret();
}

static void
alerts_teardown(void)
{
    teardown();
    rcv_stop();
}

/* /readyz, until it answers status (at most ms); a holds the last. */
static int
ready_status(long status, long ms, answer *a)
{
    int64_t until = now_ms() + ms;

    for (;;) {
        http("GET", "/readyz", NULL, NULL, 0, a);
        if (a->status == status || now_ms() >= until)
            return a->status == status;
        answer_free(a);
        sleep_ms(100);
    }
}

/* Whether the JSON array "reasons" of /readyz's body names reason. */
static int
names_reason(const answer *a, const char *reason)
{
    json_object *r;
    size_t i;

    if (!a->json || !json_object_object_get_ex(a->json, "reasons", &r))
        return 0;
    for (i = 0; i < json_object_array_length(r); i++)
        if (same(json_object_get_string(json_object_array_get_idx(r, i)),
                 reason))
            return 1;
    return 0;
}

/* /metrics in the Prometheus format, and one sample of it. */
static double
checked_sample(const char *sample)
{
    char err[256], *text = scrape();
    double v;

    ck_assert_msg(prom_check(text, err, sizeof(err)) > 0, "%s", err);
    v = sample_value(text, sample);
    free(text);
    return v;
}

/* ----- the tests --------------------------------------------------------- */

/*
 * The HIS fails every step: after --alert-his-down one signed
 * his_unreachable alert, not repeated within --alert-interval; once the
 * HIS takes steps again, one resolved alert.
 */
START_TEST(test_alert_his_down_fires_once_then_resolves)
{
    const char *opts[] = {"--upstream",
                          his.url,
                          "--forward-timeout",
                          "1",
                          "--alert-url",
                          rcv.url,
                          "--alert-secret-file",
                          secret_file,
                          "--alert-his-down",
                          "2",
                          "--alert-interval",
                          "3600",
                          NULL};
    const alert_got *g;
    int64_t t0;
    int ok;

    his_start(HIS_FAIL);
    rcv_start(0);
    opts[1] = his.url;
    opts[5] = rcv.url;
    gate_start(opts);
    t0 = now_ms();
    post_accepted(walk_in_files[0]);
    WAIT_FOR(ok, rcv_count("his_unreachable", "firing") == 1, WAIT_MS);
    ck_assert_msg(ok, "no his_unreachable alert after %d ms", WAIT_MS);
    g = rcv_find("his_unreachable", "firing");
    ck_assert_msg(g->at_ms - t0 >= 2000,
                  "alerted %" PRId64 " ms after the first step, before "
                  "--alert-his-down",
                  g->at_ms - t0);
    ck_assert_msg(g->verified, "the alert's signature does not verify");
    ck_assert_int_eq(jint(detail_of(g), "waiting"), 1);
    ck_assert_msg(checked_sample("qgate_his_unreachable_seconds") >= 2,
                  "qgate_his_unreachable_seconds %g",
                  gate_sample("qgate_his_unreachable_seconds"));
    /* still down, within the interval: no second alert */
    sleep_ms(2500);
    ck_assert_uint_eq(rcv_count("his_unreachable", "firing"), 1);

    atomic_store(&his.mode, HIS_ACCEPT);
    WAIT_FOR(ok, rcv_count("his_unreachable", "resolved") == 1, 2 * WAIT_MS);
    ck_assert_msg(ok, "no resolved alert once the HIS took steps again");
    ck_assert(rcv_find("his_unreachable", "resolved")->verified);
    ck_assert_uint_eq(rcv_count("his_unreachable", "firing"), 1);
    ck_assert_double_eq(checked_sample("qgate_his_unreachable_seconds"), 0);
    ck_assert_double_eq(
        checked_sample(
            "qgate_alerts_total{alert=\"his_unreachable\",state=\"firing\"}"),
        1);
    ck_assert_double_eq(
        checked_sample(
            "qgate_alerts_total{alert=\"his_unreachable\",state=\"resolved\"}"),
        1);
    gate_stop();
}
END_TEST

/*
 * A step the HIS answers 500 to goes dead under --max-age 1: one
 * step_dead alert naming it and the HIS's answer, /readyz 503 saying so,
 * `qgate outbox --dead --json` keeping both why it gave up and the last
 * error, the metrics counting it; after `qgate outbox --retry-all` the
 * step is delivered and the alert resolved.
 */
START_TEST(test_alert_step_dead_names_last_error)
{
    const char *opts[] = {"--upstream",  his.url,     "--forward-timeout",
                          "1",           "--max-age", "1",
                          "--alert-url", rcv.url,     "--alert-secret-file",
                          secret_file,   NULL};
    const char *dead_args[] = {"outbox", "--dead", "--json", "--db", db, NULL};
    const char *retry_args[] = {"outbox", "--retry-all", "--db", db, NULL};
    const alert_got *g;
    json_object *d, *line;
    char out[8192], delivery[48];
    uint64_t ticket;
    qg_store *st;
    answer a;
    int ok;

    his_start(HIS_FAIL);
    rcv_start(0);
    opts[1] = his.url;
    opts[7] = rcv.url;
    gate_start(opts);
    post_accepted(walk_in_files[0]);
    post_accepted(walk_in_files[1]);
    WAIT_FOR(ok, rcv_count("step_dead", "firing") >= 1, WAIT_MS);
    ck_assert_msg(ok, "no step_dead alert after %d ms", WAIT_MS);
    g = rcv_find("step_dead", "firing");
    ck_assert(g->verified);
    d = detail_of(g);
    ck_assert_str_eq(jstr(d, "last_error"), "HTTP 500");
    ck_assert_int_eq(jint(d, "seq"), 1);
    ck_assert_msg(strstr(jstr(d, "reason"), "maximum age"), "%s",
                  jstr(d, "reason"));
    ticket = (uint64_t)jint(d, "ticket");
    /* the delivery id the HIS was sent: <store id>-<ticket>-<seq> */
    snprintf(delivery, sizeof(delivery), "-%" PRIu64 "-1", ticket);
    ck_assert_uint_eq(strlen(jstr(d, "delivery")),
                      QG_STORE_ID_LEN + strlen(delivery));
    ck_assert_uint_eq(strspn(jstr(d, "delivery"), "0123456789abcdef"),
                      QG_STORE_ID_LEN);
    ck_assert_str_eq(jstr(d, "delivery") + QG_STORE_ID_LEN, delivery);

    ck_assert_msg(ready_status(503, 3000, &a), "/readyz %ld: %s", a.status,
                  a.body);
    ck_assert_msg(names_reason(&a, "dead_steps"), "%s", a.body);
    ck_assert_int_eq(jint(a.json, "dead"), 2);
    answer_free(&a);
    ck_assert_double_eq(checked_sample("qgate_outbox_dead"), 2);
    ck_assert_double_eq(checked_sample("qgate_forward_given_up_total"), 1);

    ck_assert_int_eq(run_cli(dead_args, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(line = json_tokener_parse(out)); /* the first */
    ck_assert_str_eq(jstr(line, "last_error"), "HTTP 500");
    ck_assert_msg(strstr(jstr(line, "gave_up"), "maximum age"), "%s", out);
    ck_assert_int_gt(jint(line, "last_error_us"), 0);
    json_object_put(line);

    atomic_store(&his.mode, HIS_ACCEPT);
    ck_assert_int_eq(run_cli(retry_args, out, sizeof(out)), 0);
    WAIT_FOR(ok, rcv_count("step_dead", "resolved") == 1, WAIT_MS);
    ck_assert_msg(ok, "no resolved step_dead alert after --retry-all");
    wait_delivered(2, WAIT_MS);
    ck_assert_msg(ready_status(200, 3000, &a), "/readyz %ld: %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();

    st = store_ro();
    ck_assert_uint_eq(ticket_of(st, 30001), ticket);
    qg_store_close(st);
}
END_TEST

/* More refusals a minute than --alert-refusals: a refusal_spike alert. */
START_TEST(test_alert_refusal_spike)
{
    const char *opts[] = {"--alert-url",
                          rcv.url,
                          "--alert-refusals",
                          "3",
                          "--unsigned-rate",
                          "1000",
                          "--unsigned-burst",
                          "1000",
                          NULL};
    static const char bad[] = "{\"payload\":{},\"signature\":\"00\"}";
    const alert_got *g;
    answer a;
    int i, ok;

    rcv_start(0);
    opts[1] = rcv.url;
    gate_start(opts);
    for (i = 0; i < 3; i++) {
        http("POST", WEBHOOK, as_json, bad, strlen(bad), &a);
        ck_assert_int_ge(a.status, 400);
        answer_free(&a);
    }
    sleep_ms(1500);
    ck_assert_msg(rcv_count("refusal_spike", "firing") == 0,
                  "alerted at the limit, not above it");
    for (i = 0; i < 3; i++) {
        http("POST", WEBHOOK, as_json, bad, strlen(bad), &a);
        answer_free(&a);
    }
    WAIT_FOR(ok, rcv_count("refusal_spike", "firing") == 1, WAIT_MS);
    ck_assert_msg(ok, "no refusal_spike alert");
    g = rcv_find("refusal_spike", "firing");
    ck_assert_int_gt(jint(detail_of(g), "per_minute"), 3);
    ck_assert_int_eq(jint(detail_of(g), "limit"), 3);
    /* unsigned: no secret file, and the gate said so */
    ck_assert(!g->verified);
    gate_stop();
}
END_TEST

/* The oldest step waits longer than --ready-max-wait: /readyz 503, with
 * that reason, though the backlog is under --ready-max-outbox. */
START_TEST(test_readyz_max_wait)
{
    const char *opts[] = {
        "--upstream",       his.url, "--forward-timeout", "1",
        "--ready-max-wait", "2",     "--ready-dead-ok",   NULL};
    answer a;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    post_accepted(walk_in_files[0]);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "a step just queued: %s", a.body);
    answer_free(&a);
    ck_assert_msg(ready_status(503, WAIT_MS, &a), "/readyz %ld: %s", a.status,
                  a.body);
    ck_assert_msg(names_reason(&a, "oldest_step_too_old"), "%s", a.body);
    ck_assert_msg(!names_reason(&a, "outbox_backlog"), "%s", a.body);
    ck_assert_int_ge(jint(a.json, "oldest_age_s"), 2);
    answer_free(&a);
    ck_assert_msg(checked_sample("qgate_outbox_oldest_age_seconds") >= 2,
                  "oldest age %g",
                  gate_sample("qgate_outbox_oldest_age_seconds"));
    gate_stop();
}
END_TEST

/*
 * The alert receiver hangs: the gate still answers Chup at once and
 * forwards every step, /metrics answers, and it stops promptly.
 */
START_TEST(test_alert_receiver_down_stalls_nothing)
{
    const char *opts[] = {"--upstream",
                          his.url,
                          "--alert-url",
                          rcv.url,
                          "--alert-refusals",
                          "1",
                          "--unsigned-rate",
                          "1000",
                          "--unsigned-burst",
                          "1000",
                          NULL};
    static const char bad[] = "{\"payload\":{},\"signature\":\"00\"}";
    answer a;
    size_t i;
    int64_t t;

    his_start(HIS_ACCEPT);
    rcv_start(1);
    opts[1] = his.url;
    opts[3] = rcv.url;
    gate_start(opts);
    for (i = 0; i < 3; i++) {
        http("POST", WEBHOOK, as_json, bad, strlen(bad), &a);
        answer_free(&a);
    }
    sleep_ms(1500); /* the alert is on its way to the hanging receiver */
    for (i = 0; i < 5; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        ck_assert_msg(a.ms < 1000, "answered in %" PRId64 " ms", a.ms);
        answer_free(&a);
    }
    wait_delivered(5, WAIT_MS);
    t = now_ms();
    ck_assert(!isnan(checked_sample("qgate_alerts_failed_total")));
    ck_assert_msg(now_ms() - t < 1000, "/metrics took %" PRId64 " ms",
                  now_ms() - t);
    t = now_ms();
    gate_stop();
    ck_assert_msg(now_ms() - t < 5000, "stopping took %" PRId64 " ms",
                  now_ms() - t);
}
END_TEST

Suite *gate_alerts_suite(void);

Suite *
gate_alerts_suite(void)
{
    Suite *s = suite_create("gate_alerts");
    TCase *tc = tcase_create("Alerts");

    tcase_add_checked_fixture(tc, alerts_setup, alerts_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_alert_his_down_fires_once_then_resolves);
    tcase_add_test(tc, test_alert_step_dead_names_last_error);
    tcase_add_test(tc, test_alert_refusal_spike);
    tcase_add_test(tc, test_readyz_max_wait);
    tcase_add_test(tc, test_alert_receiver_down_stalls_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tu_run(gate_alerts_suite());
}
