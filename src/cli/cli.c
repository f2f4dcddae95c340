/*
 * cli.c - the qgate command: dispatch, shared options, output helpers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const cli_command cli_serve = {
    .name = "serve",
    .summary = "the validating HTTP gate in front of the HIS",
    .main = cmd_serve};
static const cli_command cli_console = {
    .name = "console",
    .summary = "the web console alone, read-only, over a store",
    .main = cmd_console};

/* In the order qgate --help lists them. */
static const cli_command *const commands[] = {
    &cli_apply,    &cli_check,   &cli_history, &cli_show,   &cli_list,
    &cli_rejected, &cli_verify,  &cli_stats,   &cli_export, &cli_machine,
    &cli_serve,    &cli_console, &cli_outbox,  &cli_held,   &cli_backup,
    &cli_purge,    &cli_seal,    &cli_db};

/*
 * Time zones.  Every timestamp is shown in the offset Chup sent for it;
 * the times qgate stamps itself (received, outbox attempts) have none, and
 * are shown in the offset of the store's data: that of the newest
 * ticket's last step, found once when the store opens.  --tz overrides
 * both.  --since and --until without an offset are read in the same zone
 * the times are shown in: --tz, else the store's offset, else local time.
 * The newest step rather than the most common offset: it is one lookup,
 * and a clinic's offset changes only when it moves or its zone's rules
 * do, after which the newest data is what the user is asking about.
 */
enum { ZONE_NONE, ZONE_FIXED, ZONE_NAMED };

static struct {
    int kind;           /* of --tz; ZONE_NAMED has set TZ */
    int32_t offset_s;   /* ZONE_FIXED's */
    int data_known;     /* the store's offset was found */
    int32_t data_off_s; /* the store's offset */
} zone;

static int set_zone(const char *tz);
static void learn_data_offset(qg_store *st);
static int resolve_when(cli *c, const char *opt, const char *arg, int64_t *ms);

int
cli_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("qgate: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILED;
}

/* Seconds of allowed clock skew: 0 (no check) to INT32_MAX, as
 * qg_engine_set_max_skew() takes them.  Returns 0 or -1. */
static int
parse_skew(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' ||
        v > INT32_MAX)
        return -1;
    *out = v;
    return 0;
}

int
cli_common_option(cli *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_DB:
        c->db = arg;
        return 1;
    case OPT_CONFIG:
        c->config = arg;
        return 1;
    case OPT_JSON:
        c->json = 1;
        return 1;
    case OPT_SECRET_FILE:
        c->secret_file = arg;
        return 1;
    case OPT_NO_VERIFY:
        c->no_verify = 1;
        return 1;
    case OPT_REORDER_WINDOW: {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(arg, &end, 10);
        if (errno || end == arg || *end || v < 0 ||
            v > CLI_MAX_REORDER_WINDOW || arg[0] < '0' || arg[0] > '9') {
            cli_fail("--reorder-window \"%s\": expected whole seconds from "
                     "0 to %d (0: judge every delivery on arrival)",
                     arg, CLI_MAX_REORDER_WINDOW);
            c->bad_option = 1;
        } else {
            c->reorder_window = v;
        }
        return 1;
    }
    case OPT_SINCE:
    case OPT_UNTIL:
        /* The form is checked now; a time without an offset is placed in
         * its zone by cli_finish_options(), once --tz and the store are
         * known. */
        if (cli_parse_when(opt == OPT_SINCE ? "--since" : "--until", arg,
                           opt == OPT_SINCE ? &c->since : &c->until))
            c->bad_option = 1;
        else
            *(opt == OPT_SINCE ? &c->since_arg : &c->until_arg) = arg;
        return 1;
    case OPT_TZ:
        c->tz = arg;
        return 1;
    case OPT_SOURCE:
        if (qg_source_name_check(arg)) {
            cli_fail("--source \"%s\": expected 1 to %d lowercase letters, "
                     "digits, '-' or '_', starting with a letter or digit",
                     arg, QG_SOURCE_NAME_MAX);
            c->bad_option = 1;
        } else {
            c->source = arg;
        }
        return 1;
    case OPT_MAX_SKEW:
        if (parse_skew(arg, &c->max_skew)) {
            cli_fail("--max-skew \"%s\": expected seconds, 0 (no check) "
                     "to %d",
                     arg, INT32_MAX);
            c->bad_option = 1;
        }
        return 1;
    }
    return 0;
}

/* A slot of c's string storage; the config file's own strings are freed
 * with it.  There are more slots than config keys take. */
static char *
slot(cli *c)
{
    static char spare[4096];

    if (c->nstrings == sizeof(c->strings) / sizeof(c->strings[0]))
        return spare;
    return c->strings[c->nstrings++];
}

