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
 *
 * One line of key=value pairs on stdout; times in microseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
build(const char *db, size_t batch)
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

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_audit build --db DIR [--batch N] < day.ndjson\n"
            "       bench_audit query --db DIR --tickets N [--samples K] "
            "[--seed S]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *db = NULL;
    uint64_t tickets = 0;
    size_t batch = 256, samples = 10000;
    int i;

    if (argc < 2)
        usage();
    rng = 88172645463325252ull;
    for (i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0)
            db = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0)
            batch = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--tickets") == 0)
            tickets = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--samples") == 0)
            samples = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0)
            rng ^= strtoull(argv[i + 1], NULL, 10) * 2654435761u;
        else
            usage();
    }
    if (i != argc || db == NULL || batch == 0 || samples == 0)
        usage();
    if (strcmp(argv[1], "build") == 0)
        return build(db, batch);
    if (strcmp(argv[1], "query") == 0 && tickets > 0)
        return query(db, tickets, samples);
    usage();
    return 2;
}
