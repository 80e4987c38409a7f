# corral — the two entry points are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test lint unit build bench wrk clean

## The main job: serve on loopback, drive a short load, print the figures, stop.
demo:
	$(CARGO) run --release -q -p corral --example http_server -- --demo

## Every test: formatting, lints, unit and integration tests, doc tests.
test: lint unit

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -q -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi
	$(CARGO) test --workspace --doc -q

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
