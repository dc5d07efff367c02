# shmnotify - the two commands a user needs are `make run` and `make test`.
#
#   make deps       install the Debian packages the build needs (root, or says what to run)
#   make / build    configure and build into build/ (RelWithDebInfo)
#   make test       build, then run the test suite with ctest
#   make test-asan  the tests under AddressSanitizer+UBSan (build-asan/)
#   make test-tsan  the tests under ThreadSanitizer (build-tsan/)
#   make run        build, then run the demo (scripts/demo.sh): broker, listen, publish, flood
#   make install    build, then cmake --install (PREFIX=/usr/local, DESTDIR=staging root)
#   make bench      install the peers, build, run shmnotify-bench (BENCH_ARGS="--quick" for 1 min)
#   make fuzz       the libFuzzer targets (clang), FUZZ_SECONDS each (default 60)
#   make test-valgrind  the integration tests and their brokers under valgrind memcheck
#   make clean      remove the build directories
#
# Variables: WERROR=1 (warnings are errors), CMAKE_FLAGS="...", JOBS=N,
# PREFIX and DESTDIR (install).

SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -eu -o pipefail -c

BUILD_DIR   ?= build
CMAKE_FLAGS ?=
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_TYPE  ?= RelWithDebInfo
# CTEST_RETRY="--repeat until-pass:2" runs a failing test once more (for
# chasing a flaky test; off by default: a failure fails the run).
CTEST_RETRY ?=
DEPS        := cmake gcc make pkg-config liburing-dev libcmocka-dev libxxhash-dev libinih-dev libjansson-dev scdoc python3 \
               python3-prometheus-client \
               python3-pytest python3-setuptools python3-wheel python3-venv \
               libnats-dev nats-server

# Always say ON or OFF: the CMake cache would otherwise keep an old choice.
SHN_WERROR_FLAG := -DSHN_WERROR=$(if $(filter 1 ON on yes,$(WERROR)),ON,OFF)

# Sanitizer runs: fail on the first report, with stacks.  The integration
# tests fork client processes from threaded ones (the library runs a watcher
# thread), which TSan refuses by default: die_after_fork=0.
SAN_ENV := ASAN_OPTIONS=abort_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0

.PHONY: all deps build test test-asan test-tsan run install clean help bench fuzz fuzz-corpus test-valgrind

all: build

help:
	@sed -n '1,17p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "make deps: not a Debian system (no dpkg-query); make sure these are installed: $(DEPS)"; \
		exit 0; \
	fi; \
	missing=""; \
	for p in $(DEPS) $(EXTRA_DEPS); do \
		st=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
		case "$$st" in *" installed") ;; *) missing="$$missing $$p" ;; esac; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make deps: missing packages:$$missing" >&2; \
		echo "make deps: run as root or: sudo apt-get install -y --no-install-recommends$$missing" >&2; \
		exit 1; \
	fi; \
	echo "make deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update; \
	apt-get install -y --no-install-recommends $$missing

# $(1): build directory, $(2): extra CMake arguments
define cmake_build
	cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=$(CMAKE_TYPE) $(SHN_WERROR_FLAG) $(2) $(CMAKE_FLAGS)
	cmake --build $(1) -j$(JOBS)
endef

# PREFIX is where the files are meant to live (compiled into the unit
# files), DESTDIR a staging root put before every path (packaging).
PREFIX  ?= /usr/local
DESTDIR ?=

build: deps
	$(call cmake_build,$(BUILD_DIR),-DSHN_SANITIZE= -DCMAKE_INSTALL_PREFIX=$(PREFIX))

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2 $(CTEST_RETRY)

test-asan: deps
	$(call cmake_build,build-asan,-DSHN_SANITIZE=address)
	$(SAN_ENV) ctest --test-dir build-asan --output-on-failure -j2 $(CTEST_RETRY)

