# corral — the two entry points are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo serve-demo soak test sysdeps lint unit ws-runner-test loom fuzz build bench wrk clean ffi c-build c-test header generated install py-env py-build py-test node-build node-test docs-test dist dist-env dist-python dist-npm dist-c dist-test

VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR      := $(word 1,$(subst ., ,$(VERSION)))
MINOR      := $(word 2,$(subst ., ,$(VERSION)))
# 0.x: every minor release may change the ABI (matches ffi/build.rs).
SOVERSION  := $(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))
PREFIX     ?= /usr/local
LIBDIR     := target/release
CDIR       := target/c
CFLAGS_C   := -std=c99 -Wall -Wextra -Werror -pedantic -g -Iinclude
CFLAGS_CXX := -std=c++17 -Wall -Wextra -Werror -pedantic -g -Iinclude
LDLIBS     := -L$(LIBDIR) -Wl,-rpath,$(abspath $(LIBDIR)) -lcorral -lpthread
VALGRIND   := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
C_TESTS    := test_api test_ws conformance
C_EXAMPLES := echo_handoff http_serve ws_echo handoff_cpp
VENV       := .venv
PY         := $(abspath $(VENV))/bin/python

## The main job: the lab. The five concurrency models against six workloads on this
## machine (5 interleaved rounds), four greedy clients beside corral and nginx, a SYN
## flood and connect bursts (about 3 minutes on 2 cores); prints the table, the
## intervals and which models fit (alike when the intervals overlap), writes
## target/corral-report/ (report.md, report.json, SVG charts).
demo:
	$(CARGO) run --release -q -p corral-bench -- run

## One engine serving a short self-driven load, with its own counters.
serve-demo:
	$(CARGO) run --release -q -p corral --example http_server -- --demo

## A million requests over a thousand connections with injected faults (figures, not a test).
soak:
	$(CARGO) run --release -q -p corral-bench -- soak

## Every test: formatting and lints; the C tests, conformance cases and examples,
## natively and under valgrind; the Python extension's and the Node addon's tests; the
## loom models; the Rust doc, unit and integration tests (the lab's smoke runs and the
## fuzz corpus replay among them); then the io_uring half of the backend matrix.
test: sysdeps lint c-test py-test node-test docs-test ws-runner-test loom unit io-uring-test

## System packages tests run against: HAProxy (the PROXY-protocol tests put a real one
## in front of corral), sslscan (the TLS tests scan a corral port). Installed with
## apt-get when missing and permitted (root).
sysdeps:
	@missing=""; \
	command -v haproxy >/dev/null 2>&1 || missing="$$missing haproxy"; \
	command -v systemd-socket-activate >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v sslscan >/dev/null 2>&1 || missing="$$missing sslscan"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing$$missing for the PROXY-protocol, deploy and lab tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing$$missing and cannot install here (not root): the HAProxy, deploy, lab and sslscan tests will fail or skip; apt-get install$$missing"; \
		fi; \
	fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -q -- -D warnings
	CARGO_TARGET_DIR=target/fuzz-check $(CARGO) check -q --manifest-path fuzz/Cargo.toml

## The loom models of the task state, reply slots and host queue, under every
## interleaving (a build of their own: --cfg loom swaps in loom's primitives).
loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test -q -p corral --lib --release loom_tests

## Fuzzing (nightly and cargo-fuzz: `cargo install cargo-fuzz`): each target for
## FUZZ_SECONDS on the kept corpus in fuzz/corpus/, which keeps what it finds.
FUZZ_SECONDS ?= 60
fuzz:
	for t in http1 lines length raw proxy ws; do \
		$(CARGO) +nightly fuzz run -O $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 || exit 1; \
	done
	$(CARGO) +nightly fuzz run -O http1_stream fuzz/corpus/http1 -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096

## The Rust tests of the workspace: with cargo-nextest when present, else cargo test.
RUST_TESTS = if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

