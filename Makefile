# Workrs. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SOURCES := $(shell find src cli raft -type f \( -name '*.ts' -o -name '*.json' -o -path 'src/ui/*' \) 2>/dev/null)

.PHONY: help setup images build install uninstall test check typecheck lint demo clean sim sim-mutants bench bench-startup bench-submissions bench-raft profile-raft experiments fuzz sim-cluster sim-cluster-mutants

help:
	@echo "make demo       install what is missing, build, run the demo"
	@echo "make test       install what is missing, build, run every test suite"
	@echo "make setup      prepare this box (npm deps, Docker engine, CRIU, images workrs/busybox:1 and workrs/python:3); idempotent"
	@echo "make images     build the Python runtime image workrs/python:3 (setup does it too: ~1 min cold, 0.1 s when up to date)"
	@echo "make build      build the single executable dist/workrs"
	@echo "make install    this box as a node under systemd: ARGS=\"--id n1 --data ... --bootstrap ...\" (setup, build, workrs install)"
	@echo "make uninstall  remove the service, the executable and /etc/workrs/config.json (the node's data stays)"
	@echo "make check      run the test suites only (no setup): e.g. to see them fail without CRIU"
	@echo "make lint       ESLint (eslint.config.js): floating promises, type imports, import order; make test runs it too"
	@echo "make sim        deterministic cluster simulator over SEEDS seeds (default 500); SEED=n replays one seed twice"
	@echo "make sim-mutants  prove the simulator catches each deliberately broken Raft rule (up to MUTANT_SEEDS seeds each)"
	@echo "make sim-cluster  whole-node simulator (3-5 complete members, simulated time) over SEEDS seeds (default 200); SEED=n replays one seed twice"
	@echo "make sim-cluster-mutants  prove the whole-node simulator catches each unsafe node knob (up to SIM_CLUSTER_MUTANT_SEEDS seeds each)"
	@echo "make experiments  the prototype's checkpoint experiment on real 3-node clusters into docs/experiments/REPORT.md (< 1 h; QUICK=1: ~10 min smoke into docs/experiments/quick/; SCALE, REPS, RATES; RESUME=1: go on until the report's target cells have enough runs, MINUTES per invocation)"
	@echo "make fuzz       property-based fuzzing of every parser and reader for FUZZ_SECONDS (default 600), iterations per target"
	@echo "make bench      checkpoint pause, restore elsewhere, failover vs raw Docker, then submissions/s secure vs dev mode, then the executable's size and start-up, into bench/RESULTS.md (~25 min; BENCH_QUICK=1: <2 min)"
	@echo "make bench-startup  only the executable's size and start-up against node -e 0 (~1 min; BASELINE=path: an earlier build beside it)"
	@echo "make bench-submissions  only the submissions/s row: secure mode (TLS, tokens) vs dev mode (~3 min)"
	@echo "make profile-raft  the top self-time functions of a leader and a follower under the bench-raft load (ARGS=\"--clients 1\")"
	@echo "make bench-raft  Workrs vs etcd 3.4 (installed if missing): writes/s at 1/16/256 clients, CPU and RSS, leader failover, placement of 1,000/10,000 jobs, idle, takeover, the stack's floor (~20 min; ARGS=--quick: ~3 min)"

# The Python image is part of setup: a cold build takes about a minute (docs/host.md),
# a check of an up-to-date one 0.1 s, and the Docker tests run jobs in it.
setup:
	@bash scripts/setup-host.sh
	@bash scripts/build-python-image.sh

# Runtime images for jobs, built without a registry (setup builds them already): the
# target for what needs them to depend on, e.g. make experiments.
images:
	@$(MAKE) --no-print-directory setup
	@bash scripts/build-python-image.sh

# This box as a Workrs node under systemd (cli/commands/install.ts): the node options in
# ARGS, e.g. make install ARGS="--id n1 --data /var/lib/workrs --api 10.0.0.1:7701
# --peer 10.0.0.1:7801 --bootstrap n1=10.0.0.1:7801,... --secret-file /etc/workrs/secret".
install: setup build
	@dist/workrs install $(ARGS)