# ThreadSanitizer needs a memory layout that some kernels' ASLR settings
# (vm.mmap_rnd_bits > 28) break: run without address randomization where
# this machine allows it (some container seccomp profiles do not).
test-tsan: deps
	$(call cmake_build,build-tsan,-DSHN_SANITIZE=thread)
	wrap=""; if setarch "$$(uname -m)" -R true 2>/dev/null; then wrap="setarch $$(uname -m) -R"; fi; \
	$(SAN_ENV) $$wrap ctest --test-dir build-tsan --output-on-failure -j2 $(CTEST_RETRY)

run: build
	BUILD_DIR=$(BUILD_DIR) scripts/demo.sh

# The bench's peers (each optional: a missing one is reported as skipped).
# Installs what is missing as root; otherwise says what to run and goes on.
BENCH_DEPS := libzmq3-dev libhiredis-dev redis-server libsystemd-dev dbus-daemon \
              libiceoryx-binding-c-dev iceoryx gnuplot-nox python3-redis python3-zmq
BENCH_ARGS ?=
BENCH_OUT  ?= $(BUILD_DIR)/bench

bench: deps
	@missing=""; \
	if command -v dpkg-query >/dev/null 2>&1; then \
		for p in $(BENCH_DEPS); do \
			st=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
			case "$$st" in *" installed") ;; *) missing="$$missing $$p" ;; esac; \
		done; \
	fi; \
	if [ -n "$$missing" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make bench: peers missing:$$missing" >&2; \
		echo "make bench: to compare with them: sudo apt-get install -y --no-install-recommends$$missing" >&2; \
		echo "make bench: going on; the bench reports them as skipped" >&2; \
	elif [ -n "$$missing" ]; then \
		echo "make bench: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update && apt-get install -y --no-install-recommends $$missing || \
			echo "make bench: could not install every peer; the bench reports the missing ones as skipped" >&2; \
	fi
	$(call cmake_build,$(BUILD_DIR),-DSHN_SANITIZE=)
	mkdir -p $(BENCH_OUT)
	$(BUILD_DIR)/bench/shmnotify-bench --json=$(BENCH_OUT)/results.json --plot $(BENCH_OUT)/plots $(BENCH_ARGS) \
		| tee $(BENCH_OUT)/results.txt
	@echo "make bench: table in $(BENCH_OUT)/results.txt, JSON in $(BENCH_OUT)/results.json, charts in $(BENCH_OUT)/plots/"

# ---- fuzzing and memcheck (docs/security.md) --------------------------------
# tests/fuzz/run.sh builds each target with clang -fsanitize=fuzzer,address,
# undefined and runs it for FUZZ_SECONDS from the seeds in tests/fuzz/corpus/
# (both at once on two or more cores).  fuzz-corpus rewrites the seeds.
FUZZ_DEPS    := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_DIR     ?= build-fuzz
FUZZ_TARGETS ?= control ring direct

fuzz:
	@$(MAKE) deps EXTRA_DEPS="$(FUZZ_DEPS)"
	FUZZ_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	FUZZ_WERROR=$(if $(filter 1 ON on yes,$(WERROR)),1,0) tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-corpus:
	mkdir -p $(FUZZ_DIR)
	cc -std=gnu17 -Wall -Wextra -I. tests/fuzz/gen_corpus.c -o $(FUZZ_DIR)/gen_corpus
	rm -rf tests/fuzz/corpus
	$(FUZZ_DIR)/gen_corpus tests/fuzz/corpus

# The integration tests under valgrind memcheck, the brokers they start too
# (tests/valgrind.sh): zero errors and no definite leak in any process.
test-valgrind:
	@$(MAKE) deps EXTRA_DEPS=valgrind
	$(call cmake_build,$(BUILD_DIR),-DSHN_SANITIZE=)
	tests/valgrind.sh $(BUILD_DIR)

clean:
	rm -rf build build-asan build-tsan $(FUZZ_DIR) $(filter-out build build-asan build-tsan,$(BUILD_DIR))
