/*
 * check_engine.c - whole deliveries through the engine, driven by the
 * fixture tables (the EXPECT file of each fixtures folder).
 */
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "testutil.h"

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
    qg_store_close(st);
    tu_store_remove();
}

/* Reads the rows of fixtures/<table>, skipping comments. */
static int
read_table(const char *table, char rows[][6][96], int max)
{
    size_t len;
    char *text = tu_fixture(table, &len), *line, *save = NULL;
    int n = 0;

    for (line = strtok_r(text, "\n", &save); line && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        memset(rows[n], 0, sizeof(rows[n]));
        sscanf(line, "%95s %95s %95s %95s %95s %95s", rows[n][0], rows[n][1],
               rows[n][2], rows[n][3], rows[n][4], rows[n][5]);
        n++;
    }
    free(text);
    return n;
}

static void
assert_names(const qg_result *res, const char *where, const char *event,
             const char *from, const char *to)
{
    ck_assert_msg(strcmp(qg_event_name(res->event), event) == 0,
                  "%s: event %s, expected %s (%s)", where,
                  qg_event_name(res->event), event, res->detail);
    ck_assert_msg(strcmp(qg_state_name(res->from), from) == 0,
                  "%s: from %s, expected %s", where, qg_state_name(res->from),
                  from);
    if (to)
        ck_assert_msg(strcmp(qg_state_name(res->to), to) == 0,
                      "%s: to %s, expected %s", where, qg_state_name(res->to),
                      to);
}

/* visits/EXPECT: every step of every legal visit, in order. */
START_TEST(test_engine_visits_accepted_step_by_step)
{
    static char rows[64][6][96];
    int n = read_table("visits/EXPECT", rows, 64), i;

    ck_assert_int_ge(n, 15);
    for (i = 0; i < n; i++) {
        qg_result res = tu_apply(eng, st, rows[i][0]);

        ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s %s: %s", rows[i][0],
                      qg_verdict_name(res.verdict), qg_reason_name(res.reason),
                      res.detail);
        assert_names(&res, rows[i][0], rows[i][2], rows[i][3], rows[i][4]);
        ck_assert_uint_eq(res.allowed, qg_machine_allowed(res.to));
    }
}
END_TEST

/* Every documented Chup flow, both no-show variants included, has a
 * delivery among the visits. */
START_TEST(test_engine_fixtures_cover_documented_flows)
{
    static const char *const flows[] = {"join-live-queue",
                                        "appointment",
                                        "alert",
                                        "serving",
                                        "served",
                                        "no-show",
                                        "no-show-canceled-by-system",
                                        "no-show-back-to-live-queue",
                                        "move",
                                        "cancel-delete",
                                        "reschedule",
                                        "pharmacy-received",
                                        "pharmacy-dispensed",
                                        "billing-paid",
                                        "end-visit"};
    static char rows[64][6][96];
    int n = read_table("visits/EXPECT", rows, 64), i;
    size_t f;

    for (f = 0; f < sizeof(flows) / sizeof(*flows); f++) {
        char want[64];
        int found = 0;

        snprintf(want, sizeof(want), "-%s.json", flows[f]);
        for (i = 0; i < n && !found; i++) {
            const char *slash = strrchr(rows[i][0], '/');

            found = slash && strlen(slash) > 3 && strcmp(slash + 3, want) == 0;
        }
        ck_assert_msg(found, "no fixture for flow %s", flows[f]);
    }
}
END_TEST

static int
json_only(const struct dirent *e)
{
    size_t n = strlen(e->d_name);

    return n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

/* illegal/EXPECT: a legal prefix, then one refused step. */
START_TEST(test_engine_illegal_sequences_refused)
{
    static char rows[32][6][96];
    int n = read_table("illegal/EXPECT", rows, 32), i, k, m;

    ck_assert_int_ge(n, 6);
    for (i = 0; i < n; i++) {
        char dir[256], path[512], *slash;
        struct dirent **files;
        qg_result res;

        snprintf(dir, sizeof(dir), "%.200s", rows[i][0]);
        slash = strrchr(dir, '/');
        *slash = '\0';
        snprintf(path, sizeof(path), "%s/%s", QG_FIXTURES, dir);
        m = scandir(path, &files, json_only, alphasort);
        ck_assert_int_gt(m, 0);
        for (k = 0; k < m; k++) {
            snprintf(path, sizeof(path), "%s/%s", dir, files[k]->d_name);
            res = tu_apply(eng, st, path);
            if (k < m - 1)
                ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s", path,
                              res.detail);
            free(files[k]);
        }
        free(files);
        ck_assert_str_eq(path, rows[i][0]);
        ck_assert_str_eq(qg_verdict_name(res.verdict), rows[i][1]);
        ck_assert_msg(strcmp(qg_reason_name(res.reason), rows[i][2]) == 0,
                      "%s: %s, expected %s (%s)", path,
                      qg_reason_name(res.reason), rows[i][2], res.detail);
        assert_names(&res, path, rows[i][3], rows[i][4], rows[i][4]);
        ck_assert_uint_gt(res.rejection, 0);
        ck_assert_uint_gt(strlen(res.detail), 10);
    }
}
END_TEST

/* malformed/EXPECT: each hostile body gets its verdict and code, and no
 * ticket is created for it. */
