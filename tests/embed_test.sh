#!/bin/sh
# embed_test.sh SOURCE_DIR BUILD_DIR - libqgate as a program that embeds it
# sees it: installed into a prefix, found with pkg-config and with CMake's
# find_package, linked shared and static, its header alone in C and C++,
# its exports, and the two programs of docs/examples run against a store.
#
# Needs cc, c++, cmake, pkg-config, nm and readelf (Debian: gcc, g++,
# cmake, pkg-config, binutils).
set -u
SRC=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
F="$SRC/fixtures"
EX="$SRC/docs/examples"
QGATE="$BUILD/qgate"
CC=${CC:-cc}
CXX=${CXX:-c++}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P="$T/prefix"
. "$(dirname "$0")/testlib.sh"

has() { # file, then a line it must hold (a basic regular expression)
    grep -q "$2" "$1" || {
        echo "  no line matching '$2' in:"
        sed 's/^/    /' "$1"
        return 1
    }
}

# A sanitizer build's library needs its runtime in whatever links it.
STRICT="-Wall -Wextra -pedantic -Werror"
SAN=
if grep -q '^QG_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    SAN="-fsanitize=address,undefined"
fi

# --- installation ---------------------------------------------------------
check "cmake --install into a prefix" \
    status 0 cmake --install "$BUILD" --prefix "$P"
for h in qgate.h qgate_lifecycle.h; do
    check "installs include/$h" test -f "$P/include/$h"
done
PC=$(find "$P" -path '*/pkgconfig/qgate.pc' | head -n 1)
check "installs lib*/pkgconfig/qgate.pc" \
    sh -c "case '$PC' in '$P'/lib*/pkgconfig/qgate.pc) ;; *) exit 1 ;; esac"
LIB=$(dirname "$(dirname "${PC:-$P/lib/pkgconfig/qgate.pc}")")
export PKG_CONFIG_PATH="$LIB/pkgconfig"
check "installs the static library" test -f "$LIB/libqgate.a"
check "installs the shared library's link name" test -L "$LIB/libqgate.so"
SONAME=$(readelf -d "$LIB/libqgate.so" 2>/dev/null |
    sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "the shared library has a SONAME" test -n "$SONAME"
check "installs the SONAME symlink $SONAME" test -L "$LIB/${SONAME:-none}"
check "the SONAME symlink leads to the library" test -f "$LIB/${SONAME:-none}"
# Before 1.0 a minor version may break the ABI: the SONAME names it.
HVER=$(sed -n 's/^#define QG_VERSION_STRING "\([0-9.]*\)".*/\1/p' "$SRC/include/qgate.h")
case $HVER in
0.*) WANT="libqgate.so.${HVER%.*}" ;;
*) WANT="libqgate.so.${HVER%%.*}" ;;
esac
check "the SONAME is $WANT (header $HVER)" test "$SONAME" = "$WANT"
check "installs lib*/cmake/qgate/qgateConfig.cmake" \
    test -f "$LIB/cmake/qgate/qgateConfig.cmake"

# --- exports: exactly the functions the header declares --------------------
# With C_VISIBILITY_PRESET hidden, the dynamic symbol table defines only
# what QG_EXTERN marks: no _init, _fini or compiler helpers show up in
# `nm -D --defined-only` (they are local), so no exception is needed.
nm -D --defined-only "$LIB/libqgate.so" | awk '{ print $NF }' |
    sort >"$T/exported"
check "the shared library exports symbols" test -s "$T/exported"
check "every exported symbol starts with qg_" \
    sh -c "! grep -v '^qg_' '$T/exported'"
sed -n 's/^QG_EXTERN [^(]*[ *]\(qg_[a-z0-9_]*\)(.*/\1/p' \
    "$P/include/qgate.h" | sort >"$T/declared"
check "the header declares functions" test -s "$T/declared"
check "exports are exactly the header's functions" \
    diff "$T/declared" "$T/exported"

