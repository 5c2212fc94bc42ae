#!/bin/sh
# The libraries as a user's program links them:
#   (a) every global symbol the static archives (nm -g) and the shared libraries (nm -D) define
#       is autosp_*: the archives are prelinked and objcopy'd, the shared ones use
#       src/exports.map (types T, W, i, D, B, R, C, V, u, ... all count);
#   (b) each archive exports the same names as its shared library, and libautosp all of
#       libautosp-core's (it holds the core);
#   (c) tests/clash/clash.c, which defines softmax_forward, par_for, dim_eval, ... of its own,
#       linked against each library (the build would fail on a clash with an archive), runs
#       and exits 0: the library never calls the program's functions, nor the reverse.
# usage: symbols_test.sh AUTOSP_A CORE_A AUTOSP_SO CORE_SO CLASH_STATIC CLASH_SHARED \
#        CLASH_CORE_STATIC CLASH_CORE_SHARED
set -eu
if [ $# -ne 8 ]; then
    echo "usage: symbols_test.sh AUTOSP_A CORE_A AUTOSP_SO CORE_SO CLASH_PROGRAM..." >&2
    exit 2
fi
autosp_a=$1 core_a=$2 autosp_so=$3 core_so=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"

# exports LABEL FILE NM_FLAGS...: the defined global symbols of FILE, one "TYPE NAME" a line,
# into $tmp/LABEL; fails unless every name starts with autosp_.
exports() {
    label=$1 file=$2
    shift 2
    if ! nm "$@" "$file" >"$tmp/$label.nm" 2>"$tmp/$label.err"; then
        fail "$label: nm $* $file: $(cat "$tmp/$label.err")"
        return
    fi
    # archive member headers ("x.o:") and blank lines have fewer than 3 fields
    awk 'NF >= 3 { print $(NF - 1), $NF }' "$tmp/$label.nm" | sort -k2 >"$tmp/$label"
    awk '{ print $2 }' "$tmp/$label" | sort -u >"$tmp/$label.names"
    total=$(wc -l <"$tmp/$label")
    grep -v ' autosp_' "$tmp/$label" >"$tmp/$label.bad" || true
    bad=$(wc -l <"$tmp/$label.bad")
    if [ "$total" -eq 0 ]; then
        fail "$label: nm $* found no defined global symbol at all in $file"
    elif [ "$bad" -ne 0 ]; then
        fail "$label: $bad of $total global symbols are not autosp_* (type name):"
        head -n 20 "$tmp/$label.bad" | sed 's/^/    /'
    else
        pass "$label: $total global symbols, all autosp_* ($(basename "$file"))"
    fi
}
exports libautosp.a "$autosp_a" -g --defined-only
exports libautosp-core.a "$core_a" -g --defined-only
exports libautosp.so "$autosp_so" -D --defined-only
exports libautosp-core.so "$core_so" -D --defined-only

# same_names LABEL A B: A and B define the same names.
same_names() {
    if cmp -s "$tmp/$2.names" "$tmp/$3.names"; then
        pass "$1: the same $(wc -l <"$tmp/$2.names") names"
    else
        fail "$1: $2 and $3 define different names (< only in $2, > only in $3):"
        diff "$tmp/$2.names" "$tmp/$3.names" | grep '^[<>]' | head -n 20 | sed 's/^/    /'
    fi
}
same_names "static = shared (autosp)" libautosp.a libautosp.so
same_names "static = shared (autosp-core)" libautosp-core.a libautosp-core.so
missing=$(comm -23 "$tmp/libautosp-core.so.names" "$tmp/libautosp.so.names" | head -n 20)
if [ -z "$missing" ]; then
    pass "libautosp.so defines all of libautosp-core.so's names"
else
    fail "libautosp.so lacks names of libautosp-core.so:" "$(echo "$missing" | tr '\n' ' ')"
fi

# The link-clash programs: built (they would not link against an archive that clashed), and run.
for exe in "$@"; do
    # a crash, or an extra count: the library called one of the program's functions
    run_ok "$(basename "$exe")" "$exe"
done

summary symbols
