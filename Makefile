# The project's front door: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
SWIFT ?= swift
BUILD_FLAGS ?=
# The build folder (swift's --scratch-path); another one keeps a second checkout's builds apart.
BUILD_DIR ?= .build
BIN_DEBUG := $(BUILD_DIR)/debug/airlock
BIN_RELEASE := $(BUILD_DIR)/release/airlock
BENCH_RELEASE := $(BUILD_DIR)/release/airlock-bench
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deb-deps test-deps sbom-validator build release test lint demo fuzz-build fuzz fuzz-smoke bench bench-peers peer-tools bench-routing bench-replay bench-registry dist deb clean

all: build

# Installs what the build, the tests and the demo need, when it is missing (Debian/Ubuntu).
deps:
	@missing=""; \
	pkg-config --exists libarchive 2>/dev/null || missing="$$missing libarchive-dev"; \
	pkg-config --exists openssl 2>/dev/null || missing="$$missing libssl-dev"; \
	pkg-config --exists zlib 2>/dev/null || missing="$$missing zlib1g-dev"; \
	pkg-config --exists libzstd 2>/dev/null || missing="$$missing libzstd-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v zstd >/dev/null || missing="$$missing zstd"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	/usr/bin/time --version 2>&1 | grep -q GNU || missing="$$missing time"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	{ command -v haproxy || test -x /usr/sbin/haproxy; } >/dev/null || missing="$$missing haproxy"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if ! command -v apt-get >/dev/null; then echo "error: missing$$missing and no apt-get here; install them with your package manager" >&2; exit 1; fi; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not install$$missing; install them by hand and run make again" >&2; exit 1; }; \
	fi

build: deps
	$(SWIFT) build --scratch-path $(BUILD_DIR) $(BUILD_FLAGS)

release: deps
	$(SWIFT) build --scratch-path $(BUILD_DIR) -c release --static-swift-stdlib $(BUILD_FLAGS)

# The CycloneDX schema validator the SBOM test runs (PyPI: cyclonedx-python-lib), in its own
# virtual environment under .build/ when the system python3 lacks it.
SBOM_VENV := .build/sbom-venv
sbom-validator: deps
	@if python3 -c 'import cyclonedx.validation.json' 2>/dev/null; then :; \
	elif $(SBOM_VENV)/bin/python3 -c 'import cyclonedx.validation.json' 2>/dev/null; then :; \
	else \
	  echo "installing the CycloneDX validator into $(SBOM_VENV)"; \
	  python3 -m venv $(SBOM_VENV) 2>/dev/null || { rm -rf $(SBOM_VENV); $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv $(SBOM_VENV); } \
	    || { echo "error: cannot create a Python virtual environment; install python3-venv" >&2; exit 1; }; \
	  $(SBOM_VENV)/bin/python3 -m pip install --quiet 'cyclonedx-python-lib[json-validation]' \
	    || { echo "error: could not install cyclonedx-python-lib from PyPI; install it by hand (pip install 'cyclonedx-python-lib[json-validation]')" >&2; exit 1; }; \
	fi

# What `make deb` needs: dpkg-shlibdeps (Depends), chrpath, strip, lintian (the package's gate).
deb-deps: deps
	@missing=""; \
	command -v dpkg-shlibdeps >/dev/null || missing="$$missing dpkg-dev"; \
	command -v chrpath >/dev/null || missing="$$missing chrpath"; \
	command -v strip >/dev/null || missing="$$missing binutils"; \
	command -v lintian >/dev/null || missing="$$missing lintian"; \
	if [ -n "$$missing" ]; then \
	  echo "installing (for the package):$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not install$$missing; install them by hand and run make deb again" >&2; exit 1; }; \
	fi

# The whole suite, with a small run of the benchmark against the debug binary (Tests/AirlockBenchTests).
# What only the tests need: headless Chromium renders the replay's HTML report (ReplayTests).
# The registry tests: Debian's docker-registry (CNCF distribution), started on loopback by the
# tests, and skopeo, which reads and copies what `airlock push` stored. The package and fleet
# tests: reprepro and gpg (a signed apt mirror), systemd-analyze (the units), Ansible (the play).
test-deps: deps deb-deps
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v reprepro >/dev/null || missing="$$missing reprepro"; \
	command -v gpg >/dev/null || missing="$$missing gnupg"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v ansible-playbook >/dev/null || missing="$$missing ansible"; \
	command -v ostree >/dev/null || missing="$$missing ostree"; \
	command -v rauc >/dev/null || missing="$$missing rauc"; \
	command -v mksquashfs >/dev/null || missing="$$missing squashfs-tools"; \
	if [ -n "$$missing" ]; then \
	  echo "installing (for the tests):$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not install$$missing; install them by hand and run make test again" >&2; exit 1; }; \
	fi

# The package tests (Tests/airlockTests/PackageTests.swift) take the .deb `make deb` built.
# Then every fuzz target runs for FUZZ_SMOKE_SECONDS over its seeds and committed inputs.
test: test-deps sbom-validator deb
	$(SWIFT) build --scratch-path $(BUILD_DIR) $(BUILD_FLAGS)
	AIRLOCK_TEST_DEB="$(CURDIR)/$(DEB)" $(SWIFT) test --scratch-path $(BUILD_DIR) $(BUILD_FLAGS)
	$(MAKE) fuzz-smoke

