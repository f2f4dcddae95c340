/*
 * source.c - several Chup accounts (sources) in one store.
 *
 * Chup's ids are an account's own: live queue 30001 of one clinic is not
 * another's.  So the store numbers each source and keys what a Chup id
 * finds (aliases, held_by) by the number too, in the high bits of the
 * kind byte.  Source 0 is the default source and its keys are the keys
 * stores always had: a store written before sources opens as one default
 * source, byte for byte unchanged.  Meta holds, for source n > 0,
 *   "source:NAME" -> u8 n, and "source#" u8 n -> NAME,
 * and "source_next", the counter the numbers come from.  A number is
 * never given to another name, so readers may cache names by number.
 */
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"
#include "store_int.h"

int
qg_source_name_check(const char *name)
{
    size_t i, n;

    if (name == NULL || (n = strlen(name)) == 0 || n > QG_SOURCE_NAME_MAX)
        return QG_EINVAL;
    for (i = 0; i < n; i++) {
        char c = name[i];

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            continue;
        if (i > 0 && (c == '-' || c == '_'))
            continue;
        return QG_EINVAL;
    }
    return 0;
}

/* The LMDB store's part of qg__source_index() and qg__source_name()
 * (store_common.c), in meta. */
int
qg__lmdb_source_find(qg__txn *t, const char *name, unsigned *index)
{
    char key[8 + QG_SOURCE_NAME_MAX];
    MDB_val k, v;
    int rc;

    k.mv_size = (size_t)snprintf(key, sizeof(key), "source:%s", name);
    k.mv_data = key;
    if ((rc = mdb_get(t->txn, t->st->meta, &k, &v)))
        return rc == MDB_NOTFOUND ? QG_NOTFOUND : qg__from_mdb(rc);
    if (v.mv_size != 1)
        return QG_ESTORE;
    *index = *(unsigned char *)v.mv_data;
    return 0;
}

int
qg__lmdb_source_add(qg__txn *t, const char *name, unsigned *index)
{
    char key[8 + QG_SOURCE_NAME_MAX];
    unsigned char rkey[8], num;
    MDB_val k, v;
    uint64_t next;
    int rc;

    if ((rc = qg__meta_counter(t, "source_next", &next)))
        return rc;
    if (next >= QG_SOURCES_MAX)
        return QG_ETOOBIG;
    num = (unsigned char)next;
    k.mv_size = (size_t)snprintf(key, sizeof(key), "source:%s", name);
    k.mv_data = key;
    v.mv_size = 1;
    v.mv_data = &num;
    if ((rc = mdb_put(t->txn, t->st->meta, &k, &v, MDB_NOOVERWRITE)))
        return qg__from_mdb(rc);
    memcpy(rkey, "source#", 7);
    rkey[7] = num;
    k.mv_size = 8;
    k.mv_data = rkey;
    v.mv_size = strlen(name);
    v.mv_data = (void *)name;
    if ((rc = mdb_put(t->txn, t->st->meta, &k, &v, MDB_NOOVERWRITE)))
        return qg__from_mdb(rc);
    *index = num;
    return 0;
}

int
qg__lmdb_source_read(qg__txn *t, unsigned index,
                     char out[QG_SOURCE_NAME_MAX + 1])
{
    unsigned char rkey[8];
    MDB_val k = {8, rkey}, v;
    int rc;

    memcpy(rkey, "source#", 7);
    rkey[7] = (unsigned char)index;
    if ((rc = mdb_get(t->txn, t->st->meta, &k, &v)))
        return rc == MDB_NOTFOUND ? QG_NOTFOUND : qg__from_mdb(rc);
    if (v.mv_size == 0 || v.mv_size > QG_SOURCE_NAME_MAX)
        return QG_ESTORE;
    memcpy(out, v.mv_data, v.mv_size);
    out[v.mv_size] = '\0';
    return 0;
}
