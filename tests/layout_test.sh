#!/bin/sh
# The architecture as the folders hold it, read from the #include lines of the sources:
#   (a) the core (src/base, src/ir, src/io, src/plan, src/models, passes/: libautosp-core)
#       includes nothing of the runtime: no header of src/backends, src/runtime, src/comm,
#       src/train,
#       src/data, no <cblas.h> or <mpi.h>, and no public header of the runtime (autosp/
#       runtime.h, train.h, eval.h, comm.h, comm_mpi.h, data.h, autosp.h), also through the public
#       headers it includes;
#   (b) MPI's headers (<mpi.h>, "autosp/comm_mpi.h") only in include/autosp/comm_mpi.h,
#       src/comm/comm_mpi.c, tests/ and bench/; BLAS headers (<cblas.h>, any *blas*/lapack*)
#       only in src/backends/cpu/, tests/ and bench/; tools/ and examples/ use neither;
#   (c) no include cycle between the folders of src/ and passes/ (the cycle is printed, with
#       the lines that make each edge);
#   (d) tests/ref/ (the naive reference kernels) is included and built by tests/ alone.
# A quoted include resolves as the compiler finds it: beside the file, then src/, the source
# root, include/. Plain sh and awk.
# usage: layout_test.sh SOURCE_DIR
set -eu
cd "$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Known exceptions, each "FILE HEADER" as written in its #include. A listed line that no longer
# exists fails the test, so the list only shrinks. None today: the one there was
# (src/runtime <-> src/backends/cpu) ended when the communicator moved to src/comm and the
# executor opened the backend's region through the backend interface.
known_edges=''

