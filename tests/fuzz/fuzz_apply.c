/*
 * fuzz_apply.c - libFuzzer harness for a whole apply on a temporary
 * store: any bytes as a delivery, with signatures off so that the fuzzer
 * reaches the machine and the store, under a reorder window so that it
 * reaches late placement and held deliveries too.  Invariants: the verdict
 * agrees with its reason, an accepted step is in the store in the state
 * the verdict says, and its ticket's history verifies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qgate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static qg_store *st;
static qg_engine *eng;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char dir[] = "/tmp/qgate-fuzz-XXXXXX";
    qg_store_options o = {0};

    (void)argc;
    (void)argv;
    if (mkdtemp(dir) == NULL)
        abort();
    o.path = dir;
    o.durability = QG_NOSYNC;
    if (qg_store_open(&o, &st) || qg_engine_new(&eng))
        abort();
    qg_engine_require_signature(eng, 0);
    if (qg_engine_set_reorder_window(eng, 3600))
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    qg_result res;
    qg_finding f;
    qg_ticket t;
    int rc;

    rc = qg_engine_apply(eng, st, (const char *)data, size, 0, &res);
    if (rc == QG_EFULL)
        return 0; /* the temporary store reached its limit: fine */
    if (rc != 0)
        abort();
    if (qg_reason_verdict(res.reason) != res.verdict || res.detail[0] == '\0')
        abort();
    if (res.verdict == QG_ACCEPTED) {
        if (qg_store_ticket(st, QG_ID_TICKET, (int64_t)res.ticket, &t) != 0 ||
            t.state != res.to || t.records < res.seq ||
            (!res.late && !res.released &&
             qg_machine_next(res.from, res.event) != (int)res.to))
            abort();
        /* An id two tickets claim is a conflict in the data, which verify
         * reports by design; anything else it finds is a bug. */
        if (qg_store_verify_ticket(st, res.ticket, &f) != 0 ||
            (f.found && strstr(f.what, "does not lead") == NULL))
            abort();
    }
    return 0;
}
