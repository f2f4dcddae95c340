/*
 * check_reorder.c - deliveries out of order: each ticket judged in event
 * time, early steps held, late ones placed (qg_engine_set_reorder_window).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"
#include "testutil.h"

#define WINDOW 1200

static qg_store *st;
static qg_engine *eng;

static void
setup(void)
{
    st = tu_store_new();
    eng = tu_engine();
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, WINDOW), 0);
}

static void
teardown(void)
{
    qg_engine_free(eng);
    qg_store_close(st);
    tu_store_remove();
}

/*
 * A fixture with another payload.timestamp, signed again with
 * fixtures/secret: "rel" as is when stamp is NULL.  Fixtures are
 * {"payload":{...,"timestamp":"...",...},"signature":"<hex>"}.
 */
static char *
restamp(const char *rel, const char *stamp, size_t *len)
{
    static const char ts[] = "\"timestamp\":\"";
    size_t n, sec_len;
    char *body = tu_fixture(rel, &n), *secret, *at, *sig, *out;
    char hex[QG__HEX_SIG_LEN + 1];
    size_t plen, slen = stamp ? strlen(stamp) : 0;

    if (stamp == NULL) {
        *len = n;
        return body;
    }
    at = strstr(body, ts);
    ck_assert_ptr_nonnull(at);
    at += sizeof(ts) - 1;
    ck_assert_uint_eq(strcspn(at, "\""), slen);
    memcpy(at, stamp, slen);
    sig = strstr(body, ",\"signature\":\"");
    ck_assert_ptr_nonnull(sig);
    plen = (size_t)(sig - (body + 11));
    secret = tu_fixture("secret", &sec_len);
    while (sec_len && (secret[sec_len - 1] == '\n'))
        sec_len--;
    qg__signature_make(secret, sec_len, body + 11, plen, hex);
    free(secret);
    out = malloc(n + 1);
    ck_assert_ptr_nonnull(out);
    *len = (size_t)snprintf(out, n + 1, "%.*s,\"signature\":\"%s\"}",
                            (int)(11 + plen), body, hex);
    free(body);
    return out;
}

static qg_result
apply_at(const char *rel, const char *stamp, unsigned flags)
{
    qg_result res;
    size_t len;
    char *body = restamp(rel, stamp, &len);

    ck_assert_int_eq(qg_engine_apply(eng, st, body, len, flags, &res), 0);
    free(body);
    return res;
}

static uint64_t
held_count(void)
{
    uint64_t n = 99;

    ck_assert_int_eq(qg_held_stats(st, &n, NULL), 0);
    return n;
}

static void
assert_verified(uint64_t ticket)
{
    qg_finding f;

    ck_assert_int_eq(qg_store_verify_ticket(st, ticket, &f), 0);
    ck_assert_msg(!f.found, "ticket %llu: step %u: %s",
                  (unsigned long long)ticket, f.seq, f.what);
}

/* One delivery of a scenario: its file, a new timestamp or NULL, and the
 * verdict expected ('A' accepted, 'L' accepted late, 'H' held, 'R'
 * rejected, 'D' duplicate), with the reason code for H and R. */
typedef struct delivery {
    const char *file;
    const char *stamp;
    char verdict;
    const char *code;
} delivery;

typedef struct scenario {
    const char *name;
    int64_t window;
    delivery d[10];
    const char *end; /* the ticket's state at the end */
    uint32_t steps;  /* its accepted steps */
    uint64_t held;   /* held at the end */
} scenario;

#define W  "visits/walk-in/01-join-live-queue.json"
#define W2 "visits/walk-in/02-alert.json"
#define W3 "visits/walk-in/03-move.json"
#define W4 "visits/walk-in/04-serving.json"
#define W5 "visits/walk-in/05-served.json"
#define W6 "visits/walk-in/06-pharmacy-received.json"
#define W7 "visits/walk-in/07-pharmacy-dispensed.json"
#define W8 "visits/walk-in/08-billing-paid.json"
#define W9 "visits/walk-in/09-end-visit.json"
#define S1 "illegal/stale/01-join-live-queue.json"
#define S2 "illegal/stale/02-arrived.json"
#define S3 "illegal/stale/03-serving-stale.json"

