/*
 * qgate_int.h - what the library's files share and nobody else sees.
 */
#ifndef QG_INT_H
#define QG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "jsonc.h" /* json-c, loaded on first use */
#include "qgate.h"

#define QG__DIGEST_LEN  32
#define QG__HEX_SIG_LEN 64
#define QG__JSON_DEPTH  32 /* Chup's payloads nest 4 deep; notes may add */

/* lifecycle.c ---------------------------------------------------------- */

/*
 * The state an event names, whatever the state it leaves: join names
 * queued, pay names paid.  Events that only ever keep the state (alert,
 * update, reschedule) name none: -1.  Derived from the machine.
 */
int qg__event_target(qg_event e);

/* chup.c ---------------------------------------------------------------- */

typedef struct qg__span {
    const char *p;
    size_t len;
} qg__span;

/* What the engine needs from a payload; strings borrowed from the
 * envelope. */
typedef struct qg__delivery {
    const char *event_name;
    int64_t event_ms;
    int32_t utc_offset_s;
    json_object *data;       /* NULL when scanned */
    int64_t id;              /* data.id */
    int64_t appointment_id;  /* 0 when null or absent */
    int64_t service_id;      /* 0 when null or absent */
    int64_t staff_id;        /* 0 when null or absent */
    const char *state_name;  /* data.state_name, NULL if absent */
    const char *state_label; /* data.state.name, NULL if absent */
    int64_t state_value;     /* data.state or data.state.value */
    int has_state_value;
    const char *appointment_date; /* NULL when null or absent */
    const char *appointment_time;
    int scanned; /* every field read by the envelope's scan */
} qg__delivery;

/* Room for a scanned delivery's strings: event, timestamp, state names,
 * date and time.  Chup's take about 80 bytes. */
#define QG__SCAN_TEXT 256

/* A delivery split into its envelope parts; borrowed from the body. */
typedef struct qg__envelope {
    json_object *root;        /* owned: json_object_put() via qg__envelope_free;
                                 NULL when scanned */
    json_object *payload;     /* borrowed from root */
    qg__span payload_text;    /* the exact payload bytes, what is signed */
    qg__span signature;       /* hex text inside the quotes; p NULL if none */
    int scanned;              /* read in one pass, with no tree (below) */
    qg__delivery d;           /* scanned: what qg__payload_head() gives */
    char text[QG__SCAN_TEXT]; /* scanned: d's strings */
} qg__envelope;

/*
 * Parses the body and finds the payload's exact bytes.  Returns
 * QG_R_NONE, or a MALFORMED reason with detail set.  A plain body whose
 * payload qg__payload_head() and qg__payload_fields() would accept is
 * read in one pass with no tree (qg__json_scan(), env->scanned); any other
 * is parsed by strict json-c (bounded depth, this thread's tokener,
 * qg__json_tokener()), which also gives every refusal its text.
 */
qg_reason qg__envelope_parse(const char *body, size_t len, qg__envelope *env,
                             char *detail, size_t dlen);

/* The same, always with json-c: for a reader of payload.data's other
 * fields (d->data), which a scanned delivery does not have. */
qg_reason qg__envelope_parse_tree(const char *body, size_t len,
                                  qg__envelope *env, char *detail, size_t dlen);
void qg__envelope_free(qg__envelope *env);

/*
 * This thread's json-c tokener, reset, strict (JSON_TOKENER_STRICT |
 * JSON_TOKENER_VALIDATE_UTF8, depth QG__JSON_DEPTH): kept from one
 * delivery to the next instead of allocated for each.  Owned by the
 * thread, freed when it exits (the main thread's lives until the process
 * ends); valid until the next call on the same thread.  NULL when none
 * can be kept (out of memory, or no thread-specific key left): then the
 * caller makes its own.
 */
struct json_tokener *qg__json_tokener(void);

/* Reads payload.event, payload.timestamp and payload.data.  Returns
 * QG_R_NONE or a MALFORMED reason with detail set. */
qg_reason qg__payload_head(const qg__envelope *env, qg__delivery *d,
                           char *detail, size_t dlen);

/* Reads the lifecycle fields of data (ids, state, service, staff).
 * need_state: the mapping decides by state, so one must be present. */
qg_reason qg__payload_fields(qg__delivery *d, int need_state, char *detail,
                             size_t dlen);

/*
 * Refuses a step dated more than max_skew_ms after now_ms (both Unix
 * milliseconds); max_skew_ms 0 refuses none.  Returns QG_R_NONE or
 * QG_R_BAD_VALUE with detail set.
 */
