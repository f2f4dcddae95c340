#!/bin/sh
# pg_server.sh COMMAND DIR - a throwaway PostgreSQL server for the tests,
# its cluster in DIR/data and its socket in DIR (no TCP port).
#
#   start DIR [OWNER_PID]  initdb (first time only), start, wait until it
#                          accepts connections, create the database qgate,
#                          and print its URI on stdout:
#                            postgresql:///qgate?host=DIR&user=qgate
#                          With OWNER_PID, a watchdog stops the server and
#                          removes DIR once that process has gone, so that
#                          a test that crashes leaves no server behind.
#   stop DIR               immediate shutdown, waited for; the watchdog goes
#                          too.  A DIR with no server (or no DIR) is fine.
#   restart DIR            fast shutdown, then start again; prints the URI.
#   kill DIR               immediate shutdown, not waited for: the server
#                          drops every connection at once, as in an outage.
#   standby DIR PRIMARY [OWNER_PID]
#                          a streaming-replication standby of the server in
#                          PRIMARY (pg_basebackup -R), started read-only with
#                          its socket in DIR; prints its URI; the watchdog
#                          as for start.
#   promote DIR            promotes the standby in DIR to a primary, waited
#                          for.
#   bindir                 print where initdb, pg_ctl, postgres and psql
#                          are; exit 1 if they are not all in one place.
#
# QG_PG_FSYNC=on starts the server with fsync on (the benchmarks: a
# commit then waits for the disk, as in production); the tests' default is
# off.
#
# The server binaries are looked for on PATH, then in
# /usr/lib/postgresql/*/bin, the newest version first (Debian's postgresql
# package puts them there, off PATH).  initdb refuses to run as root, so
# as root the server runs as nobody (setpriv from util-linux), and DIR is
# handed to nobody: it must lie below directories nobody can search, as
# /tmp is.  DIR is written into a URI and a server option unquoted, so it
# may hold only letters, digits and / . _ -; and a socket path is at most
# 107 bytes, so it must be short.
set -eu

PROG=pg_server.sh
die() {
    echo "$PROG: $*" >&2
    exit 1
}

# Whether directory $1 has all the programs this script runs.
complete() {
    for p in initdb pg_ctl postgres psql; do
        [ -x "$1/$p" ] || return 1
    done
}

# The directory of initdb on PATH (through any symbolic link, as
# /usr/local/bin/initdb may be), else the newest /usr/lib/postgresql/*/bin.
find_bin() {
    if p=$(command -v initdb 2>/dev/null); then
        d=$(dirname "$(readlink -f "$p")")
        complete "$d" && { echo "$d"; return 0; }
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        complete "$d" && { echo "$d"; return 0; }
    done
    return 1
}

# Runs a command as the server's user: nobody when we are root, else us.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
    else
        "$@"
    fi
}

