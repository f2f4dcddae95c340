/*
 * qgate.h - the public API of libqgate.
 *
 * libqgate checks Chup Online webhook deliveries against the ticket
 * lifecycle, records every accepted step in an LMDB store, and logs every
 * refused delivery with its reason.  Everything not declared here (or in
 * qgate_lifecycle.h) is private.
 *
 * Conventions
 * - Functions return int: 0 on success, a negative QG_E* code on failure.
 *   QG_NOTFOUND is a result, not a failure.  qg_strerror() names any code.
 * - A delivery that is refused (illegal step, bad signature, bad JSON) is
 *   not an error: qg_engine_apply() returns 0 and the verdict says why.
 * - Out-parameters come last.  Destructors accept NULL.
 * - The library never exits, aborts or prints.
 *
 * Threads: a qg_store may be shared by threads; LMDB serialises writers and
 * lets readers run beside them, in this process and in others.  A qg_engine
 * is read-only once configured and may be shared too.  A qg_history or
 * qg_rejections cursor belongs to one thread at a time.
 */
#ifndef QGATE_H
#define QGATE_H

#include <stddef.h>
#include <stdint.h>

#include "qgate_lifecycle.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || !defined(__GNUC__)
#define QG_EXTERN
#else
#define QG_EXTERN __attribute__((visibility("default")))
#endif

#define QG_VERSION_MAJOR  0
#define QG_VERSION_MINOR  1
#define QG_VERSION_PATCH  0
#define QG_VERSION_STRING "0.1.0"

/** @return the library version, "MAJOR.MINOR.PATCH"; a static string. */
QG_EXTERN const char *qg_version(void);

/**
 * @return the lifecycle machine's version: the first 16 hex digits of the
 * SHA-256 of machine/ticket.rl, fixed at build time; a static string.
 */
QG_EXTERN const char *qg_machine_version(void);

/* ------------------------------------------------------------------ */
/* Error codes                                                         */

/* name, value, message */
#define QG_ERRNO_MAP(XX)                                                       \
    XX(NOTFOUND, -1, "not found")                                              \
    XX(EINVAL, -2, "invalid argument")                                         \
    XX(ENOMEM, -3, "out of memory")                                            \
    XX(EIO, -4, "input/output error")                                          \
    XX(ESTORE, -5, "store error")                                              \
    XX(EFULL, -6, "store full: map size limit reached")                        \
    XX(EFORMAT, -7, "store written by an incompatible qgate version")          \
    XX(ERDONLY, -8, "store opened read-only")                                  \
    XX(ECONFIG, -9, "invalid configuration")                                   \
    XX(EBUSY, -10, "store busy: too many readers")                             \
    XX(ETOOBIG, -11, "value too large")

typedef enum qg_errno {
#define QG__ERR(name, val, msg) QG_##name = (val),
    QG_ERRNO_MAP(QG__ERR)
#undef QG__ERR
        QG_OK = 0
} qg_errno;

/** @return a static message for any code of QG_ERRNO_MAP, else
 * "unknown error". */
QG_EXTERN const char *qg_strerror(int code);
/** @return the static name of a code ("QG_EINVAL"), else "QG_UNKNOWN". */
QG_EXTERN const char *qg_err_name(int code);

/* ------------------------------------------------------------------ */
/* The lifecycle                                                       */

/** @return the canonical name of a state ("pharmacy_received"), or NULL. */
QG_EXTERN const char *qg_state_name(qg_state s);
/** @return the canonical name of an event ("rx_receive"), or NULL. */
QG_EXTERN const char *qg_event_name(qg_event e);
/**
 * Looks up a canonical state or event by name (exact, lower case).
 * @param[out] out the value.
 * @return 0, or QG_NOTFOUND.
 */
QG_EXTERN int qg_state_from_name(const char *name, qg_state *out);
QG_EXTERN int qg_event_from_name(const char *name, qg_event *out);

/**
 * Asks the lifecycle machine where event e leads from state s.
 * @return the next state (>= 0), or -1 when the step is illegal.
 */
QG_EXTERN int qg_machine_next(qg_state s, qg_event e);

/** @return the events legal in state s, as a mask of (1u << event). */
QG_EXTERN unsigned qg_machine_allowed(qg_state s);

/** @return nonzero when no event leaves state s (cancelled, visit_ended). */
QG_EXTERN int qg_state_is_final(qg_state s);

/* ------------------------------------------------------------------ */
/* Verdicts                                                            */

