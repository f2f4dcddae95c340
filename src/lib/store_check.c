/*
 * store_check.c - finding a damaged data.mdb before LMDB reads it.
 *
 * LMDB trusts its file: a page number past the end of a truncated file is
 * a SIGBUS in the map, a garbage node offset a SIGSEGV, a zeroed page an
 * assertion and abort().  None of that can be caught safely inside the
 * library (a signal handler is the process's, not ours, and LMDB's state
 * after a fault is unknown), so the damage must be found first, by code
 * that reads the file with pread() and checks every offset before it
 * follows it.  Two checks:
 *
 *   qg_store_check_file()  at every open, before mdb_env_open(): both meta
 *                           pages are LMDB's and the file is as long as the
 *                           newer one says.  Reads two pages.
 *   qg__check_pages()       every page of every tree, in the snapshot of a
 *                           read transaction that qg_store_check() holds.
 *                           Reads the whole file.
 *
 * The layouts below are LMDB 0.9's on-disk format (mdb.c: MDB_page,
 * MDB_node, MDB_db, MDB_meta), in host byte order as LMDB writes them, for
 * 64-bit page numbers (pgno_t is size_t; the MDB_VL32 build is not
 * supported).  The format has been frozen since LMDB 0.9.0
 * (MDB_DATA_VERSION 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "qgate_int.h"

/* MDB_page: pgno (8), pad (2), flags (2), lower (2), upper (2) or, for an
 * overflow page, the count of its pages (4); then the node offsets. */
#define PAGEHDRSZ  16
#define P_BRANCH   0x01
#define P_LEAF     0x02
#define P_OVERFLOW 0x04
#define P_META     0x08
#define P_LEAF2    0x20
#define P_SUBP     0x40
#define P_KINDS    (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2 | P_SUBP)
/* MDB_node: lo (2), hi (2), flags (2), key size (2), key, data. */
#define NODESIZE  8
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04
/* MDB_db: pad (4), flags (2), depth (2), branch, leaf and overflow pages,
 * entries, root (8 each). */
#define DBSIZE 48
/* MDB_meta after the page header: magic (4), version (4), address (8),
 * map size (8), the free and main MDB_db, last page (8), txnid (8). */
#define META_MAGIC     0xBEEFC0DEu
#define META_VERSION   1
#define META_FREE_DB   24
#define META_MAIN_DB   (META_FREE_DB + DBSIZE)
#define META_LAST_PG   (META_MAIN_DB + DBSIZE)
#define META_TXNID     (META_LAST_PG + 8)
#define META_LEN       (PAGEHDRSZ + META_TXNID + 8)
#define NUM_METAS      2
#define P_INVALID      UINT64_MAX
#define MAX_DEPTH      32 /* LMDB's CURSOR_STACK */
#define MIN_PAGESIZE   512
#define MAX_PAGESIZE   65536
#define SNAPSHOT_TRIES 16

