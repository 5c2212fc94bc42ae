#!/bin/sh
# autosp-train end to end: llama-tiny learns real English text (Debian's fortunes), a dump
# matches an independent NumPy forward, weights load in an independent reader, a DeepSpeed
# config applies (flags override it), bad flags and unreadable or malformed data fail clearly.
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

# The memory line: planned against the arena touched and the optimizer state (equal: the plan
# places every byte the executor touches), and the resident set's growth, which holds the
# plan plus what the runtime allocates beside it (so it is never below the plan); the library's
# heap split into arena, optimizer state and the runtime's own buffers.
if grep -q "memory per rank: planned .* planned / measured 1.000$" "$tmp/err" &&
    awk '/resident set per rank/ { match($0, /planned \/ resident [0-9.]+/);
        r = substr($0, RSTART + 19, RLENGTH - 19) + 0; found = r > 0 && r <= 1.001 }
        END { exit !found }' "$tmp/err" &&
    grep -q "library heap per rank at its peak: .* the runtime's own buffers [0-9]" "$tmp/err"; then
    ok
else
    bad "memory lines: $(grep -i "memory\|resident" "$tmp/err")"
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

# A DeepSpeed config: its settings apply, and flags override them.
cat >"$tmp/ds.json" <<'JSON'
{"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, "steps_per_print": 1,
 "optimizer": {"type": "AdamW", "params": {"lr": 0.002, "betas": [0.9, 0.99], "eps": 1e-8,
                                           "weight_decay": 0.01}},
 "scheduler": {"type": "WarmupCosineLR",
               "params": {"total_num_steps": 3, "warmup_num_steps": 1, "warmup_type": "linear",
                          "cos_min_ratio": 0.5}},
 "compile": {"passes": ["autosp"]}, "wall_clock_breakdown": false}
JSON
if "$train" --model "$src/examples/llama-tiny.json" --data "$text" --seq-len 32 \
    --config "$tmp/ds.json" >"$tmp/log" 2>"$tmp/err" && [ "$(grep -c '^step' "$tmp/log")" -eq 3 ] &&
    grep -q "^step     1/3 .* lr 2.00e-03" "$tmp/log" && grep -q "^step     3/3 .* lr 1.50e-03" "$tmp/log" &&
    "$train" --model "$src/examples/llama-tiny.json" --data "$text" --seq-len 32 \
        --config "$tmp/ds.json" --steps 2 --log-every 2 >"$tmp/log2" 2>>"$tmp/err" &&
    [ "$(grep -c '^step' "$tmp/log2")" -eq 1 ] && grep -q "^step     2/2" "$tmp/log2"; then
    ok
else
    bad "--config: $(cat "$tmp/log" "$tmp/err")"
fi

# --profile: the ops of steps 2..3 by time, what the step spent outside the graph, the step.
if "$train" --model "$src/examples/llama-tiny.json" --data "$text" --seq-len 32 --steps 3 \
    --profile >"$tmp/log" 2>"$tmp/err" && grep -q "^profile of steps 2\.\.3 on rank 0" "$tmp/log" &&
    grep -q "^linear_backward  *14 " "$tmp/log" &&
    grep -q "^linear_cross_entropy_backward  *1 " "$tmp/log" && grep -q "^outside the graph  " "$tmp/log" &&
    awk '$1 == "step" && $2 > 0 && $3 == "100.0%" { found = 1 } END { exit !found }' "$tmp/log"; then
    ok
else
    bad "--profile: $(cat "$tmp/log" "$tmp/err")"
fi

# Bad input: exit 2 and a message that names what is wrong.
printf '{"zero_optimization": {"stage": 4}}' >"$tmp/zero4.json"
printf '{"train_batch_size": 64, "train_micro_batch_size_per_gpu": 4}' >"$tmp/batch.json"
printf 'short' >"$tmp/short.txt"
printf '\001\000\054\001\002\000' >"$tmp/ids.bin" # ids 1, 300, 2
m="--model $src/examples/llama-tiny.json"
while IFS='|' read -r args want; do
    # shellcheck disable=SC2086
    "$train" $args >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$tmp/err"; then ok; else bad "'$args' exited $rc: $(cat "$tmp/err")"; fi
