/*
 * check_gate_his.c - the contract with the HIS, end to end: what a real
 * gate sends to the fake HIS.  Every request is signed the Standard
 * Webhooks way and checked here by a verifier written from the
 * specification (standardwebhooks.com), not from qgate's signer: OpenSSL's
 * one-shot HMAC() and a base64 of its own.  The qgate body is parsed and
 * checked field by field against the delivery Chup sent; delivery ids are
 * unique across stores and stable across retries, restarts and resends.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gate_harness.h"

/* ----- a Standard Webhooks verifier, from the specification ------------ */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding. */
static void
b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    unsigned v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        v = (unsigned)in[i] << 16;
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* The two keys of these tests: 32 bytes each. */
static unsigned char key1[32], key2[32];

static void
make_keys(void)
{
    size_t i;

    for (i = 0; i < 32; i++) {
        key1[i] = (unsigned char)(i * 7 + 1);
        key2[i] = (unsigned char)(255 - i * 3);
    }
}

/* Writes "whsec_<base64>" lines for the keys to path. */
static void
write_secrets(const char *path, const unsigned char *a, const unsigned char *b)
{
    char text[64];
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs("# the HIS's secrets\n", f);
    b64_encode(a, 32, text);
    fprintf(f, "whsec_%s\n", text);
    if (b) {
        b64_encode(b, 32, text);
        fprintf(f, "whsec_%s\n", text);
    }
    ck_assert_int_eq(fclose(f), 0);
}

/*
 * The spec's check: the signed content is "<webhook-id>.<webhook-
 * timestamp>.<body>", the signature "v1," and the base64 of its
 * HMAC-SHA256 under the key; the header holds one or more, space
 * separated, and one matching is enough.  The timestamp must be within
 * 5 minutes of now.  Returns 1 when the request verifies under key.
 */
static int
verify(const unsigned char *key, const char *id, const char *ts,
       const char *body, size_t len, const char *header)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char want[96], *msg, *copy, *tok, *save = NULL;
    size_t n = strlen(id) + strlen(ts) + 2 + len;
    long long t = strtoll(ts, NULL, 10);
    int ok = 0;

    if (llabs(t - (long long)time(NULL)) > 300)
        return 0;
    msg = malloc(n + 1);
    ck_assert_ptr_nonnull(msg);
    snprintf(msg, n + 1, "%s.%s.", id, ts);
    memcpy(msg + strlen(id) + strlen(ts) + 2, body, len);
    ck_assert_ptr_nonnull(
        HMAC(EVP_sha256(), key, 32, (unsigned char *)msg, n, mac, &maclen));
    free(msg);
    ck_assert_uint_eq(maclen, 32);
    strcpy(want, "v1,");
    b64_encode(mac, maclen, want + 3);
    copy = strdup(header);
    for (tok = strtok_r(copy, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save))
        ok |= strcmp(tok, want) == 0;
    free(copy);
    return ok;
}

static int
verify_req(const unsigned char *key, const his_req *q)
{
    return verify(key, q->wh_id, q->wh_ts, q->body, q->len, q->wh_sig);
}

/* ----- helpers ---------------------------------------------------------- */

static char secrets[128];

static void
setup_his(void)
{
    setup();
    make_keys();
    snprintf(secrets, sizeof(secrets), "%s/his-secrets", work);
}

/* The store id the request names: its delivery id's first 32 hex. */
static void
store_of(const his_req *q, char out[40])
{
    ck_assert_msg(strspn(q->delivery, "0123456789abcdef") == 32 &&
                      q->delivery[32] == '-',
                  "delivery id \"%s\"", q->delivery);
    snprintf(out, 40, "%.32s", q->delivery);
}

