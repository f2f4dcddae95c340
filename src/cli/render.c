/*
 * render.c - the JSON that the CLI prints and the gate answers.
 */
#include <inttypes.h>
#include <string.h>

#include "render.h"

void
render_string(FILE *f, const char *s, size_t len)
{
    size_t i;

    fputc('"', f);
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void
render_id(FILE *f, const char *key, int64_t id, int first)
{
    fprintf(f, "%s\"%s\":", first ? "" : ",", key);
    if (id)
        fprintf(f, "%" PRId64, id);
    else
        fputs("null", f);
}

static void
render_key_str(FILE *f, const char *key, const char *val)
{
    fprintf(f, ",\"%s\":", key);
    if (val)
        render_string(f, val, strlen(val));
    else
        fputs("null", f);
}

void
render_events(FILE *f, const char *key, unsigned mask)
{
    int e, first = 1;

    fprintf(f, ",\"%s\":[", key);
    for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
        if (!(mask & (1u << e)))
            continue;
        fprintf(f, "%s\"%s\"", first ? "" : ",", qg_event_name((qg_event)e));
        first = 0;
    }
    fputc(']', f);
}

void
render_verdict(FILE *f, const qg_result *res, const char *input)
{
    fprintf(f, "{\"verdict\":\"%s\"", qg_verdict_name(res->verdict));
    render_key_str(f, "code", qg_reason_name(res->reason));
    render_key_str(f, "reason", res->detail);
    render_id(f, "ticket", (int64_t)res->ticket, 0);
    render_id(f, "live_queue_id", res->live_queue_id, 0);
    render_id(f, "appointment_id", res->appointment_id, 0);
    render_key_str(f, "chup_event",
                   res->chup_event[0] ? res->chup_event : NULL);
    render_key_str(f, "event", res->event ? qg_event_name(res->event) : NULL);
    render_key_str(f, "from", qg_state_name(res->from));
    render_key_str(f, "to", qg_state_name(res->to));
    if (res->seq)
        fprintf(f, ",\"seq\":%" PRIu32, res->seq);
    if (res->pos)
        fprintf(f, ",\"pos\":%" PRIu32 ",\"late\":%s", res->pos,
                res->late ? "true" : "false");
    if (res->released)
        fprintf(f, ",\"released\":%" PRIu32, res->released);
    if (res->rejection)
        fprintf(f, ",\"rejection\":%" PRIu64, res->rejection);
    render_events(f, "allowed", res->allowed);
    if (input)
        render_key_str(f, "input", input);
    fputc('}', f);
}

void
render_ticket(FILE *f, const qg_ticket *t)
{
    unsigned mask = qg_machine_allowed(t->state);

    fprintf(f, "{\"ticket\":%" PRIu64, t->id);
    render_id(f, "live_queue_id", t->live_queue_id, 0);
    render_id(f, "appointment_id", t->appointment_id, 0);
    fprintf(f, ",\"state\":\"%s\",\"final\":%s", qg_state_name(t->state),
            mask ? "false" : "true");
    render_events(f, "allowed", mask);
    fprintf(f,
            ",\"records\":%" PRIu32 ",\"rejections\":%" PRIu32
            ",\"last_event_ms\":%" PRId64,
            t->records, t->rejections, t->last_event_ms);
    render_id(f, "service_id", t->service_id, 0);
    render_id(f, "staff_id", t->staff_id, 0);
    fprintf(f, ",\"source\":\"%s\"", t->source);
    fputc('}', f);
}

