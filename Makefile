# ForkPool: `make` builds, `make test` runs every test, `make bench` runs the benchmark
# (release build, Python peers beside it when python3 is present). `make bench QUICK=1` is the
# short version; `make demo` replays the article.
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path)
SWIFT_VERSION = $(shell $(SWIFT) --version 2>/dev/null | head -n 1 | awk '{print $$1, $$3}')
BENCH_FLAGS = --json bench/results/latest.json --svg bench/results/latest.svg --swift-version "$(SWIFT_VERSION)"

.PHONY: all build test bench demo clean

all: build

build:
	$(SWIFT) build

# Serial: the process tests count this process's children, threads and descriptors.
test:
	$(SWIFT) test --no-parallel

bench:
	$(SWIFT) build -c release --product Demo
	$(RELEASE_BIN)/Demo bench $(BENCH_FLAGS) $(if $(QUICK),--quick)

demo:
	$(SWIFT) build -c release --product Demo
	$(RELEASE_BIN)/Demo article

clean:
	rm -rf .build