/* Unix ms of "2024-03-05T01:00:00.000Z" or "...+08:00". */
static int64_t
iso_ms(const char *s)
{
    struct tm tm;
    int ms = 0, oh = 0, om = 0;
    char sign = 'Z';
    const char *z;

    memset(&tm, 0, sizeof(tm));
    ck_assert_msg(sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon,
                         &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6,
                  "not a time: %s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    z = s + 19;
    if (*z == '.') {
        ms = atoi(z + 1);
        z += 4;
    }
    if (*z == '+' || *z == '-') {
        sign = *z;
        ck_assert(sscanf(z + 1, "%d:%d", &oh, &om) == 2);
    } else {
        ck_assert_msg(*z == 'Z', "no zone: %s", s);
    }
    return ((int64_t)timegm(&tm) -
            (sign == '-' ? -1 : 1) * (sign == 'Z' ? 0 : oh * 3600 + om * 60)) *
               1000 +
           ms;
}

/* Waits for n requests acknowledged in all. */
static void
wait_acked(size_t n)
{
    int ok;

    WAIT_FOR(ok, his_count(200) >= n, WAIT_MS);
    ck_assert_msg(ok, "the HIS acknowledged %zu requests, want %zu",
                  his_count(200), n);
}

/* ----- Signing ---------------------------------------------------------- */

/* Every request verifies with the HIS's secret, names itself by the same
 * id in webhook-id and X-Qgate-Delivery, is attempt 1 and says who sent
 * it; a body altered by one byte no longer verifies, nor does another
 * key. */
START_TEST(test_his_verifies_every_request)
{
    const char *opts[] = {"--upstream", NULL, "--upstream-secret-file", secrets,
                          NULL};
    char *body;
    size_t i;

    write_secrets(secrets, key1, NULL);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 5; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(5, WAIT_MS);
    gate_stop();

    ck_assert_uint_eq(his.n, 5);
    for (i = 0; i < his.n; i++) {
        his_req *q = &his.reqs[i];

        ck_assert_msg(verify_req(key1, q), "request %zu does not verify: %s", i,
                      q->wh_sig);
        ck_assert_msg(strncmp(q->wh_sig, "v1,", 3) == 0 &&
                          strchr(q->wh_sig, ' ') == NULL,
                      "one secret, one signature: %s", q->wh_sig);
        ck_assert_msg(!verify_req(key2, q), "verifies with a key not given");
        ck_assert_str_eq(q->wh_id, q->delivery);
        ck_assert_str_eq(q->attempt, "1");
        ck_assert_msg(strncmp(q->agent, "qgate/", 6) == 0 &&
                          strcmp(q->agent + 6, qg_version()) == 0,
                      "User-Agent \"%s\"", q->agent);
        /* one byte changed, anywhere: the signature no longer holds */
        body = q->body;
        body[q->len / 2] ^= 1;
        ck_assert_msg(!verify_req(key1, q), "an altered body verifies");
        body[q->len / 2] ^= 1;
        ck_assert(verify_req(key1, q));
        /* nor does another id */
        q->wh_id[strlen(q->wh_id) - 1] ^= 1;
        ck_assert(!verify_req(key1, q));
    }
}
END_TEST

/* Two secrets in the file: two signatures, each verifiable with its own
 * key (the HIS's rotation).  SIGHUP reads the file again: with the old
 * line removed, only the new key signs, and the log says what reloaded. */
START_TEST(test_his_two_secrets_and_reload)
{
    const char *opts[] = {"--upstream", NULL, "--upstream-secret-file", secrets,
                          NULL};
    char *text;
    his_req *q;
    size_t i;
    FILE *f;

    write_secrets(secrets, key1, key2);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    post_accepted(walk_in_files[0]);
    wait_acked(1);

    q = &his.reqs[0];
    ck_assert_msg(strchr(q->wh_sig, ' ') != NULL,
                  "two secrets, one "
                  "signature: %s",
                  q->wh_sig);
    ck_assert(verify_req(key1, q));
    ck_assert(verify_req(key2, q));

    write_secrets(secrets, key2, NULL);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_accepted(walk_in_files[1]);
    wait_acked(2);
    q = &his.reqs[1];
    ck_assert(verify_req(key2, q));
    ck_assert_msg(!verify_req(key1, q), "the removed secret still signs");

    /* a broken file is refused, and the running secret stays */
    f = fopen(secrets, "w");
    ck_assert_ptr_nonnull(f);
    fputs("whsec_not-base64!\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_accepted(walk_in_files[2]);
    wait_acked(3);
    ck_assert(verify_req(key2, &his.reqs[2]));
    gate_stop();

    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "\"upstream_secret\":\"") != NULL,
                  "the reload line names no upstream secret: %s", text);
    ck_assert_msg(strstr(text, "keeping the running HIS secrets") != NULL &&
                      strstr(text, "his-secrets:1:") != NULL,
                  "the failed reload does not name file and line: %s", text);
    free(text);
    for (i = 0; i < his.n; i++)
        ck_assert_str_eq(his.reqs[i].wh_id, his.reqs[i].delivery);
}
END_TEST

