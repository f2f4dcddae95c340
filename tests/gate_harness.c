/*
 * gate_harness.c - the gate, the client and the fake HIS of the
 * end-to-end tests of `qgate serve` (gate_harness.h).
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

#include "gate_harness.h"

/* ----- time ------------------------------------------------------------- */

int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ----- the test's directory --------------------------------------------- */

char work[64];            /* the test's directory */
char db[96];              /* the gate's store, work/db */
char logpath[96];         /* the gate's stderr, work/gate.log */
pid_t gate_pid;           /* the running gate, or 0 */
int gate_port;            /* its port */
static int passed;        /* teardown ran: keep nothing */
static int exit_hook_set; /* at_exit() is registered in this process */

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
        fprintf(stderr, "%s: kept %s (store and gate.log)\n",
                program_invocation_short_name, work);
}

/* ----- signed deliveries ------------------------------------------------ */

char secret[256];
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

void
secret_use(const char *key)
{
    if (key == NULL) {
        secret_load();
        return;
    }
    ck_assert(strlen(key) > 0 && strlen(key) < sizeof(secret));
    memcpy(secret, key, strlen(key));
    secret_len = strlen(key);
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

/* A signed live-queue step of entry id (NULL when out of memory). */
char *
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
char *
served_body(long long id, size_t *len)
{
    return step_body(id, "live_queue_updated", "2024-03-05T09:34:00+08:00",
                     "{\"name\":\"SERVED\",\"value\":5}", "Served", len);
}

/* Joining the live queue as entry id, as walk-in/01 does for 30001. */
char *
join_body(long long id, size_t *len)
{
    return step_body(id, "live_queue_created", "2024-03-05T09:00:00+08:00", "1",
                     "In Queue", len);
}

/* ----- the gate --------------------------------------------------------- */

off_t
file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* The text of path from offset `from` (at most 1 MiB), malloc'd. */
char *
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
int
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

/* The commands that listen, and what each is given before a test's
 * options (after --db and the store). */
static const struct {
    const char *cmd;
    const char *args[8];
} listeners[] = {
    /* Judged on arrival unless a test gives a window of its own (the
     * last --reorder-window wins). */
    {"serve",
     {"--secret-file", QG_FIXTURES "/secret", "--listen", "127.0.0.1:0",
      "--reorder-window", "0", NULL}},
    {"console", {"--listen", "127.0.0.1:0", NULL}},
};

void
gate_spawn_cmd(const char *cmd, const char *const *extra, long fsize)
{
    const char *argv[48];
    const char *const *args = NULL;
    size_t n = 0, k;
    pid_t parent = getpid();
    int i;

    ck_assert_int_eq(gate_pid, 0);
    for (k = 0; k < COUNT(listeners) && args == NULL; k++)
        if (strcmp(listeners[k].cmd, cmd) == 0)
            args = listeners[k].args;
    ck_assert_msg(args != NULL, "qgate %s: not a command that listens", cmd);
    argv[n++] = QGATE_BIN;
    argv[n++] = cmd;
    argv[n++] = "--db";
    argv[n++] = db;
    for (; *args; args++)
        argv[n++] = *args;
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

void
gate_spawn(const char *const *extra, long fsize)
{
    gate_spawn_cmd("serve", extra, fsize);
}

void
gate_start_cmd(const char *cmd, const char *const *extra, long fsize)
{
    off_t from = file_size(logpath);
    int i, status;

    gate_spawn_cmd(cmd, extra, fsize);
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
            ck_assert_msg(0, "qgate %s exited (status %d) before listening: %s",
                          cmd, status, text);
        }
        free(text);
        sleep_ms(20);
    }
    ck_assert_msg(0, "qgate %s did not say \"listening\" in %d ms", cmd,
                  WAIT_MS);
}

/* gate_spawn(), then waits for the gate's "listening" line. */
void
gate_start_limited(const char *const *extra, long fsize)
{
    gate_start_cmd("serve", extra, fsize);
}

void
gate_start(const char *const *extra)
{
    gate_start_limited(extra, 0);
}

/* SIGTERM: the gate finishes what is in flight and exits 0. */
void
gate_stop(void)
{
    int status;

    ck_assert_int_gt(gate_pid, 0);
    ck_assert_int_eq(kill(gate_pid, SIGTERM), 0);
    status = gate_wait_exit(30000);
    ck_assert_msg(status != -1, "the gate did not stop within 30 s of TERM");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *text = read_from(logpath, 0);
        size_t n = strlen(text);

        /* the log's end says why: a panic, a damaged store */
        ck_assert_msg(0,
                      "the gate's stop was not clean: status 0x%x; its log "
                      "ends: %s",
                      status, text + (n > 1500 ? n - 1500 : 0));
    }
}

void
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
int
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
CURLcode
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
    /* curl asks a large body's server to continue ("Expect:
     * 100-continue"); a request here asks only when it announces its body
     * (below). */
    l = curl_slist_append(l,
                          src && announce ? "Expect: 100-continue" : "Expect:");
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
        if (announce) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)src->total);
            /* curl waits 1 s for "100 Continue", then sends the body
             * anyway.  On a loaded machine the gate's early 413 can come
             * after that second; the client is then sending when the
             * gate closes, and the reset can destroy the 413 before curl
             * reads it.  The wait is what a patient client does. */
            curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
        }
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

