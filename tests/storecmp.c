/*
 * storecmp.c - two stores compared, list by list and field by field
 * (tu_compare_stores() in testutil.h).
 *
 * Each store is first read into a snapshot: lists (the tickets, each
 * ticket's steps, the refusals, ...) of items, an item being its fields
 * as text, one "name=value" line each, in the order of the tables below.
 * Two snapshots are then compared line by line, so that a failure names
 * the list, the item (its key fields) and the field that differ, with
 * both values.  Text is what lets the same comparison serve stores whose
 * tickets are numbered alike (compared in order) and stores that only
 * received the same deliveries (TU_CMP_ALIKE: the items sorted, and only
 * what Chup itself decides compared).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* How a field is read and shown. */
typedef enum kind {
    K_INT,   /* a signed integer or an enum */
    K_UINT,  /* an unsigned integer */
    K_SET,   /* an integer compared as set (non-zero) or not */
    K_TEXT,  /* a const char *, NUL-terminated */
    K_CHARS, /* a char array, NUL-terminated */
    K_BYTES, /* a byte array, all of it */
    K_BODY   /* a const char * of the length at len_off (a size_t) */
} kind;

/* Which comparisons a field is part of. */
#define EXACT 1u /* tickets numbered alike: everything */
#define ALIKE 2u /* the same deliveries: what Chup decides */
#define KEY   4u /* names the item in a failure (in its comparisons) */

typedef struct field {
    const char *name;
    kind kind;
    size_t off, size, len_off;
    unsigned use;
} field;

#define F(type, member, k, use)                                                \
    {                                                                          \
#member, k, offsetof(type, member), sizeof(((type *)0)->member), 0,    \
            use                                                                \
    }
#define BODY(type, member, len, use)                                           \
    {                                                                          \
#member, K_BODY, offsetof(type, member), 0, offsetof(type, len), use   \
    }

/* Everything a qg_ticket says but the times of arrival, which two stores
 * cannot share (the order of first and last is checked on each). */
static const field ticket_fields[] = {
    F(qg_ticket, id, K_UINT, EXACT | KEY),
    F(qg_ticket, live_queue_id, K_INT, EXACT | ALIKE | KEY),
    F(qg_ticket, appointment_id, K_INT, EXACT | ALIKE | KEY),
    F(qg_ticket, state, K_INT, EXACT | ALIKE),
    F(qg_ticket, records, K_UINT, EXACT),
    F(qg_ticket, rejections, K_UINT, EXACT),
    F(qg_ticket, last_event_ms, K_INT, EXACT),
    F(qg_ticket, service_id, K_INT, EXACT),
    F(qg_ticket, staff_id, K_INT, EXACT),
    F(qg_ticket, source, K_CHARS, EXACT),
};

/* A step: all but received_us (which must be set on each). */
static const field step_fields[] = {
    F(qg_record, ticket, K_UINT, EXACT | KEY),
    F(qg_record, seq, K_UINT, EXACT | KEY),
    F(qg_record, pos, K_UINT, EXACT),
    F(qg_record, event_ms, K_INT, EXACT),
    F(qg_record, utc_offset_s, K_INT, EXACT),
    F(qg_record, event, K_INT, EXACT | ALIKE),
    F(qg_record, from, K_INT, EXACT | ALIKE),
    F(qg_record, to, K_INT, EXACT | ALIKE),
    F(qg_record, service_id, K_INT, EXACT),
    F(qg_record, staff_id, K_INT, EXACT),
    F(qg_record, digest, K_BYTES, EXACT),
    F(qg_record, machine, K_CHARS, EXACT),
    F(qg_record, late, K_INT, EXACT),
    F(qg_record, released, K_INT, EXACT),
    BODY(qg_record, body, body_len, EXACT),
};

