#!/bin/sh
# The libraries as a user's program links them: install to a prefix, then build examples/c
# against each library with pkg-config (autosp, autosp-core; shared, and static through
# --static) and with the CMake package (autosp::autosp, autosp::autosp_static,
# autosp::autosp_core, autosp::autosp_core_static), and run every program. train_mlp.c uses
# the runtime, plan.c the core alone: neither plan's link line nor its NEEDED entries (readelf
# -d), nor those of libautosp-core.so, name a BLAS or an MPI library.
# usage: install_test.sh BUILD_DIR SOURCE_DIR WITH_MPI (ON or OFF, as AUTOSP_WITH_MPI)
set -eu
build=$1 src=$2 with_mpi=$3
case $with_mpi in ON | on | 1 | TRUE | true | YES | yes) with_mpi=1 ;; *) with_mpi=0 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/checks.sh
. "$(dirname "$0")/checks.sh"

blas='blas|lapack' mpi='mpi|open-pal|open-rte'

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -maxdepth 1 -name 'lib*' | sort | head -n 1)
export PKG_CONFIG_PATH="$libdir/pkgconfig" LD_LIBRARY_PATH="$libdir"
c_flags="-std=c11 -Wall -Wextra -Werror"

# libs FILE: the libraries a link line (words) or a binary (its NEEDED entries) names, one a
# line, without their folders: "-lmpi", "libopenblas.so.0", "libautosp-core.a".
libs() {
    if [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = 177ELF ]; then
        readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'
    else
        tr -s ' \t' '\n' <"$1" | sed 's|.*/||' | grep -E '^-l|\.so|\.a$' || true
    fi
}
# lacks LABEL FILE WHAT REGEX / has LABEL FILE WHAT REGEX: of the libraries FILE names.
lacks() {
    [ -f "$2" ] || { fail "$1: no file $2" && return; }
    found=$(libs "$2" | grep -E "$4" | tr '\n' ' ')
    if [ -z "$found" ]; then pass "$1: no $3 library"; else fail "$1 names $3: $found"; fi
}
has() {
    [ -f "$2" ] || { fail "$1: no file $2" && return; }
    found=$(libs "$2" | grep -E "$4" | tr '\n' ' ')
    if [ -n "$found" ]; then pass "$1: $found"; else fail "$1 names no $3 library ($4)"; fi
}
# build LABEL OUT SOURCE LINK...: cc SOURCE LINK -o OUT, the link words kept in OUT.link
build() {
    label=$1 out=$2 source=$3
    shift 3
    echo "$*" >"$out.link"
    # shellcheck disable=SC2086 # c_flags is words
    if cc $c_flags "$source" "$@" -o "$out" 2>"$tmp/cc.err"; then
        pass "$label builds"
    else
        fail "$label: cc $c_flags $source $*:"
        sed 's/^/    /' "$tmp/cc.err"
    fi
}
# static_libs PKG LIB: pkg-config --static --libs PKG, with -lLIB replaced by the archive
static_libs() {
    pkg-config --static --libs "$1" | tr ' ' '\n' |
        awk -v l="-l$2" -v a="$libdir/lib$2.a" 'NF { print ($0 == l ? a : $0) }' | tr '\n' ' '
}

# The installed libraries themselves.
lacks "libautosp-core.so NEEDED" "$libdir/libautosp-core.so" BLAS "$blas"
lacks "libautosp-core.so NEEDED" "$libdir/libautosp-core.so" MPI "$mpi"
has "libautosp.so NEEDED (BLAS)" "$libdir/libautosp.so" BLAS "$blas"
if [ "$with_mpi" -eq 1 ]; then
    has "libautosp.so NEEDED (MPI)" "$libdir/libautosp.so" MPI "$mpi"
    if [ -f "$tmp/prefix/include/autosp/comm_mpi.h" ]; then
        pass "autosp/comm_mpi.h installed"
    else
        fail "an MPI build installs no include/autosp/comm_mpi.h"
    fi
else
    lacks "libautosp.so NEEDED (no MPI build)" "$libdir/libautosp.so" MPI "$mpi"
    if [ ! -e "$tmp/prefix/include/autosp/comm_mpi.h" ]; then
        pass "no autosp/comm_mpi.h without MPI"
    else
        fail "a build without MPI installs include/autosp/comm_mpi.h"
    fi
fi