START_TEST(test_engine_malformed_bodies_refused)
{
    static char rows[128][6][96];
    int n = read_table("malformed/EXPECT", rows, 128), i;
    qg_ticket t;

    ck_assert_int_ge(n, 30);
    for (i = 0; i < n; i++) {
        qg_result res = tu_apply(eng, st, rows[i][0]);

        ck_assert_msg(strcmp(qg_verdict_name(res.verdict), rows[i][1]) == 0 &&
                          strcmp(qg_reason_name(res.reason), rows[i][2]) == 0,
                      "%s: %s %s, expected %s %s (%s)", rows[i][0],
                      qg_verdict_name(res.verdict), qg_reason_name(res.reason),
                      rows[i][1], rows[i][2], res.detail);
        ck_assert_msg(res.detail[0] != '\0', "%s: no detail", rows[i][0]);
        /* text that is not JSON is named by its place, where it has one */
        if (res.reason == QG_R_BAD_JSON &&
            strncmp(res.detail, "the body is ", 12) != 0)
            ck_assert_msg(strstr(res.detail, " at byte ") != NULL, "%s: %s",
                          rows[i][0], res.detail);
        ck_assert_int_eq(res.ticket, 0);
        /* refused deliveries are logged; ignored ones are not */
        ck_assert_int_eq(res.rejection > 0, res.verdict != QG_IGNORED);
    }
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 50001, &t),
                     QG_NOTFOUND);
}
END_TEST