static const scenario scenarios[] = {
    {"walk-in in order",
     WINDOW,
     {{W, 0, 'A', 0},
      {W2, 0, 'A', 0},
      {W3, 0, 'A', 0},
      {W4, 0, 'A', 0},
      {W5, 0, 'A', 0},
      {W6, 0, 'A', 0},
      {W7, 0, 'A', 0},
      {W8, 0, 'A', 0},
      {W9, 0, 'A', 0}},
     "visit_ended",
     9,
     0},
    /* The swap of the README: served just before serving. */
    {"served before serving, judged on arrival",
     0,
     {{W, 0, 'A', 0},
      {W2, 0, 'A', 0},
      {W3, 0, 'A', 0},
      {W5, 0, 'R', "illegal_transition"},
      {W4, 0, 'A', 0},
      {W6, 0, 'R', "illegal_transition"},
      {W7, 0, 'R', "illegal_transition"},
      {W8, 0, 'R', "illegal_transition"},
      {W9, 0, 'R', "illegal_transition"}},
     "serving",
     4,
     0},
    {"served before serving, with a window",
     WINDOW,
     {{W, 0, 'A', 0},
      {W2, 0, 'A', 0},
      {W3, 0, 'A', 0},
      {W5, 0, 'H', "early"},
      {W4, 0, 'A', 0},
      {W6, 0, 'A', 0},
      {W7, 0, 'A', 0},
      {W8, 0, 'A', 0},
      {W9, 0, 'A', 0}},
     "visit_ended",
     9,
     0},
    {"alert after move, placed late",
     WINDOW,
     {{W, 0, 'A', 0}, {W3, 0, 'A', 0}, {W2, 0, 'L', 0}, {W4, 0, 'A', 0}},
     "serving",
     4,
     0},
    {"alert after move, judged on arrival",
     0,
     {{W, 0, 'A', 0}, {W3, 0, 'A', 0}, {W2, 0, 'R', "stale"}},
     "moved",
     2,
     0},
    /* The example: arrive 09:05 after serve 09:10. */
    {"arrive after serve, placed between join and serve",
     WINDOW,
     {{S1, 0, 'A', 0},
      {S3, "2024-03-05T09:10:00+08:00", 'A', 0},
      {S2, "2024-03-05T09:05:00+08:00", 'L', 0}},
     "serving",
     3,
     0},
    /* Chup's stamps have one-second resolution: an equal stamp goes on
     * whichever side keeps the path legal. */
    {"equal timestamps, arrive after serve",
     WINDOW,
     {{S1, 0, 'A', 0},
      {S3, "2024-03-05T09:05:00+08:00", 'A', 0},
      {S2, "2024-03-05T09:05:00+08:00", 'L', 0}},
     "serving",
     3,
     0},
    /* Held for a ticket not seen yet, all released by its join.  The move
     * comes last: before its ticket is known, Chup's "In Queue" update
     * would be that ticket's join. */
    {"a visit backwards",
     WINDOW,
     {{W9, 0, 'H', "early"},
      {W8, 0, 'H', "early"},
      {W7, 0, 'H', "early"},
      {W6, 0, 'H', "early"},
      {W5, 0, 'H', "early"},
      {W4, 0, 'H', "early"},
      {W2, 0, 'H', "early"},
      {W, 0, 'A', 0},
      {W3, 0, 'L', 0}},
     "visit_ended",
     9,
     0},
    {"a held delivery sent again is a duplicate",
     WINDOW,
     {{W, 0, 'A', 0}, {W5, 0, 'H', "early"}, {W5, 0, 'D', "redelivery"}},
     "queued",
     1,
     1},
    /* Refused at once: nothing that has not arrived can make them legal. */
    {"pay after cancel",
     WINDOW,
     {{"illegal/paid-after-cancel/01-join-live-queue.json", 0, 'A', 0},
      {"illegal/paid-after-cancel/02-cancel-delete.json", 0, 'A', 0},
      {"illegal/paid-after-cancel/03-billing-paid.json", 0, 'R',
       "ticket_closed"}},
     "cancelled",
     2,
     0},
    {"a second end of visit",
     WINDOW,
     {{"illegal/second-end-visit/01-join-live-queue.json", 0, 'A', 0},
      {"illegal/second-end-visit/02-serving.json", 0, 'A', 0},
      {"illegal/second-end-visit/03-served.json", 0, 'A', 0},
      {"illegal/second-end-visit/04-end-visit.json", 0, 'A', 0},
      {"illegal/second-end-visit/05-end-visit-again.json", 0, 'R',
       "ticket_closed"}},
     "visit_ended",
     4,
     0},
    /* A join is legal again after a no-show, which may not have come. */
    {"a second join",
     WINDOW,
     {{W, 0, 'A', 0}, {W, "2024-03-05T09:30:00+08:00", 'H', "early"}},
     "queued",
     1,
     1},
    /* Held: a step that has not arrived could make them legal. */
    {"dispense before receive",
     WINDOW,
     {{"illegal/dispense-before-receive/01-join-live-queue.json", 0, 'A', 0},
      {"illegal/dispense-before-receive/02-serving.json", 0, 'A', 0},
      {"illegal/dispense-before-receive/03-served.json", 0, 'A', 0},
      {"illegal/dispense-before-receive/04-pharmacy-dispensed.json", 0, 'H',
       "early"}},
     "served",
     3,
     1},
    {"serving stamped before arrived",
     WINDOW,
     {{S1, 0, 'A', 0}, {S2, 0, 'A', 0}, {S3, 0, 'H', "early"}},
     "arrived",
     2,
     1},
};

