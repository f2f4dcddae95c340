/*
 * metrics.c - counters of the gate, rendered as Prometheus text.
 *
 * Counters are C11 atomics bumped on the request path; no lock.  Outbox
 * figures are read from the store when scraped, so they are right even
 * when another process changed the outbox.
 */
#include <inttypes.h>
#include <pthread.h>
#include <time.h>

#include "gate.h"

metrics gate_metrics;
const char *gate_source_names[GATE_SOURCES];

static const double latency_bounds[LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,   0.025,   0.05,   0.1,   0.5,    2.5};
static const unsigned batch_bounds[BATCH_BUCKETS] = {1,  2,  4,   8,   16,
                                                     32, 64, 128, 256, 512};

/* The last METRICS_MINUTES minutes, each slot stamped with its minute
 * (since the epoch) and reused when that minute comes round again.  In
 * memory: the store has no index of accepted steps by time, and walking
 * every history each refresh would not be cheap. */
#define VERDICTS (QG_HELD + 1)
static struct minute_slot {
    _Atomic int64_t minute;
    atomic_ulong n[VERDICTS];
} minutes[METRICS_MINUTES];
static pthread_mutex_t minutes_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t started_ms;

void
metrics_delivery(int source, qg_reason reason)
{
    int64_t m = gate_now_us() / 60000000;
    struct minute_slot *s = &minutes[m % METRICS_MINUTES];
    qg_verdict v = qg_reason_verdict(reason);
    int i;

    atomic_fetch_add(&gate_metrics.deliveries[source][reason], 1);
    if ((unsigned)v >= VERDICTS)
        return;
    if (atomic_load(&started_ms) == 0) {
        int64_t zero = 0;

        atomic_compare_exchange_strong(&started_ms, &zero,
                                       gate_now_us() / 1000);
    }
    /* The first delivery of a minute clears its slot, under the lock so
     * that two threads do not both clear it, one after the other's
     * count.  Every other delivery counts without it. */
    if (atomic_load(&s->minute) != m) {
        pthread_mutex_lock(&minutes_lock);
        if (atomic_load(&s->minute) != m) {
            for (i = 0; i < VERDICTS; i++)
                atomic_store(&s->n[i], 0);
            atomic_store(&s->minute, m);
        }
        pthread_mutex_unlock(&minutes_lock);
    }
    atomic_fetch_add(&s->n[v], 1);
}

void
metrics_minutes(FILE *f, int count)
{
    int64_t now = gate_now_us() / 60000000, m;
    int i;

    if (count < 1 || count > METRICS_MINUTES)
        count = METRICS_MINUTES;
    fprintf(f,
            "{\"start_ms\":%" PRId64
            ",\"minute_ms\":60000,\"since_ms\":%" PRId64 ",\"verdicts\":[",
            (now - count + 1) * 60000, atomic_load(&started_ms));
    for (i = 0; i < VERDICTS; i++)
        fprintf(f, "%s\"%s\"", i ? "," : "", qg_verdict_name((qg_verdict)i));
    fputs("],\"counts\":[", f);
    for (m = now - count + 1; m <= now; m++) {
        const struct minute_slot *s = &minutes[m % METRICS_MINUTES];
        int here = atomic_load(&s->minute) == m;

        fputs(m == now - count + 1 ? "[" : ",[", f);
        for (i = 0; i < VERDICTS; i++)
            fprintf(f, "%s%lu", i ? "," : "",
                    here ? atomic_load(&s->n[i]) : 0UL);
        fputc(']', f);
    }
    fputs("]}\n", f);
}

void
metrics_request(int status, int64_t elapsed_us)
{
    double s = (double)elapsed_us / 1e6;
    int i;

    if (status >= 100 && status < 600)
        atomic_fetch_add(&gate_metrics.http[status / 100], 1);
    for (i = 0; i < LATENCY_BUCKETS && s > latency_bounds[i]; i++)
        ;
    atomic_fetch_add(&gate_metrics.latency[i], 1);
    atomic_fetch_add(&gate_metrics.latency_count, 1);
    atomic_fetch_add(&gate_metrics.latency_sum_us,
                     (unsigned long long)(elapsed_us > 0 ? elapsed_us : 0));
}

