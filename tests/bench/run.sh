#!/bin/sh
# tests/bench/run.sh BUILD_DIR [RESULTS.md] - the whole benchmark suite.
#
# Runs, on 127.0.0.1 only, each step bounded in time and count:
#   1. the workload: a signed day from tests/gen_day (2% duplicates, 1%
#      illegal, 0.5% stale deliveries, about 1 KB each);
#   2. the engine in process (bench_engine): each durability, the phases
#      of a delivery, and a raw LMDB put loop of the same records beside it;
#   3. the gate over HTTP (bench_load) at a fixed rate and at saturation,
#      beside a bare libmicrohttpd server (bench_bare), nginx, and the
#      receiver a JavaScript team would write for the same job
#      (tests/bench/peer: Node's http, XState, lmdb; installed here with
#      npm ci from its lock file);
#   4. audit queries over a store of 1,000,000 tickets (bench_audit and
#      the qgate CLI), and the console's requests over it (console.sh,
#      against `qgate console --db`);
#   5. peak memory of the gate under load and of the CLI over that store;
#   6. where the bytes of a store of 1 KB deliveries go (bench_audit space),
#      and the same records packed (bench_audit repack);
#   7. one LMDB gate beside one, two and three gates on one PostgreSQL
#      database (tests/bench/pg.sh);
# then writes a Markdown results table to stdout and, if given, to
# RESULTS.md.  Progress goes to stderr.  Build first, in Release:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release &&
#   cmake --build build-bench -j2
# Scratch data (about 8 GB at the default sizes) lives in
# BUILD_DIR/bench-work; the stores, the day and the gate's logs are
# removed at the end (BENCH_KEEP=1 keeps them), the small result files
# kept.  nginx is installed with apt-get when missing (as root).
#
# Sizes, from the environment: BENCH_TICKETS (40000 tickets in the day),
# BENCH_AUDIT_TICKETS (1000000), BENCH_ENGINE_SECONDS (3 per measurement),
# BENCH_HTTP_SECONDS (4 per run, after 1 s of warm-up), BENCH_RATE (1000
# requests/s in the fixed-rate runs), BENCH_CONNECTIONS (32 at saturation).
set -eu

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: tests/bench/run.sh BUILD_DIR [RESULTS.md]" >&2
    exit 2
fi
B=$(cd "$1" && pwd)
RESULTS=${2:-}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BB=$B/tests/bench
Q=$B/qgate
SECRET=$SRC/fixtures/secret
W=$B/bench-work
TICKETS=${BENCH_TICKETS:-40000}
AUDIT_TICKETS=${BENCH_AUDIT_TICKETS:-1000000}
ENGINE_SECONDS=${BENCH_ENGINE_SECONDS:-3}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-4}
RATE=${BENCH_RATE:-1000}
CONNS=${BENCH_CONNECTIONS:-32}
OPEN_CONNS=64 # enough that the fixed rate never waits for a connection

for f in "$Q" "$BB/gen_day" "$BB/bench_engine" "$BB/bench_load" \
    "$BB/bench_bare" "$BB/bench_proc" "$BB/bench_audit"; do
    [ -x "$f" ] || {
        echo "run.sh: $f is missing: build $B first" >&2
        exit 2
    }
done

