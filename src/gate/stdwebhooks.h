/*
 * stdwebhooks.h - signing what qgate sends, as the Standard Webhooks
 * specification (standardwebhooks.com) says, so that the receiver can
 * verify it with any library written for it.
 *
 * A secret is "whsec_" followed by the base64 of 24 to 64 random bytes;
 * the HMAC-SHA256 key is those bytes.  A message is signed over
 * "<webhook-id>.<webhook-timestamp>.<body>"; the webhook-signature header
 * is "v1,<base64 of the MAC>", one per secret, separated by spaces, so a
 * receiver can rotate its secret while both are in use.
 */
#ifndef QG_STDWEBHOOKS_H
#define QG_STDWEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#define SWH_KEY_MIN  24
#define SWH_KEY_MAX  64
#define SWH_KEYS_MAX 8
/* "v1," + base64 of 32 bytes (44) per secret, a space between two. */
#define SWH_SIG_ONE  47
#define SWH_SIG_SIZE (SWH_KEYS_MAX * (SWH_SIG_ONE + 1))

typedef struct swh_keys {
    int n;
    struct {
        unsigned char bytes[SWH_KEY_MAX];
        size_t len;
    } key[SWH_KEYS_MAX];
} swh_keys;

/* Reads the secrets from path: one per line ("whsec_..."), blank lines
 * and lines starting with '#' skipped, at least one, at most
 * SWH_KEYS_MAX.  On failure returns -1 with a message naming the file,
 * the line and the fault in err; keys is then untouched. */
int swh_keys_load(const char *path, swh_keys *keys, char *err, size_t errlen);

/* Parses one secret ("whsec_" + base64, or the base64 alone as the
 * reference libraries accept); 0, or -1 with the fault in err. */
int swh_key_parse(const char *text, size_t len, unsigned char *out,
                  size_t *outlen, char *err, size_t errlen);

/* Writes the webhook-signature header's value for id, timestamp and body
 * to out (NUL-terminated): one "v1,..." per key.  -1 if the MAC cannot be
 * computed (allocation failure in libcrypto). */
int swh_sign(const swh_keys *keys, const char *id, int64_t timestamp,
             const void *body, size_t len, char out[SWH_SIG_SIZE]);

#endif
