/*
 * alternate.c - start-up times of whole processes, the commands in turn.
 *
 *   bench_alternate RUNS COMMAND...
 *
 * Runs each COMMAND (one string, split at spaces, found on PATH) once in
 * turn, RUNS times over after 5 rounds of warm-up, stdout to /dev/null,
 * and prints for each its median and fastest wall time and its mean CPU
 * time (user + system, wait4), in ms; and for each COMMAND after the
 * first, the median over the rounds of its time over the one before it's
 * (list a program before and after a change side by side).
 * hyperfine runs one command's runs together, so that a neighbour's build
 * starting halfway through the run falls on whichever commands come last;
 * here the two runs of a pair are a few milliseconds apart, and their
 * ratio is what a shared machine's load moves least
 * (docs/PERFORMANCE.md, "CLI start-up").
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#define WARMUP  5
#define MAXARGS 32

extern char **environ;

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

/* One run of argv: its wall time, its CPU time added to *cpu. */
static double
run(char **argv, const posix_spawn_file_actions_t *fa, double *cpu)
{
    struct timespec a, b;
    struct rusage ru;
    pid_t pid;
    int status;

    clock_gettime(CLOCK_MONOTONIC, &a);
    if (posix_spawnp(&pid, argv[0], fa, NULL, argv, environ) != 0 ||
        wait4(pid, &status, 0, &ru) != pid) {
        fprintf(stderr, "bench_alternate: cannot run %s\n", argv[0]);
        exit(2);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    *cpu += ms(ru.ru_utime) + ms(ru.ru_stime);
    return (double)(b.tv_sec - a.tv_sec) * 1e3 +
           (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

int
main(int argc, char **argv)
{
    posix_spawn_file_actions_t fa;
    char *(*args)[MAXARGS], **label;
    double *t, *cpu, *r;
    int runs, n, i, j, k;

    if (argc < 3 || (runs = atoi(argv[1])) < 1) {
        fprintf(stderr, "usage: bench_alternate RUNS COMMAND...\n");
        return 2;
    }
    n = argc - 2;
    args = calloc((size_t)n, sizeof(*args));
    label = calloc((size_t)n, sizeof(*label));
    t = calloc((size_t)n * (size_t)runs, sizeof(*t));
    cpu = calloc((size_t)n, sizeof(*cpu));
    r = calloc((size_t)runs, sizeof(*r));
    if (!args || !label || !t || !cpu || !r)
        return 2;
    for (j = 0; j < n; j++) {
        char *tok;

        if ((label[j] = strdup(argv[j + 2])) == NULL)
            return 2;
        tok = strtok(argv[j + 2], " ");

        for (k = 0; tok && k < MAXARGS - 1; k++, tok = strtok(NULL, " "))
            args[j][k] = tok;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    for (i = -WARMUP; i < runs; i++) {
        for (j = 0; j < n; j++) {
            double dummy = 0, w = run(args[j], &fa, i < 0 ? &dummy : &cpu[j]);

            if (i >= 0)
                t[(size_t)j * (size_t)runs + (size_t)i] = w;
        }
    }
    for (j = 1; j < n; j++) {
        for (i = 0; i < runs; i++)
            r[i] = t[(size_t)j * (size_t)runs + (size_t)i] /
                   t[(size_t)(j - 1) * (size_t)runs + (size_t)i];
        qsort(r, (size_t)runs, sizeof(*r), cmp_double);
        printf("%s / %s: median ratio %.3f (quartiles %.3f, %.3f)\n", label[j],
               label[j - 1], r[runs / 2], r[runs / 4], r[3 * runs / 4]);
    }
    for (j = 0; j < n; j++) {
        double *tj = t + (size_t)j * (size_t)runs;

        qsort(tj, (size_t)runs, sizeof(*tj), cmp_double);
        printf("%-40s median %6.2f ms  fastest %6.2f ms  CPU %5.2f ms\n",
               label[j], tj[runs / 2], tj[0], cpu[j] / runs);
    }
    return 0;
}
