#!/bin/sh
# tests/bench/profile.sh BUILD_DIR [SECONDS] - where the gate's time goes
# at saturation: `qgate serve --durability nosync` under bench_load's
# closed loop (32 connections, as run.sh's saturation run), sampled by
# perf with DWARF call graphs, each sample put in one phase by the qgate
# functions on its stack.  Prints a Markdown table of the phases.
# Needs perf (Debian linux-perf) and python3; a Release build.
set -eu
[ $# -ge 1 ] && [ -d "$1" ] || {
    echo "usage: tests/bench/profile.sh BUILD_DIR [SECONDS]" >&2
    exit 2
}
B=$(cd "$1" && pwd)
SECS=${2:-4}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BB=$B/tests/bench
W=$(mktemp -d)
trap 'kill "$gate" 2>/dev/null; rm -rf "$W"' EXIT
"$BB/gen_day" 40000 11 qgate-development-secret "$W/day.json" 2 1 0.5 1024 \
    >"$W/day.ndjson"
PORT=$("$BB/bench_proc" port)
"$B/qgate" serve --listen "127.0.0.1:$PORT" --db "$W/db" \
    --secret-file "$SRC/fixtures/secret" --durability nosync --threads 2 \
    --log "$W/gate.log" 2>"$W/gate.err" &
gate=$!
"$BB/bench_proc" wait-port "$PORT"
# qgate serve execs qgate-serve in the same process
timeout $((SECS + 20)) "$BB/bench_load" --port "$PORT" \
    --bodies "$W/day.ndjson" --duration $((SECS + 3)) --warmup 1 \
    --label profile --connections 32 --threads 2 >"$W/load.txt" &
load=$!
sleep 2
perf record -q -F 499 --call-graph dwarf,16384 -p "$gate" -o "$W/perf.data" \
    -- sleep "$SECS" >/dev/null 2>&1
wait "$load"
echo "load: $(cat "$W/load.txt")" >&2
perf script -i "$W/perf.data" -F comm,ip,sym,dso 2>/dev/null >"$W/script.txt"
python3 - "$W/script.txt" <<'PY'
import collections, re, sys

samples, cur = [], []
for line in open(sys.argv[1]):
    if not line.strip():
        if cur:
            samples.append(cur)
            cur = []
    elif line.startswith((' ', '\t')):
        parts = line.split(None, 1)
        cur.append(parts[1].strip() if len(parts) > 1 else '')
if cur:
    samples.append(cur)

def name(f):
    return re.sub(r'\+0x[0-9a-f]+', '', f.split(' (')[0])

def ours(f):
    return '(' in f and f[f.rfind('(') + 1:-1].split('/')[-1] == 'qgate-serve'

RECORD = {'decide', 'decide_flat', 'qg__store_accept', 'qg__store_refuse'}
# log_add and log_flush: a committed group's lines, in the committer
LOG = {'log_event', 'log_add', 'log_flush'}
phases = collections.Counter()
for st in samples:
    q = [name(f) for f in st if ours(f)]
    s = set(q)
    # the commit is reached through the store's table of operations
    if 'qg__lmdb_txn_commit' in s or ('qg__store_write' in s and
                                       not RECORD & s):
        p = 'committing a group (mdb_txn_commit: writing its pages)'
    elif 'qg__signature_check' in s:
        p = 'preparing: the HMAC'
    elif 'qg__envelope_parse' in s:
        p = 'preparing: parsing (one pass, or json-c and the strict pass)'
    elif 'qg__digest' in s and ('prepare' in s or 'qg_engine_prepare' in s):
        p = "preparing: the payload's digest"
    elif 'prepare' in s or 'qg_engine_prepare' in s:
        p = 'preparing: the rest'
    elif 'qg__chain_step' in s:
        p = 'recording: the hash chain'
    elif LOG & s:
        p = 'the log line'
    elif RECORD & s or 'run_batch' in s:
        p = 'deciding and recording: lookups and puts'
    elif 'render_verdict' in s:
        p = 'rendering the answer'
    elif 'qg__envelope_free' in s or 'qg_prepared_free' in s:
        p = 'freeing the parse'
    elif q and q[0] in ('loop', 'committer_submit', 'committed'):
        p = "the committer's queue and wake-ups"
    elif not q:
        p = 'libmicrohttpd with no qgate frame (epoll, recv, send, connections)'
    else:
        p = 'other qgate code (' + q[0] + ' ...)'
    phases[p] += 1

n = len(samples)
print('| phase | share of the gate\'s samples |')
print('|---|---:|')
other = 0
for p, c in phases.most_common():
    if p.startswith('other qgate') and 100 * c / n < 1:
        other += c
        continue
    print('| %s | %.1f%% |' % (p, 100 * c / n))
if other:
    print('| other qgate code, each under 1%% | %.1f%% |' % (100 * other / n))
print('\n%d samples' % n)
PY
