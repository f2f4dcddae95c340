/*
 * serve.c - qgate serve: the validating HTTP gate in front of the HIS.
 * Here it starts, reloads on SIGHUP, and stops.
 *
 * libmicrohttpd, epoll and a thread pool, receive each delivery and
 * answer it (answers.c); the committer (committer.c) decides and records
 * it, sharing commits between deliveries that arrive together.  Accepted
 * steps go to the outbox in the same transaction, and the forwarder
 * (forward.c) passes them on to the HIS.  The options are in options.c.
 * `qgate console` (cmd_console(), at the end) is the same HTTP side over
 * a store opened read-only, with no webhook, committer or forwarder.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/resource.h>

#include "serve.h"

/* The longest bearer token accepted, in bytes (docs/gate.md): as long as
 * the longest secret. */
#define TOKEN_MAX 4096

/*
 * "127.0.0.1:8080", "[::1]:8080", "localhost:8080" or ":8080" (all IPv4
 * interfaces): the first address getaddrinfo() gives.  Returns 0, or -1
 * with why in err.
 */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
             char *err, size_t errlen)
{
    const char *colon = strrchr(s, ':');
    struct addrinfo hints, *res;
    char host[256], *end;
    long port;
    int rc;

    snprintf(err, errlen, "expected HOST:PORT");
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || colon[1] < '0' || colon[1] > '9' ||
        port > 65535)
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
    if (host[0] == '[') {
        if (strlen(host) < 3 || host[strlen(host) - 1] != ']')
            return -1;
        host[strlen(host) - 1] = '\0';
        memmove(host, host + 1, strlen(host));
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (host[0] == '\0')
        hints.ai_family = AF_INET; /* ":8080" has always meant 0.0.0.0 */
    if ((rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res))) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
                 gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this machine reaches
 * them. */
static int
is_loopback(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

    if (ss->ss_family == AF_INET)
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
           in6->sin6_addr.s6_addr[12] == 127;
}

/*
 * The listening socket, bound here rather than by libmicrohttpd: its own
 * failure message ("Failed to bind to port 0") would reach stderr before
 * ours, and says less.  Returns the socket, or -1 with errno set.
 */
static int
listen_on(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd, one = 1, saved;

    if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     0)) < 0)
        return -1;
    /* As libmicrohttpd does: a restart binds while the old connections
     * linger in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* "[::]:8080" means IPv6 only, as it did when libmicrohttpd bound it */
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* libmicrohttpd's own messages, into the JSON log rather than raw lines
 * on stderr. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512], esc[1100];
    size_t n;

    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_event("warn", "libmicrohttpd", ",\"detail\":\"%s\"",
              log_escape(text, esc, sizeof(esc)));
}

/* libmicrohttpd's panic (an internal inconsistency it cannot go on
 * from): said in the log, which is where an operator looks, before the
 * abort it would do anyway. */
static void
mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    char esc_file[300], esc_reason[600];

    (void)cls;
    log_event("fatal", "libmicrohttpd panic: aborting",
              ",\"file\":\"%s\",\"line\":%u,\"reason\":\"%s\"",
              log_escape(file ? file : "", esc_file, sizeof(esc_file)), line,
              log_escape(reason ? reason : "", esc_reason, sizeof(esc_reason)));
    abort();
}

/* A token file's bytes, less one trailing line end: all of them, or a
 * refusal to start.  Printable ASCII without spaces, as a header carries
 * it: a token no request could match would lock everyone out silently.
 * The read token and the admin token follow the same rules. */
