#!/bin/sh
# diagram_test.sh SVG - the lifecycle diagram names every canonical state
# (not Ragel's state numbers) and marks the two final states.
set -u
svg=$1
failures=0
for s in new booked queued arrived serving served no_show moved cancelled \
    pharmacy_received pharmacy_dispensed paid visit_ended; do
    grep -q "<title>$s</title>" "$svg" || { echo "FAIL: no node $s"; failures=$((failures + 1)); }
done
grep -q '<title>serving&#45;&gt;served</title>' "$svg" || { echo "FAIL: no edge serving->served"; failures=$((failures + 1)); }
echo "$((14 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
