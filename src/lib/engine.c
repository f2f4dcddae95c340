/*
 * engine.c - deciding a delivery and recording the decision.
 *
 * Order of judgement, each step only when the ones before passed:
 *   1. the body is one JSON object with a payload     (else malformed)
 *   2. the signature matches the payload's bytes       (else unauthenticated)
 *   3. event, timestamp, data are there and typed, and
 *      the timestamp is not ahead of our clock          (else malformed)
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

#include "machine_version.h"
#include "qgate_int.h"

struct qg_engine {
    qg__mapping *map;
    /* The secrets any of which may sign a delivery, in the order given:
     * during a rotation the old one and the new one. */
    unsigned char *secrets[QG_SECRETS_MAX];
    size_t secret_lens[QG_SECRETS_MAX];
    size_t nsecrets;
    int require_signature;
    int64_t window_s;    /* the reorder window; 0 judges on arrival */
    int64_t max_skew_ms; /* 0: steps may be dated any time ahead */
    char source[QG_SOURCE_NAME_MAX + 1]; /* the source judged for */
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

/* Wipes and frees n secrets. */
static void
wipe_secrets(unsigned char **keys, const size_t *lens, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        memset(keys[i], 0, lens[i]);
        free(keys[i]);
        keys[i] = NULL;
    }
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
    eng->max_skew_ms = (int64_t)QG_MAX_SKEW_DEFAULT * 1000;
    snprintf(eng->source, sizeof(eng->source), "%s", QG_SOURCE_DEFAULT);
    *out = eng;
    return 0;
}

void
qg_engine_free(qg_engine *eng)
{
    if (eng == NULL)
        return;
    qg__mapping_free(eng->map);
    wipe_secrets(eng->secrets, eng->secret_lens, eng->nsecrets);
    free(eng);
}

int
qg_engine_set_secrets(qg_engine *eng, const void *const *keys,
                      const size_t *lens, size_t n)
{
    unsigned char *copies[QG_SECRETS_MAX];
    size_t i;

    if (eng == NULL || keys == NULL || lens == NULL || n == 0 ||
        n > QG_SECRETS_MAX)
        return QG_EINVAL;
    for (i = 0; i < n; i++)
        if (keys[i] == NULL || lens[i] == 0)
            return QG_EINVAL;
    for (i = 0; i < n; i++) {
        if ((copies[i] = malloc(lens[i])) == NULL) {
            wipe_secrets(copies, lens, i);
            return QG_ENOMEM;
        }
        memcpy(copies[i], keys[i], lens[i]);
    }
    wipe_secrets(eng->secrets, eng->secret_lens, eng->nsecrets);
    for (i = 0; i < n; i++) {
        eng->secrets[i] = copies[i];
        eng->secret_lens[i] = lens[i];
    }
    eng->nsecrets = n;
    return 0;
}

int
qg_engine_set_secret(qg_engine *eng, const void *key, size_t len)
{
    return qg_engine_set_secrets(eng, &key, &len, 1);
}

size_t
qg_engine_secret_count(const qg_engine *eng)
{
    return eng ? eng->nsecrets : 0;
}

/*
 * One secret a line: a file of one line reads as it always did (its bytes
 * less one trailing line end), and a second line is a second secret, so
 * that a rotation is an edit and a SIGHUP.  Blank lines are skipped; a
 * secret can hold no line end.
 */
int
qg_engine_load_secret(qg_engine *eng, const char *path, char *err,
                      size_t errlen)
{
    /* QG_SECRETS_MAX secrets of 4096 bytes with CR LF, and one too many */
    enum { CAP = QG_SECRETS_MAX * (4096 + 2) + 1 };
    const void *keys[QG_SECRETS_MAX];
    size_t lens[QG_SECRETS_MAX], n, nkeys = 0, line = 0, i = 0;
    char *buf;
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
    if ((buf = malloc(CAP)) == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: %s", path, qg_strerror(QG_ENOMEM));
        return QG_ENOMEM;
    }
    n = fread(buf, 1, CAP, f);
    rc = ferror(f) ? QG_EIO : 0;
    fclose(f);
    if (rc) {
        snprintf(err, errlen, "%s: read error", path);
        goto wipe;
    }
    if (n == CAP) {
        snprintf(err, errlen, "%s: longer than %d secrets of 4096 bytes", path,
                 QG_SECRETS_MAX);
        rc = QG_ETOOBIG;
        goto wipe;
    }
    while (i < n) {
        size_t start = i, len;

        while (i < n && buf[i] != '\n' && buf[i] != '\r')
            i++;
        len = i - start;
        line++;
        if (i < n && buf[i] == '\r')
            i++;
        if (i < n && buf[i] == '\n')
            i++;
        if (len == 0)
            continue; /* a blank line */
        if (len > 4096) {
            snprintf(err, errlen,
                     "%s: line %zu: the secret is longer than 4096 bytes", path,
                     line);
            rc = QG_ETOOBIG;
            goto wipe;
        }
        if (nkeys == QG_SECRETS_MAX) {
            snprintf(err, errlen, "%s: line %zu: more than %d secrets", path,
                     line, QG_SECRETS_MAX);
            rc = QG_ETOOBIG;
            goto wipe;
        }
        keys[nkeys] = buf + start;
        lens[nkeys++] = len;
    }
    if (nkeys == 0) {
        snprintf(err, errlen, "%s: the secret is empty", path);
        rc = QG_EINVAL;
        goto wipe;
    }
    if ((rc = qg_engine_set_secrets(eng, keys, lens, nkeys)))
        snprintf(err, errlen, "%s: %s", path, qg_strerror(rc));
wipe:
    memset(buf, 0, CAP);
    free(buf);
    return rc;
}

void
qg_engine_require_signature(qg_engine *eng, int on)
{
    if (eng)
        eng->require_signature = on != 0;
}