static int
read_token(const char *path, char **token, size_t *token_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n, i;
    int err;

    if (f == NULL)
        return cli_fail("%s: %s", path, strerror(errno));
    if ((buf = malloc(TOKEN_MAX + 3)) == NULL) {
        fclose(f);
        return cli_fail("%s: out of memory", path);
    }
    n = fread(buf, 1, TOKEN_MAX + 3, f);
    err = ferror(f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (err || n == 0 || n > TOKEN_MAX) {
        free(buf);
        if (err)
            return cli_fail("%s: read error", path);
        if (n == 0)
            return cli_fail("%s: the token is empty", path);
        return cli_fail("%s: the token is longer than %d bytes", path,
                        TOKEN_MAX);
    }
    for (i = 0; i < n; i++) {
        if (buf[i] < 0x21 || buf[i] > 0x7e) {
            OPENSSL_cleanse(buf, n);
            free(buf);
            return cli_fail("%s: byte %zu of the token is not printable "
                            "ASCII (spaces and line ends included)",
                            path, i + 1);
        }
    }
    *token = buf;
    *token_len = n;
    return 0;
}

/* Both tokens.  The admin token must differ from the read token: the
 * one given to every reader would otherwise replay and retry too. */
static int
read_tokens(gate *g)
{
    int rc;

    if (g->token_file &&
        (rc = read_token(g->token_file, &g->token, &g->token_len)))
        return rc;
    if (g->admin_token_file &&
        (rc = read_token(g->admin_token_file, &g->admin_token,
                         &g->admin_token_len)))
        return rc;
    if (g->token && g->admin_token && g->token_len == g->admin_token_len &&
        CRYPTO_memcmp(g->token, g->admin_token, g->token_len) == 0)
        return cli_fail("%s: the admin token is the read token of %s; give "
                        "it a token of its own",
                        g->admin_token_file, g->token_file);
    return 0;
}

/* Wipes and frees both tokens. */
static void
free_tokens(gate *g)
{
    if (g->token) {
        OPENSSL_cleanse(g->token, g->token_len);
        free(g->token);
    }
    if (g->admin_token) {
        OPENSSL_cleanse(g->admin_token, g->admin_token_len);
        free(g->admin_token);
    }
}

/* Leaves the path as sent.  libmicrohttpd would decode it, turning "%2F"
 * into a '/' that splits the path and "%00" into an end of string; no
 * route of the gate needs an escape. */
static size_t
no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/*
 * Each connection is a descriptor: raises the soft limit on open files to
 * what --max-connections needs, as far as the hard limit allows, and
 * lowers --max-connections to fit when it cannot.  Running out of
 * descriptors would stop libmicrohttpd from accepting before the table is
 * full, and so before any connection is closed to make room.
 */
#define SPARE_FDS 64 /* the store, the log, the listener, epoll, curl */

static void
fit_fd_limit(gate *g)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)g->max_connections + SPARE_FDS;
    long fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                      ? need
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    fit = (long)(rl.rlim_cur > 2 * SPARE_FDS ? rl.rlim_cur - SPARE_FDS
                                             : rl.rlim_cur / 2);
    log_event("warn",
              "the limit on open files is too low for --max-connections; "
              "lowered to fit",
              ",\"max_connections\":%ld,\"open_files\":%ld", fit,
              (long)rl.rlim_cur);
    g->max_connections = fit;
}

/*
 * --db as the logs and alerts show it: a PostgreSQL URI may carry a
 * password (postgresql://user:secret@host/db, or ?password=secret), which
 * must not reach a log collector or an alert receiver.  Each is replaced
 * by "***"; anything else is shown as given.
 */
static void
db_shown(const char *db, char *out, size_t len)
{
    const char *p = strstr(db, "://"), *at, *end, *colon, *q;
    size_t n = 0;

#define PUT(s, k)                                                              \
    do {                                                                       \
        size_t k_ = (k);                                                       \
        if (n + k_ < len) {                                                    \
            memcpy(out + n, (s), k_);                                          \
            n += k_;                                                           \
        }                                                                      \
    } while (0)
    if (len == 0)
        return;
    if (p == NULL) {
        snprintf(out, len, "%s", db);
        return;
    }
    p += 3;
    end = p + strcspn(p, "/?");
    PUT(db, (size_t)(p - db));
    /* user:password@ in the authority (a user's name has no '@') */
    if ((at = memchr(p, '@', (size_t)(end - p))) != NULL &&
        (colon = memchr(p, ':', (size_t)(at - p))) != NULL) {
        PUT(p, (size_t)(colon - p));
        PUT(":***", 4);
        p = at;
    }
    /* password=... among the parameters (q[-1] is past "://") */
    while ((q = strstr(p, "password=")) != NULL) {
        PUT(p, (size_t)(q - p) + 9);
        p = q + 9;
        if (q[-1] == '?' || q[-1] == '&') {
            PUT("***", 3);
            p += strcspn(p, "&");
        }
    }
    PUT(p, strlen(p));
#undef PUT
    out[n] = '\0';
}

