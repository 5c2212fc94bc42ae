#!/bin/sh
# The command-line tools as a user runs them: exit codes (0 ok, 2 bad input), messages on
# stderr, and no output file created or clobbered when anything fails.
# usage: cli_test.sh AUTOSP_COMPILE AUTOSP_MODEL SOURCE_DIR
set -u
compile=$1 model=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0

check() { # check NAME EXPECTED_EXIT COMMAND...
    name=$1 want=$2
    shift 2
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $name: exit $got, expected $want"; cat "$tmp/stderr"
        failures=$((failures + 1))
    else
        passed=$((passed + 1))
    fi
}
contains() { # contains NAME FILE TEXT
    if grep -qF -- "$3" "$2"; then passed=$((passed + 1)); else
        echo "FAIL $1: $2 lacks: $3"; cat "$2"; failures=$((failures + 1)); fi
}
absent() { # absent NAME PATH
    if [ -e "$2" ]; then echo "FAIL $1: $2 exists"; failures=$((failures + 1)); else
        passed=$((passed + 1)); fi
}

check help 0 "$compile" --help
contains help "$tmp/stdout" "usage: autosp-compile"
check no_args 2 "$compile"
contains no_args "$tmp/stderr" "no input graph given"
check unknown_flag 2 "$compile" "$src/examples/llama-tiny.json" --frobnicate
contains unknown_flag "$tmp/stderr" "unknown option \"--frobnicate\""
check missing_file 2 "$compile" "$tmp/nope.json" -o "$tmp/nope.out.json"
contains missing_file "$tmp/stderr" "cannot open"
absent missing_file "$tmp/nope.out.json"

check roundtrip 0 "$compile" "$src/examples/llama-tiny.json" -o "$tmp/a.json"
check roundtrip_again 0 "$compile" "$tmp/a.json" -o "$tmp/b.json"
if cmp -s "$tmp/a.json" "$tmp/b.json"; then passed=$((passed + 1)); else
    echo "FAIL roundtrip: a.json and b.json differ"; failures=$((failures + 1)); fi

check info_8b 0 "$compile" "$src/examples/llama3.1-8b.json" --set S=8192 --info
contains info_8b "$tmp/stdout" "parameters: 8030261248 (8.030e+09)"
contains info_8b "$tmp/stdout" "attention"
contains info_8b "$tmp/stdout" "blk31.swiglu"
check info_unbound 2 "$compile" "$src/examples/llama-tiny.json" --info
contains info_unbound "$tmp/stderr" "symbol \"S\" is unbound (bind it, e.g. --set S=N)"
check set_bad_value 2 "$compile" "$src/examples/llama-tiny.json" --set S=abc
contains set_bad_value "$tmp/stderr" "--set S: \"abc\" is not a positive integer"
check set_unknown 2 "$compile" "$src/examples/llama-tiny.json" --set T=4
contains set_unknown "$tmp/stderr" "symbol \"T\" is not declared"
check set_saved 0 "$compile" "$src/examples/llama-tiny.json" --set S=128 -o "$tmp/bound.json"
contains set_saved "$tmp/bound.json" "\"S\": 128"

check autodiff 0 "$compile" "$src/examples/llama-tiny.json" --autodiff --set S=32 --info -o "$tmp/joint.json"
contains autodiff "$tmp/stdout" "attention_backward"
contains autodiff "$tmp/joint.json" "\"blk1.w2.grad\""
check autodiff_reload 0 "$compile" "$tmp/joint.json"

