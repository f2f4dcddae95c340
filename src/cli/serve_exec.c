/*
 * serve_exec.c - `qgate serve` in the qgate program: it executes the gate
 * program, qgate-serve, in its place (same process, same arguments).
 *
 * The audit commands are called by scripts thousands of times; the gate
 * needs libmicrohttpd and libcurl, which with their own dependencies
 * were most of the libraries every command loaded and most of its start
 * time.  So the gate is a program of its own, loaded only to serve, and
 * users keep one command.  exec keeps the process: systemd's MAINPID,
 * SIGHUP and SIGTERM reach the gate itself.
 *
 * qgate-serve is looked for where the installation puts it, relative to
 * this program (QG_SERVE_DIR, e.g. ../libexec/qgate), then beside it, as
 * in the build folder.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef QG_SERVE_DIR
#define QG_SERVE_DIR "../libexec/qgate"
#endif
#define SERVE_PROGRAM "qgate-serve"

/* This program's folder, from /proc; 0, or -1 with errno. */
static int
own_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    char *slash;

    if (n < 0)
        return -1;
    dir[n] = '\0';
    if ((slash = strrchr(dir, '/')) == NULL) {
        errno = ENOENT;
        return -1;
    }
    *slash = '\0';
    return 0;
}

/* Executes qgate-serve with argv (argv[0] the command: serve or
 * console); returns only when it could not. */
static int
exec_gate(int argc, char **argv)
{
    static const char *const where[] = {QG_SERVE_DIR, "."};
    char dir[PATH_MAX], path[PATH_MAX + 64];
    char **args;
    int i, err = ENOENT;

    if (own_dir(dir, sizeof(dir)) != 0)
        return cli_fail("%s: cannot find the qgate program's folder: %s",
                        argv[0], strerror(errno));
    if ((args = calloc((size_t)argc + 2, sizeof(*args))) == NULL)
        return cli_fail("out of memory");
    /* qgate-serve serve ARGS...: the gate program runs the same main.
     * `qgate console` too: the console is the gate's, with its
     * libmicrohttpd. */
    for (i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    for (i = 0; i < (int)(sizeof(where) / sizeof(*where)); i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, where[i], SERVE_PROGRAM);
        args[0] = path;
        execv(path, args);
        if (errno != ENOENT || err == ENOENT)
            err = errno; /* the most telling failure is said */
    }
    free(args);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, QG_SERVE_DIR, SERVE_PROGRAM);
    return cli_fail("%s: cannot run the gate program %s: %s", argv[0], path,
                    strerror(err));
}

int
cmd_serve(cli *c, int argc, char **argv)
{
    (void)c;
    return exec_gate(argc, argv);
}

int
cmd_console(cli *c, int argc, char **argv)
{
    (void)c;
    return exec_gate(argc, argv);
}
