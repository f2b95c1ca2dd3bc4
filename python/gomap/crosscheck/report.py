"""Driving a cross-check run and reporting it."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .compare import TraceResult, replay, save_failure
from .harness import (INSTALL_HINT, GoNotFound, HarnessError, UnsupportedGo, build_harness, find_go, find_toolchains,
                      go_release, run_harness)
from .traces import ALL_KINDS, KEY_KINDS, generate_traces

# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


class _Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, otherwise a
    plain line every ``every`` seconds (and one at the end), so that logs of CI
    runs show that something is happening."""

    def __init__(self, total: int, enabled: bool, label: str = "replaying", every: float = 10.0,
                 tty: Optional[bool] = None):
        self.total = max(total, 1)
        self.enabled = enabled
        self.label = label
        self.every = every
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.last = 0.0
        self.start = time.monotonic()
        self.last_line = self.start

    def update(self, done: int, bad: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        extra = f", {bad} mismatched" if bad else ""
        if not self.tty:
            if done < self.total and now - self.last_line < self.every:
                return
            self.last_line = now
            sys.stderr.write(f"{self.label}: {done}/{self.total} traces{extra} ({now - self.start:.0f}s)\n")
            sys.stderr.flush()
            return
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        fill = width * done // self.total
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}"
                         f" traces{extra} ({now - self.start:.0f}s)")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass
class Report:
    seed: int
    results: List[TraceResult]
    kinds: List[str]
    go_version: str = ""
    release: str = "1.19"
    go_path: str = ""
    seconds: float = 0.0
    n_traces: int = 0
    n_ops: int = 300

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def mismatches(self) -> List[TraceResult]:
        return [r for r in self.results if not r.ok]

    def per_kind(self) -> Dict[str, Tuple[int, int]]:
        out: Dict[str, Tuple[int, int]] = {}
        for kind in self.kinds:
            rs = [r for r in self.results if r.kind == kind]
            out[kind] = (sum(r.ok for r in rs), len(rs))
        return out

    def coverage(self) -> Dict[str, int]:
        tot: Dict[str, int] = {}
        for r in self.results:
            for k, v in r.stats.items():
                if k.startswith("max_"):
                    tot[k] = max(tot.get(k, 0), v)
                else:
                    tot[k] = tot.get(k, 0) + v
        return tot

    def format(self, verbose: bool = False) -> str:
        lines = [f"gomap cross-check against {self.go_version or 'Go'} (gomap.Map(go={self.release!r}), "
                 f"GODEBUG=cpu.aes=off), seed {self.seed}"]
        for kind, (good, total) in self.per_kind().items():
            if total:
                lines.append(f"  {kind:8s} {good}/{total} traces bit-exact")
        steps = sum(r.steps for r in self.results)
        lines.append(f"  {steps} operations compared in {self.seconds:.1f}s")
        if verbose:
            cov = self.coverage()
            lines.append("  coverage: " + ", ".join(f"{k}={v}" for k, v in sorted(cov.items())))
        bad = self.mismatches
        if bad:
            lines.append(f"{len(bad)} trace(s) mismatched; first:")
            lines.append(bad[0].mismatch.format() if bad[0].mismatch else f"trace {bad[0].trace_id}")
            go_opt = f" --go {self.go_path}" if self.go_path else ""
            lines.append(f"reproduce: python -m gomap crosscheck{go_opt} --seed {self.seed} --traces {self.n_traces}"
                         f" --key-types {','.join(self.kinds)} --ops {self.n_ops}"
                         f" --only {bad[0].trace_id} --verbose")
            if verbose:
                for r in bad[1:]:
                    if r.mismatch:
                        lines.append(r.mismatch.format())
        else:
            lines.append("all traces matched")
        return "\n".join(lines)


