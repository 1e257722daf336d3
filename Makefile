# pieyes — the commands a newcomer needs: `make run`, `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := run
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_ARGS ?= --camera synthetic

# Debian packages: nasm makes OpenH264 use its x86 assembly (without it the build silently
# falls back to plain C, ~2x slower); ffmpeg/ffprobe check streams; chromium drives the viewer;
# python3-venv holds the WebSocket conformance client (Python `websockets`, from PyPI) and numpy
# for examples/tracker.py, which tests/tracker.rs runs (PIEYES_PYTHON); curl
# checks HTTPS against the generated certificate.
BUILD_PACKAGES := nasm pkg-config
TEST_PACKAGES := $(BUILD_PACKAGES) ffmpeg chromium python3-venv curl
CONFORMANCE_VENV := target/conformance-venv

.PHONY: run test lint unit test-hostile browser conformance fuzz bench deps-build deps-test deps-fuzz clean test-v4l2-vm test-vm
.PHONY: test-vm-arm64 deps-vm-arm64
.PHONY: aarch64 aarch64-build aarch64-sysroot test-dist deps-aarch64 cross deploy

# The Pi: 64-bit Raspberry Pi OS (bookworm or newer). Debian's cross compilers link the binary
# and build OpenH264's C++ and NEON assembly; qemu-user runs the test suite on this machine.
# The binary has the libcamera backend, so it is built against an arm64 sysroot holding the
# libcamera it will run with (dist/sysroot.sh, cached by its inputs): with PI=user@host, that Pi's
# own (copied over ssh); without, Debian's libcamera 0.7 (trixie-backports) standing in for it.
# bindgen (libcamera's bindings) needs libclang; clang's headers parse the sysroot's C++.
AARCH64 := aarch64-unknown-linux-gnu
AARCH64_SYSROOT := $(shell PI='$(PI)' SSH_OPTS='$(SSH_OPTS)' dist/sysroot.sh --path)
AARCH64_FEATURES := --features libcamera
# -cpu cortex-a76: the Pi 5's core (qemu's default `max` has SVE, which no Pi has: the sysroot's
# glibc then takes SVE string routines that qemu emulates slowly and the Pi never runs).
AARCH64_RUNNER := qemu-aarch64 -cpu cortex-a76 -L $(AARCH64_SYSROOT)
AARCH64_PACKAGES := gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user ffmpeg libclang-dev clang pkg-config debian-archive-keyring rsync
AARCH64_BIN := $(or $(CARGO_TARGET_DIR),target)/$(AARCH64)/release/pieyes
# Set for the cargo commands below only (no ~/.cargo/config): cargo's linker and runner, the
# `cc` crate's compilers (with the sysroot: libcamera's headers), pkg-config and bindgen looking
# into the sysroot for the aarch64 target only, and PIEYES_TEST_RUNNER, which tests/common puts
# in front of the daemon binary the integration tests spawn (an aarch64 binary: it too needs qemu).
AARCH64_ENV := CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$(AARCH64_RUNNER)" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$(AARCH64_SYSROOT)" \
	CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
	AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
	CFLAGS_aarch64_unknown_linux_gnu=--sysroot=$(AARCH64_SYSROOT) \
	CXXFLAGS_aarch64_unknown_linux_gnu=--sysroot=$(AARCH64_SYSROOT) \
	PKG_CONFIG_ALLOW_CROSS=1 \
	PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu=$(AARCH64_SYSROOT) \
	PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=$(AARCH64_SYSROOT)/usr/lib/aarch64-linux-gnu/pkgconfig:$(AARCH64_SYSROOT)/usr/share/pkgconfig \
	BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--sysroot=$(AARCH64_SYSROOT) \
	PIEYES_TEST_RUNNER="$(AARCH64_RUNNER)"
# cross-rs 0.2.5 is the current release; cross.toml pins its image (glibc 2.23) to match.
CROSS_VERSION := 0.2.5
# cross 0.2.5 misreads `rustup toolchain list` of rustup >= 1.28 (it expects "(default)", gets
# "(active, default)"), decides the toolchain is missing and runs `rustup toolchain add` on it:
# for `stable` that silently updates your stable toolchain. A pinned version (the host rustc's
# by default) makes that step a no-op.
CROSS_TOOLCHAIN ?= $(shell rustc --version 2>/dev/null | cut -d' ' -f2)

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; \
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

