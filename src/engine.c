/*
 * engine.c - deciding a delivery and recording the decision.
 *
 * Order of judgement, each step only when the ones before passed:
 *   1. the body is one JSON object with a payload     (else malformed)
 *   2. the signature matches the payload's bytes       (else unauthenticated)
 *   3. event, timestamp, data are there and typed     (else malformed)
 *   4. the event name is mapped; lifecycle or not      (else rejected/ignored)
 *   5. the fields the mapping needs are there         (else malformed)
 *   6. the payload was not accepted before             (else duplicate)
 *   7. the ticket is open, the step is not older than its last one, and the
 *      machine allows it                               (else rejected)
 * Steps 1-5 need no store.  Steps 6-7 and the writes that follow run in one
 * write transaction, so a decision and its record are atomic.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "machine_version.h"
#include "qgate_int.h"

struct qg_engine {
    qg__mapping *map;
    unsigned char *secret;
    size_t secret_len;
    int require_signature;
};

const char *
qg_version(void)
{
    return QG_VERSION_STRING;
}

const char *
qg_machine_version(void)
{
    return QG__MACHINE_VERSION;
}

int
qg_engine_new(qg_engine **out)
{
    qg_engine *eng;
    int rc;

    if (out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((eng = calloc(1, sizeof(*eng))) == NULL)
        return QG_ENOMEM;
    if ((rc = qg__mapping_new(&eng->map))) {
        free(eng);
        return rc;
    }
    eng->require_signature = 1;
    *out = eng;
    return 0;
}

void
qg_engine_free(qg_engine *eng)
{
    if (eng == NULL)
        return;
    qg__mapping_free(eng->map);
    if (eng->secret)
        memset(eng->secret, 0, eng->secret_len);
    free(eng->secret);
    free(eng);
}

int
qg_engine_set_secret(qg_engine *eng, const void *key, size_t len)
{
    unsigned char *copy;

    if (eng == NULL || key == NULL || len == 0)
        return QG_EINVAL;
    if ((copy = malloc(len)) == NULL)
        return QG_ENOMEM;
    memcpy(copy, key, len);
    if (eng->secret)
        memset(eng->secret, 0, eng->secret_len);
    free(eng->secret);
    eng->secret = copy;
    eng->secret_len = len;
    return 0;
}

int
qg_engine_load_secret(qg_engine *eng, const char *path, char *err,
                      size_t errlen)
{
    char buf[4096 + 3]; /* 4096 bytes of secret, CR LF, one too many */
    size_t n;
    FILE *f;
    int rc;

    if (eng == NULL || path == NULL) {
        snprintf(err, errlen, "no secret file given");
        return QG_EINVAL;
    }
    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return QG_EIO;
    }
    n = fread(buf, 1, sizeof(buf), f);
    rc = ferror(f) ? QG_EIO : 0;
    fclose(f);
    if (rc) {
        snprintf(err, errlen, "%s: read error", path);
        return rc;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n > 4096) {
        memset(buf, 0, sizeof(buf));
        snprintf(err, errlen, "%s: the secret is longer than 4096 bytes", path);
        return QG_ETOOBIG;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: the secret is empty", path);
        return QG_EINVAL;
    }
    rc = qg_engine_set_secret(eng, buf, n);
    memset(buf, 0, sizeof(buf));
    if (rc)
        snprintf(err, errlen, "%s: %s", path, qg_strerror(rc));
    return rc;
}

void
qg_engine_require_signature(qg_engine *eng, int on)
{
    if (eng)
        eng->require_signature = on != 0;
}

int
qg_engine_load_mapping(qg_engine *eng, const char *path, char *err,
                       size_t errlen)
{
    if (eng == NULL || path == NULL) {
        snprintf(err, errlen, "no mapping file given");
        return QG_EINVAL;
    }
    return qg__mapping_load(eng->map, path, err, errlen);
}

int64_t
qg__now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----- one delivery --------------------------------------------------- */

typedef struct job {
    const qg_engine *eng;
    const char *body;
    size_t len;
    int dry;
    int64_t received_us;
    qg__envelope env;
    qg__delivery d;
    qg__event_map em;
    qg_reason pre;        /* the verdict of steps 1-5 */
    int authentic;        /* the signature was checked and matched */
    qg_event state_event; /* for QG__RULE_STATE */
    qg_id_kind found_by;  /* the alias that found the ticket, or TICKET */
    unsigned char digest[QG__DIGEST_LEN];
    qg_result *res;
} job;