START_TEST(test_engine_redelivery_is_duplicate)
{
    qg_result a = tu_apply(eng, st, "visits/walk-in/01-join-live-queue.json");
    qg_result b = tu_apply(eng, st, "visits/walk-in/01-join-live-queue.json");
    qg_ticket t;

    ck_assert_int_eq(a.verdict, QG_ACCEPTED);
    ck_assert_int_eq(b.verdict, QG_DUPLICATE);
    ck_assert_int_eq(b.reason, QG_R_REDELIVERY);
    ck_assert_uint_eq(b.ticket, a.ticket);
    ck_assert_uint_eq(b.seq, 1);
    ck_assert_int_eq(b.to, QG_ST_QUEUED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_uint_eq(t.rejections, 0);
}
END_TEST

/* The published examples cannot be verified (Chup's secret is not
 * published); with verification skipped they decode and apply. */
START_TEST(test_engine_published_examples_apply_unverified)
{
    qg_result res;

    qg_engine_require_signature(eng, 1);
    res = tu_apply(eng, st, "chup/01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
    ck_assert_int_eq(res.reason, QG_R_BAD_SIGNATURE);

    qg_engine_require_signature(eng, 0);
    res = tu_apply(eng, st, "chup/01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.event, QG_EV_JOIN); /* state 1, In Queue */
    ck_assert_int_eq(res.live_queue_id, 19738);
    ck_assert_int_eq(res.appointment_id, 9994);
    ck_assert_str_eq(res.chup_event, "live_queue_created");

    res = tu_apply(eng, st, "chup/00-webhook-overview.json");
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_int_eq(res.event, QG_EV_ARRIVE); /* state {ARRIVED, 3} */
    ck_assert_int_eq(res.live_queue_id, 19242);
    ck_assert_int_eq(res.to, QG_ST_ARRIVED);
}
END_TEST

START_TEST(test_engine_no_secret_is_unauthenticated)
{
    qg_engine *bare;
    qg_result res;
    size_t len;
    char *body = tu_fixture("visits/walk-in/01-join-live-queue.json", &len);

    ck_assert_int_eq(qg_engine_new(&bare), 0);
    ck_assert_int_eq(qg_engine_apply(bare, st, body, len, 0, &res), 0);
    ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(res.detail, "no secret"));
    qg_engine_free(bare);
    free(body);
}
END_TEST

START_TEST(test_engine_wrong_secret_is_unauthenticated)
{
    qg_result res;

    ck_assert_int_eq(qg_engine_set_secret(eng, "another-secret", 14), 0);
    res = tu_apply(eng, st, "visits/walk-in/01-join-live-queue.json");
    ck_assert_int_eq(res.verdict, QG_UNAUTHENTICATED);
    ck_assert_int_eq(res.reason, QG_R_BAD_SIGNATURE);
    ck_assert_int_eq(res.ticket, 0);
}
END_TEST

/* The secret a fixture is signed with, and another. */
#define SECRET     "qgate-development-secret"
#define OLD_SECRET "another-secret"

/* Prepares fixture rel with eng and gives the index of the secret that
 * signed it and its verdict when applied as a dry run. */
static int
secret_of(qg_engine *e, const char *rel, qg_verdict *v)
{
    qg_prepared *p;
    qg_result res;
    size_t len;
    char *body = tu_fixture(rel, &len);
    int idx;

    ck_assert_int_eq(qg_engine_prepare(e, body, len, &p), 0);
    idx = qg_prepared_secret(p);
    qg_prepared_free(p);
    ck_assert_int_eq(qg_engine_apply(e, st, body, len, QG_DRY_RUN, &res), 0);
    *v = res.verdict;
    free(body);
    return idx;
}

/* During a rotation both secrets pass, and the index says which one
 * signed: the fixtures' secret as the second of two, then as the first;
 * with neither of them, the delivery is refused and no index is given. */
START_TEST(test_engine_two_secrets_either_passes)
{
    static const char *const rel = "visits/walk-in/01-join-live-queue.json";
    const void *keys[2];
    size_t lens[2];
    qg_verdict v;

    keys[0] = OLD_SECRET, lens[0] = strlen(OLD_SECRET);
    keys[1] = SECRET, lens[1] = strlen(SECRET);
    ck_assert_int_eq(qg_engine_set_secrets(eng, keys, lens, 2), 0);
    ck_assert_uint_eq(qg_engine_secret_count(eng), 2);
    ck_assert_int_eq(secret_of(eng, rel, &v), 1);
    ck_assert_int_eq(v, QG_ACCEPTED);

    keys[0] = SECRET, lens[0] = strlen(SECRET);
    keys[1] = OLD_SECRET, lens[1] = strlen(OLD_SECRET);
    ck_assert_int_eq(qg_engine_set_secrets(eng, keys, lens, 2), 0);
    ck_assert_int_eq(secret_of(eng, rel, &v), 0);
    ck_assert_int_eq(v, QG_ACCEPTED);

    keys[0] = OLD_SECRET, lens[0] = strlen(OLD_SECRET);
    keys[1] = "yet-another", lens[1] = 11;
    ck_assert_int_eq(qg_engine_set_secrets(eng, keys, lens, 2), 0);
    ck_assert_int_eq(secret_of(eng, rel, &v), -1);
    ck_assert_int_eq(v, QG_UNAUTHENTICATED);
    ck_assert_int_eq(qg_prepared_secret(NULL), -1);
}
END_TEST

/* Writes text to a secret file of the test's own, in place of the one
 * written before (secret_file(NULL) removes it). */
static const char *
secret_file(const char *text)
{
    static char path[64];
    FILE *f;
    int fd;

    if (path[0])
        unlink(path);
    path[0] = '\0';
    if (text == NULL)
        return NULL;
    snprintf(path, sizeof(path), "/tmp/qgate-secret-XXXXXX");
    ck_assert_int_ge(fd = mkstemp(path), 0);
    ck_assert_ptr_nonnull(f = fdopen(fd, "wb"));
    fputs(text, f);
    fclose(f);
    return path;
}

/* A secret file of several lines is several secrets, by line, blank
 * lines skipped; one line reads as it always did; refusals name the file
 * and the line. */
START_TEST(test_engine_secret_file_lines)
{
    static const char *const rel = "visits/walk-in/01-join-live-queue.json";
    char err[256], big[4200];
    const char *path;
    qg_verdict v;

    path = secret_file(OLD_SECRET "\r\n\n" SECRET "\n");
    ck_assert_int_eq(qg_engine_load_secret(eng, path, err, sizeof(err)), 0);
    ck_assert_uint_eq(qg_engine_secret_count(eng), 2);
    ck_assert_int_eq(secret_of(eng, rel, &v), 1);
    ck_assert_int_eq(v, QG_ACCEPTED);

    path = secret_file(SECRET);
    ck_assert_int_eq(qg_engine_load_secret(eng, path, err, sizeof(err)), 0);
    ck_assert_uint_eq(qg_engine_secret_count(eng), 1);
    ck_assert_int_eq(secret_of(eng, rel, &v), 0);

    path = secret_file("\n\n");
    ck_assert_int_eq(qg_engine_load_secret(eng, path, err, sizeof(err)),
                     QG_EINVAL);
    ck_assert_msg(strstr(err, path) && strstr(err, "empty"), "%s", err);
    ck_assert_uint_eq(qg_engine_secret_count(eng), 1); /* kept */

    memset(big, 'k', 4097);
    strcpy(big + 4097, "\n");
    path = secret_file(big);
    ck_assert_int_eq(qg_engine_load_secret(eng, path, err, sizeof(err)),
                     QG_ETOOBIG);
    ck_assert_msg(strstr(err, path) && strstr(err, "line 1:"), "%s", err);
    path = secret_file("a\nb\nc\nd\ne\nf\ng\nh\ni\n");
    ck_assert_int_eq(qg_engine_load_secret(eng, path, err, sizeof(err)),
                     QG_ETOOBIG);
    ck_assert_msg(strstr(err, "line 9: more than 8 secrets"), "%s", err);
    ck_assert_int_eq(secret_of(eng, rel, &v), 0); /* the earlier one kept */
    secret_file(NULL);
}
END_TEST

/*
 * qg_prepared_unsigned(): a body refused as unauthenticated, or as
 * malformed before its signature could be verified, is unsigned; a
 * signed body is not, whatever its verdict.  The oracle for "before the
 * signature": an engine with another secret gives the same malformed
 * verdict.  Without signature checks, every malformed body is unsigned.
 */
START_TEST(test_engine_prepared_unsigned)
{
    static char rows[64][6][96];
    int n = read_table("malformed/EXPECT", rows, 64), i, want;
    qg_engine *other;
    qg_prepared *p;
    qg_result res;
    size_t len;
    char *body;

    ck_assert_int_eq(qg_engine_new(&other), 0);
    ck_assert_int_eq(qg_engine_set_secret(other, "another-secret", 14), 0);
    ck_assert_int_eq(qg_prepared_unsigned(NULL), 0);
    for (i = 0; i < n; i++) {
        body = tu_fixture(rows[i][0], &len);
        ck_assert_int_eq(
            qg_engine_apply(other, st, body, len, QG_DRY_RUN, &res), 0);
        want = strcmp(rows[i][1], "unauthenticated") == 0 ||
               (strcmp(rows[i][1], "malformed") == 0 &&
                res.verdict == QG_MALFORMED);
        ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p), 0);
        ck_assert_msg(qg_prepared_unsigned(p) == want, "%s: unsigned %d",
                      rows[i][0], !want);
        qg_prepared_free(p);
        qg_engine_require_signature(eng, 0);
        ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p), 0);
        ck_assert_int_eq(qg_prepared_unsigned(p),
                         strcmp(rows[i][1], "malformed") == 0);
        qg_prepared_free(p);
        qg_engine_require_signature(eng, 1);
        free(body);
    }
    body = tu_fixture("visits/walk-in/01-join-live-queue.json", &len);
    ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p), 0);
    ck_assert_int_eq(qg_prepared_unsigned(p), 0);
    qg_prepared_free(p);
    free(body);
    qg_engine_free(other);
}
END_TEST

