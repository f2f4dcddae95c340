#!/bin/sh
# tests/bench/pg.sh BUILD_DIR [RESULTS.md] - one LMDB gate beside one, two
# and three gates on one PostgreSQL database, in the same run, on the same
# day: deliveries/s at saturation and latency at a fixed rate.
#
# Every gate runs with --durability group: an answer means committed, to
# disk (LMDB: fsync; PostgreSQL: synchronous_commit on, the server started
# with fsync on).  The PostgreSQL server is a throwaway one
# (tests/pg_server.sh, its socket in a temporary directory), on this
# machine, so the gates and the server share its cores.  Each run starts
# from an empty store (LMDB: a fresh folder; PostgreSQL: the schema
# dropped).  bench_load spreads its connections over the gates' ports in
# turn.  While each saturation run lasts, the server's sessions are
# sampled every 100 ms (pg_stat_activity: active sessions by wait event),
# to say what the gates wait for.
#
# Sizes, from the environment: BENCH_TICKETS (4000 tickets in the day),
# BENCH_HTTP_SECONDS (4 per run, after 1 s of warm-up), BENCH_RATE (200
# requests/s in the fixed-rate runs), BENCH_CONNECTIONS (32 at
# saturation).  run.sh calls it with its own sizes.  Writes a Markdown
# section to stdout and, if given, appends it to RESULTS.md.
set -eu

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: tests/bench/pg.sh BUILD_DIR [RESULTS.md]" >&2
    exit 2
fi
B=$(cd "$1" && pwd)
RESULTS=${2:-}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BB=$B/tests/bench
Q=$B/qgate
SECRET=$SRC/fixtures/secret
TICKETS=${BENCH_TICKETS:-4000}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-4}
RATE=${BENCH_RATE:-200}
CONNS=${BENCH_CONNECTIONS:-32}
OPEN_CONNS=64

for f in "$Q" "$BB/gen_day" "$BB/bench_load" "$BB/bench_proc"; do
    [ -x "$f" ] || {
        echo "pg.sh: $f is missing: build $B first" >&2
        exit 2
    }
done
PGBIN=$("$SRC/tests/pg_server.sh" bindir) || {
    echo "pg.sh: no PostgreSQL server programs: skipped" >&2
    exit 0
}

W=$(mktemp -d /tmp/qgate-pgb-XXXXXX)
# the server's, beside: as root it runs as nobody, who cannot enter $W
PGDIR=$(mktemp -d /tmp/qgate-pg-XXXXXX)
PIDS=
cleanup() {
    for p in $PIDS; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    "$SRC/tests/pg_server.sh" stop "$PGDIR" 2>/dev/null || true
    rm -rf "$W" "$PGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '%s\n' "$*" >&2; }
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | head -1; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "pg bench: the day ($TICKETS tickets)"
"$BB/gen_day" "$TICKETS" 11 qgate-development-secret "$W/day.json" \
    2 1 0.5 1024 >"$W/day.ndjson"
URI=$(QG_PG_FSYNC=on "$SRC/tests/pg_server.sh" start "$PGDIR" $$ 3>&-)
psql() { "$PGBIN/psql" -X -q -tA "$URI" "$@"; }
pg_version=$(psql -c 'SHOW server_version')

# fresh KIND: an empty store for the next run.
fresh() {
    if [ "$1" = lmdb ]; then
        rm -rf "$W/lmdb"
        DB=$W/lmdb
    else
        psql -c 'DROP SCHEMA IF EXISTS qgate CASCADE' \
            -c 'DROP TABLE IF EXISTS public.qgate_schema' 2>/dev/null
        DB=$URI
    fi
}

# start KIND N: N gates on a fresh store; their ports in PORTS.
start() {
    fresh "$1"
    PORTS=
    PIDS=
    i=0
    while [ $i -lt "$2" ]; do
        port=$("$BB/bench_proc" port)
        "$Q" serve --listen "127.0.0.1:$port" --db "$DB" \
            --secret-file "$SECRET" --durability group --threads 2 \
            --log "$W/gate-$i.log" 2>>"$W/gate.err" &
        PIDS="$PIDS $!"
        "$BB/bench_proc" wait-port "$port" 10000
        PORTS=${PORTS:+$PORTS,}$port
        i=$((i + 1))
    done
}
stop() {
    for p in $PIDS; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=
}

# Active sessions by wait event, every 100 ms, until the file $W/stop.
sample() {
    while [ ! -e "$W/stop" ]; do
        psql -c "SELECT coalesce(wait_event_type, 'CPU') || ':' ||
                 coalesce(wait_event, 'running') FROM pg_stat_activity
                 WHERE state = 'active' AND pid <> pg_backend_pid()
                 AND datname = 'qgate'" 2>/dev/null || true
        sleep 0.1
    done
}

# CPU time so far, in ms, of the gates ($PIDS) and of the server's
# processes (user + system, from /proc/PID/stat).
cpu_ms() {
    for p in "$@"; do
        cat "/proc/$p/stat" 2>/dev/null || true
    done | awk -v hz="$(getconf CLK_TCK)" '
        { sub(/^.*\) /, ""); s += $12 + $13 } END { printf "%d\n", s * 1000 / hz }'
}
cpu_gates() { cpu_ms $PIDS; }
cpu_pg() {
    pm=$(cat "$PGDIR/pid")
    cpu_ms "$pm" $(ps -o pid= --ppid "$pm")
}

