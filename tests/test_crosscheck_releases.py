"""Go releases: ``Map(go=...)`` and the cross-check against every Go toolchain
found (docs/go-releases.md), plus the command line's messages and exit codes.

The toolchains come from ``go`` on PATH (Debian's golang-go, Go 1.19) and
``scripts/go-toolchains.sh`` (Go 1.21-1.24 unpacked into
``~/.cache/gomap/go-toolchains``). Without them the per-release tests are
skipped -- unless CI is set: CI installs them (the README's test command), so
there a missing release fails.
"""

from __future__ import annotations

import copy
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

import gomap
from gomap import crosscheck as cc
from gomap.__main__ import main as cli_main

# The releases CI must cross-check (1.20 has no Debian package: by reading only).
CHECKED = ("1.19", "1.21", "1.22", "1.23", "1.24")
SEED = 20261202
TRACES_PER_RELEASE = 32  # 4 of each of the 8 key kinds


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


_TOOLCHAINS: Dict[str, str] = {}


def _toolchains() -> Dict[str, str]:
    """release -> go binary, for every toolchain found (first one wins)."""
    if not _TOOLCHAINS:
        for go in cc.find_toolchains():
            try:
                _, rel = cc.go_release(go)
            except (cc.GoNotFound, cc.UnsupportedGo):
                continue
            _TOOLCHAINS.setdefault(rel, go)
    return _TOOLCHAINS


def _require(release: str) -> str:
    go = _toolchains().get(release)
    if go is None:
        msg = (f"no Go {release} toolchain found (go on PATH, $GOMAP_GO, {cc.toolchain_dir()}); "
               "install with: apt-get install -y golang-go && scripts/go-toolchains.sh")
        if _in_ci():
            pytest.fail("CI is set but " + msg)
        pytest.skip(msg)
    return go


# ---------------------------------------------------------------------------
# Map(go=...)
# ---------------------------------------------------------------------------


def test_default_release_is_go119():
    m = gomap.Map("int64", "int64")
    assert m.go == "1.19"
    assert m.snapshot()["go"] == "1.19"
    s = m.stats()
    assert s["go"] == "1.19" and s["load_factor_max"] == 6.5


@pytest.mark.parametrize("release", ["1.19", "1.20", "1.21", "1.22", "1.23", "1.24"])
def test_release_is_kept_by_copy_and_pickle(release):
    m = gomap.Map("string", "int64", go=release)
    for i in range(100):
        m[f"k{i}"] = i
    assert m.go == release and m.snapshot()["go"] == release
    assert m.stats()["load_factor_max"] == (6.0 if release == "1.21" else 6.5)
    c = m.copy()
    assert c.go == release and c.snapshot() == m.snapshot()
    for p in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert p.go == release and dict(p.items()) == dict(m.items())
        assert p.snapshot()["hash0"] == m.snapshot()["hash0"]
    assert gomap.Map("int64", "int64", go=f"go{release}").go == release


def test_go_argument_is_checked():
    with pytest.raises(ValueError, match=r'unsupported Go release "1\.25".*1\.19, 1\.20, 1\.21, 1\.22, 1\.23, 1\.24'):
        gomap.Map("int64", "int64", go="1.25")
    for bad in ("1.18", "2.0", "", "1.21.x", "latest"):
        with pytest.raises(ValueError):
            gomap.Map(go=bad)
    for bad in (1.21, 121, b"1.21", ["1.21"]):
        with pytest.raises(TypeError, match="go must be a Go release as a string"):
            gomap.Map(go=bad)
    assert gomap.Map(go=None).go == "1.19"


def test_go121_grows_at_load_factor_six():
    def grow_points(release):
        m = gomap.Map("int64", "int64", go=release)
        points, b = [], 0
        for i in range(1, 200):
            m[i] = i
            s = m.snapshot()
            if s["B"] != b:
                points.append(i)
                b = s["B"]
        return points

    assert grow_points("1.21") == [9, 13, 25, 49, 97, 193]
    assert grow_points("1.19") == grow_points("1.23") == [9, 14, 27, 53, 105]
    # make(map, hint): 13 entries fit B=1 at 6.5 per bucket, not at 6.0
    assert gomap.Map("int64", "int64", 13, go="1.19").snapshot()["B"] == 1
    assert gomap.Map("int64", "int64", 13, go="1.21").snapshot()["B"] == 2


def test_go123_places_keys_with_every_hashkey_word():
    def placement(release, hk):
        m = gomap.Map("string", "int64", 200, hashkey=hk, rand=[7], go=release)
        for i in range(150):
            m[f"key {i};" * (1 + i % 9)] = i  # 7 to 90 bytes: every memhash branch
        return m.snapshot()["buckets"]

    hk = [11, 13, 15, 17]
    assert placement("1.23", hk) == placement("1.24", hk) != placement("1.22", hk)
    for word in (1, 2, 3):  # hashkey[1..3]: ignored before 1.23, mixed in from 1.23
        hk2 = list(hk)
        hk2[word] += 2
        assert placement("1.19", hk) == placement("1.22", hk2)
        assert placement("1.23", hk) != placement("1.23", hk2)


