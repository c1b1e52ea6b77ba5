#!/usr/bin/env bash
# test.sh is `make test`: bootstrap the machine, then vet, gofmt, the whole
# race-enabled test suite with the Postgres and Envoy integration tests
# required to run (not skip), and a short fuzz smoke of every Fuzz target.
#
# Environment: FUZZTIME per fuzz target (default 20000x: an execution count,
# because a duration budget makes Go 1.26's fuzz coordinator report a spurious
# "context deadline exceeded" when the deadline races a worker, go.dev/issue/75804);
# SKIP_FUZZ=1 skips them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$(date +%s)
scripts/bootstrap.sh
set -a
# shellcheck disable=SC1091
. ./.tmp/env.sh
set +a
export TENANTGATE_REQUIRE_INTEGRATION=1 ENVOY_BIN TENANTGATE_ENVOY PYTHON

step() { printf '==> %s\n' "$*"; }

step "go vet ./..."
go vet ./...

step "gofmt -l"
unformatted=$(find . -name '*.go' -not -path './.venv/*' -not -path './.tmp/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l)
if [[ -n $unformatted ]]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go test -race -count=1 ./... (TENANTGATE_REQUIRE_INTEGRATION=1)"
go test -race -count=1 ./...

nfuzz=0
if [[ ${SKIP_FUZZ:-0} != 1 ]]; then
	fuzztime=${FUZZTIME:-20000x}
	# "dir:FuzzName" for every fuzz target in a tracked test file.
	mapfile -t targets < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . \
		--exclude-dir=.venv --exclude-dir=.tmp --exclude-dir=.git |
		sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1:\2#; s#^\./[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#.:\1#' | sort -u)
	for t in "${targets[@]}"; do
		dir=${t%%:*} name=${t##*:}
		log=.tmp/fuzz-${dir//\//_}-$name.log
		if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "./$dir" >"$log" 2>&1; then
			echo "FAIL fuzz $name ./$dir:" >&2
			cat "$log" >&2
			exit 1
		fi
		echo "    fuzz $name ./$dir: ok ($fuzztime, $(grep -o 'elapsed: [0-9]*s' "$log" | tail -n 1 | cut -d' ' -f2))"
		nfuzz=$((nfuzz + 1))
	done
fi

echo "make test: OK: vet, gofmt, race tests (integration required), $nfuzz fuzz targets; $(($(date +%s) - start))s"