/* A refusal: all but the times of arrival and of resolution. */
static const field refusal_fields[] = {
    F(qg_rejection, id, K_UINT, EXACT | KEY),
    F(qg_rejection, ticket, K_UINT, EXACT | KEY),
    F(qg_rejection, live_queue_id, K_INT, EXACT | ALIKE | KEY),
    F(qg_rejection, appointment_id, K_INT, EXACT | ALIKE | KEY),
    F(qg_rejection, verdict, K_INT, EXACT),
    F(qg_rejection, reason, K_INT, EXACT | ALIKE),
    F(qg_rejection, event, K_INT, EXACT | ALIKE),
    F(qg_rejection, from, K_INT, EXACT | ALIKE),
    F(qg_rejection, detail, K_TEXT, EXACT),
    BODY(qg_rejection, body, body_len, EXACT),
    F(qg_rejection, received_len, K_UINT, EXACT),
    F(qg_rejection, truncated, K_INT, EXACT),
    F(qg_rejection, digest, K_BYTES, EXACT),
    F(qg_rejection, resolved, K_INT, EXACT),
    F(qg_rejection, resolved_ticket, K_UINT, EXACT),
    F(qg_rejection, resolved_seq, K_UINT, EXACT),
    F(qg_rejection, source, K_CHARS, EXACT),
};

static const field held_fields[] = {
    F(qg_held, id, K_UINT, EXACT | KEY),
    F(qg_held, ticket, K_UINT, EXACT | KEY),
    F(qg_held, live_queue_id, K_INT, EXACT),
    F(qg_held, appointment_id, K_INT, EXACT),
    F(qg_held, event, K_INT, EXACT),
    F(qg_held, from, K_INT, EXACT),
    F(qg_held, event_ms, K_INT, EXACT),
    F(qg_held, utc_offset_s, K_INT, EXACT),
    F(qg_held, chup_event, K_CHARS, EXACT),
    BODY(qg_held, body, body_len, EXACT),
    F(qg_held, source, K_CHARS, EXACT),
};

/* An outbox entry: its times only as set or not. */
static const field outbox_fields[] = {
    F(qg_outbox_entry, id, K_UINT, EXACT | KEY),
    F(qg_outbox_entry, ticket, K_UINT, EXACT | KEY),
    F(qg_outbox_entry, seq, K_UINT, EXACT | KEY),
    F(qg_outbox_entry, attempts, K_UINT, EXACT),
    F(qg_outbox_entry, last_error, K_CHARS, EXACT),
    F(qg_outbox_entry, gave_up, K_CHARS, EXACT),
    F(qg_outbox_entry, gave_up_us, K_SET, EXACT),
    F(qg_outbox_entry, last_attempt_us, K_SET, EXACT),
};

#define NFIELDS(t) (sizeof(t) / sizeof(*(t)))

/* ----- snapshots ---------------------------------------------------------- */

typedef struct item {
    char *label; /* what it is and its key fields: "ticket id=3 ..." */
    char *text;  /* its fields, "name=value\n" each */
} item;

typedef struct list {
    char *name;
    item *items;
    size_t n, cap;
} list;

typedef struct snap {
    const char *store; /* the store's name in failures */
    qg_store *st;
    unsigned use; /* EXACT or ALIKE */
    list *lists;
    size_t n, cap;
    tu_compared counts;
} snap;

static list *
list_new(snap *s, const char *name)
{
    list *l;

    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->lists = realloc(s->lists, s->cap * sizeof(*s->lists));
        ck_assert_ptr_nonnull(s->lists);
    }
    l = &s->lists[s->n++];
    memset(l, 0, sizeof(*l));
    ck_assert_ptr_nonnull(l->name = strdup(name));
    return l;
}

/* An item being written: its label and its text, each a memstream. */
typedef struct writing {
    char *label, *text;
    size_t label_len, text_len;
    FILE *lf, *tf;
} writing;

static void
item_begin(writing *w, const char *what)
{
    memset(w, 0, sizeof(*w));
    ck_assert_ptr_nonnull(w->lf = open_memstream(&w->label, &w->label_len));
    ck_assert_ptr_nonnull(w->tf = open_memstream(&w->text, &w->text_len));
    fputs(what, w->lf);
}

static void
item_end(writing *w, list *l)
{
    fclose(w->lf);
    fclose(w->tf);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->items = realloc(l->items, l->cap * sizeof(*l->items));
        ck_assert_ptr_nonnull(l->items);
    }
    l->items[l->n].label = w->label;
    l->items[l->n++].text = w->text;
}

