"""Release packaging: the licence, the build profiles, the metadata, the PEP 517
backend's wheel tag, and the wheels workflow. (Building a release wheel takes
minutes: set GOMAP_TEST_WHEEL=1 to also build one and check its tag and size.)"""

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")


def toml(name):
    return tomllib.loads((ROOT / name).read_text(encoding="utf-8"))


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 gomap developers" in text
    project = toml("pyproject.toml")["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert toml("Cargo.toml")["package"]["license"] == "MIT"


def test_release_is_stripped_and_profiling_keeps_symbols():
    profiles = toml("Cargo.toml")["profile"]
    release = profiles["release"]
    assert release["strip"] is True and release["debug"] == 0 and release["lto"] == "fat"
    profiling = profiles["profiling"]
    assert profiling["inherits"] == "release" and profiling["debug"] == 1 and profiling["strip"] is False
    assert profiles["fast"]["inherits"] == "release"


def test_extras():
    extras = toml("pyproject.toml")["project"]["optional-dependencies"]
    assert any(d.startswith("matplotlib") for d in extras["explore"])
    assert any(d.startswith("matplotlib") for d in extras["test"])  # so CI draws the explorer's picture


def test_readme_states_the_minimum_rust_version():
    rust = toml("Cargo.toml")["package"]["rust-version"]
    assert f"Rust {rust} or newer" in (ROOT / "README.md").read_text(encoding="utf-8")


def load_backend():
    pytest.importorskip("maturin", reason="the build backend wraps maturin's")
    cfg = toml("pyproject.toml")["build-system"]
    spec = importlib.util.spec_from_file_location(
        cfg["build-backend"], ROOT / cfg["backend-path"][0] / f"{cfg['build-backend']}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_backend_asks_maturin_to_detect_the_manylinux_tag(monkeypatch):
    b = load_backend()
    monkeypatch.delenv("MATURIN_PEP517_ARGS", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert b._with_detected_tag(None) == {"maturin.build-args": ["--compatibility"]}
    monkeypatch.setenv("MATURIN_PEP517_ARGS", "--features portable-group")
    assert b._with_detected_tag({}) == {"maturin.build-args": ["--features", "portable-group", "--compatibility"]}
    # whatever the user chose wins
    for chosen in ("--compatibility linux", "--manylinux 2_28", "--compatibility=pypi"):
        got = b._with_detected_tag({"maturin.build-args": chosen})
        assert got == {"maturin.build-args": chosen.split()}
    assert b._with_detected_tag({"build-args": ["-v"]}) == {"build-args": ["-v", "--compatibility"]}
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("MATURIN_PEP517_ARGS")
    assert b._with_detected_tag(None) == {"maturin.build-args": []}
    for hook in ("build_sdist", "build_editable", "prepare_metadata_for_build_wheel", "get_requires_for_build_wheel"):
        assert callable(getattr(b, hook)), hook


def test_wheels_workflow_covers_the_platforms():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "wheels.yml").read_text(encoding="utf-8"))
    jobs = wf["jobs"]
    assert set(jobs) >= {"linux", "macos", "windows", "sdist"}

    def action_steps(job):
        return [s for s in jobs[job]["steps"] if str(s.get("uses", "")).startswith("PyO3/maturin-action@")]

    linux = action_steps("linux")[0]["with"]
    assert jobs["linux"]["strategy"]["matrix"]["target"] == ["x86_64", "aarch64"]
    assert linux["manylinux"] == "2_28" and "--release" in linux["args"]
    assert action_steps("macos")[0]["with"]["target"] == "aarch64"
    assert action_steps("windows")[0]["with"]["target"] == "x64"
    assert action_steps("sdist")[0]["with"]["command"] == "sdist"
    for job in ("linux", "macos", "windows"):
        assert action_steps(job)[0]["with"]["rust-toolchain"] == "stable"
        assert any("4M" in str(s.get("run", "")) for s in jobs[job]["steps"]), f"{job}: no size check"


@pytest.mark.skipif(os.environ.get("GOMAP_TEST_WHEEL") != "1", reason="builds a release wheel (minutes)")
def test_pip_wheel_is_manylinux_stripped_and_small(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(ROOT), "-w", str(tmp_path)], check=True)
    (whl,) = tmp_path.glob("gomap-*.whl")
    if sys.platform.startswith("linux"):
        assert re.search(r"-manylinux_\d+_\d+_\w+\.whl$", whl.name), whl.name
    assert whl.stat().st_size < 4 * 1024 * 1024
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        assert any(n.endswith("licenses/LICENSE") for n in names)
        (so,) = [n for n in names if re.search(r"_core\.[^/]*(so|pyd)$", n)]
        assert z.getinfo(so).file_size < 4 * 1024 * 1024
