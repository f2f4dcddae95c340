/*
 * bench_engine.c - the engine in process, no HTTP: deliveries per second
 * on one core for each durability, the cost of each phase of a delivery,
 * and beside each mode a raw LMDB put loop that writes the same records
 * with the same durability and commit grouping (the disk's limit).
 *
 *   bench_engine --day FILE --secret-file F --dir DIR [--seconds S]
 *                [--max N] [--summary FILE] [--only KEY]
 *
 * FILE holds signed deliveries, one per line (tests/gen_day).  Every mode
 * starts from an empty store in DIR and applies the day from its first
 * delivery, until the day ends or S seconds (default 4) have passed.
 * Prints Markdown tables on stdout; with --summary, also key=value lines
 * for tests/bench/run.sh.  --only runs one mode (sync1, group16, group64,
 * group256, nosync1, nosync256), for a profiler; --only phases runs the
 * phase loops alone.  --keep leaves each mode's stores in DIR (qgate-KEY,
 * raw-KEY), so that `mdb_stat -a` can count what each wrote.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "bench_util.h"
#include "chain_int.h"
#include "qgate_int.h"
#include "store_int.h"

typedef struct mode {
    const char *name;
    const char *key; /* for the summary */
    qg_durability durability;
    size_t batch; /* 1: qg_engine_apply; more: qg_engine_apply_batch */
} mode;

static const mode modes[] = {
    {"sync, commit per delivery", "sync1", QG_SYNC, 1},
    {"sync, group commit of 16", "group16", QG_SYNC, 16},
    {"sync, group commit of 64", "group64", QG_SYNC, 64},
    {"sync, group commit of 256", "group256", QG_SYNC, 256},
    {"nosync, commit per delivery", "nosync1", QG_NOSYNC, 1},
    {"nosync, group commit of 256", "nosync256", QG_NOSYNC, 256},
};
#define NMODES (sizeof(modes) / sizeof(*modes))

typedef struct outcome {
    size_t count;
    int64_t wall_ns, cpu_ns;
    int64_t store_bytes; /* data.mdb at the end */
    int64_t commit_p50_ns, commit_p99_ns, commit_max_ns; /* per call */
    unsigned long verdicts[QG_IGNORED + 1];
} outcome;

/* What the raw loop writes for a delivery: what qgate wrote for it, as
 * its result in qgate's run of the same mode says (note()), and content
 * worked out before the loop runs (raw_prepare()). */
enum { RAW_NONE, RAW_STEP, RAW_REFUSAL };

typedef struct raw_item {
    int kind;        /* RAW_NONE: a duplicate, nothing written */
    uint64_t ticket; /* 0: a refusal that names none */
    uint32_t seq;
    int64_t ids[2];    /* live queue, appointment */
    unsigned aliases;  /* bit k: an alias row for ids[k] (raw_plan()) */
    size_t detail_len; /* a refusal's detail, with its NUL */
    unsigned char digest[QG__DIGEST_LEN];
    unsigned char leaf[QG__DIGEST_LEN]; /* stands for the chain's hashes */
} raw_item;

static bench_lines day;
static unsigned char secret[4096];
static size_t secret_len;
static int keep; /* --keep */

static void die(const char *what, const char *why) __attribute__((noreturn));

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, why);
    exit(2);
}

/* ----- phases ------------------------------------------------------------ */

typedef struct phases {
    size_t n;
    double parse_us, signature_us, digest_us, machine_us;
    double envelope_us; /* of parse: qg__envelope_parse(), the one-pass scan
                           for a plain body */
    size_t scanned;     /* how many of the n it read in one pass */
    /* json-c's way, which takes every body the scan does not decide: */
    double tree_us;   /* qg__envelope_parse_tree(): json-c, then strict */
    double jsonc_us;  /* of tree: json-c alone, as chup.c calls it */
    double strict_us; /* of tree: qg__json_strict(), the pass over the
                         body that also finds the payload's bytes */
} phases;

typedef struct decoded {
    qg__span payload, signature;
    char event[48], state[48];
} decoded;

/* The phase loops are timed in this thread's CPU time: on a machine
 * shared with other work, wall time counts the time the loop waited for a
 * core. */
