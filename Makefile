# Hark: `make run` starts the terminal client, `make test` runs every test, `make bench` the
# benchmarks. Each installs the Debian packages it needs first (apt-get as root, otherwise it
# prints the command to run).

SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

# Build: a C compiler and pkg-config for the bundled SQLite and other -sys crates; cmake for
# the static libopus; ALSA headers for cpal.
# Tests: iproute2 for the network-namespace (mDNS) tests; tmux to drive the terminal UI;
# espeak-ng and sox to make and measure speech for the voice tests.
PACKAGES := gcc libc6-dev pkg-config cmake libasound2-dev iproute2 tmux espeak-ng sox

.PHONY: run test bench fuzz deps build fmt clippy

deps:
	@missing=""; \
	for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }

run: deps
	$(CARGO) build --release -p hark-tui -p hark-node
	./target/release/hark $(ARGS)

test: deps
	@rm -f target/tmp/skipped-tests.txt
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	@if [ -s target/tmp/skipped-tests.txt ]; then \
	  echo; echo "!!! Some tests could not run here and were SKIPPED:"; cat target/tmp/skipped-tests.txt; echo; \
	fi

bench: deps
	$(CARGO) build --release -p hark-node -p hark-tests
	./target/release/hark-bench $(ARGS)

# Each fuzz target for FUZZ_SECONDS (cargo fuzz on the stable toolchain via RUSTC_BOOTSTRAP).
FUZZ_SECONDS ?= 30
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in envelope_decode sealed_payload invite_decode sync_body; do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
