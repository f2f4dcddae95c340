/*
 * bench_util.c - clocks, workload files and percentiles for the benchmark
 * programs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

int64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
bench_cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

int
bench_lines_read(const char *path, size_t max, bench_lines *out)
{
    FILE *f;
    long size;
    size_t got, i, cap = 0;
    char *p, *end;

    memset(out, 0, sizeof(*out));
    if ((f = fopen(path, "rb")) == NULL)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    if ((out->buf = malloc((size_t)size + 1)) == NULL)
        goto fail;
    got = fread(out->buf, 1, (size_t)size, f);
    if (got != (size_t)size)
        goto fail;
    out->buf[got] = '\n';
    fclose(f);
    f = NULL;
    for (p = out->buf, end = out->buf + got; p < end; p = p + i + 1) {
        char *nl = memchr(p, '\n', (size_t)(end - p) + 1);

        i = (size_t)(nl - p);
        if (i == 0)
            continue;
        if (out->n == cap) {
            const char **l;
            size_t *n;

            cap = cap ? cap * 2 : 4096;
            l = realloc(out->line, cap * sizeof(*l));
            n = l ? realloc(out->len, cap * sizeof(*n)) : NULL;
            if (l)
                out->line = l;
            if (n == NULL)
                goto fail;
            out->len = n;
        }
        out->line[out->n] = p;
        out->len[out->n] = i;
        out->bytes += i;
        if (++out->n == max)
            break;
    }
    return 0;
fail:
    if (f)
        fclose(f);
    bench_lines_free(out);
    if (errno == 0)
        errno = EIO;
    return -1;
}

void
bench_lines_free(bench_lines *l)
{
    free(l->buf);
    free(l->line);
    free(l->len);
    memset(l, 0, sizeof(*l));
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

void
bench_sort(int64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp64);
}

int64_t
bench_percentile_sorted(const int64_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

int64_t
bench_percentile(int64_t *v, size_t n, double p)
{
    bench_sort(v, n);
    return bench_percentile_sorted(v, n, p);
}

void
bench_store_remove(const char *dir)
{
    char path[4096 + 16];

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

int64_t
bench_store_bytes(const char *dir)
{
    char path[4096 + 16];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}
