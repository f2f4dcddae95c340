/*
 * check_serve.c - `qgate serve` end to end, as its three parties see it:
 * Chup posting webhooks (libcurl), the HIS receiving accepted steps (a
 * fake one in this process, libmicrohttpd) and the operator reading the
 * store, the metrics and the outbox afterwards.
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
 */
#define _GNU_SOURCE /* prlimit() */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "testutil.h"

#define WALK_IN        "visits/walk-in/"
#define NO_SHOW        "visits/no-show-cancelled/"
#define WEBHOOK        "/webhooks/chup"
#define WAIT_MS        10000 /* the longest any one condition is waited for */
#define TOKEN_FILE_MAX 4096  /* the longest bearer token (docs/gate.md) */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ----- time ------------------------------------------------------------- */

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Polls cond every 20 ms for at most ms milliseconds; ok is its last
 * value. */
#define WAIT_FOR(ok, cond, ms)                                                 \
    do {                                                                       \
        int64_t until_ = now_ms() + (ms);                                      \
        while (!((ok) = (cond)) && now_ms() < until_)                          \
            sleep_ms(20);                                                      \
    } while (0)

/* ----- the test's directory --------------------------------------------- */

static char work[64];     /* the test's directory */
static char db[96];       /* the gate's store, work/db */
static char logpath[96];  /* the gate's stderr, work/gate.log */
static pid_t gate_pid;    /* the running gate, or 0 */
static int gate_port;     /* its port */
static int passed;        /* teardown ran: keep nothing */
static int exit_hook_set; /* at_exit() is registered in this process */

