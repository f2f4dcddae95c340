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
. "$(dirname "$0")/testlib.sh"
exec 3>&1 # the test's own output, whatever a command's is redirected to

# vg CMD...: CMD under memcheck, which makes it exit 33 on an error; the
# reports, if any, go to the test's output.
vg() {
    valgrind -q --error-exitcode=33 --leak-check=full \
        --errors-for-leak-kinds=definite --log-file="$T/memcheck.%p" "$@"
    rc=$?
    for r in "$T"/memcheck.*; do
        [ -s "$r" ] && { echo "--- memcheck, $*:"; cat "$r"; } >&3
    done
    rm -f "$T"/memcheck.*
    return "$rc"
}

# The suites: each forked test exits 33 on an error, which Check reports
# as that test's early exit.  Memcheck runs code 20 to 50 times slower.
export CK_FORK=yes CK_TIMEOUT_MULTIPLIER=20
for suite in "$@"; do
    check "$(basename "$suite") under memcheck" status 0 vg "$suite"
done

# A day of 300 tickets: 2% duplicates, 1% illegal, 0.5% stale, and one
# delivery in ten up to 4 deliveries late, which the window holds or
# places late.
"$GEN" -r 0.1:4 300 11 qgate-development-secret "$T/expected.json" 2 1 0.5 \
    >"$T/day.ndjson" || { echo "FAIL: gen_day"; exit 1; }
printf '{"db": "db", "durability": "nosync", "secret_file": "%s/secret", "reorder_window": 1200}\n' \
    "$F" >"$T/qgate.json"
cd "$T" || exit 1
check "qgate apply under memcheck" \
    status 0 vg "$Q" apply --config qgate.json - <day.ndjson
check "apply accepted steps" grep -q '^accepted' out
check "the day has duplicates and held steps" \
    sh -c "grep -q '^duplicate' out && grep -q '^held' out"
# The steps still held go to the rejection log, which the audit reads
# (exit 1: some were refused).
check "qgate held --expire under memcheck" \
    status 1 vg "$Q" held --expire --config qgate.json
check "held --expire refused the held steps" \
    grep -q 'held deliveries refused' out

# same CMD ARGS...: the command without memcheck and under it, with the
# same exit (rejected exits 1 while an entry is open) and the same bytes.
same() {
    "$Q" "$@" >plain.out 2>&1
    plain=$?
    vg "$Q" "$@" >vg.out 2>&1
    rc=$?
    [ "$rc" -eq "$plain" ] && cmp -s plain.out vg.out && return 0
    echo "  exit $rc under memcheck, $plain without; outputs:"
    diff plain.out vg.out | head -10
    return 1
}

ticket=$(sed -n 's/.*"data":{"id":\([0-9]*\).*/\1/p' day.ndjson | head -1)
while read -r cmd args; do
    # shellcheck disable=SC2086 # args are words
    check "qgate $cmd under memcheck" same "$cmd" --config qgate.json $args
done <<EOF
stats --json
export
verify
history --hash $ticket
list --json
rejected --json
EOF

finish
