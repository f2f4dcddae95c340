/*
 * bigendian.h - integers as big-endian bytes: LMDB's keys, so that they
 * sort as numbers (store_int.h), and libpq's binary format, which is in
 * network order (pg_int.h).  Private.
 */
#ifndef QG_BIGENDIAN_H
#define QG_BIGENDIAN_H

#include <stdint.h>

static inline void
put64(unsigned char *p, uint64_t v)
{
    int i;

    for (i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

#endif /* QG_BIGENDIAN_H */