[ $# -ge 1 ] || die "usage: $PROG start|stop|restart|kill|promote DIR, $PROG standby DIR PRIMARY, or $PROG bindir"
CMD=$1
if [ "$CMD" = bindir ]; then
    find_bin || die "no PostgreSQL server programs (initdb, pg_ctl, postgres, psql) on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
    exit 0
fi
[ $# -ge 2 ] || die "$CMD: no DIR"
DIR=$2
case $DIR in
/*) ;;
*) DIR=$(pwd)/$DIR ;;
esac
case $DIR in
*[!A-Za-z0-9/._-]*) die "$DIR: only letters, digits and / . _ - may be in the directory's name" ;;
esac
[ ${#DIR} -le 90 ] || die "$DIR: too long for a socket path (at most 90 bytes here)"
DATA=$DIR/data

BIN=$(find_bin) || die "no PostgreSQL server programs (initdb, pg_ctl, postgres, psql) on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"

# The server's user may not be allowed into the caller's working
# directory, and initdb and postgres complain when they cannot return to it.
cd /

# Whether process $1 runs.  A zombie does not: an init that is slow to reap
# (as in some containers) must not make a stopped server look alive.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) in
    Z*) return 1 ;;
    esac
}

server_pid() { # the postmaster's pid, if a postmaster.pid names a live one
    [ -f "$DATA/postmaster.pid" ] || return 1
    pid=$(head -1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" && echo "$pid"
}

show_log() {
    [ -f "$DIR/log" ] && tail -20 "$DIR/log" | sed "s/^/$PROG: log: /" >&2
    return 0
}

uri() {
    echo "postgresql:///qgate?host=$DIR&user=qgate"
}

server_start() {
    if [ ! -d "$DATA" ]; then
        mkdir -p "$DIR"
        if [ "$(id -u)" -eq 0 ]; then
            chown nobody:nogroup "$DIR"
            as_pg test -w "$DIR" ||
                die "$DIR: nobody cannot write there (as root the server runs as nobody; use a directory under /tmp)"
        fi
        chmod 700 "$DIR"
        as_pg "$BIN/initdb" -D "$DATA" -A trust -U qgate -E UTF8 --locale=C --no-sync \
            >"$DIR/initdb.log" 2>&1 || {
            sed "s/^/$PROG: initdb: /" "$DIR/initdb.log" >&2
            die "$DIR: initdb failed"
        }
    fi
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/log" -w -t 60 -s \
        -o "-k $DIR -c listen_addresses='' -c fsync=${QG_PG_FSYNC:-off}" start >&2 || {
        show_log
        die "$DIR: the server did not start"
    }
    server_pid >"$DIR/pid" || die "$DIR: the server started but postmaster.pid names no live process"
    # The database the tests use; a second start finds it there.
    if ! "$BIN/psql" -X -q -h "$DIR" -U qgate -d postgres -tA \
        -c "SELECT 1 FROM pg_database WHERE datname = 'qgate'" | grep -q 1; then
        "$BIN/psql" -X -q -h "$DIR" -U qgate -d postgres \
            -c 'CREATE DATABASE qgate' >&2 || die "$DIR: cannot create the database qgate"
    fi
}

# Waits up to 30 s for the postmaster in DIR/pid to be gone; then kills it.
server_gone() {
    [ -f "$DIR/pid" ] || return 0
    pid=$(cat "$DIR/pid")
    i=0
    while alive "$pid" && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$pid"; then
        echo "$PROG: $DIR: server $pid still there after 30 s; killing it" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/pid"
}

server_stop() { # mode: immediate or fast
    if server_pid >/dev/null; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m "$1" -w -t 30 -s stop >&2 || show_log
    fi
    server_gone
}

watchdog_stop() {
    [ -f "$DIR/watchdog" ] || return 0
    kill "$(cat "$DIR/watchdog")" 2>/dev/null || true
    rm -f "$DIR/watchdog"
}

# Starts the watchdog of DIR's server for process $1, if given.
watchdog_start() {
    OWNER=${1:-}
    case $OWNER in
    *[!0-9]*) die "$OWNER: not a process id" ;;
    esac
    if [ -n "$OWNER" ] && [ ! -f "$DIR/watchdog" ]; then
        # In a session of its own, so that killing the test's process group
        # does not take the watchdog with it; its output goes nowhere, so
        # that whoever reads ours sees the end of it now.
        setsid sh -c '
            while kill -0 "$1" 2>/dev/null && [ -d "$2/data" ]; do
                case $(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null) in Z*) break ;; esac
                sleep 1
            done
            if [ -d "$2/data" ]; then
                rm -f "$2/watchdog"
                sh "$3" stop "$2"
                rm -rf "$2"
            fi
        ' watchdog "$OWNER" "$DIR" "$(readlink -f "$0")" \
            </dev/null >/dev/null 2>&1 &
        echo $! >"$DIR/watchdog"
    fi
}

case $CMD in
start)
    [ -z "$(server_pid)" ] || die "$DIR: a server is already running there"
    server_start
    watchdog_start "${3:-}"
    uri
    ;;
standby)
    [ $# -ge 3 ] || die "standby: no PRIMARY"
    PRIMARY=$3
    [ -x "$BIN/pg_basebackup" ] || die "no pg_basebackup in $BIN"
    [ ! -d "$DATA" ] || die "$DIR: a cluster is already there"
    mkdir -p "$DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown nobody:nogroup "$DIR"
    fi
    chmod 700 "$DIR"
    # -R writes primary_conninfo and standby.signal: it starts as a
    # standby that streams from PRIMARY's socket.
    as_pg "$BIN/pg_basebackup" -h "$PRIMARY" -U qgate -D "$DATA" -R \
        -X stream --no-sync >"$DIR/basebackup.log" 2>&1 || {
        sed "s/^/$PROG: pg_basebackup: /" "$DIR/basebackup.log" >&2
        die "$DIR: pg_basebackup from $PRIMARY failed"
    }
    server_start
    watchdog_start "${4:-}"
    uri
    ;;
promote)
    server_pid >/dev/null || die "$DIR: no server there to promote"
    as_pg "$BIN/pg_ctl" -D "$DATA" -w -t 60 -s promote >&2 || {
        show_log
        die "$DIR: the standby was not promoted"
    }
    ;;
stop)
    [ -d "$DIR" ] || exit 0
    watchdog_stop
    server_stop immediate
    ;;
restart)
    [ -d "$DATA" ] || die "$DIR: no server there to restart"
    server_stop fast
    server_start
    uri
    ;;
kill)
    [ -d "$DIR" ] || exit 0
    if server_pid >/dev/null; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -W -s stop >&2 || true
    fi
    ;;
*)
    die "$CMD: not a command (start, stop, restart, kill, standby, promote, bindir)"
    ;;
esac