CURLcode
http_to(int port, const char *method, const char *path, const char *const *hdrs,
        const char *body, size_t len, answer *a)
{
    return http_full(port, method, path, hdrs, body, len, NULL, 0, a);
}

void
answer_free(answer *a)
{
    free(a->body);
    json_object_put(a->json);
    memset(a, 0, sizeof(*a));
}

/* A request to the gate that must get an answer. */
void
http(const char *method, const char *path, const char *const *hdrs,
     const char *body, size_t len, answer *a)
{
    CURLcode rc = http_to(gate_port, method, path, hdrs, body, len, a);

    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path,
                  curl_easy_strerror(rc));
}

const char *const as_json[] = {"Content-Type: application/json", NULL};

void
post_fixture(const char *rel, answer *a)
{
    size_t len;
    char *body = tu_fixture(rel, &len);

    http("POST", WEBHOOK, as_json, body, len, a);
    free(body);
}

const char *
jstr(json_object *o, const char *key)
{
    json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

int64_t
jint(json_object *o, const char *key)
{
    json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return -1;
}

const char *
jtext(json_object *o, const char *key)
{
    json_object *v;

    if (o == NULL || !json_object_object_get_ex(o, key, &v))
        return "";
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

int
same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The value of header `name` in the answer, or "" (copied into out). */
const char *
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
void
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
long
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

his_state his;

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
        copy_header(conn, "X-Qgate-Source", q->source, sizeof(q->source));
        copy_header(conn, "webhook-id", q->wh_id, sizeof(q->wh_id));
        copy_header(conn, "webhook-timestamp", q->wh_ts, sizeof(q->wh_ts));
        copy_header(conn, "webhook-signature", q->wh_sig, sizeof(q->wh_sig));
        copy_header(conn, "X-Qgate-Attempt", q->attempt, sizeof(q->attempt));
        copy_header(conn, "User-Agent", q->agent, sizeof(q->agent));
        if (strlen(q->delivery) > 33 && q->delivery[32] == '-')
            snprintf(q->dkey, sizeof(q->dkey), "%s", q->delivery + 33);
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

void
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
size_t
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
uint32_t
his_ticket_order(uint64_t t)
{
    char want[24], id[48], store[40] = "", err[256] = "";
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
        else if (strcmp(q->dkey, id) != 0 ||
                 strspn(q->delivery, "0123456789abcdef") != 32 ||
                 (store[0] && strncmp(q->delivery, store, 32) != 0))
            snprintf(err, sizeof(err),
                     "ticket %s: delivery id \"%s\", want <the store id>-%s",
                     want, q->delivery, id);
        else if (q->status == 200)
            acked = seq;
        if (!store[0])
            snprintf(store, sizeof(store), "%.32s", q->delivery);
    }
    pthread_mutex_unlock(&his.lock);
    ck_assert_msg(err[0] == '\0', "%s", err);
    return acked;
}

/* ----- the store, read-only --------------------------------------------- */

qg_store *
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

uint64_t
ticket_of(qg_store *st, long long lq)
{
    qg_ticket t;
    int rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, lq, &t);

    ck_assert_msg(rc == 0, "live-queue id %lld: %s", lq, qg_strerror(rc));
    return t.id;
}

/* The outbox (dead = 0) or the dead list, in id order. */
size_t
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

char *
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
double
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

double
gate_sample(const char *sample)
{
    char *text = scrape();
    double v = sample_value(text, sample);

    free(text);
    return v;
}

/* ----- fixture lists --------------------------------------------------- */

/* The rows of an EXPECT file, columns split on blanks. */
size_t
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
void
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

void
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

void
teardown(void)
{
    if (gate_pid > 0) {
        kill(gate_pid, SIGKILL);
        waitpid(gate_pid, NULL, 0);
        gate_pid = 0;
    }
    his_stop();
    curl_global_cleanup();
    tu_remove_dir(work);
    work[0] = '\0';
    passed = 1;
}

/* ----- Answers ---------------------------------------------------------- */

/* ----- Forwarding ------------------------------------------------------- */

const char *const walk_in_files[] = {WALK_IN "01-join-live-queue.json",
                                     WALK_IN "02-alert.json",
                                     WALK_IN "03-move.json",
                                     WALK_IN "04-serving.json",
                                     WALK_IN "05-served.json",
                                     WALK_IN "06-pharmacy-received.json",
                                     WALK_IN "07-pharmacy-dispensed.json",
                                     WALK_IN "08-billing-paid.json",
                                     WALK_IN "09-end-visit.json"};

void
post_accepted(const char *rel)
{
    answer a;

    post_fixture(rel, &a);
    expect(&a, 200, "accepted", "none", rel);
    answer_free(&a);
}

/* Waits until the HIS acknowledged n requests and the gate's outbox is
 * empty. */
void
wait_delivered(size_t n, long ms)
{
    int ok;

    WAIT_FOR(ok, his_count(200) >= n, ms);
    ck_assert_msg(ok, "the HIS acknowledged %zu of %zu steps in %ld ms",
                  his_count(200), n, ms);
    WAIT_FOR(ok, gate_sample("qgate_outbox_depth") == 0, WAIT_MS);
    ck_assert_msg(ok, "the outbox did not empty after the HIS had all");
}

/* ----- Hostile clients ---------------------------------------------------- */

/* A TCP connection to the gate, or -1. */
int
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
