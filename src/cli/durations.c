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

/* The table's slot for v: multiplicative hashing (Knuth's golden ratio),
 * linear probing; cap is a power of two with a free slot. */
static size_t
sample_slot(const sample *slot, size_t cap, int64_t v)
{
    size_t i = (size_t)(((uint64_t)v * 0x9E3779B97F4A7C15u) >> 32) & (cap - 1);

    while (slot[i].n && slot[i].v != v)
        i = (i + 1) & (cap - 1);
    return i;
}

int
durations_add(samples *s, int64_t v)
{
    sample *grown;
    size_t i, j;

    /* Kept under three quarters full, so that probes stay short. */
    if (4 * (s->distinct + 1) > 3 * s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;

        if ((grown = calloc(cap, sizeof(*grown))) == NULL)
            return -1;
        for (i = 0; i < s->cap; i++)
            if (s->slot[i].n) {
                j = sample_slot(grown, cap, s->slot[i].v);
                grown[j] = s->slot[i];
            }
        free(s->slot);
        s->slot = grown;
        s->cap = cap;
    }
    i = sample_slot(s->slot, s->cap, v);
    if (s->slot[i].n++ == 0) {
        s->slot[i].v = v;
        s->distinct++;
    }
    s->n++;
    return 0;
}

static int
by_value(const void *a, const void *b)
{
    int64_t x = ((const sample *)a)->v, y = ((const sample *)b)->v;

    return (x > y) - (x < y);
}

/* The values in use at the front, in order, each with the count of the
 * samples up to it. */
static void
order_samples(samples *s)
{
    size_t i, used = 0;
    uint64_t total = 0;

    if (s->ordered)
        return;
    for (i = 0; i < s->cap; i++)
        if (s->slot[i].n)
            s->slot[used++] = s->slot[i];
    if (used > 1)
        qsort(s->slot, used, sizeof(*s->slot), by_value);
    for (i = 0; i < used; i++)
        s->slot[i].n = total += s->slot[i].n;
    s->ordered = 1;
}

/* The first value in order with more than `below` samples up to it. */
static size_t
first_over(const samples *s, uint64_t below)
{
    size_t lo = 0, hi = s->distinct;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->slot[mid].n > below)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Nearest-rank: the smallest value with at least p% of the samples up to
 * it, that is the sample of rank ceil(n p / 100) (1-based) in a sort. */
int64_t
durations_pct(const samples *s, int p)
{
    uint64_t rank = ((uint64_t)s->n * (uint64_t)p + 99) / 100;

    return s->slot[first_over(s, rank ? rank - 1 : 0)].v;
}

size_t
durations_upto(const samples *s, int64_t v)
{
    size_t lo = 0, hi = s->distinct;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->slot[mid].v <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? (size_t)s->slot[lo - 1].n : 0;
}

int
durations_end_ticket(durations *st, const ticket_walk *w, int64_t service)
{
    if (!w->counted || (service && !w->touches))
        return 0;
    st->tickets++;
    st->states[w->state]++;
    if (qg_state_is_final(w->state) &&
        durations_add(&st->d[VISIT], w->last_ms - w->first_ms) < 0)
        return -1;
    return 0;
}

int
durations_step(durations *st, ticket_walk *w, const qg_record *r, int64_t since,
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
            durations_add(&st->d[WAIT], r->event_ms - w->wait_start) < 0)
            return -1;
        w->wait_start = -1;
        w->serve_start = r->event_ms;
    }
    if (r->event == QG_EV_COMPLETE) {
        if (w->serve_start >= 0 && mine &&
            durations_add(&st->d[SERVICE], r->event_ms - w->serve_start) < 0)
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
        order_samples(&st->d[i]);
}

void
durations_render(FILE *f, const durations *st, int buckets)
{
    size_t b, nb = sizeof(bucket_ms) / sizeof(bucket_ms[0]), below;
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
                    durations_pct(s, 99), durations_pct(s, 100));
        if (buckets) {
            fputs(",\"buckets\":[", f);
            for (b = 0, below = 0; b < nb; b++) {
                size_t upto = durations_upto(s, bucket_ms[b]);

                fprintf(f, "%s{\"le_ms\":%" PRId64 ",\"count\":%zu}",
                        b ? "," : "", bucket_ms[b], upto - below);
                below = upto;
            }
            fprintf(f, ",{\"le_ms\":null,\"count\":%zu}]", s->n - below);
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
        free(st->d[i].slot);
    memset(st, 0, sizeof(*st));
}
