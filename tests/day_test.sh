#!/bin/sh
# day_test.sh QGATE GEN_DAY FIXTURES - a captured day of 10,000 tickets
# through `qgate apply` (with its progress line on a terminal), a second
# process reading a ticket's history meanwhile, and `qgate stats` checked
# against the generator's own count.
set -u
Q=$1
GEN=$2
F=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
passes=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$GEN" 10000 7 qgate-development-secret "$T/expected.json" >"$T/day.ndjson" ||
    { echo "FAIL: gen_day"; exit 1; }
printf '{"db": "db", "durability": "nosync", "secret_file": "%s/secret"}\n' \
    "$F" >"$T/qgate.json"
deliveries=$(wc -l <"$T/day.ndjson")

# The writer, on a terminal so that it draws its progress line.
script -qec "'$Q' apply --config '$T/qgate.json' - <'$T/day.ndjson' >'$T/verdicts'; echo \$? >'$T/status'" \
    "$T/terminal" >/dev/null 2>&1 &
writer=$!

# The reader: the first ticket of the day, as soon as it exists, then its
# history again and again while the writer runs.
first=$(head -1 "$T/day.ndjson" | sed 's/.*"data":{"id":\([0-9]*\).*/\1/')
reads=0
bad_reads=0
while kill -0 "$writer" 2>/dev/null; do
    if "$Q" history --config "$T/qgate.json" "$first" >"$T/h" 2>"$T/herr"; then
        steps=$(sed -n 's/.*, \([0-9]*\) steps,.*/\1/p' "$T/h")
        rows=$(grep -Ec '^ +[0-9]+ +[0-9]{4}-' "$T/h")
        [ "$steps" = "$rows" ] || bad_reads=$((bad_reads + 1))
        reads=$((reads + 1))
    elif ! grep -q 'not in the store\|no store there' "$T/herr"; then
        cat "$T/herr"
        bad_reads=$((bad_reads + 1))
    fi
done
wait "$writer"

[ "$(cat "$T/status" 2>/dev/null)" = 0 ] && ok || fail "apply exit $(cat "$T/status" 2>/dev/null)"
[ "$(grep -c '^accepted' "$T/verdicts")" -eq "$deliveries" ] && ok ||
    fail "$(grep -c '^accepted' "$T/verdicts") of $deliveries accepted"
tr '\r' '\n' <"$T/terminal" | grep -q "^deliveries: $deliveries\$" && ok ||
    fail "no final progress line 'deliveries: $deliveries' on the terminal"
tr '\r' '\n' <"$T/terminal" | grep -q '^deliveries: 5000$' && ok ||
    fail "no progress line while applying"
[ "$reads" -gt 0 ] && ok || fail "the reader never read while the writer ran"
[ "$bad_reads" -eq 0 ] && ok || fail "$bad_reads inconsistent reads"
echo "reader: $reads histories read while $deliveries deliveries were applied"

# stats agree with the generator's count
"$Q" stats --json --config "$T/qgate.json" >"$T/stats.json" && ok || fail "stats"
for part in states events; do
    want=$(grep -o "\"$part\":{[^}]*}" "$T/expected.json")
    got=$(grep -o "\"$part\":{[^}]*}" "$T/stats.json")
    [ -n "$want" ] && [ "$want" = "$got" ] && ok ||
        fail "stats $part: $got, expected $want"
done
grep -q '"tickets":10000,' "$T/stats.json" && ok || fail "stats tickets"
"$Q" verify --config "$T/qgate.json" >"$T/verify" && ok || fail "verify"
grep -q '^10000 tickets verified' "$T/verify" && ok || fail "verify count"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
