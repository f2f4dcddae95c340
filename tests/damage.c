/*
 * damage.c DIR KIND - damages the store in DIR one way, as a failing disk
 * or a bad copy would; damage_test.sh runs every command on the result.
 *
 * The pages to damage are found the way LMDB finds them, so that the
 * damage lands on pages in use, not on free ones: the newer meta page
 * names the main database's root, whose leaf names each database's root.
 * LMDB 0.9's on-disk layout, 64-bit page numbers (see src/lib/store_check.c).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fd;
static uint32_t psize;
static uint64_t main_root;

static uint64_t
rd(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    memcpy(&v, p, n); /* host order, little-endian hosts */
    return v;
}

static void
die(const char *what)
{
    fprintf(stderr, "damage: %s\n", what);
    exit(2);
}

static void
page(uint64_t pgno, unsigned char *buf)
{
    if (pread(fd, buf, psize, (off_t)(pgno * psize)) != (ssize_t)psize)
        die("short read");
}

static void
write_at(uint64_t off, const void *buf, size_t len)
{
    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        die("write failed");
}

static void
zero_page(uint64_t pgno)
{
    unsigned char *z = calloc(1, psize);

    write_at(pgno * psize, z, psize);
    free(z);
}

/* Deterministic "random" bytes: xorshift64 from a fixed seed. */
static void
noise(uint64_t off, size_t len, uint64_t seed)
{
    unsigned char buf[256];
    size_t i;

    for (i = 0; i < len && i < sizeof(buf); i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        buf[i] = (unsigned char)seed;
    }
    write_at(off, buf, i);
}

/* The newer meta page: page size, main root. */
static int
read_meta(void)
{
    unsigned char m[2][160];
    int i, newer;

    for (i = 0; i < 2; i++)
        if (pread(fd, m[i], sizeof(m[i]), i ? rd(m[0] + 40, 4) : 0) !=
            (ssize_t)sizeof(m[i]))
            die("no meta page");
    newer = rd(m[1] + 144, 8) > rd(m[0] + 144, 8);
    psize = (uint32_t)rd(m[newer] + 40, 4);
    main_root = rd(m[newer] + 128, 8);
    return newer;
}

/* The root page and depth of the named database. */
static uint64_t
root_of(const char *name, unsigned *depth)
{
    unsigned char *p = malloc(psize);
    unsigned n, i, off, ksize;

    page(main_root, p);
    n = ((unsigned)rd(p + 12, 2) - 16) / 2;
    for (i = 0; i < n; i++) {
        off = (unsigned)rd(p + 16 + 2 * i, 2);
        ksize = (unsigned)rd(p + off + 6, 2);
        if (ksize == strlen(name) && memcmp(p + off + 8, name, ksize) == 0) {
            const unsigned char *db = p + off + 8 + ksize;
            uint64_t root = rd(db + 40, 8);

            *depth = (unsigned)rd(db + 6, 2);
            free(p);
            return root;
        }
    }
    die("no such database");
    return 0;
}

/* The first (or last) child of a branch page. */
static uint64_t
child_of(uint64_t pgno, int last)
{
    unsigned char *p = malloc(psize);
    unsigned off, n;
    uint64_t child;

    page(pgno, p);
    n = ((unsigned)rd(p + 12, 2) - 16) / 2;
    off = (unsigned)rd(p + 16 + (last ? 2 * (n - 1) : 0), 2);
    child =
        rd(p + off, 2) | rd(p + off + 2, 2) << 16 | rd(p + off + 4, 2) << 32;
    free(p);
    return child;
}

int
main(int argc, char **argv)
{
    char path[4096];
    const char *kind;
    unsigned depth;
    uint64_t root, leaf, last_leaf, used, d_tickets, d_aliases;
    struct stat sb;
    int newer;

    if (argc != 3)
        die("usage: damage DIR KIND");
    kind = argv[2];
    snprintf(path, sizeof(path), "%s/%s", argv[1],
             strcmp(kind, "lock-garbage") == 0 ? "lock.mdb" : "data.mdb");
    if ((fd = open(path, O_RDWR)) < 0 || fstat(fd, &sb) != 0)
        die("cannot open the store's file");
    if (strcmp(kind, "lock-garbage") == 0) {
        psize = 4096;
        noise(0, 256, 1);
        noise(1024, 256, 2);
        return 0;
    }
    newer = read_meta();
    root = root_of("history", &depth);
    if (depth < 2)
        die("the history tree has no branch page: use a larger store");
    leaf = child_of(root, 0);
    last_leaf = child_of(root, 1);
    while (--depth > 1) {
        leaf = child_of(leaf, 0);
        last_leaf = child_of(last_leaf, 1);
    }
    d_tickets = root_of("tickets", &depth);
    d_aliases = root_of("aliases", &depth);
    /* The last of these pages in use: a file that ends before it is cut
     * short (a sound file may end before the meta's last page, when the
     * free list holds the final pages). */
    used = main_root;
    used = root > used ? root : used;
    used = leaf > used ? leaf : used;
    used = last_leaf > used ? last_leaf : used;
    used = d_tickets > used ? d_tickets : used;
    used = d_aliases > used ? d_aliases : used;

    if (strcmp(kind, "half") == 0) {
        if (ftruncate(fd, sb.st_size / 2))
            die("truncate");
    } else if (strcmp(kind, "page-boundary") == 0) {
        if (ftruncate(fd, (off_t)(used * psize)))
            die("truncate");
    } else if (strcmp(kind, "one-byte-short") == 0) {
        if (ftruncate(fd, (off_t)((used + 1) * psize - 1)))
            die("truncate");
    } else if (strcmp(kind, "metas-zeroed") == 0) {
        zero_page(0);
        zero_page(1);
    } else if (strcmp(kind, "newer-meta-zeroed") == 0) {
        zero_page((uint64_t)newer);
    } else if (strcmp(kind, "main-root-zeroed") == 0) {
        zero_page(main_root);
    } else if (strcmp(kind, "branch-zeroed") == 0) {
        zero_page(root);
    } else if (strcmp(kind, "leaf-zeroed") == 0) {
        zero_page(leaf);
    } else if (strcmp(kind, "last-leaf-zeroed") == 0) {
        zero_page(last_leaf);
    } else if (strcmp(kind, "random-in-last-leaf") == 0) {
        noise(last_leaf * psize + 16, 64, 29);
    } else if (strcmp(kind, "random-in-leaf") == 0) {
        noise(leaf * psize + 16, 64, 7);
    } else if (strcmp(kind, "random-in-pages") == 0) {
        noise(root * psize + 8, 64, 11);
        noise(leaf * psize + psize / 2, 64, 13);
        noise(d_tickets * psize + 16, 64, 17);
        noise(d_aliases * psize + 40, 64, 19);
    } else if (strcmp(kind, "page-number") == 0) {
        /* a page that claims to be another: a misdirected write */
        noise(leaf * psize, 8, 23);
    } else {
        die("unknown kind");
    }
    close(fd);
    return 0;
}
