/**
 * @file qgate.h
 * @brief The public API of libqgate.
 *
 * libqgate checks Chup Online webhook deliveries against the ticket
 * lifecycle, records every accepted step in an LMDB store, and logs every
 * refused delivery with its reason.  Everything not declared here (or in
 * qgate_lifecycle.h, which this header includes) is private.
 * docs/embedding.md shows how to build against it and use it.
 *
 * @par Conventions
 * - Functions return int: 0 on success, a negative QG_E* code on failure
 *   (#qg_errno).  #QG_NOTFOUND is a result, not a failure: no such ticket,
 *   the end of a cursor.  qg_strerror() and qg_err_name() name any code.
 * - A delivery that is refused (illegal step, bad signature, bad JSON) is
 *   not an error: qg_engine_apply() returns 0 and the verdict says why.
 * - Arguments are checked before anything is done: a call that fails with
 *   #QG_EINVAL has changed nothing.  A write that fails has written
 *   nothing: each write is one LMDB transaction, committed or aborted.
 * - Out-parameters come last.  A handle out-parameter is set to NULL when
 *   its constructor fails (unless it is itself NULL).  Destructors accept
 *   NULL.
 * - The library never exits, aborts or prints.
 *
 * @par Memory
 * Strings returned by the naming functions (qg_version(), qg_strerror(),
 * qg_state_name(), ...) are static: never free them.  Handles (#qg_store,
 * #qg_engine and the cursors) are freed by their own close or free
 * function.  Result structures (#qg_result, #qg_ticket, #qg_record, ...)
 * are caller-owned values filled by the library; the only pointers in them
 * are the body of #qg_record and the detail and body of #qg_rejection,
 * which point into the store's memory map and are valid only while their
 * cursor stays where it is (see qg_history_next()).
 *
 * @par Threads
 * - A #qg_store may be shared by threads.  LMDB serialises writers (one
 *   write transaction at a time, across processes too) and lets readers
 *   run beside them, in this process and in others: a second process may
 *   open the same store, also read-only (#QG_RDONLY), while one writes.
 * - A store must not be opened twice in one process at the same time
 *   (LMDB's rule: closing the second handle would break the locks of the
 *   first); share one handle instead.  A handle must not be used in a
 *   child process after fork().
 * - A #qg_engine is read-only once configured: any number of threads may
 *   call qg_engine_apply(), qg_engine_apply_batch() and
 *   qg_engine_check_batch() with it, but
 *   qg_engine_set_secret(), qg_engine_set_secrets(),
 *   qg_engine_load_secret(), qg_engine_set_source(),
 *   qg_engine_require_signature(), qg_engine_set_reorder_window(),
 *   qg_engine_set_max_skew() and qg_engine_load_mapping() must not run
 *   while any other call uses the same engine.
 * - A cursor (#qg_history, #qg_tickets, #qg_rejections, #qg_outbox,
 *   #qg_held_list)
 *   belongs to one thread at a time; it may be passed to another thread
 *   between calls.
 * - The functions that take no handle (names, the machine, versions) may
 *   be called from any thread at any time.
 */
#ifndef QGATE_H
#define QGATE_H

#include <stddef.h>
#include <stdint.h>

#include "qgate_lifecycle.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Marks a function that the shared library exports (default visibility on
 * GCC and Clang, whose builds hide every other symbol); empty elsewhere.
 * Not for callers.
 */
#if defined(_WIN32) || !defined(__GNUC__)
#define QG_EXTERN
#else
#define QG_EXTERN __attribute__((visibility("default")))
#endif

#define QG_VERSION_MAJOR  0       /**< major version of this header */
#define QG_VERSION_MINOR  9       /**< minor version of this header */
#define QG_VERSION_PATCH  1       /**< patch version of this header */
#define QG_VERSION_STRING "0.9.1" /**< "MAJOR.MINOR.PATCH" of this header */

/**
 * The version of the library that is running, which may differ from the
 * header's #QG_VERSION_STRING when a newer shared library is installed.
 * @return "MAJOR.MINOR.PATCH"; a static string.  Cannot fail.
 */
QG_EXTERN const char *qg_version(void);

/**
 * The version of the lifecycle machine compiled into the library.  Every
 * accepted record carries the version that accepted it (qg_record.machine).
 * @return the first 16 hex digits of the SHA-256 of machine/ticket.rl,
 * fixed at build time; a static string.  Cannot fail.
 */
QG_EXTERN const char *qg_machine_version(void);

/* ------------------------------------------------------------------ */
/* Error codes                                                         */

/**
 * The table of error codes: one XX(name, value, message) per code.  It
 * generates #qg_errno, qg_strerror() and qg_err_name(); callers may expand
 * it too, with their own XX.  The codes lie in -30600..-30699 (#QG_ERRNO_MIN
 * to #QG_ERRNO_MAX), as LMDB's MDB_ codes lie in -30799..-30780: apart
 * from -1 and the negated errno values that C functions return, from
 * LMDB's codes and from #QG_ILLEGAL, so that no other negative int is
 * taken for one.  Values are part of the ABI: a value is never changed or
 * reused, and a new code takes the next value, at the end.
 * @param XX a macro taking (name without the QG_ prefix, value, message).
 */
/* name, value, message */
#define QG_ERRNO_MAP(XX)                                                       \
    XX(NOTFOUND, -30600, "not found")                                          \
    XX(EINVAL, -30601, "invalid argument")                                     \
    XX(ENOMEM, -30602, "out of memory")                                        \
    XX(EIO, -30603, "input/output error")                                      \
    XX(ESTORE, -30604, "store error")                                          \
    XX(EFULL, -30605, "store full: map size limit reached")                    \
    XX(EFORMAT, -30606, "store written by an incompatible qgate version")      \
    XX(ERDONLY, -30607, "store opened read-only")                              \
    XX(ECONFIG, -30608, "invalid configuration")                               \
    XX(EBUSY, -30609, "store busy: too many readers")                          \
    XX(ETOOBIG, -30610, "value too large")                                     \
    XX(ECORRUPT, -30611, "the store is damaged")                               \
    XX(ENOTSUP, -30612, "not supported by this store's backend")               \
    XX(EUNAVAIL, -30613, "store unreachable; try again")                       \
    XX(ENOLIB, -30614,                                                         \
       "cannot load libpq.so.5 (14 or later), the PostgreSQL client "          \
       "library; QGATE_LIBPQ may name its file")

#define QG_ERRNO_MIN (-30699) /**< the lowest value a QG_E* code may take */
#define QG_ERRNO_MAX (-30600) /**< the highest value a QG_E* code may take */

/**
 * The codes that functions return: 0 (#QG_OK) or one of the negative
 * codes of #QG_ERRNO_MAP.  Functions return them as int.
 */
typedef enum qg_errno {
#define QG__ERR(name, val, msg) QG_##name = (val),
    QG_ERRNO_MAP(QG__ERR)
#undef QG__ERR
        QG_OK = 0 /**< Success. */
} qg_errno;

/**
 * @var QG_NOTFOUND
 * Not found: a result, not a failure.  No such ticket, record or entry,
 * the end of a cursor, an unknown name; with #QG_RDONLY, no store there.
 * @var QG_EINVAL
 * An argument is invalid: NULL where a value is needed, an unknown flag,
 * an id of 0 where one is needed.  Nothing was done.
 * @var QG_ENOMEM
 * Memory ran out.
 * @var QG_EIO
 * A file could not be read, or the store's directory could not be
 * created or examined.
 * @var QG_ESTORE
 * LMDB failed in a way no other code names, or a stored value does not
 * have the layout this version writes (a damaged store).
 * @var QG_EFULL
 * The store's map reached its limit (qg_store_options.map_max): the write
 * was not done.
 * @var QG_EFORMAT
 * The store was written by an incompatible qgate or LMDB version.
 * @var QG_ERDONLY
 * A write on a store opened with #QG_RDONLY, or the store's files may not
 * be written (permissions, read-only file system).
 * @var QG_ECONFIG
 * A mapping file is not valid JSON, or not a valid mapping
 * (qg_engine_load_mapping()).
 * @var QG_EBUSY
 * No LMDB reader slot was free (too many read transactions open, cursors
 * included, across all processes), or a write that had to grow the map
 * waited 10 seconds in vain for the other transactions of this process to
 * end.  Worth retrying.
 * @var QG_ETOOBIG
 * A value is too large: a secret longer than 4096 bytes
 * (qg_engine_load_secret()).
 * @var QG_ECORRUPT
 * The store's data file is damaged: too short for the pages in use, a
 * meta page that is not LMDB's (or a data.mdb that is not LMDB's at all),
 * or (qg_store_check()) a page of a tree that does not hold what the tree
 * needs there.  LMDB reports its own
 * finds of damage (MDB_CORRUPTED, MDB_PAGE_NOTFOUND) with it too.  Nothing
 * was read past the damage.  Restore the store from a backup copy.
 * @var QG_ENOTSUP
 * The store's backend has no such operation: LMDB's file checks and
 * copies on a PostgreSQL store, say (qg_store_backend() names it).
 * Nothing was done.
 * @var QG_EUNAVAIL
 * The store's server cannot be reached, or lost the connection during
 * the call: nothing was committed by it.  The next call reconnects.
 * @var QG_ENOLIB
 * A PostgreSQL store was asked for and libpq could not be loaded: no
 * such file (libpq.so.5, or the one the environment variable QGATE_LIBPQ
 * names), not a library, or one without the functions qgate calls
 * (pipeline mode came with libpq 14).  Nothing was opened.
 */

/**
 * Describes a code.
 * @param[in] code any int.
 * @return a static message: "success" for 0, the message of #QG_ERRNO_MAP
 * for its codes, else "unknown error".  Never NULL.
 */
QG_EXTERN const char *qg_strerror(int code);
/**
 * Names a code.
 * @param[in] code any int.
 * @return the static name of the code ("QG_EINVAL"; "QG_OK" for 0), else
 * "QG_UNKNOWN".  Never NULL.
 */
QG_EXTERN const char *qg_err_name(int code);

/* ------------------------------------------------------------------ */
/* The lifecycle                                                       */

/**
 * Names a state.
 * @param[in] s a state.
 * @return its static canonical name ("pharmacy_received"), or NULL when s
 * is not a state.
 */
QG_EXTERN const char *qg_state_name(qg_state s);
/**
 * Names an event.
 * @param[in] e an event.
 * @return its static canonical name ("rx_receive"; "none" for
 * #QG_EV_NONE), or NULL when e is not an event.
 */
QG_EXTERN const char *qg_event_name(qg_event e);
/**
 * Looks up a canonical state by name (exact, lower case).
 * @param[in] name the name, such as "queued"; NULL finds nothing.
 * @param[out] out the state; written only when 0 is returned.
 * @return 0, or #QG_NOTFOUND.
 */
QG_EXTERN int qg_state_from_name(const char *name, qg_state *out);
/**
 * Looks up a canonical event by name (exact, lower case).  "none" is not
 * found: #QG_EV_NONE is no event.
 * @param[in] name the name, such as "join"; NULL finds nothing.
 * @param[out] out the event; written only when 0 is returned.
 * @return 0, or #QG_NOTFOUND.
 */
QG_EXTERN int qg_event_from_name(const char *name, qg_event *out);

/**
 * What qg_machine_next() returns for an illegal step.  A verdict, not an
 * error: it is negative, so never a state, and outside the range of the
 * QG_E* codes (#QG_ERRNO_MIN..#QG_ERRNO_MAX), so never taken for one.
 */
#define QG_ILLEGAL (-1)

/**
 * Asks the lifecycle machine where event e leads from state s.
 * @param[in] s the state before.
 * @param[in] e the event.
 * @return the next state (>= 0; cast it to #qg_state), or #QG_ILLEGAL when
 * the step is illegal, e is #QG_EV_NONE, or s or e is out of range.
 */
QG_EXTERN int qg_machine_next(qg_state s, qg_event e);

/**
 * Lists the events legal in a state.
 * @param[in] s the state.
 * @return a mask with bit (1u << e) set for each legal event e; 0 for a
 * final state or a value that is not a state.  #QG_EV_NONE's bit is never
 * set.
 */
QG_EXTERN unsigned qg_machine_allowed(qg_state s);

/**
 * Tells whether a state is final.
 * @param[in] s the state.
 * @return nonzero when no event leaves s (#QG_ST_CANCELLED,
 * #QG_ST_VISIT_ENDED); 0 otherwise, also when s is not a state.
 */
QG_EXTERN int qg_state_is_final(qg_state s);

/**
 * Tells whether a state is one where the client waits to be served.
 * @param[in] s the state.
 * @return nonzero for #QG_ST_QUEUED, #QG_ST_ARRIVED and #QG_ST_MOVED (a
 * wait ends with #QG_EV_SERVE; a move to another service keeps waiting);
 * 0 otherwise, also when s is not a state.
 */
QG_EXTERN int qg_state_is_waiting(qg_state s);

/**
 * Lists events by name, for messages.
 * @param[in] mask a mask with bit (1u << e) set for each event e, as
 * qg_machine_allowed() returns.
 * @param[out] dst where to write "alert, update, serve" (in event order),
 * or "none" for an empty mask; names that would not fit are left out.
 * @param[in] len the size of dst; 0 writes nothing.
 * @return dst.  Cannot fail.
 */
QG_EXTERN char *qg_events_format(unsigned mask, char *dst, size_t len);

/* ------------------------------------------------------------------ */
/* Time                                                                */

/**
 * The wall clock the library stamps deliveries with (qg_record.received_us
 * and the like): what qg_held_expire() and the outbox compare against.
 * @return Unix microseconds.  Cannot fail.
 */