START_TEST(test_engine_bad_arguments)
{
    qg_result res;

    ck_assert_int_eq(qg_engine_apply(NULL, st, "{}", 2, 0, &res), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply(eng, NULL, "{}", 2, 0, &res), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply(eng, st, NULL, 2, 0, &res), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply(eng, st, "{}", 2, 0x80, &res), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply(eng, st, "{}", 2, 0, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_secret(eng, "", 0), QG_EINVAL);
    {
        const void *keys[QG_SECRETS_MAX + 1] = {"a", NULL};
        size_t lens[QG_SECRETS_MAX + 1] = {1, 1};

        ck_assert_int_eq(qg_engine_set_secrets(eng, keys, lens, 2), QG_EINVAL);
        ck_assert_int_eq(qg_engine_set_secrets(eng, keys, lens, 0), QG_EINVAL);
        ck_assert_int_eq(
            qg_engine_set_secrets(eng, keys, lens, QG_SECRETS_MAX + 1),
            QG_EINVAL);
        ck_assert_uint_eq(qg_engine_secret_count(eng), 1);
    }
}
END_TEST

/* The same-state rules of docs/mapping.md, step by step on one ticket:
 * what a live_queue_updated means depends on the state and service the
 * ticket is in. */
START_TEST(test_engine_updates_by_state_and_service)
{
    static const struct {
        const char *event, *state;
        int service;
        qg_event want;
        qg_state to;
    } steps[] = {
        {"live_queue_created", "In Queue", 220, QG_EV_JOIN, QG_ST_QUEUED},
        {"live_queue_updated", "In Queue", 220, QG_EV_UPDATE, QG_ST_QUEUED},
        {"live_queue_updated", "Arrived", 220, QG_EV_ARRIVE, QG_ST_ARRIVED},
        {"live_queue_updated", "In Queue", 221, QG_EV_MOVE, QG_ST_MOVED},
        {"live_queue_updated", "In Queue", 221, QG_EV_UPDATE, QG_ST_MOVED},
        {"live_queue_updated", "Arrived", 221, QG_EV_ARRIVE, QG_ST_ARRIVED},
        {"live_queue_updated", "Arrived", 222, QG_EV_MOVE, QG_ST_MOVED},
        {"live_queue_updated", "Serving", 222, QG_EV_SERVE, QG_ST_SERVING},
        {"live_queue_updated", "Serving", 223, QG_EV_MOVE, QG_ST_MOVED},
    };
    char body[512];
    qg_result res;
    size_t i;

    qg_engine_require_signature(eng, 0);
    for (i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
        snprintf(body, sizeof(body),
                 "{\"payload\":{\"event\":\"%s\",\"timestamp\":"
                 "\"2024-03-05T10:%02zu:00+08:00\",\"data\":{\"id\":61001,"
                 "\"state_name\":\"%s\",\"service_id\":%d}}}",
                 steps[i].event, i, steps[i].state, steps[i].service);
        ck_assert_int_eq(qg_engine_apply(eng, st, body, strlen(body), 0, &res),
                         0);
        ck_assert_msg(res.verdict == QG_ACCEPTED &&
                          res.event == steps[i].want && res.to == steps[i].to,
                      "step %zu (%s, service %d): %s %s -> %s (%s)", i,
                      steps[i].state, steps[i].service,
                      qg_verdict_name(res.verdict), qg_event_name(res.event),
                      qg_state_name(res.to), res.detail);
    }
}
END_TEST

/* A live-queue step of entry id, unsigned, dated now + ahead_s by the wall
 * clock (UTC). */
static qg_result
apply_dated(int64_t id, const char *state_name, int64_t ahead_s)
{
    time_t when = time(NULL) + (time_t)ahead_s;
    char body[512], stamp[32];
    struct tm tm;
    qg_result res;

    gmtime_r(&when, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body),
             "{\"payload\":{\"event\":\"live_queue_updated\",\"timestamp\":"
             "\"%s\",\"data\":{\"id\":%" PRId64 ",\"state_name\":\"%s\"}}}",
             stamp, id, state_name);
    ck_assert_int_eq(qg_engine_apply(eng, st, body, strlen(body), 0, &res), 0);
    return res;
}