# Every #include of the C sources: FILE LINE KIND (q "..." or a <...>) HEADER RESOLVED (the
# file in the tree, or - for a system header).
find src passes include tests bench tools examples -name '*.[ch]' | sort >"$tmp/files"
# shellcheck disable=SC2016 # the awk programs are in single quotes
xargs awk '
    /^[ \t]*#[ \t]*include[ \t]*[<"]/ {
        s = $0
        sub(/^[ \t]*#[ \t]*include[ \t]*/, "", s)
        kind = substr(s, 1, 1) == "<" ? "a" : "q"
        s = substr(s, 2)
        sub(/[>"].*/, "", s)
        print FILENAME, FNR, kind, s
    }' <"$tmp/files" >"$tmp/raw"
while read -r file line kind header; do
    res=-
    if [ "$kind" = q ]; then
        for c in "${file%/*}/$header" "src/$header" "$header" "include/$header"; do
            if [ -f "$c" ]; then
                case $c in # "a/b/../c" is a/c
                *..*) c=$(echo "$c" | sed -e ':a' -e 's|[^/.][^/]*/\.\./||' -e 'ta') ;;
                esac
                res=$c
                break
            fi
        done
    fi
    echo "$file $line $kind $header $res"
done <"$tmp/raw" >"$tmp/includes"
echo "read $(wc -l <"$tmp/files") files, $(wc -l <"$tmp/includes") #include lines"

awk -v known="$known_edges" '
function core(f) { return f ~ /^(src\/(base|ir|io|plan|models)|passes)\// }
function folder(f) { sub(/\/[^\/]*$/, "", f); return f }
function allowed(f, list,    n, i, a) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++)
        if (substr(f, 1, length(a[i])) == a[i]) return 1
    return 0
}
function keys(arr,    n, i, j, k, t, s) { # the keys of arr, sorted, each after a space
    n = 0
    for (k in arr) t[++n] = k
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && t[j - 1] > t[j]; j--) { k = t[j]; t[j] = t[j - 1]; t[j - 1] = k }
    s = ""
    for (i = 1; i <= n; i++) s = s " " t[i]
    return s
}
function chain(h,    s) { # the includes from a core file to public header h
    s = h
    while (h in via) { h = via[h]; s = h " -> " s }
    return s
}
function dfs(u,    n, i, v, next_, j, s) {
    color[u] = 1
    stack[++depth] = u
    n = split(adj[u], next_, " ")
    for (i = 1; i <= n; i++) {
        v = next_[i]
        if (color[v] == 1) { # back edge: the stack from v to u, then v
            for (j = depth; stack[j] != v; j--) ;
            s = ""
            for (; j <= depth; j++) s = s stack[j] " -> "
            cycles[++ncycles] = s v
        } else if (!color[v]) dfs(v)
    }
    depth--
    color[u] = 2
}
BEGIN { split(known, k, " "); nknown = 0
    for (i = 1; i in k; i += 2) { known_edge[k[i] " " k[i + 1]] = 1; nknown++ } }
{
    file = $1; line = $2; kind = $3; hdr = $4; res = $5
    where = file ":" line ": #include " (kind == "a" ? "<" hdr ">" : "\"" hdr "\"")
    # (a) the core
    if (core(file)) {
        core_files[file] = 1; core_incs++
        if (res ~ /^src\/(backends|runtime|comm|train|data)\//)
            bad_core[++nbad_core] = where " (" res ", the runtime)"
        if (kind == "a" && (hdr ~ /blas|lapack/ || hdr ~ /^mpi/))
            bad_core[++nbad_core] = where
        if (res ~ /^include\// && !(res in via)) { via[res] = file; reached[res] = 1 }
    }
    if (file ~ /^include\//) { pub_incs[file] = pub_incs[file] " " res
        if (kind == "a") pub_sys[file] = pub_sys[file] " " hdr }
    # (b) MPI and BLAS headers
    if ((kind == "a" && hdr ~ /^mpi/) || hdr == "autosp/comm_mpi.h") {
        if (allowed(file, "include/autosp/comm_mpi.h src/comm/comm_mpi.c tests/ bench/"))
            mpi_ok[file] = 1
        else bad_mpi[++nbad_mpi] = where
    }
    if (kind == "a" && hdr ~ /blas|lapack/) {
        if (allowed(file, "src/backends/cpu/ tests/ bench/")) blas_ok[file] = 1
        else bad_blas[++nbad_blas] = where
    }
    # (c) the folder graph of src/ and passes/
    if (file ~ /^(src|passes)\// && res ~ /^(src|passes)\// && folder(file) != folder(res)) {
        if ((file " " hdr) in known_edge) { known_seen[file " " hdr] = 1; next }
        e = folder(file) " " folder(res)
        if (!(e in edge_where)) { adj[folder(file)] = adj[folder(file)] " " folder(res); nedges++ }
        edge_where[e] = edge_where[e] " " file ":" line
        folders[folder(file)] = folders[folder(res)] = 1
    }
    # (d) tests/ref
    if (file !~ /^tests\// && (res ~ /^tests\/ref\// || hdr ~ /(^|\/)ref(\.h|\/)/))
        bad_ref[++nbad_ref] = where
    if (file ~ /^tests\// && res ~ /^tests\/ref\//) ref_users[file] = 1
}
END {
    # (a) the public headers the core reaches, to their closure
    do {
        changed = 0
        for (h in reached) frontier[h] = 1
        for (h in frontier) {
            n = split(pub_incs[h], a, " ")
            for (i = 1; i <= n; i++)
                if (a[i] ~ /^include\// && !(a[i] in reached)) {
                    reached[a[i]] = 1; via[a[i]] = h; changed = 1
                }
            delete frontier[h]
        }
    } while (changed)
    pubs = keys(reached)
    gsub(/include\//, "", pubs)
    for (h in reached) {
        if (h ~ /^include\/autosp\/(runtime|train|eval|comm|comm_mpi|data|autosp)\.h$/)
            bad_core[++nbad_core] = chain(h) " (a public header of the runtime)"
        n = split(pub_sys[h], a, " ")
        for (i = 1; i <= n; i++)
            if (a[i] ~ /blas|lapack/ || a[i] ~ /^mpi/)
                bad_core[++nbad_core] = chain(h) " includes <" a[i] ">"
    }
    nfiles = 0
    for (f in core_files) nfiles++
    if (nbad_core) {
        print "FAIL (a) the core includes the runtime:"
        for (i = 1; i <= nbad_core; i++) print "    " bad_core[i]
    } else
        print "ok (a) " nfiles " core files (" core_incs " includes) include nothing of the " \
              "runtime, no <cblas.h>, no <mpi.h>; the public headers they reach:" pubs
    # (b)
    s = keys(mpi_ok)
    if (nbad_mpi) {
        print "FAIL (b) MPI headers outside include/autosp/comm_mpi.h, src/comm/comm_mpi.c, " \
              "tests/, bench/:"
        for (i = 1; i <= nbad_mpi; i++) print "    " bad_mpi[i]
    } else print "ok (b) MPI headers only in:" s
    s = keys(blas_ok)
    if (nbad_blas) {
        print "FAIL (b) BLAS headers outside src/backends/cpu/, tests/, bench/:"
        for (i = 1; i <= nbad_blas; i++) print "    " bad_blas[i]
    } else print "ok (b) BLAS headers only in:" s
    # (c)
    nf = split(keys(folders), sorted_folders, " ")
    for (i = 1; i <= nf; i++) if (!color[sorted_folders[i]]) dfs(sorted_folders[i])
    if (ncycles) {
        print "FAIL (c) include cycles between folders:"
        for (i = 1; i <= ncycles; i++) {
            print "    " cycles[i]
            n = split(cycles[i], a, " -> ")
            for (j = 1; j < n; j++)
                print "        " a[j] " -> " a[j + 1] ":" edge_where[a[j] " " a[j + 1]]
        }
    } else {
        s = ""
        for (i = 1; i <= nf; i++) {
            f = sorted_folders[i]
            if (adj[f] != "") s = s "; " f " ->" adj[f]
        }
        print "ok (c) no include cycle among " nf " folders (" nedges " edges" s ")"
    }
    for (e in known_edge) {
        if (e in known_seen) print "ok (c) known exception, not counted: " e
        else print "FAIL (c) the known exception \"" e "\" is gone: remove it from known_edges"
    }
    # (d)
    s = keys(ref_users)
    if (nbad_ref) {
        print "FAIL (d) tests/ref/ used outside tests/:"
        for (i = 1; i <= nbad_ref; i++) print "    " bad_ref[i]
    } else print "ok (d) tests/ref/ is included only by tests:" s
}' "$tmp/includes" >"$tmp/report"

# (d) and no build file outside tests/ builds or links the reference kernels
find . -name CMakeLists.txt ! -path './tests/*' ! -path './build*' | sort >"$tmp/cmakefiles"
if xargs grep -n 'tests/ref\|ref/ref\|autosp_kernels_ref' <"$tmp/cmakefiles" >"$tmp/refcmake"; then
    echo "FAIL (d) a CMakeLists.txt outside tests/ builds tests/ref/:" >>"$tmp/report"
    sed 's/^/    /' "$tmp/refcmake" >>"$tmp/report"
else
    echo "ok (d) no CMakeLists.txt outside tests/ builds tests/ref/" \
        "($(wc -l <"$tmp/cmakefiles") read)" >>"$tmp/report"
fi

cat "$tmp/report"
passed=$(grep -c '^ok' "$tmp/report" || true)
failures=$(grep -c '^FAIL' "$tmp/report" || true)
echo "layout: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
