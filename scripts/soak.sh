#!/usr/bin/env bash
# Soak run (not a timed test): Envoy + tenantgate + fake AWS + PostgreSQL at
# moderate load while enterprise tenants churn (routes disabled, re-enabled,
# moved to another region, deleted and re-added; API keys revoked and
# replaced). Prints tenantgate's RSS, heap and goroutines (from its /metrics)
# and Envoy's heap over time, and for each kind of change the median and
# maximum time from COMMIT until a request through Envoy shows it.
#
#   scripts/soak.sh              # 10 minutes
#   scripts/soak.sh -d 3m        # shorter
#   scripts/soak.sh -d 3m -r 60 -t 50 -c 1s -s 15s -v
#
# -d duration, -r requests/s (40), -t tenants (30), -c pause between changes
# (2s), -s metrics sample interval (duration/20, 5s..60s), -v every change.
# Needs what `make test` needs (scripts/bootstrap.sh: Envoy, PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10m
while getopts "d:r:t:c:s:vh" opt; do
	case $opt in
	d) duration=$OPTARG ;;
	r) export TENANTGATE_SOAK_RPS=$OPTARG ;;
	t) export TENANTGATE_SOAK_TENANTS=$OPTARG ;;
	c) export TENANTGATE_SOAK_CHURN=$OPTARG ;;
	s) export TENANTGATE_SOAK_SAMPLE=$OPTARG ;;
	v) export TENANTGATE_SOAK_VERBOSE=1 ;;
	*) sed -n '2,16p' "$0"; exit 2 ;;
	esac
done
export TENANTGATE_SOAK_DURATION=$duration
if [[ -f .tmp/env.sh ]]; then
	set -a
	# shellcheck disable=SC1091
	. ./.tmp/env.sh
	set +a
fi
export TENANTGATE_REQUIRE_INTEGRATION=1
# The run's own output is printed as it goes; go test's is kept for failures.
exec go test -count=1 -timeout 0 -run '^TestSoak$' -v ./bench/soak | grep --line-buffered -v -E '^(=== RUN|--- PASS|PASS$|ok )'
