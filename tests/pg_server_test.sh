#!/bin/sh
# pg_server_test.sh - tests/pg_server.sh as the tests use it: start gives
# a URI psql connects to over the socket in DIR, a row committed there
# survives a restart and a crash (kill), stop leaves no server and no
# postmaster.pid and may be repeated, and a server whose owner dies is
# stopped and its DIR removed.  As root, the server runs as nobody; and the
# script works for a user that is not root as well.
#
# Exit 77 (skipped) without the server binaries, unless CI is set: CI
# installs them (.ci/deps-test), so there their absence fails.
set -u
PGS=$(cd "$(dirname "$0")" && pwd)/pg_server.sh
. "$(dirname "$0")/testlib.sh"
BIN=$(pg_bindir "$PGS") || exit $?
T=$(mktemp -d /tmp/qgate-pg-test-XXXXXX)
# The server's user (nobody, as root) must reach P inside T.
chmod 711 "$T"
P=$T/pg
trap 'sh "$PGS" stop "$P" >/dev/null 2>&1; kill $OWNER 2>/dev/null; rm -rf "$T"' EXIT
OWNER=

psql_() { # sql...: psql at the URI, unaligned, no .psqlrc
    "$BIN/psql" -X -q -tA -v ON_ERROR_STOP=1 "$URI" "$@"
}
alive() { # pid: a process runs, and is no zombie
    kill -0 "$1" 2>/dev/null || return 1
    case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) in
    Z*) return 1 ;;
    esac
}
gone() { # pid, seconds: the process is gone within that time
    i=0
    while alive "$1" && [ $i -lt $(($2 * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ! alive "$1"
}
is() { # file, expected contents
    [ "$(cat "$1")" = "$2" ] || {
        echo "  $1 holds '$(cat "$1")', expected '$2'"
        return 1
    }
}

URI="postgresql:///qgate?host=$P&user=qgate"
check "start exits 0" status 0 sh "$PGS" start "$P"
check "start prints the URI" is "$T/out" "$URI"
PID=$(cat "$P/pid" 2>/dev/null)
check "start writes the postmaster's pid" alive "$PID"
if [ "$(id -u)" -eq 0 ]; then
    check "as root, the server runs as nobody" \
        test "$(stat -c %U "/proc/$PID")" = nobody
fi
check "psql connects over the socket" status 0 psql_ -c 'SELECT current_user'
check "as the user qgate" is "$T/out" qgate
check "to the database qgate" status 0 psql_ -c 'SELECT current_database()'
check "which is qgate" is "$T/out" qgate
check "no TCP: listen_addresses is empty" status 0 psql_ -c 'SHOW listen_addresses'
check "so it is empty" is "$T/out" ""
check "creates a table and inserts a row" status 0 psql_ \
    -c 'CREATE TABLE t (k int PRIMARY KEY, v text)' \
    -c "INSERT INTO t VALUES (1, 'kept')"
check "selects it" status 0 psql_ -c 'SELECT v FROM t WHERE k = 1'
check "which reads kept" is "$T/out" kept
check "a second start on a running server exits 1" status 1 sh "$PGS" start "$P"
check "saying so" grep -q "a server is already running there" "$T/err"

check "restart exits 0" status 0 sh "$PGS" restart "$P"
check "restart prints the URI" is "$T/out" "$URI"
check "the old server is gone" gone "$PID" 5
PID=$(cat "$P/pid" 2>/dev/null)
check "a new one runs" alive "$PID"
check "the row survived the restart" status 0 psql_ -c 'SELECT v FROM t WHERE k = 1'
check "still reading kept" is "$T/out" kept

check "kill exits 0" status 0 sh "$PGS" kill "$P"
check "the server is gone within 10 s" gone "$PID" 10
check "psql cannot connect" status 2 psql_ -c 'SELECT 1'
check "restart after the kill" status 0 sh "$PGS" restart "$P"
check "the row survived the crash" status 0 psql_ -c 'SELECT v FROM t WHERE k = 1'
check "reading kept" is "$T/out" kept
PID=$(cat "$P/pid" 2>/dev/null)

check "stop exits 0" status 0 sh "$PGS" stop "$P"
check "the server is gone" gone "$PID" 0
check "no postmaster.pid is left" test ! -e "$P/data/postmaster.pid"
check "no socket is left" test ! -e "$P/.s.PGSQL.5432"
check "psql cannot connect" status 2 psql_ -c 'SELECT 1'
check "stop again exits 0" status 0 sh "$PGS" stop "$P"
check "stop on no directory exits 0" status 0 sh "$PGS" stop "$T/none"
check "kill on no directory exits 0" status 0 sh "$PGS" kill "$T/none"

# A start after a stop finds the cluster and the database again.
check "start again on the stopped cluster" status 0 sh "$PGS" start "$P"
check "the row is there" status 0 psql_ -c 'SELECT v FROM t WHERE k = 1'
check "reading kept" is "$T/out" kept
sh "$PGS" stop "$P"

# The watchdog: a server whose owner dies is stopped, its DIR removed.
sleep 300 &
OWNER=$!
W=$T/owned
check "start with an owner" status 0 sh "$PGS" start "$W" "$OWNER"
PID=$(cat "$W/pid" 2>/dev/null)
kill "$OWNER"
wait "$OWNER" 2>/dev/null
check "the owner's death stops the server within 10 s" gone "$PID" 10
i=0
while [ -e "$W" ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
check "and removes its directory" test ! -e "$W"

# Bad input is named.
check "a directory name with a space exits 1" status 1 sh "$PGS" start "$T/a b"
check "naming it" grep -q "$T/a b: only letters, digits" "$T/err"
check "an unknown command exits 1" status 1 sh "$PGS" frob "$P"
check "naming it" grep -q "frob: not a command" "$T/err"
check "bindir names the binaries' directory" status 0 sh "$PGS" bindir
check "where initdb is" test -x "$(cat "$T/out")/initdb"

# As a user that is not root, too (when root can run the script as nobody).
if [ "$(id -u)" -eq 0 ] && setpriv --reuid=nobody --regid=nogroup \
    --clear-groups -- test -r "$PGS"; then
    N=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
        mktemp -d /tmp/qgate-pg-nobody-XXXXXX)
    check "as nobody: start" status 0 setpriv --reuid=nobody \
        --regid=nogroup --clear-groups -- sh "$PGS" start "$N"
    URI=$(cat "$T/out")
    check "as nobody: psql connects" status 0 psql_ -c 'SELECT 1'
    check "as nobody: stop" status 0 setpriv --reuid=nobody \
        --regid=nogroup --clear-groups -- sh "$PGS" stop "$N"
    check "as nobody: no postmaster.pid is left" \
        test ! -e "$N/data/postmaster.pid"
    rm -rf "$N"
fi

finish
