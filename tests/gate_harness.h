/*
 * gate_harness.h - what the end-to-end tests of `qgate serve`
 * (check_gate_*.c) share: the gate as a child process, libcurl as Chup, a
 * fake HIS on libmicrohttpd, signed deliveries, the store read afterwards.
 *
 * The gate runs as a child process (QGATE_BIN) on 127.0.0.1 with a port
 * of the kernel's choosing, read from its "listening" log line, on a store
 * of its own in a fresh directory.  Every test stops it with SIGTERM and
 * requires exit status 0: a graceful stop is part of what is tested.  The
 * store is read with the library, QG_RDONLY, once the gate has stopped.
 *
 * Every wait is bounded (WAIT_MS unless said otherwise) and every loop is
 * bounded in count.  When a test fails, its directory (store and gate log)
 * is kept and named on stderr.
 *
 * Each case's binary starts only what its tests start: nothing runs
 * until a test calls gate_start() or his_start().
 */
#ifndef QG_GATE_HARNESS_H
#define QG_GATE_HARNESS_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>

#include "testutil.h"

#define WALK_IN        "visits/walk-in/"
#define NO_SHOW        "visits/no-show-cancelled/"
#define WEBHOOK        "/webhooks/chup"
#define WAIT_MS        10000 /* the longest any one condition is waited for */
#define TOKEN_FILE_MAX 4096  /* the longest bearer token (docs/gate.md) */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ----- time ------------------------------------------------------------- */

int64_t now_ms(void);

void sleep_ms(long ms);

/* Polls cond every 20 ms for at most ms milliseconds; ok is its last
 * value. */
#define WAIT_FOR(ok, cond, ms)                                                 \
    do {                                                                       \
        int64_t until_ = now_ms() + (ms);                                      \
        while (!((ok) = (cond)) && now_ms() < until_)                          \
            sleep_ms(20);                                                      \
    } while (0)

/* ----- the test's directory --------------------------------------------- */

extern char work[64];    /* the test's directory */
extern char db[96];      /* the gate's store, work/db */
extern char logpath[96]; /* the gate's stderr, work/gate.log */
extern pid_t gate_pid;   /* the running gate, or 0 */
extern int gate_port;    /* its port */

/* ----- signed deliveries ------------------------------------------------ */

extern char secret[256];

/* Signs what is built from now on with key (NUL-terminated) instead of
 * fixtures/secret; NULL goes back to it.  Not while another thread
 * signs. */
void secret_use(const char *key);

/* walk-in/01's payload with the parts a step changes left open. */
#define STEP_FMT                                                               \
    "{\"event\":\"%s\",\"timestamp\":\"%s\",\"data\":{\"id\":%lld,"            \
    "\"appointment_id\":null,\"appointment_date\":null,"                       \
    "\"appointment_time\":null,\"registered_client_id\":4101,"                 \
    "\"registered_client_name\":\"Nurul Aisyah binti Hassan\","                \
    "\"registered_client_phone\":\"60123387412\","                             \
    "\"client_name\":\"Nurul Aisyah binti Hassan\",\"state\":%s,"              \
    "\"state_name\":\"%s\",\"service_id\":220,\"service_name\":"               \
    "\"Registration\",\"staff_id\":246,\"staff_name\":\"Registration\","       \
    "\"notes\":[],\"created_at\":\"2024-03-05T09:00:00+08:00\","               \
    "\"updated_at\":\"%s\"}}"

/* A signed live-queue step of entry id (NULL when out of memory). */
char *step_body(long long id, const char *event, const char *ts,
                const char *state, const char *state_name, size_t *len);

/* Served, for entry id: held while the entry has not joined. */
char *served_body(long long id, size_t *len);

/* Joining the live queue as entry id, as walk-in/01 does for 30001. */
char *join_body(long long id, size_t *len);

/* ----- the gate --------------------------------------------------------- */

off_t file_size(const char *path);

/* The text of path from offset `from` (at most 1 MiB), malloc'd. */
char *read_from(const char *path, off_t from);

/* The gate's exit status, waited for at most ms; -1 if it is still up. */
int gate_wait_exit(long ms);

/*
 * Runs `qgate cmd` on this test's store: cmd is "serve" (given
 * --secret-file fixtures/secret, --listen 127.0.0.1:0 and
 * --reorder-window 0) or "console" (given --listen 127.0.0.1:0), then the
 * options in extra (NULL-terminated, may be NULL); stdout and stderr
 * appended to gate.log; gate_pid is the process.  fsize > 0 limits the
 * size of any file it writes (RLIMIT_FSIZE): a disk that refuses to grow.
 * SIGXFSZ is left at its default action, which kills, as under systemd's
 * LimitFSIZE=: the gate must ignore it itself.  Only the soft limit is
 * set, so that fsize_raise() can lift it.
 */
void gate_spawn_cmd(const char *cmd, const char *const *extra, long fsize);

/* gate_spawn_cmd(), then waits for the "listening" line: gate_port is
 * the port; gate_stop() stops it. */
void gate_start_cmd(const char *cmd, const char *const *extra, long fsize);

/* gate_spawn_cmd() and gate_start_cmd() of `qgate serve`. */
void gate_spawn(const char *const *extra, long fsize);
void gate_start_limited(const char *const *extra, long fsize);

void gate_start(const char *const *extra);