static void
remove_tree(const char *dir, int depth)
{
    char path[512];
    struct dirent *e;
    struct stat sb;
    DIR *d;

    if ((d = opendir(dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (depth > 0 && lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(path, depth - 1);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A failed assertion exits the test's process without its teardown: the
 * gate must not outlive it, and its log is worth keeping. */
static void
at_exit(void)
{
    if (gate_pid > 0) {
        kill(gate_pid, SIGKILL);
        waitpid(gate_pid, NULL, 0);
        gate_pid = 0;
    }
    if (!passed && work[0])
        fprintf(stderr, "check_serve: kept %s (store and gate.log)\n", work);
}

/* ----- signed deliveries ------------------------------------------------ */

static char secret[256];
static size_t secret_len;

static void
secret_load(void)
{
    size_t len;
    char *key = tu_fixture("secret", &len);

    if (len > 0 && key[len - 1] == '\n')
        len--;
    ck_assert(len > 0 && len < sizeof(secret));
    memcpy(secret, key, len);
    secret_len = len;
    free(key);
}

/*
 * {"payload":P,"signature":"H"}\n with H the lowercase hex HMAC-SHA256 of
 * P's exact bytes (fixtures/README.md).  Returns a malloc'd body, or NULL
 * when out of memory; it never fails the test, so threads may call it.
 */
static char *
sign(const char *payload, size_t plen, size_t *len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1], *body;
    size_t cap = plen + sizeof(hex) + 64;
    unsigned maclen = 0, i;
    int n;

    if (HMAC(EVP_sha256(), secret, (int)secret_len,
             (const unsigned char *)payload, plen, mac, &maclen) == NULL)
        return NULL;
    for (i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    if ((body = malloc(cap)) == NULL)
        return NULL;
    n = snprintf(body, cap, "{\"payload\":%.*s,\"signature\":\"%s\"}\n",
                 (int)plen, payload, hex);
    *len = (size_t)n;
    return body;
}

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
static char *
step_body(long long id, const char *event, const char *ts, const char *state,
          const char *state_name, size_t *len)
{
    char payload[2048];
    int n = snprintf(payload, sizeof(payload), STEP_FMT, event, ts, id, state,
                     state_name, ts);

    if (n < 0 || (size_t)n >= sizeof(payload))
        return NULL;
    return sign(payload, (size_t)n, len);
}

/* Served, for entry id: held while the entry has not joined. */
static char *
served_body(long long id, size_t *len)
{
    return step_body(id, "live_queue_updated", "2024-03-05T09:34:00+08:00",
                     "{\"name\":\"SERVED\",\"value\":5}", "Served", len);
}

/* Joining the live queue as entry id, as walk-in/01 does for 30001. */
static char *
join_body(long long id, size_t *len)
{
    return step_body(id, "live_queue_created", "2024-03-05T09:00:00+08:00", "1",
                     "In Queue", len);
}

/* ----- the gate --------------------------------------------------------- */

static off_t
file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* The text of path from offset `from` (at most 1 MiB), malloc'd. */
static char *
read_from(const char *path, off_t from)
{
    char *buf = calloc(1, (1 << 20) + 1);
    ssize_t n = 0;
    int fd;

    ck_assert_ptr_nonnull(buf);
    if ((fd = open(path, O_RDONLY)) >= 0) {
        n = pread(fd, buf, 1 << 20, from);
        close(fd);
    }
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* The gate's exit status, waited for at most ms; -1 if it is still up. */
static int
gate_wait_exit(long ms)
{
    int64_t until = now_ms() + ms;
    int status;
    pid_t r;

    do {
        if ((r = waitpid(gate_pid, &status, WNOHANG)) == gate_pid) {
            gate_pid = 0;
            return status;
        }
        sleep_ms(10);
    } while (now_ms() < until);
    return -1;
}

/*
 * Runs `qgate serve` on this test's store with the options in extra
 * (NULL-terminated, may be NULL), stdout and stderr appended to gate.log.
 * fsize > 0 limits the size of any file it writes (RLIMIT_FSIZE): a disk
 * that refuses to grow.  SIGXFSZ is left at its default action, which
 * kills, as under systemd's LimitFSIZE=: the gate must ignore it itself.
 * Only the soft limit is set, so that fsize_raise() can lift it.
 */
static void
gate_spawn(const char *const *extra, long fsize)
{
    const char *argv[48];
    size_t n = 0;
    pid_t parent = getpid();
    int i;

    ck_assert_int_eq(gate_pid, 0);
    argv[n++] = QGATE_BIN;
    argv[n++] = "serve";
    argv[n++] = "--db";
    argv[n++] = db;
    argv[n++] = "--secret-file";
    argv[n++] = QG_FIXTURES "/secret";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    /* Judged on arrival unless a test gives a window of its own (the last
     * --reorder-window wins). */
    argv[n++] = "--reorder-window";
    argv[n++] = "0";
    for (; extra && *extra; extra++) {
        ck_assert(n < COUNT(argv) - 1);
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    gate_pid = fork();
    ck_assert_int_ge(gate_pid, 0);
    if (gate_pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);

        if (fd < 0)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        for (i = 3; i < 1024; i++)
            close(i);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (fsize > 0) {
            struct rlimit rl;

            signal(SIGXFSZ, SIG_DFL);
            getrlimit(RLIMIT_FSIZE, &rl);
            rl.rlim_cur = (rlim_t)fsize;
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(127);
        }
        execv(QGATE_BIN, (char *const *)argv);
        _exit(127);
    }
}

/* gate_spawn(), then waits for the gate's "listening" line. */
static void
gate_start_limited(const char *const *extra, long fsize)
{
    off_t from = file_size(logpath);
    int i, status;

    gate_spawn(extra, fsize);
    for (i = 0; i < WAIT_MS / 20; i++) {
        char *text = read_from(logpath, from);
        char *line = strstr(text, "\"msg\":\"listening\"");
        char *port = line ? strstr(line, "\"port\":") : NULL;

        if (port) {
            gate_port = atoi(port + 7);
            free(text);
            ck_assert_int_gt(gate_port, 0);
            return;
        }
        if (waitpid(gate_pid, &status, WNOHANG) == gate_pid) {
            gate_pid = 0;
            ck_assert_msg(0, "the gate exited (status %d) before listening: %s",
                          status, text);
        }
        free(text);
        sleep_ms(20);
    }
    ck_assert_msg(0, "the gate did not say \"listening\" in %d ms", WAIT_MS);
}

static void
gate_start(const char *const *extra)
{
    gate_start_limited(extra, 0);
}

/* SIGTERM: the gate finishes what is in flight and exits 0. */
static void
gate_stop(void)
{
    int status;

    ck_assert_int_gt(gate_pid, 0);
    ck_assert_int_eq(kill(gate_pid, SIGTERM), 0);
    status = gate_wait_exit(30000);
    ck_assert_msg(status != -1, "the gate did not stop within 30 s of TERM");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the gate's stop was not clean: status 0x%x", status);
}

static void
gate_kill(void)
{
    int status;

    ck_assert_int_gt(gate_pid, 0);
    ck_assert_int_eq(kill(gate_pid, SIGKILL), 0);
    status = gate_wait_exit(WAIT_MS);
    ck_assert(status != -1 && WIFSIGNALED(status) &&
              WTERMSIG(status) == SIGKILL);
}

/* Runs `qgate ARGS...` to completion; stdout into out.  Returns the exit
 * status. */
static int
run_cli(const char *const *args, char *out, size_t cap)
{
    const char *argv[16];
    size_t n = 0, got = 0;
    int fds[2], status = -1;
    int64_t until = now_ms() + WAIT_MS;
    struct pollfd pfd;
    ssize_t r;
    pid_t pid;

    argv[n++] = QGATE_BIN;
    for (; *args; args++) {
        ck_assert(n < COUNT(argv) - 1);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fds[1], STDOUT_FILENO);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(QGATE_BIN, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    while (now_ms() < until && poll(&pfd, 1, 100) >= 0) {
        if (!(pfd.revents & (POLLIN | POLLHUP)))
            continue;
        r = read(fds[0], out + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    close(fds[0]);
    while (now_ms() < until && waitpid(pid, &status, WNOHANG) != pid)
        sleep_ms(10);
    ck_assert_msg(WIFEXITED(status), "qgate %s did not finish", args[-1]);
    return WEXITSTATUS(status);
}

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

static size_t
collect_body(char *p, size_t size, size_t n, void *arg)
{
    answer *a = arg;
    char *grown = realloc(a->body, a->len + size * n + 1);

    if (grown == NULL)
        return 0;
    a->body = grown;
    memcpy(a->body + a->len, p, size * n);
    a->len += size * n;
    a->body[a->len] = '\0';
    return size * n;
}

static size_t
collect_head(char *p, size_t size, size_t n, void *arg)
{
    answer *a = arg;
    size_t take = size * n;

    if (take > sizeof(a->head) - 1 - a->hlen)
        take = sizeof(a->head) - 1 - a->hlen;
    memcpy(a->head + a->hlen, p, take);
    a->hlen += take;
    a->head[a->hlen] = '\0';
    return size * n;
}

/* What an upload sends: data, or total bytes of 'x' when data is NULL. */
typedef struct source {
    const char *data;
    size_t total, pos;
} source;

static size_t
read_source(char *p, size_t size, size_t n, void *arg)
{
    source *s = arg;
    size_t take = size * n;

    if (take > s->total - s->pos)
        take = s->total - s->pos;
    if (take > 16384)
        take = 16384; /* many small chunks */
    if (s->data)
        memcpy(p, s->data + s->pos, take);
    else
        memset(p, 'x', take);
    s->pos += take;
    return take;
}

/*
 * One request to 127.0.0.1:port.  hdrs: extra header lines, NULL-ended.
 * With src, the body is read from it (chunked unless a Content-Length of
 * src->total is announced with `announce`).  It never fails the test, so
 * threads may call it.
 */
static CURLcode
http_full(int port, const char *method, const char *path,
          const char *const *hdrs, const char *body, size_t len, source *src,
          int announce, answer *a)
{
    struct curl_slist *l = NULL;
    char url[256];
    int64_t start;
    CURL *c;

    memset(a, 0, sizeof(*a));
    if ((c = curl_easy_init()) == NULL)
        return a->rc = CURLE_FAILED_INIT;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    l = curl_slist_append(l, "Expect:");
    for (; hdrs && *hdrs; hdrs++)
        l = curl_slist_append(l, *hdrs);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (src) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_source);
        curl_easy_setopt(c, CURLOPT_READDATA, src);
        if (announce)
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)src->total);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, body || src ? "POST" : "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    start = now_ms();
    a->rc = curl_easy_perform(c);
    a->ms = now_ms() - start;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->body)
        a->json = json_tokener_parse(a->body);
    curl_slist_free_all(l);
    curl_easy_cleanup(c);
    return a->rc;
}

static CURLcode
http_to(int port, const char *method, const char *path, const char *const *hdrs,
        const char *body, size_t len, answer *a)
{
    return http_full(port, method, path, hdrs, body, len, NULL, 0, a);
}

static void
answer_free(answer *a)
{
    free(a->body);
    json_object_put(a->json);
    memset(a, 0, sizeof(*a));
}

/* A request to the gate that must get an answer. */
static void
http(const char *method, const char *path, const char *const *hdrs,
     const char *body, size_t len, answer *a)
{
    CURLcode rc = http_to(gate_port, method, path, hdrs, body, len, a);

    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path,
                  curl_easy_strerror(rc));
}

static const char *const as_json[] = {"Content-Type: application/json", NULL};

static void
post_fixture(const char *rel, answer *a)
{
    size_t len;
    char *body = tu_fixture(rel, &len);

    http("POST", WEBHOOK, as_json, body, len, a);
    free(body);
}

static const char *
jstr(json_object *o, const char *key)
{
    json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static int64_t
jint(json_object *o, const char *key)
{
    json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return -1;
}

static int
same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The value of header `name` in the answer, or "" (copied into out). */
static const char *
head_value(const answer *a, const char *name, char *out, size_t cap)
{
    const char *line = a->head;
    size_t n = strlen(name);

    out[0] = '\0';
    while (line && *line) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;

            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
            break;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return out;
}

/* The answer has this status and JSON body; verdict NULL for answers that
 * name no verdict (413, 415, 405, 404, 503). */
static void
expect(const answer *a, long status, const char *verdict, const char *code,
       const char *what)
{
    char type[128];

    ck_assert_msg(a->status == status, "%s: status %ld, want %ld: %s", what,
                  a->status, status, a->body ? a->body : "(no body)");
    ck_assert_msg(a->json != NULL, "%s: the answer is not JSON: %s", what,
                  a->body ? a->body : "(no body)");
    ck_assert_msg(strncmp(head_value(a, "Content-Type", type, sizeof(type)),
                          "application/json", 16) == 0,
                  "%s: Content-Type %s", what, type);
    if (verdict)
        ck_assert_msg(same(jstr(a->json, "verdict"), verdict),
                      "%s: verdict in %s, want %s", what, a->body, verdict);
    ck_assert_msg(same(jstr(a->json, "code"), code), "%s: code in %s, want %s",
                  what, a->body, code);
}

/* The status a verdict and code are answered with (qgate.1, serve). */
static long
status_for(const char *verdict, const char *code)
{
    if (same(verdict, "accepted") || same(verdict, "duplicate") ||
        same(verdict, "ignored"))
        return 200;
    if (same(verdict, "rejected"))
        return same(code, "unknown_event") || same(code, "unknown_state") ? 422
                                                                          : 409;
    if (same(verdict, "unauthenticated"))
        return 401;
    if (same(verdict, "held"))
        return 202;
    return 400;
}

/* ----- the fake HIS ----------------------------------------------------- */

#define HIS_MAX 60000

enum his_mode { HIS_ACCEPT, HIS_FAIL, HIS_HANG };

typedef struct his_req {
    char method[8], url[64], type[64], verdict[16];
    char delivery[48], ticket[24], seq[16], event[32], from[40], to[40];
    char lq[24], pos[16], late[8];
    char *body;
    size_t len;
    int status; /* what the HIS answered: 200, 500; 0 when it hung */
} his_req;

static struct {
    struct MHD_Daemon *d;
    int port;
    char url[64];
    atomic_int mode;
    atomic_int stopping;
    long hang_ms;
    pthread_mutex_t lock;
    his_req *reqs; /* in the order they were answered */
    size_t n, dropped;
} his;

static void
copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

    snprintf(dst, cap, "%s", v ? v : "");
}

static enum MHD_Result
his_handle(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *data,
           size_t *size, void **con_cls)
{
    static char text[] = "{}\n";
    his_req *q = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int64_t until;
    char *grown;

    (void)cls;
    (void)version;
    if (q == NULL) {
        if ((q = calloc(1, sizeof(*q))) == NULL)
            return MHD_NO;
        snprintf(q->method, sizeof(q->method), "%s", method);
        snprintf(q->url, sizeof(q->url), "%s", url);
        copy_header(conn, "Content-Type", q->type, sizeof(q->type));
        copy_header(conn, "X-Qgate-Verdict", q->verdict, sizeof(q->verdict));
        copy_header(conn, "X-Qgate-Delivery", q->delivery, sizeof(q->delivery));
        copy_header(conn, "X-Qgate-Ticket", q->ticket, sizeof(q->ticket));
        copy_header(conn, "X-Qgate-Seq", q->seq, sizeof(q->seq));
        copy_header(conn, "X-Qgate-Event", q->event, sizeof(q->event));
        copy_header(conn, "X-Qgate-From", q->from, sizeof(q->from));
        copy_header(conn, "X-Qgate-To", q->to, sizeof(q->to));
        copy_header(conn, "X-Qgate-Live-Queue-Id", q->lq, sizeof(q->lq));
        copy_header(conn, "X-Qgate-Position", q->pos, sizeof(q->pos));
        copy_header(conn, "X-Qgate-Late", q->late, sizeof(q->late));
        *con_cls = q;
        return MHD_YES;
    }
    if (*size) {
        if ((grown = realloc(q->body, q->len + *size + 1)) == NULL)
            return MHD_NO;
        q->body = grown;
        memcpy(q->body + q->len, data, *size);
        q->len += *size;
        q->body[q->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    switch (atomic_load(&his.mode)) {
    case HIS_HANG:
        until = now_ms() + his.hang_ms;
        while (atomic_load(&his.mode) == HIS_HANG &&
               !atomic_load(&his.stopping) && now_ms() < until)
            sleep_ms(10);
        q->status = 0;
        break;
    case HIS_FAIL:
        q->status = 500;
        break;
    default:
        q->status = 200;
    }
    pthread_mutex_lock(&his.lock);
    if (his.n < HIS_MAX) {
        his.reqs[his.n++] = *q;
        q->body = NULL; /* the record owns it now */
    } else {
        his.dropped++;
    }
    pthread_mutex_unlock(&his.lock);
    resp = MHD_create_response_from_buffer(strlen(text), text,
                                           MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(conn, q->status ? (unsigned)q->status : 504, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
his_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
    his_req *q = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (q) {
        free(q->body);
        free(q);
        *con_cls = NULL;
    }
}

static void
his_start(int mode)
{
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&his.lock, NULL);
    his.reqs = calloc(HIS_MAX, sizeof(*his.reqs));
    ck_assert_ptr_nonnull(his.reqs);
    his.n = his.dropped = 0;
    his.hang_ms = 3000;
    atomic_store(&his.mode, mode);
    atomic_store(&his.stopping, 0);
    his.d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, his_handle, NULL, MHD_OPTION_SOCK_ADDR,
                         &sin, MHD_OPTION_NOTIFY_COMPLETED, his_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    ck_assert_ptr_nonnull(his.d);
    info = MHD_get_daemon_info(his.d, MHD_DAEMON_INFO_BIND_PORT);
    ck_assert(info != NULL && info->port > 0);
    his.port = info->port;
    snprintf(his.url, sizeof(his.url), "http://127.0.0.1:%d/his", his.port);
}

static void
his_stop(void)
{
    size_t i;

    if (his.d == NULL)
        return;
    atomic_store(&his.stopping, 1);
    MHD_stop_daemon(his.d);
    his.d = NULL;
    for (i = 0; i < his.n; i++)
        free(his.reqs[i].body);
    free(his.reqs);
    his.reqs = NULL;
    his.n = 0;
    pthread_mutex_destroy(&his.lock);
}

/* Requests the HIS answered with status (-1: all of them). */
static size_t
his_count(int status)
{
    size_t i, n = 0;

    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++)
        n += status < 0 || his.reqs[i].status == status;
    pthread_mutex_unlock(&his.lock);
    return n;
}

/*
 * The HIS's requests for ticket t, in the order it answered them: each
 * asks for the step after the last one acknowledged (a retry of it, or
 * the next once it was acknowledged), under the delivery id "t-seq".
 * Returns the last step acknowledged.
 */
static uint32_t
his_ticket_order(uint64_t t)
{
    char want[24], id[48], err[256] = "";
    uint32_t acked = 0, seq;
    size_t i;

    snprintf(want, sizeof(want), "%" PRIu64, t);
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n && !err[0]; i++) {
        his_req *q = &his.reqs[i];

        if (strcmp(q->ticket, want) != 0)
            continue;
        seq = (uint32_t)strtoul(q->seq, NULL, 10);
        snprintf(id, sizeof(id), "%s-%" PRIu32, want, seq);
        if (seq != acked + 1)
            snprintf(err, sizeof(err),
                     "ticket %s: request %zu is for step %s while step %" PRIu32
                     " was the last acknowledged",
                     want, i, q->seq, acked);
        else if (strcmp(q->delivery, id) != 0)
            snprintf(err, sizeof(err), "ticket %s: delivery id \"%s\", want %s",
                     want, q->delivery, id);
        else if (q->status == 200)
            acked = seq;
    }
    pthread_mutex_unlock(&his.lock);
    ck_assert_msg(err[0] == '\0', "%s", err);
    return acked;
}

/* ----- the store, read-only --------------------------------------------- */

static qg_store *
store_ro(void)
{
    qg_store_options o;
    qg_store *st = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    o.path = db;
    o.flags = QG_RDONLY;
    rc = qg_store_open(&o, &st);
    ck_assert_msg(rc == 0, "%s: %s", db, qg_strerror(rc));
    return st;
}

static uint64_t
ticket_of(qg_store *st, long long lq)
{
    qg_ticket t;
    int rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, lq, &t);

    ck_assert_msg(rc == 0, "live-queue id %lld: %s", lq, qg_strerror(rc));
    return t.id;
}

/* The outbox (dead = 0) or the dead list, in id order. */
static size_t
outbox_list(qg_store *st, int dead, qg_outbox_entry *out, size_t cap)
{
    qg_outbox *ob = NULL;
    qg_outbox_entry e;
    size_t n = 0;
    int rc;

    ck_assert_int_eq(qg_outbox_open(st, dead, &ob), 0);
    while ((rc = qg_outbox_next(ob, &e)) == 0) {
        ck_assert(n < cap);
        out[n++] = e;
    }
    qg_outbox_close(ob);
    ck_assert_int_eq(rc, QG_NOTFOUND);
    return n;
}

/* ----- metrics ---------------------------------------------------------- */

static char *
scrape(void)
{
    answer a;
    char *text;

    http("GET", "/metrics", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_ptr_nonnull(a.body);
    text = a.body;
    a.body = NULL;
    answer_free(&a);
    return text;
}

/* The value of the sample written exactly `sample` (name and labels), or
 * NAN when there is none. */
static double
sample_value(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    const char *line = text;

    while (line && *line) {
        if (strncmp(line, sample, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NAN;
}

static double
gate_sample(const char *sample)
{
    char *text = scrape();
    double v = sample_value(text, sample);

    free(text);
    return v;
}

/* ----- fixture lists --------------------------------------------------- */

typedef struct row {
    char col[6][96];
    int n;
} row;

/* The rows of an EXPECT file, columns split on blanks. */
static size_t
read_expect(const char *rel, row *rows, size_t cap)
{
    size_t len, n = 0;
    char *text = tu_fixture(rel, &len), *line, *tok, *s1 = NULL, *s2 = NULL;

    for (line = strtok_r(text, "\n", &s1); line;
         line = strtok_r(NULL, "\n", &s1)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        ck_assert(n < cap);
        rows[n].n = 0;
        for (tok = strtok_r(line, " \t", &s2); tok && rows[n].n < 6;
             tok = strtok_r(NULL, " \t", &s2))
            snprintf(rows[n].col[rows[n].n++], sizeof(rows[n].col[0]), "%s",
                     tok);
        n++;
    }
    free(text);
    return n;
}

static int
json_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);

    return n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

/* Posts, in file-name order, the files of rel's directory that come
 * before rel; each must be accepted. */
static void
post_before(const char *rel)
{
    char dir[256], path[512];
    const char *slash = strrchr(rel, '/');
    struct dirent **names = NULL;
    answer a;
    int n, i;

    snprintf(dir, sizeof(dir), "%s/%.*s", QG_FIXTURES, (int)(slash - rel), rel);
    n = scandir(dir, &names, json_file, alphasort);
    ck_assert_int_gt(n, 0);
    for (i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, slash + 1) < 0) {
            snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - rel), rel,
                     names[i]->d_name);
            post_fixture(path, &a);
            expect(&a, 200, "accepted", "none", path);
            answer_free(&a);
        }
        free(names[i]);
    }
    free(names);
}

/* ----- fixtures --------------------------------------------------------- */

static void
setup(void)
{
    passed = 0;
    signal(SIGPIPE, SIG_IGN);
    snprintf(work, sizeof(work), "/tmp/qgate-serve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work));
    snprintf(db, sizeof(db), "%s/db", work);
    snprintf(logpath, sizeof(logpath), "%s/gate.log", work);
    gate_pid = 0;
    gate_port = 0;
    if (!exit_hook_set) {
        atexit(at_exit);
        exit_hook_set = 1;
    }
    secret_load();
    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void
teardown(void)
{
    if (gate_pid > 0) {
        kill(gate_pid, SIGKILL);
        waitpid(gate_pid, NULL, 0);
        gate_pid = 0;
    }
    his_stop();
    curl_global_cleanup();
    remove_tree(work, 1);
    work[0] = '\0';
    passed = 1;
}

/* ----- Answers ---------------------------------------------------------- */

/* Each status the gate answers a delivery with, in one gate's life. */
START_TEST(test_webhook_status_table)
{
    static const struct {
        const char *file;
        long status;
        const char *verdict, *code;
    } rows[] = {
        {WALK_IN "01-join-live-queue.json", 200, "accepted", "none"},
        {WALK_IN "01-join-live-queue.json", 200, "duplicate", "redelivery"},
        {"malformed/client-created.json", 200, "ignored", "not_lifecycle"},
        /* 40001 was never seen: serving it is not a way to start */
        {"illegal/served-before-arrive/02-served.json", 409, "rejected",
         "illegal_transition"},
        {"illegal/paid-after-cancel/01-join-live-queue.json", 200, "accepted",
         "none"},
        {"illegal/paid-after-cancel/02-cancel-delete.json", 200, "accepted",
         "none"},
        {"illegal/paid-after-cancel/03-billing-paid.json", 409, "rejected",
         "ticket_closed"},
        {"illegal/stale/01-join-live-queue.json", 200, "accepted", "none"},
        {"illegal/stale/02-arrived.json", 200, "accepted", "none"},
        {"illegal/stale/03-serving-stale.json", 409, "rejected", "stale"},
        {"malformed/unknown-state.json", 422, "rejected", "unknown_state"},
        {"malformed/unknown-event.json", 422, "rejected", "unknown_event"},
        {"malformed/not-json.json", 400, "malformed", "bad_json"},
        {"malformed/truncated.json", 400, "malformed", "bad_json"},
        {"malformed/two-documents.json", 400, "malformed", "trailing_data"},
        {"malformed/signature-other-payload.json", 401, "unauthenticated",
         "bad_signature"},
        {"malformed/missing-signature.json", 401, "unauthenticated",
         "missing_signature"},
    };
    char id[64];
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < COUNT(rows); i++) {
        post_fixture(rows[i].file, &a);
        expect(&a, rows[i].status, rows[i].verdict, rows[i].code, rows[i].file);
        ck_assert_msg(head_value(&a, "X-Request-Id", id, sizeof(id))[0],
                      "%s: no X-Request-Id", rows[i].file);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Every row of malformed/EXPECT, answered with its verdict, code and the
 * status they go with. */
START_TEST(test_webhook_malformed_expect)
{
    row rows[128];
    size_t n = read_expect("malformed/EXPECT", rows, COUNT(rows)), i;
    answer a;
    /* More unsigned refusals than the default burst allows one address;
     * the rate limit has tests of its own. */
    static const char *const opts[] = {"--unsigned-burst", "1000", NULL};

    ck_assert_int_ge(n, 30);
    gate_start(opts);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 3);
        post_fixture(rows[i].col[0], &a);
        expect(&a, status_for(rows[i].col[1], rows[i].col[2]), rows[i].col[1],
               rows[i].col[2], rows[i].col[0]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* --max-skew: a step dated far ahead is refused by default (400,
 * bad_value, the skew named), and taken when the check is off. */
START_TEST(test_webhook_max_skew)
{
    static const char *const off[] = {"--max-skew", "0", NULL};
    answer a;

    gate_start(NULL);
    post_fixture("malformed/far-future.json", &a);
    expect(&a, 400, "malformed", "bad_value", "far future, default skew");
    ck_assert_msg(strstr(a.body, "at most 300 s of clock skew"), "%s", a.body);
    answer_free(&a);
    gate_stop();
    gate_start(off);
    post_fixture("malformed/far-future.json", &a);
    expect(&a, 200, "accepted", "none", "far future, --max-skew 0");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* Every sequence of illegal/EXPECT: the legal steps accepted, the last one
 * refused with its code, naming its event and the state it met. */
START_TEST(test_webhook_illegal_expect)
{
    row rows[16];
    size_t n = read_expect("illegal/EXPECT", rows, COUNT(rows)), i;
    answer a;

    ck_assert_int_ge(n, 6);
    gate_start(NULL);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 5);
        post_before(rows[i].col[0]);
        post_fixture(rows[i].col[0], &a);
        expect(&a, status_for(rows[i].col[1], rows[i].col[2]), rows[i].col[1],
               rows[i].col[2], rows[i].col[0]);
        ck_assert_msg(same(jstr(a.json, "event"), rows[i].col[3]) &&
                          same(jstr(a.json, "from"), rows[i].col[4]),
                      "%s: %s, want event %s from %s", rows[i].col[0], a.body,
                      rows[i].col[3], rows[i].col[4]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Every step of visits/EXPECT accepted with its event and states. */
START_TEST(test_webhook_visits_expect)
{
    row rows[32];
    size_t n = read_expect("visits/EXPECT", rows, COUNT(rows)), i;
    answer a;

    ck_assert_int_ge(n, 18);
    gate_start(NULL);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(rows[i].n, 5);
        post_fixture(rows[i].col[0], &a);
        expect(&a, 200, rows[i].col[1], "none", rows[i].col[0]);
        ck_assert_msg(same(jstr(a.json, "event"), rows[i].col[2]) &&
                          same(jstr(a.json, "from"), rows[i].col[3]) &&
                          same(jstr(a.json, "to"), rows[i].col[4]),
                      "%s: %s, want %s %s -> %s", rows[i].col[0], a.body,
                      rows[i].col[2], rows[i].col[3], rows[i].col[4]);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* A body announced over --max-body is refused from its headers: the 413
 * arrives while the client is still sending, long before the body
 * would have been read. */
START_TEST(test_webhook_too_large_refused_early)
{
    static const char *const opts[] = {"--max-body", "4096", NULL};
    source src = {NULL, (size_t)256 << 20, 0}; /* 256 MiB announced */
    answer a;

    gate_start(opts);
    http_full(gate_port, "POST", WEBHOOK, as_json, NULL, 0, &src, 1, &a);
    ck_assert_msg(a.status == 413, "status %ld (%s) after sending %zu bytes",
                  a.status, curl_easy_strerror(a.rc), src.pos);
    expect(&a, 413, NULL, "too_large", "256 MiB announced");
    ck_assert_msg(src.pos < src.total / 4,
                  "the client sent %zu of %zu bytes before the 413", src.pos,
                  src.total);
    ck_assert_msg(a.ms < 5000, "the 413 took %" PRId64 " ms", a.ms);
    ck_assert_msg(strstr(a.body, "4096") != NULL, "the limit is not named: %s",
                  a.body);
    answer_free(&a);

    /* the gate is none the worse */
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "after the 413");
    answer_free(&a);
    gate_stop();
}
END_TEST

/* Without a Content-Length the size is found while reading: a chunked
 * body over the limit is 413, one under it is read whole and accepted. */
START_TEST(test_webhook_too_large_chunked)
{
    static const char *const opts[] = {"--max-body", "4096", NULL};
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    source big = {NULL, 65536, 0};
    source small;
    size_t len;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    answer a;

    gate_start(opts);
    ck_assert_int_eq(
        http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &big, 0, &a),
        CURLE_OK);
    expect(&a, 413, NULL, "too_large", "64 KiB chunked");
    ck_assert_uint_eq(big.pos, big.total);
    answer_free(&a);

    small.data = body;
    small.total = len;
    small.pos = 0;
    ck_assert_int_eq(
        http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &small, 0, &a),
        CURLE_OK);
    expect(&a, 200, "accepted", "none", "walk-in/01 chunked");
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* Only JSON is read: text/plain is 415 and leaves nothing behind, so the
 * same body as application/json with a charset is then accepted. */
START_TEST(test_webhook_media_type)
{
    static const char *const plain[] = {"Content-Type: text/plain", NULL};
    static const char *const charset[] = {
        "Content-Type: application/json; charset=utf-8", NULL};
    size_t len;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    answer a;

    gate_start(NULL);
    http("POST", WEBHOOK, plain, body, len, &a);
    expect(&a, 415, NULL, "unsupported_media_type", "text/plain");
    answer_free(&a);
    http("POST", WEBHOOK, charset, body, len, &a);
    expect(&a, 200, "accepted", "none", "application/json; charset=utf-8");
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* The webhook is POST only, and says so. */
START_TEST(test_webhook_wrong_method)
{
    static const char *const methods[] = {"GET", "PUT", "DELETE"};
    char allow[64];
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < COUNT(methods); i++) {
        http(methods[i], WEBHOOK, NULL, NULL, 0, &a);
        expect(&a, 405, NULL, "method_not_allowed", methods[i]);
        ck_assert_msg(
            strcmp(head_value(&a, "Allow", allow, sizeof(allow)), "POST") == 0,
            "%s: Allow \"%s\", want POST", methods[i], allow);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* Anything but the webhook's path is 404 "not_found", whatever the
 * method. */
START_TEST(test_webhook_wrong_path)
{
    static const struct {
        const char *method, *path;
    } rows[] = {
        {"POST", "/elsewhere"},
        {"POST", WEBHOOK "/extra"},
        {"GET", "/elsewhere"},
        {"POST", "/webhooks"},
    };
    size_t len, i;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    char what[128];
    answer a;

    gate_start(NULL);
    for (i = 0; i < COUNT(rows); i++) {
        snprintf(what, sizeof(what), "%s %s", rows[i].method, rows[i].path);
        http(rows[i].method, rows[i].path, as_json,
             strcmp(rows[i].method, "POST") == 0 ? body : NULL, len, &a);
        expect(&a, 404, NULL, "not_found", what);
        answer_free(&a);
    }
    free(body);
    gate_stop();
}
END_TEST

/*
 * A store that cannot be written is 503 "store_unavailable", and the
 * delivery is not half-recorded.  The disk refusing to grow is made with
 * RLIMIT_FSIZE on the gate: LMDB's commit then fails with EFBIG.
 */
START_TEST(test_webhook_store_unavailable)
{
    long long id, failed = 0, accepted = 0, i;
    qg_store *st;
    qg_ticket t;
    size_t len;
    char *body;
    answer a;

    gate_start_limited(NULL, 96 << 10);
    for (id = 81000; id < 81000 + 400 && !failed; id++) {
        ck_assert_ptr_nonnull(body = join_body(id, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        if (a.status == 503) {
            expect(&a, 503, NULL, "store_unavailable", "full disk");
            failed = id;
        } else {
            expect(&a, 200, "accepted", "none", "before the disk is full");
            accepted++;
        }
        answer_free(&a);
        free(body);
    }
    ck_assert_msg(failed, "no 503 after %lld deliveries on a 96 KiB disk",
                  accepted);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    ck_assert_int_eq(gate_sample("qgate_store_errors_total"), 1);
    gate_stop();

    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, failed, &t),
                     QG_NOTFOUND);
    for (i = 81000; i < failed; i++) {
        ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, i, &t), 0);
        ck_assert_uint_eq(t.records, 1);
    }
    qg_store_close(st);
}
END_TEST

/* The read API after the walk-in visit: the ticket and its 9 steps. */
START_TEST(test_read_api_ticket_and_history)
{
    static const char *const events[] = {
        "join",       "alert",       "move", "serve",    "complete",
        "rx_receive", "rx_dispense", "pay",  "end_visit"};
    static const struct {
        const char *path;
        long status;
        const char *code;
    } missing[] = {
        {"/tickets/99999", 404, "not_found"},
        {"/tickets/99999/history", 404, "not_found"},
        {"/tickets/30001/other", 404, "not_found"},
        {"/tickets/abc", 400, "bad_ticket"},
    };
    char rel[128];
    json_object *rec;
    answer a;
    size_t i;

    gate_start(NULL);
    for (i = 0; i < 9; i++) {
        static const char *const files[] = {"01-join-live-queue.json",
                                            "02-alert.json",
                                            "03-move.json",
                                            "04-serving.json",
                                            "05-served.json",
                                            "06-pharmacy-received.json",
                                            "07-pharmacy-dispensed.json",
                                            "08-billing-paid.json",
                                            "09-end-visit.json"};

        snprintf(rel, sizeof(rel), WALK_IN "%s", files[i]);
        post_fixture(rel, &a);
        expect(&a, 200, "accepted", "none", rel);
        answer_free(&a);
    }
    http("GET", "/tickets/30001", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json, "%ld %s", a.status, a.body);
    ck_assert_msg(same(jstr(a.json, "state"), "visit_ended") &&
                      jint(a.json, "records") == 9 &&
                      jint(a.json, "live_queue_id") == 30001,
                  "%s", a.body);
    answer_free(&a);

    http("GET", "/tickets/30001/history", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json &&
                      json_object_is_type(a.json, json_type_array),
                  "%ld %s", a.status, a.body);
    ck_assert_uint_eq(json_object_array_length(a.json), 9);
    for (i = 0; i < 9; i++) {
        rec = json_object_array_get_idx(a.json, i);
        ck_assert_int_eq(jint(rec, "seq"), (int64_t)i + 1);
        ck_assert_msg(same(jstr(rec, "event"), events[i]),
                      "record %zu: %s, want %s", i + 1,
                      json_object_to_json_string(rec), events[i]);
        if (i > 0)
            ck_assert(
                same(jstr(rec, "from"),
                     jstr(json_object_array_get_idx(a.json, i - 1), "to")));
    }
    answer_free(&a);

    for (i = 0; i < COUNT(missing); i++) {
        http("GET", missing[i].path, NULL, NULL, 0, &a);
        expect(&a, missing[i].status, NULL, missing[i].code, missing[i].path);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/* With --token-file, reading tickets takes the bearer token; the webhook
 * and the operations endpoints do not. */
START_TEST(test_read_api_bearer_token)
{
    static const char *const none[] = {NULL};
    static const char *const wrong[] = {"Authorization: Bearer s3cret-tokeN",
                                        NULL};
    static const char *const longer[] = {
        "Authorization: Bearer s3cret-token-and-more", NULL};
    static const char *const basic[] = {"Authorization: Basic czNjcmV0", NULL};
    static const char *const right[] = {"Authorization: Bearer s3cret-token",
                                        NULL};
    static const char *const *const refused[] = {none, wrong, longer, basic};
    char token[128];
    const char *opts[3];
    answer a;
    size_t i;
    FILE *f;

    snprintf(token, sizeof(token), "%s/token", work);
    ck_assert_ptr_nonnull(f = fopen(token, "w"));
    fputs("s3cret-token\n", f);
    fclose(f);
    opts[0] = "--token-file";
    opts[1] = token;
    opts[2] = NULL;
    gate_start(opts);
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "webhook without a token");
    answer_free(&a);
    for (i = 0; i < COUNT(refused); i++) {
        http("GET", "/tickets/30001", refused[i], NULL, 0, &a);
        expect(&a, 401, NULL, "unauthorized",
               refused[i][0] ? refused[i][0] : "no token");
        answer_free(&a);
        http("GET", "/tickets/30001/history", refused[i], NULL, 0, &a);
        ck_assert_int_eq(a.status, 401);
        answer_free(&a);
    }
    http("GET", "/tickets/30001", right, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && same(jstr(a.json, "state"), "queued"),
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    http("GET", "/tickets/30001/history", right, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

START_TEST(test_health_and_ready_without_upstream)
{
    json_object *v;
    answer a;

    gate_start(NULL);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && same(jstr(a.json, "status"), "up"),
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.json &&
                      json_object_object_get_ex(a.json, "ready", &v) &&
                      json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 0,
                  "%ld %s", a.status, a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* ----- Forwarding ------------------------------------------------------- */

static const char *const walk_in_files[] = {WALK_IN "01-join-live-queue.json",
                                            WALK_IN "02-alert.json",
                                            WALK_IN "03-move.json",
                                            WALK_IN "04-serving.json",
                                            WALK_IN "05-served.json",
                                            WALK_IN "06-pharmacy-received.json",
                                            WALK_IN
                                            "07-pharmacy-dispensed.json",
                                            WALK_IN "08-billing-paid.json",
                                            WALK_IN "09-end-visit.json"};

static const char *const no_show_files[] = {
    NO_SHOW "01-join-live-queue.json", NO_SHOW "02-no-show.json",
    NO_SHOW "03-no-show-canceled-by-system.json"};

static void
post_accepted(const char *rel)
{
    answer a;

    post_fixture(rel, &a);
    expect(&a, 200, "accepted", "none", rel);
    answer_free(&a);
}

/* Waits until the HIS acknowledged n requests and the gate's outbox is
 * empty. */
static void
wait_delivered(size_t n, long ms)
{
    int ok;

    WAIT_FOR(ok, his_count(200) >= n, ms);
    ck_assert_msg(ok, "the HIS acknowledged %zu of %zu steps in %ld ms",
                  his_count(200), n, ms);
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    ck_assert_msg(ok, "the outbox did not empty after the HIS had all");
}

static void
assert_outbox_empty(void)
{
    qg_store *st = store_ro();
    uint64_t depth = 1, dead = 1;

    ck_assert_int_eq(qg_outbox_stats(st, &depth, NULL, &dead), 0);
    ck_assert_msg(depth == 0 && dead == 0, "outbox %" PRIu64 ", dead %" PRIu64,
                  depth, dead);
    qg_store_close(st);
}

/* The walk-in visit reaches the HIS step by step, each POST exactly the
 * body Chup sent, named by the headers. */
START_TEST(test_forward_visit_in_order)
{
    row rows[32];
    size_t n = read_expect("visits/EXPECT", rows, COUNT(rows)), i, len;
    const char *opts[] = {"--upstream", NULL, "--forward-timeout", "1", NULL};
    char want[48];
    uint64_t t;
    qg_store *st;
    char *body;

    ck_assert_int_ge(n, 9);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    wait_delivered(9, WAIT_MS);
    gate_stop();

    st = store_ro();
    t = ticket_of(st, 30001);
    qg_store_close(st);
    assert_outbox_empty();
    ck_assert_uint_eq(his.n, 9);
    ck_assert_uint_eq(his_ticket_order(t), 9);
    for (i = 0; i < 9; i++) {
        his_req *q = &his.reqs[i];

        ck_assert_str_eq(rows[i].col[0], walk_in_files[i]);
        ck_assert_str_eq(q->method, "POST");
        ck_assert_str_eq(q->url, "/his");
        ck_assert_str_eq(q->type, "application/json");
        ck_assert_str_eq(q->verdict, "accepted");
        snprintf(want, sizeof(want), "%" PRIu64 "-%zu", t, i + 1);
        ck_assert_str_eq(q->delivery, want);
        snprintf(want, sizeof(want), "%" PRIu64, t);
        ck_assert_str_eq(q->ticket, want);
        snprintf(want, sizeof(want), "%zu", i + 1);
        ck_assert_str_eq(q->seq, want);
        ck_assert_str_eq(q->lq, "30001");
        ck_assert_str_eq(q->event, rows[i].col[2]);
        ck_assert_str_eq(q->from, rows[i].col[3]);
        ck_assert_str_eq(q->to, rows[i].col[4]);
        body = tu_fixture(walk_in_files[i], &len);
        ck_assert_msg(q->len == len && memcmp(q->body, body, len) == 0,
                      "step %zu: the HIS got %zu bytes that differ from %s",
                      i + 1, q->len, walk_in_files[i]);
        free(body);
    }
}
END_TEST

/*
 * Two tickets while the HIS fails: only each ticket's first step is
 * tried, again and again; once the HIS accepts, each ticket's steps
 * arrive in order, none before the previous one was acknowledged.
 */
START_TEST(test_forward_failure_keeps_ticket_order)
{
    static const char *const files[] = {WALK_IN "01-join-live-queue.json",
                                        NO_SHOW "01-join-live-queue.json",
                                        WALK_IN "02-alert.json",
                                        NO_SHOW "02-no-show.json",
                                        WALK_IN "03-move.json",
                                        NO_SHOW
                                        "03-no-show-canceled-by-system.json",
                                        WALK_IN "04-serving.json",
                                        WALK_IN "05-served.json"};
    const char *opts[] = {"--upstream", NULL, "--forward-timeout", "1", NULL};
    uint64_t walk, noshow;
    double errors;
    size_t i, failed;
    qg_store *st;
    int ok;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok, his_count(500) >= 4, WAIT_MS);
    ck_assert_msg(ok, "the HIS saw %zu attempts while failing", his_count(-1));
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++)
        ck_assert_msg(strcmp(his.reqs[i].seq, "1") == 0,
                      "step %s of ticket %s was sent while step 1 failed",
                      his.reqs[i].seq, his.reqs[i].ticket);
    pthread_mutex_unlock(&his.lock);

    atomic_store(&his.mode, HIS_ACCEPT);
    wait_delivered(COUNT(files), 15000);
    failed = his_count(500);
    errors = gate_sample("qgate_forward_attempts_total{result=\"http_error\"}");
    ck_assert_msg(errors > 0 && errors == (double)failed,
                  "http_error attempts %g, the HIS answered 500 %zu times",
                  errors, failed);
    ck_assert_int_eq(gate_sample("qgate_forward_attempts_total{result=\"ok\"}"),
                     COUNT(files));
    gate_stop();

    st = store_ro();
    walk = ticket_of(st, 30001);
    noshow = ticket_of(st, 30003);
    qg_store_close(st);
    ck_assert_uint_eq(his_ticket_order(walk), 5);
    ck_assert_uint_eq(his_ticket_order(noshow), 3);
    ck_assert_uint_eq(his_count(200), COUNT(files));
    assert_outbox_empty();
}
END_TEST

/* /readyz until it answers `status`; its body is left in a. */
static int
wait_ready_status(long status, long ms, answer *a)
{
    int64_t until = now_ms() + ms;

    for (;;) {
        http("GET", "/readyz", NULL, NULL, 0, a);
        if (a->status == status || now_ms() >= until)
            return a->status == status;
        answer_free(a);
        sleep_ms(50);
    }
}

/*
 * A HIS that hangs holds up no answer to Chup; /readyz turns 503 once the
 * HIS is unreachable (timeouts) and the backlog is at the limit, and 200
 * again once the HIS answers.
 */
START_TEST(test_forward_hang_answers_quickly)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    json_object *v;
    answer a;
    size_t i;

    his_start(HIS_HANG);
    opts[1] = his.url;
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    expect(&a, 200, "accepted", "none", walk_in_files[0]);
    ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "one step waiting: %s", a.body);
    answer_free(&a);

    for (i = 1; i < 4; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        ck_assert_msg(a.ms < 2000, "%s answered in %" PRId64 " ms",
                      walk_in_files[i], a.ms);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS hangs and 4 steps wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "upstream_reachable", &v) &&
                      !json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 4,
                  "%s", a.body);
    answer_free(&a);

    /* another ticket, while both forwarders may be stuck on the HIS */
    post_fixture(no_show_files[0], &a);
    expect(&a, 200, "accepted", "none", no_show_files[0]);
    ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
    answer_free(&a);

    atomic_store(&his.mode, HIS_ACCEPT);
    ck_assert_msg(wait_ready_status(200, 15000, &a),
                  "the HIS answers again, yet /readyz: %ld %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();
    pthread_mutex_lock(&his.lock);
    for (i = 0; i < his.n; i++)
        if (his.reqs[i].status == 0)
            ck_assert_str_eq(his.reqs[i].seq, "1");
    pthread_mutex_unlock(&his.lock);
}
END_TEST

/* A HIS that answers, but 500 to every step, takes nothing: /readyz
 * turns 503 at the backlog limit as for one that is down. */
START_TEST(test_readyz_upstream_failing)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    json_object *v;
    answer a;
    size_t i;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 3; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS fails every step and 3 wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "upstream_reachable", &v) &&
                      !json_object_get_boolean(v),
                  "%s", a.body);
    answer_free(&a);
    atomic_store(&his.mode, HIS_ACCEPT);
    ck_assert_msg(wait_ready_status(200, 15000, &a),
                  "the HIS takes steps again, yet /readyz: %ld %s", a.status,
                  a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The same with nothing listening where the HIS should be. */
START_TEST(test_readyz_upstream_closed_port)
{
    char url[64];
    const char *opts[] = {
        "--upstream", url, "--forward-timeout", "1", "--ready-max-outbox",
        "2",          NULL};
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    json_object *v;
    answer a;
    size_t i;
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM, 0), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd); /* a port that was free a moment ago, and closed */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/his", ntohs(sin.sin_port));
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    expect(&a, 200, "accepted", "none", walk_in_files[0]);
    answer_free(&a);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "one step waiting: %s", a.body);
    answer_free(&a);
    for (i = 1; i < 3; i++) {
        post_fixture(walk_in_files[i], &a);
        expect(&a, 200, "accepted", "none", walk_in_files[i]);
        ck_assert_msg(a.ms < 2000, "answered in %" PRId64 " ms", a.ms);
        answer_free(&a);
    }
    ck_assert_msg(wait_ready_status(503, 5000, &a),
                  "the HIS is down and 3 steps wait, yet /readyz: %ld %s",
                  a.status, a.body);
    ck_assert_msg(json_object_object_get_ex(a.json, "ready", &v) &&
                      !json_object_get_boolean(v) &&
                      jint(a.json, "outbox_depth") == 3,
                  "%s", a.body);
    answer_free(&a);
    gate_stop();
}
END_TEST

/*
 * Steps of two tickets go to a HIS that fails, under --max-age 1: they
 * all move to the dead list; `qgate outbox --dead` lists them (exit 1)
 * and `--retry-all` moves them back to the outbox (exit 0).  The gate is
 * stopped; the HIS is left accepting.
 */
static void
dead_letter_and_requeue(uint64_t *walk, uint64_t *noshow)
{
    static const char *const files[] = {
        WALK_IN "01-join-live-queue.json", NO_SHOW "01-join-live-queue.json",
        WALK_IN "02-alert.json", NO_SHOW "02-no-show.json",
        WALK_IN "03-move.json"};
    const char *opts[] = {"--upstream", his.url,     "--forward-timeout",
                          "1",          "--max-age", "1",
                          NULL};
    const char *dead_args[] = {"outbox", "--dead", "--json", "--db", db, NULL};
    const char *retry_args[] = {"outbox", "--retry-all", "--db", db, NULL};
    qg_outbox_entry e[16];
    uint64_t last[2] = {0, 0};
    char out[8192], *p;
    size_t i, n;
    qg_store *st;
    int ok, code;

    atomic_store(&his.mode, HIS_FAIL);
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok,
             gate_sample("qgate_outbox_dead") == 5 &&
                 gate_sample("qgate_outbox_depth") == 0,
             WAIT_MS);
    ck_assert_msg(ok, "not all dead after %d ms: depth %g, dead %g", WAIT_MS,
                  gate_sample("qgate_outbox_depth"),
                  gate_sample("qgate_outbox_dead"));
    /* given up once per ticket at least (its later steps go with it) */
    ck_assert_msg(gate_sample("qgate_forward_given_up_total") >= 2 &&
                      gate_sample("qgate_forward_given_up_total") <= 5,
                  "given up %g times",
                  gate_sample("qgate_forward_given_up_total"));
    gate_stop();

    st = store_ro();
    *walk = ticket_of(st, 30001);
    *noshow = ticket_of(st, 30003);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), 0);
    n = outbox_list(st, 1, e, COUNT(e));
    ck_assert_uint_eq(n, 5);
    for (i = 0; i < n; i++) {
        int k = e[i].ticket == *walk ? 0 : 1;

        ck_assert(e[i].ticket == *walk || e[i].ticket == *noshow);
        ck_assert(i == 0 || e[i].id > e[i - 1].id);
        ck_assert_uint_eq(e[i].seq, last[k] + 1);
        ck_assert_msg(e[i].last_error[0], "dead entry %" PRIu64 " says nothing",
                      e[i].id);
        last[k] = e[i].seq;
    }
    ck_assert(last[0] == 3 && last[1] == 2);
    qg_store_close(st);

    code = run_cli(dead_args, out, sizeof(out));
    ck_assert_msg(code == 1, "outbox --dead: exit %d, want 1", code);
    for (n = 0, p = out; (p = strstr(p, "\"dead\":true")) != NULL; p++)
        n++;
    ck_assert_msg(n == 5, "outbox --dead listed %zu: %s", n, out);
    code = run_cli(retry_args, out, sizeof(out));
    ck_assert_msg(code == 0, "outbox --retry-all: exit %d", code);
    ck_assert_msg(strncmp(out, "5 ", 2) == 0, "retry-all said: %s", out);

    st = store_ro();
    ck_assert_uint_eq(outbox_list(st, 1, e, COUNT(e)), 0);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), 5);
    qg_store_close(st);
    atomic_store(&his.mode, HIS_ACCEPT);
}

