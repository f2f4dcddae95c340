/*
 * damage.c - what the qgate command does about a damaged store: one
 * message that names the store and says what to do, and a last-resort
 * guard for damage that LMDB trips on after the checks passed.
 *
 * Every open checks the meta and root pages (qg_store_open), and verify,
 * the writers and the gate every page (qg_store_check) before they read
 * any; see cli_open_store_with.  What those checks cannot see coming
 * (damage on the path of a read-only command, a disk that fails while a
 * command runs) ends in LMDB as a SIGBUS or SIGSEGV in the map, or a
 * failed assertion and abort().  The guard turns those into the same
 * message and exit status 2.  It never resumes: after a fault inside
 * LMDB its cursor, transaction and, in a writer, its dirty pages and
 * write lock are in an unknown state, and nothing of it may be used
 * again.  Exiting leaves the store as a crash does, at its last commit,
 * which LMDB is built to survive.  A siglongjmp back to the command was
 * the rejected alternative for that reason.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damage.h"
#include "qgate.h"

/* The store the command has open; read by the signal handler. */
static const char *volatile guarded;

static const char advice[] =
    "qgate: restore the store from a backup copy: stop every qgate "
    "using it and put the copy's data.mdb in its place.  Take copies "
    "while the gate runs with `mdb_copy STORE COPY-DIR` (Debian package "
    "lmdb-utils), which copies one consistent snapshot; never copy "
    "data.mdb with cp while a writer runs.\n";

static void
put(const char *s)
{
    size_t len = strlen(s);
    ssize_t n;

    while (len > 0 && (n = write(STDERR_FILENO, s, len)) > 0) {
        s += n;
        len -= (size_t)n;
    }
}

/* Async-signal-safe: only write() and _exit(). */
static void
fault(const char *what, const char *extra)
{
    put("qgate: ");
    put(guarded ? guarded : "the store");
    put(": the store is damaged: ");
    put(what);
    put(extra);
    put("\n");
    put(advice);
    put("qgate: if `qgate verify` finds the store sound, this is a bug in "
        "qgate: please report it.\n");
    _exit(EXIT_FAILED);
}

static void
on_signal(int sig)
{
    if (guarded == NULL) {
        /* no store open: a fault of qgate's own, to crash as it is */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    fault(sig == SIGBUS ? "SIGBUS" : "SIGSEGV", " while reading it");
}

static void
on_assert(const char *msg)
{
    fault("LMDB's check failed: ", msg);
}

void
cli_guard_install(void)
{
    static char altstack[64 * 1024];
    struct sigaction sa;
    stack_t ss;

    /* SIGSEGV may come from a stack overflow: handle it on a stack of its
     * own. */
    ss.ss_sp = altstack;
    ss.ss_size = sizeof(altstack);
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    qg_store_on_damage(on_assert);
}

void
cli_guard_store(const char *db)
{
    guarded = db;
}

const char *
cli_guarded_store(void)
{
    return guarded;
}

int
cli_store_damaged(const char *db, const char *detail)
{
    fprintf(stderr, "qgate: %s: the store is damaged: %s\n%s", db, detail,
            advice);
    return EXIT_FAILED;
}