/* Where the gate listens and how it runs: the first line an operator
 * reads.  Values from the options are escaped as every other. */
static void
log_listening(gate *g, unsigned port)
{
    char listen[1100], path[1100], db[1100], upstream[1100];
    char sources[4096], p[600], u[600];
    size_t i, n = 0;

    /* Each source served: its name, path and upstream (null: the
     * gate's). */
    n += (size_t)snprintf(sources, sizeof(sources), "[");
    for (i = 0; i < g->nsources && n < sizeof(sources); i++)
        if (g->sources[i].path)
            n += (size_t)snprintf(
                sources + n, sizeof(sources) - n,
                "%s{\"name\":\"%s\",\"path\":%s,\"upstream\":%s}",
                sources[n - 1] == '[' ? "" : ",", g->sources[i].name,
                log_string(g->sources[i].path, p, sizeof(p)),
                log_string(g->sources[i].upstream, u, sizeof(u)));
    if (n < sizeof(sources))
        snprintf(sources + n, sizeof(sources) - n, "]");
    else
        snprintf(sources, sizeof(sources), "null");
    log_event("info", "listening",
              ",\"listen\":%s,\"port\":%u,\"path\":%s,\"db\":%s,"
              "\"durability\":\"%s\",\"writemap\":%s,"
              "\"reorder_window_s\":%" PRId64
              ",\"upstream\":%s,\"retention_days\":%ld,\"machine\":\"%s\","
              "\"version\":\"%s\",\"sources\":%s",
              log_string(g->listen, listen, sizeof(listen)), port,
              log_string(g->sources[0].path, path, sizeof(path)),
              log_string(g->db_shown, db, sizeof(db)),
              durability_name(g->durability), g->writemap ? "true" : "false",
              g->c->reorder_window,
              log_string(g->upstream, upstream, sizeof(upstream)), g->retention,
              qg_machine_version(), qg_version(), sources);
}

/* An engine for each source served, into fresh[] (the others NULL).
 * Returns 0, or -1 with err naming the source and what failed, and
 * nothing left built. */
static int
build_engines(gate *g, qg_engine *fresh[GATE_SOURCES], char *err, size_t errlen)
{
    char why[512];
    size_t i;

    memset(fresh, 0, sizeof(qg_engine *) * GATE_SOURCES);
    for (i = 0; i < g->nsources; i++) {
        if (g->sources[i].path == NULL)
            continue;
        if (cli_build_source_engine(g->c, g->sources[i].name,
                                    g->sources[i].secret_file, &fresh[i], why,
                                    sizeof(why)) == 0)
            continue;
        snprintf(err, errlen, "source %s: %.400s", g->sources[i].name, why);
        while (i-- > 0)
            qg_engine_free(fresh[i]);
        return -1;
    }
    return 0;
}

/* Puts fresh[] in place of the running engines and frees those. */
static void
swap_engines(gate *g, qg_engine *fresh[GATE_SOURCES])
{
    size_t i;

    pthread_rwlock_wrlock(&g->eng_lock);
    for (i = 0; i < g->nsources; i++) {
        qg_engine_free(g->sources[i].eng);
        g->sources[i].eng = fresh[i];
        atomic_store(&gate_metrics.secrets[i],
                     (unsigned)qg_engine_secret_count(fresh[i]));
    }
    pthread_rwlock_unlock(&g->eng_lock);
}

