/*
 * fuzz_decode.c - libFuzzer harness for the Chup decoder: any bytes, as a
 * webhook body, through envelope parsing and field decoding.  Invariants:
 * a decoded payload span is exactly the text of the payload object, and
 * every refusal names what was wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    qg__envelope env;
    qg__delivery d;
    char detail[256];
    qg_reason r;

    r = qg__envelope_parse((const char *)data, size, &env, detail,
                           sizeof(detail));
    if (r != QG_R_NONE) {
        if (detail[0] == '\0')
            abort(); /* a refusal must say why */
        qg__envelope_free(&env);
        return 0;
    }
    /* The span lies inside the body and holds one JSON object. */
    if (env.payload_text.p < (const char *)data ||
        env.payload_text.p + env.payload_text.len > (const char *)data + size ||
        env.payload_text.len < 2 || env.payload_text.p[0] != '{' ||
        env.payload_text.p[env.payload_text.len - 1] != '}')
        abort();
    detail[0] = '\0';
    r = qg__payload_head(&env, &d, detail, sizeof(detail));
    if (r == QG_R_NONE)
        r = qg__payload_fields(&d, 1, detail, sizeof(detail));
    if (r != QG_R_NONE && detail[0] == '\0')
        abort();
    qg__envelope_free(&env);
    return 0;
}
