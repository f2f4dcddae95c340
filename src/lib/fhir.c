/*
 * fhir.c - a ticket as FHIR R4 resources: an Encounter for the visit, and
 * an Appointment when the ticket came from one (docs/fhir.md has the
 * mapping and the reasons for it).
 *
 * The resources are derived, never stored: the ticket's accepted steps in
 * event time are walked once, each step's state giving the Encounter's
 * and the Appointment's status after it, and each step's body the names
 * and the client it carries.  The same walk serves the export (every
 * step) and the forwarder (the steps accepted up to the one it sends), so
 * a FHIR server fed step by step ends up holding what the export writes.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qgate_int.h"

#define ACT_CODE   "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define EXT_PREFIX "urn:qgate:fhir:extension:"
#define MAX_STAFF                                                              \
    16 /* participants kept; more are rare, and not lost:                      \
          each step's staff is in the HIS's step record */

/* One period of the Encounter's statusHistory. */
typedef struct period {
    const char *status;
    int64_t start_ms;
} period;

/* A step of the pharmacy and billing, which Encounter has no status for. */
typedef struct milestone {
    const char *name;
    int64_t ms;
} milestone;

typedef struct staff {
    int64_t id;
    char name[128];
} staff;

/* What one walk over the ticket's steps gathers. */
typedef struct visit {
    const qg_ticket *t;
    uint32_t steps;
    int32_t offset_s; /* the offset of the newest step: how times are written */
    int64_t first_ms, last_ms;
    /* The state after the newest step, and what the path went through. */
    qg_state state;
    int arrived, begun, served;
    const char *enc_status, *appt_status;
    period *hist;
    size_t nhist, caphist;
    milestone miles[8];
    size_t nmiles;
    int64_t end_ms; /* the Encounter ended: visit_ended or cancelled */
    /* From the steps, the newest that names each one. */
    int64_t client_id, service_id;
    char service_name[128];
    char appt_date[16], appt_time[16];
    staff staff[MAX_STAFF];
    size_t nstaff;
} visit;

/* ----- statuses ---------------------------------------------------------- */

/*
 * The Encounter's status after a step into state s.  FHIR's statuses are
 * about presence and progress, which the machine's state alone does not
 * always give: a "moved" ticket may not have been seen yet, and a no-show
 * after service has begun is a patient away for a while, not a visit that
 * never started.  So the path so far counts too.
 */
static const char *
encounter_status(const visit *v, qg_state s)
{
    switch (s) {
    case QG_ST_BOOKED:
    case QG_ST_QUEUED:
        return "planned";
    case QG_ST_ARRIVED:
        return "arrived";
    case QG_ST_MOVED:
        return v->begun ? "in-progress" : v->arrived ? "arrived" : "planned";
    case QG_ST_NO_SHOW:
        return v->begun ? "onleave" : "planned";
    case QG_ST_CANCELLED:
        return v->begun ? "finished" : "cancelled";
    case QG_ST_VISIT_ENDED:
        return "finished";
    case QG_ST_SERVING:
    case QG_ST_SERVED:
    case QG_ST_PHARMACY_RECEIVED:
    case QG_ST_PHARMACY_DISPENSED:
    case QG_ST_PAID:
        return "in-progress";
    case QG_ST_NEW:
        break;
    }
    return "unknown";
}

/* The Appointment's status after a step into state s.  Once a service is
 * complete the appointment was kept, whatever follows. */
static const char *
appointment_status(const visit *v, qg_state s)
{
    if (v->served)
        return "fulfilled";
    switch (s) {
    case QG_ST_BOOKED:
        return "booked";
    case QG_ST_QUEUED:
        return "checked-in";
    case QG_ST_ARRIVED:
    case QG_ST_MOVED:
    case QG_ST_SERVING:
        return "arrived";
    case QG_ST_NO_SHOW:
        return "noshow";
    case QG_ST_CANCELLED:
        return "cancelled";
    default:
        return "fulfilled";
    }
}

/* ----- the walk ---------------------------------------------------------- */

