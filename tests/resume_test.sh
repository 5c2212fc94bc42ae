#!/bin/sh
# autosp-train checkpoints: a run stopped with --until and continued with --resume prints the
# same losses and ends with byte-identical weights and checkpoint as one uninterrupted run; a
# run killed (SIGKILL) while writing a checkpoint leaves the previous one whole, and resuming
# from it continues the same loss curve; resuming at sp=2 gives the next loss of the sp=1 run;
# the metrics file has a row per step (a resumed run appends) and loss.svg draws them all; a
# checkpoint of another seed is refused; ZeRO-1 on 2 ranks writes the weights and checkpoint of
# ZeRO-0; bf16 mixed precision resumes bitwise and writes its weights in bf16 or f32.
# usage: resume_test.sh AUTOSP_TRAIN SOURCE_DIR [WITH_MPI: ON or OFF]
set -eu
train=$1
src=$2
with_mpi=${3:-ON}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; exit 1; }
run() { # run OUT ARGS...: the step lines (step and loss only) to OUT
    out=$1
    shift
    "$train" --model "$src/examples/llama-tiny-gqa.json" --data "$src/README.md" --seq-len 64 \
        --batch 2 --steps 20 --log-every 1 "$@" 2>"$tmp/stderr" | cut -d'|' -f1-2 >"$out"
}

run "$tmp/full.log" --save "$tmp/full"
[ "$(wc -l <"$tmp/full.log")" -eq 20 ] || fail "uninterrupted run: $(cat "$tmp/stderr")"

# stop at 10, resume to 20 (with a checkpoint every 4 steps on the way)
run "$tmp/part1" --until 10 --save "$tmp/a"
run "$tmp/part2" --resume "$tmp/a" --save "$tmp/b" --save-every 4
grep -q "resumed from $tmp/a/checkpoint.safetensors at step 10" "$tmp/stderr" || fail "no resume message"
cat "$tmp/part1" "$tmp/part2" | cmp -s - "$tmp/full.log" || fail "resumed losses differ: $(diff "$tmp/full.log" "$tmp/part2")"
cmp -s "$tmp/full/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed weights differ"
cmp -s "$tmp/full/checkpoint.safetensors" "$tmp/b/checkpoint.safetensors" || fail "checkpoints differ"

# killed while saving at step 15: the step-10 checkpoint survives, and resuming from it
# continues the uninterrupted curve
cp -r "$tmp/a" "$tmp/k"
set +e
AUTOSP_FAULT_KILL_BEFORE_RENAME=checkpoint.safetensors run "$tmp/killed" --resume "$tmp/k" \
    --until 15 --save "$tmp/k"
set -e
[ "$(wc -l <"$tmp/killed")" -eq 5 ] || fail "the killed run did not reach step 15"
cmp -s "$tmp/a/checkpoint.safetensors" "$tmp/k/checkpoint.safetensors" || fail "kill damaged the checkpoint"
run "$tmp/after_kill" --resume "$tmp/k"
tail -n 10 "$tmp/full.log" | cmp -s - "$tmp/after_kill" || fail "resume after the kill differs"

# the rest of this part needs mpirun: a build without MPI (third argument OFF) skips it
if [ "$with_mpi" != OFF ]; then
# resume at sp=2: the next loss equals the sp=1 run's within f32 rounding (4 printed decimals)
mpirun --oversubscribe -np 2 "$train" --model "$src/examples/llama-tiny-gqa.json" \
    --data "$src/README.md" --seq-len 64 --batch 2 --steps 20 --log-every 1 --sp 2 \
    --resume "$tmp/a" --until 11 2>"$tmp/stderr" | cut -d'|' -f1-2 >"$tmp/sp2" || fail "sp=2 resume: $(cat "$tmp/stderr")"
python3 - "$tmp/full.log" "$tmp/sp2" <<'PY' || fail "sp=2 resume: next loss differs"
import sys
full = {l.split('|')[0].strip(): float(l.split('loss')[1]) for l in open(sys.argv[1])}
sp2 = [l for l in open(sys.argv[2]) if l.startswith('step')]
key, loss = sp2[0].split('|')[0].strip(), float(sp2[0].split('loss')[1])
print(f"{key}: sp=1 {full[key]:.4f}, resumed at sp=2 {loss:.4f}")
sys.exit(0 if key == 'step    11/20' and abs(loss - full[key]) <= 2e-4 else 1)
PY

