#!/bin/sh
# fhir_test.sh QGATE GEN_DAY FIXTURES VALIDATOR_SRC WORKDIR - qgate's FHIR
# R4 output checked by a real validator: FHIR.js (npm "fhir", pinned by
# tests/fhir/package-lock.json, installed into WORKDIR with npm ci) on
# every fixture visit in the three export forms and on one generated day;
# the walk-in visit's Encounter pinned by a golden file; the options'
# refusals.
set -u
Q=$1
GEN=$2
F=$3
V=$4
W=$5
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

# The validator, installed once per build folder from the lock file.
mkdir -p "$W"
if ! cmp -s "$V/package-lock.json" "$W/package-lock.json" ||
    [ ! -d "$W/node_modules/fhir" ]; then
    cp "$V/package.json" "$V/package-lock.json" "$W/" &&
        (cd "$W" && npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "FAIL: npm ci of the validator in $W"; exit 1; }
fi
cp "$V/validate.js" "$W/"
valid() { # a file of NDJSON: every line a valid R4 resource
    node "$W/validate.js" <"$1" >"$T/v.out" 2>&1 || { cat "$T/v.out"; return 1; }
}

db="$T/db"
for v in walk-in appointment no-show-cancelled; do
    "$Q" apply --db "$db" --secret-file "$F/secret" "$F/visits/$v"/*.json \
        >/dev/null || { echo "FAIL: apply $v"; exit 1; }
done

# The three forms, every fixture visit.
status 0 "$Q" export --db "$db" --format fhir-ndjson
cp "$T/out" "$T/resources"
check "fhir-ndjson: 4 resources (3 Encounters, 1 Appointment)" \
    test "$(grep -c '"resourceType":"Encounter"' "$T/resources")" -eq 3 -a \
    "$(grep -c '"resourceType":"Appointment"' "$T/resources")" -eq 1
check "fhir-ndjson: valid R4" valid "$T/resources"
status 0 "$Q" export --db "$db" --format fhir
cp "$T/out" "$T/bundle"
check "fhir: one collection Bundle of 4 entries" \
    test "$(jq -r '"\(.type) \(.entry | length)"' "$T/bundle")" = "collection 4"
check "fhir: valid R4" valid "$T/bundle"
status 0 "$Q" export --db "$db" --format fhir-bundles
cp "$T/out" "$T/bundles"
check "fhir-bundles: a Bundle a ticket" \
    test "$(jq -s 'map(.entry | length) | join(",")' "$T/bundles")" = '"1,2,1"'
check "fhir-bundles: valid R4" valid "$T/bundles"

# Golden: the walk-in visit's Encounter, id aside (it names the store).
"$Q" export --db "$db" --format fhir-ndjson --ticket 30001 \
    --fhir-system https://clinic.example/chup | jq -S 'del(.id)' >"$T/walk-in"
check "the walk-in Encounter is fixtures/fhir/walk-in-encounter.json" \
    diff -u "$F/fhir/walk-in-encounter.json" "$T/walk-in"
check "the Encounter's id is the store's id and the ticket" \
    test "$("$Q" export --db "$db" --format fhir-ndjson --ticket 30001 |
        jq -r .id)" = "$("$Q" stats --db "$db" --json | jq -r .store_id)-1"

# A named source's ids lie under the base: its live queue 30001 is not
# the default source's.
"$Q" apply --db "$db" --source clinic-a --secret-file "$F/secret" \
    "$F/visits/walk-in"/*.json >/dev/null || { echo "FAIL: apply --source"; exit 1; }
check "a named source's systems: <base>/<source>/<kind>" \
    test "$("$Q" export --db "$db" --source clinic-a --format fhir-ndjson \
        --ticket 30001 --fhir-system https://clinic.example/chup |
        jq -r '.identifier[1].system')" = \
    https://clinic.example/chup/clinic-a/live-queue
check "a named source's systems without a base: the store's own" \
    test "$("$Q" export --db "$db" --source clinic-a --format fhir-ndjson \
        --ticket 30001 | jq -r '.identifier[1].system')" = \
    "urn:qgate:$("$Q" stats --db "$db" --json | jq -r .store_id):clinic-a/live-queue"
check "--source picks the source's tickets" \
    test "$("$Q" export --db "$db" --source clinic-a --format fhir-ndjson |
        wc -l)" -eq 1

# --since/--until pick tickets with a step in the range, written whole.
status 0 "$Q" export --db "$db" --format fhir-ndjson \
    --since 2024-03-05T11:20:00+08:00 --until 2024-03-05T11:40:00+08:00
check "--since/--until: the tickets with a step inside, whole" \
    test "$(jq -r '"\(.resourceType) \(.statusHistory | length)"' "$T/out" |
        tr '\n' ' ')" = "Encounter 5 Appointment 0 "

# No ticket in the range: a Bundle with no entry (FHIR has no empty
# arrays), still valid.
status 0 "$Q" export --db "$db" --format fhir --since 2030-01-01
cp "$T/out" "$T/empty"
check "an empty range: a Bundle without entry" \
    test "$(cat "$T/empty")" = '{"resourceType":"Bundle","type":"collection"}'
check "an empty Bundle: valid R4" valid "$T/empty"

# Refusals name the value.
status 2 "$Q" export --db "$db" --format fhir --fhir-system 'https://x/a|b'
check "--fhir-system with | refused, naming it" \
    grep -q -- '--fhir-system "https://x/a|b"' "$T/err"
status 2 "$Q" export --db "$db" --format csv --ticket 30001
check "--ticket with csv refused" grep -q -- '--ticket goes with the fhir' "$T/err"
status 2 "$Q" export --db "$db" --format fhir --ticket 99999
check "--ticket of no ticket refused, naming it" grep -q 99999 "$T/err"

# A generated day: every ticket exports as valid resources.
"$GEN" 300 11 qgate-development-secret "$T/expected.json" >"$T/day.ndjson" ||
    { echo "FAIL: gen_day"; exit 1; }
printf '{"db": "%s/day", "durability": "nosync", "secret_file": "%s/secret"}\n' \
    "$T" "$F" >"$T/qgate.json"
"$Q" apply --config "$T/qgate.json" - <"$T/day.ndjson" >/dev/null 2>&1 ||
    { echo "FAIL: apply of the generated day"; exit 1; }
status 0 "$Q" export --db "$T/day" --format fhir-ndjson
cp "$T/out" "$T/day.fhir"
check "a generated day: an Encounter a ticket" \
    test "$(grep -c '"resourceType":"Encounter"' "$T/day.fhir")" -eq \
    "$("$Q" stats --db "$T/day" --json | jq .tickets)"
check "a generated day: valid R4" valid "$T/day.fhir"
finish
