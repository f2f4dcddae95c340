/*
 * proc.c - process helpers for tests/bench/run.sh.
 *
 *   bench_proc port
 *       prints a TCP port free on 127.0.0.1 now (for nginx's config)
 *   bench_proc run [-n N] [-o FILE] -- COMMAND [ARG...]
 *       runs COMMAND N times (default 1), its stdout to FILE (default
 *       /dev/null), and prints the median, fastest and slowest wall time,
 *       the median run's user and system CPU, the largest ru_maxrss
 *       (wait4) and the largest anonymous RSS seen while it ran (RssAnon
 *       in /proc/PID/status, read every 5 ms), and the last exit status
 *   bench_proc mem PID
 *       prints VmHWM, VmRSS and RssAnon of a running process
 *   bench_proc cpu PID
 *       prints the CPU time (user + system, ms) of a running process's
 *       threads and of its children's, summed by thread name, and in all
 *   bench_proc wait-port PORT [MS]
 *       waits until 127.0.0.1:PORT accepts a connection, at most MS
 *       milliseconds (5000); exit status 1 if it never did
 *
 * Output is one line of key=value pairs; times in ms, memory in KiB.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* A "Name:   1234 kB" line of /proc/PID/status, in KiB; -1 if absent. */
static long
status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    size_t n = strlen(name);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static int
cmd_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("bench_proc port");
        return 2;
    }
    printf("%u\n", (unsigned)ntohs(a.sin_port));
    close(fd);
    return 0;
}

typedef struct cpu_sum {
    struct {
        char name[32];
        long ms;
    } t[32];
    int n;
    long total;
} cpu_sum;

/* Adds the threads of pid, by name, and then its children's (nginx's
 * workers).  Threads of the same name (the HTTP workers) are added up. */
static void
add_cpu(pid_t pid, cpu_sum *sum, int depth)
{
    char path[64], line[1024];
    long tick = sysconf(_SC_CLK_TCK);
    struct dirent *de;
    DIR *dir;
    int i;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if ((dir = opendir(path)) == NULL)
        return;
    while ((de = readdir(dir)) != NULL) {
        char *open, *close_;
        unsigned long ut, st;
        long ms;
        FILE *f;

        if (de->d_name[0] == '.')
            continue;
        snprintf(line, sizeof(line), "%s/%s/children", path, de->d_name);
        if (depth == 0 && (f = fopen(line, "r")) != NULL) {
            long child;

            while (fscanf(f, "%ld", &child) == 1)
                add_cpu((pid_t)child, sum, 1);
            fclose(f);
        }
        snprintf(line, sizeof(line), "%s/%s/stat", path, de->d_name);
        if ((f = fopen(line, "r")) == NULL)
            continue;
        if (fgets(line, sizeof(line), f) == NULL) {
            fclose(f);
            continue;
        }
        fclose(f);
        /* pid (comm) state ...: utime and stime are fields 14 and 15 */
        open = strchr(line, '(');
        close_ = strrchr(line, ')');
        if (!open || !close_ ||
            sscanf(close_ + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                   "%lu %lu",
                   &ut, &st) != 2)
            continue;
        *close_ = '\0';
        ms = (long)((ut + st) * 1000 / (unsigned long)tick);
        for (i = 0; i < sum->n && strcmp(sum->t[i].name, open + 1) != 0; i++)
            ;
        if (i == sum->n && sum->n < 32) {
            snprintf(sum->t[i].name, sizeof(sum->t[i].name), "%s", open + 1);
            sum->t[sum->n++].ms = 0;
        }
        if (i < sum->n)
            sum->t[i].ms += ms;
        sum->total += ms;
    }
    closedir(dir);
}

static int
cmd_cpu(pid_t pid)
{
    cpu_sum sum;
    int i;

    memset(&sum, 0, sizeof(sum));
    add_cpu(pid, &sum, 0);
    if (sum.n == 0) {
        fprintf(stderr, "bench_proc: no process %d\n", (int)pid);
        return 2;
    }
    for (i = 0; i < sum.n; i++) {
        char *c;

        for (c = sum.t[i].name; *c; c++)
            if (*c == ' ' || *c == '=' || *c == ':')
                *c = '_';
        printf("%s=%ld ", sum.t[i].name, sum.t[i].ms);
    }
    printf("total=%ld\n", sum.total);
    return 0;
}