/* SIGTERM: the gate finishes what is in flight and exits 0. */
void gate_stop(void);

void gate_kill(void);

/* Runs `qgate ARGS...` to completion; stdout into out.  Returns the exit
 * status. */
int run_cli(const char *const *args, char *out, size_t cap);

/* ----- HTTP, as Chup --------------------------------------------------- */

typedef struct answer {
    CURLcode rc;
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    char head[4096];
    size_t hlen;
    json_object *json; /* the body parsed, or NULL */
    int64_t ms;        /* from sending to the whole answer */
} answer;

/* What an upload sends: data, or total bytes of 'x' when data is NULL. */
typedef struct source {
    const char *data;
    size_t total, pos;
} source;

/*
 * One request to 127.0.0.1:port.  hdrs: extra header lines, NULL-ended.
 * With src, the body is read from it (chunked unless a Content-Length of
 * src->total is announced with `announce`).  It never fails the test, so
 * threads may call it.
 */
CURLcode http_full(int port, const char *method, const char *path,
                   const char *const *hdrs, const char *body, size_t len,
                   source *src, int announce, answer *a);

CURLcode http_to(int port, const char *method, const char *path,
                 const char *const *hdrs, const char *body, size_t len,
                 answer *a);

void answer_free(answer *a);

/* A request to the gate that must get an answer. */
void http(const char *method, const char *path, const char *const *hdrs,
          const char *body, size_t len, answer *a);

extern const char *const as_json[];

void post_fixture(const char *rel, answer *a);

const char *jstr(json_object *o, const char *key);

int64_t jint(json_object *o, const char *key);

/* The value of o[key] as JSON text (a string quoted), "" when absent;
 * valid while o is. */
const char *jtext(json_object *o, const char *key);

int same(const char *a, const char *b);

/* The value of header `name` in the answer, or "" (copied into out). */
const char *head_value(const answer *a, const char *name, char *out,
                       size_t cap);

/* The answer has this status and JSON body; verdict NULL for answers that
 * name no verdict (413, 415, 405, 404, 503). */
void expect(const answer *a, long status, const char *verdict, const char *code,
            const char *what);

/* The status a verdict and code are answered with (qgate.1, serve). */
long status_for(const char *verdict, const char *code);

/* ----- the fake HIS ----------------------------------------------------- */

#define HIS_MAX 60000

enum his_mode { HIS_ACCEPT, HIS_FAIL, HIS_HANG };

typedef struct his_req {
    char method[8], url[64], type[64], verdict[16];
    /* X-Qgate-Delivery, "<store id>-<ticket>-<seq>", and its part after
     * the store id ("<ticket>-<seq>"; "" when it has no such form) */
    char delivery[96], dkey[48];
    char ticket[24], seq[16], event[32], from[40], to[40];
    char lq[24], pos[16], late[8], source[40];
    /* Standard Webhooks headers, X-Qgate-Attempt and User-Agent */
    char wh_id[96], wh_ts[24], wh_sig[512], attempt[16], agent[64];
    char *body;
    size_t len;
    int status; /* what the HIS answered: 200, 500; 0 when it hung */
} his_req;

typedef struct his_state {
    struct MHD_Daemon *d;
    int port;
    char url[64];
    atomic_int mode;
    atomic_int stopping;
    long hang_ms;
    pthread_mutex_t lock;
    his_req *reqs; /* in the order they were answered */
    size_t n, dropped;
} his_state;
extern his_state his;

void his_start(int mode);

/* Requests the HIS answered with status (-1: all of them). */
size_t his_count(int status);

/*
 * The HIS's requests for ticket t, in the order it answered them: each
 * asks for the step after the last one acknowledged (a retry of it, or
 * the next once it was acknowledged), under the delivery id
 * "<store id>-t-seq", the store id 32 hex digits, the same throughout.
 * Returns the last step acknowledged.
 */
uint32_t his_ticket_order(uint64_t t);

/* ----- the store, read-only --------------------------------------------- */

qg_store *store_ro(void);

uint64_t ticket_of(qg_store *st, long long lq);

/* The outbox (dead = 0) or the dead list, in id order. */
size_t outbox_list(qg_store *st, int dead, qg_outbox_entry *out, size_t cap);

/* ----- metrics ---------------------------------------------------------- */

char *scrape(void);

/* The value of the sample written exactly `sample` (name and labels), or
 * NAN when there is none. */
double sample_value(const char *text, const char *sample);

double gate_sample(const char *sample);

/* ----- fixture lists --------------------------------------------------- */

typedef struct row {
    char col[6][96];
    int n;
} row;

/* The rows of an EXPECT file, columns split on blanks. */
size_t read_expect(const char *rel, row *rows, size_t cap);

/* Posts, in file-name order, the files of rel's directory that come
 * before rel; each must be accepted. */
void post_before(const char *rel);

/* ----- fixtures --------------------------------------------------------- */

/* The checked fixture of every case: a fresh directory, the secret,
 * libcurl; teardown stops the gate and the HIS and removes the directory
 * (kept, and named on stderr, when a test fails). */
void setup(void);
void teardown(void);

extern const char *const walk_in_files[];

void post_accepted(const char *rel);

/* Waits until the HIS acknowledged n requests and the gate's outbox is
 * empty. */
void wait_delivered(size_t n, long ms);

/* A TCP connection to the gate, or -1. */
int connect_gate(void);

#endif
