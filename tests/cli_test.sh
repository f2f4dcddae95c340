#!/bin/sh
# cli_test.sh QGATE FIXTURES - the qgate command as an operator uses it:
# outputs, exit codes and messages.
set -u
Q=$1
F=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
DB="$T/db"
PGS="$(dirname "$0")/pg_server.sh" # a throwaway PostgreSQL server
. "$(dirname "$0")/testlib.sh"

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
    status 1 "$Q" apply --reorder-window 0 --db "$DB" --secret-file "$F/secret" "$F"/illegal/served-before-arrive/*.json
check "illegal step names the rule" \
    grep -q 'illegal_transition: live queue 40001: complete is not legal from queued' "$T/out"

# stdin: one body per line
check "apply - reads one body per line" \
    sh -c "cat '$F/visits/no-show-cancelled/'*.json | '$Q' apply --db '$DB' --secret-file '$F/secret' - >'$T/out' 2>&1"
check "stdin inputs are named by line" \
    grep -q 'stdin:3' "$T/out"

# a secret file of two lines, as during a rotation: either secret passes
{ echo 'the-new-secret'; echo; cat "$F/secret"; } >"$T/two.secret"
check "check with the fixtures' secret as the second of two exits 0" \
    status 0 "$Q" check --db "$DB" --secret-file "$T/two.secret" "$F/visits/appointment/01-appointment.json"
printf 'x\nx\nx\nx\nx\nx\nx\nx\nx\n' >"$T/nine.secret"
check "nine secrets exit 2" \
    status 2 "$Q" check --db "$DB" --secret-file "$T/nine.secret" "$F/visits/appointment/01-appointment.json"
check "nine secrets name the file and the line" \
    grep -q "nine.secret: line 9: more than 8 secrets" "$T/err"

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

# one config file for the gate and the CLI: serve's keys are read past by
# the other commands; a key no command knows is named
cat >"$T/etc/serve.json" <<EOF
{"db": "../cfgdb", "secret_file": "secret", "listen": "127.0.0.1:0",
 "upstream": "http://127.0.0.1:9/his", "threads": 2, "log": "gate.log"}
EOF
check "list --config of the gate's file exits 0" \
    status 0 "$Q" list --config "$T/etc/serve.json"
check "list --config of the gate's file lists the store" \
    grep -q 'lq:30001' "$T/out"
echo '{"db": "../cfgdb", "lisen": "127.0.0.1:0"}' >"$T/etc/typo.json"
check "a key no command knows exits 2" \
    status 2 "$Q" list --config "$T/etc/typo.json"
check "a key no command knows is named" \
    grep -q 'key "lisen": unknown' "$T/err"
check "serve refuses the key too" \
    status 2 "$Q" serve --config "$T/etc/typo.json"
check "serve names the key" grep -q 'key "lisen": unknown' "$T/err"

# config and mapping files are strict JSON, and a missing one is named
echo '{"db": "../cfgdb", "secret_file": "secret",}' >"$T/etc/comma.json"
check "a trailing comma in the config exits 2" \
    status 2 "$Q" list --config "$T/etc/comma.json"
check "the trailing comma is placed" \
    grep -q 'comma.json: not valid JSON at byte ' "$T/err"
echo '{"db": "../cfgdb", "db": "elsewhere"}' >"$T/etc/twice.json"
check "a repeated config key exits 2" \
    status 2 "$Q" list --config "$T/etc/twice.json"
check "a missing config file exits 2" \
    status 2 "$Q" list --config "$T/etc/absent.json"
check "a missing config file says why, on one line" \
    test "$(cat "$T/err")" = "qgate: cannot open $T/etc/absent.json: No such file or directory"
echo '{"states": {"Waiting Room": "join"},}' >"$T/etc/map.json"
echo '{"mapping": "map.json", "require_signature": false}' >"$T/etc/mapped.json"
check "a trailing comma in the mapping exits 2" \
    status 2 "$Q" check --db "$DB" --config "$T/etc/mapped.json" "$F/visits/walk-in/01-join-live-queue.json"
check "the mapping's fault is placed" \
    grep -q 'map.json: not valid JSON at byte ' "$T/err"
echo '{"states": {"Waiting Room": "join"} /* a note */}' >"$T/etc/map.json"
check "a comment in the mapping exits 2" \
    status 2 "$Q" check --db "$DB" --config "$T/etc/mapped.json" "$F/visits/walk-in/01-join-live-queue.json"
echo '{"states": {"Waiting Room": "join", "Waiting Room": "arrive"}}' >"$T/etc/map.json"
check "a repeated key in the mapping exits 2" \
    status 2 "$Q" check --db "$DB" --config "$T/etc/mapped.json" "$F/visits/walk-in/01-join-live-queue.json"
check "the repeated key is named" grep -q 'key "Waiting Room" at byte' "$T/err"
rm -f "$T/etc/map.json"
check "a missing mapping file exits 2" \
    status 2 "$Q" check --db "$DB" --config "$T/etc/mapped.json" "$F/visits/walk-in/01-join-live-queue.json"
check "a missing mapping file says why" \
    grep -q "cannot open $T/etc/map.json: No such file or directory" "$T/err"