static uint16_t
rd16(const unsigned char *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t
rd32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t
rd64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* A tree's record (MDB_db), decoded. */
typedef struct tree {
    uint32_t pad;
    uint16_t flags, depth;
    uint64_t branch, leaf, overflow, entries, root;
} tree;

static void
tree_decode(const unsigned char *p, tree *t)
{
    t->pad = rd32(p);
    t->flags = rd16(p + 4);
    t->depth = rd16(p + 6);
    t->branch = rd64(p + 8);
    t->leaf = rd64(p + 16);
    t->overflow = rd64(p + 24);
    t->entries = rd64(p + 32);
    t->root = rd64(p + 40);
}

/* A meta page, decoded; the page's first META_LEN bytes. */
typedef struct meta {
    int valid; /* P_META, the magic, version 1 */
    uint32_t psize;
    uint64_t last_pg, txnid;
    tree free, main;
} meta;

static int
meta_decode(const unsigned char *p, meta *m)
{
    const unsigned char *mm = p + PAGEHDRSZ;

    memset(m, 0, sizeof(*m));
    if (!(rd16(p + 10) & P_META) || rd32(mm) != META_MAGIC)
        return 0;
    if (rd32(mm + 4) != META_VERSION)
        return QG_EFORMAT;
    tree_decode(mm + META_FREE_DB, &m->free);
    tree_decode(mm + META_MAIN_DB, &m->main);
    m->psize = m->free.pad; /* LMDB keeps the page size there */
    m->last_pg = rd64(mm + META_LAST_PG);
    m->txnid = rd64(mm + META_TXNID);
    m->valid = m->psize >= MIN_PAGESIZE && m->psize <= MAX_PAGESIZE &&
               (m->psize & (m->psize - 1)) == 0 && m->last_pg >= 1;
    return 0;
}

static int say(char *detail, size_t dlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Describes the damage; returns QG_ECORRUPT. */
static int
say(char *detail, size_t dlen, const char *fmt, ...)
{
    va_list ap;

    if (detail && dlen) {
        va_start(ap, fmt);
        vsnprintf(detail, dlen, fmt, ap);
        va_end(ap);
    }
    return QG_ECORRUPT;
}

/* Exactly len bytes at off, or 1 when the file ends first. */
static int
read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return QG_EIO;
        if (n == 0)
            return 1;
        got += (size_t)n;
    }
    return 0;
}

/*
 * Both meta pages, as LMDB reads them in mdb_env_read_header(): page 0 at
 * offset 0, page 1 at the page size that page 0 states.  LMDB refuses the
 * file unless both are valid, and then uses the newer (higher txnid).
 */
static int
read_metas(int fd, uint64_t size, meta m[NUM_METAS], char *detail, size_t dlen)
{
    unsigned char buf[META_LEN];
    uint64_t off = 0;
    int i, rc;

    for (i = 0; i < NUM_METAS; i++) {
        if ((rc = read_at(fd, buf, sizeof(buf), off)) < 0)
            return rc;
        if (rc > 0)
            return say(detail, dlen,
                       "data.mdb is %llu bytes, too short for meta page %d",
                       (unsigned long long)size, i);
        if ((rc = meta_decode(buf, &m[i])))
            return rc;
        if (!m[i].valid)
            return say(detail, dlen,
                       "meta page %d of data.mdb is not an LMDB meta page "
                       "(zeroed or overwritten)",
                       i);
        off = m[0].psize;
    }
    if (m[1].psize != m[0].psize)
        return say(detail, dlen,
                   "the meta pages of data.mdb disagree on the page size "
                   "(%u and %u)",
                   m[0].psize, m[1].psize);
    return 0;
}

/*
 * The pages LMDB reads first, at open, are the roots of the free list and
 * of the main database: they must lie inside the file, or the first read
 * is a SIGBUS, and be the pages their trees need, or LMDB's first search
 * fails an assertion.  The file need not reach the meta's last page: when
 * the free list holds the final pages, LMDB never wrote them (see
 * mm_last_pg in mdb.c), so a sound file may be shorter than
 * (last_pg + 1) * psize.
 */
