/*
 * signature.c - HMAC-SHA256 signatures and payload digests (libcrypto).
 *
 * Chup signs with HMAC-SHA256 and sends the lowercase hex digest.  Which
 * bytes are signed is not documented; this project's rule is the exact
 * bytes of the "payload" value as received (docs/assumptions.md).
 */
#include <string.h>

#include "ossl.h" /* libcrypto, through the table it loads */
#include "qgate_int.h"

void
qg__digest(const void *data, size_t len, unsigned char out[QG__DIGEST_LEN])
{
    unsigned int n = QG__DIGEST_LEN;

    /* EVP_Digest with a built-in algorithm fails only on allocation
     * failure; the digest is then zero, which no real payload hashes to.
     * The engine takes the digest last, after the signature check (so
     * this never fails a delivery on its signature): the step is recorded
     * under the zero digest, and a later delivery whose digest fails too
     * would be taken for a redelivery of it. */
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        memset(out, 0, QG__DIGEST_LEN);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is refused: Chup sends lower case */
}

qg_reason
qg__signature_check(const void *key, size_t keylen, qg__span msg, qg__span hex)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[QG__DIGEST_LEN];
    unsigned int n = 0;
    size_t i;

    if (hex.p == NULL)
        return QG_R_MISSING_SIGNATURE;
    if (hex.len != QG__HEX_SIG_LEN)
        return QG_R_SIGNATURE_FORMAT;
    for (i = 0; i < QG__DIGEST_LEN; i++) {
        int hi = hexval(hex.p[2 * i]), lo = hexval(hex.p[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return QG_R_SIGNATURE_FORMAT;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg.p,
             msg.len, want, &n) == NULL ||
        n != QG__DIGEST_LEN)
        return QG_R_BAD_SIGNATURE;
    return CRYPTO_memcmp(want, got, QG__DIGEST_LEN) == 0 ? QG_R_NONE
                                                         : QG_R_BAD_SIGNATURE;
}

void
qg__signature_make(const void *key, size_t keylen, const void *msg, size_t len,
                   char out[QG__HEX_SIG_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (HMAC(EVP_sha256(), key, (int)keylen, msg, len, mac, &n) == NULL)
        n = 0;
    for (i = 0; i < n && i < QG__DIGEST_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[2 * i] = '\0';
}
