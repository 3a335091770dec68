# ForkPool: `make` builds, `make test` runs every test, `make bench` runs the Demo (release).
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path)

.PHONY: all build test bench clean

all: build

build:
	$(SWIFT) build

test:
	$(SWIFT) test

bench:
	$(SWIFT) build -c release --product Demo
	$(RELEASE_BIN)/Demo

clean:
	rm -rf .build