# pkg-config: autosp-core needs neither BLAS nor MPI, even to link statically.
pkg-config --libs autosp-core >"$tmp/core.pc-libs"
pkg-config --libs --static autosp-core >"$tmp/core.pc-static"
for f in core.pc-libs core.pc-static; do
    lacks "pkg-config ${f#core.pc-} autosp-core" "$tmp/$f" BLAS "$blas"
    lacks "pkg-config ${f#core.pc-} autosp-core" "$tmp/$f" MPI "$mpi"
done

# pkg-config: every program against each library, shared and static (the flags are words).
# shellcheck disable=SC2046
build train_mlp_pc "$tmp/train_mlp_pc" "$src/examples/c/train_mlp.c" \
    $(pkg-config --cflags --libs autosp)
# shellcheck disable=SC2046
build train_mlp_pc_static "$tmp/train_mlp_pc_static" "$src/examples/c/train_mlp.c" \
    $(pkg-config --cflags autosp) $(static_libs autosp autosp)
# shellcheck disable=SC2046
build plan_pc "$tmp/plan_pc" "$src/examples/c/plan.c" $(pkg-config --cflags --libs autosp-core)
# shellcheck disable=SC2046
build plan_pc_static "$tmp/plan_pc_static" "$src/examples/c/plan.c" \
    $(pkg-config --cflags autosp-core) $(static_libs autosp-core autosp-core)

# The CMake package, built against this prefix only.
if cmake -S "$src/examples/c" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    >"$tmp/cmake.log" 2>&1 && cmake --build "$tmp/cmake" >>"$tmp/cmake.log" 2>&1; then
    pass "examples/c with find_package(autosp) builds"
else
    fail "examples/c with find_package(autosp):"
    sed 's/^/    /' "$tmp/cmake.log"
fi
for p in train_mlp train_mlp_static plan plan_static; do
    cp "$tmp/cmake/CMakeFiles/$p.dir/link.txt" "$tmp/cmake/$p.link" 2>/dev/null ||
        fail "no link line of $p (CMakeFiles/$p.dir/link.txt)"
done

for p in "$tmp/train_mlp_pc" "$tmp/train_mlp_pc_static" "$tmp/plan_pc" "$tmp/plan_pc_static" \
    "$tmp/cmake/train_mlp" "$tmp/cmake/train_mlp_static" "$tmp/cmake/plan" \
    "$tmp/cmake/plan_static"; do
    label=${p#"$tmp"/}
    if [ ! -x "$p" ]; then
        fail "$label was not built"
        continue
    fi
    run_ok "$label" "$p"
    case $label in
    *_static) lacks "$label NEEDED" "$p" "libautosp" 'libautosp' ;;
    esac
    case $label in
    *plan*)
        for f in "$p" "$p.link"; do
            what=NEEDED
            [ "$f" = "$p" ] || what="link line"
            lacks "$label $what" "$f" BLAS "$blas"
            lacks "$label $what" "$f" MPI "$mpi"
        done
        ;;
    esac
done
has "plan NEEDED" "$tmp/cmake/plan" "libautosp-core" '^libautosp-core\.so'

# find_package(autosp COMPONENTS core) asks for jansson alone: with a pkg-config path that
# holds no openblas.pc, the core's program still configures, builds and runs.
mkdir -p "$tmp/core-only/pc"
cp "$(pkg-config --variable=pcfiledir jansson)/jansson.pc" "$tmp/core-only/pc/"
cat >"$tmp/core-only/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(core_only C)
find_package(autosp REQUIRED COMPONENTS core)
add_executable(plan $src/examples/c/plan.c)
target_link_libraries(plan PRIVATE autosp::autosp_core_static)
EOF
if PKG_CONFIG_LIBDIR="$tmp/core-only/pc" PKG_CONFIG_PATH="" \
    cmake -S "$tmp/core-only" -B "$tmp/core-only/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    >"$tmp/core.log" 2>&1 && cmake --build "$tmp/core-only/build" >>"$tmp/core.log" 2>&1; then
    pass "find_package(autosp COMPONENTS core) without openblas.pc"
    run_ok "core-only plan" "$tmp/core-only/build/plan"
else
    fail "find_package(autosp COMPONENTS core) without openblas.pc:"
    sed 's/^/    /' "$tmp/core.log"
fi
# and the same checks see the runtime's libraries where they are
has "train_mlp_static link line (BLAS)" "$tmp/cmake/train_mlp_static.link" BLAS "$blas"
if [ "$with_mpi" -eq 1 ]; then
    has "train_mlp_static link line (MPI)" "$tmp/cmake/train_mlp_static.link" MPI "$mpi"
else
    lacks "train_mlp_static link line (no MPI build)" "$tmp/cmake/train_mlp_static.link" MPI "$mpi"
fi

summary install
