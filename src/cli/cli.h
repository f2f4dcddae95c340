/*
 * cli.h - what the qgate subcommands share.
 */
#ifndef QG_CLI_H
#define QG_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "damage.h" /* the exit codes, the damage message */
#include "qgate.h"
#include "render.h"

/* How a command's own option takes its value. */
typedef enum cli_type {
    CLI_COMMON, /* a flag cli_common_option() takes: listed for the help */
    CLI_CUSTOM, /* a flag the command reads itself; no config key of its own */
    CLI_STRING, /* a const char * */
    CLI_PATH,   /* the same; from the config file, relative to its folder */
    CLI_NUMBER, /* a long, above 0 */
    CLI_SWITCH  /* an int, set by the flag or by the key's true */
} cli_type;

/*
 * One option of a command's own, as data: its flag, its config key, where
 * its value goes, its default and its help line.  A command's table drives
 * its getopt parsing, its defaults and its --help; the config loader takes
 * the keys from it (cli_finish_options()).
 */
typedef struct cli_option {
    const char *flag; /* without the leading "--" */
    const char *arg;  /* the value's name in the help; NULL: takes none */
    cli_type type;
    const char *key;  /* the config key; NULL: none of the command's own */
    size_t offset;    /* of the value in the command's struct */
    const char *def;  /* the default, as the flag would give it; or NULL */
    const char *help; /* lines; "{}" stands for the default */
} cli_option;

typedef struct cli {
    const char *prog;
    const char *db;          /* --db, QGATE_DB, config "db", ./var/qgate */
    const char *config;      /* --config FILE */
    const char *secret_file; /* --secret-file, config "secret_file" */
    const char *mapping;     /* config "mapping" */
    int no_verify;           /* --no-verify, config require_signature */
    int check_store;         /* walk every page at open, also read-only */
    int write;               /* open the store read-write (CLI_READ) */
    int json;                /* --json */
    int64_t since, until;    /* --since, --until; INT64_MIN, INT64_MAX */
    const char *since_arg;   /* as given, placed by cli_finish_options() */
    const char *until_arg;
    const char *tz;         /* --tz: an IANA name, UTC or +08:00; NULL: none */
    int bad_option;         /* a value refused, reported by finish */
    const char *durability; /* "sync", "group", "nosync"; NULL: sync */
    /* --reorder-window, config "reorder_window", in seconds; -1 until
     * given, then cli_finish_options() sets the default. */
    int64_t reorder_window;
    int64_t max_skew; /* --max-skew, config max_skew; -1: default */
    /* A command's own options (serve's), whose config keys the loader
     * takes into the struct at own_dest; NULL for the other commands. */
    const cli_option *own;
    size_t nown;
    void *own_dest;
    /* Options of another command (serve's) whose config keys this one
     * reads past in a shared config file; main() sets them. */
    const cli_option *others;
    size_t nothers;
    char strings[16][4096]; /* storage for strings from the config file */
    size_t nstrings;
    /* --source NAME: the source whose tickets a command reads, or whose
     * deliveries apply and check judge; NULL: every source (readers), the
     * default source (apply, check). */
    const char *source;
    /* serve: config "sources" as JSON text, the gate's to read
     * (options.c) and free (sources_free()).  NULL when absent. */
    char *sources;
} cli;

/* Options every subcommand takes; cli_common_option() handles them. */
#define OPT_DB          1000
#define OPT_CONFIG      1001
#define OPT_JSON        1002
#define OPT_SECRET_FILE 1003
#define OPT_NO_VERIFY   1004
#define OPT_TZ          1009 /* --tz ZONE: the zone times are shown in */
#define CLI_COMMON_OPTIONS                                                     \
    {"db", required_argument, NULL, OPT_DB},                                   \
        {"config", required_argument, NULL, OPT_CONFIG},                       \
        {"json", no_argument, NULL, OPT_JSON},                                 \
        {"secret-file", required_argument, NULL, OPT_SECRET_FILE},             \
        {"no-verify", no_argument, NULL, OPT_NO_VERIFY},                       \
        {"tz", required_argument, NULL, OPT_TZ},                               \
    {                                                                          \
        "help", no_argument, NULL, 'h'                                         \
    }

