#!/bin/sh
# package_test.sh SOURCE_DIR BUILD_DIR - the Debian package as an operator
# gets it: `cpack -G DEB` from the build, then unpacked into a clean folder
# and looked at.  Its control data names a dependency for every library the
# binary and libqgate.so link, its maintainer script creates the service
# user, its unit names the binary where the package puts it and starts the
# gate as that user on the state directory, and the unpacked binary, man
# page, header and pkg-config file work.
#
# Needs cpack (cmake), dpkg-deb and dpkg (Debian's own), readelf
# (binutils), cc and pkg-config.  systemd-analyze checks the unit where
# systemd is installed.
set -u
SRC=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/testlib.sh"

has() { # file, then a line it must hold (a basic regular expression)
    grep -q "$2" "$1" || {
        echo "  no line matching '$2' in $1:"
        sed 's/^/    /' "$1"
        return 1
    }
}

check "cpack -G DEB builds the package" \
    status 0 cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$T/pkg"
DEB=$(ls "$T"/pkg/qgate_*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { echo "FAIL: no qgate_*.deb in $T/pkg"; ls -R "$T/pkg"; exit 1; }
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
case $DEB in
*/qgate_"$VERSION"_*.deb) passes=$((passes + 1)) ;;
*) echo "FAIL: package file $DEB is not qgate_${VERSION}_ARCH.deb"
   failures=$((failures + 1)) ;;
esac

dpkg-deb -f "$DEB" >"$T/control"
check "control: package qgate" has "$T/control" '^Package: qgate$'
check "control: version $VERSION" has "$T/control" "^Version: $VERSION\$"
check "control: a maintainer" has "$T/control" '^Maintainer: ..*<.*@.*>$'
check "control: adduser for the postinst" has "$T/control" '^Depends:.*adduser'

# --- a clean folder, the package's files in it ------------------------------
R="$T/root"
check "dpkg-deb -x unpacks it" status 0 dpkg-deb -x "$DEB" "$R"
BIN=$(find "$R" -path '*/bin/qgate' -type f | head -1)
SERVE=$(find "$R" -path '*/libexec/qgate/qgate-serve' -type f | head -1)
LIB=$(find "$R" -name 'libqgate.so.*.*' -type f | head -1)
UNIT=$(find "$R" -path '*/systemd/system/qgate.service' | head -1)
PC=$(find "$R" -name qgate.pc | head -1)
for f in BIN SERVE LIB UNIT PC; do
    eval v=\$$f
    [ -n "$v" ] && passes=$((passes + 1)) || {
        echo "FAIL: the package has no $f"
        dpkg-deb -c "$DEB" | sed 's/^/    /'
        failures=$((failures + 1))
    }
done
for f in include/qgate.h include/qgate_lifecycle.h share/man/man1/qgate.1 \
    share/doc/qgate/examples/qgate.json \
    share/doc/qgate/examples/nginx-qgate.conf; do
    check "the package has $f" test -n "$(find "$R" -path "*/$f")"
done

# Every library the programs and libqgate.so link belongs to a package it
# depends on.
for elf in "$BIN" "$SERVE" "$LIB"; do
    readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
    while read -r so; do
        path=$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')
        [ -n "$path" ] || { echo "  $so: not found by ldconfig"; echo x; continue; }
        owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | sed 's/:.*//' | head -1)
        [ -n "$owner" ] || owner=$(dpkg -S "$path" 2>/dev/null | sed 's/:.*//' | head -1)
        grep -q "^Depends:.*\\b$owner\\b" "$T/control" ||
            { echo "  $(basename "$elf") needs $so from $owner, not in Depends"; echo x; }
    done
done >"$T/deps"
check "Depends lists the owner of every NEEDED library" \
    sh -c "! grep -qx x '$T/deps' || { grep -v '^x\$' '$T/deps'; exit 1; }"

