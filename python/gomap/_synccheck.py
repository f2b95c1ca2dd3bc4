"""Cross-check of :class:`gomap.SyncMap` against Go's own ``sync.Map``.

``python -m gomap._synccheck --traces 300`` plays random traces of ``Load``,
``Store``, ``LoadOrStore``, ``LoadAndDelete``, ``Delete``, ``Range``, ``Swap``,
``CompareAndSwap``, ``CompareAndDelete`` and ``Clear`` for every key kind Go can
share with gomap (int64, int32, uint64, uint32, float64, float32, string, and
bytes as Go strings) on Go's ``sync.Map`` (``_harness_sync``, run with
``GODEBUG=cpu.aes=off``) and on ``SyncMap`` with Go's ``hashkey``, and after
every operation compares, bit for bit:

* the result, and for ``Range`` the exact order of the visited pairs;
* Go's internal state: the keys of ``read.m``, ``amended``, the keys of
  ``dirty``, ``misses``, which entries are expunged / nil / shared;
* both inner maps (``read.m`` and ``dirty``) as Go's ``hmap``: ``hash0``, ``B``,
  ``count``, ``noverflow``, ``nevacuate``, growth state and every bucket and
  overflow bucket (tophash bytes and keys), old buckets included.

Draws: Go's ``fastrand`` cannot be injected into the runtime, so the draws are
recovered from what Go shows.  A ``hash0`` draw (``make`` in ``dirtyLocked``,
``delete`` emptying the dirty map, ``Clear``) is read from the new map's header.
An iteration draw (``Range``, and the ``range read.m`` that fills a new dirty
map) is *inferred*: each of the ``2^B * 8`` candidate ``(startBucket, offset)``
starts is tried on a structural fork of the SyncMap, and the first one that
reproduces Go's Range order and Go's bucket layout is fed as the draw.  Every
operation must consume exactly the draws predicted for it.

``Swap``, ``CompareAndSwap``, ``CompareAndDelete`` (Go 1.20) and ``Clear`` (Go
1.23) are Go's own methods when the harness is built with a Go that has them;
with Go 1.19 (installed here) the harness emulates them on the runtime's
``sync.Map`` so that every map operation is still the runtime's (see
``_harness_sync/main.go``).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import SyncMap

KINDS = ("int64", "int32", "uint64", "uint32", "float64", "float32", "string", "bytes")
OPS = ["Load", "Store", "LoadOrStore", "LoadAndDelete", "Delete", "Range",
       "Swap", "CompareAndSwap", "CompareAndDelete", "Clear"]
WEIGHTS = [24, 22, 14, 9, 10, 9, 8, 7, 6, 1]


class HarnessError(RuntimeError):
    pass


def harness_source() -> Path:
    d = Path(__file__).resolve().parent / "_harness_sync"
    if not (d / "main.go").is_file():
        raise FileNotFoundError(f"{d}/main.go not found")
    return d


def go_version(go: str) -> tuple[str, tuple[int, int]]:
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    try:
        major, minor = out.removeprefix("go").split(".")[:2]
        return out, (int(major), int("".join(c for c in minor if c.isdigit())))
    except ValueError:
        return out, (0, 0)


def build(go: str | None = None) -> Path:
    """Builds the harness (cached under ``~/.cache/gomap/harness_sync``)."""
    go = go or os.environ.get("GOMAP_GO") or shutil.which("go")
    if not go:
        raise HarnessError("no `go` on PATH (set GOMAP_GO to a Go toolchain)")
    src = harness_source()
    version, ver = go_version(go)
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
    if ver >= (1, 24):
        # Go 1.24 reimplemented sync.Map as a hash-trie and maps as Swiss
        # tables; these restore map.go and the classic hmap gomap reproduces.
        env["GOEXPERIMENT"] = "nosynchashtriemap,noswissmap"
    h = hashlib.sha256()
    for name in ("main.go", "go.mod"):
        h.update((src / name).read_bytes())
    h.update(version.encode())
    h.update(env.get("GOEXPERIMENT", "").encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    out_dir = cache / "gomap" / "harness_sync" / h.hexdigest()[:16]
    exe = out_dir / "harness_sync"
    if exe.is_file():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"harness_sync.{os.getpid()}.tmp"
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), "."],
        cwd=src, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"go build failed:\n{proc.stderr}")
    os.replace(tmp, exe)
    return exe


class Harness:
    """The Go side: one process, one trace per request line."""

    def __init__(self, exe: Path) -> None:
        env = dict(os.environ, GODEBUG="cpu.aes=off")
        self.proc = subprocess.Popen(
            [str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        hello = json.loads(self.proc.stdout.readline() or "{}")  # type: ignore[union-attr]
        if not hello.get("ok"):
            self.close()
            raise HarnessError(f"harness refused to start: {hello}")
        self.go_version: str = hello["go"]
        self.hashkey: tuple[int, ...] = tuple(hello.get("hashkey") or ())

    def play(self, ops: list, kind: str | None = None, maps: bool = False) -> list:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req: dict[str, Any] = {"ops": ops}
        if kind:
            req["kind"] = kind
            req["maps"] = maps
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise HarnessError("harness exited")
        reply = json.loads(line)
        if "error" in reply:
            raise HarnessError(f"harness error: {reply['error']}")
        return reply["steps"] or []

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- traces ----------------------------------------------------------------------


def key_pool(kind: str, rng: random.Random) -> list[Any]:
    n = rng.randint(1, 40)
    pool: set[Any]
    if kind in ("int64", "int32", "uint64", "uint32"):
        lo, hi = {
            "int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1),
            "uint64": (0, 2**64 - 1), "uint32": (0, 2**32 - 1),
        }[kind]
        small = max(lo, -20)
        pool = {rng.randint(small, 60) for _ in range(n)}  # noqa: C401
        pool |= {rng.randint(lo, hi) for _ in range(rng.randint(0, 3))}
        return sorted(pool)
    if kind in ("float64", "float32"):
        # Dyadic values: exact in float32 and in JSON.  -0.0 is the key 0.0.
        pool = {rng.randint(-80, 80) / 8 for _ in range(n)} | {-0.0}
        return sorted(pool)
    alphabet = "abcxyz0"
    pool = {"".join(rng.choices(alphabet, k=rng.randint(0, 5))) for _ in range(n)}
    return sorted(pool)


def random_trace(rng: random.Random, kind: str) -> list:
    keys = key_pool(kind, rng)
    model: dict = {}  # what the map holds, so that compare-and-* often succeed
    ops: list = []
    for _ in range(rng.randint(1, 150)):
        name = rng.choices(OPS, WEIGHTS)[0]
        if name == "Range":
            ops.append([name, rng.choice([-1, -1, -1, 1, 2, 3])])
            continue
        if name == "Clear":
            ops.append([name])
            model.clear()
            continue
        k = rng.choice(keys)
        mk = float(k) + 0.0 if kind in ("float64", "float32") else k
        val = rng.choice([rng.randint(-3, 99), f"v{rng.randint(0, 9)}", None])
        if name in ("Store", "LoadOrStore", "Swap"):
            ops.append([name, k, val])
            if name == "LoadOrStore":
                model.setdefault(mk, val)
            else:
                model[mk] = val
        elif name in ("CompareAndSwap", "CompareAndDelete"):
            old = model[mk] if mk in model and rng.random() < 0.6 else rng.choice([rng.randint(-3, 3), "v1", None])
            hit = mk in model and model[mk] == old
            if name == "CompareAndSwap":
                ops.append([name, k, old, val])
                if hit:
                    model[mk] = val
            else:
                ops.append([name, k, old])
                if hit:
                    del model[mk]
        else:
            ops.append([name, k])
            if name in ("Delete", "LoadAndDelete"):
                model.pop(mk, None)
    return ops


# -- playing on SyncMap ---------------------------------------------------------


class Draws:
    """The ``rand=`` source: the draws planned for the current operation."""

    def __init__(self) -> None:
        self.queue: collections.deque[int] = collections.deque()
        self.extra = 0

    def __call__(self) -> int:
        if self.queue:
            return self.queue.popleft()
        self.extra += 1
        return 0


def _pykey(kind: str, k: Any) -> Any:
    return k.encode("latin-1") if kind == "bytes" else k


def _jsonable(x: Any) -> Any:
    """What Go's JSON says for a SyncMap result (bytes keys are Go strings)."""
    if isinstance(x, bytes):
        return x.decode("latin-1")
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def apply(m: Any, kind: str, op: list) -> Any:
    name = op[0]
    if name == "Clear":
        m.clear()
        return None
    if name == "Range":
        limit = op[1]
        seen: list = []

        def f(k: Any, v: Any) -> bool:
            seen.append([k, v])
            return limit < 0 or len(seen) < limit

        m.range(f)
        return _jsonable(seen)
    k = _pykey(kind, op[1])
    if name == "Load":
        return _jsonable(list(m.load(k)))
    if name == "Store":
        m.store(k, op[2])
        return None
    if name == "LoadOrStore":
        return _jsonable(list(m.load_or_store(k, op[2])))
    if name == "LoadAndDelete":
        return _jsonable(list(m.load_and_delete(k)))
    if name == "Delete":
        m.delete(k)
        return None
    if name == "Swap":
        return _jsonable(list(m.swap(k, op[2])))
    if name == "CompareAndSwap":
        return m.compare_and_swap(k, op[2], op[3])
    if name == "CompareAndDelete":
        return m.compare_and_delete(k, op[2])
    raise ValueError(name)


