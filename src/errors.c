/*
 * errors.c - names and messages of error codes, verdicts and reasons.
 * All generated from the X-macro tables in qgate.h.
 */
#include <string.h>

#include "qgate_int.h"

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

static const char *const reason_codes[QG_REASON_COUNT] = {
#define QG__REASON(name, code, verdict, desc) code,
    QG_REASON_MAP(QG__REASON)
#undef QG__REASON
};

static const qg_verdict reason_verdicts[QG_REASON_COUNT] = {
#define QG__REASON(name, code, verdict, desc) QG_##verdict,
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
