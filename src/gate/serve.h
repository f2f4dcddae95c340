/*
 * serve.h - what the files of `qgate serve` share: the gate's state.
 *
 * serve.c starts, reloads and stops the gate; options.c reads its options
 * (flags, config file, defaults) from one table; answers.c answers each
 * HTTP request.  The parts they drive (committer, forwarder, connection
 * table, rate limit, metrics, log) are in gate.h.
 */
#ifndef QG_SERVE_H
#define QG_SERVE_H

#include "cli.h"
#include "gate.h"

/* One Chup account the gate takes deliveries from, at its own path and
 * signed with its own secrets (docs/gate.md, "Several clinics").  Source
 * 0 is the default source: --path and --secret-file, as before sources. */
typedef struct gate_source {
    const char *name;        /* QG_SOURCE_DEFAULT for source 0 */
    const char *path;        /* its webhook's path; NULL: not served */
    const char *secret_file; /* its secrets; NULL: --secret-file */
    /* Its own HIS, or NULL for the gate's --upstream and its secret file
     * and format. */
    const char *upstream;
    const char *upstream_secret_file;
    upstream_format format;
    qg_engine *eng;       /* under eng_lock: SIGHUP replaces it */
    upstream_builder *up; /* for its own upstream */
    /* Its strings from config "sources", the ones above among them:
     * made for it, freed at the end. */
    char *owned[6];
} gate_source;

typedef struct gate {
    /* options: flags, then the config file, then defaults */
    const char *listen;
    const char *path;
    long max_body;
    long threads;
    long timeout;
    long max_connections;
    const char *upstream;
    const char *upstream_secret_file;
    const char *upstream_format;
    upstream_format format; /* parsed once from upstream_format */
    const char *fhir_system;
    const char *token_file;
    const char *admin_token_file;
    long forwarders;
    long forward_timeout;
    long max_age;
    long ready_max_outbox;
    const char *log;
    int insecure;
    durability durability; /* parsed once from c->durability */
    int writemap;          /* QG_WRITEMAP */
    long max_unsigned_log;
    long unsigned_rate;
    long unsigned_burst;
    long request_timeout;
    long max_per_address;
    long ready_max_wait;
    int ready_dead_ok;
    const char *alert_url;
    const char *alert_secret_file;
    long alert_his_down;
    long alert_refusals;
    long alert_interval;
    long retention; /* days; 0: bodies are kept for ever */

    /* Sources: [0] the default, served when it has a secret (or
     * --insecure-no-signature); then those of config "sources". */
    gate_source sources[GATE_SOURCES];
    size_t nsources;
    int forwarding; /* some source has an upstream: the store's outbox */

    cli *c;
    char *token; /* token_len bytes, printable ASCII; NULL without one */
    size_t token_len;
    /* replay and retry (docs/console.md); NULL without one */
    char *admin_token;
    size_t admin_token_len;
    qg_store *st;
    pthread_rwlock_t eng_lock; /* over each source's eng */
    committer *com;
    forwarder *fwd;
    upstream_builder *up; /* the HIS's requests, with its secrets */
    ratelimit *rl;        /* unsigned deliveries, per source address */
    conntable *conns;     /* deadlines, and room when full */
    retention *ret;       /* the daily purge; NULL without --retention */
    struct MHD_Daemon *d;
    atomic_ulong next_request;
    atomic_long in_flight;   /* requests begun and not yet completed */
    atomic_long answering;   /* of those, deliveries handed to the committer */
    atomic_int write_failed; /* the last commit or write probe failed */
    atomic_int damaged;      /* the store was found damaged: stopping */
    atomic_int stopping;     /* SIGTERM: new requests get 503 */
    int read_only;           /* qgate console: no webhook, no admin action */
    /* --db as logs and alerts show it: a URI's password left out */
    char db_shown[1024];
} gate;

/* ----- options.c -------------------------------------------------------- */

/* Reads serve's flags, then the config file, then the defaults, into g
 * and c, and checks them together.  Returns 0; -1 after printing --help;
 * or EXIT_FAILED after saying what is wrong. */
int options_parse(gate *g, cli *c, int argc, char **argv);
/* Frees what options_parse() made for the sources.  Call it once, at the
 * end, whether options_parse() succeeded or not. */
void sources_free(gate *g);
/* "sync", "group" or "nosync". */
const char *durability_name(durability d);

/* ----- answers.c -------------------------------------------------------- */

/* libmicrohttpd's request handler (MHD_AccessHandlerCallback) and its
 * MHD_OPTION_NOTIFY_COMPLETED, both with the gate as cls. */
enum MHD_Result answers_handle(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *data,
                               size_t *size, void **con_cls);
void answers_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);

#endif /* QG_SERVE_H */
