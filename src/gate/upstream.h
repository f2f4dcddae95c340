/*
 * upstream.h - what the HIS gets for one step (upstream.c): the request
 * body in the format it asked for, the headers that name the step, and
 * the Standard Webhooks signature over them.  The forwarder (forward.c)
 * decides when to send; this decides what.
 */
#ifndef QG_UPSTREAM_H
#define QG_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "qgate.h"

typedef enum upstream_format {
    UPSTREAM_QGATE, /* qgate's own JSON, Chup's delivery inside (default) */
    UPSTREAM_CHUP,  /* the delivery exactly as Chup sent it */
    UPSTREAM_FHIR   /* a FHIR R4 transaction Bundle (qg_fhir_ticket()) */
} upstream_format;

/* "qgate", "chup" or "fhir".  Returns 0, or -1 when s names neither.  Inline:
 * the option check (options.c) is also part of the qgate program, which
 * does not link the forwarder. */
static inline int
upstream_format_parse(const char *s, upstream_format *out)
{
    if (strcmp(s, "qgate") == 0)
        *out = UPSTREAM_QGATE;
    else if (strcmp(s, "chup") == 0)
        *out = UPSTREAM_CHUP;
    else if (strcmp(s, "fhir") == 0)
        *out = UPSTREAM_FHIR;
    else
        return -1;
    return 0;
}

typedef struct upstream_builder upstream_builder;

/* A delivery id's size: store id, two numbers, two dashes, NUL. */
#define UPSTREAM_ID_SIZE (QG_STORE_ID_LEN + 48)

/*
 * The request builder of the store st, in format fmt, signing with the
 * Standard Webhooks secrets of secret_file (NULL: signs nothing).
 * Returns 0, or -1 with err naming the file, line and fault (or "out of
 * memory", or why the store has no id).
 */
int upstream_new(qg_store *st, upstream_format fmt, const char *secret_file,
                 upstream_builder **out, char *err, size_t errlen);
/* The base of the FHIR identifier systems (qg_fhir_options.system) for
 * the fhir format; NULL: the store's default.  Kept, not copied: it must
 * outlive u.  Call before the first upstream_build(). */
void upstream_set_fhir_system(upstream_builder *u, const char *system);
/* Reads the secret file again; on failure the secrets in use stay, and
 * err says why.  Returns 0 (also with no secret file), or -1. */
int upstream_reload(upstream_builder *u, char *err, size_t errlen);
/* The secret file, or NULL. */
const char *upstream_secret_file(const upstream_builder *u);
/* Wipes the secrets.  NULL ok. */
void upstream_free(upstream_builder *u);

typedef struct upstream_request {
    char *body; /* malloc'd */
    size_t len;
    struct curl_slist *headers;
    char delivery_id[UPSTREAM_ID_SIZE];
} upstream_request;

/*
 * Builds the request for outbox entry e, attempt e->attempts + 1, signed
 * at now_us.  Thread-safe.  Returns 0; QG_NOTFOUND when the step can
 * never be sent (gone from the history, or its raw body purged and the
 * format is chup), with why naming the ticket and seq; or another QG_E*
 * code (worth trying again), with why.
 */
int upstream_build(upstream_builder *u, const qg_outbox_entry *e,
                   int64_t now_us, upstream_request *out, char *why,
                   size_t whylen);
void upstream_request_free(upstream_request *r);

/* The delivery id of step seq of ticket in store st, as the HIS gets it:
 * "<store id>-<ticket>-<seq>" (for the log lines and alerts that name a
 * step). */
void upstream_delivery_id(const qg_store *st, uint64_t ticket, uint32_t seq,
                          char out[UPSTREAM_ID_SIZE]);

#endif /* QG_UPSTREAM_H */
