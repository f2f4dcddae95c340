/*
 * options.c - serve's options: one table gives each its flag, its config
 * key, its type, its default and its help line.
 *
 * The table drives getopt, the config file (the loader in cli.c takes the
 * keys from it, and the other commands read past them), the defaults and
 * --help, so that none of them can name an option or a default the others
 * do not.  docs/gate.md and docs/qgate.1 document the same table.
 *
 * A value is taken from the first of: the flag (the first one given), the
 * config file, the default.
 */
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

#define STR(x)  #x
#define XSTR(x) STR(x)
#define AT(f)   offsetof(gate, f)

/* In the order --help lists them.  CLI_COMMON rows are every command's
 * options, listed here for the help only: cli.c reads them, and applies
 * their defaults. */
const cli_option serve_options[] = {
    {"listen", "HOST:PORT", CLI_STRING, "listen", AT(listen), "127.0.0.1:8080",
     "where to listen, HOST a name or address\n({})"},
    {"path", "PATH", CLI_STRING, "path", AT(path), "/webhooks/chup",
     "the webhook's path ({})"},
    {"secret-file", "F", CLI_COMMON, NULL, 0, NULL,
     "the HMAC secret (required unless"},
    {"insecure-no-signature", NULL, CLI_SWITCH, "insecure_no_signature",
     AT(insecure), NULL, "which accepts unsigned deliveries)"},
    {"db", "DIR", CLI_COMMON, NULL, 0, NULL,
     "the store ($QGATE_DB, ./var/qgate)"},
    /* Its config key is every command's (cli.c), its flag serve's. */
    {"durability", "MODE", CLI_CUSTOM, NULL, 0, "group",
     "sync | group | nosync ({})"},
    {"writemap", NULL, CLI_SWITCH, "writemap", AT(writemap), NULL,
     "LMDB: write the store in its map, not\nthrough the file "
     "(docs/gate.md)"},
    {"max-skew", "S", CLI_COMMON, NULL, 0, NULL,
     "refuse steps dated more than S s ahead\nof this clock (300; 0: no "
     "check)"},
    {"upstream", "URL", CLI_STRING, "upstream", AT(upstream), NULL,
     "the HIS endpoint accepted steps go to"},
    {"upstream-secret-file", "F", CLI_PATH, "upstream_secret_file",
     AT(upstream_secret_file), NULL,
     "Standard Webhooks secrets (whsec_...,\none a line) to sign for the "
     "HIS;\nwithout it nothing is signed"},
    {"upstream-format", "FMT", CLI_STRING, "upstream_format",
     AT(upstream_format), "qgate",
     "the body the HIS gets: qgate (qgate's\nJSON, Chup's inside), chup "
     "(as\nChup sent it) or fhir (a FHIR R4\ntransaction Bundle) ({})"},
    {"fhir-system", "URI", CLI_STRING, "fhir_system", AT(fhir_system), NULL,
     "the base of the FHIR identifier\nsystems (urn:qgate:STORE-ID:default)"},
    {"forwarders", "N", CLI_NUMBER, "forwarders", AT(forwarders), "2",
     "parallel forwarding workers ({})"},
    {"forward-timeout", "S", CLI_NUMBER, "forward_timeout", AT(forward_timeout),
     "10", "per attempt ({})"},
    {"max-age", "S", CLI_NUMBER, "max_age", AT(max_age), "604800",
     "retry for this long, then dead-letter ({})"},
    {"max-body", "BYTES", CLI_NUMBER, "max_body", AT(max_body), "1048576",
     "larger bodies get 413 ({})"},
    {"threads", "N", CLI_NUMBER, "threads", AT(threads), "2",
     "HTTP threads ({})"},
    {"timeout", "S", CLI_NUMBER, "timeout", AT(timeout), "30",
     "idle connection timeout ({}; never 0)"},
    {"request-timeout", "S", CLI_NUMBER, "request_timeout", AT(request_timeout),
     "10",
     "a request's headers and body must be in\nwithin S of its connection "
     "or first\nline, however they trickle ({})"},
    {"max-connections", "N", CLI_NUMBER, "max_connections", AT(max_connections),
     "1024",
     "when all are open, the one waiting\nlongest for a request is closed "
     "({})"},
    {"max-per-address", "N", CLI_NUMBER, "max_per_address", AT(max_per_address),
     "256", "connections from one address ({})"},
    {"token-file", "F", CLI_PATH, "token_file", AT(token_file), NULL,
     "bearer token for GET /tickets/..."},
    {"admin-token-file", "F", CLI_PATH, "admin_token_file",
     AT(admin_token_file), NULL,
     "bearer token for the console's replay\nand retry (POST); not the read "
     "token"},
    {"ready-max-outbox", "N", CLI_NUMBER, "ready_max_outbox",
     AT(ready_max_outbox), "1000",
     "/readyz fails at this backlog when the\nHIS did not take the last "
     "step ({})"},
    {"ready-max-wait", "S", CLI_NUMBER, "ready_max_wait", AT(ready_max_wait),
     "900",
     "/readyz fails when the oldest waiting\nstep is older ({}; 0: no "
     "check)"},
    {"ready-dead-ok", NULL, CLI_SWITCH, "ready_dead_ok", AT(ready_dead_ok),
     NULL, "/readyz ignores the dead list"},
    {"alert-url", "URL", CLI_STRING, "alert_url", AT(alert_url), NULL,
     "POST operational alerts here"},
    {"alert-secret-file", "F", CLI_PATH, "alert_secret_file",
     AT(alert_secret_file), NULL, "whsec_ secrets to sign them, one a line"},
    {"alert-his-down", "S", CLI_NUMBER, "alert_his_down", AT(alert_his_down),
     "300", "alert when the HIS took no step for S\nwhile steps wait ({})"},
    {"alert-refusals", "N", CLI_NUMBER, "alert_refusals", AT(alert_refusals),
     "60", "alert above N refusals a minute ({};\n0: never)"},
    {"alert-interval", "S", CLI_NUMBER, "alert_interval", AT(alert_interval),
     "900", "the same alert at most every S ({})"},
    {"reorder-window", "S", CLI_COMMON, NULL, 0,
     XSTR(CLI_DEFAULT_REORDER_WINDOW),
     "a step not legal yet waits S seconds\nfor an earlier one ({}; 0: "
     "judge on\narrival, hold nothing)"},
    {"retention", "DAYS", CLI_NUMBER, "retention", AT(retention), NULL,
     "purge the raw bodies of steps and\nrefusals older than DAYS, at start "
     "and\ndaily (none: keep them for ever)"},
    {"log", "FILE", CLI_PATH, "log", AT(log), NULL,
     "JSON log lines (stderr); SIGHUP reopens"},
    {"max-unsigned-log", "BYTES", CLI_NUMBER, "max_unsigned_log",
     AT(max_unsigned_log), "67108864",
     "unauthenticated and malformed entries\nof the rejection log stay "
     "under this;\nthe oldest are dropped ({})"},
    {"unsigned-rate", "N", CLI_NUMBER, "unsigned_rate", AT(unsigned_rate), "60",
     "unsigned deliveries a minute per source\naddress; more get 429 ({})"},
    {"unsigned-burst", "N", CLI_NUMBER, "unsigned_burst", AT(unsigned_burst),
     "20", "of which at once ({})"},
    {"config", "FILE", CLI_COMMON, NULL, 0, NULL,
     "the same keys, with '_' for '-'"},
};

