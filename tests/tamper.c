/*
 * tamper.c DIR WHAT ARGS... - alters a store as someone with write access
 * to its files would: with liblmdb alone, never through qgate's library,
 * leaving a store LMDB reads without complaint.  chain_test.sh then asks
 * qgate verify to find the change.
 *
 *   body TICKET SEQ       flip one byte of a step's stored body (in the
 *                         envelope's signature: it still parses)
 *   state TICKET SEQ      flip one byte of a step's to-state
 *   refusal ID            flip one byte of a refusal's detail
 *   delete TICKET         delete a ticket: its steps, its row, its ids,
 *                         and, in a store of 0.4, its head in chain_tickets
 *   swap TICKET SEQ SEQ   swap two steps' records
 *   entry N               flip one byte of chain entry N
 *   swap-entries N M      swap two chain entries
 *   unchain               delete the chain's databases and its mark in
 *                         meta: the store is as qgate 0.3 wrote it, and
 *                         the next writable open computes the chain afresh
 *                         over what is there now
 *
 * The offsets are the store's layout (src/lib/store_int.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "store_int.h"

static MDB_env *env;
static MDB_txn *txn;

static void
die(const char *what, int rc)
{
    fprintf(stderr, "tamper: %s: %s\n", what, rc ? mdb_strerror(rc) : "");
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    exit(2);
}

static MDB_dbi
db(const char *name)
{
    MDB_dbi dbi;
    int rc;

    if ((rc = mdb_dbi_open(txn, name, 0, &dbi)))
        die(name, rc);
    return dbi;
}

/* A copy of the value at k in dbi, which the caller puts back. */
static unsigned char *
get(MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    unsigned char *copy;
    int rc;

    if ((rc = mdb_get(txn, dbi, k, v)))
        die("no such record", rc);
    if ((copy = malloc(v->mv_size)) == NULL)
        die("out of memory", 0);
    memcpy(copy, v->mv_data, v->mv_size);
    v->mv_data = copy;
    return copy;
}

static void
put(MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    int rc;

    if ((rc = mdb_put(txn, dbi, k, v, 0)))
        die("put", rc);
    free(v->mv_data);
}

static void
step_key(unsigned char key[12], const char *ticket, const char *seq)
{
    put64(key, strtoull(ticket, NULL, 10));
    put32(key + 8, (uint32_t)strtoul(seq, NULL, 10));
}

static void
del_prefix(MDB_dbi dbi, const unsigned char *prefix, size_t len)
{
    MDB_cursor *cur;
    MDB_val k = {len, (void *)prefix}, v;
    int rc, op = MDB_SET_RANGE;

    if ((rc = mdb_cursor_open(txn, dbi, &cur)))
        die("cursor", rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0 &&
           k.mv_size >= len && memcmp(k.mv_data, prefix, len) == 0) {
        if ((rc = mdb_cursor_del(cur, 0)))
            die("delete", rc);
        op = MDB_GET_CURRENT; /* the delete moved it to the next key */
    }
    mdb_cursor_close(cur);
}

/* Deletes every alias leading to ticket. */
static void
del_aliases(uint64_t ticket)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, db("aliases"), &cur)))
        die("cursor", rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (v.mv_size == 8 && get64(v.mv_data) == ticket &&
            (rc = mdb_cursor_del(cur, 0)))
            die("delete", rc);
    mdb_cursor_close(cur);
}

int
main(int argc, char **argv)
{
    unsigned char key[12], key2[12], *p;
    MDB_val k = {12, key}, k2 = {12, key2}, v, v2;
    const char *what;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: tamper DIR WHAT ARGS...\n");
        return 2;
    }
    what = argv[2];
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 32)) ||
        (rc = mdb_env_open(env, argv[1], 0, 0640)))
        die(argv[1], rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
        die("begin", rc);
    if (strcmp(what, "body") == 0 && argc == 5) {
        step_key(key, argv[3], argv[4]);
        p = get(db("history"), &k, &v);
        /* the signature's last hex digit: the body still parses and its
         * payload still matches its digest, so only the chain can tell */
        p[RECORD_HDR + get32(p + 88) - 4] ^= 0x01;
        put(db("history"), &k, &v);
    } else if (strcmp(what, "state") == 0 && argc == 5) {
        step_key(key, argv[3], argv[4]);
        p = get(db("history"), &k, &v);
        p[22] ^= 0x01;
        put(db("history"), &k, &v);
    } else if (strcmp(what, "refusal") == 0 && argc == 4) {
        put64(key, strtoull(argv[3], NULL, 10));
        k.mv_size = 8;
        p = get(db("rejections"), &k, &v);
        p[REJECTION_HDR] ^= 0x20; /* the detail's first letter's case */
        put(db("rejections"), &k, &v);
    } else if (strcmp(what, "delete") == 0 && argc == 4) {
        uint64_t ticket = strtoull(argv[3], NULL, 10);

        put64(key, ticket);
        del_prefix(db("history"), key, 8);
        k.mv_size = 8;
        if ((rc = mdb_del(txn, db("tickets"), &k, NULL)))
            die("ticket row", rc);
        if ((rc = mdb_del(txn, db("chain_tickets"), &k, NULL)) &&
            rc != MDB_NOTFOUND)
            die("chain head", rc);
        del_aliases(ticket);
    } else if (strcmp(what, "swap") == 0 && argc == 6) {
        step_key(key, argv[3], argv[4]);
        step_key(key2, argv[3], argv[5]);
        get(db("history"), &k, &v);
        get(db("history"), &k2, &v2);
        put(db("history"), &k, &v2);
        put(db("history"), &k2, &v);
    } else if (strcmp(what, "entry") == 0 && argc == 4) {
        put64(key, strtoull(argv[3], NULL, 10));
        k.mv_size = 8;
        p = get(db("chain"), &k, &v);
        p[16 + 7] ^= 0x01; /* the ref's low byte */
        put(db("chain"), &k, &v);
    } else if (strcmp(what, "swap-entries") == 0 && argc == 5) {
        put64(key, strtoull(argv[3], NULL, 10));
        put64(key2, strtoull(argv[4], NULL, 10));
        k.mv_size = k2.mv_size = 8;
        get(db("chain"), &k, &v);
        get(db("chain"), &k2, &v2);
        put(db("chain"), &k, &v2);
        put(db("chain"), &k2, &v);
    } else if (strcmp(what, "unchain") == 0 && argc == 3) {
        if ((rc = mdb_drop(txn, db("chain"), 1)) ||
            (rc = mdb_drop(txn, db("chain_tickets"), 1)))
            die("drop", rc);
        k.mv_size = 5;
        k.mv_data = "chain";
        if ((rc = mdb_del(txn, db("meta"), &k, NULL)))
            die("meta", rc);
    } else {
        fprintf(stderr, "tamper: %s: unknown, or wrong arguments\n", what);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 2;
    }
    if ((rc = mdb_txn_commit(txn)))
        die("commit", rc);
    mdb_env_close(env);
    return 0;
}