# The unit: the binary where the package puts it, as its own user, on the
# state directory, SIGHUP on reload, hardened.
INSTALLED_BIN=${BIN#"$R"}
check "unit starts $INSTALLED_BIN serve" \
    has "$UNIT" "^ExecStart=$INSTALLED_BIN serve "
for line in '^User=qgate$' '^StateDirectory=qgate$' \
    '^ExecStart=.* --db /var/lib/qgate' '^ExecReload=/bin/kill -HUP \$MAINPID$' \
    '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^ProtectHome=yes$' \
    '^PrivateTmp=yes$' '^CapabilityBoundingSet=$'; do
    check "unit: $line" has "$UNIT" "$line"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants the binary where the unit says; point it at ours.
    sed "s|^ExecStart=$INSTALLED_BIN|ExecStart=$BIN|" "$UNIT" >"$T/qgate.service"
    check "systemd-analyze verify accepts the unit" \
        sh -c "systemd-analyze verify '$T/qgate.service' 2>&1 |
               grep -v 'network-online.target\|Cannot add dependency\|man qgate' |
               { ! grep -q .; }"
fi

dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$T" ./postinst
check "postinst creates the qgate system user" \
    has "$T/postinst" 'adduser --system --group .*qgate'
check "postinst is valid sh" status 0 sh -n "$T/postinst"

# The audit commands load neither libcurl nor libmicrohttpd: only the
# gate program does, which `qgate serve` executes from where the package
# put it.
check "qgate links no HTTP library" \
    sh -c "! readelf -d '$BIN' | grep -q 'libcurl\|libmicrohttpd'"
# Nor libpq, libcrypto or json-c, which libqgate loads when it first
# needs them (pq.h, ossl.h, jsonc.h); the package still depends on them.
check "qgate and libqgate link neither libpq, libcrypto nor json-c" \
    sh -c "! readelf -d '$BIN' '$LIB' | grep -q 'libpq\|libcrypto\|libjson-c'"
check "Depends lists json-c, which is loaded, not linked" \
    grep -q '^Depends:.*\blibjson-c[0-9]' "$T/control"
check "qgate-serve links both" \
    sh -c "readelf -d '$SERVE' | grep -q libcurl &&
           readelf -d '$SERVE' | grep -q libmicrohttpd"
check "qgate serve --help runs the unpacked qgate-serve" \
    status 0 env LD_LIBRARY_PATH="$(dirname "$LIB")" "$BIN" serve --help
check "which prints serve's usage" has "$T/out" '^usage: qgate serve '
mkdir "$T/alone" && cp "$BIN" "$T/alone/qgate"
check "without qgate-serve, serve exits 2" \
    status 2 env LD_LIBRARY_PATH="$(dirname "$LIB")" "$T/alone/qgate" serve
check "naming the program it looked for" \
    has "$T/err" "^qgate: serve: cannot run the gate program $T/alone/../libexec/qgate/qgate-serve: No such file or directory\$"

# The unpacked program runs and knows its version; man finds its page.
check "the unpacked qgate runs" \
    status 0 env LD_LIBRARY_PATH="$(dirname "$LIB")" "$BIN" --version
check "--version says $VERSION" has "$T/out" "^qgate $VERSION "
check "the manual page is of qgate $VERSION" \
    has "$(find "$R" -path '*/share/man/man1/qgate.1')" "^\.TH QGATE 1 .* \"qgate $VERSION\" "
# The example configuration's keys are all known (an unknown one exits 2).
check "a store to read" status 0 "$BUILD/qgate" apply --db "$T/db" --no-verify \
    --reorder-window 0 "$SRC/fixtures/chup/01-join-live-queue.json"
check "the example configuration is valid for the CLI" \
    status 0 env LD_LIBRARY_PATH="$(dirname "$LIB")" "$BIN" list \
    --config "$(find "$R" -name qgate.json)" --db "$T/db"

# A program builds against the unpacked header and library (the .pc file
# is relocatable) and runs.
cat >"$T/p.c" <<'C'
#include <qgate.h>
#include <stdio.h>
int main(void) { printf("%s\n", qg_version()); return 0; }
C
CFLAGS=$(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --cflags --libs qgate)
check "a program compiles against the package" \
    sh -c "${CC:-cc} -o '$T/p' '$T/p.c' $CFLAGS"
check "and runs on its libqgate.so" \
    status 0 env LD_LIBRARY_PATH="$(dirname "$LIB")" "$T/p"
check "which is version $VERSION" has "$T/out" "^$VERSION\$"

finish
