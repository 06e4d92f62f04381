# shopledger. The two commands: `make run` and `make test`.
#
# Every target that needs PostgreSQL gets it from scripts/pg-ensure, which
# finds or starts a server and prints its admin URL (see the script).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
export GO

.DEFAULT_GOAL := help
.PHONY: help run run-clean test test-fresh build lint hooks bench fuzz image assets screenshots

help:
	@echo 'make run        the whole system on this machine (scripts/run); Ctrl-C stops it'
	@echo 'make run-clean  drop the shopledger database and .run/, then run'
	@echo 'make test       gofmt, vet, staticcheck, grep rules, then go test -race on real PostgreSQL and the total coverage'
	@echo 'make test-fresh the log, restore and system tests again on a cluster created just now (scripts/test-fresh)'
	@echo 'make build      go build -o bin/ ./cmd/...'
	@echo 'make lint       gofmt, vet, staticcheck and the grep rules (scripts/lint)'
	@echo 'make hooks      use the versioned git hooks (scripts/hooks): gofmt, vet and grep rules before each commit'
	@echo 'make bench      pgbench baselines, Go benchmarks, BENCH and RATIO lines (scripts/bench)'
	@echo 'make fuzz       fuzz the query router for FUZZTIME (default 60s) on real PostgreSQL'
	@echo 'make image      static binaries and the container image holding them, with podman (scripts/image)'
	@echo 'make assets     npm ci in web/ and copy the pinned axe-core the browser tests use into systemtest/testdata/axe/'
	@echo 'make screenshots run the browser tests and copy their 1280 px shots into docs/images/ for docs/user-guide.md'

run:
	scripts/run

run-clean:
	scripts/run --clean

# pg-ensure first, so that a missing database fails fast (and, under CI=true,
# never turns into skipped tests).
# podman-ensure installs podman for the image test, proxy-ensure Caddy and
# promtool for the proxy and alert-rule tests, under CI=true (as root);
# elsewhere a missing tool only makes its test skip. chromium-ensure
# installs Chromium for the browser tests whenever it runs as root; under
# CI=true a browser still missing fails the run.
# A SHOPLEDGER_TEST_DATABASE_URL (or SHOPLEDGER_DATABASE_URL) already set
# names the server to try first.
# It ends with the total statement coverage of the project's packages:
# -coverpkg=./... counts a statement covered by any package's tests (the
# cmd tests exercise most of the tree end to end), into coverage.out.
test:
	@url=$$(SHOPLEDGER_DATABASE_URL="$${SHOPLEDGER_TEST_DATABASE_URL:-$${SHOPLEDGER_DATABASE_URL:-}}" scripts/pg-ensure); \
	export SHOPLEDGER_TEST_DATABASE_URL=$$url; \
	scripts/podman-ensure || [ "$${CI:-}" != true ]; \
	scripts/proxy-ensure || [ "$${CI:-}" != true ]; \
	scripts/chromium-ensure >/dev/null || [ "$${CI:-}" != true ]; \
	scripts/lint; \
	echo "== go test -race -count=1 -coverpkg=./... ./... (SHOPLEDGER_TEST_DATABASE_URL=$$url)" >&2; \
	$(GO) test -race -count=1 -timeout 30m -coverpkg=./... -coverprofile=coverage.out ./...; \
	$(GO) tool cover -func=coverage.out | awk '$$1 == "total:" { print "total statement coverage: " $$NF }'

# A brand-new cluster's transaction counter is in the hundreds: the log's
# order must not depend on a long-used one (scripts/test-fresh).
test-fresh:
	scripts/chromium-ensure >/dev/null || [ "$${CI:-}" != true ]
	scripts/test-fresh

build:
	$(GO) build -o bin/ ./cmd/...

lint:
	scripts/lint

# Points git at scripts/hooks, so the hooks stay versioned with the tree.
hooks:
	git config core.hooksPath scripts/hooks
	@echo 'pre-commit hook installed (scripts/hooks/pre-commit); git commit --no-verify skips it'

bench:
	scripts/bench

# make test runs FuzzRouter's seed corpus; this searches beyond it. Inputs
# that fail are saved under httpapi/testdata/fuzz and then run in make test.
FUZZTIME ?= 60s
fuzz:
	@url=$$(SHOPLEDGER_DATABASE_URL="$${SHOPLEDGER_TEST_DATABASE_URL:-$${SHOPLEDGER_DATABASE_URL:-}}" scripts/pg-ensure); \
	export SHOPLEDGER_TEST_DATABASE_URL=$$url; \
	$(GO) test -run '^$$' -fuzz '^FuzzRouter$$' -fuzztime $(FUZZTIME) ./httpapi/
# Offline: FROM scratch, with CA certificates and time-zone data from this
# machine (deploy/Containerfile).
image:
	scripts/image

# The browser tests' axe-core, pinned in web/package.json and its lock
# file, copied into the tree with its licences so that make test needs
# neither Node nor the network. Test-only: the app never serves it.
AXE_DIR := systemtest/testdata/axe
assets:
	npm ci --prefix web --ignore-scripts --no-audit --no-fund
	mkdir -p $(AXE_DIR)
	cp web/node_modules/axe-core/axe.min.js web/node_modules/axe-core/LICENSE web/node_modules/axe-core/LICENSE-3RD-PARTY.txt $(AXE_DIR)/
	@echo "axe-core $$(node -p "require('./web/node_modules/axe-core/package.json').version") copied into $(AXE_DIR)"

# The screenshots docs/user-guide.md shows: the browser tests write every
# page at 1280 and 390 px under test-artifacts/screenshots/; this keeps the
# 1280 px shots of the pages the guide lists (SHOPLEDGER_DOC_IMAGES, see
# systemtest/browser_test.go).
screenshots:
	scripts/chromium-ensure >/dev/null
	@url=$$(SHOPLEDGER_DATABASE_URL="$${SHOPLEDGER_TEST_DATABASE_URL:-$${SHOPLEDGER_DATABASE_URL:-}}" scripts/pg-ensure); \
	SHOPLEDGER_TEST_DATABASE_URL=$$url SHOPLEDGER_DOC_IMAGES=$(CURDIR)/docs/images \
		$(GO) test -count=1 -timeout 10m -run '^TestBrowser' ./systemtest/
