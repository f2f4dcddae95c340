/*
 * mapping.c - from Chup's vocabulary to canonical events.
 *
 * Chup publishes its event names but only two of its state names, so the
 * mapping is data: the defaults below (docs/assumptions.md explains each),
 * overridable key by key from a JSON file (docs/mapping.md), so that an
 * operator can follow Chup's real vocabulary without rebuilding.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qgate_int.h"

#define NAME_MAX_LEN 64

/* One entry of a table, keyed by name (events: Chup's name; states:
 * folded, lower case with " -" as "_") or, for state values, by number.
 * States and values use only map.event. */
typedef struct entry {
    char name[NAME_MAX_LEN];
    int64_t value;
    qg__event_map map;
} entry;

typedef struct table {
    entry *v;
    size_t n;
} table;

struct qg__mapping {
    table events, states, values;
};

/* The one table of defaults.  Rule "state": the event the data's state
 * names; "ignore": not a lifecycle step. */
static const struct {
    const char *name;
    const char *to;
} default_events[] = {
    {"appointment_created", "book"},   {"appointment_updated", "state"},
    {"appointment_deleted", "cancel"}, {"live_queue_created", "state"},
    {"live_queue_updated", "state"},   {"live_queue_deleted", "cancel"},
    {"client_created", "ignore"},      {"client_updated", "ignore"},
    {"client_deleted", "ignore"},      {"service_created", "ignore"},
    {"service_updated", "ignore"},     {"service_staffs_updated", "ignore"},
    {"service_deleted", "ignore"},     {"staff_created", "ignore"},
    {"staff_updated", "ignore"},       {"staff_services_updated", "ignore"},
    {"staff_deleted", "ignore"},
};

static const struct {
    const char *name;
    qg_event event;
} default_states[] = {
    {"in queue", QG_EV_JOIN},
    {"arrived", QG_EV_ARRIVE},
    {"serving", QG_EV_SERVE},
    {"served", QG_EV_COMPLETE},
    {"completed", QG_EV_COMPLETE},
    {"no show", QG_EV_NO_SHOW},
    {"cancelled", QG_EV_CANCEL},
    {"canceled", QG_EV_CANCEL},
    {"moved", QG_EV_MOVE},
    {"pharmacy received", QG_EV_RX_RECEIVE},
    {"received", QG_EV_RX_RECEIVE},
    {"pharmacy dispensed", QG_EV_RX_DISPENSE},
    {"dispensed", QG_EV_RX_DISPENSE},
    {"paid", QG_EV_PAY},
    {"visit ended", QG_EV_END_VISIT},
    {"end visit", QG_EV_END_VISIT},
    {"ended", QG_EV_END_VISIT},
    {"alert", QG_EV_ALERT},
    {"alerted", QG_EV_ALERT},
    {"booked", QG_EV_BOOK},
    {"confirmed", QG_EV_BOOK},
    {"rescheduled", QG_EV_RESCHEDULE},
};

static const struct {
    int64_t value;
    qg_event event;
} default_values[] = {
    {1, QG_EV_JOIN},   /* published: "In Queue" */
    {3, QG_EV_ARRIVE}, /* published: "Arrived" */
};

/* Folds a state name for comparison: lower case, ' ' and '-' as '_'.
 * Returns -1 when it does not fit. */
static int
fold(const char *s, char out[NAME_MAX_LEN])
{
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i + 1 >= NAME_MAX_LEN)
            return -1;
        out[i] = (s[i] == ' ' || s[i] == '-')
                     ? '_'
                     : (char)tolower((unsigned char)s[i]);
    }
    out[i] = '\0';
    return 0;
}

static int
event_rule(const char *name, const char *to, qg__event_map *m)
{
    memset(m, 0, sizeof(*m));
    m->appointment = strncmp(name, "appointment_", 12) == 0;
    m->updated =
        strlen(name) > 8 && strcmp(name + strlen(name) - 8, "_updated") == 0;
    if (strcmp(to, "state") == 0)
        m->rule = QG__RULE_STATE;
    else if (strcmp(to, "ignore") == 0)
        m->rule = QG__RULE_IGNORE;
    else if (qg_event_from_name(to, &m->event) == 0)
        m->rule = QG__RULE_EVENT;
    else
        return -1;
    return 0;
}

