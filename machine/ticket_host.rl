/*
 * machine/ticket_host.rl - the host of the ticket state chart.
 *
 * Ragel compiles this file, with machine/ticket.rl included, into C in the
 * build folder.  The resumable state lives in struct qg__fsm.  Callers only
 * ever see canonical states, which are what the store persists: Ragel's own
 * state numbers change whenever the chart is edited and never leave here.
 */
#include <stddef.h>

#include "fsm.h"

%%{
    machine ticket;

    action to_booked { fsm->state = QG_ST_BOOKED; }
    action to_queued { fsm->state = QG_ST_QUEUED; }
    action to_arrived { fsm->state = QG_ST_ARRIVED; }
    action to_serving { fsm->state = QG_ST_SERVING; }
    action to_served { fsm->state = QG_ST_SERVED; }
    action to_no_show { fsm->state = QG_ST_NO_SHOW; }
    action to_moved { fsm->state = QG_ST_MOVED; }
    action to_cancelled { fsm->state = QG_ST_CANCELLED; }
    action to_pharmacy_received { fsm->state = QG_ST_PHARMACY_RECEIVED; }
    action to_pharmacy_dispensed { fsm->state = QG_ST_PHARMACY_DISPENSED; }
    action to_paid { fsm->state = QG_ST_PAID; }
    action to_visit_ended { fsm->state = QG_ST_VISIT_ENDED; }

    include "ticket.rl";

    # Every labelled state is an entry point and fentry() gives its Ragel
    # number.  Running the probe machine once collects them, so resuming a
    # ticket from its stored canonical state uses numbers taken from the
    # chart itself.
    action entries {
        fsm->entry[QG_ST_NEW] = fentry(start);
        fsm->entry[QG_ST_BOOKED] = fentry(booked);
        fsm->entry[QG_ST_QUEUED] = fentry(queued);
        fsm->entry[QG_ST_ARRIVED] = fentry(arrived);
        fsm->entry[QG_ST_SERVING] = fentry(serving);
        fsm->entry[QG_ST_SERVED] = fentry(served);
        fsm->entry[QG_ST_NO_SHOW] = fentry(no_show);
        fsm->entry[QG_ST_MOVED] = fentry(moved);
        fsm->entry[QG_ST_CANCELLED] = fentry(cancelled);
        fsm->entry[QG_ST_PHARMACY_RECEIVED] = fentry(pharmacy_received);
        fsm->entry[QG_ST_PHARMACY_DISPENSED] = fentry(pharmacy_dispensed);
        fsm->entry[QG_ST_PAID] = fentry(paid);
        fsm->entry[QG_ST_VISIT_ENDED] = fentry(visit_ended);
    }

    main := lifecycle;
    probe := any @entries;

    variable cs fsm->cs;
}%%

%% write data nofinal noprefix;

/* Runs the chart over one symbol.  This cannot fail; an illegal event
 * leaves fsm->cs at the error state. */
static void
step(qg__fsm *fsm, int symbol)
{
    const int *p = &symbol, *pe = p + 1;

    %% write exec;
}

void
qg__fsm_entries(int entry[QG_STATE_COUNT])
{
    qg__fsm fsm = {en_probe, QG_ST_NEW, entry};

    step(&fsm, 0);
}

void
qg__fsm_resume(qg__fsm *fsm, const int entry[QG_STATE_COUNT], qg_state s)
{
    fsm->cs = entry[s];
    fsm->state = s;
    fsm->entry = NULL;
}

int
qg__fsm_feed(qg__fsm *fsm, qg_event ev)
{
    if (fsm->cs != error)
        step(fsm, (int)ev);
    return fsm->cs == error ? -1 : 0;
}