# ---------------------------------------------------------------------------
# The cross-check, one release at a time
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("release", CHECKED)
def test_crosscheck_release(release):
    go = _require(release)
    report = cc.run_crosscheck(traces=TRACES_PER_RELEASE, seed=SEED, kinds=cc.ALL_KINDS, n_ops=250,
                               progress=False, go=go)
    assert report.release == release and report.go_version.startswith(f"go{release}")
    assert {k: t for k, (g, t) in report.per_kind().items()} == {k: 4 for k in cc.ALL_KINDS}
    assert report.ok, report.format(verbose=True)
    cov = report.coverage()
    assert cov.get("growing_steps", 0) > 0 and cov.get("draws_iter", 0) > 0


@pytest.mark.parametrize("release,wrong", [("1.21", "1.19"), ("1.23", "1.22"), ("1.24", "1.21")])
def test_replaying_with_the_wrong_release_fails(release, wrong):
    """The release matters: Go's output replayed on a map of another release mismatches."""
    go = _require(release)
    traces = cc.generate_traces(8, seed=SEED, kinds=("int64", "string"), n_ops=250, go=release)
    outs = cc.run_harness(traces, cc.build_harness(go))
    right = [cc.replay(t, o, go=release) for t, o in zip(traces, outs)]
    assert all(r.ok for r in right), [r.mismatch.format() for r in right if r.mismatch]
    wrong_results = [cc.replay(t, o, go=wrong) for t, o in zip(traces, outs)]
    assert sum(not r.ok for r in wrong_results) >= 4


def test_go_release_refuses_maps_it_does_not_follow(tmp_path):
    def fake(version: str) -> str:
        p = tmp_path / f"go-{version}"
        p.write_text(f"#!/bin/sh\necho {version}\n")
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
        return str(p)

    assert cc.go_release(fake("go1.22.12")) == ("go1.22.12", "1.22")
    for v, why in (("go1.26.1", "removed the classic map"), ("go1.25.0", "not been checked"),
                   ("go1.18.10", "1.19 and later")):
        with pytest.raises(cc.UnsupportedGo, match=why):
            cc.go_release(fake(v))
    with pytest.raises(cc.GoNotFound, match="not a working Go toolchain"):
        cc.go_release("/bin/true")


# ---------------------------------------------------------------------------
# Command line: messages and exit codes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["--traces", "abc"], "argument --traces: expected a whole number, got 'abc'"),
    (["--traces", "0"], "argument --traces: expected a whole number >= 1, got '0'"),
    (["--only", "5-2"], "argument --only: range '5-2' is backwards (write it as 2-5)"),
    (["--only", "x"], "argument --only: 'x' is not a trace id or a range A-B"),
    (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
])
def test_cli_refuses_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["crosscheck", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "_positive" not in err and "_parse_ids" not in err and "Traceback" not in err


def test_cli_refuses_ids_outside_the_run(capsys):
    assert cli_main(["crosscheck", "--traces", "5", "--only", "3,7-9", "--no-progress"]) == 2
    assert "trace id(s) 7, 8, 9 not in a run of --traces 5 (ids 0-4)" in capsys.readouterr().err


def test_cli_exit_codes_are_documented(capsys):
    with pytest.raises(SystemExit):
        cli_main(["crosscheck", "--help"])
    out = capsys.readouterr().out
    for code in range(5):
        assert f"\n  {code}  " in out


def test_cli_gomap_go_not_a_toolchain():
    """GOMAP_GO=/bin/true: a clear message and exit 2, no traceback (a real process)."""
    env = dict(os.environ, GOMAP_GO="/bin/true")
    p = subprocess.run([sys.executable, "-m", "gomap", "crosscheck", "--traces", "1"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "/bin/true is not a working Go toolchain" in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_unsupported_release_exits_4(tmp_path, capsys):
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho go1.26.0\n")
    fake.chmod(0o755)
    assert cli_main(["crosscheck", "--go", str(fake), "--traces", "1"]) == 4
    err = capsys.readouterr().err
    assert "go1.26.0" in err and "Go 1.26 removed the classic map" in err


def test_cli_progress_lines_and_first_build(tmp_path, monkeypatch, capsys):
    """Not on a terminal: progress as plain lines; the first harness build says so."""
    go = _require("1.19")
    # a fresh harness directory, the warm Go build cache
    monkeypatch.setenv("GOCACHE", str(Path(cc.harness._cache_root()) / "go-build"))
    monkeypatch.setenv("GOMAP_CACHE_DIR", str(tmp_path))
    assert cli_main(["crosscheck", "--go", go, "--traces", "3", "--seed", "1", "--ops", "60"]) == 0
    err = capsys.readouterr().err
    assert "building the Go harness with go1.19" in err
    assert "replaying on Go 1.19: 3/3 traces" in err
    assert "\r" not in err


def test_cli_all_go_table(tmp_path, monkeypatch, capsys):
    """--all-go: one row per release found; an unsupported toolchain is a row too, and exit 4."""
    for rel in CHECKED:
        _require(rel)
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho go1.26.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GOMAP_GO", str(fake))
    code = cli_main(["crosscheck", "--all-go", "--traces", "2", "--ops", "40", "--seed", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 4, out
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isdigit() or line.startswith("-")}
    for rel in CHECKED:
        assert f"go{rel}" in rows[rel] and "2/2" in rows[rel]
    assert "unsupported" in rows["-"] and str(fake) in rows["-"]
    assert "Go 1.26 removed the classic map" in out
