/*
 * fsm.h - the interface of the Ragel host (machine/ticket_host.rl).
 *
 * Private.  The rest of the library asks lifecycle.c, which caches the
 * full state x event table built from these calls.
 */
#ifndef QG_FSM_H
#define QG_FSM_H

#include "qgate_lifecycle.h"

typedef struct qg__fsm {
    int cs;         /* Ragel's state number; never persisted */
    qg_state state; /* canonical state, set by the chart's to-state actions */
    int *entry;     /* probe output, NULL outside qg__fsm_entries() */
} qg__fsm;

/* Fills entry[s] with the Ragel entry point of every canonical state. */
void qg__fsm_entries(int entry[QG_STATE_COUNT]);

/* Places the machine in canonical state s (entry from qg__fsm_entries()). */
void qg__fsm_resume(qg__fsm *fsm, const int entry[QG_STATE_COUNT], qg_state s);

/* Feeds one event.  Returns 0 and updates fsm->state when the event is legal,
 * -1 when it is not; after -1 the machine stays in error. */
int qg__fsm_feed(qg__fsm *fsm, qg_event ev);

#endif /* QG_FSM_H */
