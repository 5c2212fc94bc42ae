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