const char *
cli_config_copy(cli *c, const char *value)
{
    char *dst = slot(c);

    snprintf(dst, sizeof(c->strings[0]), "%s", value);
    return dst;
}

const char *
cli_config_path(cli *c, const char *value)
{
    const char *slash = strrchr(c->config, '/');
    char *dst = slot(c);

    if (value[0] == '/' || slash == NULL)
        snprintf(dst, sizeof(c->strings[0]), "%s", value);
    else
        snprintf(dst, sizeof(c->strings[0]), "%.*s/%s",
                 (int)(slash - c->config), c->config, value);
    return dst;
}

/* The keys load_config() takes for every command. */
static int
is_common_key(const char *key)
{
    static const char *const common[] = {
        "db",         "secret_file",    "mapping",
        "durability", "reorder_window", "require_signature",
        "max_skew"};
    size_t i;

    for (i = 0; i < sizeof(common) / sizeof(*common); i++)
        if (strcmp(key, common[i]) == 0)
            return 1;
    return 0;
}

int
cli_option_set(cli *c, const cli_option *o, void *dest, const char *str,
               long num, int from_file)
{
    const char **sp = (const char **)((char *)dest + o->offset);
    long *np = (long *)((char *)dest + o->offset);
    int *bp = (int *)((char *)dest + o->offset);

    switch (o->type) {
    case CLI_STRING:
    case CLI_PATH:
        if (*sp == NULL)
            *sp = !from_file            ? str
                  : o->type == CLI_PATH ? cli_config_path(c, str)
                                        : cli_config_copy(c, str);
        return 0;
    case CLI_NUMBER:
        if (num <= 0)
            return cli_fail("%s: %ld is not a positive number", o->key, num);
        if (*np == 0)
            *np = num;
        return 0;
    case CLI_SWITCH:
        *bp |= num != 0;
        return 0;
    case CLI_COMMON:
    case CLI_CUSTOM:
        break;
    }
    return 0;
}

/* The option of the table whose config key is key, or NULL. */
static const cli_option *
find_key(const cli_option *opts, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (opts[i].key && strcmp(key, opts[i].key) == 0)
            return &opts[i];
    return NULL;
}

/* A config key of the command's own options: the JSON type its option
 * type asks for, then set as a flag would set it. */
static int
set_own_key(cli *c, const cli_option *o, const qg_config_value *v)
{
    qg_config_type want = o->type == CLI_NUMBER   ? QG_CONFIG_INTEGER
                          : o->type == CLI_SWITCH ? QG_CONFIG_BOOLEAN
                                                  : QG_CONFIG_STRING;

    if (v->type != want)
        return cli_fail("%s: key \"%s\": value %s has the wrong type",
                        c->config, o->key, v->json);
    return cli_option_set(c, o, c->own_dest, v->string, (long)v->integer, 1);
}

/* One key of the config file, handed over by qg_config_walk().  Returns
 * 0, or EXIT_FAILED after saying why. */
static int
config_key(void *arg, const qg_config_value *v)
{
    cli *c = arg;
    const char *key = v->key, *s = v->string;
    int is_str = v->type == QG_CONFIG_STRING;
    int is_int = v->type == QG_CONFIG_INTEGER;
    const cli_option *own;

    if (strcmp(key, "db") == 0 && is_str) {
        if (c->db == NULL)
            c->db = cli_config_path(c, s);
    } else if (strcmp(key, "secret_file") == 0 && is_str) {
        if (c->secret_file == NULL)
            c->secret_file = cli_config_path(c, s);
    } else if (strcmp(key, "mapping") == 0 && is_str) {
        c->mapping = cli_config_path(c, s);
    } else if (strcmp(key, "durability") == 0 && is_str &&
               (strcmp(s, "sync") == 0 || strcmp(s, "group") == 0 ||
                strcmp(s, "nosync") == 0)) {
        if (c->durability == NULL)
            c->durability = cli_config_copy(c, s);
    } else if (strcmp(key, "reorder_window") == 0 && is_int &&
               v->integer >= 0 && v->integer <= CLI_MAX_REORDER_WINDOW) {
        if (c->reorder_window < 0)
            c->reorder_window = v->integer;
    } else if (strcmp(key, "require_signature") == 0 &&
               v->type == QG_CONFIG_BOOLEAN) {
        if (!v->integer)
            c->no_verify = 1;
    } else if (strcmp(key, "max_skew") == 0 && is_int && v->integer >= 0 &&
               v->integer <= INT32_MAX) {
        if (c->max_skew < 0)
            c->max_skew = v->integer;
    } else if (strcmp(key, "sources") == 0) {
        /* The gate's (options.c checks them); the other commands
         * name a source with --source. */
        if (c->own && c->sources == NULL &&
            (c->sources = strdup(v->json)) == NULL)
            return cli_fail("%s: out of memory", c->config);
    } else if ((own = find_key(c->own, c->nown, key)) != NULL) {
        return set_own_key(c, own, v);
    } else if (is_common_key(key)) {
        return cli_fail("%s: key \"%s\": value %s not valid", c->config, key,
                        v->json);
    } else if (c->own == NULL && find_key(c->others, c->nothers, key)) {
        /* One file serves the gate and the CLI: the gate's own keys
         * (listen, upstream, ...) mean nothing here. */
    } else {
        return cli_fail("%s: key \"%s\": unknown to every qgate command",
                        c->config, key);
    }
    return 0;
}

