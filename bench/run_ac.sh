#!/bin/sh
# run_ac.sh: bench_ac at P = 1 (none only), then at P = 2 and 4 (every policy), one mpirun each.
#
#     bench/run_ac.sh [BUILD_DIR] [bench_ac flags...]     (BUILD_DIR defaults to build/)
#
# The first run prints the header and the single-rank baseline of none; each later run is its
# own job of P ranks (mpirun -np P) with all four policies and --same-seq. SP (default "2 4")
# picks those rank counts; MPIRUN (default mpirun) the launcher. Flags given here go to every
# run (after the script's own, so a later --policies wins). --oversubscribe lets 4 ranks share
# 2 cores. --bind-to none because Open MPI otherwise binds each of up to 2 ranks to one core,
# and a single rank's 2 OpenBLAS threads would then share one core. As root, Open MPI also
# wants OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift
mpirun=${MPIRUN:-mpirun}

bench="$build/bench/bench_ac"
[ -x "$bench" ] || bench="$build/bench_ac"
if [ ! -x "$bench" ]; then
    echo "run_ac.sh: no bench_ac under $build (build it: cmake --build $build --target bench_ac)" >&2
    exit 2
fi

"$mpirun" -np 1 --oversubscribe --bind-to none "$bench" --header --policies none "$@"
for p in ${SP:-2 4}; do
    "$mpirun" -np "$p" --oversubscribe --bind-to none "$bench" \
        --policies none,mincut-conservative,sac,full --same-seq "$@"
done