/* The entry with name (or, name NULL, with value), or NULL. */
static entry *
find(const table *t, const char *name, int64_t value)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (name ? strcmp(t->v[i].name, name) == 0 : t->v[i].value == value)
            return &t->v[i];
    return NULL;
}

/* Sets the entry with name (or, name NULL, with value) to map, or with
 * map NULL removes it. */
static int
set(table *t, const char *name, int64_t value, const qg__event_map *map)
{
    entry *e = find(t, name, value), *grown;

    if (map == NULL) {
        if (e)
            *e = t->v[--t->n];
        return 0;
    }
    if (e == NULL) {
        if ((grown = realloc(t->v, (t->n + 1) * sizeof(*grown))) == NULL)
            return QG_ENOMEM;
        t->v = grown;
        e = &t->v[t->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, NAME_MAX_LEN, "%s", name ? name : "");
        e->value = value;
    }
    e->map = *map;
    return 0;
}

/* A state's or a value's entry: only the event. */
static qg__event_map
to_event(qg_event ev)
{
    qg__event_map em = {QG__RULE_EVENT, ev, 0, 0};

    return em;
}

static int
copy_table(const table *src, table *dst)
{
    dst->n = 0;
    if ((dst->v = malloc((src->n + 1) * sizeof(*dst->v))) == NULL)
        return QG_ENOMEM;
    memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
    dst->n = src->n;
    return 0;
}

static void
free_tables(qg__mapping *m)
{
    free(m->events.v);
    free(m->states.v);
    free(m->values.v);
}

