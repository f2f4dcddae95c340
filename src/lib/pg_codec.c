/*
 * pg_codec.c - values to and from PostgreSQL, in the binary form every
 * statement of the store uses: a statement's parameters (every integer
 * an int8, every string or body bytes) and the rows it returns, each
 * decoded into the record, refusal, held delivery or ticket row the LMDB
 * store would give for it.  The engine's rows (pg_rows.c), the readers
 * (pg_read.c) and the hash chain's leaves (pg_chain.c) all decode with
 * these, and depend on nothing else of one another for it.
 */
#include <string.h>

#include "pg_int.h"

/* ----- parameters ------------------------------------------------------- */

void
qg__pg_int(qg__pgparams *p, int64_t v)
{
    put64(p->buf[p->n], (uint64_t)v);
    p->v[p->n] = (const char *)p->buf[p->n];
    p->len[p->n] = 8;
    p->fmt[p->n] = 1;
    p->n++;
}

void
qg__pg_bytes(qg__pgparams *p, const void *v, size_t len)
{
    /* A zero-length value needs a non-NULL pointer, or it is NULL. */
    p->v[p->n] = v ? (const char *)v : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

void
qg__pg_text(qg__pgparams *p, const char *s)
{
    qg__pg_bytes(p, s, strlen(s));
}

/* ----- values ------------------------------------------------------------ */

int64_t
qg__pg_get(const PGresult *r, int row, int col)
{
    const unsigned char *p;

    if (PQgetisnull(r, row, col))
        return 0;
    p = (const unsigned char *)PQgetvalue(r, row, col);
    switch (PQgetlength(r, row, col)) {
    case 1:
        return p[0];
    case 2:
        return (int16_t)(uint16_t)(p[0] << 8 | p[1]);
    case 4:
        return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                         (uint32_t)p[2] << 8 | p[3]);
    case 8:
        return (int64_t)get64(p);
    }
    return 0;
}

void
qg__pg_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
    size_t n = (size_t)PQgetlength(r, row, col);

    if (n > size - 1)
        n = size - 1;
    memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
}

/* ----- rows -------------------------------------------------------------- */

void
qg__pg_ticket_row(const PGresult *r, int i, int col, qg__ticket_row *row)
{
    memset(row, 0, sizeof(*row));
    row->t.id = (uint64_t)qg__pg_get(r, i, col);
    row->t.state = (qg_state)qg__pg_get(r, i, col + 1);
    row->flags = (unsigned char)qg__pg_get(r, i, col + 2);
    row->source = (unsigned char)qg__pg_get(r, i, col + 3);
    row->t.records = (uint32_t)qg__pg_get(r, i, col + 4);
    row->t.rejections = (uint32_t)qg__pg_get(r, i, col + 5);
    row->t.live_queue_id = qg__pg_get(r, i, col + 6);
    row->t.appointment_id = qg__pg_get(r, i, col + 7);
    row->t.last_event_ms = qg__pg_get(r, i, col + 8);
    row->t.first_received_us = qg__pg_get(r, i, col + 9);
    row->t.last_received_us = qg__pg_get(r, i, col + 10);
    row->t.service_id = qg__pg_get(r, i, col + 11);
    row->t.staff_id = qg__pg_get(r, i, col + 12);
    qg__pg_copy(r, i, col + 13, row->appointment_date,
                sizeof(row->appointment_date));
    qg__pg_copy(r, i, col + 14, row->appointment_time,
                sizeof(row->appointment_time));
}

void
qg__pg_record(const PGresult *r, int i, int col, qg_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->ticket = (uint64_t)qg__pg_get(r, i, col);
    rec->seq = (uint32_t)qg__pg_get(r, i, col + 1);
    rec->received_us = qg__pg_get(r, i, col + 2);
    rec->event_ms = qg__pg_get(r, i, col + 3);
    rec->utc_offset_s = (int32_t)qg__pg_get(r, i, col + 4);
    rec->event = (qg_event)qg__pg_get(r, i, col + 5);
    rec->from = (qg_state)qg__pg_get(r, i, col + 6);
    rec->to = (qg_state)qg__pg_get(r, i, col + 7);
    rec->service_id = qg__pg_get(r, i, col + 8);
    rec->staff_id = qg__pg_get(r, i, col + 9);
    if (PQgetlength(r, i, col + 10) == QG__DIGEST_LEN)
        memcpy(rec->digest, PQgetvalue(r, i, col + 10), QG__DIGEST_LEN);
    qg__pg_copy(r, i, col + 11, rec->machine, sizeof(rec->machine));
    rec->pos = (uint32_t)qg__pg_get(r, i, col + 12);
    rec->late = qg__pg_get(r, i, col + 13) != 0;
    rec->released = qg__pg_get(r, i, col + 14) != 0;
    rec->body = PQgetvalue(r, i, col + 15);
    rec->body_len = (size_t)PQgetlength(r, i, col + 15);
    if (qg__pg_get(r, i, col + 16)) {
        /* purged (pg_purge.c): its length and SHA-256 stay in the row */
        rec->body = NULL;
        rec->body_len = 0;
    }
}