def run_crosscheck(traces: int = 100, seed: Optional[int] = None, kinds: Sequence[str] = KEY_KINDS,
                   n_ops: int = 300, only: Optional[Iterable[int]] = None, progress: Optional[bool] = None,
                   gomap_mod: Any = None, check_snapshots: bool = True,
                   log: Optional[Callable[[str], None]] = None,
                   save_dir: Optional[str] = None, go: Optional[str] = None,
                   info: Optional[Callable[[str], None]] = None) -> Report:
    """Generate, run on Go, replay on gomap, compare.

    ``go``: the Go toolchain (default: ``$GOMAP_GO`` or ``go`` on PATH); its
    release (``go env GOVERSION``) selects ``gomap.Map(go=...)``.  ``save_dir``:
    write each mismatching trace there as ``trace-<id>.json`` (``{"trace":
    <harness input>, "go": <harness output>, "release": ..., "mismatch": ...}``),
    which replays without Go via :func:`replay_saved`.  ``progress``: None shows
    progress on stderr (a bar on a terminal, periodic lines otherwise).
    ``info``: told about one-off events such as the first harness build.
    Raises GoNotFound, UnsupportedGo, HarnessError.
    """
    t0 = time.monotonic()
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    kinds = list(kinds)
    for k in kinds:
        if k not in ALL_KINDS:
            raise ValueError(f"unknown key kind {k!r} (expected some of {','.join(ALL_KINDS)})")
    if gomap_mod is None:
        import gomap as gomap_mod  # noqa: F811
    go_path = go or find_go()
    go_version, release = go_release(go_path)
    exe = build_harness(go_path, log=info)
    trs = generate_traces(traces, seed, kinds, n_ops, only=only, go=release)
    if progress is None:
        progress = True
    # One Go process per chunk keeps memory bounded and lets replay start early.
    chunk = 64
    bar = _Progress(len(trs), bool(progress), label=f"replaying on Go {release}")
    results: List[TraceResult] = []
    bad = 0
    for start in range(0, len(trs), chunk):
        part = trs[start:start + chunk]
        outs = run_harness(part, exe)
        for t, o in zip(part, outs):
            r = replay(t, o, gomap_mod, check_snapshots=check_snapshots, go=release)
            results.append(r)
            if not r.ok:
                bad += 1
                if save_dir is not None:
                    save_failure(save_dir, t, o, r, go=release)
            if log is not None:
                log(f"trace {t.id:4d} {t.kind:8s} hint={t.hint:<5d} ops={len(t.ops):<5d} "
                    f"maxB={r.stats.get('max_B', 0)} {'ok' if r.ok else 'MISMATCH'}")
            bar.update(len(results), bad)
    bar.close()
    return Report(seed=seed, results=results, kinds=kinds, go_version=go_version, release=release,
                  go_path=go if go else "", seconds=time.monotonic() - t0, n_traces=traces, n_ops=n_ops)


@dataclass
class ReleaseRow:
    """One line of :func:`run_all_go`'s table: a toolchain and how it went."""

    go_path: str
    go_version: str = ""
    release: str = ""
    report: Optional[Report] = None
    error: str = ""  # why it was not checked
    problem: str = ""  # "" (checked), "unsupported" (release), "not-go" (no toolchain), "harness" (failed)

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok


def run_all_go(toolchains: Optional[Sequence[str]] = None, seed: Optional[int] = None,
               **kwargs: Any) -> List[ReleaseRow]:
    """:func:`run_crosscheck` with every toolchain of ``toolchains`` (default:
    :func:`find_toolchains`), one release each (the first toolchain found of a
    release wins), the same seed for all.  Raises GoNotFound if there is none."""
    gos = list(toolchains) if toolchains is not None else find_toolchains()
    if not gos:
        raise GoNotFound(INSTALL_HINT)
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    rows: List[ReleaseRow] = []
    seen: Dict[str, str] = {}
    for go in gos:
        row = ReleaseRow(go_path=go)
        try:
            row.go_version, row.release = go_release(go)
        except UnsupportedGo as e:
            row.error, row.problem, row.go_version = str(e), "unsupported", e.version
            rows.append(row)
            continue
        except GoNotFound as e:
            row.error, row.problem = str(e).splitlines()[0], "not-go"
            rows.append(row)
            continue
        if row.release in seen:
            continue  # one toolchain per release
        seen[row.release] = go
        try:
            row.report = run_crosscheck(seed=seed, go=go, **kwargs)
        except HarnessError as e:
            row.error, row.problem = str(e), "harness"
        rows.append(row)
    rows.sort(key=lambda r: (r.release == "", r.release))
    return rows


def format_release_table(rows: Sequence[ReleaseRow]) -> str:
    """The per-release table of :func:`run_all_go`."""
    out = [f"{'Go':6s} {'toolchain':10s} {'bit-exact':>11s} {'ops':>8s} {'time':>7s}  path"]
    for r in rows:
        if r.report is not None:
            rep = r.report
            good = sum(x.ok for x in rep.results)
            ops = sum(x.steps for x in rep.results)
            mark = "" if rep.ok else "  MISMATCH"
            out.append(f"{r.release:6s} {r.go_version:10s} {f'{good}/{len(rep.results)}':>11s} {ops:>8d} "
                       f"{rep.seconds:6.0f}s  {r.go_path}{mark}")
        else:
            what = "unsupported" if r.problem == "unsupported" else "not run"
            out.append(f"{r.release or '-':6s} {r.go_version or '?':10s} {what:>11s} {'':>8s} {'':>7s}  {r.go_path}")
            out.append(f"       {r.error.splitlines()[0] if r.error else ''}")
    seeds = {r.report.seed for r in rows if r.report is not None}
    if seeds:
        out.append(f"seed {', '.join(map(str, sorted(seeds)))}; GODEBUG=cpu.aes=off; Go 1.24 built with "
                   "GOEXPERIMENT=noswissmap")
    return "\n".join(out)
