/*
 * bench_chain.c - what the hash chain costs a delivery: the hashing alone
 * (the body's SHA-256, the leaf's, the entry's, as chain.c computes them),
 * and the engine end to end with the chain and without it, on the same
 * deliveries.
 *
 *   bench_chain --day FILE --secret-file F --dir DIR [--max N] [--rounds R]
 *
 * FILE holds signed deliveries, one per line (tests/gen_day).  The engine
 * runs apply the first N (default 100000) to an empty store in DIR, nosync
 * with group commits of 256 (where the store's own cost is smallest, so
 * the chain's share is largest), R times each way (default 5), the two
 * ways alternating; the best run of each is kept.  "Without" is the same
 * store with the chain's hooks switched off (st->has_chain = 0): the
 * databases are there, nothing is appended to them.  The body's SHA-256,
 * which the engine takes for the chain while it examines a delivery, is
 * in both ways: the difference is the chain's work under the store's
 * writer.  Prints Markdown.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench_util.h"
#include "qgate_int.h"
#include "store_int.h"

#define BATCH 256

static bench_lines day;
static unsigned char secret[4096];
static size_t secret_len;

static void die(const char *what, const char *why) __attribute__((noreturn));

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "bench_chain: %s: %s\n", what, why);
    exit(2);
}

/* The three SHA-256s the chain adds to an accepted step, over the same
 * lengths: the body, the leaf's input, the entry's. */
static double
hashing_ns(size_t n)
{
    unsigned char leaf_in[RECORD_HDR + FACTS_LEN + QG__DIGEST_LEN],
        entry_in[QG__DIGEST_LEN + 104], out[QG__DIGEST_LEN];
    int64_t c0;
    size_t i;
    unsigned sink = 0;

    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx;
    unsigned int len;

    if (md == NULL)
        die("SHA256", "cannot fetch");
    memset(leaf_in, 0x5a, sizeof(leaf_in));
    memset(entry_in, 0xa5, sizeof(entry_in));
    /* as chain.c hashes: the algorithm fetched once, a context a hash */
#define SHA(p, l, o)                                                           \
    do {                                                                       \
        ctx = EVP_MD_CTX_new();                                                \
        EVP_DigestInit_ex2(ctx, md, NULL);                                     \
        EVP_DigestUpdate(ctx, p, l);                                           \
        EVP_DigestFinal_ex(ctx, o, &len);                                      \
        EVP_MD_CTX_free(ctx);                                                  \
    } while (0)
    c0 = bench_cpu_ns();
    for (i = 0; i < n; i++) {
        SHA(day.line[i], day.len[i], leaf_in + RECORD_HDR + FACTS_LEN);
        SHA(leaf_in, sizeof(leaf_in), entry_in + 40);
        SHA(entry_in, sizeof(entry_in), out);
        sink += out[0];
    }
    EVP_MD_free(md);
    if (sink == 0xffffffffu)
        puts("");
    return (double)(bench_cpu_ns() - c0) / (double)n;
}

typedef struct run {
    int64_t wall_ns, cpu_ns, bytes;
    size_t accepted;
} run;