static void verdict(qg_result *res, qg_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
verdict(qg_result *res, qg_reason r, const char *fmt, ...)
{
    va_list ap;

    res->reason = r;
    res->verdict = qg_reason_verdict(r);
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
        va_end(ap);
    }
}

/* Steps 1-5: everything that needs no store.  Returns the reason. */
static qg_reason
examine(job *j)
{
    qg_result *res = j->res;
    qg_reason r;
    qg__span msg;

    r = qg__envelope_parse(j->body, j->len, &j->env, res->detail,
                           sizeof(res->detail));
    if (r)
        return r;
    if (j->eng->require_signature) {
        if (j->eng->secret == NULL) {
            snprintf(res->detail, sizeof(res->detail),
                     "no secret is configured to check signatures");
            return QG_R_BAD_SIGNATURE;
        }
        msg = j->env.payload_text;
        r = qg__signature_check(j->eng->secret, j->eng->secret_len, msg,
                                j->env.signature);
        if (r) {
            snprintf(res->detail, sizeof(res->detail), "%s",
                     r == QG_R_MISSING_SIGNATURE
                         ? "signature is missing or not a string"
                     : r == QG_R_SIGNATURE_FORMAT
                         ? "signature is not 64 lowercase hex digits"
                         : "signature does not match the payload's bytes "
                           "under the configured secret");
            return r;
        }
        j->authentic = 1;
    }
    if ((r = qg__payload_head(&j->env, &j->d, res->detail,
                              sizeof(res->detail))))
        return r;
    snprintf(res->chup_event, sizeof(res->chup_event), "%s", j->d.event_name);
    j->em = qg__mapping_event(j->eng->map, j->d.event_name);
    if (j->em.rule == QG__RULE_UNKNOWN) {
        snprintf(res->detail, sizeof(res->detail),
                 "payload.event \"%.64s\" is not in the mapping",
                 j->d.event_name);
        return QG_R_UNKNOWN_EVENT;
    }
    if (j->em.rule == QG__RULE_IGNORE) {
        snprintf(res->detail, sizeof(res->detail),
                 "%.64s is not a ticket lifecycle step", j->d.event_name);
        return QG_R_NOT_LIFECYCLE;
    }
    if ((r = qg__payload_fields(&j->d, j->em.rule == QG__RULE_STATE,
                                res->detail, sizeof(res->detail))))
        return r;
    if (j->em.appointment) {
        res->appointment_id =
            j->d.appointment_id ? j->d.appointment_id : j->d.id;
    } else {
        res->live_queue_id = j->d.id;
        res->appointment_id = j->d.appointment_id;
    }
    if (j->em.rule == QG__RULE_STATE) {
        j->state_event = qg__mapping_state(j->eng->map, &j->d);
        if (j->state_event == QG_EV_NONE) {
            char value[32] = "none";

            if (j->d.has_state_value)
                snprintf(value, sizeof(value), "%" PRId64, j->d.state_value);
            snprintf(res->detail, sizeof(res->detail),
                     "state is not in the mapping: state_name \"%.48s\", "
                     "state.name \"%.48s\", value %s",
                     j->d.state_name ? j->d.state_name : "",
                     j->d.state_label ? j->d.state_label : "", value);
            return QG_R_UNKNOWN_STATE;
        }
    }
    qg__digest(j->env.payload_text.p, j->env.payload_text.len, j->digest);
    return QG_R_NONE;
}

/* Finds the delivery's ticket.  QG_NOTFOUND leaves row as a new ticket. */
static int
find_ticket(qg__txn *t, job *j, qg__ticket_row *row)
{
    uint64_t id = 0;
    int rc = QG_NOTFOUND;

    memset(row, 0, sizeof(*row));
    row->t.state = QG_ST_NEW;
    j->found_by = QG_ID_TICKET;
    if (j->res->live_queue_id &&
        (rc = qg__find_alias(t, QG_ID_LIVE_QUEUE, j->res->live_queue_id,
                             &id)) == 0)
        j->found_by = QG_ID_LIVE_QUEUE;
    /* A live-queue entry made from an appointment continues its ticket. */
    if (rc == QG_NOTFOUND && j->res->appointment_id &&
        (rc = qg__find_alias(t, QG_ID_APPOINTMENT, j->res->appointment_id,
                             &id)) == 0)
        j->found_by = QG_ID_APPOINTMENT;
    if (rc == 0)
        rc = qg__get_ticket(t, id, row);
    return rc;
}