/* A secret file that does not parse stops the gate at start, naming the
 * file, the line and the fault; with no secret file the gate warns and
 * sends no signature. */
START_TEST(test_his_secret_refused_or_missing)
{
    const char *bad[] = {"--upstream", NULL, "--upstream-secret-file", secrets,
                         NULL};
    const char *none[] = {"--upstream", NULL, NULL};
    char *text;
    int status;
    FILE *f;

    ck_assert_ptr_nonnull(f = fopen(secrets, "w"));
    fputs("# comment\n\nwhsec_c2hvcnQ=\n", f);
    fclose(f);
    his_start(HIS_ACCEPT);
    bad[1] = none[1] = his.url;
    gate_spawn(bad, 0);
    status = gate_wait_exit(WAIT_MS);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "a gate with a bad secret file started");
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, secrets) != NULL &&
                      strstr(text, "secrets:3: 5 bytes"),
                  "the refusal does not name file and line: %s", text);
    free(text);

    gate_start(none);
    post_accepted(walk_in_files[0]);
    wait_acked(1);
    gate_stop();
    ck_assert_str_eq(his.reqs[0].wh_sig, "");
    ck_assert_str_eq(his.reqs[0].wh_id, his.reqs[0].delivery);
    ck_assert(his.reqs[0].wh_ts[0] != '\0');
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "\"level\":\"warn\"") &&
                      strstr(text, "no --upstream-secret-file"),
                  "no warning without a secret: %s", text);
    free(text);
}
END_TEST

/* ----- The body ---------------------------------------------------------- */

/* The qgate body, parsed: every field says what Chup sent and what qgate
 * decided, and "chup" holds Chup's delivery byte for byte. */
START_TEST(test_his_qgate_body_fields)
{
    row rows[32];
    size_t n = read_expect("visits/EXPECT", rows, COUNT(rows)), i, len;
    const char *opts[] = {"--upstream", NULL, NULL};
    char store[40], own[40], want[160], *raw, *tail;
    json_object *o, *d, *t, *sent, *payload, *sdata, *v;
    uint64_t tk;
    qg_store *st;

    ck_assert_int_ge(n, 5);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 5; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(5, WAIT_MS);
    gate_stop();
    st = store_ro();
    tk = ticket_of(st, 30001);
    ck_assert_int_eq(qg_store_id(st, own), 0);
    qg_store_close(st);

    for (i = 0; i < 5; i++) {
        his_req *q = &his.reqs[i];

        store_of(q, store);
        ck_assert_str_eq(store, own);
        ck_assert_str_eq(q->type, "application/json");
        raw = tu_fixture(walk_in_files[i], &len);
        sent = tu_json(raw);
        payload = tu_get(sent, "payload");
        sdata = tu_get(payload, "data");
        o = tu_json(q->body);
        ck_assert_str_eq(json_object_get_string(tu_get(o, "type")),
                         "ticket.step");
        d = tu_get(o, "data");
        ck_assert_str_eq(json_object_get_string(tu_get(d, "delivery_id")),
                         q->delivery);
        ck_assert_str_eq(json_object_get_string(tu_get(d, "store_id")), store);
        t = tu_get(d, "ticket");
        ck_assert_uint_eq((uint64_t)json_object_get_int64(tu_get(t, "number")),
                          tk);
        ck_assert_int_eq(json_object_get_int64(tu_get(t, "live_queue_id")),
                         json_object_get_int64(tu_get(sdata, "id")));
        ck_assert(json_object_get_type(tu_get(t, "appointment_id")) ==
                  json_type_null);
        ck_assert_int_eq(json_object_get_int64(tu_get(d, "seq")),
                         (int64_t)i + 1);
        ck_assert_str_eq(json_object_get_string(tu_get(d, "event")),
                         rows[i].col[2]);
        ck_assert_str_eq(json_object_get_string(tu_get(d, "from")),
                         rows[i].col[3]);
        ck_assert_str_eq(json_object_get_string(tu_get(d, "to")),
                         rows[i].col[4]);
        ck_assert_int_eq(json_object_get_boolean(tu_get(d, "late")), 0);
        ck_assert_int_eq(json_object_get_int64(tu_get(d, "position")),
                         (int64_t)i + 1);
        v = tu_get(sdata, "service_id");
        ck_assert_int_eq(json_object_get_int64(tu_get(d, "service_id")),
                         json_object_get_int64(v));
        ck_assert_int_eq(json_object_get_int64(tu_get(d, "staff_id")),
                         json_object_get_int64(tu_get(sdata, "staff_id")));
        /* the event's time: the same instant, in Chup's offset in
         * event_time, in UTC in timestamp */
        snprintf(want, sizeof(want), "%s",
                 json_object_get_string(tu_get(payload, "timestamp")));
        ck_assert_int_eq(
            iso_ms(json_object_get_string(tu_get(d, "event_time"))),
            iso_ms(want));
        ck_assert_int_eq(iso_ms(json_object_get_string(tu_get(o, "timestamp"))),
                         iso_ms(want));
        ck_assert_msg(strstr(json_object_get_string(tu_get(d, "event_time")),
                             want + strlen(want) - 6) != NULL,
                      "event_time %s is not in Chup's offset (%s)",
                      json_object_get_string(tu_get(d, "event_time")), want);
        ck_assert_msg(json_object_get_string(tu_get(o, "timestamp"))[23] == 'Z',
                      "timestamp not in UTC: %s",
                      json_object_get_string(tu_get(o, "timestamp")));
        /* "chup": what Chup sent, parsed, and byte for byte */
        ck_assert(json_object_equal(tu_get(d, "chup"), sent));
        tail = strstr(q->body, "\"chup\":");
        ck_assert_ptr_nonnull(tail);
        tail += 7;
        ck_assert_msg(strlen(tail) == len + 2 && memcmp(tail, raw, len) == 0 &&
                          strcmp(tail + len, "}}") == 0,
                      "step %zu: \"chup\" is not the delivery's bytes", i + 1);
        json_object_put(o);
        json_object_put(sent);
        free(raw);
    }
}
END_TEST