static int64_t
thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Each phase timed in a loop of its own over the same deliveries, so the
 * clock is read twice per phase and not per call: parse (json-c and the
 * envelope scanner, then the payload's fields), signature (HMAC-SHA256 of
 * the payload's bytes, checked), digest (SHA-256, the duplicate key),
 * machine (mapping of Chup's names, then the lifecycle step).
 */
static void
measure_phases(size_t n, phases *ph)
{
    decoded *dec = calloc(n, sizeof(*dec));
    qg__mapping *map = NULL;
    qg__envelope env;
    qg__delivery d;
    unsigned char digest[QG__DIGEST_LEN];
    char detail[256];
    int64_t t0;
    size_t i;
    unsigned sink = 0;

    if (dec == NULL || qg__mapping_new(&map))
        die("phases", "out of memory");
    memset(ph, 0, sizeof(*ph));
    ph->n = n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        struct json_tokener *tok = qg__json_tokener();
        json_object *o;

        if (tok == NULL)
            die("phases", "out of memory");
        o = json_tokener_parse_ex(tok, day.line[i], (int)day.len[i]);
        json_object_put(o);
    }
    ph->jsonc_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        qg__top top;

        sink += qg__json_strict(day.line[i], day.len[i], &top, detail,
                                sizeof(detail));
    }
    ph->strict_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        sink += qg__envelope_parse(day.line[i], day.len[i], &env, detail,
                                   sizeof(detail));
        qg__envelope_free(&env);
    }
    ph->envelope_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        sink += qg__envelope_parse_tree(day.line[i], day.len[i], &env, detail,
                                        sizeof(detail));
        qg__envelope_free(&env);
    }
    ph->tree_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        memset(&env, 0, sizeof(env));
        memset(&d, 0, sizeof(d));
        if (qg__envelope_parse(day.line[i], day.len[i], &env, detail,
                               sizeof(detail)) == QG_R_NONE &&
            qg__payload_head(&env, &d, detail, sizeof(detail)) == QG_R_NONE)
            sink += qg__payload_fields(&d, 1, detail, sizeof(detail));
        qg__envelope_free(&env);
    }
    ph->parse_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    /* What the next loops need, copied out untimed. */
    for (i = 0; i < n; i++) {
        memset(&env, 0, sizeof(env));
        memset(&d, 0, sizeof(d));
        if (qg__envelope_parse(day.line[i], day.len[i], &env, detail,
                               sizeof(detail)) == QG_R_NONE &&
            qg__payload_head(&env, &d, detail, sizeof(detail)) == QG_R_NONE &&
            qg__payload_fields(&d, 1, detail, sizeof(detail)) == QG_R_NONE) {
            ph->scanned += (size_t)env.scanned;
            dec[i].payload = env.payload_text;
            dec[i].signature = env.signature;
            snprintf(dec[i].event, sizeof(dec[i].event), "%s", d.event_name);
            snprintf(dec[i].state, sizeof(dec[i].state), "%s",
                     d.state_name ? d.state_name : "");
        }
        qg__envelope_free(&env);
    }

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++)
        sink += qg__signature_check(secret, secret_len, dec[i].payload,
                                    dec[i].signature);
    ph->signature_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;
    if (sink)
        fprintf(stderr,
                "bench_engine: %u deliveries failed to decode or "
                "verify in the phase loops\n",
                sink);

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        qg__digest(dec[i].payload.p, dec[i].payload.len, digest);
        sink += digest[0];
    }
    ph->digest_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;

    t0 = thread_cpu_ns();
    for (i = 0; i < n; i++) {
        qg__event_map em = qg__mapping_event(map, dec[i].event);
        qg_event ev = em.event;

        if (em.rule == QG__RULE_STATE) {
            memset(&d, 0, sizeof(d));
            d.state_name = dec[i].state;
            ev = qg__mapping_state(map, &d);
        }
        sink += (unsigned)qg_machine_next(QG_ST_QUEUED, ev) +
                qg_machine_allowed(QG_ST_QUEUED);
    }
    ph->machine_us = (double)(thread_cpu_ns() - t0) / 1e3 / (double)n;
    if (sink == 0x5eed)
        putchar(' '); /* keeps the loops from being optimised away */
    qg__mapping_free(map);
    free(dec);
}