void
metrics_batch(size_t n)
{
    int i;

    for (i = 0; i < BATCH_BUCKETS && n > batch_bounds[i]; i++)
        ;
    atomic_fetch_add(&gate_metrics.batch[i], 1);
    atomic_fetch_add(&gate_metrics.batch_count, 1);
    atomic_fetch_add(&gate_metrics.batch_sum, n);
}

/* A histogram family from per-bucket counts (made cumulative here).  The
 * bounds are doubles or unsigned, whichever is given. */
static void
histogram(FILE *f, const char *name, const char *help, atomic_ulong *counts,
          int n, const double *dbounds, const unsigned *ubounds, double sum,
          unsigned long count)
{
    unsigned long cum = 0;
    int i;

    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (i = 0; i < n; i++) {
        cum += atomic_load(&counts[i]);
        if (dbounds)
            fprintf(f, "%s_bucket{le=\"%g\"} %lu\n", name, dbounds[i], cum);
        else
            fprintf(f, "%s_bucket{le=\"%u\"} %lu\n", name, ubounds[i], cum);
    }
    cum += atomic_load(&counts[n]);
    fprintf(f, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n%s_count %lu\n", name,
            cum, name, sum, name, count);
}

/* A metric's HELP and TYPE lines. */
static void
head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric of one sample, with no labels. */
static void
sample(FILE *f, const char *name, const char *type, const char *help,
       uint64_t value)
{
    head(f, name, type, help);
    fprintf(f, "%s %" PRIu64 "\n", name, value);
}

