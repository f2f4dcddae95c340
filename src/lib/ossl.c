/*
 * ossl.c - libcrypto, loaded the first time qgate hashes or signs
 * (ossl.h says why).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG__OSSL_LINKED /* this file names the functions themselves */
#include "dl.h"
#include "ossl.h"

/* libcrypto's SONAME, from the version CMake found (3 for OpenSSL 3). */
#ifndef QG__LIBCRYPTO_SONAME
#define QG__LIBCRYPTO_SONAME "libcrypto.so.3"
#endif

static qg__libcrypto ossl;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static const char *ossl_missing; /* what failed; NULL: loaded */

static void
ossl_open(void)
{
    static const char *const names[] = {QG__OSSL_FUNCTIONS(QG__DL_NAME)};
    void *syms[sizeof(names) / sizeof(*names)];

    _Static_assert(sizeof(ossl) == sizeof(syms), "a pointer per name");
    ossl_missing = qg__dl_load(QG__LIBCRYPTO_SONAME, names,
                               sizeof(names) / sizeof(*names), syms);
    /* memcpy(): see pq.c. */
    if (ossl_missing == NULL)
        memcpy(&ossl, syms, sizeof(ossl));
}

const qg__libcrypto *
qg__ossl(void)
{
    pthread_once(&ossl_once, ossl_open);
    if (ossl_missing) {
        fprintf(stderr, "qgate: cannot load %s (OpenSSL's libcrypto): %s\n",
                QG__LIBCRYPTO_SONAME, ossl_missing);
        abort();
    }
    return &ossl;
}