/* Durations of the calls that commit (qg_engine_apply, a batch, a raw
 * commit), for their percentiles. */
typedef struct lat {
    int64_t *v;
    size_t n, cap;
} lat;

static void
lat_add(lat *l, int64_t ns)
{
    if (l->n == l->cap) {
        int64_t *grown;

        l->cap = l->cap ? l->cap * 2 : 4096;
        if ((grown = realloc(l->v, l->cap * sizeof(*grown))) == NULL)
            die("latencies", "out of memory");
        l->v = grown;
    }
    l->v[l->n++] = ns;
}

static void
lat_done(lat *l, outcome *out)
{
    bench_sort(l->v, l->n);
    out->commit_p50_ns = bench_percentile_sorted(l->v, l->n, 50);
    out->commit_p99_ns = bench_percentile_sorted(l->v, l->n, 99);
    out->commit_max_ns = l->n ? l->v[l->n - 1] : 0;
    free(l->v);
}

/* ----- qgate ------------------------------------------------------------- */

/* What qgate wrote for a delivery, from its result, for the raw loop. */
static void
note(raw_item *it, const qg_result *res)
{
    it->kind = res->verdict == QG_ACCEPTED && res->seq ? RAW_STEP
               : res->rejection                        ? RAW_REFUSAL
                                                       : RAW_NONE;
    it->ticket = res->ticket;
    it->seq = res->seq;
    it->ids[0] = res->live_queue_id;
    it->ids[1] = res->appointment_id;
    it->detail_len = strlen(res->detail) + 1;
}

/* Applies the day in m's way for `seconds`; notes each result in items. */
static void
run_qgate(const mode *m, const char *dir, double seconds, raw_item *items,
          outcome *out)
{
    qg_store_options o;
    qg_store *st;
    qg_engine *eng;
    qg_body *bodies;
    qg_result *res;
    int *rcs;
    size_t i, j, k;
    int64_t t0, c0, t1, limit = (int64_t)(seconds * 1e9);
    lat l = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    bench_store_remove(dir);
    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.durability = m->durability;
    o.flags = QG_OUTBOX; /* as the gate runs with --upstream */
    if ((rc = qg_store_open(&o, &st)))
        die(dir, qg_strerror(rc));
    if ((rc = qg_engine_new(&eng)) ||
        (rc = qg_engine_set_secret(eng, secret, secret_len)))
        die("engine", qg_strerror(rc));
    bodies = calloc(m->batch, sizeof(*bodies));
    res = calloc(m->batch, sizeof(*res));
    rcs = calloc(m->batch, sizeof(*rcs));
    if (!bodies || !res || !rcs)
        die("engine", "out of memory");

    t0 = bench_now_ns();
    c0 = bench_cpu_ns();
    for (i = 0; i < day.n && bench_now_ns() - t0 < limit; i += k) {
        k = day.n - i < m->batch ? day.n - i : m->batch;
        t1 = bench_now_ns();
        if (m->batch == 1) {
            rcs[0] =
                qg_engine_apply(eng, st, day.line[i], day.len[i], 0, &res[0]);
        } else {
            for (j = 0; j < k; j++) {
                bodies[j].body = day.line[i + j];
                bodies[j].len = day.len[i + j];
            }
            if ((rc = qg_engine_apply_batch(eng, st, bodies, k, res, rcs)))
                die("qg_engine_apply_batch", qg_strerror(rc));
        }
        lat_add(&l, bench_now_ns() - t1);
        for (j = 0; j < k; j++) {
            if (rcs[j])
                die("qg_engine_apply", qg_strerror(rcs[j]));
            out->verdicts[res[j].verdict]++;
            note(&items[i + j], &res[j]);
        }
        out->count += k;
    }
    out->wall_ns = bench_now_ns() - t0;
    out->cpu_ns = bench_cpu_ns() - c0;
    lat_done(&l, out);
    free(bodies);
    free(res);
    free(rcs);
    qg_engine_free(eng);
    qg_store_close(st);
    out->store_bytes = bench_store_bytes(dir);
    if (!keep)
        bench_store_remove(dir);
}