qg_reason qg__payload_skew(const qg__delivery *d, int64_t now_ms,
                           int64_t max_skew_ms, char *detail, size_t dlen);

/* json_strict.c -------------------------------------------------------- */

/* Where the top-level values of an object body are, as written. */
typedef struct qg__top {
    qg__span payload;   /* "payload"'s value, exact bytes; p NULL if none */
    qg__span signature; /* inside the quotes, when "signature" is a string */
    size_t escaped_key; /* offset of the first top-level key written with an
                           escape, SIZE_MAX if none */
} qg__top;

/*
 * Checks text json-c has accepted for what json-c lets through: strings
 * that are not UTF-8 (overlong forms, surrogates, code points above
 * U+10FFFF), raw control characters and unpaired \u surrogates in strings
 * (QG_R_BAD_JSON), a key repeated in any object or holding \u0000
 * (QG_R_BAD_ENVELOPE).  Returns QG_R_NONE or the reason of the first fault,
 * with detail naming its byte offset.  In the same pass, when top is not
 * NULL and the body is an object, fills top (spans borrowed from p); it is
 * meaningful only when QG_R_NONE is returned.  Keys are matched as
 * written, so a top-level key with an escape names no value here.
 */
qg_reason qg__json_strict(const char *p, size_t len, qg__top *top, char *detail,
                          size_t dlen);

/* A path qg__json_scan() reads: a key of the object at want[parent] (-1:
 * the root object). */
typedef struct qg__jpath {
    int parent;
    const char *key;
} qg__jpath;

typedef enum qg__jkind {
    QG__J_ABSENT,
    QG__J_NULL,
    QG__J_INT,     /* an integer of at most 18 digits */
    QG__J_STRING,  /* a string with no escape: its text is its value */
    QG__J_ESCAPED, /* a string with an escape */
    QG__J_OBJECT,
    QG__J_OTHER /* true, false, an array */
} qg__jkind;

typedef struct qg__jvalue {
    qg__jkind kind;
    qg__span text; /* a string's text inside its quotes; an object's bytes */
    int64_t i;     /* QG__J_INT's value */
} qg__jvalue;

/*
 * One pass over a plain body, with no tree: checks the whole grammar and
 * what qg__json_strict() checks, and reads the values at the nwant paths
 * of want into out (QG__J_ABSENT where there is none).  Returns 0, or -1
 * when the body is not plain: json-c would refuse it, qg__json_strict()
 * would, or the scan does not decide it (white space beyond RFC 8259's,
 * a number other than an integer of at most 18 digits, an empty key or
 * one holding \u0000, an escaped key in an object that holds wanted
 * paths, nesting deeper than 16).  Then parse with json-c: every reason
 * and its text are json-c's and qg__json_strict()'s.
 */
int qg__json_scan(const char *p, size_t len, const qg__jpath *want,
                  size_t nwant, qg__jvalue *out);

/*
 * Reads a whole configuration file as strict JSON (json-c's strict mode,
 * then qg__json_strict()).  On success *out is the caller's, to be freed
 * with json_object_put().  Returns 0, QG_EIO ("cannot open FILE: ..."),
 * QG_ECONFIG (not strict JSON, the byte named) or QG_ENOMEM, with err
 * saying which.
 */
int qg__json_load_file(const char *path, json_object **out, char *err,
                       size_t errlen);

/* signature.c ---------------------------------------------------------- */

/* SHA-256 of data, with the process's one fetched algorithm
 * (qg__sha256_md()): a payload's for the duplicate index, a body's for
 * the hash chain.  0, or QG_ENOMEM when libcrypto cannot allocate, out
 * then zero: a caller with no failure to report may keep the zero
 * digest (signature.c says what that means). */
int qg__digest(const void *data, size_t len, unsigned char out[QG__DIGEST_LEN]);

/* Checks a hex HMAC-SHA256 of msg in constant time.  Returns QG_R_NONE,
 * QG_R_SIGNATURE_FORMAT or QG_R_BAD_SIGNATURE. */
qg_reason qg__signature_check(const void *key, size_t keylen, qg__span msg,
                              qg__span hex);

/* Writes the lowercase hex HMAC-SHA256 of msg (65 bytes with NUL). */
void qg__signature_make(const void *key, size_t keylen, const void *msg,
                        size_t len, char out[QG__HEX_SIG_LEN + 1]);

/* mapping.c ------------------------------------------------------------ */

typedef struct qg__mapping qg__mapping;

