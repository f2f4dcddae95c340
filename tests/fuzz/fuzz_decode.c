/*
 * fuzz_decode.c - libFuzzer harness for the Chup decoder: any bytes, as a
 * webhook body, through envelope parsing and field decoding.  Invariants:
 * a decoded payload span is exactly the text of the payload object, every
 * refusal names what was wrong, and the one-pass scan and json-c's tree
 * read every body alike (decode_same.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../decode_same.h"
#include "qgate_int.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    qg__envelope env;
    qg__delivery d;
    char detail[256];
    char why[512];
    qg_reason r;
    int scanned;

    if (!decode_same((const char *)data, size, &scanned, why, sizeof(why))) {
        fprintf(stderr, "the scan and json-c differ: %s\n", why);
        abort();
    }
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