/*
 * SIGHUP: reopens the log file (for logrotate) and builds a new engine
 * from the secret file and the mapping as they are now, without a
 * restart.  An engine that does not build (a broken mapping, an unreadable
 * secret) leaves the running one in place; the reason goes to the JSON
 * log, which is where an operator who sent the signal looks.
 */
static void
reload(gate *g)
{
    qg_engine *fresh[GATE_SOURCES];
    char err[512], esc[1100], map[1100], secret[1100], logf[1100];
    char upsecret[1100];
    int log_failed = log_reopen() != 0, up_failed;
    size_t i, secrets = 0;

    if (log_failed)
        log_event("error", "reload: cannot reopen the log file; writing on",
                  ",\"log\":%s", log_string(g->log, logf, sizeof(logf)));
    /* The HIS's secrets reload on their own: a broken mapping does not
     * keep a rotated HIS secret out, nor the other way round. */
    if ((up_failed = upstream_reload(g->up, err, sizeof(err)) != 0))
        log_event("error",
                  "reload: keeping the running HIS secrets (upstream "
                  "secret file)",
                  ",\"error\":\"%s\"", log_escape(err, esc, sizeof(esc)));
    for (i = 1; i < g->nsources; i++)
        if (upstream_reload(g->sources[i].up, err, sizeof(err)) != 0)
            log_event("error",
                      "reload: keeping the running HIS secrets of a source",
                      ",\"source\":\"%s\",\"error\":\"%s\"", g->sources[i].name,
                      log_escape(err, esc, sizeof(esc)));
    /* All sources' engines or none: one broken secret file keeps every
     * running engine, as it did with one. */
    if (build_engines(g, fresh, err, sizeof(err)) != 0) {
        log_event("error",
                  "reload failed; keeping the running mapping and secret",
                  ",\"error\":\"%s\"", log_escape(err, esc, sizeof(esc)));
        return;
    }
    for (i = 0; i < g->nsources; i++)
        secrets += qg_engine_secret_count(fresh[i]);
    swap_engines(g, fresh);
    log_event("info", "reloaded",
              ",\"mapping\":%s,\"secret\":%s,\"secrets\":%zu,\"log\":%s,"
              "\"upstream_secret\":%s",
              log_string(g->c->mapping, map, sizeof(map)),
              log_string(g->c->no_verify ? NULL : g->c->secret_file, secret,
                         sizeof(secret)),
              secrets,
              log_string(log_failed ? NULL : g->log, logf, sizeof(logf)),
              log_string(up_failed ? NULL : upstream_secret_file(g->up),
                         upsecret, sizeof(upsecret)));
}

/* The store, as the options ask: written through the outbox when there
 * is an upstream.  Returns 0 or EXIT_FAILED, said. */
static int
open_store(gate *g)
{
    qg_store_options o;
    uint64_t chained, built;
    int rc;

    memset(&o, 0, sizeof(o));
    o.path = g->c->db;
    o.durability = g->durability == DURABLE_NOSYNC ? QG_NOSYNC : QG_SYNC;
    o.flags = (g->forwarding ? QG_OUTBOX : 0) | (g->writemap ? QG_WRITEMAP : 0);
    o.unsigned_log_max = (size_t)g->max_unsigned_log;
    if ((rc = cli_open_store_with(g->c, &o, &g->st)))
        return rc;
    /* A store from before the hash chain had it computed just now. */
    if (qg_store_chain_migrated(g->st, &chained) == 0 && chained)
        log_event("info", "store chained",
                  ",\"records\":%" PRIu64 ",\"why\":\"written before the "
                  "hash chain\"",
                  chained);
    /* One whose step summaries did not cover its history had them built. */
    if (qg_store_steps_built(g->st, &built) == 0 && built)
        log_event("info", "store summarized",
                  ",\"records\":%" PRIu64 ",\"why\":\"written before the "
                  "step summaries, or by an older qgate since\"",
                  built);
    return 0;
}

