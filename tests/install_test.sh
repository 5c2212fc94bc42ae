#!/bin/sh
# The library as a user's program links it: install to a prefix, then build examples/c with
# pkg-config and with the CMake package, and run both.
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
export PKG_CONFIG_PATH="$libdir/pkgconfig" LD_LIBRARY_PATH="$libdir"
cc -std=c11 -Wall -Wextra -Werror "$src/examples/c/train_mlp.c" $(pkg-config --cflags --libs autosp) \
    -o "$tmp/train_mlp_pc"
"$tmp/train_mlp_pc"
cmake -S "$src/examples/c" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
"$tmp/cmake/train_mlp"
"$tmp/cmake/train_mlp_static"
echo "install: 3 passed, 0 failed"