static int
check_roots(int fd, const meta *m, uint64_t size, char *detail, size_t dlen)
{
    const tree *roots[] = {&m->free, &m->main};
    const char *names[] = {"free list", "main database"};
    unsigned char hdr[PAGEHDRSZ];
    unsigned kind;
    size_t i;
    int rc;

    for (i = 0; i < 2; i++) {
        if (roots[i]->root == P_INVALID)
            continue;
        if (roots[i]->root < NUM_METAS || roots[i]->root > m->last_pg)
            return say(detail, dlen,
                       "the %s's root page %llu lies outside the pages of "
                       "data.mdb's meta page (2..%llu)",
                       names[i], (unsigned long long)roots[i]->root,
                       (unsigned long long)m->last_pg);
        if (roots[i]->root >= size / m->psize)
            return say(detail, dlen,
                       "data.mdb is %llu bytes but the %s's root page %llu "
                       "lies past its end: the file was cut short",
                       (unsigned long long)size, names[i],
                       (unsigned long long)roots[i]->root);
        if ((rc = read_at(fd, hdr, sizeof(hdr), roots[i]->root * m->psize)))
            return rc < 0 ? rc : QG_EIO;
        kind = rd16(hdr + 10) & P_KINDS;
        if (rd64(hdr) != roots[i]->root ||
            kind != (roots[i]->depth > 1 ? P_BRANCH : P_LEAF))
            return say(detail, dlen,
                       "the %s's root page %llu is not the %s page its tree "
                       "needs: zeroed or overwritten",
                       names[i], (unsigned long long)roots[i]->root,
                       roots[i]->depth > 1 ? "branch" : "leaf");
    }
    return 0;
}

/*
 * Without a read transaction nothing keeps a writer from reusing the root
 * pages just read (two commits later they may belong to anything), so a
 * verdict counts only if no commit came in meanwhile: the newer meta page
 * must be the same after the check as before.  Else check again; when
 * writers never let it finish, say nothing (the walk, under a read
 * transaction, has the last word).
 */
static int
check_file(int fd, char *detail, size_t dlen)
{
    meta m[NUM_METAS], after[NUM_METAS];
    struct stat sb;
    uint64_t txnid;
    int rc, tries;

    for (tries = 0; tries < SNAPSHOT_TRIES; tries++) {
        if (fstat(fd, &sb) != 0)
            return QG_EIO;
        if (sb.st_size == 0)
            return 0; /* a new store: LMDB writes the meta pages */
        if ((rc = read_metas(fd, (uint64_t)sb.st_size, m, detail, dlen)))
            return rc;
        txnid = m[m[1].txnid > m[0].txnid].txnid;
        /* The size again, after the meta pages: a writer that committed
         * meanwhile wrote its pages before its meta page. */
        if (fstat(fd, &sb) != 0)
            return QG_EIO;
        rc = check_roots(fd, &m[m[1].txnid > m[0].txnid], (uint64_t)sb.st_size,
                         detail, dlen);
        if (rc != QG_ECORRUPT)
            return rc;
        if (read_metas(fd, (uint64_t)sb.st_size, after, NULL, 0) != 0 ||
            after[after[1].txnid > after[0].txnid].txnid == txnid)
            return rc;
    }
    if (detail && dlen)
        detail[0] = '\0';
    return 0;
}

int
qg_store_check_file(const char *dir, char *detail, size_t dlen)
{
    char path[4096];
    int fd, rc;

    if (detail && dlen)
        detail[0] = '\0';
    if (dir == NULL)
        return QG_EINVAL;
    if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >=
        sizeof(path))
        return QG_EINVAL;
    /* No file is a new store; a file that cannot be opened is for
     * mdb_env_open() to report. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    rc = check_file(fd, detail, dlen);
    close(fd);
    return rc;
}

/* ----- the page walk ----------------------------------------------------- */

typedef struct walk {
    int fd;
    uint32_t psize;
    uint64_t last_pg;    /* the snapshot's last page */
    uint64_t in_file;    /* pages the file holds whole */
    unsigned char *seen; /* a bit per page in the file: used or free */
    char *detail;
    size_t dlen;
    char name[64]; /* the tree being walked, for messages */
} walk;

/* What a tree walk counts, to compare with the tree's record. */
typedef struct counts {
    uint64_t branch, leaf, overflow, entries;
    unsigned char last[MAX_PAGESIZE]; /* the last leaf key seen */
    size_t last_len;
    int have_last, ordered;
} counts;

/*
 * Pages pgno..pgno+n-1 are used by a tree or, for what "free", listed as
 * free: they must be among the snapshot's pages, used ones inside the file
 * (free ones may lie past its end, never written), and none twice.
 */
