#!/usr/bin/env bash
# Runs tenantgate's benchmarks (package ./bench) and prints one Markdown table
# per benchmark group. Each row shows the median ns/op over BENCH_COUNT runs,
# the spread of those runs, B/op, allocs/op, the ratio of its ns/op to the
# group's first row (the baseline) and any extra metrics the benchmark
# reports (MB/s, sts_calls/op, latency percentiles).
#
#   bench/run.sh                 # everything, -count=3
#   BENCH=Sign bench/run.sh      # only the matching benchmarks
#   BENCH_COUNT=1 BENCH_TIME=300ms bench/run.sh   # quick look
#   BENCH_RAW=out.txt bench/run.sh                # keep the raw go test output
set -euo pipefail
cd "$(dirname "$0")/.."

count=${BENCH_COUNT:-3}
benchtime=${BENCH_TIME:-1s}
pattern=${BENCH:-.}
raw=${BENCH_RAW:-$(mktemp)}
[[ -n ${BENCH_RAW:-} ]] || trap 'rm -f "$raw"' EXIT

start=$(date +%s)
if ! go test -run='^$' -bench="$pattern" -benchmem -count="$count" -benchtime="$benchtime" \
	-timeout=15m ./bench/ >"$raw" 2>&1; then
	cat "$raw" >&2
	echo "bench/run.sh: go test failed" >&2
	exit 1
fi
elapsed=$(($(date +%s) - start))

cpu=$(awk -F': ' '/^cpu:/ {print $2; exit}' "$raw")
echo "# tenantgate benchmarks"
echo
echo "$(date -u +%Y-%m-%d), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), ${cpu:-unknown cpu}, $(nproc) cores;" \
	"-count=$count -benchtime=$benchtime, ${elapsed}s total. Median of the runs; spread = (max-min)/median."

awk '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j+1] = a[j]; a[j+1] = t }
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function spread(list,   a, n, i, lo, hi, m) {
	n = split(list, a, " "); lo = a[1]; hi = a[1]
	for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
	m = median(list)
	return (m > 0 && n > 1) ? sprintf("%.1f%%", 100 * (hi - lo) / m) : "-"
}
function human(ns) {
	if (ns < 1e3) return sprintf("%.1f ns", ns)
	if (ns < 1e6) return sprintf("%.2f µs", ns / 1e3)
	if (ns < 1e9) return sprintf("%.2f ms", ns / 1e6)
	return sprintf("%.2f s", ns / 1e9)
}
function ratio(x, base,   r) {
	if (base <= 0) return "-"
	r = x / base
	if (r >= 100) return sprintf("%.0fx", r)
	if (r >= 0.1) return sprintf("%.2fx", r)
	return sprintf("%.2gx", r)
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	grp = name; row = "(whole)"
	if (index(name, "/") > 0) { grp = substr(name, 1, index(name, "/") - 1); row = substr(name, index(name, "/") + 1) }
	if (!(grp in seenGrp)) { seenGrp[grp] = 1; groups[++ng] = grp }
	if (!((grp, row) in seenRow)) { seenRow[grp, row] = 1; rows[grp, ++nr[grp]] = row }
	for (i = 3; i < NF; i += 2) {
		unit = $(i+1)
		vals[grp, row, unit] = vals[grp, row, unit] " " $i
		if (unit != "ns/op" && unit != "B/op" && unit != "allocs/op" && !((grp, row, unit) in seenUnit)) {
			seenUnit[grp, row, unit] = 1; extra[grp, row] = extra[grp, row] " " unit
		}
	}
}
END {
	for (g = 1; g <= ng; g++) {
		grp = groups[g]
		base = median(vals[grp, rows[grp, 1], "ns/op"])
		printf "\n## %s (baseline: %s)\n\n", grp, rows[grp, 1]
		printf "| %-44s | %14s | %10s | %6s | %9s | %9s | %10s | %s |\n", "benchmark", "ns/op", "time/op", "spread", "B/op", "allocs/op", "ratio", "other"
		printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "---------------:", "-----------:", "-------:", "----------:", "----------:", "-----------:", "------"
		for (r = 1; r <= nr[grp]; r++) {
			row = rows[grp, r]
			ns = median(vals[grp, row, "ns/op"])
			other = ""
			n = split(extra[grp, row], units, " ")
			for (u = 1; u <= n; u++) other = other sprintf("%s%.4g %s", (u > 1 ? ", " : ""), median(vals[grp, row, units[u]]), units[u])
			bop = ((grp, row, "B/op") in vals) ? sprintf("%.0f", median(vals[grp, row, "B/op"])) : "-"
			aop = ((grp, row, "allocs/op") in vals) ? sprintf("%.0f", median(vals[grp, row, "allocs/op"])) : "-"
			label = row; gsub(/_/, " ", label)
			printf "| %-44s | %14.1f | %10s | %6s | %9s | %9s | %10s | %s |\n", label, ns, human(ns), spread(vals[grp, row, "ns/op"]), bop, aop, ratio(ns, base), other
		}
	}
}' "$raw"