typedef enum qg__rule {
    QG__RULE_UNKNOWN = 0, /* not in the mapping */
    QG__RULE_EVENT,       /* always this canonical event */
    QG__RULE_STATE,       /* the event the data's state names */
    QG__RULE_IGNORE       /* not a lifecycle step */
} qg__rule;

typedef struct qg__event_map {
    qg__rule rule;
    qg_event event;  /* for QG__RULE_EVENT */
    int appointment; /* appointment_* vocabulary: keyed by appointment */
    int updated;     /* an *_updated event: same-state rules apply */
} qg__event_map;

int qg__mapping_new(qg__mapping **out);
void qg__mapping_free(qg__mapping *m);
int qg__mapping_load(qg__mapping *m, const char *path, char *err,
                     size_t errlen);
qg__event_map qg__mapping_event(const qg__mapping *m, const char *name);
/* The event a delivery's state names (by state_name, state.name, value).
 * Returns QG_EV_NONE when none of them is mapped. */
qg_event qg__mapping_state(const qg__mapping *m, const qg__delivery *d);

/* engine.c, held.c ------------------------------------------------------ */

/*
 * What the canonical event of a step depends on, besides the ticket: kept
 * with held deliveries and with accepted steps, so that a path can be
 * re-run from the store alone when a late step changes what came before.
 */
typedef struct qg__facts {
    qg__event_map em;
    qg_event state_event;      /* for QG__RULE_STATE */
    int64_t service_id;        /* 0 when null or absent */
    char appointment_date[16]; /* "" when null or absent */
    char appointment_time[16];
} qg__facts;

/*
 * A delivery as steps 6-7 see it: everything they need, copied out of the
 * parse.  A held delivery is stored as one and judged again from the
 * store alone, with no parse, secret or mapping.
 */
typedef struct qg__step {
    qg__facts f;
    int64_t event_ms;
    int32_t utc_offset_s;
    int64_t live_queue_id, appointment_id; /* as the result names them */
    int64_t staff_id;                      /* 0 when null or absent */
    unsigned char digest[QG__DIGEST_LEN];
    char chup_event[48];
    int64_t received_us;
    const char *body; /* the raw delivery; borrowed */
    size_t body_len;
    unsigned source; /* its source's number, once held (held.c) */
    /* The SHA-256 of the whole body, taken while the body is examined,
     * off the store's write lock, for the hash chain; 0 in has_body_digest
     * for a step read back from the store (a held one). */
    unsigned char body_digest[QG__DIGEST_LEN];
    int has_body_digest;
} qg__step;

/* store.c -------------------------------------------------------------- */

/* A transaction of the store; callers keep it on their stack. */
typedef struct qg__txn {
    qg_store *st;
    struct MDB_txn *txn; /* the LMDB store's */
    void *be;            /* another backend's (a PostgreSQL connection) */
    /* The source whose Chup ids the aliases and held_by keys read and
     * written through this transaction are (source.c); 0, the default
     * source, unless the engine set it for the delivery it decides. */
    unsigned source;
} qg__txn;

/* Everything the engine reads of a ticket before deciding. */
typedef struct qg__ticket_row {
    qg_ticket t;
    unsigned char flags;       /* QG__TICKET_REORDERED */
    unsigned char source;      /* its source's number, 0 the default */
    char appointment_date[16]; /* last seen, for reschedule detection */
    char appointment_time[16];
    uint64_t chain_head; /* LMDB: its newest chain entry (store_int.h) */
} qg__ticket_row;

/*
 * Transactions and the engine's operations are dispatched to the store's
 * backend (store_ops.h); their contracts:
 *
 * qg__txn_begin(st, write, t), qg__txn_commit(t), qg__txn_abort(t): a read
 * or write transaction.  qg__txn_nest(parent, child): a transaction nested
 * in a write transaction, which commits into its parent
 * (qg__txn_nest_commit()) or aborts leaving the parent as it was
 * (qg__txn_nest_abort()); not counted as open, it lives inside its parent.
 * qg__store_writable(st): whether writes may be tried.
 * qg__history_txn(h): the read transaction behind a history cursor, for
 * lookups in the same snapshot.
 *
 * qg__store_write(st, fn, arg): runs fn in a write transaction: commits
 * when fn returns 0, aborts and returns 0 when fn returns > 0 (nothing to
 * write), aborts and returns fn's error when < 0.  A backend may run fn
 * again after a failure that wrote nothing (LMDB's full map, grown).
 *
 * The rows the engine reads before deciding, and the ticket row it writes
 * after: qg__find_alias(t, kind, id, &ticket), qg__get_ticket(t, ticket,
 * &row), qg__find_digest(t, digest, &ticket, &seq), qg__put_ticket(t, row).
 */

