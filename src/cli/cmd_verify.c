/*
 * cmd_verify.c - qgate verify: every stored ticket against the current
 * machine and the store's indexes.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"

#define OPT_SEALED 1100
#define OPT_PUBKEY 1101

static struct {
    const char *sealed; /* --sealed LINE, or @FILE */
    const char *pubkey; /* --pubkey FILE */
    qg_seal seal;
} o;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    CLI_SOURCE_OPTION,
    {"sealed", required_argument, NULL, OPT_SEALED},
    {"pubkey", required_argument, NULL, OPT_PUBKEY},
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)c;
    if (opt == OPT_SEALED)
        o.sealed = arg;
    else if (opt == OPT_PUBKEY)
        o.pubkey = arg;
    else
        return EXIT_FAILED;
    return 0;
}

/* Reads the head, before the store is opened: a head that cannot be read
 * or whose signature fails is no store's fault. */
static int
ready(cli *c, int argc, char **argv)
{
    char line[QG_SEAL_MAX + 2], err[256];
    const char *text = o.sealed;
    FILE *f;
    int rc;

    (void)c;
    (void)argc;
    (void)argv;
    if (o.sealed == NULL)
        return o.pubkey ? cli_fail("verify: --pubkey checks the signature of "
                                   "a head: give --sealed too")
                        : 0;
    if (o.sealed[0] == '@') {
        if ((f = fopen(o.sealed + 1, "r")) == NULL)
            return cli_fail("--sealed %s: cannot be read", o.sealed);
        text = fgets(line, sizeof(line), f);
        fclose(f);
        if (text == NULL)
            return cli_fail("--sealed %s: empty", o.sealed);
    }
    if ((rc = qg_seal_parse(text, o.pubkey, &o.seal, err, sizeof(err))))
        return cli_fail("--sealed: %s", err);
    return 0;
}

/* The chain after the tickets: 0 intact, 1 broken (said), else a code. */
static int
verify_chain(cli *c, qg_store *st, int *broken)
{
    qg_chain_finding f;
    int rc;

    *broken = 0;
    rc = qg_store_verify_chain(st, o.sealed ? &o.seal : NULL, &f);
    if (rc == QG_NOTFOUND) {
        /* a store from before the chain, read-only: legality only */
        if (o.sealed)
            return cli_fail("%s: --sealed: the store has no hash chain yet "
                            "(a writable open computes it)",
                            c->db);
        if (c->json)
            printf("{\"chain\":null}\n");
        else
            printf("no hash chain: the store was written before it; any "
                   "writable open (qgate seal) computes it\n");
        return 0;
    }
    if (rc)
        return rc;
    *broken = f.brk != QG_CHAIN_INTACT;
    if (c->json) {
        printf("{\"chain\":%" PRIu64 ",\"intact\":%s", f.entries,
               *broken ? "false" : "true");
        if (*broken) {
            static const char *const kinds[] = {"chain", "step", "refusal",
                                                "held"};
            static const char *const brks[] = {"intact",  "changed",
                                               "removed", "reordered",
                                               "added",   "unsealed"};

            printf(",\"break\":\"%s\",\"kind\":\"%s\",\"ticket\":%" PRIu64
                   ",\"ref\":%" PRIu64 ",\"entry\":%" PRIu64 ",\"problem\":",
                   brks[f.brk], kinds[f.kind], f.ticket, f.ref, f.entry);
            render_string(stdout, f.what, strlen(f.what));
        }
        if (o.sealed)
            printf(",\"sealed\":%" PRIu64, o.seal.records);
        printf("}\n");
    } else if (*broken) {
        printf("chain: %s\n", f.what);
    } else if (o.sealed) {
        printf("chain: %" PRIu64 " entries intact; the sealed head "
               "(%" PRIu64 " entries%s) holds\n",
               f.entries, o.seal.records, o.seal.is_signed ? ", signed" : "");
    } else {
        printf("chain: %" PRIu64 " entries intact\n", f.entries);
    }
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    unsigned long tickets = 0, bad = 0;
    qg_tickets *it = NULL;
    qg_ticket t;
    qg_finding f;
    char ids[48];
    int rc, broken;

    (void)argc;
    (void)argv;
    if ((rc = qg_tickets_open(st, &it)))
        goto failed;
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        if (!cli_in_source(c, t.source))
            continue;
        tickets++;
        cli_progress("tickets", tickets, 0);
        if ((rc = qg_store_verify_ticket(st, t.id, &f)))
            goto failed;
        if (!f.found)
            continue;
        bad++;
        cli_ticket_ids(&t, ids, sizeof(ids));
        if (c->json) {
            printf("{\"ticket\":%" PRIu64 ",\"ids\":\"%s\",\"seq\":%" PRIu32
                   ",\"problem\":",
                   t.id, ids, f.seq);
            render_string(stdout, f.what, strlen(f.what));
            printf("}\n");
        } else {
            printf("ticket %" PRIu64 " (%s) step %" PRIu32 ": %s\n", t.id, ids,
                   f.seq, f.what);
        }
    }
    if (rc != QG_NOTFOUND)
        goto failed;
    cli_progress("tickets", tickets, 1);
    qg_tickets_close(it);
    if (c->json)
        printf("{\"tickets\":%lu,\"failed\":%lu,\"machine\":\"%s\"}\n", tickets,
               bad, qg_machine_version());
    else
        printf("%lu tickets verified against machine %s: %lu failed\n", tickets,
               qg_machine_version(), bad);
    if ((rc = verify_chain(c, st, &broken)) == EXIT_FAILED)
        return rc;
    if (rc)
        return cli_store_fail(c, rc);
    return bad || broken ? EXIT_FOUND : EXIT_OK;
failed:
    qg_tickets_close(it);
    return cli_store_fail(c, rc);
}

const cli_command cli_verify = {
    .name = "verify",
    .summary = "replay every history through the machine",
    .usage = "usage: qgate verify [--json] [--db DIR] [--source NAME] "
             "[--sealed HEAD\n"
             "       [--pubkey FILE]]\n"
             "Checks every page of the store, then replays every "
             "stored history through the\ncurrent machine and checks "
             "the store's indexes, then checks the hash chain:\nthe "
             "first record whose hash does not hold is named, with the "
             "break (changed,\nremoved, reordered, added).  --sealed "
             "HEAD (a line of qgate seal, or @FILE)\nalso proves the "
             "chain up to that head unchanged; --pubkey FILE checks a\n"
             "signed head's Ed25519 signature.\n"
             "Exit 1 when any ticket or the chain fails, 2 when the store "
             "is damaged.\n",
    .options = options,
    .option = option,
    .ready = ready,
    .store = CLI_READ,
    .check_store = 1,
    .run = run};
