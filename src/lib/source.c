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
#include <pthread.h>
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

static int
is_default(const char *name)
{
    return name == NULL || strcmp(name, QG_SOURCE_DEFAULT) == 0;
}

int
qg__lmdb_source_index(qg__txn *t, const char *name, int create, unsigned *index)
{
    char key[8 + QG_SOURCE_NAME_MAX];
    unsigned char rkey[8], num;
    MDB_val k, v;
    uint64_t next;
    int rc;

    if (is_default(name)) {
        *index = 0;
        return 0;
    }
    if (qg_source_name_check(name))
        return QG_EINVAL;
    k.mv_size = (size_t)snprintf(key, sizeof(key), "source:%s", name);
    k.mv_data = key;
    if ((rc = mdb_get(t->txn, t->st->meta, &k, &v)) == 0) {
        if (v.mv_size != 1 || *(unsigned char *)v.mv_data == 0 ||
            *(unsigned char *)v.mv_data >= QG_SOURCES_MAX)
            return QG_ESTORE;
        *index = *(unsigned char *)v.mv_data;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return qg__from_mdb(rc);
    if (!create) {
        *index = QG__SOURCE_UNSEEN;
        return 0;
    }
    if ((rc = qg__meta_counter(t, "source_next", &next)))
        return rc;
    if (next >= QG_SOURCES_MAX)
        return QG_ETOOBIG;
    num = (unsigned char)next;
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

/* Called by readers only: a name read in a write transaction that then
 * aborted would be cached for a number given later to another. */
void
qg__lmdb_source_name(qg__txn *t, unsigned index,
                     char out[QG_SOURCE_NAME_MAX + 1])
{
    qg_store *st = t->st;
    unsigned char rkey[8];
    MDB_val k = {8, rkey}, v;

    if (index == 0) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "%s", QG_SOURCE_DEFAULT);
        return;
    }
    if (index >= QG_SOURCES_MAX) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "#%u", index);
        return;
    }
    pthread_mutex_lock(&st->lock);
    memcpy(out, st->source_names[index], QG_SOURCE_NAME_MAX + 1);
    pthread_mutex_unlock(&st->lock);
    if (out[0])
        return;
    memcpy(rkey, "source#", 7);
    rkey[7] = (unsigned char)index;
    if (mdb_get(t->txn, st->meta, &k, &v) != 0 || v.mv_size == 0 ||
        v.mv_size > QG_SOURCE_NAME_MAX) {
        snprintf(out, QG_SOURCE_NAME_MAX + 1, "#%u", index);
        return;
    }
    memcpy(out, v.mv_data, v.mv_size);
    out[v.mv_size] = '\0';
    pthread_mutex_lock(&st->lock);
    memcpy(st->source_names[index], out, QG_SOURCE_NAME_MAX + 1);
    pthread_mutex_unlock(&st->lock);
}

int
qg__lmdb_has_source(qg_store *st, const char *name)
{
    unsigned index;
    qg__txn t;
    int rc;

    if (st == NULL || (!is_default(name) && qg_source_name_check(name)))
        return QG_EINVAL;
    if ((rc = qg__txn_begin(st, 0, &t)))
        return rc;
    rc = qg__source_index(&t, name, 0, &index);
    qg__txn_abort(&t);
    if (rc)
        return rc;
    return index != QG__SOURCE_UNSEEN;
}