void
qg__pg_rejection(const PGresult *r, int i, int col, qg_rejection *rej)
{
    memset(rej, 0, sizeof(*rej));
    rej->id = (uint64_t)qg__pg_get(r, i, col);
    rej->received_us = qg__pg_get(r, i, col + 1);
    rej->verdict = (qg_verdict)qg__pg_get(r, i, col + 2);
    rej->reason = (qg_reason)qg__pg_get(r, i, col + 3);
    rej->event = (qg_event)qg__pg_get(r, i, col + 4);
    rej->from = (qg_state)qg__pg_get(r, i, col + 5);
    rej->ticket = (uint64_t)qg__pg_get(r, i, col + 6);
    rej->live_queue_id = qg__pg_get(r, i, col + 7);
    rej->appointment_id = qg__pg_get(r, i, col + 8);
    /* libpq ends every value with a NUL: the detail is a string */
    rej->detail = PQgetvalue(r, i, col + 9);
    rej->body = PQgetvalue(r, i, col + 10);
    rej->body_len = (size_t)PQgetlength(r, i, col + 10);
    rej->received_len = (size_t)qg__pg_get(r, i, col + 11);
    rej->truncated = qg__pg_get(r, i, col + 12) != 0;
    if (PQgetlength(r, i, col + 13) == (int)sizeof(rej->digest))
        memcpy(rej->digest, PQgetvalue(r, i, col + 13), sizeof(rej->digest));
    rej->resolved = qg__pg_get(r, i, col + 14) != 0;
    rej->resolved_us = qg__pg_get(r, i, col + 15);
    rej->resolved_ticket = (uint64_t)qg__pg_get(r, i, col + 16);
    rej->resolved_seq = (uint32_t)qg__pg_get(r, i, col + 17);
    if (qg__pg_get(r, i, col + 19)) {
        /* purged: as the LMDB store reads it, the whole delivery's length
         * and SHA-256 kept, no body, no longer a prefix */
        rej->body = NULL;
        rej->body_len = 0;
        rej->truncated = 0;
    }
}

void
qg__pg_held(const PGresult *r, int i, int col, qg__step *s, qg_held *h)
{
    memset(s, 0, sizeof(*s));
    s->received_us = qg__pg_get(r, i, col + 1);
    s->event_ms = qg__pg_get(r, i, col + 2);
    s->utc_offset_s = (int32_t)qg__pg_get(r, i, col + 3);
    s->f.em.rule = (qg__rule)qg__pg_get(r, i, col + 4);
    s->f.em.event = (qg_event)qg__pg_get(r, i, col + 5);
    s->f.em.appointment = (int)qg__pg_get(r, i, col + 6);
    s->f.em.updated = (int)qg__pg_get(r, i, col + 7);
    s->f.state_event = (qg_event)qg__pg_get(r, i, col + 8);
    s->source = (unsigned)qg__pg_get(r, i, col + 11);
    s->live_queue_id = qg__pg_get(r, i, col + 13);
    s->appointment_id = qg__pg_get(r, i, col + 14);
    s->f.service_id = qg__pg_get(r, i, col + 15);
    s->staff_id = qg__pg_get(r, i, col + 16);
    qg__pg_copy(r, i, col + 17, s->f.appointment_date,
                sizeof(s->f.appointment_date));
    qg__pg_copy(r, i, col + 18, s->f.appointment_time,
                sizeof(s->f.appointment_time));
    if (PQgetlength(r, i, col + 19) == QG__DIGEST_LEN)
        memcpy(s->digest, PQgetvalue(r, i, col + 19), QG__DIGEST_LEN);
    qg__pg_copy(r, i, col + 20, s->chup_event, sizeof(s->chup_event));
    s->body = PQgetvalue(r, i, col + 21);
    s->body_len = (size_t)PQgetlength(r, i, col + 21);

    memset(h, 0, sizeof(*h));
    h->id = (uint64_t)qg__pg_get(r, i, col);
    h->received_us = s->received_us;
    h->ticket = (uint64_t)qg__pg_get(r, i, col + 12);
    h->live_queue_id = s->live_queue_id;
    h->appointment_id = s->appointment_id;
    h->event = (qg_event)qg__pg_get(r, i, col + 9);
    h->from = (qg_state)qg__pg_get(r, i, col + 10);
    h->event_ms = s->event_ms;
    h->utc_offset_s = s->utc_offset_s;
    memcpy(h->chup_event, s->chup_event, sizeof(h->chup_event));
    h->body = s->body;
    h->body_len = s->body_len;
}