## make test: install what the tests need, then lint, unit + integration tests, the same tests
## again on the aarch64 build under qemu (`make aarch64`), browser tests, WebSocket conformance,
## and the libcamera build against real libcamera (+ the V4L2 encoder on vicodec) in the VM, and
## the aarch64 binary streaming vimc in an arm64 guest
test: deps-test lint unit test-hostile aarch64 browser conformance test-vm test-vm-arm64

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit: $(CONFORMANCE_VENV)/.installed
	PIEYES_PYTHON=$(abspath $(CONFORMANCE_VENV))/bin/python $(CARGO) test

## make test-hostile: attacks that need time or volume (tests/hostile.rs: floods, pipelining,
## every network limit full, token guessing), each while a viewer watches; about 2 minutes
test-hostile:
	$(CARGO) test --test hostile -- --ignored --test-threads=1

browser:
	$(CARGO) build --release
	cd tests/browser && node fmp4.test.mjs && node viewer.test.mjs && node controls.test.mjs && node steering.test.mjs && node remote.test.mjs && node tls-off.test.mjs && node calibrate.test.mjs

## make conformance: the WebSocket server against an independent client (Python websockets)
conformance: deps-test $(CONFORMANCE_VENV)/.installed
	$(CARGO) build --release
	$(CONFORMANCE_VENV)/bin/python tests/conformance/ws_conformance.py target/release/pieyes

$(CONFORMANCE_VENV)/.installed: tests/conformance/requirements.txt examples/requirements.txt
	$(call apt_install,python3-venv)
	rm -rf $(CONFORMANCE_VENV)
	python3 -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$^)
	touch $@

## make fuzz: each cargo-fuzz target for FUZZ_SECONDS (not part of `make test`; see fuzz/RESULTS.md)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= http_request ws_frame control_line state_file tls_transport
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

## make test-vm: `--features libcamera` built in a Debian trixie chroot and run against real
## libcamera 0.4 (trixie) and 0.7 (trixie-backports), vimc + virtual cameras, in a cached QEMU
## guest; needs root (vm/test-vm.sh)
test-vm:
	$(SUDO) env CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} vm/test-vm.sh

## make bench: release build, measured scenarios, table on stdout and JSON in bench/results/;
## the browser's capture→paint next to the minimal pipeline (PIEYES_FLOOR, ../shared/floor), and
## over a shaped lossy link in network namespaces of its own (root: tests/browser/lossy-link.sh),
## at 20 Mbit/s and at 5 Mbit/s (less than the two eyes' 6: a viewer at the edge of Wi-Fi)
PIEYES_FLOOR ?= $(firstword $(wildcard $(abspath ../shared/floor) /work/shared/floor))
# The bench also runs an aarch64 build of itself under qemu (OpenH264's NEON path, as a ratio to
# this machine's: benches/daemon.rs, aarch64_under_qemu); cargo prints that build's path in JSON.
bench: deps-test deps-aarch64 aarch64-sysroot
	$(CARGO) build --release --benches
	bin=$$($(AARCH64_ENV) $(CARGO) bench --no-run --target $(AARCH64) --bench daemon --message-format=json-render-diagnostics \
	  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1); \
	[ -x "$$bin" ] || { echo "make bench: no aarch64 bench binary"; exit 1; }; \
	PIEYES_BENCH_AARCH64=$$bin PIEYES_BENCH_AARCH64_RUNNER="$(AARCH64_RUNNER)" $(CARGO) bench --bench daemon
	cd tests/browser && PIEYES_FLOOR=$(PIEYES_FLOOR) node latency.bench.mjs
	$(SUDO) env PATH="$$PATH" tests/browser/lossy-link.sh
	$(SUDO) env PATH="$$PATH" PIEYES_LINK_RATE=5e6 tests/browser/lossy-link.sh