# Removes the service, /usr/local/bin/workrs and /etc/workrs/config.json; the data stays.
uninstall:
	@if [ -x /usr/local/bin/workrs ]; then /usr/local/bin/workrs uninstall; else $(MAKE) --no-print-directory build && dist/workrs uninstall; fi

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

# The same check is a test of make test (test/unit/lint.test.ts).
# `node_modules/.bin/eslint --fix .` repairs the import order and type imports.
lint:
	@node_modules/.bin/eslint .

# The demo's job runs in the base image: the box setup without the Python image, which
# would add a minute on a fresh machine (the demo must fit in 3 minutes there).
demo:
	@bash scripts/setup-host.sh
	@$(MAKE) --no-print-directory build
	@./dist/workrs version
	@./dist/workrs doctor
	@./dist/workrs demo

clean:
	rm -rf dist test-results

# The seeded whole-cluster simulator (test/sim/). `make sim SEED=17` replays seed 17
# twice, checks both runs are identical and writes the trace to test-results/;
# MUTANT=name replays a seed of a mutant run; TRACE=1 prints both runs' whole traces
# (both are also written to test-results/sim-seed-N.trace and .run2.trace).
SEEDS ?= 500
MUTANT_SEEDS ?= 2000
MUTANTS := no-prevote no-figure8 send-before-persist concurrent-confchange reads-without-quorum
SIM := node_modules/.bin/tsx test/sim/run.ts

sim:
	@if [ -n "$(SEED)" ]; then $(SIM) --seed $(SEED) --mutant $(or $(MUTANT),none) $(if $(TRACE),--print-trace); else $(SIM) --seeds $(SEEDS); fi

# Each mutant must be caught: the run stops at the first seed whose violation is the
# one that mutant's broken rule leads to, and fails if none is found.
sim-mutants:
	@for m in $(MUTANTS); do $(SIM) --mutant $$m --expect-violation --seeds $(MUTANT_SEEDS) || exit 1; done

# The whole-node simulator (test/sim-cluster/): 3-5 complete members (ClusterMember: Raft
# driver, state machine, leases, leader duties, worker, checkpoints, blob replication)
# with the fake runtime, on simulated time and a simulated network. SEEDS defaults to
# 200 here. `make sim-cluster SEED=17` replays seed 17 twice, checks both runs are
# identical and writes the traces to test-results/sim-cluster-seed-17{,.run2}.trace;
# MUTANT=name replays a mutant run; TRACE=1 prints both traces.
SIM_CLUSTER := node_modules/.bin/tsx test/sim-cluster/run.ts
SIM_CLUSTER_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),200)
SIM_CLUSTER_MUTANTS := ignore-lost-lease reassign-before-lease-bound accept-exit-without-epoch-check
SIM_CLUSTER_MUTANT_SEEDS ?= 200

sim-cluster:
	@if [ -n "$(SEED)" ]; then $(SIM_CLUSTER) --seed $(SEED) --mutant $(or $(MUTANT),none) $(if $(TRACE),--print-trace); else $(SIM_CLUSTER) --seeds $(SIM_CLUSTER_SEEDS); fi

# Each unsafe knob must be caught: the run stops at the first seed whose violation is
# the one that knob's broken rule leads to, and fails if none is found.
sim-cluster-mutants:
	@for m in $(SIM_CLUSTER_MUTANTS); do $(SIM_CLUSTER) --mutant $$m --expect-violation --seeds $(SIM_CLUSTER_MUTANT_SEEDS) || exit 1; done

# Benchmarks (bench/), never part of `make test`: they take long and their numbers are
# read, not asserted. The binary under test is a copy of dist/workrs (built first if
# needed), so a rebuild during the run cannot change it.
bench:
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory build
	@cp dist/workrs /tmp/workrs-bench
	@WORKRS_BINARY=/tmp/workrs-bench BENCH_COMMAND="make bench" node_modules/.bin/tsx bench/checkpoint.ts \
		&& WORKRS_BINARY=/tmp/workrs-bench BENCH_COMMAND="make bench" node_modules/.bin/tsx bench/submissions.ts \
		&& WORKRS_BINARY=/tmp/workrs-bench BENCH_COMMAND="make bench" node_modules/.bin/tsx bench/startup.ts; rc=$$?; rm -f /tmp/workrs-bench; exit $$rc