started=$(date +%s)
rm -rf "$W"
mkdir -p "$W/stores"
REPORT=$W/report.md
CMDS=$W/commands.txt
: >"$REPORT"
: >"$CMDS"
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [ "${BENCH_KEEP:-0}" = 1 ] ||
        rm -rf "$W/stores" "$W/audit" "$W/size" "$W/day.ndjson" "$W"/gate-*.log
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
out() { printf '%s\n' "$*" >>"$REPORT"; }
# Notes a command, paths shortened, for the report's list.
note() {
    printf '%s\n' "$*" | sed -e "s|$W|WORK|g" -e "s|$B|BUILD|g" \
        -e "s|$SRC|SRC|g" >>"$CMDS"
}
# Runs a command after noting it.
logged() {
    note "$*"
    "$@"
}
# The value of KEY in a file holding a line of key=value pairs.
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | head -1; }
# calc FORMAT EXPRESSION A [B [C]]: awk arithmetic on a, b and c.
calc() {
    awk -v a="$3" -v b="${4:-0}" -v c="${5:-0}" \
        "BEGIN { printf \"$1\", $2 }"
}
# met A OP B: whether the target A OP B holds.
met() {
    awk -v a="$1" -v b="$3" \
        "BEGIN { print (a $2 b) ? \"met\" : \"**missed**\" }"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ----- the machine -------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fs=$(df -PT "$W" | awk 'NR == 2 { print $2 " on " $1 ", mounted on " $7 ", " $6 " used" }')
cc=$(sed -n 's/^CMAKE_C_COMPILER:FILEPATH=//p' "$B/CMakeCache.txt")
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$B/CMakeCache.txt")
load_start=$(loadavg)
say "bench: $(nproc) x $cpu, $mem; scratch on $fs"
note "tests/bench/run.sh $B${RESULTS:+ $RESULTS}  # runs all of these:"

if ! command -v nginx >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "bench: installing nginx"
    {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx ||
            { apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; }
    } >"$W/apt.log" 2>&1 || true
fi
NGINX=
if command -v nginx >/dev/null 2>&1; then
    NGINX=$(nginx -v 2>&1 | sed 's/^nginx version: //')
fi
# The JavaScript peer, from its lock file.
PEER=
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    say "bench: installing the JavaScript peer (npm ci)"
    mkdir -p "$W/peer"
    cp "$SRC/tests/bench/peer/package.json" \
        "$SRC/tests/bench/peer/package-lock.json" \
        "$SRC/tests/bench/peer/server.js" "$W/peer/"
    if (cd "$W/peer" && npm ci --no-audit --no-fund --loglevel=error) \
        >"$W/npm.log" 2>&1; then
        PEER="Node $(node --version), xstate $(sed -n 's/.*"xstate": "\(.*\)".*/\1/p' "$W/peer/package.json"), lmdb $(sed -n 's/.*"lmdb": "\(.*\)".*/\1/p' "$W/peer/package.json")"
    else
        say "bench: npm ci failed ($W/npm.log): no JavaScript peer"
    fi
fi

# ----- 1. the workload ---------------------------------------------------
say "bench: 1. generating the day ($TICKETS tickets)"
logged "$BB/gen_day" "$TICKETS" 11 qgate-development-secret \
    "$W/day.json" 2 1 0.5 1024 >"$W/day.ndjson"
day_deliveries=$(wc -l <"$W/day.ndjson")
day_bytes=$(wc -c <"$W/day.ndjson")
day_extra=$(sed 's/.*"duplicates":\([0-9]*\),"illegal":\([0-9]*\),"stale":\([0-9]*\).*/\1 duplicates, \2 illegal, \3 stale/' "$W/day.json")

# ----- 2. the engine -----------------------------------------------------
# Dirty pages of earlier steps, flushed meanwhile, would slow the flushes
# measured next: flush them first (here and before the gate's group runs).
sync
say "bench: 2. engine in process (about $((16 * ENGINE_SECONDS + 15)) s)"
logged timeout 300 "$BB/bench_engine" --day "$W/day.ndjson" \
    --secret-file "$SECRET" --dir "$W/stores" --seconds "$ENGINE_SECONDS" \
    --summary "$W/engine.txt" >"$W/engine.md"
e() { sed -n "s/^$1=//p" "$W/engine.txt"; }

# ----- 3. HTTP -----------------------------------------------------------
# Each server listens on a port free now, and is stopped by its pid.
start_bare() {
    PORT=$("$BB/bench_proc" port)
    "$BB/bench_bare" --port "$PORT" --threads 2 >"$W/bare.out" 2>&1 &
    SERVER_PID=$!
    "$BB/bench_proc" wait-port "$PORT"
}
start_nginx() {
    PORT=$("$BB/bench_proc" port)
    rm -rf "$W/nginx"
    mkdir -p "$W/nginx"
    sed -e "s|@DIR@|$W/nginx|g" -e "s|@PORT@|$PORT|g" \
        "$SRC/tests/bench/nginx.conf" >"$W/nginx/nginx.conf"
    nginx -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" &
    SERVER_PID=$!
    "$BB/bench_proc" wait-port "$PORT"
}
# start_gate DURABILITY LOG [ARGS]: on an empty store each time, so that every
# run applies the day from its first delivery.
start_gate() {
    PORT=$("$BB/bench_proc" port)
    rm -rf "$W/stores/gate"
    g_dur=$1
    g_log=$2
    shift 2
    "$Q" serve --listen "127.0.0.1:$PORT" --db "$W/stores/gate" \
        --secret-file "$SECRET" --durability "$g_dur" --threads 2 \
        --log "$g_log" "$@" 2>"$W/gate.err" &
    SERVER_PID=$!
    "$BB/bench_proc" wait-port "$PORT"
}
# start_peer nosync|sync: the JavaScript peer on an empty store.
start_peer() {
    PORT=$("$BB/bench_proc" port)
    rm -rf "$W/stores/peer"
    node "$W/peer/server.js" "$PORT" "$W/stores/peer" "$SECRET" "$1" \
        >"$W/peer-$1.log" 2>&1 &
    SERVER_PID=$!
    "$BB/bench_proc" wait-port "$PORT"
}
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
# load NAME open|closed [ARGS]: one bench_load run against $PORT.
load() {
    l_name=$1
    l_kind=$2
    shift 2
    if [ "$l_kind" = open ]; then
        set -- "$l_name-open" --rate "$RATE" --connections "$OPEN_CONNS" \
            --threads 1 "$@"
    else
        set -- "$l_name-closed" --connections "$CONNS" --threads 2 "$@"
    fi
    label=$1
    shift
    note "$BB/bench_load --port PORT --bodies $W/day.ndjson --duration $HTTP_SECONDS --warmup 1 --label $label $*"
    # CPU time of the server's threads, and of the load generator, over
    # the run, to share out per request.
    "$BB/bench_proc" cpu "$SERVER_PID" >"$W/cpu-$label-before.txt"
    "$BB/bench_proc" run -o "$W/http-$label.txt" -- \
        timeout $((HTTP_SECONDS + 20)) "$BB/bench_load" --port "$PORT" \
        --bodies "$W/day.ndjson" --duration "$HTTP_SECONDS" --warmup 1 \
        --label "$label" "$@" >"$W/cpu-$label-load.txt"
    "$BB/bench_proc" cpu "$SERVER_PID" >"$W/cpu-$label-after.txt"
    [ "$(kv "$W/cpu-$label-load.txt" status)" = 0 ] || {
        echo "run.sh: bench_load $label failed" >&2
        exit 1
    }
}
# cpu_per LABEL [THREAD]: CPU us per answer of the server (or of one of
# its thread names) over the run LABEL.
cpu_per() {
    calc '%.1f' '(b-a)*1000/c' "$(kv "$W/cpu-$1-before.txt" "${2:-total}")" \
        "$(kv "$W/cpu-$1-after.txt" "${2:-total}")" \
        "$(kv "$W/http-$1.txt" answers_all)"
}
# cpu_split LABEL: "name us, name us" for each thread name of the server.
cpu_split() {
    awk -v n="$(kv "$W/http-$1.txt" answers_all)" '
        FNR == NR { for (i = 1; i <= NF; i++) { split($i, kv, "="); a[kv[1]] = kv[2] } next }
        { for (i = 1; i <= NF; i++) { split($i, kv, "=")
            if (kv[1] != "total") { printf "%s%s %.1f", sep, kv[1], (kv[2] - a[kv[1]]) * 1000 / n; sep = ", " } } }
        END { print "" }' "$W/cpu-$1-before.txt" "$W/cpu-$1-after.txt"
}
load_cpu_per() {
    calc '%.1f' '(a+b)*1000/c' "$(kv "$W/cpu-$1-load.txt" user_ms)" \
        "$(kv "$W/cpu-$1-load.txt" sys_ms)" "$(kv "$W/http-$1.txt" answers_all)"
}
# serve NAME START [ARGS]: a fixed-rate run and a saturation run, each on
# a freshly started server; peak memory after saturation.
serve() {
    name=$1
    shift
    say "bench: 3. HTTP, $name"
    "$@"
    load "$name" open
    stop_server
    "$@"
    load "$name" closed
    "$BB/bench_proc" mem "$SERVER_PID" >"$W/http-$name-mem.txt"
    stop_server
}
note "$BB/bench_bare --port PORT --threads 2"
serve bare start_bare
if [ -n "$NGINX" ]; then
    note "nginx -c WORK/nginx/nginx.conf -e WORK/nginx/error.log  # SRC/tests/bench/nginx.conf, @DIR@ and @PORT@ filled in"
    serve nginx start_nginx
fi
sync
note "$Q serve --listen 127.0.0.1:PORT --db WORK/stores/gate --secret-file $SECRET --durability nosync --threads 2 --log WORK/gate-nosync.log"
serve gate-nosync start_gate nosync "$W/gate-nosync.log"
sync
note "$Q serve --listen 127.0.0.1:PORT --db WORK/stores/gate --secret-file $SECRET --durability nosync --threads 2 --log WORK/gate-wm.log --writemap"
serve gate-wm start_gate nosync "$W/gate-wm.log" --writemap
# Two diagnostics, at saturation, right after: what the per-request log
# line costs (logging to /dev/null), and what the store's writes cost
# (every delivery a duplicate: decided, nothing written).
say "bench: 3. HTTP, gate-nosync logging to /dev/null"
note "$Q serve --listen 127.0.0.1:PORT --db WORK/stores/gate --secret-file $SECRET --durability nosync --threads 2 --log /dev/null"
start_gate nosync /dev/null
load gate-nolog closed
stop_server
say "bench: 3. HTTP, gate-nosync answering duplicates"
note "$Q serve --listen 127.0.0.1:PORT --db WORK/stores/gate --secret-file $SECRET --durability nosync --threads 2 --log WORK/gate-dup.log"
start_gate nosync "$W/gate-dup.log"
note "$BB/bench_load --port PORT --bodies $W/day.ndjson --first 20000 --duration 3 --warmup 0 --connections $CONNS --threads 2 --label gate-prefill"
timeout 30 "$BB/bench_load" --port "$PORT" --bodies "$W/day.ndjson" \
    --first 20000 --duration 3 --warmup 0 --connections "$CONNS" \
    --threads 2 --label gate-prefill >"$W/http-gate-prefill.txt"
load gate-dup closed --first 20000
stop_server
sync
note "$Q serve --listen 127.0.0.1:PORT --db WORK/stores/gate --secret-file $SECRET --durability group --threads 2 --log WORK/gate-group.log"
serve gate-group start_gate group "$W/gate-group.log"
rm -rf "$W/stores/gate"
if [ -n "$PEER" ]; then
    sync
    note "node WORK/peer/server.js PORT WORK/stores/peer $SECRET nosync  # SRC/tests/bench/peer"
    serve peer-nosync start_peer nosync
    sync
    note "node WORK/peer/server.js PORT WORK/stores/peer $SECRET sync"
    serve peer-sync start_peer sync
    rm -rf "$W/stores/peer"
fi

# ----- 4. audit ----------------------------------------------------------
say "bench: 4. building a store of $AUDIT_TICKETS tickets (a few minutes)"
mkdir -p "$W/audit"
note "$BB/gen_day $AUDIT_TICKETS 5 qgate-development-secret WORK/audit.json | $BB/bench_audit build --db WORK/audit/db"
timeout 600 sh -c "'$BB/gen_day' $AUDIT_TICKETS 5 qgate-development-secret \
    '$W/audit.json' | '$BB/bench_audit' build --db '$W/audit/db'" \
    >"$W/audit-build.txt"
# The build leaves gigabytes of dirty pages, whose flushing would stall
# the reads measured next.
say "bench: 4. flushing the store to disk"
t=$(date +%s)
sync
audit_sync=$(($(date +%s) - t))
say "bench: 4. audit queries"
logged timeout 120 "$BB/bench_audit" query --db "$W/audit/db" \
    --tickets "$AUDIT_TICKETS" --samples 10000 >"$W/audit-query.txt"
probe=$((100000 + AUDIT_TICKETS * 2 / 3))
cli() {
    name=$1
    shift
    logged timeout 300 "$BB/bench_proc" run "$@" >"$W/cli-$name.txt"
}
cli history -n 21 -- "$Q" history --db "$W/audit/db" "$probe"
cli show -n 21 -- "$Q" show --db "$W/audit/db" "$probe"
cli start -n 21 -- "$Q" --help
cli stats -n 3 -- "$Q" stats --db "$W/audit/db"
cli export -n 3 -- "$Q" export --db "$W/audit/db"
# The console's requests over that store, from `qgate console --db`.
say "bench: 4. the console over that store"
logged timeout 900 "$SRC/tests/bench/console.sh" "$Q" "$W/audit/db" "$probe" \
    21 100000 $((100000 + AUDIT_TICKETS)) >"$W/console.txt"
store_kb=$(du -k "$W/audit/db/data.mdb" | cut -f1)
logged "$BB/bench_audit" space --db "$W/audit/db" >"$W/space-audit.md"

# ----- 6. store size -----------------------------------------------------
# The day's 1 KB deliveries, applied as bench_engine's nosync group run
# does (with the outbox an HIS would drain), then where the bytes go; and
# the same records copied in key order with MDB_APPEND (full leaves): the
# size this layout reaches when its pages are packed.
say "bench: 6. store size, 1 KB deliveries"
note "$BB/bench_audit build --outbox --db WORK/size/db < WORK/day.ndjson"
mkdir -p "$W/size"
"$BB/bench_audit" build --outbox --db "$W/size/db" <"$W/day.ndjson" \
    >"$W/size-build.txt"
logged "$BB/bench_audit" space --db "$W/size/db" --per "$day_deliveries" \
    >"$W/space-kb.md"
logged "$BB/bench_audit" repack --db "$W/size/db" --to "$W/size/packed"
logged "$BB/bench_audit" space --db "$W/size/packed" --per "$day_deliveries" \
    >"$W/space-kb-packed.md"
rm -rf "$W/size"

# ----- the report --------------------------------------------------------
load_end=$(loadavg)
wall=$(($(date +%s) - started))

out "## Results"
out ""
out "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): $(printf '%dm%02ds' $((wall / 60)) $((wall % 60))) wall for the whole suite, with $TICKETS tickets in the day and $AUDIT_TICKETS in the audit store."
out ""
out "### Machine"
out ""
out "| | |"
out "|---|---|"
out "| CPUs (nproc) | $(nproc) |"
out "| CPU model | $cpu |"
out "| memory | $mem |"
out "| kernel | $(uname -sr) |"
out "| store folder | $fs |"
out "| load average (1, 5, 15 min) | $load_start at the start, $load_end at the end |"
out "| compiler, build | $($cc --version | head -1), $build_type |"
out "| qgate | $("$Q" --version 2>&1 | head -1) |"
out "| JavaScript peer | ${PEER:-not installed (no node or npm, or npm ci failed)} |"
out "| libraries | LMDB $(dpkg-query -W -f '${Version}' liblmdb0 2>/dev/null || echo '?'), libmicrohttpd $(dpkg-query -W -f '${Version}' libmicrohttpd12 2>/dev/null || echo '?'), json-c $(dpkg-query -W -f '${Version}' libjson-c5 2>/dev/null || echo '?'), OpenSSL $(dpkg-query -W -f '${Version}' libssl3 2>/dev/null || echo '?'), nginx ${NGINX:-not installed} |"
out ""
out "### 1. Workload"
out ""
out "$day_deliveries signed deliveries for $TICKETS tickets ($day_extra), $(calc '%.0f' 'a/b' "$day_bytes" "$day_deliveries") bytes a line on average."
out ""
out "### 2. Engine, in process, one thread"
out ""
cat "$W/engine.md" >>"$REPORT"
out ""
out "### 3. Gate over HTTP"
out ""
out "Fixed rate: $RATE requests/s, open loop, over $OPEN_CONNS keep-alive connections; latency from each request's due time. Saturation: closed loop, $CONNS keep-alive connections on 2 load threads. Each run: 1 s of warm-up, then $HTTP_SECONDS s measured, on a freshly started server (the gate on an empty store). The load generator shares the 2 cores with the server. Peak RSS: VmHWM of the server after the saturation run; in brackets its anonymous part (the rest is store pages that LMDB maps from the file)."
out ""
out "| server | fixed rate: req/s | p50 us | p90 us | p99 us | max us | saturation: req/s | p50 us | p90 us | p99 us | max us | answers at saturation | peak RSS MiB |"
out "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
row() {
    o=$W/http-$1-open.txt
    c=$W/http-$1-closed.txt
    m=$W/http-$1-mem.txt
    out "| $2 | $(kv "$o" rps) | $(kv "$o" p50_us) | $(kv "$o" p90_us) | $(kv "$o" p99_us) | $(kv "$o" max_us) | $(kv "$c" rps) | $(kv "$c" p50_us) | $(kv "$c" p90_us) | $(kv "$c" p99_us) | $(kv "$c" max_us) | $(kv "$c" s2xx) 2xx, $(kv "$c" s4xx) 4xx, $(kv "$c" s5xx) 5xx, $(kv "$c" errors) errors | $(calc '%.0f' 'a/1024' "$(kv "$m" hwm_kb)") ($(calc '%.1f' 'a/1024' "$(kv "$m" anon_kb)")) |"
}
row bare "bare libmicrohttpd, epoll, 2 threads: 200"
if [ -n "$NGINX" ]; then
    row nginx "nginx $NGINX, 2 workers: 204"
else
    out "| nginx | not installed (apt-get install nginx failed): no comparison | | | | | | | | | | | |"
fi
row gate-nosync "qgate serve --durability nosync"
row gate-wm "qgate serve --durability nosync --writemap"
row gate-group "qgate serve --durability group"
if [ -n "$PEER" ]; then
    row peer-nosync "JavaScript peer, lmdb noSync"
    row peer-sync "JavaScript peer, lmdb batched commits, flushed"
fi
out ""
b_rps=$(kv "$W/http-bare-closed.txt" rps)
g_rps=$(kv "$W/http-gate-nosync-closed.txt" rps)
wm_rps=$(kv "$W/http-gate-wm-closed.txt" rps)
wm_p99=$(kv "$W/http-gate-wm-open.txt" p99_us)
gg_rps=$(kv "$W/http-gate-group-closed.txt" rps)
nl_rps=$(kv "$W/http-gate-nolog-closed.txt" rps)
dup_rps=$(kv "$W/http-gate-dup-closed.txt" rps)
b_p99=$(kv "$W/http-bare-open.txt" p99_us)
g_p99=$(kv "$W/http-gate-nosync-open.txt" p99_us)
gg_p99=$(kv "$W/http-gate-group-open.txt" p99_us)
line="Ratios at saturation: qgate nosync / bare $(calc '%.2f' 'a/b' "$g_rps" "$b_rps"), qgate nosync --writemap / bare $(calc '%.2f' 'a/b' "$wm_rps" "$b_rps"), qgate group / bare $(calc '%.2f' 'a/b' "$gg_rps" "$b_rps")"
if [ -n "$NGINX" ]; then
    n_rps=$(kv "$W/http-nginx-closed.txt" rps)
    n_p99=$(kv "$W/http-nginx-open.txt" p99_us)
    line="$line, qgate nosync / nginx $(calc '%.2f' 'a/b' "$g_rps" "$n_rps"), qgate group / nginx $(calc '%.2f' 'a/b' "$gg_rps" "$n_rps"), bare / nginx $(calc '%.2f' 'a/b' "$b_rps" "$n_rps")"
fi
line="$line. p99 at $RATE req/s: qgate nosync $(calc '%+d' 'a-b' "$g_p99" "$b_p99") us from bare, qgate nosync --writemap $(calc '%+d' 'a-b' "$wm_p99" "$b_p99") us, qgate group $(calc '%+d' 'a-b' "$gg_p99" "$b_p99") us"
if [ -n "$NGINX" ]; then
    line="$line; nginx $(calc '%+d' 'a-b' "$n_p99" "$b_p99") us"
fi
out "$line."
out ""
if [ -n "$PEER" ]; then
    # qgate over the peer, each at the same durability: nosync with
    # nosync; group with the peer's flushed batches, which are lmdb's
    # group commit.
    pr() { # throughput, p99 and peak RSS ratios of gate-$1 to peer-$2
        out "| qgate $1 / peer $2 | $(calc '%.2f' 'a/b' "$(kv "$W/http-gate-$1-closed.txt" rps)" "$(kv "$W/http-peer-$2-closed.txt" rps)") | $(calc '%.2f' 'a/b' "$(kv "$W/http-gate-$1-open.txt" p99_us)" "$(kv "$W/http-peer-$2-open.txt" p99_us)") | $(calc '%.2f' 'a/b' "$(kv "$W/http-gate-$1-closed.txt" p99_us)" "$(kv "$W/http-peer-$2-closed.txt" p99_us)") | $(calc '%.2f' 'a/b' "$(kv "$W/http-gate-$1-mem.txt" hwm_kb)" "$(kv "$W/http-peer-$2-mem.txt" hwm_kb)") |"
    }
    out "qgate against the JavaScript peer under the same load and durability (above 1 is more for throughput; below 1 is better for p99 and memory):"
    out ""
    out "| pair | saturation req/s | p99 at $RATE req/s | p99 at saturation | peak RSS |"
    out "|---|---:|---:|---:|---:|"
    pr nosync nosync
    pr group sync
    out ""
fi
out "CPU time per answer at saturation, in us (user and system time of every thread over the whole run, warm-up included, shared out over every answer): the server's, by thread name, and the load generator's. The server's threads and the load generator share 2 cores, so 2 s of CPU a second is the ceiling of each row."
out ""
out "| server | server CPU us/answer | by thread | load generator CPU us/answer |"
out "|---|---:|---|---:|"
for r in bare nginx gate-nosync gate-wm gate-nolog gate-dup gate-group peer-nosync \
    peer-sync; do
    [ -f "$W/cpu-$r-closed-after.txt" ] || continue
    out "| $r | $(cpu_per "$r-closed") | $(cpu_split "$r-closed") | $(load_cpu_per "$r-closed") |"
done
out ""
out "Diagnostics at saturation, qgate nosync: logging to /dev/null instead of a file, $nl_rps req/s ($(calc '%+.0f' '(a/b-1)*100' "$nl_rps" "$g_rps")%); every delivery a duplicate (the first 20,000 of the day sent a second time: decided, nothing written), $dup_rps req/s ($(calc '%.2f' 'a/b' "$dup_rps" "$b_rps") of bare; answers: $(kv "$W/http-gate-dup-closed.txt" s2xx) 2xx, $(kv "$W/http-gate-dup-closed.txt" s4xx) 4xx)."
out ""

q=$W/audit-query.txt
ab=$W/audit-build.txt
records=$(kv "$ab" accepted)
out "### 4. Audit queries and 5. memory, over a store of $AUDIT_TICKETS tickets"
out ""
out "Built in process with \`qg_engine_apply_batch\` (256 deliveries a commit, QG_NOSYNC, signatures not checked) from \`gen_day $AUDIT_TICKETS 5\` (no extras, no padding: Chup's own size, about 620 bytes a delivery): $(kv "$ab" deliveries) deliveries, $records history records, in $(kv "$ab" seconds) s ($(kv "$ab" per_s) deliveries/s). \`data.mdb\`: $(calc '%.2f' 'a/1048576' "$store_kb") GiB, $(calc '%.2f' 'a/1048576/(b/1000000)' "$store_kb" "$records") GiB per million events. The page cache is warm (the store was just written, then flushed to disk in $audit_sync s). Peak RSS counts the store pages a process maps; peak anonymous RSS is its own memory (sampled every 5 ms)."
out ""
out "| query | median | p90 | p99 | max | peak RSS (ru_maxrss) | peak anonymous RSS |"
out "|---|---:|---:|---:|---:|---:|---:|"
out "| history of one ticket, in process: qg_store_ticket, then a cursor over its records ($(kv "$q" records_per_ticket) on average); $(kv "$q" samples) random tickets | $(kv "$q" history_p50_us) us | $(kv "$q" history_p90_us) us | $(kv "$q" history_p99_us) us | $(kv "$q" history_max_us) us | | |"
out "| show one ticket, in process: qg_store_ticket | $(kv "$q" show_p50_us) us | | $(kv "$q" show_p99_us) us | $(kv "$q" show_max_us) us | | |"
out "| \`qgate history $probe\`, whole process, 21 runs | $(kv "$W/cli-history.txt" median_ms) ms | | | $(kv "$W/cli-history.txt" max_ms) ms | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-history.txt" maxrss_kb)") MiB | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-history.txt" anon_kb)") MiB |"
out "| \`qgate show $probe\`, whole process, 21 runs | $(kv "$W/cli-show.txt" median_ms) ms | | | $(kv "$W/cli-show.txt" max_ms) ms | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-show.txt" maxrss_kb)") MiB | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-show.txt" anon_kb)") MiB |"
out "| \`qgate --help\`: starting the process alone, 21 runs | $(kv "$W/cli-start.txt" median_ms) ms | | | $(kv "$W/cli-start.txt" max_ms) ms | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-start.txt" maxrss_kb)") MiB | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-start.txt" anon_kb)") MiB |"
out "| \`qgate stats\` over $records records, 3 runs | $(calc '%.2f' 'a/1000' "$(kv "$W/cli-stats.txt" median_ms)") s ($(calc '%.2f' 'b/(a/1000)/1000000' "$(kv "$W/cli-stats.txt" median_ms)" "$records") M records/s; CPU $(calc '%.2f' '(a+b)/1000' "$(kv "$W/cli-stats.txt" user_ms)" "$(kv "$W/cli-stats.txt" sys_ms)") s, $(calc '%.2f' 'c/((a+b)/1000)/1000000' "$(kv "$W/cli-stats.txt" user_ms)" "$(kv "$W/cli-stats.txt" sys_ms)" "$records") M records per CPU second) | | | $(calc '%.2f' 'a/1000' "$(kv "$W/cli-stats.txt" max_ms)") s | $(calc '%.0f' 'a/1024' "$(kv "$W/cli-stats.txt" maxrss_kb)") MiB | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-stats.txt" anon_kb)") MiB |"
out "| \`qgate export >/dev/null\` (NDJSON) over $records records, 3 runs | $(calc '%.2f' 'a/1000' "$(kv "$W/cli-export.txt" median_ms)") s ($(calc '%.2f' 'b/(a/1000)/1000000' "$(kv "$W/cli-export.txt" median_ms)" "$records") M records/s; CPU $(calc '%.2f' '(a+b)/1000' "$(kv "$W/cli-export.txt" user_ms)" "$(kv "$W/cli-export.txt" sys_ms)") s, $(calc '%.2f' 'c/((a+b)/1000)/1000000' "$(kv "$W/cli-export.txt" user_ms)" "$(kv "$W/cli-export.txt" sys_ms)" "$records") M records per CPU second) | | | $(calc '%.2f' 'a/1000' "$(kv "$W/cli-export.txt" max_ms)") s | $(calc '%.0f' 'a/1024' "$(kv "$W/cli-export.txt" maxrss_kb)") MiB | $(calc '%.1f' 'a/1024' "$(kv "$W/cli-export.txt" anon_kb)") MiB |"
out "| console (\`qgate console --db\`, curl's time_total on one kept-alive connection): \`GET /tickets/$probe\`, 21 runs | $(kv "$W/console.txt" ticket_p50_ms) ms | $(kv "$W/console.txt" ticket_p90_ms) ms | | $(kv "$W/console.txt" ticket_max_ms) ms | | |"
out "| console: \`GET /tickets/$probe/steps\` ($(kv "$W/console.txt" steps_bytes) bytes), 21 runs | $(kv "$W/console.txt" steps_p50_ms) ms | $(kv "$W/console.txt" steps_p90_ms) ms | | $(kv "$W/console.txt" steps_max_ms) ms | | |"
out "| console: \`GET /tickets/ID/steps\` of 200 random tickets, each once | $(kv "$W/console.txt" random_steps_p50_ms) ms | $(kv "$W/console.txt" random_steps_p90_ms) ms | $(kv "$W/console.txt" random_steps_p99_ms) ms | $(kv "$W/console.txt" random_steps_max_ms) ms | | |"
out "| console: \`GET /machine\`, 21 runs | $(kv "$W/console.txt" machine_p50_ms) ms | $(kv "$W/console.txt" machine_p90_ms) ms | | $(kv "$W/console.txt" machine_max_ms) ms | | |"
out "| console: \`GET /overview\` (reads every ticket and refusal), 5 runs | $(kv "$W/console.txt" overview_p50_ms) ms | | | $(kv "$W/console.txt" overview_max_ms) ms | | |"
out "| console: \`GET /tickets?limit=100\` (the search, newest 100), 21 runs | $(kv "$W/console.txt" search_p50_ms) ms | $(kv "$W/console.txt" search_p90_ms) ms | | $(kv "$W/console.txt" search_max_ms) ms | | |"
out "| console: \`GET /tickets?date=1999-01-01\` (a search that matches none: every ticket read), 5 runs | $(kv "$W/console.txt" search_scan_p50_ms) ms | | | $(kv "$W/console.txt" search_scan_max_ms) ms | | |"
out "| \`qgate serve --durability nosync\` under saturation (section 3) | | | | | $(calc '%.0f' 'a/1024' "$(kv "$W/http-gate-nosync-mem.txt" hwm_kb)") MiB (VmHWM) | $(calc '%.1f' 'a/1024' "$(kv "$W/http-gate-nosync-mem.txt" anon_kb)") MiB (now) |"
out "| \`qgate serve --durability group\` under saturation (section 3) | | | | | $(calc '%.0f' 'a/1024' "$(kv "$W/http-gate-group-mem.txt" hwm_kb)") MiB (VmHWM) | $(calc '%.1f' 'a/1024' "$(kv "$W/http-gate-group-mem.txt" anon_kb)") MiB (now) |"
out ""

