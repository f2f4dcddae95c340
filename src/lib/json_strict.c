/*
 * json_strict.c - what json-c lets through and the gate must not.
 *
 * json-c 0.16, even with JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8,
 * accepts in strings overlong UTF-8 (C0 AF), surrogates encoded in UTF-8
 * (ED A0 80), code points above U+10FFFF (F4 90 80 80) and raw control
 * characters; it turns an unpaired \uD800 escape into U+FFFD, ends a key
 * at an escaped NUL ("id\u0000x" is "id") and keeps the last of repeated
 * keys.  The gate forwards the body to the HIS byte for byte, so each of
 * these is a place where the HIS may read something other than what the
 * gate decided, or refuse what the gate accepted.
 *
 * This pass runs over text json-c has accepted, so the structure is known
 * to be sound: it only looks inside strings, at object keys and at
 * numbers.  It is written to stay in bounds on any input all the same.
 * The same pass notes where the top-level values start and end (qg__top),
 * so that the decoder needs no walk of its own to find the payload's
 * exact bytes.
 *
 * qg__json_scan(), at the end, makes the same checks with the grammar's
 * too, so that a plain delivery is read in one pass with no json-c tree.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate_int.h"

/* Deeper than json-c lets a body nest (QG__JSON_DEPTH). */
#define MAX_DEPTH 64

/* Keys kept on the stack; a body with more open at once goes to the heap.
 * Chup's deliveries have about 30. */
#define STACK_KEYS 64

/* Up to this many keys an object is checked for repeats pair by pair;
 * past it, sorted (check_keys()). */
#define PAIRWISE_KEYS 24

/* An ASCII digit; isdigit() would also ask the locale. */
#define DIGIT(c) ((c) >= '0' && (c) <= '9')

/* A key as written: the text between its quotes. */
typedef struct key {
    const char *p;
    size_t len;
    size_t at; /* offset of its opening quote in the body */
    int escaped;
} key;

typedef struct scan {
    const char *p;
    size_t len;
    key *keys; /* the keys of every object still open, outermost first */
    size_t nkeys, cap;
    key *stack_keys; /* keys' first home; not freed */
    char *detail;
    size_t dlen;
} scan;

/*
 * Marks, by its high bit, each of the 8 bytes at p that a string does not
 * hold as it is: a quote, a backslash, a control character or a byte of a
 * UTF-8 sequence.  0 when all 8 are plain.  A borrow can only mark bytes
 * after the first match, so the lowest mark is exact: on a little-endian
 * machine it is the first such byte.
 */
static uint64_t
special8(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t x, q, b;

    memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    /* control (x < 0x20), quote, backslash, high bit */
    return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) |
            x) &
           high;
}

