/*
 * time.c - the clock, and ISO 8601 with an offset: the one place the
 * library reads the time or writes and parses timestamps.  The engine,
 * the store, the outbox and the decoder all use it; it uses none of them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qgate_int.h"

int64_t
qg_time_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int
qg_time_parse(const char *s, int64_t *ms, int32_t *offset_s)
{
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0, scale;
    const char *p = s;

    if (s == NULL || ms == NULL || offset_s == NULL)
        return QG_EINVAL;
    if (strlen(s) < 20 || digits(p, 4, &y) || p[4] != '-' ||
        digits(p + 5, 2, &mo) || p[7] != '-' || digits(p + 8, 2, &d) ||
        (p[10] != 'T' && p[10] != ' ') || digits(p + 11, 2, &h) ||
        p[13] != ':' || digits(p + 14, 2, &mi) || p[16] != ':' ||
        digits(p + 17, 2, &sec))
        return QG_EINVAL;
    p += 19;
    if (*p == '.') {
        for (p++, scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += scale * (*p - '0');
        if (p[-1] == '.')
            return QG_EINVAL;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh))
            return QG_EINVAL;
        p += 3;
        if (*p == ':')
            p++;
        if (digits(p, 2, &om))
            return QG_EINVAL;
        p += 2;
    } else {
        return QG_EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400))) ||
        h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
        return QG_EINVAL;
    *offset_s = sign * (oh * 3600 + om * 60);
    *ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
            mi * 60 + sec) -
           *offset_s) *
              1000 +
          frac;
    return 0;
}

char *
qg_time_format(int64_t ms, int32_t offset_s, char *dst, size_t len)
{
    int64_t t = ms / 1000 + offset_s, days, z, era, y;
    unsigned doe, yoe, doy, mp, d, m, secs;
    int32_t off = offset_s < 0 ? -offset_s : offset_s;

    if (ms % 1000 < 0)
        t--;
    days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    secs = (unsigned)(t - days * 86400);
    /* civil_from_days, the inverse of days_from_civil */
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    snprintf(dst, len, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u%c%02d:%02d", y,
             m, d, secs / 3600, secs / 60 % 60, secs % 60,
             offset_s < 0 ? '-' : '+', (int)(off / 3600), (int)(off / 60 % 60));
    return dst;
}
