/*
 * durations.c - how long patients wait, are served and visit, as `qgate
 * stats` counts them: one walk over the histories, shared with the gate's
 * GET /waits (the console's waiting times), so that both say the same.
 *
 * Durations:
 *   wait     entering the queue (queued, arrived or moved, from any other
 *            state) to the next serve;
 *   service  serve to the next complete;
 *   visit    first step to the last, for tickets in a final state.
 * Percentiles are nearest-rank.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "durations.h"

const char *const duration_kinds[NKINDS] = {"wait", "service", "visit"};

/* The upper bounds of the histogram's buckets, in ms; a last bucket holds
 * what is longer.  Minutes to hours: a clinic's waits. */
static const int64_t bucket_ms[] = {
    10000,   30000,   60000,   120000,  300000,  600000,   900000,   1200000,
    1800000, 2700000, 3600000, 5400000, 7200000, 10800000, 14400000, 21600000};

static int
add(samples *s, int64_t v)
{
    int64_t *grown;

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        if ((grown = realloc(s->v, s->cap * sizeof(*grown))) == NULL)
            return -1;
        s->v = grown;
    }
    s->v[s->n++] = v;
    return 0;
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void
swap64(int64_t *a, int64_t *b)
{
    int64_t t = *a;

    *a = *b;
    *b = t;
}

/*
 * Puts into v[k] the value a sort would put there, smaller ones before
 * it and larger ones after (Hoare's selection, the middle of three as
 * pivot).  Sorting a million durations to read four of them took a
 * quarter of `stats`; a selection is linear.  Past `depth` rounds,
 * which only crafted input reaches, it sorts what is left instead.
 */
static void
select_nth(int64_t *v, size_t n, size_t k, int depth)
{
    size_t lo = 0, hi = n - 1;

    while (hi > lo) {
        size_t i, j, mid = lo + (hi - lo) / 2;
        int64_t pivot;

        if (depth-- <= 0) {
            qsort(v + lo, hi - lo + 1, sizeof(*v), cmp64);
            return;
        }
        if (v[mid] < v[lo])
            swap64(&v[mid], &v[lo]);
        if (v[hi] < v[lo])
            swap64(&v[hi], &v[lo]);
        if (v[hi] < v[mid])
            swap64(&v[hi], &v[mid]);
        pivot = v[mid];
        i = lo;
        j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                swap64(&v[i], &v[j]);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        /* [lo, j] <= pivot <= [i, hi], and (j, i) equal to the pivot */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Nearest-rank rank (0-based) of percentile p among n samples. */
static size_t
rank_of(size_t n, int p)
{
    size_t rank = (n * (size_t)p + 99) / 100;

    return rank ? rank - 1 : 0;
}

/*
 * Leaves s's max last and its p50, p90, p99 at their ranks, as a sort
 * would, in linear time: the largest rank first, then each smaller one
 * within the part before it.
 */
static void
order_samples(samples *s)
{
    static const int ps[] = {100, 99, 90, 50};
    size_t bound = s->n, r;
    int depth = 64, i;

    for (i = 0; i < 4 && bound > 0; i++) {
        r = i == 0 ? s->n - 1 : rank_of(s->n, ps[i]);
        if (r >= bound)
            continue; /* already in place: equal to a larger rank's */
        select_nth(s->v, bound, r, depth);
        bound = r;
    }
}

int64_t
durations_pct(const samples *s, int p)
{
    return s->v[rank_of(s->n, p)];
}

int
durations_end_ticket(durations *st, const walk *w, int64_t service)
{
    if (!w->counted || (service && !w->touches))
        return 0;
    st->tickets++;
    st->states[w->state]++;
    if (qg_state_is_final(w->state) &&
        add(&st->d[VISIT], w->last_ms - w->first_ms) < 0)
        return -1;
    return 0;
}

int
durations_step(durations *st, walk *w, const qg_record *r, int64_t since,
               int64_t until, int64_t service)
{
    int mine = !service || r->service_id == service;

    if (r->seq == 1) {
        memset(w, 0, sizeof(*w));
        w->ticket = r->ticket;
        w->counted = r->event_ms >= since && r->event_ms < until;
        w->first_ms = r->event_ms;
        w->wait_start = w->serve_start = -1;
    }
    w->last_ms = r->event_ms;
    w->state = r->to;
    if (!w->counted)
        return 0;
    w->touches |= mine;
    if (mine)
        st->events[r->event]++;
    if (qg_state_is_waiting(r->to) && !qg_state_is_waiting(r->from))
        w->wait_start = r->event_ms;
    if (r->event == QG_EV_SERVE) {
        if (w->wait_start >= 0 && mine &&
            add(&st->d[WAIT], r->event_ms - w->wait_start) < 0)
            return -1;
        w->wait_start = -1;
        w->serve_start = r->event_ms;
    }
    if (r->event == QG_EV_COMPLETE) {
        if (w->serve_start >= 0 && mine &&
            add(&st->d[SERVICE], r->event_ms - w->serve_start) < 0)
            return -1;
        w->serve_start = -1;
    }
    return 0;
}

void
durations_order(durations *st)
{
    int i;

    for (i = 0; i < NKINDS; i++)
        if (st->d[i].n)
            order_samples(&st->d[i]);
}

void
durations_render(FILE *f, const durations *st, int buckets)
{
    size_t j, b, nb = sizeof(bucket_ms) / sizeof(bucket_ms[0]);
    int i;

    fputc('{', f);
    for (i = 0; i < NKINDS; i++) {
        const samples *s = &st->d[i];

        fprintf(f, "%s\"%s\":{\"count\":%zu", i ? "," : "", duration_kinds[i],
                s->n);
        if (s->n)
            fprintf(f,
                    ",\"p50_ms\":%" PRId64 ",\"p90_ms\":%" PRId64
                    ",\"p99_ms\":%" PRId64 ",\"max_ms\":%" PRId64,
                    durations_pct(s, 50), durations_pct(s, 90),
                    durations_pct(s, 99), s->v[s->n - 1]);
        if (buckets) {
            /* Counted over the samples as they lie: the order of
             * durations_order() is partial, and a count needs none. */
            fputs(",\"buckets\":[", f);
            for (b = 0; b <= nb; b++) {
                size_t n = 0;

                for (j = 0; j < s->n; j++)
                    if ((b == nb || s->v[j] <= bucket_ms[b]) &&
                        (b == 0 || s->v[j] > bucket_ms[b - 1]))
                        n++;
                if (b < nb)
                    fprintf(f, "%s{\"le_ms\":%" PRId64 ",\"count\":%zu}",
                            b ? "," : "", bucket_ms[b], n);
                else
                    fprintf(f, ",{\"le_ms\":null,\"count\":%zu}", n);
            }
            fputc(']', f);
        }
        fputc('}', f);
    }
    fputc('}', f);
}

void
durations_free(durations *st)
{
    int i;

    if (st == NULL)
        return;
    for (i = 0; i < NKINDS; i++)
        free(st->d[i].v);
    memset(st, 0, sizeof(*st));
}
