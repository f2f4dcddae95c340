/*
 * bench_audit.c - a large store, and one ticket read out of it.
 *
 *   bench_audit build --db DIR [--batch N] < day.ndjson
 *       applies the deliveries of stdin (one per line, streamed) in
 *       batches of N (256) with qg_engine_apply_batch, QG_NOSYNC and no
 *       signature check: the fast way to a store of a million tickets.
 *   bench_audit query --db DIR --tickets N [--samples K] [--seed S]
 *       opens the store read-only, as the CLI does, and for K (10000)
 *       live-queue ids drawn from gen_day's 100001..100000+N times
 *       `show` (qg_store_ticket) and `history` (qg_store_ticket, then
 *       qg_history_open and every record through qg_history_next).
 *   bench_audit space --db DIR [--per N]
 *       where the bytes of data.mdb go: for each database, its entries,
 *       branch, leaf and overflow pages, the bytes its nodes take and how
 *       full its leaves are (LMDB's mdb_stat, and a walk of every entry),
 *       and the pages on LMDB's free list; bytes per N deliveries (or per
 *       history record when N is not given).  A Markdown table.
 *   bench_audit repack --db DIR --to DIR2
 *       copies every database of DIR into a new store DIR2 in key order
 *       with MDB_APPEND, so that every leaf is filled before the next is
 *       begun: how small the same records can be without a format change
 *       (what `space` then shows of DIR2).
 *
 * build and query print one line of key=value pairs on stdout; times in
 * microseconds.  build --outbox keeps the outbox, as the gate does when it
 * forwards to an HIS (and as bench_engine's stores do).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "bench_util.h"
#include "qgate.h"

static void die(const char *what, int rc) __attribute__((noreturn));

static void
die(const char *what, int rc)
{
    fprintf(stderr, "bench_audit: %s: %s\n", what,
            rc ? qg_strerror(rc) : strerror(errno));
    exit(2);
}

static int
build(const char *db, size_t batch, unsigned flags)
{
    qg_store_options o;
    qg_store *st;
    qg_engine *eng;
    qg_body *bodies = calloc(batch, sizeof(*bodies));
    qg_result *res = calloc(batch, sizeof(*res));
    int *rcs = calloc(batch, sizeof(*rcs));
    char **lines = calloc(batch, sizeof(*lines));
    size_t *caps = calloc(batch, sizeof(*caps));
    unsigned long verdicts[QG_IGNORED + 1] = {0};
    size_t n = 0, i, total = 0;
    int64_t t0 = bench_now_ns(), cpu0 = bench_cpu_ns();
    ssize_t len;
    int rc, eof = 0;

    if (!bodies || !res || !rcs || !lines || !caps)
        die("build", QG_ENOMEM);
    memset(&o, 0, sizeof(o));
    o.path = db;
    o.durability = QG_NOSYNC;
    o.flags = flags;
    o.map_size = (size_t)1 << 30;
    if ((rc = qg_store_open(&o, &st)))
        die(db, rc);
    if ((rc = qg_engine_new(&eng)))
        die("engine", rc);
    qg_engine_require_signature(eng, 0);
    while (!eof) {
        for (n = 0; n < batch; n++) {
            len = getline(&lines[n], &caps[n], stdin);
            if (len < 0) {
                eof = 1;
                break;
            }
            if (len > 0 && lines[n][len - 1] == '\n')
                len--;
            bodies[n].body = lines[n];
            bodies[n].len = (size_t)len;
        }
        if (n == 0)
            break;
        if ((rc = qg_engine_apply_batch(eng, st, bodies, n, res, rcs)))
            die("qg_engine_apply_batch", rc);
        for (i = 0; i < n; i++) {
            if (rcs[i])
                die("qg_engine_apply_batch", rcs[i]);
            verdicts[res[i].verdict]++;
        }
        total += n;
    }
    qg_engine_free(eng);
    qg_store_close(st);
    printf("deliveries=%zu seconds=%.2f per_s=%.0f cpu_us=%.2f "
           "accepted=%lu duplicate=%lu rejected=%lu other=%lu\n",
           total, (double)(bench_now_ns() - t0) / 1e9,
           (double)total * 1e9 / (double)(bench_now_ns() - t0),
           (double)(bench_cpu_ns() - cpu0) / 1e3 / (double)(total ? total : 1),
           verdicts[QG_ACCEPTED], verdicts[QG_DUPLICATE], verdicts[QG_REJECTED],
           verdicts[QG_UNAUTHENTICATED] + verdicts[QG_MALFORMED] +
               verdicts[QG_IGNORED]);
    for (i = 0; i < batch; i++)
        free(lines[i]);
    free(lines);
    free(caps);
    free(bodies);
    free(res);
    free(rcs);
    return 0;
}

static uint64_t rng;

static uint64_t
draw(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

static int
query(const char *db, uint64_t tickets, size_t samples)
{
    qg_store_options o;
    qg_store *st;
    int64_t *show = calloc(samples, sizeof(*show));
    int64_t *hist = calloc(samples, sizeof(*hist));
    size_t i, records = 0, body_bytes = 0;
    int rc;

    if (!show || !hist)
        die("query", QG_ENOMEM);
    memset(&o, 0, sizeof(o));
    o.path = db;
    o.flags = QG_RDONLY;
    if ((rc = qg_store_open(&o, &st)))
        die(db, rc);
    for (i = 0; i < samples; i++) {
        int64_t lq = 100001 + (int64_t)draw(tickets), t0, t1, t2;
        qg_ticket t;
        qg_history *h = NULL;
        qg_record r;

        t0 = bench_now_ns();
        if ((rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, lq, &t)))
            die("qg_store_ticket", rc);
        t1 = bench_now_ns();
        if ((rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, lq, &t)) ||
            (rc = qg_history_open(st, t.id, &h)))
            die("qg_history_open", rc);
        while ((rc = qg_history_next(h, &r)) == 0) {
            records++;
            body_bytes += r.body_len;
        }
        qg_history_close(h);
        t2 = bench_now_ns();
        if (rc != QG_NOTFOUND)
            die("qg_history_next", rc);
        show[i] = t1 - t0;
        hist[i] = t2 - t1;
    }
    qg_store_close(st);
    bench_sort(show, samples);
    bench_sort(hist, samples);
    printf("samples=%zu records_per_ticket=%.2f "
           "show_p50_us=%.2f show_p99_us=%.2f show_max_us=%.2f "
           "history_p50_us=%.2f history_p90_us=%.2f history_p99_us=%.2f "
           "history_max_us=%.2f\n",
           samples, (double)records / (double)samples,
           (double)bench_percentile_sorted(show, samples, 50) / 1e3,
           (double)bench_percentile_sorted(show, samples, 99) / 1e3,
           (double)show[samples - 1] / 1e3,
           (double)bench_percentile_sorted(hist, samples, 50) / 1e3,
           (double)bench_percentile_sorted(hist, samples, 90) / 1e3,
           (double)bench_percentile_sorted(hist, samples, 99) / 1e3,
           (double)hist[samples - 1] / 1e3);
    if (body_bytes == 1)
        putchar(' ');
    free(show);
    free(hist);
    return 0;
}

/* One database's share of the file. */
typedef struct space_row {
    char name[32];
    MDB_stat ms;
    uint64_t node_bytes; /* leaf nodes and their index slots */
    uint64_t overflow_values;
} space_row;