/* ----- raw LMDB ---------------------------------------------------------- */

/* The content of each delivery's records: its payload's digest (the
 * digests key) and a hash standing for the chain's (an entry's leaf and
 * hash), taken here as qgate takes them while deciding. */
static raw_item *
raw_prepare(void)
{
    raw_item *it = calloc(day.n, sizeof(*it));
    qg__envelope env;
    char detail[256];
    size_t i;

    if (it == NULL)
        die("raw", "out of memory");
    for (i = 0; i < day.n; i++) {
        memset(&env, 0, sizeof(env));
        if (qg__envelope_parse(day.line[i], day.len[i], &env, detail,
                               sizeof(detail)) == QG_R_NONE)
            qg__digest(env.payload_text.p, env.payload_text.len, it[i].digest);
        qg__envelope_free(&env);
        qg__digest(day.line[i], day.len[i], it[i].leaf);
    }
    return it;
}

/* A Chup id's ticket, for one kind of id: ids are below a few million in
 * a generated day, so an array indexed by id does. */
typedef struct id_map {
    uint64_t *ticket;
    size_t cap;
} id_map;

/* Whether id leads to ticket already; makes it lead there. */
static int
id_map_set(id_map *m, int64_t id, uint64_t ticket)
{
    size_t at = (size_t)id, ncap;
    uint64_t *grown;

    if (id < 0 || id > (int64_t)1 << 32)
        die("raw", "a Chup id out of the range of a generated day");
    if (at >= m->cap) {
        ncap = at * 2 + 1024;
        if ((grown = realloc(m->ticket, ncap * sizeof(*grown))) == NULL)
            die("raw", "out of memory");
        memset(grown + m->cap, 0, (ncap - m->cap) * sizeof(*grown));
        m->ticket = grown;
        m->cap = ncap;
    }
    if (m->ticket[at] == ticket)
        return 1;
    m->ticket[at] = ticket;
    return 0;
}

/* Which alias rows the first count steps write, from an empty store: as
 * qg__name_ticket(), a row for each id the step names that does not lead
 * to its ticket yet. */
static void
raw_plan(raw_item *it, size_t count)
{
    id_map maps[2] = {{0}};
    size_t i;
    int k;

    for (i = 0; i < count; i++) {
        it[i].aliases = 0;
        for (k = 0; k < 2 && it[i].kind == RAW_STEP; k++)
            if (it[i].ids[k] &&
                !id_map_set(&maps[k], it[i].ids[k], it[i].ticket))
                it[i].aliases |= 1u << k;
    }
    free(maps[0].ticket);
    free(maps[1].ticket);
}

static void
be64(unsigned char *p, uint64_t v)
{
    int i;

    for (i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

#define MDB_CHECK(call)                                                        \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_)                                                               \
            die(#call, mdb_strerror(rc_));                                     \
    } while (0)

/* The databases the raw loop writes, named as qgate's. */
typedef struct raw_dbs {
    MDB_dbi history, chain, steps, digests, aliases, tickets, outbox, meta;
    MDB_dbi rejections, refused_by;
} raw_dbs;

/* Record numbers the raw loop gives out, as qgate's counters do. */
typedef struct raw_counts {
    uint64_t chain, outbox, rejection;
} raw_counts;

static void
put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, void *val,
    size_t vlen, unsigned flags)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, val};
    int rc;

    if ((rc = mdb_put(txn, dbi, &k, &v, flags)))
        die("mdb_put", mdb_strerror(rc));
}

/* A chain entry (chain.c): key n, 136 bytes, appended. */
static void
raw_chain(MDB_txn *txn, const raw_dbs *db, raw_counts *c, const raw_item *it)
{
    unsigned char key[8], e[QG__CHAIN_ENTRY_LEN];

    memset(e, 0, sizeof(e));
    be64(e + 8, it->ticket);
    be64(e + 16, it->seq);
    memcpy(e + 40, it->leaf, QG__DIGEST_LEN);
    memcpy(e + QG__CHAIN_HASHED_LEN, it->leaf, QG__DIGEST_LEN);
    be64(key, ++c->chain);
    put(txn, db->chain, key, 8, e, sizeof(e), MDB_APPEND);
}