QG_EXTERN int64_t qg_time_now_us(void);

/**
 * Parses an ISO 8601 timestamp with an offset, as Chup writes them:
 * "2024-01-17T00:35:22+08:00", "...Z", with or without a fraction of a
 * second.
 * @param[in] s the text, NUL-terminated.
 * @param[out] ms the time, Unix milliseconds; written only when 0 is
 * returned.
 * @param[out] offset_s the offset it was written with, seconds east;
 * written only when 0 is returned.
 * @return 0, or #QG_EINVAL (not such a timestamp, or no such date).
 */
QG_EXTERN int qg_time_parse(const char *s, int64_t *ms, int32_t *offset_s);

/**
 * Writes a time as ISO 8601 in a given offset,
 * "2024-01-17T00:35:22+08:00" (whole seconds; "+00:00" for UTC).
 * @param[in] ms the time, Unix milliseconds.
 * @param[in] offset_s the offset to write it in, seconds east.
 * @param[out] dst where to write it; 26 bytes hold any year 0-9999.
 * @param[in] len the size of dst; the text is cut to fit.
 * @return dst.  Cannot fail.
 */
QG_EXTERN char *qg_time_format(int64_t ms, int32_t offset_s, char *dst,
                               size_t len);

/**
 * Reads a configuration file (a mapping file, a program's own settings)
 * as strict JSON: json-c's strict mode, then the checks the engine runs
 * on a delivery's body (UTF-8, control characters, repeated keys).
 * @param[in] path the file.
 * @param[out] text the file's bytes, NUL-terminated, for the caller to
 * parse; malloc'd, to be freed with free().  NULL unless 0 is returned.
 * @param[out] len the number of bytes, the NUL not counted; may be NULL.
 * @param[out] err what went wrong, in one line naming the file
 * ("cannot open FILE: ...", "FILE: not valid JSON at byte N: ...").
 * @param[in] errlen the size of err.
 * @return 0, #QG_EINVAL (NULL path, text or err), #QG_EIO (cannot open
 * or read it), #QG_ECONFIG (not strict JSON), #QG_ENOMEM.
 */
QG_EXTERN int qg_config_read(const char *path, char **text, size_t *len,
                             char *err, size_t errlen);

/** The type of a value in a configuration file: JSON's, integers apart. */
typedef enum qg_config_type {
    QG_CONFIG_NULL = 0,    /**< null */
    QG_CONFIG_BOOLEAN = 1, /**< true or false */
    QG_CONFIG_INTEGER = 2, /**< a number without fraction or exponent */
    QG_CONFIG_DOUBLE = 3,  /**< any other number */
    QG_CONFIG_STRING = 4,  /**< a string */
    QG_CONFIG_ARRAY = 5,   /**< an array */
    QG_CONFIG_OBJECT = 6   /**< an object */
} qg_config_type;

/**
 * One member of an object, or one element of an array, as
 * qg_config_walk() hands it over.  Every pointer is the walk's, valid
 * until the callback returns: copy what is kept.
 */
typedef struct qg_config_value {
    /** The member's name; NULL for an array's element. */
    const char *key;
    /** Its place among its siblings, from 0. */
    size_t index;
    /** How many siblings it has, itself included: the size of the object
     * or array walked. */
    size_t count;
    qg_config_type type; /**< its type */
    /** #QG_CONFIG_STRING: the string (it holds no NUL: qg_config_read()
     * refuses an escaped one).  NULL for every other type. */
    const char *string;
    /** #QG_CONFIG_INTEGER: the number, clamped to int64_t;
     * #QG_CONFIG_BOOLEAN: 1 or 0; 0 for every other type. */
    int64_t integer;
    /** The value as JSON text, whatever its type: to quote in a message,
     * or to walk in turn when it is an array or object. */
    const char *json;
} qg_config_value;

/**
 * Called by qg_config_walk() once per member or element.
 * @param[in] arg the walk's arg.
 * @param[in] value the member or element.
 * @return 0 to go on; any other value stops the walk, which returns it.
 */
typedef int (*qg_config_fn)(void *arg, const qg_config_value *value);

/**
 * Hands over the members of a JSON object, or the elements of a JSON
 * array, one by one and in the order of the text, so that a program reads
 * its configuration file with no JSON parser of its own: the text of a
 * file qg_config_read() has checked, then the #qg_config_value.json of an
 * array or object in it.
 * @param[in] text the JSON text, NUL-terminated.
 * @param[in] type #QG_CONFIG_OBJECT or #QG_CONFIG_ARRAY: what text must
 * hold.
 * @param[in] fn called for each member or element; a nonzero return stops
 * the walk.  Return positive values to tell them from the codes below.
 * @param[in] arg passed to fn.
 * @return 0 once every member or element was handed over, what fn
 * returned when not 0, #QG_EINVAL (NULL text or fn, or type neither
 * object nor array), #QG_ECONFIG (text is not strict JSON as
 * qg_config_read() checks a file, or not of that type) or #QG_ENOMEM.
 */
QG_EXTERN int qg_config_walk(const char *text, qg_config_type type,
                             qg_config_fn fn, void *arg);

/* ------------------------------------------------------------------ */
/* Verdicts                                                            */

/**
 * What qg_engine_apply() decided about a delivery.  Only #QG_ACCEPTED
 * changes a ticket; #QG_REJECTED, #QG_UNAUTHENTICATED and #QG_MALFORMED
 * deliveries go to the rejection log; the other two write nothing.
 */
typedef enum qg_verdict {
    QG_ACCEPTED = 0,        /**< recorded in the ticket's history */
    QG_DUPLICATE = 1,       /**< the same payload was accepted before */
    QG_REJECTED = 2,        /**< well-formed and signed, but refused */
    QG_UNAUTHENTICATED = 3, /**< signature missing or wrong */
    QG_MALFORMED = 4,       /**< not a Chup delivery */
    QG_IGNORED = 5,         /**< not a lifecycle step (client_*, ...) */
    /** Not legal yet, but an earlier step that has not arrived could make
     * it legal: stored and tried again whenever its ticket changes, until
     * the reorder window passes (qg_engine_set_reorder_window()). */
    QG_HELD = 6
} qg_verdict;

/**
 * The table of reasons: one XX(name, value, code, verdict, description)
 * per reason, where value is its number, code its name in logs and
 * answers and verdict the #qg_verdict it goes with (without the QG_
 * prefix).  It generates #qg_reason, qg_reason_name() and
 * qg_reason_verdict().  Values are stored (the rejection log keeps a
 * refusal's reason by number) and counted in metrics: a value is never
 * changed or reused, and a new reason takes the next value, at the end.
 * @param XX a macro taking (name without the QG_R_ prefix, value, code,
 * verdict, description).
 */
/* The reason behind a verdict: name, value, code, its verdict,
 * description. */
#define QG_REASON_MAP(XX)                                                      \
    XX(NONE, 0, "none", ACCEPTED, "the step is legal")                         \
    XX(REDELIVERY, 1, "redelivery", DUPLICATE,                                 \
       "the same payload was already accepted")                                \
    XX(ILLEGAL_TRANSITION, 2, "illegal_transition", REJECTED,                  \
       "the step is not legal from this state")                                \
    XX(TICKET_CLOSED, 3, "ticket_closed", REJECTED,                            \
       "the ticket is in a final state")                                       \
    XX(STALE, 4, "stale", REJECTED,                                            \
       "older than the ticket's last accepted step")                           \
    XX(UNKNOWN_EVENT, 5, "unknown_event", REJECTED,                            \
       "the event name is not mapped")                                         \
    XX(UNKNOWN_STATE, 6, "unknown_state", REJECTED, "the state is not mapped") \
    XX(MISSING_SIGNATURE, 7, "missing_signature", UNAUTHENTICATED,             \
       "the delivery is not signed")                                           \
    XX(SIGNATURE_FORMAT, 8, "signature_format", UNAUTHENTICATED,               \
       "the signature is not 64 hex")                                          \
    XX(BAD_SIGNATURE, 9, "bad_signature", UNAUTHENTICATED,                     \
       "the signature does not match")                                         \
    XX(BAD_JSON, 10, "bad_json", MALFORMED, "the body is not valid JSON")      \
    XX(TRAILING_DATA, 11, "trailing_data", MALFORMED,                          \
       "the body holds more than one document")                                \
    XX(BAD_ENVELOPE, 12, "bad_envelope", MALFORMED,                            \
       "the body is not a Chup envelope")                                      \
    XX(MISSING_FIELD, 13, "missing_field", MALFORMED,                          \
       "a required field is missing")                                          \
    XX(WRONG_TYPE, 14, "wrong_type", MALFORMED, "a field has the wrong type")  \
    XX(BAD_VALUE, 15, "bad_value", MALFORMED, "a field has an invalid value")  \
    XX(TOO_LARGE, 16, "too_large", MALFORMED,                                  \
       "the body is over the size limit")                                      \
    XX(NOT_LIFECYCLE, 17, "not_lifecycle", IGNORED,                            \
       "the event is not a lifecycle step")                                    \
    XX(EARLY, 18, "early", HELD, "not legal yet; held for an earlier step")

/**
 * Why a verdict was given: QG_R_ and a name of #QG_REASON_MAP, with its
 * value there (0, 1, ... without a gap), then #QG_REASON_COUNT.
 */
typedef enum qg_reason {
#define QG__REASON(name, value, code, verdict, desc) QG_R_##name = (value),
    QG_REASON_MAP(QG__REASON)
#undef QG__REASON
        QG_REASON_COUNT /**< The number of reasons; not a reason. */
} qg_reason;

/**
 * @var QG_R_NONE
 * "none" (#QG_ACCEPTED): the step is legal.
 * @var QG_R_REDELIVERY
 * "redelivery" (#QG_DUPLICATE): a payload with the same bytes (the same
 * SHA-256) was accepted before.
 * @var QG_R_ILLEGAL_TRANSITION
 * "illegal_transition" (#QG_REJECTED): the machine does not allow the
 * event from the ticket's state.
 * @var QG_R_TICKET_CLOSED
 * "ticket_closed" (#QG_REJECTED): the ticket is cancelled or its visit
 * ended; nothing more is accepted for it.
 * @var QG_R_STALE
 * "stale" (#QG_REJECTED): the payload's timestamp is older than that of
 * the ticket's last accepted step, and (with a reorder window) no legal
 * place for it exists among the accepted steps.
 * @var QG_R_UNKNOWN_EVENT
 * "unknown_event" (#QG_REJECTED): payload.event is not in the mapping.
 * @var QG_R_UNKNOWN_STATE
 * "unknown_state" (#QG_REJECTED): the mapping decides the event by the
 * data's state, and that state is not in the mapping.
 * @var QG_R_MISSING_SIGNATURE
 * "missing_signature" (#QG_UNAUTHENTICATED): there is no signature, or it
 * is not a string.
 * @var QG_R_SIGNATURE_FORMAT
 * "signature_format" (#QG_UNAUTHENTICATED): the signature is not 64
 * lowercase hex digits.
 * @var QG_R_BAD_SIGNATURE
 * "bad_signature" (#QG_UNAUTHENTICATED): the signature is not the
 * HMAC-SHA256 of the payload's bytes under the secret.  Also given to
 * every delivery whose envelope parses when the engine requires
 * signatures and has no secret.
 * @var QG_R_BAD_JSON
 * "bad_json" (#QG_MALFORMED): the body is not valid JSON (RFC 8259) in
 * valid UTF-8 (RFC 3629): no overlong forms, encoded surrogates or code
 * points above U+10FFFF, no raw control character in a string, no escaped
 * UTF-16 surrogate outside a high-low pair.
 * @var QG_R_TRAILING_DATA
 * "trailing_data" (#QG_MALFORMED): a second JSON value follows the first.
 * @var QG_R_BAD_ENVELOPE
 * "bad_envelope" (#QG_MALFORMED): the body is not a JSON object, its
 * payload is not an object, a top-level key is written with an escape, or
 * a key is repeated in any object (json-c would keep the last) or holds
 * an escaped NUL (json-c would cut it there).
 * @var QG_R_MISSING_FIELD
 * "missing_field" (#QG_MALFORMED): the payload, or a field the event
 * needs, is missing.
 * @var QG_R_WRONG_TYPE
 * "wrong_type" (#QG_MALFORMED): a field has the wrong JSON type.
 * @var QG_R_BAD_VALUE
 * "bad_value" (#QG_MALFORMED): a field's value is invalid (a timestamp
 * that does not parse or is ahead of the engine's clock by more than the
 * allowed skew, an id that is not positive or not below 2^63, a string the
 * engine reads that holds a NUL, ...).
 * @var QG_R_TOO_LARGE
 * "too_large" (#QG_MALFORMED): the body is over a size limit.  The library
 * never gives it: the gate uses it for the bodies it refuses before
 * deciding them (over --max-body), which are not in the rejection log.
 * @var QG_R_NOT_LIFECYCLE
 * "not_lifecycle" (#QG_IGNORED): the event is not a ticket lifecycle step
 * (client, service and staff events).
 * @var QG_R_EARLY
 * "early" (#QG_HELD): no legal place exists for the step in its ticket's
 * history yet, but a step that has not arrived could make one: the
 * delivery is held.  Reasons are numbered in table order and stored as
 * such, so new ones are only ever added at the end.
 */

/**
 * Names a verdict.
 * @param[in] v a verdict.
 * @return its static name: "accepted", "duplicate", "rejected",
 * "unauthenticated", "malformed" or "ignored"; NULL when v is out of
 * range.
 */