#define NOPTIONS (sizeof(serve_options) / sizeof(*serve_options))

const size_t serve_noptions = NOPTIONS;

/* getopt's value for serve_options[i] is OPT_OWN + i. */
#define OPT_OWN 2000

static const char *const durability_names[] = {
    [DURABLE_SYNC] = "sync",
    [DURABLE_GROUP] = "group",
    [DURABLE_NOSYNC] = "nosync",
};

/* Returns 0, or -1 when s names no durability. */
static int
durability_parse(const char *s, durability *out)
{
    size_t i;

    for (i = 0; i < sizeof(durability_names) / sizeof(*durability_names); i++) {
        if (strcmp(s, durability_names[i]) == 0) {
            *out = (durability)i;
            return 0;
        }
    }
    return -1;
}

const char *
durability_name(durability d)
{
    return durability_names[d];
}

/* "  --flag ARG", then the help from column 26 (28 after a flag too long
 * for it), each further line of it indented as far; "{}" in the help is
 * the default. */
static void
print_option(const cli_option *o)
{
    char head[64];
    const char *h;
    int n;

    n = snprintf(head, sizeof(head), "  --%s%s%s", o->flag, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    printf("%-*s", n <= 24 ? 26 : 28, head);
    for (h = o->help; *h; h++) {
        if (*h == '\n') {
            printf("\n%26s", "");
        } else if (h[0] == '{' && h[1] == '}' && o->def) {
            fputs(o->def, stdout);
            h++;
        } else {
            putchar(*h);
        }
    }
    putchar('\n');
}

static void
usage(void)
{
    size_t i;

    printf("usage: qgate serve [OPTIONS]\n\n");
    for (i = 0; i < NOPTIONS; i++)
        print_option(&serve_options[i]);
}

/* Takes one of serve's own flags, or a default given as one. */
static int
set_flag(gate *g, cli *c, const cli_option *o, const char *arg)
{
    char *end;
    long n;
    durability d;

    switch (o->type) {
    case CLI_CUSTOM:
        /* --durability, the one such: checked now, read after the
         * config file (set_defaults()).  The last one given wins. */
        if (durability_parse(arg, &d))
            return cli_fail("--durability \"%s\": expected sync, group or "
                            "nosync",
                            arg);
        c->durability = arg;
        return 0;
    case CLI_NUMBER:
        n = strtol(arg, &end, 10);
        /* The key's name, not the flag's: as the gate always said it. */
        if (*end || end == arg)
            return cli_fail("--%s \"%s\": not a number", o->key, arg);
        return cli_option_set(c, o, g, NULL, n, 0);
    case CLI_STRING:
    case CLI_PATH:
    case CLI_SWITCH:
        return cli_option_set(c, o, g, arg, 1, 0);
    case CLI_COMMON:
        break; /* cli_common_option() took it */
    }
    return 0;
}

/* Every option not set by a flag or the config file takes its default;
 * --durability's goes to c, where every command reads it. */
static int
set_defaults(gate *g, cli *c)
{
    const cli_option *o;
    size_t i;
    int rc;

    for (i = 0; i < NOPTIONS; i++) {
        o = &serve_options[i];
        if (o->def == NULL || o->type == CLI_COMMON)
            continue;
        if (o->type == CLI_CUSTOM) {
            if (c->durability == NULL)
                c->durability = o->def;
        } else if ((rc = set_flag(g, c, o, o->def))) {
            return rc;
        }
    }
    /* Once, here: from now on the gate compares an enum, not strings.
     * The flag and the config loader have both checked the name. */
    if (durability_parse(c->durability, &g->durability))
        return cli_fail("--durability \"%s\": expected sync, group or nosync",
                        c->durability);
    return 0;
}

/* "http://HOST..." or "https://HOST...": the schemes the forwarder
 * speaks, with something where the host goes. */
static int
is_http_url(const char *url)
{
    const char *rest;

    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return 0;
    return *rest != '\0' && strchr("/?#:", *rest) == NULL;
}

/* Paths the gate answers itself, which no webhook may take. */
static int
is_reserved_path(const char *p)
{
    return strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 ||
           strcmp(p, "/metrics") == 0 || strncmp(p, "/tickets/", 9) == 0 ||
           strcmp(p, "/overview") == 0 || strcmp(p, "/machine") == 0 ||
           strcmp(p, "/console") == 0 || strncmp(p, "/console/", 9) == 0;
}

/* The keys a source takes, in the order of its strings in source_read
 * and in gate_source's owned[]. */
enum { S_NAME, S_PATH, S_SECRET, S_UP, S_UPSECRET, S_FORMAT, S_KEYS };
static const char *const source_keys[S_KEYS] = {
    "name",
    "path",
    "secret_file",
    "upstream",
    "upstream_secret_file",
    "upstream_format",
};

/* One object of config "sources", as source_key() reads it. */
typedef struct source_read {
    gate *g;
    size_t i;            /* its index in "sources" */
    char *val[S_KEYS];   /* each key's string, copied; NULL: absent */
    char *wrong[S_KEYS]; /* the JSON of a value that is no string */
} source_read;

/* One key of a source (qg_config_walk()): an unknown key is refused at
 * once; a value that is no string, after every key is known. */
static int
source_key(void *arg, const qg_config_value *v)
{
    source_read *r = arg;
    char **dst;
    size_t k;

    for (k = 0; k < S_KEYS && strcmp(v->key, source_keys[k]) != 0; k++)
        ;
    if (k == S_KEYS)
        return cli_fail("%s: sources[%zu]: key \"%s\": unknown (a "
                        "source takes name, path, secret_file, "
                        "upstream, upstream_secret_file, "
                        "upstream_format)",
                        r->g->c->config, r->i, v->key);
    dst = v->type == QG_CONFIG_STRING ? &r->val[k] : &r->wrong[k];
    if ((*dst = strdup(v->string ? v->string : v->json)) == NULL)
        return cli_fail("out of memory");
    return 0;
}

/* s, a path of the config file, taken relative to the file's folder;
 * frees s.  NULL when out of memory. */
static char *
relative(cli *c, char *s)
{
    const char *slash = strrchr(c->config, '/');
    size_t n;
    char *path;

    if (s[0] == '/' || slash == NULL)
        return s;
    n = (size_t)(slash - c->config) + strlen(s) + 2;
    if ((path = malloc(n)) != NULL)
        snprintf(path, n, "%.*s/%s", (int)(slash - c->config), c->config, s);
    free(s);
    return path;
}

/* Adds the source r read, as gs, which takes its strings. */
static int
add_source(source_read *r, gate_source *gs)
{
    gate *g = r->g;
    cli *c = g->c;
    const char *name = r->val[S_NAME], *up = r->val[S_UP];
    char def_path[64];
    size_t k;

    _Static_assert(sizeof(gs->owned) == sizeof(r->val), "a string per key");
    for (k = 0; k < S_KEYS; k++)
        if (r->wrong[k])
            return cli_fail("%s: sources[%zu]: key \"%s\": value %s is not a "
                            "string",
                            c->config, r->i, source_keys[k], r->wrong[k]);
    if (name == NULL || qg_source_name_check(name) ||
        strcmp(name, QG_SOURCE_DEFAULT) == 0)
        return cli_fail("%s: sources[%zu]: name %s: expected 1 to %d "
                        "lowercase letters, digits, '-' or '_', starting "
                        "with a letter or digit, and not \"%s\"",
                        c->config, r->i, name ? name : "missing",
                        QG_SOURCE_NAME_MAX, QG_SOURCE_DEFAULT);
    for (k = 1; k < g->nsources; k++)
        if (strcmp(g->sources[k].name, name) == 0)
            return cli_fail("%s: sources[%zu]: name \"%s\" is taken by "
                            "sources[%zu]",
                            c->config, r->i, name, k - 1);
    if (r->val[S_PATH] == NULL) {
        snprintf(def_path, sizeof(def_path), "/webhooks/chup/%s", name);
        if ((r->val[S_PATH] = strdup(def_path)) == NULL)
            return cli_fail("out of memory");
    }
    if (r->val[S_PATH][0] != '/' || is_reserved_path(r->val[S_PATH]))
        return cli_fail("%s: source \"%s\": path \"%s\": expected a "
                        "path starting with /, not the gate's own",
                        c->config, name, r->val[S_PATH]);
    if ((r->val[S_SECRET] &&
         (r->val[S_SECRET] = relative(c, r->val[S_SECRET])) == NULL) ||
        (r->val[S_UPSECRET] &&
         (r->val[S_UPSECRET] = relative(c, r->val[S_UPSECRET])) == NULL))
        return cli_fail("out of memory");
    if (r->val[S_SECRET] == NULL && !g->insecure)
        return cli_fail("%s: source \"%s\": no secret_file (each "
                        "source's deliveries are signed with its own)",
                        c->config, name);
    if (up && !is_http_url(up))
        return cli_fail("%s: source \"%s\": upstream \"%s\": expected "
                        "an http:// or https:// URL with a host",
                        c->config, name, up);
    if ((r->val[S_UPSECRET] || r->val[S_FORMAT]) && up == NULL)
        return cli_fail("%s: source \"%s\": upstream_secret_file and "
                        "upstream_format go with its own upstream",
                        c->config, name);
    gs->format = g->format;
    if (r->val[S_FORMAT] &&
        upstream_format_parse(r->val[S_FORMAT], &gs->format))
        return cli_fail("%s: source \"%s\": upstream_format \"%s\": "
                        "expected qgate or chup",
                        c->config, name, r->val[S_FORMAT]);
    gs->name = name;
    gs->path = r->val[S_PATH];
    gs->secret_file = r->val[S_SECRET];
    gs->upstream = up;
    gs->upstream_secret_file = r->val[S_UPSECRET];
    memcpy(gs->owned, r->val, sizeof(gs->owned));
    memset(r->val, 0, sizeof(r->val));
    g->nsources++;
    return 0;
}

/* One object of config "sources" (qg_config_walk()). */
static int
read_source(void *arg, const qg_config_value *v)
{
    gate *g = arg;
    source_read r = {.g = g, .i = v->index};
    size_t k;
    int rc;

    if (v->count > GATE_SOURCES - 1)
        return cli_fail("%s: key \"sources\": %zu sources; a gate serves at "
                        "most %d besides the default one",
                        g->c->config, v->count, GATE_SOURCES - 1);
    if (v->type != QG_CONFIG_OBJECT)
        return cli_fail("%s: sources[%zu]: expected an object", g->c->config,
                        v->index);
    if ((rc = qg_config_walk(v->json, QG_CONFIG_OBJECT, source_key, &r)) < 0)
        rc = cli_fail("%s: sources[%zu]: %s", g->c->config, v->index,
                      qg_strerror(rc));
    if (rc == 0)
        rc = add_source(&r, &g->sources[g->nsources]);
    for (k = 0; k < S_KEYS; k++) {
        free(r.val[k]);
        free(r.wrong[k]);
    }
    return rc;
}

/*
 * Config "sources": an array of objects, each one Chup account with its
 * name, path (default /webhooks/chup/NAME), secret_file and, optionally,
 * its own upstream, upstream_secret_file and upstream_format.  Read into
 * g->sources[1...]; source 0 is the default source (--path,
 * --secret-file).
 */
static int
read_sources(gate *g, cli *c)
{
    int rc;

    g->sources[0].name = QG_SOURCE_DEFAULT;
    g->sources[0].path = g->path;
    g->nsources = 1;
    if (c->sources == NULL)
        return 0;
    rc = qg_config_walk(c->sources, QG_CONFIG_ARRAY, read_source, g);
    if (rc == QG_ECONFIG)
        return cli_fail("%s: key \"sources\": expected an array of objects",
                        c->config);
    if (rc < 0)
        return cli_fail("%s: key \"sources\": %s", c->config, qg_strerror(rc));
    return rc;
}

/* Which sources are served, and where their steps go. */
static int
check_sources(gate *g, cli *c)
{
    size_t i, k;

    /* The default source without a secret is not served when others are:
     * a gate of named sources needs no --secret-file. */
    if (!g->insecure && c->secret_file == NULL)
        g->sources[0].path = NULL;
    if (g->sources[0].path == NULL && g->nsources == 1)
        return cli_fail("serve: no secret: give --secret-file FILE (or "
                        "--insecure-no-signature to accept unsigned "
                        "deliveries)");
    for (i = 0; i < g->nsources; i++)
        for (k = 0; k < i; k++)
            if (g->sources[i].path && g->sources[k].path &&
                strcmp(g->sources[i].path, g->sources[k].path) == 0)
                return cli_fail("source \"%s\": path \"%s\" is source "
                                "\"%s\"'s already",
                                g->sources[i].name, g->sources[i].path,
                                g->sources[k].name);
    g->forwarding = g->upstream != NULL;
    for (i = 1; i < g->nsources; i++)
        g->forwarding |= g->sources[i].upstream != NULL;
    /* Steps stored and never sent would pile up unseen. */
    for (i = 0; g->forwarding && i < g->nsources; i++)
        if (g->sources[i].path && g->sources[i].upstream == NULL &&
            g->upstream == NULL)
            return cli_fail("source \"%s\" has no upstream while others "
                            "have one: give it one, or give --upstream for "
                            "every source without",
                            g->sources[i].name);
    return 0;
}

/* The options taken together, whichever way each came. */
static int
check(gate *g, cli *c)
{
    int rc;

    if (g->path[0] != '/')
        return cli_fail("--path \"%s\": must start with /", g->path);
    /* Checked now rather than on the first forward, hours later, when
     * every accepted step would go dead for a typo. */
    if (g->upstream && !is_http_url(g->upstream))
        return cli_fail("--upstream \"%s\": expected an http:// or https:// "
                        "URL with a host",
                        g->upstream);
    if (g->alert_url && !is_http_url(g->alert_url))
        return cli_fail("--alert-url \"%s\": expected an http:// or "
                        "https:// URL with a host",
                        g->alert_url);
    if (g->alert_his_down < 1 || g->alert_interval < 1)
        return cli_fail("--alert-his-down and --alert-interval: at least 1 "
                        "second");
    if (g->ready_max_wait < 0 || g->alert_refusals < 0)
        return cli_fail("--ready-max-wait and --alert-refusals: 0 or more");
    if (upstream_format_parse(g->upstream_format, &g->format))
        return cli_fail("--upstream-format \"%s\": expected qgate, chup or "
                        "fhir",
                        g->upstream_format);
    if (g->fhir_system && qg_fhir_system_check(g->fhir_system))
        return cli_fail("--fhir-system \"%s\": " QG_FHIR_SYSTEM_RULE,
                        g->fhir_system);
    if (g->retention > 36500)
        return cli_fail("--retention %ld: at most 36500 days", g->retention);
    if ((rc = read_sources(g, c)))
        return rc;
    return check_sources(g, c);
}

void
sources_free(gate *g)
{
    size_t i, k;

    for (i = 0; i < GATE_SOURCES; i++)
        for (k = 0; k < sizeof(g->sources[i].owned) / sizeof(char *); k++) {
            free(g->sources[i].owned[k]);
            g->sources[i].owned[k] = NULL;
        }
    free(g->c->sources);
    g->c->sources = NULL;
}

int
options_parse(gate *g, cli *c, int argc, char **argv)
{
    static const struct option common[] = {
        CLI_COMMON_OPTIONS, CLI_REORDER_OPTION, CLI_MAX_SKEW_OPTION};
    struct option opts[sizeof(common) / sizeof(*common) + NOPTIONS + 1];
    size_t i, n = 0;
    int opt, rc;

    for (i = 0; i < sizeof(common) / sizeof(*common); i++)
        opts[n++] = common[i];
    for (i = 0; i < NOPTIONS; i++) {
        if (serve_options[i].type == CLI_COMMON)
            continue;
        opts[n].name = serve_options[i].flag;
        opts[n].has_arg =
            serve_options[i].arg ? required_argument : no_argument;
        opts[n].flag = NULL;
        opts[n++].val = OPT_OWN + (int)i;
    }
    memset(&opts[n], 0, sizeof(opts[n]));

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg))
            continue;
        if (opt == 'h') {
            usage();
            return -1;
        }
        if (opt < OPT_OWN || opt >= OPT_OWN + (int)NOPTIONS)
            return EXIT_FAILED; /* getopt has said what was wrong */
        if ((rc = set_flag(g, c, &serve_options[opt - OPT_OWN], optarg)))
            return rc;
    }
    if (optind != argc)
        return cli_fail("serve: unexpected argument \"%s\"", argv[optind]);
    c->own = serve_options;
    c->nown = NOPTIONS;
    c->own_dest = g;
    if ((rc = cli_finish_options(c)) || (rc = set_defaults(g, c)))
        return rc;
    return check(g, c);
}
