#!/bin/sh
# The graphs in examples/ are exactly what autosp-model generates (regenerate them with
# `autosp-model PRESET -o examples/PRESET.json` after changing the model builder; llama-tiny-docs
# is llama-tiny with --segment-ids).
# usage: examples_test.sh AUTOSP_MODEL EXAMPLES_DIR
set -u
model=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0
for preset in llama-tiny llama-tiny-gqa llama-small gpt2-tiny llama3.2-1b llama3.1-8b llama3.1-70b gpt2-124m; do
    if "$model" "$preset" -o "$tmp/$preset.json" && cmp -s "$tmp/$preset.json" "$dir/$preset.json"; then
        passed=$((passed + 1))
    else
        echo "FAIL $preset: examples/$preset.json differs from autosp-model $preset"
        failures=$((failures + 1))
    fi
done
# the document-masked llama-tiny of the README's main command
if "$model" llama-tiny --segment-ids --name llama-tiny-docs -o "$tmp/docs.json" &&
    cmp -s "$tmp/docs.json" "$dir/llama-tiny-docs.json"; then
    passed=$((passed + 1))
else
    echo "FAIL llama-tiny-docs: examples/llama-tiny-docs.json differs from autosp-model llama-tiny --segment-ids --name llama-tiny-docs"
    failures=$((failures + 1))
fi
echo "examples: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