static void
space_walk(MDB_txn *txn, MDB_dbi dbi, size_t nodemax, space_row *row)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, op = MDB_FIRST;

    if (mdb_stat(txn, dbi, &row->ms) || mdb_cursor_open(txn, dbi, &cur))
        die(row->name, QG_ESTORE);
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        size_t leaf = 8 + k.mv_size + v.mv_size;

        op = MDB_NEXT;
        /* LMDB puts a value on overflow pages when its node would be
         * larger than nodemax; the node then holds the page number. */
        if (leaf > nodemax) {
            leaf = 8 + k.mv_size + sizeof(uint64_t);
            row->overflow_values++;
        }
        row->node_bytes += leaf + (leaf & 1) + 2;
    }
    mdb_cursor_close(cur);
}

static int
space(const char *db, uint64_t per)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_envinfo info;
    MDB_stat ms;
    MDB_val k, v;
    space_row rows[16];
    size_t n = 0, i, nodemax, hdr = 16;
    uint64_t free_pages = 0, total, pages_sum = 0, history_entries = 0;
    int rc, op = MDB_FIRST;

    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
        (rc = mdb_env_open(env, db, MDB_RDONLY, 0)) ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
        die(db, QG_ESTORE);
    mdb_env_info(env, &info);
    mdb_env_stat(env, &ms);
    nodemax = (((ms.ms_psize - hdr) / 2) & ~(size_t)1) - 2;
    /* The free list (FREE_DBI, 0): each value an array of page numbers
     * whose first word is their count. */
    if (mdb_cursor_open(txn, 0, &cur))
        die("free list", QG_ESTORE);
    while (mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        free_pages += *(const size_t *)v.mv_data;
    }
    mdb_cursor_close(cur);
    /* The main database names the others. */
    if (mdb_cursor_open(txn, 1, &cur))
        die("main", QG_ESTORE);
    op = MDB_FIRST;
    while (n < 16 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        MDB_dbi dbi;

        op = MDB_NEXT;
        memset(&rows[n], 0, sizeof(rows[n]));
        snprintf(rows[n].name, sizeof(rows[n].name), "%.*s", (int)k.mv_size,
                 (const char *)k.mv_data);
        if (mdb_dbi_open(txn, rows[n].name, 0, &dbi))
            continue; /* a key of the main database, not a database */
        space_walk(txn, dbi, nodemax, &rows[n]);
        if (strcmp(rows[n].name, "history") == 0)
            history_entries = rows[n].ms.ms_entries;
        n++;
    }
    mdb_cursor_close(cur);
    if (per == 0)
        per = history_entries ? history_entries : 1;
    total = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    printf("| database | entries | branch pages | leaf pages | overflow "
           "pages (values) | node bytes | leaf fill | bytes per delivery |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < n; i++) {
        const MDB_stat *s = &rows[i].ms;
        uint64_t pages =
            s->ms_branch_pages + s->ms_leaf_pages + s->ms_overflow_pages;

        pages_sum += pages;
        printf("| %s | %zu | %zu | %zu | %zu (%" PRIu64 ") | %" PRIu64
               " | %.0f%% | %.0f |\n",
               rows[i].name, s->ms_entries, s->ms_branch_pages,
               s->ms_leaf_pages, s->ms_overflow_pages, rows[i].overflow_values,
               rows[i].node_bytes,
               s->ms_leaf_pages
                   ? 100.0 * (double)rows[i].node_bytes /
                         (double)(s->ms_leaf_pages * (ms.ms_psize - hdr))
                   : 0.0,
               (double)pages * ms.ms_psize / (double)per);
    }
    printf("| (free list: pages LMDB reuses) | | | %" PRIu64
           " | | | | %.0f |\n",
           free_pages, (double)free_pages * ms.ms_psize / (double)per);
    printf("| (main, meta pages, unaccounted) | | | %" PRIu64
           " | | | | %.0f |\n",
           info.me_last_pgno + 1 - pages_sum - free_pages,
           (double)(info.me_last_pgno + 1 - pages_sum - free_pages) *
               ms.ms_psize / (double)per);
    printf("| **data.mdb** | | | %zu pages of %u bytes | | | | **%.0f** |\n",
           info.me_last_pgno + 1, ms.ms_psize, (double)total / (double)per);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
}

