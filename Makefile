# gomap — `make help` lists the targets.
.DEFAULT_GOAL := help
PY ?= python3

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

go:  ## install Go 1.19 (Debian's golang-go) if it is missing: the reference runtime
	@command -v go >/dev/null || (apt-get update -qq && apt-get install -y -qq golang-go)

dev: go  ## editable install with the test extra, in the active venv (installs maturin first; rerun after Rust changes)
	$(PY) -m pip install 'maturin>=1.9,<2'
	$(PY) -m pip install --no-build-isolation -e '.[test]'

crosscheck: go  ## cross-check 500 random traces against the Go runtime
	$(PY) -m gomap crosscheck --traces 500

test: go  ## the whole suite: Rust, then Python
	cargo test --release
	$(PY) -m pytest

test-portable:  ## Rust tests with the portable (SWAR) tophash group forced
	cargo test --release --features portable-group

crosscheck-portable: go  ## install gomap built with the portable group (replaces the install) and cross-check it
	MATURIN_PEP517_ARGS="--features portable-group" $(PY) -m pip install .
	$(PY) -c "import gomap; assert gomap.build_info()[0] == 'generic', gomap.build_info()"
	$(PY) -m gomap crosscheck --traces 210

stubtest:  ## check python/gomap/_core.pyi against the compiled module
	$(PY) -m mypy.stubtest gomap._core

fmt:  ## format the Rust code
	cargo fmt --all

.PHONY: help go dev crosscheck test test-portable crosscheck-portable stubtest fmt

check-freethreaded:  ## compile-check the extension for free-threaded CPython 3.14t
	CARGO_TARGET_DIR=target/ft PYO3_CROSS=1 PYO3_CROSS_PYTHON_VERSION=3.14t cargo check --lib --features extension-module

.PHONY: check-freethreaded

bench:  ## run every benchmark (+ criterion) and write BENCHMARKS.md and benches/get_hit.png; takes a while
	$(PY) benches/run_all.py --criterion

.PHONY: bench

bench-core-go: go  ## the Rust core against Go 1.19's map, runs alternated (a few minutes)
	$(PY) benches/core_vs_go.py

.PHONY: bench-core-go

miri:  ## run the small owned-key engine test under Miri (needs nightly with the miri component)
	MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test --test rust_core -- miri_smoke

.PHONY: miri

soak:  ## soak test (not CI): >= 1M mixed map ops with threads, iterators, pickles; fails if RSS grows > 1 MB after warm-up
	$(PY) benches/soak.py

.PHONY: soak