/* The time window of the audit commands that take one; handled by
 * cli_common_option() too, into c->since and c->until (milliseconds). */
#define OPT_SINCE 1005
#define OPT_UNTIL 1006
#define CLI_SINCE_OPTION                                                       \
    {                                                                          \
        "since", required_argument, NULL, OPT_SINCE                            \
    }
#define CLI_UNTIL_OPTION                                                       \
    {                                                                          \
        "until", required_argument, NULL, OPT_UNTIL                            \
    }

/* The reorder window of apply, check and serve; handled by
 * cli_common_option() into c->reorder_window. */
#define OPT_REORDER_WINDOW 1007
#define CLI_REORDER_OPTION                                                     \
    {                                                                          \
        "reorder-window", required_argument, NULL, OPT_REORDER_WINDOW          \
    }
/* A number's macro as a string literal, for the --help texts. */
#define CLI_STR(x)  #x
#define CLI_XSTR(x) CLI_STR(x)
/* 20 minutes: docs/assumptions.md says why. */
#define CLI_DEFAULT_REORDER_WINDOW 1200
#define CLI_MAX_REORDER_WINDOW     31536000

/* How far ahead of our clock a step may be dated (apply, check, serve);
 * handled by cli_common_option() too, into c->max_skew (seconds). */
#define OPT_MAX_SKEW 1008
#define CLI_MAX_SKEW_OPTION                                                    \
    {                                                                          \
        "max-skew", required_argument, NULL, OPT_MAX_SKEW                      \
    }

/* --source NAME, of the commands that read tickets and of apply and
 * check; handled by cli_common_option() into c->source, name checked. */
#define OPT_SOURCE 1010
#define CLI_SOURCE_OPTION                                                      \
    {                                                                          \
        "source", required_argument, NULL, OPT_SOURCE                          \
    }

/* Returns 1 when opt was a common option (and records it), else 0.  A
 * value it refuses is reported at once and fails cli_finish_options(). */
int cli_common_option(cli *c, int opt, const char *arg);

/* After getopt: fails if an option's value was refused, then loads the
 * config file.  Returns 0 or EXIT_FAILED. */
int cli_finish_options(cli *c);

/* Sets the command's own option o in dest, unless already set: flags are
 * read first, then the config file, then the defaults, and the first
 * wins.  str is the value of a string, num that of a number or switch;
 * from_file takes a string into c's storage (a path relative to the
 * config file).  Returns 0, or EXIT_FAILED after saying why. */
int cli_option_set(cli *c, const cli_option *o, void *dest, const char *str,
                   long num, int from_file);

/* Prints "qgate: " and the message to stderr; returns EXIT_FAILED. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open c->db; a damaged store is reported (cli_store_damaged()).  Every
 * open checks the meta and root pages; a writer, and a command that sets
 * c->check_store, also every page (qg_store_check()) before it reads any.
 * Returns 0 or EXIT_FAILED. */
/* Whether --db names a database server (a URI), not a folder. */
int cli_db_is_uri(const char *db);
int cli_open_store(cli *c, int rdonly, qg_store **out);
int cli_open_store_with(cli *c, const qg_store_options *o, qg_store **out);

/* "DB: message" for a store error, or the damage message for
 * QG_ECORRUPT; returns EXIT_FAILED.  c NULL: the store opened last. */
int cli_store_fail(cli *c, int rc);
/* An engine with c's secret, mapping, reorder window and skew; says what
 * went wrong on stderr.  Returns 0 or EXIT_FAILED. */
int cli_new_engine(cli *c, qg_engine **out);
/* The same, with the reason in err and nothing printed (the gate's
 * reload logs it instead). */
