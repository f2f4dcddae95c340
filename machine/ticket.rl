# machine/ticket.rl - the legal lifecycle of a Chup ticket.
#
# Structure only: one labelled state per canonical state, one arm per legal
# event.  The alphabet is the event enum of include/qgate_lifecycle.h.  The
# host (machine/ticket_host.rl) instantiates this chart; nothing outside the
# host sees Ragel's state numbers, only the canonical states named here.
#
# Each labelled state has a to-state action named for it ("to_queued"),
# defined by the host.  It tells the host which canonical state was entered,
# and it keeps Ragel from merging states that allow the same events: queued
# and moved do, and so do the two final states.
#
# "start" is the canonical state "new".  cancelled and visit_ended are final:
# no event leaves them.

%%{
    machine ticket;
    alphtype int;

    import "qgate_lifecycle.h";

    lifecycle = (
        start: (
            QG_EV_BOOK -> booked |
            QG_EV_JOIN -> queued |
            QG_EV_ARRIVE -> arrived
        ),

        booked: (
            ( QG_EV_RESCHEDULE | QG_EV_ALERT | QG_EV_UPDATE ) -> booked |
            QG_EV_JOIN -> queued |
            QG_EV_ARRIVE -> arrived |
            QG_EV_NO_SHOW -> no_show |
            QG_EV_CANCEL -> cancelled
        ) >~to_booked,

        queued: (
            ( QG_EV_ALERT | QG_EV_UPDATE ) -> queued |
            QG_EV_ARRIVE -> arrived |
            QG_EV_SERVE -> serving |
            QG_EV_MOVE -> moved |
            QG_EV_NO_SHOW -> no_show |
            QG_EV_CANCEL -> cancelled
        ) >~to_queued,

        arrived: (
            ( QG_EV_ALERT | QG_EV_UPDATE ) -> arrived |
            QG_EV_SERVE -> serving |
            QG_EV_MOVE -> moved |
            QG_EV_NO_SHOW -> no_show |
            QG_EV_CANCEL -> cancelled
        ) >~to_arrived,

        moved: (
            ( QG_EV_ALERT | QG_EV_UPDATE ) -> moved |
            QG_EV_ARRIVE -> arrived |
            QG_EV_SERVE -> serving |
            QG_EV_MOVE -> moved |
            QG_EV_NO_SHOW -> no_show |
            QG_EV_CANCEL -> cancelled
        ) >~to_moved,

        serving: (
            ( QG_EV_ALERT | QG_EV_UPDATE ) -> serving |
            QG_EV_COMPLETE -> served |
            QG_EV_MOVE -> moved
        ) >~to_serving,

        served: (
            QG_EV_UPDATE -> served |
            QG_EV_MOVE -> moved |
            QG_EV_RX_RECEIVE -> pharmacy_received |
            QG_EV_PAY -> paid |
            QG_EV_END_VISIT -> visit_ended
        ) >~to_served,

        no_show: (
            QG_EV_UPDATE -> no_show |
            QG_EV_JOIN -> queued |
            QG_EV_ARRIVE -> arrived |
            QG_EV_CANCEL -> cancelled
        ) >~to_no_show,

        pharmacy_received: (
            ( QG_EV_ALERT | QG_EV_UPDATE ) -> pharmacy_received |
            QG_EV_RX_DISPENSE -> pharmacy_dispensed
        ) >~to_pharmacy_received,

        pharmacy_dispensed: (
            QG_EV_UPDATE -> pharmacy_dispensed |
            QG_EV_MOVE -> moved |
            QG_EV_PAY -> paid |
            QG_EV_END_VISIT -> visit_ended
        ) >~to_pharmacy_dispensed,

        paid: (
            QG_EV_UPDATE -> paid |
            QG_EV_MOVE -> moved |
            QG_EV_RX_RECEIVE -> pharmacy_received |
            QG_EV_END_VISIT -> visit_ended
        ) >~to_paid,

        cancelled: ( zlen ) >~to_cancelled -> final,

        visit_ended: ( zlen ) >~to_visit_ended -> final
    );
}%%
