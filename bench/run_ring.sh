#!/bin/sh
# run_ring.sh: Ulysses, ring and 2-D sequence parallelism at P = 2 and 4, one bench_sp row each.
#
#     bench/run_ring.sh [BUILD_DIR] [bench_sp flags...]     (BUILD_DIR defaults to build/)
#
# Every ulysses x ring factorization of P (SP, default "2 4"; RINGS_<P> to narrow, e.g.
# RINGS_4="1 4") on llama-small at S = 8192 (flags given here go to every run, after the
# script's own: --seq 16384 wins). comm% is the exposed communication: the time in collectives
# that no compute hid, as a share of the step; for the ring, the time its kernel waited for its
# transfers (ring_ms). Each configuration with a ring runs twice: as built (each block's
# transfer under the attention of the one before), and with AUTOSP_RING_OVERLAP=0 (each
# transfer waited for as soon as it starts), whose ring_ms is the ring's whole communication
# time; the last line per ring compares the two. Each block carries its send time, so a wait
# splits into late_ms (before the sender had sent: the ranks' imbalance) and xfer_ms (after:
# the transfer itself); the summary compares both. OpenBLAS's kernel choice is the CPU's own
# (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as bench_sp prints). --oversubscribe and
# --bind-to none as in run_sp.sh; as root Open MPI also wants OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
set -eu

build=${1:-build}
[ $# -gt 0 ] && shift
mpirun=${MPIRUN:-mpirun}
bench="$build/bench/bench_sp"
[ -x "$bench" ] || bench="$build/bench_sp"
if [ ! -x "$bench" ]; then
    echo "run_ring.sh: no bench_sp under $build (build it: cmake --build $build --target bench_sp)" >&2
    exit 2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT

row() { # P RING OVERLAP [--header] ARGS...: one row, printed and kept for the summary
    p=$1 ring=$2 overlap=$3
    shift 3
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE AUTOSP_RING_OVERLAP="$overlap" \
        "$mpirun" -np "$p" --oversubscribe --bind-to none "$bench" --preset llama-small \
        --seq 8192 --ring "$ring" "$@" | tee -a "$out"
}

header=--header
for p in ${SP:-2 4}; do
    eval "rings=\${RINGS_$p:-}"
    if [ -z "$rings" ]; then
        rings=
        r=1
        while [ "$r" -le "$p" ]; do
            [ $((p % r)) -eq 0 ] && rings="$rings $r"
            r=$((r + 1))
        done
    fi
    for ring in $rings; do
        row "$p" "$ring" 1 $header "$@"
        header=
        [ "$ring" -gt 1 ] && row "$p" "$ring" 0 "$@"
    done
done
# the ring rows in pairs (overlapped, then not): column 15 is step_ms, 20 ring_ms, 22 xfer_ms
echo
echo "ring transfers: exposed (overlapped) / whole (AUTOSP_RING_OVERLAP=0), per configuration;"
echo "all waits (ring_ms), and only those after the sender had sent (xfer_ms)"
awk '$1 ~ /^[0-9]+$/ && $2 ~ /x/ { split($2, m, "x"); if (m[2] > 1) { n++; if (n % 2) { on = $20; xon = $22; mesh = $2; sp = $1 }
     else printf "sp %s %s: ring_ms %s exposed of %s whole: %.2f; xfer_ms %s of %s: %.2f\n", sp, mesh, on, $20, ($20 > 0 ? on / $20 : 0), xon, $22, ($22 > 0 ? xon / $22 : 0) } }' "$out"
