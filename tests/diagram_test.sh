#!/bin/sh
# diagram_test.sh SVG - the lifecycle diagram names every canonical state
# (not Ragel's state numbers) and marks the two final states; and it is
# laid out as the console's chart: the happy path in one line, left to
# right, and the states entered only by no_show, cancel and move in a row
# of their own under it.
set -u
svg=$1
failures=0
passed=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { passed=$((passed + 1)); }
for s in new booked queued arrived serving served no_show moved cancelled \
    pharmacy_received pharmacy_dispensed paid visit_ended; do
    if grep -q "<title>$s</title>" "$svg"; then pass; else fail "no node $s"; fi
done
if grep -q '<title>serving&#45;&gt;served</title>' "$svg"; then pass
else fail "no edge serving->served"; fi

# "state x y" of each node's name, from the text that follows its title.
places=$(awk '
    /<g id="node[0-9]+" class="node">/ { node = 1; next }
    node && /<title>/ { sub(/.*<title>/, ""); sub(/<\/title>.*/, ""); name = $0; next }
    node && /<text / {
        x = $0; sub(/.* x="/, "", x); sub(/".*/, "", x)
        y = $0; sub(/.* y="/, "", y); sub(/".*/, "", y)
        print name, x, y; node = 0
    }' "$svg")
at() { echo "$places" | awk -v s="$1" -v f="$2" '$1 == s { print $f }'; }

happy="new booked queued arrived serving served pharmacy_received \
pharmacy_dispensed paid visit_ended"
line_y=$(at new 3)
last_x=-1
for s in $happy; do
    x=$(at "$s" 2)
    y=$(at "$s" 3)
    if [ "$y" = "$line_y" ]; then pass; else fail "$s off the line ($y, not $line_y)"; fi
    if awk -v a="$last_x" -v b="$x" 'BEGIN { exit !(b > a) }'; then pass
    else fail "$s not right of the state before it ($x after $last_x)"; fi
    last_x=$x
done
side_y=$(at cancelled 3)
for s in cancelled no_show moved; do
    y=$(at "$s" 3)
    if [ "$y" = "$side_y" ]; then pass; else fail "$s off the side row ($y, not $side_y)"; fi
done
# SVG's y grows downwards: the side row is under the line.
if awk -v l="$line_y" -v s="$side_y" 'BEGIN { exit !(s > l) }'; then pass
else fail "the side row ($side_y) not under the line ($line_y)"; fi

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
