#!/bin/sh
# damage_test.sh QGATE GEN_DAY DAMAGE FIXTURES - a damaged data.mdb is
# reported, never crashed on.  A real store (a generated day through
# `qgate apply`) is copied and damaged in each way of the table below, and
# every command runs on the copy: none may die by a signal.  The commands
# that check every page (verify, and the writers: apply, rejected
# --replay, outbox --retry, serve) must
# exit 2 naming the store and saying how to restore it.  A read-only
# command checks only the meta and root pages: it must either do the same
# (or say the store may be damaged, for a value LMDB returned intact but
# not in qgate's layout), or, when its reads do not reach the damage, give
# exactly the sound store's answer.  Damage LMDB repairs itself (a garbage
# lock.mdb, rebuilt by the first process to open the store) must leave
# every command as it is on the sound store.
set -u
Q=$1
GEN=$2
DAMAGE=$3
F=$4
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

# What verify says names the damage: found at open (meta pages, root
# pages) or by the page walk (a database and page).
# kind of damage     expected  verify's message
damages='
half                 damaged   root page [0-9]* lies past its end: the file was cut short
page-boundary        damaged   root page [0-9]* lies past its end: the file was cut short
one-byte-short       damaged   root page [0-9]* lies past its end: the file was cut short
metas-zeroed         damaged   meta page 0 of data.mdb is not an LMDB meta page
newer-meta-zeroed    damaged   meta page [01] of data.mdb is not an LMDB meta page
main-root-zeroed     damaged   the main database.s root page [0-9]* is not the leaf page
branch-zeroed        damaged   database "history": page [0-9]* does not carry its own number (it holds 0)
leaf-zeroed          damaged   database "history": page [0-9]* does not carry its own number (it holds 0)
random-in-leaf       damaged   database "history": page [0-9]*: node 0 lies outside the page
random-in-pages      damaged   database "history": page [0-9]* is not the branch page
page-number          damaged   database "history": page [0-9]* does not carry its own number
lock-garbage         sound     -
'

"$GEN" 300 7 qgate-development-secret "$T/expected.json" >"$T/day.ndjson" ||
    { echo "FAIL: gen_day"; exit 1; }
printf '{"db": "sound", "durability": "nosync"}\n' >"$T/qgate.json"
"$Q" apply --config "$T/qgate.json" --secret-file "$F/secret" - \
    <"$T/day.ndjson" >/dev/null 2>&1
check "the day is applied" test -s "$T/sound/data.mdb"
first=$(head -1 "$T/day.ndjson" | sed 's/.*"data":{"id":\([0-9]*\).*/\1/')

# Each command as an operator runs it, reading or writing the store in $DB.
# serve must refuse to start: if it starts, timeout stops it (exit 124).
run() { # name
    case $1 in
    verify) "$Q" verify --db "$DB" ;;
    list) "$Q" list --db "$DB" ;;
    history) "$Q" history --db "$DB" "$first" ;;
    show) "$Q" show --db "$DB" "$first" ;;
    export) "$Q" export --db "$DB" ;;
    stats) "$Q" stats --db "$DB" ;;
    outbox) "$Q" outbox --db "$DB" ;;
    rejected) "$Q" rejected --db "$DB" ;;
    check)
        "$Q" check --db "$DB" --secret-file "$F/secret" \
            "$F/visits/walk-in/01-join-live-queue.json"
        ;;
    apply)
        "$Q" apply --db "$DB" --secret-file "$F/secret" \
            "$F/visits/walk-in/01-join-live-queue.json"
        ;;
    replay) "$Q" rejected --replay --db "$DB" --secret-file "$F/secret" ;;
    retry) "$Q" outbox --retry-all --db "$DB" ;;
    serve)
        timeout 3 "$Q" serve --db "$DB" --listen 127.0.0.1:0 \
            --secret-file "$F/secret"
        ;;
    esac
}
checkers="verify apply replay retry serve"
readers="list history show export stats outbox rejected check"
commands="$checkers $readers"

# The sound store: each command's own exit status and output, the baseline.
for cmd in $commands; do
    rm -rf "$T/db"
    cp -r "$T/sound" "$T/db"
    DB=$T/db
    run "$cmd" >"$T/base_$cmd" 2>"$T/err"
    eval "base_$cmd=\$?"
done
check "serve starts on the sound store" test "$base_serve" -eq 124
check "verify passes the sound store" test "$base_verify" -eq 0