typedef enum qg_verdict {
    QG_ACCEPTED = 0,        /* recorded in the ticket's history */
    QG_DUPLICATE = 1,       /* the same payload was accepted before */
    QG_REJECTED = 2,        /* well-formed and signed, but refused */
    QG_UNAUTHENTICATED = 3, /* signature missing or wrong */
    QG_MALFORMED = 4,       /* not a Chup delivery */
    QG_IGNORED = 5          /* not a lifecycle step (client_*, ...) */
} qg_verdict;

/* The reason behind a verdict: name, code, its verdict, description. */
#define QG_REASON_MAP(XX)                                                      \
    XX(NONE, "none", ACCEPTED, "the step is legal")                            \
    XX(REDELIVERY, "redelivery", DUPLICATE,                                    \
       "the same payload was already accepted")                                \
    XX(ILLEGAL_TRANSITION, "illegal_transition", REJECTED,                     \
       "the step is not legal from this state")                                \
    XX(TICKET_CLOSED, "ticket_closed", REJECTED,                               \
       "the ticket is in a final state")                                       \
    XX(STALE, "stale", REJECTED, "older than the ticket's last accepted step") \
    XX(UNKNOWN_EVENT, "unknown_event", REJECTED,                               \
       "the event name is not mapped")                                         \
    XX(UNKNOWN_STATE, "unknown_state", REJECTED, "the state is not mapped")    \
    XX(MISSING_SIGNATURE, "missing_signature", UNAUTHENTICATED,                \
       "the delivery is not signed")                                           \
    XX(SIGNATURE_FORMAT, "signature_format", UNAUTHENTICATED,                  \
       "the signature is not 64 hex")                                          \
    XX(BAD_SIGNATURE, "bad_signature", UNAUTHENTICATED,                        \
       "the signature does not match")                                         \
    XX(BAD_JSON, "bad_json", MALFORMED, "the body is not valid JSON")          \
    XX(TRAILING_DATA, "trailing_data", MALFORMED,                              \
       "the body holds more than one document")                                \
    XX(BAD_ENVELOPE, "bad_envelope", MALFORMED,                                \
       "the body is not a Chup envelope")                                      \
    XX(MISSING_FIELD, "missing_field", MALFORMED,                              \
       "a required field is missing")                                          \
    XX(WRONG_TYPE, "wrong_type", MALFORMED, "a field has the wrong type")      \
    XX(BAD_VALUE, "bad_value", MALFORMED, "a field has an invalid value")      \
    XX(TOO_LARGE, "too_large", MALFORMED, "the body is over the size limit")   \
    XX(NOT_LIFECYCLE, "not_lifecycle", IGNORED,                                \
       "the event is not a lifecycle step")

typedef enum qg_reason {
#define QG__REASON(name, code, verdict, desc) QG_R_##name,
    QG_REASON_MAP(QG__REASON)
#undef QG__REASON
        QG_REASON_COUNT
} qg_reason;

/** @return "accepted", "duplicate", ...; NULL for a value out of range. */
QG_EXTERN const char *qg_verdict_name(qg_verdict v);
/** @return the reason's code, "illegal_transition", ...; or NULL. */
QG_EXTERN const char *qg_reason_name(qg_reason r);
/** @return the verdict that a reason goes with. */
QG_EXTERN qg_verdict qg_reason_verdict(qg_reason r);
/** Looks a reason up by its code.  @return 0, or QG_NOTFOUND. */
QG_EXTERN int qg_reason_from_name(const char *name, qg_reason *out);

/** The outcome of one delivery.  A caller-owned value; nothing to free. */
typedef struct qg_result {
    qg_verdict verdict;
    qg_reason reason;
    uint64_t ticket;        /* store's ticket number, 0 if none */
    int64_t live_queue_id;  /* Chup live-queue id, 0 if unknown */
    int64_t appointment_id; /* Chup appointment id, 0 if none */
    qg_event event;         /* canonical event, QG_EV_NONE if not mapped */
    qg_state from;          /* the ticket's state before the delivery */
    qg_state to;            /* after it; == from unless accepted */
    uint32_t seq;           /* history position when accepted or duplicate */
    unsigned allowed;       /* events legal now, mask of (1u << event) */
    uint64_t rejection;     /* rejection log id when logged, else 0 */
    char chup_event[48];    /* Chup's event name, truncated, "" if none */
    char detail[256];       /* one line for people: field, value, rule */
} qg_result;

/* ------------------------------------------------------------------ */
/* The store                                                           */

typedef struct qg_store qg_store;

typedef enum qg_durability {
    QG_SYNC = 0,   /* every commit is on disk before it returns */
    QG_NOSYNC = 1, /* the OS writes when it likes; a crash may lose commits */
} qg_durability;