def _normkey(kind: str, k: Any) -> Any:
    k = _jsonable(k)
    if kind in ("float64", "float32") and k is not None:
        return float(k) + 0.0  # JSON shows Go's -0 as 0; one key either way
    return k


def _norm_map(info: dict | None, kind: str) -> Any:
    if info is None:
        return None
    out = {k: info[k] for k in ("hash0", "B", "count", "noverflow", "nevacuate", "growing", "same_size_grow")}

    def chain(c: list) -> list:
        return [(tuple(b["tophash"]), tuple(_normkey(kind, k) for k in b["keys"])) for b in c]

    out["buckets"] = None if info["buckets"] is None else [chain(c) for c in info["buckets"]]
    if info["oldbuckets"] is None:
        out["oldbuckets"] = None
    else:
        out["oldbuckets"] = [
            ("evacuated", tuple(o["tophash"])) if isinstance(o, dict) else chain(o)
            for o in info["oldbuckets"]
        ]
    return out


def _norm_state(s: dict, kind: str) -> dict:
    out: dict[str, Any] = {"amended": s["amended"], "misses": s["misses"]}
    for name in ("read", "dirty", "expunged", "deleted", "shared"):
        keys = s[name]
        out[name] = None if keys is None else sorted(map(repr, (_normkey(kind, k) for k in keys)))
    return out


