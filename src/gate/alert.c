/*
 * alert.c - telling someone when steps stop reaching the HIS.
 *
 * One thread, woken once a second and when a step goes dead, looks at
 * three conditions: the HIS has not taken a step for --alert-his-down
 * seconds while steps wait (his_unreachable); steps went to the dead list
 * (step_dead); refusals came faster than --alert-refusals a minute
 * (refusal_spike).  Each is POSTed to --alert-url as a small JSON body,
 * signed as Standard Webhooks says (stdwebhooks.h), when it starts
 * ("firing", again at most every --alert-interval while it lasts) and
 * once when it clears ("resolved").
 *
 * Nothing else waits for this thread: the forwarder hands it dead steps
 * through a bounded queue (overflow is counted, not waited for), and the
 * rest it reads from atomics and the store.  A receiver that is down
 * costs a few tries with a short timeout, a log line and a counter.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "gate.h"
#include "stdwebhooks.h"
#include "upstream.h"

enum alert_kind { AL_HIS, AL_DEAD, AL_REFUSALS, AL_KINDS };
enum alert_state { AS_FIRING, AS_RESOLVED, AS_STATES };

static const char *const kind_names[AL_KINDS] = {"his_unreachable", "step_dead",
                                                 "refusal_spike"};
static const char *const state_names[AS_STATES] = {"firing", "resolved"};

#define DEAD_QUEUE   64   /* dead steps waiting for the thread */
#define TRIES        3    /* per alert */
#define TIMEOUT_MS   5000 /* per try, connection included */
#define WINDOW_S     60   /* the refusal rate's window */
#define DETAIL_BYTES 1024

typedef struct condition {
    int firing;
    int64_t since_us; /* when it began */
    int64_t sent_us;  /* the last "firing" sent */
} condition;

typedef struct dead_step {
    qg_outbox_entry e;
    char why[128];
} dead_step;

static struct {
    int started;
    alert_options o;
    swh_keys keys;
    int signed_;
    qg_store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int stopping;
    /* from the forwarder, under lock */
    dead_step queue[DEAD_QUEUE];
    size_t nqueued;
    unsigned long overflow;
    /* the thread's own */
    condition cond[AL_KINDS];
    dead_step first_dead; /* of the batch not yet sent */
    unsigned long pending_dead;
    unsigned long ring[WINDOW_S + 1]; /* refusal totals, one a second */
    size_t ring_n, ring_pos;
    int64_t ring_us;
    int64_t started_us;
    uint64_t next_id;
    CURL *curl;
} A;

static atomic_ulong sent_total[AL_KINDS][AS_STATES];
static atomic_ulong failed_total;

/* ----- the body --------------------------------------------------------- */

/* RFC 3339 UTC with milliseconds, as a JSON string. */
static void
put_time(FILE *f, int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    char buf[40];

    gmtime_r(&s, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "\"%s.%03dZ\"", buf, (int)(us / 1000 % 1000));
}

/* {"type":"qgate.alert","timestamp":...,"data":{...}}; malloc'd. */
static char *
body(enum alert_kind k, enum alert_state s, int64_t since_us,
     const char *detail, int64_t now_us, size_t *len)
{
    char *buf = NULL, esc[1100];
    FILE *f = open_memstream(&buf, len);

    if (f == NULL)
        return NULL;
    fprintf(f, "{\"type\":\"qgate.alert\",\"timestamp\":");
    put_time(f, now_us);
    fprintf(f, ",\"data\":{\"alert\":\"%s\",\"state\":\"%s\",\"since\":",
            kind_names[k], state_names[s]);
    put_time(f, since_us);
    fprintf(f, ",\"detail\":{%s},\"gate\":{\"listen\":%s", detail,
            log_string(A.o.listen, esc, sizeof(esc)));
    fprintf(f, ",\"store\":%s}}}", log_string(A.o.store, esc, sizeof(esc)));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ----- sending ---------------------------------------------------------- */

static size_t
discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

/* A stopping gate does not wait for a slow receiver. */
static int
progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)arg;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load(&A.stopping);
}

