/*
 * log.c - structured logs: one JSON object per line.
 *
 * Messages and fields are written by the gate itself; values that come
 * from outside (paths, addresses, URLs, error texts) reach a line only
 * through log_escape() or log_string(), which escape them as JSON strings.
 * The secret is never passed here.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

void
log_event(const char *level, const char *msg, const char *fields_fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    va_list ap;
    FILE *f;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    f = log_file ? log_file : stderr;
    fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"", when,
            ts.tv_nsec / 1000000, level, msg);
    if (fields_fmt) {
        va_start(ap, fields_fmt);
        vfprintf(f, fields_fmt, ap);
        va_end(ap);
    }
    fputs("}\n", f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
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
