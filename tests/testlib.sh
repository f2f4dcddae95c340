# testlib.sh - what the shell tests share; check and status need T (a
# scratch folder) set when they run.  Each script ends with `finish`.
failures=0
passes=0

check() { # description, then a command that must succeed
    desc=$1
    shift
    if "$@"; then
        passes=$((passes + 1))
    else
        echo "FAIL: $desc"
        failures=$((failures + 1))
    fi
}

status() { # expected exit code, command...; output in $T/out, $T/err
    want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    [ "$got" -eq "$want" ] || {
        echo "  exit $got, expected $want: $*"
        cat "$T/out" "$T/err"
        return 1
    }
}

# pg_bindir PG_SERVER_SH: prints where the PostgreSQL server's programs
# are; without them the script exits 77 (skipped), or 1 when CI is set
# (CI installs them: .ci/deps-test).  In a command substitution its exit
# is the subshell's: BIN=$(pg_bindir "$PGS") || exit $?
pg_bindir() {
    sh "$1" bindir 2>/dev/null && return 0
    if [ -n "${CI:-}" ]; then
        echo "FAIL: CI is set and there are no PostgreSQL server binaries (.ci/deps-test installs postgresql)" >&2
        exit 1
    fi
    echo "SKIP: no PostgreSQL server binaries (initdb, pg_ctl); .ci/deps-test installs them" >&2
    exit 77
}

finish() { # the closing line ctest and CI read; fails if anything did
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ]
}