void
render_record(FILE *f, const qg_record *r, int64_t waited_ms)
{
    char when[40];
    int i;

    fprintf(f,
            "{\"seq\":%" PRIu32 ",\"received_us\":%" PRId64
            ",\"timestamp\":\"%s\",\"event\":\"%s\",\"from\":\"%s\","
            "\"to\":\"%s\"",
            r->seq, r->received_us,
            qg_time_format(r->event_ms, r->utc_offset_s, when, sizeof(when)),
            qg_event_name(r->event), qg_state_name(r->from),
            qg_state_name(r->to));
    render_id(f, "service_id", r->service_id, 0);
    render_id(f, "staff_id", r->staff_id, 0);
    if (waited_ms >= 0)
        fprintf(f, ",\"in_previous_state_ms\":%" PRId64, waited_ms);
    fprintf(f, ",\"digest\":\"");
    for (i = 0; i < 32; i++)
        fprintf(f, "%02x", r->digest[i]);
    fprintf(f,
            "\",\"machine\":\"%s\",\"body_bytes\":%zu,\"purged\":%s,"
            "\"pos\":%" PRIu32 ",\"late\":%s,\"released\":%s}",
            r->machine, r->body_len, r->body == NULL ? "true" : "false", r->pos,
            r->late ? "true" : "false", r->released ? "true" : "false");
}

int
render_history(FILE *f, qg_store *st, uint64_t ticket)
{
    qg_history *h = NULL;
    qg_record r;
    int64_t prev_ms = -1;
    int rc, first = 1;

    if ((rc = qg_history_open(st, ticket, &h)))
        return rc;
    fputc('[', f);
    while ((rc = qg_history_next(h, &r)) == 0) {
        if (!first)
            fputs(",\n", f);
        render_record(f, &r, prev_ms < 0 ? -1 : r.event_ms - prev_ms);
        prev_ms = r.event_ms;
        first = 0;
    }
    fputs("]\n", f);
    qg_history_close(h);
    return rc == QG_NOTFOUND ? 0 : rc;
}

void
render_rejection(FILE *f, const qg_rejection *r)
{
    fprintf(f,
            "{\"id\":%" PRIu64 ",\"received_us\":%" PRId64
            ",\"verdict\":\"%s\",\"code\":\"%s\"",
            r->id, r->received_us, qg_verdict_name(r->verdict),
            qg_reason_name(r->reason));
    render_id(f, "ticket", (int64_t)r->ticket, 0);
    render_id(f, "live_queue_id", r->live_queue_id, 0);
    render_id(f, "appointment_id", r->appointment_id, 0);
    fprintf(f, ",\"event\":");
    if (r->event)
        fprintf(f, "\"%s\"", qg_event_name(r->event));
    else
        fprintf(f, "null");
    fprintf(f, ",\"from\":\"%s\",\"reason\":", qg_state_name(r->from));
    render_string(f, r->detail, strlen(r->detail));
    fprintf(f,
            ",\"body_bytes\":%zu,\"received_bytes\":%zu,\"truncated\":%s,"
            "\"purged\":%s",
            r->body_len, r->received_len, r->truncated ? "true" : "false",
            r->body == NULL && r->received_len ? "true" : "false");
    if (r->truncated || (r->body == NULL && r->received_len)) {
        int i;

        fprintf(f, ",\"sha256\":\"");
        for (i = 0; i < (int)sizeof(r->digest); i++)
            fprintf(f, "%02x", r->digest[i]);
        fputc('"', f);
    }
    fprintf(f, ",\"resolved\":%s", r->resolved ? "true" : "false");
    if (r->resolved) {
        fprintf(f, ",\"resolved_us\":%" PRId64, r->resolved_us);
        render_id(f, "resolved_ticket", (int64_t)r->resolved_ticket, 0);
        if (r->resolved_seq)
            fprintf(f, ",\"resolved_seq\":%" PRIu32, r->resolved_seq);
        else
            fprintf(f, ",\"resolved_seq\":null");
    }
    fputc('}', f);
}

