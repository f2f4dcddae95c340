#!/bin/sh
# with_pg.sh PROGRAM [ARG...] - runs a Check suite against PostgreSQL: starts
# a throwaway server (pg_server.sh), exports QGATE_TEST_PG_HOST, its socket
# directory, so that tu_store_new() makes each store a fresh database on it
# instead of an LMDB folder, runs the suite and stops the server.  Exit 77
# (skipped) when the server binaries are missing, unless CI is set.
set -u
here=$(dirname "$0")
if ! "$here/pg_server.sh" bindir >/dev/null 2>&1; then
    [ -n "${CI:-}" ] && { echo "with_pg.sh: no PostgreSQL server programs" >&2; exit 1; }
    echo "with_pg.sh: no PostgreSQL server programs; skipped" >&2
    exit 77
fi
dir=$(mktemp -d /tmp/qgate-pg-XXXXXX) || exit 1
"$here/pg_server.sh" start "$dir" $$ >/dev/null 3>&- || exit 1
QGATE_TEST_PG_HOST=$dir "$@"
rc=$?
"$here/pg_server.sh" stop "$dir"
rm -rf "$dir"
exit $rc