/* An accepted step (qg__lmdb_accept(), then the engine's qg__put_ticket()):
 * its alias rows, the history record (96-byte header, the body, 40 bytes
 * of facts), its chain entry, its summary, its digest row, the outbox's
 * counter and entry, the ticket row. */
static void
raw_step(MDB_txn *txn, const raw_dbs *db, raw_counts *c, const raw_item *it,
         const char *body, size_t len)
{
    unsigned char hk[12], ak[9], tk[8], ok[8], mv[8], dv[12], sv[24];
    unsigned char tv[104], ov[QG__OUTBOX_ENTRY_LEN];
    MDB_val k = {12, hk}, v = {96 + len + 40, NULL};
    int kind, rc;

    be64(tk, it->ticket);
    for (kind = 0; kind < 2; kind++) {
        if (!(it->aliases & (1u << kind)))
            continue;
        ak[0] = (unsigned char)(kind + 1);
        be64(ak + 1, (uint64_t)it->ids[kind]);
        put(txn, db->aliases, ak, 9, tk, 8, 0);
    }
    be64(hk, it->ticket);
    hk[8] = (unsigned char)(it->seq >> 24);
    hk[9] = (unsigned char)(it->seq >> 16);
    hk[10] = (unsigned char)(it->seq >> 8);
    hk[11] = (unsigned char)it->seq;
    if ((rc = mdb_put(txn, db->history, &k, &v, MDB_RESERVE)))
        die("mdb_put", mdb_strerror(rc));
    memset(v.mv_data, 0, 96);
    memcpy((char *)v.mv_data + 96, body, len);
    memset((char *)v.mv_data + 96 + len, 0, 40);
    raw_chain(txn, db, c, it);
    memset(sv, 0, sizeof(sv));
    put(txn, db->steps, hk, 12, sv, sizeof(sv), 0);
    memcpy(dv, hk, 12);
    put(txn, db->digests, it->digest, QG__DIGEST_LEN, dv, 12, 0);
    be64(mv, ++c->outbox + 1);
    put(txn, db->meta, "outbox_next", 11, mv, 8, 0);
    be64(ok, c->outbox);
    memset(ov, 0, sizeof(ov));
    put(txn, db->outbox, ok, 8, ov, sizeof(ov), 0);
    memset(tv, 0x11, sizeof(tv));
    put(txn, db->tickets, tk, 8, tv, sizeof(tv), 0);
}

/* A refusal (qg__lmdb_refuse()): the rejection log's entry (48-byte
 * header, the detail, the body), its chain entry, and for a known ticket
 * the index row and the ticket row with its count of refusals. */
static void
raw_refusal(MDB_txn *txn, const raw_dbs *db, raw_counts *c, const raw_item *it,
            const char *body, size_t len)
{
    unsigned char rk[8], ik[16], tk[8], tv[104];
    MDB_val k = {8, rk}, v = {48 + it->detail_len + len, NULL};
    int rc;

    be64(rk, ++c->rejection);
    if ((rc = mdb_put(txn, db->rejections, &k, &v, MDB_RESERVE)))
        die("mdb_put", mdb_strerror(rc));
    memset(v.mv_data, 0, 48 + it->detail_len);
    memcpy((char *)v.mv_data + 48 + it->detail_len, body, len);
    raw_chain(txn, db, c, it);
    if (it->ticket == 0)
        return;
    be64(ik, it->ticket);
    memcpy(ik + 8, rk, 8);
    put(txn, db->refused_by, ik, 16, "", 0, 0);
    be64(tk, it->ticket);
    memset(tv, 0x11, sizeof(tv));
    put(txn, db->tickets, tk, 8, tv, sizeof(tv), 0);
}

/*
 * What qgate wrote for each delivery, without deciding anything: for an
 * accepted step raw_step()'s records, for a refusal raw_refusal()'s, for
 * a duplicate nothing.  No reads: the disk's and LMDB's limit for the
 * same records.  With nested, each delivery's puts go through a
 * transaction nested in the group's, as qg_engine_apply_batch() did, to
 * price that design alone.
 */
