/*
 * errors.c - names and messages of error codes, verdicts and reasons.
 * All generated from the X-macro tables in qgate.h.
 */
#include <string.h>

#include "qgate_int.h"

/* Every code in its range, which -1 (QG_ILLEGAL, and what C functions
 * return) is not. */
#define QG__ERR(name, val, msg)                                                \
    _Static_assert((val) >= QG_ERRNO_MIN && (val) <= QG_ERRNO_MAX,             \
                   "QG_" #name ": outside QG_ERRNO_MIN..QG_ERRNO_MAX");
QG_ERRNO_MAP(QG__ERR)
#undef QG__ERR
_Static_assert(QG_ILLEGAL > QG_ERRNO_MAX, "QG_ILLEGAL is no error code");

const char *
qg_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define QG__ERR(name, val, msg)                                                \
    case QG_##name:                                                            \
        return msg;
        QG_ERRNO_MAP(QG__ERR)
#undef QG__ERR
    }
    return "unknown error";
}

const char *
qg_err_name(int code)
{
    switch (code) {
    case 0:
        return "QG_OK";
#define QG__ERR(name, val, msg)                                                \
    case QG_##name:                                                            \
        return "QG_" #name;
        QG_ERRNO_MAP(QG__ERR)
#undef QG__ERR
    }
    return "QG_UNKNOWN";
}

const char *
qg_verdict_name(qg_verdict v)
{
    static const char *const names[] = {
        "accepted",  "duplicate", "rejected", "unauthenticated",
        "malformed", "ignored",   "held"};

    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : NULL;
}

/* The table's values are 0..n-1 with no gap: as many entries as the
 * count (the last value + 1), and a value given twice would initialise an
 * entry twice below, which -Woverride-init refuses. */
#define QG__REASON(name, value, code, verdict, desc) +1
enum { REASONS_LISTED = 0 QG_REASON_MAP(QG__REASON) };
#undef QG__REASON
_Static_assert((int)REASONS_LISTED == (int)QG_REASON_COUNT,
               "QG_REASON_MAP: values must run 0, 1, ... with no gap");

static const char *const reason_codes[QG_REASON_COUNT] = {
#define QG__REASON(name, value, code, verdict, desc) [value] = code,
    QG_REASON_MAP(QG__REASON)
#undef QG__REASON
};

static const qg_verdict reason_verdicts[QG_REASON_COUNT] = {
#define QG__REASON(name, value, code, verdict, desc) [value] = QG_##verdict,
    QG_REASON_MAP(QG__REASON)
#undef QG__REASON
};

const char *
qg_reason_name(qg_reason r)
{
    return (unsigned)r < QG_REASON_COUNT ? reason_codes[r] : NULL;
}

qg_verdict
qg_reason_verdict(qg_reason r)
{
    return (unsigned)r < QG_REASON_COUNT ? reason_verdicts[r] : QG_MALFORMED;
}

int
qg_reason_from_name(const char *name, qg_reason *out)
{
    int r;

    for (r = 0; name && r < QG_REASON_COUNT; r++) {
        if (strcmp(name, reason_codes[r]) == 0) {
            *out = (qg_reason)r;
            return 0;
        }
    }
    return QG_NOTFOUND;
}
