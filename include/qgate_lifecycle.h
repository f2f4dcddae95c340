/**
 * @file qgate_lifecycle.h
 * @brief The canonical ticket states and events.
 *
 * This header is the alphabet of the lifecycle machine: Ragel imports the
 * event values from it (machine/ticket.rl), so each event keeps an explicit
 * value.  The values are also what the store persists; never renumber them,
 * only append.  qgate.h includes it; it declares no functions.
 *
 * Which event leads where is the machine's business: ask
 * qg_machine_next() and qg_machine_allowed(), or read docs/lifecycle.md.
 * qg_state_name() and qg_event_name() give the canonical names used in
 * the store's exports, the CLI and the gate's answers.
 */
#ifndef QGATE_LIFECYCLE_H
#define QGATE_LIFECYCLE_H

/**
 * The states of a ticket.  #QG_ST_NEW is a ticket with no accepted event.
 * #QG_ST_CANCELLED and #QG_ST_VISIT_ENDED are final: no event leaves them.
 */
typedef enum qg_state {
    QG_ST_NEW = 0,                 /**< "new": no step accepted yet */
    QG_ST_BOOKED = 1,              /**< "booked": an appointment is made */
    QG_ST_QUEUED = 2,              /**< "queued": waiting in a live queue */
    QG_ST_ARRIVED = 3,             /**< "arrived": checked in at the clinic */
    QG_ST_SERVING = 4,             /**< "serving": being seen */
    QG_ST_SERVED = 5,              /**< "served": the service is complete */
    QG_ST_NO_SHOW = 6,             /**< "no_show": did not come when called */
    QG_ST_MOVED = 7,               /**< "moved": sent to another queue */
    QG_ST_CANCELLED = 8,           /**< "cancelled": final */
    QG_ST_PHARMACY_RECEIVED = 9,   /**< "pharmacy_received": prescription in */
    QG_ST_PHARMACY_DISPENSED = 10, /**< "pharmacy_dispensed": medicine given */
    QG_ST_PAID = 11,               /**< "paid": the bill is paid */
    QG_ST_VISIT_ENDED = 12         /**< "visit_ended": final */
} qg_state;

/** The number of states: valid states are 0 to QG_STATE_COUNT - 1. */
#define QG_STATE_COUNT 13

/**
 * The canonical lifecycle events, the machine's alphabet.  #QG_EV_NONE is
 * "no event" (a delivery that never reached the machine).
 */
typedef enum qg_event {
    QG_EV_NONE = 0,         /**< "none": no event; never legal */
    QG_EV_BOOK = 1,         /**< "book": an appointment is created */
    QG_EV_RESCHEDULE = 2,   /**< "reschedule": its date or time changed */
    QG_EV_JOIN = 3,         /**< "join": the patient joins a live queue */
    QG_EV_ARRIVE = 4,       /**< "arrive": the patient checks in */
    QG_EV_ALERT = 5,        /**< "alert": the patient is alerted; no move */
    QG_EV_SERVE = 6,        /**< "serve": service starts */
    QG_EV_COMPLETE = 7,     /**< "complete": service ends */
    QG_EV_NO_SHOW = 8,      /**< "no_show": the patient did not come */
    QG_EV_MOVE = 9,         /**< "move": sent to another service's queue */
    QG_EV_CANCEL = 10,      /**< "cancel": the ticket is cancelled */
    QG_EV_RX_RECEIVE = 11,  /**< "rx_receive": the pharmacy receives it */
    QG_EV_RX_DISPENSE = 12, /**< "rx_dispense": the pharmacy dispenses */
    QG_EV_PAY = 13,         /**< "pay": the bill is paid */
    QG_EV_END_VISIT = 14,   /**< "end_visit": the visit ends */
    QG_EV_UPDATE = 15       /**< "update": details changed; no move */
} qg_event;

/** The number of events, including #QG_EV_NONE. */
#define QG_EVENT_COUNT 16 /* including QG_EV_NONE */

#endif /* QGATE_LIFECYCLE_H */
