# Hark: `make run` starts the terminal client, `make test` runs every test, `make bench` the
# benchmarks, `make dist` the packages in target/dist/ (`make dist-check` tests them). Each
# installs the Debian packages it needs first (apt-get as root, otherwise it prints the command
# to run).

SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

# Build: a C compiler and pkg-config for the bundled SQLite and other -sys crates; cmake for
# the static libopus; ALSA headers for cpal.
# Tests: iproute2 for the network-namespace (mDNS) tests; tmux to drive the terminal UI;
# espeak-ng and sox to make and measure speech for the voice tests; curl, jq and python3 to run
# docs/integrations.md's recipes as written (tests/tests/integrations.rs).
PACKAGES := gcc libc6-dev pkg-config cmake libasound2-dev iproute2 tmux espeak-ng sox curl jq python3
# The browser client's test (tests/tests/web.rs): Debian's chromium, its driver and
# python3-selenium to drive it headless (no browser download).
PACKAGES += chromium chromium-driver python3-selenium
# make bench: ngircd, the IRC server the fan-out benchmark measures Hark against (--ngircd).
BENCH_PACKAGES := ngircd
# make bench's voice quality (hark-bench quality): opus-tools for the plain-Opus reference, and
# for PESQ (ITU-T P.862, PyPI `pesq` with numpy, in a venv under target/) python3-venv, and
# python3-dev with a C compiler to build it.
BENCH_PACKAGES += opus-tools python3-venv python3-dev build-essential
PESQ_VENV := target/pesq-venv
# make dist: dpkg-dev (dpkg-shlibdeps) for the packages' Depends, binutils (objcopy) to strip
# the binaries, git for the commit. make dist-check also: man-db to read the man pages,
# systemd for systemd-analyze verify, iproute2 for the offline build in a network namespace.
DIST_PACKAGES := dpkg-dev binutils git man-db systemd iproute2

.PHONY: run test bench fuzz deps dist-deps dist dist-check build fmt clippy

# Installs the Debian packages named in $(1) that are missing.
define install_missing
	@missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES))
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }
	@need=$$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml); \
	have=$$($${RUSTC:-rustc} --version 2>/dev/null | cut -d' ' -f2); \
	if [ -z "$$have" ] || [ "$$(printf '%s\n%s\n' "$$need" "$$have" | sort -V | head -n1)" != "$$need" ]; then \
	  echo "Hark needs Rust $$need or newer, found rustc $${have:-none}: run rustup update stable (or install Rust >= $$need)"; exit 1; \
	fi

dist-deps:
	$(call install_missing,$(DIST_PACKAGES))

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

# Without ARGS: every scenario, then the simulator at 1000 nodes (a few minutes).
bench: deps
	$(call install_missing,$(BENCH_PACKAGES))
	@$(PESQ_VENV)/bin/python -c 'import pesq, numpy' 2>/dev/null || \
	  { python3 -m venv $(PESQ_VENV) && $(PESQ_VENV)/bin/pip install -q pesq numpy; } || \
	  echo "PESQ did not install: hark-bench quality will fail, the other scenarios run"
	$(CARGO) build --release -p hark-node -p hark-tests
	./target/release/hark-bench $(ARGS)
	@if [ -z "$(ARGS)" ]; then ./target/release/hark-bench sim --nodes 1000 --seed 1; fi

# Each fuzz target for FUZZ_SECONDS (cargo fuzz on the stable toolchain via RUSTC_BOOTSTRAP).
FUZZ_SECONDS ?= 30
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in envelope_decode sealed_payload invite_decode sync_body; do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# Debian packages, a binary tarball, the vendored source bundle and SHA256SUMS in target/dist/
# (packaging/dist.sh). CARGO_TARGET_DIR, if set, is where the release build goes.
dist: deps dist-deps
	CARGO=$(CARGO) packaging/dist.sh

# Tests the packages as an operator would use them (tests/tests/dist.rs, as root: it installs
# them into this machine, chats with a build of this tree, removes them, keeping /etc/hark and
# /var/lib/hark), and builds the source bundle offline in a network namespace. Slow (a release
# build, then a build of the bundle from scratch), and it changes the machine's packages, so it
# is not part of `make test`; CI (.ci/run) runs it after `make test`, on a throwaway machine.
# The tests and the "fresh build" they chat with are the debug build of
# `make test`, with the same package and feature selection (--workspace), so after `make test`
# nothing but the dist test itself is compiled; only `make dist` builds release.
dist-check: dist
	$(CARGO) build --workspace --bins
	HARK_DIST_DIR=$(CURDIR)/target/dist $(CARGO) test --workspace --locked --test dist -- --ignored --test-threads=1 --nocapture

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
