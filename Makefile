# Workrs. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SOURCES := $(shell find src cli raft -name '*.ts' 2>/dev/null)

.PHONY: help setup build test check typecheck demo clean

help:
	@echo "make demo       install what is missing, build, run the demo"
	@echo "make test       install what is missing, build, run every test suite"
	@echo "make setup      prepare this box (npm deps, Docker engine, CRIU, base image); idempotent"
	@echo "make build      build the single executable dist/workrs"
	@echo "make check      run the test suites only (no setup): e.g. to see them fail without CRIU"

setup:
	@bash scripts/setup-host.sh

build: dist/workrs

dist/workrs: $(SOURCES) package.json package-lock.json scripts/build.mjs
	@node scripts/build.mjs

# Sequential on purpose: the build needs the npm dependencies that setup installs.
test:
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory build
	@node scripts/run-tests.mjs

check: build
	@node scripts/run-tests.mjs

typecheck:
	@node_modules/.bin/tsc --noEmit -p tsconfig.json

demo:
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory build
	@./dist/workrs version
	@./dist/workrs doctor

clean:
	rm -rf dist test-results