void
metrics_render(FILE *f, qg_store *st)
{
    static const char *const fwd[FWD_KINDS] = {"ok", "http_error",
                                               "network_error"};
    static const char *const shed[SHED_KINDS] = {"deadline", "idle", "full"};
    uint64_t depth = 0, dead = 0, dropped = 0, held = 0;
    int64_t oldest = 0, down_since;
    struct timespec now;
    int i, s;

    fprintf(f, "# HELP qgate_deliveries_total Deliveries decided, by verdict, "
               "reason code and source.\n"
               "# TYPE qgate_deliveries_total counter\n");
    for (s = 0; s < GATE_SOURCES; s++)
        for (i = 0; gate_source_names[s] && i < QG_REASON_COUNT; i++)
            fprintf(f,
                    "qgate_deliveries_total{verdict=\"%s\",code=\"%s\","
                    "source=\"%s\"} %lu\n",
                    qg_verdict_name(qg_reason_verdict((qg_reason)i)),
                    qg_reason_name((qg_reason)i), gate_source_names[s],
                    atomic_load(&gate_metrics.deliveries[s][i]));
    sample(f, "qgate_store_errors_total", "counter",
           "Deliveries answered 503: the store failed.",
           atomic_load(&gate_metrics.store_errors));
    fprintf(f, "# HELP qgate_http_responses_total HTTP responses by status "
               "class.\n"
               "# TYPE qgate_http_responses_total counter\n");
    for (i = 1; i < 6; i++)
        fprintf(f, "qgate_http_responses_total{class=\"%dxx\"} %lu\n", i,
                atomic_load(&gate_metrics.http[i]));

    histogram(f, "qgate_request_duration_seconds",
              "Time from a request's arrival to its answer.",
              gate_metrics.latency, LATENCY_BUCKETS, latency_bounds, NULL,
              (double)atomic_load(&gate_metrics.latency_sum_us) / 1e6,
              atomic_load(&gate_metrics.latency_count));
    histogram(f, "qgate_commit_batch_size", "Deliveries per store commit.",
              gate_metrics.batch, BATCH_BUCKETS, NULL, batch_bounds,
              (double)atomic_load(&gate_metrics.batch_sum),
              atomic_load(&gate_metrics.batch_count));

    qg_outbox_stats(st, &depth, &oldest, &dead);
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(f,
            "# HELP qgate_outbox_depth Accepted steps waiting to be "
            "forwarded.\n"
            "# TYPE qgate_outbox_depth gauge\n"
            "qgate_outbox_depth %" PRIu64 "\n"
            "# HELP qgate_outbox_oldest_age_seconds Age of the oldest step "
            "waiting.\n"
            "# TYPE qgate_outbox_oldest_age_seconds gauge\n"
            "qgate_outbox_oldest_age_seconds %.3f\n"
            "# HELP qgate_outbox_dead Steps that gave up (qgate outbox "
            "--dead).\n"
            "# TYPE qgate_outbox_dead gauge\n"
            "qgate_outbox_dead %" PRIu64 "\n",
            depth,
            oldest ? (double)((int64_t)now.tv_sec * 1000000 +
                              now.tv_nsec / 1000 - oldest) /
                         1e6
                   : 0.0,
            dead);
    /* Down only while steps wait: a HIS no one needs is not an issue. */
    down_since = atomic_load(&gate_metrics.his_down_since_us);
    fprintf(f,
            "# HELP qgate_his_unreachable_seconds Time since the HIS last "
            "took a step (a 2xx) while steps wait; 0 when it takes them.\n"
            "# TYPE qgate_his_unreachable_seconds gauge\n"
            "qgate_his_unreachable_seconds %.3f\n",
            down_since && depth ? (double)((int64_t)now.tv_sec * 1000000 +
                                           now.tv_nsec / 1000 - down_since) /
                                      1e6
                                : 0.0);
    alerts_render(f);
    if (qg_held_stats(st, &held, NULL) != 0)
        held = 0;
    sample(f, "qgate_held", "gauge", "Deliveries held for an earlier step now.",
           held);
    sample(f, "qgate_late_total", "counter",
           "Accepted steps placed before steps accepted earlier.",
           atomic_load(&gate_metrics.late));
    sample(f, "qgate_released_total", "counter",
           "Held deliveries accepted once an earlier step came.",
           atomic_load(&gate_metrics.released));
    head(f, "qgate_held_expired_total", "counter",
         "Held deliveries refused when the reorder window passed, by reason.");
    for (i = 0; i < QG_REASON_COUNT; i++)
        if (qg_reason_verdict((qg_reason)i) == QG_REJECTED)
            fprintf(f, "qgate_held_expired_total{code=\"%s\"} %lu\n",
                    qg_reason_name((qg_reason)i),
                    atomic_load(&gate_metrics.expired[i]));
    sample(f, "qgate_unsigned_rate_limited_total", "counter",
           "Unsigned deliveries answered 429 and not recorded: their source "
           "address was over --unsigned-rate.",
           atomic_load(&gate_metrics.rate_limited));
    head(f, "qgate_connections_shed_total", "counter",
         "Connections the gate closed while they waited for a whole request, "
         "by reason.");
    for (i = 0; i < SHED_KINDS; i++)
        fprintf(f, "qgate_connections_shed_total{reason=\"%s\"} %lu\n", shed[i],
                atomic_load(&gate_metrics.shed[i]));
    /* Every index the engine holds, and any that matched before a reload
     * dropped it: the count of the old one stops moving in a rotation. */
    head(f, "qgate_signature_matches_total", "counter",
         "Signed deliveries by the index of the secret (the line of the "
         "source's secret file) that matched, and source.");
    for (s = 0; s < GATE_SOURCES; s++)
        for (i = 0; gate_source_names[s] && i < QG_SECRETS_MAX; i++)
            if ((unsigned)i < atomic_load(&gate_metrics.secrets[s]) ||
                atomic_load(&gate_metrics.secret_matches[s][i]))
                fprintf(f,
                        "qgate_signature_matches_total{secret=\"%d\","
                        "source=\"%s\"} %lu\n",
                        i, gate_source_names[s],
                        atomic_load(&gate_metrics.secret_matches[s][i]));
    qg_rejections_dropped(st, &dropped);
    sample(f, "qgate_rejections_dropped_total", "counter",
           "Unauthenticated and malformed entries dropped from the rejection "
           "log to bound it (--max-unsigned-log), in the store's life.",
           dropped);
    sample(f, "qgate_forward_given_up_total", "counter",
           "Steps given up on after --max-age, each moved to the dead list "
           "with its ticket's later steps.",
           atomic_load(&gate_metrics.dead_lettered));
    fprintf(f, "# HELP qgate_forward_attempts_total Attempts to forward a "
               "step to the HIS, by result.\n"
               "# TYPE qgate_forward_attempts_total counter\n");
    for (i = 0; i < FWD_KINDS; i++)
        fprintf(f, "qgate_forward_attempts_total{result=\"%s\"} %lu\n", fwd[i],
                atomic_load(&gate_metrics.forwards[i]));
}