# activation checkpointing and memory planning
check ac_info 0 "$compile" "$src/examples/llama-tiny.json" --autodiff --set S=64 --ac full --info
contains ac_info "$tmp/stdout" "checkpointing (full):"
contains ac_info "$tmp/stdout" "memory plan of one rank (ZeRO-0):"
check ac_joint 0 "$compile" "$src/examples/llama-tiny.json" --autodiff --set S=64 -o "$tmp/sac.json"
contains ac_joint "$tmp/sac.json" ".recompute\""
check ac_bad 2 "$compile" "$src/examples/llama-tiny.json" --autodiff --set S=64 --ac selective
contains ac_bad "$tmp/stderr" "--ac: checkpointing policy \"selective\": expected none, full, mincut-conservative or sac"
check ac_budget_bad 2 "$compile" "$src/examples/llama-tiny.json" --autodiff --set S=64 --recompute-budget -1
contains ac_budget_bad "$tmp/stderr" "--recompute-budget \"-1\": expected a fraction"
check ac_unbound 2 "$compile" "$src/examples/llama-tiny.json" --autodiff
contains ac_unbound "$tmp/stderr" "checkpoint: policy sac needs every symbol bound for its cost model: symbol \"S\" is unbound"
check ac_none_unbound 0 "$compile" "$src/examples/llama-tiny.json" --autodiff --ac none -o "$tmp/none.json"
check max_seq_no_mem 2 "$compile" "$src/examples/llama-tiny.json" --max-seq
contains max_seq_no_mem "$tmp/stderr" "--max-seq needs --mem BYTES"
check mem_no_max_seq 2 "$compile" "$src/examples/llama-tiny.json" --mem 1GiB
contains mem_no_max_seq "$tmp/stderr" "--mem is only used by --max-seq"
check mem_bad 2 "$compile" "$src/examples/llama-tiny.json" --max-seq --mem 12parsecs
contains mem_bad "$tmp/stderr" "--mem \"12parsecs\": expected a size such as 80GiB"
check max_seq 0 "$compile" "$src/examples/llama-small.json" --sp 2 --max-seq --mem 256MiB --seq-step 512
contains max_seq "$tmp/stdout" "2 ranks of 0.25 GiB, ZeRO-1"
contains max_seq "$tmp/stdout" "mincut-conservative     2   2x1    1"
contains max_seq "$tmp/stdout" "sac                     1   1x1    2"
check max_seq_tiny 0 "$compile" "$src/examples/llama-small.json" --max-seq --mem 1MiB
contains max_seq_tiny "$tmp/stdout" "(nothing fits: the optimizer state alone exceeds the 1.00 MiB of a rank; parameters 0.02 + gradients 0.02 + f32 master 0.00 + AdamW 0.05 = 0.10 GiB before any activation)"
check max_seq_params 0 "$compile" "$src/examples/llama-small.json" --sp 2 --max-seq --mem 60MiB --zero 0
contains max_seq_params "$tmp/stdout" "(nothing fits: parameters 0.02 + gradients 0.02 + f32 master 0.00 + AdamW 0.05 = 0.10 GiB before any activation)"
check mlp_tile_bad 2 "$compile" "$src/examples/llama-tiny.json" --autodiff --mlp-tile lots
contains mlp_tile_bad "$tmp/stderr" '--mlp-tile "lots": expected planned, off or a number of rows'
check mlp_tile 0 "$compile" "$src/examples/llama-tiny.json" --set B=1 --set S=64 --autodiff --mlp-tile 16 -o "$tmp/tiled.json" --dot "$tmp/tiled.dot"
contains mlp_tile "$tmp/tiled.json" '"op": "mlp_backward"'
contains mlp_tile "$tmp/tiled.dot" 'label="blk0.down\nmlp\ntile 16 rows"'
check norm_tile_bad 2 "$compile" "$src/examples/llama-tiny.json" --autodiff --norm-tile -3
contains norm_tile_bad "$tmp/stderr" '--norm-tile "-3": expected planned, off or a number of rows'
check norm_tile 0 "$compile" "$src/examples/llama-tiny.json" --set B=1 --set S=64 --autodiff --norm-tile 8 -o "$tmp/normed.json" --dot "$tmp/normed.dot"
contains norm_tile "$tmp/normed.json" '"op": "rmsnorm_linear_backward"'
contains norm_tile "$tmp/normed.dot" 'label="blk0.q\nrmsnorm_linear\ntile 8 rows"'
check max_seq_zero3 0 "$compile" "$src/examples/llama-small.json" --sp 2 --max-seq --mem 256MiB --zero 3
contains max_seq_zero3 "$tmp/stdout" "2 ranks of 0.25 GiB, ZeRO-3"
contains max_seq_zero3 "$tmp/stdout" "full                    2   2x1    1      20480"
# the guided search (a compile's structure re-planned to predict, answer and next candidate
# compiled) answers exactly what compiling every candidate of a bisection answers
for args in "--sp 2 --mem 256MiB --seq-step 512" "--sp 2 --mem 256MiB --zero 3" \
    "--sp 2 --mem 200MiB --zero 2 --seq-step 256" "--mem 160MiB" "--sp 2 --mem 1MiB"; do
    # shellcheck disable=SC2086 # args are words
    check max_seq_guided 0 "$compile" "$src/examples/llama-small.json" --max-seq $args
    contains max_seq_guided "$tmp/stdout" "search: "
    head -n -1 "$tmp/stdout" >"$tmp/guided.txt"
    # shellcheck disable=SC2086
    check max_seq_exhaustive 0 "$compile" "$src/examples/llama-small.json" --max-seq $args --exhaustive
    contains max_seq_exhaustive "$tmp/stdout" "(exhaustive)"
    head -n -1 "$tmp/stdout" >"$tmp/exhaustive.txt"
    if cmp -s "$tmp/guided.txt" "$tmp/exhaustive.txt"; then passed=$((passed + 1)); else
        echo "FAIL max_seq_guided ($args): differs from --exhaustive"
        diff "$tmp/guided.txt" "$tmp/exhaustive.txt"; failures=$((failures + 1)); fi