static void
check_result(const scenario *sc, int i, const qg_result *res)
{
    const delivery *d = &sc->d[i];
    char want = d->verdict == 'L' ? 'A' : d->verdict;
    const char *v = qg_verdict_name(res->verdict);

    ck_assert_msg(toupper((unsigned char)v[0]) == want,
                  "%s, delivery %d (%s): %s %s: %s", sc->name, i + 1, d->file,
                  v, qg_reason_name(res->reason), res->detail);
    if (d->code)
        ck_assert_msg(strcmp(qg_reason_name(res->reason), d->code) == 0,
                      "%s, delivery %d: code %s, want %s", sc->name, i + 1,
                      qg_reason_name(res->reason), d->code);
    if (res->verdict == QG_ACCEPTED)
        ck_assert_msg(!res->late == (d->verdict != 'L'),
                      "%s, delivery %d: late %d: %s", sc->name, i + 1,
                      res->late, res->detail);
}

START_TEST(test_reorder_scenarios)
{
    const scenario *sc = &scenarios[_i];
    qg_result res;
    qg_ticket t;
    int i;

    ck_assert_int_eq(qg_engine_set_reorder_window(eng, sc->window), 0);
    for (i = 0; i < 10 && sc->d[i].file; i++) {
        res = apply_at(sc->d[i].file, sc->d[i].stamp, 0);
        check_result(sc, i, &res);
    }
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_TICKET, 1, &t), 0);
    ck_assert_msg(strcmp(qg_state_name(t.state), sc->end) == 0,
                  "%s: ends %s, want %s", sc->name, qg_state_name(t.state),
                  sc->end);
    ck_assert_uint_eq(t.records, sc->steps);
    ck_assert_uint_eq(held_count(), sc->held);
    assert_verified(1);
    /* moved and released steps summed up as they now stand */
    ck_assert_uint_eq(tu_check_summaries(st), sc->steps);
}
END_TEST

/* A late step stands at its place in event time; arrival order keeps the
 * order of acceptance; the steps after it were re-run. */