static void
apply(const char *dir, size_t n, int chain, run *out)
{
    qg_store_options o;
    qg_store *st;
    qg_engine *eng;
    qg_body bodies[BATCH];
    qg_result res[BATCH];
    int rcs[BATCH], rc;
    size_t i, j, k;
    int64_t t0, c0;

    memset(out, 0, sizeof(*out));
    bench_store_remove(dir);
    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.durability = QG_NOSYNC;
    o.flags = QG_OUTBOX;
    if ((rc = qg_store_open(&o, &st)))
        die(dir, qg_strerror(rc));
    st->has_chain = chain;
    if ((rc = qg_engine_new(&eng)) ||
        (rc = qg_engine_set_secret(eng, secret, secret_len)))
        die("engine", qg_strerror(rc));
    t0 = bench_now_ns();
    c0 = bench_cpu_ns();
    for (i = 0; i < n; i += k) {
        k = n - i < BATCH ? n - i : BATCH;
        for (j = 0; j < k; j++) {
            bodies[j].body = day.line[i + j];
            bodies[j].len = day.len[i + j];
        }
        if ((rc = qg_engine_apply_batch(eng, st, bodies, k, res, rcs)))
            die("qg_engine_apply_batch", qg_strerror(rc));
        for (j = 0; j < k; j++)
            out->accepted += rcs[j] == 0 && res[j].verdict == QG_ACCEPTED;
    }
    out->wall_ns = bench_now_ns() - t0;
    out->cpu_ns = bench_cpu_ns() - c0;
    qg_engine_free(eng);
    qg_store_close(st);
    out->bytes = bench_store_bytes(dir);
    bench_store_remove(dir);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"day", required_argument, NULL, 'd'},
        {"secret-file", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'D'},
        {"max", required_argument, NULL, 'm'},
        {"rounds", required_argument, NULL, 'r'},
        {0}};
    const char *day_path = NULL, *secret_path = NULL, *dir = NULL;
    size_t max = 100000, n, r, rounds = 5;
    run best[2], got;
    double hash_ns, d_cpu, d_wall;
    FILE *f;
    int opt, c;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'd')
            day_path = optarg;
        else if (opt == 's')
            secret_path = optarg;
        else if (opt == 'D')
            dir = optarg;
        else if (opt == 'm')
            max = strtoul(optarg, NULL, 10);
        else if (opt == 'r')
            rounds = strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    if (!day_path || !secret_path || !dir || rounds == 0) {
        fprintf(stderr, "usage: bench_chain --day FILE --secret-file F --dir "
                        "DIR [--max N] [--rounds R]\n");
        return 2;
    }
    if ((f = fopen(secret_path, "rb")) == NULL)
        die(secret_path, strerror(errno));
    secret_len = fread(secret, 1, sizeof(secret), f);
    fclose(f);
    while (secret_len && secret[secret_len - 1] == '\n')
        secret_len--;
    if (bench_lines_read(day_path, max, &day) != 0)
        die(day_path, strerror(errno));
    n = day.n;

    hash_ns = hashing_ns(n);
    for (c = 0; c < 2; c++)
        best[c].cpu_ns = best[c].wall_ns = INT64_MAX;
    for (r = 0; r < rounds; r++) {
        for (c = 1; c >= 0; c--) {
            apply(dir, n, c, &got);
            if (got.cpu_ns < best[c].cpu_ns)
                best[c].cpu_ns = got.cpu_ns;
            if (got.wall_ns < best[c].wall_ns)
                best[c].wall_ns = got.wall_ns;
            best[c].bytes = got.bytes;
            best[c].accepted = got.accepted;
        }
    }
    d_cpu = (double)(best[1].cpu_ns - best[0].cpu_ns) / (double)n / 1e3;
    d_wall = (double)(best[1].wall_ns - best[0].wall_ns) / (double)n / 1e3;
    printf("%zu deliveries (%zu accepted), %.0f bytes a line on average; "
           "nosync, group commit of %d; best of %zu runs each.\n\n",
           n, best[1].accepted, (double)day.bytes / (double)n, BATCH, rounds);
    printf("| | CPU us/delivery | wall us/delivery | data.mdb bytes/delivery "
           "|\n|---|---:|---:|---:|\n");
    printf("| without the chain | %.2f | %.2f | %.0f |\n",
           (double)best[0].cpu_ns / (double)n / 1e3,
           (double)best[0].wall_ns / (double)n / 1e3,
           (double)best[0].bytes / (double)n);
    printf("| with the chain | %.2f | %.2f | %.0f |\n",
           (double)best[1].cpu_ns / (double)n / 1e3,
           (double)best[1].wall_ns / (double)n / 1e3,
           (double)best[1].bytes / (double)n);
    printf("| the chain's cost | %.2f | %.2f | %.0f |\n\n", d_cpu, d_wall,
           (double)(best[1].bytes - best[0].bytes) / (double)n);
    printf("The hashing alone (SHA-256 of the body, of the leaf's %d bytes, "
           "of the entry's %d): %.3f us a delivery.\n",
           RECORD_HDR + FACTS_LEN + QG__DIGEST_LEN, QG__DIGEST_LEN + 104,
           hash_ns / 1e3);
    bench_lines_free(&day);
    return 0;
}