# Doxygen does not warn about an undocumented enumerator, so the apidocs
# build would not notice a new code or reason without its @var.
awk '/^#define QG_ERRNO_MAP/ { p = "QG_" }
     /^#define QG_REASON_MAP/ { p = "QG_R_" }
     /^$/ { p = "" }
     p != "" && /XX\(/ {
         s = $0; sub(/.*XX\(/, "", s); sub(/,.*/, "", s); print p s
     }' \
    "$P/include/qgate.h" >"$T/enumerators"
check "the header's X-macro tables list codes and reasons" \
    test "$(wc -l <"$T/enumerators")" -gt 20
for name in $(cat "$T/enumerators"); do
    check "$name is documented with @var" \
        grep -q "^ \* @var $name\$" "$P/include/qgate.h"
done

# --- the header alone ------------------------------------------------------
printf '#include <qgate.h>\n' >"$T/alone.c"
check "qgate.h compiles alone as C11" \
    status 0 "$CC" -std=c11 $STRICT -fsyntax-only -I"$P/include" "$T/alone.c"
cat >"$T/cxx.cc" <<'EOF'
#include <qgate.h>

#include <cstdio>
#include <cstring>

int
main()
{
    if (std::strcmp(qg_version(), QG_VERSION_STRING) != 0)
        return 1;
    std::printf("%s\n", qg_version());
    return 0;
}
EOF
check "qgate.h compiles and links as C++11" \
    status 0 "$CXX" -std=c++11 $STRICT $SAN -I"$P/include" -o "$T/cxx" \
    "$T/cxx.cc" -L"$LIB" -lqgate
check "the C++ program runs" \
    status 0 env LD_LIBRARY_PATH="$LIB" "$T/cxx"
check "qg_version() is MAJOR.MINOR.PATCH" \
    has "$T/out" '^[0-9]*\.[0-9]*\.[0-9]*$'

# --- building the examples -------------------------------------------------
CFLAGS_QG=$(pkg-config --cflags qgate)
LIBS_QG=$(pkg-config --libs qgate)
check "pkg-config knows qgate" test -n "$LIBS_QG"
mkdir -p "$T/pc" "$T/static"
# -lqgate would pick the shared library where both are installed; name
# the archive instead, and take its dependencies from --static.
LIBS_STATIC=$(pkg-config --static --libs qgate |
    sed 's/-lqgate/-l:libqgate.a/')
for prog in validate timeline; do
    # $CFLAGS_QG and the like are word-split on purpose
    check "$prog builds with pkg-config" \
        status 0 "$CC" -std=c11 $STRICT $SAN $CFLAGS_QG \
        -o "$T/pc/$prog" "$EX/$prog.c" $LIBS_QG
    check "$prog links statically with pkg-config --static" \
        status 0 "$CC" -std=c11 $STRICT $SAN $CFLAGS_QG \
        -o "$T/static/$prog" "$EX/$prog.c" $LIBS_STATIC
    check "the static $prog does not need libqgate.so" \
        sh -c "! readelf -d '$T/static/$prog' | grep -q 'NEEDED.*libqgate'"
done
check "the examples configure with find_package(qgate)" \
    status 0 cmake -S "$EX" -B "$T/cmake" -DCMAKE_PREFIX_PATH="$P" \
    "-DCMAKE_C_FLAGS=$STRICT $SAN"
check "the examples build with qgate::qgate" \
    status 0 cmake --build "$T/cmake"

# --- running them ----------------------------------------------------------
STEP='[a-z_]* [a-z_]* -> [a-z_]* [0-9]*' # event from -> to timestamp

run_examples() { # how they were built, their folder, then env settings
    how=$1
    bin=$2
    shift 2
    db="$T/db-$how"
    check "$how: validate of a first step exits 0" \
        status 0 env "$@" "$bin/validate" "$db" "$F/secret" \
        "$F/visits/walk-in/01-join-live-queue.json"
    check "$how: validate says accepted" has "$T/out" '^verdict: accepted$'
    check "$how: validate names the event" has "$T/out" '^event: join$'
    check "$how: validate shows new -> queued" \
        sh -c "grep -qx 'from: new' '$T/out' && grep -qx 'to: queued' '$T/out'"
    check "$how: validate lists the next events" \
        has "$T/out" '^allowed: arrive alert serve no_show move cancel update$'
    check "$how: a dry run writes nothing" \
        status 1 env "$@" "$bin/timeline" "$db" 30001

    check "$how: qgate apply of a first step" \
        status 0 "$QGATE" apply --db "$db" --secret-file "$F/secret" \
        "$F/illegal/served-before-arrive/01-join-live-queue.json"
    check "$how: validate of an illegal step exits 1" \
        status 1 env "$@" "$bin/validate" "$db" "$F/secret" \
        "$F/illegal/served-before-arrive/02-served.json"
    check "$how: validate says rejected" has "$T/out" '^verdict: rejected$'
    check "$how: validate gives the code" \
        has "$T/out" '^code: illegal_transition$'

    check "$how: qgate apply of the walk-in visit" \
        status 0 "$QGATE" apply --db "$db" --secret-file "$F/secret" \
        "$F"/visits/walk-in/*.json
    check "$how: timeline exits 0" \
        status 0 env "$@" "$bin/timeline" "$db" 30001
    check "$how: timeline gives the state" \
        has "$T/out" '^ticket [0-9]* (live queue 30001): visit_ended, 9 steps$'
    check "$how: timeline lists 9 steps" \
        test "$(grep -c "^[0-9]* $STEP\$" "$T/out")" -eq 9
    check "$how: the first step is join" \
        has "$T/out" '^1 join new -> queued 1709600400000$'
    check "$how: the last step ends the visit" \
        sh -c "tail -n 1 '$T/out' | grep -q '^9 end_visit paid -> visit_ended '"
    check "$how: timeline of an unknown ticket exits 1" \
        status 1 env "$@" "$bin/timeline" "$db" 99999
    check "$how: timeline of no store exits 2" \
        status 2 env "$@" "$bin/timeline" "$T/no-store" 30001
    check "$how: validate of a missing file exits 2" \
        status 2 env "$@" "$bin/validate" "$db" "$F/secret" "$T/missing.json"
    check "$how: the message names the file" has "$T/err" "$T/missing.json"
}

run_examples pkg-config "$T/pc" LD_LIBRARY_PATH="$LIB"
run_examples cmake "$T/cmake" LD_LIBRARY_PATH="$LIB"
run_examples static "$T/static" LD_LIBRARY_PATH=

finish
