/*
 * lifecycle.c - names of states and events, and the machine's table.
 *
 * The table is built once from the Ragel chart (machine/ticket.rl) by
 * feeding every event in every state, so the chart stays the only place
 * the lifecycle is written down; deciding a step is then one lookup.
 */
#include <pthread.h>
#include <string.h>

#include "fsm.h"
#include "qgate_int.h"

static const char *const state_names[QG_STATE_COUNT] = {"new",
                                                        "booked",
                                                        "queued",
                                                        "arrived",
                                                        "serving",
                                                        "served",
                                                        "no_show",
                                                        "moved",
                                                        "cancelled",
                                                        "pharmacy_received",
                                                        "pharmacy_dispensed",
                                                        "paid",
                                                        "visit_ended"};

static const char *const event_names[QG_EVENT_COUNT] = {
    "none",        "book",     "reschedule", "join",  "arrive", "alert",
    "serve",       "complete", "no_show",    "move",  "cancel", "rx_receive",
    "rx_dispense", "pay",      "end_visit",  "update"};

static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static signed char next_state[QG_STATE_COUNT][QG_EVENT_COUNT];
static signed char target[QG_EVENT_COUNT];
static unsigned allowed[QG_STATE_COUNT]; /* mask of legal events */

static void
build_table(void)
{
    int entry[QG_STATE_COUNT], s, e;
    qg__fsm fsm;

    qg__fsm_entries(entry);
    for (e = 0; e < QG_EVENT_COUNT; e++)
        target[e] = -1;
    for (s = 0; s < QG_STATE_COUNT; s++) {
        next_state[s][QG_EV_NONE] = QG_ILLEGAL;
        for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
            qg__fsm_resume(&fsm, entry, (qg_state)s);
            if (qg__fsm_feed(&fsm, (qg_event)e) < 0) {
                next_state[s][e] = QG_ILLEGAL;
                continue;
            }
            next_state[s][e] = (signed char)fsm.state;
            allowed[s] |= 1u << e;
            if ((int)fsm.state != s)
                target[e] = (signed char)fsm.state;
        }
    }
    /* move is the one event that also loops (moved -> moved) while naming
     * a state; the loop above already found its target from other states. */
}

const char *
qg_state_name(qg_state s)
{
    return (unsigned)s < QG_STATE_COUNT ? state_names[s] : NULL;
}

const char *
qg_event_name(qg_event e)
{
    return (unsigned)e < QG_EVENT_COUNT ? event_names[e] : NULL;
}

int
qg_state_from_name(const char *name, qg_state *out)
{
    int i;

    for (i = 0; name && i < QG_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (qg_state)i;
            return 0;
        }
    }
    return QG_NOTFOUND;
}

int
qg_event_from_name(const char *name, qg_event *out)
{
    int i;

    for (i = QG_EV_NONE + 1; name && i < QG_EVENT_COUNT; i++) {
        if (strcmp(name, event_names[i]) == 0) {
            *out = (qg_event)i;
            return 0;
        }
    }
    return QG_NOTFOUND;
}

int
qg_machine_next(qg_state s, qg_event e)
{
    if ((unsigned)s >= QG_STATE_COUNT || (unsigned)e >= QG_EVENT_COUNT)
        return QG_ILLEGAL;
    pthread_once(&table_once, build_table);
    return next_state[s][e];
}

unsigned
qg_machine_allowed(qg_state s)
{
    if ((unsigned)s >= QG_STATE_COUNT)
        return 0;
    pthread_once(&table_once, build_table);
    return allowed[s];
}

int
qg_state_is_final(qg_state s)
{
    return (unsigned)s < QG_STATE_COUNT && qg_machine_allowed(s) == 0;
}

int
qg__event_target(qg_event e)
{
    if ((unsigned)e >= QG_EVENT_COUNT)
        return -1;
    pthread_once(&table_once, build_table);
    return target[e];
}

char *
qg_events_format(unsigned mask, char *dst, size_t len)
{
    size_t used = 0;
    int e;

    if (len == 0)
        return dst;
    dst[0] = '\0';
    for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
        size_t n;

        if (!(mask & (1u << e)))
            continue;
        n = strlen(event_names[e]);
        if (used + n + 3 > len)
            break;
        if (used) {
            memcpy(dst + used, ", ", 2);
            used += 2;
        }
        memcpy(dst + used, event_names[e], n + 1);
        used += n;
    }
    if (used == 0 && len > 4)
        memcpy(dst, "none", 5);
    return dst;
}

int
qg_state_is_waiting(qg_state s)
{
    return s == QG_ST_QUEUED || s == QG_ST_ARRIVED || s == QG_ST_MOVED;
}
