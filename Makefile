# pieyes — the commands a newcomer needs: `make run`, `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := run
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_ARGS ?= --camera synthetic

# Debian packages: nasm makes OpenH264 use its x86 assembly (without it the build silently
# falls back to plain C, ~2x slower); ffmpeg/ffprobe check streams; chromium drives the viewer;
# python3-venv holds the WebSocket conformance client (Python `websockets`, from PyPI).
BUILD_PACKAGES := nasm pkg-config
TEST_PACKAGES := $(BUILD_PACKAGES) ffmpeg chromium python3-venv
CONFORMANCE_VENV := target/conformance-venv

.PHONY: run test lint unit browser conformance fuzz bench deps-build deps-test deps-fuzz clean

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps-build:
	$(call apt_install,$(BUILD_PACKAGES))

deps-test:
	$(call apt_install,$(TEST_PACKAGES))
	@command -v cargo-clippy >/dev/null || rustup component add clippy rustfmt
	@cd tests/browser && { [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.package-lock.json || npm ci --no-audit --no-fund; }

## make run: build and start the daemon with the synthetic stereo camera on http://127.0.0.1:8000
run: deps-build
	$(CARGO) run --release -- $(RUN_ARGS)

## make test: install what the tests need, then lint, unit + integration tests, browser tests,
## WebSocket conformance
test: deps-test lint unit browser conformance

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

browser:
	$(CARGO) build --release
	cd tests/browser && node viewer.test.mjs

## make conformance: the WebSocket server against an independent client (Python websockets)
conformance: deps-test $(CONFORMANCE_VENV)/.installed
	$(CARGO) build --release
	$(CONFORMANCE_VENV)/bin/python tests/conformance/ws_conformance.py target/release/pieyes

$(CONFORMANCE_VENV)/.installed: tests/conformance/requirements.txt
	rm -rf $(CONFORMANCE_VENV)
	python3 -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

## make fuzz: each cargo-fuzz target for FUZZ_SECONDS (not part of `make test`; see fuzz/RESULTS.md)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= http_request ws_frame control_line
# cargo-fuzz needs a nightly compiler: rustup's nightly when it has one, else stable as nightly.
FUZZ_CARGO := $(shell rustup run nightly rustc --version >/dev/null 2>&1 && echo 'cargo +nightly' || echo 'RUSTC_BOOTSTRAP=1 cargo')

deps-fuzz: deps-build
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz: deps-fuzz
	$(FUZZ_CARGO) fuzz build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s, seeds fuzz/corpus/$$t, findings fuzz/target/corpus/$$t"; \
	  $(FUZZ_CARGO) fuzz run $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_ARGS) || exit 1; \
	done

## make bench: release build, measured scenarios, table on stdout and JSON in bench/results/
bench: deps-test
	$(CARGO) build --release --benches
	$(CARGO) bench --bench daemon

clean:
	$(CARGO) clean