int cli_build_engine(cli *c, qg_engine **out, char *err, size_t errlen);
/* As cli_build_engine(), for a source (NULL: the default source) whose
 * secrets are in secret_file (NULL: c's). */
int cli_build_source_engine(cli *c, const char *source, const char *secret_file,
                            qg_engine **out, char *err, size_t errlen);

/* qg_store_ticket_named(), under the name the gate's files still call it
 * by.  Returns 0, QG_NOTFOUND, QG_EINVAL (not such a form) or a store
 * error. */
int cli_lookup_ticket(qg_store *st, const char *arg, qg_ticket *out);
/* Whether a ticket, refusal or held delivery of source is one the
 * command reads: any without --source, else those of that source. */
int cli_in_source(const cli *c, const char *source);
/* Which tickets `qgate list` shows, and the console's ticket search
 * (GET /tickets): the same test in both. */
typedef struct cli_ticket_filter {
    const char *source; /* NULL: any */
    int state;          /* a qg_state; -1: any */
    int64_t service_id; /* the ticket's service (its last step's); 0: any */
    int64_t since;      /* its last step's event time in [since, until) */
    int64_t until;
} cli_ticket_filter;
/* A filter that takes every ticket. */
void cli_ticket_filter_init(cli_ticket_filter *f);
/* Whether t passes f. */
int cli_ticket_matches(const cli_ticket_filter *f, const qg_ticket *t);
/* The same for the ticket numbered ticket: 1, 0, or a QG_E* code.  Keeps
 * the last answer, for walks that go ticket by ticket. */
int cli_ticket_in_source(const cli *c, qg_store *st, uint64_t ticket);
/* --source NAME of a reading command: the store must know the source, or
 * every answer would be empty for a typo.  0 or EXIT_FAILED, said. */
int cli_source_known(const cli *c, qg_store *st);

/* The same in a source (NULL: qg_store_ticket_named()), saying what went
 * wrong on stderr; 0 or EXIT_FAILED. */
int cli_find_ticket(qg_store *st, const char *source, const char *arg,
                    qg_ticket *out);
/* A path from the config file, taken relative to the file's folder, or
 * any other string of it, copied into storage of c. */
const char *cli_config_path(cli *c, const char *value);
const char *cli_config_copy(cli *c, const char *value);

/* "12m04s", "1h02m", "3d04h", "0s". */
char *cli_duration(int64_t ms, char *dst, size_t len);
/* "2024-03-05 09:00:00 +08:00" in the given offset. */
char *cli_time(int64_t ms, int32_t offset_s, char *dst, size_t len);
/* A Chup timestamp: in the offset it was sent with, or in --tz. */
char *cli_event_time(int64_t ms, int32_t offset_s, char *dst, size_t len);
/* A time qgate stamped itself: in --tz, else in the offset of the store's
 * data (learnt when the store is opened), else in local time. */
char *cli_local_time(int64_t ms, char *dst, size_t len);
/* Nonzero when --tz was given: shown times need no offset of their own. */
int cli_zone_given(void);
/* The offset of a ticket's last step (the one at t->last_event_ms).
 * Returns 0 or a store error. */
int cli_ticket_offset(qg_store *st, const qg_ticket *t, int32_t *offset_s);
/* "lq:30002 appt:9101", "lq:30001" or "appt:9101". */
char *cli_ticket_ids(const qg_ticket *t, char *dst, size_t len);

/* Parses --since/--until: "2024-03-05" (midnight), "2024-03-05 09:00" or
 * "...T09:00:00" (in local time here; cli_finish_options() places them
 * again in --tz or the store's offset), or with an offset, "...T09:00+08:00"
 * or "...T09:00:00Z".  Returns 0, or EXIT_FAILED after naming the option
 * and value. */
int cli_parse_when(const char *opt, const char *arg, int64_t *ms);