static void
copy_string(char *dst, size_t len, json_object *o, const char *key)
{
    json_object *v;

    if (json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        snprintf(dst, len, "%s", json_object_get_string(v));
}

/* Reads what the resources need from a step's body: the client, and the
 * names of the service and staff.  A body that no longer reads (purged,
 * or from a format this code does not know) leaves v as it was: its ids
 * are in the record. */
static void
read_body(visit *v, const qg_record *r, staff *who)
{
    qg__envelope env = {0};
    qg__delivery d = {0};
    json_object *x;
    char detail[160];

    if (r->body == NULL ||
        qg__envelope_parse_tree(r->body, r->body_len, &env, detail,
                                sizeof(detail)) != QG_R_NONE)
        return;
    if (qg__payload_head(&env, &d, detail, sizeof(detail)) != QG_R_NONE ||
        qg__payload_fields(&d, 0, detail, sizeof(detail)) != QG_R_NONE)
        goto done;
    if (json_object_object_get_ex(d.data, "registered_client_id", &x) &&
        json_object_is_type(x, json_type_int) && json_object_get_int64(x) > 0)
        v->client_id = json_object_get_int64(x);
    if (r->service_id > 0)
        copy_string(v->service_name, sizeof(v->service_name), d.data,
                    "service_name");
    if (who)
        copy_string(who->name, sizeof(who->name), d.data, "staff_name");
    if (d.appointment_date && d.appointment_time) {
        snprintf(v->appt_date, sizeof(v->appt_date), "%s", d.appointment_date);
        snprintf(v->appt_time, sizeof(v->appt_time), "%s", d.appointment_time);
    }
done:
    qg__envelope_free(&env);
}

static staff *
staff_of(visit *v, int64_t id)
{
    size_t i;

    if (id <= 0)
        return NULL;
    for (i = 0; i < v->nstaff; i++)
        if (v->staff[i].id == id)
            return &v->staff[i];
    if (v->nstaff == MAX_STAFF)
        return NULL;
    v->staff[v->nstaff].id = id;
    v->staff[v->nstaff].name[0] = '\0';
    return &v->staff[v->nstaff++];
}

static int
step(visit *v, const qg_record *r)
{
    const char *status;

    if (v->steps++ == 0)
        v->first_ms = r->event_ms;
    v->last_ms = r->event_ms;
    v->offset_s = r->utc_offset_s;
    v->state = r->to;
    v->arrived |= r->to == QG_ST_ARRIVED;
    v->begun |= r->to == QG_ST_SERVING;
    v->served |= r->to == QG_ST_SERVED;
    if (r->service_id > 0 && r->service_id != v->service_id) {
        v->service_id = r->service_id;
        v->service_name[0] = '\0';
    }
    read_body(v, r, staff_of(v, r->staff_id));
    if (r->to == QG_ST_VISIT_ENDED || r->to == QG_ST_CANCELLED)
        v->end_ms = r->event_ms;
    if (v->nmiles < sizeof(v->miles) / sizeof(v->miles[0]) &&
        (r->event == QG_EV_RX_RECEIVE || r->event == QG_EV_RX_DISPENSE ||
         r->event == QG_EV_PAY)) {
        v->miles[v->nmiles].name = r->event == QG_EV_RX_RECEIVE ? "pharmacy-"
                                                                  "received"
                                   : r->event == QG_EV_RX_DISPENSE
                                       ? "pharmacy-dispensed"
                                       : "paid";
        v->miles[v->nmiles++].ms = r->event_ms;
    }
    v->appt_status = appointment_status(v, r->to);
    status = encounter_status(v, r->to);
    if (v->nhist > 0 && strcmp(v->hist[v->nhist - 1].status, status) == 0)
        return 0;
    if (v->nhist == v->caphist) {
        size_t cap = v->caphist ? 2 * v->caphist : 8;
        period *p = realloc(v->hist, cap * sizeof(*p));

        if (p == NULL)
            return QG_ENOMEM;
        v->hist = p;
        v->caphist = cap;
    }
    v->hist[v->nhist].status = status;
    v->hist[v->nhist++].start_ms = r->event_ms;
    v->enc_status = status;
    return 0;
}

/* Walks ticket's steps accepted up to upto (0: all), in event time. */
static int
walk(qg_store *st, uint64_t ticket, uint32_t upto, qg_ticket *t, visit *v)
{
    qg_history *h = NULL;
    qg_record r;
    int rc;

    if ((rc = qg_history_open_order(st, ticket, QG_EVENT_ORDER, &h)) ||
        (rc = qg_history_ticket(h, t)))
        goto done;
    while ((rc = qg_history_next(h, &r)) == 0)
        if ((upto == 0 || r.seq <= upto) && (rc = step(v, &r)))
            goto done;
    if (rc == QG_NOTFOUND)
        rc = v->steps > 0 ? 0 : QG_NOTFOUND;
done:
    qg_history_close(h);
    return rc;
}

/* ----- the resources ----------------------------------------------------- */

/*
 * json-c's adders fail only when out of memory; rather than test each,
 * the builder notes the first failure and the caller checks once.
 */
typedef struct builder {
    const char *system;
    char store_id[QG_STORE_ID_LEN + 1];
    int nomem;
} builder;

static json_object *
add(builder *b, json_object *o, const char *key, json_object *v)
{
    if (v == NULL || o == NULL || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        b->nomem = 1;
    }
    return v;
}

static json_object *
push(builder *b, json_object *a, json_object *v)
{
    if (v == NULL || a == NULL || json_object_array_add(a, v) != 0) {
        json_object_put(v);
        b->nomem = 1;
    }
    return v;
}

static json_object *
str(const char *s)
{
    return json_object_new_string(s);
}

static json_object *
when(int64_t ms, int32_t offset_s)
{
    char text[40];

    return str(qg_time_format(ms, offset_s, text, sizeof(text)));
}

/* {"system": "<base>/<kind>", "value": "<id>"} */
static json_object *
identifier(builder *b, const char *kind, const char *value)
{
    json_object *o = json_object_new_object();
    char sys[512];

    snprintf(sys, sizeof(sys), "%s/%s", b->system, kind);
    add(b, o, "system", str(sys));
    add(b, o, "value", str(value));
    return o;
}

static json_object *
id_identifier(builder *b, const char *kind, int64_t id)
{
    char value[24];

    snprintf(value, sizeof(value), "%" PRId64, id);
    return identifier(b, kind, value);
}

/* A reference by identifier: the resource it names lives in the HIS. */
static json_object *
reference(builder *b, const char *type, const char *kind, int64_t id,
          const char *display)
{
    json_object *o = json_object_new_object();

    add(b, o, "type", str(type));
    add(b, o, "identifier", id_identifier(b, kind, id));
    if (display && *display)
        add(b, o, "display", str(display));
    return o;
}

static json_object *
coding(builder *b, const char *system, const char *code, const char *display)
{
    json_object *o = json_object_new_object();

    add(b, o, "system", str(system));
    add(b, o, "code", str(code));
    if (display && *display)
        add(b, o, "display", str(display));
    return o;
}

static json_object *
service_type(builder *b, const visit *v)
{
    json_object *cc = json_object_new_object(), *codings;
    char sys[512], code[24];

    snprintf(sys, sizeof(sys), "%s/service", b->system);
    snprintf(code, sizeof(code), "%" PRId64, v->service_id);
    codings = add(b, cc, "coding", json_object_new_array());
    push(b, codings, coding(b, sys, code, v->service_name));
    return cc;
}

/* The identifiers both resources carry: qgate's ticket, which is stable
 * from the first step to the last, and Chup's ids as they are known. */
static void
identifiers(builder *b, json_object *o, const visit *v, int with_ticket)
{
    json_object *ids = add(b, o, "identifier", json_object_new_array());
    char value[24];

    if (with_ticket) {
        snprintf(value, sizeof(value), "%" PRIu64, v->t->id);
        push(b, ids, identifier(b, "ticket", value));
    }
    if (v->t->live_queue_id > 0)
        push(b, ids, id_identifier(b, "live-queue", v->t->live_queue_id));
    if (v->t->appointment_id > 0)
        push(b, ids, id_identifier(b, "appointment", v->t->appointment_id));
}

static json_object *
period_of(builder *b, int64_t start_ms, int64_t end_ms, int32_t offset_s)
{
    json_object *o = json_object_new_object();

    add(b, o, "start", when(start_ms, offset_s));
    if (end_ms != INT64_MIN)
        add(b, o, "end", when(end_ms, offset_s));
    return o;
}

static json_object *
encounter(builder *b, const visit *v, int with_id)
{
    json_object *o = json_object_new_object(), *a;
    char id[QG_STORE_ID_LEN + 24];
    size_t i;

    add(b, o, "resourceType", str("Encounter"));
    if (with_id) {
        snprintf(id, sizeof(id), "%s-%" PRIu64, b->store_id, v->t->id);
        add(b, o, "id", str(id));
    }
    if (v->nmiles > 0) {
        a = add(b, o, "extension", json_object_new_array());
        for (i = 0; i < v->nmiles; i++) {
            json_object *e = push(b, a, json_object_new_object());
            char url[96];

            snprintf(url, sizeof(url), EXT_PREFIX "%s", v->miles[i].name);
            add(b, e, "url", str(url));
            add(b, e, "valueDateTime", when(v->miles[i].ms, v->offset_s));
        }
    }
    identifiers(b, o, v, 1);
    add(b, o, "status", str(v->enc_status));
    a = add(b, o, "statusHistory", json_object_new_array());
    for (i = 0; i < v->nhist; i++) {
        json_object *e = push(b, a, json_object_new_object());

        add(b, e, "status", str(v->hist[i].status));
        add(b, e, "period",
            period_of(b, v->hist[i].start_ms,
                      i + 1 < v->nhist ? v->hist[i + 1].start_ms : INT64_MIN,
                      v->offset_s));
    }
    add(b, o, "class", coding(b, ACT_CODE, "AMB", "ambulatory"));
    if (v->service_id > 0)
        add(b, o, "serviceType", service_type(b, v));
    if (v->client_id > 0)
        add(b, o, "subject",
            reference(b, "Patient", "client", v->client_id, NULL));
    if (v->nstaff > 0) {
        a = add(b, o, "participant", json_object_new_array());
        for (i = 0; i < v->nstaff; i++) {
            json_object *p = push(b, a, json_object_new_object());

            add(b, p, "individual",
                reference(b, "Practitioner", "staff", v->staff[i].id,
                          v->staff[i].name));
        }
    }
    if (v->t->appointment_id > 0) {
        a = add(b, o, "appointment", json_object_new_array());
        push(b, a,
             reference(b, "Appointment", "appointment", v->t->appointment_id,
                       NULL));
    }
    add(b, o, "period", period_of(b, v->first_ms, v->end_ms, v->offset_s));
    return o;
}

/* The appointment's start, "2024-03-05" "10:30:00" in the offset its
 * steps were written in; INT64_MIN when no step gave it. */
static int64_t
appointment_start(const visit *v)
{
    char text[48];
    int64_t ms;
    int32_t off;
    int32_t a = v->offset_s < 0 ? -v->offset_s : v->offset_s;

    if (!v->appt_date[0] || !v->appt_time[0])
        return INT64_MIN;
    snprintf(text, sizeof(text), "%sT%s%c%02d:%02d", v->appt_date, v->appt_time,
             v->offset_s < 0 ? '-' : '+', (int)(a / 3600), (int)(a / 60 % 60));
    return qg_time_parse(text, &ms, &off) == 0 ? ms : INT64_MIN;
}

static json_object *
appointment(builder *b, const visit *v, int with_id)
{
    json_object *o = json_object_new_object(), *a, *p;
    char id[QG_STORE_ID_LEN + 24];
    int64_t start = appointment_start(v);
    size_t i;

    add(b, o, "resourceType", str("Appointment"));
    if (with_id) {
        snprintf(id, sizeof(id), "%s-%" PRIu64, b->store_id, v->t->id);
        add(b, o, "id", str(id));
    }
    identifiers(b, o, v, 0);
    add(b, o, "status", str(v->appt_status));
    if (v->service_id > 0) {
        a = add(b, o, "serviceType", json_object_new_array());
        push(b, a, service_type(b, v));
    }
    /* Chup gives a start and no length: the end is the start, as FHIR
     * wants both or neither. */
    if (start != INT64_MIN) {
        add(b, o, "start", when(start, v->offset_s));
        add(b, o, "end", when(start, v->offset_s));
    }
    a = add(b, o, "participant", json_object_new_array());
    if (v->client_id > 0) {
        p = push(b, a, json_object_new_object());
        add(b, p, "actor",
            reference(b, "Patient", "client", v->client_id, NULL));
        add(b, p, "status", str("accepted"));
    }
    for (i = 0; i < v->nstaff; i++) {
        p = push(b, a, json_object_new_object());
        add(b, p, "actor",
            reference(b, "Practitioner", "staff", v->staff[i].id,
                      v->staff[i].name));
        add(b, p, "status", str("accepted"));
    }
    if (v->client_id <= 0 && v->nstaff == 0) {
        /* FHIR wants a participant; with no one named, the patient's role
         * stands for one. */
        json_object *type, *cc, *cs;

        p = push(b, a, json_object_new_object());
        type = add(b, p, "type", json_object_new_array());
        cc = push(b, type, json_object_new_object());
        cs = add(b, cc, "coding", json_object_new_array());
        push(b, cs,
             coding(b,
                    "http://terminology.hl7.org/CodeSystem/"
                    "v3-ParticipationType",
                    "SBJ", "subject"));
        add(b, p, "status", str("accepted"));
    }
    return o;
}

/* "Encounter?identifier=<system>/ticket|<n>": the conditional update's
 * key is qgate's ticket, known from the first step, unlike the
 * live-queue id, which a booking does not have yet. */
static json_object *
request(builder *b, const char *type, const char *kind, const char *value)
{
    json_object *o = json_object_new_object();
    char url[640];

    snprintf(url, sizeof(url), "%s?identifier=%s/%s|%s", type, b->system, kind,
             value);
    add(b, o, "method", str("PUT"));
    add(b, o, "url", str(url));
    return o;
}

/* "urn:uuid:..." from the store, the ticket and the resource type: the
 * same resource has the same fullUrl in every export. */
static json_object *
full_url(builder *b, uint64_t ticket, const char *type)
{
    unsigned char d[QG__DIGEST_LEN];
    char text[64], in[128];
    int n = snprintf(in, sizeof(in), "%s/%" PRIu64 "/%s", b->store_id, ticket,
                     type);

    qg__digest(in, (size_t)n, d);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x80); /* RFC 9562 version 8 */
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80);
    snprintf(text, sizeof(text),
             "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10],
             d[11], d[12], d[13], d[14], d[15]);
    return str(text);
}