# ----- targets -----------------------------------------------------------
s1=$(e engine_sync1_per_s)
n1=$(e engine_nosync1_per_s)
n256=$(e engine_nosync256_per_s)
best_nosync=$(calc '%d' '(a > b) ? a : b' "$n1" "$n256")
g16=$(e engine_group16_per_s)
g64=$(e engine_group64_per_s)
g256=$(e engine_group256_per_s)
best_group=$(calc '%d' '(a > b) ? ((a > c) ? a : c) : ((b > c) ? b : c)' "$g16" "$g64" "$g256")
h50=$(kv "$q" history_p50_us)
out "Where the bytes of that store go (\`bench_audit space\`: mdb_stat of each database, and a walk of its entries for the bytes its nodes take), per history record:"
out ""
cat "$W/space-audit.md" >>"$REPORT"
out ""
out "### 6. Store size, 1 KB deliveries"
out ""
out "The day of section 1 ($day_deliveries deliveries of about 1 KB; $(kv "$W/size-build.txt" accepted) accepted) applied with \`bench_audit build --outbox\` (256 a commit, QG_NOSYNC, the outbox kept as when forwarding to an HIS, none taking the entries away); bytes per delivery:"
out ""
cat "$W/space-kb.md" >>"$REPORT"
out ""
out "The same records copied in key order with MDB_APPEND (\`bench_audit repack\`), every leaf full: what this layout takes when packed."
out ""
cat "$W/space-kb-packed.md" >>"$REPORT"
out ""
out "### Targets"
out ""
out "| target | measured | |"
out "|---|---|---|"
out "| engine without sync: at least 100,000 deliveries/s on one core | $n1/s committing each delivery, $n256/s in groups of 256 | $(met "$best_nosync" '>=' 100000) |"
out "| group commit: at least 5x commit per delivery (sync, same disk) | $(calc '%.1f' 'a/b' "$g16" "$s1")x with 16, $(calc '%.1f' 'a/b' "$g64" "$s1")x with 64, $(calc '%.1f' 'a/b' "$g256" "$s1")x with 256, over $s1/s | $(met "$(calc '%f' 'a/b' "$best_group" "$s1")" '>=' 5) |"
out "| gate over HTTP, nosync: at least 50% of bare libmicrohttpd's throughput | $(calc '%.0f' 'a/b*100' "$g_rps" "$b_rps")% ($g_rps vs $b_rps req/s) | $(met "$(calc '%f' 'a/b' "$g_rps" "$b_rps")" '>=' 0.5) |"
out "| gate over HTTP, nosync: p99 at $RATE req/s within 1 ms of bare's | $g_p99 us vs $b_p99 us ($(calc '%+d' 'a-b' "$g_p99" "$b_p99") us) | $(met "$(calc '%d' 'a-b' "$g_p99" "$b_p99")" '<=' 1000) |"
st_rps=$(calc '%.2f' 'b/(a/1000)/1000000' "$(kv "$W/cli-stats.txt" median_ms)" "$records")
ex_rps=$(calc '%.2f' 'b/(a/1000)/1000000' "$(kv "$W/cli-export.txt" median_ms)" "$records")
kb_total=$(sed -n 's/^| \*\*data.mdb\*\* .*| \*\*\([0-9]*\)\*\* |$/\1/p' "$W/space-kb.md")
kb_outbox=$(awk -F'|' '$2 == " outbox " { gsub(/ /, "", $9); print $9 }' "$W/space-kb.md")
out "| \`qgate export\` (NDJSON, to /dev/null): at least 3 M records/s | $ex_rps M records/s ($(calc '%.2f' 'a/3' "$ex_rps") of the target), peak anonymous RSS $(calc '%.1f' 'a/1024' "$(kv "$W/cli-export.txt" anon_kb)") MiB | $(met "$ex_rps" '>=' 3) |"
out "| \`qgate stats\`: at least 5 M records/s | $st_rps M records/s ($(calc '%.2f' 'a/5' "$st_rps") of the target), peak anonymous RSS $(calc '%.1f' 'a/1024' "$(kv "$W/cli-stats.txt" anon_kb)") MiB | $(met "$st_rps" '>=' 5) |"
out "| store size: at most 1.5 KB (1536 bytes) per 1 KB delivery | $kb_total bytes, of which the undrained outbox $kb_outbox; packed: $(sed -n 's/^| \*\*data.mdb\*\* .*| \*\*\([0-9]*\)\*\* |$/\1/p' "$W/space-kb-packed.md") | $(met "$kb_total" '<=' 1536) |"
out "| history of one ticket among $AUDIT_TICKETS: under 1 ms (in process, median) | $h50 us (p99 $(kv "$q" history_p99_us) us); whole CLI process $(kv "$W/cli-history.txt" median_ms) ms | $(met "$h50" '<' 1000) |"
out "| a ticket page among $AUDIT_TICKETS tickets: under 50 ms, server side (\`/tickets/ID\`, \`/steps\`, \`/machine\` against \`qgate console --db\`, medians added) | $(kv "$W/console.txt" page_p50_ms) ms; \`/overview\` $(kv "$W/console.txt" overview_p50_ms) ms | $(met "$(kv "$W/console.txt" page_p50_ms)" '<' 50) |"
out ""
out "### PostgreSQL: one to three gates"
out ""
# The same day's size, rate and connections (tests/bench/pg.sh); skipped,
# and said, without the PostgreSQL server programs.
note "BENCH_TICKETS=$TICKETS BENCH_RATE=$RATE SRC/tests/bench/pg.sh $B"
BENCH_TICKETS=$TICKETS BENCH_RATE=$RATE BENCH_CONNECTIONS=$CONNS \
    BENCH_HTTP_SECONDS=$HTTP_SECONDS "$SRC/tests/bench/pg.sh" "$B" >>"$REPORT" ||
    out "(pg.sh failed: see its output above)"
out ""
out "### Commands"
out ""
out "As run: BUILD is $B, SRC $SRC, WORK $W, PORT the port each server was given."
out ""
out '```sh'
cat "$CMDS" >>"$REPORT"
out '```'

if [ -n "$RESULTS" ]; then
    cp "$REPORT" "$RESULTS"
fi
cat "$REPORT"
say "bench: done in ${wall} s"
