/*
 * render.h - the JSON that the CLI prints and the gate answers: one
 * rendering of each object, so both say the same thing.
 */
#ifndef QG_RENDER_H
#define QG_RENDER_H

#include <stdio.h>

#include "qgate.h"

/* A JSON string literal of s[0..len). */
void render_string(FILE *f, const char *s, size_t len);
/* ,"key":id  or  ,"key":null when id is 0 (no leading comma if first). */
void render_id(FILE *f, const char *key, int64_t id, int first);
/* "allowed":["alert",...] for a mask of (1u << event). */
void render_events(FILE *f, const char *key, unsigned mask);

/* The verdict object of `apply --json` and of the gate's answers; input
 * is added when not NULL.  No newline. */
void render_verdict(FILE *f, const qg_result *res, const char *input);
/* The ticket object of `show --json` and GET /tickets/{id}.  No newline. */
void render_ticket(FILE *f, const qg_ticket *t);
/* One history record object; waited_ms < 0 omits the time in the state
 * before.  No newline. */
void render_record(FILE *f, const qg_record *r, int64_t waited_ms);
/* The history array of `history --json` and GET /tickets/{id}/history;
 * with bodies, of GET /tickets/{id}/steps: each element is then
 * {"step": the record, "body": the body as received, a JSON string, null
 * when purged}.  Returns 0 or a QG_E* code (the array is then
 * incomplete). */
int render_history(FILE *f, qg_store *st, uint64_t ticket, int bodies);
/* The machine as one JSON object, for `machine --json` and GET /machine:
 * per state, whether it is final and where each legal event leads, in
 * the machine's own order.  With the newline. */
void render_machine(FILE *f);

/* A rejection log entry, as `rejected --json` lists it.  No newline. */
void render_rejection(FILE *f, const qg_rejection *r);
/* An outbox entry (dead: from the dead list), as `outbox --json` lists
 * it.  No newline. */
void render_outbox_entry(FILE *f, const qg_outbox_entry *e, int dead);
/* A held delivery, as `held --json` lists it, now_us the time of the
 * listing and expires_us when the reorder window lets it go.  No
 * newline. */
void render_held(FILE *f, const qg_held *h, int64_t now_us, int64_t expires_us);
/* One line of `export`: an NDJSON object, or with csv a CSV row in the
 * order of its header line, with its newline, written to buf (at least
 * RENDER_EXPORT_MAX bytes; not NUL-terminated); hash is the step's chain
 * hash in hex, or "" (null) where it has none.  Returns its length. */
#define RENDER_EXPORT_MAX 1024
size_t render_export_line(char *buf, const qg_ticket *t, const qg_record *r,
                          int csv, const char *hash);

#endif /* QG_RENDER_H */
