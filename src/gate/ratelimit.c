/*
 * ratelimit.c - token buckets per source address, for unsigned deliveries.
 *
 * An unsigned delivery (qg_prepared_unsigned()) costs the gate a commit
 * and a rejection log entry, and proves nothing about who sent it.  Each
 * source address has a bucket of `burst` tokens, refilled at `rate` a
 * minute; an unsigned delivery takes one, and with none left it is
 * answered 429 and not recorded.  Signed deliveries never take a token.
 *
 * IPv4 addresses have a bucket each; IPv6 addresses share one per /64,
 * the block one subscriber usually holds.  The table is fixed in size, so
 * a sender with many addresses cannot grow it: a bucket that has filled
 * up again is as good as none and is reused, and an address that finds
 * no free slot among its few candidates shares the first one.  Sharing
 * can only make the limit stricter for unsigned deliveries, which nobody
 * needs.  The slots are chosen by a hash keyed at random per process, so
 * a sender cannot aim at another's bucket.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "gate.h"

#define SLOTS  4096
#define PROBES 4
#define KEYLEN 9 /* family, then 4 (IPv4) or 8 (IPv6 /64) bytes */

typedef struct bucket {
    unsigned char key[KEYLEN];
    int used;
    double tokens;
    int64_t last_us;
} bucket;

struct ratelimit {
    pthread_mutex_t lock;
    double per_us; /* tokens added per microsecond */
    double burst;
    uint64_t seed;
    bucket slot[SLOTS];
};

int
ratelimit_new(long per_minute, long burst, ratelimit **out)
{
    ratelimit *rl;
    int fd;

    *out = NULL;
    if (per_minute <= 0 || burst <= 0)
        return -1;
    if ((rl = calloc(1, sizeof(*rl))) == NULL)
        return -1;
    pthread_mutex_init(&rl->lock, NULL);
    rl->per_us = (double)per_minute / 60e6;
    rl->burst = (double)burst;
    /* The seed only has to be unknown to senders; the clock will do when
     * there is no /dev/urandom. */
    rl->seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
        if (read(fd, &rl->seed, sizeof(rl->seed)) != sizeof(rl->seed))
            rl->seed ^= (uint64_t)clock();
        close(fd);
    }
    *out = rl;
    return 0;
}

void
ratelimit_free(ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* The bucket's key for an address: IPv4 (also mapped into IPv6) whole,
 * IPv6 by its /64.  Returns 0, or -1 for other families. */
static int
key_of(const struct sockaddr *sa, unsigned char key[KEYLEN])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

    memset(key, 0, KEYLEN);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    if (memcmp(in6->sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0) {
        key[0] = 4;
        memcpy(key + 1, in6->sin6_addr.s6_addr + 12, 4);
    } else {
        key[0] = 6;
        memcpy(key + 1, in6->sin6_addr.s6_addr, 8);
    }
    return 0;
}

/* FNV-1a, started from the seed. */
static uint64_t
hash(uint64_t seed, const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ seed;

    while (n--) {
        h ^= *p++;
        h *= 1099511628211ULL;
    }
    return h ^ h >> 29;
}

static void
refill(const ratelimit *rl, bucket *b, int64_t now_us)
{
    if (now_us > b->last_us)
        b->tokens += (double)(now_us - b->last_us) * rl->per_us;
    if (b->tokens > rl->burst)
        b->tokens = rl->burst;
    b->last_us = now_us;
}

long
ratelimit_take(ratelimit *rl, const struct sockaddr *addr, int64_t now_us)
{
    unsigned char key[KEYLEN];
    bucket *b = NULL, *spare = NULL, *s;
    size_t i, at;
    long wait = 0;

    if (rl == NULL || key_of(addr, key) != 0)
        return 0; /* a socket with no IP address: nothing to key on */
    pthread_mutex_lock(&rl->lock);
    at = (size_t)(hash(rl->seed, key, KEYLEN) % SLOTS);
    for (i = 0; i < PROBES && b == NULL; i++) {
        s = &rl->slot[(at + i) % SLOTS];
        if (s->used && memcmp(s->key, key, KEYLEN) == 0) {
            b = s;
        } else if (spare == NULL) {
            if (s->used)
                refill(rl, s, now_us);
            if (!s->used || s->tokens >= rl->burst)
                spare = s;
        }
    }
    if (b == NULL && spare != NULL) {
        b = spare;
        memcpy(b->key, key, KEYLEN);
        b->used = 1;
        b->tokens = rl->burst;
        b->last_us = now_us;
    } else if (b == NULL) {
        b = &rl->slot[at]; /* every candidate busy: share the first */
    }
    refill(rl, b, now_us);
    if (b->tokens >= 1.0)
        b->tokens -= 1.0;
    else /* whole seconds until the next token, rounded up */
        wait = (long)((1.0 - b->tokens) / rl->per_us / 1e6) + 1;
    pthread_mutex_unlock(&rl->lock);
    return wait;
}