# ZeRO-1, 2 and 3 on 2 ranks: the optimizer state (under ZeRO-2 the gradients, under ZeRO-3 the
# parameters too) split in two, and bitwise the weights and checkpoint of ZeRO-0 (a
# reduce-scatter adds the same two terms as the all-reduce); a ZeRO-3 run resumed from a
# ZeRO-0 checkpoint of step 3 ends on the same checkpoint
for z in 0 1 2 3; do
    mpirun --oversubscribe -np 2 "$train" --model "$src/examples/llama-tiny-gqa.json" \
        --data "$src/README.md" --seq-len 64 --batch 2 --steps 6 --sp 2 --zero $z \
        --save "$tmp/zero$z" >/dev/null 2>"$tmp/stderr" || fail "--zero $z: $(cat "$tmp/stderr")"
done
cmp -s "$tmp/zero0/model.safetensors" "$tmp/zero1/model.safetensors" || fail "ZeRO-1 weights differ"
cmp -s "$tmp/zero0/checkpoint.safetensors" "$tmp/zero1/checkpoint.safetensors" ||
    fail "ZeRO-1 checkpoint differs"
cmp -s "$tmp/zero0/model.safetensors" "$tmp/zero2/model.safetensors" || fail "ZeRO-2 weights differ"
cmp -s "$tmp/zero0/checkpoint.safetensors" "$tmp/zero2/checkpoint.safetensors" ||
    fail "ZeRO-2 checkpoint differs"
cmp -s "$tmp/zero0/model.safetensors" "$tmp/zero3/model.safetensors" || fail "ZeRO-3 weights differ"
cmp -s "$tmp/zero0/checkpoint.safetensors" "$tmp/zero3/checkpoint.safetensors" ||
    fail "ZeRO-3 checkpoint differs"
for z in 0 3; do
    [ $z = 0 ] && from="--until 3" || from="--resume $tmp/z3a"
    # shellcheck disable=SC2086
    mpirun --oversubscribe -np 2 "$train" --model "$src/examples/llama-tiny-gqa.json" \
        --data "$src/README.md" --seq-len 64 --batch 2 --steps 6 --sp 2 --zero $z $from \
        --save "$tmp/z3${z}" >/dev/null 2>"$tmp/stderr" || fail "--zero $z $from: $(cat "$tmp/stderr")"
    [ $z = 0 ] && mv "$tmp/z30" "$tmp/z3a"
done
cmp -s "$tmp/zero0/checkpoint.safetensors" "$tmp/z33/checkpoint.safetensors" ||
    fail "ZeRO-3 resumed from ZeRO-0 differs"
fi

# bf16 mixed precision: a resumed run is bitwise the uninterrupted one (the checkpoint holds
# the f32 master weights); model.safetensors is bf16 by default and the masters with
# --save-dtype f32 (under ZeRO-1 too, gathered from both ranks); an f32 model saved as bf16 is
# its weights rounded to nearest even
sed '/"op": "cross_entropy"/!s/"dtype": "f32"/"dtype": "bf16"/g' \
    "$src/examples/llama-tiny-gqa.json" >"$tmp/bf16.json"
runb() { # runb OUT ARGS...: the bf16 model's step lines
    out=$1
    shift
    "$train" --model "$tmp/bf16.json" --data "$src/README.md" --seq-len 64 --batch 2 \
        --steps 12 --log-every 1 "$@" 2>"$tmp/stderr" | cut -d'|' -f1-2 >"$out"
    [ -s "$out" ] || fail "bf16 $*: $(cat "$tmp/stderr")"
}
runb "$tmp/bf_full.log" --save "$tmp/bf_full"
runb "$tmp/bf_part1.log" --until 6 --save "$tmp/bf_a"
runb "$tmp/bf_part2.log" --resume "$tmp/bf_a" --save "$tmp/bf_b" --save-dtype f32
cat "$tmp/bf_part1.log" "$tmp/bf_part2.log" | cmp -s - "$tmp/bf_full.log" || fail "bf16 resumed losses differ"
cmp -s "$tmp/bf_full/checkpoint.safetensors" "$tmp/bf_b/checkpoint.safetensors" ||
    fail "bf16 checkpoints differ"
