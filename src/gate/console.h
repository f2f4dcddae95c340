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

#endif /* QG_CONSOLE_H */
