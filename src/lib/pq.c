/*
 * pq.c - libpq, loaded the first time a PostgreSQL store is opened
 * (pq.h says why).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QG__PQ_LINKED /* this file names the functions themselves */
#include "dl.h"
#include "pq.h"
#include "qgate_int.h"

qg__libpq qg__pq;

static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static int pq_rc;

static void
pq_open(void)
{
    static const char *const names[] = {QG__PQ_FUNCTIONS(QG__DL_NAME)};
    void *syms[sizeof(names) / sizeof(*names)];
    const char *file = getenv("QGATE_LIBPQ");

    /* The table is one function pointer a name, in the same order. */
    _Static_assert(sizeof(qg__pq) == sizeof(syms), "a pointer per name");
    if (file == NULL || *file == '\0')
        file = QG__LIBPQ_SONAME;
    if (qg__dl_load(file, names, sizeof(names) / sizeof(*names), syms)) {
        pq_rc = QG_ENOLIB;
        return;
    }
    /* dlsym() gives object pointers; POSIX guarantees that they hold a
     * function's address, and memcpy() says so without a cast ISO C
     * forbids. */
    memcpy(&qg__pq, syms, sizeof(qg__pq));
}

int
qg__pq_load(void)
{
    pthread_once(&pq_once, pq_open);
    return pq_rc;
}
