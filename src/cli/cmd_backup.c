/*
 * cmd_backup.c - qgate backup DIR: a hot, consistent, compacted copy of
 * the store, taken while the gate runs.
 *
 * The copy is LMDB's (qg_store_copy(): one snapshot, compacted, no
 * writer's lock taken) into a directory next to DIR whose name says it is
 * unfinished; it is flushed, opened to count what it holds, and only then
 * renamed to DIR.  A backup that fails leaves no DIR behind, so nothing
 * that looks like a backup is ever half a one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const struct option options[] = {CLI_COMMON_OPTIONS, {0}};

/* Whether dir is missing (1), an empty directory (1), or anything else
 * (0, with why in why). */
static int
usable(const char *dir, char *why, size_t len)
{
    struct dirent *e;
    struct stat sb;
    DIR *d;

    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(why, len, "%s", strerror(errno));
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(why, len, "exists and is not a directory");
        return 0;
    }
    if ((d = opendir(dir)) == NULL) {
        snprintf(why, len, "%s", strerror(errno));
        return 0;
    }
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            closedir(d);
            snprintf(why, len,
                     "not empty: a backup goes into a new or an "
                     "empty directory");
            return 0;
        }
    closedir(d);
    return 1;
}

/* fsync() of a file or a directory.  Returns 0 or -1 with errno. */
static int
sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc, saved;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Removes the unfinished copy: its files, then the directory. */
static void
discard(const char *tmp)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/data.mdb", tmp);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", tmp);
    unlink(path);
    rmdir(tmp);
}

/* Opens the copy read-only and counts its tickets and their steps: the
 * copy is a store that opens, and the counts are what it holds. */
static int
count(const char *dir, uint64_t *tickets, uint64_t *records)
{
    qg_store_options o;
    qg_store *st = NULL;
    qg_tickets *it = NULL;
    qg_ticket t;
    int rc;

    memset(&o, 0, sizeof(o));
    o.path = dir;
    o.flags = QG_RDONLY;
    *tickets = *records = 0;
    if ((rc = qg_store_open(&o, &st)))
        return rc;
    if ((rc = qg_tickets_open(st, &it)) == 0) {
        while ((rc = qg_tickets_next(it, &t)) == 0) {
            ++*tickets;
            *records += t.records;
        }
        if (rc == QG_NOTFOUND)
            rc = 0;
    }
    qg_tickets_close(it);
    qg_store_close(st);
    return rc;
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    if (argc != 1)
        return cli_fail("backup: give one directory to copy the store into");
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    const char *dest = argv[0];
    char why[160], tmp[4096], parent[4096], base[4096], data[4200];
    uint64_t tickets, records;
    struct stat sb;
    int rc;

    (void)argc;
    if (strcmp(qg_store_backend(st), "lmdb") != 0)
        return cli_fail("backup: %s: a %s store is backed up by its server's "
                        "tools (pg_dump, base backups), not by qgate",
                        c->db, qg_store_backend(st));
    if (!usable(dest, why, sizeof(why)))
        return cli_fail("backup: %s: %s", dest, why);
    snprintf(parent, sizeof(parent), "%s", dest);
    snprintf(base, sizeof(base), "%s", dest);
    /* Next to DEST, on its file system (rename() cannot cross one), and
     * named as unfinished. */
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.partial-XXXXXX", dirname(parent),
                 basename(base)) >= (int)sizeof(tmp))
        return cli_fail("backup: %s: the path is too long", dest);
    if (mkdtemp(tmp) == NULL)
        return cli_fail("backup: %s: cannot create %s: %s", dest, tmp,
                        strerror(errno));
    /* A store's mode (qg_store_open()): the service's group may read it. */
    chmod(tmp, 0750);
    if ((rc = qg_store_copy(st, tmp))) {
        discard(tmp);
        cli_store_fail(c, rc);
        return cli_fail("backup: %s: the copy failed; nothing was left there",
                        dest);
    }
    snprintf(data, sizeof(data), "%s/data.mdb", tmp);
    if (sync_path(data) != 0 || sync_path(tmp) != 0) {
        discard(tmp);
        return cli_fail("backup: %s: cannot flush the copy: %s", dest,
                        strerror(errno));
    }
    if ((rc = count(tmp, &tickets, &records))) {
        discard(tmp);
        return cli_fail("backup: %s: the copy does not open: %s", dest,
                        qg_strerror(rc));
    }
    /* The copy's reader table is no part of the backup. */
    snprintf(data, sizeof(data), "%s/lock.mdb", tmp);
    unlink(data);
    snprintf(data, sizeof(data), "%s/data.mdb", tmp);
    if (stat(data, &sb) != 0)
        sb.st_size = 0;
    /* rename() replaces an empty directory and refuses a full one: a
     * DEST filled meanwhile is not overwritten. */
    if (rename(tmp, dest) != 0) {
        int saved = errno;

        discard(tmp);
        return cli_fail("backup: %s: %s", dest, strerror(saved));
    }
    snprintf(parent, sizeof(parent), "%s", dest);
    if (sync_path(dirname(parent)) != 0)
        return cli_fail("backup: %s: cannot flush its directory: %s", dest,
                        strerror(errno));
    if (c->json) {
        printf("{\"backup\":");
        render_string(stdout, dest, strlen(dest));
        printf(",\"bytes\":%lld,\"tickets\":%" PRIu64 ",\"records\":%" PRIu64
               "}\n",
               (long long)sb.st_size, tickets, records);
    } else {
        printf("%s: %lld bytes, %" PRIu64 " tickets, %" PRIu64 " records\n",
               dest, (long long)sb.st_size, tickets, records);
    }
    return EXIT_OK;
}

const cli_command cli_backup = {
    .name = "backup",
    .summary = "copy the store, consistent and compacted, while it is in use",
    .usage = "usage: qgate backup [--json] [--db DIR] DEST\n"
             "Copies the store as of one moment, compacted, into DEST, "
             "which must not exist\nor be an empty directory.  The gate may "
             "run meanwhile.  The copy is written\nnext to DEST and renamed "
             "when whole and flushed: a failed backup leaves no DEST.\n"
             "Restore: stop the gate, replace its store directory with "
             "DEST, start it,\nqgate verify.\n",
    .options = options,
    .store = CLI_READ,
    .args = 1,
    .ready = ready,
    .run = run};
