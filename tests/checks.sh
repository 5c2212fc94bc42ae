# checks.sh: what symbols_test.sh and install_test.sh share, sourced after they set $tmp (a
# scratch folder): the counters, one "ok ..." or "FAIL ..." line per check, the closing line.
: "${tmp:?checks.sh: set tmp to a scratch folder first}"
passed=0 failures=0
pass() {
    echo "ok $*"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}
# run_ok LABEL PROGRAM: PROGRAM runs and exits 0 (ok with its last line of output), else FAIL
# with its exit status and all its output.
run_ok() {
    rc=0
    "$2" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$1 runs: $(tail -n 1 "$tmp/out")"
    else
        fail "$1 exited $rc:"
        sed 's/^/    /' "$tmp/out"
    fi
}
# summary NAME: "NAME: P passed, F failed"; the status is 0 when nothing failed.
summary() {
    echo "$1: $passed passed, $failures failed"
    [ "$failures" -eq 0 ]
}
