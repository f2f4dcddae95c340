/*
 * bench_util.h - what the benchmark programs share: clocks, a workload
 * file in memory, percentiles.  Never part of libqgate.
 */
#ifndef QG_BENCH_UTIL_H
#define QG_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/* This process's CPU time (user + system) in nanoseconds. */
int64_t bench_cpu_ns(void);

/* A file of one body per line, read whole; lines point into buf. */
typedef struct bench_lines {
    char *buf;
    const char **line;
    size_t *len;
    size_t n;
    size_t bytes; /* of the bodies, without newlines */
} bench_lines;

/* Reads at most max lines (0: all).  Returns 0, or -1 with errno set. */
int bench_lines_read(const char *path, size_t max, bench_lines *out);
void bench_lines_free(bench_lines *l);

/* Sorts v in place and returns its nearest-rank p-th percentile
 * (0 < p <= 100); 0 for an empty set. */
int64_t bench_percentile(int64_t *v, size_t n, double p);
/* The same on a v already sorted. */
int64_t bench_percentile_sorted(const int64_t *v, size_t n, double p);
void bench_sort(int64_t *v, size_t n);

/* A store folder made by a benchmark: removed (data.mdb, lock.mdb, the
 * folder), and the size of its data.mdb in bytes (0 when there is none). */
void bench_store_remove(const char *dir);
int64_t bench_store_bytes(const char *dir);

#endif /* QG_BENCH_UTIL_H */
