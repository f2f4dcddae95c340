/*
 * dl.h - a library loaded on first use: the dlopen() and dlsym() that
 * pq.c, ossl.c and jsonc.c share.  Each keeps its own typed table, its
 * list of functions, its file and what it does when the load fails.
 * Private.
 */
#ifndef QG_DL_H
#define QG_DL_H

#include <stddef.h>

/* A function's name, for an array of them built from an X-macro list:
 * {QG__PQ_FUNCTIONS(QG__DL_NAME)}. */
#define QG__DL_NAME(f) #f,

/*
 * Opens file and resolves each of the n names into syms, in order.  The
 * library is never closed: what it allocated may be freed at any time,
 * and the functions are called for as long as the process runs.
 * Returns NULL when every name was found, else what failed: dlerror()'s
 * text when the file cannot be opened, or the first missing name.  syms
 * is then partly filled and must not be used.
 */
const char *qg__dl_load(const char *file, const char *const *names, size_t n,
                        void **syms);

#endif /* QG_DL_H */
