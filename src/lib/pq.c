/*
 * pq.c - libpq, loaded the first time a PostgreSQL store is opened
 * (pq.h says why).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QG__PQ_LINKED /* this file names the functions themselves */
#include "pq.h"
#include "qgate_int.h"

qg__libpq qg__pq;

static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static int pq_rc;

static void
pq_open(void)
{
    const char *file = getenv("QGATE_LIBPQ");
    void *lib, *sym;

    if (file == NULL || *file == '\0')
        file = QG__LIBPQ_SONAME;
    /* Never closed: connections and their results live as long as the
     * process may. */
    if ((lib = dlopen(file, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        pq_rc = QG_ENOLIB;
        return;
    }
    /* dlsym() gives an object pointer; POSIX guarantees that it holds a
     * function's address, and memcpy() says so without a cast ISO C
     * forbids. */
#define QG__PQ_RESOLVE(f)                                                      \
    if ((sym = dlsym(lib, #f)) == NULL) {                                      \
        memset(&qg__pq, 0, sizeof(qg__pq));                                    \
        pq_rc = QG_ENOLIB;                                                     \
        return;                                                                \
    }                                                                          \
    memcpy(&qg__pq.f, &sym, sizeof(sym));
    QG__PQ_FUNCTIONS(QG__PQ_RESOLVE)
#undef QG__PQ_RESOLVE
}

int
qg__pq_load(void)
{
    pthread_once(&pq_once, pq_open);
    return pq_rc;
}
