/*
 * last_txnid.h - the last transaction LMDB committed on a store: how the
 * tests that build or migrate in batches (check_store's step summaries,
 * check_compat's chain migration) count the transactions an open took.
 */
#ifndef QG_LAST_TXNID_H
#define QG_LAST_TXNID_H

#include <check.h>
#include <lmdb.h>

#include "store_int.h"

static inline size_t
last_txnid(const qg_store *st)
{
    MDB_envinfo info;

    ck_assert_int_eq(mdb_env_info(st->env, &info), 0);
    return info.me_last_txnid;
}

#endif /* QG_LAST_TXNID_H */
