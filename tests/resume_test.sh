#!/bin/sh
# autosp-train checkpoints: a run stopped with --until and continued with --resume prints the
# same losses and ends with byte-identical weights and checkpoint as one uninterrupted run; a
# run killed (SIGKILL) while writing a checkpoint leaves the previous one whole, and resuming
# from it continues the same loss curve; resuming at sp=2 gives the next loss of the sp=1 run;
# the metrics file has a row per step (a resumed run appends) and loss.svg draws them all; a
# checkpoint of another seed is refused; ZeRO-1 on 2 ranks writes the weights and checkpoint of
# ZeRO-0.
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

# ZeRO-1 on 2 ranks: the optimizer state split in two, and bitwise the weights and checkpoint of
# ZeRO-0 (the reduce-scatter adds the same two terms as the all-reduce)
for z in 0 1; do
    mpirun --oversubscribe -np 2 "$train" --model "$src/examples/llama-tiny-gqa.json" \
        --data "$src/README.md" --seq-len 64 --batch 2 --steps 6 --sp 2 --zero $z \
        --save "$tmp/zero$z" >/dev/null 2>"$tmp/stderr" || fail "--zero $z: $(cat "$tmp/stderr")"
done
cmp -s "$tmp/zero0/model.safetensors" "$tmp/zero1/model.safetensors" || fail "ZeRO-1 weights differ"
cmp -s "$tmp/zero0/checkpoint.safetensors" "$tmp/zero1/checkpoint.safetensors" ||
    fail "ZeRO-1 checkpoint differs"
fi

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
