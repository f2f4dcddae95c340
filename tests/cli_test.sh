#!/bin/sh
# cli_test.sh QGATE FIXTURES - the qgate command as an operator uses it:
# outputs, exit codes and messages.
set -u
Q=$1
F=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
DB="$T/db"
failures=0
passes=0

check() { # description, then a command that must succeed
    desc=$1
    shift
    if "$@"; then
        passes=$((passes + 1))
    else
        echo "FAIL: $desc"
        failures=$((failures + 1))
    fi
}

status() { # expected exit code, command...
    want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    [ "$got" -eq "$want" ] || { echo "  exit $got, expected $want: $*"; cat "$T/err"; return 1; }
}

# apply: the sample walk-in visit, nine accepted steps, exit 0
check "apply sample visit exits 0" \
    status 0 "$Q" apply --db "$DB" --secret-file "$F/secret" "$F"/visits/walk-in/*.json
check "apply prints one accepted line per step" \
    test "$(grep -c '^accepted' "$T/out")" -eq 9
check "apply summarises on stderr" \
    grep -q '^9 deliveries: 9 accepted' "$T/err"

# apply --json: one object per input, with the verdict fields
check "apply --json of a redelivery exits 0" \
    status 0 "$Q" apply --json --db "$DB" --secret-file "$F/secret" "$F/visits/walk-in/01-join-live-queue.json"
check "redelivery is a duplicate in JSON" \
    grep -q '^{"verdict":"duplicate","code":"redelivery",.*"live_queue_id":30001,' "$T/out"

# a refused delivery: exit 1, the reason on the line below
check "illegal step exits 1" \
    status 1 "$Q" apply --db "$DB" --secret-file "$F/secret" "$F"/illegal/served-before-arrive/*.json
check "illegal step names the rule" \
    grep -q 'illegal_transition: live queue 40001: complete is not legal from queued' "$T/out"

# stdin: one body per line
check "apply - reads one body per line" \
    sh -c "cat '$F/visits/no-show-cancelled/'*.json | '$Q' apply --db '$DB' --secret-file '$F/secret' - >'$T/out' 2>&1"
check "stdin inputs are named by line" \
    grep -q 'stdin:3' "$T/out"

# check: verdicts, nothing written
check "check of a new ticket exits 0" \
    status 0 "$Q" check --db "$DB" --secret-file "$F/secret" "$F/visits/appointment/01-appointment.json"
check "check wrote nothing" \
    status 2 "$Q" show --db "$DB" appt:9101
check "unknown ticket is named" \
    grep -q 'ticket appt:9101: not in the store' "$T/err"

# history: human and JSON, raw bodies
check "history exits 0" status 0 "$Q" history --db "$DB" 30001
check "history shows the last step" \
    grep -Eq '^ +9 +2024-03-05 09:55:00 \+08:00 +end_visit +paid +-> visit_ended' "$T/out"
check "history shows the time in the previous state" \
    grep -Eq '^ +5 .*complete .* 14m00s ' "$T/out"
check "history --json" status 0 "$Q" history --json --db "$DB" lq:30001
check "history --json has nine records" \
    test "$(grep -o '"seq":' "$T/out" | wc -l)" -eq 9
check "history --raw 1 is the body as received" \
    sh -c "'$Q' history --db '$DB' --raw 1 30001 | cmp -s - '$F/visits/walk-in/01-join-live-queue.json'"
check "history --raw past the end exits 2" \
    status 2 "$Q" history --db "$DB" --raw 10 30001

# show
check "show --json" status 0 "$Q" show --json --db "$DB" 30003
check "show names state and next events" \
    grep -q '"state":"cancelled","final":true,"allowed":\[\]' "$T/out"
check "show of a queued ticket lists its next events" \
    sh -c "'$Q' show --db '$DB' 40001 | grep -q 'next      arrive, alert, serve, no_show, move, cancel, update'"

# usage and configuration errors: exit 2 and a message naming the fault
check "no secret exits 2" \
    status 2 "$Q" apply --db "$DB" "$F/visits/walk-in/01-join-live-queue.json"
check "no secret says what to do" grep -q 'no secret' "$T/err"
check "missing input file exits 2" \
    status 2 "$Q" apply --db "$DB" --no-verify "$T/nothing.json"
check "missing input file is named" grep -q "nothing.json" "$T/err"
check "bad ticket argument exits 2" status 2 "$Q" history --db "$DB" abc
check "unknown command exits 2" status 2 "$Q" frobnicate
echo '{"db": "store", "durability": "fast"}' >"$T/bad.json"
check "bad config value exits 2" \
    status 2 "$Q" show --config "$T/bad.json" 30001
check "bad config names the key" grep -q 'durability' "$T/err"

# --config: relative paths resolve against the config file's folder
mkdir -p "$T/etc"
cp "$F/secret" "$T/etc/secret"
echo '{"db": "../cfgdb", "secret_file": "secret"}' >"$T/etc/qgate.json"
check "config supplies db and secret" \
    status 0 "$Q" apply --config "$T/etc/qgate.json" "$F/visits/walk-in/01-join-live-queue.json"
check "config db is relative to the config" test -f "$T/cfgdb/data.mdb"

# machine
check "machine --table" status 0 "$Q" machine --table
check "machine table lists served" \
    grep -q '^served  *move -> moved, rx_receive -> pharmacy_received, pay -> paid, end_visit -> visit_ended, update -> served$' "$T/out"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