QG_EXTERN const char *qg_verdict_name(qg_verdict v);
/**
 * Gives a reason's code.
 * @param[in] r a reason.
 * @return its static code, "illegal_transition", ...; NULL when r is out
 * of range.
 */
QG_EXTERN const char *qg_reason_name(qg_reason r);
/**
 * Gives the verdict that a reason goes with.
 * @param[in] r a reason.
 * @return the verdict of r in #QG_REASON_MAP; #QG_MALFORMED when r is out
 * of range.
 */
QG_EXTERN qg_verdict qg_reason_verdict(qg_reason r);
/**
 * Looks a reason up by its code.
 * @param[in] name the code, such as "stale" (exact); NULL finds nothing.
 * @param[out] out the reason; written only when 0 is returned.
 * @return 0, or #QG_NOTFOUND.
 */
QG_EXTERN int qg_reason_from_name(const char *name, qg_reason *out);

/**
 * The outcome of one delivery, filled by qg_engine_apply().  A
 * caller-owned value with no pointers: nothing to free, and it stays
 * valid after the store or engine is gone.
 */
typedef struct qg_result {
    qg_verdict verdict; /**< what was decided */
    qg_reason reason;   /**< why; its verdict is the one above */
    /** The store's ticket number; 0 when the delivery named no ticket the
     * store knows, was not looked up (unauthenticated), or is the first
     * step of a new ticket in a dry run. */
    uint64_t ticket;
    int64_t live_queue_id;  /**< Chup live-queue id, 0 if unknown */
    int64_t appointment_id; /**< Chup appointment id, 0 if none */
    /** The canonical event; #QG_EV_NONE when the delivery was refused
     * before its event was known or is a duplicate. */
    qg_event event;
    /** The ticket's state before the delivery; #QG_ST_NEW when there is no
     * ticket yet or it was not looked up (unauthenticated). */
    qg_state from;
    qg_state to; /**< after it; == from unless accepted */
    /** The history position: of the new step when accepted (0 in a dry
     * run), of the earlier step when a duplicate, else 0.  Steps are
     * numbered in order of acceptance. */
    uint32_t seq;
    /** Where an accepted step stands in its ticket's history in event
     * time (payload.timestamp): 1 for the earliest.  Equal to the count of
     * steps unless the step is late; 0 when not accepted. */
    uint32_t pos;
    /** Nonzero when an accepted step is late: older than the ticket's
     * newest step, it was placed at its timestamp among them and the
     * path re-run through the machine ("to" is then the state the whole
     * path ends in). */
    int late;
    /** Held deliveries of the same ticket that this step made legal, and
     * that were accepted in the same transaction after it. */
    uint32_t released;
    unsigned allowed;    /**< events legal in "to", mask of (1u << event) */
    uint64_t rejection;  /**< rejection log id when logged, else 0 */
    char chup_event[48]; /**< Chup's event name, truncated, "" if none */
    char detail[256];    /**< one line for people: field, value, rule */
} qg_result;

/* ------------------------------------------------------------------ */
/* The store                                                           */

/**
 * An open LMDB store: tickets, their histories, the rejection log and the
 * outbox.  Opaque; from qg_store_open(), freed by qg_store_close().  One
 * handle may be shared by all threads of a process.
 */
typedef struct qg_store qg_store;

/** When a commit reaches the disk. */
typedef enum qg_durability {
    QG_SYNC = 0,   /**< every commit is on disk before it returns */
    QG_NOSYNC = 1, /**< the OS writes when it likes; a system crash may
                      lose the last commits (a process crash does not) */
} qg_durability;

/**
 * qg_store_options.flags: open an existing store read-only.  Nothing is
 * created; writes fail with #QG_ERDONLY; dry runs and every read work,
 * also while another process writes the store.  LMDB still needs write
 * permission on the store's lock.mdb, where it registers readers.
 */
#define QG_RDONLY 0x1u /* open an existing store read-only */
/**
 * qg_store_options.flags: the store feeds an HIS: queue every accepted
 * step in the outbox, in the transaction that records it.  Once a store
 * was opened with it, it is a property of the store: every later writer,
 * with the flag or without (say `qgate apply` of captured webhooks into
 * the gate's store), queues its accepted steps too, so none is recorded
 * without being forwarded.
 */
#define QG_OUTBOX 0x2u /* queue every accepted step for forwarding */
/**
 * qg_store_options.flags: open a PostgreSQL store whose schema is older
 * than this qgate's, for qg_store_migrate() alone (every other call then
 * answers #QG_EFORMAT).  Without it such a store is #QG_EFORMAT at open.
 * An LMDB store has no schema to migrate: #QG_ENOTSUP.
 */
#define QG_MIGRATE 0x4u /* open an older PostgreSQL schema to migrate it */
/**
 * qg_store_options.flags: an LMDB store mapped writable (LMDB's
 * MDB_WRITEMAP).  A commit then copies no page into the file: the pages
 * are written in the map, and the kernel writes them back (at once for
 * #QG_SYNC, when it likes for #QG_NOSYNC).  What it costs: a stray write
 * through a bad pointer in the process lands in the store; the data file
 * is as long as the map (sparse where unused); LMDB nests no transaction,
 * so a group of deliveries in which one fails on a store error is rerun
 * one delivery a commit rather than each in a nested transaction.  Every
 * process that writes the store should open it the same way (LMDB's
 * advice).  Ignored with #QG_RDONLY; a PostgreSQL store: #QG_EINVAL.
 */
#define QG_WRITEMAP 0x8u /* LMDB: write in the map (MDB_WRITEMAP) */

/**
 * How to open a store.  Zero it and set path: every other field then has
 * its default.
 */
typedef struct qg_store_options {
    /** The store's directory (data.mdb, lock.mdb).  Unless #QG_RDONLY, it
     * is created if missing (mode 0750; its parent must exist).  Or a
     * PostgreSQL connection URI, "postgresql://..." or "postgres://...":
     * a store several gates share (docs/postgresql.md); its schema is
     * created in an empty database unless #QG_RDONLY. */
    const char *path;
    /** The initial map size in bytes; 0 = 64 MiB.  A store that is already
     * larger keeps its size. */
    size_t map_size;
    /** The growth limit in bytes: a full map doubles up to it, then
     * writes fail with #QG_EFULL; 0 = 64 GiB. */
    size_t map_max;
    qg_durability durability; /**< QG_SYNC unless said otherwise */
    unsigned flags; /**< #QG_RDONLY, #QG_OUTBOX, #QG_MIGRATE, #QG_WRITEMAP */
    /** The bound, in bytes, on the rejection log's entries for
     * #QG_UNAUTHENTICATED and #QG_MALFORMED deliveries together (their
     * values as stored, not counting LMDB's page overhead); 0 = 64 MiB.
     * Past it, the oldest of them are dropped, and counted
     * (qg_rejections_dropped()).  Other refusals are never dropped. */
    size_t unsigned_log_max;
} qg_store_options;

/**
 * Opens (and if needed creates) a store.  Clears the reader slots that
 * dead processes left in the store's lock file.  Do not open a store that
 * is already open in this process (see the file's notes on threads).
 * Before LMDB maps the data file, checks that both its meta pages are
 * LMDB's and that it holds the root pages they name, the first pages LMDB
 * reads: a file cut short would otherwise be a SIGBUS at the first read
 * past its end.  That is all it checks; qg_store_check() checks every
 * page.
 * @param[in] opts options; path is required.  Not kept after the call.
 * @param[out] out the store, to be closed with qg_store_close(); NULL on
 * failure.
 * @return 0, #QG_EINVAL (a NULL or empty path, an unknown flag or
 * durability, a path that is not a directory), #QG_ENOMEM, #QG_EIO (the
 * directory cannot be examined or created), #QG_NOTFOUND (#QG_RDONLY and
 * no store there), #QG_ERDONLY (no permission to write the files),
 * #QG_EFORMAT, #QG_ECORRUPT (a meta or root page is damaged, or the file
 * ends before a root page), #QG_EBUSY, #QG_EFULL, #QG_ESTORE.  On failure
 * a directory or empty store files that the call created stay behind.
 * A PostgreSQL store also: #QG_EUNAVAIL (the server cannot be reached),
 * #QG_EFORMAT (its schema is another version: see qg_store_migrate()),
 * #QG_ENOTSUP (#QG_MIGRATE on an LMDB store).
 */
QG_EXTERN int qg_store_open(const qg_store_options *opts, qg_store **out);
/**
 * Says which backend qg_store_open() gives a path: a PostgreSQL store for
 * a connection URI ("postgresql://..." or "postgres://..."), an LMDB
 * store for anything else.
 * @param[in] path a qg_store_options.path; may be NULL.
 * @return 1 for a PostgreSQL URI, 0 otherwise (NULL included).
 */
QG_EXTERN int qg_store_is_postgresql(const char *path);
/**
 * Closes a store.  No cursor of it may be open, and no other thread may
 * be using it.
 * @param[in] st the store, or NULL (nothing is done).
 */
QG_EXTERN void qg_store_close(qg_store *st);

/**
 * Checks the structure of every page of every database of the store, in
 * one snapshot, without reading through the memory map: each page is read
 * with pread() and checked before anything in it is followed.  A page
 * must carry its own number and the type its tree expects there, its
 * nodes must lie inside it, every page in use must lie inside the file
 * (pages on the free list may lie past its end: LMDB need not have written
 * them), no page may be used twice (by two trees, or by a tree and the
 * free list), keys must be in order, and each tree's depth and page and
 * entry counts must match its record.  It does not look into the values
 * (qg_store_verify_ticket() does).  qg_store_open() checks less: only that
 * the meta pages are LMDB's and the file holds their root pages.
 *
 * Reads the whole data file once; a writer may run meanwhile (the
 * snapshot is held by a read transaction).
 * @param[in] st the store.
 * @param[out] detail where the damage is, in one line ("" when sound);
 * may be NULL.
 * @param[in] dlen the size of detail.
 * @return 0 (sound), #QG_ECORRUPT (see detail), #QG_EINVAL (NULL st),
 * #QG_ENOMEM, #QG_EIO (the data file could not be read), #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_store_check(qg_store *st, char *detail, size_t dlen);

/**
 * Checks a store's data file as qg_store_open() does before LMDB maps it,
 * without opening the store: both meta pages are LMDB's and the file
 * holds the root pages of the newer one.  For a program that must tell a
 * damaged store from other failures to open one.
 * @param[in] dir the store's directory.
 * @param[out] detail where the damage is, in one line ("" when sound);
 * may be NULL.
 * @param[in] dlen the size of detail.
 * @return 0 (sound, or no data file yet, or one that cannot be opened:
 * qg_store_open() says why), #QG_ECORRUPT (see detail), #QG_EFORMAT,
 * #QG_EIO, #QG_EINVAL (NULL dir, or a path too long).
 */
QG_EXTERN int qg_store_check_file(const char *dir, char *detail, size_t dlen);

/**
 * Sets the function that LMDB's failed assertions call, with LMDB's
 * message, in every store opened afterwards (NULL: none).  LMDB calls
 * abort() when it returns, so a program sets it only to report and exit;
 * the library itself never does.  A failed assertion means a damaged
 * store that qg_store_check() would have found.  Set it before any store
 * is opened: it is one setting for the process, not for a thread.
 * @param[in] fn the function, or NULL.
 */
QG_EXTERN void qg_store_on_damage(void (*fn)(const char *what));

/**
 * Copies the store, as of one snapshot, compacted, into an existing empty
 * directory (data.mdb only).  Works on a #QG_RDONLY store; a writer may
 * run meanwhile.
 * @param[in] st the store.
 * @param[in] dir the directory to copy into.
 * @return 0, #QG_EINVAL (NULL st or dir), #QG_ERDONLY (dir may not be
 * written), #QG_ENOMEM, #QG_ESTORE (any other failure, such as no such
 * directory).
 */
QG_EXTERN int qg_store_copy(qg_store *st, const char *dir);

/** What qg_store_purge() did; a caller-owned value with no pointers. */
typedef struct qg_purge_stats {
    uint64_t records;    /**< history records whose body was purged */
    uint64_t rejections; /**< rejection log entries whose body was purged */
    uint64_t bytes;      /**< body bytes removed, over both */
    /** History records old enough, kept whole because their step is still
     * in the outbox or on the dead list: it has yet to be forwarded. */
    uint64_t skipped;
} qg_purge_stats;

/**
 * Purges the raw bodies (which hold patients' names and phone numbers) of
 * the history records and rejection log entries received before a time,
 * and keeps everything else of them: a record's header (ids, event, from
 * and to, times, machine, place), its facts, its payload digest and the
 * digest's entry in the index, so that a redelivery of it is still a
 * #QG_DUPLICATE and qg_store_verify_ticket() still passes.  In the body's
 * place the store keeps its length and SHA-256.  A purged record reads
 * with a NULL body and body_len 0 (qg_record); a purged rejection too,
 * with its received_len and, in its digest, the SHA-256 of the delivery
 * as received (qg_rejection).  A record whose step is in the outbox or
 * the dead list is not purged (counted as skipped).  Purging again
 * purges nothing more.
 *
 * The time compared is received_us, the library's clock when the step or
 * refusal was recorded, not Chup's payload.timestamp: one clock for
 * steps and refusals, and one no sender sets.
 *
 * Works in write transactions of a few thousand entries each, so other
 * writers (the gate) wait at most for one of them.  A failure leaves the
 * batches committed before it purged and the rest as they were; out then
 * counts what was purged.  Threads as for qg_engine_apply(): do not hold
 * a cursor in the thread that calls it.  The file does not shrink: LMDB
 * reuses the freed pages, and qg_store_copy() writes a compacted copy.
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] before_us purge what was received before this time, Unix
 * microseconds.
 * @param[out] out the counts; may be NULL.
 * @return 0, #QG_EINVAL (NULL st), #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL,
 * #QG_EBUSY, #QG_ESTORE (a damaged record: the batches before it stay
 * purged).
 */