/* Restarts the gate with opts and requires the 5 requeued steps to reach
 * the HIS, each ticket's in order. */
static void
deliver_requeued(const char *const *opts, uint64_t walk, uint64_t noshow)
{
    size_t before = his_count(-1);
    int ok;

    gate_start(opts);
    WAIT_FOR(ok, his_count(200) >= 5, WAIT_MS);
    ck_assert_msg(ok,
                  "after --retry-all the restarted gate delivered %zu of 5 "
                  "(the HIS got %zu new requests; outbox %g, dead %g)",
                  his_count(200), his_count(-1) - before,
                  gate_sample("qgate_outbox_depth"),
                  gate_sample("qgate_outbox_dead"));
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(walk), 3);
    ck_assert_uint_eq(his_ticket_order(noshow), 2);
    ck_assert_uint_eq(his_count(200), 5);
    assert_outbox_empty();
}

/*
 * Dead-lettered, retried, and delivered in order by a gate restarted with
 * the default --max-age (loop 0), and as it ran, --max-age 1 included
 * (loop 1): the requeued steps are older than that by now, as every step
 * that died of age is older than the max age; retrying them must still
 * send them.
 */
START_TEST(test_forward_dead_letter_and_retry)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--max-age", "1", NULL};
    uint64_t walk, noshow;

    if (_i == 0)
        opts[4] = NULL; /* the default --max-age */
    his_start(HIS_FAIL);
    opts[1] = his.url;
    dead_letter_and_requeue(&walk, &noshow);
    deliver_requeued(opts, walk, noshow);
}
END_TEST

/*
 * A gate stopped while the HIS fails keeps the steps; restarted on the
 * same store with the HIS healthy, it delivers each once, in order.
 */