static int
start_forwarder(gate *g)
{
    static forward_route routes[GATE_SOURCES];
    forward_options fo;
    gate_source *gs;
    char err[512];
    size_t i, n = 0;

    if (g->upstream && upstream_new(g->st, g->format, g->upstream_secret_file,
                                    &g->up, err, sizeof(err)))
        return cli_fail("--upstream-secret-file: %s", err);
    if (g->up)
        upstream_set_fhir_system(g->up, g->fhir_system);
    if (g->upstream && g->upstream_secret_file == NULL)
        log_event("warn",
                  "no --upstream-secret-file: what goes to the HIS is not "
                  "signed, and the HIS cannot tell it from a forgery",
                  ",\"upstream\":\"%s\"",
                  log_escape(g->upstream, err, sizeof(err)));
    /* A source with its own HIS: its steps go there, signed with its own
     * secrets. */
    for (i = 1; i < g->nsources; i++) {
        gs = &g->sources[i];
        if (gs->upstream == NULL)
            continue;
        if (upstream_new(g->st, gs->format, gs->upstream_secret_file, &gs->up,
                         err, sizeof(err)))
            return cli_fail("source %s: upstream_secret_file: %s", gs->name,
                            err);
        upstream_set_fhir_system(gs->up, g->fhir_system);
        if (gs->upstream_secret_file == NULL)
            log_event("warn",
                      "a source's upstream has no upstream_secret_file: what "
                      "goes to its HIS is not signed",
                      ",\"source\":\"%s\"", gs->name);
        routes[n].source = gs->name;
        routes[n].upstream = gs->upstream;
        routes[n++].up = gs->up;
    }
    memset(&fo, 0, sizeof(fo));
    fo.upstream = g->upstream;
    fo.up = g->up;
    fo.routes = routes;
    fo.nroutes = n;
    fo.workers = (unsigned)g->forwarders;
    fo.timeout_ms = g->forward_timeout * 1000;
    fo.max_age_us = (int64_t)g->max_age * 1000000;
    fo.backoff_min_us = 500000;
    fo.backoff_max_us = 300 * 1000000LL;
    if (forwarder_start(g->st, &fo, &g->fwd))
        return cli_fail("cannot start the forwarder: %s", strerror(errno));
    return 0;
}

/* The alert thread, when there is an --alert-url.  Unsigned alerts are
 * allowed, as a first step, with a warning: a receiver cannot tell them
 * from anyone's. */
static int
start_alerts(gate *g)
{
    alert_options ao;
    char err[512];

    memset(&ao, 0, sizeof(ao));
    ao.url = g->alert_url;
    ao.secret_file = g->alert_secret_file;
    ao.his_down_s = g->alert_his_down;
    ao.refusals = g->alert_refusals;
    ao.interval_s = g->alert_interval;
    ao.listen = g->listen;
    ao.store = g->db_shown;
    if (g->alert_url && g->alert_secret_file == NULL)
        log_event("warn",
                  "alerts are not signed: give --alert-secret-file so that "
                  "the receiver can tell them from anyone's",
                  NULL);
    if (alerts_start(g->st, &ao, err, sizeof(err)))
        return cli_fail("--alert-secret-file: %s", err);
    return 0;
}

/* libmicrohttpd on the socket bound here; every request to answers.c. */
static int
start_daemon(gate *g, const struct sockaddr_storage *addr, socklen_t addrlen)
{
    const union MHD_DaemonInfo *info;
    int lfd;

    if ((lfd = listen_on(addr, addrlen)) < 0)
        return cli_fail("cannot listen on %s: %s", g->listen, strerror(errno));
    MHD_set_panic_func(mhd_panic, NULL);
    g->d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG |
            (addr->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, answers_handle, g, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)g->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)g->timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)g->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)g->max_per_address,
        MHD_OPTION_NOTIFY_CONNECTION, conntable_notify, g->conns,
        MHD_OPTION_URI_LOG_CALLBACK, conntable_request_line, g->conns,
        MHD_OPTION_NOTIFY_COMPLETED, answers_completed, g,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    if (g->d == NULL) {
        int rc =
            cli_fail("cannot listen on %s: %s", g->listen, strerror(errno));

        close(lfd);
        return rc;
    }
    info = MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_BIND_PORT);
    log_listening(g, info ? (unsigned)info->port : 0u);
    return 0;
}