/* Waiting for service, in this service's queue or another's. */
static int
is_waiting(int s)
{
    return s == QG_ST_QUEUED || s == QG_ST_ARRIVED || s == QG_ST_MOVED;
}

static int
same_text(const char *a, const char *stored)
{
    return a == NULL || strncmp(a, stored, 15) == 0;
}

/*
 * The canonical event of the delivery for a ticket in row's state.  An
 * *_updated event naming the state the ticket is already in is no new
 * state: it is a move when a waiting patient's service changed, a
 * reschedule when an appointment's date or time did, else an update.
 * "Waiting" covers queued, arrived and moved alike, because Chup reports a
 * patient sent on to another service's queue as "In Queue" (or still
 * "Arrived") with the new service_id.
 */
static qg_event
canonical_event(const job *j, const qg__ticket_row *row)
{
    qg_state now = row->t.state;
    int named, service_changed;

    if (j->em.rule == QG__RULE_EVENT)
        return j->em.event;
    named = qg__event_target(j->state_event);
    if (!j->em.updated || named < 0 || qg_state_is_final(now))
        return j->state_event;
    if (j->em.appointment) {
        if (named != (int)now)
            return j->state_event;
        return same_text(j->d.appointment_date, row->appointment_date) &&
                       same_text(j->d.appointment_time, row->appointment_time)
                   ? QG_EV_UPDATE
                   : QG_EV_RESCHEDULE;
    }
    service_changed = j->d.service_id && row->t.service_id &&
                      j->d.service_id != row->t.service_id;
    if (service_changed && is_waiting(named) && is_waiting(now))
        return QG_EV_MOVE;
    if (named == (int)now || (named == QG_ST_QUEUED && now == QG_ST_MOVED))
        return service_changed ? QG_EV_MOVE : QG_EV_UPDATE;
    return j->state_event;
}

static const char *
who(const qg_result *res, char *buf, size_t len)
{
    if (res->live_queue_id)
        snprintf(buf, len, "live queue %" PRId64, res->live_queue_id);
    else
        snprintf(buf, len, "appointment %" PRId64, res->appointment_id);
    return buf;
}

/* Step 7: the ticket's rules.  Returns the reason. */
static qg_reason
judge(job *j, const qg__ticket_row *row, qg_event ev)
{
    qg_result *res = j->res;
    char name[48], when[40], last[40], allowed[160];

    who(res, name, sizeof(name));
    if (qg_state_is_final(row->t.state)) {
        verdict(res, QG_R_TICKET_CLOSED,
                "%s is %s, a final state: %s is refused", name,
                qg_state_name(row->t.state), qg_event_name(ev));
        return res->reason;
    }
    if (row->t.records && j->d.event_ms < row->t.last_event_ms) {
        verdict(res, QG_R_STALE,
                "%s: %s at %s is older than the last accepted step at %s", name,
                qg_event_name(ev),
                qg__format_time(j->d.event_ms, j->d.utc_offset_s, when,
                                sizeof(when)),
                qg__format_time(row->t.last_event_ms, j->d.utc_offset_s, last,
                                sizeof(last)));
        return res->reason;
    }
    if (qg_machine_next(row->t.state, ev) < 0) {
        verdict(res, QG_R_ILLEGAL_TRANSITION,
                "%s: %s is not legal from %s (legal: %s)", name,
                qg_event_name(ev), qg_state_name(row->t.state),
                qg__events_list(qg_machine_allowed(row->t.state), allowed,
                                sizeof(allowed)));
        return res->reason;
    }
    return QG_R_NONE;
}

