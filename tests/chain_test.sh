#!/bin/sh
# chain_test.sh QGATE TAMPER FIXTURES - the hash chain as an auditor uses
# it: a store altered behind qgate's back (TAMPER writes the LMDB file with
# liblmdb alone), qgate verify naming the record and the kind of break,
# qgate seal and verify --sealed, and the changes qgate makes itself
# (late steps, held deliveries, resolutions, purge) leaving it intact.
set -u
Q=$1
TAMPER=$2
F=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

# A store of every fixture visit (tickets 1 appointment, 2 no-show, 3
# walk-in lq:30001) and refusals 1.. from the illegal fixtures.
fresh() {
    rm -rf "$1"
    for v in appointment no-show-cancelled walk-in; do
        "$Q" apply --db "$1" --secret-file "$F/secret" "$F/visits/$v/"*.json
    done >/dev/null 2>&1
    "$Q" apply --reorder-window 0 --db "$1" --secret-file "$F/secret" \
        "$F"/illegal/*/*.json >/dev/null 2>&1
    true
}

DB="$T/db"
fresh "$DB"
check "a store qgate wrote verifies" status 0 "$Q" verify --db "$DB"
check "verify says the chain holds" grep -q '^chain: [0-9]* entries intact$' "$T/out"
check "the walk-in is ticket 3" \
    sh -c "'$Q' show --db '$DB' 30001 | grep -q '^ticket 3 (lq:30001)'"

# The table: what tamper does, then what verify must say.  Each row on a
# fresh store; verify exits 1.
while IFS='|' read -r what expect; do
    [ -n "$what" ] || continue
    fresh "$DB"
    # shellcheck disable=SC2086
    "$TAMPER" "$DB" $what || { check "tamper $what" false; continue; }
    check "tamper $what: verify exits 1" status 1 "$Q" verify --db "$DB"
    check "tamper $what: verify says \"$expect\"" grep -q "$expect" "$T/out"
    check "tamper $what: --json names the break" \
        sh -c "'$Q' verify --json --db '$DB' | grep -q '\"intact\":false,\"break\":\"'"
done <<'TABLE'
body 3 4|^chain: step 4 of ticket 3 changed: its content no longer hashes
state 3 2|^chain: step 2 of ticket 3 changed: its content no longer hashes
refusal 1|^chain: refusal 1 .*changed: its content no longer hashes
delete 3|^chain: step 1 of ticket 3 removed: gone from the store
swap 3 2 5|^chain: step 2 of ticket 3 reordered: it holds what chain entry [0-9]* gave to step 5
entry 5|^chain: chain entry 5 changed: its hash does not hold
swap-entries 5 6|^chain: chain entry 5 reordered: its hash holds after entry 6, not after entry 4
TABLE

# The legality check still names a state flipped (the chain's line comes
# after it).
fresh "$DB"
"$TAMPER" "$DB" state 3 9
check "a flipped last state fails the legality check too" \
    sh -c "'$Q' verify --db '$DB' | grep -q '^ticket 3 (lq:30001) step 9: the current machine'"

# --- seal ----------------------------------------------------------------
fresh "$DB"
check "seal exits 0" status 0 "$Q" seal --db "$DB"
check "seal prints the head" \
    grep -Eq '^qgate-seal/1 store=[0-9a-f]{32} records=[0-9]+ time=[0-9T:-]+Z sha256=[0-9a-f]{64}$' "$T/out"
cp "$T/out" "$T/head"
check "verify --sealed holds on the same store" \
    status 0 "$Q" verify --db "$DB" --sealed "$(cat "$T/head")"
check "verify --sealed says so" grep -q 'the sealed head ([0-9]* entries) holds' "$T/out"
check "verify --sealed @FILE reads the head from a file" \
    status 0 "$Q" verify --db "$DB" --sealed "@$T/head"
"$Q" apply --db "$DB" --no-verify "$F"/chup/*.json >/dev/null 2>&1
check "the head still holds after more deliveries" \
    status 0 "$Q" verify --db "$DB" --sealed "@$T/head"

# Someone edits a body and recomputes the whole chain: verify alone cannot
# tell, the head sealed before can.
"$TAMPER" "$DB" body 3 4
"$TAMPER" "$DB" unchain
check "a writable open computes the chain again" status 0 "$Q" seal --db "$DB"
check "and says it migrated" grep -q "a store from before the hash chain: chained its [0-9]* records" "$T/err"
check "the rewritten chain verifies by itself" status 0 "$Q" verify --db "$DB"
check "the head sealed before the edit fails" \
    status 1 "$Q" verify --db "$DB" --sealed "@$T/head"
check "and says the chain was rewritten" \
    grep -q "^chain: chain entry [0-9]* unsealed: the sealed head's hash does not hold" "$T/out"
check "a head of another store is refused" \
    sh -c "fresh() { :; }; '$Q' verify --db '$DB' --sealed \"\$(sed 's/store=[0-9a-f]*/store=00000000000000000000000000000000/' '$T/head')\" | grep -q 'sealed for store 0000'"

# --- signed heads ----------------------------------------------------------
if openssl genpkey -algorithm ed25519 -out "$T/key.pem" 2>/dev/null; then
    openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem"
    openssl genpkey -algorithm ed25519 -out "$T/other.pem" 2>/dev/null
    openssl pkey -in "$T/other.pem" -pubout -out "$T/otherpub.pem"
    fresh "$DB"
    check "seal --key signs" status 0 "$Q" seal --db "$DB" --key "$T/key.pem"
    check "the signed head ends with its signature" \
        grep -Eq ' sha256=[0-9a-f]{64} ed25519=[A-Za-z0-9+/]{86}==$' "$T/out"
    cp "$T/out" "$T/signed"
    check "verify --sealed --pubkey holds" \
        status 0 "$Q" verify --db "$DB" --sealed "@$T/signed" --pubkey "$T/pub.pem"
    check "and says signed" grep -q 'entries, signed) holds' "$T/out"
    sed 's/records=\([0-9]*\)/records=1\1/' "$T/signed" >"$T/forged"
    check "a head altered after signing exits 2" \
        status 2 "$Q" verify --db "$DB" --sealed "@$T/forged" --pubkey "$T/pub.pem"
    check "and says the signature does not verify" \
        grep -q -- "--sealed: the head's signature does not verify with $T/pub.pem" "$T/err"
    check "another key's signature exits 2" \
        status 2 "$Q" verify --db "$DB" --sealed "@$T/signed" --pubkey "$T/otherpub.pem"
    check "a signed head without --pubkey exits 2" \
        status 2 "$Q" verify --db "$DB" --sealed "@$T/signed"
    check "and asks for the key" grep -q 'the head is signed: give the public key' "$T/err"
    check "a missing key file exits 2" \
        status 2 "$Q" seal --db "$DB" --key "$T/nokey.pem"
    check "and names it" grep -q "seal: --key $T/nokey.pem: cannot be read" "$T/err"
    check "a public key to sign with exits 2" \
        status 2 "$Q" seal --db "$DB" --key "$T/pub.pem"
    check "and says what it is not" \
        grep -q "$T/pub.pem: not an Ed25519 private key in PEM" "$T/err"
else
    echo "openssl cannot make an Ed25519 key: signed heads not tested"
fi
check "a line that is no head exits 2" \
    status 2 "$Q" verify --db "$DB" --sealed "qgate-seal/1 records=5"
check "and shows the form" grep -q 'not a head of qgate seal' "$T/err"

# --- what qgate rewrites and deletes itself keeps the chain -------------
W="$F/visits/walk-in"
R="$T/reorder"
# served before its serving: held, then released (a drop and a step);
# the alert after the move: a late step, its followers rewritten
"$Q" apply --db "$R" --secret-file "$F/secret" "$W/01-join-live-queue.json" \
    "$W/03-move.json" "$W/05-served.json" "$W/04-serving.json" \
    "$W/02-alert.json" >/dev/null 2>&1
"$Q" apply --db "$R" --secret-file "$F/secret" \
    "$F/illegal/dispense-before-receive/"*.json >/dev/null 2>&1
"$Q" held --expire --db "$R" >/dev/null 2>&1
check "late steps, released and expired holds verify" status 0 "$Q" verify --db "$R"
check "history --hash shows a hash on each line" \
    sh -c "'$Q' history --hash --db '$R' 30001 | grep -Ec '  [0-9a-f]{64}( |$)' | grep -qx 5"
check "export gives each step's chain hash" \
    sh -c "'$Q' export --db '$R' | grep -c '\"chain_hash\":\"[0-9a-f]\{64\}\"}$' | grep -qx \$('$Q' export --db '$R' | wc -l)"
check "the hash of history and export agree" \
    sh -c "h=\$('$Q' history --hash --arrival --db '$R' 30001 | awk '\$1==1 {for(i=1;i<=NF;i++) if (length(\$i)==64) print \$i}'); '$Q' export --db '$R' | grep -q \"\\\"seq\\\":1,.*\\\"chain_hash\\\":\\\"\$h\\\"\""
check "export --format csv has the chain_hash column" \
    sh -c "'$Q' export --format csv --db '$R' | head -1 | grep -q ',digest,chain_hash$'"
check "history --hash --json is refused, pointing at export" \
    status 2 "$Q" history --hash --json --db "$R" 30001
sleep 1
check "purge keeps the chain" \
    sh -c "'$Q' purge --db '$R' --before '$(date -u +%Y-%m-%dT%H:%M:%SZ -d '+0 sec' 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)' >/dev/null && '$Q' verify --db '$R' >/dev/null"

# --- stores from before the chain -------------------------------------------
# 0.3's layout: everything but the chain's databases
fresh "$DB"
"$TAMPER" "$DB" unchain
check "a store from before the chain verifies read-only" status 0 "$Q" verify --db "$DB"
check "verify says it has no chain yet" grep -q '^no hash chain: the store was written before it' "$T/out"
check "history reads it read-only" status 0 "$Q" history --db "$DB" 30001
check "history --hash on it says why not" status 2 "$Q" history --hash --db "$DB" 30001
check "and why" grep -q 'no hash chain yet (a writable open computes it)' "$T/err"
check "verify --sealed on it exits 2" status 2 "$Q" verify --db "$DB" --sealed "@$T/head"
check "export reads it, hashes null" \
    sh -c "'$Q' export --db '$DB' | head -1 | grep -q '\"chain_hash\":null}$'"
check "its first writable open chains it" status 0 "$Q" seal --db "$DB"
check "and says so on stderr" grep -q "a store from before the hash chain: chained its" "$T/err"
check "then it verifies" status 0 "$Q" verify --db "$DB"
# the gate says it in its log
fresh "$DB"
"$TAMPER" "$DB" unchain
"$Q" serve --db "$DB" --listen 127.0.0.1:0 --secret-file "$F/secret" \
    --log "$T/gate.log" 2>/dev/null &
gate=$!
i=0
while ! grep -q '"listening"' "$T/gate.log" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -TERM $gate
wait $gate
check "the gate logs the migration" \
    grep -q '"msg":"store chained","records":[1-9][0-9]*,"why":"written before the hash chain"' "$T/gate.log"
check "and the store it left verifies" status 0 "$Q" verify --db "$DB"
# 0.1's (it cannot be opened read-only: it lacks 0.3's databases too)
O="$T/old"
mkdir "$O"
cp "$F/stores/0.1/data.mdb" "$O/"
chmod u+w "$O/data.mdb"
check "a 0.1 store's first writable open chains it" status 0 "$Q" seal --db "$O"
check "naming every record (14 steps, 2 refusals)" \
    grep -q "qgate: $O: a store from before the hash chain: chained its 16 records$" "$T/err"
check "the migrated store verifies" status 0 "$Q" verify --db "$O"
check "all 16 in the chain" grep -q "^chain: 16 entries intact$" "$T/out"
check "the next open says nothing" \
    sh -c "'$Q' seal --db '$O' 2>&1 >/dev/null | grep -c . | grep -qx 0"

finish