/* With --upstream-format chup the HIS gets the bytes Chup sent, signed
 * all the same. */
START_TEST(test_his_chup_format_raw)
{
    const char *opts[] = {"--upstream",
                          NULL,
                          "--upstream-format",
                          "chup",
                          "--upstream-secret-file",
                          secrets,
                          NULL};
    const char *badfmt[] = {"--upstream-format", "xml", NULL};
    char *raw, *text;
    size_t len;
    int status;

    gate_spawn(badfmt, 0);
    status = gate_wait_exit(WAIT_MS);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    text = read_from(logpath, 0);
    ck_assert_msg(strstr(text, "--upstream-format \"xml\""), "%s", text);
    free(text);

    write_secrets(secrets, key1, NULL);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    post_accepted(walk_in_files[0]);
    wait_delivered(1, WAIT_MS);
    gate_stop();
    raw = tu_fixture(walk_in_files[0], &len);
    ck_assert(his.reqs[0].len == len &&
              memcmp(his.reqs[0].body, raw, len) == 0);
    ck_assert(verify_req(key1, &his.reqs[0]));
    free(raw);
}
END_TEST

/* ----- Delivery ids ------------------------------------------------------ */

/* Two stores send the same ticket numbers and seqs to one HIS: no id is
 * used twice.  A restarted gate keeps its store's id. */