## make aarch64: the release binary for a 64-bit Pi, with the libcamera backend, built against the
## arm64 sysroot (PI=user@host: that Pi's), its tests run under qemu with the sysroot's libraries:
## every unit test, the end-to-end streaming and sd_notify tests against the ARM daemon, and
## tests/dist.sh (deploy --dry-run, pieyes-start). The suites that
## judge real-time behaviour (eye movements frame by frame, timeouts, fault windows) need
## native speed — qemu encodes ~10x slower — and run natively in `make unit`.
aarch64: aarch64-build
	$(AARCH64_ENV) $(CARGO) test --release --target $(AARCH64) $(AARCH64_FEATURES) --lib --test streaming --test sd_notify
	tests/dist.sh $(AARCH64_BIN) $(AARCH64_SYSROOT)
	@echo "aarch64 binary (tested under $(AARCH64_RUNNER)): $(AARCH64_BIN)"

## make test-dist: what make deploy installs, without a Pi (tests/dist.sh; part of make aarch64):
## deploy --dry-run takes exactly the libcamera build and refuses others, pieyes-start's check
test-dist: aarch64-build
	tests/dist.sh $(AARCH64_BIN) $(AARCH64_SYSROOT)

aarch64-build: deps-aarch64 aarch64-sysroot
	$(AARCH64_ENV) $(CARGO) build --release --target $(AARCH64) $(AARCH64_FEATURES)

## make aarch64-sysroot [PI=user@host]: the arm64 sysroot with libcamera (dist/sysroot.sh; cached)
aarch64-sysroot: deps-aarch64
	@PI='$(PI)' SSH_OPTS="$(SSH_OPTS)" dist/sysroot.sh >/dev/null

deps-aarch64:
	$(call apt_install,$(AARCH64_PACKAGES))
	@rustup target list --installed | grep -qx $(AARCH64) || rustup target add $(AARCH64)

## make cross: cross-rs in its container (docker or podman), WITHOUT the libcamera backend: not
## what make deploy installs (cross.toml says why)
cross:
	@engine=$${CROSS_CONTAINER_ENGINE:-$$(command -v docker || command -v podman || true)}; \
	if [ -z "$$engine" ] || ! "$$engine" info >/dev/null 2>&1; then \
	  echo "make cross: cross-rs builds inside a container and needs a working docker or podman"; \
	  echo "            ($${engine:-neither is installed}$${engine:+: not usable, is its daemon running?})."; \
	  echo "            Without one, build with Debian's cross compilers instead: make aarch64"; \
	  exit 1; \
	fi
	@command -v cross >/dev/null || { \
	  echo "installing cross $(CROSS_VERSION) with cargo install (it runs the build in docker/podman)"; \
	  $(CARGO) install cross --version $(CROSS_VERSION) --locked; }
	rustup toolchain install $(CROSS_TOOLCHAIN) --profile minimal --target $(AARCH64) --no-self-update
	CROSS_CONFIG=cross.toml cross +$(CROSS_TOOLCHAIN) build --release --target $(AARCH64)

## make deploy PI=user@host: copy the Pi's libcamera, headers and libraries (dist/sysroot.sh), build
## and test the aarch64 binary against them, then install it, pieyes-start and the systemd unit
## on the Pi over ssh. DRY_RUN=1 prints the remote install commands instead of running them.
deploy:
	@[ -n "$(PI)" ] || { echo "usage: make deploy PI=user@host [DRY_RUN=1] [SSH_OPTS='-o Port=2222']"; exit 2; }
	$(MAKE) --no-print-directory aarch64
	SSH_OPTS="$(SSH_OPTS)" dist/deploy.sh $(if $(filter-out 0,$(DRY_RUN)),--dry-run) $(PI) $(AARCH64_BIN)

## make test-vm-arm64: the aarch64 binary make deploy installs (make aarch64-build) streams vimc
## through the sysroot's libcamera 0.7 in an arm64 guest (qemu-system-aarch64, TCG; vm/arm64/,
## cached by its inputs); eye 0 is recorded over a forwarded port and checked with ffprobe (root)
test-vm-arm64: aarch64-build deps-vm-arm64
	$(SUDO) vm/arm64/test.sh $(AARCH64_BIN) $(AARCH64_SYSROOT)

deps-vm-arm64:
	$(call apt_install,qemu-system-arm qemu-user cpio kmod xz-utils curl ffmpeg python3)

## make test-v4l2-vm: the V4L2 encoder against the kernel's vicodec in the trixie test VM (root,
## qemu; builds the VM on first use, see vm/NOTES.md). Guest side: vm/tests/20-v4l2.sh.
test-v4l2-vm:
	vm/test-v4l2.sh

clean:
	$(CARGO) clean