/* A step dated further ahead of the engine's clock than the allowed skew
 * (QG_MAX_SKEW_DEFAULT, 300 s, unless set) is refused, so that it cannot
 * make every later real step of its ticket stale. */
START_TEST(test_engine_future_step_refused)
{
    static const char far[] =
        "{\"payload\":{\"event\":\"live_queue_updated\",\"timestamp\":"
        "\"9999-12-31T23:59:59+08:00\",\"data\":{\"id\":63001,"
        "\"state_name\":\"Arrived\"}}}";
    qg_result res;
    qg_ticket t;

    qg_engine_require_signature(eng, 0);
    ck_assert_int_eq(apply_dated(63001, "In Queue", -60).verdict, QG_ACCEPTED);
    ck_assert_int_eq(qg_engine_apply(eng, st, far, sizeof(far) - 1, 0, &res),
                     0);
    ck_assert_int_eq(res.verdict, QG_MALFORMED);
    ck_assert_int_eq(res.reason, QG_R_BAD_VALUE);
    ck_assert_msg(strstr(res.detail, "9999-12-31T23:59:59+08:00") &&
                      strstr(res.detail, "300 s"),
                  "%s", res.detail);
    /* at the edge and past it */
    res = apply_dated(63001, "Arrived", QG_MAX_SKEW_DEFAULT + 60);
    ck_assert_int_eq(res.reason, QG_R_BAD_VALUE);
    res = apply_dated(63001, "Arrived", QG_MAX_SKEW_DEFAULT - 60);
    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s", res.detail);
    /* the real steps that follow are not stale */
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 63001, &t), 0);
    ck_assert_uint_eq(t.records, 2);

    /* configurable; 0 turns the check off */
    ck_assert_int_eq(qg_engine_set_max_skew(eng, 3600), 0);
    res = apply_dated(64001, "In Queue", 1800);
    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s", res.detail);
    res = apply_dated(64002, "In Queue", 7200);
    ck_assert_int_eq(res.reason, QG_R_BAD_VALUE);
    ck_assert_msg(strstr(res.detail, "3600 s"), "%s", res.detail);
    ck_assert_int_eq(qg_engine_set_max_skew(eng, 0), 0);
    ck_assert_int_eq(
        qg_engine_apply(eng, st, far, sizeof(far) - 1, QG_DRY_RUN, &res), 0);
    ck_assert_msg(res.verdict == QG_ACCEPTED, "%s", res.detail);

    /* refused arguments change nothing */
    ck_assert_int_eq(qg_engine_set_max_skew(eng, 60), 0);
    ck_assert_int_eq(qg_engine_set_max_skew(eng, -1), QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_max_skew(eng, (int64_t)INT32_MAX + 1),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_max_skew(NULL, 60), QG_EINVAL);
    res = apply_dated(64003, "In Queue", 120);
    ck_assert_int_eq(res.reason, QG_R_BAD_VALUE);
}
END_TEST

/* ----- prepared deliveries ---------------------------------------------- */

/* A second store, in a directory of its own (removed by other_close()). */
static char other_dir[64];