static int
claim(walk *w, uint64_t pgno, uint64_t n, const char *what)
{
    uint64_t i;

    if (pgno < NUM_METAS || pgno > w->last_pg || n > w->last_pg - pgno + 1)
        return say(w->detail, w->dlen,
                   "%s: %s page %llu lies outside the store's pages 2..%llu",
                   w->name, what, (unsigned long long)pgno,
                   (unsigned long long)w->last_pg);
    if (strcmp(what, "free") != 0 && pgno + n > w->in_file)
        return say(w->detail, w->dlen,
                   "%s: %s page %llu lies past the end of data.mdb (%llu "
                   "pages): the file was cut short",
                   w->name, what, (unsigned long long)(pgno + n - 1),
                   (unsigned long long)w->in_file);
    for (i = pgno; i < pgno + n && i < w->in_file; i++) {
        if (w->seen[i / 8] & (1u << (i % 8)))
            return say(w->detail, w->dlen, "%s: %s page %llu is used twice",
                       w->name, what, (unsigned long long)i);
        w->seen[i / 8] |= (unsigned char)(1u << (i % 8));
    }
    return 0;
}

static int
read_page(walk *w, uint64_t pgno, unsigned char *buf)
{
    int rc = read_at(w->fd, buf, w->psize, pgno * w->psize);

    if (rc > 0)
        return say(w->detail, w->dlen,
                   "%s: page %llu lies past the end of data.mdb: the file "
                   "was cut short",
                   w->name, (unsigned long long)pgno);
    if (rc)
        return rc;
    if (rd64(buf) != pgno)
        return say(w->detail, w->dlen,
                   "%s: page %llu does not carry its own number (it holds "
                   "%llu): zeroed or overwritten",
                   w->name, (unsigned long long)pgno,
                   (unsigned long long)rd64(buf));
    return 0;
}