# The executable's size and start-up against `node -e 0` (bench/startup.ts, ~1 min);
# BASELINE=path compares an earlier build side by side.
bench-startup:
	@$(MAKE) --no-print-directory build
	@cp dist/workrs /tmp/workrs-bench-startup
	@WORKRS_BINARY=/tmp/workrs-bench-startup BENCH_BASELINE=$(BASELINE) BENCH_COMMAND="make bench-startup$(if $(BASELINE), BASELINE=$(BASELINE))" node_modules/.bin/tsx bench/startup.ts; rc=$$?; rm -f /tmp/workrs-bench-startup; exit $$rc

# The secure-mode row alone: submissions/s with TLS and tokens vs dev mode (~3 min).
bench-submissions:
	@$(MAKE) --no-print-directory build
	@cp dist/workrs /tmp/workrs-bench-sub
	@WORKRS_BINARY=/tmp/workrs-bench-sub BENCH_COMMAND="make bench-submissions" node_modules/.bin/tsx bench/submissions.ts; rc=$$?; rm -f /tmp/workrs-bench-sub; exit $$rc

# Workrs against etcd side by side (bench/raft.ts); ARGS passes options, e.g.
# ARGS="--quick" or ARGS="--clients 16 --reps 5". It installs etcd-server when missing.
bench-raft:
	@$(MAKE) --no-print-directory build
	@cp dist/workrs /tmp/workrs-bench-raft
	@WORKRS_BINARY=/tmp/workrs-bench-raft BENCH_COMMAND="make bench-raft$(if $(ARGS), ARGS=\"$(ARGS)\")" node_modules/.bin/tsx bench/raft.ts $(ARGS); rc=$$?; rm -f /tmp/workrs-bench-raft; exit $$rc

# Where a submission's CPU goes (bench/raft-profile.ts): a 3-node cluster under
# `node --cpu-prof`, the bench-raft load against its leader, the top self-time
# functions of the leader and a follower; ARGS e.g. "--clients 1 --seconds 8".
profile-raft:
	@$(MAKE) --no-print-directory build
	@node_modules/.bin/tsx bench/raft-profile.ts $(ARGS)

# The prototype's checkpoint experiment (bench/experiments/): real 3-node clusters, boxes
# destroyed at exponential times, into docs/experiments/REPORT.md (QUICK=1: a smoke run
# into docs/experiments/quick/). Like bench, it builds dist/workrs if needed and runs a copy.
# RESUME=1 keeps the runs in results.json and adds repetitions at μ·T 0.9 and 3.93 until
# each cell there has enough runs; it starts no run after MINUTES (default 45).
experiments:
	@$(MAKE) --no-print-directory images
	@$(MAKE) --no-print-directory build
	@cp dist/workrs /tmp/workrs-exp
	@WORKRS_BINARY=/tmp/workrs-exp QUICK=$(QUICK) EXPERIMENTS_COMMAND="make experiments$(if $(QUICK), QUICK=$(QUICK))$(if $(SCALE), SCALE=$(SCALE))$(if $(REPS), REPS=$(REPS))$(if $(RATES), RATES=$(RATES))$(if $(RESUME), RESUME=$(RESUME))$(if $(MINUTES), MINUTES=$(MINUTES))" node_modules/.bin/tsx bench/experiments/run.ts $(if $(SCALE),--scale $(SCALE)) $(if $(REPS),--reps $(REPS)) $(if $(RESUME),--resume) $(if $(MINUTES),--minutes $(MINUTES)); rc=$$?; rm -f /tmp/workrs-exp; exit $$rc

# Property-based fuzzing (test/fuzz/targets/): every target for FUZZ_SECONDS (default
# 600) at fresh seeds; fails on a crash, a hang or heap growth, and reports iterations
# per target. A short fixed-seed run of each is part of make test (test/fuzz/short.test.ts).
FUZZ_SECONDS ?= 600
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) node_modules/.bin/tsx test/fuzz/run.ts
