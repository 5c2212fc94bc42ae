#!/bin/sh
# run.sh: bench_train, then the optional PyTorch GPT-2 comparison at the same shapes.
#
#     bench/run.sh [BUILD_DIR] [bench_train flags...]     (BUILD_DIR defaults to build/)
#
# THREADS (default: nproc) is passed to both as --threads, so they use the same thread count.
# PYTHON selects the interpreter; by default the first of python3, /usr/bin/python3 that can
# import torch (Debian's python3-torch is installed for /usr/bin/python3 only).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
threads=${THREADS:-$(nproc)}

bench="$build/bench/bench_train"
[ -x "$bench" ] || bench="$build/bench_train"
if [ ! -x "$bench" ]; then
    echo "run.sh: no bench_train under $build (build it: cmake --build $build --target bench_train)" >&2
    exit 2
fi

# Unset: the tests' OPENBLAS_CORETYPE=Haswell, or an L2 size, in the caller's environment would
# pick another kernel or blocking than this CPU's (bench_train warns when they are set).
echo "== libautosp: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $bench --threads $threads $*"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bench" --threads "$threads" "$@"

python=${PYTHON:-}
if [ -z "$python" ]; then
    python=python3
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then
            python=$p
            break
        fi
    done
fi
# The same step count as bench_train: --steps N, or 2 with --quick.
steps="" prev=""
for a in "$@"; do
    [ "$a" = "--quick" ] && [ -z "$steps" ] && steps="--steps 2"
    [ "$prev" = "--steps" ] && steps="--steps $a"
    prev=$a
done

echo
echo "== PyTorch: $python $here/torch_gpt2.py --shapes 4x64,1x1024 --threads $threads $steps"
# shellcheck disable=SC2086 # $steps is empty or two words
"$python" "$here/torch_gpt2.py" --shapes 4x64,1x1024 --threads "$threads" $steps