unit:
	$(CARGO) test --workspace --doc -q
	@$(RUST_TESTS)

## The websocket conformance runner checked against servers broken on purpose (each
## breakage must show as exactly its cases failing); the fronts' tests run it against
## corral.
ws-runner-test:
	python3 tests/ws/selftest.py

## The backend matrix's io_uring half: the whole Rust suite and the conformance cases
## (C, Python, Node; HTTP and the websocket families) again, every engine on io_uring (CORRAL_BACKEND sets the default
## backend). Where this machine cannot run io_uring, it says why and skips.
io-uring-test: c-build py-build node-build
	@why=$$(CORRAL_BACKEND=io_uring $(CARGO) run -q -p corral --example http_server -- --seconds 0 2>&1 >/dev/null | grep "io_uring cannot run" || true); \
	if [ -n "$$why" ]; then echo "skipping the io_uring matrix: $$why"; exit 0; fi; \
	set -e; export CORRAL_BACKEND=io_uring; echo "backend matrix: io_uring"; \
	$(RUST_TESTS); \
	$(CDIR)/conformance tests/conformance/cases.txt; \
	python3 tests/ws/against.py --strict -- $(CDIR)/ws_echo; \
	(cd bindings/python && $(PY) -m pytest -q tests/test_conformance.py tests/test_ws_conformance.py); \
	(cd bindings/node && node --test test/conformance.test.js test/ws_conformance.test.js)

build:
	$(CARGO) build --workspace --release --all-targets

## Figures, not tests.
bench:
	$(CARGO) bench -p corral

## corral vs nginx with wrk, side by side (installs wrk and nginx-light if missing).
wrk:
	bash bench/wrk_vs_nginx.sh

clean:
	$(CARGO) clean

## libcorral.so (SONAME libcorral.so.$(SOVERSION)) and libcorral.a in $(LIBDIR).
ffi:
	$(CARGO) build --release -q -p corral-ffi
	ln -sf libcorral.so $(LIBDIR)/libcorral.so.$(SOVERSION)

c-build: ffi
	@mkdir -p $(CDIR)
	$(CC) $(CFLAGS_C) tests/c/test_api.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/test_api
	$(CC) $(CFLAGS_C) tests/c/conformance.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/conformance
	$(CC) $(CFLAGS_C) tests/c/test_ws.c tests/c/wslib.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/test_ws
	$(CC) $(CFLAGS_C) tests/c/test_tls.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/test_tls
	$(CC) $(CFLAGS_C) examples/c/echo_handoff.c $(LDLIBS) -o $(CDIR)/echo_handoff
	$(CC) $(CFLAGS_C) examples/c/http_serve.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/http_serve
	$(CC) $(CFLAGS_C) examples/c/upload_to_file.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/upload_to_file
	$(CC) $(CFLAGS_C) examples/c/ws_echo.c tests/c/wslib.c tests/c/testlib.c $(LDLIBS) -o $(CDIR)/ws_echo
	$(CXX) $(CFLAGS_CXX) examples/cpp/handoff.cpp $(LDLIBS) -o $(CDIR)/handoff_cpp
	$(CC) $(CFLAGS_C) tests/c/test_api.c tests/c/testlib.c $(LIBDIR)/libcorral.a \
		-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o $(CDIR)/test_api_static

