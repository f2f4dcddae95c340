/*
 * promcheck.c - a checker for the Prometheus text exposition format
 * (promcheck.h).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promcheck.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A checker for the Prometheus text exposition format (version 0.0.4):
 * "# HELP name text" and "# TYPE name type" lines, other comments, and
 * samples `name{label="value",...} value [timestamp]`.  Every sample's
 * family is typed before it and its lines are together; histogram buckets
 * are cumulative per label set and end at le="+Inf", equal to _count.
 * Returns the number of samples, or -1 with err set.
 */
#define PROM_FAMILIES 64
#define PROM_HSAMPLES 512

typedef struct prom_family {
    char name[128], type[12];
    int helped, closed;
} prom_family;

typedef struct prom_hsample {
    int family;
    int kind; /* 0 _bucket, 1 _sum, 2 _count */
    char group[256];
    double le, value;
} prom_hsample;

typedef struct prom {
    prom_family fam[PROM_FAMILIES];
    int nfam, current;
    prom_hsample hs[PROM_HSAMPLES];
    int nhs;
} prom;

static int
prom_name(const char **p, char *out, size_t cap, int label)
{
    const char *s = *p;
    size_t n = 0;

#define NAME_CHAR(c, first)                                                    \
    (isalpha((unsigned char)(c)) || (c) == '_' || (!label && (c) == ':') ||    \
     (!(first) && isdigit((unsigned char)(c))))
    if (!NAME_CHAR(s[0], 1))
        return -1;
    while (NAME_CHAR(s[n], 0))
        n++;
#undef NAME_CHAR
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 0;
}

static int
prom_float(const char *s, double *v)
{
    char *end;

    if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
        *v = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *v = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return 0;
    }
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *v = strtod(s, &end);
    return *end == '\0' && errno == 0 && isfinite(*v) ? 0 : -1;
}

static int
prom_find(prom *pm, const char *name)
{
    int i;

    for (i = 0; i < pm->nfam; i++)
        if (strcmp(pm->fam[i].name, name) == 0)
            return i;
    return -1;
}

/* The family a HELP, TYPE or sample line names becomes the current one;
 * a family that was left may not come back. */
static int
prom_enter(prom *pm, const char *name, char *err, size_t errlen)
{
    int f = prom_find(pm, name);

    if (f < 0) {
        if (pm->nfam == PROM_FAMILIES) {
            snprintf(err, errlen, "too many families");
            return -1;
        }
        f = pm->nfam++;
        memset(&pm->fam[f], 0, sizeof(pm->fam[f]));
        snprintf(pm->fam[f].name, sizeof(pm->fam[f].name), "%s", name);
    }
    if (pm->fam[f].closed) {
        snprintf(err, errlen, "family %s is split", name);
        return -1;
    }
    if (pm->current >= 0 && pm->current != f)
        pm->fam[pm->current].closed = 1;
    pm->current = f;
    return f;
}

/* The typed family of a sample name, and which histogram part it is. */
static int
prom_family_of(prom *pm, const char *name, int *kind)
{
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    char base[128];
    size_t n = strlen(name), k;
    int f = prom_find(pm, name);

    *kind = -1;
    if (f >= 0 && pm->fam[f].type[0] && strcmp(pm->fam[f].type, "histogram"))
        return f;
    for (k = 0; k < COUNT(suffix); k++) {
        size_t s = strlen(suffix[k]);

        if (n <= s || strcmp(name + n - s, suffix[k]) != 0)
            continue;
        snprintf(base, sizeof(base), "%.*s", (int)(n - s), name);
        f = prom_find(pm, base);
        if (f >= 0 && (strcmp(pm->fam[f].type, "histogram") == 0 ||
                       (k > 0 && strcmp(pm->fam[f].type, "summary") == 0))) {
            *kind = (int)k;
            return f;
        }
    }
    return -1;
}