done
check exhaustive_alone 2 "$compile" "$src/examples/llama-tiny.json" --exhaustive
contains exhaustive_alone "$tmp/stderr" "--exhaustive is only used by --max-seq"
check max_seq_short 0 "$compile" "$src/examples/llama-small.json" --max-seq --mem 160MiB
contains max_seq_short "$tmp/stdout" "none                    1   1x1    1          -   (not even S = 1024 fits: it needs 0.23 GiB, 0.10 of them fixed)"
# past the heads (llama-tiny has 4): each sp as the most Ulysses they allow, or the ring given
check max_seq_heads 0 "$compile" "$src/examples/llama-tiny.json" --sp 8 --max-seq --mem 64MiB
contains max_seq_heads "$tmp/stdout" "full                    4   4x1    2"
contains max_seq_heads "$tmp/stdout" "full                    8   4x2    1"
check max_seq_ring 0 "$compile" "$src/examples/llama-tiny.json" --sp 8 --ring 4 --max-seq \
    --mem 64MiB --seq-step 1000
contains max_seq_ring "$tmp/stdout" "none                    4   1x4    2"
contains max_seq_ring "$tmp/stdout" "sac                     8   2x4    1"
if grep -q "^none  *[12]  " "$tmp/stdout"; then
    echo "FAIL max_seq_ring: a row for an sp the ring does not divide"; failures=$((failures + 1))
else passed=$((passed + 1)); fi
if awk '$5 ~ /^[0-9]+$/ && $5 % 8 != 0 { bad = 1 } END { exit !bad }' "$tmp/stdout"; then
    echo "FAIL max_seq_ring: an S that would need padding"; failures=$((failures + 1))
else passed=$((passed + 1)); fi

# sequence parallelism: the per-rank program, its collectives, and every validation error
check sp 0 "$compile" "$src/examples/llama-tiny.json" --sp 2 --autodiff --set S=64 --info \
    -o "$tmp/sp2.json" --dot "$tmp/sp2.dot"