run "$tmp/f32b.log" --steps 3 --save "$tmp/f32b" --save-dtype bf16
check_weights() { # check_weights CHECKPOINT MODEL F32|BF16: MODEL = CHECKPOINT's parameters
    python3 - "$src/tests" "$@" <<'PY' || fail "weights $2 against $1"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from safetensors_numpy import read_header
def tensors(path):
    header, data = read_header(open(path, "rb").read())
    out = {}
    for name, e in header.items():
        if name == "__metadata__": continue
        b, t = e["data_offsets"]
        out[name] = (e["dtype"], np.frombuffer(data[b:t], dtype="<u4" if e["dtype"] == "F32" else "<u2"))
    return out
ck, model, want = tensors(sys.argv[2]), tensors(sys.argv[3]), sys.argv[4]
params = {k: v for k, v in ck.items() if not k.endswith((".adam_m", ".adam_v"))}
assert set(params) == set(model), sorted(set(params) ^ set(model))
for name, (dtype, bits) in params.items():
    assert dtype == "F32", (name, dtype)
    if want == "BF16":  # round to nearest even, as the C code does
        bits = ((bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    assert model[name][0] == want and np.array_equal(model[name][1], bits), name
print(f"{sys.argv[3]}: {len(model)} {want} tensors, the checkpoint's parameters")
PY
}
check_weights "$tmp/bf_full/checkpoint.safetensors" "$tmp/bf_full/model.safetensors" BF16
check_weights "$tmp/bf_b/checkpoint.safetensors" "$tmp/bf_b/model.safetensors" F32
check_weights "$tmp/f32b/checkpoint.safetensors" "$tmp/f32b/model.safetensors" BF16
if [ "$with_mpi" != OFF ]; then
    mpirun --oversubscribe -np 2 "$train" --model "$tmp/bf16.json" --data "$src/README.md" \
        --seq-len 64 --batch 2 --steps 4 --sp 2 --zero 1 --save "$tmp/bf_z1" --save-dtype f32 \
        >/dev/null 2>"$tmp/stderr" || fail "bf16 --zero 1: $(cat "$tmp/stderr")"
    check_weights "$tmp/bf_z1/checkpoint.safetensors" "$tmp/bf_z1/model.safetensors" F32
    for d in f32 native; do # native: model.safetensors in the model's dtype, bf16
        [ $d = f32 ] && as="--save-dtype f32" || as=""
        # shellcheck disable=SC2086
        mpirun --oversubscribe -np 2 "$train" --model "$tmp/bf16.json" --data "$src/README.md" \
            --seq-len 64 --batch 2 --steps 4 --sp 2 --zero 3 --save "$tmp/bf_z3$d" $as \
            >/dev/null 2>"$tmp/stderr" || fail "bf16 --zero 3: $(cat "$tmp/stderr")"
    done
    cmp -s "$tmp/bf_z1/checkpoint.safetensors" "$tmp/bf_z3f32/checkpoint.safetensors" ||
        fail "bf16 ZeRO-3 checkpoint differs from ZeRO-1's"
    check_weights "$tmp/bf_z3f32/checkpoint.safetensors" "$tmp/bf_z3f32/model.safetensors" F32
    check_weights "$tmp/bf_z3native/checkpoint.safetensors" "$tmp/bf_z3native/model.safetensors" BF16
fi
set +e
run "$tmp/bad.log" --steps 1 --save "$tmp/bad" --save-dtype f16
set -e
grep -q -- '--save-dtype "f16": expected f32 or bf16' "$tmp/stderr" ||
    fail "--save-dtype f16: $(cat "$tmp/stderr")"

# metrics: one JSON object per step, appended by a resumed run, and the loss curve as SVG
run "$tmp/more" --resume "$tmp/a" --save "$tmp/a" --until 12
python3 - "$tmp/full" "$tmp/a" <<'PY' || fail "metrics or loss.svg"
import json, sys, xml.dom.minidom
for d, n in ((sys.argv[1], 20), (sys.argv[2], 12)):
    rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, n + 1)), (d, [r["step"] for r in rows])
    keys = {"loss", "lr", "grad_norm", "tokens_per_s", "gflops", "step_ms", "comm_share", "mem_bytes"}
    assert all(keys <= set(r) and r["mem_bytes"] > 0 for r in rows), rows[0]
    svg = xml.dom.minidom.parse(d + "/loss.svg")
    points = svg.getElementsByTagName("polyline")[0].getAttribute("points").split()
    assert len(points) == n, (d, len(points))
print("metrics: 20 and 10 + 2 rows, loss curves of 20 and 12 points")
PY

# another seed would not continue the batches
set +e
"$train" --model "$src/examples/llama-tiny-gqa.json" --data "$src/README.md" --seq-len 64 \
    --batch 2 --steps 20 --resume "$tmp/a" --seed 9 >/dev/null 2>"$tmp/stderr"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "other seed: exit $rc, expected 2"
grep -q "the checkpoint was trained with --seed 1 --seq-len 64, this run has --seed 9" "$tmp/stderr" || fail "other seed: $(cat "$tmp/stderr")"
"$train" --model "$src/examples/llama-tiny-gqa.json" --data "$src/README.md" --steps 2 \
    --resume "$tmp/nowhere" >/dev/null 2>"$tmp/stderr" && fail "missing checkpoint accepted"
grep -q "cannot open" "$tmp/stderr" || fail "missing checkpoint: $(cat "$tmp/stderr")"
echo "resume: all checks passed"