START_TEST(test_forward_resumes_after_restart)
{
    static const char *const files[] = {
        WALK_IN "01-join-live-queue.json", NO_SHOW "01-join-live-queue.json",
        WALK_IN "02-alert.json", NO_SHOW "02-no-show.json",
        WALK_IN "03-move.json"};
    const char *opts[] = {"--upstream", NULL, "--forward-timeout", "1", NULL};
    qg_outbox_entry e[16];
    uint64_t walk, noshow;
    qg_store *st;
    size_t i;
    int ok;

    his_start(HIS_FAIL);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(files); i++)
        post_accepted(files[i]);
    WAIT_FOR(ok, his_count(500) >= 2, WAIT_MS);
    ck_assert(ok);
    gate_stop();

    st = store_ro();
    walk = ticket_of(st, 30001);
    noshow = ticket_of(st, 30003);
    ck_assert_uint_eq(outbox_list(st, 0, e, COUNT(e)), COUNT(files));
    ck_assert_uint_eq(outbox_list(st, 1, e, COUNT(e)), 0);
    qg_store_close(st);

    atomic_store(&his.mode, HIS_ACCEPT);
    gate_start(opts);
    wait_delivered(COUNT(files), 15000);
    gate_stop();
    ck_assert_uint_eq(his_ticket_order(walk), 3);
    ck_assert_uint_eq(his_ticket_order(noshow), 2);
    ck_assert_uint_eq(his_count(200), COUNT(files));
    assert_outbox_empty();
}
END_TEST

/* ----- Concurrency ------------------------------------------------------ */

typedef struct shot {
    pthread_barrier_t *go;
    const char *body;
    size_t len;
    answer a;
} shot;

static void *
shoot(void *arg)
{
    shot *s = arg;

    pthread_barrier_wait(s->go);
    http_to(gate_port, "POST", WEBHOOK, as_json, s->body, s->len, &s->a);
    return NULL;
}

/* Fires n shots at once; each answer is left in its shot. */
static void
volley(shot *shots, size_t n)
{
    pthread_barrier_t go;
    pthread_t th[64];
    size_t i;

    ck_assert(n <= COUNT(th));
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (i = 0; i < n; i++) {
        shots[i].go = &go;
        ck_assert_int_eq(pthread_create(&th[i], NULL, shoot, &shots[i]), 0);
    }
    for (i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

#define CONFLICT_ROUNDS  5
#define CONFLICT_CLIENTS 16

/*
 * 16 clients post, at the same moment, conflicting next steps of one
 * queued ticket (Serving, No Show, Cancelled, Arrived, same timestamp,
 * four clients each).  The gate decides them one after another: what it
 * accepted is the ticket's history, a word of the machine, and everything
 * else was refused by the state it met.
 */
START_TEST(test_conflicting_steps_legal_history)
{
    static const struct {
        const char *state, *name;
    } steps[] = {
        {"{\"name\":\"SERVING\",\"value\":4}", "Serving"},
        {"{\"name\":\"NO_SHOW\",\"value\":6}", "No Show"},
        {"{\"name\":\"CANCELLED\",\"value\":7}", "Cancelled"},
        {"{\"name\":\"ARRIVED\",\"value\":3}", "Arrived"},
    };
    static shot shots[CONFLICT_ROUNDS][CONFLICT_CLIENTS];
    char *bodies[CONFLICT_ROUNDS][COUNT(steps)];
    size_t lens[CONFLICT_ROUNDS][COUNT(steps)], len, fixture_len, r, i, k;
    char *body, *fixture;
    qg_record recs[32];
    qg_history *h;
    qg_finding fnd;
    qg_ticket t;
    qg_store *st;
    unsigned records = 0, refused = 0;
    answer a;
    int rc;

    /* the generator writes what the fixtures hold */
    body = join_body(30001, &len);
    fixture = tu_fixture(WALK_IN "01-join-live-queue.json", &fixture_len);
    ck_assert(len == fixture_len && memcmp(body, fixture, len) == 0);
    free(body);
    free(fixture);

    gate_start(NULL);
    for (r = 0; r < CONFLICT_ROUNDS; r++) {
        ck_assert_ptr_nonnull(body = join_body(62001 + (long long)r, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        expect(&a, 200, "accepted", "none", "join");
        answer_free(&a);
        free(body);
        for (k = 0; k < COUNT(steps); k++) {
            bodies[r][k] =
                step_body(62001 + (long long)r, "live_queue_updated",
                          "2024-03-05T09:10:00+08:00", steps[k].state,
                          steps[k].name, &lens[r][k]);
            ck_assert_ptr_nonnull(bodies[r][k]);
        }
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            shots[r][i].body = bodies[r][i % COUNT(steps)];
            shots[r][i].len = lens[r][i % COUNT(steps)];
        }
        volley(shots[r], CONFLICT_CLIENTS);
    }
    gate_stop();

    st = store_ro();
    for (r = 0; r < CONFLICT_ROUNDS; r++) {
        uint32_t accepted_seq[COUNT(steps)] = {0}, n = 0;
        /* bit s: step s was answered "accepted"; the join is step 1 */
        uint32_t seen = 3;

        ck_assert_int_eq(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, 62001 + (long long)r, &t), 0);
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        while (n < COUNT(recs) && (rc = qg_history_next(h, &recs[n])) == 0) {
            recs[n].body = NULL;
            n++;
        }
        qg_history_close(h);
        ck_assert(n >= 1 && n == t.records);
        /* a word of the machine */
        ck_assert(recs[0].from == QG_ST_NEW && recs[0].event == QG_EV_JOIN);
        for (k = 0; k < n; k++) {
            ck_assert_uint_eq(recs[k].seq, k + 1);
            ck_assert_int_eq(qg_machine_next(recs[k].from, recs[k].event),
                             (int)recs[k].to);
            if (k > 0)
                ck_assert_int_eq(recs[k].from, recs[k - 1].to);
        }
        ck_assert_int_eq(t.state, recs[n - 1].to);
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &fnd), 0);
        ck_assert_msg(!fnd.found, "ticket %" PRIu64 ": %s", t.id, fnd.what);

        /* each accepted answer is one record; each refusal met a state
         * of this history in which its event is illegal */
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            answer *s = &shots[r][i].a;
            const char *verdict = jstr(s->json, "verdict");
            int64_t seq = jint(s->json, "seq");
            qg_state from, to;
            qg_event ev;

            ck_assert_msg(s->rc == CURLE_OK && s->json, "round %zu: %s", r,
                          curl_easy_strerror(s->rc));
            if (!same(verdict, "accepted"))
                continue;
            ck_assert_int_eq(s->status, 200);
            ck_assert_msg(seq >= 2 && seq <= n, "accepted as step %" PRId64,
                          seq);
            ck_assert_msg(!(seen & (1u << seq)),
                          "two answers accepted as "
                          "step %" PRId64,
                          seq);
            seen |= 1u << seq;
            ck_assert_int_eq(qg_event_from_name(jstr(s->json, "event"), &ev),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "from"), &from),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "to"), &to), 0);
            ck_assert(recs[seq - 1].event == ev && recs[seq - 1].from == from &&
                      recs[seq - 1].to == to);
            accepted_seq[i % COUNT(steps)] = (uint32_t)seq;
        }
        ck_assert_msg(seen == (2u << n) - 1,
                      "round %zu: %u records, accepted answers 0x%x", r, n,
                      seen);
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            answer *s = &shots[r][i].a;
            const char *verdict = jstr(s->json, "verdict");
            qg_state from;
            qg_event ev;
            int met = 0;

            if (same(verdict, "accepted"))
                continue;
            if (same(verdict, "duplicate")) {
                ck_assert_int_eq(s->status, 200);
                ck_assert_int_eq(jint(s->json, "seq"),
                                 accepted_seq[i % COUNT(steps)]);
                continue;
            }
            ck_assert_msg(s->status == 409 && same(verdict, "rejected"),
                          "round %zu: %ld %s", r, s->status, s->body);
            ck_assert_int_eq(qg_event_from_name(jstr(s->json, "event"), &ev),
                             0);
            ck_assert_int_eq(qg_state_from_name(jstr(s->json, "from"), &from),
                             0);
            ck_assert_msg(qg_machine_next(from, ev) < 0, "%s", s->body);
            for (k = 0; k < n; k++)
                met |= recs[k].to == from;
            ck_assert_msg(met, "refused in a state the ticket never had: %s",
                          s->body);
        }
        for (i = 0; i < CONFLICT_CLIENTS; i++) {
            refused += shots[r][i].a.status == 409;
            answer_free(&shots[r][i].a);
        }
        for (k = 0; k < COUNT(steps); k++)
            free(bodies[r][k]);
        records += n;
    }
    qg_store_close(st);
    printf("conflicts: %d rounds of %d clients: %u records, %u refused\n",
           CONFLICT_ROUNDS, CONFLICT_CLIENTS, records, refused);
}
END_TEST

#define GROUP_CLIENTS 32

/* 32 tickets posted at once with --durability group: all accepted, in
 * fewer commits than deliveries. */
START_TEST(test_group_commit_shares_commits)
{
    static const char *const opts[] = {"--durability", "group", NULL};
    shot shots[GROUP_CLIENTS];
    double count, sum;
    char *text;
    size_t i;

    gate_start(opts);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        shots[i].body = join_body(63001 + (long long)i, &shots[i].len);
        ck_assert_ptr_nonnull(shots[i].body);
    }
    volley(shots, GROUP_CLIENTS);
    for (i = 0; i < GROUP_CLIENTS; i++) {
        expect(&shots[i].a, 200, "accepted", "none", "concurrent join");
        answer_free(&shots[i].a);
        free((char *)shots[i].body);
    }
    text = scrape();
    count = sample_value(text, "qgate_commit_batch_size_count");
    sum = sample_value(text, "qgate_commit_batch_size_sum");
    free(text);
    printf("group commit: %d deliveries in %g commits\n", GROUP_CLIENTS, count);
    ck_assert_msg(sum == GROUP_CLIENTS, "batch sizes sum to %g", sum);
    ck_assert_msg(count >= 1 && count < GROUP_CLIENTS,
                  "%d concurrent deliveries took %g commits", GROUP_CLIENTS,
                  count);
    gate_stop();
}
END_TEST

/* ----- Reload ----------------------------------------------------------- */

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Joins entry id with a state the default mapping does not know. */
static void
post_waiting_room(long long id, answer *a)
{
    size_t len;
    char *body =
        step_body(id, "live_queue_created", "2024-03-05T10:00:00+08:00", "42",
                  "Waiting Room", &len);

    ck_assert_ptr_nonnull(body);
    http("POST", WEBHOOK, as_json, body, len, a);
    free(body);
}

/*
 * SIGHUP reloads the mapping and the secret without a restart: a state
 * the mapping did not know is refused (422), known after the file is
 * changed and the gate told; a mapping that does not load keeps the
 * running one.  It also reopens the log file, as log rotation expects.
 */
START_TEST(test_sighup_reloads_mapping_and_log)
{
    char cfg[160], map[160], rotated[160];
    /* the JSON log where the test reads the gate's stderr too, so that
     * gate_start() sees the "listening" line */
    const char *log = logpath;
    const char *opts[] = {"--config", cfg, "--log", log, NULL};
    char *text;
    answer a;

    snprintf(cfg, sizeof(cfg), "%s/qgate.json", work);
    snprintf(map, sizeof(map), "%s/map.json", work);
    snprintf(rotated, sizeof(rotated), "%s.1", logpath);
    write_text(map, "{\"states\": {}}");
    write_text(cfg, "{\"mapping\": \"map.json\"}");
    gate_start(opts);

    /* 1: unknown to the mapping */
    post_waiting_room(62001, &a);
    expect(&a, 422, "rejected", "unknown_state", "before the reload");
    answer_free(&a);

    /* 2: a broken mapping file is refused and the running one kept */
    write_text(map, "{\"states\": {\"Waiting Room\": \"teleport\"}}");
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_waiting_room(62002, &a);
    expect(&a, 422, "rejected", "unknown_state", "after a bad reload");
    answer_free(&a);

    /* 3: fixed, rotated, told: the state is known and the log reopened */
    write_text(map, "{\"states\": {\"Waiting Room\": \"join\"}}");
    ck_assert_int_eq(rename(log, rotated), 0);
    ck_assert_int_eq(kill(gate_pid, SIGHUP), 0);
    sleep_ms(300);
    post_waiting_room(62003, &a);
    expect(&a, 200, "accepted", "none", "after the reload");
    ck_assert_str_eq(jstr(a.json, "event"), "join");
    answer_free(&a);
    gate_stop();

    /* The log says what was reloaded, and why a reload failed: the
     * operator who sent the signal reads the JSON log, not stderr. */
    text = read_from(log, 0);
    ck_assert_msg(strstr(text, "\"msg\":\"reloaded\",\"mapping\":\"") != NULL &&
                      strstr(text, "/map.json\",\"secret\":\"") != NULL &&
                      strstr(text, "/secret\",\"log\":\"") != NULL,
                  "the new log file lacks what was reloaded: %s", text);
    free(text);
    text = read_from(rotated, 0);
    ck_assert_msg(strstr(text, "\"level\":\"error\",\"msg\":\"reload "
                               "failed; keeping the running mapping and "
                               "secret\",\"error\":\"") != NULL &&
                      strstr(text, "teleport") != NULL,
                  "the rotated log lacks the failed reload's reason: %s", text);
    ck_assert_msg(strstr(text, "\nqgate: ") == NULL,
                  "the failed reload was said outside the JSON log: %s", text);
    free(text);
}
END_TEST

/* ----- Hostile clients ---------------------------------------------------- */

/* A TCP connection to the gate, or -1. */
static int
connect_gate(void)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)gate_port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether the peer closed fd within ms (read returns 0 or an error). */
static int
closed_within(int fd, long ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[512];
    int64_t until = now_ms() + ms;

    while (now_ms() < until) {
        if (poll(&p, 1, 50) > 0) {
            ssize_t n = read(fd, buf, sizeof(buf));

            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

/*
 * Slowloris: a client that dribbles its headers one byte at a time is cut
 * off after the idle timeout, and serves nobody's harm meanwhile: other
 * clients are answered as usual.
 */
START_TEST(test_hostile_slowloris)
{
    const char *opts[] = {"--timeout", "2", NULL};
    const char *head = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fds[8], i, cut = 0;
    answer a;
    int64_t start;

    gate_start(opts);
    for (i = 0; i < 8; i++) {
        ck_assert_int_ge(fds[i] = connect_gate(), 0);
        ck_assert_int_eq(write(fds[i], head, strlen(head)),
                         (ssize_t)strlen(head));
    }
    start = now_ms();
    /* a byte every 0.5 s from each, and a real client meanwhile */
    while (now_ms() - start < 1500) {
        for (i = 0; i < 8; i++)
            (void)!write(fds[i], "a", 1);
        post_fixture(walk_in_files[0], &a);
        ck_assert_msg(a.status == 200, "a client beside slow ones: %ld",
                      a.status);
        answer_free(&a);
        sleep_ms(500);
    }
    /* then silence: each slow connection is closed after the timeout */
    for (i = 0; i < 8; i++)
        cut += closed_within(fds[i], 6000);
    for (i = 0; i < 8; i++)
        close(fds[i]);
    ck_assert_int_eq(cut, 8);
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
}
END_TEST

/*
 * A client that trickles its headers, a byte every 0.3 s, never silent for
 * --timeout, is still cut off at --request-timeout: the deadline is for
 * the whole request, not between bytes.
 */
START_TEST(test_hostile_request_deadline)
{
    const char *opts[] = {"--request-timeout", "2", "--timeout", "30", NULL};
    const char *head = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    struct pollfd p;
    int64_t start, cut = 0;
    char buf[512];
    int fd;

    gate_start(opts);
    ck_assert_int_ge(fd = connect_gate(), 0);
    start = now_ms();
    ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    while (!cut && now_ms() - start < 8000) {
        (void)!write(fd, "a", 1);
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 300) > 0 && read(fd, buf, sizeof(buf)) <= 0)
            cut = now_ms() - start;
    }
    close(fd);
    ck_assert_msg(cut >= 1800 && cut <= 5000,
                  "a trickling request was cut after %" PRId64 " ms", cut);
    ck_assert(gate_sample(
                  "qgate_connections_shed_total{reason=\"deadline\"}") == 1.0);
    gate_stop();
}
END_TEST

/* Sends fixture `rel` as one POST on fd; returns the status of the
 * answer, read whole (by its Content-Length) within WAIT_MS, or -1. */
static int
post_on(int fd, const char *rel)
{
    char head[256], buf[8192], *end, *cl;
    size_t len, got = 0;
    char *body = tu_fixture(rel, &len);
    int64_t until = now_ms() + WAIT_MS;
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n",
             WEBHOOK, len);
    ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    ck_assert_int_eq(write(fd, body, len), (ssize_t)len);
    free(body);
    while (now_ms() < until && got < sizeof(buf) - 1) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        if ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) == NULL)
            continue;
        cl = strstr(buf, "\r\nContent-Length:"); /* as MHD writes it */
        if (cl && cl < end &&
            got >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
            return atoi(buf + 9);
    }
    return -1;
}

/*
 * On a kept-alive connection the request deadline runs from the request's
 * first line, not from the last answer: a pause longer than
 * --request-timeout between two deliveries is fine.  The wait for the
 * next request is bounded by --timeout, absolutely: trickling bytes that
 * never make a request line does not extend it.
 */
START_TEST(test_hostile_keepalive_bounds)
{
    const char *opts[] = {"--request-timeout", "2", "--timeout", "4", NULL};
    struct pollfd p;
    int64_t start, cut = 0;
    char buf[512];
    int fd;

    gate_start(opts);
    ck_assert_int_ge(fd = connect_gate(), 0);
    ck_assert_int_eq(post_on(fd, walk_in_files[0]), 200);
    ck_assert_msg(!closed_within(fd, 3000), "closed while kept alive");
    ck_assert_int_eq(post_on(fd, walk_in_files[1]), 200);
    start = now_ms();
    while (!cut && now_ms() - start < 10000) {
        (void)!write(fd, "a", 1);
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 300) > 0 && read(fd, buf, sizeof(buf)) <= 0)
            cut = now_ms() - start;
    }
    close(fd);
    ck_assert_msg(
        cut >= 3500 && cut <= 7000,
        "a kept-alive connection trickling was cut after %" PRId64 " ms", cut);
    ck_assert(gate_sample("qgate_connections_shed_total{reason=\"idle\"}") ==
              1.0);
    gate_stop();
}
END_TEST

/* Raises this process's limit on open files to n, or fails the test. */
static void
want_open_files(rlim_t n)
{
    struct rlimit rl;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        rl.rlim_max = n; /* only root may; then so be it */
    rl.rlim_cur = n;
    ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0,
                  "this test needs %lu open files (ulimit -n)",
                  (unsigned long)n);
}

/* A crowd of clients from one address, each trickling a header byte a
 * second; one the gate closes comes back after 0.5 s. */
#define CROWD_MAX 1500

typedef struct crowd {
    int n;
    const char *from;
    int fd[CROWD_MAX];
    int64_t next[CROWD_MAX]; /* when to send the next byte, or reconnect */
    atomic_int stop;
    atomic_int connected; /* the whole crowd connected once */
    atomic_long cut;      /* connections the gate closed */
} crowd;