/* The config file, read and checked by the library, which hands over its
 * keys: the programs carry no JSON parser, and json-c is loaded only
 * when a file is read. */
static int
load_config(cli *c)
{
    char err[512], *text;
    int rc;

    if (qg_config_read(c->config, &text, NULL, err, sizeof(err)))
        return cli_fail("%s", err);
    rc = qg_config_walk(text, QG_CONFIG_OBJECT, config_key, c);
    free(text);
    if (rc == QG_ECONFIG)
        return cli_fail("%s: expected a JSON object", c->config);
    if (rc < 0)
        return cli_fail("%s: %s", c->config, qg_strerror(rc));
    return rc;
}

int
cli_finish_options(cli *c)
{
    int rc = 0;

    if (c->bad_option)
        return EXIT_FAILED;
    if (c->config && (rc = load_config(c)))
        return rc;
    if (c->reorder_window < 0)
        c->reorder_window = CLI_DEFAULT_REORDER_WINDOW;
    if (c->db == NULL)
        c->db = getenv("QGATE_DB");
    if (c->db == NULL || c->db[0] == '\0')
        c->db = "./var/qgate";
    if (c->tz && set_zone(c->tz))
        return cli_fail("--tz \"%s\": expected an IANA zone "
                        "(Asia/Singapore), UTC, or an offset (+08:00)",
                        c->tz);
    if ((c->since_arg && resolve_when(c, "--since", c->since_arg, &c->since)) ||
        (c->until_arg && resolve_when(c, "--until", c->until_arg, &c->until)))
        return EXIT_FAILED;
    /* until is exclusive: a range that ends where or before it starts
     * selects nothing, and an empty answer would look like no data.  Both
     * ends are placed in their zone first. */
    if (c->since_arg && c->until_arg && c->since >= c->until)
        return cli_fail("--since \"%s\" is not before --until \"%s\": the "
                        "range is empty",
                        c->since_arg, c->until_arg);
    return 0;
}

/* A database server's address (postgresql://...), not a store's folder:
 * nothing to create or map on this machine. */
int
cli_db_is_uri(const char *db)
{
    return strstr(db, "://") != NULL;
}

int
cli_open_store(cli *c, int rdonly, qg_store **out)
{
    qg_store_options o;

    memset(&o, 0, sizeof(o));
    o.path = c->db;
    o.durability = c->durability && strcmp(c->durability, "nosync") == 0
                       ? QG_NOSYNC
                       : QG_SYNC;
    o.flags = rdonly ? QG_RDONLY : 0;
    return cli_open_store_with(c, &o, out);
}

int
cli_open_store_with(cli *c, const qg_store_options *o, qg_store **out)
{
    char detail[512];
    uint64_t chained, built;
    int rc;

    if (!(o->flags & QG_RDONLY) && !cli_db_is_uri(c->db)) {
        /* ./var/qgate: make the parent too, as a first run expects */
        char parent[4096], *slash;

        snprintf(parent, sizeof(parent), "%s", c->db);
        if ((slash = strrchr(parent, '/')) && slash != parent) {
            *slash = '\0';
            if (mkdir(parent, 0750) != 0 && errno != EEXIST)
                return cli_fail("%s: %s", parent, strerror(errno));
        }
    }
    cli_guard_store(c->db);
    if ((rc = qg_store_open(o, out)) == QG_ECORRUPT) {
        if (qg_store_check_file(c->db, detail, sizeof(detail)) != QG_ECORRUPT)
            return cli_store_fail(c, QG_ECORRUPT); /* LMDB's own find */
        return cli_store_damaged(c->db, detail);
    }
    if (rc)
        return cli_fail("%s: cannot open the store: %s", c->db,
                        rc == QG_NOTFOUND ? "no store there" : qg_strerror(rc));
    /* Every page before a write, which could spread the damage, or when
     * the command asks.  Not for every read: the walk reads the whole
     * file, and a read-only command that LMDB trips up is stopped by the
     * guard (damage.c) with the same message.  A database server checks
     * its own pages (QG_ENOTSUP). */
    if ((!(o->flags & QG_RDONLY) || c->check_store) &&
        (rc = qg_store_check(*out, detail, sizeof(detail))) &&
        rc != QG_ENOTSUP) {
        qg_store_close(*out);
        *out = NULL;
        if (rc == QG_ECORRUPT)
            return cli_store_damaged(c->db, detail);
        return cli_fail("%s: cannot check the store: %s", c->db,
                        qg_strerror(rc));
    }
    /* The library never prints: what the open migrated is said here. */
    if (qg_store_chain_migrated(*out, &chained) == 0 && chained)
        fprintf(stderr,
                "qgate: %s: a store from before the hash chain: chained its "
                "%" PRIu64 " records\n",
                c->db, chained);
    if (qg_store_steps_built(*out, &built) == 0 && built)
        fprintf(stderr,
                "qgate: %s: a store without step summaries for every "
                "record (written before 0.7, or by an older qgate since): "
                "summarized its %" PRIu64 " records\n",
                c->db, built);
    if (zone.kind == ZONE_NONE)
        learn_data_offset(*out);
    return 0;
}

