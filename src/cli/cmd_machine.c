/*
 * cmd_machine.c - qgate machine: the lifecycle as a table or Graphviz.
 *
 * Both are drawn from the compiled machine (qg_machine_next), so they show
 * what runs, whatever the chart's source says in comments.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static void
table(FILE *f)
{
    int s, e;

    fprintf(f, "%-19s %s\n", "from", "allowed event -> to");
    for (s = 0; s < QG_STATE_COUNT; s++) {
        int first = 1;

        fprintf(f, "%-19s ", qg_state_name((qg_state)s));
        for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
            int to = qg_machine_next((qg_state)s, (qg_event)e);

            if (to < 0)
                continue;
            fprintf(f, "%s%s -> %s", first ? "" : ", ",
                    qg_event_name((qg_event)e), qg_state_name((qg_state)to));
            first = 0;
        }
        fprintf(f, "%s\n", first ? "nothing (final)" : "");
    }
}

static void
dot(FILE *f)
{
    int s, e, to;

    fprintf(f,
            "digraph lifecycle {\n"
            "  rankdir=LR;\n"
            "  label=\"qgate ticket lifecycle (machine %s)\";\n"
            "  node [shape=box, style=rounded, fontname=\"sans\"];\n"
            "  edge [fontname=\"sans\", fontsize=10];\n",
            qg_machine_version());
    for (s = 0; s < QG_STATE_COUNT; s++)
        fprintf(f, "  %s [label=\"%s\"%s];\n", qg_state_name((qg_state)s),
                qg_state_name((qg_state)s),
                qg_state_is_final((qg_state)s) ? ", peripheries=2" : "");
    /* One edge per (from, to) pair, naming every event that takes it. */
    for (s = 0; s < QG_STATE_COUNT; s++) {
        for (to = 0; to < QG_STATE_COUNT; to++) {
            int first = 1;

            for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
                if (qg_machine_next((qg_state)s, (qg_event)e) != to)
                    continue;
                if (first)
                    fprintf(f, "  %s -> %s [label=\"",
                            qg_state_name((qg_state)s),
                            qg_state_name((qg_state)to));
                fprintf(f, "%s%s", first ? "" : "\\n",
                        qg_event_name((qg_event)e));
                first = 0;
            }
            if (!first)
                fprintf(f, "\"];\n");
        }
    }
    fprintf(f, "}\n");
}

/* Pipes the Graphviz text through `dot -Tsvg -o path`.  No shell, so the
 * path needs no quoting. */
static int
svg(const char *path)
{
    int fds[2], status;
    pid_t pid;
    FILE *f;

    if (pipe(fds) != 0)
        return cli_fail("pipe: %s", strerror(errno));
    if ((pid = fork()) < 0)
        return cli_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[0], STDIN_FILENO);
        close(fds[0]);
        close(fds[1]);
        execlp("dot", "dot", "-Tsvg", "-o", path, (char *)NULL);
        fprintf(stderr, "qgate: dot: %s (install graphviz)\n", strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    if ((f = fdopen(fds[1], "w")) == NULL) {
        close(fds[1]);
        waitpid(pid, &status, 0);
        return cli_fail("fdopen: %s", strerror(errno));
    }
    dot(f);
    fclose(f);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return cli_fail("%s: dot failed", path);
    return EXIT_OK;
}

static struct {
    const char *output, *svg_path;
    int as_dot;
} o;

static const struct option options[] = {
    CLI_COMMON_OPTIONS,
    {"dot", no_argument, NULL, 'd'},
    {"table", no_argument, NULL, 't'},
    {"output", required_argument, NULL, 'o'},
    {"svg", required_argument, NULL, 's'},
    {0}};

static int
option(cli *c, int opt, const char *arg)
{
    (void)c;
    switch (opt) {
    case 'd':
        o.as_dot = 1;
        return 0;
    case 't':
        o.as_dot = 0;
        return 0;
    case 'o':
        o.output = arg;
        return 0;
    case 's':
        o.svg_path = arg;
        return 0;
    }
    return EXIT_FAILED;
}

static int
ready(cli *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* Graphviz is not JSON: asking for both is a mistake, not a choice. */
    if (c->json && (o.as_dot || o.svg_path))
        return cli_fail("machine: --json is the table; it cannot be %s",
                        o.svg_path ? "--svg" : "--dot");
    return 0;
}

static int
run(cli *c, qg_store *st, int argc, char **argv)
{
    FILE *f = stdout;

    (void)st;
    (void)argc;
    (void)argv;
    if (o.svg_path)
        return svg(o.svg_path);
    if (o.output && (f = fopen(o.output, "w")) == NULL)
        return cli_fail("%s: %s", o.output, strerror(errno));
    if (o.as_dot)
        dot(f);
    else if (c->json)
        render_machine(f);
    else
        table(f);
    if (o.output && fclose(f) != 0)
        return cli_fail("%s: write error", o.output);
    return EXIT_OK;
}

const cli_command cli_machine = {
    .name = "machine",
    .summary = "the lifecycle as a table or Graphviz",
    .usage = "usage: qgate machine [--table | --json | --dot] [-o FILE]\n"
             "       qgate machine --svg FILE   (needs Graphviz)\n"
             "--json: the table as one JSON object.\n",
    .options = options,
    .shortopts = "ho:",
    .store = CLI_NO_STORE,
    .no_config = 1,
    .option = option,
    .ready = ready,
    .run = run};
