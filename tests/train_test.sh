#!/bin/sh
# autosp-train end to end: llama-tiny learns real English text (Debian's fortunes), a dump
# matches an independent NumPy forward, weights load in an independent reader, bad flags fail.
# usage: train_test.sh AUTOSP_TRAIN SOURCE_DIR
set -u
train=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failures=$((failures + 1)); }

# Debian's python3 (with python3-numpy), also where another python3 comes first on PATH
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

text=/usr/share/games/fortunes
[ -d "$text" ] || { echo "train: $text is missing (apt-get install fortunes)"; exit 1; }

# Learning: byte-level uniform guessing costs ln(256) = 5.55 nats; after 300 steps the mean loss
# of the last 50 steps must be below 2.8, i.e. the model really learnt the text's statistics.
if "$train" --model "$src/examples/llama-tiny.json" --data "$text" --seq-len 64 \
    --batch 8 --steps 300 --lr 3e-3 --warmup 20 --log-every 1 --seed 7 >"$tmp/log" 2>"$tmp/err"; then
    mean=$(tail -n 50 "$tmp/log" | awk '{ s += $5 } END { printf "%.4f", s / NR }')
    echo "llama-tiny: mean loss of the last 50 of 300 steps $mean (uniform guess 5.545)"
    if awk -v m="$mean" 'BEGIN { exit !(m < 2.8) }'; then ok; else bad "loss $mean not below 2.8"; fi
else
    bad "training failed: $(cat "$tmp/err")"
fi

# One forward and backward written out, checked by an independent NumPy implementation.
if "$train" --model "$src/examples/llama-tiny-gqa.json" --data "$text" --seq-len 32 \
    --batch 2 --seed 3 --dump "$tmp/dump.safetensors" 2>"$tmp/err" &&
    "$python" "$src/tests/numpy_llama.py" "$src/examples/llama-tiny-gqa.json" "$tmp/dump.safetensors"; then
    ok
else
    bad "dump vs numpy: $(cat "$tmp/err")"
fi

# Initial weights load in the independent reader, under the parameter names.
if "$train" --model "$src/examples/gpt2-tiny.json" --init-only --save "$tmp/init" --seed 5 2>"$tmp/err" &&
    "$python" "$src/tests/safetensors_numpy.py" "$tmp/init/model.safetensors" >"$tmp/st" &&
    grep -q "^wte F32 \[256,64\] " "$tmp/st" && grep -q "^ln_f.w F32 \[64\] 64.0" "$tmp/st"; then
    ok
else
    bad "init-only weights: $(cat "$tmp/err" "$tmp/st" 2>/dev/null | head -5)"
fi

# Bad input: a clear message and exit 2.
for args in "--model $src/examples/llama-tiny.json" \
    "--model $src/examples/llama-tiny.json --data $tmp/missing.txt" \
    "--model $src/examples/llama-tiny.json --data $text --lr fast" \
    "--model $src/tests/bad/cycle.json --data $text" \
    "--model $src/examples/llama-tiny.json --data $text --save /dev/null/run" \
    "--frobnicate"; do
    # shellcheck disable=SC2086
    "$train" $args >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && [ -s "$tmp/err" ]; then ok; else bad "'$args' exited $rc: $(cat "$tmp/err")"; fi
done

echo "train: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
