/*
 * log.c - structured logs: one JSON object per line.
 *
 * Messages and fields are written by the gate itself; values that come
 * from outside (paths, addresses, URLs, error texts) reach a line only
 * through log_escape() or log_string(), which escape them as JSON strings.
 * The secret is never passed here.
 *
 * A line is written whole with one write(2), under one lock, so lines
 * never interleave.  The committer gathers a committed group's lines with
 * log_add() and writes them with one write (log_flush()): a system call a
 * group rather than one a delivery, the group's lines in commit order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static const char *log_path;

void
log_open(const char *path)
{
    pthread_mutex_lock(&log_lock);
    log_path = path;
    log_file = NULL;
    if (path)
        log_file = fopen(path, "a");
    pthread_mutex_unlock(&log_lock);
}

int
log_reopen(void)
{
    FILE *f;
    int rc = 0;

    pthread_mutex_lock(&log_lock);
    if (log_path) {
        if ((f = fopen(log_path, "a")) != NULL) {
            if (log_file)
                fclose(log_file);
            log_file = f;
        } else {
            rc = -1; /* keep writing where we were */
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

/* A line's head, up to its fields; stamp() gives its first two values. */
#define HEAD "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\""

static void
stamp(char when[32], long *ms)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    *ms = ts.tv_nsec / 1000000;
}

static void vlog_event(const char *level, const char *msg,
                       const char *fields_fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
vlog_event(const char *level, const char *msg, const char *fields_fmt,
           va_list ap)
{
    char when[32];
    long ms;
    FILE *f;

    stamp(when, &ms);
    pthread_mutex_lock(&log_lock);
    f = log_file ? log_file : stderr;
    fprintf(f, HEAD, when, ms, level, msg);
    if (fields_fmt)
        vfprintf(f, fields_fmt, ap);
    fputs("}\n", f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}

void
log_event(const char *level, const char *msg, const char *fields_fmt, ...)
{
    va_list ap;

    va_start(ap, fields_fmt);
    vlog_event(level, msg, fields_fmt, ap);
    va_end(ap);
}

/* Appends what fmt makes of ap to l, growing it.  Returns 0, or -1 when
 * no memory was found: then l's lines are as they were. */
static int vappend(log_lines *l, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static int
vappend(log_lines *l, const char *fmt, va_list ap)
{
    size_t room = l->cap - l->len, cap;
    char *grown;
    va_list again;
    int n;

    va_copy(again, ap);
    n = vsnprintf(l->buf ? l->buf + l->len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n >= room) {
        for (cap = l->cap ? l->cap : 4096; cap - l->len <= (size_t)n;)
            cap *= 2;
        if ((grown = realloc(l->buf, cap)) == NULL) {
            n = -1;
        } else {
            l->buf = grown;
            l->cap = cap;
            vsnprintf(l->buf + l->len, cap - l->len, fmt, again);
        }
    }
    va_end(again);
    if (n < 0)
        return -1;
    l->len += (size_t)n;
    return 0;
}

static int append(log_lines *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
append(log_lines *l, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vappend(l, fmt, ap);
    va_end(ap);
    return rc;
}

void
log_add(log_lines *l, const char *level, const char *msg,
        const char *fields_fmt, ...)
{
    size_t was = l->len;
    char when[32];
    long ms;
    va_list ap;
    int rc;

    stamp(when, &ms);
    rc = append(l, HEAD, when, ms, level, msg);
    if (rc == 0 && fields_fmt) {
        va_start(ap, fields_fmt);
        rc = vappend(l, fields_fmt, ap);
        va_end(ap);
    }
    if (rc == 0 && (rc = append(l, "}\n")) == 0)
        return;
    /* No memory for the line here: write those before it, then the line
     * on its own, so that none is lost or out of order. */
    l->len = was;
    log_flush(l);
    va_start(ap, fields_fmt);
    vlog_event(level, msg, fields_fmt, ap);
    va_end(ap);
}

void
log_flush(log_lines *l)
{
    const char *p = l->buf;
    size_t left = l->len;
    ssize_t n;
    FILE *f;

    if (left == 0)
        return;
    pthread_mutex_lock(&log_lock);
    f = log_file ? log_file : stderr;
    fflush(f); /* empty: log_event() flushes each line */
    while (left > 0) {
        if ((n = write(fileno(f), p, left)) < 0) {
            if (errno == EINTR)
                continue;
            break; /* as fflush() would: the lines are dropped */
        }
        p += n;
        left -= (size_t)n;
    }
    pthread_mutex_unlock(&log_lock);
    l->len = 0;
}

void
log_lines_free(log_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

char *
log_escape(const char *s, char *dst, size_t len)
{
    size_t n = 0;

    for (; *s && n + 7 < len; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(dst + n, len - n, "\\u%04x", ch);
        } else {
            dst[n++] = (char)ch;
        }
    }
    if (len > 0)
        dst[n < len ? n : len - 1] = '\0';
    return dst;
}

char *
log_string(const char *s, char *dst, size_t len)
{
    if (s == NULL || len < 8) {
        snprintf(dst, len, "null");
        return dst;
    }
    dst[0] = '"';
    log_escape(s, dst + 1, len - 2);
    strcat(dst, "\"");
    return dst;
}