/* Everything that runs, once the store and the engine are open: what
 * starts is stopped by stop(), whether this returns 0 or not.  Returns 0
 * or EXIT_FAILED, said. */
static int
start(gate *g, const struct sockaddr_storage *addr, socklen_t addrlen)
{
    int rc;

    pthread_rwlock_init(&g->eng_lock, NULL);
    db_shown(g->c->db, g->db_shown, sizeof(g->db_shown));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fit_fd_limit(g);
    if (ratelimit_new(g->unsigned_rate, g->unsigned_burst, &g->rl) ||
        conntable_start(g->request_timeout, g->timeout,
                        (unsigned)g->max_connections, &g->conns))
        return cli_fail("out of memory");
    if ((rc = start_alerts(g)))
        return rc;
    if (g->forwarding && (rc = start_forwarder(g)))
        return rc;
    if (committer_start(g->st, g->durability == DURABLE_SYNC ? 1 : 256,
                        g->c->reorder_window, forwarder_wake, g->fwd, &g->com))
        return cli_fail("cannot start the committer");
    if (g->retention > 0 &&
        (rc = retention_start(g->st, g->retention, &g->ret)))
        return cli_fail("cannot start the daily purge: %s", strerror(rc));
    return start_daemon(g, addr, addrlen);
}

/* Reloads on each SIGHUP until SIGTERM or SIGINT, which it returns. */
static int
wait_for_stop(gate *g, const sigset_t *sigs)
{
    int sig;

    for (;;) {
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        reload(g);
    }
}

/* Stops taking requests and lets those in flight finish.  Returns the
 * exit status. */
static int
finish(gate *g, int sig)
{
    int64_t deadline, grace;

    log_event("info", "stopping: finishing requests in flight",
              ",\"signal\":\"%s\"", sig == SIGTERM ? "TERM" : "INT");
    /* Not MHD_quiesce_daemon(): libmicrohttpd 0.9.75's, with a thread pool
     * on epoll, races its own workers for the listening socket's epoll
     * registration and aborts the process when it loses (a panic in
     * MHD_quiesce_daemon, seen about once in 80 stops).  The socket stays
     * open until MHD_stop_daemon(); a request that begins from now on is
     * answered 503 before its body is read (answers.c). */
    atomic_store(&g->stopping, 1);
    /* Deliveries handed to the committer are committed and answered (up
     * to 30 s).  Bodies still arriving get 5 s to arrive; a client that
     * went silent or away mid-body delivered nothing, and may send again
     * to the next gate. */
    deadline = gate_now_us() + 30 * 1000000LL;
    grace = gate_now_us() + 5 * 1000000LL;
    while (gate_now_us() < deadline &&
           (atomic_load(&g->answering) > 0 ||
            (atomic_load(&g->in_flight) > 0 && gate_now_us() < grace)))
        usleep(10000);
    if (atomic_load(&g->damaged))
        return cli_store_damaged(g->c->db, "LMDB found a page that is not "
                                           "what it expected (`qgate verify` "
                                           "says where)");
    return EXIT_OK;
}

/* Stops what start() started and closes the store and the engine: the
 * committer's queue first, then the daemon, so that no request reaches a
 * stopped part, and the committer before the forwarder it wakes.  Parts
 * never started are NULL, which each stop takes. */