static int
record_accepted(qg__txn *t, job *j, qg__ticket_row *row)
{
    qg_result *res = j->res;
    qg_record rec;
    int rc, fresh = row->t.id == 0;

    if (fresh) {
        if ((rc = qg__new_ticket_id(t, &row->t.id)))
            return rc;
        row->t.first_received_us = j->received_us;
    }
    /* Every id the delivery names finds the ticket from now on; the ones
     * that already do are not written again. */
    if (res->live_queue_id && j->found_by != QG_ID_LIVE_QUEUE &&
        (rc =
             qg__put_alias(t, QG_ID_LIVE_QUEUE, res->live_queue_id, row->t.id)))
        return rc;
    if (res->appointment_id && j->found_by != QG_ID_APPOINTMENT &&
        res->appointment_id != row->t.appointment_id &&
        (rc = qg__put_alias(t, QG_ID_APPOINTMENT, res->appointment_id,
                            row->t.id)))
        return rc;
    if (res->live_queue_id && !row->t.live_queue_id)
        row->t.live_queue_id = res->live_queue_id;
    if (res->appointment_id && !row->t.appointment_id)
        row->t.appointment_id = res->appointment_id;

    memset(&rec, 0, sizeof(rec));
    rec.ticket = row->t.id;
    rec.seq = row->t.records + 1;
    rec.received_us = j->received_us;
    rec.event_ms = j->d.event_ms;
    rec.utc_offset_s = j->d.utc_offset_s;
    rec.event = res->event;
    rec.from = res->from;
    rec.to = res->to;
    rec.service_id = j->d.service_id;
    rec.staff_id = j->d.staff_id;
    memcpy(rec.digest, j->digest, QG__DIGEST_LEN);
    memcpy(rec.machine, QG__MACHINE_VERSION, 16);
    rec.body = j->body;
    rec.body_len = j->len;
    if ((rc = qg__append_record(t, &rec)))
        return rc;

    row->t.state = res->to;
    row->t.records = rec.seq;
    row->t.last_event_ms = j->d.event_ms;
    row->t.last_received_us = j->received_us;
    if (j->d.service_id)
        row->t.service_id = j->d.service_id;
    if (j->d.staff_id)
        row->t.staff_id = j->d.staff_id;
    if (j->d.appointment_date)
        snprintf(row->appointment_date, sizeof(row->appointment_date), "%s",
                 j->d.appointment_date);
    if (j->d.appointment_time)
        snprintf(row->appointment_time, sizeof(row->appointment_time), "%s",
                 j->d.appointment_time);
    res->ticket = row->t.id;
    res->seq = rec.seq;
    if (qg__outbox_enabled(t->st) &&
        (rc = qg__outbox_put(t, row->t.id, rec.seq, j->received_us)))
        return rc;
    return qg__put_ticket(t, row);
}

static int
record_refused(qg__txn *t, job *j, qg__ticket_row *row)
{
    qg_result *res = j->res;
    qg_rejection rej;
    int rc;

    memset(&rej, 0, sizeof(rej));
    rej.received_us = j->received_us;
    rej.verdict = res->verdict;
    rej.reason = res->reason;
    rej.ticket = row ? row->t.id : 0;
    rej.live_queue_id = res->live_queue_id;
    rej.appointment_id = res->appointment_id;
    rej.event = res->event;
    rej.from = res->from;
    rej.detail = res->detail;
    rej.body = j->body;
    rej.body_len = j->len;
    if ((rc = qg__append_rejection(t, &rej, &res->rejection)))
        return rc;
    if (row == NULL || row->t.id == 0)
        return 0;
    row->t.rejections++;
    return qg__put_ticket(t, row);
}

/* Steps 6-7 and the writes, in one transaction (or a read-only one for a
 * dry run, where every write is skipped). */