## The C tests and examples, then all of them again under valgrind (no errors, no
## definite leaks).
c-test: c-build
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null)
	$(CDIR)/test_api
	$(CDIR)/test_api_static
	$(CDIR)/test_ws
	$(CDIR)/test_tls
	$(CDIR)/conformance tests/conformance/cases.txt
	$(CDIR)/echo_handoff --self-test
	$(CDIR)/http_serve --self-test
	$(CDIR)/upload_to_file --self-test
	$(CDIR)/ws_echo --self-test
	$(CDIR)/handoff_cpp
	$(VALGRIND) $(CDIR)/test_api
	$(VALGRIND) $(CDIR)/test_ws
	$(VALGRIND) $(CDIR)/test_tls
	$(VALGRIND) $(CDIR)/conformance tests/conformance/cases.txt
	$(VALGRIND) $(CDIR)/echo_handoff --self-test
	$(VALGRIND) $(CDIR)/http_serve --self-test
	$(VALGRIND) $(CDIR)/upload_to_file --self-test
	$(VALGRIND) $(CDIR)/ws_echo --self-test
	python3 tests/ws/against.py --strict -- $(VALGRIND) $(CDIR)/ws_echo
	$(VALGRIND) $(CDIR)/handoff_cpp

## Regenerates include/corral.h from ffi/src (commit the result).
header:
	CORRAL_BLESS=1 $(CARGO) test -q -p corral-ffi --test header

## Regenerates what is made from the option table, the metrics list and the error table
## (docs/configuration.md, docs/metrics.md, docs/errors.md, the Node EngineOptions type,
## the Python Options typed dict) and the C header.
generated: header
	CORRAL_BLESS=1 $(CARGO) test -q -p corral --test generated

## Installs the library, header and pkg-config file under PREFIX (default /usr/local).
install: ffi
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(LIBDIR)/libcorral.so $(DESTDIR)$(PREFIX)/lib/libcorral.so.$(VERSION)
	ln -sf libcorral.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcorral.so.$(SOVERSION)
	ln -sf libcorral.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libcorral.so
	install -m 644 $(LIBDIR)/libcorral.a $(DESTDIR)$(PREFIX)/lib/libcorral.a
	install -m 644 include/corral.h $(DESTDIR)$(PREFIX)/include/corral.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' ffi/corral.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/corral.pc

## A virtual environment inside the repository with the Python build and test tools.
py-env: $(VENV)/.ready
$(VENV)/.ready: bindings/python/requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r bindings/python/requirements-dev.txt
	touch $@

## Builds the extension (abi3 wheel, via maturin) into the virtual environment.
py-build: py-env
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pip install -q --no-build-isolation --force-reinstall --no-deps ./bindings/python

py-test: py-build
	cd bindings/python && $(PY) -m pytest -q

## Builds the Node addon (napi-rs 3, @napi-rs/cli from package-lock.json).
node-build:
	cd bindings/node && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

node-test: node-build
	cd bindings/node && node --test --test-timeout=300000 test/*.test.js

## Every code block of README.md and docs/ extracted and run (Rust ones as doctests of
## the core crate, in `unit`): no example rots.
docs-test: c-build py-build node-build
	$(PY) tests/docs/run_blocks.py

## Artifacts that install where no Rust exists, all of one version (the workspace's):
## dist/python (abi3 manylinux_2_17 wheel, sdist with vendored crates), dist/npm (`corral`
## and `corral-linux-x64-gnu`, packed), dist/c (tarball and .deb), dist/SHA256SUMS.
dist: dist-python dist-npm dist-c
	bash packaging/sums.sh

## The packaging tools (maturin, ziglang, cargo-zigbuild, auditwheel, twine), pinned.
dist-env: $(VENV)/.dist-ready
$(VENV)/.dist-ready: packaging/requirements.txt $(VENV)/.ready
	$(VENV)/bin/pip install -q -r packaging/requirements.txt
	touch $@

dist-python: dist-env
	bash packaging/python.sh

dist-npm: dist-env
	bash packaging/npm.sh

dist-c: dist-env
	bash packaging/c.sh

## Installs each artifact of dist/ as a user without Rust would (packaging/no_rust.sh:
## an empty environment, PATH=/usr/bin:/bin, no cargo or rustc) and runs an app on it.
dist-test: dist
	packaging/no_rust.sh packaging/test_python.sh
	packaging/no_rust.sh packaging/test_npm.sh
	packaging/no_rust.sh packaging/test_c.sh
