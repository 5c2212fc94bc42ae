#!/bin/sh
# run_bf16_curve.sh: the README's 200-step training run in f32 and in bf16, for llama-tiny-docs
# and gpt2-tiny, and how far the bf16 loss curve is from the f32 one.
#
#     bench/run_bf16_curve.sh [BUILD_DIR]     (BUILD_DIR defaults to build/)
#
# The bf16 model is the f32 JSON with its float dtypes set to bf16 (the parameters and every
# value, but the loss, which the cross-entropy rule keeps f32). Both runs use the README's flags (2 ranks, sp 2, S 128, batch 8,
# 200 steps, the fortunes corpus) with a loss logged at every step, and the same seed. Prints,
# per model, the final losses, their relative difference and the largest relative difference
# over the 200 steps (issue 18 asks for <= 2% and <= 5%). As root, Open MPI wants
# OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
# bench/README.md has the results (gpt2-tiny's loss spikes included).
set -eu

build=${1:-build}
mpirun=${MPIRUN:-mpirun}
data=${DATA:-/usr/share/games/fortunes}
out=${OUT:-run/bf16-curve}
mkdir -p "$out"

printf '%-16s %10s %10s %10s %10s\n' model f32_final bf16_final final_rel max_step_rel
for model in llama-tiny-docs gpt2-tiny; do
    sed '/"op": "cross_entropy"/!s/"dtype": "f32"/"dtype": "bf16"/g' "examples/$model.json" \
        >"$out/$model-bf16.json"
    for dtype in f32 bf16; do
        json="examples/$model.json"
        [ "$dtype" = bf16 ] && json="$out/$model-bf16.json"
        "$mpirun" -np 2 --oversubscribe --bind-to none "$build/autosp-train" --model "$json" \
            --data "$data" --sp 2 --seq-len 128 --batch 8 --steps 200 --log-every 1 \
            --metrics "$out/$model-$dtype.jsonl" >"$out/$model-$dtype.log" 2>&1 ||
            { tail -n 3 "$out/$model-$dtype.log" >&2; exit 1; }
    done
    python3 - "$out/$model-f32.jsonl" "$out/$model-bf16.jsonl" "$model" <<'PY'
import json, sys
def losses(path):
    return {o["step"]: o["loss"] for o in map(json.loads, open(path))}
f32, b16 = losses(sys.argv[1]), losses(sys.argv[2])
steps = sorted(set(f32) & set(b16))
rel = [abs(b16[s] - f32[s]) / abs(f32[s]) for s in steps]
last = steps[-1]
print("%-16s %10.4f %10.4f %9.2f%% %9.2f%%  (%d steps, worst at step %d)" % (
    sys.argv[3], f32[last], b16[last], 100 * rel[-1], 100 * max(rel), len(steps),
    steps[rel.index(max(rel))]))
PY
done
