/*
 * validate.c - decides one webhook body against a store without writing.
 *
 *     validate STORE SECRET_FILE BODY_FILE
 *
 * Opens (and if needed creates) the store, applies the body as a dry run
 * (QG_DRY_RUN: nothing is written) and prints the verdict.  Exit status:
 * 0 accepted, duplicate or ignored; 1 refused; 2 error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qgate.h>

/* Reads a whole file into a malloc'd buffer.  Returns 0, or -1. */
static int
read_file(const char *path, char **out, size_t *len)
{
    char *buf = NULL, *grown;
    size_t cap = 0, n = 0;
    FILE *f;

    if ((f = fopen(path, "rb")) == NULL)
        return -1;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            if ((grown = realloc(buf, cap)) == NULL)
                break;
            buf = grown;
        }
        n += fread(buf + n, 1, cap - n, f);
    } while (n == cap);
    if (ferror(f) || n == cap) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

static void
print_result(const qg_result *res)
{
    int e;

    printf("verdict: %s\n", qg_verdict_name(res->verdict));
    printf("code: %s\n", qg_reason_name(res->reason));
    printf("reason: %s\n", res->detail);
    printf("ticket: %" PRIu64 "\n", res->ticket);
    printf("live_queue_id: %" PRId64 "\n", res->live_queue_id);
    printf("appointment_id: %" PRId64 "\n", res->appointment_id);
    printf("event: %s\n", qg_event_name(res->event));
    printf("from: %s\n", qg_state_name(res->from));
    printf("to: %s\n", qg_state_name(res->to));
    printf("allowed:");
    for (e = 0; e < QG_EVENT_COUNT; e++)
        if (res->allowed & (1u << e))
            printf(" %s", qg_event_name((qg_event)e));
    printf("\n");
}

int
main(int argc, char **argv)
{
    qg_store_options opts;
    qg_store *st = NULL;
    qg_engine *eng = NULL;
    qg_result res;
    char err[512], *body = NULL;
    size_t len;
    int rc, status = 2;

    if (argc != 4) {
        fprintf(stderr, "usage: validate STORE SECRET_FILE BODY_FILE\n");
        return 2;
    }
    memset(&opts, 0, sizeof(opts));
    opts.path = argv[1];
    if ((rc = qg_store_open(&opts, &st))) {
        fprintf(stderr, "validate: %s: %s\n", argv[1], qg_strerror(rc));
        return 2;
    }
    if ((rc = qg_engine_new(&eng))) {
        fprintf(stderr, "validate: %s\n", qg_strerror(rc));
        goto close_store;
    }
    err[0] = '\0';
    if ((rc = qg_engine_load_secret(eng, argv[2], err, sizeof(err)))) {
        fprintf(stderr, "validate: %s\n", err[0] ? err : qg_strerror(rc));
        goto free_engine;
    }
    if (read_file(argv[3], &body, &len)) {
        fprintf(stderr, "validate: %s: cannot read the file\n", argv[3]);
        goto free_engine;
    }
    if ((rc = qg_engine_apply(eng, st, body, len, QG_DRY_RUN, &res))) {
        fprintf(stderr, "validate: %s: %s\n", argv[3], qg_strerror(rc));
        goto free_body;
    }
    print_result(&res);
    status = res.verdict == QG_ACCEPTED || res.verdict == QG_DUPLICATE ||
                     res.verdict == QG_IGNORED
                 ? 0
                 : 1;
free_body:
    free(body);
free_engine:
    qg_engine_free(eng);
close_store:
    qg_store_close(st);
    return status;
}