int
cli_build_engine(cli *c, qg_engine **out, char *err, size_t errlen)
{
    return cli_build_source_engine(c, c->source, NULL, out, err, errlen);
}

int
cli_build_source_engine(cli *c, const char *source, const char *secret_file,
                        qg_engine **out, char *err, size_t errlen)
{
    if (secret_file == NULL)
        secret_file = c->secret_file;
    snprintf(err, errlen, "cannot configure the engine");
    if (qg_engine_new(out)) {
        snprintf(err, errlen, "out of memory");
        return EXIT_FAILED;
    }
    if (qg_engine_set_source(*out, source)) {
        snprintf(err, errlen, "source \"%s\": not a source name", source);
        goto fail;
    }
    if (c->no_verify) {
        qg_engine_require_signature(*out, 0);
    } else if (secret_file) {
        if (qg_engine_load_secret(*out, secret_file, err, errlen))
            goto fail;
    } else {
        snprintf(err, errlen,
                 "no secret: give --secret-file FILE, or "
                 "--no-verify to skip signature checks");
        goto fail;
    }
    if (c->mapping && qg_engine_load_mapping(*out, c->mapping, err, errlen))
        goto fail;
    /* cli_finish_options() has checked the range. */
    qg_engine_set_reorder_window(*out, c->reorder_window);
    if (c->max_skew >= 0 && qg_engine_set_max_skew(*out, c->max_skew)) {
        snprintf(err, errlen, "max skew %" PRId64 ": out of range",
                 c->max_skew);
        goto fail;
    }
    return 0;
fail:
    qg_engine_free(*out);
    *out = NULL;
    return EXIT_FAILED;
}

int
cli_new_engine(cli *c, qg_engine **out)
{
    char err[512];

    if (cli_build_engine(c, out, err, sizeof(err)))
        return cli_fail("%s", err);
    return 0;
}

int
cli_store_fail(cli *c, int rc)
{
    const char *db = c ? c->db : cli_guarded_store();

    if (rc == QG_ECORRUPT)
        return cli_store_damaged(db, "LMDB found a page that is not what it "
                                     "expected (`qgate verify` says where)");
    /* Mostly a value LMDB returned intact but not in qgate's layout. */
    if (rc == QG_ESTORE)
        return cli_fail("%s: %s: the store may be damaged (a stored value "
                        "not as qgate writes it): `qgate verify` checks it",
                        db, qg_strerror(rc));
    return cli_fail("%s: %s", db, qg_strerror(rc));
}

int
cli_lookup_ticket(qg_store *st, const char *arg, qg_ticket *out)
{
    return qg_store_ticket_named(st, arg, out);
}

int
cli_in_source(const cli *c, const char *source)
{
    return c->source == NULL || strcmp(c->source, source) == 0;
}

void
cli_ticket_filter_init(cli_ticket_filter *f)
{
    memset(f, 0, sizeof(*f));
    f->state = -1;
    f->since = INT64_MIN;
    f->until = INT64_MAX;
}

int
cli_ticket_matches(const cli_ticket_filter *f, const qg_ticket *t)
{
    return (f->state < 0 || (int)t->state == f->state) &&
           (f->service_id == 0 || t->service_id == f->service_id) &&
           (f->source == NULL || strcmp(f->source, t->source) == 0) &&
           t->last_event_ms >= f->since && t->last_event_ms < f->until;
}

