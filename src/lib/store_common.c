/*
 * store_common.c - what both stores do alike, below their own files: the
 * cache of source names in the handle's common part, on each backend's
 * source_find, source_add and source_read; and the two steps of an
 * accept that do not depend on how rows are kept (naming the ticket by
 * the step's Chup ids, and the ticket's row after the append).  Only the
 * backends call these; the dispatch above them is store_api.c.
 */
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"

/* ----- accepting a step ------------------------------------------------- */

/*
 * Every id a step names leads to its ticket from now on, also one that
 * led to another ticket before: the last step to name an id wins, as it
 * always has (verify reports the ticket that lost it).  Each backend's
 * accept calls this once the ticket has its id, with its own put_alias.
 */
int
qg__name_ticket(qg__txn *t, const qg__accepted *a, qg__ticket_row *row,
                int (*put_alias)(qg__txn *, qg_id_kind, int64_t, uint64_t))
{
    const qg_id_kind kinds[2] = {QG_ID_LIVE_QUEUE, QG_ID_APPOINTMENT};
    const int64_t ids[2] = {a->live_queue_id, a->appointment_id};
    int64_t *first[2] = {&row->t.live_queue_id, &row->t.appointment_id};
    uint64_t id;
    int i, rc;

    for (i = 0; i < 2; i++) {
        if (ids[i] == 0)
            continue;
        rc = qg__find_alias(t, kinds[i], ids[i], &id);
        if (rc == QG_NOTFOUND || (rc == 0 && id != row->t.id))
            rc = put_alias(t, kinds[i], ids[i], row->t.id);
        if (rc)
            return rc;
        if (*first[i] == 0)
            *first[i] = ids[i];
    }
    return 0;
}

/* What a ticket's row says once the step a->rec is appended to it: both
 * backends' accept call this after the append. */
void
qg__ticket_took(qg__ticket_row *row, const qg__accepted *a)
{
    const qg_record *rec = &a->rec;

    row->t.records = rec->seq;
    if (rec->received_us > row->t.last_received_us)
        row->t.last_received_us = rec->received_us;
    if (rec->late) {
        row->flags |= QG__TICKET_REORDERED;
    } else {
        /* Only the newest step in event time says where the ticket is. */
        row->t.last_event_ms = rec->event_ms;
        if (rec->service_id)
            row->t.service_id = rec->service_id;
        if (rec->staff_id)
            row->t.staff_id = rec->staff_id;
        if (a->facts && a->facts->appointment_date[0])
            snprintf(row->appointment_date, sizeof(row->appointment_date), "%s",
                     a->facts->appointment_date);
        if (a->facts && a->facts->appointment_time[0])
            snprintf(row->appointment_time, sizeof(row->appointment_time), "%s",
                     a->facts->appointment_time);
    }
}

/* ----- sources ---------------------------------------------------------- */

int
qg__source_index(qg__txn *t, const char *name, int create, unsigned *index)
{
    int rc;

    if (qg__source_is_default(name)) {
        *index = 0;
        return 0;
    }
    if (qg_source_name_check(name))
        return QG_EINVAL;
    if ((rc = QG__OPS(t->st)->source_find(t, name, index)) == 0)
        return *index > 0 && *index < QG_SOURCES_MAX ? 0 : QG_ESTORE;
    if (rc != QG_NOTFOUND)
        return rc;
    if (!create) {
        *index = QG__SOURCE_UNSEEN;
        return 0;
    }
    return QG__OPS(t->st)->source_add(t, name, index);
}

/* Called by readers only: a name read in a write transaction that then
 * aborted would be kept for a number given later to another. */
void
qg__source_name(qg__txn *t, unsigned index, char out[QG_SOURCE_NAME_MAX + 1])
{
    qg__store_common *c = QG__COMMON(t->st);

    if (index == 0) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "%s", QG_SOURCE_DEFAULT);
        return;
    }
    if (index >= QG_SOURCES_MAX) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "#%u", index);
        return;
    }
    pthread_mutex_lock(&c->names_lock);
    memcpy(out, c->names[index], QG_SOURCE_NAME_MAX + 1);
    pthread_mutex_unlock(&c->names_lock);
    if (out[0])
        return;
    if (c->ops->source_read(t, index, out) != 0) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "#%u", index);
        return;
    }
    pthread_mutex_lock(&c->names_lock);
    memcpy(c->names[index], out, QG_SOURCE_NAME_MAX + 1);
    pthread_mutex_unlock(&c->names_lock);
}

void
qg__record_summary(qg_record *rec)
{
    rec->received_us = 0;
    rec->utc_offset_s = 0;
    rec->staff_id = 0;
    memset(rec->digest, 0, sizeof(rec->digest));
    memset(rec->machine, 0, sizeof(rec->machine));
    rec->body = NULL;
    rec->body_len = 0;
}