echo "$damages" | while read -r kind expected message; do
    [ -n "$kind" ] || continue
    for cmd in $commands; do
        rm -rf "$T/db"
        cp -r "$T/sound" "$T/db"
        DB=$T/db
        "$DAMAGE" "$DB" "$kind" || { echo "FAIL: damage $kind"; continue; }
        run "$cmd" >"$T/out" 2>"$T/err"
        got=$?
        if [ "$expected" = sound ]; then
            eval "want=\$base_$cmd"
            check "$kind: $cmd exits as on the sound store ($want)" \
                test "$got" -eq "$want"
            continue
        fi
        check "$kind: $cmd is not killed by a signal (exit $got)" \
            test "$got" -lt 124
        case " $readers " in
        *" $cmd "*)
            eval "want=\$base_$cmd"
            if grep -q "^qgate: $DB: .*the store may be damaged" "$T/err"; then
                check "$kind: $cmd exits 2 (exit $got)" test "$got" -eq 2
                continue
            elif ! grep -q "^qgate: $DB: the store is damaged: " "$T/err"; then
                check "$kind: $cmd gives the sound store's answer" \
                    sh -c "[ $got -eq $want ] && cmp -s '$T/out' '$T/base_$cmd'"
                continue
            fi
            ;;
        esac
        check "$kind: $cmd exits 2 (exit $got)" test "$got" -eq 2
        check "$kind: $cmd names the store" \
            grep -q "^qgate: $DB: the store is damaged: " "$T/err"
        check "$kind: $cmd says how to restore it" \
            grep -q 'restore the store from a backup copy' "$T/err"
        [ "$cmd" = verify ] &&
            check "$kind: verify says where: $message" \
                grep -q "the store is damaged: .*$message" "$T/err"
        [ "$got" -eq 2 ] || sed 's/^/    /' "$T/err" | head -5
    done
    echo "$passes $failures" >"$T/tally"
done
read -r passes failures <"$T/tally"

# Damage while a command runs, after its check passed (a disk failing
# under it): LMDB trips on it, and the guard reports it the same way.  The
# reader is held mid-way by a full pipe while the store is damaged; the
# writer waits for more input; the gate gets deliveries after the damage
# and must stop.  Noise in a page's node offsets sends LMDB up to 64 KiB
# past the page: past the file's end, a SIGBUS, when the page is among the
# file's last (where it lies depends on the store's layout: the hash
# chain's pages moved the tickets' there), else a page not what LMDB
# expected, or one of LMDB's own assertions (the export walks the ticket
# rows with a second cursor, whose sibling step checks the page kind).
# Whichever, the store and the fault are named.
# command   kind of damage     what LMDB ran into
midrun='
export      half               SIGBUS while reading it
export      last-leaf-zeroed   LMDB.s check failed: .*IS_LEAF
export      random-in-pages    \(LMDB found a page that is not what it expected\|SIGBUS while reading it\|LMDB.s check failed: \)
apply       half               SIGBUS while reading it
serve       half               SIGBUS while reading it
serve       random-in-pages    \(LMDB found a page that is not what it expected\|SIGBUS while reading it\|LMDB.s check failed: \)
'

# The gate on $DB, damaged once it listens, then three deliveries.
serve_damaged() { # kind
    rm -f "$T/gate.log"
    "$Q" serve --db "$DB" --listen 127.0.0.1:0 --secret-file "$F/secret" \
        --log "$T/gate.log" 2>"$T/err" &
    gate=$!
    i=0
    while ! grep -q '"listening"' "$T/gate.log" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    port=$(sed -n 's/.*"listening".*"port":\([0-9]*\).*/\1/p' "$T/gate.log")
    "$DAMAGE" "$DB" "$1"
    for n in 1 2 3; do
        sed -n "${n}p" "$T/more.ndjson" >"$T/one.json"
        curl -s -o /dev/null --max-time 5 --data-binary @"$T/one.json" \
            -H 'Content-Type: application/json' \
            "http://127.0.0.1:$port/webhooks/chup"
    done
    i=0
    while kill -0 "$gate" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill "$gate" 2>/dev/null
    wait "$gate"
    echo $? >"$T/status"
}
"$GEN" 100 8 qgate-development-secret "$T/expected2.json" >"$T/more.ndjson"
echo "$midrun" | while read -r cmd kind what; do
    [ -n "$cmd" ] || continue
    rm -rf "$T/db"
    cp -r "$T/sound" "$T/db"
    DB=$T/db
    if [ "$cmd" = export ]; then
        { "$Q" export --db "$DB" 2>"$T/err"; echo $? >"$T/status"; } |
            { sleep 1; "$DAMAGE" "$DB" "$kind"; cat >/dev/null; }
    elif [ "$cmd" = serve ]; then
        serve_damaged "$kind"
    else
        { head -20 "$T/more.ndjson"; sleep 1; "$DAMAGE" "$DB" "$kind";
          tail -n +21 "$T/more.ndjson"; } |
            { "$Q" apply --db "$DB" --secret-file "$F/secret" - \
                  >/dev/null 2>"$T/err"; echo $? >"$T/status"; }
    fi
    got=$(cat "$T/status")
    check "$kind while $cmd runs: exits 2 (exit $got)" test "$got" -eq 2
    check "$kind while $cmd runs: names the store and the fault" \
        grep -q "^qgate: $DB: the store is damaged: $what" "$T/err"
    check "$kind while $cmd runs: says how to restore it" \
        grep -q 'restore the store from a backup copy' "$T/err"
    [ "$got" -eq 2 ] || sed 's/^/    /' "$T/err" | head -5
    # a SIGBUS is reported by the signal handler, which cannot log
    if [ "$cmd" = serve ] && [ "$kind" = random-in-pages ] &&
        ! grep -q 'SIGBUS' "$T/err"; then
        check "$kind while serve runs: the log says why the gate stops" \
            grep -q '"msg":"the store is damaged: stopping"' "$T/gate.log"
    fi
    echo "$passes $failures" >"$T/tally"
done
read -r passes failures <"$T/tally"

finish
