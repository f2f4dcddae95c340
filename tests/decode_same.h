/*
 * decode_same.h - the two ways a body is decoded must agree.
 *
 * qg__envelope_parse() reads a plain body in one pass and hands any other
 * to json-c; qg__envelope_parse_tree() always uses json-c.  For any body
 * both give the same reason and text, the same payload and signature
 * spans, and then the same fields, or the same refusal, from
 * qg__payload_head() and qg__payload_fields() with and without a state
 * required.  decode_same() says where they differ.  Used by check_chup's
 * table and the fuzz_decode harness.
 */
#ifndef QG_DECODE_SAME_H
#define QG_DECODE_SAME_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qgate_int.h"

static int
ds_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int
ds_span(qg__span a, qg__span b)
{
    return a.p == b.p && a.len == b.len;
}

/* Compares what the two ways read of one payload, need_state as the
 * engine asks. */
static int
ds_fields(qg__envelope *fast, qg__envelope *tree, int need_state, char *why,
          size_t whylen)
{
    char df[256] = "", dt[256] = "";
    qg__delivery a, b;
    qg_reason ra, rb;

    ra = qg__payload_head(fast, &a, df, sizeof(df));
    rb = qg__payload_head(tree, &b, dt, sizeof(dt));
    if (ra == QG_R_NONE)
        ra = qg__payload_fields(&a, need_state, df, sizeof(df));
    if (rb == QG_R_NONE)
        rb = qg__payload_fields(&b, need_state, dt, sizeof(dt));
    if (ra != rb || (ra != QG_R_NONE && strcmp(df, dt) != 0)) {
        snprintf(why, whylen, "fields (need_state %d): %s \"%s\" vs %s \"%s\"",
                 need_state, qg_reason_name(ra), df, qg_reason_name(rb), dt);
        return 0;
    }
    if (ra != QG_R_NONE)
        return 1;
    if (!ds_text(a.event_name, b.event_name) || a.event_ms != b.event_ms ||
        a.utc_offset_s != b.utc_offset_s || a.id != b.id ||
        a.appointment_id != b.appointment_id || a.service_id != b.service_id ||
        a.staff_id != b.staff_id || !ds_text(a.state_name, b.state_name) ||
        !ds_text(a.state_label, b.state_label) ||
        a.has_state_value != b.has_state_value ||
        a.state_value != b.state_value ||
        !ds_text(a.appointment_date, b.appointment_date) ||
        !ds_text(a.appointment_time, b.appointment_time)) {
        snprintf(why, whylen,
                 "fields differ: event %s/%s id %" PRId64 "/%" PRId64
                 " state %s/%s %s/%s %" PRId64 "/%" PRId64,
                 a.event_name ? a.event_name : "-",
                 b.event_name ? b.event_name : "-", a.id, b.id,
                 a.state_name ? a.state_name : "-",
                 b.state_name ? b.state_name : "-",
                 a.state_label ? a.state_label : "-",
                 b.state_label ? b.state_label : "-", a.state_value,
                 b.state_value);
        return 0;
    }
    return 1;
}

/* 1 when both ways agree on body; 0 with why set.  *scanned: whether
 * the one-pass way read it. */
static int
decode_same(const char *body, size_t len, int *scanned, char *why,
            size_t whylen)
{
    qg__envelope fast, tree;
    char df[256] = "", dt[256] = "";
    qg_reason ra, rb;
    int same = 1;

    ra = qg__envelope_parse(body, len, &fast, df, sizeof(df));
    rb = qg__envelope_parse_tree(body, len, &tree, dt, sizeof(dt));
    *scanned = fast.scanned;
    if (ra != rb || (ra != QG_R_NONE && strcmp(df, dt) != 0)) {
        snprintf(why, whylen, "envelope: %s \"%s\" vs %s \"%s\"",
                 qg_reason_name(ra), df, qg_reason_name(rb), dt);
        same = 0;
    } else if (ra == QG_R_NONE &&
               (!ds_span(fast.payload_text, tree.payload_text) ||
                !ds_span(fast.signature, tree.signature))) {
        snprintf(why, whylen, "spans differ: payload %zu+%zu vs %zu+%zu",
                 fast.payload_text.p ? (size_t)(fast.payload_text.p - body) : 0,
                 fast.payload_text.len,
                 tree.payload_text.p ? (size_t)(tree.payload_text.p - body) : 0,
                 tree.payload_text.len);
        same = 0;
    } else if (ra == QG_R_NONE) {
        same = ds_fields(&fast, &tree, 0, why, whylen) &&
               ds_fields(&fast, &tree, 1, why, whylen);
    }
    qg__envelope_free(&fast);
    qg__envelope_free(&tree);
    return same;
}

#endif
