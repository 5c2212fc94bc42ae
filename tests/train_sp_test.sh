#!/bin/sh
# autosp-train under mpirun: the --dump of a sequence-parallel run (and of dp x sp) is the
# single-process dump (same file layout, values within f32 rounding), and a short training run
# at sp=2 prints the same losses as one process.
# usage: train_sp_test.sh AUTOSP_TRAIN SOURCE_DIR
set -eu
train=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=$tmp/text
python3 -c "
import random
random.seed(3)
words = 'the quick brown fox jumps over a lazy dog while seven cats watch it'.split()
print(' '.join(random.choice(words) for _ in range(4000)))" > "$data"
mpi="mpirun --oversubscribe"
fail() { echo "FAIL $*"; exit 1; }

for model in llama-tiny gpt2-tiny; do
    "$train" --model "$src/examples/$model.json" --data "$data" --seq-len 64 --batch 2 \
        --dump "$tmp/one.st" > /dev/null || fail "$model: single-process dump"
    $mpi -np 2 "$train" --model "$src/examples/$model.json" --data "$data" --seq-len 64 \
        --batch 2 --sp 2 --dump "$tmp/sp2.st" > /dev/null || fail "$model: sp=2 dump"
    python3 "$src/tests/compare_dumps.py" "$tmp/one.st" "$tmp/sp2.st" || fail "$model sp=2"
    $mpi -np 4 "$train" --model "$src/examples/$model.json" --data "$data" --seq-len 64 \
        --batch 1 --sp 2 --dp 2 --dump "$tmp/dp2sp2.st" > /dev/null || fail "$model: dp2 x sp2"
    python3 "$src/tests/compare_dumps.py" "$tmp/one.st" "$tmp/dp2sp2.st" || fail "$model dp2xsp2"
done

# the same loss curve, step by step (printed to 4 decimals)
args="--model $src/examples/llama-tiny.json --data $data --seq-len 64 --batch 2 --steps 6"
"$train" $args | sed 's/ | *[0-9]* tok.*//' > "$tmp/one.log"
$mpi -np 2 "$train" $args --sp 2 | sed 's/ | *[0-9]* tok.*//' > "$tmp/sp2.log"
diff "$tmp/one.log" "$tmp/sp2.log" || fail "losses differ between 1 process and sp=2"

# a world that --sp does not divide, and --dp that does not fit
if $mpi -np 2 "$train" $args --sp 3 2> "$tmp/err"; then fail "--sp 3 on 2 ranks accepted"; fi
grep -q "sequence-parallel size 3 does not divide the 2 ranks" "$tmp/err" || fail "--sp 3 message"
if $mpi -np 2 "$train" $args --sp 2 --dp 2 2> "$tmp/err"; then fail "--dp 2 on 2 ranks"; fi
grep -q -- "--dp 2 x --sp 2 is 4 ranks, but mpirun started 2" "$tmp/err" || fail "--dp message"
echo "train_sp: all passed"