static void
run_raw(const mode *m, const char *dir, const raw_item *it, size_t count,
        double seconds, int nested, outcome *out)
{
    static const struct {
        const char *name;
        size_t at;
    } names[] = {
        {"history", offsetof(raw_dbs, history)},
        {"chain", offsetof(raw_dbs, chain)},
        {"steps", offsetof(raw_dbs, steps)},
        {"digests", offsetof(raw_dbs, digests)},
        {"aliases", offsetof(raw_dbs, aliases)},
        {"tickets", offsetof(raw_dbs, tickets)},
        {"outbox", offsetof(raw_dbs, outbox)},
        {"meta", offsetof(raw_dbs, meta)},
        {"rejections", offsetof(raw_dbs, rejections)},
        {"refused_by", offsetof(raw_dbs, refused_by)},
    };
    MDB_env *env;
    MDB_txn *group, *txn;
    raw_dbs db;
    raw_counts c = {0};
    size_t i, j, kk;
    int64_t t0, c0, t1, limit = (int64_t)(seconds * 1e9);
    lat l = {0};

    memset(out, 0, sizeof(*out));
    bench_store_remove(dir);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        die(dir, strerror(errno));
    MDB_CHECK(mdb_env_create(&env));
    MDB_CHECK(mdb_env_set_maxdbs(env, 16));
    MDB_CHECK(mdb_env_set_mapsize(env, (size_t)16 << 30));
    MDB_CHECK(mdb_env_open(
        env, dir, MDB_NOTLS | (m->durability == QG_NOSYNC ? MDB_NOSYNC : 0),
        0640));
    MDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    for (i = 0; i < sizeof(names) / sizeof(*names); i++)
        MDB_CHECK(mdb_dbi_open(txn, names[i].name, MDB_CREATE,
                               (MDB_dbi *)((char *)&db + names[i].at)));
    MDB_CHECK(mdb_txn_commit(txn));

    t0 = bench_now_ns();
    c0 = bench_cpu_ns();
    for (i = 0; i < count && bench_now_ns() - t0 < limit; i += kk) {
        kk = count - i < m->batch ? count - i : m->batch;
        t1 = bench_now_ns();
        MDB_CHECK(mdb_txn_begin(env, NULL, 0, &group));
        for (j = i; j < i + kk; j++) {
            txn = group;
            if (nested)
                MDB_CHECK(mdb_txn_begin(env, group, 0, &txn));
            if (it[j].kind == RAW_STEP)
                raw_step(txn, &db, &c, &it[j], day.line[j], day.len[j]);
            else if (it[j].kind == RAW_REFUSAL)
                raw_refusal(txn, &db, &c, &it[j], day.line[j], day.len[j]);
            if (nested)
                MDB_CHECK(mdb_txn_commit(txn));
        }
        MDB_CHECK(mdb_txn_commit(group));
        lat_add(&l, bench_now_ns() - t1);
        out->count += kk;
    }
    out->wall_ns = bench_now_ns() - t0;
    out->cpu_ns = bench_cpu_ns() - c0;
    lat_done(&l, out);
    mdb_env_close(env);
    out->store_bytes = bench_store_bytes(dir);
    if (!keep)
        bench_store_remove(dir);
}

/* ----- report ------------------------------------------------------------ */

static double
per_s(const outcome *o)
{
    return o->wall_ns ? (double)o->count * 1e9 / (double)o->wall_ns : 0;
}

