/*
 * jsonc.c - json-c, loaded the first time qgate parses or writes JSON
 * (jsonc.h says why).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG__JSONC_LINKED /* this file names the functions themselves */
#include "jsonc.h"

const qg__libjsonc *_Atomic qg__jsonc_table;

static qg__libjsonc jsonc;
static pthread_once_t jsonc_once = PTHREAD_ONCE_INIT;
static const char *jsonc_missing; /* what failed; NULL: loaded */

static void
jsonc_open(void)
{
    void *lib, *sym;

    /* Never closed: its objects may be freed at any time. */
    if ((lib = dlopen(QG__LIBJSONC_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        jsonc_missing = dlerror();
        return;
    }
    /* memcpy(): see pq.c. */
#define QG__JSONC_RESOLVE(f)                                                   \
    if ((sym = dlsym(lib, #f)) == NULL) {                                      \
        jsonc_missing = #f;                                                    \
        return;                                                                \
    }                                                                          \
    memcpy(&jsonc.f, &sym, sizeof(sym));
    QG__JSONC_FUNCTIONS(QG__JSONC_RESOLVE)
#undef QG__JSONC_RESOLVE
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