/* Bytes as text that holds no '\n' and shows what is not printable. */
static void
put_escaped(FILE *f, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

/* An integer field of 4 or 8 bytes (all the structs have), signed or
 * not, as 64 bits. */
static uint64_t
get_int(const char *p, size_t size, int is_signed)
{
    uint32_t u32;
    uint64_t u64;

    if (size == 4) {
        memcpy(&u32, p, 4);
        return is_signed ? (uint64_t)(int64_t)(int32_t)u32 : u32;
    }
    ck_assert_uint_eq(size, 8);
    memcpy(&u64, p, 8);
    return u64;
}

static void
put_value(FILE *f, const field *fd, const void *obj)
{
    const char *p = (const char *)obj + fd->off;
    const char *s;
    size_t i, len;

    switch (fd->kind) {
    case K_INT:
        fprintf(f, "%" PRId64, (int64_t)get_int(p, fd->size, 1));
        break;
    case K_UINT:
        fprintf(f, "%" PRIu64, get_int(p, fd->size, 0));
        break;
    case K_SET:
        fputs(get_int(p, fd->size, 0) ? "set" : "not set", f);
        break;
    case K_TEXT:
        memcpy(&s, p, sizeof(s));
        if (s == NULL)
            fputs("(null)", f);
        else
            put_escaped(f, s, strlen(s));
        break;
    case K_CHARS:
        put_escaped(f, p, strnlen(p, fd->size));
        break;
    case K_BYTES:
        for (i = 0; i < fd->size; i++)
            fprintf(f, "%02x", (unsigned char)p[i]);
        break;
    case K_BODY:
        memcpy(&s, p, sizeof(s));
        memcpy(&len, (const char *)obj + fd->len_off, sizeof(len));
        /* a purged body may be NULL, with no length */
        fprintf(f, "%zu bytes: ", len);
        if (len)
            put_escaped(f, s, len);
        break;
    }
}

/* Writes obj's fields of the comparison (s->use) into the item. */
static void
put_fields(const snap *s, writing *w, const field *fields, size_t n,
           const void *obj)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const field *fd = &fields[i];

        if (!(fd->use & s->use))
            continue;
        fprintf(w->tf, "%s=", fd->name);
        put_value(w->tf, fd, obj);
        fputc('\n', w->tf);
        if (fd->use & KEY) {
            fprintf(w->lf, " %s=", fd->name);
            put_value(w->lf, fd, obj);
        }
    }
}

/* Adds obj to l, an item of kind what, with the fields of its table. */
static void
add_item(const snap *s, list *l, const char *what, const field *fields,
         size_t n, const void *obj)
{
    writing w;

    item_begin(&w, what);
    put_fields(s, &w, fields, n, obj);
    item_end(&w, l);
}

#define ADD_ITEM(s, l, what, table, obj)                                       \
    add_item(s, l, what, table, NFIELDS(table), obj)

/* A cursor over l's items stopped with rc: at its end, not failing. */
static void
list_read(const snap *s, const list *l, int rc)
{
    ck_assert_msg(rc == QG_NOTFOUND, "%s: %s: %s", s->store, l->name,
                  qg_strerror(rc));
}

/* ----- what a store holds, list by list ---------------------------------- */

/* A history (a ticket's; ticket 0: the store's), all of it, as a list. */
static uint64_t
read_history(snap *s, uint64_t ticket, qg_order order)
{
    const char *in = order == QG_EVENT_ORDER ? "event" : "arrival";
    qg_history *h = NULL;
    qg_record r;
    char name[96];
    list *l;
    int rc;

    if (ticket)
        snprintf(name, sizeof(name), "steps of ticket %" PRIu64 " in %s order",
                 ticket, in);
    else
        snprintf(name, sizeof(name), "steps in %s order", in);
    l = list_new(s, name);

    rc = qg_history_open_order(s->st, ticket, order, &h);
    ck_assert_msg(rc == 0, "%s: %s: %s", s->store, l->name, qg_strerror(rc));
    while ((rc = qg_history_next(h, &r)) == 0) {
        ck_assert_msg(r.received_us > 0,
                      "%s: step %" PRIu32 " of ticket %" PRIu64
                      ": received_us %" PRId64,
                      s->store, r.seq, r.ticket, r.received_us);
        if (ticket == 0 && order == QG_EVENT_ORDER) {
            s->counts.late += r.late != 0;
            s->counts.released += r.released != 0;
        }
        ADD_ITEM(s, l, "step", step_fields, &r);
    }
    list_read(s, l, rc);
    qg_history_close(h);
    return l->n;
}