static int
cmd_wait_port(long port, long ms)
{
    struct sockaddr_in a;
    int64_t until = bench_now_ns() + ms * 1000000;
    struct timespec ts = {0, 20000000};

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    do {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        nanosleep(&ts, NULL);
    } while (bench_now_ns() < until);
    fprintf(stderr, "bench_proc: nothing listens on 127.0.0.1:%ld\n", port);
    return 1;
}

typedef struct one_run {
    int64_t wall_ns, user_us, sys_us;
    long maxrss_kb, anon_kb;
    int status;
} one_run;

static int
run_once(char **argv, const char *out, one_run *r)
{
    struct rusage ru;
    int64_t t0 = bench_now_ns();
    struct timespec ts = {0, 5000000};
    struct pollfd pfd;
    pid_t pid, got;
    int status, fd;

    memset(r, 0, sizeof(*r));
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(127);
        close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    /* A pidfd turns readable when the child ends: the wall time is not
     * rounded up to the sampling period. */
    pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
    pfd.events = POLLIN;
    for (;;) {
        long anon = status_kb(pid, "RssAnon");

        if (anon > r->anon_kb)
            r->anon_kb = anon;
        got = wait4(pid, &status, WNOHANG, &ru);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -1;
        if (pfd.fd >= 0)
            poll(&pfd, 1, 5);
        else
            nanosleep(&ts, NULL);
    }
    if (pfd.fd >= 0)
        close(pfd.fd);
    r->wall_ns = bench_now_ns() - t0;
    r->user_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
    r->sys_us = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    r->maxrss_kb = ru.ru_maxrss;
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    return 0;
}

static int
by_wall(const void *a, const void *b)
{
    const one_run *x = a, *y = b;

    return (x->wall_ns > y->wall_ns) - (x->wall_ns < y->wall_ns);
}

static int
cmd_run(int argc, char **argv)
{
    const char *out = "/dev/null";
    long n = 1, i, maxrss = 0, anon = 0;
    one_run *runs, *med;
    int a = 0;

    while (a < argc && strcmp(argv[a], "--") != 0) {
        if (strcmp(argv[a], "-n") == 0 && a + 1 < argc)
            n = strtol(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-o") == 0 && a + 1 < argc)
            out = argv[++a];
        else
            break;
        a++;
    }
    if (a >= argc || strcmp(argv[a], "--") != 0 || a + 1 >= argc || n < 1 ||
        n > 10000) {
        fprintf(stderr, "usage: bench_proc run [-n N] [-o FILE] -- COMMAND "
                        "[ARG...]\n");
        return 2;
    }
    if ((runs = calloc((size_t)n, sizeof(*runs))) == NULL)
        return 2;
    for (i = 0; i < n; i++) {
        if (run_once(argv + a + 1, out, &runs[i]) != 0) {
            perror("bench_proc run");
            return 2;
        }
        if (runs[i].maxrss_kb > maxrss)
            maxrss = runs[i].maxrss_kb;
        if (runs[i].anon_kb > anon)
            anon = runs[i].anon_kb;
    }
    qsort(runs, (size_t)n, sizeof(*runs), by_wall);
    med = &runs[(n - 1) / 2];
    printf("runs=%ld median_ms=%.3f min_ms=%.3f max_ms=%.3f user_ms=%.1f "
           "sys_ms=%.1f maxrss_kb=%ld anon_kb=%ld status=%d\n",
           n, (double)med->wall_ns / 1e6, (double)runs[0].wall_ns / 1e6,
           (double)runs[n - 1].wall_ns / 1e6, (double)med->user_us / 1e3,
           (double)med->sys_us / 1e3, maxrss, anon, runs[n - 1].status);
    free(runs);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "port") == 0)
        return cmd_port();
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "wait-port") == 0)
        return cmd_wait_port(strtol(argv[2], NULL, 10),
                             argc == 4 ? strtol(argv[3], NULL, 10) : 5000);
    if (argc == 3 && strcmp(argv[1], "cpu") == 0)
        return cmd_cpu((pid_t)strtol(argv[2], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "mem") == 0) {
        pid_t pid = (pid_t)strtol(argv[2], NULL, 10);

        printf("hwm_kb=%ld rss_kb=%ld anon_kb=%ld\n", status_kb(pid, "VmHWM"),
               status_kb(pid, "VmRSS"), status_kb(pid, "RssAnon"));
        return 0;
    }
    fprintf(stderr, "usage: bench_proc port | run [-n N] [-o FILE] -- "
                    "COMMAND [ARG...] | mem PID | cpu PID | wait-port PORT "
                    "[MS]\n");
    return 2;
}