# Coverage-guided fuzzing (docs/fuzzing.md): airlock-fuzz built with libFuzzer and
# AddressSanitizer in its own build folder, then every target for FUZZ_SECONDS (make fuzz) or
# FUZZ_SMOKE_SECONDS (make fuzz-smoke, part of make test). FUZZ_TARGETS picks targets.
FUZZ_DIR ?= .build-fuzz
FUZZ_BIN := $(FUZZ_DIR)/release/airlock-fuzz
FUZZ_SECONDS ?= 180
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS ?=
fuzz-build: deps
	$(SWIFT) build --scratch-path $(FUZZ_DIR) -c release --product airlock-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DAIRLOCK_LIBFUZZER

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_BIN) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	FUZZ_SMOKE=1 FUZZ_WORK="$(CURDIR)/$(FUZZ_DIR)/smoke" scripts/fuzz.sh $(FUZZ_BIN) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The code follows .swift-format; swift-format ships with the Swift toolchain. Fix with
# `swift format -i -r Sources Tests Package.swift`.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

demo: build
	scripts/demo.sh $(BIN_DEBUG) demo

# Benchmarks a 2 GiB release against the standard tools, then airlock against OSTree, RAUC and
# the shell pipeline on a many-file and a large release (docs/benchmarks.md); the reports go to
# stdout. BENCH_RUNS, BENCH_SCALE, BENCH_SETTLE_SECONDS, PEERS_RUNS, ... come from the
# environment. Exit status: 1 when a target FAILs, 2 when a command failed (the worse of the two).
bench: release peer-tools
	@status=0; \
	$(BENCH_RELEASE) $(BIN_RELEASE) bench-work || status=$$?; \
	scripts/bench-peers.sh $(BIN_RELEASE) $(BENCH_RELEASE) || { s=$$?; [ $$status -ge $$s ] || status=$$s; }; \
	exit $$status

# Replays 1,000 recorded tasks of the example agent (docs/benchmarks.md, "Replay"); the report
# goes to stdout. REPLAY_TASKS, REPLAY_ROUNDS come from the environment.
bench-replay: release
	REPLAY_COMMAND="make bench-replay (BUILD_DIR=$(BUILD_DIR))" scripts/bench-replay.sh $(BIN_RELEASE)

# install oci:// against install from a file, a resumed pull, eight hosts at once
# (docs/benchmarks.md, "Bundles through a registry"). REG_MIB, REG_ROUNDS, REG_HOSTS.
bench-registry: release
	scripts/bench-registry.sh $(BIN_RELEASE)

# Airlock against OSTree, RAUC and the shell pipeline on a many-file and a large release
# (docs/benchmarks.md, "Against the peers"); the report goes to stdout. PEERS_RUNS, PEERS_SHAPES.
bench-peers: release peer-tools
	scripts/bench-peers.sh $(BIN_RELEASE) $(BENCH_RELEASE)

# OSTree, RAUC and squashfs-tools for the peer rows, from Debian's packages when missing.
peer-tools:
	@missing=""; \
	command -v ostree >/dev/null || missing="$$missing ostree"; \
	command -v rauc >/dev/null || missing="$$missing rauc"; \
	command -v mksquashfs >/dev/null || missing="$$missing squashfs-tools"; \
	if [ -n "$$missing" ]; then \
	  echo "installing (for the peers):$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not install$$missing; install them by hand and run make bench-peers again" >&2; exit 1; }; \
	fi

# Routing through `airlock serve` against HAProxy on the same backends, with wrk, on loopback
# (docs/benchmarks.md, "Routing through airlock serve"); the report goes to stdout, in a few
# minutes. ROUTING_ROUNDS, ROUTING_SECONDS, ... come from the environment (scripts/bench-routing.sh).
# Exit status: 1 when a hard target FAILs (stickiness, split, restart, memory), 2 when a command failed.
bench-routing: release
	ROUTING_COMMAND="make bench-routing (BUILD_DIR=$(BUILD_DIR))" scripts/bench-routing.sh $(BIN_RELEASE)

# The offline distribution: static-runtime binary, docs, install.sh, checksums (installer/README.md).
dist: release
	installer/make-dist.sh $(BIN_RELEASE) dist

# Airlock as a Debian package (installer/make-deb.sh, installer/README.md): the release binary,
# man pages and completions from the argument parser, systemd units; lintian must report no error.
DEB = dist/airlock_$$($(BIN_RELEASE) --version)_$$(dpkg --print-architecture).deb
deb: release deb-deps
	$(SWIFT) build --scratch-path $(BUILD_DIR) -c release --static-swift-stdlib --product generate-manual $(BUILD_FLAGS)
	installer/make-deb.sh $(BIN_RELEASE) $(BUILD_DIR)/release/generate-manual dist
	lintian --fail-on error "$(DEB)"

clean:
	rm -rf .build .build-fuzz demo bench-work dist