/* Compared in order: each ticket, what verify finds in it, and its steps
 * in both orders.  Alike: each ticket and its steps' events and states,
 * in event order, as one item. */
static void
read_tickets(snap *s)
{
    list *l = list_new(s, "tickets");
    qg_tickets *it = NULL;
    qg_history *h;
    qg_ticket t;
    qg_record r;
    qg_finding f;
    uint64_t *ids = NULL;
    size_t n = 0, i;
    writing w;
    int rc;

    ck_assert_int_eq(qg_tickets_open(s->st, &it), 0);
    while ((rc = qg_tickets_next(it, &t)) == 0) {
        ck_assert_msg(t.first_received_us <= t.last_received_us,
                      "%s: ticket %" PRIu64 ": first received after its last",
                      s->store, t.id);
        item_begin(&w, "ticket");
        put_fields(s, &w, ticket_fields, NFIELDS(ticket_fields), &t);
        if (s->use == ALIKE) {
            h = NULL;
            ck_assert_int_eq(qg_history_open(s->st, t.id, &h), 0);
            for (i = 1; (rc = qg_history_next(h, &r)) == 0; i++)
                fprintf(w.tf, "step %zu=%d/%d>%d\n", i, (int)r.event,
                        (int)r.from, (int)r.to);
            ck_assert_int_eq(rc, QG_NOTFOUND);
            qg_history_close(h);
        } else {
            ck_assert_int_eq(qg_store_verify_ticket(s->st, t.id, &f), 0);
            fprintf(w.tf, "verify=%s\n", f.found ? f.what : "nothing found");
        }
        item_end(&w, l);
        ids = realloc(ids, (n + 1) * sizeof(*ids));
        ck_assert_ptr_nonnull(ids);
        ids[n++] = t.id;
    }
    list_read(s, l, rc);
    qg_tickets_close(it);
    s->counts.tickets = l->n;
    for (i = 0; i < n && s->use == EXACT; i++) {
        read_history(s, ids[i], QG_EVENT_ORDER);
        read_history(s, ids[i], QG_ARRIVAL_ORDER);
    }
    free(ids);
}

/* Every step of the store (ticket 0), in both orders; there are some. */
static void
read_steps(snap *s)
{
    s->counts.steps = read_history(s, 0, QG_EVENT_ORDER);
    ck_assert_msg(s->counts.steps > 0, "%s: no step", s->store);
    ck_assert_uint_eq(read_history(s, 0, QG_ARRIVAL_ORDER), s->counts.steps);
}

static void
read_refusals(snap *s)
{
    list *l = list_new(s, "refusals");
    qg_rejections *j = NULL;
    qg_rejection r;
    int rc;

    ck_assert_int_eq(qg_rejections_open(s->st, 1, &j), 0);
    while ((rc = qg_rejections_next(j, &r)) == 0)
        ADD_ITEM(s, l, "refusal", refusal_fields, &r);
    list_read(s, l, rc);
    qg_rejections_close(j);
    s->counts.refusals = l->n;
}

/* The held deliveries; qg_held_stats() counts as many. */
static void
read_held(snap *s)
{
    list *l = list_new(s, "held deliveries");
    qg_held_list *hl = NULL;
    qg_held h;
    uint64_t count;
    int rc;

    ck_assert_int_eq(qg_held_open(s->st, &hl), 0);
    while ((rc = qg_held_next(hl, &h)) == 0)
        ADD_ITEM(s, l, "held delivery", held_fields, &h);
    list_read(s, l, rc);
    qg_held_close(hl);
    ck_assert_int_eq(qg_held_stats(s->st, &count, NULL), 0);
    ck_assert_msg(count == l->n,
                  "%s: qg_held_stats() counts %" PRIu64 " held, the list %zu",
                  s->store, count, l->n);
    s->counts.held = l->n;
}