/* A connection from address `from` to the gate, its request begun; -1
 * when the gate did not take it within 0.2 s. */
static int
trickler(const char *from)
{
    static const char head[] = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\n"
                               "X-Slow: ";
    struct timeval tv = {0, 200000};
    struct sockaddr_in src, dst;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    inet_pton(AF_INET, from, &src.sin_addr);
    dst = src;
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)gate_port);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 ||
        write(fd, head, sizeof(head) - 1) != (ssize_t)sizeof(head) - 1) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void *
crowd_run(void *arg)
{
    static struct pollfd p[CROWD_MAX];
    crowd *c = arg;
    char buf[512];
    int64_t now;
    int i;

    for (i = 0; i < c->n; i++) {
        c->fd[i] = trickler(c->from);
        c->next[i] = now_ms() + 1000;
    }
    atomic_store(&c->connected, 1);
    while (!atomic_load(&c->stop)) {
        for (i = 0; i < c->n; i++) {
            p[i].fd = c->fd[i];
            p[i].events = POLLIN;
            p[i].revents = 0;
        }
        poll(p, (nfds_t)c->n, 50);
        now = now_ms();
        for (i = 0; i < c->n; i++) {
            if (c->fd[i] >= 0 && p[i].revents &&
                read(c->fd[i], buf, sizeof(buf)) <= 0) {
                close(c->fd[i]);
                c->fd[i] = -1;
                c->next[i] = now + 500;
                atomic_fetch_add(&c->cut, 1);
            }
            if (now < c->next[i])
                continue;
            if (c->fd[i] < 0)
                c->fd[i] = trickler(c->from);
            else
                (void)!write(c->fd[i], "a", 1);
            c->next[i] = now + (c->fd[i] < 0 ? 500 : 1000);
        }
    }
    for (i = 0; i < c->n; i++)
        if (c->fd[i] >= 0)
            close(c->fd[i]);
    return NULL;
}

/*
 * Slowloris, as the hardening review ran it: 1,500 connections from
 * 127.0.0.2 trickle their headers, coming back when closed.  Deliveries
 * from 127.0.0.1 are answered within 2 s all along.
 *   0: the defaults: --max-per-address keeps the crowd to 256 slots.
 *   1: no limit per address, so the crowd fills the table: the
 *      connections waiting longest for a whole request make room.
 */
START_TEST(test_hostile_slowloris_crowd)
{
    const char *opts[] = {"--max-per-address", "4096", NULL};
    static crowd c;
    pthread_t th;
    int64_t start, worst = 0;
    long long id = 80000 + _i * 1000;
    size_t len;
    char *body;
    answer a;
    int i;

    want_open_files(CROWD_MAX + 1024 + 256);
    gate_start(_i == 1 ? opts : NULL);
    memset(&c, 0, sizeof(c));
    c.n = CROWD_MAX;
    c.from = "127.0.0.2";
    ck_assert_int_eq(pthread_create(&th, NULL, crowd_run, &c), 0);
    for (i = 0; i < 30000 / 20 && !atomic_load(&c.connected); i++)
        sleep_ms(20);
    ck_assert(atomic_load(&c.connected));
    sleep_ms(1000);
    for (start = now_ms(); now_ms() - start < 5000; sleep_ms(250)) {
        ck_assert_ptr_nonnull(body = join_body(id++, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        free(body);
        ck_assert_msg(a.status == 200 && a.ms < 2000,
                      "beside the crowd: %ld in %" PRId64 " ms", a.status,
                      a.ms);
        if (a.ms > worst)
            worst = a.ms;
        answer_free(&a);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    ck_assert_msg(atomic_load(&c.cut) > 0, "the crowd was never cut");
    if (_i == 1)
        ck_assert(gate_sample("qgate_connections_shed_total{reason=\"full\"}") >
                  0.0);
    gate_stop();
}
END_TEST

/* The gate's soft limit on open files, from /proc, or -1. */
static long
gate_open_files(void)
{
    char path[64], *text, *line;
    long n = -1;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)gate_pid);
    text = read_from(path, 0);
    if ((line = strstr(text, "Max open files")) != NULL)
        n = strtol(line + strlen("Max open files"), NULL, 10);
    free(text);
    return n;
}

/*
 * The gate fits its limit on open files to --max-connections: it raises
 * the soft limit when the hard one allows, else lowers --max-connections
 * and says so; either way a crowd of idle connections beyond what fits
 * holds up nobody, because the oldest make room.
 */
START_TEST(test_hostile_open_files_fit)
{
    enum { CROWD = 170 }; /* more than 136, within this process's 200 */
    struct rlimit rl;
    int fds[CROWD], i;
    off_t from;
    char *text;
    answer a;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_max >= 1024 + 64, "needs ulimit -Hn of 1088");
    rl.rlim_cur = 200;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    from = file_size(logpath);
    gate_start(NULL);
    ck_assert_int_eq(gate_open_files(), 1024 + 64);
    gate_stop();

    rl.rlim_max = 200; /* this test's process only */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    gate_start(NULL);
    text = read_from(logpath, from);
    ck_assert_msg(strstr(text, "lowered to fit") &&
                      strstr(text, "\"max_connections\":136"),
                  "%s", text);
    free(text);
    for (i = 0; i < CROWD; i++)
        ck_assert_int_ge(fds[i] = connect_gate(), 0);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200 && a.ms < 2000,
                  "beside %d idle connections, 136 allowed: %ld in %" PRId64
                  " ms",
                  CROWD, a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        close(fds[i]);
    gate_stop();
}
END_TEST

/*
 * A client that closes in the middle of its body: nothing is recorded
 * (the delivery never arrived), nothing is answered, and the gate goes on
 * serving.
 */
START_TEST(test_hostile_close_mid_body)
{
    char head[256];
    size_t len;
    char *body = tu_fixture(walk_in_files[0], &len);
    qg_store *st;
    qg_ticket t;
    answer a;
    int fd, i;

    gate_start(NULL);
    for (i = 0; i < 20; i++) {
        ck_assert_int_ge(fd = connect_gate(), 0);
        snprintf(head, sizeof(head),
                 "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n",
                 WEBHOOK, len);
        ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
        ck_assert_int_eq(write(fd, body, len / 2), (ssize_t)(len / 2));
        close(fd);
    }
    http("GET", "/healthz", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    gate_stop();
    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t),
                     QG_NOTFOUND);
    qg_store_close(st);
    free(body);
}
END_TEST

/*
 * Many connections at once.  A crowd of idle connections within
 * --max-connections holds up nobody; one beyond it fills every slot, and
 * the others wait in the listen queue until the idle ones time out
 * (--timeout): the gate is never stuck.
 */
START_TEST(test_hostile_many_connections)
{
    enum { CROWD = 200 };
    const char *opts[] = {"--max-connections", "64", "--timeout", "2", NULL};
    int fds[CROWD], i, n = 0;
    answer a;

    gate_start(NULL);
    for (i = 0; i < CROWD; i++)
        if ((fds[i] = connect_gate()) >= 0)
            n++;
    ck_assert_int_eq(n, CROWD);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200 && a.ms < 3000,
                  "beside %d idle connections: %ld in %" PRId64 " ms", CROWD,
                  a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        close(fds[i]);
    gate_stop();

    gate_start(opts);
    for (i = 0; i < CROWD; i++)
        fds[i] = connect_gate();
    post_fixture(walk_in_files[1], &a);
    ck_assert_msg(a.status == 200 && a.ms < 10000,
                  "behind %d idle connections, 64 allowed: %ld in %" PRId64
                  " ms",
                  CROWD, a.status, a.ms);
    answer_free(&a);
    for (i = 0; i < CROWD; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    gate_stop();
}
END_TEST

/* An unsigned delivery of about n bytes: a well-formed envelope whose
 * signature is zeros (unauthenticated).  malloc'd. */
static char *
unsigned_body(size_t n, size_t *len)
{
    static const char head[] = "{\"payload\":{\"event\":\"live_queue_created\","
                               "\"pad\":\"";
    static const char tail[] = "\"},\"signature\":\"";
    size_t pad = n > 200 ? n - 200 : 1, at = 0;
    char *b = malloc(n + 256);

    ck_assert_ptr_nonnull(b);
    memcpy(b, head, sizeof(head) - 1);
    at = sizeof(head) - 1;
    memset(b + at, 'x', pad);
    at += pad;
    memcpy(b + at, tail, sizeof(tail) - 1);
    at += sizeof(tail) - 1;
    memset(b + at, '0', 64);
    at += 64;
    memcpy(b + at, "\"}\n", 3);
    *len = at + 3;
    return b;
}

/* Posts an unsigned body of `size` bytes n times; each must get `status`. */
static void
post_unsigned(int n, size_t size, long status)
{
    size_t len;
    char *body = unsigned_body(size, &len);
    answer a;
    int i;

    for (i = 0; i < n; i++) {
        http("POST", WEBHOOK, as_json, body, len, &a);
        ck_assert_msg(a.status == status, "unsigned delivery %d: %ld %s", i,
                      a.status, a.body);
        answer_free(&a);
    }
    free(body);
}

/* The store's file, in bytes. */
static off_t
store_bytes(void)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/data.mdb", db);
    return file_size(path);
}

/*
 * Unauthenticated junk does not fill the disk: 1,000 unsigned bodies of
 * 100 KB (100 MB sent, the rate limit lifted) grow the store by less than
 * 10 MB, because only a prefix of each is kept.
 */
START_TEST(test_hostile_unsigned_store_growth)
{
    const char *opts[] = {"--unsigned-rate", "1000000", "--unsigned-burst",
                          "1000000", NULL};
    answer a;
    off_t before, after;
    qg_store *st;
    qg_rejections *r = NULL;
    qg_rejection rej;
    size_t len;
    int n = 0;

    free(unsigned_body(100 * 1000, &len));
    gate_start(opts);
    post_fixture(walk_in_files[0], &a);
    ck_assert_int_eq(a.status, 200);
    answer_free(&a);
    before = store_bytes();
    post_unsigned(1000, 100 * 1000, 401);
    gate_stop();
    after = store_bytes();
    ck_assert_msg(after - before < 10 * 1000 * 1000,
                  "1000 unsigned bodies of 100 KB grew the store by %lld "
                  "bytes",
                  (long long)(after - before));
    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while (qg_rejections_next(r, &rej) == 0) {
        ck_assert_int_eq(rej.verdict, QG_UNAUTHENTICATED);
        ck_assert_int_eq(rej.truncated, 1);
        ck_assert_uint_eq(rej.received_len, len);
        n++;
    }
    qg_rejections_close(r);
    qg_store_close(st);
    ck_assert_int_eq(n, 1000);
}
END_TEST

/*
 * Unsigned deliveries from one address beyond --unsigned-burst get 429
 * with Retry-After and are not recorded; a signed delivery from the same
 * address still passes.
 */
START_TEST(test_hostile_unsigned_rate_limited)
{
    const char *opts[] = {"--unsigned-rate", "6", "--unsigned-burst", "5",
                          NULL};
    char retry[32];
    size_t len;
    char *body = unsigned_body(1000, &len);
    qg_store *st;
    qg_rejections *r = NULL;
    qg_rejection rej;
    answer a;
    int n = 0;

    gate_start(opts);
    post_unsigned(5, 1000, 401);
    http("POST", WEBHOOK, as_json, body, len, &a);
    ck_assert_msg(a.status == 429 && same(jstr(a.json, "code"), "rate_limited"),
                  "%ld %s", a.status, a.body);
    ck_assert_ptr_nonnull(head_value(&a, "Retry-After", retry, sizeof(retry)));
    ck_assert_msg(atoi(retry) >= 1 && atoi(retry) <= 11, "Retry-After: %s",
                  retry);
    answer_free(&a);
    post_unsigned(3, 1000, 429);
    post_fixture(walk_in_files[0], &a);
    ck_assert_msg(a.status == 200, "a signed delivery: %ld", a.status);
    answer_free(&a);
    ck_assert(gate_sample("qgate_unsigned_rate_limited_total") == 4.0);
    gate_stop();
    free(body);
    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 1, &r), 0);
    while (qg_rejections_next(r, &rej) == 0)
        n++;
    qg_rejections_close(r);
    qg_store_close(st);
    ck_assert_int_eq(n, 5);
}
END_TEST

/*
 * The rejection log's unsigned entries stay under --max-unsigned-log; the
 * oldest are dropped, and /metrics, `qgate rejected` and `qgate stats`
 * count them.
 */
START_TEST(test_hostile_unsigned_log_bounded)
{
    const char *opts[] = {"--unsigned-rate",
                          "1000000",
                          "--unsigned-burst",
                          "1000000",
                          "--max-unsigned-log",
                          "65536",
                          NULL};
    const char *stats[] = {"stats", "--json", "--db", db, NULL};
    const char *rejected[] = {"rejected", "--db", db, NULL};
    char out[8192], want[64];
    off_t from;
    double dropped;
    char *text;

    gate_start(opts);
    post_unsigned(100, 10000, 401);
    dropped = gate_sample("qgate_rejections_dropped_total");
    gate_stop();
    /* each entry is about 3.3 KB: 65536 bytes hold 19 of them */
    ck_assert_msg(dropped >= 75 && dropped <= 90, "dropped %g", dropped);
    ck_assert_int_eq(run_cli(stats, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "\"refused_dropped\":%.0f,", dropped);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof(want), "\"refused\":%.0f,", 100 - dropped);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    from = file_size(logpath);
    ck_assert_int_eq(run_cli(rejected, out, sizeof(out)), 1);
    text = read_from(logpath, from);
    snprintf(want, sizeof(want), "%.0f older unauthenticated", dropped);
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    free(text);
}
END_TEST

/* ----- Crash ------------------------------------------------------------ */

/* 6 rounds by default; QG_CRASH_ROUNDS (up to CRASH_MAX_ROUNDS) for the
 * long run that ctest labels "crash". */
#define CRASH_ROUNDS     6
#define CRASH_MAX_ROUNDS 100
#define CRASH_CLIENTS    4
#define CRASH_PER_ROUND  3000
#define CRASH_BASE       700000LL

enum { C_UNSENT, C_SENT, C_ACKED, C_OTHER };

/* Every CRASH_HELD_EVERY-th slot also sends a step of a ticket that never
 * joins (live-queue CRASH_HELD_BASE + slot): held, answered 202. */
#define CRASH_HELD_EVERY 10
#define CRASH_HELD_BASE  900000LL

static struct {
    atomic_int state[CRASH_MAX_ROUNDS * CRASH_PER_ROUND];
    atomic_int held[CRASH_MAX_ROUNDS * CRASH_PER_ROUND];
    atomic_long next;
    long end;
    atomic_int stop;
} crash;

/* Sends body (freed here), recording in *state whether the answer was the
 * one wanted: C_ACKED, or C_OTHER.  Returns 0, or -1 when there was no
 * body or no answer (the gate is gone). */
static int
crash_send(char *body, size_t len, atomic_int *state, long status,
           const char *verdict)
{
    CURLcode rc;
    answer a;

    if (body == NULL)
        return -1;
    atomic_store(state, C_SENT);
    rc = http_to(gate_port, "POST", WEBHOOK, as_json, body, len, &a);
    free(body);
    if (rc == CURLE_OK)
        atomic_store(state, a.status == status &&
                                    same(jstr(a.json, "verdict"), verdict)
                                ? C_ACKED
                                : C_OTHER);
    answer_free(&a);
    return rc == CURLE_OK ? 0 : -1;
}

static void *
crash_client(void *arg)
{
    long slot, guard;
    size_t len;
    char *body;

    (void)arg;
    for (guard = 0; guard < CRASH_PER_ROUND && !atomic_load(&crash.stop);
         guard++) {
        if ((slot = atomic_fetch_add(&crash.next, 1)) >= crash.end)
            break;
        body = join_body(CRASH_BASE + slot, &len);
        if (crash_send(body, len, &crash.state[slot], 200, "accepted"))
            break;
        if (slot % CRASH_HELD_EVERY)
            continue;
        body = served_body(CRASH_HELD_BASE + slot, &len);
        if (crash_send(body, len, &crash.held[slot], 202, "held"))
            break;
    }
    return NULL;
}

/* Whether live-queue id is held in st. */
static int
is_held(qg_store *st, long long id)
{
    qg_held_list *hl;
    qg_held h;
    int found = 0;

    ck_assert_int_eq(qg_held_open(st, &hl), 0);
    while (!found && qg_held_next(hl, &h) == 0)
        found = h.live_queue_id == id;
    qg_held_close(hl);
    return found;
}

/* The HIS's acknowledged requests, sorted by delivery id, for lookups
 * that stay fast over a long crash run. */
static const his_req **his_sorted;
static size_t his_nsorted;

static int
by_delivery(const void *a, const void *b)
{
    return strcmp((*(const his_req *const *)a)->delivery,
                  (*(const his_req *const *)b)->delivery);
}

static void
his_index(void)
{
    size_t i;

    his_sorted = calloc(his.n + 1, sizeof(*his_sorted));
    ck_assert_ptr_nonnull(his_sorted);
    for (i = 0, his_nsorted = 0; i < his.n; i++)
        if (his.reqs[i].status == 200)
            his_sorted[his_nsorted++] = &his.reqs[i];
    qsort(his_sorted, his_nsorted, sizeof(*his_sorted), by_delivery);
}

/* The HIS's acknowledged request for step 1 of ticket t, or NULL. */
static const his_req *
his_find(uint64_t t)
{
    his_req want;
    const his_req *key = &want, **hit;

    snprintf(want.delivery, sizeof(want.delivery), "%" PRIu64 "-1", t);
    hit = bsearch(&key, his_sorted, his_nsorted, sizeof(*his_sorted),
                  by_delivery);
    return hit ? *hit : NULL;
}

static long
crash_rounds(void)
{
    const char *env = getenv("QG_CRASH_ROUNDS");
    long n = env ? strtol(env, NULL, 10) : CRASH_ROUNDS;

    return n < 1 ? 1 : n > CRASH_MAX_ROUNDS ? CRASH_MAX_ROUNDS : n;
}

/* After a kill: the store opens as it is (no repair step exists or is
 * needed) and every delivery of the round answered "accepted" is there,
 * once. */
static void
check_round(long round)
{
    qg_store *st = store_ro();
    long slot;
    qg_ticket t;

    for (slot = round * CRASH_PER_ROUND; slot < (round + 1) * CRASH_PER_ROUND;
         slot++) {
        if (atomic_load(&crash.state[slot]) != C_ACKED)
            continue;
        ck_assert_msg(
            qg_store_ticket(st, QG_ID_LIVE_QUEUE, CRASH_BASE + slot, &t) == 0 &&
                t.records == 1,
            "round %ld: live-queue %lld was acknowledged and is "
            "not in the store once",
            round, CRASH_BASE + slot);
        if (slot % CRASH_HELD_EVERY == 0 &&
            atomic_load(&crash.held[slot]) == C_ACKED)
            ck_assert_msg(is_held(st, CRASH_HELD_BASE + slot),
                          "round %ld: live-queue %lld was answered held and "
                          "is not held",
                          round, CRASH_HELD_BASE + slot);
    }
    qg_store_close(st);
}

