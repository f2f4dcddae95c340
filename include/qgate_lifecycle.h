/*
 * qgate_lifecycle.h - the canonical ticket states and events.
 *
 * This header is the alphabet of the lifecycle machine: Ragel imports the
 * event values from it (machine/ticket.rl), so each event keeps an explicit
 * value.  The values are also what the store persists; never renumber them,
 * only append.
 */
#ifndef QGATE_LIFECYCLE_H
#define QGATE_LIFECYCLE_H

/** The states of a ticket.  QG_ST_NEW is a ticket with no accepted event. */
typedef enum qg_state {
    QG_ST_NEW = 0,
    QG_ST_BOOKED = 1,
    QG_ST_QUEUED = 2,
    QG_ST_ARRIVED = 3,
    QG_ST_SERVING = 4,
    QG_ST_SERVED = 5,
    QG_ST_NO_SHOW = 6,
    QG_ST_MOVED = 7,
    QG_ST_CANCELLED = 8,
    QG_ST_PHARMACY_RECEIVED = 9,
    QG_ST_PHARMACY_DISPENSED = 10,
    QG_ST_PAID = 11,
    QG_ST_VISIT_ENDED = 12
} qg_state;

#define QG_STATE_COUNT 13

/**
 * The canonical lifecycle events, the machine's alphabet.  QG_EV_NONE is
 * "no event" (a delivery that never reached the machine).
 */
typedef enum qg_event {
    QG_EV_NONE = 0,
    QG_EV_BOOK = 1,
    QG_EV_RESCHEDULE = 2,
    QG_EV_JOIN = 3,
    QG_EV_ARRIVE = 4,
    QG_EV_ALERT = 5,
    QG_EV_SERVE = 6,
    QG_EV_COMPLETE = 7,
    QG_EV_NO_SHOW = 8,
    QG_EV_MOVE = 9,
    QG_EV_CANCEL = 10,
    QG_EV_RX_RECEIVE = 11,
    QG_EV_RX_DISPENSE = 12,
    QG_EV_PAY = 13,
    QG_EV_END_VISIT = 14,
    QG_EV_UPDATE = 15
} qg_event;

#define QG_EVENT_COUNT 16 /* including QG_EV_NONE */

#endif /* QGATE_LIFECYCLE_H */