/* LMDB's default order (mdb_cmp_memn): bytes, then the shorter first. */
static int
key_cmp(const unsigned char *a, size_t alen, const unsigned char *b,
        size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

static int
check_order(walk *w, counts *c, uint64_t pgno, const unsigned char *key,
            size_t len)
{
    if (!c->ordered)
        return 0;
    if (c->have_last && key_cmp(c->last, c->last_len, key, len) >= 0)
        return say(w->detail, w->dlen, "%s: page %llu: keys out of order",
                   w->name, (unsigned long long)pgno);
    memcpy(c->last, key, len);
    c->last_len = len;
    c->have_last = 1;
    return 0;
}

/*
 * The nodes of a page or sub-page of len bytes at p: the offsets table
 * from PAGEHDRSZ to lower, the nodes from upper to len.  Returns the count
 * of nodes, or -1.
 */
static int
node_count(const unsigned char *p, size_t len)
{
    unsigned lower = rd16(p + 12), upper = rd16(p + 14);

    if (lower < PAGEHDRSZ || (lower - PAGEHDRSZ) % 2 || upper < lower ||
        upper > len)
        return -1;
    return (int)((lower - PAGEHDRSZ) / 2);
}

/* Node i of a page of len bytes: its offset, checked to hold the header
 * and key; 0 when it does not. */
static size_t
node_at(const unsigned char *p, size_t len, int i)
{
    size_t off = rd16(p + PAGEHDRSZ + 2 * (size_t)i);

    if (off < rd16(p + 14) || off + NODESIZE > len ||
        off + NODESIZE + rd16(p + off + 6) > len)
        return 0;
    return off;
}

static int walk_tree(walk *w, const tree *t, int is_free, int is_main);

/* The free list's values: page numbers free for reuse (an MDB_IDL: the
 * count, then the numbers). */
static int
claim_free(walk *w, const unsigned char *ids, size_t len)
{
    uint64_t n, i;
    int rc;

    /* LMDB may leave a record longer than its count needs, never
     * shorter. */
    if (len < 8 || (n = rd64(ids)) > len / 8 - 1)
        return say(w->detail, w->dlen, "free list: a malformed entry");
    for (i = 1; i <= n; i++)
        if ((rc = claim(w, rd64(ids + 8 * i), 1, "free")))
            return rc;
    return 0;
}

/* A value on overflow pages: the first page's header, and its pages. */
static int
walk_overflow(walk *w, uint64_t pgno, uint64_t dsize, int is_free, counts *c)
{
    unsigned char hdr[PAGEHDRSZ], *ids;
    uint64_t need = (PAGEHDRSZ - 1 + dsize) / w->psize + 1, pages;
    int rc;

    if (pgno < NUM_METAS || pgno >= w->in_file)
        return claim(w, pgno, 1, "overflow");
    /* inside the file, so read whole unless the file shrank under us */
    if ((rc = read_at(w->fd, hdr, sizeof(hdr), pgno * w->psize)))
        return rc < 0 ? rc : QG_EIO;
    pages = rd32(hdr + 12);
    if (rd64(hdr) != pgno || (rd16(hdr + 10) & P_KINDS) != P_OVERFLOW ||
        pages < need)
        return say(w->detail, w->dlen,
                   "%s: overflow page %llu is not the start of a %llu-page "
                   "value",
                   w->name, (unsigned long long)pgno, (unsigned long long)need);
    if ((rc = claim(w, pgno, pages, "overflow")))
        return rc;
    c->overflow += pages;
    if (!is_free)
        return 0;
    if ((ids = malloc(dsize ? dsize : 1)) == NULL)
        return QG_ENOMEM;
    if ((rc = read_at(w->fd, ids, dsize, pgno * w->psize + PAGEHDRSZ)) > 0)
        rc = say(w->detail, w->dlen, "free list: past the end of data.mdb");
    if (rc == 0)
        rc = claim_free(w, ids, dsize);
    free(ids);
    return rc;
}

/* A DUPSORT value kept inside its node: a leaf page of its own. */
static int
walk_subpage(walk *w, uint64_t pgno, const unsigned char *sp, size_t len,
             counts *c)
{
    int n, i;

    if (len < PAGEHDRSZ || !(rd16(sp + 10) & P_SUBP) ||
        (n = node_count(sp, len)) < 0)
        return say(w->detail, w->dlen,
                   "%s: page %llu: a malformed duplicate list", w->name,
                   (unsigned long long)pgno);
    if (rd16(sp + 10) & P_LEAF2) {
        if ((size_t)rd16(sp + 12) > len)
            return say(w->detail, w->dlen,
                       "%s: page %llu: a malformed duplicate list", w->name,
                       (unsigned long long)pgno);
    } else {
        for (i = 0; i < n; i++)
            if (node_at(sp, len, i) == 0)
                return say(w->detail, w->dlen,
                           "%s: page %llu: a duplicate lies outside its "
                           "list",
                           w->name, (unsigned long long)pgno);
    }
    c->entries += (uint64_t)n;
    return 0;
}

static int
walk_leaf_node(walk *w, uint64_t pgno, const unsigned char *p, size_t off,
               const tree *t, int is_free, int is_main, counts *c)
{
    unsigned flags = rd16(p + off + 4), ksize = rd16(p + off + 6);
    uint64_t dsize = rd16(p + off) | (uint64_t)rd16(p + off + 2) << 16;
    const unsigned char *key = p + off + NODESIZE, *data = key + ksize;
    size_t room = w->psize - off - NODESIZE - ksize;
    char saved[sizeof(w->name)];
    tree sub;
    int rc;

    if ((rc = check_order(w, c, pgno, key, ksize)))
        return rc;
    if (flags & ~(unsigned)(F_BIGDATA | F_SUBDATA | F_DUPDATA) ||
        ((flags & F_DUPDATA) && !(t->flags & MDB_DUPSORT)) ||
        ((flags & F_SUBDATA) && !(flags & F_DUPDATA) && !is_main))
        return say(w->detail, w->dlen, "%s: page %llu: a node with flags %#x",
                   w->name, (unsigned long long)pgno, flags);
    if (flags & F_BIGDATA) {
        if (room < 8)
            return say(w->detail, w->dlen,
                       "%s: page %llu: a node runs past the page", w->name,
                       (unsigned long long)pgno);
        c->entries++;
        return walk_overflow(w, rd64(data), dsize, is_free, c);
    }
    if (dsize > room)
        return say(w->detail, w->dlen,
                   "%s: page %llu: a node runs past the page", w->name,
                   (unsigned long long)pgno);
    if (flags & F_SUBDATA) {
        if (dsize != DBSIZE)
            return say(w->detail, w->dlen,
                       "%s: page %llu: a database record of %llu bytes",
                       w->name, (unsigned long long)pgno,
                       (unsigned long long)dsize);
        tree_decode(data, &sub);
        memcpy(saved, w->name, sizeof(saved));
        if (flags & F_DUPDATA) {
            /* The duplicates' own tree: its keys are the values, in the
             * parent's data order, which its record does not carry; take
             * any order but memcmp's as no order to check. */
            if (t->flags & (MDB_REVERSEDUP | MDB_INTEGERDUP))
                sub.flags |= MDB_REVERSEKEY;
            c->entries += sub.entries;
            rc = walk_tree(w, &sub, 0, 0);
        } else {
            c->entries++;
            snprintf(w->name, sizeof(w->name), "database \"%.*s\"",
                     (int)(ksize < 40 ? ksize : 40), (const char *)key);
            rc = walk_tree(w, &sub, 0, 0);
        }
        memcpy(w->name, saved, sizeof(saved));
        return rc;
    }
    if (flags & F_DUPDATA)
        return walk_subpage(w, pgno, data, dsize, c);
    c->entries++;
    return is_free ? claim_free(w, data, dsize) : 0;
}

static int
walk_page(walk *w, uint64_t pgno, unsigned level, const tree *t, int is_free,
          int is_main, counts *c)
{
    unsigned char *p;
    unsigned kind;
    size_t off;
    int n, i, rc;

    if ((rc = claim(w, pgno, 1, "tree")))
        return rc;
    if ((p = malloc(w->psize)) == NULL)
        return QG_ENOMEM;
    if ((rc = read_page(w, pgno, p)))
        goto done;
    kind = rd16(p + 10) & P_KINDS;
    n = node_count(p, w->psize);
    if (kind != (level < t->depth ? P_BRANCH : P_LEAF) &&
        !(level == t->depth && kind == (P_LEAF | P_LEAF2) &&
          (t->flags & MDB_DUPFIXED))) {
        rc = say(w->detail, w->dlen,
                 "%s: page %llu is not the %s page the tree needs at depth "
                 "%u (flags %#x)",
                 w->name, (unsigned long long)pgno,
                 level < t->depth ? "branch" : "leaf", level + 1, rd16(p + 10));
        goto done;
    }
    if (n < 0 || (kind == P_BRANCH && n < 1)) {
        rc = say(w->detail, w->dlen,
                 "%s: page %llu: its node table is out of bounds", w->name,
                 (unsigned long long)pgno);
        goto done;
    }
    if (kind & P_LEAF2) { /* fixed-size keys, no nodes */
        c->leaf++;
        c->entries += (uint64_t)n;
        goto done;
    }
    kind == P_BRANCH ? c->branch++ : c->leaf++;
    for (i = 0; i < n && rc == 0; i++) {
        if ((off = node_at(p, w->psize, i)) == 0) {
            rc = say(w->detail, w->dlen,
                     "%s: page %llu: node %d lies outside the page", w->name,
                     (unsigned long long)pgno, i);
        } else if (kind == P_BRANCH) {
            uint64_t child = rd16(p + off) | (uint64_t)rd16(p + off + 2) << 16 |
                             (uint64_t)rd16(p + off + 4) << 32;

            rc = walk_page(w, child, level + 1, t, is_free, is_main, c);
        } else {
            rc = walk_leaf_node(w, pgno, p, off, t, is_free, is_main, c);
        }
    }
done:
    free(p);
    return rc;
}

static int
walk_tree(walk *w, const tree *t, int is_free, int is_main)
{
    counts *c;
    int rc;

    if (t->root == P_INVALID) {
        if (t->depth || t->branch || t->leaf || t->overflow || t->entries)
            return say(w->detail, w->dlen,
                       "%s: an empty tree with pages or entries", w->name);
        return 0;
    }
    if (t->depth == 0 || t->depth > MAX_DEPTH)
        return say(w->detail, w->dlen, "%s: a tree of depth %u", w->name,
                   t->depth);
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return QG_ENOMEM;
    c->ordered = !(t->flags & (MDB_REVERSEKEY | MDB_INTEGERKEY));
    rc = walk_page(w, t->root, 1, t, is_free, is_main, c);
    if (rc == 0 && (c->branch != t->branch || c->leaf != t->leaf ||
                    c->overflow != t->overflow || c->entries != t->entries))
        rc = say(w->detail, w->dlen,
                 "%s: the tree holds %llu branch, %llu leaf and %llu "
                 "overflow pages and %llu entries; its record says %llu, "
                 "%llu, %llu and %llu",
                 w->name, (unsigned long long)c->branch,
                 (unsigned long long)c->leaf, (unsigned long long)c->overflow,
                 (unsigned long long)c->entries, (unsigned long long)t->branch,
                 (unsigned long long)t->leaf, (unsigned long long)t->overflow,
                 (unsigned long long)t->entries);
    free(c);
    return rc;
}

int
qg__check_pages(int fd, uint64_t txnid, char *detail, size_t dlen)
{
    meta both[NUM_METAS], m;
    walk w;
    struct stat sb;
    int rc;

    if (detail && dlen)
        detail[0] = '\0';
    memset(&w, 0, sizeof(w));
    w.fd = fd;
    w.detail = detail;
    w.dlen = dlen;
    if (fstat(fd, &sb) != 0)
        return QG_EIO;
    /* LMDB's reader takes meta page txnid % 2; a writer may overwrite it
     * two commits later, so a page that already holds a newer transaction
     * means: begin again. */
    if ((rc = read_metas(fd, (uint64_t)sb.st_size, both, detail, dlen)))
        return rc;
    m = both[txnid % 2];
    if (m.txnid > txnid)
        return 1;
    if (m.txnid < txnid)
        return say(detail, dlen,
                   "meta page %d of data.mdb holds transaction %llu, "
                   "older than the last committed one (%llu)",
                   (int)(txnid % 2), (unsigned long long)m.txnid,
                   (unsigned long long)txnid);
    /* The file only grows while the store is open; take its size now. */
    if (fstat(fd, &sb) != 0)
        return QG_EIO;
    if ((rc = check_roots(fd, &m, (uint64_t)sb.st_size, detail, dlen)))
        goto done;
    w.psize = m.psize;
    w.last_pg = m.last_pg;
    w.in_file = (uint64_t)sb.st_size / m.psize;
    if ((w.seen = calloc(w.in_file / 8 + 1, 1)) == NULL) {
        rc = QG_ENOMEM;
        goto done;
    }
    snprintf(w.name, sizeof(w.name), "free list");
    if ((rc = walk_tree(&w, &m.free, 1, 0)))
        goto done;
    snprintf(w.name, sizeof(w.name), "main database");
    rc = walk_tree(&w, &m.main, 0, 1);
done:
    free(w.seen);
    if (rc == QG_ECORRUPT && detail && dlen && detail[0] == '\0')
        snprintf(detail, dlen, "damaged");
    return rc;
}