static void
stop(gate *g)
{
    /* libmicrohttpd aborts the process if it is stopped with a connection
     * suspended, and a suspended connection waits for the committer:
     * close it first, which answers whatever is queued (committed) and,
     * from then on, whatever comes (503) at once. */
    committer_close(g->com);
    if (g->d)
        MHD_stop_daemon(g->d);
    conntable_stop(g->conns);
    retention_stop(g->ret);
    committer_stop(g->com);
    forwarder_stop(g->fwd);
    alerts_stop(); /* after the forwarder, which hands it dead steps */
    upstream_free(g->up);
    qg_store_close(g->st);
    for (size_t i = 0; i < g->nsources; i++) {
        upstream_free(g->sources[i].up);
        qg_engine_free(g->sources[i].eng);
        g->sources[i].up = NULL;
        g->sources[i].eng = NULL;
    }
    ratelimit_free(g->rl);
    pthread_rwlock_destroy(&g->eng_lock);
    curl_global_cleanup();
}

int
cmd_serve(cli *c, int argc, char **argv)
{
    gate g;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    sigset_t sigs;
    int rc;
    char err[512];

    memset(&g, 0, sizeof(g));
    g.c = c;
    if ((rc = options_parse(&g, c, argc, argv))) {
        sources_free(&g);
        return rc < 0 ? EXIT_OK : rc;
    }
    if (parse_listen(g.listen, &addr, &addrlen, err, sizeof(err)) < 0) {
        sources_free(&g);
        return cli_fail("--listen \"%s\": %s", g.listen, err);
    }
    if (g.writemap && cli_db_is_uri(c->db)) {
        sources_free(&g);
        db_shown(c->db, err, sizeof(err));
        return cli_fail("--writemap: --db \"%s\" is a database server; the "
                        "option is for an LMDB store",
                        err);
    }
    if ((rc = read_tokens(&g))) {
        free_tokens(&g);
        sources_free(&g);
        return rc;
    }
    log_open(g.log);
    if (!g.token_file && !is_loopback(&addr))
        log_event("warn",
                  "the read API (GET /tickets/...) is open to anyone who can "
                  "reach this address: give --token-file",
                  ",\"listen\":\"%s\"", log_escape(g.listen, err, sizeof(err)));
    if (g.insecure) {
        c->no_verify = 1;
        log_event("warn",
                  "signatures are not checked (--insecure-no-signature): "
                  "anyone who can reach the gate can write to the HIS",
                  NULL);
    }
    /* Every thread started from here on inherits these blocked; the main
     * thread takes them with sigwait(). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* as main() does: a write past a file-size
                                 limit fails with EFBIG, answered 503 */

    {
        qg_engine *fresh[GATE_SOURCES];
        size_t i;

        if (build_engines(&g, fresh, err, sizeof(err))) {
            rc = cli_fail("%s", err);
            goto free_token;
        }
        for (i = 0; i < g.nsources; i++) {
            g.sources[i].eng = fresh[i];
            atomic_store(&gate_metrics.secrets[i],
                         (unsigned)qg_engine_secret_count(fresh[i]));
            gate_source_names[i] = g.sources[i].path ? g.sources[i].name : NULL;
        }
    }
    if ((rc = open_store(&g))) {
        for (size_t i = 0; i < g.nsources; i++)
            qg_engine_free(g.sources[i].eng);
        goto free_token;
    }
    if ((rc = start(&g, &addr, addrlen)) == 0)
        rc = finish(&g, wait_for_stop(&g, &sigs));
    stop(&g);
free_token:
    free_tokens(&g);
    sources_free(&g);
    if (rc == EXIT_OK)
        log_event("info", "stopped", NULL);
    return rc;
}

/* ----- qgate console: the console alone, read-only ----------------------- */

static const char console_usage[] =
    "usage: qgate console [--db DIR] [--listen HOST:PORT] [--token-file F]\n"
    "                     [--log FILE] [--reorder-window S] [--tz ZONE]\n"
    "The web console (/console/) and its read JSON over an existing store,\n"
    "read-only: for an auditor with a copy of the store.  Nothing is written:\n"
    "the store is opened read-only, no webhook is taken (POST is 404 or\n"
    "405), nothing is forwarded, replay and retry answer 403 read_only.\n"
    "  --listen HOST:PORT   where to listen (default 127.0.0.1:8081)\n"
    "  --token-file F       bearer token the JSON requests need\n"
    "  --log FILE           the JSON log (default: standard error)\n"
    "  --reorder-window S   when the held deliveries are let go, as the\n"
    "                       gate that wrote the store had it "
    "(default " CLI_XSTR(CLI_DEFAULT_REORDER_WINDOW) ")\n";