static double
us_each(int64_t ns, size_t n)
{
    return n ? (double)ns / 1e3 / (double)n : 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench_engine --day FILE --secret-file F --dir "
                    "DIR [--seconds S] [--max N] [--summary FILE] "
                    "[--only KEY] [--keep]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"day", required_argument, NULL, 'd'},
        {"secret-file", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'D'},
        {"seconds", required_argument, NULL, 't'},
        {"max", required_argument, NULL, 'm'},
        {"summary", required_argument, NULL, 'S'},
        {"only", required_argument, NULL, 'o'},
        {"keep", no_argument, NULL, 'k'},
        {0}};
    const char *day_path = NULL, *secret_path = NULL, *dir = NULL;
    const char *summary_path = NULL, *only = NULL;
    double seconds = 4;
    size_t max = 0, i, nphase;
    outcome q[NMODES], r[NMODES], rn[NMODES];
    raw_item *items;
    phases ph;
    char path[4096];
    FILE *f, *sum = NULL;
    double fixed_us;
    int opt;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            day_path = optarg;
            break;
        case 's':
            secret_path = optarg;
            break;
        case 'D':
            dir = optarg;
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'm':
            max = strtoul(optarg, NULL, 10);
            break;
        case 'S':
            summary_path = optarg;
            break;
        case 'o':
            only = optarg;
            break;
        case 'k':
            keep = 1;
            break;
        default:
            usage();
        }
    }
    if (!day_path || !secret_path || !dir || seconds <= 0)
        usage();
    if (bench_lines_read(day_path, max, &day) != 0 || day.n == 0)
        die(day_path, day.n ? strerror(errno) : "no deliveries");
    if ((f = fopen(secret_path, "rb")) == NULL)
        die(secret_path, strerror(errno));
    secret_len = fread(secret, 1, sizeof(secret), f);
    fclose(f);
    while (secret_len &&
           (secret[secret_len - 1] == '\n' || secret[secret_len - 1] == '\r'))
        secret_len--;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        die(dir, strerror(errno));

    nphase = day.n < 50000 ? day.n : 50000;
    if (only && strcmp(only, "phases") != 0)
        nphase = day.n < 1000 ? day.n : 1000;
    measure_phases(nphase, &ph);
    if (only && strcmp(only, "phases") == 0) {
        printf("phases over %zu deliveries (%zu scanned), us each: parse "
               "%.3f envelope %.3f; json-c's way: envelope %.3f json-c %.3f "
               "strict %.3f; signature %.3f digest %.3f\n",
               nphase, ph.scanned, ph.parse_us, ph.envelope_us, ph.tree_us,
               ph.jsonc_us, ph.strict_us, ph.signature_us, ph.digest_us);
        bench_lines_free(&day);
        return 0;
    }
    fixed_us = ph.parse_us + ph.signature_us + ph.digest_us + ph.machine_us;
    items = only ? calloc(day.n, sizeof(*items)) : raw_prepare();
    if (items == NULL)
        die("raw", "out of memory");

    memset(q, 0, sizeof(q));
    memset(r, 0, sizeof(r));
    memset(rn, 0, sizeof(rn));
    for (i = 0; i < NMODES; i++) {
        if (only && strcmp(only, modes[i].key) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/qgate-%s", dir, modes[i].key);
        run_qgate(&modes[i], path, seconds, items, &q[i]);
        snprintf(path, sizeof(path), "%s/raw-%s", dir, modes[i].key);
        raw_plan(items, q[i].count);
        if (!only)
            run_raw(&modes[i], path, items, q[i].count, seconds, 0, &r[i]);
        if (!only && modes[i].batch > 1)
            run_raw(&modes[i], path, items, q[i].count, seconds, 1, &rn[i]);
        fprintf(stderr,
                "bench_engine: %-28s qgate %8.0f/s  raw %8.0f/s  raw nested "
                "%8.0f/s\n",
                modes[i].name, per_s(&q[i]), per_s(&r[i]), per_s(&rn[i]));
    }

    printf("Workload: %zu deliveries loaded, %.0f bytes each on average.  "
           "Phase costs from loops over the first %zu deliveries: parse "
           "%.2f us (%zu of them read in one pass, the envelope and its "
           "fields; the envelope alone %.2f; json-c's way, which the scan "
           "hands every body it does not decide, would take %.2f for the "
           "envelope: json-c alone %.2f, the strict pass %.2f), HMAC-SHA256 "
           "check %.2f us, SHA-256 digest %.2f us, mapping and machine "
           "%.3f us (CPU time).\n\n",
           day.n, (double)day.bytes / (double)day.n, nphase, ph.parse_us,
           ph.scanned, ph.envelope_us, ph.tree_us, ph.jsonc_us, ph.strict_us,
           ph.signature_us, ph.digest_us, ph.machine_us);
    printf("| mode | deliveries | deliveries/s | us/delivery | CPU "
           "us/delivery | parse us | signature+digest us | machine us | "
           "store+rest us | raw LMDB deliveries/s | qgate/raw | raw, "
           "nested txn each, deliveries/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < NMODES; i++) {
        double us = us_each(q[i].wall_ns, q[i].count);

        char nest[32] = "-";

        if (rn[i].count)
            snprintf(nest, sizeof(nest), "%.0f", per_s(&rn[i]));
        printf("| %s | %zu | %.0f | %.1f | %.1f | %.2f | %.2f | %.3f | %.1f | "
               "%.0f | %.2f | %s |\n",
               modes[i].name, q[i].count, per_s(&q[i]), us,
               us_each(q[i].cpu_ns, q[i].count), ph.parse_us,
               ph.signature_us + ph.digest_us, ph.machine_us, us - fixed_us,
               per_s(&r[i]), per_s(&r[i]) ? per_s(&q[i]) / per_s(&r[i]) : 0,
               nest);
    }
    printf("\nVerdicts in the nosync run: %lu accepted, %lu duplicate, %lu "
           "rejected, %lu other.  Group commit of 256 vs commit per "
           "delivery (sync): %.1fx.  Store size after the nosync group run: "
           "%.0f bytes per delivery (raw loop: %.0f).\n",
           q[4].verdicts[QG_ACCEPTED], q[4].verdicts[QG_DUPLICATE],
           q[4].verdicts[QG_REJECTED],
           q[4].verdicts[QG_UNAUTHENTICATED] + q[4].verdicts[QG_MALFORMED] +
               q[4].verdicts[QG_IGNORED],
           per_s(&q[0]) ? per_s(&q[3]) / per_s(&q[0]) : 0,
           q[5].count ? (double)q[5].store_bytes / (double)q[5].count : 0,
           r[5].count ? (double)r[5].store_bytes / (double)r[5].count : 0);

    printf("\nTime of one call that commits (qg_engine_apply, "
           "qg_engine_apply_batch, or one raw transaction), in us: with sync "
           "it holds the flush to disk, and bounds how soon a delivery can "
           "be answered.\n\n");
    printf("| mode | qgate p50 | qgate p99 | qgate max | raw p50 | raw p99 | "
           "raw max |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < NMODES; i++)
        printf(
            "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", modes[i].name,
            (double)q[i].commit_p50_ns / 1e3, (double)q[i].commit_p99_ns / 1e3,
            (double)q[i].commit_max_ns / 1e3, (double)r[i].commit_p50_ns / 1e3,
            (double)r[i].commit_p99_ns / 1e3, (double)r[i].commit_max_ns / 1e3);

    if (summary_path && (sum = fopen(summary_path, "w")) != NULL) {
        fprintf(sum, "engine_deliveries=%zu\nengine_body_bytes=%.0f\n", day.n,
                (double)day.bytes / (double)day.n);
        fprintf(sum,
                "phase_parse_us=%.3f\nphase_jsonc_us=%.3f\n"
                "phase_envelope_us=%.3f\nphase_strict_us=%.3f\n"
                "phase_tree_us=%.3f\nphase_scanned=%zu\n"
                "phase_signature_us=%.3f\n"
                "phase_digest_us=%.3f\nphase_machine_us=%.4f\n",
                ph.parse_us, ph.jsonc_us, ph.envelope_us, ph.strict_us,
                ph.tree_us, ph.scanned, ph.signature_us, ph.digest_us,
                ph.machine_us);
        for (i = 0; i < NMODES; i++)
            fprintf(sum,
                    "engine_%s_per_s=%.0f\nengine_%s_cpu_us=%.2f\n"
                    "raw_%s_per_s=%.0f\nraw_nested_%s_per_s=%.0f\n"
                    "engine_%s_commit_p99_us=%.0f\n",
                    modes[i].key, per_s(&q[i]), modes[i].key,
                    us_each(q[i].cpu_ns, q[i].count), modes[i].key,
                    per_s(&r[i]), modes[i].key, per_s(&rn[i]), modes[i].key,
                    (double)q[i].commit_p99_ns / 1e3);
        fclose(sum);
    }
    free(items);
    bench_lines_free(&day);
    return 0;
}