static void
entry(builder *b, json_object *entries, const visit *v, json_object *res,
      const char *type, int transaction)
{
    json_object *e = push(b, entries, json_object_new_object());
    char value[24];

    add(b, e, "fullUrl", full_url(b, v->t->id, type));
    add(b, e, "resource", res);
    if (!transaction)
        return;
    if (strcmp(type, "Encounter") == 0) {
        snprintf(value, sizeof(value), "%" PRIu64, v->t->id);
        add(b, e, "request", request(b, type, "ticket", value));
    } else {
        snprintf(value, sizeof(value), "%" PRId64, v->t->appointment_id);
        add(b, e, "request", request(b, type, "appointment", value));
    }
}

static int
append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        char *p;

        while (c < *len + n + 1)
            c *= 2;
        if ((p = realloc(*out, c)) == NULL)
            return QG_ENOMEM;
        *out = p;
        *cap = c;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
    return 0;
}

static int
serialize(json_object *o, int newline, char **out, size_t *len, size_t *cap)
{
    const char *text = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc;

    if (text == NULL)
        return QG_ENOMEM;
    if ((rc = append(out, len, cap, text, strlen(text))))
        return rc;
    return newline ? append(out, len, cap, "\n", 1) : 0;
}

int
qg_fhir_system_check(const char *system)
{
    const char *p;
    size_t len;

    if (system == NULL || (len = strlen(system)) == 0 || len > 200 ||
        strchr(system, ':') == NULL || !isalpha((unsigned char)system[0]))
        return QG_EINVAL;
    for (p = system; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("|?&#\"\\", *p))
            return QG_EINVAL;
    return 0;
}