/*
 * kill -9 under load, again and again: whatever the gate answered
 * "accepted" is in the store exactly once, after every round and at the
 * end, and on its way to the HIS (still in the outbox) or there already.
 */
START_TEST(test_kill9_keeps_acknowledged)
{
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "1", "--reorder-window",
        "3600",       NULL};
    long rounds, sent = 0, acked = 0, unanswered = 0, kept = 0, lost = 0,
                 in_outbox = 0, at_his = 0, twice = 0, slot, held;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    qg_outbox_entry *box;
    pthread_t th[CRASH_CLIENTS];
    size_t nbox, i, len;
    qg_tickets *it;
    qg_finding fnd;
    qg_history *h;
    qg_record rec;
    qg_ticket t;
    qg_store *st;
    char *body;
    int ok;

    printf("crash: seed %u\n", seed);
    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    for (rounds = 0; rounds < crash_rounds(); rounds++) {
        gate_start(opts);
        atomic_store(&crash.next, rounds * CRASH_PER_ROUND);
        crash.end = (rounds + 1) * CRASH_PER_ROUND;
        atomic_store(&crash.stop, 0);
        for (i = 0; i < CRASH_CLIENTS; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, crash_client, NULL),
                             0);
        sleep_ms(100 + (long)(rand_r(&seed) % 400));
        gate_kill();
        atomic_store(&crash.stop, 1);
        for (i = 0; i < CRASH_CLIENTS; i++)
            pthread_join(th[i], NULL);
        check_round(rounds);
    }
    /* once more, to forward what waits, and a clean stop */
    gate_start(opts);
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    gate_stop();
    ck_assert_uint_eq(his.dropped, 0);
    his_index();

    st = store_ro();
    box = calloc((size_t)rounds * CRASH_PER_ROUND, sizeof(*box));
    ck_assert_ptr_nonnull(box);
    nbox = outbox_list(st, 0, box, (size_t)rounds * CRASH_PER_ROUND);
    for (slot = 0; slot < rounds * CRASH_PER_ROUND; slot++) {
        int s = atomic_load(&crash.state[slot]), rc, found = 0;

        if (s == C_UNSENT)
            continue;
        sent++;
        ck_assert_msg(s != C_OTHER,
                      "live-queue %lld: answered but not "
                      "accepted",
                      CRASH_BASE + slot);
        rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, CRASH_BASE + slot, &t);
        if (s == C_SENT) {
            unanswered++;
            if (rc == QG_NOTFOUND)
                continue;
        } else {
            acked++;
        }
        if (rc != 0 || t.records != 1) {
            lost++;
            fprintf(stderr, "live-queue %lld: %s, %u records\n",
                    CRASH_BASE + slot, qg_strerror(rc), rc ? 0 : t.records);
            continue;
        }
        kept += s == C_SENT;
        ck_assert_int_eq(qg_history_open(st, t.id, &h), 0);
        ck_assert_int_eq(qg_history_next(h, &rec), 0);
        body = join_body(CRASH_BASE + slot, &len);
        ck_assert_msg(rec.body_len == len && memcmp(rec.body, body, len) == 0,
                      "live-queue %lld: the stored body differs",
                      CRASH_BASE + slot);
        qg_history_close(h);
        for (i = 0; i < nbox && !found; i++)
            found = box[i].ticket == t.id && box[i].seq == 1;
        if (found) {
            in_outbox++;
        } else {
            const his_req *q = his_find(t.id);

            if (q == NULL || q->len != len || memcmp(q->body, body, len)) {
                lost++;
                fprintf(stderr,
                        "live-queue %lld (ticket %" PRIu64
                        "): neither in the outbox nor at the HIS\n",
                        CRASH_BASE + slot, t.id);
            } else {
                at_his++;
            }
        }
        free(body);
    }
    /* every ticket whole; every step the HIS got was one the store holds */
    ck_assert_int_eq(qg_tickets_open(st, &it), 0);
    while (qg_tickets_next(it, &t) == 0) {
        ck_assert_int_eq(qg_store_verify_ticket(st, t.id, &fnd), 0);
        ck_assert_msg(!fnd.found, "ticket %" PRIu64 ": %s", t.id, fnd.what);
    }
    qg_tickets_close(it);
    for (i = 0; i < his.n; i++) {
        uint64_t tk = strtoull(his.reqs[i].ticket, NULL, 10);

        ck_assert_str_eq(his.reqs[i].seq, "1");
        ck_assert_int_eq(qg_history_open(st, tk, &h), 0);
        ck_assert_int_eq(qg_history_next(h, &rec), 0);
        ck_assert(rec.body_len == his.reqs[i].len &&
                  memcmp(rec.body, his.reqs[i].body, rec.body_len) == 0);
        qg_history_close(h);
    }
    /* a step acknowledged more than once: resent after a kill */
    for (i = 1; i < his_nsorted; i++)
        twice +=
            strcmp(his_sorted[i - 1]->delivery, his_sorted[i]->delivery) == 0;
    free(his_sorted);
    his_sorted = NULL;
    qg_store_close(st);
    free(box);
    printf("crash: %ld rounds, %ld sent, %ld acknowledged, %ld unanswered "
           "(%ld of them recorded), %ld at the HIS (%ld sent twice), %ld "
           "still in the outbox, lost: %ld\n",
           rounds, sent, acked, unanswered, kept, at_his, twice, in_outbox,
           lost);
    ck_assert_int_gt(acked, 0);
    ck_assert_int_eq(lost, 0);
    /* held ones: every one answered 202 still held, none forwarded */
    st = store_ro();
    for (slot = 0, held = 0; slot < rounds * CRASH_PER_ROUND; slot++)
        if (atomic_load(&crash.held[slot]) == C_ACKED) {
            ck_assert(is_held(st, CRASH_HELD_BASE + slot));
            held++;
        }
    qg_store_close(st);
    printf("crash: %ld held deliveries acknowledged, all still held\n", held);
    ck_assert_int_gt(held, 0);
}
END_TEST

/*
 * SIGTERM while a delivery is half sent: the gate stops listening, lets
 * the delivery finish and be answered, then exits 0.
 */
START_TEST(test_sigterm_finishes_request_in_flight)
{
    struct sockaddr_in sin;
    char head[256], resp[4096];
    size_t len, got = 0;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    int64_t until;
    struct pollfd pfd;
    qg_ticket t;
    qg_store *st;
    int fd, fd2, status, n;
    ssize_t r;

    gate_start(NULL);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)gate_port);
    ck_assert_int_ge(fd = socket(AF_INET, SOCK_STREAM, 0), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    n = snprintf(head, sizeof(head),
                 "POST " WEBHOOK " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 len);
    ck_assert_int_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    ck_assert_int_eq(send(fd, body, len / 2, MSG_NOSIGNAL), (ssize_t)(len / 2));
    sleep_ms(200);
    ck_assert_int_eq(kill(gate_pid, SIGTERM), 0);
    sleep_ms(300);
    ck_assert_msg(waitpid(gate_pid, &status, WNOHANG) == 0,
                  "the gate exited with a request in flight");

    /* no new connections meanwhile */
    ck_assert_int_ge(fd2 = socket(AF_INET, SOCK_STREAM, 0), 0);
    ck_assert_msg(connect(fd2, (struct sockaddr *)&sin, sizeof(sin)) != 0,
                  "a stopping gate accepted a new connection");
    close(fd2);

    ck_assert_int_eq(send(fd, body + len / 2, len - len / 2, MSG_NOSIGNAL),
                     (ssize_t)(len - len / 2));
    pfd.fd = fd;
    pfd.events = POLLIN;
    until = now_ms() + WAIT_MS;
    while (got < sizeof(resp) - 1 && now_ms() < until) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) <= 0)
            break;
        got += (size_t)r;
    }
    resp[got] = '\0';
    close(fd);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0 &&
                      strstr(resp, "\"verdict\":\"accepted\"") != NULL,
                  "the request in flight got: %s", resp);
    status = gate_wait_exit(WAIT_MS);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x", status);
    free(body);

    st = store_ro();
    ck_assert_int_eq(qg_store_ticket(st, QG_ID_LIVE_QUEUE, 30001, &t), 0);
    ck_assert_uint_eq(t.records, 1);
    qg_store_close(st);
}
END_TEST

/* ----- Metrics ---------------------------------------------------------- */

/*
 * A checker for the Prometheus text exposition format (version 0.0.4):
 * "# HELP name text" and "# TYPE name type" lines, other comments, and
 * samples `name{label="value",...} value [timestamp]`.  Every sample's
 * family is typed before it and its lines are together; histogram buckets
 * are cumulative per label set and end at le="+Inf", equal to _count.
 * Returns the number of samples, or -1 with err set.
 */
#define PROM_FAMILIES 64
#define PROM_HSAMPLES 512

typedef struct prom_family {
    char name[128], type[12];
    int helped, closed;
} prom_family;

typedef struct prom_hsample {
    int family;
    int kind; /* 0 _bucket, 1 _sum, 2 _count */
    char group[256];
    double le, value;
} prom_hsample;

typedef struct prom {
    prom_family fam[PROM_FAMILIES];
    int nfam, current;
    prom_hsample hs[PROM_HSAMPLES];
    int nhs;
} prom;

static int
prom_name(const char **p, char *out, size_t cap, int label)
{
    const char *s = *p;
    size_t n = 0;

#define NAME_CHAR(c, first)                                                    \
    (isalpha((unsigned char)(c)) || (c) == '_' || (!label && (c) == ':') ||    \
     (!(first) && isdigit((unsigned char)(c))))
    if (!NAME_CHAR(s[0], 1))
        return -1;
    while (NAME_CHAR(s[n], 0))
        n++;
#undef NAME_CHAR
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 0;
}

static int
prom_float(const char *s, double *v)
{
    char *end;

    if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
        *v = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *v = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return 0;
    }
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *v = strtod(s, &end);
    return *end == '\0' && errno == 0 && isfinite(*v) ? 0 : -1;
}

static int
prom_find(prom *pm, const char *name)
{
    int i;

    for (i = 0; i < pm->nfam; i++)
        if (strcmp(pm->fam[i].name, name) == 0)
            return i;
    return -1;
}

/* The family a HELP, TYPE or sample line names becomes the current one;
 * a family that was left may not come back. */
static int
prom_enter(prom *pm, const char *name, char *err, size_t errlen)
{
    int f = prom_find(pm, name);

    if (f < 0) {
        if (pm->nfam == PROM_FAMILIES) {
            snprintf(err, errlen, "too many families");
            return -1;
        }
        f = pm->nfam++;
        memset(&pm->fam[f], 0, sizeof(pm->fam[f]));
        snprintf(pm->fam[f].name, sizeof(pm->fam[f].name), "%s", name);
    }
    if (pm->fam[f].closed) {
        snprintf(err, errlen, "family %s is split", name);
        return -1;
    }
    if (pm->current >= 0 && pm->current != f)
        pm->fam[pm->current].closed = 1;
    pm->current = f;
    return f;
}

/* The typed family of a sample name, and which histogram part it is. */
static int
prom_family_of(prom *pm, const char *name, int *kind)
{
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    char base[128];
    size_t n = strlen(name), k;
    int f = prom_find(pm, name);

    *kind = -1;
    if (f >= 0 && pm->fam[f].type[0] && strcmp(pm->fam[f].type, "histogram"))
        return f;
    for (k = 0; k < COUNT(suffix); k++) {
        size_t s = strlen(suffix[k]);

        if (n <= s || strcmp(name + n - s, suffix[k]) != 0)
            continue;
        snprintf(base, sizeof(base), "%.*s", (int)(n - s), name);
        f = prom_find(pm, base);
        if (f >= 0 && (strcmp(pm->fam[f].type, "histogram") == 0 ||
                       (k > 0 && strcmp(pm->fam[f].type, "summary") == 0))) {
            *kind = (int)k;
            return f;
        }
    }
    return -1;
}

static int
prom_sample(prom *pm, const char *line, char *err, size_t errlen)
{
    char name[128], label[128], group[256] = "", value[64], tsbuf[32];
    const char *p = line, *vstart;
    double v, le = NAN;
    int f, kind, has_le = 0;
    size_t g = 0, n;

    if (prom_name(&p, name, sizeof(name), 0)) {
        snprintf(err, errlen, "bad metric name");
        return -1;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (prom_name(&p, label, sizeof(label), 1) || *p++ != '=' ||
                *p++ != '"') {
                snprintf(err, errlen, "bad label in %s", name);
                return -1;
            }
            vstart = p;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                        snprintf(err, errlen, "bad escape in %s", name);
                        return -1;
                    }
                    p++;
                }
                p++;
            }
            if (*p != '"') {
                snprintf(err, errlen, "unterminated label value in %s", name);
                return -1;
            }
            if (strcmp(label, "le") == 0) {
                char buf[64];

                snprintf(buf, sizeof(buf), "%.*s", (int)(p - vstart), vstart);
                if (prom_float(buf, &le)) {
                    snprintf(err, errlen, "bad le \"%s\"", buf);
                    return -1;
                }
                has_le = 1;
            } else {
                n = (size_t)snprintf(group + g, sizeof(group) - g,
                                     "%s%s=\"%.*s\"", g ? "," : "", label,
                                     (int)(p - vstart), vstart);
                g = g + n < sizeof(group) ? g + n : sizeof(group) - 1;
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}') {
                snprintf(err, errlen, "expected , or } in %s", name);
                return -1;
            }
        }
        p++;
    }
    if (*p++ != ' ') {
        snprintf(err, errlen, "expected a blank after %s", name);
        return -1;
    }
    n = strcspn(p, " ");
    snprintf(value, sizeof(value), "%.*s", (int)n, p);
    if (n >= sizeof(value) || prom_float(value, &v)) {
        snprintf(err, errlen, "bad value \"%s\" of %s", value, name);
        return -1;
    }
    p += n;
    if (*p == ' ') {
        p++;
        n = strspn(p, "-0123456789");
        snprintf(tsbuf, sizeof(tsbuf), "%s", p);
        if (n == 0 || p[n] != '\0') {
            snprintf(err, errlen, "bad timestamp \"%s\" of %s", tsbuf, name);
            return -1;
        }
    }
    if ((f = prom_family_of(pm, name, &kind)) < 0) {
        snprintf(err, errlen, "sample %s has no TYPE before it", name);
        return -1;
    }
    if (prom_enter(pm, pm->fam[f].name, err, errlen) < 0)
        return -1;
    if (strcmp(pm->fam[f].type, "histogram") == 0) {
        if (kind < 0 || (kind == 0) != has_le) {
            snprintf(err, errlen, "%s: not a histogram sample", name);
            return -1;
        }
        if (pm->nhs == PROM_HSAMPLES) {
            snprintf(err, errlen, "too many histogram samples");
            return -1;
        }
        pm->hs[pm->nhs].family = f;
        pm->hs[pm->nhs].kind = kind;
        snprintf(pm->hs[pm->nhs].group, sizeof(pm->hs[0].group), "%s", group);
        pm->hs[pm->nhs].le = le;
        pm->hs[pm->nhs].value = v;
        pm->nhs++;
    }
    return 0;
}

static int
prom_comment(prom *pm, const char *line, char *err, size_t errlen)
{
    static const char *const types[] = {"counter", "gauge", "histogram",
                                        "summary", "untyped"};
    char name[128];
    const char *p;
    size_t k;
    int f, help = strncmp(line, "# HELP ", 7) == 0;

    if (!help && strncmp(line, "# TYPE ", 7) != 0)
        return 0; /* a comment */
    p = line + 7;
    if (prom_name(&p, name, sizeof(name), 0) || (*p != ' ' && *p != '\0')) {
        snprintf(err, errlen, "bad name in \"%.64s\"", line);
        return -1;
    }
    if ((f = prom_enter(pm, name, err, errlen)) < 0)
        return -1;
    if (*p == ' ')
        p++;
    if (help) {
        if (pm->fam[f].helped++) {
            snprintf(err, errlen, "second HELP for %s", name);
            return -1;
        }
        for (; *p; p++)
            if (*p == '\\' && p[1] != '\\' && p[1] != 'n') {
                snprintf(err, errlen, "bad escape in HELP of %s", name);
                return -1;
            } else if (*p == '\\') {
                p++;
            }
        return 0;
    }
    for (k = 0; k < COUNT(types); k++)
        if (strcmp(p, types[k]) == 0)
            break;
    if (k == COUNT(types)) {
        snprintf(err, errlen, "%s: unknown type \"%s\"", name, p);
        return -1;
    }
    if (pm->fam[f].type[0]) {
        snprintf(err, errlen, "second TYPE for %s", name);
        return -1;
    }
    snprintf(pm->fam[f].type, sizeof(pm->fam[f].type), "%s", types[k]);
    return 0;
}

/* Per histogram and label set: le rising, counts not falling, ending at
 * +Inf equal to _count, with a _sum. */
static int
prom_histograms(prom *pm, char *err, size_t errlen)
{
    int i, j;

    for (i = 0; i < pm->nhs; i++) {
        prom_hsample *first = &pm->hs[i], *last = NULL;
        int seen_count = 0, seen_sum = 0;

        if (first->kind != 0)
            continue;
        for (j = 0; j < i; j++)
            if (pm->hs[j].kind == 0 && pm->hs[j].family == first->family &&
                strcmp(pm->hs[j].group, first->group) == 0)
                break;
        if (j < i)
            continue; /* this group was checked from its first bucket */
        for (j = i; j < pm->nhs; j++) {
            prom_hsample *s = &pm->hs[j];

            if (s->family != first->family || strcmp(s->group, first->group))
                continue;
            if (s->kind == 0) {
                if (last && !(s->le > last->le && s->value >= last->value)) {
                    snprintf(err, errlen,
                             "%s{%s}: bucket le=%g (%g) after le=%g (%g)",
                             pm->fam[s->family].name, s->group, s->le, s->value,
                             last->le, last->value);
                    return -1;
                }
                last = s;
            } else if (s->kind == 1) {
                seen_sum++;
            } else {
                seen_count++;
                if (!last || !isinf(last->le) || last->value != s->value) {
                    snprintf(err, errlen,
                             "%s{%s}: _count %g, last bucket le=%g %g",
                             pm->fam[s->family].name, s->group, s->value,
                             last ? last->le : NAN, last ? last->value : NAN);
                    return -1;
                }
            }
        }
        if (seen_count != 1 || seen_sum != 1 || !isinf(last->le)) {
            snprintf(err, errlen, "%s{%s}: %d _count, %d _sum, no +Inf",
                     pm->fam[first->family].name, first->group, seen_count,
                     seen_sum);
            return -1;
        }
    }
    for (i = 0; i < pm->nhs; i++)
        if (pm->hs[i].kind != 0) {
            for (j = 0; j < pm->nhs; j++)
                if (pm->hs[j].kind == 0 &&
                    pm->hs[j].family == pm->hs[i].family &&
                    strcmp(pm->hs[j].group, pm->hs[i].group) == 0)
                    break;
            if (j == pm->nhs) {
                snprintf(err, errlen, "%s{%s}: no buckets",
                         pm->fam[pm->hs[i].family].name, pm->hs[i].group);
                return -1;
            }
        }
    return 0;
}

