#!/bin/sh
# run_sp.sh: bench_sp at sp = 1, 2 and 4, one mpirun each, one table.
#
#     bench/run_sp.sh [BUILD_DIR] [bench_sp flags...]     (BUILD_DIR defaults to build/)
#
# Each run is its own job of P ranks (mpirun -np P): the first prints the header, every run
# one row. SP (default "1 2 4") picks the rank counts; MPIRUN (default mpirun) the launcher.
# --oversubscribe lets 4 ranks share 2 cores. --bind-to none because Open MPI otherwise binds
# each of up to 2 ranks to one core, and a single rank's 2 OpenBLAS threads would then share
# one core. As root, Open MPI also wants OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift
mpirun=${MPIRUN:-mpirun}

bench="$build/bench/bench_sp"
[ -x "$bench" ] || bench="$build/bench_sp"
if [ ! -x "$bench" ]; then
    echo "run_sp.sh: no bench_sp under $build (build it: cmake --build $build --target bench_sp)" >&2
    exit 2
fi

header=--header
for p in ${SP:-1 2 4}; do
    "$mpirun" -np "$p" --oversubscribe --bind-to none "$bench" $header "$@"
    header=
done