QG_EXTERN int qg_store_purge(qg_store *st, int64_t before_us,
                             qg_purge_stats *out);

/**
 * Writes and commits 64 KiB (a meta value rewritten each time): whether
 * the store can take a commit now.  A gate asks it to tell a full disk
 * from a store that works.
 * @param[in] st the store, opened for writing.
 * @return 0, #QG_EINVAL (NULL st, or a #QG_RDONLY store), #QG_EFULL,
 * #QG_ERDONLY, #QG_EIO, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_probe(qg_store *st);

/** The length of a store's id in hex digits (qg_store_id()). */
#define QG_STORE_ID_LEN 32

/**
 * Gives the store's id: 16 random bytes (getrandom()) given when the store
 * was created, as 32 lowercase hex digits.  A store created before ids
 * existed gets one the first time it is opened for writing, and keeps it.
 * A copy made with qg_store_copy() has the same id, so a backup restored
 * in the store's place names its steps as the store did.  A forwarder
 * makes delivery ids from it that no other store gives.
 * @param[in] st the store.
 * @param[out] out 33 bytes: the id, NUL-terminated; written only when 0
 * is returned.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_NOTFOUND (a store from
 * before ids, opened #QG_RDONLY: it has none yet).
 */
QG_EXTERN int qg_store_id(const qg_store *st, char out[QG_STORE_ID_LEN + 1]);
/**
 * Names a store's backend.
 * @param[in] st the store.
 * @return "lmdb" or "postgresql", static; NULL for a NULL st.
 */
QG_EXTERN const char *qg_store_backend(const qg_store *st);

/** The version of the PostgreSQL schema this qgate reads and writes
 * (public.qgate_schema; docs/postgresql.md). */
#define QG_PG_SCHEMA_VERSION 2

/**
 * Brings a PostgreSQL store's schema to #QG_PG_SCHEMA_VERSION, in one
 * transaction under the advisory lock that schema creation takes, so
 * that gates starting meanwhile wait for it.  A store already there is
 * left as it is.
 * @param[in] st the store, opened with #QG_MIGRATE (or not, when its
 * schema is current already).
 * @param[out] from the version found, or NULL.
 * @param[out] to the version now, or NULL; written only when 0 is
 * returned.
 * @return 0, #QG_EINVAL (NULL st), #QG_ENOTSUP (an LMDB store),
 * #QG_ERDONLY (#QG_RDONLY), #QG_EFORMAT (a newer schema, or an older one
 * this qgate cannot migrate), #QG_EUNAVAIL, #QG_ESTORE.
 */
QG_EXTERN int qg_store_migrate(qg_store *st, int *from, int *to);

/** The longest source name, in bytes (qg_engine_set_source()). */
#define QG_SOURCE_NAME_MAX 32
/** The name of the default source: the one an engine judges for unless
 * qg_engine_set_source() names another, and the one every ticket of a
 * store written before sources existed belongs to. */
#define QG_SOURCE_DEFAULT "default"
/** The most sources one store tells apart, the default one included. */
#define QG_SOURCES_MAX 64

/**
 * Checks a source name: 1 to #QG_SOURCE_NAME_MAX bytes of lowercase
 * letters, digits, '-' and '_', starting with a letter or digit, so that
 * it can stand in a URL path, a log line and a metric label as it is.
 * @param[in] name the name, NUL-terminated.
 * @return 0, #QG_EINVAL (NULL, or not such a name).
 */
QG_EXTERN int qg_source_name_check(const char *name);

/**
 * Whether the store has seen a source: the default source always, any
 * other once a delivery was recorded for it (a store numbers a source,
 * in its meta database, the first time it writes for it).
 * @param[in] st the store.
 * @param[in] name the source's name.
 * @return 1 (known), 0 (not yet), #QG_EINVAL (NULL st, a bad name),
 * #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_has_source(qg_store *st, const char *name);

/** A ticket's summary; a caller-owned value with no pointers. */
typedef struct qg_ticket {
    /** The store's ticket number: 1, 2, ... in order of each ticket's
     * first accepted step. */
    uint64_t id;
    int64_t live_queue_id;  /**< first Chup live-queue id, 0 if none yet */
    int64_t appointment_id; /**< first Chup appointment id, 0 if none */
    qg_state state;         /**< the state after its last accepted step */
    uint32_t records;       /**< accepted steps in its history */
    /** Deliveries refused for it: those that named it, were not
     * unauthenticated, and were written to the rejection log. */
    uint32_t rejections;
    int64_t last_event_ms;     /**< Chup timestamp of its last accepted step */
    int64_t first_received_us; /**< received_us of its first step */
    int64_t last_received_us;  /**< received_us of its last step */
    int64_t service_id;        /**< as of the last step naming one, 0 if none */
    int64_t staff_id;          /**< as of the last step naming one, 0 if none */
    /** The source whose deliveries made it (qg_engine_set_source()),
     * NUL-terminated: #QG_SOURCE_DEFAULT for the default source, which
     * holds every ticket of a store written before sources existed. */
    char source[QG_SOURCE_NAME_MAX + 1];
} qg_ticket;

/** Which of its ids names a ticket in qg_store_ticket(). */
typedef enum qg_id_kind {
    QG_ID_TICKET = 0,     /**< the store's own ticket number */
    QG_ID_LIVE_QUEUE = 1, /**< Chup's data.id of live_queue_* events */
    QG_ID_APPOINTMENT = 2 /**< Chup's appointment id */
} qg_id_kind;

/**
 * Reads a ticket by any of its ids, in a read transaction of its own.
 * Every live-queue and appointment id that an accepted step named leads
 * to the ticket.
 * @param[in] st the store.
 * @param[in] kind what id is.
 * @param[in] id the id; must be positive.
 * @param[out] out the ticket; written only when 0 is returned.
 * @return 0, #QG_NOTFOUND, #QG_EINVAL (NULL st or out, id <= 0, unknown
 * kind), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_ticket(qg_store *st, qg_id_kind kind, int64_t id,
                              qg_ticket *out);
/**
 * Reads a ticket of one source by any of its ids, as qg_store_ticket()
 * does for the default source: Chup's ids are a source's own, so live
 * queue 30001 of one source and of another are two tickets.  The store's
 * ticket numbers (#QG_ID_TICKET) are the store's: a ticket so named is
 * found only when it belongs to the source.
 * @param[in] st the store.
 * @param[in] source the source's name; NULL: as qg_store_ticket() (the
 * default source's Chup ids; a ticket number of any source).
 * @param[in] kind what id is.
 * @param[in] id the id; must be positive.
 * @param[out] out the ticket; written only when 0 is returned.
 * @return as qg_store_ticket(); #QG_NOTFOUND also for a source the store
 * has not seen, #QG_EINVAL also for a bad source name.
 */
QG_EXTERN int qg_store_ticket_in(qg_store *st, const char *source,
                                 qg_id_kind kind, int64_t id, qg_ticket *out);

/**
 * Parses a ticket's name as people and URLs write it: "lq:30001" (a
 * live-queue id), "appt:9101" (an appointment id), "ticket:5" (the
 * store's number), or a bare "30001", taken for a live-queue id.  The
 * number is decimal digits with no sign, space or leading zero, below
 * 2^63: each id has one spelling.
 * @param[in] name the name, NUL-terminated.
 * @param[out] kind what the number is; written only when 0 is returned.
 * @param[out] id the number; written only when 0 is returned.
 * @return 0, or #QG_EINVAL (NULL argument, or not such a name).
 */
QG_EXTERN int qg_ticket_id_parse(const char *name, qg_id_kind *kind,
                                 int64_t *id);

/**
 * Reads a ticket by its name (qg_ticket_id_parse()), in a read
 * transaction of its own.  A bare number that is no live-queue id is then
 * looked up as an appointment id.
 * @param[in] st the store.
 * @param[in] name the name, such as "30001" or "appt:9101".
 * @param[out] out the ticket; written only when 0 is returned.
 * @return 0, #QG_NOTFOUND, #QG_EINVAL (NULL argument, or not such a name),
 * and the errors of qg_store_ticket().
 */
QG_EXTERN int qg_store_ticket_named(qg_store *st, const char *name,
                                    qg_ticket *out);
/**
 * Reads a ticket of one source by its name, as qg_store_ticket_named()
 * does for the default source (see qg_store_ticket_in()).
 * @param[in] st the store.
 * @param[in] source the source's name; NULL as in qg_store_ticket_in().
 * @param[in] name the name, such as "30001" or "appt:9101".
 * @param[out] out the ticket; written only when 0 is returned.
 * @return as qg_store_ticket_in().
 */
QG_EXTERN int qg_store_ticket_named_in(qg_store *st, const char *source,
                                       const char *name, qg_ticket *out);

/**
 * One accepted step of a ticket's history, read by qg_history_next().  A
 * caller-owned value, except that body points into the store.
 */
typedef struct qg_record {
    uint64_t ticket; /**< the ticket's number */
    uint32_t seq;    /**< 1, 2, ... in order of acceptance */
    /** When qg_engine_apply() was called with it, Unix microseconds. */
    int64_t received_us;
    int64_t event_ms; /**< Chup's payload.timestamp, Unix milliseconds */
    /** The UTC offset that timestamp was written with, seconds east. */
    int32_t utc_offset_s;
    qg_event event;           /**< the canonical event */
    qg_state from,            /**< the ticket's state before the step */
        to;                   /**< and after it */
    int64_t service_id,       /**< the delivery's service id, 0 if none */
        staff_id;             /**< the delivery's staff id, 0 if none */
    unsigned char digest[32]; /**< SHA-256 of the payload bytes */
    /** The machine version that accepted it (qg_machine_version()),
     * NUL-terminated. */
    char machine[17];
    /** Its place in the ticket's history in event time, 1 for the
     * earliest; from and to are those of the path in that order. */
    uint32_t pos;
    /** Nonzero when the step arrived after a step with a later timestamp
     * and was placed among the accepted steps (see qg_result.late). */
    int late;
    /** Nonzero when the step was held first (#QG_HELD) and accepted once
     * an earlier step arrived. */
    int released;
    /** The raw delivery, as received; not NUL-terminated.  Points into the
     * store's read-only map: valid until the next qg_history_next() or
     * qg_history_close() of its cursor.  NULL when the body was purged
     * (qg_store_purge()): the rest of the record, digest included, is
     * kept. */
    const char *body;
    size_t body_len; /**< the length of body in bytes; 0 when purged */
} qg_record;

/**
 * A cursor over history records.  Opaque; from qg_history_open(), freed
 * by qg_history_close().  Used by one thread at a time.
 */
typedef struct qg_history qg_history;

/** The order in which a history cursor returns a ticket's steps. */
typedef enum qg_order {
    /** By event time (payload.timestamp), the order the machine judged
     * them in: late steps stand at their place. */
    QG_EVENT_ORDER = 0,
    QG_ARRIVAL_ORDER = 1, /**< by seq, the order they were accepted in */
    /** Or'ed with either order: each step's summary, not the whole
     * record.  Only ticket, seq, pos, event_ms, event, from, to,
     * service_id, late and released are filled; the others are 0 and body
     * is NULL.  For walks over every history (`qgate stats`): the LMDB
     * store reads them from a database of fixed summaries beside the
     * records, some fifty to a page where the records are two or three,
     * or from the records where they do not cover the history (a store
     * written before them opened read-only, or one an older qgate wrote
     * to since, until its next writable open builds them). */
    QG_SUMMARY = 0x100
} qg_order;

/**
 * Opens a cursor over a ticket's history in event time, oldest first
 * (qg_history_open_order() with #QG_EVENT_ORDER); with ticket 0, over
 * every record of the store, by ticket then step.  It holds a read
 * transaction (a consistent snapshot: steps committed later are not seen)
 * until qg_history_close().  Close it soon: an open read transaction keeps
 * LMDB from reusing pages, and a write of this process that must grow the
 * map waits for it (#QG_EBUSY after 10 seconds).
 * @param[in] st the store.
 * @param[in] ticket the ticket's number, or 0 for every ticket.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_NOTFOUND (no such ticket), #QG_EINVAL (NULL st or out),
 * #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_history_open(qg_store *st, uint64_t ticket, qg_history **out);
/**
 * Opens a history cursor as qg_history_open() does, in the given order.
 * @param[in] st the store.
 * @param[in] ticket the ticket's number, or 0 for every ticket.
 * @param[in] order #QG_EVENT_ORDER or #QG_ARRIVAL_ORDER, either or'ed
 * with #QG_SUMMARY (a cast makes it a qg_order in C++).
 * @param[out] out the cursor; NULL on failure.
 * @return as qg_history_open(); #QG_EINVAL also for an unknown order.
 */
QG_EXTERN int qg_history_open_order(qg_store *st, uint64_t ticket,
                                    qg_order order, qg_history **out);
/**
 * Reads the next record.
 * @param[in] h the cursor.
 * @param[out] rec the record; written only when 0 is returned.  rec->body
 * points into the store's map and stays valid until the next
 * qg_history_next() or qg_history_close() of h: copy it to keep it.
 * @return 0, #QG_NOTFOUND at the end, #QG_EINVAL (NULL h or rec),
 * #QG_ESTORE.
 */