START_TEST(test_his_two_stores_distinct_ids)
{
    const char *opts[] = {"--upstream", NULL, NULL};
    char first[96], a[40], b[40], c[40];
    size_t i, j;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    snprintf(first, sizeof(first), "%s", db);
    gate_start(opts);
    for (i = 0; i < 3; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(3, WAIT_MS);
    gate_stop();

    snprintf(db, sizeof(db), "%s/db2", work);
    gate_start(opts);
    for (i = 0; i < 3; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(6, WAIT_MS);
    gate_stop();

    ck_assert_uint_eq(his.n, 6);
    store_of(&his.reqs[0], a);
    store_of(&his.reqs[3], b);
    ck_assert_str_ne(a, b);
    for (i = 0; i < 3; i++) {
        /* the same ticket and seq in both stores ... */
        ck_assert_str_eq(his.reqs[i].ticket, his.reqs[i + 3].ticket);
        ck_assert_str_eq(his.reqs[i].seq, his.reqs[i + 3].seq);
        ck_assert_str_eq(his.reqs[i].dkey, his.reqs[i + 3].dkey);
    }
    /* ... and no delivery id twice */
    for (i = 0; i < his.n; i++)
        for (j = i + 1; j < his.n; j++)
            ck_assert_str_ne(his.reqs[i].delivery, his.reqs[j].delivery);

    /* the first store again, in a new gate: its id is the same */
    snprintf(db, sizeof(db), "%s", first);
    gate_start(opts);
    post_accepted(walk_in_files[3]);
    wait_delivered(7, WAIT_MS);
    gate_stop();
    store_of(&his.reqs[6], c);
    ck_assert_str_eq(c, a);
    ck_assert_str_eq(his.reqs[6].seq, "4");
}
END_TEST

/* A step the HIS refuses is tried again under the same id, with
 * X-Qgate-Attempt counting up and a fresh timestamp and signature. */
START_TEST(test_his_retries_same_id_fresh_signature)
{
    const char *opts[] = {"--upstream",
                          NULL,
                          "--upstream-secret-file",
                          secrets,
                          "--forward-timeout",
                          "1",
                          NULL};
    size_t i, n;
    int ok;

    write_secrets(secrets, key1, NULL);
    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    post_accepted(walk_in_files[0]);
    /* backoff 0.5 s, 1 s, 2 s...: four attempts span over a second */
    WAIT_FOR(ok, his_count(500) >= 4, 8000);
    ck_assert_msg(ok, "%zu attempts", his_count(500));
    atomic_store(&his.mode, HIS_ACCEPT);
    wait_acked(1);
    gate_stop();

    n = his.n;
    ck_assert_uint_ge(n, 5);
    for (i = 0; i < n; i++) {
        his_req *q = &his.reqs[i];
        char want[24];

        snprintf(want, sizeof(want), "%zu", i + 1);
        ck_assert_str_eq(q->attempt, want);
        ck_assert_str_eq(q->wh_id, his.reqs[0].wh_id);
        ck_assert_str_eq(q->delivery, his.reqs[0].delivery);
        ck_assert_msg(verify_req(key1, q), "attempt %zu does not verify",
                      i + 1);
        if (i > 0) {
            ck_assert_int_ge(atoll(q->wh_ts), atoll(his.reqs[i - 1].wh_ts));
            if (strcmp(q->wh_ts, his.reqs[i - 1].wh_ts) != 0)
                ck_assert_str_ne(q->wh_sig, his.reqs[i - 1].wh_sig);
        }
    }
    ck_assert_int_gt(atoll(his.reqs[n - 1].wh_ts), atoll(his.reqs[0].wh_ts));
    ck_assert_int_eq(his.reqs[n - 1].status, 200);
}
END_TEST

/* ----- Resend ------------------------------------------------------------ */

/* The requests from index `from` on for live-queue ticket t (by its
 * X-Qgate-Ticket), in the order the HIS got them, must be steps 1..n with
 * the ids of the first delivery of each. */
static void
expect_resent(size_t from, const char *ticket, size_t n)
{
    size_t i, k = 0, j;

    for (i = from; i < his.n; i++) {
        his_req *q = &his.reqs[i];
        char seq[24];

        if (strcmp(q->ticket, ticket) != 0)
            continue;
        snprintf(seq, sizeof(seq), "%zu", k + 1);
        ck_assert_msg(strcmp(q->seq, seq) == 0,
                      "ticket %s resent step %s, want %s", ticket, q->seq, seq);
        for (j = 0; j < from; j++)
            if (strcmp(his.reqs[j].delivery, q->delivery) == 0)
                break;
        ck_assert_msg(j < from, "resent under a new id: %s", q->delivery);
        k++;
    }
    ck_assert_uint_eq(k, n);
}

/* `qgate outbox --resend` with a running gate: by ticket, the HIS gets
 * that ticket's steps again in order, with the same ids; by time range,
 * the steps qgate received in it. */
START_TEST(test_his_resend_by_ticket_and_range)
{
    static const char *const noshow[] = {
        NO_SHOW "01-join-live-queue.json", NO_SHOW "02-no-show.json",
        NO_SHOW "03-no-show-canceled-by-system.json"};
    const char *opts[] = {"--upstream", NULL, NULL};
    const char *by_ticket[] = {"outbox", "--resend", "--ticket", "30001",
                               "--db",   db,         NULL};
    const char *since[] = {"outbox", "--resend", "--since", NULL,
                           "--db",   db,         "--json",  NULL};
    const char *before[] = {"outbox",  "--resend", "--since", NULL,
                            "--until", NULL,       "--db",    db,
                            "--json",  NULL};
    const char *none[] = {"outbox", "--resend", "--db", db, NULL};
    char out[512], when[40], early[40], wt[24], nt[24];
    time_t split;
    struct tm tm;
    size_t i, mark;
    qg_store *st;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 5; i++)
        post_accepted(walk_in_files[i]);
    /* the no-show ticket is received in the next whole second on, by the
     * clock the gate stamps with: time() reads a coarser one, which can
     * still say the last second a few ms into the next */
    split = (time_t)(qg_time_now_us() / 1000000) + 1;
    while (qg_time_now_us() < (int64_t)split * 1000000)
        sleep_ms(20);
    for (i = 0; i < 3; i++)
        post_accepted(noshow[i]);
    wait_delivered(8, WAIT_MS);
    st = store_ro();
    snprintf(wt, sizeof(wt), "%" PRIu64, ticket_of(st, 30001));
    snprintf(nt, sizeof(nt), "%" PRIu64, ticket_of(st, 30003));
    qg_store_close(st);

    ck_assert_int_ne(run_cli(none, out, sizeof(out)), 0);

    mark = his.n;
    ck_assert_int_eq(run_cli(by_ticket, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "5 steps queued") != NULL, "%s", out);
    wait_delivered(13, WAIT_MS);
    expect_resent(mark, wt, 5);
    expect_resent(mark, nt, 0);

    gmtime_r(&split, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    split -= 3600;
    gmtime_r(&split, &tm);
    strftime(early, sizeof(early), "%Y-%m-%dT%H:%M:%SZ", &tm);
    mark = his.n;
    since[3] = when;
    ck_assert_int_eq(run_cli(since, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "{\"queued\":3,\"waiting\":0}") != NULL, "%s",
                  out);
    wait_delivered(16, WAIT_MS);
    expect_resent(mark, nt, 3);
    expect_resent(mark, wt, 0);

    mark = his.n;
    before[3] = early;
    before[5] = when;
    ck_assert_int_eq(run_cli(before, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "{\"queued\":5,\"waiting\":0}") != NULL, "%s",
                  out);
    wait_delivered(21, WAIT_MS);
    expect_resent(mark, wt, 5);
    expect_resent(mark, nt, 0);
    gate_stop();
}
END_TEST

static Suite *
his_suite(void)
{
    Suite *s = suite_create("gate_his");
    TCase *sign = tcase_create("Signing"), *body = tcase_create("Body"),
          *ids = tcase_create("Ids"), *resend = tcase_create("Resend");

    tcase_add_checked_fixture(sign, setup_his, teardown);
    tcase_set_timeout(sign, 60);
    tcase_add_test(sign, test_his_verifies_every_request);
    tcase_add_test(sign, test_his_two_secrets_and_reload);
    tcase_add_test(sign, test_his_secret_refused_or_missing);
    suite_add_tcase(s, sign);
    tcase_add_checked_fixture(body, setup_his, teardown);
    tcase_set_timeout(body, 60);
    tcase_add_test(body, test_his_qgate_body_fields);
    tcase_add_test(body, test_his_chup_format_raw);
    suite_add_tcase(s, body);
    tcase_add_checked_fixture(ids, setup_his, teardown);
    tcase_set_timeout(ids, 60);
    tcase_add_test(ids, test_his_two_stores_distinct_ids);
    tcase_add_test(ids, test_his_retries_same_id_fresh_signature);
    suite_add_tcase(s, ids);
    tcase_add_checked_fixture(resend, setup_his, teardown);
    tcase_set_timeout(resend, 90);
    tcase_add_test(resend, test_his_resend_by_ticket_and_range);
    suite_add_tcase(s, resend);
    return s;
}

int
main(void)
{
    return tu_run(his_suite());
}