done <<EOF_CASES
$m|--data (or --task passkey) is required
$m --data $tmp/missing.txt|--data: cannot open "$tmp/missing.txt"
$m --data $tmp/short.txt|has 5 tokens, expected more than --seq-len + 1
$m --data $tmp/ids.bin --seq-len 2|holds token id 300, but the model's vocabulary is 256
$m --data $tmp/ids.bin --data-format u32|do not hold whole 4-byte ids
$m --data $text --data-format utf8|--data-format: unknown data format "utf8": expected auto, text, u16 or u32
$m --data $text --lr fast|--lr "fast": expected a number
$m --data $text --zero 4|--zero "4": expected an integer in 0..3
$m --data $text --mem-limit lots|--mem-limit "lots": expected a size
$m --data $text --mem-limit 1MiB|--mem-limit 1.0 MiB: a rank needs
$m --data $text --task copy|--task "copy": expected passkey
$m --data $text --task passkey|--task passkey makes its own rows: drop --data
$m --data $text --eval-every 5|--eval-rows and --eval-every need --task passkey
$m --data $text --config $tmp/nowhere.json|nowhere.json
$m --data $text --config $tmp/zero4.json|zero_optimization.stage
$m --data $text --config $tmp/batch.json|train_batch_size 64, but the micro batch 4 x dp 1 is 4
--model $src/tests/bad/cycle.json --data $text|cycle
$m --data $text --save /dev/null/run|cannot create
--frobnicate|unknown option "--frobnicate"
EOF_CASES

# Hugging Face layout: trained-from-init weights exported (sharded and whole), imported back
# and exported again give the same bytes; the config is copied as it was; a key the importer
# does not know is refused by name
model=$(dirname "$train")/autosp-model
mkdir -p "$tmp/hfsrc"
cat >"$tmp/hfsrc/config.json" <<'EOF_CONFIG'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "vocab_size": 256,
 "tie_word_embeddings": false, "torch_dtype": "float32"}
EOF_CONFIG
if "$model" llama-tiny-gqa -o "$tmp/gqa.json" &&
    "$train" --model "$tmp/gqa.json" --data "$src/README.md" --init-only --save "$tmp/gqa" >/dev/null &&
    "$model" --to-hf "$tmp/hf1" --hf-config "$tmp/hfsrc" --weights "$tmp/gqa/model.safetensors" \
        --shard-size 40KB && [ -f "$tmp/hf1/model.safetensors.index.json" ] &&
    "$model" --from-hf "$tmp/hf1" --weights "$tmp/back.safetensors" -o "$tmp/back.json" &&
    "$model" --to-hf "$tmp/hf2" --hf-config "$tmp/hf1" --weights "$tmp/back.safetensors" &&
    "$model" --to-hf "$tmp/hf3" --hf-config "$tmp/hfsrc" --weights "$tmp/gqa/model.safetensors" &&
    cmp -s "$tmp/hf2/model.safetensors" "$tmp/hf3/model.safetensors" &&
    cmp -s "$tmp/hf2/config.json" "$tmp/hfsrc/config.json"; then
    ok
else bad "hf round trip: export, import and export again differ"; fi
sed 's/"vocab_size": 256,/"vocab_size": 256, "mystery": 1,/' "$tmp/hfsrc/config.json" >"$tmp/odd.json"
mkdir -p "$tmp/odd" && cp "$tmp/odd.json" "$tmp/odd/config.json"
if "$model" --from-hf "$tmp/odd" 2>"$tmp/err" >/dev/null; then bad "hf: unknown key accepted"
elif grep -q 'key "mystery" is not understood' "$tmp/err"; then ok
else bad "hf: unknown key message: $(cat "$tmp/err")"; fi

echo "train: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