QG_EXTERN int qg_history_next(qg_history *h, qg_record *rec);
/**
 * Gives the ticket a single ticket's cursor reads, as it stands in the
 * cursor's snapshot: its state and counts agree with the records the
 * cursor returns, whatever was written since it was opened.  For a
 * cursor over every ticket: the ticket of the record qg_history_next()
 * returned last, in the same snapshot (an export needs each record's
 * ticket, and this reads it in the cursor's transaction, once a ticket).
 * @param[in] h the cursor.
 * @param[out] out the ticket; written only when 0 is returned.
 * @return 0, #QG_EINVAL (NULL h or out, or a cursor over every ticket
 * that has returned no record yet), #QG_ESTORE.
 */
QG_EXTERN int qg_history_ticket(qg_history *h, qg_ticket *out);
/**
 * Moves a single ticket's cursor so that the next qg_history_next()
 * returns step seq (in arrival order: or the first step after it), in
 * the same snapshot; the steps after it follow in the cursor's order.
 * @param[in] h the cursor, over one ticket.
 * @param[in] seq the step; 0 or 1 go back to the first.
 * @return 0, #QG_EINVAL (NULL, or a cursor over every ticket).
 */
QG_EXTERN int qg_history_seek(qg_history *h, uint32_t seq);
/**
 * Ends the cursor and its read transaction; the bodies it returned are no
 * longer valid.
 * @param[in] h the cursor, or NULL (nothing is done).
 */
QG_EXTERN void qg_history_close(qg_history *h);

/**
 * A cursor over tickets.  Opaque; from qg_tickets_open(), freed by
 * qg_tickets_close().  Used by one thread at a time.
 */
typedef struct qg_tickets qg_tickets;

/**
 * Opens a cursor over every ticket, newest (highest number) first, in a
 * read transaction held until qg_tickets_close().
 * @param[in] st the store.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_ENOMEM, #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_tickets_open(qg_store *st, qg_tickets **out);
/**
 * Reads the next ticket.
 * @param[in] it the cursor.
 * @param[out] out the ticket; written only when 0 is returned.
 * @return 0, #QG_NOTFOUND at the end, #QG_EINVAL (NULL it or out),
 * #QG_ESTORE.
 */
QG_EXTERN int qg_tickets_next(qg_tickets *it, qg_ticket *out);
/**
 * Ends the cursor and its read transaction.
 * @param[in] it the cursor, or NULL (nothing is done).
 */
QG_EXTERN void qg_tickets_close(qg_tickets *it);

/** What qg_store_verify_ticket() found; a caller-owned value. */
typedef struct qg_finding {
    /** 0: the ticket is consistent and the machine accepts its whole
     * history; 1: see the fields below. */
    int found;
    uint32_t seq;   /**< the record at fault, 0 for the ticket itself */
    char what[256]; /**< the problem in one line; "" when found is 0 */
} qg_finding;

/**
 * Checks one ticket in one snapshot: its history, read in event time, is
 * a word of the current machine (each step legal, each from the previous
 * to, the last to the ticket's state), its steps stand at places 1..n in
 * event time with n the ticket's count and their timestamps in that
 * order, their seqs are 1..n, each record's digest matches its body and
 * is indexed, and the ticket's ids lead back to it.  Stops at the first
 * problem.
 * @param[in] st the store.
 * @param[in] ticket the ticket's number.
 * @param[out] out the first problem found, if any; meaningful only when 0
 * is returned.
 * @return 0 (see out->found), #QG_NOTFOUND (no such ticket), #QG_EINVAL
 * (NULL st or out, ticket 0), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_verify_ticket(qg_store *st, uint64_t ticket,
                                     qg_finding *out);

/* ----- the hash chain -------------------------------------------------- */

/** The bytes of a chain hash (SHA-256). */
#define QG_CHAIN_HASH_LEN 32
/** The longest line qg_store_seal() writes, with its NUL. */
#define QG_SEAL_MAX 320

/** What a chain entry covers. */
typedef enum qg_chain_kind {
    QG_CHAIN_STEP = 1,    /**< an accepted step: ticket and seq */
    QG_CHAIN_REFUSAL = 2, /**< an entry of the rejection log: its id */
    QG_CHAIN_HOLD = 3     /**< a held delivery: its held id */
} qg_chain_kind;

/** The kind of a break qg_store_verify_chain() found. */
typedef enum qg_chain_break {
    QG_CHAIN_INTACT = 0,    /**< nothing found */
    QG_CHAIN_CHANGED = 1,   /**< a record or entry differs from its hash */
    QG_CHAIN_REMOVED = 2,   /**< a record or entry the chain names is gone */
    QG_CHAIN_REORDERED = 3, /**< content found under another record or at
                                 another place of the chain */
    QG_CHAIN_ADDED = 4,     /**< a record no entry covers */
    QG_CHAIN_UNSEALED = 5   /**< the sealed head does not hold */
} qg_chain_break;

/** The first break qg_store_verify_chain() found; a caller-owned value. */
typedef struct qg_chain_finding {
    qg_chain_break brk; /**< #QG_CHAIN_INTACT when nothing was found */
    qg_chain_kind kind; /**< what the record is; 0 for the chain itself */
    uint64_t ticket;    /**< its ticket, 0 if none */
    uint64_t ref;       /**< its seq, rejection id or held id */
    uint64_t entry;     /**< the chain entry (1, 2, ...) at fault */
    uint64_t entries;   /**< the entries checked */
    char what[256];     /**< the break in one line; "" when intact */
} qg_chain_finding;

/** A store's chain head, as qg_store_seal() prints it and
 * qg_seal_parse() reads it back; a caller-owned value. */
typedef struct qg_seal {
    char store_id[QG_STORE_ID_LEN + 1]; /**< the store's id (qg_store_id()) */
    uint64_t records;                   /**< entries up to the head */
    unsigned char hash[QG_CHAIN_HASH_LEN]; /**< the head entry's hash */
    int64_t time_us;                       /**< when it was sealed */
    int is_signed;                         /**< an Ed25519 signature held */
} qg_seal;

/**
 * Entries the migration of this open added: a store written before the
 * chain gets it computed, over every record it holds, at its first
 * writable open.  0 for every later open and for a read-only open (which
 * leaves such a store without a chain).  The library never prints; the
 * programs say it.
 * @param[in] st the store.
 * @param[out] records entries added by the migration.
 * @return 0, #QG_EINVAL (NULL st or records).
 */
QG_EXTERN int qg_store_chain_migrated(const qg_store *st, uint64_t *records);

/**
 * Step summaries the build of this open wrote: an LMDB store whose
 * summaries do not cover its history (written before 0.7, or appended to
 * by an older qgate since) gets them built, one for each record, at its
 * first writable open.  0 for every later open and for a read-only open
 * (which reads the records instead).  The library never prints; the
 * programs say it.
 * @param[in] st the store.
 * @param[out] records summaries the build wrote.
 * @return 0, #QG_EINVAL (NULL st or records), #QG_ENOTSUP (a PostgreSQL
 * store, which keeps none).
 */
QG_EXTERN int qg_store_steps_built(const qg_store *st, uint64_t *records);

/**
 * Checks the store's hash chain in one snapshot: every entry's hash over
 * the one before it, each ticket's chain, every record against the
 * newest entry covering it (content changed, record removed, content
 * moved to another record), every record covered, and, given a seal,
 * that the entry it names still has its hash.  Stops at the first break,
 * in the chain's order.
 * @param[in] st the store.
 * @param[in] sealed a head from qg_seal_parse(), or NULL.
 * @param[out] out the first break; meaningful only when 0 is returned.
 * @return 0 (see out->brk), #QG_NOTFOUND (a store from before the chain,
 * opened read-only: it has none yet), #QG_EINVAL (NULL st or out),
 * #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_verify_chain(qg_store *st, const qg_seal *sealed,
                                    qg_chain_finding *out);

/**
 * Writes the head of the store's chain as one line, "qgate-seal/1
 * store=ID records=N time=ISO sha256=HEX", with " ed25519=BASE64" after
 * it when key_file is given: an Ed25519 private key in PEM, which signs
 * the line before that field.
 * @param[in] st the store.
 * @param[in] key_file the key's path, or NULL for an unsigned head.
 * @param[out] out the line, NUL-terminated, no newline.
 * @param[in] len out's size; #QG_SEAL_MAX is enough.
 * @param[out] err why a key was refused, NUL-terminated; may be NULL.
 * @param[in] errlen err's size.
 * @return 0, #QG_NOTFOUND (no chain: see qg_store_chain_migrated()),
 * #QG_EINVAL (NULL st or out, len too small), #QG_ECONFIG (the key cannot
 * be read or is not Ed25519: see err), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_store_seal(qg_store *st, const char *key_file, char *out,
                            size_t len, char *err, size_t errlen);

/**
 * Reads a line of qg_store_seal() and, for a signed one, checks its
 * signature with the public key in pubkey_file (PEM).
 * @param[in] text the line (trailing white space is ignored).
 * @param[in] pubkey_file the public key; required for a signed line,
 * refused for an unsigned one.
 * @param[out] out the head.
 * @param[out] err what was wrong, NUL-terminated; may be NULL.
 * @param[in] errlen err's size.
 * @return 0, #QG_EINVAL (NULL text or out, a line not of that form, a
 * signature that does not verify, a key given for an unsigned line or
 * missing for a signed one: see err), #QG_ECONFIG (the key cannot be
 * read), #QG_ENOMEM.
 */
QG_EXTERN int qg_seal_parse(const char *text, const char *pubkey_file,
                            qg_seal *out, char *err, size_t errlen);

/**
 * The hashes of a ticket's steps: for seq 1..n, the hash of the newest
 * chain entry covering step seq (its append, or its last rewrite), in
 * hashes[seq - 1]; zero bytes for a step no entry covers.
 * @param[in] st the store.
 * @param[in] ticket the ticket.
 * @param[in] n the entries of hashes.
 * @param[out] hashes n hashes.
 * @return 0, #QG_NOTFOUND (a store without a chain), #QG_EINVAL (NULL st
 * or hashes), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_chain_step_hashes(qg_store *st, uint64_t ticket, uint32_t n,
                                   unsigned char (*hashes)[QG_CHAIN_HASH_LEN]);
/**
 * qg_chain_step_hashes() for the ticket qg_history_ticket() gives, read in
 * the cursor's snapshot: the hashes agree with the records the cursor
 * returns, whatever was written since it was opened, and an export that
 * asks once a ticket opens no transaction of its own.
 * @param[in] h the cursor.
 * @param[in] n the entries of hashes: the ticket's records, as
 * qg_history_ticket() counts them.
 * @param[out] out n hashes, as qg_chain_step_hashes() gives them.
 * @return 0, #QG_NOTFOUND (a store without a chain), #QG_EINVAL (NULL h
 * or out, or a cursor over every ticket that has returned no record
 * yet), #QG_ENOMEM, #QG_ESTORE.
 */
QG_EXTERN int qg_history_step_hashes(qg_history *h, uint32_t n,
                                     unsigned char (*out)[QG_CHAIN_HASH_LEN]);

/**
 * How many bytes of a #QG_UNAUTHENTICATED or #QG_MALFORMED delivery the
 * rejection log keeps: a longer body is stored as this prefix, with its
 * length and SHA-256 (#qg_rejection.truncated).  Such a delivery proves
 * nobody sent it, and keeping it whole would let anyone fill the disk.
 * Other refusals are kept whole.
 */
#define QG_REJECTION_PREFIX 3072

/**
 * One refused delivery from the rejection log, read by
 * qg_rejections_next().  A caller-owned value, except that detail and
 * body point into the store.
 */
typedef struct qg_rejection {
    uint64_t id; /**< 1, 2, ... in order of arrival */
    /** When qg_engine_apply() was called with it, Unix microseconds. */
    int64_t received_us;
    /** #QG_REJECTED, #QG_UNAUTHENTICATED or #QG_MALFORMED. */
    qg_verdict verdict;
    qg_reason reason; /**< why */
    /** The ticket's number; 0 when no ticket could be named (always for
     * unauthenticated deliveries). */
    uint64_t ticket;
    int64_t live_queue_id, /**< Chup's live-queue id, 0 if unknown */
        appointment_id;    /**< Chup's appointment id, 0 if unknown */
    qg_event event;        /**< canonical event, #QG_EV_NONE if not reached */
    qg_state from;         /**< the ticket's state when it arrived */
    /** The verdict's qg_result.detail, NUL-terminated; valid as long as
     * body. */
    const char *detail;
    /** The raw delivery, not NUL-terminated.  Points into the store's
     * read-only map: valid until the next qg_rejections_next() or
     * qg_rejections_close() of its cursor.  NULL when the body was purged
     * (qg_store_purge()): it cannot be replayed, and digest holds the
     * SHA-256 of the delivery as received. */
    const char *body;
    size_t body_len; /**< the length of body in bytes; may be 0 */
    /** The length of the delivery as received, in bytes: body_len, or
     * more when only a prefix was kept. */
    size_t received_len;
    /** 1 when body is only the first #QG_REJECTION_PREFIX bytes of the
     * delivery (received_len is longer): it cannot be replayed. */
    int truncated;
    /** SHA-256 of the whole delivery as received, when truncated or
     * purged; all zero otherwise (hash body, which is then whole). */
    unsigned char digest[32];
    /** 1 when the refusal was resolved (qg_rejections_resolve()): the
     * delivery, decided again, was accepted or found to be a duplicate
     * of an accepted step.  0 for an open entry. */
    int resolved;
    /** When it was marked resolved, Unix microseconds; 0 if open. */
    int64_t resolved_us;
    /** The ticket of the step it became, or 0 (open, or resolved without
     * a step: now ignored). */
    uint64_t resolved_ticket;
    /** That step's seq in the ticket's history, or 0 as above. */
    uint32_t resolved_seq;
    /** The source the engine that refused it judged for
     * (qg_engine_set_source()), NUL-terminated; #QG_SOURCE_DEFAULT for
     * every entry of a store written before sources existed. */
    char source[QG_SOURCE_NAME_MAX + 1];
} qg_rejection;

