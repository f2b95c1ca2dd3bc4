"""The Go side: finding a Go toolchain, building the harness in
``gomap/_harness`` with it and running traces through it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .traces import Trace

HARNESS_DIR = Path(__file__).resolve().parent.parent / "_harness"
HARNESS_FILES = ("main.go", "go.mod", "empty.s")
INSTALL_HINT = (
    "The Go cross-check needs a Go toolchain with the classic runtime map (Go 1.19-1.24).\n"
    "Install it, e.g. on Debian/Ubuntu:  apt-get install -y golang-go  (Go 1.19),\n"
    "more releases without touching the system: scripts/go-toolchains.sh (Debian's golang-1.2x-go),\n"
    "and make sure `go` is on PATH (or set GOMAP_GO=/path/to/go)."
)

# The Go releases whose runtime map gomap reproduces (the `go=` of gomap.Map).
RELEASES: Tuple[str, ...] = ("1.19", "1.20", "1.21", "1.22", "1.23", "1.24")


class GoNotFound(RuntimeError):
    """No working ``go`` tool."""


class HarnessError(RuntimeError):
    """The Go harness could not be built or failed while running."""


class UnsupportedGo(RuntimeError):
    """A Go toolchain whose runtime map gomap does not reproduce."""

    def __init__(self, message: str, version: str = ""):
        super().__init__(message)
        self.version = version


# --------------------------------------------------------------------------
# The Go harness
# --------------------------------------------------------------------------


def find_go() -> str:
    """The ``go`` to use: ``$GOMAP_GO`` or the one on PATH."""
    go = os.environ.get("GOMAP_GO") or shutil.which("go")
    if not go:
        raise GoNotFound(INSTALL_HINT)
    return go


def _go_version(go: str) -> Tuple[str, Tuple[int, int]]:
    """``go env GOVERSION`` and its (major, minor). Raises GoNotFound if ``go``
    does not run or is not a Go toolchain."""
    try:
        p = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60,
                           env=_go_env(_cache_root()))
    except (OSError, subprocess.SubprocessError) as e:
        raise GoNotFound(f"cannot run {go}: {e}\n{INSTALL_HINT}") from e
    ver = p.stdout.strip().split()[0] if p.stdout.strip() else ""
    nums = ver[2:].split(".") if ver.startswith("go") else []
    try:
        major, minor = int(nums[0]), int("".join(ch for ch in nums[1] if ch.isdigit()))
    except (IndexError, ValueError):
        detail = p.stderr.strip().splitlines()[-1:] or [f"it printed {p.stdout.strip()[:60]!r}"]
        raise GoNotFound(f"{go} is not a working Go toolchain: `{go} env GOVERSION` gave no Go version "
                         f"(exit {p.returncode}; {detail[0]})\n{INSTALL_HINT}") from None
    return ver, (major, minor)


def go_release(go: str) -> Tuple[str, str]:
    """``(GOVERSION, release)`` of the toolchain ``go``, release being one of
    :data:`RELEASES`. Raises UnsupportedGo for a release without the classic map
    (or one gomap does not follow), GoNotFound if ``go`` is no toolchain."""
    ver, (major, minor) = _go_version(go)
    rel = f"{major}.{minor}"
    if rel in RELEASES:
        return ver, rel
    if (major, minor) >= (1, 26):
        why = "Go 1.26 removed the classic map (GOEXPERIMENT=noswissmap is gone): there is nothing to compare with"
    elif (major, minor) == (1, 25):
        why = ("Go 1.25 may still build the classic map with GOEXPERIMENT=noswissmap, but gomap has not been "
               "checked against it")
    else:
        why = "gomap follows Go 1.19 and later"
    raise UnsupportedGo(f"{go} is {ver}: {why}. Supported: Go {RELEASES[0]}-{RELEASES[-1]}.", ver)


def toolchain_dir() -> Path:
    """Where ``scripts/go-toolchains.sh`` unpacks the extra toolchains."""
    env = os.environ.get("GOMAP_GO_TOOLCHAINS")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gomap" / "go-toolchains"


def find_toolchains() -> List[str]:
    """Every Go toolchain in sight: ``$GOMAP_GO``, ``go`` on PATH, and those
    ``scripts/go-toolchains.sh`` unpacked (:func:`toolchain_dir`), without
    duplicates, in that order."""
    found: List[str] = []
    env = os.environ.get("GOMAP_GO")
    if env:
        found.append(env)
    on_path = shutil.which("go")
    if on_path:
        found.append(on_path)
    root = toolchain_dir()
    if root.is_dir():
        found.extend(str(p) for p in sorted(root.glob("golang-*-go/usr/lib/go-*/bin/go")) if os.access(p, os.X_OK))
    seen = set()
    out = []
    for go in found:
        real = os.path.realpath(go)
        if real not in seen:
            seen.add(real)
            out.append(go)
    return out


def _cache_root() -> Path:
    env = os.environ.get("GOMAP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    root = base / "gomap"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return root
    except OSError:
        root = Path(tempfile.gettempdir()) / f"gomap-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
        root.mkdir(parents=True, exist_ok=True)
        return root


def _go_env(root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    # `go build` needs a writable build cache and GOPATH; keep them under our cache
    # unless the user has working ones.
    env.setdefault("GOCACHE", str(root / "go-build"))
    env.setdefault("GOPATH", str(root / "gopath"))
    env["GO111MODULE"] = "on"
    env["GOFLAGS"] = ""
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOPROXY", "off")
    return env


def build_harness(go: Optional[str] = None, force: bool = False,
                  log: Optional[Callable[[str], None]] = None) -> Path:
    """Build the harness (once per source and Go version) and return the binary's path.

    ``log`` is told when a build actually happens (the first run with a toolchain).
    """
    go = go or find_go()
    ver, (major, minor) = _go_version(go)
    if (major, minor) > (1, 23) and "noswissmap" not in os.environ.get("GOEXPERIMENT", ""):
        # Go 1.24+ uses Swiss tables unless built with GOEXPERIMENT=noswissmap.
        extra_env = {"GOEXPERIMENT": ",".join(filter(None, [os.environ.get("GOEXPERIMENT", ""), "noswissmap"]))}
    else:
        extra_env = {}
    h = hashlib.sha256()
    for name in HARNESS_FILES:
        h.update(name.encode() + b"\0" + (HARNESS_DIR / name).read_bytes() + b"\0")
    h.update(ver.encode() + repr(sorted(extra_env.items())).encode())
    root = _cache_root()
    out_dir = root / f"harness-{h.hexdigest()[:16]}"
    exe = out_dir / ("gomapharness.exe" if os.name == "nt" else "gomapharness")
    if exe.exists() and not force:
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"building the Go harness with {ver}{' (GOEXPERIMENT=noswissmap)' if extra_env else ''} "
            f"(once per toolchain; cached in {out_dir})")
    env = _go_env(root)
    env.update(extra_env)
    ldflags = ["-ldflags=-checklinkname=0"] if (major, minor) >= (1, 23) else []
    with tempfile.TemporaryDirectory(prefix="gomap-harness-") as tmp:
        for name in HARNESS_FILES:
            shutil.copyfile(HARNESS_DIR / name, Path(tmp) / name)
        tmp_exe = out_dir / f".build-{os.getpid()}-{exe.name}"
        cmd = [go, "build", "-trimpath", *ldflags, "-o", str(tmp_exe), "."]
        p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise HarnessError(f"building the Go harness failed ({' '.join(cmd)}):\n{p.stderr.strip()}")
        os.replace(tmp_exe, exe)
    return exe


def run_harness(traces: Sequence[Trace], exe: Optional[Path] = None, full: bool = False,
                timeout: Optional[float] = None, verify: bool = False) -> List[Dict[str, Any]]:
    """Play ``traces`` on real Go maps (one process for all); return the parsed outputs.

    ``full``: every step carries the whole bucket arrays instead of the chains
    that changed.  ``verify``: every step also carries them as "fk"/"fo" (to
    check the delta encoding).
    """
    if exe is None:
        exe = build_harness()
    payload = "".join(json.dumps(t.to_wire(full, verify), separators=(",", ":")) + "\n" for t in traces)
    env = dict(os.environ)
    env["GODEBUG"] = ",".join(filter(None, [os.environ.get("GODEBUG", ""), "cpu.aes=off"]))
    p = subprocess.run([str(exe)], input=payload.encode(), capture_output=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise HarnessError(f"Go harness failed (exit {p.returncode}):\n{p.stderr.decode(errors='replace').strip()}")
    lines = p.stdout.decode("utf-8").splitlines()
    if len(lines) != len(traces):
        raise HarnessError(f"Go harness printed {len(lines)} results for {len(traces)} traces")
    outs = [json.loads(line) for line in lines]
    for t, o in zip(traces, outs):
        if o.get("id") != t.id or len(o.get("steps", ())) != len(t.ops):
            raise HarnessError(f"Go harness output does not match trace {t.id}")
    return outs
