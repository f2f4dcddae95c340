/*
 * ossl.c - libcrypto, loaded the first time qgate hashes or signs
 * (ossl.h says why).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG__OSSL_LINKED /* this file names the functions themselves */
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
    void *lib, *sym;

    /* Never closed: what it allocated may be freed at any time. */
    if ((lib = dlopen(QG__LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        ossl_missing = dlerror();
        return;
    }
    /* memcpy(): see pq.c. */
#define QG__OSSL_RESOLVE(f)                                                    \
    if ((sym = dlsym(lib, #f)) == NULL) {                                      \
        ossl_missing = #f;                                                     \
        return;                                                                \
    }                                                                          \
    memcpy(&ossl.f, &sym, sizeof(sym));
    QG__OSSL_FUNCTIONS(QG__OSSL_RESOLVE)
#undef QG__OSSL_RESOLVE
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
