/*
 * cmd_db.c - qgate db init | migrate: a PostgreSQL store's schema.
 *
 * A gate creates the schema itself on an empty database; init does the
 * same ahead of time (an operator who grants the gates' role no right to
 * create), and migrate brings an older schema to this qgate's version,
 * which a gate refuses to open.  Both say the version before and after.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct option options[] = {CLI_COMMON_OPTIONS, {0}};

static int
ready(cli *c, int argc, char **argv)
{
    (void)c;
    if (argc != 1 ||
        (strcmp(argv[0], "init") != 0 && strcmp(argv[0], "migrate") != 0))
        return cli_fail("db: expected init or migrate");
    return 0;
}

static int
open_store(cli *c, unsigned flags, qg_store **st)
{
    qg_store_options o;

    memset(&o, 0, sizeof(o));
    o.path = c->db;
    o.durability = QG_SYNC;
    o.flags = flags;
    return qg_store_open(&o, st);
}

static int
run(cli *c, qg_store *unused, int argc, char **argv)
{
    qg_store *st = NULL;
    uint64_t chained = 0;
    int rc, from = 0, to = 0;

    (void)unused;
    (void)argc;
    if (!qg_store_is_postgresql(c->db))
        return cli_fail("%s: db %s is for a PostgreSQL store "
                        "(--db postgresql://...); an LMDB store has no "
                        "schema",
                        c->db ? c->db : "(no --db)", argv[0]);
    if (strcmp(argv[0], "init") == 0) {
        /* read-only first: whether there was a schema before */
        if ((rc = open_store(c, QG_RDONLY, &st)) == 0) {
            from = QG_PG_SCHEMA_VERSION;
            qg_store_close(st);
            st = NULL;
        } else if (rc == QG_NOTFOUND) {
            from = 0;
        } else {
            return cli_fail("%s: cannot open the store: %s", c->db,
                            qg_strerror(rc));
        }
        if ((rc = open_store(c, 0, &st)))
            return cli_fail("%s: cannot create the schema: %s", c->db,
                            qg_strerror(rc));
        to = QG_PG_SCHEMA_VERSION;
    } else {
        if ((rc = open_store(c, QG_MIGRATE, &st)) ||
            (rc = qg_store_migrate(st, &from, &to))) {
            qg_store_close(st);
            return cli_fail("%s: cannot migrate the schema: %s", c->db,
                            qg_strerror(rc));
        }
        /* as a folder's first writable open says it (cli.c) */
        if (qg_store_chain_migrated(st, &chained) == 0 && chained)
            fprintf(stderr,
                    "qgate: %s: a store from before the hash chain: chained "
                    "its %" PRIu64 " records\n",
                    c->db, chained);
    }
    qg_store_close(st);
    if (c->json) {
        printf("{\"from\":%d,\"to\":%d}\n", from, to);
        return EXIT_OK;
    }
    if (from == to)
        printf("%s: schema version %d, as it was\n", c->db, to);
    else if (from == 0)
        printf("%s: schema version none -> %d (created)\n", c->db, to);
    else
        printf("%s: schema version %d -> %d\n", c->db, from, to);
    return EXIT_OK;
}

const cli_command cli_db = {
    .name = "db",
    .summary = "create or migrate a PostgreSQL store's schema",
    .usage = "usage: qgate db init --db postgresql://...\n"
             "       qgate db migrate --db postgresql://...\n"
             "init creates the schema in an empty database (a gate does it "
             "too at its\nfirst start); migrate brings an older schema to "
             "this qgate's version.\nBoth print the schema version before "
             "and after (--json: {\"from\":N,\"to\":N},\n0 for none).\n",
    .options = options,
    .store = CLI_NO_STORE,
    .args = 1,
    .ready = ready,
    .run = run};
