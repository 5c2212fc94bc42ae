#!/bin/sh
# The C examples as a user runs them: train_sp under mpirun -np 2 (sequence parallelism; one
# process in a build without MPI) trains 50 steps, saves, reloads and evaluates, and its loss
# falls; eval reads the checkpoint it wrote and prints the loss of the first rows of the text.
# usage: examples_c_test.sh BIN_DIR SOURCE_DIR WITH_MPI
set -eu
bin=$1 src=$2 with_mpi=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; exit 1; }
launch=""
ranks=1
if [ "$with_mpi" != OFF ]; then
    launch="mpirun --oversubscribe -np 2"
    ranks=2
fi
$launch "$bin/train_sp" "$src/README.md" "$tmp/ckpt.safetensors" >"$tmp/train" 2>"$tmp/err" ||
    fail "train_sp: $(cat "$tmp/err" "$tmp/train")"
cat "$tmp/train"
grep -q "^sp $ranks: loss" "$tmp/train" || fail "train_sp did not run at sp $ranks"
$launch "$bin/eval" "$src/examples/llama-tiny.json" "$tmp/ckpt.safetensors" "$src/README.md" \
    >"$tmp/eval" 2>"$tmp/err" || fail "eval: $(cat "$tmp/err")"
cat "$tmp/eval"
grep -q "^16 rows of 128 tokens: loss" "$tmp/eval" || fail "eval printed no loss"
# a weights file of another model is refused with the tensors named
"$bin/eval" "$src/examples/gpt2-tiny.json" "$tmp/ckpt.safetensors" "$src/README.md" \
    >/dev/null 2>"$tmp/err" && fail "eval accepted another model's weights"
grep -q "do not match graph" "$tmp/err" || fail "eval: $(cat "$tmp/err")"
echo "examples_c: 3 passed, 0 failed"