/**
 * A cursor over the rejection log.  Opaque; from qg_rejections_open(),
 * freed by qg_rejections_close().  Used by one thread at a time.
 */
typedef struct qg_rejections qg_rejections;

/**
 * Opens a cursor over the rejection log from id `first`, in a read
 * transaction held until qg_rejections_close().
 * @param[in] st the store.
 * @param[in] first the first id to read; 0 or 1 start at the beginning.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_ENOMEM, #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_rejections_open(qg_store *st, uint64_t first,
                                 qg_rejections **out);
/**
 * Opens a cursor over the entries of the rejection log that name one
 * ticket, in id order, in a read transaction held until
 * qg_rejections_close(); read with qg_rejections_next().  The store keeps
 * an index of the log by ticket, so this reads the ticket's entries only
 * (a store written by a qgate before 0.6 and opened read-only has no
 * index yet: then the whole log is read).
 * @param[in] st the store.
 * @param[in] ticket the ticket's id.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_EINVAL (NULL st or out, ticket 0), #QG_ENOMEM,
 * #QG_EBUSY, #QG_ESTORE, #QG_ENOTSUP.
 */
QG_EXTERN int qg_rejections_open_ticket(qg_store *st, uint64_t ticket,
                                        qg_rejections **out);
/**
 * Reads the next refused delivery, in id order.
 * @param[in] r the cursor.
 * @param[out] out the delivery; written only when 0 is returned.  Its
 * detail and body stay valid until the next qg_rejections_next() or
 * qg_rejections_close() of r.
 * @return 0, #QG_NOTFOUND at the end, #QG_EINVAL (NULL r or out),
 * #QG_ESTORE.
 */
QG_EXTERN int qg_rejections_next(qg_rejections *r, qg_rejection *out);
/**
 * Ends the cursor and its read transaction.
 * @param[in] r the cursor, or NULL (nothing is done).
 */
QG_EXTERN void qg_rejections_close(qg_rejections *r);

/**
 * Marks a refused delivery resolved: decided again (say after a mapping
 * fix, as `qgate rejected --replay` does), it became step seq of ticket,
 * or a duplicate of it; ticket and seq 0 say it became no step (it is now
 * ignored).  The entry stays in the log, with its reason and body, and
 * qg_rejections_next() reports it with qg_rejection.resolved set.
 * Marking a resolved entry again replaces its ticket, seq and time.  The
 * mark is its own write transaction, apart from the one that accepted
 * the step: a caller that stops between the two leaves the entry open,
 * and deciding it again then finds the duplicate and can mark it.
 * Entries written by versions before this function read as open; entries
 * it marks read, in those versions, as the open entries they were.
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] id the entry's id (qg_rejection.id).
 * @param[in] ticket the ticket's number, or 0.
 * @param[in] seq the step's seq, or 0.
 * @return 0, #QG_NOTFOUND (no such entry, or it was dropped),
 * #QG_EINVAL (NULL st, id 0), #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL,
 * #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_rejections_resolve(qg_store *st, uint64_t id, uint64_t ticket,
                                    uint32_t seq);

/**
 * How many entries for #QG_UNAUTHENTICATED and #QG_MALFORMED deliveries
 * were dropped from the rejection log, oldest first, to keep those
 * entries under qg_store_options.unsigned_log_max, in the store's life.
 * Reads in a read transaction of its own.
 * @param[in] st the store.
 * @param[out] dropped the count; written only when 0 is returned.
 * @return 0, #QG_EINVAL (NULL st or dropped), #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_rejections_dropped(qg_store *st, uint64_t *dropped);

/* ------------------------------------------------------------------ */
/* The outbox: accepted steps waiting to be forwarded                  */

/**
 * One step waiting to be forwarded, in the outbox or the dead list; a
 * caller-owned value.  The step itself is history record (ticket, seq).
 *
 * With #QG_OUTBOX, each accepted step is queued in the same transaction
 * that records it, so a step is never recorded without being queued.  A
 * forwarder takes entries in id order (which is commit order), sends a
 * ticket's entry only after the ticket's earlier ones were delivered, and
 * ends each attempt with qg_outbox_ack(), qg_outbox_defer() or
 * qg_outbox_bury().  Entries that give up move to the dead list under the
 * same id.  The library sends nothing itself: the gate's forwarder, or
 * the caller's, does.
 */
typedef struct qg_outbox_entry {
    uint64_t id;        /**< 1, 2, ... in commit order; never reused */
    uint64_t ticket;    /**< the ticket's number */
    uint32_t seq;       /**< the history record to send */
    uint32_t attempts;  /**< failed attempts, counted by qg_outbox_defer() */
    int64_t created_us; /**< the step's qg_record.received_us */
    int64_t next_attempt_us; /**< not before this time */
    /** The time of the last qg_outbox_defer(), 0 if none: when
     * last_error happened. */
    int64_t last_attempt_us;
    /** The last attempt's error as given to qg_outbox_defer() (an HTTP
     * status, a transport error), NUL-terminated; "" if none.  Kept when
     * the entry is given up.  In a dead entry of a store written by 0.1,
     * the reason it was given up. */
    char last_error[128];
    /** When qg_outbox_bury() gave the entry up; 0 while it waits. */
    int64_t gave_up_us;
    /** Why it was given up, NUL-terminated; "" while it waits. */
    char gave_up[128];
} qg_outbox_entry;

/**
 * A cursor over the outbox or the dead list.  Opaque; from
 * qg_outbox_open(), freed by qg_outbox_close().  Used by one thread at a
 * time.
 */
typedef struct qg_outbox qg_outbox;

/**
 * Opens a cursor over the outbox (dead = 0) or the dead list (dead != 0),
 * in id order, in a read transaction held until qg_outbox_close().
 * @param[in] st the store.
 * @param[in] dead 0 for the outbox, nonzero for the dead list.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_ENOMEM, #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_open(qg_store *st, int dead, qg_outbox **out);
/**
 * Reads the next entry.
 * @param[in] ob the cursor.
 * @param[out] out the entry; written only when 0 is returned.
 * @return 0, #QG_NOTFOUND at the end, #QG_EINVAL (NULL ob or out),
 * #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_next(qg_outbox *ob, qg_outbox_entry *out);
/**
 * Ends the cursor and its read transaction.
 * @param[in] ob the cursor, or NULL (nothing is done).
 */
QG_EXTERN void qg_outbox_close(qg_outbox *ob);

/**
 * Counts the outbox, in one snapshot.
 * @param[in] st the store.
 * @param[out] depth entries waiting in the outbox; may be NULL.
 * @param[out] oldest_us the created_us of the outbox's first entry in id
 * order, 0 when it is empty; may be NULL.
 * @param[out] dead entries in the dead list; may be NULL.
 * The outputs are meaningful only when 0 is returned.
 * @return 0, #QG_EINVAL (NULL store), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_stats(qg_store *st, uint64_t *depth, int64_t *oldest_us,
                              uint64_t *dead);

/**
 * The entry was delivered: removes it from the outbox.
 * @param[in] st the store.
 * @param[in] id the entry's id.
 * @return 0, #QG_NOTFOUND (not in the outbox), #QG_EINVAL (NULL store, id
 * 0), #QG_ERDONLY, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_ack(qg_store *st, uint64_t id);
/**
 * The attempt failed: counts it, stamps last_attempt_us with the current
 * time, records the error and holds the entry until next_attempt_us.
 * @param[in] st the store.
 * @param[in] id the entry's id.
 * @param[in] next_attempt_us the earliest time to try again, Unix
 * microseconds.
 * @param[in] error what went wrong; copied, truncated to 127 bytes; NULL
 * for "".
 * @return 0, #QG_NOTFOUND (not in the outbox), #QG_EINVAL (NULL store, id
 * 0), #QG_ERDONLY, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_defer(qg_store *st, uint64_t id,
                              int64_t next_attempt_us, const char *error);
/**
 * Gives up on an entry: moves it, and every later entry of its ticket
 * (which may not be sent before it), to the dead list, in one
 * transaction, stamping gave_up_us with the current time.  Its gave_up
 * is error; the later entries' is "held behind outbox entry ID of the
 * same ticket".  Each keeps its last_error.
 * @param[in] st the store.
 * @param[in] id the entry's id.
 * @param[in] error why it is given up; copied, truncated to 127 bytes;
 * NULL for "".
 * @return 0, #QG_NOTFOUND (not in the outbox), #QG_EINVAL (NULL store, id
 * 0), #QG_ENOMEM, #QG_ERDONLY, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_bury(qg_store *st, uint64_t id, const char *error);
/**
 * Moves a dead entry back to the outbox under its id, due now, with its
 * attempts, errors and times of the last attempt and of giving up reset,
 * together with every other dead entry of its ticket (so that none can overtake
 * another); id 0 moves them all.  Their created_us becomes now, so their age
 * counts afresh.  One transaction.
 * @param[in] st the store.
 * @param[in] id the dead entry's id, or 0 for all.
 * @param[out] moved how many were moved (0 on failure); may be NULL.
 * @return 0, #QG_NOTFOUND (no such dead entry), #QG_EINVAL (NULL store),
 * #QG_ERDONLY, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_requeue(qg_store *st, uint64_t id, uint64_t *moved);

/**
 * Queues accepted steps again, from the ticket histories, to be forwarded
 * once more: for an HIS restored from a backup that lost them.  The steps
 * of one ticket (ticket != 0) or of every ticket, those received
 * (qg_record.received_us) in [since_us, until_us), are queued in ticket
 * order and each ticket's in event time, each under a new outbox id but
 * naming the same step (ticket, seq), so a forwarder sends it under the
 * same delivery id.  A step that is still in the outbox or the dead list
 * is not queued twice; a ticket's steps still in the outbox move behind
 * the ones queued for it (with their attempts and last error), so that
 * they are not sent before them.  One write transaction.  The store must feed
 * an HIS (#QG_OUTBOX).
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] ticket the ticket's number, or 0 for every ticket.
 * @param[in] since_us the earliest received_us, Unix microseconds
 * (INT64_MIN: no bound).
 * @param[in] until_us the end, excluded (INT64_MAX: no bound).
 * @param[out] queued how many steps were queued (0 on failure); may be
 * NULL.
 * @param[out] waiting how many selected steps were skipped because they
 * were still in the outbox or the dead list (0 on failure); may be NULL.
 * @return 0, #QG_NOTFOUND (no such ticket), #QG_EINVAL (NULL st, since_us
 * not before until_us, a store that feeds no HIS), #QG_ERDONLY,
 * #QG_ENOMEM, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.  On failure nothing was
 * queued.
 */
QG_EXTERN int qg_outbox_resend(qg_store *st, uint64_t ticket, int64_t since_us,
                               int64_t until_us, uint64_t *queued,
                               uint64_t *waiting);

/**
 * Claims a ticket's outbox entries for one forwarder, until now_us +
 * lease_us, so that with several gates on one database only one sends a
 * ticket's steps at a time, in order.  The holder renews its claim with
 * each call; another forwarder gets it once the lease has run out (the
 * holder died or hangs), so a step may then be sent twice, never out of
 * order.  An LMDB store has one writing process, whose forwarder always
 * holds every claim.
 * @param[in] st the store.
 * @param[in] ticket the ticket.
 * @param[in] owner who claims: the same string for every call of one
 * forwarder, unique among the gates (qgate uses host, pid and a random
 * number); at most 63 bytes.
 * @param[in] now_us the time of the claim, Unix microseconds.
 * @param[in] lease_us how long it lasts unless renewed; > 0.
 * @return 0 (held by owner now), #QG_EBUSY (another forwarder holds it),
 * #QG_EINVAL (NULL st or owner, ticket 0, lease_us <= 0, owner too long),
 * #QG_ERDONLY, #QG_EUNAVAIL, #QG_ESTORE.
 */
QG_EXTERN int qg_outbox_claim(qg_store *st, uint64_t ticket, const char *owner,
                              int64_t now_us, int64_t lease_us);

/* ------------------------------------------------------------------ */
/* Held deliveries: steps that came before the step they need           */

/**
 * A held delivery (#QG_HELD), read by qg_held_next(); a caller-owned
 * value, except that body points into the store.
 */
typedef struct qg_held {
    uint64_t id; /**< 1, 2, ... in order of holding; never reused */
    /** When qg_engine_apply() was called with it, Unix microseconds: the
     * reorder window counts from here. */
    int64_t received_us;
    /** The ticket's number; 0 while the ticket has no accepted step. */
    uint64_t ticket;
    int64_t live_queue_id, /**< Chup's live-queue id, 0 if none */
        appointment_id;    /**< Chup's appointment id, 0 if none */
    qg_event event;        /**< the canonical event, as judged on arrival */
    qg_state from;         /**< the ticket's state on arrival */
    int64_t event_ms;      /**< Chup's payload.timestamp, Unix ms */
    int32_t utc_offset_s;  /**< the offset it was written with */
    char chup_event[48];   /**< Chup's event name, NUL-terminated */
    /** The raw delivery, not NUL-terminated; points into the store's map,
     * valid until the next qg_held_next() or qg_held_close(). */
    const char *body;
    size_t body_len; /**< the length of body in bytes */
    /** The source it came from, as #qg_rejection.source. */
    char source[QG_SOURCE_NAME_MAX + 1];
} qg_held;