/*
 * What the engine decided, for the store to record.  The engine decides;
 * the store knows which rows, aliases, counters and queues a decision
 * touches.
 */

/* An accepted step: its record (the store fills ticket and seq), what
 * decided its event (kept after its body; may be NULL), and the Chup ids
 * that name its ticket from now on (0: none). */
typedef struct qg__accepted {
    qg_record rec;
    const qg__facts *facts;
    const unsigned char *body_digest; /* of rec.body; NULL: not taken */
    int64_t live_queue_id, appointment_id;
} qg__accepted;

/*
 * qg__store_accept(t, row, a) records an accepted step of row's ticket
 * (row->t.id 0: a new ticket, numbered here): the ids lead to the ticket,
 * the record is appended, the row's count and, unless the step is late,
 * its latest values move on, and a store that feeds an HIS queues the
 * step in its outbox, all in t.  The row itself is written by
 * qg__put_ticket(), once the engine has set its state.
 *
 * qg__store_refuse(t, row, rej, &id) logs a refusal (its id in *id) and,
 * when row names a ticket, counts it there and writes the row.
 */

/* A ticket's row flag: some step was placed late, so its history's event
 * order differs from its arrival order. */
#define QG__TICKET_REORDERED 0x1

/* One step of a ticket's path, as the machine re-runs it. */
typedef struct qg__path_step {
    uint32_t seq, pos;
    int64_t event_ms;
    qg_event event;
    qg_state from, to;
    int64_t service_id;
    int has_facts; /* 0 for steps stored before facts were kept */
    qg__facts f;
} qg__path_step;

/* A ticket's accepted steps in event time; zero it before the first use,
 * free it with qg__path_free(). */
typedef struct qg__path {
    qg__path_step *steps;
    size_t n, cap;
} qg__path;

/* qg__load_path(t, ticket, path) reads a ticket's steps into path, in
 * event-time order; qg__path_free() frees them. */
void qg__path_free(qg__path *path);
/* qg__move_record(t, ticket, seq, pos, ev, from, to, late) gives an
 * accepted step a new place, event and from/to after a late step was
 * placed before it; late < 0 keeps its late mark. */

/* source.c ------------------------------------------------------------- */

/*
 * A store numbers its sources: 0 is the default source (every ticket of a
 * store written before sources existed), 1 to QG_SOURCES_MAX - 1 the
 * others, in meta.  The number goes into the high bits of the kind byte of
 * aliases and held_by keys, so that the default source's keys are the
 * keys stores have always had.
 */
#define QG__SOURCE_SHIFT 2
/* A source the store has not numbered yet (a dry run's): no id leads
 * anywhere from it. */
#define QG__SOURCE_UNSEEN 0xffu

/* The number of source name (NULL or "default": 0).  create: number it
 * if the store has not seen it (a write transaction); else
 * QG__SOURCE_UNSEEN for one it has not seen.  QG_ETOOBIG when the store
 * has numbered all it can. */
/* qg__source_index(t, name, create, &index), as above; and
 * qg__source_name(t, index, out): the name of source number index, for
 * readers; "#N" for a number the store does not name (a damaged store), so
 * a reader still shows something. */

/* held.c --------------------------------------------------------------- */

/* Deliveries waiting for an earlier step.  Bodies and steps read from the
 * store point into the map: valid until the next write. */
/* qg__held_put(t, s, ticket, ev, from, &id), qg__held_find_digest(t,
 * digest, &id), qg__held_get(t, id, s, out), qg__held_delete(t, id);
 * qg__held_any(t): whether anything is held (1 also when that cannot be
 * told); qg__held_ids_for(t, kind, chup_id, &ids, &n): the ids held under
 * a Chup id, in event time, *ids malloc'd; qg__held_due(t, before_us,
 * &ids, &n): the ids of those received before before_us, *ids malloc'd. */

/* store_check.c -------------------------------------------------------- */

/*
 * Checks every page of data.mdb, open as fd, in the
 * snapshot of the read transaction txnid, which the caller holds open
 * meanwhile.  0 (sound), QG_ECORRUPT with detail set, QG_EIO, QG_ENOMEM;
 * 1 when a writer has moved past that snapshot: begin another.  The file
 * check at open (qg_store_check_file()) is there too.
 */
int qg__check_pages(int fd, uint64_t txnid, char *detail, size_t dlen);

#include "store_ops.h"

#endif /* QG_INT_H */
