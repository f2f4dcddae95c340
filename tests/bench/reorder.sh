#!/bin/sh
# tests/bench/reorder.sh BUILD_DIR - what out-of-order delivery costs.
#
# One generated day of BENCH_REORDER_TICKETS tickets (10000), delivered
# three ways: in order; with a third of the deliveries up to 4 deliveries
# late (gen_day -r 33:4); and with a third up to 200 deliveries late
# (gen_day -r 33:200), which on a day of interleaved visits is what moves
# steps of the same ticket past each other.  Each is applied with
# `qgate apply` (nosync) under the default reorder window and under
# --reorder-window 0, BENCH_REORDER_RUNS times (3) into a fresh store;
# the median wall time is reported, with how many deliveries were
# refused, how many tickets end other than in the in-order store (state
# or number of steps), how many steps were placed late or held and then
# released, how many are still held, and whether every history verifies.
# Prints a Markdown table; progress goes to stderr.  About a minute.
set -eu

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: tests/bench/reorder.sh BUILD_DIR" >&2
    exit 2
fi
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
Q=$B/qgate
GEN=$B/tests/gen_day
TICKETS=${BENCH_REORDER_TICKETS:-10000}
RUNS=${BENCH_REORDER_RUNS:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
S=qgate-development-secret
printf '{"durability": "nosync", "secret_file": "%s/fixtures/secret"}\n' \
    "$SRC" >"$W/qgate.json"

say() { printf '%s\n' "$*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# "live-queue-id state steps" per ticket, sorted
states() {
    "$Q" list --json --limit 1000000 --db "$1" |
        sed 's/.*"live_queue_id":\([0-9]*\).*"state":"\([a-z_]*\)".*"records":\([0-9]*\).*/\1 \2 \3/' |
        sort
}

say "reorder: generating a day of $TICKETS tickets, three ways"
"$GEN" "$TICKETS" 7 $S "$W/expected" >"$W/in-order"
"$GEN" -r 33:4 "$TICKETS" 7 $S "$W/expected" >"$W/near"
"$GEN" -r 33:200 "$TICKETS" 7 $S "$W/expected" >"$W/far"
"$Q" apply --config "$W/qgate.json" --db "$W/reference" - <"$W/in-order" \
    >/dev/null 2>&1
states "$W/reference" >"$W/reference.states"
deliveries=$(wc -l <"$W/in-order")

echo "| day | window | wall, median of $RUNS | deliveries/s | refused | tickets unlike in order | placed late | held, then released | still held | verify |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for day in in-order near far; do
    for window in 1200 0; do
        say "reorder: $day, window $window"
        : >"$W/times"
        run=0
        while [ "$run" -lt "$RUNS" ]; do
            rm -rf "$W/db"
            t0=$(now_ms)
            "$Q" apply --config "$W/qgate.json" --db "$W/db" \
                --reorder-window "$window" - <"$W/$day" >"$W/out" 2>"$W/err" ||
                true
            echo $(($(now_ms) - t0)) >>"$W/times"
            run=$((run + 1))
        done
        ms=$(median <"$W/times")
        refused=$(grep -c '^rejected' "$W/out" || true)
        states "$W/db" >"$W/states"
        unlike=$(comm -23 "$W/reference.states" "$W/states" | wc -l)
        late=$(grep -c 'late: step' "$W/out" || true)
        released=$(sed -n 's/.*, \([0-9]*\) released from hold/\1/p' "$W/err")
        held=$(sed -n 's/^still held: \([0-9]*\) .*/\1/p' "$W/err")
        if "$Q" verify --db "$W/db" >/dev/null 2>&1; then v=passes; else v=FAILS; fi
        echo "| $day | $window | $ms ms | $((deliveries * 1000 / ms)) | $refused | $unlike | $late | ${released:-0} | ${held:-0} | $v |"
    done
done
echo
echo "$deliveries deliveries for $TICKETS tickets; $(nproc) cores; qgate $("$Q" --version | cut -d' ' -f2-)."