/**
 * A cursor over held deliveries.  Opaque; from qg_held_open(), freed by
 * qg_held_close().  Used by one thread at a time.
 */
typedef struct qg_held_list qg_held_list;

/**
 * Opens a cursor over the held deliveries, by Chup id and then event
 * time, in a read transaction held until qg_held_close().
 * @param[in] st the store.
 * @param[out] out the cursor; NULL on failure.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_ENOMEM, #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_held_open(qg_store *st, qg_held_list **out);
/**
 * Reads the next held delivery.
 * @param[in] hl the cursor.
 * @param[out] out the delivery; written only when 0 is returned.
 * @return 0, #QG_NOTFOUND at the end, #QG_EINVAL (NULL hl or out),
 * #QG_ESTORE.
 */
QG_EXTERN int qg_held_next(qg_held_list *hl, qg_held *out);
/**
 * Ends the cursor and its read transaction.
 * @param[in] hl the cursor, or NULL (nothing is done).
 */
QG_EXTERN void qg_held_close(qg_held_list *hl);

/**
 * Counts the held deliveries, in one snapshot.
 * @param[in] st the store.
 * @param[out] count how many are held; may be NULL.
 * @param[out] oldest_us the smallest received_us among them, 0 when none
 * is held; may be NULL.
 * @return 0, #QG_EINVAL (NULL st), #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_held_stats(qg_store *st, uint64_t *count, int64_t *oldest_us);

/**
 * The tickets by state and the refusals by reason, as a pass over every
 * ticket (qg_tickets_open()) and every entry of the rejection log
 * (qg_rejections_open()) would count them, without the pass.
 */
typedef struct qg_counts {
    uint64_t tickets; /**< tickets with at least one record: the states' sum */
    uint64_t states[QG_STATE_COUNT]; /**< of those, the tickets at each state */
    uint64_t refused; /**< entries of the rejection log: the reasons' sum */
    uint64_t reasons[QG_REASON_COUNT]; /**< of those, the entries of each */
} qg_counts;

/**
 * Counts the tickets by state and the rejection log by reason, in one
 * snapshot.  A ticket is counted once it has a record, at its state; an
 * entry of the log (resolved or not) at its reason; a state or reason
 * past this version's tables is not counted.  The LMDB store keeps these
 * counts, rewritten in the transaction that changes them, so the call
 * reads one value; a store an older qgate wrote (before the counts, or
 * since by an older binary on the same folder) gets them at its next
 * writable open and, until then, is counted by a pass over the tickets
 * and the log.  The
 * PostgreSQL store counts its tables.
 * @param[in] st the store.
 * @param[out] out the counts; written only when 0 is returned.
 * @return 0, #QG_EINVAL (NULL st or out), #QG_ENOMEM, #QG_EBUSY,
 * #QG_ESTORE.
 */
QG_EXTERN int qg_store_counts(qg_store *st, qg_counts *out);

/**
 * Gives up on the held deliveries received before a time: each goes to
 * the rejection log with the reason it would have had on arrival without
 * a reorder window, judged against its ticket as it is now
 * (#QG_R_ILLEGAL_TRANSITION, #QG_R_STALE or #QG_R_TICKET_CLOSED), and how
 * long it was held.  One write transaction.  The gate calls it on its own
 * clock with now minus the window; `qgate held --expire` with INT64_MAX.
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] received_before_us expire those with received_us below it.
 * @param[out] by_reason QG_REASON_COUNT counters, each incremented by the
 * deliveries refused for that reason; may be NULL.
 * @param[out] expired how many were expired (0 on failure); may be NULL.
 * @return 0, #QG_EINVAL (NULL st), #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL,
 * #QG_EBUSY, #QG_ESTORE.  On failure nothing was expired.
 */
QG_EXTERN int qg_held_expire(qg_store *st, int64_t received_before_us,
                             uint64_t *by_reason, uint64_t *expired);

/* ------------------------------------------------------------------ */
/* The engine                                                          */

/**
 * Decides deliveries: the Chup mapping, the HMAC secret, and whether
 * signatures are required.  Opaque; from qg_engine_new(), freed by
 * qg_engine_free().  Holds no store: one engine may serve many stores, and
 * once configured, many threads.
 */
typedef struct qg_engine qg_engine;

/**
 * Creates an engine with the default Chup mapping, requiring signatures
 * but with no secret yet (every delivery that parses is unauthenticated,
 * #QG_R_BAD_SIGNATURE, until a secret is set or verification is skipped).
 * @param[out] out the engine, to be freed with qg_engine_free(); NULL on
 * failure.
 * @return 0, #QG_EINVAL (NULL out), #QG_ENOMEM.
 */
QG_EXTERN int qg_engine_new(qg_engine **out);
/**
 * Frees an engine and wipes its secret.  No other call may be using it.
 * @param[in] eng the engine, or NULL (nothing is done).
 */
QG_EXTERN void qg_engine_free(qg_engine *eng);

/**
 * Names the source the engine judges deliveries for: one Chup account (a
 * clinic) of several that feed one store.  Chup's ids are an account's
 * own, so each source has its own tickets: a delivery is matched only
 * against tickets, ids and held deliveries of its source, and what it
 * adds to the store (ticket, ids, refusal, held delivery) is marked with
 * it.  The store numbers a source the first time it writes for it.  Give
 * each source its own engine, with its own secrets.
 * @param[in] eng the engine.
 * @param[in] name the source's name (qg_source_name_check()); NULL or
 * #QG_SOURCE_DEFAULT is the default source, the engine's until set.
 * @return 0, #QG_EINVAL (NULL eng, a bad name).  On failure the engine's
 * source is kept.  A write for a source beyond the #QG_SOURCES_MAX a
 * store tells apart fails with #QG_ETOOBIG.
 */
QG_EXTERN int qg_engine_set_source(qg_engine *eng, const char *name);
/**
 * The source the engine judges for.
 * @param[in] eng the engine, or NULL (#QG_SOURCE_DEFAULT).
 * @return its name; valid until the engine's source is set again or it is
 * freed.  Cannot fail.
 */
QG_EXTERN const char *qg_engine_source(const qg_engine *eng);

/** The most secrets an engine holds at once (qg_engine_set_secrets()). */
#define QG_SECRETS_MAX 8

/**
 * Sets the HMAC-SHA256 secret, replacing (and wiping) any earlier ones:
 * qg_engine_set_secrets() with one secret.
 * @param[in] eng the engine.
 * @param[in] key the secret's bytes; copied.
 * @param[in] len its length in bytes.
 * @return 0, #QG_EINVAL (NULL eng or key, len 0), #QG_ENOMEM.  On failure
 * the earlier secrets are kept.
 */
QG_EXTERN int qg_engine_set_secret(qg_engine *eng, const void *key, size_t len);
/**
 * Sets the HMAC-SHA256 secrets, replacing (and wiping) any earlier ones.
 * A delivery signed with any of them passes; qg_prepared_secret() tells
 * which.  Several secrets are for rotating the one Chup signs with
 * without refusing a delivery: the old and the new one, for as long as
 * the switch takes.
 * @param[in] eng the engine.
 * @param[in] keys n secrets' bytes; copied.
 * @param[in] lens their lengths in bytes.
 * @param[in] n how many, 1 to #QG_SECRETS_MAX.  Index i of a match is
 * keys[i].
 * @return 0, #QG_EINVAL (NULL eng, keys or lens, a NULL key or a length of
 * 0, n 0 or over #QG_SECRETS_MAX), #QG_ENOMEM.  On failure the earlier
 * secrets are kept.
 */
QG_EXTERN int qg_engine_set_secrets(qg_engine *eng, const void *const *keys,
                                    const size_t *lens, size_t n);
/**
 * How many secrets the engine checks signatures with.
 * @param[in] eng the engine, or NULL (0).
 * @return 0 to #QG_SECRETS_MAX.  Cannot fail.
 */
QG_EXTERN size_t qg_engine_secret_count(const qg_engine *eng);
/**
 * Reads the secrets from a file, one a line, in order (index 0 first).
 * Each line is a secret's bytes, less its line end (LF, CR LF or CR);
 * blank lines are skipped, so a secret cannot hold a line end.  A file of
 * one line is one secret, as before several were allowed.  As
 * qg_engine_set_secrets() otherwise.
 * @param[in] eng the engine.
 * @param[in] path the file.
 * @param[out] err where to write, whenever the call fails, a message
 * naming the file, and the line when one is at fault (at most errlen
 * bytes, NUL-terminated).  May be NULL when errlen is 0.
 * @param[in] errlen the size of err.
 * @return 0, #QG_EIO (cannot open or read), #QG_ETOOBIG (a secret longer
 * than 4096 bytes, line end not counted, or more than #QG_SECRETS_MAX
 * secrets), #QG_EINVAL (NULL eng or path, no secret in the file),
 * #QG_ENOMEM.  On failure the earlier secrets are kept.
 */
QG_EXTERN int qg_engine_load_secret(qg_engine *eng, const char *path, char *err,
                                    size_t errlen);
/**
 * Turns signature checks off or on.  Off is for replaying old captures
 * whose secret is lost: deliveries are then never unauthenticated, even
 * with a wrong signature.
 * @param[in] eng the engine; NULL does nothing.
 * @param[in] on 0 skips signature checks, nonzero checks them (the
 * default).
 */
QG_EXTERN void qg_engine_require_signature(qg_engine *eng, int on);

/**
 * Sets the reorder window: how long a delivery that is not legal yet may
 * wait for an earlier step.  With a window, each ticket's history is kept
 * in event time: a step older than the ticket's newest one is placed at
 * its timestamp if the re-run path stays legal (accepted, late), and a
 * step that an earlier one could make legal is held (#QG_HELD) and tried
 * again whenever its ticket changes; qg_held_expire() ends the wait.
 * With 0, the default, every delivery is judged on arrival against the
 * ticket's newest step: nothing is held or placed late.
 * @param[in] eng the engine.
 * @param[in] seconds the window, 0 to 31,536,000 (a year).
 * @return 0, #QG_EINVAL (NULL eng, seconds out of range).
 */
QG_EXTERN int qg_engine_set_reorder_window(qg_engine *eng, int64_t seconds);

/**
 * How far ahead of the engine's clock, in seconds, a step may be dated
 * unless qg_engine_set_max_skew() says otherwise: 5 minutes.  A real step
 * is dated when it happened at Chup and arrives after that, so only a
 * clock error puts it ahead; NTP keeps servers within a second, and 5
 * minutes still lets a clock that has drifted for weeks through.  A step
 * dated further ahead would make every real step of its ticket up to that
 * date #QG_R_STALE; within the skew, at most 5 minutes of them.
 */
#define QG_MAX_SKEW_DEFAULT 300

/**
 * Sets how far ahead of the engine's clock (the wall clock when
 * qg_engine_apply() or qg_engine_prepare() is called) payload.timestamp
 * may be.  A step dated further ahead is #QG_MALFORMED, #QG_R_BAD_VALUE,
 * with the skew in the detail: like every refusal it goes to the
 * rejection log, never into the ticket's history.
 * @param[in] eng the engine.
 * @param[in] seconds the allowed skew, 0 to INT32_MAX; 0 turns the check
 * off.  The default is #QG_MAX_SKEW_DEFAULT.
 * @return 0, #QG_EINVAL (NULL eng, seconds out of range).  On failure the
 * earlier skew is kept.
 */
QG_EXTERN int qg_engine_set_max_skew(qg_engine *eng, int64_t seconds);

/**
 * Overrides parts of the default mapping from a JSON file (the format is
 * in docs/mapping.md).  On failure the engine's mapping is unchanged.
 * @param[in] eng the engine.
 * @param[in] path the file.
 * @param[out] err where to write, whenever the call fails, a message
 * naming the file, key and value at fault (at most errlen bytes,
 * NUL-terminated).  May be NULL when errlen is 0.
 * @param[in] errlen the size of err.
 * @return 0, #QG_EIO (the file cannot be read), #QG_ECONFIG (not valid
 * JSON, or not a valid mapping), #QG_EINVAL (NULL eng or path),
 * #QG_ENOMEM.
 */
QG_EXTERN int qg_engine_load_mapping(qg_engine *eng, const char *path,
                                     char *err, size_t errlen);

/** qg_engine_apply() flag: decide, but write nothing. */
#define QG_DRY_RUN 0x1u /* decide, but write nothing */

/**
 * Decides one raw webhook body and, unless #QG_DRY_RUN, records it in one
 * write transaction: an accepted step in the ticket's history (and with
 * #QG_OUTBOX in the outbox), a refused delivery in the rejection log.
 * Duplicates and ignored events write nothing.  A dry run reads in a read
 * transaction and works on a #QG_RDONLY store; its verdict is the one a
 * real run would give now, except that an accepted step gets no seq and,
 * for a new ticket, no ticket number.
 *
 * Safe to call from many threads with one engine and one store: writers
 * wait for each other (LMDB's writer lock, shared with other processes).
 * A write that must grow the map waits for every other transaction of
 * this process to end, open cursors included: do not hold a cursor in the
 * thread that writes.
 * @param[in] eng the engine.
 * @param[in] st the store.
 * @param[in] body the exact bytes received; need not be NUL-terminated;
 * may be NULL when len is 0.  Not kept after the call.
 * @param[in] len the length of body in bytes, at most UINT32_MAX / 2.
 * @param[in] flags 0 or #QG_DRY_RUN.
 * @param[out] res the verdict, filled whenever 0 is returned; unspecified
 * otherwise.
 * @return 0 (see res->verdict), #QG_EINVAL (NULL eng, st or res, an
 * unknown flag, NULL body with len > 0, len too large), #QG_ERDONLY (not
 * a dry run on a read-only store), #QG_ENOMEM, #QG_EFULL, #QG_EBUSY,
 * #QG_ESTORE.  On an error nothing was written.
 */