def observe(m: Any, kind: str) -> tuple[dict, dict]:
    maps = m._debug_maps()
    return (
        {"read": _norm_map(maps["read"], kind), "dirty": _norm_map(maps["dirty"], kind)},
        _norm_state(m._debug_state(), kind),
    )


def go_observe(step: dict, kind: str) -> tuple[dict, dict]:
    g = step["m"]
    return (
        {"read": _norm_map(g["read"], kind), "dirty": _norm_map(g["dirty"], kind)},
        _norm_state(step["s"], kind),
    )


class Mismatch(AssertionError):
    pass


def play_trace(ops: list, kind: str, go_steps: list, hashkey: tuple[int, ...]) -> dict[str, int]:
    """Plays ``ops`` on a SyncMap and compares every step with Go's."""
    draws = Draws()
    m: SyncMap[Any, Any] = SyncMap(kind, "object", hashkey=hashkey, rand=draws)
    stats = {"ops": 0, "ranges": 0, "inferred": 0, "hash0": 0}
    for i, (op, g) in enumerate(zip(ops, go_steps)):
        where = f"op #{i} {op!r}"
        pre = m._debug_maps()
        known = {x["hash0"] for x in (pre["read"], pre["dirty"]) if x is not None}
        planned = [
            x["hash0"] for x in (g["m"]["dirty"], g["m"]["read"]) if x is not None and x["hash0"] not in known
        ][:1]
        stats["hash0"] += len(planned)
        iter_b = None
        if op[0] == "Range":
            stats["ranges"] += 1
            tgt = pre["dirty"] if pre["amended"] else pre["read"]
            if tgt is not None and tgt["count"] > 0:
                iter_b = tgt["B"]
        elif pre["dirty"] is None and g["m"]["dirty"] is not None and pre["read"] and pre["read"]["count"] > 0:
            iter_b = pre["read"]["B"]
        want = (g["r"], *go_observe(g, kind))
        plan = list(planned)
        if iter_b is not None:
            stats["inferred"] += 1
            for r in range(8 << iter_b):  # r = startBucket | offset << B
                trial_draws = Draws()
                trial_draws.queue.extend([*planned, r])
                f = m._debug_fork(rand=trial_draws)
                got = (apply(f, kind, op), *observe(f, kind))
                if got == want and not trial_draws.queue and not trial_draws.extra:
                    plan.append(r)
                    break
            else:
                raise Mismatch(f"{where}: no iteration start reproduces Go (B={iter_b}); Go: {want}")
        draws.queue.extend(plan)
        result = apply(m, kind, op)
        if draws.queue or draws.extra:
            raise Mismatch(f"{where}: draws planned {plan}, left {list(draws.queue)}, extra {draws.extra}")
        got = (result, *observe(m, kind))
        if got[0] != want[0]:
            raise Mismatch(f"{where}: result differs: go {want[0]!r} syncmap {got[0]!r}")
        if got[2] != want[2]:
            raise Mismatch(f"{where}: state differs:\n go {want[2]}\n py {got[2]}")
        if got[1] != want[1]:
            raise Mismatch(f"{where}: maps differ:\n go {want[1]}\n py {got[1]}")
        stats["ops"] += 1
    return stats


