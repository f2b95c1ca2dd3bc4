"""The hand-written stub python/gomap/_core.pyi matches the compiled module."""

import subprocess
import sys

import pytest


def test_stubtest_finds_no_difference():
    pytest.importorskip("mypy", reason="mypy (in the [test] extra) runs stubtest")
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "gomap._core"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