contains sp "$tmp/stdout" "per-rank program: sp = 2, dp = 1 (2 ranks)"
contains sp "$tmp/stdout" "blk0.attn.qkv_to_heads             all_to_all sp        2  3 x"
contains sp "$tmp/stdout" "grad_sync.bucket0                  all_reduce world"
contains sp "$tmp/sp2.json" "\"parallel\": {\"sp\": 2, \"dp\": 1}"
contains sp "$tmp/sp2.dot" "color=\"#8e44ad\""
check sp_reload 0 "$compile" "$tmp/sp2.json"
check sp_gqa_repeat 0 "$compile" "$src/examples/llama-tiny-gqa.json" --sp 4 --ulysses 4 --set S=64 --info
contains sp_gqa_repeat "$tmp/stdout" "blk0.k_rope.repeat.heads"
check sp_heads 2 "$compile" "$src/examples/llama-tiny.json" --sp 3 --ring 1
contains sp_heads "$tmp/stderr" "ulysses: node \"blk0.attn\" (attention): 4 heads are not divisible by sp = 3"
# S that sp does not divide: padded to the next multiple (pad_sequence), recorded in the JSON
check sp_pad 0 "$compile" "$src/examples/llama-tiny.json" --sp 4 --set S=30 -o "$tmp/pad.json"
contains sp_pad "$tmp/pad.json" '"padded_from": 30'
contains sp_pad "$tmp/pad.json" '"S": 32'
check sp_more_than_s 2 "$compile" "$src/examples/llama-tiny.json" --sp 4 --set S=3
contains sp_more_than_s "$tmp/stderr" "sp = 4 is more than the 3 tokens of the sequence"
# 2-D sequence parallelism: --ulysses x --ring = --sp
check ring_json 0 "$compile" "$src/examples/llama-tiny.json" --sp 6 --ring 3 --set S=1000 -o "$tmp/ring.json"
contains ring_json "$tmp/ring.json" '"ring": 3, "padded_from": 1000'
contains ring_json "$tmp/ring.json" '"op": "ring_attention"'
# --sp alone: the planner's mesh; 3 ranks on 4 heads can only be a ring of 3
check sp_auto 0 "$compile" "$src/examples/llama-tiny.json" --sp 3 --set B=1 --set S=96 --autodiff --info -o "$tmp/auto.json"
contains sp_auto "$tmp/stdout" "not possible: ulysses: node"
contains sp_auto "$tmp/stdout" "<- chosen"
contains sp_auto "$tmp/auto.json" '"ring": 3'
# --info: the padding and each ring position's attention work (zigzag balances it); --dot the ring
check ring_info 0 "$compile" "$src/examples/llama-tiny.json" --sp 6 --ring 3 --set B=1 --set S=1000 --info --dot "$tmp/ring.dot"
contains ring_info "$tmp/stdout" "sequence: 1000 tokens fed, padded to 1002 (2 per row at its end: no label, hidden from attention)"
contains ring_info "$tmp/stdout" "2-D sequence parallelism: ulysses 2 x ring 3"
contains ring_info "$tmp/stdout" "max / min                     1.000                4.988"
contains ring_info "$tmp/ring.dot" 'label="sp 6 = ulysses 2 x ring 3 (zigzag)"'
contains ring_info "$tmp/ring.dot" 'ring_attention\nring group of 3'
contains ring_info "$tmp/ring.dot" 'all_to_all\nulysses group of 2'
check ring_divides 2 "$compile" "$src/examples/llama-tiny.json" --sp 4 --ring 3
contains ring_divides "$tmp/stderr" "--ring 3 does not divide --sp 4 (sp = ulysses x ring)"
check ring_product 2 "$compile" "$src/examples/llama-tiny.json" --sp 4 --ulysses 2 --ring 3
contains ring_product "$tmp/stderr" "--ulysses 2 x --ring 3 is 6, not --sp 4"
check ring_heads 2 "$compile" "$src/examples/llama-tiny.json" --ulysses 8 --ring 1
contains ring_heads "$tmp/stderr" "4 heads are not divisible by sp = 8"
check ring_u_heads 2 "$compile" "$src/examples/llama-tiny.json" --ulysses 8 --ring 2
contains ring_u_heads "$tmp/stderr" "4 heads are not divisible by ulysses = 8"
check sp_twice 2 "$compile" "$tmp/sp2.json" --sp 2
contains sp_twice "$tmp/stderr" "is already a per-rank program (sp = 2, dp = 1)"
check sp_zero 2 "$compile" "$src/examples/llama-tiny.json" --sp 0
cat > "$tmp/merge.json" <<'JSON'
{"format": "autosp-graph", "version": 1, "name": "merge", "symbols": {"B": 1, "S": null},
 "inputs": [{"name": "tokens", "dtype": "i32", "shape": ["B", "S"], "role": "tokens", "seq_dim": 1}],
 "params": [{"name": "emb", "dtype": "f32", "shape": [16, 8]}],
 "nodes": [{"name": "x", "op": "embedding", "inputs": ["tokens", "emb"]},
           {"name": "flat", "op": "reshape", "inputs": ["x"], "attrs": {"shape": ["B*S", 8]}}],
 "outputs": ["flat"]}
