/*
 * console.h - the web console (docs/console.md): its files, compiled into
 * qgate-serve by cmake/embed.cmake, the headers every console answer
 * carries, and the JSON the console reads beside the read API.
 *
 * answers.c routes and authorises; this file renders.  The console's
 * files hold no data, only code: they are served without the token, and
 * every JSON answer they read needs it (answers.c, authorised()).
 */
#ifndef QG_CONSOLE_H
#define QG_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct gate;
struct MHD_Response;
struct qg_store;
struct cli_ticket_filter;
typedef struct cli_ticket_filter cli_ticket_filter;

/* One file of src/gate/console, by its name under /console/. */
typedef struct console_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
    const char *type; /* its Content-Type */
} console_asset;

/* Every file, ended by one whose name is NULL (the generated
 * console_assets.c). */
extern const console_asset console_assets[];

/* The file at rest, the URL after "/console/" ("" is index.html); NULL
 * when there is none. */
const console_asset *console_find(const char *rest);

/* Content-Security-Policy and the other headers of every console answer. */
void console_headers(struct MHD_Response *resp);

/* GET /overview: tickets by state, refusals by reason, held deliveries,
 * the outbox and the dead list, whether the HIS answers.  Returns 0 or a
 * negative QG_E* code (f then holds a partial answer, to be dropped). */
int console_overview(FILE *f, struct gate *g);

/* GET /rejections: {"matched":N,"rejections":[...],"shown":S}, the newest
 * `limit` of the N entries received in [since_ms, until_ms) with that
 * reason (-1: any), newest first, each as `rejected --json` lists it with
 * its source and its body; S of them, fewer than `limit` when their
 * bodies passed 16 MiB.  Returns 0 or a QG_E* code, as
 * console_overview(). */
int console_rejections(FILE *f, struct gate *g, int reason, int64_t since_ms,
                       int64_t until_ms, size_t limit);
/* GET /tickets?state=&service=&date=&limit=: {"tickets":[...],"more":M},
 * the newest `limit` tickets that pass filter (cli_ticket_matches(), as
 * `qgate list` filters them), newest first, each as `list --json` prints
 * it; M true when more pass.  Returns 0 or a QG_E* code, as
 * console_overview(). */
int console_search(FILE *f, struct gate *g, const cli_ticket_filter *filter,
                   size_t limit);
/* GET /held: {"held":[...]}, as `held --json` lists them, each with its
 * source and body. */
int console_held(FILE *f, struct gate *g);
/* GET /tickets/{id}/deliveries: {"refused":[...],"held":[...]}, the
 * refusals and held deliveries naming that ticket, in arrival order, as
 * /rejections and /held list them, each with "event_ms" (when it
 * happened: Chup's payload.timestamp, or when it was received) and
 * "event_time" saying which ("event" or "received").  Returns 0 or a
 * QG_E* code, as console_overview(). */
int console_deliveries(FILE *f, struct gate *g, uint64_t ticket);
/* GET /outbox/dead: {"dead":[...]}, as `outbox --dead --json` lists
 * them. */
int console_dead(FILE *f, struct gate *g);

/* GET /waits: {"services":[{"service_id":null,"tickets":N,"durations":
 * {...}}, {"service_id":ID,...}, ...]}: the wait, service and visit
 * durations of every ticket (service_id null, `qgate stats --json`'s
 * durations) and of each service (`qgate stats --service ID --json`'s),
 * with histogram buckets (durations_render()). */
int console_waits(FILE *f, struct gate *g);

/* POST /rejections/{id}/replay and POST /outbox/dead/{id}/retry, once
 * answers.c let them through: write the answer's JSON into f and return
 * its HTTP status; or set *rc to the store's error and return 0. */
int console_replay(FILE *f, struct gate *g, uint64_t id, int *rc);
int console_retry(FILE *f, struct gate *g, uint64_t id, int *rc);

#endif /* QG_CONSOLE_H */