#define QG_RDONLY 0x1u /* open an existing store read-only */
#define QG_OUTBOX 0x2u /* queue every accepted step for forwarding */

typedef struct qg_store_options {
    const char *path;         /* directory; created if missing (not RDONLY) */
    size_t map_size;          /* initial map size; 0 = 64 MiB */
    size_t map_max;           /* growth limit; 0 = 64 GiB */
    qg_durability durability; /* QG_SYNC unless said otherwise */
    unsigned flags;           /* QG_RDONLY, QG_OUTBOX */
} qg_store_options;

/**
 * Opens (and if needed creates) a store.  Clears stale reader slots left
 * by dead processes.
 * @param[in] opts options; path is required.
 * @param[out] out the store, to be closed with qg_store_close().
 * @return 0, QG_EINVAL, QG_ENOMEM, QG_EIO (cannot create the directory),
 * QG_ESTORE, QG_EFORMAT, QG_NOTFOUND (RDONLY and no store there).
 */
QG_EXTERN int qg_store_open(const qg_store_options *opts, qg_store **out);
/** Closes a store.  No transaction or cursor of it may be open.  NULL ok. */
QG_EXTERN void qg_store_close(qg_store *st);

/** A ticket's summary; caller-owned value. */
typedef struct qg_ticket {
    uint64_t id;
    int64_t live_queue_id;  /* 0 if none yet */
    int64_t appointment_id; /* 0 if none */
    qg_state state;
    uint32_t records;      /* accepted steps in its history */
    uint32_t rejections;   /* deliveries refused for it */
    int64_t last_event_ms; /* Chup timestamp of the last accepted step */
    int64_t first_received_us;
    int64_t last_received_us;
    int64_t service_id; /* as of the last accepted step, 0 if none */
    int64_t staff_id;
} qg_ticket;

typedef enum qg_id_kind {
    QG_ID_TICKET = 0,     /* the store's own ticket number */
    QG_ID_LIVE_QUEUE = 1, /* Chup's data.id of live_queue_* events */
    QG_ID_APPOINTMENT = 2 /* Chup's appointment id */
} qg_id_kind;

/**
 * Reads a ticket by any of its ids.
 * @param[out] out filled on success.
 * @return 0, QG_NOTFOUND, QG_EINVAL, QG_ESTORE.
 */
QG_EXTERN int qg_store_ticket(qg_store *st, qg_id_kind kind, int64_t id,
                              qg_ticket *out);

/** One accepted step of a ticket's history. */
typedef struct qg_record {
    uint64_t ticket;
    uint32_t seq;         /* 1, 2, ... in order of acceptance */
    int64_t received_us;  /* when the gate received it, Unix microseconds */
    int64_t event_ms;     /* Chup's payload.timestamp, Unix milliseconds */
    int32_t utc_offset_s; /* the offset that timestamp was written with */
    qg_event event;
    qg_state from, to;
    int64_t service_id, staff_id;
    unsigned char digest[32]; /* SHA-256 of the payload bytes */
    char machine[17];         /* machine version that accepted it */
    const char *body;         /* the raw delivery, as received */
    size_t body_len;
} qg_record;

typedef struct qg_history qg_history;

/**
 * Opens a cursor over a ticket's history, oldest first; with ticket 0,
 * over every record of the store, by ticket then step.  It holds a read
 * transaction (a consistent snapshot) until qg_history_close().
 * @param[out] out the cursor.
 * @return 0, QG_NOTFOUND (no such ticket), QG_ENOMEM, QG_ESTORE, QG_EBUSY.
 */
QG_EXTERN int qg_history_open(qg_store *st, uint64_t ticket, qg_history **out);
/**
 * Reads the next record.  rec->body points into the store's map and stays
 * valid until the next qg_history_next() or qg_history_close().
 * @return 0, QG_NOTFOUND at the end, QG_ESTORE.
 */
QG_EXTERN int qg_history_next(qg_history *h, qg_record *rec);
/**
 * Moves a single ticket's cursor so that the next qg_history_next()
 * returns step seq (or the first step after it).
 * @return 0, QG_EINVAL (NULL, or a cursor over every ticket).
 */
QG_EXTERN int qg_history_seek(qg_history *h, uint32_t seq);
/** Ends the cursor and its read transaction.  NULL ok. */
QG_EXTERN void qg_history_close(qg_history *h);

typedef struct qg_tickets qg_tickets;

/**
 * Opens a cursor over every ticket, newest (highest number) first, in a
 * read transaction held until qg_tickets_close().
 * @return 0, QG_EINVAL, QG_ENOMEM, QG_ESTORE, QG_EBUSY.
 */
