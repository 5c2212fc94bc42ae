#!/bin/sh
# run_gemm.sh: bench_gemm, OpenBLAS f32 vs oneDNN f32 and bf16 on a training step's matmuls.
#
#     bench/run_gemm.sh [BUILD_DIR] [bench_gemm flags...]     (BUILD_DIR defaults to build/)
#
# bench_gemm is built only when oneDNN is installed (apt-get install libdnnl-dev). It sets both
# libraries' thread counts itself (openblas_set_num_threads, omp_set_num_threads: Debian's
# oneDNN runs on OpenMP), per --threads. OPENBLAS_CORETYPE (the tests set Haswell) and
# OPENBLAS_L2_SIZE are unset: either would pick another kernel or blocking than this CPU's.
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift

bench="$build/bench/bench_gemm"
[ -x "$bench" ] || bench="$build/bench_gemm"
if [ ! -x "$bench" ]; then
    echo "run_gemm.sh: no bench_gemm under $build (needs libdnnl-dev; cmake --build $build --target bench_gemm)" >&2
    exit 2
fi

echo "== env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $bench $*"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bench" "$@"
