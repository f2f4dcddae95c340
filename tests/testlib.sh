# testlib.sh - what the shell tests share; sourced after T (a scratch
# folder) is set.  Each script ends with `finish`.
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

finish() { # the closing line ctest and CI read; fails if anything did
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ]
}