QG_EXTERN int qg_tickets_open(qg_store *st, qg_tickets **out);
/** @return 0, QG_NOTFOUND at the end, QG_ESTORE. */
QG_EXTERN int qg_tickets_next(qg_tickets *it, qg_ticket *out);
/** NULL ok. */
QG_EXTERN void qg_tickets_close(qg_tickets *it);

/** What qg_store_verify_ticket() found; a caller-owned value. */
typedef struct qg_finding {
    int found;    /* 0: the ticket is consistent and the machine accepts
                     its whole history; 1: see the fields below */
    uint32_t seq; /* the record at fault, 0 for the ticket itself */
    char what[256];
} qg_finding;

/**
 * Checks one ticket in one snapshot: its history is a word of the current
 * machine (each step legal, each from the previous to, the last to the
 * ticket's state), steps are numbered 1..n with n the ticket's count and
 * in time order, each record's digest matches its body and is indexed, and
 * the ticket's ids lead back to it.
 * @param[out] out the first problem found, if any.
 * @return 0 (see out->found), QG_NOTFOUND, QG_EINVAL, QG_ESTORE.
 */
QG_EXTERN int qg_store_verify_ticket(qg_store *st, uint64_t ticket,
                                     qg_finding *out);

/** One refused delivery from the rejection log. */
typedef struct qg_rejection {
    uint64_t id; /* 1, 2, ... in order of arrival */
    int64_t received_us;
    qg_verdict verdict;
    qg_reason reason;
    uint64_t ticket; /* 0 when no ticket could be named */
    int64_t live_queue_id, appointment_id;
    qg_event event;
    qg_state from;
    const char *detail; /* NUL-terminated; valid as body is */
    const char *body;   /* raw delivery; valid until next or close */
    size_t body_len;
} qg_rejection;

typedef struct qg_rejections qg_rejections;

/**
 * Opens a cursor over the rejection log from id `first` (1 = the start).
 * @return 0, QG_ENOMEM, QG_ESTORE, QG_EBUSY.
 */
QG_EXTERN int qg_rejections_open(qg_store *st, uint64_t first,
                                 qg_rejections **out);
/** @return 0, QG_NOTFOUND at the end, QG_ESTORE. */
QG_EXTERN int qg_rejections_next(qg_rejections *r, qg_rejection *out);
/** NULL ok. */
QG_EXTERN void qg_rejections_close(qg_rejections *r);

/* ------------------------------------------------------------------ */
/* The outbox: accepted steps waiting to be forwarded                  */

/*
 * With QG_OUTBOX, each accepted step is queued in the same transaction
 * that records it, so a step is never recorded without being queued.  A
 * forwarder takes entries in id order (which is commit order), and sends
 * a ticket's entry only after the ticket's earlier ones were delivered.
 * Entries that give up move to the dead list under the same id.
 */
typedef struct qg_outbox_entry {
    uint64_t id; /* 1, 2, ... in commit order */
    uint64_t ticket;
    uint32_t seq; /* the history record to send */
    uint32_t attempts;
    int64_t created_us;
    int64_t next_attempt_us; /* not before this time */
    int64_t last_attempt_us; /* 0 if never tried */
    char last_error[128];
} qg_outbox_entry;

typedef struct qg_outbox qg_outbox;

/**
 * Opens a cursor over the outbox (dead = 0) or the dead list (dead = 1),
 * in id order, in a read transaction held until qg_outbox_close().
 * @return 0, QG_EINVAL, QG_ENOMEM, QG_ESTORE, QG_EBUSY.
 */
QG_EXTERN int qg_outbox_open(qg_store *st, int dead, qg_outbox **out);
/** @return 0, QG_NOTFOUND at the end, QG_ESTORE. */
QG_EXTERN int qg_outbox_next(qg_outbox *ob, qg_outbox_entry *out);
/** NULL ok. */
QG_EXTERN void qg_outbox_close(qg_outbox *ob);

/**
 * Counts the outbox.
 * @param[out] depth entries waiting; oldest_us the creation time of the
 * oldest (0 when empty); dead entries in the dead list.  Any may be NULL.
 * @return 0, QG_EINVAL (NULL store), QG_ESTORE, QG_EBUSY.
 */
QG_EXTERN int qg_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                              uint64_t *dead);

/** The entry was delivered: removes it.
 * @return 0, QG_NOTFOUND, QG_EINVAL (NULL store, id 0), QG_ESTORE. */
QG_EXTERN int qg_outbox_ack(qg_store *st, uint64_t id);
/**
 * The attempt failed: counts it, records the error (copied, truncated)
 * and holds the entry until next_attempt_us.
 * @return 0, QG_NOTFOUND, QG_EINVAL, QG_ESTORE, QG_EFULL.
 */