def run(traces: int, seed: int, kinds: tuple[str, ...] = KINDS, progress: bool = False) -> dict[str, Any]:
    h = Harness(build())
    try:
        rng = random.Random(seed)
        totals: collections.Counter[str] = collections.Counter()
        per_kind: collections.Counter[str] = collections.Counter()
        by_op: collections.Counter[str] = collections.Counter()
        t0 = time.monotonic()
        for t in range(traces):
            kind = kinds[t % len(kinds)]
            ops = random_trace(rng, kind)
            steps = h.play(ops, kind, maps=True)
            try:
                totals.update(play_trace(ops, kind, steps, h.hashkey))
            except Mismatch as exc:
                raise Mismatch(f"trace {t} (seed {seed}, kind {kind}): {exc}\ntrace: {ops}") from None
            per_kind[kind] += 1
            by_op.update(op[0] for op in ops)
            if progress and (t + 1) % 50 == 0:
                print(f"  {t + 1}/{traces} traces ({time.monotonic() - t0:.0f}s)", flush=True)
        return {"go": h.go_version, "traces": traces, "kinds": dict(per_kind), "by_op": dict(by_op), **totals}
    finally:
        h.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gomap._synccheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", type=int, default=300, help="random traces to play (default 300)")
    p.add_argument("--seed", type=int, default=20240519)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated key kinds")
    a = p.parse_args(argv)
    if a.traces < 1:
        p.error("--traces must be >= 1")
    kinds = tuple(k for k in a.kinds.split(",") if k)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        p.error(f"unknown kinds {bad}; choose from {', '.join(KINDS)}")
    try:
        out = run(a.traces, a.seed, kinds, progress=True)
    except HarnessError as exc:
        print(f"Go harness unavailable: {exc}", file=sys.stderr)
        return 3
    except Mismatch as exc:
        print(f"MISMATCH: {exc}", file=sys.stderr)
        return 1
    print(
        f"SyncMap vs {out['go']} sync.Map: {out['traces']}/{out['traces']} traces bit-exact "
        f"({out['ops']} ops, {out['ranges']} Ranges in Go's order, {out['inferred']} iteration draws "
        f"inferred, {out['hash0']} hash0 draws read; ops {out['by_op']}; kinds {out['kinds']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