# serve at start-up: host names resolve; --upstream is an http(s) URL; a
# port in use is said once, by qgate; a read API open beyond this machine
# is warned of
wait_listening() { # log file: the port, once the gate says it listens
    i=0
    while [ $i -lt 100 ]; do
        port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$1" 2>/dev/null)
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
"$Q" serve --db "$T/gatedb" --secret-file "$F/secret" --listen 127.0.0.1:0 \
    --log "$T/gate1.log" 2>"$T/gate1.err" &
GATE=$!
PORT=$(wait_listening "$T/gate1.log")
check "serve on loopback does not warn of the read API" \
    sh -c "! grep -q 'read API' '$T/gate1.log'"
check "a port in use exits 2" \
    status 2 timeout 10 "$Q" serve --db "$T/gatedb2" --secret-file "$F/secret" --listen "127.0.0.1:${PORT:-0}"
check "a port in use is said once, by qgate" \
    test "$(cat "$T/err")" = "qgate: cannot listen on 127.0.0.1:$PORT: Address already in use"
kill -TERM "$GATE" 2>/dev/null
wait "$GATE"
check "the gate stops cleanly on TERM" test $? -eq 0
"$Q" serve --db "$T/gatedb" --secret-file "$F/secret" --listen localhost:0 \
    --log "$T/gate2.log" 2>"$T/gate2.err" &
GATE=$!
PORT=$(wait_listening "$T/gate2.log")
check "serve --listen localhost:0 listens" test -n "$PORT"
kill -TERM "$GATE" 2>/dev/null
wait "$GATE"
for bad in ftp://his.example/steps his.example/steps http:// https:///path; do
    check "serve --upstream $bad exits 2" \
        status 2 timeout 10 "$Q" serve --db "$T/gatedb" --secret-file "$F/secret" --listen 127.0.0.1:0 --upstream "$bad"
    check "serve --upstream $bad is named" \
        grep -q -- "--upstream \"$bad\": expected an http:// or https:// URL" "$T/err"
done
# 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails
# after the start-up warnings, and nothing listens
check "serve on a non-loopback address exits 2 here" \
    status 2 "$Q" serve --db "$T/gatedb" --secret-file "$F/secret" --listen 192.0.2.1:0
check "serve without --token-file off loopback warns of the read API" \
    grep -q '"level":"warn","msg":"the read API (GET /tickets/...) is open' "$T/err"
printf 'tok3n\n' >"$T/token"
check "with --token-file it does not warn" \
    sh -c "'$Q' serve --db '$T/gatedb' --secret-file '$F/secret' --listen 192.0.2.1:0 --token-file '$T/token' 2>&1 | grep -q 'read API'; test \$? -eq 1"

# time zones: each Chup timestamp in the offset Chup sent it with, the same
# in every command, unless --tz; qgate's own times and --since/--until
# without an offset in the offset of the store's data (here +08:00), not
# the machine's zone
check "history shows the step in Chup's offset" \
    sh -c "TZ=America/New_York '$Q' history --db '$DB' 30001 | grep -q ' 2024-03-05 09:55:00 +08:00  end_visit'"
check "list shows the same step the same way" \
    sh -c "TZ=America/New_York '$Q' list --db '$DB' | grep -Eq ' lq:30001 .* 2024-03-05 09:55:00 \+08:00\$'"
check "list --tz UTC" \
    sh -c "'$Q' list --db '$DB' --tz UTC | grep -Eq ' lq:30001 .* 2024-03-05 01:55:00 \+00:00\$'"
check "history --tz Asia/Tokyo" \
    sh -c "'$Q' history --db '$DB' --tz Asia/Tokyo 30001 | grep -q ' 2024-03-05 10:55:00 +09:00  end_visit'"
check "list --tz -05:30" \
    sh -c "'$Q' list --db '$DB' --tz -05:30 | grep -Eq ' lq:30001 .* 2024-03-04 20:25:00 -05:30\$'"
check "rejected shows when received in the store's offset" \
    sh -c "TZ=America/New_York '$Q' rejected --db '$DB' | grep -Eq '^ +[0-9]+  [0-9-]{10} [0-9:]{8} \+08:00 '"
check "export --tz leaves machine output as Chup sent it" \
    sh -c "'$Q' export --db '$DB' --tz UTC | grep -q '\"timestamp\":\"2024-03-05T09:55:00+08:00\"'"
check "a --tz that names no zone exits 2" \
    status 2 "$Q" list --db "$DB" --tz Mars/Olympus
check "the bad --tz is named" grep -q -- '--tz "Mars/Olympus"' "$T/err"
check "--since with HH:MM and an offset" \
    status 0 "$Q" export --db "$DB" --since 2024-03-05T09:50+08:00
N=$(wc -l <"$T/out")
check "--since with HH:MM and an offset selects" \
    test "$N" -gt 0 -a "$N" -lt "$("$Q" export --db "$DB" | wc -l)"
check "--since without an offset is read in the store's offset" \
    sh -c "test \"\$(TZ=America/New_York '$Q' export --db '$DB' --since 2024-03-05T09:50 | wc -l)\" -eq $N"
check "--since without an offset is read in --tz" \
    sh -c "test \"\$(TZ=America/New_York '$Q' export --db '$DB' --tz UTC --since 2024-03-05T01:50 | wc -l)\" -eq $N"
check "--until without an offset is read in the store's offset" \
    sh -c "TZ=America/New_York '$Q' list --db '$DB' --until 2024-03-05T09:56 | grep -q 'lq:30001'"
# with no data to go by, local time
"$Q" apply --db "$T/tzempty" --no-verify "$F/malformed/bad-timestamp.json" >/dev/null 2>&1
HOUR_AGO=$(TZ=Pacific/Kiritimati date -d '-1 hour' +%Y-%m-%dT%H:%M)
check "--since without an offset or data is read in local time" \
    sh -c "TZ=Pacific/Kiritimati '$Q' rejected --db '$T/tzempty' --since '$HOUR_AGO' | grep -q malformed"
check "--help says how a time without an offset is read" \
    sh -c "'$Q' export --help | grep -q 'without an offset' && '$Q' export --help | grep -q 'else in local time'"

# the manual and README say what the code does
DOCS=$(dirname "$F")/docs
README=$(dirname "$F")/README.md
check "the manual's config durability takes group" \
    grep -q '(\\fBsync\\fR, \\fBgroup\\fR or \\fBnosync\\fR)' "$DOCS/qgate.1"
echo '{"db": "../cfgdb", "durability": "group"}' >"$T/etc/group.json"
check "a config durability of group is taken" \
    status 0 "$Q" list --config "$T/etc/group.json"
check "the manual's SEE ALSO lists docs/gate.md" \
    sh -c "sed -n '/^\.SH SEE ALSO/,\$p' '$DOCS/qgate.1' | grep -q 'docs/gate.md'"
check "the manual describes --tz" grep -qF '.BI \-\-tz " ZONE"' "$DOCS/qgate.1"
check "the manual has the time policy" grep -q '^\.SH TIMES' "$DOCS/qgate.1"
check "the README says man -l needs man-db" grep -q 'needs man-db' "$README"
check "the README says how long the tests take" \
    grep -q 'about [0-9]* minutes on 2 cores' "$README"
check "gate.md says SIGHUP reloads the secrets" \
    grep -q 'SIGHUP: reopen the log file, and reload the mapping and every secret' "$DOCS/gate.md"
check "operations.md says how to rotate the secret" \
    grep -q "^## Rotating Chup's secret" "$DOCS/operations.md"

# --max-skew: steps dated ahead of this clock by more than the skew (300 s
# unless set) are malformed; 0 turns the check off; a flag wins over the
# config file's max_skew
FUTURE="$F/malformed/far-future.json"
check "a step dated in 9999 exits 1" \
    status 1 "$Q" check --db "$DB" --secret-file "$F/secret" "$FUTURE"
check "the refusal names the skew" \
    grep -q 'bad_value: payload.timestamp 9999-12-31T23:59:59+08:00 is [0-9]* s ahead of the gate.s clock ([0-9-]*T[0-9:]*+08:00); at most 300 s of clock skew is allowed' "$T/out"
check "--max-skew 0 takes it" \
    status 0 "$Q" check --db "$DB" --secret-file "$F/secret" --max-skew 0 "$FUTURE"
check "apply --max-skew 60 refuses it" \
    status 1 "$Q" apply --db "$T/skewdb" --secret-file "$F/secret" --max-skew 60 "$FUTURE"
check "apply --max-skew names its skew" grep -q 'at most 60 s of clock skew' "$T/out"
echo '{"max_skew": 0}' >"$T/noskew.json"
check "config max_skew 0 takes it" \
    status 0 "$Q" check --db "$DB" --secret-file "$F/secret" --config "$T/noskew.json" "$FUTURE"
check "--max-skew wins over the config" \
    status 1 "$Q" check --db "$DB" --secret-file "$F/secret" --config "$T/noskew.json" --max-skew 300 "$FUTURE"
for bad in -1 abc 10s 2147483648; do
    check "--max-skew $bad exits 2" \
        status 2 "$Q" check --db "$DB" --secret-file "$F/secret" --max-skew "$bad" "$FUTURE"
    check "--max-skew $bad is named" grep -q -- "--max-skew \"$bad\"" "$T/err"
done
echo '{"max_skew": -5}' >"$T/badskew.json"
check "config max_skew -5 exits 2" \
    status 2 "$Q" check --db "$DB" --secret-file "$F/secret" --config "$T/badskew.json" "$FUTURE"
check "config max_skew -5 names the key" grep -q 'max_skew' "$T/err"
check "serve --max-skew abc exits 2" \
    status 2 "$Q" serve --db "$T/servedb" --secret-file "$F/secret" --max-skew abc
check "apply --help shows --max-skew" \
    sh -c "'$Q' apply --help | grep -q 'max-skew'"
check "serve --help shows --max-skew" \
    sh -c "'$Q' serve --help | grep -q 'max-skew'"

# machine
check "machine --table" status 0 "$Q" machine --table
check "machine table lists served" \
    grep -q '^served  *move -> moved, rx_receive -> pharmacy_received, pay -> paid, end_visit -> visit_ended, update -> served$' "$T/out"
# machine --dot: laid out as the console's chart (docs/lifecycle.md), the
# happy path one rank, the side states the rank under it, in the order of
# their neighbours on the line, kept by invisible edges
check "machine --dot" status 0 "$Q" machine --dot
check "machine --dot: the happy path is one rank, in order" \
    grep -qx '  { rank=same; new; booked; queued; arrived; serving; served; pharmacy_received; pharmacy_dispensed; paid; visit_ended; }' "$T/out"
check "machine --dot: the side states are the next rank, in order" \
    grep -qx '  { rank=same; cancelled; no_show; moved; }' "$T/out"
check "machine --dot: the side row's order kept" \
    sh -c "grep -qx '  cancelled -> no_show \[style=invis\];' '$T/out' && grep -qx '  no_show -> moved \[style=invis\];' '$T/out'"
check "machine --dot: an edge against the side row's order drawn back" \
    grep -qx '  no_show -> moved \[xlabel="no_show", dir=back\];' "$T/out"
check "machine --dot: the line's steps pull hardest" \
    grep -qx '  serving -> served \[xlabel="complete", weight=10\];' "$T/out"
check "machine --dot: loops on the line's top" \
    grep -qx '  queued -> queued \[label="alert\\nupdate", tailport=n, headport=n\];' "$T/out"
check "machine --dot: no rankdir (the line is a rank)" \
    sh -c "! grep -q rankdir '$T/out'"

# list
check "list --json" status 0 "$Q" list --json --db "$DB"
check "list is newest first" \
    sh -c "head -1 '$T/out' | grep -q '\"live_queue_id\":30003,'"
check "list --state" status 0 "$Q" list --db "$DB" --state cancelled
check "list --state shows only that state" \
    test "$(grep -c ' cancelled ' "$T/out")" -eq 1
check "list --limit" status 0 "$Q" list --json --db "$DB" --limit 2
check "list --limit counts" test "$(wc -l <"$T/out")" -eq 2
check "list --since filters by last step" \
    status 0 "$Q" list --json --db "$DB" --since 2024-03-06T00:00:00+08:00
check "list --since after every step is empty" test ! -s "$T/out"
check "list --since of a non-time exits 2" \
    status 2 "$Q" list --db "$DB" --since yesterday
check "list --since names the option and value" \
    grep -q -- '--since "yesterday"' "$T/err"
check "list --state of a non-state exits 2" \
    status 2 "$Q" list --db "$DB" --state waiting
check "list --service" status 0 "$Q" list --json --db "$DB" --service 220
check "list --service shows only that service" \
    sh -c "test -s '$T/out' && ! grep -v '\"service_id\":220,' '$T/out'"
check "list --service of a non-id exits 2" \
    status 2 "$Q" list --db "$DB" --service 0
check "list --service names the value" grep -q -- '--service "0"' "$T/err"

# rejected: the log, and exit 1 because it holds refusals
check "rejected exits 1 when the log holds refusals" \
    status 1 "$Q" rejected --db "$DB"
check "rejected shows the reason" \
    grep -q 'illegal_transition  *lq:40001  *live queue 40001: complete' "$T/out"
check "rejected --code filters" \
    status 0 "$Q" rejected --db "$DB" --code stale
check "rejected --code of a non-code exits 2" \
    status 2 "$Q" rejected --db "$DB" --code nonsense

# rejected --replay: a mapping that adds a state name lets a logged
# delivery through
printf '%s' '{"payload":{"event":"live_queue_created","timestamp":"2024-03-05T12:00:00+08:00","data":{"id":70001,"state_name":"Waiting Room"}}}' >"$T/waiting.json"
check "unknown state is refused" \
    status 1 "$Q" apply --db "$DB" --no-verify "$T/waiting.json"
echo '{"states": {"Waiting Room": "join"}}' >"$T/map.json"
echo '{"mapping": "map.json", "require_signature": false}' >"$T/replay.json"
check "replay after a mapping fix" \
    status 0 "$Q" rejected --replay --db "$DB" --config "$T/replay.json" --code unknown_state
check "the fixed delivery now passes" \
    grep -q '^rejection:[0-9]*  *accepted' "$T/out"
check "replay reports what still fails" \
    grep -q 'replayed: 1 now pass' "$T/err"
check "the replayed delivery is in the history" \
    status 0 "$Q" show --db "$DB" 70001

# verify: the store is consistent
check "verify exits 0" status 0 "$Q" verify --db "$DB"
check "verify counts tickets" grep -q '^4 tickets verified against machine' "$T/out"

# stats
check "stats --json" status 0 "$Q" stats --json --db "$DB"
check "stats counts tickets and steps" \
    grep -q '^{"tickets":4,"states":{"queued":2,"cancelled":1,"visit_ended":1},"events":{"join":4,"alert":1,"serve":1,"complete":1,"no_show":1,"move":1,"cancel":1,"rx_receive":1,"rx_dispense":1,"pay":1,"end_visit":1},"refused":2,"reasons":{"illegal_transition":1,"unknown_state":1}' "$T/out"
check "stats measures the walk-in's wait and service" \
    grep -q '"service":{"count":1,"p50_ms":840000,' "$T/out"
check "stats --json ends with the store's id" \
    grep -Eq '"store_id":"[0-9a-f]{32}"}$' "$T/out"
check "stats --service" status 0 "$Q" stats --db "$DB" --service 221
check "stats names the store's id" grep -Eq '^store id: [0-9a-f]{32}$' "$T/out"
check "stats --service keeps that service's steps" \
    grep -Eq '^  serve +1$' "$T/out"

# outbox --resend: which steps, and only for a store that feeds an HIS
check "outbox --resend needs a ticket or a time" \
    status 2 "$Q" outbox --resend --db "$DB"
check "outbox --resend says what it needs" \
    grep -q 'give --ticket ID, or --since T' "$T/err"
check "outbox --resend on a store that feeds no HIS exits 2" \
    status 2 "$Q" outbox --resend --ticket 30001 --db "$DB"
check "outbox --resend names the store that feeds no HIS" \
    grep -q "the store $DB feeds no HIS" "$T/err"
check "outbox --ticket alone is refused" \
    status 2 "$Q" outbox --ticket 30001 --db "$DB"

# export
check "export --format csv" status 0 "$Q" export --db "$DB" --format csv
check "export has a header and one row per step" \
    test "$(wc -l <"$T/out")" -eq 15
check "export rows name ids and steps" \
    grep -q '^[0-9]*,30001,,9,2024-03-05T09:55:00+08:00,.*,end_visit,paid,visit_ended,221,247,' "$T/out"
check "export ndjson" status 0 "$Q" export --db "$DB"
check "export ndjson has one object per step" \
    test "$(grep -c '^{"ticket":' "$T/out")" -eq 14
check "export of a bad format exits 2" \
    status 2 "$Q" export --db "$DB" --format xml
# Byte for byte what qgate 0.3 exported from the 0.1 store, with 0.4's
# chain hashes (its own formatting replaced printf since): a writable open
# first gives it an id and its chain.
mkdir "$T/v01"
cp "$F/stores/0.1/data.mdb" "$T/v01/"
"$Q" apply --db "$T/v01" --secret-file "$F/secret" - </dev/null 2>/dev/null
check "export of the 0.1 store, ndjson, as pinned" \
    sh -c "'$Q' export --db '$T/v01' | cmp - '$F/stores/0.1/export.ndjson'"
check "export of the 0.1 store, csv, as pinned" \
    sh -c "'$Q' export --db '$T/v01' --format csv | cmp - '$F/stores/0.1/export.csv'"

# 0.4 kept no step summaries: the first writable open builds them, and
# the operator is told, by the command on stderr and by the gate in its
# log; the next open says nothing.
mkdir "$T/v04" "$T/v04g"
cp "$F/stores/0.4/data.mdb" "$T/v04/"
cp "$F/stores/0.4/data.mdb" "$T/v04g/"
chmod u+w "$T/v04/data.mdb" "$T/v04g/data.mdb"
check "a 0.4 store's first writable open builds its step summaries" \
    status 0 "$Q" seal --db "$T/v04"
check "and says so, naming its 22 records" \
    grep -q "^qgate: $T/v04: a store without step summaries for every record (written before 0.7, or by an older qgate since): summarized its 22 records$" "$T/err"
check "the next open says nothing" \
    sh -c "'$Q' seal --db '$T/v04' 2>&1 >/dev/null | grep -c . | grep -qx 0"
"$Q" serve --db "$T/v04g" --listen 127.0.0.1:0 --secret-file "$F/secret" \
    --log "$T/v04g.log" 2>/dev/null &
GATE=$!
wait_listening "$T/v04g.log" >/dev/null
kill -TERM "$GATE" 2>/dev/null
wait "$GATE"
check "the gate logs it" \
    grep -q '"msg":"store summarized","records":22,"why":"written before the step summaries, or by an older qgate since"' "$T/v04g.log"

# a long malformed body keeps only a prefix, its length and digest, and
# is not replayed
head -c 5000 /dev/zero | tr '\0' x >"$T/junk.json"
check "a long malformed body is refused" \
    status 1 "$Q" apply --db "$DB" --secret-file "$F/secret" "$T/junk.json"
check "rejected --json of it" \
    status 1 "$Q" rejected --json --db "$DB" --code bad_json
check "only a prefix of it is kept, with its length and digest" \
    grep -q "\"body_bytes\":3072,\"received_bytes\":5000,\"truncated\":true,\"purged\":false,\"sha256\":\"$(sha256sum <"$T/junk.json" | cut -c1-64)\",\"resolved\":false}" "$T/out"
check "rejected marks it" \
    sh -c "'$Q' rejected --db '$DB' --code bad_json | grep -q 'first 3072 of 5000 bytes kept'"
check "replay skips it" \
    status 1 "$Q" rejected --replay --db "$DB" --secret-file "$F/secret" --code bad_json
check "replay says why" \
    grep -q 'skipped: only the first 3072 of its 5000 bytes were kept (malformed), so it cannot be replayed' "$T/err"
check "replay counts it" grep -q '1 skipped' "$T/err"

# machine --svg, help
check "machine --svg" status 0 "$Q" machine --svg "$T/m.svg"
check "the svg names states" grep -q '<title>pharmacy_dispensed</title>' "$T/m.svg"
check "help lists the commands" \
    sh -c "'$Q' help | grep -q '^  stats '"
check "a command's --help" status 0 "$Q" history --help

# out of order: served before serving is held, then released; an alert
# after the move is placed late; history shows event time, marks it, and
# --arrival keeps the order of acceptance
W="$F/visits/walk-in"
R="$T/reorder"
check "apply holds a step that comes early" \
    status 0 "$Q" apply --db "$R" --secret-file "$F/secret" "$W/01-join-live-queue.json" "$W/03-move.json" "$W/05-served.json"
check "the early step is held, with its reason" \
    grep -q '^held  *lq:30001  *complete in moved' "$T/out"
check "apply says what is still held" \
    grep -q '^still held: 1 delivery' "$T/err"
check "held lists it" status 0 "$Q" held --db "$R"
check "held names its ticket, event and time left" \
    grep -Eq '^ +1  lq:30001 +complete +moved +2024-03-05 09:34:00 \+08:00 +[0-9]+s +(19m|20m)' "$T/out"
check "held --json" status 0 "$Q" held --json --db "$R"
check "held --json has the fields" \
    grep -q '"live_queue_id":30001,.*"event":"complete","from":"moved"' "$T/out"
check "apply of the missing step releases it" \
    status 0 "$Q" apply --db "$R" --secret-file "$F/secret" "$W/04-serving.json" "$W/02-alert.json"
check "released" grep -q 'released 1 held delivery; the ticket is served' "$T/out"
check "the late alert is placed" grep -q 'alert, late: step 2 of 5' "$T/out"
check "nothing held any more" sh -c "'$Q' held --db '$R' 2>&1 | grep -q '^0 held'"
check "history in event time" status 0 "$Q" history --db "$R" 30001
check "history marks the late step at its place" \
    sh -c "sed -n 3,4p '$T/out' | grep -Eq '^ +5  2024-03-05 09:06:00 .*alert .* late\$'"
check "history marks the released step" \
    grep -Eq '^ +4  2024-03-05 09:34:00 .*complete .* was held$' "$T/out"
check "history --arrival" status 0 "$Q" history --arrival --db "$R" 30001
check "history --arrival keeps the order of acceptance" \
    test "$(awk 'NR > 2 { printf "%s ", $1 }' "$T/out")" = "1 2 3 4 5 "
check "verify passes on a store with late steps" status 0 "$Q" verify --db "$R"
check "--reorder-window 0 refuses the same step" \
    status 1 "$Q" apply --reorder-window 0 --db "$T/strict" --secret-file "$F/secret" "$W/01-join-live-queue.json" "$W/05-served.json"
check "a bad --reorder-window exits 2" \
    status 2 "$Q" apply --reorder-window -5 --db "$R" --no-verify "$W/01-join-live-queue.json"
check "a bad --reorder-window is named" grep -q -- '--reorder-window "-5"' "$T/err"
check "held --expire refuses what waits" \
    sh -c "'$Q' apply --db '$R' --secret-file '$F/secret' '$F/illegal/dispense-before-receive/'*.json >/dev/null 2>&1; '$Q' held --expire --db '$R' >'$T/out'; test \$? -eq 1"
check "held --expire counts by reason" grep -q 'illegal_transition  *1' "$T/out"
check "the expired step is in the rejection log" \
    sh -c "'$Q' rejected --db '$R' | grep -q 'rx_dispense is not legal from served.*; held '"

# replayed refusals that now pass are marked resolved with the step they
# became: left out of the listing, the exit status and later replays;
# --all lists them.  A held delivery given up on is replayed the same way.
X="$T/resolve"
"$Q" apply --db "$X" --secret-file "$F/secret" "$W/01-join-live-queue.json" "$W/05-served.json" >/dev/null 2>&1
check "the early step, given up on, is refused" \
    status 1 "$Q" held --expire --db "$X"
"$Q" apply --db "$X" --secret-file "$F/secret" "$W"/0[2-4]*.json >/dev/null 2>&1
check "rejected exits 1 while it is open" status 1 "$Q" rejected --db "$X"
check "replay of the given-up step passes" \
    status 0 "$Q" rejected --replay --db "$X" --secret-file "$F/secret"
check "replay counts it" grep -q '^1 replayed: 1 now pass, 0 still refused' "$T/err"
check "rejected lists no open entry, exit 0" status 0 "$Q" rejected --db "$X"
check "the listing is empty" test ! -s "$T/out"
check "rejected --all exits 0 (only open entries count)" \
    status 0 "$Q" rejected --all --db "$X"
check "rejected --all shows the step it became" \
    grep -q 'complete is not legal from queued.*; held [0-9]*s \[resolved: ticket 1 step 5\]$' "$T/out"
check "rejected --all --json" status 0 "$Q" rejected --all --json --db "$X"
check "--json marks it resolved, with ticket and seq" \
    grep -q '"resolved":true,"resolved_us":[0-9]*,"resolved_ticket":1,"resolved_seq":5}$' "$T/out"
check "a second replay replays nothing" \
    status 0 "$Q" rejected --replay --db "$X" --secret-file "$F/secret"
check "a second replay counts nothing as passing" \
    grep -q '^0 replayed: 0 now pass, 0 still refused' "$T/err"
check "--replay with --all exits 2" \
    status 2 "$Q" rejected --replay --all --db "$X" --secret-file "$F/secret"
# a refusal whose payload was accepted since is resolved as its duplicate
Y="$T/resolvedup"
"$Q" apply --reorder-window 0 --db "$Y" --secret-file "$F/secret" "$W/01-join-live-queue.json" "$W/05-served.json" >/dev/null 2>&1
"$Q" apply --db "$Y" --secret-file "$F/secret" "$W"/0[2-5]*.json >/dev/null 2>&1
check "replay of a refusal accepted since passes" \
    status 0 "$Q" rejected --replay --db "$Y" --secret-file "$F/secret"
check "it is a duplicate" grep -q '^rejection:1  *duplicate' "$T/out"
check "it is resolved as that step" \
    sh -c "'$Q' rejected --all --db '$Y' | grep -q '\[resolved: ticket 1 step 5\]\$'"
check "open entries only in the listing" status 0 "$Q" rejected --db "$Y"
# a duplicate of a held delivery is not resolved: it may still be refused
Z="$T/resolveheld"
"$Q" apply --reorder-window 0 --db "$Z" --secret-file "$F/secret" "$W/01-join-live-queue.json" "$W/05-served.json" >/dev/null 2>&1
"$Q" apply --db "$Z" --secret-file "$F/secret" "$W/05-served.json" >/dev/null 2>&1
check "replay of a refusal now held exits 1" \
    status 1 "$Q" rejected --replay --db "$Z" --secret-file "$F/secret"
check "it is still refused" grep -q '^1 replayed: 0 now pass, 1 still refused' "$T/err"
check "and still open" status 1 "$Q" rejected --db "$Z"
check "an open entry is still listed, unmarked" \
    sh -c "'$Q' rejected --json --db '$DB' | grep -q '\"resolved\":false}\$'"

# backup: a copy that opens as a store and holds what the store holds;
# a DEST in use is refused by name, and a refused or failed backup leaves
# nothing that looks like one
check "backup exits 0" status 0 "$Q" backup --db "$DB" "$T/bk"
check "backup says what it copied" \
    grep -Eq "^$T/bk: [0-9]+ bytes, [0-9]+ tickets, [0-9]+ records\$" "$T/out"
check "the backup holds data.mdb alone" \
    test "$(ls "$T/bk")" = data.mdb
check "the backup verifies" status 0 "$Q" verify --db "$T/bk"
"$Q" list --db "$DB" >"$T/list.src" 2>&1
check "the backup lists the same tickets" \
    sh -c "'$Q' list --db '$T/bk' | cmp -s - '$T/list.src'"
"$Q" history --json --db "$DB" 30001 >"$T/h.src" 2>&1
check "the backup's history is the store's" \
    sh -c "'$Q' history --json --db '$T/bk' 30001 | cmp -s - '$T/h.src'"
check "backup into a non-empty directory exits 2" \
    status 2 "$Q" backup --db "$DB" "$T/bk"
check "backup names the directory that is not empty" \
    grep -q "backup: $T/bk: not empty" "$T/err"
touch "$T/afile"
check "backup onto a file exits 2" status 2 "$Q" backup --db "$DB" "$T/afile"
check "backup names the file" \
    grep -q "backup: $T/afile: exists and is not a directory" "$T/err"
mkdir "$T/emptybk"
check "backup into an empty directory exits 0" \
    status 0 "$Q" backup --db "$DB" "$T/emptybk"
check "backup into a missing parent exits 2" \
    status 2 "$Q" backup --db "$DB" "$T/no/such/bk"
check "a failed backup leaves nothing behind" \
    test "$(ls -a "$T" | grep -c partial)" -eq 0
check "backup --json" status 0 "$Q" backup --json --db "$DB" "$T/bkj"
check "backup --json says what it copied" \
    grep -Eq '^\{"backup":".*/bkj","bytes":[0-9]+,"tickets":[0-9]+,"records":[0-9]+\}$' "$T/out"

# purge: the bodies go, the skeleton stays; every reader copes; refusals
# name the value
P="$T/pdb"
"$Q" apply --reorder-window 0 --db "$P" --secret-file "$F/secret" \
    "$F"/visits/walk-in/*.json "$F"/illegal/served-before-arrive/*.json \
    >/dev/null 2>&1
check "purge without --before exits 2" status 2 "$Q" purge --db "$P"
check "purge without --before says what to give" \
    grep -q 'purge: give --before DATE' "$T/err"
check "purge --before nonsense exits 2" \
    status 2 "$Q" purge --db "$P" --before 2024-13-45
check "purge names the bad DATE" grep -q -- '--before "2024-13-45"' "$T/err"
check "purge --before a future DATE exits 2" \
    status 2 "$Q" purge --db "$P" --before 2999-01-01
check "purge names the future DATE" \
    grep -q -- '--before "2999-01-01": in the future' "$T/err"
check "nothing was purged by a refused purge" \
    sh -c "'$Q' history --db '$P' --raw 1 30001 | cmp -s - '$F/visits/walk-in/01-join-live-queue.json'"
check "purge before 2000 purges nothing" \
    status 0 "$Q" purge --db "$P" --before 2000-01-01
check "purge before 2000 says so" grep -q '^purged the bodies of 0 records and 0 rejections' "$T/out"
sleep 1
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
check "purge --before now exits 0" status 0 "$Q" purge --db "$P" --before "$NOW"
check "purge counts records and rejections" \
    grep -Eq '^purged the bodies of 10 records and 1 rejections received before .*: [0-9]+ bytes; 0 records kept whole' "$T/out"
check "history shows the bodies as purged" status 0 "$Q" history --db "$P" 30001
check "history marks each purged step" \
    test "$(grep -c 'body purged$' "$T/out")" -eq 9
check "history --raw of a purged step exits 2" \
    status 2 "$Q" history --db "$P" --raw 1 30001
check "history --raw says the body was purged" \
    grep -q 'record 1: its body was purged' "$T/err"
check "history --json marks purged steps" \
    sh -c "'$Q' history --json --db '$P' 30001 | jq -e 'all(.[]; .purged and .body_bytes == 0)' >/dev/null"
check "export marks purged steps" \
    sh -c "'$Q' export --db '$P' | jq -e -s 'length == 10 and all(.[]; .purged)' >/dev/null"
check "show still shows the ticket" status 0 "$Q" show --db "$P" 30001
check "verify passes after a purge" status 0 "$Q" verify --db "$P"
check "rejected marks the purged body" status 1 "$Q" rejected --db "$P"
check "rejected says [body purged]" grep -q 'illegal_transition.*\[body purged\]' "$T/out"
check "rejected --json says purged" \
    sh -c "'$Q' rejected --json --db '$P' | jq -e '.purged and .body_bytes == 0 and (.sha256 | length) == 64' >/dev/null"
check "a purged rejection is not replayed" \
    status 1 "$Q" rejected --replay --db "$P" --secret-file "$F/secret"
check "replay says the body was purged" \
    grep -q 'rejection:1: skipped: its body was purged' "$T/err"
check "a redelivery after a purge is still a duplicate" \
    status 0 "$Q" apply --db "$P" --secret-file "$F/secret" "$F/visits/walk-in/04-serving.json"
check "the redelivery names the step" grep -q '^duplicate' "$T/out"
check "purge again purges nothing" \
    status 0 "$Q" purge --json --db "$P" --before "$NOW"
check "purge --json counts" \
    grep -Eq '^\{"before":"[^"]+","records":0,"rejections":0,"bytes":0,"skipped_outbox":0,"complete":true\}$' "$T/out"

# an inverted or empty --since/--until range is a usage error, for each
# command that takes both
for cmd in stats list; do
    check "$cmd with --since after --until exits 2" \
        status 2 "$Q" $cmd --db "$DB" --since 2024-03-06 --until 2024-03-05
    check "$cmd names the inverted range" \
        grep -q -- '--since "2024-03-06" is not before --until "2024-03-05"' "$T/err"
    check "$cmd with --since equal to --until exits 2" \
        status 2 "$Q" $cmd --db "$DB" --since 2024-03-05 --until 2024-03-05
    check "$cmd with a range in order exits 0" \
        status 0 "$Q" $cmd --db "$DB" --since 2024-03-05 --until 2024-03-06
done

# a mistyped command: one line naming the nearest command, no usage
check "a typo exits 2" status 2 "$Q" histroy 30001
check "a typo suggests the command" \
    test "$(cat "$T/err")" = 'qgate: unknown command "histroy" (did you mean "history"?)'
check "a typo prints nothing else" test ! -s "$T/out"
check "a word far from every command suggests none" \
    status 2 "$Q" frobnicate
check "no suggestion, one line" \
    test "$(cat "$T/err")" = 'qgate: unknown command "frobnicate"; qgate help lists the commands'

# help COMMAND is the command's own --help
check "help apply exits 0" status 0 "$Q" help apply
check "help apply shows apply's usage" grep -q '^usage: qgate apply ' "$T/out"
check "help apply is apply --help" \
    sh -c "'$Q' apply --help | cmp -s - '$T/out'"
check "help help is the usage" sh -c "'$Q' help help | grep -q '^usage: qgate COMMAND'"
check "help of a typo exits 2" status 2 "$Q" help histroy
check "help of a typo suggests" grep -q 'did you mean "history"' "$T/err"

# check gives exactly apply's verdicts, in order, state carried from one
# input to the next (held and late included), and writes nothing; with no
# store, as over an empty one.  Each fixture folder is checked and then
# applied, in a fresh folder and in one store that keeps every folder's
# steps, with the default window and with none.  Only "rejection" (the
# log id, which a check never gets) and the clock in a skew refusal may
# differ.
C="$T/cmp"
mkdir -p "$C"
norm() { # verdict lines without what may legitimately differ
    jq -c 'del(.rejection) | .reason |= gsub("[0-9]+ s ahead of the gate.s clock \\([^)]*\\)"; "N s ahead")' "$1"
}
same() { # check's output, apply's, their exit codes
    [ "$3" -eq "$4" ] || { echo "  check exit $3, apply exit $4"; return 1; }
    norm "$1" >"$1.n" && norm "$2" >"$2.n" && test -s "$2.n" &&
        diff "$1.n" "$2.n"
}
for window in 1200 0; do
    for dir in "$F"/visits/* "$F"/illegal/* "$F"/malformed "$F"/chup; do
        [ -d "$dir" ] || continue
        name=$(basename "$dir")
        for db in "$C/fresh-$window-$name" "$C/kept-$window"; do
            "$Q" check --json --reorder-window $window --db "$db" \
                --secret-file "$F/secret" "$dir"/*.json >"$C/c" 2>"$C/cerr"
            crc=$?
            [ "$db" = "$C/fresh-$window-$name" ] &&
                check "check of $name without a store creates none" \
                    test ! -e "$db"
            "$Q" apply --json --reorder-window $window --db "$db" \
                --secret-file "$F/secret" "$dir"/*.json >"$C/a" 2>/dev/null
            check "check = apply: $name, window $window, $(basename "$db")" \
                same "$C/c" "$C/a" $crc $?
        done
    done
done
check "check without a store exits 0" \
    status 0 "$Q" check --db "$C/none" --secret-file "$F/secret" "$W/01-join-live-queue.json"
check "check without a store says so" \
    grep -q 'none: no store there: checking as against an empty one' "$T/err"
# the issue's case: the store holds step 01, check 02-05
"$Q" apply --db "$C/walk" --secret-file "$F/secret" "$W/01-join-live-queue.json" >/dev/null 2>&1
cp "$C/walk/data.mdb" "$C/walk.before"
check "check of 02-05 over step 01 exits 0" \
    status 0 "$Q" check --db "$C/walk" --secret-file "$F/secret" "$W"/0[2-5]*.json
check "check of 02-05 over step 01 accepts all four" \
    test "$(grep -c '^accepted' "$T/out")" -eq 4
check "check wrote nothing to the store" cmp -s "$C/walk/data.mdb" "$C/walk.before"
check "check of stdin carries state from line to line" \
    sh -c "cat '$W'/0[2-5]*.json | '$Q' check --db '$C/walk' --secret-file '$F/secret' - 2>/dev/null | grep -c '^accepted' | grep -qx 4"
# a store whose data file this user may not write is checked on a copy
RO=$(mktemp -d)
chmod 755 "$RO"
cp "$W/01-join-live-queue.json" "$W/02-alert.json" "$RO/"
"$Q" apply --db "$RO/db" --no-verify "$RO/01-join-live-queue.json" >/dev/null 2>&1
chmod 755 "$RO/db"
chmod 444 "$RO/db/data.mdb" "$RO"/*.json
chmod 666 "$RO/db/lock.mdb"
cp "$RO/db/data.mdb" "$C/ro.before"
as_user=
if [ "$(id -u)" -eq 0 ]; then
    as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
    $as_user "$Q" --version >/dev/null 2>&1 || as_user=unavailable
fi
if [ "$as_user" = unavailable ]; then
    echo "SKIP: check of a read-only store (root, and no other user can run $Q)"
else
    check "check of a read-only store exits 0" \
        status 0 $as_user "$Q" check --db "$RO/db" --no-verify "$RO/02-alert.json"
    check "check of a read-only store decides against its steps" \
        grep -q '^accepted  *lq:30001  *alert queued -> queued' "$T/out"
    check "check left the read-only store as it was" \
        cmp -s "$RO/db/data.mdb" "$C/ro.before"
fi
chmod -R u+w "$RO"
rm -rf "$RO"

# --json: every command `qgate help` lists prints JSON and only JSON on
# stdout (jq reads it: a stream of JSON values, one at least unless the
# list is empty)
J="$T/json"
"$Q" apply --db "$J" --secret-file "$F/secret" "$W"/01-join-live-queue.json \
    "$W"/03-move.json "$W"/05-served.json "$F"/illegal/stale/*.json \
    "$F"/illegal/paid-after-cancel/*.json >/dev/null 2>&1
json_args() { # the arguments each command is run with
    case $1 in
    apply | check) echo "--secret-file $F/secret $W/02-alert.json" ;;
    history | show) echo 30001 ;;
    rejected) echo "--replay --no-verify" ;;
    backup) echo "$T/jsonbackup" ;;
    purge) echo "--before 2000-01-01" ;;
    serve) echo "--secret-file $F/secret --listen 127.0.0.1:0" ;;
    console) echo "--listen 127.0.0.1:0" ;;
    list | verify | stats | export | machine | outbox | held | seal) ;;
    db) echo init ;;
    *) return 1 ;;
    esac
}
is_json() { # file, then "empty" when no value at all is fine
    command -v jq >/dev/null || { echo "  jq is needed (.ci/deps)"; return 1; }
    jq -e -s "length > 0 or \"${2:-}\" == \"empty\"" "$1" >/dev/null || {
        echo "  not JSON:"
        cat "$1"
        return 1
    }
}
for cmd in $("$Q" help | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    [ "$cmd" = help ] && continue
    if ! args=$(json_args "$cmd"); then
        check "$cmd has a --json case in this test" false
        continue
    fi
    if [ "$cmd" = serve ] || [ "$cmd" = console ]; then
        # the gate logs JSON lines on stderr; stdout stays empty.  The
        # console reads the store serve wrote before it.
        "$Q" $cmd --json --db "$T/jsonserve" $args >"$T/out" 2>"$T/err" &
        pid=$!
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            grep -q '"listening"' "$T/err" && break
            sleep 0.5
        done
        kill -TERM $pid
        wait $pid
        check "$cmd --json logs JSON" is_json "$T/err"
        check "$cmd --json prints nothing else" test ! -s "$T/out"
        continue
    fi
    if [ "$cmd" = db ]; then
        # a PostgreSQL store's command: on a throwaway server, where there
        # is one (CI installs it)
        if ! "$PGS" bindir >/dev/null 2>&1 && [ -z "${CI:-}" ]; then
            echo "skip: db --json (no PostgreSQL server programs)"
            continue
        fi
        pgdir=$(mktemp -d /tmp/qgate-pg-XXXXXX)
        uri=$("$PGS" start "$pgdir" $$ 3>&-)
        "$Q" db --json --db "$uri" $args >"$T/out" 2>"$T/err"
        check "db --json exits 0" test $? -eq 0
        check "db --json is JSON" is_json "$T/out"
        check "db init --json says the version before and after" \
            jq -e '.from == 0 and .to >= 1' "$T/out"
        "$PGS" stop "$pgdir"
        rm -rf "$pgdir"
        continue
    fi
    "$Q" $cmd --json --db "$J" $args >"$T/out" 2>"$T/err"
    check "$cmd --json exits 0 or 1" test $? -le 1
    case $cmd in
    outbox) check "$cmd --json is JSON" is_json "$T/out" empty ;;
    *) check "$cmd --json is JSON" is_json "$T/out" ;;
    esac
done
check "machine --json names each state's next states" \
    sh -c "'$Q' machine --json | jq -e '.states[] | select(.state == \"served\") | .next.end_visit == \"visit_ended\"' >/dev/null"
check "machine --json --dot exits 2" status 2 "$Q" machine --json --dot
check "export --json --format csv exits 2" \
    status 2 "$Q" export --json --format csv --db "$J"

# --source: two clinics' deliveries in one store, the same live-queue ids
S="$T/sources"
printf 'clinic-b-secret\n' >"$T/b.secret"
check "apply --source a of the walk-in exits 0" \
    status 0 "$Q" apply --source a --db "$S" --secret-file "$F/secret" "$F"/visits/walk-in/0[1-5]*.json
check "apply --source b of the same files: new tickets, not duplicates" \
    status 0 "$Q" apply --source b --db "$S" --secret-file "$F/secret" "$F"/visits/walk-in/0[1-3]*.json
check "apply --source b accepted all three" \
    grep -q '^3 deliveries: 3 accepted, 0 duplicate' "$T/err"
check "apply --source b with another secret is unauthenticated, exit 1" \
    status 1 "$Q" apply --source b --db "$S" --secret-file "$T/b.secret" "$F/visits/walk-in/04-serving.json"
check "apply of the default source exits 0" \
    status 0 "$Q" apply --db "$S" --secret-file "$F/secret" "$F/visits/walk-in/01-join-live-queue.json"
check "list shows three tickets of lq:30001" \
    sh -c "'$Q' list --db '$S' | grep -c 'lq:30001' | grep -qx 3"
check "list --source a exits 0" status 0 "$Q" list --source a --db "$S"
check "list --source a shows a's ticket only" \
    sh -c "grep -c 'lq:30001' '$T/out' | grep -qx 1 && grep -Eq '^ +1  lq:30001 .* served +5 ' '$T/out'"
check "list --source b --json names the source" \
    sh -c "'$Q' list --json --source b --db '$S' | jq -e -s 'length == 1 and .[0].source == \"b\" and .[0].records == 3' >/dev/null"
check "history --source b 30001 exits 0" \
    status 0 "$Q" history --source b --db "$S" 30001
check "history --source b shows b's three steps" \
    sh -c "grep -Ec '^ +[0-9]+ +2024-03-05' '$T/out' | grep -qx 3"
check "history of 30001 without --source is the default source's" \
    sh -c "'$Q' show --json --db '$S' 30001 | jq -e '.source == \"default\" and .records == 1' >/dev/null"
check "history --source c exits 2" \
    status 2 "$Q" history --source c --db "$S" 30001
check "an unknown source is named" \
    grep -q -- '--source "c": no delivery of that source is in the store' "$T/err"
check "history --source b of a's other ticket exits 2" \
    status 2 "$Q" history --source b --db "$S" ticket:1
check "a ticket of another source is not found in it" \
    grep -q 'ticket ticket:1: not in the store for source b' "$T/err"
check "export --source b exits 0" status 0 "$Q" export --source b --db "$S"
check "export --source b has b's three records" \
    sh -c "jq -s -e 'length == 3' '$T/out' >/dev/null"
check "rejected --source b lists the unauthenticated delivery" \
    sh -c "'$Q' rejected --source b --db '$S' | grep -q 'unauthenticated'"
check "rejected --source a lists nothing" \
    sh -c "test -z \"\$('$Q' rejected --source a --db '$S')\""
check "stats --source a --json counts a's ticket only" \
    sh -c "'$Q' stats --json --source a --db '$S' | jq -e '.tickets == 1' >/dev/null"
check "verify --source b exits 0" status 0 "$Q" verify --source b --db "$S"
check "verify --source b verifies one ticket" grep -q '^1 tickets verified' "$T/out"
printf '{"sources": [{"name": "north", "secret_file": "b.secret"}]}\n' >"$T/north.json"
"$Q" serve --db "$T/northdb" --config "$T/north.json" --listen 127.0.0.1:0 \
    --log "$T/north.log" 2>"$T/north.err" &
GATE=$!
PORT=$(wait_listening "$T/north.log")
check "serve of named sources only needs no --secret-file" test -n "$PORT"
check "and serves only them, not the default source's path" \
    grep -q '"path":null,.*"sources":\[{"name":"north","path":"/webhooks/chup/north","upstream":null}\]' "$T/north.log"
kill -TERM "$GATE" 2>/dev/null
wait "$GATE"
check "a bad source name exits 2" \
    status 2 "$Q" list --source 'Clinic A' --db "$S"
check "a bad source name is named" \
    grep -q -- '--source "Clinic A": expected 1 to 32 lowercase' "$T/err"

# libpq is loaded when a PostgreSQL store is opened, never before: a
# command on an LMDB store runs whatever QGATE_LIBPQ says, and one on a
# URI names the library it could not load.  No server is needed: the
# load comes before the connection.
check "history on an LMDB store does not load libpq" \
    status 0 env QGATE_LIBPQ="$T/none/libpq.so.5" "$Q" history --db "$DB" 30001
while IFS='|' read -r lib what; do
    check "QGATE_LIBPQ=$lib ($what): exit 2" \
        status 2 env QGATE_LIBPQ="$lib" "$Q" list --db postgresql:///qgate
    check "QGATE_LIBPQ=$lib ($what): the store and the library are named" \
        grep -q '^qgate: postgresql:///qgate: cannot open the store: cannot load libpq.so.5 (14 or later), the PostgreSQL client library; QGATE_LIBPQ may name its file$' "$T/err"
done <<EOF2
$T/none/libpq.so.5|no such file
$F/secret|not a shared object
libc.so.6|a library without libpq's functions
EOF2

# libcrypto, too, is loaded by the commands that hash, and by no other
# (ossl.h): the audit commands start without relocating it.  The loader
# names each library it initialises under LD_DEBUG=files.
loads() { # library, command...: whether running it initialises library
    lib=$1
    shift
    LD_DEBUG=files "$@" 2>&1 >/dev/null | grep -q "calling init: .*/$lib"
}
spares() { ! loads "$@"; }
while IFS='|' read -r verdict lib args; do
    check "qgate $args: $verdict $lib" $verdict "$lib" "$Q" $args