/* The options of `qgate console`: those above and the common ones. */
static int
console_options(gate *g, cli *c, int argc, char **argv)
{
    enum { OPT_LISTEN = 2000, OPT_TOKEN_FILE, OPT_LOG };
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        CLI_REORDER_OPTION,
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"log", required_argument, NULL, OPT_LOG},
        {0}};
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        switch (opt) {
        case 'h':
            fputs(console_usage, stdout);
            return -1;
        case OPT_LISTEN:
            g->listen = optarg;
            break;
        case OPT_TOKEN_FILE:
            g->token_file = optarg;
            break;
        case OPT_LOG:
            g->log = optarg;
            break;
        default:
            return EXIT_FAILED; /* getopt has said what was wrong */
        }
    }
    if (optind != argc)
        return cli_fail("console: unexpected argument \"%s\"", argv[optind]);
    if ((rc = cli_finish_options(c)))
        return rc;
    if (cli_db_is_uri(c->db))
        return cli_fail("console: --db \"%s\": a database server; the console "
                        "reads a store's folder",
                        c->db);
    if (g->listen == NULL)
        g->listen = "127.0.0.1:8081";
    /* What `qgate serve` takes by default: the console answers few. */
    g->threads = 2;
    g->timeout = 30;
    g->request_timeout = 10;
    g->max_connections = 256;
    g->max_per_address = 64;
    g->durability = DURABLE_SYNC;
    return 0;
}

int
cmd_console(cli *c, int argc, char **argv)
{
    qg_store_options o;
    gate g;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    sigset_t sigs;
    int rc, sig;
    char err[512];

    memset(&g, 0, sizeof(g));
    g.c = c;
    g.read_only = 1;
    if ((rc = console_options(&g, c, argc, argv)))
        return rc < 0 ? EXIT_OK : rc;
    if (parse_listen(g.listen, &addr, &addrlen, err, sizeof(err)) < 0)
        return cli_fail("--listen \"%s\": %s", g.listen, err);
    if ((rc = read_tokens(&g)))
        goto free_token;
    /* No webhook path, no secret, no HIS: nothing here writes. */
    memset(&o, 0, sizeof(o));
    o.path = c->db;
    o.flags = QG_RDONLY;
    if ((rc = cli_open_store_with(c, &o, &g.st)))
        goto free_token;
    log_open(g.log);
    if (!g.token_file && !is_loopback(&addr))
        log_event("warn",
                  "the console's JSON is open to anyone who can reach this "
                  "address: give --token-file",
                  ",\"listen\":\"%s\"", log_escape(g.listen, err, sizeof(err)));
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_rwlock_init(&g.eng_lock, NULL);
    fit_fd_limit(&g);
    if (conntable_start(g.request_timeout, g.timeout,
                        (unsigned)g.max_connections, &g.conns))
        rc = cli_fail("out of memory");
    else if ((rc = start_daemon(&g, &addr, addrlen)) == 0) {
        /* SIGHUP reopens the log; there is nothing else to reload. */
        for (;;) {
            if (sigwait(&sigs, &sig) != 0)
                continue;
            if (sig != SIGHUP)
                break;
            log_reopen();
        }
        rc = finish(&g, sig);
    }
    if (g.d)
        MHD_stop_daemon(g.d);
    conntable_stop(g.conns);
    qg_store_close(g.st);
    pthread_rwlock_destroy(&g.eng_lock);
    if (rc == EXIT_OK)
        log_event("info", "stopped", NULL);
free_token:
    free_tokens(&g);
    return rc;
}
