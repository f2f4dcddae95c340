#!/bin/sh
# reorder_test.sh QGATE GEN_DAY FIXTURES - days delivered out of order.
#
# 30 clinic days of 12 tickets each (tests/gen_day), each applied three
# times into stores of its own: in order; with a third of the deliveries
# sent up to 4 deliveries late (gen_day -r 33:4), under the default
# reorder window; and the same shuffled day with --reorder-window 0.
# Under the window every ticket must end as in order, with the same set of
# accepted steps, with no refusal and nothing left held, and every history
# must verify.  The strict run's losses are printed for comparison
# (docs/PERFORMANCE.md quotes them).  A second pass delays by seconds
# instead (gen_day -s 33:300: up to five minutes late).
set -u
Q=$1
GEN=$2
F=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"
S=qgate-development-secret
printf '{"durability": "nosync"}\n' >"$T/nosync.json"

# states LIST: "live-queue-id state records" per ticket, sorted.
states() {
    "$Q" list --json --limit 1000000 --db "$1" |
        sed 's/.*"live_queue_id":\([0-9]*\).*"state":"\([a-z_]*\)".*"records":\([0-9]*\).*/\1 \2 \3/' |
        sort
}
digests() {
    "$Q" export --db "$1" | grep -o '"digest":"[0-9a-f]*"' | sort
}

for mode in r s; do
    case $mode in
    r) how="-r 33:4" ;;
    s) how="-s 33:300" ;;
    esac
    wrong=0 refused=0 late=0 released=0 deliveries=0 tickets=0
    bad=""
    day=1
    while [ "$day" -le 30 ]; do
        d="$T/$mode$day"
        mkdir -p "$d"
        "$GEN" 12 "$day" $S "$d/expected" >"$d/in-order"
        "$GEN" $how 12 "$day" $S "$d/expected" >"$d/shuffled"
        "$Q" apply --config "$T/nosync.json" --db "$d/a" --secret-file "$F/secret" - <"$d/in-order" \
            >/dev/null 2>&1 || bad="$bad day $day in order;"
        "$Q" apply --config "$T/nosync.json" --db "$d/b" --secret-file "$F/secret" - <"$d/shuffled" \
            >"$d/b.out" 2>"$d/b.err" || bad="$bad day $day shuffled: exit $?;"
        "$Q" apply --config "$T/nosync.json" --db "$d/c" --reorder-window 0 --secret-file "$F/secret" \
            - <"$d/shuffled" >"$d/c.out" 2>&1
        states "$d/a" >"$d/a.states"
        states "$d/b" >"$d/b.states"
        states "$d/c" >"$d/c.states"
        cmp -s "$d/a.states" "$d/b.states" ||
            bad="$bad day $day: $(diff "$d/a.states" "$d/b.states" | grep -c '^>') tickets differ;"
        [ "$(digests "$d/a")" = "$(digests "$d/b")" ] ||
            bad="$bad day $day: accepted steps differ;"
        n=$(grep -c '^rejected' "$d/b.out")
        [ "$n" -eq 0 ] || bad="$bad day $day: $n refused;"
        grep -q '^still held' "$d/b.err" && bad="$bad day $day: held left;"
        "$Q" verify --db "$d/b" >/dev/null || bad="$bad day $day: verify;"
        # what judging on arrival costs the same day
        w=$(comm -23 "$d/a.states" "$d/c.states" | wc -l)
        wrong=$((wrong + w))
        refused=$((refused + $(grep -c '^rejected' "$d/c.out")))
        late=$((late + $(grep -c 'late: step' "$d/b.out")))
        r=$(sed -n 's/.*, \([0-9]*\) released from hold/\1/p' "$d/b.err")
        released=$((released + ${r:-0}))
        deliveries=$((deliveries + $(wc -l <"$d/shuffled")))
        tickets=$((tickets + 12))
        day=$((day + 1))
    done
    check "-$mode: every ticket as in order, none refused or held, all verify" \
        test -z "$bad"
    [ -z "$bad" ] || echo "  $bad"
    check "-$mode: the shuffle moved steps of the same ticket" test "$late" -gt 0 -o "$released" -gt 0
    echo "reorder -$mode: $tickets tickets, $deliveries deliveries; window 1200 s: 0 wrong, 0 refused, $late placed late, $released released; window 0: $wrong tickets wrong, $refused refused"
done

finish