START_TEST(test_reorder_history_orders)
{
    static const uint32_t by_event[] = {1, 3, 2};
    static const unsigned char zero[QG_CHAIN_HASH_LEN];
    unsigned char then[3][QG_CHAIN_HASH_LEN], now[3][QG_CHAIN_HASH_LEN];
    qg_history *h;
    qg_record r;
    qg_result res;
    qg_ticket t;
    uint32_t i;

    apply_at(S1, NULL, 0);
    apply_at(S3, "2024-03-05T09:10:00+08:00", 0);
    res = apply_at(S2, "2024-03-05T09:05:00+08:00", 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res.seq, 3);
    ck_assert_uint_eq(res.pos, 2);
    ck_assert_int_eq(res.to, QG_ST_SERVING);
    ck_assert_ptr_nonnull(strstr(res.detail, "placed late as step 2 of 3"));

    ck_assert_int_eq(qg_history_open(st, 1, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++) {
        ck_assert_uint_lt(i, 3);
        ck_assert_uint_eq(r.seq, by_event[i]);
        ck_assert_uint_eq(r.pos, i + 1);
        ck_assert_int_eq(r.late, r.seq == 3);
    }
    ck_assert_uint_eq(i, 3);
    /* serve now comes from arrived, not queued: the path was re-run */
    ck_assert_int_eq(qg_history_seek(h, 2), 0);
    ck_assert_int_eq(qg_history_next(h, &r), 0);
    ck_assert_uint_eq(r.seq, 2);
    ck_assert_int_eq(r.from, QG_ST_ARRIVED);
    ck_assert_int_eq(r.to, QG_ST_SERVING);
    qg_history_close(h);

    /* the ticket in the cursor's snapshot, not as written since */
    ck_assert_int_eq(qg_history_open(st, 1, &h), 0);
    apply_at(W, NULL, 0);
    ck_assert_int_eq(qg_history_ticket(h, &t), 0);
    ck_assert_uint_eq(t.records, 3);
    ck_assert_int_eq(t.state, QG_ST_SERVING);
    qg_history_close(h);
    ck_assert_int_eq(qg_history_open(st, 0, &h), 0);
    ck_assert_int_eq(qg_history_ticket(h, &t), QG_EINVAL);
    qg_history_close(h);

    ck_assert_int_eq(qg_history_open_order(st, 1, QG_ARRIVAL_ORDER, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++)
        ck_assert_uint_eq(r.seq, i + 1);
    ck_assert_uint_eq(i, 3);
    qg_history_close(h);

    /* the whole-store cursor too, with the second ticket after it; each
     * record's ticket is the one the store holds, in both orders (the
     * export reads them so) */
    ck_assert_int_eq(qg_history_open(st, 0, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++) {
        qg_ticket want;

        ck_assert_uint_eq(r.seq, i < 3 ? by_event[i] : 1);
        ck_assert_int_eq(qg_history_ticket(h, &t), 0);
        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_TICKET, (int64_t)r.ticket, &want), 0);
        ck_assert_uint_eq(t.id, r.ticket);
        ck_assert_int_eq(t.state, want.state);
        ck_assert_uint_eq(t.records, want.records);
        ck_assert_int_eq(t.live_queue_id, want.live_queue_id);
    }
    ck_assert_uint_eq(i, 4);
    qg_history_close(h);
    ck_assert_int_eq(qg_history_open_order(st, 0, QG_ARRIVAL_ORDER, &h), 0);
    for (i = 0; qg_history_next(h, &r) == 0; i++) {
        ck_assert_int_eq(qg_history_ticket(h, &t), 0);
        ck_assert_uint_eq(t.id, r.ticket);
        ck_assert_uint_eq(t.records, i < 3 ? 3 : 1);
    }
    ck_assert_uint_eq(i, 4);
    qg_history_close(h);

    /* and as the cursor's snapshot has it, whatever is written since:
     * the ticket, and its steps' chain hashes */
    ck_assert_int_eq(qg_history_open(st, 0, &h), 0);
    ck_assert_int_eq(qg_history_step_hashes(h, 1, now), QG_EINVAL);
    ck_assert_int_eq(qg_history_next(h, &r), 0);
    ck_assert_int_eq(qg_history_step_hashes(h, 3, then), 0);
    ck_assert_int_eq(qg_chain_step_hashes(st, 1, 3, now), 0);
    ck_assert_mem_eq(then, now, sizeof(then[0]) * 3);
    ck_assert_mem_ne(then[2], zero, sizeof(zero));
    for (i = 1; qg_history_next(h, &r) == 0 && r.ticket == 1; i++)
        ;
    ck_assert_uint_eq(i, 3);
    ck_assert_uint_eq(r.ticket, 2);
    apply_at(W2, NULL, 0);
    ck_assert_int_eq(qg_history_ticket(h, &t), 0);
    ck_assert_uint_eq(t.id, 2);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_int_eq(qg_history_step_hashes(h, 2, then), 0);
    ck_assert_int_eq(qg_chain_step_hashes(st, 2, 2, now), 0);
    ck_assert_mem_eq(then[0], now[0], sizeof(zero));
    ck_assert_mem_eq(then[1], zero, sizeof(zero)); /* written since */
    ck_assert_mem_ne(now[1], zero, sizeof(zero));
    qg_history_close(h);
    assert_verified(1);
}
END_TEST

/* The window passed: each held delivery goes to the rejection log with
 * the reason it would have had on arrival, and how long it was held. */
START_TEST(test_reorder_expiry_refuses_with_the_arrival_reason)
{
    static const struct {
        const char *file;
        const char *code;
    } held[] = {
        {"illegal/new-ticket-served/01-join-live-queue-served.json",
         "illegal_transition"},
        {S3, "stale"},
    };
    uint64_t by_reason[QG_REASON_COUNT] = {0}, n = 0;
    qg_rejections *rj;
    qg_rejection rej;
    qg_held_list *hl;
    qg_held h;
    size_t i;

    apply_at(S1, NULL, 0);
    apply_at(S2, NULL, 0);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(apply_at(held[i].file, NULL, 0).verdict, QG_HELD);
    ck_assert_uint_eq(held_count(), 2);

    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    ck_assert_int_eq(qg_held_next(hl, &h), 0);
    ck_assert_uint_eq(h.ticket, 0); /* a ticket not seen yet */
    ck_assert_int_eq(h.event, QG_EV_COMPLETE);
    ck_assert_int_eq(qg_held_next(hl, &h), 0);
    ck_assert_uint_eq(h.ticket, 1);
    ck_assert_int_eq(h.from, QG_ST_ARRIVED);
    ck_assert_int_gt((int)h.body_len, 0);
    ck_assert_int_eq(qg_held_next(hl, &h), QG_NOTFOUND);
    qg_held_close(hl);

    /* nothing is due before its window ends */
    ck_assert_int_eq(qg_held_expire(st, qg_time_now_us() - WINDOW * 1000000LL,
                                    by_reason, &n),
                     0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, by_reason, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(by_reason[QG_R_ILLEGAL_TRANSITION], 1);
    ck_assert_uint_eq(by_reason[QG_R_STALE], 1);
    ck_assert_uint_eq(held_count(), 0);

    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
        ck_assert_str_eq(qg_reason_name(rej.reason), held[i].code);
        ck_assert_msg(strstr(rej.detail, "; held ") != NULL, "%s", rej.detail);
        ck_assert_int_gt((int)rej.body_len, 0);
    }
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
    assert_verified(1);
}
END_TEST

/* A held delivery survives a reopen (a restart) and is released later. */
START_TEST(test_reorder_held_survive_reopen)
{
    qg_result res;
    qg_ticket t;

    apply_at(W, NULL, 0);
    ck_assert_int_eq(apply_at(W5, NULL, 0).verdict, QG_HELD);
    st = tu_store_reopen(st, 0);
    ck_assert_uint_eq(held_count(), 1);
    apply_at(W2, NULL, 0);
    res = apply_at(W4, NULL, 0);
    ck_assert_int_eq(res.verdict, QG_ACCEPTED);
    ck_assert_uint_eq(res.released, 1);
    ck_assert_int_eq(res.to, QG_ST_SERVED);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_int_eq(t.state, QG_ST_SERVED);
    ck_assert_uint_eq(held_count(), 0);
    /* released, it is an accepted step: sent again, a duplicate */
    ck_assert_int_eq(apply_at(W5, NULL, 0).verdict, QG_DUPLICATE);
    assert_verified(1);
}
END_TEST

/* A dry run says held, late or accepted, and writes nothing. */
START_TEST(test_reorder_dry_run_writes_nothing)
{
    qg_ticket t;

    apply_at(W, NULL, 0);
    apply_at(W3, NULL, 0);
    ck_assert_int_eq(apply_at(W5, NULL, QG_DRY_RUN).verdict, QG_HELD);
    ck_assert_uint_eq(held_count(), 0);
    ck_assert_int_eq(apply_at(W2, NULL, QG_DRY_RUN).late, 1);
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_TICKET, 1, &t), 0);
    ck_assert_uint_eq(t.records, 2);
}
END_TEST