static qg_store *
other_open(void)
{
    qg_store_options o = {0};
    qg_store *other = NULL;

    snprintf(other_dir, sizeof(other_dir), "/tmp/qgate-prepared-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(other_dir));
    o.path = other_dir;
    o.durability = QG_NOSYNC;
    ck_assert_int_eq(qg_store_open(&o, &other), 0);
    return other;
}

static void
other_close(qg_store *other)
{
    qg_store_close(other);
    tu_remove_dir(other_dir);
}

/* Prepares fixtures/<rel> with eng and applies it alone; *body is the
 * caller's, to be freed after the prepared delivery. */
static qg_result
apply_one_prepared(qg_engine *e, qg_store *s, const char *rel)
{
    qg_prepared *p = NULL;
    qg_result res;
    size_t len;
    char *body = tu_fixture(rel, &len);
    int rc = -1;

    ck_assert_int_eq(qg_engine_prepare(e, body, len, &p), 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(qg_engine_apply_prepared(s, &p, 1, &res, &rc), 0);
    ck_assert_int_eq(rc, 0);
    qg_prepared_free(p);
    free(body);
    return res;
}

/* Each digit of s made a 9. */
static void
mask_digits(char *s)
{
    for (; *s; s++)
        if (isdigit((unsigned char)*s))
            *s = '9';
}

/* Two details the same, but for the figures of a step dated ahead: that
 * refusal names the clock at the decision, to the second, and how far
 * ahead the step is of it, so two decisions a second apart differ there. */
static void
assert_same_detail(const char *a, const char *b, const char *what)
{
    char x[sizeof(((qg_result *)0)->detail)], y[sizeof(x)];

    snprintf(x, sizeof(x), "%s", a);
    snprintf(y, sizeof(y), "%s", b);
    if (strstr(a, "ahead of the gate's clock") != NULL) {
        mask_digits(x);
        mask_digits(y);
    }
    ck_assert_msg(strcmp(x, y) == 0, "%s: \"%s\", apply gave \"%s\"", what, b,
                  a);
}

static void
assert_same_result(const qg_result *a, const qg_result *b, const char *what)
{
    ck_assert_msg(a->verdict == b->verdict && a->reason == b->reason,
                  "%s: %s %s, apply gave %s %s", what,
                  qg_verdict_name(b->verdict), qg_reason_name(b->reason),
                  qg_verdict_name(a->verdict), qg_reason_name(a->reason));
    ck_assert_msg(a->event == b->event && a->from == b->from && a->to == b->to,
                  "%s: %s %s->%s, apply gave %s %s->%s", what,
                  qg_event_name(b->event), qg_state_name(b->from),
                  qg_state_name(b->to), qg_event_name(a->event),
                  qg_state_name(a->from), qg_state_name(a->to));
    ck_assert_uint_eq(a->ticket, b->ticket);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert_uint_eq(a->pos, b->pos);
    ck_assert_int_eq(a->late, b->late);
    ck_assert_int_eq(a->live_queue_id, b->live_queue_id);
    ck_assert_int_eq(a->appointment_id, b->appointment_id);
    ck_assert_uint_eq(a->rejection > 0, b->rejection > 0);
    assert_same_detail(a->detail, b->detail, what);
}

/* The histories of live queue lq in two stores hold the same steps. */
static void
assert_same_history(qg_store *a, qg_store *b, int64_t lq, uint32_t steps)
{
    qg_ticket ta, tb;
    qg_history *ha = NULL, *hb = NULL;
    qg_record ra, rb;
    uint32_t n = 0;
    int rca, rcb;

    ck_assert_int_eq(qg_store_ticket(a, QG_ID_LIVE_QUEUE, lq, &ta), 0);
    ck_assert_int_eq(qg_store_ticket(b, QG_ID_LIVE_QUEUE, lq, &tb), 0);
    ck_assert_int_eq(ta.state, tb.state);
    ck_assert_uint_eq(ta.records, steps);
    ck_assert_uint_eq(tb.records, steps);
    ck_assert_uint_eq(ta.rejections, tb.rejections);
    ck_assert_int_eq(qg_history_open(a, ta.id, &ha), 0);
    ck_assert_int_eq(qg_history_open(b, tb.id, &hb), 0);
    for (;;) {
        rca = qg_history_next(ha, &ra);
        rcb = qg_history_next(hb, &rb);
        ck_assert_int_eq(rca, rcb);
        if (rca != 0)
            break;
        n++;
        ck_assert_uint_eq(ra.seq, rb.seq);
        ck_assert_int_eq(ra.event, rb.event);
        ck_assert_int_eq(ra.from, rb.from);
        ck_assert_int_eq(ra.to, rb.to);
        ck_assert_int_eq(ra.event_ms, rb.event_ms);
        ck_assert_int_eq(ra.service_id, rb.service_id);
        ck_assert_int_eq(memcmp(ra.digest, rb.digest, sizeof(ra.digest)), 0);
        ck_assert_uint_eq(ra.body_len, rb.body_len);
        ck_assert_int_eq(memcmp(ra.body, rb.body, ra.body_len), 0);
    }
    ck_assert_int_eq(rca, QG_NOTFOUND);
    ck_assert_uint_eq(n, steps);
    qg_history_close(ha);
    qg_history_close(hb);
}

/* The walk-in visit prepared then applied, one by one, gives each step
 * the verdict qg_engine_apply() gives it, and the same history; a
 * redelivery prepared is a duplicate as applied. */
START_TEST(test_engine_prepared_same_as_apply)
{
    qg_store *other = other_open();
    qg_result a, b;
    size_t i;

    for (i = 0; i < 9; i++) {
        a = tu_apply(eng, st, tu_walk_in[i].file);
        b = apply_one_prepared(eng, other, tu_walk_in[i].file);
        assert_same_result(&a, &b, tu_walk_in[i].file);
        ck_assert_int_eq(b.verdict, QG_ACCEPTED);
        ck_assert_int_eq(b.event, tu_walk_in[i].event);
        ck_assert_int_eq(b.from, tu_walk_in[i].from);
        ck_assert_int_eq(b.to, tu_walk_in[i].to);
    }
    a = tu_apply(eng, st, tu_walk_in[3].file);
    b = apply_one_prepared(eng, other, tu_walk_in[3].file);
    assert_same_result(&a, &b, "redelivery");
    ck_assert_int_eq(b.verdict, QG_DUPLICATE);
    assert_same_history(st, other, 30001, 9);
    other_close(other);
}
END_TEST

/* All of a visit prepared, then applied in one call: in order, each step
 * seeing the ones before it, as qg_engine_apply_batch() does. */
START_TEST(test_engine_prepared_batch_same_as_apply_batch)
{
    qg_store *other = other_open();
    qg_prepared *p[10];
    qg_body bodies[10];
    qg_result ra[10], rb[10];
    int ca[10], cb[10];
    size_t i, len;

    for (i = 0; i < 10; i++) {
        /* the last is the first again: a duplicate within the batch */
        bodies[i].body = tu_fixture(tu_walk_in[i % 9].file, &len);
        bodies[i].len = len;
        ck_assert_int_eq(
            qg_engine_prepare(eng, bodies[i].body, bodies[i].len, &p[i]), 0);
    }
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, bodies, 10, ra, ca), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(other, p, 10, rb, cb), 0);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(ca[i], 0);
        ck_assert_int_eq(cb[i], 0);
        assert_same_result(&ra[i], &rb[i], tu_walk_in[i % 9].file);
    }
    ck_assert_int_eq(rb[8].to, QG_ST_VISIT_ENDED);
    ck_assert_int_eq(rb[9].verdict, QG_DUPLICATE);
    assert_same_history(st, other, 30001, 9);
    for (i = 0; i < 10; i++) {
        qg_prepared_free(p[i]);
        free((char *)bodies[i].body);
    }
    other_close(other);
}
END_TEST