int
qg__mapping_new(qg__mapping **out)
{
    qg__mapping *m;
    char folded[NAME_MAX_LEN];
    qg__event_map em;
    size_t i;
    int rc = 0;

    *out = NULL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return QG_ENOMEM;
    for (i = 0; !rc && i < sizeof(default_events) / sizeof(*default_events);
         i++) {
        event_rule(default_events[i].name, default_events[i].to, &em);
        rc = set(&m->events, default_events[i].name, 0, &em);
    }
    for (i = 0; !rc && i < sizeof(default_states) / sizeof(*default_states);
         i++) {
        fold(default_states[i].name, folded);
        em = to_event(default_states[i].event);
        rc = set(&m->states, folded, 0, &em);
    }
    for (i = 0; !rc && i < sizeof(default_values) / sizeof(*default_values);
         i++) {
        em = to_event(default_values[i].event);
        rc = set(&m->values, NULL, default_values[i].value, &em);
    }
    if (rc) {
        qg__mapping_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void
qg__mapping_free(qg__mapping *m)
{
    if (m == NULL)
        return;
    free_tables(m);
    free(m);
}

static int
copy_mapping(const qg__mapping *src, qg__mapping *dst)
{
    memset(dst, 0, sizeof(*dst));
    if (copy_table(&src->events, &dst->events) ||
        copy_table(&src->states, &dst->states) ||
        copy_table(&src->values, &dst->values)) {
        free_tables(dst);
        return QG_ENOMEM;
    }
    return 0;
}

/* Reads one section of the file into m.  kind: 0 events, 1 states,
 * 2 state_values.  A null value removes the entry. */
static int
load_section(qg__mapping *m, json_object *sec, int kind, const char *path,
             char *err, size_t errlen)
{
    static const char *const names[] = {"events", "states", "state_values"};

    if (!json_object_is_type(sec, json_type_object)) {
        snprintf(err, errlen, "%s: \"%s\" must be an object", path,
                 names[kind]);
        return QG_ECONFIG;
    }
    json_object_object_foreach(sec, key, val)
    {
        const char *to = NULL;
        char folded[NAME_MAX_LEN], *end;
        qg__event_map em;
        qg_event ev;
        long long num = 0;
        int rc;

        if (val != NULL && !json_object_is_type(val, json_type_string)) {
            snprintf(err, errlen, "%s: %s.\"%s\" must be a string or null",
                     path, names[kind], key);
            return QG_ECONFIG;
        }
        if (val != NULL)
            to = json_object_get_string(val);
        if (kind == 0) {
            if (strlen(key) >= NAME_MAX_LEN ||
                (to && event_rule(key, to, &em) < 0)) {
                snprintf(err, errlen,
                         "%s: events.\"%s\": \"%s\" is not a canonical event, "
                         "\"state\" or \"ignore\"",
                         path, key, to ? to : "");
                return QG_ECONFIG;
            }
            rc = set(&m->events, key, 0, to ? &em : NULL);
        } else {
            if (to && qg_event_from_name(to, &ev) != 0) {
                snprintf(err, errlen,
                         "%s: %s.\"%s\": \"%s\" is not a canonical event", path,
                         names[kind], key, to);
                return QG_ECONFIG;
            }
            if (kind == 1) {
                if (fold(key, folded) < 0) {
                    snprintf(err, errlen, "%s: states.\"%.40s...\" too long",
                             path, key);
                    return QG_ECONFIG;
                }
                em = to_event(ev);
                rc = set(&m->states, folded, 0, to ? &em : NULL);
            } else {
                errno = 0;
                num = strtoll(key, &end, 10);
                if (errno || end == key || *end) {
                    snprintf(err, errlen,
                             "%s: state_values.\"%s\" is not an integer", path,
                             key);
                    return QG_ECONFIG;
                }
                em = to_event(ev);
                rc = set(&m->values, NULL, num, to ? &em : NULL);
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

int
qg__mapping_load(qg__mapping *m, const char *path, char *err, size_t errlen)
{
    static const char *const sections[] = {"events", "states", "state_values"};
    json_object *root;
    qg__mapping next;
    int rc = 0, i, known;

    /* A file that cannot be read is an I/O error (QG_EIO); one that is not
     * strict JSON is a configuration error (QG_ECONFIG). */
    if ((rc = qg__json_load_file(path, &root, err, errlen)))
        return rc;
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(err, errlen, "%s: expected a JSON object", path);
        json_object_put(root);
        return QG_ECONFIG;
    }
    if ((rc = copy_mapping(m, &next))) {
        json_object_put(root);
        snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    json_object_object_foreach(root, key, val)
    {
        for (i = 0, known = -1; i < 3; i++)
            if (strcmp(key, sections[i]) == 0)
                known = i;
        if (known < 0) {
            snprintf(err, errlen,
                     "%s: unknown key \"%s\" (expected events, states, "
                     "state_values)",
                     path, key);
            rc = QG_ECONFIG;
            break;
        }
        if ((rc = load_section(&next, val, known, path, err, errlen)))
            break;
    }
    json_object_put(root);
    if (rc) {
        free_tables(&next);
        return rc;
    }
    free_tables(m);
    *m = next;
    return 0;
}

qg__event_map
qg__mapping_event(const qg__mapping *m, const char *name)
{
    qg__event_map none = {QG__RULE_UNKNOWN, QG_EV_NONE, 0, 0};
    const entry *e = find(&m->events, name, 0);

    return e ? e->map : none;
}

static qg_event
by_name(const qg__mapping *m, const char *name)
{
    char folded[NAME_MAX_LEN];
    const entry *e;

    if (name == NULL || fold(name, folded) < 0)
        return QG_EV_NONE;
    e = find(&m->states, folded, 0);
    return e ? e->map.event : QG_EV_NONE;
}

qg_event
qg__mapping_state(const qg__mapping *m, const qg__delivery *d)
{
    const entry *e;
    qg_event ev;

    if ((ev = by_name(m, d->state_name)) != QG_EV_NONE)
        return ev;
    if ((ev = by_name(m, d->state_label)) != QG_EV_NONE)
        return ev;
    if (d->has_state_value && (e = find(&m->values, NULL, d->state_value)))
        return e->map.event;
    return QG_EV_NONE;
}