/* The day "YYYY-MM-DD" names, as --since DAY --until NEXT-DAY read it:
 * [*since, *until) in milliseconds, in --tz, else the offset of st's data,
 * else local time.  Returns 0, or -1 when day is not such a date (nothing
 * printed). */
int cli_day(qg_store *st, const char *day, int64_t *since, int64_t *until);

/* The --help lines of the commands that take --since/--until. */
#define CLI_TIME_HELP                                                          \
    "T: 2024-03-05, 2024-03-05T09:00 or 2024-03-05T09:00+08:00.  A T "         \
    "without an offset\nis read in --tz, else in the offset of the store's "   \
    "newest step, else in local time.\n--tz ZONE (Asia/Singapore, UTC, "       \
    "+08:00): show times in ZONE; by default each\nChup timestamp is shown "   \
    "in "                                                                      \
    "the offset Chup sent it with.\n"

/* A progress line on stderr, when stderr is a terminal: every 1000th
 * call, and once more with done = 1. */
void cli_progress(const char *what, unsigned long n, int done);

/*
 * A command, described once: its name and texts, its options, what it
 * does with the store, and its handlers.  cli_run() does what every
 * command does (getopt, --help, the config file, opening and closing the
 * store, the "unexpected argument" message), then calls run.
 */
typedef enum cli_store_use {
    CLI_NO_STORE, /* opens none, or its own way (apply, check) */
    CLI_READ,     /* read-only, unless an option sets c->write */
    CLI_WRITE     /* read-write */
} cli_store_use;

typedef struct cli_command {
    const char *name;
    const char *summary; /* its line in qgate --help */
    const char *usage;   /* its --help, printed as is */
    /* Every long option it takes, the common ones included, {0} last. */
    const struct option *options;
    const char *shortopts; /* getopt's; NULL: "h" */
    cli_store_use store;
    int check_store; /* also walk every page before reading (verify) */
    int no_config;   /* reads no config file (machine): no store, no engine */
    /* Arguments after the options: 0 takes none (cli_run() refuses any);
     * 1 takes some, and ready checks them. */
    int args;
    /* One of its own options: 0, or EXIT_FAILED after saying why. */
    int (*option)(cli *c, int opt, const char *arg);
    /* After the options, before the config file is read: checks them and
     * the arguments.  0 or EXIT_FAILED.  May be NULL. */
    int (*ready)(cli *c, int argc, char **argv);
    /* After the config file, before the store is opened (an engine, say).
     * 0 or EXIT_FAILED.  May be NULL. */
    int (*prepare)(cli *c);
    /* The command, with the store open as store says (else NULL), and
     * the arguments after the options; cli_run() closes the store.
     * Returns the exit status. */
    int (*run)(cli *c, qg_store *st, int argc, char **argv);
    /* Releases what prepare made, however the command ended.  May be
     * NULL. */
    void (*done)(cli *c);
    /* Instead of all the above: a command that parses its own options
     * (serve). */
    int (*main)(cli *c, int argc, char **argv);
} cli_command;

/* Runs cmd with argv[0] its name; returns the exit status. */
int cli_run(cli *c, const cli_command *cmd, int argc, char **argv);

extern const cli_command cli_apply, cli_check, cli_history, cli_show, cli_list,
    cli_rejected, cli_verify, cli_stats, cli_export, cli_machine, cli_outbox,
    cli_held, cli_backup, cli_purge, cli_seal, cli_db;

int cmd_serve(cli *c, int argc, char **argv);
/* qgate console: the console alone, read-only (src/gate/serve.c); in the
 * qgate program it executes qgate-serve as cmd_serve does. */
int cmd_console(cli *c, int argc, char **argv);
/* serve's options (src/gate/options.c): the other commands read past
 * their config keys in a shared config file. */
extern const cli_option serve_options[];
extern const size_t serve_noptions;

#endif /* QG_CLI_H */