/* Counts the rejection log's entries. */
static unsigned
rejection_count(void)
{
    qg_rejections *rj;
    qg_rejection r;
    unsigned n = 0;

    ck_assert_int_eq(qg_rejections_open(st, 1, &rj), 0);
    while (qg_rejections_next(rj, &r) == 0)
        n++;
    qg_rejections_close(rj);
    return n;
}

/* qg_engine_check_batch() gives the verdicts that expiring and then
 * applying the same bodies gives, held, released and late included, and
 * leaves the store as it was. */
START_TEST(test_reorder_check_batch_is_apply)
{
    static const char *const rels[] = {
        W3,
        W5,
        W4,
        W2,
        "visits/walk-in/06-pharmacy-received.json",
        "malformed/not-json.json",
        W};
    enum { N = sizeof(rels) / sizeof(*rels) };
    qg_body bodies[N];
    qg_result checked[N], applied[N];
    int rcs[N], i;
    uint64_t expired = 99;
    qg_ticket t;

    apply_at(W, NULL, 0);
    /* held, then given up by the expiry both runs begin with */
    ck_assert_int_eq(apply_at("illegal/dispense-before-receive/"
                              "01-join-live-queue.json",
                              NULL, 0)
                         .verdict,
                     QG_ACCEPTED);
    ck_assert_int_eq(apply_at("illegal/dispense-before-receive/"
                              "04-pharmacy-dispensed.json",
                              NULL, 0)
                         .verdict,
                     QG_HELD);
    for (i = 0; i < N; i++)
        bodies[i].body = tu_fixture(rels[i], &bodies[i].len);

    ck_assert_int_eq(qg_engine_check_batch(eng, st, INT64_MAX, bodies, N,
                                           checked, rcs, &expired),
                     0);
    ck_assert_uint_eq(expired, 1);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(rcs[i], 0);
    /* nothing written: one step, one held, no refusal */
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    ck_assert_uint_eq(held_count(), 1);
    ck_assert_uint_eq(rejection_count(), 0);

    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, &expired), 0);
    ck_assert_uint_eq(expired, 1);
    ck_assert_int_eq(qg_engine_apply_batch(eng, st, bodies, N, applied, rcs),
                     0);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(rcs[i], 0);
        ck_assert_msg(checked[i].verdict == applied[i].verdict &&
                          checked[i].reason == applied[i].reason &&
                          checked[i].ticket == applied[i].ticket &&
                          checked[i].seq == applied[i].seq &&
                          checked[i].pos == applied[i].pos &&
                          checked[i].late == applied[i].late &&
                          checked[i].released == applied[i].released &&
                          checked[i].event == applied[i].event &&
                          checked[i].from == applied[i].from &&
                          checked[i].to == applied[i].to &&
                          strcmp(checked[i].detail, applied[i].detail) == 0,
                      "%s: checked %s (%s), applied %s (%s)", rels[i],
                      qg_verdict_name(checked[i].verdict), checked[i].detail,
                      qg_verdict_name(applied[i].verdict), applied[i].detail);
        ck_assert_uint_eq(checked[i].rejection, 0);
    }
    /* the cases the batch was built to cover */
    ck_assert_int_eq(checked[1].verdict, QG_HELD);
    ck_assert_uint_eq(checked[2].released, 1);
    ck_assert_int_eq(checked[3].late, 1);
    ck_assert_int_eq(checked[5].verdict, QG_MALFORMED);
    ck_assert_uint_ne(applied[5].rejection, 0);
    ck_assert_int_eq(checked[6].verdict, QG_DUPLICATE);
    for (i = 0; i < N; i++)
        free((char *)bodies[i].body);
}
END_TEST