/* Every malformed body of the fixtures, prepared and applied, is refused
 * as qg_engine_apply() refuses it, and its refusal logged, not its step. */
START_TEST(test_engine_prepared_refusals_logged)
{
    static char rows[128][6][96];
    int n = read_table("malformed/EXPECT", rows, 128), i;
    qg_store *other = other_open();
    qg_result a, b;
    qg_ticket t;
    size_t refused = 0;

    ck_assert_int_ge(n, 30);
    for (i = 0; i < n; i++) {
        a = tu_apply(eng, st, rows[i][0]);
        b = apply_one_prepared(eng, other, rows[i][0]);
        assert_same_result(&a, &b, rows[i][0]);
        ck_assert_msg(strcmp(qg_verdict_name(b.verdict), rows[i][1]) == 0 &&
                          strcmp(qg_reason_name(b.reason), rows[i][2]) == 0,
                      "%s: %s %s, expected %s %s", rows[i][0],
                      qg_verdict_name(b.verdict), qg_reason_name(b.reason),
                      rows[i][1], rows[i][2]);
        ck_assert_int_eq(b.ticket, 0);
        ck_assert_int_eq(b.rejection > 0, b.verdict != QG_IGNORED);
        refused += b.verdict != QG_IGNORED;
    }
    ck_assert_uint_gt(refused, 0);
    ck_assert_int_eq(tu_count_rejections(other), (int)refused);
    ck_assert_int_eq(tu_count_rejections(st), (int)refused);
    ck_assert_int_eq(qg_store_ticket(other, QG_ID_LIVE_QUEUE, 50001, &t),
                     QG_NOTFOUND);
    other_close(other);
}
END_TEST

/* A prepared delivery keeps what it needs of its engine: the engine's
 * secret changed, or the engine freed, after prepare does not change the
 * verdict; and one prepared before a secret is set stays refused. */
START_TEST(test_engine_prepared_outlives_its_engine)
{
    qg_prepared *p[2] = {NULL, NULL};
    qg_engine *bare;
    qg_result res[2];
    int rcs[2];
    size_t l0, l1;
    char *b0 = tu_fixture(tu_walk_in[0].file, &l0);
    char *b1 = tu_fixture(tu_walk_in[1].file, &l1);

    ck_assert_int_eq(qg_engine_prepare(eng, b0, l0, &p[0]), 0);
    ck_assert_int_eq(qg_engine_set_secret(eng, "another-secret", 14), 0);
    ck_assert_int_eq(qg_engine_new(&bare), 0);
    ck_assert_int_eq(qg_engine_prepare(bare, b1, l1, &p[1]), 0);
    qg_engine_free(bare);
    qg_engine_free(eng);
    eng = NULL;
    ck_assert_int_eq(qg_engine_apply_prepared(st, p, 2, res, rcs), 0);
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(rcs[1], 0);
    ck_assert_msg(res[0].verdict == QG_ACCEPTED, "%s", res[0].detail);
    ck_assert_int_eq(res[0].event, QG_EV_JOIN);
    ck_assert_int_eq(res[1].verdict, QG_UNAUTHENTICATED);
    qg_prepared_free(p[0]);
    qg_prepared_free(p[1]);
    free(b0);
    free(b1);
}
END_TEST

/* A call that fails writes nothing, and the prepared delivery applied
 * again gets a fresh decision; applied once more, it is a duplicate. */
START_TEST(test_engine_prepared_again_after_failure)
{
    qg_prepared *p = NULL;
    qg_result res;
    qg_ticket t;
    int rc = 1;
    size_t len;
    char *body = tu_fixture(tu_walk_in[0].file, &len);

    ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p), 0);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, &rc),
                     QG_ERDONLY);
    st = tu_store_reopen(st, 0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    ck_assert_int_eq(tu_count_rejections(st), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, &rc), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res.seq, 1);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, &rc), 0);
    ck_assert_int_eq(res.verdict, QG_DUPLICATE);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    qg_prepared_free(p);
    free(body);
}
END_TEST

START_TEST(test_engine_prepared_bad_arguments)
{
    qg_prepared *p = NULL, *none[1] = {NULL};
    qg_result res;
    qg_ticket t;
    int rc;
    size_t len;
    char *body = tu_fixture(tu_walk_in[0].file, &len);

    /* a handle out-parameter is NULL after its constructor fails */
    p = (qg_prepared *)&p;
    ck_assert_int_eq(qg_engine_prepare(NULL, body, len, &p), QG_EINVAL);
    ck_assert_ptr_null(p);
    p = (qg_prepared *)&p;
    ck_assert_int_eq(qg_engine_prepare(eng, NULL, len, &p), QG_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(qg_engine_prepare(eng, body, len, NULL), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_prepared(st, none, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_prepare(eng, body, len, &p), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(NULL, &p, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_prepared(st, NULL, 1, &res, &rc),
                     QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, NULL, &rc), QG_EINVAL);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, NULL),
                     QG_EINVAL);
    /* none of these wrote anything */
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    ck_assert_int_eq(tu_count_rejections(st), 0);
    /* an empty body is prepared: applying it logs the refusal */
    qg_prepared_free(p);
    ck_assert_int_eq(qg_engine_prepare(eng, NULL, 0, &p), 0);
    ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, &rc), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(res.verdict, QG_MALFORMED);
    ck_assert_int_eq(tu_count_rejections(st), 1);
    qg_prepared_free(p);
    qg_prepared_free(NULL);
    free(body);
}
END_TEST