# run NAME KIND N: a fixed-rate run and a saturation run, each on fresh
# gates and store.
run() {
    say "pg bench: $1 (fixed rate $RATE/s)"
    start "$2" "$3"
    timeout $((HTTP_SECONDS + 20)) "$BB/bench_load" --port "$PORTS" \
        --bodies "$W/day.ndjson" --duration "$HTTP_SECONDS" --warmup 1 \
        --rate "$RATE" --connections "$OPEN_CONNS" --threads 1 \
        --label "$1-open" >"$W/$1-open.txt"
    stop
    say "pg bench: $1 (saturation, $CONNS connections)"
    start "$2" "$3"
    rm -f "$W/stop"
    if [ "$2" = pg ]; then
        sample >"$W/$1-waits.txt" &
        SAMPLER=$!
    fi
    g0=$(cpu_gates)
    p0=$(cpu_pg)
    timeout $((HTTP_SECONDS + 20)) "$BB/bench_load" --port "$PORTS" \
        --bodies "$W/day.ndjson" --duration "$HTTP_SECONDS" --warmup 1 \
        --connections "$CONNS" --threads 2 --label "$1-closed" \
        >"$W/$1-closed.txt"
    echo "gates=$(($(cpu_gates) - g0)) pg=$(($(cpu_pg) - p0))" >"$W/$1-cpu.txt"
    touch "$W/stop"
    [ "$2" = pg ] && wait "$SAMPLER"
    stop
}

run lmdb-1 lmdb 1
run pg-1 pg 1
run pg-2 pg 2
run pg-3 pg 3

# The top wait events of a run: "event share%, ..." of the samples.
waits() {
    sort "$W/$1-waits.txt" | uniq -c | sort -rn | awk '
        { n[NR] = $1; e[NR] = $2; t += $1 }
        END { for (i = 1; i <= NR && i <= 4; i++)
                  printf "%s%s %.0f%%", (i > 1 ? ", " : ""), e[i], 100 * n[i] / t
              if (NR == 0) printf "none sampled" }'
}
row() {
    o=$W/$1-open.txt
    c=$W/$1-closed.txt
    printf '| %s | %s | %s | %s | %s | %s | %s ms, %s ms | %s |\n' "$2" "$(kv "$c" rps)" \
        "$(kv "$c" p99_us)" "$(kv "$o" p50_us)" "$(kv "$o" p99_us)" \
        "$(($(kv "$c" s5xx) + $(kv "$c" errors) + $(kv "$o" s5xx) + $(kv "$o" errors)))" \
        "$(kv "$W/$1-cpu.txt" gates)" "$(kv "$W/$1-cpu.txt" pg)" "${3:-}"
}
{
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), PostgreSQL $pg_version on the same machine (fsync on), $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$B/CMakeCache.txt") build; a day of $TICKETS tickets, $CONNS connections at saturation, $RATE deliveries/s fixed, ${HTTP_SECONDS} s per run; every gate --durability group. Load average before: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| gates | deliveries/s at saturation | p99 at saturation (µs) | p50 at $RATE/s (µs) | p99 at $RATE/s (µs) | 5xx or errors | CPU over the saturation run: gates, PostgreSQL | PostgreSQL's active sessions, by wait event |"
    echo "|---|---|---|---|---|---|---|---|"
    row lmdb-1 "one, LMDB"
    row pg-1 "one, PostgreSQL" "$(waits pg-1)"
    row pg-2 "two, PostgreSQL" "$(waits pg-2)"
    row pg-3 "three, PostgreSQL" "$(waits pg-3)"
} >"$W/section.md"
cat "$W/section.md"
[ -z "$RESULTS" ] || cat "$W/section.md" >>"$RESULTS"
