/*
 * stdwebhooks.c - Standard Webhooks signatures (see stdwebhooks.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "stdwebhooks.h"

#define PREFIX     "whsec_"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define LINE_MAX_  256

int
swh_key_parse(const char *text, size_t len, unsigned char *out, size_t *outlen,
              char *err, size_t errlen)
{
    unsigned char buf[(LINE_MAX_ / 4) * 3 + 3];
    size_t skip = 0;
    int n, pad = 0;

    if (len >= PREFIX_LEN && memcmp(text, PREFIX, PREFIX_LEN) == 0) {
        skip = PREFIX_LEN;
        text += PREFIX_LEN;
        len -= PREFIX_LEN;
    }
    if (len == 0 || len % 4 != 0 || len > LINE_MAX_) {
        snprintf(err, errlen,
                 "not a Standard Webhooks secret (\"whsec_\" and base64)");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                 (c == '=' && i >= len - 2);
        if (!ok || (pad && c != '=')) {
            snprintf(err, errlen, "not base64 at character %zu", i + 1 + skip);
            return -1;
        }
        pad += c == '=';
    }
    /* EVP_DecodeBlock counts padding as zero bytes: take them off. */
    n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    if (n < 0) {
        snprintf(err, errlen, "not base64");
        return -1;
    }
    n -= pad;
    if (n < SWH_KEY_MIN || n > SWH_KEY_MAX) {
        snprintf(err, errlen, "%d bytes; a secret is %d to %d bytes", n,
                 SWH_KEY_MIN, SWH_KEY_MAX);
        return -1;
    }
    memcpy(out, buf, (size_t)n);
    *outlen = (size_t)n;
    return 0;
}

int
swh_keys_load(const char *path, swh_keys *keys, char *err, size_t errlen)
{
    char line[LINE_MAX_ + 2], why[128];
    swh_keys k;
    int lineno = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    memset(&k, 0, sizeof k);
    while (fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);

        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line too long for a secret", path,
                     lineno);
            goto fail;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (k.n == SWH_KEYS_MAX) {
            snprintf(err, errlen, "%s:%d: more than %d secrets", path, lineno,
                     SWH_KEYS_MAX);
            goto fail;
        }
        if (swh_key_parse(line, len, k.key[k.n].bytes, &k.key[k.n].len, why,
                          sizeof why) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            goto fail;
        }
        k.n++;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    if (k.n == 0) {
        snprintf(err, errlen, "%s: no secret in the file", path);
        return -1;
    }
    *keys = k;
    return 0;
fail:
    fclose(f);
    return -1;
}

/* One MAC over the parts of "id.timestamp.body", without copying the body. */
static int
mac_parts(EVP_MAC *hmac, const unsigned char *key, size_t keylen,
          const void *const *part, const size_t *partlen, int nparts,
          unsigned char mac[32])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    size_t maclen = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, keylen, params);

    for (int i = 0; ok && i < nparts; i++)
        ok = EVP_MAC_update(ctx, part[i], partlen[i]);
    ok = ok && EVP_MAC_final(ctx, mac, &maclen, 32) && maclen == 32;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

int
swh_sign(const swh_keys *keys, const char *id, int64_t timestamp,
         const void *body, size_t len, char out[SWH_SIG_SIZE])
{
    char ts[24];
    int tslen = snprintf(ts, sizeof ts, "%" PRId64, timestamp);
    const void *part[] = {id, ".", ts, ".", body};
    size_t partlen[] = {strlen(id), 1, (size_t)tslen, 1, len};
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    size_t at = 0;
    int rc = hmac != NULL ? 0 : -1;

    out[0] = '\0';
    for (int i = 0; rc == 0 && i < keys->n; i++) {
        unsigned char mac[32];

        rc = mac_parts(hmac, keys->key[i].bytes, keys->key[i].len, part,
                       partlen, 5, mac);
        if (rc != 0)
            break;
        if (at > 0)
            out[at++] = ' ';
        memcpy(out + at, "v1,", 3);
        at += 3;
        at += (size_t)EVP_EncodeBlock((unsigned char *)out + at, mac, 32);
    }
    EVP_MAC_free(hmac);
    out[at] = '\0';
    return rc;
}