START_TEST(test_reorder_check_batch_arguments)
{
    qg_body b = {"{}", 2};
    qg_result res;
    int rc;

    ck_assert_int_eq(
        qg_engine_check_batch(NULL, st, INT64_MIN, &b, 1, &res, &rc, NULL),
        QG_EINVAL);
    ck_assert_int_eq(
        qg_engine_check_batch(eng, st, INT64_MIN, NULL, 1, &res, &rc, NULL),
        QG_EINVAL);
    ck_assert_int_eq(
        qg_engine_check_batch(eng, st, INT64_MIN, NULL, 0, NULL, NULL, NULL),
        0);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(
        qg_engine_check_batch(eng, st, INT64_MIN, &b, 1, &res, &rc, NULL),
        QG_ERDONLY);
}
END_TEST

START_TEST(test_reorder_window_range)
{
    ck_assert_int_eq(qg_engine_set_reorder_window(NULL, 1), QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, -1), QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 31536001), QG_EINVAL);
    ck_assert_int_eq(qg_engine_set_reorder_window(eng, 0), 0);
    ck_assert_int_eq(qg_held_expire(NULL, 0, NULL, NULL), QG_EINVAL);
    st = tu_store_reopen(st, QG_RDONLY);
    ck_assert_int_eq(qg_held_expire(st, INT64_MAX, NULL, NULL), QG_ERDONLY);
}
END_TEST

static Suite *
reorder_suite(void)
{
    Suite *s = suite_create("reorder");
    TCase *core = tcase_create("Core");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_loop_test(core, test_reorder_scenarios, 0,
                        (int)(sizeof(scenarios) / sizeof(*scenarios)));
    tcase_add_test(core, test_reorder_history_orders);
    tcase_add_test(core, test_reorder_expiry_refuses_with_the_arrival_reason);
    tcase_add_test(core, test_reorder_held_survive_reopen);
    tcase_add_test(core, test_reorder_dry_run_writes_nothing);
    tcase_add_test(core, test_reorder_check_batch_is_apply);
    tcase_add_test(core, test_reorder_check_batch_arguments);
    tcase_add_test(core, test_reorder_window_range);
    suite_add_tcase(s, core);
    return s;
}

int
main(void)
{
    return tu_run(reorder_suite());
}
