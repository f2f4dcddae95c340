/*
 * fuzz_span.c - libFuzzer harness for signature-span extraction.  The
 * bytes the signature is checked over must be the payload json-c parsed:
 * parsing the span alone gives an object equal to the envelope's payload.
 * Otherwise a crafted body could have one payload signed and another one
 * decided.  The span is the same whether the body was read in one pass or
 * by json-c; json-c's tree is what the span is compared with.
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    qg__envelope env, scanned;
    json_object *alone;
    char detail[256];
    char sig[QG__HEX_SIG_LEN + 1];
    qg__span hex;

    if (qg__envelope_parse_tree((const char *)data, size, &env, detail,
                                sizeof(detail)) != QG_R_NONE) {
        qg__envelope_free(&env);
        return 0;
    }
    if (qg__envelope_parse((const char *)data, size, &scanned, detail,
                           sizeof(detail)) != QG_R_NONE ||
        scanned.payload_text.p != env.payload_text.p ||
        scanned.payload_text.len != env.payload_text.len)
        abort();
    qg__envelope_free(&scanned);
    {
        char *copy = strndup(env.payload_text.p, env.payload_text.len);
        enum json_tokener_error err;

        alone = copy ? json_tokener_parse_verbose(copy, &err) : NULL;
        free(copy);
    }
    if (alone == NULL || !json_object_equal(alone, env.payload))
        abort();
    json_object_put(alone);

    /* A signature made over the span verifies; one byte off does not. */
    qg__signature_make("k", 1, env.payload_text.p, env.payload_text.len, sig);
    hex.p = sig;
    hex.len = QG__HEX_SIG_LEN;
    if (qg__signature_check("k", 1, env.payload_text, hex) != QG_R_NONE)
        abort();
    sig[0] = sig[0] == '0' ? '1' : '0';
    if (qg__signature_check("k", 1, env.payload_text, hex) == QG_R_NONE)
        abort();
    qg__envelope_free(&env);
    return 0;
}