done <<EOF2
spares|libcrypto|show --db $DB 30001
spares|libcrypto|history --db $DB 30001
spares|libcrypto|list --db $DB
spares|libcrypto|stats --db $DB
spares|libcrypto|export --db $DB
spares|libcrypto|rejected --db $DB
spares|libpq|history --db $DB 30001
loads|libcrypto|verify --db $DB
loads|libcrypto|check --db $DB --secret-file $F/secret $F/visits/walk-in/01-join-live-queue.json
EOF2

# json-c likewise (jsonc.h): the commands that parse or write JSON load it,
# the audit commands only to read a config file, which libqgate reads for
# them (qg_config_walk()): neither program links json-c, whether built
# against libqgate.a or libqgate.so (QG_LINK_SHARED).
printf '{"db": "%s"}\n' "$DB" >"$T/db.json"
while IFS='|' read -r verdict args; do
    check "qgate $args: $verdict libjson-c" $verdict libjson-c "$Q" $args
done <<EOF2
spares|show --db $DB 30001
spares|history --db $DB 30001
spares|history --json --db $DB 30001
spares|list --db $DB
spares|stats --db $DB
spares|export --db $DB
spares|rejected --db $DB
loads|show --config $T/db.json 30001
loads|history --config $T/db.json 30001
loads|verify --db $DB
loads|check --db $DB --secret-file $F/secret $F/visits/walk-in/01-join-live-queue.json
EOF2
# A json-c that cannot be loaded stops the command that needs it, as the
# loader would have stopped it, and is named.
SO=$(ldconfig -p | awk '$1 ~ /^libjson-c\.so\.[0-9]+$/ { print $1; exit }')
mkdir "$T/lib" && cp "$F/secret" "$T/lib/$SO"
check "show without json-c runs" \
    status 0 env LD_LIBRARY_PATH="$T/lib" "$Q" show --db "$DB" 30001
check "show --config without json-c stops" \
    status 134 env LD_LIBRARY_PATH="$T/lib" "$Q" show --config "$T/db.json" 30001
check "naming the library" \
    grep -q "^qgate: cannot load $SO (json-c): $T/lib/$SO: file too short\$" "$T/err"

# the man page documents every command `qgate help` lists
MAN=$(dirname "$F")/docs/qgate.1
for cmd in $("$Q" help | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    [ "$cmd" = help ] && continue
    check "man page documents $cmd" grep -q "^\.SS $cmd" "$MAN"
done

finish