int
cli_ticket_in_source(const cli *c, qg_store *st, uint64_t ticket)
{
    static qg_store *last_st;
    static uint64_t last_ticket;
    static int last;
    qg_ticket t;
    int rc;

    if (c->source == NULL)
        return 1;
    if (st == last_st && ticket == last_ticket && ticket != 0)
        return last;
    if ((rc = qg_store_ticket(st, QG_ID_TICKET, (int64_t)ticket, &t)))
        return rc;
    last_st = st;
    last_ticket = ticket;
    last = cli_in_source(c, t.source);
    return last;
}

int
cli_source_known(const cli *c, qg_store *st)
{
    int rc;

    if (c->source == NULL)
        return 0;
    if ((rc = qg_store_has_source(st, c->source)) == 1)
        return 0;
    if (rc == 0)
        return cli_fail("--source \"%s\": no delivery of that source is in "
                        "the store",
                        c->source);
    return cli_store_fail(NULL, rc);
}

int
cli_find_ticket(qg_store *st, const char *source, const char *arg,
                qg_ticket *out)
{
    int rc = qg_store_ticket_named_in(st, source, arg, out);

    if (rc == QG_EINVAL)
        return cli_fail("ticket \"%s\": expected a live-queue id (30001), "
                        "lq:ID, appt:ID or ticket:N",
                        arg);
    if (rc == QG_NOTFOUND && source)
        return cli_fail("ticket %s: not in the store for source %s", arg,
                        source);
    if (rc == QG_NOTFOUND)
        return cli_fail("ticket %s: not in the store", arg);
    if (rc == QG_ECORRUPT)
        return cli_store_fail(NULL, rc);
    if (rc)
        return cli_fail("ticket %s: %s", arg, qg_strerror(rc));
    return 0;
}

/* "+08:00", "-0530", "+8": seconds east.  Returns 0 or -1. */
static int
parse_offset(const char *s, int32_t *out)
{
    int h = 0, m = 0, n = 0;

    if ((s[0] != '+' && s[0] != '-') ||
        (sscanf(s + 1, "%2d:%2d%n", &h, &m, &n) != 2 &&
         sscanf(s + 1, "%2d%2d%n", &h, &m, &n) != 2 &&
         sscanf(s + 1, "%2d%n", &h, &n) != 1) ||
        s[1 + n] != '\0' || s[1] < '0' || s[1] > '9' || h > 14 || m < 0 ||
        m > 59)
        return -1;
    *out = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return 0;
}

/* --tz: UTC, an offset, or an IANA name, which must name a zone file:
 * the C library takes an unknown name for UTC without a word. */