static uint64_t
read_outbox(snap *s, int dead)
{
    list *l = list_new(s, dead ? "dead outbox" : "outbox");
    qg_outbox *o = NULL;
    qg_outbox_entry e;
    int rc;

    ck_assert_int_eq(qg_outbox_open(s->st, dead, &o), 0);
    while ((rc = qg_outbox_next(o, &e)) == 0)
        ADD_ITEM(s, l, "outbox entry", outbox_fields, &e);
    list_read(s, l, rc);
    qg_outbox_close(o);
    return l->n;
}

/* The outbox, queued and dead, and its counts. */
static void
read_outboxes(snap *s)
{
    list *l;
    uint64_t queued, dead;
    writing w;

    s->counts.outbox = read_outbox(s, 0);
    s->counts.dead = read_outbox(s, 1);
    ck_assert_int_eq(qg_outbox_stats(s->st, &queued, NULL, &dead), 0);
    l = list_new(s, "outbox stats");
    item_begin(&w, "qg_outbox_stats()");
    fprintf(w.tf, "queued=%" PRIu64 "\ndead=%" PRIu64 "\n", queued, dead);
    item_end(&w, l);
}

static void
read_dropped(snap *s)
{
    list *l = list_new(s, "refusals dropped");
    uint64_t n;
    writing w;

    ck_assert_int_eq(qg_rejections_dropped(s->st, &n), 0);
    item_begin(&w, "qg_rejections_dropped()");
    fprintf(w.tf, "dropped=%" PRIu64 "\n", n);
    item_end(&w, l);
}

/* The hash chain: intact, not empty, and how long. */
static void
read_chain(snap *s)
{
    list *l = list_new(s, "chain");
    qg_chain_finding f;
    writing w;

    ck_assert_int_eq(qg_store_verify_chain(s->st, NULL, &f), 0);
    ck_assert_msg(f.brk == QG_CHAIN_INTACT, "%s: the chain: %s", s->store,
                  f.what);
    ck_assert_msg(f.entries > 0, "%s: an empty chain", s->store);
    item_begin(&w, "qg_store_verify_chain()");
    fprintf(w.tf, "entries=%" PRIu64 "\n", f.entries);
    item_end(&w, l);
    s->counts.chain = f.entries;
}

/* What each TU_CMP_* flag reads, in the order compared. */
static const struct {
    unsigned what;
    void (*read)(snap *s);
} readers[] = {
    {TU_CMP_TICKETS, read_tickets},   {TU_CMP_STEPS, read_steps},
    {TU_CMP_REFUSALS, read_refusals}, {TU_CMP_DROPPED, read_dropped},
    {TU_CMP_HELD, read_held},         {TU_CMP_OUTBOX, read_outboxes},
    {TU_CMP_CHAIN, read_chain},
};

static void
snap_read(snap *s, qg_store *st, const char *store, unsigned what)
{
    size_t i;

    memset(s, 0, sizeof(*s));
    s->st = st;
    s->store = store;
    s->use = what & TU_CMP_ALIKE ? ALIKE : EXACT;
    for (i = 0; i < sizeof(readers) / sizeof(*readers); i++)
        if (what & readers[i].what)
            readers[i].read(s);
}

static void
snap_free(snap *s)
{
    size_t i, k;

    for (i = 0; i < s->n; i++) {
        for (k = 0; k < s->lists[i].n; k++) {
            free(s->lists[i].items[k].label);
            free(s->lists[i].items[k].text);
        }
        free(s->lists[i].items);
        free(s->lists[i].name);
    }
    free(s->lists);
}

/* ----- comparing ---------------------------------------------------------- */

static int
by_text(const void *x, const void *y)
{
    return strcmp(((const item *)x)->text, ((const item *)y)->text);
}

/* A value to show: at most 60 characters from a little before at. */
static void
excerpt(const char *v, size_t len, size_t at, char *out, size_t size)
{
    size_t from = at > 20 ? at - 20 : 0;

    snprintf(out, size, "%s%.*s%s", from ? "..." : "",
             (int)(len - from < 60 ? len - from : 60), v + from,
             len - from > 60 ? "..." : "");
}