int
qg_fhir_ticket(qg_store *st, uint64_t ticket, qg_fhir_form form,
               const qg_fhir_options *opts, char **out, size_t *outlen)
{
    static const qg_fhir_options none = {0};
    qg_ticket t = {0};
    visit v = {0};
    builder b = {0};
    json_object *res[2] = {NULL, NULL}, *bundle = NULL, *entries;
    char sys[256];
    size_t len = 0, cap = 0, i, n;
    int rc;

    if (out)
        *out = NULL;
    if (outlen)
        *outlen = 0;
    if (st == NULL || out == NULL || ticket == 0 || form < QG_FHIR_NDJSON ||
        form > QG_FHIR_TRANSACTION)
        return QG_EINVAL;
    if (opts == NULL)
        opts = &none;
    if ((rc = qg_store_id(st, b.store_id)))
        return rc;
    if (opts->system && *opts->system && qg_fhir_system_check(opts->system))
        return QG_EINVAL;
    v.t = &t;
    v.end_ms = INT64_MIN;
    if ((rc = walk(st, ticket, opts->upto_seq, &t, &v)))
        goto done;
    /* Each source numbers its ids on its own: a named source's systems
     * lie under the base, the default source's are the base's own. */
    if (opts->system == NULL || *opts->system == '\0')
        snprintf(sys, sizeof(sys), "urn:qgate:%s:%s", b.store_id, t.source);
    else if (strcmp(t.source, QG_SOURCE_DEFAULT) == 0)
        snprintf(sys, sizeof(sys), "%s", opts->system);
    else
        snprintf(sys, sizeof(sys), "%s/%s", opts->system, t.source);
    b.system = sys;
    n = v.t->appointment_id > 0 ? 2 : 1;
    res[0] = encounter(&b, &v, form != QG_FHIR_TRANSACTION);
    if (n == 2)
        res[1] = appointment(&b, &v, form != QG_FHIR_TRANSACTION);
    if (b.nomem) {
        rc = QG_ENOMEM;
        goto done;
    }
    if (form == QG_FHIR_NDJSON || form == QG_FHIR_ENTRIES) {
        for (i = 0; i < n && rc == 0; i++) {
            if (form == QG_FHIR_ENTRIES) {
                json_object *e = json_object_new_object();

                add(&b, e, "fullUrl",
                    full_url(&b, t.id, i == 0 ? "Encounter" : "Appointment"));
                add(&b, e, "resource", json_object_get(res[i]));
                if (b.nomem) {
                    json_object_put(e);
                    rc = QG_ENOMEM;
                    break;
                }
                if (i > 0)
                    rc = append(out, &len, &cap, ",", 1);
                if (rc == 0)
                    rc = serialize(e, 0, out, &len, &cap);
                json_object_put(e);
            } else {
                rc = serialize(res[i], 1, out, &len, &cap);
            }
        }
        goto done;
    }
    bundle = json_object_new_object();
    add(&b, bundle, "resourceType", str("Bundle"));
    add(&b, bundle, "type",
        str(form == QG_FHIR_TRANSACTION ? "transaction" : "collection"));
    entries = add(&b, bundle, "entry", json_object_new_array());
    for (i = 0; i < n; i++) {
        entry(&b, entries, &v, res[i], i == 0 ? "Encounter" : "Appointment",
              form == QG_FHIR_TRANSACTION);
        res[i] = NULL; /* the bundle's now */
    }
    rc = b.nomem ? QG_ENOMEM : serialize(bundle, 0, out, &len, &cap);
done:
    json_object_put(bundle);
    json_object_put(res[0]);
    json_object_put(res[1]);
    free(v.hist);
    if (rc) {
        free(*out);
        *out = NULL;
    } else if (outlen) {
        *outlen = len;
    }
    return rc;
}