static int
decide(qg__txn *t, void *arg)
{
    job *j = arg;
    qg_result *res = j->res;
    qg__ticket_row row;
    uint64_t ticket;
    uint32_t seq;
    int rc, known;

    /* This may run again after the map grew: start from steps 1-5. */
    verdict(res, j->pre, NULL);
    res->ticket = 0;
    res->seq = 0;
    res->rejection = 0;
    res->event = QG_EV_NONE;
    res->from = res->to = QG_ST_NEW;

    if (j->pre != QG_R_NONE) {
        /* Refused before the store; name the ticket when the delivery is
         * authentic enough to say which it is. */
        known = 0;
        if (res->verdict != QG_UNAUTHENTICATED &&
            (res->live_queue_id || res->appointment_id)) {
            rc = find_ticket(t, j, &row);
            if (rc && rc != QG_NOTFOUND)
                return rc;
            known = rc == 0;
            if (known) {
                res->ticket = row.t.id;
                res->from = res->to = row.t.state;
            }
        }
        if (res->verdict == QG_IGNORED || j->dry)
            return 1;
        return record_refused(t, j, known ? &row : NULL);
    }

    rc = qg__find_digest(t, j->digest, &ticket, &seq);
    if (rc == 0) {
        if ((rc = qg__get_ticket(t, ticket, &row)))
            return rc;
        res->ticket = ticket;
        res->seq = seq;
        res->from = res->to = row.t.state;
        verdict(res, QG_R_REDELIVERY,
                "the same payload was accepted as step %" PRIu32
                " of ticket %" PRIu64,
                seq, ticket);
        return 1;
    }
    if (rc != QG_NOTFOUND)
        return rc;

    rc = find_ticket(t, j, &row);
    if (rc && rc != QG_NOTFOUND)
        return rc;
    res->ticket = row.t.id;
    res->from = res->to = row.t.state;
    res->event = canonical_event(j, &row);
    if (judge(j, &row, res->event) != QG_R_NONE)
        return j->dry ? 1 : record_refused(t, j, &row);

    res->to = (qg_state)qg_machine_next(row.t.state, res->event);
    verdict(res, QG_R_NONE, "%s -> %s by %s", qg_state_name(res->from),
            qg_state_name(res->to), qg_event_name(res->event));
    if (j->dry)
        return 1;
    return record_accepted(t, j, &row);
}

/* Checks arguments and runs steps 1-5 of one body into j. */
static int
prepare(job *j, qg_engine *eng, const char *body, size_t len, int dry,
        qg_result *res)
{
    if (res == NULL || (body == NULL && len > 0) || len > UINT32_MAX / 2)
        return QG_EINVAL;
    memset(res, 0, sizeof(*res));
    memset(j, 0, sizeof(*j));
    j->eng = eng;
    j->body = body ? body : "";
    j->len = len;
    j->dry = dry;
    j->received_us = qg__now_us();
    j->res = res;
    j->pre = examine(j);
    return 0;
}

/* Settles j's result after rc, the outcome of decide(); j's parse stays
 * (the payload's strings live in it) until release(). */
static int
finish(job *j, int rc)
{
    qg_result *res = j->res;

    if (rc > 0)
        rc = 0;
    res->allowed = qg_machine_allowed(res->to);
    if (rc) {
        /* Nothing was written; do not let the result claim otherwise. */
        res->ticket = 0;
        res->seq = 0;
        res->rejection = 0;
    }
    return rc;
}

static void
release(job *j)
{
    qg__envelope_free(&j->env);
}

int
qg_engine_apply(qg_engine *eng, qg_store *st, const char *body, size_t len,
                unsigned flags, qg_result *res)
{
    job j;
    qg__txn t;
    int rc;

    if (eng == NULL || st == NULL || (flags & ~QG_DRY_RUN))
        return QG_EINVAL;
    if (!(flags & QG_DRY_RUN) && !qg__store_writable(st))
        return QG_ERDONLY;
    if ((rc = prepare(&j, eng, body, len, (flags & QG_DRY_RUN) != 0, res)))
        return rc;
    if (j.dry) {
        if ((rc = qg__txn_begin(st, 0, &t)) == 0) {
            rc = decide(&t, &j);
            qg__txn_abort(&t);
        }
    } else {
        rc = qg__store_write(st, decide, &j);
    }
    rc = finish(&j, rc);
    release(&j);
    return rc;
}

/* ----- many deliveries, one commit ------------------------------------ */

struct qg_prepared {
    job j;
    qg_result res;
};

typedef struct batch {
    job **jobs; /* NULL where prepare() refused the body */
    int *rcs;
    size_t n;
} batch;

/*
 * Every job straight in the one write transaction: the common case, where
 * no job fails.  A job that fails (a store error) aborts the batch, which
 * then runs again with each job nested (decide_nested), so that the
 * failure is undone alone.
 */
static int
decide_flat(qg__txn *t, void *arg)
{
    batch *b = arg;
    size_t i;
    int rc;

    for (i = 0; i < b->n; i++) {
        if (b->jobs[i] == NULL)
            continue;
        if ((rc = decide(t, b->jobs[i])) < 0)
            return rc;
        b->rcs[i] = 0;
    }
    return 0;
}