QG_EXTERN int qg_engine_apply(qg_engine *eng, qg_store *st, const char *body,
                              size_t len, unsigned flags, qg_result *res);

/** One raw webhook body, for qg_engine_apply_batch(). */
typedef struct qg_body {
    const char *body; /**< the exact bytes received; NULL when len is 0 */
    size_t len;       /**< the length of body in bytes */
} qg_body;

/**
 * Decides n bodies, in order, and records them in one write transaction:
 * one commit, and with QG_SYNC one flush to disk, for all of them (group
 * commit).  Each body is decided in a nested transaction of its own, so a
 * body whose recording fails leaves nothing of itself behind and the
 * others still commit.  A body that does not fit in the map is the
 * exception: the map grows only with no transaction open, so the whole
 * batch is undone, and tried again once the map has grown (#QG_EFULL past
 * map_max).  A later body sees the steps of earlier ones (the same
 * payload twice is accepted, then a duplicate).  Threads as for
 * qg_engine_apply().
 * @param[in] eng the engine.
 * @param[in] st the store; not #QG_RDONLY.
 * @param[in] bodies n bodies; not kept after the call.
 * @param[in] n how many; 0 does nothing and returns 0.
 * @param[out] res n results; when 0 is returned, res[i] is valid if
 * rcs[i] is 0.
 * @param[out] rcs n codes, meaningful when 0 is returned: for each body, 0
 * or what qg_engine_apply() would have returned (#QG_EINVAL for a body it
 * refuses as an argument, the error that undid that body alone).
 * @return 0 when the batch committed (see rcs), or the error that kept it
 * from committing: then nothing of the batch was written and res and rcs
 * are unspecified.  #QG_EINVAL (NULL eng or st; NULL bodies, res or rcs
 * with n > 0), #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_engine_apply_batch(qg_engine *eng, qg_store *st,
                                    const qg_body *bodies, size_t n,
                                    qg_result *res, int *rcs);

/**
 * Decides n bodies exactly as applying them would, and writes nothing: a
 * dry run of a whole batch.  First the held deliveries received before
 * expire_before_us are expired (as qg_held_expire() would), then the
 * bodies are decided in order as qg_engine_apply_batch() does, each
 * seeing the steps, refusals, holds and releases of the ones before it;
 * then the transaction is aborted.  So each verdict is the one that
 * qg_held_expire() and qg_engine_apply_batch() (or qg_engine_apply() of
 * each body in turn) would give now, held and late placement included,
 * with the ticket numbers and seqs they would get; only
 * qg_result.rejection is 0, since nothing is logged.  (qg_engine_apply()
 * with #QG_DRY_RUN decides one body against the store as it is, in a
 * read transaction, and cannot carry one body's step to the next.)
 *
 * It takes the store's write transaction for its whole run: other
 * writers, in this process and in others, wait until it ends.  The
 * bodies' work is undone in memory and in pages LMDB never commits, but
 * a large batch may make LMDB spill pages to the data file, which may
 * grow.  Threads as for qg_engine_apply_batch().
 * @param[in] eng the engine.
 * @param[in] st the store; not #QG_RDONLY (see qg_store_options.flags).
 * @param[in] expire_before_us expire held deliveries with received_us
 * below it first; INT64_MIN expires none.  A caller that mirrors the
 * gate passes now minus the reorder window.
 * @param[in] bodies n bodies; not kept after the call.
 * @param[in] n how many; 0 decides nothing (but still expires).
 * @param[out] res n results; res[i] is valid when rcs[i] is 0.
 * @param[out] rcs n codes, meaningful when 0 is returned: for each body,
 * 0 or what qg_engine_apply() would have returned for it.
 * @param[out] expired how many held deliveries the expiry refused (0 on
 * failure); may be NULL.
 * @return 0 when the batch was decided (see rcs), #QG_EINVAL (NULL eng
 * or st; NULL bodies, res or rcs with n > 0), #QG_ERDONLY, #QG_ENOMEM,
 * #QG_EFULL, #QG_EBUSY, #QG_ESTORE.  Whatever it returns, the store is as
 * it was.
 */
QG_EXTERN int qg_engine_check_batch(qg_engine *eng, qg_store *st,
                                    int64_t expire_before_us,
                                    const qg_body *bodies, size_t n,
                                    qg_result *res, int *rcs,
                                    uint64_t *expired);

/**
 * A delivery taken as far as it goes without the store: parsed,
 * authenticated, mapped (steps 1-5 of the engine).  Opaque.
 */
typedef struct qg_prepared qg_prepared;

/**
 * Parses, authenticates and maps one raw webhook body, with no store and
 * no lock: the part of qg_engine_apply() that costs CPU.  A program with
 * one writer and several receiving threads (the gate) prepares on the
 * receiving threads and leaves only the store's part to the writer,
 * qg_engine_apply_prepared().  The engine may be changed or freed
 * afterwards: the prepared delivery keeps what it needs of it.
 * @param[in] eng the engine.
 * @param[in] body the exact bytes received; not copied: they must stay
 * as they are until qg_prepared_free().
 * @param[in] len the body's length in bytes.
 * @param[out] out the prepared delivery, to be freed with
 * qg_prepared_free(); NULL on failure.
 * @return 0 (a body refused by steps 1-5 is prepared too: applying it
 * logs the refusal), #QG_EINVAL (NULL eng or out, NULL body with len >
 * 0), #QG_ENOMEM.
 */
QG_EXTERN int qg_engine_prepare(qg_engine *eng, const char *body, size_t len,
                                qg_prepared **out);

/**
 * Decides and records n prepared deliveries as qg_engine_apply_batch()
 * does with bodies: in order, in one write transaction, one commit.  A
 * prepared delivery may be applied again after a failed call (and gets a
 * fresh decision), but is meant to be applied once.
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] prepared n prepared deliveries, none NULL.
 * @param[in] n how many.
 * @param[out] res n results; res[i] is valid when rcs[i] is 0.
 * @param[out] rcs n codes, as qg_engine_apply() would return for each.
 * @return 0 when the batch committed (see rcs), or the error that kept it
 * from committing (nothing of the batch was written): #QG_EINVAL,
 * #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_engine_apply_prepared(qg_store *st,
                                       qg_prepared *const *prepared, size_t n,
                                       qg_result *res, int *rcs);

/**
 * Whether a prepared delivery is unsigned junk: it will be refused as
 * #QG_UNAUTHENTICATED, or as #QG_MALFORMED with no signature verified
 * (its body did not parse, or the engine checks no signatures).  Nobody
 * can be held to have sent it; the gate limits the rate of these per
 * source address.
 * @param[in] p the prepared delivery, or NULL.
 * @return 1 if so; 0 if not, and for NULL.
 */
QG_EXTERN int qg_prepared_unsigned(const qg_prepared *p);

/**
 * Which of the engine's secrets signed a prepared delivery, by index in
 * the order they were set (the line of the secret file, blank lines not
 * counted): what an operator watches during a rotation.  Never the
 * secret itself.
 * @param[in] p the prepared delivery, or NULL.
 * @return 0 to #QG_SECRETS_MAX - 1 when its signature matched; -1 when
 * it did not, was not checked (the body did not parse that far, or the
 * engine checks no signatures), and for NULL.
 */
QG_EXTERN int qg_prepared_secret(const qg_prepared *p);

/**
 * Frees a prepared delivery.
 * @param[in] p the prepared delivery; NULL does nothing.
 */
QG_EXTERN void qg_prepared_free(qg_prepared *p);

/** What qg_rejections_replay() did with an entry of the rejection log. */
typedef enum qg_replay {
    /** Decided again, it is still refused (or would be held): nothing was
     * written, and the entry stays open. */
    QG_REPLAY_REFUSED = 0,
    /** It now passes (accepted, ignored, or a duplicate of an accepted
     * step): recorded as a delivery would be, and the entry marked
     * resolved. */
    QG_REPLAY_PASSED = 1,
    /** The entry was resolved already: not decided again. */
    QG_REPLAY_RESOLVED = 2,
    /** Only a prefix of the delivery was kept: it cannot be decided. */
    QG_REPLAY_TRUNCATED = 3,
    /** Its body was purged (qg_store_purge()): it cannot be decided. */
    QG_REPLAY_PURGED = 4
} qg_replay;

/**
 * Decides a refused delivery again, as `qgate rejected --replay` and the
 * gate's POST /rejections/{id}/replay do (typically after a mapping fix).
 * A dry run first: only a delivery that now passes is applied for real,
 * so one still refused is not logged a second time.  A duplicate of a
 * held delivery does not pass (the held one may still be refused).  An
 * entry replayed twice is decided once: the second call finds it
 * resolved.  Two callers replaying one entry at the same time may both
 * decide it; the second's step is then a duplicate of the first's, so it
 * is recorded once.  Holds no cursor while it writes.
 * @param[in] eng an engine set to the entry's source (qg_engine_source()
 * equal to qg_rejection.source).
 * @param[in] st the store, not #QG_RDONLY.
 * @param[in] id the entry's id (qg_rejection.id).
 * @param[out] res the verdict of the replay; meaningful when 0 is
 * returned and *out is #QG_REPLAY_REFUSED or #QG_REPLAY_PASSED.
 * @param[out] out what was done.
 * @return 0 (see *out), #QG_NOTFOUND (no such entry, or it was dropped),
 * #QG_EINVAL (a NULL argument, id 0, an engine of another source),
 * #QG_ERDONLY, #QG_ENOMEM, #QG_EFULL, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_rejections_replay(qg_engine *eng, qg_store *st, uint64_t id,
                                   qg_result *res, qg_replay *out);

/* ----- FHIR R4 ------------------------------------------------------------ */

/** What qg_fhir_ticket() writes. */
typedef enum qg_fhir_form {
    /** The ticket's resources, one JSON object a line: the Encounter, then
     * the Appointment when the ticket has one (FHIR Bulk Data's NDJSON). */
    QG_FHIR_NDJSON = 0,
    /** The same resources as Bundle entries ({"fullUrl", "resource"}),
     * separated by commas, for the caller to put in a Bundle of its own. */
    QG_FHIR_ENTRIES = 1,
    /** A Bundle of type collection holding the ticket's resources. */
    QG_FHIR_BUNDLE = 2,
    /** A Bundle of type transaction: a conditional update (PUT by
     * identifier) of each resource, for a FHIR server to keep the ticket's
     * current status and history.  Its resources carry no id. */
    QG_FHIR_TRANSACTION = 3
} qg_fhir_form;

/** Options of qg_fhir_ticket(); zero-initialise for the defaults. */
typedef struct qg_fhir_options {
    /** The base of the identifier systems: an identifier's system is
     * the base, "/", and "ticket", "live-queue", "appointment", "client",
     * "service" or "staff".  The tickets of a source other than the
     * default one (qg_engine_set_source()) have "/" and the source's name
     * after the base, as each source numbers its ids on its own.  NULL or
     * "": the store's own, "urn:qgate:<store id>:<source>". */
    const char *system;
    /** Only the steps accepted up to this seq count (the resources as they
     * stood when it was accepted, as far as later late steps allow); 0:
     * every step. */
    uint32_t upto_seq;
} qg_fhir_options;

/** What qg_fhir_system_check() asks of a system base, for messages. */
#define QG_FHIR_SYSTEM_RULE                                                    \
    "expected an absolute URI (scheme:...) of at most 200 bytes, without "     \
    "spaces, control characters, |, ?, &, #, \" or \\"

/**
 * Checks a base of FHIR identifier systems (qg_fhir_options.system).  It
 * becomes part of every identifier's system and of the conditional-update
 * URLs of a transaction, so nothing a query string would take apart may
 * be in it.
 * @param[in] system the base, NUL-terminated.
 * @return 0, or #QG_EINVAL (NULL, or not as #QG_FHIR_SYSTEM_RULE says).
 */
QG_EXTERN int qg_fhir_system_check(const char *system);

/**
 * Writes a ticket as FHIR R4 resources: an Encounter (statuses,
 * statusHistory, period, serviceType, participants, the pharmacy and
 * billing steps as extensions) and, when the ticket came from an
 * appointment, an Appointment.  docs/fhir.md gives the mapping.  The text
 * is compact JSON (NDJSON lines end with a newline).  Reads the ticket in
 * one read transaction.
 * @param[in] st the store.
 * @param[in] ticket the ticket's number.
 * @param[in] form what to write (#qg_fhir_form).
 * @param[in] opts the options, or NULL for the defaults.
 * @param[out] out the text, NUL-terminated; malloc'd, to be freed with
 * free().  NULL unless 0 is returned.
 * @param[out] len its length; may be NULL.
 * @return 0, #QG_NOTFOUND (no such ticket, or none of its steps is up to
 * opts->upto_seq), #QG_EINVAL (NULL st or out, ticket 0, unknown form, a system
 * qg_fhir_system_check() refuses),
 * #QG_ENOMEM, #QG_EBUSY, #QG_ESTORE.
 */
QG_EXTERN int qg_fhir_ticket(qg_store *st, uint64_t ticket, qg_fhir_form form,
                             const qg_fhir_options *opts, char **out,
                             size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* QGATE_H */
