/*
 * jsonc.c - json-c, loaded the first time qgate parses or writes JSON
 * (jsonc.h says why).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG__JSONC_LINKED /* this file names the functions themselves */
#include "dl.h"
#include "jsonc.h"

const qg__libjsonc *_Atomic qg__jsonc_table;

static qg__libjsonc jsonc;
static pthread_once_t jsonc_once = PTHREAD_ONCE_INIT;
static const char *jsonc_missing; /* what failed; NULL: loaded */

static void
jsonc_open(void)
{
    static const char *const names[] = {QG__JSONC_FUNCTIONS(QG__DL_NAME)};
    void *syms[sizeof(names) / sizeof(*names)];

    _Static_assert(sizeof(jsonc) == sizeof(syms), "a pointer per name");
    jsonc_missing = qg__dl_load(QG__LIBJSONC_SONAME, names,
                                sizeof(names) / sizeof(*names), syms);
    if (jsonc_missing)
        return;
    /* memcpy(): see pq.c. */
    memcpy(&jsonc, syms, sizeof(jsonc));
    atomic_store_explicit(&qg__jsonc_table, &jsonc, memory_order_release);
}

const qg__libjsonc *
qg__jsonc_load(void)
{
    pthread_once(&jsonc_once, jsonc_open);
    if (jsonc_missing) {
        fprintf(stderr, "qgate: cannot load %s (json-c): %s\n",
                QG__LIBJSONC_SONAME, jsonc_missing);
        abort();
    }
    return &jsonc;
}
