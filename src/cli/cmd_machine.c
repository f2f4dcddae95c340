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

/*
 * The chart's layout, worked out from the machine as the console's
 * diagram.js works it out, so that docs/lifecycle.svg and the console's
 * chart read alike: the states entered only by the side events go in a row
 * of their own; the longest path from the first state over the others
 * (back edges and self-loops left out) is the happy path, drawn in one
 * line.  The three event names below are the only thing the chart knows of
 * the machine beforehand, to say which way is the side.
 */
static const char *const side_events[] = {"no_show", "cancel", "move"};

typedef struct chart {
    int side[QG_STATE_COUNT];    /* entered only by a side event */
    int col[QG_STATE_COUNT];     /* place on the happy path, or -1 */
    int path[QG_STATE_COUNT];    /* the happy path, in order */
    int path_len;                /* states on it */
    int row[QG_STATE_COUNT];     /* the side states, left to right */
    int row_len;                 /* states in that row */
    double mean[QG_STATE_COUNT]; /* mean column of a side state's neighbours */
    int back[QG_STATE_COUNT][QG_STATE_COUNT]; /* a back edge from, to */
    int seen[QG_STATE_COUNT], on_stack[QG_STATE_COUNT];
    int best_len[QG_STATE_COUNT], best_next[QG_STATE_COUNT];
} chart;

static int
is_side_event(int e)
{
    size_t i;

    for (i = 0; i < sizeof(side_events) / sizeof(side_events[0]); i++)
        if (strcmp(qg_event_name((qg_event)e), side_events[i]) == 0)
            return 1;
    return 0;
}

/* The state event e leads s to, when that edge counts for the happy path:
 * not a self-loop, not into a side state, and the first event from s to
 * that state (the console dedupes the same way, in the same order).
 * Else -1. */
static int
spine_edge(const chart *c, int s, int e)
{
    int to = qg_machine_next((qg_state)s, (qg_event)e), f;

    if (to < 0 || to == s || c->side[to])
        return -1;
    for (f = QG_EV_NONE + 1; f < e; f++)
        if (qg_machine_next((qg_state)s, (qg_event)f) == to)
            return -1;
    return to;
}

/* Depth first from s: an edge to a state still on the stack goes back. */
static void
mark_back(chart *c, int s)
{
    int e, to;

    c->seen[s] = c->on_stack[s] = 1;
    for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
        if ((to = spine_edge(c, s, e)) < 0)
            continue;
        if (c->on_stack[to])
            c->back[s][to] = 1;
        else if (!c->seen[to])
            mark_back(c, to);
    }
    c->on_stack[s] = 0;
}

/* The number of states on the longest path from s without back edges
 * (a DAG once they are left out), the first longest one found winning. */
static int
longest(chart *c, int s)
{
    int e, to, n;

    if (c->best_len[s])
        return c->best_len[s];
    c->best_len[s] = 1;
    c->best_next[s] = -1;
    for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
        if ((to = spine_edge(c, s, e)) < 0 || c->back[s][to])
            continue;
        if ((n = longest(c, to)) + 1 > c->best_len[s]) {
            c->best_len[s] = n + 1;
            c->best_next[s] = to;
        }
    }
    return c->best_len[s];
}

static void
chart_layout(chart *c)
{
    const int start = 0; /* the first state: no event accepted yet */
    int s, t, e, i, in_other, in_side, n;
    double sum;

    memset(c, 0, sizeof(*c));
    for (s = 0; s < QG_STATE_COUNT; s++) {
        c->col[s] = -1;
        if (s == start)
            continue;
        in_other = 0;
        in_side = 1;
        for (t = 0; t < QG_STATE_COUNT; t++)
            for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++)
                if (t != s && qg_machine_next((qg_state)t, (qg_event)e) == s) {
                    in_other = 1;
                    in_side = in_side && is_side_event(e);
                }
        c->side[s] = in_other && in_side;
    }
    mark_back(c, start);
    longest(c, start);
    for (s = start; s >= 0; s = c->best_next[s]) {
        c->col[s] = c->path_len;
        c->path[c->path_len++] = s;
    }
    /* Each side state under the mean column of its neighbours on the
     * line, in that order, so that its edges run down and not across. */
    for (s = 0; s < QG_STATE_COUNT; s++) {
        if (!c->side[s])
            continue;
        sum = 0;
        n = 0;
        for (t = 0; t < QG_STATE_COUNT; t++)
            for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
                if (c->col[t] < 0)
                    continue;
                if (qg_machine_next((qg_state)s, (qg_event)e) == t)
                    sum += c->col[t], n++;
                if (qg_machine_next((qg_state)t, (qg_event)e) == s)
                    sum += c->col[t], n++;
            }
        c->mean[s] = n ? sum / n : 0;
        for (i = c->row_len++; i > 0 && c->mean[c->row[i - 1]] > c->mean[s];
             i--)
            c->row[i] = c->row[i - 1];
        c->row[i] = s;
    }
}