JSON
check sp_no_rule 2 "$compile" "$tmp/merge.json" --sp 2
contains sp_no_rule "$tmp/stderr" "sp_shard: node \"flat\" (reshape): the sequence dim 1 (S) of input \"x\" does not survive the reshape"
cat > "$tmp/mlp.json" <<'JSON'
{"format": "autosp-graph", "version": 1, "name": "mlp", "symbols": {"B": 1, "S": null},
 "inputs": [{"name": "tokens", "dtype": "i32", "shape": ["B", "S"], "role": "tokens", "seq_dim": 1},
            {"name": "labels", "dtype": "i32", "shape": ["B", "S"], "role": "labels", "seq_dim": 1}],
 "params": [{"name": "emb", "dtype": "f32", "shape": [16, 8]}, {"name": "w", "dtype": "f32", "shape": [16, 8]}],
 "nodes": [{"name": "x", "op": "embedding", "inputs": ["tokens", "emb"]},
           {"name": "logits", "op": "linear", "inputs": ["x", "w"]},
           {"name": "loss", "op": "cross_entropy", "inputs": ["logits", "labels"]}],
 "outputs": ["loss"]}
JSON
check sp_no_attention 2 "$compile" "$tmp/mlp.json" --sp 2
contains sp_no_attention "$tmp/stderr" "ulysses: graph \"mlp\" has no attention on sequence-split inputs"
check dp_mlp 0 "$compile" "$tmp/mlp.json" --dp 2 --autodiff --set S=8 --info
contains dp_mlp "$tmp/stdout" "loss.targets                       all_reduce world     2"
check dot 0 "$compile" "$src/examples/gpt2-tiny.json" --dot "$tmp/g.dot"
contains dot "$tmp/g.dot" "digraph \"gpt2-tiny\""

# every bad graph: exit 2, its message on stderr, and no output file
for bad in "$src"/tests/bad/*.json; do
    base=$(basename "$bad" .json)
    check "bad_$base" 2 "$compile" "$bad" -o "$tmp/bad.json" --dot "$tmp/bad.dot"
    contains "bad_$base" "$tmp/stderr" "$(head -n 1 "$src/tests/bad/$base.err")"
    absent "bad_$base" "$tmp/bad.json"
    absent "bad_$base" "$tmp/bad.dot"
done
# two outputs are written together or not at all
check half_write 2 "$compile" "$src/examples/llama-tiny.json" -o "$tmp/whole.json" --dot "$tmp/missing/g.dot"
contains half_write "$tmp/stderr" "cannot write"
absent half_write "$tmp/whole.json"
# a failure never clobbers an existing output
echo keep >"$tmp/keep.json"
check no_clobber 2 "$compile" "$src/tests/bad/cycle.json" -o "$tmp/keep.json"
contains no_clobber "$tmp/keep.json" "keep"

check model_list 0 "$model" --list
contains model_list "$tmp/stdout" "llama3.1-8b"
check model_stdout 0 "$model" llama-tiny
cp "$tmp/stdout" "$tmp/tiny.json"
check model_compiles 0 "$compile" "$tmp/tiny.json" --set S=64 --info
check model_unknown 2 "$model" llama-huge -o "$tmp/huge.json"
absent model_unknown "$tmp/huge.json"
check model_bad_config 2 "$model" llama --layers 2 --dim 100 --heads 3 --ffn 64 --vocab 256 -o "$tmp/c.json"
contains model_bad_config "$tmp/stderr" "dim=100 is not a multiple of n_heads=3"
absent model_bad_config "$tmp/c.json"

echo "cli: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