/* See the file's comment; the layout is untouched, only the packing. */
static int
repack(const char *from, const char *to)
{
    MDB_env *src, *dst;
    MDB_txn *rt, *wt;
    MDB_cursor *names, *cur;
    MDB_val k, v, nk, nv;
    char name[64];
    int rc, op = MDB_FIRST;
    size_t n;

    if (mkdir(to, 0750) != 0 && errno != EEXIST)
        die(to, 0);
    if ((rc = mdb_env_create(&src)) || (rc = mdb_env_set_maxdbs(src, 16)) ||
        (rc = mdb_env_open(src, from, MDB_RDONLY, 0)) ||
        (rc = mdb_txn_begin(src, NULL, MDB_RDONLY, &rt)) ||
        (rc = mdb_env_create(&dst)) || (rc = mdb_env_set_maxdbs(dst, 16)) ||
        (rc = mdb_env_set_mapsize(dst, (size_t)64 << 30)) ||
        (rc = mdb_env_open(dst, to, MDB_NOSYNC, 0640)) ||
        (rc = mdb_cursor_open(rt, 1, &names)))
        goto fail;
    while (mdb_cursor_get(names, &nk, &nv, op) == 0) {
        MDB_dbi sdbi, ddbi;

        op = MDB_NEXT;
        snprintf(name, sizeof(name), "%.*s", (int)nk.mv_size,
                 (const char *)nk.mv_data);
        if (mdb_dbi_open(rt, name, 0, &sdbi))
            continue;
        if ((rc = mdb_txn_begin(dst, NULL, 0, &wt)) ||
            (rc = mdb_dbi_open(wt, name, MDB_CREATE, &ddbi)) ||
            (rc = mdb_cursor_open(rt, sdbi, &cur)))
            goto fail;
        for (n = 0, rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if ((rc = mdb_put(wt, ddbi, &k, &v, MDB_APPEND)))
                goto fail;
            if (++n % 100000 == 0 && ((rc = mdb_txn_commit(wt)) ||
                                      (rc = mdb_txn_begin(dst, NULL, 0, &wt))))
                goto fail;
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND || (rc = mdb_txn_commit(wt)))
            goto fail;
    }
    mdb_cursor_close(names);
    mdb_txn_abort(rt);
    mdb_env_sync(dst, 1);
    mdb_env_close(dst);
    mdb_env_close(src);
    return 0;
fail:
    fprintf(stderr, "bench_audit: repack %s: %s\n", from, mdb_strerror(rc));
    exit(2);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_audit build [--outbox] --db DIR [--batch N] < "
            "day.ndjson\n"
            "       bench_audit query --db DIR --tickets N [--samples K] "
            "[--seed S]\n"
            "       bench_audit space --db DIR [--per N]\n"
            "       bench_audit repack --db DIR --to DIR2\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *db = NULL, *to = NULL;
    uint64_t tickets = 0;
    size_t batch = 256, samples = 10000;
    uint64_t per = 0;
    unsigned flags = 0;
    int i;

    if (argc < 2)
        usage();
    rng = 88172645463325252ull;
    for (i = 2; i < argc && strcmp(argv[i], "--outbox") == 0; i++)
        flags |= QG_OUTBOX;
    for (; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0)
            db = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0)
            batch = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--tickets") == 0)
            tickets = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--samples") == 0)
            samples = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
        else if (strcmp(argv[i], "--per") == 0)
            per = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0)
            rng ^= strtoull(argv[i + 1], NULL, 10) * 2654435761u;
        else
            usage();
    }
    if (i != argc || db == NULL || batch == 0 || samples == 0)
        usage();
    if (strcmp(argv[1], "build") == 0)
        return build(db, batch, flags);
    if (strcmp(argv[1], "space") == 0)
        return space(db, per);
    if (strcmp(argv[1], "repack") == 0 && to != NULL)
        return repack(db, to);
    if (strcmp(argv[1], "query") == 0 && tickets > 0)
        return query(db, tickets, samples);
    usage();
    return 2;
}
