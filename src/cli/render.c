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
render_history(FILE *f, qg_store *st, uint64_t ticket, int bodies)
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
        if (bodies)
            fputs("{\"step\":", f);
        render_record(f, &r, prev_ms < 0 ? -1 : r.event_ms - prev_ms);
        if (bodies) {
            /* The body as received, as a string: a reader parses and
             * shows it as text, never as markup. */
            fputs(",\"body\":", f);
            if (r.body)
                render_string(f, r.body, r.body_len);
            else
                fputs("null", f);
            fputc('}', f);
        }
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

/*
 * The export's own formatting.  An export writes millions of lines, and
 * fprintf() was most of its time (parsing its format string, locking the
 * stream, converting each field): these write the same bytes into a
 * caller's buffer.
 */
#define PUT_LIT(p, lit)                                                        \
    (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/* s, or "(null)" as printf() wrote a name the library does not know. */
static char *
put_str(char *p, const char *s)
{
    size_t n;

    if (s == NULL)
        s = "(null)";
    n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

static char *
put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *
put_i64(char *p, int64_t v)
{
    if (v >= 0)
        return put_u64(p, (uint64_t)v);
    *p++ = '-';
    /* -(v + 1) + 1: INT64_MIN's magnitude without overflow. */
    return put_u64(p, (uint64_t)(-(v + 1)) + 1);
}

static char *
put_2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* qg_time_format()'s bytes; computed here for the years 0 to 9999 and
 * offsets under 100 hours (every real timestamp), else asked of it. */
static char *
put_time(char *p, int64_t ms, int32_t offset_s)
{
    int64_t t, days, z, era, y;
    unsigned doe, yoe, doy, mp, d, m, secs, off;
    char buf[40];

    if (offset_s <= -360000 || offset_s >= 360000 || ms < -62135596800000 ||
        ms > 253402300799000)
        return put_str(p, qg_time_format(ms, offset_s, buf, sizeof(buf)));
    /* The same arithmetic as qg_time_format() (src/lib/time.c). */
    t = ms / 1000 + offset_s;
    if (ms % 1000 < 0)
        t--;
    days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    secs = (unsigned)(t - days * 86400);
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
    if (y < 0 || y > 9999)
        return put_str(p, qg_time_format(ms, offset_s, buf, sizeof(buf)));
    p = put_2(p, (unsigned)(y / 100));
    p = put_2(p, (unsigned)(y % 100));
    *p++ = '-';
    p = put_2(p, m);
    *p++ = '-';
    p = put_2(p, d);
    *p++ = 'T';
    p = put_2(p, secs / 3600);
    *p++ = ':';
    p = put_2(p, secs / 60 % 60);
    *p++ = ':';
    p = put_2(p, secs % 60);
    *p++ = offset_s < 0 ? '-' : '+';
    off = (unsigned)(offset_s < 0 ? -offset_s : offset_s);
    p = put_2(p, off / 3600);
    *p++ = ':';
    return put_2(p, off / 60 % 60);
}

static char *
put_digest(char *p, const unsigned char *digest)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 0; i < 32; i++) {
        *p++ = hex[digest[i] >> 4];
        *p++ = hex[digest[i] & 15];
    }
    return p;
}

size_t
render_export_line(char *buf, const qg_ticket *t, const qg_record *r, int csv,
                   const char *hash)
{
    char *p = buf;

    if (csv) {
        p = put_u64(p, t->id);
        *p++ = ',';
        if (t->live_queue_id)
            p = put_i64(p, t->live_queue_id);
        *p++ = ',';
        if (t->appointment_id)
            p = put_i64(p, t->appointment_id);
        *p++ = ',';
        p = put_u64(p, r->seq);
        *p++ = ',';
        p = put_time(p, r->event_ms, r->utc_offset_s);
        *p++ = ',';
        p = put_time(p, r->received_us / 1000, 0);
        *p++ = ',';
        p = put_str(p, qg_event_name(r->event));
        *p++ = ',';
        p = put_str(p, qg_state_name(r->from));
        *p++ = ',';
        p = put_str(p, qg_state_name(r->to));
        *p++ = ',';
        p = put_i64(p, r->service_id);
        *p++ = ',';
        p = put_i64(p, r->staff_id);
        *p++ = ',';
        p = put_str(p, r->machine);
        *p++ = ',';
        p = put_digest(p, r->digest);
        *p++ = ',';
        p = put_str(p, hash);
        *p++ = '\n';
        return (size_t)(p - buf);
    }
    p = PUT_LIT(p, "{\"ticket\":");
    p = put_u64(p, t->id);
    p = PUT_LIT(p, ",\"live_queue_id\":");
    p = t->live_queue_id ? put_i64(p, t->live_queue_id) : PUT_LIT(p, "null");
    p = PUT_LIT(p, ",\"appointment_id\":");
    p = t->appointment_id ? put_i64(p, t->appointment_id) : PUT_LIT(p, "null");
    p = PUT_LIT(p, ",\"seq\":");
    p = put_u64(p, r->seq);
    p = PUT_LIT(p, ",\"timestamp\":\"");
    p = put_time(p, r->event_ms, r->utc_offset_s);
    p = PUT_LIT(p, "\",\"received\":\"");
    p = put_time(p, r->received_us / 1000, 0);
    p = PUT_LIT(p, "\",\"event\":\"");
    p = put_str(p, qg_event_name(r->event));
    p = PUT_LIT(p, "\",\"from\":\"");
    p = put_str(p, qg_state_name(r->from));
    p = PUT_LIT(p, "\",\"to\":\"");
    p = put_str(p, qg_state_name(r->to));
    p = PUT_LIT(p, "\",\"service_id\":");
    p = put_i64(p, r->service_id);
    p = PUT_LIT(p, ",\"staff_id\":");
    p = put_i64(p, r->staff_id);
    p = PUT_LIT(p, ",\"machine\":\"");
    p = put_str(p, r->machine);
    p = PUT_LIT(p, "\",\"digest\":\"");
    p = put_digest(p, r->digest);
    p = r->body == NULL ? PUT_LIT(p, "\",\"purged\":true")
                        : PUT_LIT(p, "\",\"purged\":false");
    if (hash[0]) {
        p = PUT_LIT(p, ",\"chain_hash\":\"");
        p = put_str(p, hash);
        p = PUT_LIT(p, "\"}\n");
    } else {
        p = PUT_LIT(p, ",\"chain_hash\":null}\n");
    }
    return (size_t)(p - buf);
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

void
render_machine(FILE *f)
{
    int s, e, to, first;

    fprintf(f, "{\"machine\":\"%s\",\"states\":[", qg_machine_version());
    for (s = 0; s < QG_STATE_COUNT; s++) {
        fprintf(f, "%s{\"state\":\"%s\",\"final\":%s,\"next\":{", s ? "," : "",
                qg_state_name((qg_state)s),
                qg_state_is_final((qg_state)s) ? "true" : "false");
        for (e = QG_EV_NONE + 1, first = 1; e < QG_EVENT_COUNT; e++) {
            if ((to = qg_machine_next((qg_state)s, (qg_event)e)) < 0)
                continue;
            fprintf(f, "%s\"%s\":\"%s\"", first ? "" : ",",
                    qg_event_name((qg_event)e), qg_state_name((qg_state)to));
            first = 0;
        }
        fputs("}}", f);
    }
    fputs("]}\n", f);
}