int
qg_engine_set_source(qg_engine *eng, const char *name)
{
    if (name == NULL)
        name = QG_SOURCE_DEFAULT;
    if (eng == NULL || qg_source_name_check(name))
        return QG_EINVAL;
    snprintf(eng->source, sizeof(eng->source), "%s", name);
    return 0;
}

const char *
qg_engine_source(const qg_engine *eng)
{
    return eng ? eng->source : QG_SOURCE_DEFAULT;
}

int
qg_engine_set_reorder_window(qg_engine *eng, int64_t seconds)
{
    if (eng == NULL || seconds < 0 || seconds > 31536000)
        return QG_EINVAL;
    eng->window_s = seconds;
    return 0;
}

int
qg_engine_set_max_skew(qg_engine *eng, int64_t seconds)
{
    if (eng == NULL || seconds < 0 || seconds > INT32_MAX)
        return QG_EINVAL;
    eng->max_skew_ms = seconds * 1000;
    return 0;
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

/* ----- one delivery --------------------------------------------------- */

typedef struct job {
    const qg_engine *eng; /* examine() only: a prepared job outlives it */
    const char *body;
    size_t len;
    int dry;
    int64_t received_us;
    int64_t window_us; /* the engine's reorder window when prepared */
    qg__envelope env;  /* the parse, for steps 1-5: prepare() frees it */
    qg__delivery d;
    qg__event_map em;
    qg_reason pre;    /* the verdict of steps 1-5 */
    int authentic;    /* the signature was checked and matched */
    int secret_index; /* which secret it matched, -1 if none */
    qg__step s;       /* what steps 6-7 need, once steps 1-5 passed */
    qg_result *res;
    /* The engine's source, copied: a prepared job outlives the engine. */
    char source[QG_SOURCE_NAME_MAX + 1];
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

/* Copies what steps 6-7 need out of the parse. */
static void
take_step(job *j, qg_event state_event, const unsigned char *digest)
{
    qg__step *s = &j->s;

    s->f.em = j->em;
    s->f.state_event = state_event;
    s->event_ms = j->d.event_ms;
    s->utc_offset_s = j->d.utc_offset_s;
    s->live_queue_id = j->res->live_queue_id;
    s->appointment_id = j->res->appointment_id;
    s->f.service_id = j->d.service_id;
    s->staff_id = j->d.staff_id;
    snprintf(s->f.appointment_date, sizeof(s->f.appointment_date), "%s",
             j->d.appointment_date ? j->d.appointment_date : "");
    snprintf(s->f.appointment_time, sizeof(s->f.appointment_time), "%s",
             j->d.appointment_time ? j->d.appointment_time : "");
    memcpy(s->digest, digest, QG__DIGEST_LEN);
    memcpy(s->chup_event, j->res->chup_event, sizeof(s->chup_event));
    s->received_us = j->received_us;
    s->body = j->body;
    s->body_len = j->len;
    /* The chain's digest of the body, here where deliveries are examined
     * side by side rather than under the store's one writer. */
    s->has_body_digest = qg__digest(j->body, j->len, s->body_digest) == 0;
}

/* Steps 1-5: everything that needs no store.  Returns the reason. */
static qg_reason
examine(job *j)
{
    qg_result *res = j->res;
    unsigned char digest[QG__DIGEST_LEN];
    qg_event state_event = QG_EV_NONE;
    qg_reason r;
    qg__span msg;

    r = qg__envelope_parse(j->body, j->len, &j->env, res->detail,
                           sizeof(res->detail));
    if (r)
        return r;
    if (j->eng->require_signature) {
        size_t k;

        if (j->eng->nsecrets == 0) {
            snprintf(res->detail, sizeof(res->detail),
                     "no secret is configured to check signatures");
            return QG_R_BAD_SIGNATURE;
        }
        msg = j->env.payload_text;
        /* Each secret in turn: the format is refused before any key is
         * used, so only a well-formed signature costs n HMACs. */
        r = QG_R_BAD_SIGNATURE;
        for (k = 0; k < j->eng->nsecrets; k++) {
            r = qg__signature_check(j->eng->secrets[k], j->eng->secret_lens[k],
                                    msg, j->env.signature);
            if (r != QG_R_BAD_SIGNATURE)
                break;
        }
        if (r == QG_R_NONE)
            j->secret_index = (int)k;
        if (r) {
            snprintf(res->detail, sizeof(res->detail), "%s",
                     r == QG_R_MISSING_SIGNATURE
                         ? "signature is missing or not a string"
                     : r == QG_R_SIGNATURE_FORMAT
                         ? "signature is not 64 lowercase hex digits"
                         : "signature does not match the payload's bytes "
                           "under the configured secrets");
            return r;
        }
        j->authentic = 1;
    }
    if ((r = qg__payload_head(&j->env, &j->d, res->detail,
                              sizeof(res->detail))) ||
        (r = qg__payload_skew(&j->d, j->received_us / 1000, j->eng->max_skew_ms,
                              res->detail, sizeof(res->detail))))
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
        state_event = qg__mapping_state(j->eng->map, &j->d);
        if (state_event == QG_EV_NONE) {
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
    qg__digest(j->env.payload_text.p, j->env.payload_text.len, digest);
    take_step(j, state_event, digest);
    return QG_R_NONE;
}

/* What one decision in the store needs besides the step. */
typedef struct decision {
    int64_t window_us; /* 0: judged on arrival, never held or placed late */
    int dry;           /* decide, write nothing */
} decision;

/* Finds the delivery's ticket.  QG_NOTFOUND leaves row as a new ticket. */
static int
find_ticket(qg__txn *t, const qg__step *s, qg__ticket_row *row,
            qg_id_kind *found_by)
{
    uint64_t id = 0;
    int rc = QG_NOTFOUND;

    memset(row, 0, sizeof(*row));
    row->t.state = QG_ST_NEW;
    *found_by = QG_ID_TICKET;
    if (s->live_queue_id &&
        (rc = qg__find_alias(t, QG_ID_LIVE_QUEUE, s->live_queue_id, &id)) == 0)
        *found_by = QG_ID_LIVE_QUEUE;
    /* A live-queue entry made from an appointment continues its ticket. */
    if (rc == QG_NOTFOUND && s->appointment_id &&
        (rc = qg__find_alias(t, QG_ID_APPOINTMENT, s->appointment_id, &id)) ==
            0)
        *found_by = QG_ID_APPOINTMENT;
    if (rc == 0)
        rc = qg__get_ticket(t, id, row);
    return rc;
}

/* Waiting for service, in this service's queue or another's. */
static int
same_text(const char *a, const char *stored)
{
    return a[0] == '\0' || strncmp(a, stored, 15) == 0;
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
canonical_event(const qg__facts *f, const qg__ticket_row *row)
{
    qg_state now = row->t.state;
    int named, service_changed;

    if (f->em.rule == QG__RULE_EVENT)
        return f->em.event;
    named = qg__event_target(f->state_event);
    if (!f->em.updated || named < 0 || qg_state_is_final(now))
        return f->state_event;
    if (f->em.appointment) {
        if (named != (int)now)
            return f->state_event;
        return same_text(f->appointment_date, row->appointment_date) &&
                       same_text(f->appointment_time, row->appointment_time)
                   ? QG_EV_UPDATE
                   : QG_EV_RESCHEDULE;
    }
    service_changed = f->service_id && row->t.service_id &&
                      f->service_id != row->t.service_id;
    if (service_changed && qg_state_is_waiting((qg_state)named) &&
        qg_state_is_waiting(now))
        return QG_EV_MOVE;
    if (named == (int)now || (named == QG_ST_QUEUED && now == QG_ST_MOVED))
        return service_changed ? QG_EV_MOVE : QG_EV_UPDATE;
    return f->state_event;
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

/* Writes a duration as 1h02m, 20m00s or 5s.  Returns dst. */
static char *
span_text(int64_t us, char *dst, size_t len)
{
    int64_t s = us < 0 ? 0 : us / 1000000;

    if (s >= 3600)
        snprintf(dst, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(dst, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else
        snprintf(dst, len, "%" PRId64 "s", s);
    return dst;
}

/* Step 7 on arrival: the ticket's rules against its newest step, as they
 * stand with no reorder window.  Returns the reason. */
static qg_reason
judge(const qg__step *s, const qg__ticket_row *row, qg_event ev, qg_result *res)
{
    char name[48], when[40], last[40], allowed[160];

    who(res, name, sizeof(name));
    if (qg_state_is_final(row->t.state)) {
        verdict(res, QG_R_TICKET_CLOSED,
                "%s is %s, a final state: %s is refused", name,
                qg_state_name(row->t.state), qg_event_name(ev));
        return res->reason;
    }
    if (row->t.records && s->event_ms < row->t.last_event_ms) {
        verdict(
            res, QG_R_STALE,
            "%s: %s at %s is older than the last accepted step at %s", name,
            qg_event_name(ev),
            qg_time_format(s->event_ms, s->utc_offset_s, when, sizeof(when)),
            qg_time_format(row->t.last_event_ms, s->utc_offset_s, last,
                           sizeof(last)));
        return res->reason;
    }
    if (qg_machine_next(row->t.state, ev) < 0) {
        verdict(res, QG_R_ILLEGAL_TRANSITION,
                "%s: %s is not legal from %s (legal: %s)", name,
                qg_event_name(ev), qg_state_name(row->t.state),
                qg_events_format(qg_machine_allowed(row->t.state), allowed,
                                 sizeof(allowed)));
        return res->reason;
    }
    return QG_R_NONE;
}

/* Logs a refusal as res gives it, counted on its ticket (row may be
 * NULL). */
static int
record_refused(qg__txn *t, const char *body, size_t len, int64_t received_us,
               qg__ticket_row *row, qg_result *res)
{
    qg_rejection rej;

    memset(&rej, 0, sizeof(rej));
    rej.received_us = received_us;
    rej.verdict = res->verdict;
    rej.reason = res->reason;
    rej.ticket = row ? row->t.id : 0;
    rej.live_queue_id = res->live_queue_id;
    rej.appointment_id = res->appointment_id;
    rej.event = res->event;
    rej.from = res->from;
    rej.detail = res->detail;
    rej.body = body;
    rej.body_len = len;
    return qg__store_refuse(t, row, &rej, &res->rejection);
}

/* The steps of path that s's timestamp allows it to follow: at least lo,
 * at most hi.  Equal stamps (Chup's have one-second resolution) may stand
 * on either side. */
static void
bounds(const qg__step *s, const qg__path *path, size_t *lo, size_t *hi)
{
    size_t i;

    for (i = 0; i < path->n && path->steps[i].event_ms < s->event_ms; i++)
        ;
    *lo = i;
    for (; i < path->n && path->steps[i].event_ms <= s->event_ms; i++)
        ;
    *hi = i;
}

/* The ticket as it stood after the first `at` steps of path, as far as
 * canonical_event() looks at it. */
static qg__ticket_row
row_at(const qg__ticket_row *row, const qg__path *path, size_t at)
{
    qg__ticket_row r = *row;
    size_t k;

    if (at == path->n)
        return r;
    r.t.state = at ? path->steps[at - 1].to : QG_ST_NEW;
    r.t.service_id = 0;
    for (k = at; k-- > 0;) {
        if (path->steps[k].service_id) {
            r.t.service_id = path->steps[k].service_id;
            break;
        }
    }
    return r;
}

/* The events legal in s or in any state reachable from it. */
static unsigned
reachable_events(qg_state s)
{
    unsigned seen = 1u << s, mask = 0, todo = 1u << s;
    int from, e, to;

    while (todo) {
        for (from = 0; !(todo & (1u << from)); from++)
            ;
        todo &= ~(1u << from);
        mask |= qg_machine_allowed((qg_state)from);
        for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
            to = qg_machine_next((qg_state)from, (qg_event)e);
            if (to >= 0 && !(seen & (1u << to))) {
                seen |= 1u << to;
                todo |= 1u << to;
            }
        }
    }
    return mask;
}

/*
 * Whether a step that has not arrived could still make s legal: some
 * place its timestamp allows follows a state that is not final and from
 * which a state that takes s's event can be reached.  A closed ticket, a
 * step that only a new ticket takes, or a step dated after the ticket
 * closed, never can.
 */
static int
could_wait(const qg__step *s, const qg__ticket_row *row, const qg__path *path)
{
    size_t lo, hi, at;

    bounds(s, path, &lo, &hi);
    for (at = lo; at <= hi; at++) {
        qg__ticket_row r = row_at(row, path, at);
        qg_event ev = canonical_event(&s->f, &r);

        if (!qg_state_is_final(r.t.state) &&
            (reachable_events(r.t.state) & (1u << ev)))
            return 1;
    }
    return 0;
}

/* ----- reconciling a ticket's path -------------------------------------- */

/*
 * Steps are placed by one search.  The items are the ticket's accepted
 * steps, which must all stay, and the steps that may join them: the new
 * delivery and the ticket's held ones.  In event-time order, the search
 * (dynamic programming over item and state, 13 states) finds the path
 * that the machine takes with the most joining steps, the new delivery
 * first: a late step is then placed, and two held steps that are legal
 * only together (a pharmacy receipt and dispense before a payment) join
 * together.  Each item's canonical event is derived again for the state
 * it now follows, from the facts kept with it: an appointment update
 * that came before its booking was taken for the booking, and becomes a
 * reschedule once the booking is placed before it.
 */
enum { ITEM_PATH, ITEM_NEW, ITEM_HELD };

typedef struct item {
    int64_t event_ms;
    int kind;
    const qg__path_step *ps; /* ITEM_PATH */
    qg__step s;              /* ITEM_NEW, ITEM_HELD */
    char *body;              /* ITEM_HELD: a copy, owned */
    uint64_t held_id;
    uint64_t order; /* ties: path position, or held id */
    int tie;        /* at equal stamps, lower first (see best_plan) */
    /* the plan */
    int in;
    qg_event ev;
    qg_state from, to;
} item;

typedef struct plan {
    item *items;
    size_t m, cap;
} plan;

static void
plan_free(plan *p)
{
    size_t i;

    for (i = 0; i < p->m; i++)
        free(p->items[i].body);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

static item *
plan_add(plan *p)
{
    item *grown;

    if (p->m == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        if ((grown = realloc(p->items, p->cap * sizeof(*grown))) == NULL)
            return NULL;
        p->items = grown;
    }
    memset(&p->items[p->m], 0, sizeof(*grown));
    return &p->items[p->m++];
}

static int
by_event_order(const void *a, const void *b)
{
    const item *x = a, *y = b;

    if (x->event_ms != y->event_ms)
        return x->event_ms < y->event_ms ? -1 : 1;
    if (x->tie != y->tie)
        return x->tie - y->tie;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts p in event time, joining steps after (early 0) or before (1)
 * the accepted steps of the same stamp. */
static void
sort_plan(plan *p, int early)
{
    size_t i;

    for (i = 0; i < p->m; i++)
        p->items[i].tie = (p->items[i].kind == ITEM_PATH) == early;
    qsort(p->items, p->m, sizeof(*p->items), by_event_order);
}

/* The event of item i for a ticket in state s, with what came before. */
static qg_event
item_event(const plan *p, size_t i, qg_state s, const qg__ticket_row *row)
{
    const item *it = &p->items[i];
    const qg__facts *f;
    qg__ticket_row r;
    size_t k;

    if (it->kind == ITEM_PATH && !it->ps->has_facts)
        return it->ps->event;
    f = it->kind == ITEM_PATH ? &it->ps->f : &it->s.f;
    memset(&r, 0, sizeof(r));
    r.t.state = s;
    /* The service it follows: the last one named before it in event time,
     * by any step, taken or not (a step left out still says where the
     * patient was sent). */
    for (k = i; k-- > 0 && !r.t.service_id;) {
        const item *b = &p->items[k];

        r.t.service_id =
            b->kind == ITEM_PATH ? b->ps->service_id : b->s.f.service_id;
    }
    /* The appointment's date and time: the ticket's, as last seen. */
    memcpy(r.appointment_date, row->appointment_date,
           sizeof(r.appointment_date));
    memcpy(r.appointment_time, row->appointment_time,
           sizeof(r.appointment_time));
    return canonical_event(f, &r);
}

#define NO_SCORE (-1L)

/* Runs the search over p's items in their current order.  Returns the
 * best score, or NO_SCORE when the accepted steps cannot all stay (then
 * nothing is planned); marks the items in the plan. */
static long
search(plan *p, const qg__ticket_row *row)
{
    long(*score)[QG_STATE_COUNT];
    unsigned char(*from)[QG_STATE_COUNT], (*took)[QG_STATE_COUNT];
    long best = NO_SCORE, w;
    size_t i;
    int s, nx, at = -1;

    score = malloc((p->m + 1) * sizeof(*score));
    from = malloc((p->m + 1) * sizeof(*from));
    took = malloc((p->m + 1) * sizeof(*took));
    if (score == NULL || from == NULL || took == NULL) {
        best = NO_SCORE - 1;
        goto done;
    }
    for (s = 0; s < QG_STATE_COUNT; s++)
        score[0][s] = NO_SCORE;
    score[0][QG_ST_NEW] = 0;
    for (i = 0; i < p->m; i++) {
        for (s = 0; s < QG_STATE_COUNT; s++)
            score[i + 1][s] = NO_SCORE;
        /* The new delivery outweighs every held one; accepted steps must
         * stay, so they have no "left out" branch at all. */
        w = p->items[i].kind == ITEM_NEW    ? 1L << 20
            : p->items[i].kind == ITEM_HELD ? 1
                                            : 0;
        for (s = 0; s < QG_STATE_COUNT; s++) {
            if (score[i][s] == NO_SCORE)
                continue;
            if (p->items[i].kind != ITEM_PATH &&
                score[i][s] > score[i + 1][s]) {
                score[i + 1][s] = score[i][s];
                from[i + 1][s] = (unsigned char)s;
                took[i + 1][s] = 0;
            }
            nx = qg_machine_next((qg_state)s,
                                 item_event(p, i, (qg_state)s, row));
            if (nx < 0)
                continue;
            if (score[i][s] + w > score[i + 1][nx]) {
                score[i + 1][nx] = score[i][s] + w;
                from[i + 1][nx] = (unsigned char)s;
                took[i + 1][nx] = 1;
            }
        }
    }
    for (s = 0; s < QG_STATE_COUNT; s++)
        if (score[p->m][s] > best) {
            best = score[p->m][s];
            at = s;
        }
    for (i = p->m; best != NO_SCORE && i-- > 0;) {
        item *it = &p->items[i];
        int prev = from[i + 1][at];

        it->in = took[i + 1][at];
        if (it->in) {
            it->from = (qg_state)prev;
            it->to = (qg_state)at;
            it->ev = item_event(p, i, (qg_state)prev, row);
        }
        at = prev;
    }
done:
    free(score);
    free(from);
    free(took);
    return best;
}

/* Plans with joining steps after the accepted steps of equal stamps, and
 * before them; keeps the better. */
static int
best_plan(plan *p, const qg__ticket_row *row, long *score)
{
    long after, before;

    sort_plan(p, 0);
    if ((after = search(p, row)) < NO_SCORE)
        return QG_ENOMEM;
    sort_plan(p, 1);
    if ((before = search(p, row)) < NO_SCORE)
        return QG_ENOMEM;
    if (after > before) {
        sort_plan(p, 0);
        if (search(p, row) < NO_SCORE)
            return QG_ENOMEM;
    }
    *score = after > before ? after : before;
    return 0;
}

/* Adds the accepted steps of path. */
static int
plan_path(plan *p, const qg__path *path)
{
    size_t i;
    item *it;

    for (i = 0; i < path->n; i++) {
        if ((it = plan_add(p)) == NULL)
            return QG_ENOMEM;
        it->kind = ITEM_PATH;
        it->ps = &path->steps[i];
        it->event_ms = it->ps->event_ms;
        it->order = it->ps->pos;
    }
    return 0;
}

/* Adds the held deliveries under ids (two kinds, twice: the step's ids
 * and the ticket's).  Most of the time nothing is held at all: one look
 * at the held list's size then does.  decide_step() looked already, for a
 * held redelivery, and the answer is asked again rather than passed on:
 * PostgreSQL's write transactions read committed, and that look came
 * before find_ticket() locked the delivery's ids, so it can miss what
 * another gate held under them meanwhile, which this one must release. */
static int
plan_held(qg__txn *t, plan *p, const int64_t ids[4])
{
    static const qg_id_kind kinds[4] = {QG_ID_LIVE_QUEUE, QG_ID_APPOINTMENT,
                                        QG_ID_LIVE_QUEUE, QG_ID_APPOINTMENT};
    uint64_t *found;
    qg_held h;
    size_t i, j, m;
    item *it;
    int rc = 0, k, have;

    if (!qg__held_any(t))
        return 0;
    for (k = 0; k < 4 && rc == 0; k++) {
        if (ids[k] == 0 || (k >= 2 && ids[k] == ids[k - 2]))
            continue;
        if ((rc = qg__held_ids_for(t, kinds[k], ids[k], &found, &m)))
            return rc;
        for (i = 0; i < m && rc == 0; i++) {
            for (j = 0, have = 0; j < p->m && !have; j++)
                have = p->items[j].kind == ITEM_HELD &&
                       p->items[j].held_id == found[i];
            if (have)
                continue;
            if ((it = plan_add(p)) == NULL) {
                rc = QG_ENOMEM;
                break;
            }
            it->kind = ITEM_HELD;
            it->held_id = it->order = found[i];
            if ((rc = qg__held_get(t, found[i], &it->s, &h))) {
                rc = rc == QG_NOTFOUND ? QG_ESTORE : rc;
                break;
            }
            /* The body points into the map, which writes may move. */
            if ((it->body = malloc(it->s.body_len + 1)) == NULL) {
                rc = QG_ENOMEM;
                break;
            }
            memcpy(it->body, it->s.body, it->s.body_len);
            it->s.body = it->body;
            it->event_ms = it->s.event_ms;
        }
        free(found);
    }
    return rc;
}

/* Appends one step to its ticket's history: the store moves the row's
 * count on, and for the newest step in event time its ids. */
static int
append_step(qg__txn *t, const qg__step *s, qg__ticket_row *row, uint32_t pos,
            int late, int released, qg_event ev, qg_state from, qg_state to,
            uint32_t *seq)
{
    qg__accepted a;
    qg_record *rec = &a.rec;
    int rc;

    memset(&a, 0, sizeof(a));
    rec->pos = pos;
    rec->late = late;
    rec->released = released;
    rec->received_us = s->received_us;
    rec->event_ms = s->event_ms;
    rec->utc_offset_s = s->utc_offset_s;
    rec->event = ev;
    rec->from = from;
    rec->to = to;
    rec->service_id = s->f.service_id;
    rec->staff_id = s->staff_id;
    memcpy(rec->digest, s->digest, QG__DIGEST_LEN);
    memcpy(rec->machine, QG__MACHINE_VERSION, 16);
    rec->body = s->body;
    rec->body_len = s->body_len;
    a.facts = &s->f;
    a.body_digest = s->has_body_digest ? s->body_digest : NULL;
    a.live_queue_id = s->live_queue_id;
    a.appointment_id = s->appointment_id;
    if ((rc = qg__store_accept(t, row, &a)))
        return rc;
    *seq = rec->seq;
    return 0;
}

/*
 * Writes a plan: the new step and the held ones that join, appended in
 * event order, and every accepted step whose place, event or states
 * changed.  res gets the new step's seq, place and late mark, and the
 * count of held steps released.
 */
static int
write_plan(qg__txn *t, plan *p, qg__ticket_row *row, qg_result *res)
{
    uint32_t pos = 0, seq;
    qg_state end = row->t.state;
    size_t i, k;
    int rc, late;

    for (i = 0; i < p->m; i++) {
        item *it = &p->items[i];

        if (!it->in)
            continue;
        pos++;
        end = it->to;
        if (it->kind == ITEM_PATH) {
            if (pos != it->ps->pos || it->ev != it->ps->event ||
                it->from != it->ps->from || it->to != it->ps->to) {
                if ((rc = qg__move_record(t, row->t.id, it->ps->seq, pos,
                                          it->ev, it->from, it->to, -1)))
                    return rc;
            }
            continue;
        }
        for (k = i + 1, late = 0; k < p->m && !late; k++)
            late = p->items[k].in && p->items[k].kind == ITEM_PATH;
        if ((rc = append_step(t, &it->s, row, pos, late, it->kind == ITEM_HELD,
                              it->ev, it->from, it->to, &seq)))
            return rc;
        if (it->kind == ITEM_HELD) {
            if ((rc = qg__held_delete(t, it->held_id)))
                return rc;
            res->released++;
        } else {
            res->seq = seq;
            res->pos = pos;
            res->late = late;
            res->event = it->ev;
        }
    }
    row->t.state = end;
    res->ticket = row->t.id;
    res->to = end;
    return qg__put_ticket(t, row);
}

/* Tries the ticket's held deliveries again, after a step was accepted. */
static int
release_held(qg__txn *t, const qg__step *s, qg__ticket_row *row, qg_result *res)
{
    int64_t ids[4];
    qg__path path = {0};
    plan p = {0};
    long score;
    int rc;

    ids[0] = s->live_queue_id;
    ids[1] = s->appointment_id;
    ids[2] = row->t.live_queue_id;
    ids[3] = row->t.appointment_id;
    if ((rc = plan_held(t, &p, ids)) || p.m == 0)
        goto done; /* nothing held */
    if ((rc = qg__load_path(t, row->t.id, &path)) ||
        (rc = plan_path(&p, &path)))
        goto done;
    if ((rc = best_plan(&p, row, &score)))
        goto done;
    if (score > 0)
        rc = write_plan(t, &p, row, res);
done:
    plan_free(&p);
    qg__path_free(&path);
    return rc;
}

/*
 * Steps 6-7 of a step that passed 1-5, and the writes.  Returns 0 when
 * something was written, 1 when nothing needs writing, else an error.
 * With a window the ticket's history is kept in event time: a step is
 * placed where its timestamp puts it if the machine then takes the whole
 * path, is held if no place is legal yet but an earlier step could make
 * one, and is refused only when nothing could.
 */
static int
decide_step(qg__txn *t, const qg__step *s, const decision *dc, qg_result *res)
{
    qg__ticket_row row;
    qg__path path = {0};
    plan p = {0};
    qg_id_kind found_by;
    qg_event ev;
    uint64_t ticket, held;
    uint32_t seq;
    int64_t ids[4];
    char why[sizeof(res->detail)], span[24];
    long score;
    item *it;
    int rc, next;

    rc = qg__find_digest(t, s->digest, &ticket, &seq);
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
    if (qg__held_any(t) &&
        (rc = qg__held_find_digest(t, s->digest, &held)) != QG_NOTFOUND) {
        if (rc)
            return rc;
        verdict(res, QG_R_REDELIVERY,
                "the same payload is held (held delivery %" PRIu64
                "), waiting for an earlier step",
                held);
        return 1;
    }

    rc = find_ticket(t, s, &row, &found_by);
    if (rc && rc != QG_NOTFOUND)
        return rc;
    res->ticket = row.t.id;
    res->from = res->to = row.t.state;
    res->event = ev = canonical_event(&s->f, &row);

    /* The common case: the step follows the newest one and is legal. */
    if ((row.t.records == 0 || s->event_ms >= row.t.last_event_ms) &&
        (next = qg_machine_next(row.t.state, ev)) >= 0) {
        verdict(res, QG_R_NONE, "%s -> %s by %s", qg_state_name(row.t.state),
                qg_state_name((qg_state)next), qg_event_name(ev));
        res->to = (qg_state)next;
        res->pos = row.t.records + 1;
        if (dc->dry)
            return 1;
        if ((rc = append_step(t, s, &row, row.t.records + 1, 0, 0, ev,
                              row.t.state, (qg_state)next, &seq)))
            return rc;
        row.t.state = (qg_state)next;
        res->ticket = row.t.id;
        res->seq = seq;
        if ((rc = qg__put_ticket(t, &row)))
            return rc;
        return dc->window_us ? release_held(t, s, &row, res) : 0;
    }
    if (dc->window_us == 0) {
        judge(s, &row, ev, res);
        return dc->dry ? 1
                       : record_refused(t, s->body, s->body_len, s->received_us,
                                        &row, res);
    }

    /* Out of order: the path with this step and any held ones. */
    ids[0] = s->live_queue_id;
    ids[1] = s->appointment_id;
    ids[2] = row.t.live_queue_id;
    ids[3] = row.t.appointment_id;
    if ((row.t.id && (rc = qg__load_path(t, row.t.id, &path))) ||
        (rc = plan_path(&p, &path)) || (rc = plan_held(t, &p, ids)))
        goto done;
    if ((it = plan_add(&p)) == NULL) {
        rc = QG_ENOMEM;
        goto done;
    }
    it->kind = ITEM_NEW;
    it->s = *s;
    it->event_ms = s->event_ms;
    if ((rc = best_plan(&p, &row, &score)))
        goto done;
    if (score >= 1L << 20) {
        qg_state was = row.t.state;

        if (dc->dry) {
            item *k;

            rc = 1;
            for (it = p.items; it->kind != ITEM_NEW; it++)
                ;
            res->event = it->ev;
            for (k = p.items; k < p.items + p.m; k++) {
                res->pos += k <= it && k->in;
                res->late |= k > it && k->in && k->kind == ITEM_PATH;
                if (k->in)
                    res->to = k->to;
            }
            verdict(res, QG_R_NONE, "%s -> %s by %s, placed in event time",
                    qg_state_name(it->from), qg_state_name(it->to),
                    qg_event_name(it->ev));
            goto done;
        }
        if ((rc = write_plan(t, &p, &row, res)))
            goto done;
        for (it = p.items; it->kind != ITEM_NEW; it++)
            ;
        if (res->late)
            verdict(res, QG_R_NONE,
                    "%s -> %s by %s, placed late as step %" PRIu32
                    " of %" PRIu32 "; the ticket is %s",
                    qg_state_name(it->from), qg_state_name(it->to),
                    qg_event_name(it->ev), res->pos, row.t.records,
                    qg_state_name(row.t.state));
        else
            verdict(res, QG_R_NONE, "%s -> %s by %s", qg_state_name(it->from),
                    qg_state_name(it->to), qg_event_name(it->ev));
        res->from = was;
        goto done;
    }
    rc = 1;
    judge(s, &row, ev, res);
    if (could_wait(s, &row, &path)) {
        memcpy(why, res->detail, sizeof(why));
        verdict(res, QG_R_EARLY, "%.180s; held up to %s for an earlier step",
                why, span_text(dc->window_us, span, sizeof(span)));
        if (!dc->dry)
            rc = qg__held_put(t, s, row.t.id, ev, row.t.state, &held);
    } else if (!dc->dry) {
        rc = record_refused(t, s->body, s->body_len, s->received_us, &row, res);
    }
done:
    plan_free(&p);
    qg__path_free(&path);
    return rc;
}

/* ----- the hold window ------------------------------------------------ */

typedef struct expiry {
    int64_t before_us;
    int64_t now_us;
    uint64_t *by_reason;
    uint64_t expired;
    uint64_t *ids;
    size_t n;
} expiry;

/* Refuses one held delivery for the reason it would have had on arrival,
 * judged against its ticket as it is now. */
static int
expire_one(qg__txn *t, expiry *x, uint64_t id)
{
    qg__ticket_row row;
    qg_id_kind found_by;
    qg_result res;
    qg__step s;
    qg_held h;
    char *body, why[sizeof(res.detail)], span[24];
    int rc;

    if ((rc = qg__held_get(t, id, &s, &h)))
        return rc == QG_NOTFOUND ? QG_ESTORE : rc;
    t->source = s.source; /* judged among its own source's tickets */
    if ((body = malloc(s.body_len ? s.body_len : 1)) == NULL)
        return QG_ENOMEM;
    memcpy(body, s.body, s.body_len);
    s.body = body;
    memset(&res, 0, sizeof(res));
    res.live_queue_id = s.live_queue_id;
    res.appointment_id = s.appointment_id;
    rc = find_ticket(t, &s, &row, &found_by);
    if (rc && rc != QG_NOTFOUND)
        goto done;
    res.ticket = row.t.id;
    res.from = res.to = row.t.state;
    res.event = canonical_event(&s.f, &row);
    /* Legal on arrival now would have been accepted when its ticket last
     * changed; should it be, it is still refused: the window is over. */
    if (judge(&s, &row, res.event, &res) == QG_R_NONE)
        verdict(&res, QG_R_ILLEGAL_TRANSITION,
                "%s is legal from %s only out of event order",
                qg_event_name(res.event), qg_state_name(row.t.state));
    memcpy(why, res.detail, sizeof(why));
    snprintf(res.detail, sizeof(res.detail), "%.200s; held %s", why,
             span_text(x->now_us - s.received_us, span, sizeof(span)));
    if ((rc = qg__held_delete(t, id)) ||
        (rc = record_refused(t, s.body, s.body_len, s.received_us, &row, &res)))
        goto done;
    if (x->by_reason)
        x->by_reason[res.reason]++;
    x->expired++;
done:
    free(body);
    return rc;
}

static int
expire_due(qg__txn *t, void *arg)
{
    expiry *x = arg;
    size_t i;
    int rc;

    x->expired = 0;
    free(x->ids);
    x->ids = NULL;
    if ((rc = qg__held_due(t, x->before_us, &x->ids, &x->n)))
        return rc;
    if (x->n == 0)
        return 1;
    for (i = 0; i < x->n; i++)
        if ((rc = expire_one(t, x, x->ids[i])))
            return rc;
    return 0;
}

int
qg_held_expire(qg_store *st, int64_t received_before_us, uint64_t *by_reason,
               uint64_t *expired)
{
    uint64_t counts[QG_REASON_COUNT] = {0};
    expiry x;
    int rc, i;

    if (expired)
        *expired = 0;
    if (st == NULL)
        return QG_EINVAL;
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    memset(&x, 0, sizeof(x));
    x.before_us = received_before_us;
    x.now_us = qg_time_now_us();
    x.by_reason = counts;
    rc = qg__store_write(st, expire_due, &x);
    free(x.ids);
    if (rc)
        return rc;
    if (by_reason)
        for (i = 0; i < QG_REASON_COUNT; i++)
            by_reason[i] += counts[i];
    if (expired)
        *expired = x.expired;
    return 0;
}

/* Steps 6-7 and the writes, in one transaction (or a read-only one for a
 * dry run, where every write is skipped). */
static int
decide(qg__txn *t, void *arg)
{
    job *j = arg;
    qg_result *res = j->res;
    qg__ticket_row row;
    qg_id_kind found_by;
    decision dc;
    int rc, known;

    /* This may run again after the map grew: start from steps 1-5. */
    verdict(res, j->pre, NULL);
    /* One transaction may decide deliveries of several sources (a batch
     * of the gate's): each names its own.  A dry run numbers none. */
    if ((rc = qg__source_index(t, j->source, !j->dry, &t->source)))
        return rc;
    res->ticket = 0;
    res->seq = 0;
    res->pos = 0;
    res->late = 0;
    res->released = 0;
    res->rejection = 0;
    res->event = QG_EV_NONE;
    res->from = res->to = QG_ST_NEW;

    if (j->pre != QG_R_NONE) {
        /* Refused before the store; name the ticket when the delivery is
         * authentic enough to say which it is. */
        known = 0;
        if (res->verdict != QG_UNAUTHENTICATED &&
            (res->live_queue_id || res->appointment_id)) {
            j->s.live_queue_id = res->live_queue_id;
            j->s.appointment_id = res->appointment_id;
            rc = find_ticket(t, &j->s, &row, &found_by);
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
        return record_refused(t, j->body, j->len, j->received_us,
                              known ? &row : NULL, res);
    }
    dc.window_us = j->window_us;
    dc.dry = j->dry;
    return decide_step(t, &j->s, &dc, res);
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
    j->received_us = qg_time_now_us();
    j->window_us = eng->window_s * 1000000;
    j->res = res;
    memcpy(j->source, eng->source, sizeof(j->source));
    j->pre = examine(j);
    /* Nothing after steps 1-5 reads the engine, nor the parse: take_step()
     * copied what steps 6-7 need.  A prepared delivery must not point at
     * an engine that a reload may free before it is applied.  And the
     * parse's json-c objects, freed here rather than after a batch's
     * commit, are still in cache when the next body's parse allocates
     * them again (docs/PERFORMANCE.md, "Engine and raw LMDB, the same
     * records"). */
    j->eng = NULL;
    qg__envelope_free(&j->env);
    memset(&j->d, 0, sizeof(j->d));
    return 0;
}

/* Settles j's result after rc, the outcome of decide(). */
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
    return finish(&j, rc);
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

/* Every job in a write transaction of its own: where the store nests no
 * transaction (QG_WRITEMAP), a failed batch's jobs run one a commit, and
 * each has its own outcome, a full map's included. */
static int
decide_each(qg_store *st, batch *b)
{
    size_t i;
    int rc;

    for (i = 0; i < b->n; i++) {
        if (b->jobs[i] == NULL)
            continue;
        rc = qg__store_write(st, decide, b->jobs[i]);
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
    if (rc == QG_ENOTSUP)
        rc = decide_each(st, b);
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
    free(jobs);
    free(b.jobs);
    return rc;
}

/* A check: expiry and a batch in one write transaction, never committed. */
typedef struct check {
    batch b;
    expiry x;
    int nested;
} check;

static int
check_run(qg__txn *t, void *arg)
{
    check *ck = arg;
    int rc;

    if ((rc = expire_due(t, &ck->x)) < 0 ||
        (rc = (ck->nested ? decide_nested : decide_flat)(t, &ck->b)) < 0)
        return rc;
    return 1; /* decided: now undo it all */
}

int
qg_engine_check_batch(qg_engine *eng, qg_store *st, int64_t expire_before_us,
                      const qg_body *bodies, size_t n, qg_result *res, int *rcs,
                      uint64_t *expired)
{
    job *jobs;
    check ck;
    size_t i;
    int rc;

    if (expired)
        *expired = 0;
    if (eng == NULL || st == NULL || (n > 0 && (!bodies || !res || !rcs)))
        return QG_EINVAL;
    if (!qg__store_writable(st))
        return QG_ERDONLY;
    memset(&ck, 0, sizeof(ck));
    jobs = calloc(n ? n : 1, sizeof(*jobs));
    ck.b.jobs = calloc(n ? n : 1, sizeof(*ck.b.jobs));
    if (jobs == NULL || ck.b.jobs == NULL) {
        free(jobs);
        free(ck.b.jobs);
        return QG_ENOMEM;
    }
    ck.b.rcs = rcs;
    ck.b.n = n;
    ck.x.before_us = expire_before_us;
    ck.x.now_us = qg_time_now_us();
    for (i = 0; i < n; i++) {
        rcs[i] =
            prepare(&jobs[i], eng, bodies[i].body, bodies[i].len, 0, &res[i]);
        ck.b.jobs[i] = rcs[i] ? NULL : &jobs[i];
    }
    /* As run_batch(): a job that fails alone is undone alone. */
    rc = qg__store_write(st, check_run, &ck);
    if (rc && rc != QG_EFULL && rc != QG_ERDONLY) {
        ck.nested = 1;
        rc = qg__store_write(st, check_run, &ck);
    }
    for (i = 0; i < n; i++) {
        if (ck.b.jobs[i] == NULL)
            continue;
        rcs[i] = finish(ck.b.jobs[i], rc ? rc : rcs[i]);
        res[i].rejection = 0; /* nothing was logged */
    }
    free(ck.x.ids);
    free(jobs);
    free(ck.b.jobs);
    if (rc == 0 && expired)
        *expired = ck.x.expired;
    return rc;
}

int
qg_engine_prepare(qg_engine *eng, const char *body, size_t len,
                  qg_prepared **out)
{
    qg_prepared *p;
    int rc;

    if (out == NULL)
        return QG_EINVAL;
    *out = NULL;
    if (eng == NULL)
        return QG_EINVAL;
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

int
qg_prepared_secret(const qg_prepared *p)
{
    return p && p->j.authentic ? p->j.secret_index : -1;
}

void
qg_prepared_free(qg_prepared *p)
{
    free(p);
}