static int
hex4(const char *p, size_t i, size_t len, unsigned *out)
{
    unsigned v = 0;
    size_t k;

    if (len < 4 || i > len - 4)
        return -1;
    for (k = 0; k < 4; k++) {
        char c = p[i + k];

        v <<= 4;
        if (DIGIT(c))
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*
 * The length of the UTF-8 sequence at p[i], or 0 with *why set when it is
 * not one (RFC 3629, section 4: the second byte's range depends on the
 * first, which is what rules out overlong forms, surrogates and code
 * points above U+10FFFF).
 */
static size_t
utf8_len(const unsigned char *p, size_t i, size_t len, const char **why)
{
    unsigned char b = p[i], lo = 0x80, hi = 0xBF;
    size_t n, k;

    *why = "not UTF-8";
    if (b < 0x80)
        return 1;
    if (b == 0xC0 || b == 0xC1) {
        *why = "an overlong UTF-8 encoding";
        return 0;
    }
    if (b >= 0xF5) {
        *why = b <= 0xF7 ? "a code point above U+10FFFF" : "not UTF-8";
        return 0;
    }
    if (b < 0xC2)
        return 0; /* a continuation byte with nothing before it */
    n = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (b == 0xE0)
        lo = 0xA0;
    else if (b == 0xED)
        hi = 0x9F;
    else if (b == 0xF0)
        lo = 0x90;
    else if (b == 0xF4)
        hi = 0x8F;
    if (i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0xBF) {
        if (p[i + 1] < lo) {
            *why = "an overlong UTF-8 encoding";
            return 0;
        }
        if (p[i + 1] > hi) {
            *why = b == 0xED ? "a UTF-16 surrogate encoded in UTF-8"
                             : "a code point above U+10FFFF";
            return 0;
        }
    }
    for (k = 1; k < n; k++)
        if (i + k >= len || p[i + k] < 0x80 || p[i + k] > 0xBF)
            return 0;
    return n;
}

/*
 * Checks the string whose opening quote is at p[i]: UTF-8 as above, no
 * raw byte below 0x20 (RFC 8259, section 7), every \u escape of a
 * surrogate one of a high-low pair.  Sets *end just past the closing
 * quote and *nul when the string holds an escaped NUL.
 */
static qg_reason
check_string(scan *s, size_t i, size_t *end, int *escaped, int *nul)
{
    const unsigned char *u = (const unsigned char *)s->p;
    const char *why;
    unsigned cp = 0, low = 0;
    size_t j = i + 1, n;

    *escaped = *nul = 0;
    for (;;) {
        /* Most of a body is plain text inside strings: 8 bytes a step. */
        while (s->len - j >= 8) {
            uint64_t m = special8(u + j);

            if (m == 0) {
                j += 8;
                continue;
            }
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            j += (size_t)__builtin_ctzll(m) / 8;
#endif
            break;
        }
        while (j < s->len && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' &&
               u[j] != '\\')
            j++;
        if (j >= s->len || u[j] == '"')
            break;
        if (u[j] == '\\') {
            *escaped = 1;
            if (j + 1 < s->len && s->p[j + 1] != 'u') {
                j += 2;
                continue;
            }
            if (hex4(s->p, j + 2, s->len, &cp)) {
                snprintf(s->detail, s->dlen,
                         "invalid JSON at byte %zu: a bad \\u escape", j);
                return QG_R_BAD_JSON;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && j + 7 < s->len &&
                s->p[j + 6] == '\\' && s->p[j + 7] == 'u' &&
                hex4(s->p, j + 8, s->len, &low) == 0 && low >= 0xDC00 &&
                low <= 0xDFFF) {
                j += 12;
                continue;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                snprintf(s->detail, s->dlen,
                         "invalid JSON at byte %zu: \\u%.4s is an unpaired "
                         "surrogate escape",
                         j, s->p + j + 2);
                return QG_R_BAD_JSON;
            }
            *nul |= cp == 0;
            j += 6;
            continue;
        }
        if (u[j] < 0x20) {
            snprintf(s->detail, s->dlen,
                     "invalid JSON at byte %zu: control character 0x%02x "
                     "inside a string; RFC 8259 requires it escaped",
                     j, u[j]);
            return QG_R_BAD_JSON;
        }
        if ((n = utf8_len(u, j, s->len, &why)) == 0) {
            snprintf(s->detail, s->dlen, "invalid JSON at byte %zu: %s", j,
                     why);
            return QG_R_BAD_JSON;
        }
        j += n;
    }
    if (j >= s->len) {
        snprintf(s->detail, s->dlen,
                 "invalid JSON at byte %zu: the body ends inside a string", j);
        return QG_R_BAD_JSON;
    }
    *end = j + 1;
    return QG_R_NONE;
}

/*
 * Checks the number or the word NaN or Infinity that starts at p[i], a
 * value json-c has taken.  json-c 0.16, even in strict mode, takes NaN,
 * Infinity and -Infinity, a point with no digit after it (1., 1.e5) and a
 * leading zero after a sign or before another zero (-01, 00).  None is a
 * number in RFC 8259, section 6, and a HIS parser may refuse the body or
 * read another value.  Sets *end just past the token.
 */
static qg_reason
check_number(scan *s, size_t i, size_t *end)
{
    const char *p = s->p, *why = NULL;
    size_t j = i, digits;

    while (j < s->len &&
           (DIGIT(p[j]) || ((p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z') ||
            p[j] == '.' || p[j] == '+' || p[j] == '-'))
        j++;
    *end = j;
    j = i + (p[i] == '-');
    if (j < *end && !DIGIT(p[j]))
        why = "NaN and Infinity are not numbers in JSON";
    else if (j + 1 < *end && p[j] == '0' && DIGIT(p[j + 1]))
        why = "a number may not start with a zero";
    else {
        while (j < *end && DIGIT(p[j]))
            j++;
        if (j < *end && p[j] == '.') {
            for (digits = 0, j++; j < *end && DIGIT(p[j]); j++)
                digits++;
            if (digits == 0)
                why = "a decimal point needs a digit after it";
        }
    }
    if (why == NULL)
        return QG_R_NONE;
    snprintf(s->detail, s->dlen, "invalid JSON at byte %zu: %.*s: %s", i,
             (int)(*end - i > 32 ? 32 : *end - i), p + i, why);
    return QG_R_BAD_JSON;
}

/* Reads a key's text as json-c stores it, one byte at a time: escapes
 * decoded, \u escapes (pairs joined) as UTF-8.  The text is one
 * check_string() passed, with no escaped NUL. */
typedef struct cursor {
    const char *p, *end;
    unsigned char buf[4];
    int nbuf, ibuf;
} cursor;

static int
next_byte(cursor *c)
{
    unsigned cp = 0, low = 0;
    char e;

    if (c->ibuf < c->nbuf)
        return c->buf[c->ibuf++];
    if (c->p >= c->end)
        return -1;
    if (*c->p != '\\')
        return (unsigned char)*c->p++;
    e = c->p[1];
    c->p += 2;
    switch (e) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return (unsigned char)e; /* '"', '\\', '/' */
    }
    hex4(c->p, 0, (size_t)(c->end - c->p), &cp);
    c->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        hex4(c->p, 2, (size_t)(c->end - c->p), &low);
        c->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    c->ibuf = 1;
    if (cp < 0x80) {
        c->nbuf = c->ibuf = 0;
        return (int)cp;
    } else if (cp < 0x800) {
        c->buf[0] = (unsigned char)(0xC0 | cp >> 6);
        c->nbuf = 2;
    } else if (cp < 0x10000) {
        c->buf[0] = (unsigned char)(0xE0 | cp >> 12);
        c->buf[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        c->nbuf = 3;
    } else {
        c->buf[0] = (unsigned char)(0xF0 | cp >> 18);
        c->buf[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        c->buf[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        c->nbuf = 4;
    }
    c->buf[c->nbuf - 1] = (unsigned char)(0x80 | (cp & 0x3F));
    return c->buf[0];
}

/* Compares two keys by their text as json-c reads it. */
static int
key_text_cmp(const key *x, const key *y)
{
    cursor a, b;
    int ca, cb;

    if (!x->escaped && !y->escaped) {
        int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

        return c ? c : (x->len > y->len) - (x->len < y->len);
    }
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.p = x->p;
    a.end = x->p + x->len;
    b.p = y->p;
    b.end = y->p + y->len;
    do {
        ca = next_byte(&a);
        cb = next_byte(&b);
    } while (ca == cb && ca >= 0);
    return (ca > cb) - (ca < cb);
}

/* Orders keys by text, then by place, so that the occurrences of a key
 * end up side by side, first one first. */
static int
key_order(const void *a, const void *b)
{
    const key *x = a, *y = b;
    int c = key_text_cmp(x, y);

    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* Checks the keys of the object just closed, keys[from..nkeys), in the
 * order they were written, for a repeat, and names the earliest one.  A
 * few keys are compared pair by pair; many are sorted first, so that an
 * object of many keys costs O(n log n), not O(n^2). */
static qg_reason
check_keys(scan *s, size_t from)
{
    key *k, *again = NULL, *first = NULL;
    size_t n = s->nkeys - from, i, j;

    if (n < 2)
        return QG_R_NONE;
    k = s->keys + from;
    if (n <= PAIRWISE_KEYS) {
        /* The first key that repeats an earlier one has one earlier twin. */
        for (j = 1; j < n && again == NULL; j++)
            for (i = 0; i < j; i++)
                if (k[i].len == k[j].len || k[i].escaped || k[j].escaped) {
                    if (key_text_cmp(&k[i], &k[j]) == 0) {
                        first = &k[i];
                        again = &k[j];
                        break;
                    }
                }
    } else {
        qsort(k, n, sizeof(*k), key_order);
        for (i = 1; i < n; i++)
            if (key_text_cmp(&k[i - 1], &k[i]) == 0 &&
                (again == NULL || k[i].at < again->at)) {
                first = &k[i - 1];
                again = &k[i];
            }
    }
    if (again == NULL)
        return QG_R_NONE;
    snprintf(s->detail, s->dlen,
             "key \"%.*s\" at byte %zu repeats the one at byte %zu; json-c "
             "would keep only the last",
             (int)(again->len < 48 ? again->len : 48), again->p, again->at,
             first->at);
    return QG_R_BAD_ENVELOPE;
}

static qg_reason
add_key(scan *s, size_t at, size_t end, int escaped)
{
    key *grown;

    if (s->nkeys == s->cap) {
        size_t cap = s->cap * 2;

        grown = s->keys == s->stack_keys
                    ? malloc(cap * sizeof(*grown))
                    : realloc(s->keys, cap * sizeof(*grown));
        if (grown == NULL) {
            snprintf(s->detail, s->dlen, "out of memory checking the body");
            return QG_R_BAD_JSON;
        }
        if (s->keys == s->stack_keys)
            memcpy(grown, s->keys, s->nkeys * sizeof(*grown));
        s->keys = grown;
        s->cap = cap;
    }
    s->keys[s->nkeys].p = s->p + at + 1;
    s->keys[s->nkeys].len = end - at - 2;
    s->keys[s->nkeys].at = at;
    s->keys[s->nkeys].escaped = escaped;
    s->nkeys++;
    return QG_R_NONE;
}

/* Which top-level key, written as it is, names a value the decoder
 * wants: 1 "payload", 2 "signature", 0 another. */
static int
top_key(const char *p, size_t at, size_t end, int escaped)
{
    size_t n = end - at - 2;

    if (escaped)
        return 0;
    if (n == 7 && memcmp(p + at + 1, "payload", 7) == 0)
        return 1;
    if (n == 9 && memcmp(p + at + 1, "signature", 9) == 0)
        return 2;
    return 0;
}

qg_reason
qg__json_strict(const char *p, size_t len, qg__top *top, char *detail,
                size_t dlen)
{
    key stack_keys[STACK_KEYS];
    scan s = {p, len, stack_keys, 0, STACK_KEYS, stack_keys, detail, dlen};
    size_t from[MAX_DEPTH]; /* per open container: its first key, or -1 */
    size_t depth = 0, i = 0, end;
    size_t v0 = 0; /* where the wanted top-level value opened */
    int want_key = 0, escaped, nul, which = 0;
    qg_reason r = QG_R_NONE;

    if (top) {
        memset(top, 0, sizeof(*top));
        top->escaped_key = SIZE_MAX;
    }
    while (i < len && r == QG_R_NONE) {
        switch (p[i]) {
        case '"':
            if ((r = check_string(&s, i, &end, &escaped, &nul)))
                break;
            if (want_key && nul) {
                snprintf(detail, dlen,
                         "key at byte %zu holds \\u0000; json-c would cut "
                         "the key there",
                         i);
                r = QG_R_BAD_ENVELOPE;
                break;
            }
            if (want_key && (r = add_key(&s, i, end, escaped)))
                break;
            /* Inside the root object, a string is a key or its value. */
            if (top && depth == 1 && from[0] != (size_t)-1) {
                if (want_key) {
                    which = top_key(p, i, end, escaped);
                    if (escaped && top->escaped_key == SIZE_MAX)
                        top->escaped_key = i;
                } else if (which == 1) {
                    top->payload.p = p + i;
                    top->payload.len = end - i;
                } else if (which == 2) {
                    top->signature.p = p + i + 1;
                    top->signature.len = end - i - 2;
                }
            }
            want_key = 0;
            i = end;
            continue;
        case '{':
        case '[':
            if (depth == MAX_DEPTH) {
                snprintf(detail, dlen,
                         "invalid JSON at byte %zu: nested too deep", i);
                r = QG_R_BAD_JSON;
                break;
            }
            if (depth == 1)
                v0 = i;
            from[depth++] = p[i] == '{' ? s.nkeys : (size_t)-1;
            want_key = p[i] == '{';
            break;
        case '}':
        case ']':
            if (depth == 0)
                break;
            depth--;
            if (from[depth] != (size_t)-1) {
                r = check_keys(&s, from[depth]);
                s.nkeys = from[depth];
            }
            if (top && depth == 1 && from[0] != (size_t)-1 && which == 1) {
                top->payload.p = p + v0;
                top->payload.len = i + 1 - v0;
                which = 0;
            }
            break;
        case ',':
            want_key = depth > 0 && from[depth - 1] != (size_t)-1;
            break;
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9':
        case 'I':
        case 'N':
            if ((r = check_number(&s, i, &end)))
                break;
            i = end;
            continue;
        }
        i++;
    }
    if (s.keys != stack_keys)
        free(s.keys);
    return r;
}

/* ----- one pass for a plain body ---------------------------------------- */

/*
 * qg__json_scan() reads a body that json-c would accept and the pass above
 * would pass, and the values of a few paths in it, in one walk with no
 * tree.  It checks the whole grammar itself, so it must accept nothing
 * json-c refuses: where it could differ, it does not decide and answers
 * "not plain" instead, and the caller parses with json-c.  Not plain:
 * white space other than RFC 8259's four, a number other than an integer
 * of at most 18 digits, an empty key, a key holding \u0000, a key with an
 * escape in an object whose paths are read, a repeated key, nesting past
 * SCAN_DEPTH, and anything json-c or the pass above refuses.  So the
 * error texts all stay json-c's and the pass's, and the scan needs none.
 */

/* Well inside json-c's QG__JSON_DEPTH and the pass's MAX_DEPTH. */
#define SCAN_DEPTH 16

/* Digits an integer may have and still fit in int64_t whatever they are. */
#define SCAN_DIGITS 18

typedef struct jscan {
    scan s;
    size_t i;
    unsigned depth;
    const qg__jpath *want;
    size_t nwant;
    qg__jvalue *out;
} jscan;

static int scan_value(jscan *j, int at);

static void
scan_ws(jscan *j)
{
    while (j->i < j->s.len && (j->s.p[j->i] == ' ' || j->s.p[j->i] == '\n' ||
                               j->s.p[j->i] == '\r' || j->s.p[j->i] == '\t'))
        j->i++;
}

/* The string at j->i: the strict pass's checks, then each escape one that
 * JSON has (the strict pass trusts json-c for that).  Sets the offsets of
 * its quotes. */
static int
scan_string(jscan *j, size_t *open, size_t *end, int *escaped, int *nul)
{
    size_t k;

    if (j->i >= j->s.len || j->s.p[j->i] != '"' ||
        check_string(&j->s, j->i, end, escaped, nul) != QG_R_NONE)
        return -1;
    *open = j->i;
    for (k = *open + 1; *escaped && k < *end - 1; k++) {
        if (j->s.p[k] != '\\')
            continue;
        switch (j->s.p[++k]) {
        case 'u':
            k += 4; /* check_string() read the four digits */
            break;
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        default:
            return -1;
        }
    }
    j->i = *end;
    return 0;
}

/* An integer of at most SCAN_DIGITS digits, with no leading zero; not -0,
 * whose reading is json-c's to give. */
static int
scan_int(jscan *j, int64_t *v)
{
    const char *p = j->s.p;
    size_t i = j->i, n = 0;
    int neg = 0;

    *v = 0;
    if (p[i] == '-') {
        neg = 1;
        i++;
    }
    if (i < j->s.len && p[i] == '0') {
        if (neg)
            return -1;
        i++;
    } else {
        for (; i < j->s.len && DIGIT(p[i]); i++, n++) {
            if (n == SCAN_DIGITS)
                return -1;
            *v = *v * 10 + (p[i] - '0');
        }
        if (n == 0)
            return -1;
    }
    if (i < j->s.len &&
        (p[i] == '.' || p[i] == 'e' || p[i] == 'E' || DIGIT(p[i])))
        return -1;
    if (neg)
        *v = -*v;
    j->i = i;
    return 0;
}

/* The wanted path whose parent is at and whose key is p[0..n), or -1. */
static int
wanted(const jscan *j, int at, const char *p, size_t n)
{
    size_t k;

    for (k = 0; k < j->nwant; k++)
        if (j->want[k].parent == at && strncmp(j->want[k].key, p, n) == 0 &&
            j->want[k].key[n] == '\0')
            return (int)k;
    return -1;
}

/* Whether some wanted path lies under at (-1: the root). */
static int
searched(const jscan *j, int at)
{
    size_t k;

    for (k = 0; k < j->nwant; k++)
        if (j->want[k].parent == at)
            return 1;
    return 0;
}

/* After a member or an element: 1 past a comma and the white space after
 * it, 0 past the container's closer, -1 at anything else. */
static int
scan_next(jscan *j, char closer)
{
    scan_ws(j);
    if (j->i < j->s.len && j->s.p[j->i] == ',') {
        j->i++;
        scan_ws(j);
        return 1;
    }
    if (j->i < j->s.len && j->s.p[j->i] == closer) {
        j->i++;
        return 0;
    }
    return -1;
}

/* Past the opener of the container at j->i and the white space after it:
 * 1 when its closer follows at once (skipped too), else 0. */
static int
scan_open(jscan *j, char closer)
{
    j->i++;
    scan_ws(j);
    if (j->i < j->s.len && j->s.p[j->i] == closer) {
        j->i++;
        return 1;
    }
    return 0;
}

/* The object at j->i, itself the wanted path at (or -1: the root; -2:
 * nothing wanted). */
static int
scan_object(jscan *j, int at)
{
    size_t from = j->s.nkeys, open, end;
    int escaped, nul, more, look = at == -2 ? 0 : searched(j, at);

    if (scan_open(j, '}'))
        return 0;
    do {
        if (scan_string(j, &open, &end, &escaped, &nul) || nul ||
            end - open == 2 || (look && escaped) ||
            add_key(&j->s, open, end, escaped) != QG_R_NONE)
            return -1;
        scan_ws(j);
        if (j->i >= j->s.len || j->s.p[j->i] != ':')
            return -1;
        j->i++;
        scan_ws(j);
        if (scan_value(j, look
                              ? wanted(j, at, j->s.p + open + 1, end - open - 2)
                              : -1))
            return -1;
    } while ((more = scan_next(j, '}')) == 1);
    if (more < 0 || check_keys(&j->s, from) != QG_R_NONE)
        return -1;
    j->s.nkeys = from;
    return 0;
}

static int
scan_array(jscan *j)
{
    int more;

    if (scan_open(j, ']'))
        return 0;
    do {
        if (scan_value(j, -1))
            return -1;
    } while ((more = scan_next(j, ']')) == 1);
    return more;
}

static int
scan_literal(jscan *j, const char *word)
{
    size_t n = strlen(word);

    if (j->s.len - j->i < n || memcmp(j->s.p + j->i, word, n) != 0)
        return -1;
    j->i += n;
    return 0;
}

/* The value at j->i; at is the wanted path it is, or -1. */
static int
scan_value(jscan *j, int at)
{
    qg__jvalue v = {QG__J_OTHER, {j->s.p + j->i, 0}, 0};
    size_t open, end;
    int escaped, nul, rc;

    if (j->i >= j->s.len)
        return -1;
    switch (j->s.p[j->i]) {
    case '{':
    case '[':
        if (j->depth == SCAN_DEPTH)
            return -1;
        j->depth++;
        if (j->s.p[j->i] == '{') {
            v.kind = QG__J_OBJECT;
            rc = scan_object(j, at >= 0 ? at : -2);
        } else {
            rc = scan_array(j);
        }
        j->depth--;
        if (rc)
            return -1;
        v.text.len = (size_t)(j->s.p + j->i - v.text.p);
        break;
    case '"':
        if (scan_string(j, &open, &end, &escaped, &nul))
            return -1;
        v.kind = escaped ? QG__J_ESCAPED : QG__J_STRING;
        v.text.p = j->s.p + open + 1;
        v.text.len = end - open - 2;
        break;
    case 't':
        if (scan_literal(j, "true"))
            return -1;
        break;
    case 'f':
        if (scan_literal(j, "false"))
            return -1;
        break;
    case 'n':
        if (scan_literal(j, "null"))
            return -1;
        v.kind = QG__J_NULL;
        break;
    default:
        if (scan_int(j, &v.i))
            return -1;
        v.kind = QG__J_INT;
        break;
    }
    if (at >= 0)
        j->out[at] = v;
    return 0;
}

int
qg__json_scan(const char *p, size_t len, const qg__jpath *want, size_t nwant,
              qg__jvalue *out)
{
    key stack_keys[STACK_KEYS];
    char detail[160];
    jscan j = {
        {p, len, stack_keys, 0, STACK_KEYS, stack_keys, detail, sizeof(detail)},
        0,
        0,
        want,
        nwant,
        out};
    int rc = -1;

    memset(out, 0, nwant * sizeof(*out)); /* QG__J_ABSENT */
    scan_ws(&j);
    if (j.i < len && p[j.i] == '{') {
        j.depth = 1;
        rc = scan_object(&j, -1);
        scan_ws(&j);
        if (rc == 0 && j.i != len)
            rc = -1;
    }
    if (j.s.keys != stack_keys)
        free(j.s.keys);
    return rc;
}

/*
 * A configuration file read as the gate reads a delivery: json-c's strict
 * mode (no trailing commas, no comments, no single quotes) and then the
 * pass above, so that a repeated key is an error rather than the last one
 * silently winning.  json_object_from_file() is lenient on all of these
 * and its error text ("json_object_from_file: ...") names no file.
 *
 * Reads and checks path; on success hands over the parse (rootp), the
 * text (text) or both; either may be NULL, and what is not handed over
 * is freed.
 */
static int
load_file(const char *path, json_object **rootp, char **text, size_t *lenp,
          char *err, size_t errlen)
{
    struct json_tokener *tok;
    enum json_tokener_error jerr;
    json_object *root = NULL;
    char *buf = NULL, detail[160];
    size_t len = 0, cap = 0, end;
    FILE *f;
    int rc = QG_ECONFIG;

    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return QG_EIO;
    }
    for (;;) {
        size_t n;

        /* One byte spare for the NUL that qg_config_read() promises. */
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap ? cap * 2 : 4096);

            if (grown == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                rc = QG_ENOMEM;
                goto close_file;
            }
            buf = grown;
            cap = cap ? cap * 2 : 4096;
        }
        if ((n = fread(buf + len, 1, cap - len - 1, f)) == 0)
            break;
        len += n;
    }
    if (ferror(f) || len > INT32_MAX) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 ferror(f) ? strerror(errno) : "too large");
        rc = QG_EIO;
        goto close_file;
    }
    buf[len] = '\0';
    if ((tok = json_tokener_new_ex(QG__JSON_DEPTH)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = QG_ENOMEM;
        goto close_file;
    }
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, buf, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    /* json-c stops at the end of the value: what follows may only be
     * white space. */
    while (jerr == json_tokener_success && end < len &&
           strchr(" \t\r\n", buf[end]) != NULL)
        end++;
    if (jerr == json_tokener_continue || len == 0) {
        snprintf(err, errlen, "%s: not valid JSON: the file ends early", path);
        goto free_root;
    }
    if (jerr != json_tokener_success) {
        snprintf(err, errlen, "%s: not valid JSON at byte %zu: %s", path,
                 end > 0 ? end - 1 : 0, json_tokener_error_desc(jerr));
        goto free_root;
    }
    if (end < len) {
        snprintf(err, errlen,
                 "%s: not valid JSON at byte %zu: text after the value", path,
                 end);
        goto free_root;
    }
    if (qg__json_strict(buf, len, NULL, detail, sizeof(detail)) != QG_R_NONE) {
        snprintf(err, errlen, "%s: %s", path, detail);
        goto free_root;
    }
    if (rootp) {
        *rootp = root;
        root = NULL;
    }
    if (text) {
        *text = buf;
        buf = NULL;
    }
    if (lenp)
        *lenp = len;
    rc = 0;
free_root:
    json_object_put(root);
close_file:
    fclose(f);
    free(buf);
    return rc;
}

int
qg__json_load_file(const char *path, json_object **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    return load_file(path, out, NULL, NULL, err, errlen);
}

int
qg_config_read(const char *path, char **text, size_t *len, char *err,
               size_t errlen)
{
    if (text)
        *text = NULL;
    if (path == NULL || text == NULL || err == NULL)
        return QG_EINVAL;
    return load_file(path, NULL, text, len, err, errlen);
}
