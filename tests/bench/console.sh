#!/bin/sh
# tests/bench/console.sh QGATE DB TICKET [RUNS [LO HI]] - the console's JSON
# requests against `qgate console --db DB`, timed by curl over one
# kept-alive connection: the ticket page's four (/tickets/TICKET,
# /tickets/TICKET/steps, /tickets/TICKET/deliveries, /machine), the
# overview, and the ticket search
# (the newest 100; a day with no ticket, which reads every ticket).
#
# Prints one line of key=value pairs: for each request NAME, NAME_p50_ms,
# NAME_p90_ms and NAME_max_ms of curl's time_total (from the request sent
# on the open connection to the last byte of the answer, on 127.0.0.1: the
# server's time and the loopback's) and NAME_bytes; then page_p50_ms, the
# ticket page's four added.
# RUNS (21) of each, after one unmeasured; the full scans (overview,
# search_scan) 5.  With LO and HI, also random_steps_*: /tickets/ID/steps
# of 200 live-queue ids drawn in [LO, HI), each asked once (pages first
# touched, as an auditor's clicks would).
set -eu

if [ $# -lt 3 ]; then
    echo "usage: tests/bench/console.sh QGATE DB TICKET [RUNS]" >&2
    exit 2
fi
Q=$1
DB=$2
TICKET=$3
RUNS=${4:-21}
LO=${5:-}
HI=${6:-}
T=$(mktemp -d)
PID=

cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$Q" console --db "$DB" --listen 127.0.0.1:0 --log "$T/log" &
PID=$!
PORT=
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' \
        "$T/log" 2>/dev/null | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || {
    echo "console.sh: qgate console did not start" >&2
    cat "$T/log" >&2 || true
    exit 2
}

# time NAME PATH N: N+1 requests on one connection, the first dropped.
time_one() {
    name=$1
    path=$2
    n=$3
    set --
    i=0
    while [ $i -le "$n" ]; do
        set -- "$@" -o /dev/null "http://127.0.0.1:$PORT$path"
        i=$((i + 1))
    done
    curl -s --fail \
        -w '%{time_total} %{size_download}\n' \
        "$@" >"$T/$name.txt" || {
        echo "console.sh: GET $path failed" >&2
        exit 2
    }
    sed 1d "$T/$name.txt" | awk '{ printf "%.3f\n", $1 * 1000 }' |
        sort -n >"$T/$name.ms"
    bytes=$(sed -n '2s/.* //p' "$T/$name.txt")
    awk -v name="$name" -v bytes="$bytes" '
        { v[NR] = $1 }
        END {
            p90 = int(NR * 0.9 + 0.5); if (p90 < 1) p90 = 1; if (p90 > NR) p90 = NR
            printf "%s_p50_ms=%.2f %s_p90_ms=%.2f %s_max_ms=%.2f %s_bytes=%d ",
                name, v[int((NR + 1) / 2)], name, v[p90], name, v[NR], name, bytes
        }' "$T/$name.ms"
}

time_one ticket "/tickets/$TICKET" "$RUNS" >"$T/out"
time_one steps "/tickets/$TICKET/steps" "$RUNS" >>"$T/out"
time_one machine "/machine" "$RUNS" >>"$T/out"
time_one deliveries "/tickets/$TICKET/deliveries" "$RUNS" >>"$T/out"
time_one overview "/overview" 5 >>"$T/out"
time_one search "/tickets?limit=100" "$RUNS" >>"$T/out"
time_one search_scan "/tickets?date=1999-01-01" 5 >>"$T/out"
if [ -n "$LO" ] && [ -n "$HI" ]; then
    set --
    for id in $(awk -v lo="$LO" -v hi="$HI" 'BEGIN {
            srand(7); for (i = 0; i < 201; i++) print lo + int(rand() * (hi - lo)) }'); do
        set -- "$@" -o /dev/null "http://127.0.0.1:$PORT/tickets/$id/steps"
    done
    curl -s --fail -w '%{time_total} %{size_download}\n' "$@" \
        >"$T/random_steps.txt" || {
        echo "console.sh: GET /tickets/ID/steps failed" >&2
        exit 2
    }
    sed 1d "$T/random_steps.txt" | awk '{ printf "%.3f\n", $1 * 1000 }' |
        sort -n | awk '
        { v[NR] = $1 }
        END {
            printf "random_steps_p50_ms=%.2f random_steps_p90_ms=%.2f random_steps_p99_ms=%.2f random_steps_max_ms=%.2f ",
                v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[int(NR * 0.99 + 0.5)], v[NR]
        }' >>"$T/out"
fi
line=$(cat "$T/out")
page=$(printf '%s\n' "$line" | tr ' ' '\n' | awk -F= '
    $1 == "ticket_p50_ms" || $1 == "steps_p50_ms" || $1 == "machine_p50_ms" ||
    $1 == "deliveries_p50_ms" { s += $2 }
    END { printf "%.2f", s }')
printf '%spage_p50_ms=%s\n' "$line" "$page"