/* Fails, naming the field of item x (and y) that differs and both
 * values. */
static void
item_differs(const snap *a, const snap *b, const list *l, const item *x,
             const item *y)
{
    const char *p = x->text, *q = y->text, *pe, *qe, *eq;
    char va[128], vb[128];
    size_t n, at;

    for (;;) {
        pe = strchr(p, '\n');
        qe = strchr(q, '\n');
        if (pe == NULL || qe == NULL)
            break;
        if ((size_t)(pe - p) != (size_t)(qe - q) ||
            memcmp(p, q, (size_t)(pe - p)) != 0)
            break;
        p = pe + 1;
        q = qe + 1;
    }
    if (pe == NULL || qe == NULL)
        ck_abort_msg("%s: %s: %s has fields %s does not: \"%s\"", l->name,
                     x->label, pe ? a->store : b->store,
                     pe ? b->store : a->store, pe ? p : q);
    eq = memchr(p, '=', (size_t)(pe - p));
    n = eq ? (size_t)(eq - p) : 0;
    if (eq == NULL || (size_t)(qe - q) <= n || memcmp(p, q, n + 1) != 0)
        ck_abort_msg("%s: %s: %s has \"%.*s\", %s \"%.*s\"", l->name, x->label,
                     a->store, (int)(pe - p), p, b->store, (int)(qe - q), q);
    p += n + 1;
    q += n + 1;
    for (at = 0; p + at < pe && q + at < qe && p[at] == q[at]; at++)
        ;
    excerpt(p, (size_t)(pe - p), at, va, sizeof(va));
    excerpt(q, (size_t)(qe - q), at, vb, sizeof(vb));
    ck_abort_msg("%s: %s: %.*s differs%s: %s \"%s\", %s \"%s\"", l->name,
                 x->label, (int)n, q - n - 1, at > 20 ? " (further in)" : "",
                 a->store, va, b->store, vb);
}

/* Fails, naming items x and y, which are not the same one.  Compared as
 * sets, the one first in order is the one the other store lacks. */
static void
items_differ(const snap *a, const snap *b, const list *l, const item *x,
             const item *y)
{
    int in_a = strcmp(x->text, y->text) < 0;

    if (a->use == ALIKE)
        ck_abort_msg("%s: %s has %s, %s has not", l->name,
                     in_a ? a->store : b->store, in_a ? x->label : y->label,
                     in_a ? b->store : a->store);
    ck_abort_msg("%s: %s has %s where %s has %s", l->name, a->store, x->label,
                 b->store, y->label);
}

static void
same_list(const snap *a, const snap *b, list *x, list *y)
{
    size_t i;

    ck_assert_msg(strcmp(x->name, y->name) == 0, "%s: %s where %s: %s",
                  a->store, x->name, b->store, y->name);
    if (a->use == ALIKE) {
        qsort(x->items, x->n, sizeof(*x->items), by_text);
        qsort(y->items, y->n, sizeof(*y->items), by_text);
    }
    for (i = 0; i < x->n && i < y->n; i++)
        if (strcmp(x->items[i].label, y->items[i].label) != 0)
            items_differ(a, b, x, &x->items[i], &y->items[i]);
        else if (strcmp(x->items[i].text, y->items[i].text) != 0)
            item_differs(a, b, x, &x->items[i], &y->items[i]);
    ck_assert_msg(x->n == y->n, "%s: %s has %zu, %s %zu; the first left: %s",
                  x->name, a->store, x->n, b->store, y->n,
                  x->n > y->n ? x->items[i].label : y->items[i].label);
}

void
tu_compare_stores(qg_store *a, const char *a_name, qg_store *b,
                  const char *b_name, unsigned what, tu_compared *counts)
{
    snap sa, sb;
    size_t i;

    snap_read(&sa, a, a_name, what);
    snap_read(&sb, b, b_name, what);
    for (i = 0; i < sa.n && i < sb.n; i++)
        same_list(&sa, &sb, &sa.lists[i], &sb.lists[i]);
    ck_assert_uint_eq(sa.n, sb.n);
    if (counts)
        *counts = sa.counts;
    snap_free(&sa);
    snap_free(&sb);
}
