/*
 * dl.c - a library loaded on first use (dl.h).
 */
#include <dlfcn.h>

#include "dl.h"

const char *
qg__dl_load(const char *file, const char *const *names, size_t n, void **syms)
{
    void *lib;
    size_t i;

    if ((lib = dlopen(file, RTLD_NOW | RTLD_LOCAL)) == NULL)
        return dlerror();
    for (i = 0; i < n; i++)
        if ((syms[i] = dlsym(lib, names[i])) == NULL)
            return names[i];
    return NULL;
}
