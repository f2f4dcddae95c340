/*
 * ossl.h - libcrypto, loaded the first time qgate hashes or signs.
 *
 * Relocating libcrypto costs every process that links it about 3 ms on
 * the machines the benchmark runs on, as long as the rest of `qgate show`
 * together (docs/PERFORMANCE.md, "CLI start-up").  Most audit commands
 * never hash.  So, as pq.h does for libpq, the files that hash reach
 * libcrypto through a table that dlopen() and dlsym() fill on first use,
 * and the macros below route their calls through it; OpenSSL's headers
 * still give the types and constants.
 *
 * Unlike libpq, libcrypto is no option: the packages depend on it, as
 * they do on json-c and LMDB, which the loader would refuse to start
 * without.  So a libcrypto that cannot be loaded is met as the loader
 * meets a missing library: the process is told why and stops
 * (qg__ossl()).  A call does not return NULL.
 *
 * A file that links libcrypto itself defines QG__OSSL_LINKED first.
 * Private.
 */
#ifndef QG_OSSL_H
#define QG_OSSL_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

/* Every libcrypto function libqgate calls.  EVP_PKEY_id is OpenSSL 3's
 * macro for EVP_PKEY_get_id. */
#define QG__OSSL_FUNCTIONS(XX)                                                 \
    XX(CRYPTO_memcmp)                                                          \
    XX(EVP_DecodeBlock)                                                        \
    XX(EVP_Digest)                                                             \
    XX(EVP_DigestFinal_ex)                                                     \
    XX(EVP_DigestInit_ex2)                                                     \
    XX(EVP_DigestSign)                                                         \
    XX(EVP_DigestSignInit)                                                     \
    XX(EVP_DigestUpdate)                                                       \
    XX(EVP_DigestVerify)                                                       \
    XX(EVP_DigestVerifyInit)                                                   \
    XX(EVP_EncodeBlock)                                                        \
    XX(EVP_MAC_CTX_free)                                                       \
    XX(EVP_MAC_CTX_new)                                                        \
    XX(EVP_MAC_fetch)                                                          \
    XX(EVP_MAC_final)                                                          \
    XX(EVP_MAC_init)                                                           \
    XX(EVP_MAC_update)                                                         \
    XX(EVP_MD_CTX_free)                                                        \
    XX(EVP_MD_CTX_new)                                                         \
    XX(EVP_MD_fetch)                                                           \
    XX(EVP_PKEY_free)                                                          \
    XX(EVP_PKEY_get_id)                                                        \
    XX(EVP_sha256)                                                             \
    XX(HMAC)                                                                   \
    XX(PEM_read_PUBKEY)                                                        \
    XX(PEM_read_PrivateKey)

typedef struct qg__libcrypto {
#define QG__OSSL_MEMBER(f) __typeof__(f) *f;
    QG__OSSL_FUNCTIONS(QG__OSSL_MEMBER)
#undef QG__OSSL_MEMBER
} qg__libcrypto;

/* The table, loaded on the first call in the process (thread-safe). */
const qg__libcrypto *qg__ossl(void);

/* SHA-256, fetched once for the process (signature.c); NULL when the
 * fetch failed. */
const EVP_MD *qg__sha256_md(void);

#ifndef QG__OSSL_LINKED
#define CRYPTO_memcmp        (qg__ossl()->CRYPTO_memcmp)
#define EVP_DecodeBlock      (qg__ossl()->EVP_DecodeBlock)
#define EVP_Digest           (qg__ossl()->EVP_Digest)
#define EVP_DigestFinal_ex   (qg__ossl()->EVP_DigestFinal_ex)
#define EVP_DigestInit_ex2   (qg__ossl()->EVP_DigestInit_ex2)
#define EVP_DigestSign       (qg__ossl()->EVP_DigestSign)
#define EVP_DigestSignInit   (qg__ossl()->EVP_DigestSignInit)
#define EVP_DigestUpdate     (qg__ossl()->EVP_DigestUpdate)
#define EVP_DigestVerify     (qg__ossl()->EVP_DigestVerify)
#define EVP_DigestVerifyInit (qg__ossl()->EVP_DigestVerifyInit)
#define EVP_EncodeBlock      (qg__ossl()->EVP_EncodeBlock)
#define EVP_MAC_CTX_free     (qg__ossl()->EVP_MAC_CTX_free)
#define EVP_MAC_CTX_new      (qg__ossl()->EVP_MAC_CTX_new)
#define EVP_MAC_fetch        (qg__ossl()->EVP_MAC_fetch)
#define EVP_MAC_final        (qg__ossl()->EVP_MAC_final)
#define EVP_MAC_init         (qg__ossl()->EVP_MAC_init)
#define EVP_MAC_update       (qg__ossl()->EVP_MAC_update)
#define EVP_MD_CTX_free      (qg__ossl()->EVP_MD_CTX_free)
#define EVP_MD_CTX_new       (qg__ossl()->EVP_MD_CTX_new)
#define EVP_MD_fetch         (qg__ossl()->EVP_MD_fetch)
#define EVP_PKEY_free        (qg__ossl()->EVP_PKEY_free)
#define EVP_PKEY_get_id      (qg__ossl()->EVP_PKEY_get_id)
#define EVP_sha256           (qg__ossl()->EVP_sha256)
#define HMAC                 (qg__ossl()->HMAC)
#define PEM_read_PUBKEY      (qg__ossl()->PEM_read_PUBKEY)
#define PEM_read_PrivateKey  (qg__ossl()->PEM_read_PrivateKey)
#endif

#endif /* QG_OSSL_H */
