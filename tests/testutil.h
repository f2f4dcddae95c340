/*
 * testutil.h - helpers the Check suites share.
 */
#ifndef QG_TESTUTIL_H
#define QG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include <check.h>

#include "qgate.h"

/* Reads fixtures/<rel> into a malloc'd buffer (aborts the test on error). */
char *tu_fixture(const char *rel, size_t *len);

/* A fresh store in a new temporary directory; tu_store_dir() names it.
 * In the PostgreSQL runs (tests/with_pg.sh sets QGATE_TEST_PG_HOST), a
 * fresh database on the test server instead, tu_store_dir() its URI, and
 * tu_store_remove() drops it; tu_store_is_pg() says which. */
qg_store *tu_store_new(void);
qg_store *tu_store_reopen(qg_store *st, unsigned flags);
const char *tu_store_dir(void);
int tu_store_is_pg(void);
void tu_store_remove(void);

/* Removes dir and everything in it (symbolic links are removed, not
 * followed); a missing dir is no error. */
void tu_remove_dir(const char *dir);

/* An engine with fixtures/secret as its secret. */
qg_engine *tu_engine(void);

/* Applies fixtures/<rel>; fails the test if the call itself fails. */
qg_result tu_apply(qg_engine *eng, qg_store *st, const char *rel);

/* One step of a fixture visit: the file, and what the engine must make
 * of it (visits/EXPECT). */
typedef struct tu_step {
    const char *file;
    qg_event event;
    qg_state from, to;
} tu_step;

#define TU_WALK_IN "visits/walk-in/"

/* The walk-in visit (live queue 30001), in order: 9 steps from joining
 * the queue to the end of the visit. */
extern const tu_step tu_walk_in[9];

/* The entries of st's rejection log (fails the test if it cannot be
 * read). */
int tu_count_rejections(qg_store *st);
/* Asserts that qg_rejections_open_ticket() gives, for every ticket the
 * rejection log names and for one it does not, exactly that ticket's
 * entries of the log in id order; returns how many tickets it checked. */
size_t tu_check_refusals_by_ticket(qg_store *st);
/* Asserts that every step's summary (QG_SUMMARY), over every ticket and
 * over each one, in both orders, holds its record's fields and nothing
 * else, in the same order; returns the steps of the store. */
size_t tu_check_summaries(qg_store *st);

/* What tu_compare_stores() compares, in this order. */
#define TU_CMP_TICKETS                                                         \
    0x01u                     /* the tickets; in order, also verify's finding  \
                                 and each one's steps in both orders */
#define TU_CMP_STEPS    0x02u /* every step (ticket 0), in both orders */
#define TU_CMP_REFUSALS 0x04u /* the rejection log */
#define TU_CMP_DROPPED  0x08u /* qg_rejections_dropped() */
#define TU_CMP_HELD     0x10u /* the held deliveries (qg_held_stats() too) */
#define TU_CMP_OUTBOX   0x20u /* the outbox, queued and dead, and its stats */
#define TU_CMP_CHAIN    0x40u /* the chain: intact on each, as long */
#define TU_CMP_ALL      0x7fu
/* Stores that received the same deliveries but whose tickets may be
 * numbered otherwise (several gates): tickets (with their steps' events
 * and states) and refusals compared as sets, on what Chup decides only. */
#define TU_CMP_ALIKE 0x100u

/* What a comparison saw, in the first store. */
typedef struct tu_compared {
    uint64_t tickets, steps, refusals, held, outbox, dead, chain;
    uint64_t late, released; /* steps placed late, released from holding */
} tu_compared;

/* Fails the test unless stores a and b (named a_name and b_name in the
 * message) hold the same `what`: the message names the list, the item
 * (its key fields) and the field that differ, with both values.  Each
 * list is read whole from one store, then from the other.  counts, if
 * not NULL, gets what was compared. */
void tu_compare_stores(qg_store *a, const char *a_name, qg_store *b,
                       const char *b_name, unsigned what, tu_compared *counts);

/* text parsed as JSON, to be put by the caller; fails the test, showing
 * the text, when it is not JSON. */
struct json_object *tu_json(const char *text);
/* o's member key, borrowed from o; fails the test, showing o, when o has
 * none. */
struct json_object *tu_get(struct json_object *o, const char *key);
/* The same member's string value (json-c's text of any other type). */
const char *tu_gets(struct json_object *o, const char *key);

/* A throwaway PostgreSQL server (tests/pg_server.sh, docs/postgresql.md):
 * its cluster and its socket in a fresh temporary directory, no TCP port,
 * the database qgate, the user qgate with no password.  One at a time per
 * process.  A process that ends without tu_pg_stop() leaves no server
 * behind: the script's watchdog stops it within a second or two.
 *
 * tu_pg_available() is 1 when the server binaries are there, and also when
 * the environment variable CI is set (CI must install them; the cases then
 * run and fail, naming what is missing); otherwise it says on stderr why
 * the PostgreSQL cases are skipped and is 0. */
int tu_pg_available(void);
/* Starts a server; its URI (postgresql:///qgate?host=DIR&user=qgate) in
 * uri, of len bytes.  0, or -1 when it did not start (the script has said
 * why on stderr). */
int tu_pg_start(char *uri, size_t len);
/* A fast shutdown and a start again, the data kept: 0 or -1. */
int tu_pg_restart(void);
/* An immediate shutdown, not waited for: every connection drops, as in an
 * outage; tu_pg_restart() brings the server back.  0 or -1. */
int tu_pg_kill(void);
/* Stops the server and removes its directory; nothing if none runs. */
void tu_pg_stop(void);
/* The server's directory (its socket is there), "" when none. */
const char *tu_pg_dir(void);

/* Runs a suite; returns the process exit code. */
int tu_run(Suite *s);

#endif