static int
prom_sample(prom *pm, const char *line, char *err, size_t errlen)
{
    char name[128], label[128], group[256] = "", value[64], tsbuf[32];
    const char *p = line, *vstart;
    double v, le = NAN;
    int f, kind, has_le = 0;
    size_t g = 0, n;

    if (prom_name(&p, name, sizeof(name), 0)) {
        snprintf(err, errlen, "bad metric name");
        return -1;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (prom_name(&p, label, sizeof(label), 1) || *p++ != '=' ||
                *p++ != '"') {
                snprintf(err, errlen, "bad label in %s", name);
                return -1;
            }
            vstart = p;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                        snprintf(err, errlen, "bad escape in %s", name);
                        return -1;
                    }
                    p++;
                }
                p++;
            }
            if (*p != '"') {
                snprintf(err, errlen, "unterminated label value in %s", name);
                return -1;
            }
            if (strcmp(label, "le") == 0) {
                char buf[64];

                snprintf(buf, sizeof(buf), "%.*s", (int)(p - vstart), vstart);
                if (prom_float(buf, &le)) {
                    snprintf(err, errlen, "bad le \"%s\"", buf);
                    return -1;
                }
                has_le = 1;
            } else {
                n = (size_t)snprintf(group + g, sizeof(group) - g,
                                     "%s%s=\"%.*s\"", g ? "," : "", label,
                                     (int)(p - vstart), vstart);
                g = g + n < sizeof(group) ? g + n : sizeof(group) - 1;
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}') {
                snprintf(err, errlen, "expected , or } in %s", name);
                return -1;
            }
        }
        p++;
    }
    if (*p++ != ' ') {
        snprintf(err, errlen, "expected a blank after %s", name);
        return -1;
    }
    n = strcspn(p, " ");
    snprintf(value, sizeof(value), "%.*s", (int)n, p);
    if (n >= sizeof(value) || prom_float(value, &v)) {
        snprintf(err, errlen, "bad value \"%s\" of %s", value, name);
        return -1;
    }
    p += n;
    if (*p == ' ') {
        p++;
        n = strspn(p, "-0123456789");
        snprintf(tsbuf, sizeof(tsbuf), "%s", p);
        if (n == 0 || p[n] != '\0') {
            snprintf(err, errlen, "bad timestamp \"%s\" of %s", tsbuf, name);
            return -1;
        }
    }
    if ((f = prom_family_of(pm, name, &kind)) < 0) {
        snprintf(err, errlen, "sample %s has no TYPE before it", name);
        return -1;
    }
    if (prom_enter(pm, pm->fam[f].name, err, errlen) < 0)
        return -1;
    if (strcmp(pm->fam[f].type, "histogram") == 0) {
        if (kind < 0 || (kind == 0) != has_le) {
            snprintf(err, errlen, "%s: not a histogram sample", name);
            return -1;
        }
        if (pm->nhs == PROM_HSAMPLES) {
            snprintf(err, errlen, "too many histogram samples");
            return -1;
        }
        pm->hs[pm->nhs].family = f;
        pm->hs[pm->nhs].kind = kind;
        snprintf(pm->hs[pm->nhs].group, sizeof(pm->hs[0].group), "%s", group);
        pm->hs[pm->nhs].le = le;
        pm->hs[pm->nhs].value = v;
        pm->nhs++;
    }
    return 0;
}

static int
prom_comment(prom *pm, const char *line, char *err, size_t errlen)
{
    static const char *const types[] = {"counter", "gauge", "histogram",
                                        "summary", "untyped"};
    char name[128];
    const char *p;
    size_t k;
    int f, help = strncmp(line, "# HELP ", 7) == 0;

    if (!help && strncmp(line, "# TYPE ", 7) != 0)
        return 0; /* a comment */
    p = line + 7;
    if (prom_name(&p, name, sizeof(name), 0) || (*p != ' ' && *p != '\0')) {
        snprintf(err, errlen, "bad name in \"%.64s\"", line);
        return -1;
    }
    if ((f = prom_enter(pm, name, err, errlen)) < 0)
        return -1;
    if (*p == ' ')
        p++;
    if (help) {
        if (pm->fam[f].helped++) {
            snprintf(err, errlen, "second HELP for %s", name);
            return -1;
        }
        for (; *p; p++)
            if (*p == '\\' && p[1] != '\\' && p[1] != 'n') {
                snprintf(err, errlen, "bad escape in HELP of %s", name);
                return -1;
            } else if (*p == '\\') {
                p++;
            }
        return 0;
    }
    for (k = 0; k < COUNT(types); k++)
        if (strcmp(p, types[k]) == 0)
            break;
    if (k == COUNT(types)) {
        snprintf(err, errlen, "%s: unknown type \"%s\"", name, p);
        return -1;
    }
    if (pm->fam[f].type[0]) {
        snprintf(err, errlen, "second TYPE for %s", name);
        return -1;
    }
    snprintf(pm->fam[f].type, sizeof(pm->fam[f].type), "%s", types[k]);
    return 0;
}