static int
prom_check(const char *text, char *err, size_t errlen)
{
    static prom pm;
    char line[1024], where[64];
    const char *p = text, *nl;
    int samples = 0, lineno = 0, rc;

    memset(&pm, 0, sizeof(pm));
    pm.current = -1;
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        snprintf(err, errlen, "the text does not end with a newline");
        return -1;
    }
    for (; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        lineno++;
        if ((size_t)(nl - p) >= sizeof(line)) {
            snprintf(err, errlen, "line %d is too long", lineno);
            return -1;
        }
        snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
        if (line[0] == '\0')
            continue;
        if (line[0] == '#') {
            rc = prom_comment(&pm, line, err, errlen);
        } else {
            rc = prom_sample(&pm, line, err, errlen);
            samples++;
        }
        if (rc) {
            snprintf(where, sizeof(where), " (line %d)", lineno);
            if (strlen(err) + strlen(where) < errlen)
                strcat(err, where);
            return -1;
        }
    }
    if (prom_histograms(&pm, err, errlen))
        return -1;
    return samples;
}

/* The checker itself: it passes a text that uses the format's corners
 * and refuses each kind of fault. */
START_TEST(test_metrics_checker_refuses_faults)
{
    static const char good[] =
        "# a comment\n"
        "# HELP a_total A \\\\ counter\\n.\n"
        "# TYPE a_total counter\n"
        "a_total{x=\"q\\\"uote\",y=\"\"} 1 1700000000000\n"
        "a_total{x=\"b\",} 2.5e3\n"
        "\n"
        "# TYPE g gauge\n"
        "g -1\n"
        "g{k=\"v\"} NaN\n"
        "# TYPE h histogram\n"
        "h_bucket{k=\"1\",le=\"0.5\"} 1\n"
        "h_bucket{k=\"1\",le=\"+Inf\"} 3\n"
        "h_sum{k=\"1\"} 7\n"
        "h_count{k=\"1\"} 3\n"
        "h_bucket{k=\"2\",le=\"+Inf\"} 0\n"
        "h_sum{k=\"2\"} 0\n"
        "h_count{k=\"2\"} 0\n";
    static const char *const bad[] = {
        "x 1\n",
        "# TYPE x counter\nx 1",
        "# TYPE x counter\nx{a=\"b} 1\n",
        "# TYPE x counter\nx{a=b} 1\n",
        "# TYPE x counter\nx{1a=\"b\"} 1\n",
        "# TYPE x counter\nx{a=\"\\q\"} 1\n",
        "# TYPE x counter\nx one\n",
        "# TYPE x counter\nx  1\n",
        "# TYPE x counter\nx 1 soon\n",
        "# TYPE x counter\n# TYPE x gauge\nx 1\n",
        "# TYPE x counte\nx 1\n",
        "# TYPE 1x counter\n1x 1\n",
        "# TYPE x counter\n# TYPE y counter\nx 1\ny 1\nx 2\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh 1\n",
    };
    char err[256];
    size_t i;

    ck_assert_msg(prom_check(good, err, sizeof(err)) == 11, "%s", err);
    for (i = 0; i < COUNT(bad); i++)
        ck_assert_msg(prom_check(bad[i], err, sizeof(err)) == -1,
                      "accepted: %s", bad[i]);
}
END_TEST

/* /metrics after some traffic is valid exposition text with the families
 * the gate documents. */
START_TEST(test_metrics_exposition_format)
{
    static const struct {
        const char *name, *type;
    } families[] = {
        {"qgate_deliveries_total", "counter"},
        {"qgate_store_errors_total", "counter"},
        {"qgate_http_responses_total", "counter"},
        {"qgate_request_duration_seconds", "histogram"},
        {"qgate_commit_batch_size", "histogram"},
        {"qgate_outbox_depth", "gauge"},
        {"qgate_outbox_dead", "gauge"},
        {"qgate_forward_attempts_total", "counter"},
    };
    static const char *const plain[] = {"Content-Type: text/plain", NULL};
    char err[256], type[128], want[160];
    const char *opts[] = {"--upstream", NULL, NULL};
    answer a;
    size_t i;
    int samples;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < 9; i++)
        post_accepted(walk_in_files[i]);
    post_fixture(walk_in_files[0], &a);
    answer_free(&a);
    post_fixture("malformed/not-json.json", &a);
    answer_free(&a);
    http("POST", WEBHOOK, plain, "{}", 2, &a);
    answer_free(&a);
    http("GET", "/tickets/30001", NULL, NULL, 0, &a);
    answer_free(&a);
    wait_delivered(9, WAIT_MS);

    http("GET", "/metrics", NULL, NULL, 0, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_msg(strncmp(head_value(&a, "Content-Type", type, sizeof(type)),
                          "text/plain; version=0.0.4", 25) == 0,
                  "Content-Type %s", type);
    samples = prom_check(a.body, err, sizeof(err));
    ck_assert_msg(samples > 0, "/metrics: %s\n%s", err, a.body);
    for (i = 0; i < COUNT(families); i++) {
        snprintf(want, sizeof(want), "# TYPE %s %s\n", families[i].name,
                 families[i].type);
        ck_assert_msg(strstr(a.body, want) != NULL, "no \"%.*s\"",
                      (int)strlen(want) - 1, want);
    }
    ck_assert_int_eq(
        sample_value(a.body, "qgate_forward_attempts_total{result=\"ok\"}"), 9);
    ck_assert_int_eq(sample_value(a.body, "qgate_outbox_depth"), 0);
    answer_free(&a);
    gate_stop();
}
END_TEST

/* The deliveries counter counts exactly the answers given, by verdict and
 * code: every fixture of malformed/EXPECT and visits/EXPECT, duplicates,
 * and bodies too large, announced or chunked. */
START_TEST(test_metrics_count_answers)
{
    /* every fixture twice, faster than the default --unsigned-rate */
    static const char *const opts[] = {"--max-body", "8192", "--unsigned-burst",
                                       "1000", NULL};
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    row rows[96];
    size_t n = read_expect("malformed/EXPECT", rows, COUNT(rows)), i;
    unsigned long tally[QG_REASON_COUNT] = {0};
    source big = {NULL, 65536, 0}, huge = {NULL, (size_t)32 << 20, 0};
    char sample[160], *text;
    qg_reason reason;
    answer a;
    double v;
    int r;

    n += read_expect("visits/EXPECT", rows + n, COUNT(rows) - n);
    gate_start(opts);
    for (r = 0; r < 2; r++) /* the second time: duplicates */
        for (i = 0; i < n; i++) {
            post_fixture(rows[i].col[0], &a);
            ck_assert_msg(qg_reason_from_name(jstr(a.json, "code"), &reason) ==
                              0,
                          "%s: %s", rows[i].col[0], a.body);
            tally[reason]++;
            answer_free(&a);
        }
    http_full(gate_port, "POST", WEBHOOK, chunked, NULL, 0, &big, 0, &a);
    expect(&a, 413, NULL, "too_large", "chunked");
    tally[QG_R_TOO_LARGE]++;
    answer_free(&a);
    http_full(gate_port, "POST", WEBHOOK, as_json, NULL, 0, &huge, 1, &a);
    expect(&a, 413, NULL, "too_large", "announced");
    tally[QG_R_TOO_LARGE]++;
    answer_free(&a);
    /* not deliveries */
    http("GET", WEBHOOK, NULL, NULL, 0, &a);
    answer_free(&a);
    http("POST", "/elsewhere", as_json, "{}", 2, &a);
    answer_free(&a);

    ck_assert_uint_eq(tally[QG_R_NONE], 18);
    text = scrape();
    for (i = 0; i < QG_REASON_COUNT; i++) {
        snprintf(sample, sizeof(sample),
                 "qgate_deliveries_total{verdict=\"%s\",code=\"%s\"}",
                 qg_verdict_name(qg_reason_verdict((qg_reason)i)),
                 qg_reason_name((qg_reason)i));
        v = sample_value(text, sample);
        ck_assert_msg(v == (double)tally[i], "%s is %g, %lu answers", sample, v,
                      tally[i]);
    }
    free(text);
    gate_stop();
}
END_TEST

/* ----- the HTTP surface ------------------------------------------------- */

/* Lifts the running gate's file-size limit: the disk has room again. */
static void
fsize_raise(void)
{
    struct rlimit rl;

    ck_assert_int_eq(prlimit(gate_pid, RLIMIT_FSIZE, NULL, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(prlimit(gate_pid, RLIMIT_FSIZE, &rl, NULL), 0);
}

/*
 * Reads one answer from fd within ms into out (NUL-terminated): its
 * status once head and Content-Length bytes of body are in, else 0 (the
 * connection closed or the time ran out first).
 */
static int
read_answer(int fd, char *out, size_t cap, long ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int64_t until = now_ms() + ms;
    size_t got = 0, head;
    const char *end, *cl;
    ssize_t n;

    out[0] = '\0';
    while (now_ms() < until && got < cap - 1) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        if ((n = read(fd, out + got, cap - 1 - got)) <= 0)
            break;
        got += (size_t)n;
        out[got] = '\0';
        if ((end = strstr(out, "\r\n\r\n")) == NULL)
            continue;
        head = (size_t)(end - out) + 4;
        for (cl = out; cl && cl < end; cl = strchr(cl + 1, '\n'))
            if (strncasecmp(cl, "\nContent-Length:", 16) == 0)
                break;
        if (cl && cl < end && got >= head + strtoul(cl + 16, NULL, 10))
            return strncmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9) : 0;
    }
    return 0;
}

/* Sends req on a connection of its own, shuts down the sending side when
 * shut says so, and reads the answer (read_answer). */
static int
exchange(const char *req, size_t len, int shut, char *out, size_t cap, long ms)
{
    int fd = connect_gate(), status;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, req, len), (ssize_t)len);
    if (shut)
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    status = read_answer(fd, out, cap, ms);
    close(fd);
    return status;
}

/*
 * Runs `qgate ARGS` with stdin from in, stdout to out and stderr to err
 * (both truncated first), under a file-size limit of fsize bytes with
 * SIGXFSZ at its default action.  Returns its wait status.
 */
static int
run_cli_limited(const char *const *args, const char *in, const char *out,
                const char *err, long fsize)
{
    const char *argv[16];
    size_t n = 0;
    int status = -1;
    int64_t until = now_ms() + WAIT_MS;
    pid_t pid;

    argv[n++] = QGATE_BIN;
    for (; *args; args++) {
        ck_assert(n < COUNT(argv) - 1);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl;
        int fi = open(in, O_RDONLY);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (fi < 0 || fo < 0 || fe < 0)
            _exit(127);
        dup2(fi, STDIN_FILENO);
        dup2(fo, STDOUT_FILENO);
        dup2(fe, STDERR_FILENO);
        signal(SIGXFSZ, SIG_DFL);
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = (rlim_t)fsize;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(127);
        execv(QGATE_BIN, (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_assert_msg(0, "qgate %s did not finish", argv[1]);
        }
        sleep_ms(10);
    }
    return status;
}

/*
 * Item 1: a write past a file-size limit is an error, not a signal.  The
 * gate's side is test_webhook_store_unavailable (gate_spawn leaves SIGXFSZ
 * at its default action); this is the command line's: a commit that
 * cannot grow the store, and output that cannot grow its file, end in
 * exit status 2 and a message.
 */
START_TEST(test_cli_file_size_limit_fails_cleanly)
{
    static const char *const machine[] = {"machine", NULL};
    char bodies[128], out[128], err[128], clidb[128], *text;
    const char *apply[] = {
        "apply", "--db", clidb, "--secret-file", QG_FIXTURES "/secret",
        "-",     NULL};
    size_t len;
    char *body;
    long long id;
    int status;
    FILE *f;

    snprintf(bodies, sizeof(bodies), "%s/bodies", work);
    snprintf(out, sizeof(out), "%s/out", work);
    snprintf(err, sizeof(err), "%s/err", work);
    snprintf(clidb, sizeof(clidb), "%s/clidb", work);
    ck_assert_ptr_nonnull(f = fopen(bodies, "w"));
    for (id = 82000; id < 82400; id++) {
        ck_assert_ptr_nonnull(body = join_body(id, &len));
        fwrite(body, 1, len, f);
        free(body);
    }
    fclose(f);

    status = run_cli_limited(apply, bodies, out, err, 96 << 10);
    text = read_from(err, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2,
                  "apply on a full disk: status 0x%x: %.300s", status, text);
    ck_assert_msg(strstr(text, "nothing was written") != NULL, "%.300s", text);
    free(text);

    status = run_cli_limited(machine, "/dev/null", out, err, 64);
    text = read_from(err, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2,
                  "machine into a full file: status 0x%x: %s", status, text);
    ck_assert_msg(strstr(text, "qgate: standard output") != NULL, "%s", text);
    free(text);
}
END_TEST

/*
 * Item 3: a client that sends its whole delivery and then shuts down its
 * sending side (as some clients and proxies do) still gets its answer,
 * while another connection holds a partial request.  libmicrohttpd used to
 * read the end of file first on resuming the connection and close it: the
 * delivery committed, the answer never sent, "status":0 in the log.
 */
START_TEST(test_half_close_answered)
{
    enum { CLIENTS = 100 };
    const char *partial = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 100\r\n\r\n{";
    char req[4096], out[4096], *body, *text;
    int fd, i, answered = 0;
    off_t from = file_size(logpath);
    size_t len;
    int n;

    gate_start(NULL);
    ck_assert_int_ge(fd = connect_gate(), 0);
    ck_assert_int_eq(write(fd, partial, strlen(partial)),
                     (ssize_t)strlen(partial));
    for (i = 0; i < CLIENTS; i++) {
        ck_assert_ptr_nonnull(body = join_body(83000 + i, &len));
        n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     WEBHOOK, len, body);
        ck_assert(n > 0 && (size_t)n < sizeof(req));
        free(body);
        if (exchange(req, (size_t)n, 1, out, sizeof(out), WAIT_MS) == 200 &&
            strstr(out, "\"verdict\":\"accepted\"") != NULL)
            answered++;
    }
    close(fd);
    gate_stop();
    text = read_from(logpath, from);
    ck_assert_msg(answered == CLIENTS,
                  "%d of %d half-closed deliveries answered", answered,
                  CLIENTS);
    ck_assert_msg(strstr(text, "\"status\":0,\"verdict\"") == NULL,
                  "a delivery was logged without an answer: %.300s",
                  strstr(text, "\"status\":0,\"verdict\""));
    free(text);
}
END_TEST

/*
 * Item 6: /readyz follows the writes.  A failed commit makes it 503 with
 * "store":false although the store still reads; it stays so while writes
 * fail, and turns ready by itself (a write probe) once the disk has room.
 */
START_TEST(test_readyz_follows_writes)
{
    long long id;
    size_t len;
    char *body;
    answer a;
    int failed = 0;

    gate_start_limited(NULL, 96 << 10);
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200, "%ld %s", a.status, a.body);
    answer_free(&a);
    for (id = 84000; id < 84000 + 400 && !failed; id++) {
        ck_assert_ptr_nonnull(body = join_body(id, &len));
        http("POST", WEBHOOK, as_json, body, len, &a);
        failed = a.status == 503;
        answer_free(&a);
        free(body);
    }
    ck_assert_msg(failed, "no 503 on a 96 KiB disk");
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 503 && a.body &&
                      strstr(a.body, "\"ready\":false,\"store\":false"),
                  "after a failed commit: %ld %s", a.status, a.body);
    answer_free(&a);

    fsize_raise();
    http("GET", "/readyz", NULL, NULL, 0, &a);
    ck_assert_msg(a.status == 200 && a.body &&
                      strstr(a.body, "\"ready\":true,\"store\":true"),
                  "with room on the disk again: %ld %s", a.status, a.body);
    answer_free(&a);
    ck_assert_ptr_nonnull(body = join_body(id, &len));
    http("POST", WEBHOOK, as_json, body, len, &a);
    expect(&a, 200, "accepted", "none", "with room on the disk again");
    answer_free(&a);
    free(body);
    gate_stop();
}
END_TEST

/* A token of n printable bytes, in a pattern. */
static void
long_token(char *tok, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        tok[i] = (char)('A' + i % 26 + (i / 26 % 2) * 32);
    tok[n] = '\0';
}

/* The gate started with opts exits 2 at once, saying `says`. */
static void
expect_start_refused(const char *const *opts, const char *says,
                     const char *what)
{
    off_t from = file_size(logpath);
    char *text;
    int status;

    gate_spawn(opts, 0);
    status = gate_wait_exit(WAIT_MS);
    if (status == -1)
        gate_kill();
    text = read_from(logpath, from);
    ck_assert_msg(status != -1 && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 2 && strstr(text, says) != NULL,
                  "%s: status 0x%x: %s", what, status, text);
    free(text);
}

/*
 * Item 9: the bearer token is read whole and compared whole.  Each row is
 * a request's Authorization header lines and the status it gets.
 */