void
render_outbox_entry(FILE *f, const qg_outbox_entry *e, int dead)
{
    fprintf(f,
            "{\"id\":%" PRIu64 ",\"ticket\":%" PRIu64 ",\"seq\":%" PRIu32
            ",\"attempts\":%" PRIu32 ",\"created_us\":%" PRId64
            ",\"next_attempt_us\":%" PRId64 ",\"dead\":%s,\"last_error\":",
            e->id, e->ticket, e->seq, e->attempts, e->created_us,
            e->next_attempt_us, dead ? "true" : "false");
    render_string(f, e->last_error, strlen(e->last_error));
    /* When the last error happened: the last attempt's time. */
    fprintf(f, ",\"last_error_us\":");
    if (e->last_attempt_us)
        fprintf(f, "%" PRId64, e->last_attempt_us);
    else
        fprintf(f, "null");
    if (dead) {
        fprintf(f, ",\"gave_up\":");
        render_string(f, e->gave_up, strlen(e->gave_up));
        fprintf(f, ",\"gave_up_us\":");
        if (e->gave_up_us)
            fprintf(f, "%" PRId64, e->gave_up_us);
        else
            fprintf(f, "null");
    }
    fputc('}', f);
}

void
render_export_row(FILE *f, const qg_ticket *t, const qg_record *r, int csv,
                  const char *hash)
{
    char when[40], recv[40], digest[65];
    int i;

    for (i = 0; i < 32; i++)
        snprintf(digest + 2 * i, 3, "%02x", r->digest[i]);
    qg_time_format(r->event_ms, r->utc_offset_s, when, sizeof(when));
    qg_time_format(r->received_us / 1000, 0, recv, sizeof(recv));
    if (csv) {
        fprintf(f, "%" PRIu64 ",", t->id);
        if (t->live_queue_id)
            fprintf(f, "%" PRId64, t->live_queue_id);
        fputc(',', f);
        if (t->appointment_id)
            fprintf(f, "%" PRId64, t->appointment_id);
        fprintf(
            f, ",%" PRIu32 ",%s,%s,%s,%s,%s,%" PRId64 ",%" PRId64 ",%s,%s,%s\n",
            r->seq, when, recv, qg_event_name(r->event), qg_state_name(r->from),
            qg_state_name(r->to), r->service_id, r->staff_id, r->machine,
            digest, hash);
        return;
    }
    fprintf(f, "{\"ticket\":%" PRIu64, t->id);
    fprintf(f, ",\"live_queue_id\":");
    fprintf(f, t->live_queue_id ? "%" PRId64 : "null", t->live_queue_id);
    fprintf(f, ",\"appointment_id\":");
    fprintf(f, t->appointment_id ? "%" PRId64 : "null", t->appointment_id);
    fprintf(
        f,
        ",\"seq\":%" PRIu32 ",\"timestamp\":\"%s\",\"received\":\"%s\","
        "\"event\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"service_id\":%" PRId64
        ",\"staff_id\":%" PRId64 ",\"machine\":\"%s\","
        "\"digest\":\"%s\",\"purged\":%s",
        r->seq, when, recv, qg_event_name(r->event), qg_state_name(r->from),
        qg_state_name(r->to), r->service_id, r->staff_id, r->machine, digest,
        r->body == NULL ? "true" : "false");
    fprintf(f,
            hash[0] ? ",\"chain_hash\":\"%s\"}\n" : ",\"chain_hash\":null}\n",
            hash);
}

void
render_held(FILE *f, const qg_held *h, int64_t now_us, int64_t expires_us)
{
    char when[40];

    fprintf(f, "{\"id\":%" PRIu64, h->id);
    render_id(f, "ticket", (int64_t)h->ticket, 0);
    render_id(f, "live_queue_id", h->live_queue_id, 0);
    render_id(f, "appointment_id", h->appointment_id, 0);
    fprintf(f, ",\"chup_event\":");
    render_string(f, h->chup_event, strlen(h->chup_event));
    fprintf(f,
            ",\"event\":\"%s\",\"from\":\"%s\",\"timestamp\":\"%s\","
            "\"received_us\":%" PRId64 ",\"held_ms\":%" PRId64
            ",\"expires_us\":%" PRId64 ",\"body_bytes\":%zu}",
            qg_event_name(h->event), qg_state_name(h->from),
            qg_time_format(h->event_ms, h->utc_offset_s, when, sizeof(when)),
            h->received_us, (now_us - h->received_us) / 1000, expires_us,
            h->body_len);
}
