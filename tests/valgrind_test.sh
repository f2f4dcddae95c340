#!/bin/sh
# valgrind_test.sh QGATE GEN_DAY FIXTURES SUITE... - Valgrind's memcheck
# over what reads senders' bytes and the store's: the Check suites named,
# then `qgate apply` of a day with duplicates, illegal, stale and late
# deliveries under a reorder window, and the audit commands over its
# store.  Memcheck finds what AddressSanitizer does not: a decision or an
# output that depends on memory never written.  Any memcheck error, or a
# leak definitely lost, fails the test; so does an audit command whose
# output under memcheck differs from its output without.
#
# Exits 77 (skipped) without valgrind, unless CI is set: CI installs it.
set -u
Q=$1
GEN=$2
F=$3
shift 3
if ! command -v valgrind >/dev/null 2>&1; then
    [ -n "${CI:-}" ] && { echo "FAIL: valgrind is not installed"; exit 1; }
    echo "valgrind not found: skipped"
    exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
passes=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# 33: what memcheck makes a process exit with when it found an error.
vg() {
    valgrind -q --error-exitcode=33 --leak-check=full \
        --errors-for-leak-kinds=definite --log-file="$T/vg.%p" "$@"
}
reports() {
    for r in "$T"/vg.*; do
        [ -s "$r" ] && { echo "--- $r"; cat "$r"; }
    done
    rm -f "$T"/vg.*
}

# The suites: each forked test exits 33 on an error, which Check reports
# as that test's early exit.  Memcheck runs code 20 to 50 times slower.
for suite in "$@"; do
    if CK_FORK=yes CK_TIMEOUT_MULTIPLIER=20 vg "$suite" >"$T/out" 2>&1; then
        ok
    else
        fail "$(basename "$suite") under memcheck:"
        cat "$T/out"
        reports
    fi
    rm -f "$T"/vg.*
done

# A day of 300 tickets: 2% duplicates, 1% illegal, 0.5% stale, and one
# delivery in ten up to 4 deliveries late, which the window holds or
# places late.
"$GEN" -r 0.1:4 300 11 qgate-development-secret "$T/expected.json" 2 1 0.5 \
    >"$T/day.ndjson" || { echo "FAIL: gen_day"; exit 1; }
printf '{"db": "db", "durability": "nosync", "secret_file": "%s/secret", "reorder_window": 1200}\n' \
    "$F" >"$T/qgate.json"
cd "$T" || exit 1
if vg "$Q" apply --config qgate.json - <day.ndjson >verdicts 2>apply.err; then
    ok
else
    fail "qgate apply under memcheck (exit $?):"
    tail -5 apply.err
    reports
fi
grep -q '^accepted' verdicts && ok || fail "apply accepted nothing"
grep -q '^duplicate' verdicts && grep -q '^held' verdicts && ok ||
    fail "the day had no duplicate or no held step"
# The steps still held go to the rejection log, which the audit reads
# (exit 1: some were refused).
vg "$Q" held --expire --config qgate.json >expire.out 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'held deliveries refused' expire.out; then
    ok
else
    fail "qgate held --expire under memcheck (exit $rc):"
    cat expire.out
    reports
fi

ticket=$(sed -n 's/.*"data":{"id":\([0-9]*\).*/\1/p' day.ndjson | head -1)
# Each command twice, without memcheck and under it: the same exit (rejected
# exits 1 while an entry is open) and the same bytes.
while read -r cmd args; do
    # shellcheck disable=SC2086 # args are words
    "$Q" "$cmd" --config qgate.json $args >plain.out 2>&1
    plain=$?
    # shellcheck disable=SC2086
    vg "$Q" "$cmd" --config qgate.json $args >vg.out 2>&1
    rc=$?
    if [ "$rc" -eq 33 ]; then
        fail "qgate $cmd under memcheck:"
        reports
    elif [ "$rc" -ne "$plain" ] || ! cmp -s plain.out vg.out; then
        fail "qgate $cmd: exit $rc under memcheck, $plain without, outputs:"
        diff plain.out vg.out | head -10
    else
        ok
    fi
    rm -f "$T"/vg.*
done <<EOF
stats --json
export
verify
history --hash $ticket
list --json
rejected --json
EOF

echo "valgrind: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
