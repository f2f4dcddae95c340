/*
 * ticket_id.c - a ticket's name as people and URLs write it: "30001",
 * "lq:30001", "appt:9101", "ticket:5".  The commands and the gate's read
 * API take the same names.
 */
#include <stdint.h>
#include <string.h>

#include "qgate_int.h"

static const struct {
    const char *prefix;
    qg_id_kind kind;
} kinds[] = {{"lq:", QG_ID_LIVE_QUEUE},
             {"appt:", QG_ID_APPOINTMENT},
             {"ticket:", QG_ID_TICKET},
             {"", QG_ID_LIVE_QUEUE}};

int
qg_ticket_id_parse(const char *name, qg_id_kind *kind, int64_t *id)
{
    const char *num, *p;
    int64_t v = 0;
    size_t i;

    if (name == NULL || kind == NULL || id == NULL)
        return QG_EINVAL;
    for (i = 0; i < sizeof(kinds) / sizeof(*kinds); i++)
        if (strncmp(name, kinds[i].prefix, strlen(kinds[i].prefix)) == 0)
            break;
    num = name + strlen(kinds[i].prefix);
    /* Digits only, no sign, no space, no leading zero: strtoll would take
     * " +030001" for 30001, and a name that is not the id's one spelling
     * must not find it (the gate's read API passes its path here). */
    if (*num < '1' || *num > '9')
        return QG_EINVAL;
    for (p = num; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return QG_EINVAL;
        v = v * 10 + (*p - '0');
    }
    *kind = kinds[i].kind;
    *id = v;
    return 0;
}

int
qg_store_ticket_named(qg_store *st, const char *name, qg_ticket *out)
{
    return qg_store_ticket_named_in(st, NULL, name, out);
}

int
qg_store_ticket_named_in(qg_store *st, const char *source, const char *name,
                         qg_ticket *out)
{
    qg_id_kind kind;
    int64_t id;
    int rc;

    if (st == NULL || out == NULL)
        return QG_EINVAL;
    if ((rc = qg_ticket_id_parse(name, &kind, &id)))
        return rc;
    rc = qg_store_ticket_in(st, source, kind, id, out);
    /* A bare number that is no live-queue id may be an appointment id. */
    if (rc == QG_NOTFOUND && name[0] >= '1' && name[0] <= '9')
        rc = qg_store_ticket_in(st, source, QG_ID_APPOINTMENT, id, out);
    return rc;
}
