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

typedef struct event_entry {
    char name[NAME_MAX_LEN];
    qg__event_map map;
} event_entry;

typedef struct state_entry {
    char name[NAME_MAX_LEN]; /* folded: lower case, " -" as "_" */
    qg_event event;
} state_entry;

typedef struct value_entry {
    int64_t value;
    qg_event event;
} value_entry;

struct qg__mapping {
    event_entry *events;
    size_t nevents;
    state_entry *states;
    size_t nstates;
    value_entry *values;
    size_t nvalues;
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

/* Sets (or with to == NULL removes) one entry of each kind. */
static int
set_event(qg__mapping *m, const char *name, const qg__event_map *map)
{
    size_t i;
    event_entry *grown;

    for (i = 0; i < m->nevents; i++)
        if (strcmp(m->events[i].name, name) == 0)
            break;
    if (map == NULL) {
        if (i < m->nevents)
            m->events[i] = m->events[--m->nevents];
        return 0;
    }
    if (i == m->nevents) {
        grown = realloc(m->events, (m->nevents + 1) * sizeof(*grown));
        if (grown == NULL)
            return QG_ENOMEM;
        m->events = grown;
        snprintf(m->events[i].name, NAME_MAX_LEN, "%s", name);
        m->nevents++;
    }
    m->events[i].map = *map;
    return 0;
}

static int
set_state(qg__mapping *m, const char *folded, const qg_event *ev)
{
    size_t i;
    state_entry *grown;

    for (i = 0; i < m->nstates; i++)
        if (strcmp(m->states[i].name, folded) == 0)
            break;
    if (ev == NULL) {
        if (i < m->nstates)
            m->states[i] = m->states[--m->nstates];
        return 0;
    }
    if (i == m->nstates) {
        grown = realloc(m->states, (m->nstates + 1) * sizeof(*grown));
        if (grown == NULL)
            return QG_ENOMEM;
        m->states = grown;
        snprintf(m->states[i].name, NAME_MAX_LEN, "%s", folded);
        m->nstates++;
    }
    m->states[i].event = *ev;
    return 0;
}

static int
set_value(qg__mapping *m, int64_t value, const qg_event *ev)
{
    size_t i;
    value_entry *grown;

    for (i = 0; i < m->nvalues; i++)
        if (m->values[i].value == value)
            break;
    if (ev == NULL) {
        if (i < m->nvalues)
            m->values[i] = m->values[--m->nvalues];
        return 0;
    }
    if (i == m->nvalues) {
        grown = realloc(m->values, (m->nvalues + 1) * sizeof(*grown));
        if (grown == NULL)
            return QG_ENOMEM;
        m->values = grown;
        m->values[i].value = value;
        m->nvalues++;
    }
    m->values[i].event = *ev;
    return 0;
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
        rc = set_event(m, default_events[i].name, &em);
    }
    for (i = 0; !rc && i < sizeof(default_states) / sizeof(*default_states);
         i++) {
        fold(default_states[i].name, folded);
        rc = set_state(m, folded, &default_states[i].event);
    }
    for (i = 0; !rc && i < sizeof(default_values) / sizeof(*default_values);
         i++)
        rc = set_value(m, default_values[i].value, &default_values[i].event);
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
    free(m->events);
    free(m->states);
    free(m->values);
    free(m);
}

static int
copy_mapping(const qg__mapping *src, qg__mapping *dst)
{
    memset(dst, 0, sizeof(*dst));
    dst->events = malloc((src->nevents + 1) * sizeof(*dst->events));
    dst->states = malloc((src->nstates + 1) * sizeof(*dst->states));
    dst->values = malloc((src->nvalues + 1) * sizeof(*dst->values));
    if (!dst->events || !dst->states || !dst->values) {
        free(dst->events);
        free(dst->states);
        free(dst->values);
        return QG_ENOMEM;
    }
    memcpy(dst->events, src->events, src->nevents * sizeof(*dst->events));
    memcpy(dst->states, src->states, src->nstates * sizeof(*dst->states));
    memcpy(dst->values, src->values, src->nvalues * sizeof(*dst->values));
    dst->nevents = src->nevents;
    dst->nstates = src->nstates;
    dst->nvalues = src->nvalues;
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
            rc = set_event(m, key, to ? &em : NULL);
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
                rc = set_state(m, folded, to ? &ev : NULL);
            } else {
                errno = 0;
                num = strtoll(key, &end, 10);
                if (errno || end == key || *end) {
                    snprintf(err, errlen,
                             "%s: state_values.\"%s\" is not an integer", path,
                             key);
                    return QG_ECONFIG;
                }
                rc = set_value(m, num, to ? &ev : NULL);
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
        free(next.events);
        free(next.states);
        free(next.values);
        return rc;
    }
    free(m->events);
    free(m->states);
    free(m->values);
    *m = next;
    return 0;
}

qg__event_map
qg__mapping_event(const qg__mapping *m, const char *name)
{
    qg__event_map none = {QG__RULE_UNKNOWN, QG_EV_NONE, 0, 0};
    size_t i;

    for (i = 0; i < m->nevents; i++)
        if (strcmp(m->events[i].name, name) == 0)
            return m->events[i].map;
    return none;
}

static qg_event
by_name(const qg__mapping *m, const char *name)
{
    char folded[NAME_MAX_LEN];
    size_t i;

    if (name == NULL || fold(name, folded) < 0)
        return QG_EV_NONE;
    for (i = 0; i < m->nstates; i++)
        if (strcmp(m->states[i].name, folded) == 0)
            return m->states[i].event;
    return QG_EV_NONE;
}

qg_event
qg__mapping_state(const qg__mapping *m, const qg__delivery *d)
{
    qg_event ev;
    size_t i;

    if ((ev = by_name(m, d->state_name)) != QG_EV_NONE)
        return ev;
    if ((ev = by_name(m, d->state_label)) != QG_EV_NONE)
        return ev;
    for (i = 0; d->has_state_value && i < m->nvalues; i++)
        if (m->values[i].value == d->state_value)
            return m->values[i].event;
    return QG_EV_NONE;
}