static int
set_zone(const char *tz)
{
    const char *dir = getenv("TZDIR");
    char path[4096];
    struct stat sb;

    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "Z") == 0) {
        zone.kind = ZONE_FIXED;
        zone.offset_s = 0;
        return 0;
    }
    if (parse_offset(tz, &zone.offset_s) == 0) {
        zone.kind = ZONE_FIXED;
        return 0;
    }
    if (tz[0] == '\0' || tz[0] == '/' || tz[0] == ':' || strstr(tz, "..") ||
        strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789/_+-") != strlen(tz))
        return -1;
    snprintf(path, sizeof(path), "%s/%s",
             dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return -1;
    if (setenv("TZ", tz, 1) != 0)
        return -1;
    tzset();
    zone.kind = ZONE_NAMED;
    return 0;
}

int
cli_ticket_offset(qg_store *st, const qg_ticket *t, int32_t *offset_s)
{
    qg_history *h = NULL;
    qg_record r;
    int rc;

    /* The last step accepted is the last in event time unless a late one
     * came after it: then the ticket's few steps are read. */
    if ((rc = qg_history_open_order(st, t->id, QG_ARRIVAL_ORDER, &h)))
        return rc;
    if ((rc = qg_history_seek(h, t->records)) == 0 &&
        (rc = qg_history_next(h, &r)) == 0 && r.event_ms != t->last_event_ms) {
        qg_history_seek(h, 1);
        while ((rc = qg_history_next(h, &r)) == 0 &&
               r.event_ms != t->last_event_ms)
            ;
    }
    if (rc == 0)
        *offset_s = r.utc_offset_s;
    qg_history_close(h);
    return rc;
}

/* The store's offset (see above), once; nothing when it has no data. */
static void
learn_data_offset(qg_store *st)
{
    qg_tickets *it = NULL;
    qg_ticket t;

    if (zone.data_known || qg_tickets_open(st, &it))
        return;
    if (qg_tickets_next(it, &t) == 0 &&
        cli_ticket_offset(st, &t, &zone.data_off_s) == 0)
        zone.data_known = 1;
    qg_tickets_close(it);
}

/* What cli_parse_when() reads: a date, a time, maybe an offset. */
typedef struct when {
    struct tm tm;
    int has_offset;
    int32_t offset_s;
} when;

static int
read_when(const char *arg, when *w)
{
    const char *end;
    char *dot;

    memset(w, 0, sizeof(*w));
    if ((end = strptime(arg, "%Y-%m-%d", &w->tm)) == NULL)
        return -1;
    if (*end == 'T' || *end == ' ') {
        const char *rest = end + 1;

        if ((end = strptime(rest, "%H:%M:%S", &w->tm)) == NULL &&
            (end = strptime(rest, "%H:%M", &w->tm)) == NULL)
            return -1;
        /* fractions of a second: the window is in milliseconds, and
         * "...:00.5" is after "...:00" */
        if (*end == '.') {
            strtol(end + 1, &dot, 10);
            if (dot == end + 1)
                return -1;
            end = dot;
        }
        if (*end == 'Z' && end[1] == '\0') {
            w->has_offset = 1;
            return 0;
        }
        if (*end == '+' || *end == '-') {
            w->has_offset = 1;
            return parse_offset(end, &w->offset_s);
        }
    }
    return *end == '\0' ? 0 : -1;
}

/* The instant a time without an offset names, in the zone of the policy
 * above.  Returns 0 or -1. */
static int
place_when(struct tm *tm, int32_t offset_s, int fixed, int64_t *ms)
{
    time_t t;

    if (fixed) {
        t = timegm(tm);
        *ms = ((int64_t)t - offset_s) * 1000;
        return 0;
    }
    tm->tm_isdst = -1;
    if ((t = mktime(tm)) == (time_t)-1)
        return -1;
    *ms = (int64_t)t * 1000;
    return 0;
}

static int
when_fail(const char *opt, const char *arg)
{
    return cli_fail("%s \"%s\": expected 2024-03-05, 2024-03-05T09:00 "
                    "(in --tz, else the store's offset, else local time) or "
                    "2024-03-05T09:00+08:00",
                    opt, arg);
}

int
cli_day(qg_store *st, const char *day, int64_t *since, int64_t *until)
{
    /* The gate's threads may ask together; the zone is learnt once. */
    static pthread_mutex_t learning = PTHREAD_MUTEX_INITIALIZER;
    struct tm tm, check;
    const char *end;
    int32_t offset = 0;
    int fixed = 0, i;
    time_t t;

    for (i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? day[i] != '-' : day[i] < '0' || day[i] > '9')
            return -1;
    memset(&tm, 0, sizeof(tm));
    if (day[10] != '\0' || (end = strptime(day, "%Y-%m-%d", &tm)) == NULL ||
        *end != '\0')
        return -1;
    /* 2024-02-30 is no day, though mktime() would make it March 1st. */
    check = tm;
    t = timegm(&check);
    if (t == (time_t)-1 || gmtime_r(&t, &check) == NULL ||
        check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
        return -1;
    if (zone.kind == ZONE_FIXED) {
        fixed = 1;
        offset = zone.offset_s;
    } else if (zone.kind == ZONE_NONE) {
        pthread_mutex_lock(&learning);
        learn_data_offset(st);
        fixed = zone.data_known;
        offset = zone.data_off_s;
        pthread_mutex_unlock(&learning);
    }
    check = tm;
    if (place_when(&check, offset, fixed, since))
        return -1;
    tm.tm_mday++;
    return place_when(&tm, offset, fixed, until) ? -1 : 0;
}

int
cli_parse_when(const char *opt, const char *arg, int64_t *ms)
{
    int32_t offset;
    when w;

    if (qg_time_parse(arg, ms, &offset) == 0)
        return 0;
    if (read_when(arg, &w))
        return when_fail(opt, arg);
    if (w.has_offset)
        return place_when(&w.tm, w.offset_s, 1, ms) ? when_fail(opt, arg) : 0;
    return place_when(&w.tm, 0, 0, ms) ? when_fail(opt, arg) : 0;
}

/* Places a --since/--until without an offset: see the policy above.  The
 * store is opened read-only for the lookup, and quietly skipped when it
 * cannot be: the command's own open says what is wrong with it. */
static int
resolve_when(cli *c, const char *opt, const char *arg, int64_t *ms)
{
    qg_store_options o;
    qg_store *st = NULL;
    int32_t offset;
    when w;

    if (qg_time_parse(arg, ms, &offset) == 0 || read_when(arg, &w))
        return 0; /* has an offset; or refused already */
    if (w.has_offset)
        return 0;
    if (zone.kind == ZONE_FIXED)
        return place_when(&w.tm, zone.offset_s, 1, ms) ? when_fail(opt, arg)
                                                       : 0;
    if (zone.kind == ZONE_NONE && !zone.data_known) {
        memset(&o, 0, sizeof(o));
        o.path = c->db;
        o.flags = QG_RDONLY;
        cli_guard_store(c->db);
        if (qg_store_open(&o, &st) == 0) {
            learn_data_offset(st);
            qg_store_close(st);
        }
    }
    if (zone.kind == ZONE_NONE && zone.data_known)
        return place_when(&w.tm, zone.data_off_s, 1, ms) ? when_fail(opt, arg)
                                                         : 0;
    return place_when(&w.tm, 0, 0, ms) ? when_fail(opt, arg) : 0;
}

void
cli_progress(const char *what, unsigned long n, int done)
{
    /* Asked once: the export calls this for each of millions of records,
     * and isatty() is a system call. */
    static int tty = -1;

    if (!done && n % 1000 != 0)
        return;
    if (tty < 0)
        tty = isatty(STDERR_FILENO);
    if (!tty)
        return;
    fprintf(stderr, "\r%s: %lu%s", what, n, done ? "\n" : "");
    fflush(stderr);
}

char *
cli_duration(int64_t ms, char *dst, size_t len)
{
    int64_t s = ms / 1000;

    if (ms < 0) {
        snprintf(dst, len, "-");
    } else if (s < 60) {
        snprintf(dst, len, "%" PRId64 "s", s);
    } else if (s < 3600) {
        snprintf(dst, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(dst, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
    } else {
        snprintf(dst, len, "%" PRId64 "d%02" PRId64 "h", s / 86400,
                 s / 3600 % 24);
    }
    return dst;
}

char *
cli_time(int64_t ms, int32_t offset_s, char *dst, size_t len)
{
    char iso[40];

    qg_time_format(ms, offset_s, iso, sizeof(iso));
    /* 2024-03-05T09:00:00+08:00 -> 2024-03-05 09:00:00 +08:00 */
    snprintf(dst, len, "%.10s %.8s %s", iso, iso + 11, iso + 19);
    return dst;
}

/* ms in this process's time zone (TZ, which --tz may have set). */
static char *
in_local_zone(int64_t ms, char *dst, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL)
        return cli_time(ms, 0, dst, len);
    return cli_time(ms, (int32_t)tm.tm_gmtoff, dst, len);
}

char *
cli_event_time(int64_t ms, int32_t offset_s, char *dst, size_t len)
{
    if (zone.kind == ZONE_FIXED)
        return cli_time(ms, zone.offset_s, dst, len);
    if (zone.kind == ZONE_NAMED)
        return in_local_zone(ms, dst, len);
    return cli_time(ms, offset_s, dst, len);
}

char *
cli_local_time(int64_t ms, char *dst, size_t len)
{
    if (zone.kind != ZONE_NONE)
        return cli_event_time(ms, 0, dst, len);
    if (zone.data_known)
        return cli_time(ms, zone.data_off_s, dst, len);
    return in_local_zone(ms, dst, len);
}

int
cli_zone_given(void)
{
    return zone.kind != ZONE_NONE;
}

char *
cli_ticket_ids(const qg_ticket *t, char *dst, size_t len)
{
    if (t->live_queue_id && t->appointment_id)
        snprintf(dst, len, "lq:%" PRId64 " appt:%" PRId64, t->live_queue_id,
                 t->appointment_id);
    else if (t->live_queue_id)
        snprintf(dst, len, "lq:%" PRId64, t->live_queue_id);
    else
        snprintf(dst, len, "appt:%" PRId64, t->appointment_id);
    return dst;
}

int
cli_run(cli *c, const cli_command *cmd, int argc, char **argv)
{
    qg_store *st = NULL;
    int opt, rc;

    if (cmd->main)
        return cmd->main(c, argc, argv);
    optind = 1;
    while ((opt = getopt_long(argc, argv, cmd->shortopts ? cmd->shortopts : "h",
                              cmd->options, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        if (opt == 'h') {
            fputs(cmd->usage, stdout);
            return EXIT_OK;
        }
        /* getopt has said what was wrong with an option it refused. */
        if (opt == '?' || opt == ':' || cmd->option == NULL)
            return EXIT_FAILED;
        if ((rc = cmd->option(c, opt, optarg)))
            return rc;
    }
    if (!cmd->args && optind != argc)
        return cli_fail("%s: unexpected argument \"%s\"", cmd->name,
                        argv[optind]);
    if (cmd->ready && (rc = cmd->ready(c, argc - optind, argv + optind)))
        return rc;
    if (cmd->check_store)
        c->check_store = 1;
    if (!cmd->no_config && (rc = cli_finish_options(c)))
        return rc;
    if (cmd->prepare && (rc = cmd->prepare(c)))
        goto done;
    if (cmd->store != CLI_NO_STORE &&
        (rc = cli_open_store(c, cmd->store == CLI_READ && !c->write, &st)))
        goto done;
    if (cmd->store != CLI_READ || (rc = cli_source_known(c, st)) == 0)
        rc = cmd->run(c, st, argc - optind, argv + optind);
    qg_store_close(st);
done:
    if (cmd->done)
        cmd->done(c);
    return rc;
}

static void
usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: qgate COMMAND [OPTIONS] [ARGS]\n\n"
               "Commands:\n");
    for (i = 0; i < sizeof(commands) / sizeof(*commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f,
            "  %-10s %s\n\n"
            "Options every command takes:\n"
            "  --db DIR           the store (default: $QGATE_DB, else "
            "./var/qgate)\n"
            "  --config FILE      JSON: db, secret_file, mapping, "
            "durability,\n"
            "                     require_signature, reorder_window, "
            "max_skew,\n"
            "                     and serve's own keys (other commands "
            "skip them)\n"
            "  --tz ZONE          show times in ZONE (Asia/Singapore, UTC, "
            "+08:00)\n"
            "                     instead of the offset Chup sent\n"
            "  --json             machine-readable output\n"
            "  --help             the command's own help\n\n"
            "Exit status: 0 success, 1 a problem was found (a refused "
            "delivery),\n2 usage, I/O or store failure.\n",
            "help [CMD]", "this text, or CMD's own help");
}

/* Edit distance with adjacent transpositions (optimal string alignment):
 * "histroy" is one step from "history", as a typist sees it. */
static size_t
distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j, d[16][16], best;

    if (la > 15 || lb > 15)
        return (size_t)-1; /* no command name is that long */
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* A word that is no command: name it, and the nearest command if it is
 * near enough to be a typo.  The full usage would bury the one line that
 * matters. */
static int
unknown_command(const char *name)
{
    size_t i, d, best = (size_t)-1, at = 0;

    for (i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
        if ((d = distance(name, commands[i]->name)) < best) {
            best = d;
            at = i;
        }
    }
    /* Two edits turn "list" into "lost" and "show" into "stop": within
     * two, but not more than a third of the word. */
    if (best <= 2 && best * 3 <= strlen(name))
        return cli_fail("unknown command \"%s\" (did you mean \"%s\"?)", name,
                        commands[at]->name);
    return cli_fail("unknown command \"%s\"; qgate help lists the commands",
                    name);
}

int
main(int argc, char **argv)
{
    /* Static, so zero without a memset: the 64 KB of config strings in
     * it are touched only when a config file fills them, not paged in at
     * each start (docs/PERFORMANCE.md, "CLI start-up"). */
    static cli c;
    size_t i;
    int rc;

    /* Under a file-size limit (ulimit -f, systemd's LimitFSIZE=) a write
     * past it raises SIGXFSZ, whose default action kills the process: the
     * gate would die in the middle of a commit, with deliveries in flight
     * unanswered.  Ignored, the write fails with EFBIG instead, and that is
     * an error path like any other: 503 in the gate, exit 2 here. */
    signal(SIGXFSZ, SIG_IGN);
    c.prog = "qgate";
    c.since = INT64_MIN;
    c.until = INT64_MAX;
    c.reorder_window = -1;
    c.max_skew = -1;
    c.others = serve_options;
    c.nothers = serve_noptions;
    cli_guard_install();
    if (argc < 2) {
        usage(stderr);
        return EXIT_FAILED;
    }
    if ((strcmp(argv[1], "help") == 0 &&
         (argc < 3 || strcmp(argv[2], "--help") == 0 ||
          strcmp(argv[2], "help") == 0)) ||
        strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    /* qgate help CMD is qgate CMD --help. */
    if (strcmp(argv[1], "help") == 0) {
        static char help_opt[] = "--help";
        char *help_argv[] = {argv[2], help_opt, NULL};

        if (argc > 3)
            return cli_fail("help: one command at a time, not \"%s\"", argv[3]);
        for (i = 0; i < sizeof(commands) / sizeof(*commands); i++)
            if (strcmp(argv[2], commands[i]->name) == 0)
                return cli_run(&c, commands[i], 2, help_argv);
        return unknown_command(argv[2]);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qgate %s (machine %s)\n", qg_version(), qg_machine_version());
        return EXIT_OK;
    }
    for (i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
        if (strcmp(argv[1], commands[i]->name) != 0)
            continue;
        rc = cli_run(&c, commands[i], argc - 1, argv + 1);
        errno = 0;
        /* Output that did not reach its file is a failure, not a success
         * with a short file: stdio remembers the error, and the last
         * buffer is written here. */
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = cli_fail("standard output: %s",
                          errno ? strerror(errno) : "write error");
        return rc;
    }
    return unknown_command(argv[1]);
}
