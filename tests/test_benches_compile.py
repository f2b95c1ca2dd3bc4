"""The Rust benchmarks (`benches/core.rs`, `benches/group.rs`) are not built by
`cargo test`, so nothing else notices when a change to the engine's API breaks
them (it happened once: `mapassign` became fallible and `make bench` stopped
compiling). A `cargo check` of the bench targets: no code generation, seconds."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("cargo") is None or not (ROOT / "Cargo.toml").exists(), reason="needs cargo and the sources")
def test_rust_benches_compile():
    r = subprocess.run(["cargo", "check", "--benches", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