QG_EXTERN int qg_outbox_defer(qg_store *st, uint64_t id,
                              int64_t next_attempt_us, const char *error);
/**
 * Gives up on an entry: moves it, and every later entry of its ticket
 * (which may not be sent before it), to the dead list.
 * @return 0, QG_NOTFOUND, QG_EINVAL, QG_ESTORE, QG_EFULL.
 */
QG_EXTERN int qg_outbox_bury(qg_store *st, uint64_t id, const char *error);
/**
 * Moves a dead entry back to the outbox under its id, due now, with its
 * attempts reset; id 0 moves them all.
 * @param[out] moved how many were moved; may be NULL.
 * @return 0, QG_NOTFOUND (no such dead entry), QG_ESTORE, QG_EFULL.
 */
QG_EXTERN int qg_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved);

/* ------------------------------------------------------------------ */
/* The engine                                                          */

typedef struct qg_engine qg_engine;

/**
 * Creates an engine with the default Chup mapping, requiring signatures
 * but with no secret yet (every delivery is unauthenticated until one is
 * set or verification is skipped).
 * @return 0, QG_ENOMEM.
 */
QG_EXTERN int qg_engine_new(qg_engine **out);
/** NULL ok. */
QG_EXTERN void qg_engine_free(qg_engine *eng);

/**
 * Sets the HMAC-SHA256 secret (copied).
 * @return 0, QG_EINVAL (empty), QG_ENOMEM.
 */
QG_EXTERN int qg_engine_set_secret(qg_engine *eng, const void *key, size_t len);
/**
 * Reads the secret from a file: its bytes, less one trailing newline.
 * @param[out] err a message naming the file, when not 0 is returned.
 * @return 0, QG_EIO, QG_EINVAL (empty), QG_ENOMEM.
 */
QG_EXTERN int qg_engine_load_secret(qg_engine *eng, const char *path, char *err,
                                    size_t errlen);
/**
 * on = 0 skips signature checks, for replaying old captures whose secret
 * is lost; deliveries are then never unauthenticated.
 */
QG_EXTERN void qg_engine_require_signature(qg_engine *eng, int on);

/**
 * Overrides parts of the default mapping from a JSON file (the format is
 * in docs/mapping.md).  On failure the engine's mapping is unchanged.
 * @param[out] err names the file, key and value at fault.
 * @return 0, QG_EIO, QG_ECONFIG, QG_ENOMEM.
 */
QG_EXTERN int qg_engine_load_mapping(qg_engine *eng, const char *path,
                                     char *err, size_t errlen);

#define QG_DRY_RUN 0x1u /* decide, but write nothing */

/**
 * Decides one raw webhook body and, unless QG_DRY_RUN, records it in one
 * write transaction: an accepted step in the ticket's history, a refused
 * delivery in the rejection log.  Duplicates and ignored events write
 * nothing.
 * @param[in] body the exact bytes received; need not be NUL-terminated.
 * @param[out] res the verdict, filled whenever 0 is returned.
 * @return 0 (see res->verdict), QG_EINVAL, QG_ENOMEM, QG_ESTORE, QG_EFULL,
 * QG_ERDONLY (not a dry run on a read-only store).  On an error nothing
 * was written.
 */
QG_EXTERN int qg_engine_apply(qg_engine *eng, qg_store *st, const char *body,
                              size_t len, unsigned flags, qg_result *res);

/** One raw webhook body, for qg_engine_apply_batch(). */
typedef struct qg_body {
    const char *body;
    size_t len;
} qg_body;

/**
 * Decides n bodies, in order, and records them in one write transaction:
 * one commit, and with QG_SYNC one flush to disk, for all of them (group
 * commit).  Each body is decided in a nested transaction of its own, so a
 * body whose recording fails leaves nothing of itself behind and the
 * others still commit.  A later body sees the steps of earlier ones.
 * @param[out] res n results; res[i] is valid when rcs[i] is 0.
 * @param[out] rcs n codes, as qg_engine_apply() would return for each.
 * @return 0 when the batch committed (see rcs), or the error that kept it
 * from committing (then nothing of the batch was written): QG_EINVAL,
 * QG_ESTORE, QG_EFULL, QG_ERDONLY, QG_ENOMEM.
 */
QG_EXTERN int qg_engine_apply_batch(qg_engine *eng, qg_store *st,
                                    const qg_body *bodies, size_t n,
                                    qg_result *res, int *rcs);

#ifdef __cplusplus
}
#endif

#endif /* QGATE_H */