START_TEST(test_read_api_token_whole)
{
    enum { LEN = 307 };
    static const struct {
        const char *lines; /* '@' stands for the token, '~' for a NUL */
        int cut;           /* bytes of the token used; 0: all */
        long status;
        const char *what;
    } rows[] = {
        {"Authorization: Bearer @\r\n", 0, 200, "the token"},
        {"authorization: Bearer @\r\n", 0, 200, "the name in lower case"},
        {"Authorization: Bearer @\nAccept: */*\n", 0, 200, "bare LFs"},
        {"Authorization: Bearer @\r\n", 255, 401, "its first 255 bytes"},
        {"Authorization: Bearer @\r\n", LEN - 1, 401, "all but its last"},
        {"Authorization: Bearer @x\r\n", 0, 401, "one byte more"},
        {"Authorization: Bearer @~x\r\n", 0, 401, "a NUL and more"},
        {"Authorization: Bearer @~x\r\nAccept: */*\r\n", 0, 401,
         "a NUL and more, not last"},
        {"Authorization: Bearer @~\r\n", 0, 401, "a NUL"},
        {"Authorization: Bearer @\r\nAuthorization: Bearer @\r\n", 0, 401,
         "twice"},
    };
    char tok[TOKEN_FILE_MAX + 2], path[128], req[8192], out[4096];
    const char *opts[] = {"--token-file", path, NULL};
    const char *c;
    answer a;
    size_t i, n;
    int status, cut;
    FILE *f;

    long_token(tok, LEN);
    snprintf(path, sizeof(path), "%s/token", work);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fprintf(f, "%s\n", tok);
    fclose(f);
    gate_start(opts);
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "walk-in/01");
    answer_free(&a);
    for (i = 0; i < COUNT(rows); i++) {
        cut = rows[i].cut ? rows[i].cut : LEN;
        n = (size_t)snprintf(req, sizeof(req),
                             "GET /tickets/30001 HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n");
        for (c = rows[i].lines; *c; c++) {
            ck_assert(n + LEN + 4 < sizeof(req));
            if (*c == '@') {
                memcpy(req + n, tok, (size_t)cut);
                n += (size_t)cut;
            } else {
                req[n++] = *c == '~' ? '\0' : *c;
            }
        }
        memcpy(req + n, "\r\n", 2);
        n += 2;
        status = exchange(req, n, 0, out, sizeof(out), WAIT_MS);
        ck_assert_msg(status == rows[i].status, "%s: %d, want %ld: %s",
                      rows[i].what, status, rows[i].status, out);
    }
    gate_stop();

    /* the longest token accepted, and one byte more */
    long_token(tok, TOKEN_FILE_MAX);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fprintf(f, "%s\r\n", tok);
    fclose(f);
    gate_start(opts);
    n = (size_t)snprintf(req, sizeof(req),
                         "GET /tickets/30001 HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: Bearer %s\r\n\r\n",
                         tok);
    ck_assert(n < sizeof(req));
    status = exchange(req, n, 0, out, sizeof(out), WAIT_MS);
    ck_assert_msg(status == 200, "a %d-byte token: %d", TOKEN_FILE_MAX, status);
    gate_stop();
    long_token(tok, TOKEN_FILE_MAX + 1);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fprintf(f, "%s\n", tok);
    fclose(f);
    expect_start_refused(opts, "longer than 4096 bytes",
                         "a token file over the limit");

    /* a token no header can carry */
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("two words\n", f);
    fclose(f);
    expect_start_refused(opts, "not printable ASCII", "a token with a space");
}
END_TEST

/*
 * Item 10: a ticket id in the path is read strictly: the number's one
 * spelling, and the path as sent (an escaped '/' or NUL is no separator).
 */
START_TEST(test_read_api_strict_ids)
{
    static const struct {
        const char *path;
        long status;
    } rows[] = {
        {"/tickets/30001", 200},
        {"/tickets/30001/history", 200},
        {"/tickets/lq:30001", 200},
        {"/tickets/ticket:1", 200},
        {"/tickets/30001%00garbage", 400},
        {"/tickets/+30001", 400},
        {"/tickets/%2030001", 400},
        {"/tickets/030001", 400},
        {"/tickets/30001%2Fhistory", 400},
        {"/tickets/3%30001", 400},
        {"/tickets/lq:030001", 400},
        {"/tickets/lq:+30001", 400},
        {"/tickets/-30001", 400},
        {"/tickets/0", 400},
        {"/tickets/30001.0", 400},
        {"/tickets/9223372036854775808", 400},
        {"/tickets/99999999999999999999999999999999999999999999999999999999"
         "99999999999999",
         400},
        {"/tickets/9223372036854775807", 404},
        {"/tickets/30001/history%00", 404},
    };
    answer a;
    size_t i;

    gate_start(NULL);
    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "walk-in/01");
    answer_free(&a);
    for (i = 0; i < COUNT(rows); i++) {
        http("GET", rows[i].path, NULL, NULL, 0, &a);
        if (rows[i].status == 200)
            ck_assert_msg(a.status == 200 && a.json &&
                              (jint(a.json, "live_queue_id") == 30001 ||
                               json_object_is_type(a.json, json_type_array)),
                          "%s: %ld %s", rows[i].path, a.status, a.body);
        else
            expect(&a, rows[i].status, NULL,
                   rows[i].status == 400 ? "bad_ticket" : "not_found",
                   rows[i].path);
        answer_free(&a);
    }
    gate_stop();
}
END_TEST

/*
 * Item 13: the HTTP edges the application can reach.  A Transfer-Encoding
 * other than chunked is 501 at once (the idle timeout is 30 s); GETs keep
 * their connection for the next request.
 */
START_TEST(test_http_edges)
{
    static const char *const codings[] = {"gzip", "chunked, gzip", "identity"};
    const char *gets[] = {"/healthz", "/readyz", "/metrics", "/tickets/1",
                          "/healthz"};
    char req[1024], out[8192];
    int64_t start;
    size_t i;
    int fd, n, status;

    gate_start(NULL);
    for (i = 0; i < COUNT(codings); i++) {
        n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nTransfer-Encoding: %s\r\n\r\n{}",
                     WEBHOOK, codings[i]);
        start = now_ms();
        status = exchange(req, (size_t)n, 0, out, sizeof(out), WAIT_MS);
        ck_assert_msg(status == 501 && strstr(out, "\"not_implemented\""),
                      "Transfer-Encoding: %s: %d: %s", codings[i], status, out);
        ck_assert_msg(now_ms() - start < 5000, "the 501 took %" PRId64 " ms",
                      now_ms() - start);
    }

    /* one connection, one GET after another */
    ck_assert_int_ge(fd = connect_gate(), 0);
    for (i = 0; i < COUNT(gets); i++) {
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                     gets[i]);
        ck_assert_int_eq(write(fd, req, (size_t)n), n);
        status = read_answer(fd, out, sizeof(out), WAIT_MS);
        ck_assert_msg(status == 200 || status == 404,
                      "GET %s, request %zu on one connection: %d: %s", gets[i],
                      i + 1, status, out);
        ck_assert_msg(strstr(out, "Connection: close") == NULL, "GET %s: %s",
                      gets[i], out);
    }
    close(fd);
    gate_stop();
}
END_TEST

/*
 * Item 13, what remains with libmicrohttpd 0.9.75 (docs/SECURITY.md): it
 * parses chunk lines itself and calls the gate with data only.  A chunk
 * of ffffffffffffffff bytes is taken as such, so the body never ends and
 * the connection is closed at the idle timeout, unanswered; a larger size
 * gets its own 413 page, a chunk line longer than the connection's buffer
 * its own 500 page.  The gate
 * serves on either way.  Should a libmicrohttpd answer these better, this
 * test fails, and the documentation is to be updated with it.
 */
START_TEST(test_http_edges_left_to_libmicrohttpd)
{
    const char *opts[] = {"--timeout", "2", NULL};
    const char *head = "POST " WEBHOOK " HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t len, n;
    char *body = tu_fixture(WALK_IN "01-join-live-queue.json", &len);
    char *req = malloc(300 << 10), out[4096];
    int64_t start;
    int status;
    answer a;

    ck_assert_ptr_nonnull(req);
    gate_start(opts);
    n = (size_t)snprintf(req, 300 << 10,
                         "%sffffffffffffffff\r\n%.*s\r\n0\r\n\r\n", head,
                         (int)len, body);
    start = now_ms();
    status = exchange(req, n, 0, out, sizeof(out), 8000);
    ck_assert_msg(status == 0 && out[0] == '\0', "%d: %s", status, out);
    ck_assert_msg(now_ms() - start >= 1500 && now_ms() - start < 8000,
                  "closed after %" PRId64 " ms", now_ms() - start);
    n = (size_t)snprintf(req, 300 << 10,
                         "%s1ffffffffffffffff\r\n%.*s\r\n0\r\n\r\n", head,
                         (int)len, body);
    status = exchange(req, n, 0, out, sizeof(out), WAIT_MS);
    ck_assert_msg(status == 413 && strstr(out, "<html>") != NULL, "%d: %s",
                  status, out);

    n = (size_t)snprintf(req, 300 << 10, "%s10;", head);
    memset(req + n, 'e', 200 << 10);
    n += 200 << 10;
    n += (size_t)snprintf(req + n, 64, "\r\n%.16s\r\n0\r\n\r\n", body);
    status = exchange(req, n, 0, out, sizeof(out), WAIT_MS);
    ck_assert_msg(status == 500 && strstr(out, "<html>") != NULL, "%d: %s",
                  status, out);

    post_fixture(WALK_IN "01-join-live-queue.json", &a);
    expect(&a, 200, "accepted", "none", "after both");
    answer_free(&a);
    gate_stop();
    free(req);
    free(body);
}
END_TEST

/* ----- the suite -------------------------------------------------------- */

/* ----- Reorder ---------------------------------------------------------- */

/*
 * The walk-in visit out of order through the gate: an alert after the
 * move is accepted late, served before serving is held (202) and released
 * by serving.  The HIS gets the steps in the order they were accepted,
 * the late one marked with its place in event time.
 */
START_TEST(test_reorder_held_and_late_through_the_gate)
{
    static const struct {
        int file; /* index in walk_in_files */
        long status;
        const char *verdict, *code;
        int late;
    } order[] = {
        {0, 200, "accepted", "none", 0}, {2, 200, "accepted", "none", 0},
        {1, 200, "accepted", "none", 1}, {4, 202, "held", "early", 0},
        {3, 200, "accepted", "none", 0}, {5, 200, "accepted", "none", 0},
        {6, 200, "accepted", "none", 0}, {7, 200, "accepted", "none", 0},
        {8, 200, "accepted", "none", 0},
    };
    /* What the HIS receives, in order: the file, X-Qgate-Position (NULL
     * for the move, whose place is 2 or 3 as it was sent before or after
     * the late alert came) and X-Qgate-Late. */
    static const struct {
        int file;
        const char *pos, *late;
    } his_order[] = {{0, "1", "false"}, {2, NULL, "false"}, {1, "2", "true"},
                     {3, "4", "false"}, {4, "5", "false"},  {5, "6", "false"},
                     {6, "7", "false"}, {7, "8", "false"},  {8, "9", "false"}};
    const char *opts[] = {
        "--upstream", NULL, "--forward-timeout", "10", "--reorder-window",
        "1200",       NULL};
    size_t i, n, len;
    answer a;
    char *body;

    his_start(HIS_ACCEPT);
    opts[1] = his.url;
    gate_start(opts);
    for (i = 0; i < COUNT(order); i++) {
        const char *rel = walk_in_files[order[i].file];

        post_fixture(rel, &a);
        expect(&a, order[i].status, order[i].verdict, order[i].code, rel);
        ck_assert_int_eq(status_for(order[i].verdict, order[i].code),
                         order[i].status);
        if (order[i].status == 200)
            ck_assert_msg(strstr(a.body, order[i].late ? "\"late\":true"
                                                       : "\"late\":false"),
                          "%s: %s", rel, a.body);
        if (order[i].file == 3)
            ck_assert_msg(strstr(a.body, "\"released\":1") != NULL, "%s",
                          a.body);
        answer_free(&a);
    }
    wait_delivered(9, WAIT_MS);
    ck_assert_int_eq(gate_sample("qgate_late_total"), 1);
    ck_assert_int_eq(gate_sample("qgate_released_total"), 1);
    ck_assert_int_eq(gate_sample("qgate_held"), 0);
    ck_assert_int_eq(
        gate_sample("qgate_deliveries_total{verdict=\"held\",code=\"early\"}"),
        1);
    gate_stop();

    /* Forwarding is at least once: a slow answer is sent again.  The
     * first acknowledged request of each step, in order of acceptance. */
    for (i = 0, n = 0; i < his.n; i++) {
        his_req *q = &his.reqs[i];

        if (q->status != 200 || strtoul(q->seq, NULL, 10) <= n)
            continue;
        ck_assert_uint_lt(n, 9);
        ck_assert_uint_eq(strtoul(q->seq, NULL, 10), n + 1);
        if (his_order[n].pos)
            ck_assert_str_eq(q->pos, his_order[n].pos);
        ck_assert_str_eq(q->late, his_order[n].late);
        body = tu_fixture(walk_in_files[his_order[n].file], &len);
        ck_assert_msg(q->len == len && memcmp(q->body, body, len) == 0,
                      "HIS request %zu is not %s", i + 1,
                      walk_in_files[his_order[n].file]);
        free(body);
        n++;
    }
    ck_assert_uint_eq(n, 9);
}
END_TEST

/* A held delivery whose window passes is refused by the gate on its own
 * clock, with no other delivery to wake it, for the reason it would have
 * had on arrival. */
START_TEST(test_reorder_window_expires_on_the_gate_clock)
{
    const char *opts[] = {"--reorder-window", "1", NULL};
    qg_rejections *rj;
    qg_rejection rej;
    qg_store *st;
    answer a;
    int ok;

    gate_start(opts);
    post_accepted(walk_in_files[0]);
    post_fixture(walk_in_files[4], &a);
    expect(&a, 202, "held", "early", walk_in_files[4]);
    answer_free(&a);
    WAIT_FOR(ok,
             gate_sample(
                 "qgate_held_expired_total{code=\"illegal_transition\"}") == 1,
             WAIT_MS);
    ck_assert_msg(ok, "the held delivery was not refused in %d ms", WAIT_MS);
    ck_assert_int_eq(gate_sample("qgate_held"), 0);
    gate_stop();

    st = store_ro();
    ck_assert_int_eq(qg_rejections_open(st, 0, &rj), 0);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), 0);
    ck_assert_int_eq(rej.reason, QG_R_ILLEGAL_TRANSITION);
    ck_assert_int_eq(rej.event, QG_EV_COMPLETE);
    ck_assert_msg(strstr(rej.detail, "; held ") != NULL, "%s", rej.detail);
    ck_assert_int_eq(qg_rejections_next(rj, &rej), QG_NOTFOUND);
    qg_rejections_close(rj);
    qg_store_close(st);
}
END_TEST

Suite *serve_suite(void);

Suite *
serve_suite(void)
{
    Suite *s = suite_create("serve");
    TCase *answers = tcase_create("Answers");
    TCase *forwarding = tcase_create("Forwarding");
    TCase *concurrency = tcase_create("Concurrency");
    TCase *crash_tc = tcase_create("Crash");
    TCase *hostile = tcase_create("Hostile");
    TCase *metrics = tcase_create("Metrics");
    TCase *reorder = tcase_create("Reorder");
    TCase *surface = tcase_create("Surface");

    tcase_add_checked_fixture(answers, setup, teardown);
    tcase_set_timeout(answers, 60);
    tcase_add_test(answers, test_webhook_status_table);
    tcase_add_test(answers, test_webhook_malformed_expect);
    tcase_add_test(answers, test_webhook_max_skew);
    tcase_add_test(answers, test_webhook_illegal_expect);
    tcase_add_test(answers, test_webhook_visits_expect);
    tcase_add_test(answers, test_webhook_too_large_refused_early);
    tcase_add_test(answers, test_webhook_too_large_chunked);
    tcase_add_test(answers, test_webhook_media_type);
    tcase_add_test(answers, test_webhook_wrong_method);
    tcase_add_test(answers, test_webhook_wrong_path);
    tcase_add_test(answers, test_webhook_store_unavailable);
    tcase_add_test(answers, test_read_api_ticket_and_history);
    tcase_add_test(answers, test_read_api_bearer_token);
    tcase_add_test(answers, test_health_and_ready_without_upstream);
    suite_add_tcase(s, answers);

    tcase_add_checked_fixture(forwarding, setup, teardown);
    tcase_set_timeout(forwarding, 90);
    tcase_add_test(forwarding, test_forward_visit_in_order);
    tcase_add_test(forwarding, test_forward_failure_keeps_ticket_order);
    tcase_add_test(forwarding, test_forward_hang_answers_quickly);
    tcase_add_test(forwarding, test_readyz_upstream_closed_port);
    tcase_add_test(forwarding, test_readyz_upstream_failing);
    tcase_add_loop_test(forwarding, test_forward_dead_letter_and_retry, 0, 2);
    tcase_add_test(forwarding, test_forward_resumes_after_restart);
    suite_add_tcase(s, forwarding);

    tcase_add_checked_fixture(concurrency, setup, teardown);
    tcase_set_timeout(concurrency, 60);
    tcase_add_test(concurrency, test_conflicting_steps_legal_history);
    tcase_add_test(concurrency, test_group_commit_shares_commits);
    suite_add_tcase(s, concurrency);

    tcase_add_test(answers, test_sighup_reloads_mapping_and_log);
    tcase_add_checked_fixture(hostile, setup, teardown);
    tcase_set_timeout(hostile, 60);
    tcase_add_test(hostile, test_hostile_slowloris);
    tcase_add_test(hostile, test_hostile_request_deadline);
    tcase_add_test(hostile, test_hostile_open_files_fit);
    tcase_add_test(hostile, test_hostile_keepalive_bounds);
    tcase_add_loop_test(hostile, test_hostile_slowloris_crowd, 0, 2);
    tcase_add_test(hostile, test_hostile_close_mid_body);
    tcase_add_test(hostile, test_hostile_many_connections);
    tcase_add_test(hostile, test_hostile_unsigned_store_growth);
    tcase_add_test(hostile, test_hostile_unsigned_rate_limited);
    tcase_add_test(hostile, test_hostile_unsigned_log_bounded);
    suite_add_tcase(s, hostile);
    tcase_add_checked_fixture(crash_tc, setup, teardown);
    tcase_set_timeout(crash_tc, 1200);
    tcase_add_test(crash_tc, test_kill9_keeps_acknowledged);
    tcase_add_test(crash_tc, test_sigterm_finishes_request_in_flight);
    suite_add_tcase(s, crash_tc);

    tcase_add_checked_fixture(metrics, setup, teardown);
    tcase_set_timeout(metrics, 60);
    tcase_add_test(metrics, test_metrics_checker_refuses_faults);
    tcase_add_test(metrics, test_metrics_exposition_format);
    tcase_add_test(metrics, test_metrics_count_answers);
    suite_add_tcase(s, metrics);

    tcase_add_checked_fixture(reorder, setup, teardown);
    tcase_set_timeout(reorder, 60);
    tcase_add_test(reorder, test_reorder_held_and_late_through_the_gate);
    tcase_add_test(reorder, test_reorder_window_expires_on_the_gate_clock);
    suite_add_tcase(s, reorder);

    tcase_add_checked_fixture(surface, setup, teardown);
    tcase_set_timeout(surface, 120);
    tcase_add_test(surface, test_cli_file_size_limit_fails_cleanly);
    tcase_add_test(surface, test_half_close_answered);
    tcase_add_test(surface, test_readyz_follows_writes);
    tcase_add_test(surface, test_read_api_token_whole);
    tcase_add_test(surface, test_read_api_strict_ids);
    tcase_add_test(surface, test_http_edges);
    tcase_add_test(surface, test_http_edges_left_to_libmicrohttpd);
    suite_add_tcase(s, surface);

    return s;
}

int
main(void)
{
    return tu_run(serve_suite());
}
