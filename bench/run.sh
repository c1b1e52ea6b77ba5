#!/usr/bin/env bash
# Runs tenantgate's benchmarks (package ./bench) and prints one Markdown table
# per benchmark group. Each row shows the median ns/op over BENCH_COUNT runs,
# the spread of those runs, B/op, allocs/op, the ratio of its ns/op to the
# group's first row (the baseline) and any extra metrics the benchmark
# reports (MB/s, sts_calls/op, p50_ms/p99_ms), with their own ratio to the
# baseline row when it reports the same metric.
#
# The end-to-end group (BenchmarkE2E: Envoy + tenantgate + fake AWS on
# loopback) runs separately with exactly BENCH_E2E_N sequential requests per
# row; it is skipped when no Envoy is found (set ENVOY_BIN).
#
#   bench/run.sh                                  # everything
#   BENCH=Sign bench/run.sh                       # only matching groups
#   BENCH_E2E=0 bench/run.sh                      # without the end-to-end group
#   BENCH_COUNT=1 BENCH_TIME=300ms bench/run.sh   # quick look
#   BENCH_RAW=out.txt bench/run.sh                # keep the raw go test output
#
# Then the tenant hop side by side (bench/hop: Envoy alone, Envoy's own
# SigV4 signer, tenantgate's ext_authz + ext_proc, ext_authz + Envoy's
# signer; wrk through the real Envoy, ghz on the Check alone). It needs wrk
# and ghz (`make bench` installs them) and takes about 12 minutes:
#   BENCH_HOP=0 bench/run.sh                      # without it
#   BENCH_HOP_ARGS=-quick bench/run.sh            # its quick mode (about 1 minute)
#   go run ./bench/hop -h                         # its own options
set -euo pipefail
cd "$(dirname "$0")/.."

count=${BENCH_COUNT:-3}
benchtime=${BENCH_TIME:-1s}
pattern=${BENCH:-.}
raw=${BENCH_RAW:-$(mktemp)}
[[ -n ${BENCH_RAW:-} ]] || trap 'rm -f "$raw"' EXIT

e2e=${BENCH_E2E:-1}
e2e_n=${BENCH_E2E_N:-200}
e2e_count=${BENCH_E2E_COUNT:-1}

run() {
	if ! go test -run='^$' -benchmem -timeout=15m "$@" ./bench/ >>"$raw" 2>&1; then
		cat "$raw" >&2
		echo "bench/run.sh: go test $* failed" >&2
		exit 1
	fi
}

: >"$raw"
start=$(date +%s)
run -bench="$pattern" -skip='^BenchmarkE2E$' -count="$count" -benchtime="$benchtime"
e2e_note=""
if [[ $e2e == 1 ]]; then
	# The end-to-end group depends on Envoy and the whole local stack; when it
	# cannot run, the other tables are still printed with the reason.
	e2e_raw=$(mktemp)
	if go test -v -run='^$' -benchmem -timeout=10m -bench='^BenchmarkE2E$' -count="$e2e_count" \
		-benchtime="${e2e_n}x" ./bench/ >"$e2e_raw" 2>&1; then
		cat "$e2e_raw" >>"$raw"
		if grep -q -- '--- SKIP: BenchmarkE2E' "$e2e_raw"; then
			e2e_note="E2E: skipped: $(grep -m1 -E 'e2e_test.go:[0-9]+:' "$e2e_raw" | sed 's/^ *//')"
		fi
	else
		e2e_note="E2E: FAILED: $(grep -m1 -E 'e2e_test.go:[0-9]+:' "$e2e_raw" | sed 's/^ *//')"
		[[ -n ${BENCH_RAW:-} ]] && cat "$e2e_raw" >>"$raw"
	fi
	rm -f "$e2e_raw"
fi
elapsed=$(($(date +%s) - start))

cpu=$(awk -F': ' '/^cpu:/ {print $2; exit}' "$raw")
echo "# tenantgate benchmarks"
echo
echo "$(date -u +%Y-%m-%d), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), ${cpu:-unknown cpu}, $(nproc) cores;" \
	"-count=$count -benchtime=$benchtime (end-to-end: ${e2e_n} requests per row, -count=$e2e_count), ${elapsed}s total." \
	"Median of the runs; spread = (max-min)/median."

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
	if (ns < 1e6) return sprintf("%.2f us", ns / 1e3)
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
/^Benchmark/ && NF >= 4 {
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
			for (u = 1; u <= n; u++) {
				v = median(vals[grp, row, units[u]])
				other = other sprintf("%s%.4g %s", (u > 1 ? ", " : ""), v, units[u])
				if (r > 1 && (grp, rows[grp, 1], units[u]) in vals) other = other " (" ratio(v, median(vals[grp, rows[grp, 1], units[u]])) ")"
			}
			bop = ((grp, row, "B/op") in vals) ? sprintf("%.0f", median(vals[grp, row, "B/op"])) : "-"
			aop = ((grp, row, "allocs/op") in vals) ? sprintf("%.0f", median(vals[grp, row, "allocs/op"])) : "-"
			label = row; gsub(/_/, " ", label)
			printf "| %-44s | %14.1f | %10s | %6s | %9s | %9s | %10s | %s |\n", label, ns, human(ns), spread(vals[grp, row, "ns/op"]), bop, aop, ratio(ns, base), other
		}
	}
}' "$raw"
if [[ -n $e2e_note ]]; then
	echo
	echo "$e2e_note"
fi
if [[ ${BENCH_HOP:-1} == 1 ]]; then
	echo
	# shellcheck disable=SC2086 # BENCH_HOP_ARGS is a list of flags
	go run ./bench/hop ${BENCH_HOP_ARGS:-}
fi
