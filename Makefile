# pieyes — the commands a newcomer needs: `make run`, `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := run
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_ARGS ?= --camera synthetic

# Debian packages: nasm makes OpenH264 use its x86 assembly (without it the build silently
# falls back to plain C, ~2x slower); ffmpeg/ffprobe check streams; chromium drives the viewer.
BUILD_PACKAGES := nasm pkg-config
TEST_PACKAGES := $(BUILD_PACKAGES) ffmpeg chromium

.PHONY: run test lint unit browser bench deps-build deps-test clean test-vm

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
## and the libcamera build tested against real libcamera in a VM
test: deps-test lint unit browser test-vm

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

browser:
	$(CARGO) build --release
	cd tests/browser && node viewer.test.mjs

## make test-vm: `--features libcamera` built in a Debian trixie chroot and run against real
## libcamera 0.4 (vimc + virtual cameras) in a cached QEMU guest; needs root (vm/test-vm.sh)
test-vm:
	$(SUDO) env CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} vm/test-vm.sh

## make bench: release build, measured scenarios, table on stdout and JSON in bench/results/
bench: deps-test
	$(CARGO) build --release --benches
	$(CARGO) bench --bench daemon

clean:
	$(CARGO) clean