/* The place of s in the side row, or -1. */
static int
row_index(const chart *c, int s)
{
    int i;

    for (i = 0; i < c->row_len; i++)
        if (c->row[i] == s)
            return i;
    return -1;
}

/*
 * Graphviz, laid out as the console's chart: the happy path one rank (a
 * line, left to right), the side states the rank below, in the order of
 * their neighbours, so that the cancel, no-show and move edges run between
 * the two rows and never across the line.  Labels of edges within a rank
 * are external (xlabel): dot would otherwise make room for them with a
 * rank of their own and bend the line.
 */
static void
dot(FILE *f)
{
    chart c;
    int s, e, to, i, from_row, to_row, flip;

    chart_layout(&c);
    fprintf(f,
            "digraph lifecycle {\n"
            "  label=\"qgate ticket lifecycle (machine %s)\";\n"
            "  node [shape=box, style=rounded, fontname=\"sans\"];\n"
            "  edge [fontname=\"sans\", fontsize=10];\n"
            "  nodesep=0.35;\n"
            "  ranksep=1.4;\n"
            "  forcelabels=true;\n",
            qg_machine_version());
    for (s = 0; s < QG_STATE_COUNT; s++)
        fprintf(f, "  %s [label=\"%s\"%s];\n", qg_state_name((qg_state)s),
                qg_state_name((qg_state)s),
                qg_state_is_final((qg_state)s) ? ", peripheries=2" : "");
    fputs("  /* the happy path */\n  { rank=same;", f);
    for (i = 0; i < c.path_len; i++)
        fprintf(f, " %s;", qg_state_name((qg_state)c.path[i]));
    fputs(" }\n", f);
    if (c.row_len) {
        fputs("  /* the side states */\n  { rank=same;", f);
        for (i = 0; i < c.row_len; i++)
            fprintf(f, " %s;", qg_state_name((qg_state)c.row[i]));
        fputs(" }\n", f);
        /* Their order, kept: dot would order them by their edges alone. */
        for (i = 1; i < c.row_len; i++)
            fprintf(f, "  %s -> %s [style=invis];\n",
                    qg_state_name((qg_state)c.row[i - 1]),
                    qg_state_name((qg_state)c.row[i]));
    }
    /* One edge per (from, to) pair, naming every event that takes it. */
    for (s = 0; s < QG_STATE_COUNT; s++) {
        for (to = 0; to < QG_STATE_COUNT; to++) {
            int first = 1;

            from_row = c.col[s] >= 0 ? 0 : c.side[s] ? 1 : -1;
            to_row = c.col[to] >= 0 ? 0 : c.side[to] ? 1 : -1;
            /* An edge within the side row against its order is written
             * the other way round and drawn back, or dot would reorder
             * the row to make it point right. */
            flip = from_row == 1 && to_row == 1 && s != to &&
                   row_index(&c, s) > row_index(&c, to);
            for (e = QG_EV_NONE + 1; e < QG_EVENT_COUNT; e++) {
                if (qg_machine_next((qg_state)s, (qg_event)e) != to)
                    continue;
                if (first)
                    fprintf(f, "  %s -> %s [%slabel=\"",
                            qg_state_name((qg_state)(flip ? to : s)),
                            qg_state_name((qg_state)(flip ? s : to)),
                            s != to && from_row == to_row ? "x" : "");
                fprintf(f, "%s%s", first ? "" : "\\n",
                        qg_event_name((qg_event)e));
                first = 0;
            }
            if (first)
                continue;
            fputc('"', f);
            if (flip)
                fputs(", dir=back", f);
            /* A loop on the line's top or under the side row: beside its
             * state it would sit on the next edge's label. */
            if (s == to && from_row >= 0)
                fputs(from_row == 0 ? ", tailport=n, headport=n"
                                    : ", tailport=s, headport=s",
                      f);
            /* The line's own steps pull hardest: kept short and straight. */
            if (from_row == 0 && to_row == 0 && c.col[to] == c.col[s] + 1)
                fputs(", weight=10", f);
            fputs("];\n", f);
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