/* Per histogram and label set: le rising, counts not falling, ending at
 * +Inf equal to _count, with a _sum. */
static int
prom_histograms(prom *pm, char *err, size_t errlen)
{
    int i, j;

    for (i = 0; i < pm->nhs; i++) {
        prom_hsample *first = &pm->hs[i], *last = NULL;
        int seen_count = 0, seen_sum = 0;

        if (first->kind != 0)
            continue;
        for (j = 0; j < i; j++)
            if (pm->hs[j].kind == 0 && pm->hs[j].family == first->family &&
                strcmp(pm->hs[j].group, first->group) == 0)
                break;
        if (j < i)
            continue; /* this group was checked from its first bucket */
        for (j = i; j < pm->nhs; j++) {
            prom_hsample *s = &pm->hs[j];

            if (s->family != first->family || strcmp(s->group, first->group))
                continue;
            if (s->kind == 0) {
                if (last && !(s->le > last->le && s->value >= last->value)) {
                    snprintf(err, errlen,
                             "%s{%s}: bucket le=%g (%g) after le=%g (%g)",
                             pm->fam[s->family].name, s->group, s->le, s->value,
                             last->le, last->value);
                    return -1;
                }
                last = s;
            } else if (s->kind == 1) {
                seen_sum++;
            } else {
                seen_count++;
                if (!last || !isinf(last->le) || last->value != s->value) {
                    snprintf(err, errlen,
                             "%s{%s}: _count %g, last bucket le=%g %g",
                             pm->fam[s->family].name, s->group, s->value,
                             last ? last->le : NAN, last ? last->value : NAN);
                    return -1;
                }
            }
        }
        if (seen_count != 1 || seen_sum != 1 || !isinf(last->le)) {
            snprintf(err, errlen, "%s{%s}: %d _count, %d _sum, no +Inf",
                     pm->fam[first->family].name, first->group, seen_count,
                     seen_sum);
            return -1;
        }
    }
    for (i = 0; i < pm->nhs; i++)
        if (pm->hs[i].kind != 0) {
            for (j = 0; j < pm->nhs; j++)
                if (pm->hs[j].kind == 0 &&
                    pm->hs[j].family == pm->hs[i].family &&
                    strcmp(pm->hs[j].group, pm->hs[i].group) == 0)
                    break;
            if (j == pm->nhs) {
                snprintf(err, errlen, "%s{%s}: no buckets",
                         pm->fam[pm->hs[i].family].name, pm->hs[i].group);
                return -1;
            }
        }
    return 0;
}

int
prom_check(const char *text, char *err, size_t errlen)
{
    static prom pm;
    char line[1024], where[64];
    const char *p = text, *nl;
    int samples = 0, lineno = 0, rc;

    memset(&pm, 0, sizeof(pm));
    pm.current = -1;
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        snprintf(err, errlen, "the text does not end with a newline");
        return -1;
    }
    for (; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        lineno++;
        if ((size_t)(nl - p) >= sizeof(line)) {
            snprintf(err, errlen, "line %d is too long", lineno);
            return -1;
        }
        snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
        if (line[0] == '\0')
            continue;
        if (line[0] == '#') {
            rc = prom_comment(&pm, line, err, errlen);
        } else {
            rc = prom_sample(&pm, line, err, errlen);
            samples++;
        }
        if (rc) {
            snprintf(where, sizeof(where), " (line %d)", lineno);
            if (strlen(err) + strlen(where) < errlen)
                strcat(err, where);
            return -1;
        }
    }
    if (prom_histograms(&pm, err, errlen))
        return -1;
    return samples;
}
