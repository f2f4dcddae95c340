#!/bin/sh
# pg_failover_test.sh QGATE GEN_DAY FIXTURES - a gate on a PostgreSQL
# primary with a synchronous streaming-replication standby, given both
# hosts with target_session_attrs=read-write (docs/scaling.md, "Failover
# to a streaming-replication standby"): while the primary is down and the
# standby not yet promoted, deliveries are answered 503 and /readyz is not
# ready; once the standby is promoted the same gate, not restarted,
# answers 2xx again; and every delivery answered 2xx before the primary's
# loss is on the promoted standby: the day's tickets, refusals and waiting
# times are those of an LMDB store fed the same day.
#
# Exit 77 (skipped) without the server binaries, unless CI is set.
# QG_KEEP=1 keeps its scratch folder (the gate's log, the stores' stats).
set -u
Q=$1
GEN=$2
F=$3
PGS=$(cd "$(dirname "$0")" && pwd)/pg_server.sh
. "$(dirname "$0")/testlib.sh"
BIN=$(pg_bindir "$PGS") || exit $?
T=$(mktemp -d /tmp/qgate-fo-XXXXXX)
chmod 711 "$T" # the servers' user (nobody, as root) must reach P and S
P=$T/p
S=$T/s
GATE=
cleanup() {
    [ -n "$GATE" ] && kill "$GATE" 2>/dev/null && wait "$GATE" 2>/dev/null
    sh "$PGS" stop "$S" >/dev/null 2>&1
    sh "$PGS" stop "$P" >/dev/null 2>&1
    [ -n "${QG_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

psql_() { # host dir, sql
    "$BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 -h "$1" -U qgate -d qgate -c "$2"
}
# Waits up to $1 tenths of a second for the command after it to succeed.
within() {
    n=$1
    shift
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -lt "$n" ] || return 1
        sleep 0.1
    done
}
sync_standby() { # the standby streams, and commits wait for it
    [ "$(psql_ "$P" "SELECT sync_state FROM pg_stat_replication")" = sync ]
}

check "the primary starts" status 0 sh "$PGS" start "$P" $$
check "the standby starts from it" status 0 sh "$PGS" standby "$S" "$P" $$
psql_ "$P" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null &&
    psql_ "$P" "SELECT pg_reload_conf()" >/dev/null
check "the standby is synchronous" within 300 sync_standby
URI="postgresql:///qgate?host=$P,$S&user=qgate&target_session_attrs=read-write&connect_timeout=3"

# The day: 24 tickets (some steps illegal), the first half of its
# deliveries before the primary's loss, the rest after the promotion;
# judged on arrival (no reorder window), so that the illegal are refused.
"$GEN" 24 21 qgate-development-secret "$T/day.json" 2 10 0 >"$T/day.ndjson"
total=$(wc -l <"$T/day.ndjson")
half=$((total / 2))
"$Q" apply --db "$T/lmdb" --secret-file "$F/secret" --reorder-window 0 - \
    <"$T/day.ndjson" \
    >/dev/null 2>"$T/apply.err" || cat "$T/apply.err"

"$Q" serve --db "$URI" --listen 127.0.0.1:0 --secret-file "$F/secret" \
    --reorder-window 0 \
    --log "$T/gate.log" 2>"$T/gate.err" &
GATE=$!
listening() { grep -q '"listening"' "$T/gate.log" 2>/dev/null; }
check "the gate listens" within 100 listening
PORT=$(sed -n 's/.*"listening".*"port":\([0-9]*\).*/\1/p' "$T/gate.log")

post() { # line: the line's delivery; prints the status code
    sed -n "${1}p" "$T/day.ndjson" >"$T/one.json"
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
        --data-binary @"$T/one.json" -H 'Content-Type: application/json' \
        "http://127.0.0.1:$PORT/webhooks/chup"
}
ready() { # /readyz's status code is $1
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
        "http://127.0.0.1:$PORT/readyz")" = "$1" ]
}
# Posts lines $1 to $2, each again after a 503 (as Chup retries) until
# answered otherwise; counts in $T/codes what each was answered at last.
feed() {
    : >"$T/codes"
    n=$1
    while [ "$n" -le "$2" ]; do
        tries=0
        while code=$(post "$n") && [ "$code" = 503 ] && [ $tries -lt 100 ]; do
            tries=$((tries + 1))
            sleep 0.1
        done
        echo "$code" >>"$T/codes"
        n=$((n + 1))
    done
}
answered_well() { # no line of $T/codes is other than 2xx or 4xx
    bad=$(grep -cv '^[24][0-9][0-9]$' "$T/codes")
    [ "$bad" -eq 0 ] || {
        echo "  $bad deliveries answered $(grep -v '^[24]' "$T/codes" | sort | uniq -c | tr '\n' ' ')"
        return 1
    }
}

feed 1 "$half"
check "before the loss, every delivery is answered" answered_well

sh "$PGS" kill "$P"
no_primary() { [ "$(post $((half + 1)))" = 503 ]; }
check "with the primary gone, a delivery is answered 503" within 100 no_primary
check "and /readyz is 503" ready 503
check "the standby is promoted" status 0 sh "$PGS" promote "$S"
check "the same gate is ready again, not restarted" within 300 ready 200
check "the gate is still the one started" kill -0 "$GATE"
feed $((half + 1)) "$total"
check "after the promotion, every delivery is answered" answered_well

# What the promoted standby holds against the LMDB store: the same
# tickets in the same states, the same refusals, the same waiting times,
# and its records verify.
kill "$GATE" && wait "$GATE" 2>/dev/null
GATE=
# (each store has an id of its own)
"$Q" stats --db "$T/lmdb" --json | jq -c 'del(.store_id)' >"$T/lmdb.stats"
"$Q" stats --db "$URI" --json | jq -c 'del(.store_id)' >"$T/pg.stats"
check "the promoted standby's stats are the LMDB store's" \
    cmp -s "$T/lmdb.stats" "$T/pg.stats"
"$Q" rejected --db "$T/lmdb" --json | jq -c '[.code, .live_queue_id, .event]' |
    sort >"$T/lmdb.rej"
"$Q" rejected --db "$URI" --json | jq -c '[.code, .live_queue_id, .event]' |
    sort >"$T/pg.rej"
check "and so are its refusals" cmp -s "$T/lmdb.rej" "$T/pg.rej"
check "there were refusals to compare" test -s "$T/lmdb.rej"
check "its records verify" status 0 "$Q" verify --db "$URI"
finish
