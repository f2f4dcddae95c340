/*
 * cmd_seal.c - qgate seal: the head of the store's hash chain, to be
 * written down or sent elsewhere, signed with an Ed25519 key if given
 * (qg_store_seal()); qgate verify --sealed checks it later.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define OPT_KEY 1100

static const char *key_file;

static const struct option options[] = {
    CLI_COMMON_OPTIONS, {"key", required_argument, NULL, OPT_KEY}, {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)c;
    if (opt != OPT_KEY)
        return EXIT_FAILED;
    key_file = arg;
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    char line[QG_SEAL_MAX], err[256];
    int rc;

    (void)argc;
    (void)argv;
    rc = qg_store_seal(st, key_file, line, sizeof(line), err, sizeof(err));
    if (rc == QG_ECONFIG)
        return cli_fail("seal: --key %s", err);
    if (rc == QG_NOTFOUND)
        return cli_fail("%s: the store has no hash chain", c->db);
    if (rc)
        return cli_store_fail(c, rc);
    if (c->json) {
        fputs("{\"head\":", stdout);
        render_string(stdout, line, strlen(line));
        fputs("}\n", stdout);
    } else {
        puts(line);
    }
    return EXIT_OK;
}

const cli_command cli_seal = {
    .name = "seal",
    .summary = "print the head of the store's hash chain",
    .usage = "usage: qgate seal [--json] [--db DIR] [--key FILE]\n"
             "Prints the head of the store's hash chain: its hash, the "
             "records it covers,\nthe time.  --key FILE signs it with an "
             "Ed25519 private key (PEM).  Keep the\nline elsewhere; "
             "qgate verify --sealed LINE proves nothing before it "
             "changed.\nA store written before the chain gets it computed "
             "here, as at any writable open.\n",
    .options = options,
    .store = CLI_WRITE,
    .option = option,
    .run = run};
