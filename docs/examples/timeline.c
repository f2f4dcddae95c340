/*
 * timeline.c - prints a ticket's history from a store opened read-only.
 *
 *     timeline STORE TICKET_LIVE_QUEUE_ID
 *
 * Works while another process (the gate) writes the store.  Exit status:
 * 0 printed; 1 no such ticket; 2 error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qgate.h>

int
main(int argc, char **argv)
{
    qg_store_options opts;
    qg_store *st = NULL;
    qg_history *h = NULL;
    qg_ticket t;
    qg_record r;
    long long id;
    char *end;
    int rc, status = 2;

    if (argc != 3) {
        fprintf(stderr, "usage: timeline STORE TICKET_LIVE_QUEUE_ID\n");
        return 2;
    }
    errno = 0;
    id = strtoll(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || id <= 0) {
        fprintf(stderr, "timeline: %s: not a live-queue id\n", argv[2]);
        return 2;
    }
    memset(&opts, 0, sizeof(opts));
    opts.path = argv[1];
    opts.flags = QG_RDONLY;
    if ((rc = qg_store_open(&opts, &st))) {
        fprintf(stderr, "timeline: %s: %s\n", argv[1],
                rc == QG_NOTFOUND ? "no store there" : qg_strerror(rc));
        return 2;
    }
    rc = qg_store_ticket(st, QG_ID_LIVE_QUEUE, id, &t);
    if (rc == QG_NOTFOUND) {
        fprintf(stderr, "timeline: %s: no ticket for live queue %lld\n",
                argv[1], id);
        status = 1;
        goto close_store;
    }
    if (rc || (rc = qg_history_open(st, t.id, &h))) {
        fprintf(stderr, "timeline: %s: %s\n", argv[1], qg_strerror(rc));
        goto close_store;
    }
    printf("ticket %" PRIu64 " (live queue %lld): %s, %" PRIu32 " steps\n",
           t.id, id, qg_state_name(t.state), t.records);
    while ((rc = qg_history_next(h, &r)) == 0)
        printf("%" PRIu32 " %s %s -> %s %" PRId64 "\n", r.seq,
               qg_event_name(r.event), qg_state_name(r.from),
               qg_state_name(r.to), r.event_ms);
    if (rc != QG_NOTFOUND) {
        fprintf(stderr, "timeline: %s: %s\n", argv[1], qg_strerror(rc));
        goto close_history;
    }
    status = 0;
close_history:
    qg_history_close(h);
close_store:
    qg_store_close(st);
    return status;
}
