/*
 * durations.h - the walk of `qgate stats` over the histories: tickets by
 * state, steps by event, and the wait, service and visit durations with
 * their percentiles.  The gate's GET /waits walks with it too, so that
 * the console's waiting times are the CLI's numbers.
 */
#ifndef QG_DURATIONS_H
#define QG_DURATIONS_H

#include <stdint.h>
#include <stdio.h>

#include "qgate.h"

/*
 * The durations of one kind, as a multiset: each distinct value once,
 * with how many times it was seen.  Chup dates its steps to the second,
 * so a clinic's durations take a few thousand distinct values however
 * many tickets there are: the memory a walk keeps is bounded by the
 * spread of the durations, not by the tickets.  While a walk adds, the
 * values are an open-addressing table; durations_order() sorts them and
 * turns the counts into running totals, which the percentiles read.
 */
typedef struct sample {
    int64_t v;
    uint64_t n; /* times seen, or after durations_order() seen up to v */
} sample;

typedef struct samples {
    sample *slot;
    size_t n;        /* samples added, each repeat counted */
    size_t distinct; /* slots in use */
    size_t cap;      /* slots: 0 or a power of two */
    int ordered;
} samples;

enum { WAIT, SERVICE, VISIT, NKINDS };
/* "wait", "service", "visit" */
extern const char *const duration_kinds[NKINDS];

/* What a walk gathers; zeroed to start, durations_free() at the end. */
typedef struct durations {
    unsigned long tickets;
    unsigned long states[QG_STATE_COUNT];
    unsigned long events[QG_EVENT_COUNT];
    samples d[NKINDS];
} durations;

/* Per ticket, while its records go by. */
typedef struct ticket_walk {
    uint64_t ticket;
    int counted; /* in the time window */
    int64_t first_ms, last_ms;
    int64_t wait_start; /* -1 when not waiting */
    int64_t serve_start;
    int touches; /* a record with the service id */
    qg_state state;
} ticket_walk;

/* One record of a ticket's history, in event time from seq 1.  A ticket
 * counts when its first step's timestamp is in [since, until); with
 * service nonzero, only that service's steps give events and durations.
 * Returns 0, or -1 out of memory. */
int durations_step(durations *st, ticket_walk *w, const qg_record *r,
                   int64_t since, int64_t until, int64_t service);
/* After a ticket's last record: counts it (with service, if it touched
 * it) and its visit.  Returns 0, or -1 out of memory. */
int durations_end_ticket(durations *st, const ticket_walk *w, int64_t service);
/* Adds one sample of v ms to s.  Returns 0, or -1 out of memory. */
int durations_add(samples *s, int64_t v);
/* Puts each duration's samples in the order durations_pct() reads; the
 * walk adds none after it. */
void durations_order(durations *st);
/* Nearest-rank percentile p (1 to 100) of samples put in order by
 * durations_order(); s->n must be nonzero. */
int64_t durations_pct(const samples *s, int p);
/* How many of the samples put in order are at most v. */
size_t durations_upto(const samples *s, int64_t v);
/* {"wait":{"count":N,"p50_ms":...,"max_ms":...},"service":...,"visit":...}
 * (the times only when N > 0), each with "buckets":[{"le_ms":B,"count":n},
 * ...,{"le_ms":null,"count":n}] when buckets is nonzero.  No newline. */
void durations_render(FILE *f, const durations *st, int buckets);
void durations_free(durations *st);

#endif /* QG_DURATIONS_H */