/* The gate's split: receiving threads prepare, one writer applies.  Two
 * threads prepare the walk-in visit's steps (each its share, into slots
 * of a queue) while this thread applies them in order as they come: every
 * step is accepted as the fixture table says. */
typedef struct handoff {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    qg_engine *eng;
    char *bodies[9];
    size_t lens[9];
    qg_prepared *slots[9];
    int rcs[9];
    int first; /* the thread's first step; it takes every second one */
} handoff;

typedef struct preparer {
    handoff *h;
    int first;
} preparer;

static void *
prepare_share(void *arg)
{
    preparer *me = arg;
    handoff *h = me->h;
    qg_prepared *p;
    int i, rc;

    for (i = me->first; i < 9; i += 2) {
        rc = qg_engine_prepare(h->eng, h->bodies[i], h->lens[i], &p);
        pthread_mutex_lock(&h->lock);
        h->rcs[i] = rc;
        h->slots[i] = rc == 0 ? p : NULL;
        pthread_cond_broadcast(&h->ready);
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

START_TEST(test_engine_prepared_on_other_threads)
{
    static handoff h;
    preparer who[2] = {{&h, 0}, {&h, 1}};
    pthread_t th[2];
    qg_result res;
    qg_ticket t;
    qg_prepared *p;
    int i, rc;

    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.ready, NULL);
    h.eng = eng;
    for (i = 0; i < 9; i++) {
        h.bodies[i] = tu_fixture(tu_walk_in[i].file, &h.lens[i]);
        h.rcs[i] = 1; /* not yet */
    }
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, prepare_share, &who[i]),
                         0);
    for (i = 0; i < 9; i++) {
        pthread_mutex_lock(&h.lock);
        while (h.rcs[i] == 1)
            pthread_cond_wait(&h.ready, &h.lock);
        rc = h.rcs[i];
        p = h.slots[i];
        pthread_mutex_unlock(&h.lock);
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(qg_engine_apply_prepared(st, &p, 1, &res, &rc), 0);
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(res.verdict == QG_ACCEPTED, "%s: %s", tu_walk_in[i].file,
                      res.detail);
        ck_assert_int_eq(res.event, tu_walk_in[i].event);
        ck_assert_int_eq(res.from, tu_walk_in[i].from);
        ck_assert_int_eq(res.to, tu_walk_in[i].to);
        ck_assert_uint_eq(res.seq, (uint32_t)i + 1);
    }
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 9);
    ck_assert_int_eq(t.state, QG_ST_VISIT_ENDED);
    for (i = 0; i < 9; i++) {
        qg_prepared_free(h.slots[i]);
        free(h.bodies[i]);
    }
    pthread_cond_destroy(&h.ready);
    pthread_mutex_destroy(&h.lock);
}
END_TEST

static Suite *
engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *core = tcase_create("Core"), *errors = tcase_create("Errors");
    TCase *prepared = tcase_create("Prepared");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_checked_fixture(prepared, setup, teardown);
    tcase_add_test(core, test_engine_visits_accepted_step_by_step);
    tcase_add_test(core, test_engine_fixtures_cover_documented_flows);
    tcase_add_test(core, test_engine_illegal_sequences_refused);
    tcase_add_test(core, test_engine_redelivery_is_duplicate);
    tcase_add_test(core, test_engine_updates_by_state_and_service);
    tcase_add_test(core, test_engine_published_examples_apply_unverified);
    tcase_add_test(errors, test_engine_malformed_bodies_refused);
    tcase_add_test(errors, test_engine_no_secret_is_unauthenticated);
    tcase_add_test(errors, test_engine_wrong_secret_is_unauthenticated);
    tcase_add_test(errors, test_engine_two_secrets_either_passes);
    tcase_add_test(errors, test_engine_secret_file_lines);
    tcase_add_test(errors, test_engine_bad_arguments);
    tcase_add_test(errors, test_engine_future_step_refused);
    tcase_add_test(errors, test_engine_prepared_unsigned);
    tcase_add_test(prepared, test_engine_prepared_same_as_apply);
    tcase_add_test(prepared, test_engine_prepared_batch_same_as_apply_batch);
    tcase_add_test(prepared, test_engine_prepared_refusals_logged);
    tcase_add_test(prepared, test_engine_prepared_outlives_its_engine);
    tcase_add_test(prepared, test_engine_prepared_again_after_failure);
    tcase_add_test(prepared, test_engine_prepared_bad_arguments);
    tcase_add_test(prepared, test_engine_prepared_on_other_threads);
    suite_add_tcase(s, core);
    suite_add_tcase(s, errors);
    suite_add_tcase(s, prepared);
    return s;
}

int
main(void)
{
    return tu_run(engine_suite());
}
