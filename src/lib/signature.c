/*
 * signature.c - HMAC-SHA256 signatures and payload digests (libcrypto).
 *
 * Chup signs with HMAC-SHA256 and sends the lowercase hex digest.  Which
 * bytes are signed is not documented; this project's rule is the exact
 * bytes of the "payload" value as received (docs/assumptions.md).
 */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "ossl.h" /* libcrypto, through the table it loads */
#include "qgate_int.h"

/*
 * SHA-256 and HMAC fetched once: EVP_sha256() in EVP_Digest() and HMAC()
 * look their implementations up by name at every call, a third of the
 * cost of hashing or signing a 1 KB payload, and as much as hashing the
 * 136 bytes of a chain entry (docs/PERFORMANCE.md, "The hash chain" and
 * "Engine and raw LMDB, the same records").  The fetched algorithms are
 * shared by every thread, the chain's hashes included (qg__sha256_md()),
 * and live as long as the process; NULL when a fetch failed, which fails
 * each hash as an allocation failure does.
 */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_md;
static EVP_MAC *hmac;

static void
fetch(void)
{
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

const EVP_MD *
qg__sha256_md(void)
{
    pthread_once(&fetch_once, fetch);
    return sha_md;
}

/* HMAC-SHA256 of msg under key into out; 0 when libcrypto fails. */
static int
hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
            unsigned char out[QG__DIGEST_LEN])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 6),
        OSSL_PARAM_END};
    EVP_MAC_CTX *ctx;
    size_t n = 0;
    int ok;

    pthread_once(&fetch_once, fetch);
    if (hmac == NULL || (ctx = EVP_MAC_CTX_new(hmac)) == NULL)
        return 0;
    ok = EVP_MAC_init(ctx, key, keylen, params) &&
         EVP_MAC_update(ctx, msg, len) &&
         EVP_MAC_final(ctx, out, &n, QG__DIGEST_LEN) && n == QG__DIGEST_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

int
qg__digest(const void *data, size_t len, unsigned char out[QG__DIGEST_LEN])
{
    unsigned int n = QG__DIGEST_LEN;

    /* EVP_Digest with a built-in algorithm fails only on allocation
     * failure; the digest is then zero, which no real payload hashes to.
     * The engine takes the digest last, after the signature check (so
     * this never fails a delivery on its signature): the step is recorded
     * under the zero digest, and a later delivery whose digest fails too
     * would be taken for a redelivery of it. */
    const EVP_MD *md = qg__sha256_md();

    if (md == NULL || !EVP_Digest(data, len, out, &n, md, NULL)) {
        memset(out, 0, QG__DIGEST_LEN);
        return QG_ENOMEM;
    }
    return 0;
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
    unsigned char want[QG__DIGEST_LEN], got[QG__DIGEST_LEN];
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
    if (!hmac_sha256(key, keylen, msg.p, msg.len, want))
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