/* Waits ms unless stopping; returns whether stopping. */
static int
pause_ms(long ms)
{
    struct timespec until;
    int64_t at = gate_now_us() + (int64_t)ms * 1000;
    int stop;

    until.tv_sec = (time_t)(at / 1000000);
    until.tv_nsec = (long)(at % 1000000) * 1000;
    pthread_mutex_lock(&A.lock);
    while (!(stop = atomic_load(&A.stopping)) &&
           pthread_cond_timedwait(&A.wake, &A.lock, &until) == 0)
        ;
    pthread_mutex_unlock(&A.lock);
    return stop;
}

/* One try: 0 on a 2xx, else -1 with why in err. */
static int
post(const char *id, int64_t ts, const char *b, size_t len, char *err,
     size_t errlen)
{
    struct curl_slist *h = NULL;
    char line[SWH_SIG_SIZE + 32], sig[SWH_SIG_SIZE], cerr[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode cc;

    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(line, sizeof(line), "webhook-id: %s", id);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %" PRId64, ts);
    h = curl_slist_append(h, line);
    if (A.signed_) {
        if (swh_sign(&A.keys, id, ts, b, len, sig) != 0) {
            curl_slist_free_all(h);
            snprintf(err, errlen, "cannot sign");
            return -1;
        }
        snprintf(line, sizeof(line), "webhook-signature: %s", sig);
        h = curl_slist_append(h, line);
    }
    curl_easy_reset(A.curl);
    curl_easy_setopt(A.curl, CURLOPT_URL, A.o.url);
    curl_easy_setopt(A.curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(A.curl, CURLOPT_POSTFIELDS, b);
    curl_easy_setopt(A.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(A.curl, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(A.curl, CURLOPT_CONNECTTIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(A.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(A.curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(A.curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(A.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(A.curl, CURLOPT_XFERINFOFUNCTION, progress);
    cc = curl_easy_perform(A.curl);
    if (cc == CURLE_OK)
        curl_easy_getinfo(A.curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    if (cc == CURLE_OK && status >= 200 && status < 300)
        return 0;
    if (cc == CURLE_OK)
        snprintf(err, errlen, "HTTP %ld", status);
    else
        snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
    return -1;
}

/* Builds, signs and sends one alert, with a few tries; logs and counts
 * the outcome.  Never fails the gate. */
static void
send_alert(enum alert_kind k, enum alert_state s, int64_t since_us,
           const char *detail)
{
    int64_t now = gate_now_us();
    char id[64], err[CURL_ERROR_SIZE + 32] = "", esc[600];
    size_t len = 0;
    char *b = body(k, s, since_us, detail, now, &len);
    int tries, ok = 0;

    snprintf(id, sizeof(id), "qgate_alert_%" PRId64 "_%" PRIu64,
             A.started_us / 1000000, ++A.next_id);
    if (b == NULL) {
        snprintf(err, sizeof(err), "out of memory");
    } else {
        for (tries = 1; tries <= TRIES && !atomic_load(&A.stopping); tries++) {
            if ((ok = post(id, now / 1000000, b, len, err, sizeof(err)) == 0))
                break;
            if (tries < TRIES && pause_ms(500L << tries))
                break;
        }
    }
    free(b);
    if (ok) {
        atomic_fetch_add(&sent_total[k][s], 1);
        log_event(s == AS_FIRING ? "warn" : "info", "alert sent",
                  ",\"alert\":\"%s\",\"state\":\"%s\",\"id\":\"%s\","
                  "\"detail\":{%s}",
                  kind_names[k], state_names[s], id, detail);
    } else {
        atomic_fetch_add(&failed_total, 1);
        log_event("error", "alert not sent",
                  ",\"alert\":\"%s\",\"state\":\"%s\",\"id\":\"%s\","
                  "\"error\":\"%s\",\"detail\":{%s}",
                  kind_names[k], state_names[s], id,
                  log_escape(err, esc, sizeof(esc)), detail);
    }
}

/* ----- the conditions --------------------------------------------------- */

/* A condition that is either on or off (the HIS, the refusal rate):
 * fires when it comes on, again every interval while on, and resolves
 * once when it goes off. */
static void
level(enum alert_kind k, int on, int64_t since_us, const char *detail,
      int64_t now)
{
    condition *c = &A.cond[k];

    if (on && (!c->firing || now - c->sent_us >= A.o.interval_s * 1000000)) {
        if (!c->firing)
            c->since_us = since_us;
        c->firing = 1;
        c->sent_us = now;
        send_alert(k, AS_FIRING, c->since_us, detail);
    } else if (!on && c->firing) {
        c->firing = 0;
        send_alert(k, AS_RESOLVED, c->since_us, detail);
    }
}

static void
check_his(uint64_t depth, int64_t oldest_us, int64_t now)
{
    int64_t down = atomic_load(&gate_metrics.his_down_since_us);
    int on = down && depth && now - down >= A.o.his_down_s * 1000000;
    char detail[DETAIL_BYTES];

    if (!on && !A.cond[AL_HIS].firing)
        return;
    snprintf(detail, sizeof(detail),
             "\"unreachable_s\":%" PRId64 ",\"waiting\":%" PRIu64
             ",\"oldest_age_s\":%" PRId64,
             on ? (now - down) / 1000000
                : (now - A.cond[AL_HIS].since_us) / 1000000,
             depth, oldest_us ? (now - oldest_us) / 1000000 : 0);
    level(AL_HIS, on, down, detail, now);
}

static unsigned long
refusals_so_far(void)
{
    unsigned long n = 0;
    int i, s;

    /* Every source's: one gate, one refusal rate. */
    for (s = 0; s < GATE_SOURCES; s++)
        for (i = 0; i < QG_REASON_COUNT; i++) {
            qg_verdict v = qg_reason_verdict((qg_reason)i);

            if (v == QG_REJECTED || v == QG_UNAUTHENTICATED ||
                v == QG_MALFORMED)
                n += atomic_load(&gate_metrics.deliveries[s][i]);
        }
    return n;
}

/* The refusals of the last minute, from a total taken once a second. */
static void
check_refusals(int64_t now)
{
    unsigned long total, rate;
    size_t oldest;
    char detail[DETAIL_BYTES];

    if (A.o.refusals <= 0 || now - A.ring_us < 1000000)
        return;
    A.ring_us = now;
    total = refusals_so_far();
    A.ring[A.ring_pos] = total;
    A.ring_pos = (A.ring_pos + 1) % (WINDOW_S + 1);
    if (A.ring_n < WINDOW_S + 1)
        A.ring_n++;
    oldest = A.ring_n < WINDOW_S + 1 ? 0 : A.ring_pos;
    rate = total - A.ring[oldest];
    if (A.ring_n == 1)
        rate = total; /* since the start */
    snprintf(detail, sizeof(detail),
             "\"per_minute\":%lu,\"limit\":%ld,\"total\":%lu", rate,
             A.o.refusals, total);
    level(AL_REFUSALS, rate > (unsigned long)A.o.refusals, now, detail, now);
}

/* Steps that went dead: one alert for those that came since the last,
 * no more often than the interval; resolved once the dead list is
 * empty (qgate outbox --retry). */
static void
check_dead(uint64_t dead, int64_t now)
{
    condition *c = &A.cond[AL_DEAD];
    dead_step got[DEAD_QUEUE];
    size_t n, i;
    unsigned long lost;
    char detail[DETAIL_BYTES], err[300], why[300], at[48] = "null";
    char delivery[UPSTREAM_ID_SIZE];
    const qg_outbox_entry *e;

    pthread_mutex_lock(&A.lock);
    n = A.nqueued;
    memcpy(got, A.queue, n * sizeof(*got));
    A.nqueued = 0;
    lost = A.overflow;
    A.overflow = 0;
    pthread_mutex_unlock(&A.lock);
    for (i = 0; i < n; i++)
        if (A.pending_dead++ == 0)
            A.first_dead = got[i];
    A.pending_dead += lost;

    if (A.pending_dead &&
        (!c->firing || now - c->sent_us >= A.o.interval_s * 1000000)) {
        e = &A.first_dead.e;
        upstream_delivery_id(A.st, e->ticket, e->seq, delivery);
        if (e->last_attempt_us)
            snprintf(at, sizeof(at), "%" PRId64, e->last_attempt_us / 1000000);
        snprintf(detail, sizeof(detail),
                 "\"count\":%lu,\"ticket\":%" PRIu64 ",\"seq\":%" PRIu32
                 ",\"delivery\":\"%s\",\"outbox\":%" PRIu64
                 ",\"attempts\":%" PRIu32
                 ",\"reason\":%s,\"last_error\":%s,\"last_error_at\":%s,"
                 "\"dead\":%" PRIu64,
                 A.pending_dead, e->ticket, e->seq, delivery, e->id,
                 e->attempts, log_string(A.first_dead.why, why, sizeof(why)),
                 log_string(e->last_error[0] ? e->last_error : NULL, err,
                            sizeof(err)),
                 at, dead);
        if (!c->firing)
            c->since_us = now;
        c->firing = 1;
        c->sent_us = now;
        A.pending_dead = 0;
        send_alert(AL_DEAD, AS_FIRING, c->since_us, detail);
    } else if (c->firing && !A.pending_dead && dead == 0) {
        c->firing = 0;
        send_alert(AL_DEAD, AS_RESOLVED, c->since_us, "\"dead\":0");
    }
}

static void *
run(void *arg)
{
    uint64_t depth, dead;
    int64_t oldest, now;

    (void)arg;
    while (!atomic_load(&A.stopping)) {
        now = gate_now_us();
        depth = dead = 0;
        oldest = 0;
        if (qg_outbox_stats(A.st, &depth, &oldest, &dead) == 0) {
            check_his(depth, oldest, now);
            check_dead(dead, now);
        }
        check_refusals(now);
        pause_ms(1000);
    }
    return NULL;
}

/* ----- the interface ---------------------------------------------------- */

int
alerts_start(qg_store *st, const alert_options *o, char *err, size_t errlen)
{
    int rc;

    if (o->url == NULL)
        return 0;
    memset(&A, 0, sizeof(A));
    A.o = *o;
    A.st = st;
    A.started_us = gate_now_us();
    if (o->secret_file) {
        if (swh_keys_load(o->secret_file, &A.keys, err, errlen) != 0)
            return -1;
        A.signed_ = 1;
    }
    if ((A.curl = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "cannot start libcurl");
        return -1;
    }
    pthread_mutex_init(&A.lock, NULL);
    pthread_cond_init(&A.wake, NULL);
    atomic_init(&A.stopping, 0);
    if ((rc = pthread_create(&A.thread, NULL, run, NULL))) {
        pthread_cond_destroy(&A.wake);
        pthread_mutex_destroy(&A.lock);
        curl_easy_cleanup(A.curl);
        snprintf(err, errlen, "cannot start the alert thread: %s",
                 strerror(rc));
        return -1;
    }
    A.started = 1;
    return 0;
}

void
alerts_step_dead(const qg_outbox_entry *e, const char *why)
{
    if (!A.started)
        return;
    pthread_mutex_lock(&A.lock);
    if (A.nqueued < DEAD_QUEUE) {
        A.queue[A.nqueued].e = *e;
        snprintf(A.queue[A.nqueued].why, sizeof(A.queue[0].why), "%s",
                 why ? why : "");
        A.nqueued++;
    } else {
        A.overflow++;
    }
    pthread_cond_signal(&A.wake);
    pthread_mutex_unlock(&A.lock);
}

void
alerts_stop(void)
{
    if (!A.started)
        return;
    pthread_mutex_lock(&A.lock);
    atomic_store(&A.stopping, 1);
    pthread_cond_signal(&A.wake);
    pthread_mutex_unlock(&A.lock);
    pthread_join(A.thread, NULL);
    pthread_cond_destroy(&A.wake);
    pthread_mutex_destroy(&A.lock);
    curl_easy_cleanup(A.curl);
    memset(&A.keys, 0, sizeof(A.keys));
    A.started = 0;
}

void
alerts_render(FILE *f)
{
    int k, s;

    fprintf(f, "# HELP qgate_alerts_total Alerts delivered to --alert-url, by "
               "alert and state.\n"
               "# TYPE qgate_alerts_total counter\n");
    for (k = 0; k < AL_KINDS; k++)
        for (s = 0; s < AS_STATES; s++)
            fprintf(f, "qgate_alerts_total{alert=\"%s\",state=\"%s\"} %lu\n",
                    kind_names[k], state_names[s],
                    atomic_load(&sent_total[k][s]));
    fprintf(f,
            "# HELP qgate_alerts_failed_total Alerts --alert-url did not "
            "take after every try.\n"
            "# TYPE qgate_alerts_failed_total counter\n"
            "qgate_alerts_failed_total %lu\n",
            atomic_load(&failed_total));
}
