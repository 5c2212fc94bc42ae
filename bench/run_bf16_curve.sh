#!/bin/sh
# run_bf16_curve.sh: the README's 200-step training run in f32 and in bf16, for llama-tiny-docs
# and gpt2-tiny, and how far the bf16 loss curve is from the f32 one.
#
#     bench/run_bf16_curve.sh [BUILD_DIR]     (BUILD_DIR defaults to build/)
#
# The bf16 model is the f32 JSON with its float dtypes set to bf16 (the parameters and every
# value, but the loss, which the cross-entropy rule keeps f32). Every run uses the README's
# flags (2 ranks, sp 2, S 128, batch 8, 200 steps, the fortunes corpus) with a loss logged at
# every step. Rows: llama-tiny-docs at the README's peak rate 3e-3; gpt2-tiny at 2e-3, its
# reference rate, and at 3e-3, where its f32 curve is not stable (bench/README.md). Per row:
# the final losses, their relative difference, the largest relative difference over the 200
# steps (issue 18 asks for <= 2% and <= 5%) and, as a control, the largest difference between
# f32 and f32 at a 1% lower peak rate: a perturbation of the updates the size of bf16's
# rounding, which says how far the curve itself moves under any such change.
# SEEDS (default "1 2 3") picks the seeds. As root, Open MPI wants OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -eu

build=${1:-build}
mpirun=${MPIRUN:-mpirun}
data=${DATA:-/usr/share/games/fortunes}
out=${OUT:-run/bf16-curve}
seeds=${SEEDS:-1 2 3}
mkdir -p "$out"

train() { # train JSON LR SEED METRICS
    "$mpirun" -np 2 --oversubscribe --bind-to none "$build/autosp-train" --model "$1" \
        --data "$data" --sp 2 --seq-len 128 --batch 8 --steps 200 --log-every 1 \
        --lr "$2" --seed "$3" --metrics "$4" >"$4.log" 2>&1 || { tail -n 3 "$4.log" >&2; exit 1; }
}

printf '%-16s %6s %4s %10s %10s %10s %10s %14s\n' model lr seed f32_final bf16_final \
    final_rel max_step_rel control_max_rel
for run in llama-tiny-docs:3e-3 gpt2-tiny:2e-3 gpt2-tiny:3e-3; do
    model=${run%%:*} lr=${run#*:}
    lr_low=$(awk -v lr="$lr" 'BEGIN { printf "%.6g", lr * 0.99 }')
    sed '/"op": "cross_entropy"/!s/"dtype": "f32"/"dtype": "bf16"/g' "examples/$model.json" \
        >"$out/$model-bf16.json"
    for seed in $seeds; do
        run="$out/$model-lr$lr-s$seed"
        train "examples/$model.json" "$lr" "$seed" "$run-f32.jsonl"
        train "$out/$model-bf16.json" "$lr" "$seed" "$run-bf16.jsonl"
        train "examples/$model.json" "$lr_low" "$seed" "$run-f32-low.jsonl"
        python3 - "$run" "$model" "$lr" "$seed" <<'PY'
import json, sys
run, model, lr, seed = sys.argv[1:]
def losses(path):
    return {o["step"]: o["loss"] for o in map(json.loads, open(path))}
def rel(a, b):
    steps = sorted(set(a) & set(b))
    return steps, [abs(b[s] - a[s]) / abs(a[s]) for s in steps]
f32, b16, low = (losses(run + s) for s in ("-f32.jsonl", "-bf16.jsonl", "-f32-low.jsonl"))
steps, r = rel(f32, b16)
_, c = rel(f32, low)
print("%-16s %6s %4s %10.4f %10.4f %9.2f%% %9.2f%% %13.2f%%  (worst at step %d)" % (
    model, lr, seed, f32[steps[-1]], b16[steps[-1]], 100 * r[-1], 100 * max(r), 100 * max(c),
    steps[r.index(max(r))]))
PY
    done
done