/* Every job in a nested transaction of the one write transaction.  A job
 * that fails is undone alone; a full map undoes the batch, to be run again
 * once the map has grown. */
static int
decide_nested(qg__txn *t, void *arg)
{
    batch *b = arg;
    qg__txn child;
    size_t i;
    int rc;

    for (i = 0; i < b->n; i++) {
        if (b->jobs[i] == NULL)
            continue;
        if ((rc = qg__txn_nest(t, &child)))
            return rc;
        rc = decide(&child, b->jobs[i]);
        if (rc == 0)
            rc = qg__txn_nest_commit(&child);
        else
            qg__txn_nest_abort(&child);
        if (rc == QG_EFULL)
            return rc;
        b->rcs[i] = rc > 0 ? 0 : rc;
    }
    return 0;
}

/* Runs prepared jobs in one transaction and settles their results. */
static int
run_batch(qg_store *st, batch *b)
{
    size_t i;
    int rc;

    rc = qg__store_write(st, decide_flat, b);
    if (rc && rc != QG_EFULL && rc != QG_ERDONLY)
        rc = qg__store_write(st, decide_nested, b);
    for (i = 0; i < b->n; i++)
        if (b->jobs[i])
            b->rcs[i] = finish(b->jobs[i], rc ? rc : b->rcs[i]);
    return rc;
}

int
qg_engine_apply_batch(qg_engine *eng, qg_store *st, const qg_body *bodies,
                      size_t n, qg_result *res, int *rcs)
{
    job *jobs;
    batch b;
    size_t i;
    int rc;

    if (eng == NULL || st == NULL || (n > 0 && (!bodies || !res || !rcs)))
        return QG_EINVAL;
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    if (n == 0)
        return 0;
    jobs = calloc(n, sizeof(*jobs));
    b.jobs = calloc(n, sizeof(*b.jobs));
    if (jobs == NULL || b.jobs == NULL) {
        free(jobs);
        free(b.jobs);
        return QG_ENOMEM;
    }
    b.rcs = rcs;
    b.n = n;
    for (i = 0; i < n; i++) {
        rcs[i] =
            prepare(&jobs[i], eng, bodies[i].body, bodies[i].len, 0, &res[i]);
        b.jobs[i] = rcs[i] ? NULL : &jobs[i];
    }
    rc = run_batch(st, &b);
    for (i = 0; i < n; i++)
        if (b.jobs[i])
            release(b.jobs[i]);
    free(jobs);
    free(b.jobs);
    return rc;
}

int
qg_engine_prepare(qg_engine *eng, const char *body, size_t len,
                  qg_prepared **out)
{
    qg_prepared *p;
    int rc;

    if (eng == NULL || out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if ((p = malloc(sizeof(*p))) == NULL)
        return QG_ENOMEM;
    if ((rc = prepare(&p->j, eng, body, len, 0, &p->res))) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int
qg_engine_apply_prepared(qg_store *st, qg_prepared *const *prepared, size_t n,
                         qg_result *res, int *rcs)
{
    batch b;
    size_t i;
    int rc;

    if (st == NULL || (n > 0 && (!prepared || !res || !rcs)))
        return QG_EINVAL;
    for (i = 0; i < n; i++)
        if (prepared[i] == NULL)
            return QG_EINVAL;
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    if (n == 0)
        return 0;
    if ((b.jobs = calloc(n, sizeof(*b.jobs))) == NULL)
        return QG_ENOMEM;
    b.rcs = rcs;
    b.n = n;
    for (i = 0; i < n; i++) {
        b.jobs[i] = &prepared[i]->j;
        rcs[i] = 0;
    }
    rc = run_batch(st, &b);
    for (i = 0; i < n; i++)
        res[i] = prepared[i]->res;
    free(b.jobs);
    return rc;
}

int
qg_prepared_unsigned(const qg_prepared *p)
{
    qg_verdict v;

    if (p == NULL || p->j.authentic || p->j.pre == QG_R_NONE)
        return 0;
    v = qg_reason_verdict(p->j.pre);
    return v == QG_UNAUTHENTICATED || v == QG_MALFORMED;
}

void
qg_prepared_free(qg_prepared *p)
{
    if (p == NULL)
        return;
    release(&p->j);
    free(p);
}
