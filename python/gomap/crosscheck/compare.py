"""Replaying a trace on :class:`gomap.Map` and comparing it, step by step,
with what the Go harness reported."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .traces import (CLEAR, DELETE, ITER_NEW, ITER_NEXT, LOOKUP, OP_NAMES, SET, Trace, f32_from_bits, f64_from_bits,
                     fmt_key, key_from_wire, key_identity, trace_from_wire)

# --------------------------------------------------------------------------
# Replay and comparison
# --------------------------------------------------------------------------

_HEADER = ("count", "B", "flags", "noverflow", "hash0", "nevacuate", "growing")


class _Expected:
    """The Go snapshot, rebuilt step by step from the harness's deltas."""

    def __init__(self, kind: str, go: str = "1.19"):
        self.kind = kind
        self.float = kind in ("float64", "float32")
        self.snap: Dict[str, Any] = {
            "count": 0, "B": 0, "flags": 0, "noverflow": 0, "hash0": 0, "nevacuate": 0,
            "growing": False, "go": go, "buckets": None, "oldbuckets": None,
        }
        # float keys equal to zero: (array, index) -> [(pos, slot, sign bit)]
        self.zeros: Dict[Tuple[str, int], List[Tuple[int, int, bool]]] = {}

    def _chain(self, which: str, idx: int, chain: Any) -> Any:
        if self.kind == "bytes" and isinstance(chain, list):
            for b in chain:
                b["keys"] = [None if k is None else bytes.fromhex(k) for k in b["keys"]]
        if self.float:
            self.zeros.pop((which, idx), None)
            if isinstance(chain, list):
                conv = f64_from_bits if self.kind == "float64" else f32_from_bits
                zs = []
                for pos, b in enumerate(chain):
                    keys = b["keys"]
                    for s, kb in enumerate(keys):
                        if kb is not None:
                            keys[s] = conv(kb)
                            if keys[s] == 0.0:
                                zs.append((pos, s, math.copysign(1.0, keys[s]) < 0))
                if zs:
                    self.zeros[(which, idx)] = zs
        return chain

    def apply(self, step: Dict[str, Any]) -> None:
        snap = self.snap
        h = step["h"]
        for name, v in zip(_HEADER, h):
            snap[name] = v
        snap["growing"] = bool(h[6])
        for which, full, delta in (("buckets", "bk", "bd"), ("oldbuckets", "ok", "od")):
            if full in step:
                arr = step[full]
                if self.float:
                    for key in [k for k in self.zeros if k[0] == which]:
                        del self.zeros[key]
                snap[which] = None if arr is None else [self._chain(which, i, c) for i, c in enumerate(arr)]
            elif delta in step:
                arr = snap[which]
                for idx, chain in step[delta]:
                    arr[idx] = self._chain(which, idx, chain)

    def zero_sign_diffs(self, got: Dict[str, Any]) -> List[str]:
        out = []
        for (which, idx), zs in self.zeros.items():
            for pos, s, neg in zs:
                k = got[which][idx][pos]["keys"][s]
                if (math.copysign(1.0, k) < 0) != neg:
                    out.append(f"{which}[{idx}][{pos}].keys[{s}]: expected {'-0.0' if neg else '0.0'}, got {k!r}")
        return out


def _fmt(v: Any, kind: str = "") -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return fmt_key(kind, v)
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _diff_bucket(path: str, e: Any, g: Any, kind: str, out: List[str]) -> None:
    if not isinstance(g, dict) or not isinstance(e, dict):
        out.append(f"{path}: expected {_fmt(e)}, got {_fmt(g)}")
        return
    if set(e) != set(g):
        out.append(f"{path}: fields expected {sorted(e)}, got {sorted(g)}")
    for fld in ("tophash", "keys", "values"):
        if fld not in e or fld not in g:
            continue
        ev, gv = e[fld], g[fld]
        if not isinstance(gv, list) or len(gv) != len(ev):
            out.append(f"{path}.{fld}: expected {_fmt(ev)}, got {_fmt(gv)}")
            continue
        bad = [s for s, (a, b) in enumerate(zip(ev, gv))
               if key_identity(kind, a) != key_identity(kind, b) or type(a) is not type(b)]
        if len(bad) > 2:
            show = lambda xs: "[" + ", ".join(_fmt(x, kind) for x in xs) + "]"  # noqa: E731
            out.append(f"{path}.{fld}: expected {show(ev)}, got {show(gv)} (slots {bad})")
        else:
            for s in bad:
                out.append(f"{path}.{fld}[{s}]: expected {_fmt(ev[s], kind)}, got {_fmt(gv[s], kind)}")
    if e.get("evacuated") != g.get("evacuated"):
        out.append(f"{path}.evacuated: expected {_fmt(e.get('evacuated'))}, got {_fmt(g.get('evacuated'))}")


def _diff_array(name: str, e: Any, g: Any, kind: str, out: List[str]) -> None:
    if e is None or g is None or not isinstance(g, list):
        if e is not g and e != g:
            desc = lambda a: "None" if a is None else (f"{len(a)} chains" if isinstance(a, list) else _fmt(a))  # noqa: E731
            out.append(f"{name}: expected {desc(e)}, got {desc(g)}")
        return
    if len(e) != len(g):
        out.append(f"{name}: expected {len(e)} chains, got {len(g)}")
        return
    for i, (ec, gc) in enumerate(zip(e, g)):
        if ec == gc:
            continue
        path = f"{name}[{i}]"
        if isinstance(ec, dict) or isinstance(gc, dict):
            if isinstance(ec, dict) and isinstance(gc, dict):
                _diff_bucket(path, ec, gc, kind, out)
            else:
                what = lambda c: "evacuated" if isinstance(c, dict) else f"a chain of {len(c)} bucket(s)"  # noqa: E731
                out.append(f"{path}: expected {what(ec)}, got {what(gc) if isinstance(gc, (dict, list)) else _fmt(gc)}")
            continue
        if not isinstance(gc, list):
            out.append(f"{path}: expected a chain, got {_fmt(gc)}")
            continue
        if len(ec) != len(gc):
            out.append(f"{path}: chain length expected {len(ec)}, got {len(gc)}")
        for pos, (eb, gb) in enumerate(zip(ec, gc)):
            if eb != gb:
                _diff_bucket(f"{path}[{pos}]", eb, gb, kind, out)


def diff_snapshots(expected: Dict[str, Any], got: Any, kind: str = "", limit: int = 12) -> List[str]:
    """Human-readable differences between two snapshots (empty if equal)."""
    out: List[str] = []
    if not isinstance(got, dict):
        return [f"snapshot(): expected a dict, got {type(got).__name__}"]
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        out.append(f"snapshot keys: missing {missing}, unexpected {extra}")
    for name in _HEADER:
        if name in got and (got[name] != expected[name] or type(got[name]) is not type(expected[name])):
            out.append(f"{name}: expected {expected[name]!r}, got {got[name]!r}")
    for name in ("buckets", "oldbuckets"):
        if name in got:
            _diff_array(name, expected[name], got[name], kind, out)
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more differences"]
    return out


class _Draws:
    """The draws Go made, handed to gomap one by one, counting what it took."""

    def __init__(self, draws: Sequence[int]):
        self.draws = list(draws)
        self.used = 0

    def __iter__(self) -> "_Draws":
        return self

    def __next__(self) -> int:
        if self.used >= len(self.draws):
            self.used += 1
            raise StopIteration
        v = self.draws[self.used]
        self.used += 1
        return v


@dataclass
class Mismatch:
    trace_id: int
    kind: str
    seed: int
    step: int  # -1: right after construction; len(ops): the checks after the last step
    op: str
    diffs: List[str]

    def format(self) -> str:
        if self.step < 0:
            where = "after construction"
        elif self.op == "end":
            where = "after the last step"
        else:
            where = f"step {self.step} ({self.op})"
        lines = [f"trace {self.trace_id} ({self.kind}, trace seed {self.seed}): first mismatch {where}"]
        lines += [f"    {d}" for d in self.diffs]
        return "\n".join(lines)


@dataclass
class TraceResult:
    trace_id: int
    kind: str
    ok: bool
    steps: int
    mismatch: Optional[Mismatch] = None
    stats: Dict[str, int] = field(default_factory=dict)


def _fmt_entry(kind: str, r: Any) -> str:
    """An iterator result (key identity, value) for messages."""
    if r is None:
        return "nothing (exhausted)"
    k = r[0]
    if isinstance(k, tuple):  # a float key's ("f64"/"f32", bits)
        k = key_from_wire(kind, k[1])
    return f"({fmt_key(kind, k)}, {r[1]})"


def describe_op(trace: Trace, i: int) -> str:
    code, k, arg = trace.ops[i]
    name = OP_NAMES[code]
    if code == SET:
        return f"set {fmt_key(trace.kind, k)} = {arg}"
    if code == DELETE:
        return f"delete {fmt_key(trace.kind, k)}"
    if code == LOOKUP:
        return f"lookup {fmt_key(trace.kind, k)} via {('get', 'in', 'm[k]')[arg or 0]}"
    if code in (ITER_NEW, ITER_NEXT):
        return f"{name} #{arg}"
    return name


def _coverage(stats: Dict[str, int], step: Dict[str, Any], code: Optional[int]) -> None:
    h = step["h"]
    stats["max_B"] = max(stats.get("max_B", 0), h[1])
    if h[6]:
        stats["growing_steps"] = stats.get("growing_steps", 0) + 1
        if code in (ITER_NEW, ITER_NEXT):
            stats["iter_steps_growing"] = stats.get("iter_steps_growing", 0) + 1
    if h[2] & 8:
        stats["same_size_steps"] = stats.get("same_size_steps", 0) + 1
    if h[3]:
        stats["max_noverflow"] = max(stats.get("max_noverflow", 0), h[3])
    for key in ("ok", "od"):
        arr = step.get(key)
        if arr:
            for c in arr:
                if key == "od":
                    c = c[1]
                if isinstance(c, dict):
                    stats["evacuated_seen"] = 1
                    break
    if step.get("d") and code is not None:
        name = {DELETE: "draws_delete", CLEAR: "draws_clear", ITER_NEW: "draws_iter"}.get(code, "draws_other")
        stats[name] = stats.get(name, 0) + step["d"]


def replay(trace: Trace, go_out: Dict[str, Any], gomap_mod: Any = None,
           check_snapshots: bool = True, go: str = "1.19") -> TraceResult:
    """Play ``trace`` on ``gomap.Map(..., go=go)`` and compare with the output of
    the Go harness built with Go release ``go``."""
    if gomap_mod is None:
        import gomap as gomap_mod  # noqa: F811
    kind = trace.kind
    is_float = kind in ("float64", "float32")
    stats: Dict[str, int] = {}
    exp = _Expected(kind, go)
    draws = _Draws(go_out["draws"])
    steps = go_out["steps"]
    result = TraceResult(trace.id, kind, ok=True, steps=len(trace.ops), stats=stats)

    def fail(i: int, diffs: List[str]) -> TraceResult:
        result.ok = False
        op = "make" if i < 0 else ("end" if i >= len(trace.ops) else describe_op(trace, i))
        result.mismatch = Mismatch(trace.id, kind, trace.seed, i, op, diffs)
        return result

    try:
        m = gomap_mod.Map(key=kind, value="int64", hint=trace.hint, hashkey=list(go_out["hashkey"]), rand=draws, go=go)
    except Exception as e:  # noqa: BLE001
        return fail(-1, [f"gomap.Map(...) raised {type(e).__name__}: {e}"])
    want_draws = 0
    step = go_out["init"]
    exp.apply(step)
    _coverage(stats, step, None)
    want_draws += step.get("d", 0)
    if check_snapshots:
        got = m.snapshot()
        if got != exp.snap or (is_float and exp.zeros):
            init_diffs = diff_snapshots(exp.snap, got, kind) + (exp.zero_sign_diffs(got) if got == exp.snap else [])
            if init_diffs:
                return fail(-1, init_diffs)
    if draws.used != want_draws:
        return fail(-1, [f"draws: gomap took {draws.used} values from rand, Go made {want_draws}"])

    iters: Dict[int, Any] = {}
    exhausted: set = set()
    poisoned: set = set()
    for i, (op, step) in enumerate(zip(trace.ops, steps)):
        code, k, arg = op
        exp_r = step["r"]
        got_r: Any = None
        want_r: Any = None
        try:
            if code == SET:
                m[k] = arg
            elif code == DELETE:
                m.delete(k)
            elif code == LOOKUP:
                want_r = (exp_r[0] if exp_r[1] else None, exp_r[1])
                if arg == 1:
                    ok = k in m
                    got_r = (want_r[0] if ok else None, ok)  # `in` has no value to compare
                elif arg == 2:
                    try:
                        got_r = (m[k], True)
                    except KeyError:
                        got_r = (None, False)
                else:
                    v = m.get(k)
                    got_r = (v, v is not None)
            elif code == CLEAR:
                if len(m) > 0:
                    poisoned.update(it for it in iters if it not in exhausted)
                m.clear()
            elif code in (ITER_NEW, ITER_NEXT):
                if code == ITER_NEW:
                    iters[arg] = iter(m.items())
                it = iters[arg]
                if arg in exhausted:
                    got_r = None
                else:
                    try:
                        kv = next(it)
                        got_r = (key_identity(kind, kv[0]), kv[1])
                    except StopIteration:
                        exhausted.add(arg)
                        got_r = None
                want_r = None if exp_r is None else (key_identity(kind, key_from_wire(kind, exp_r[0])), exp_r[1])
        except Exception as e:  # noqa: BLE001
            exp.apply(step)
            return fail(i, [f"raised {type(e).__name__}: {e}"])
        exp.apply(step)
        _coverage(stats, step, code)
        want_draws += step.get("d", 0)
        diffs: List[str] = []
        if want_r != got_r:
            if code in (ITER_NEW, ITER_NEXT):
                diffs.append(f"iterator #{arg} produced {_fmt_entry(kind, got_r)}, "
                             f"Go produced {_fmt_entry(kind, want_r)}")
            else:
                diffs.append(f"lookup result: expected (value, found) = {want_r}, got {got_r}")
        n = len(m)
        if n != step["n"]:
            diffs.append(f"len: expected {step['n']}, got {n}")
        if draws.used != want_draws:
            diffs.append(f"draws: gomap has taken {draws.used} values from rand so far, Go made {want_draws}"
                         f" (this step: Go {step.get('d', 0)})")
        if check_snapshots:
            got = m.snapshot()
            if got != exp.snap:
                diffs += diff_snapshots(exp.snap, got, kind)
            elif is_float and exp.zeros:
                diffs += exp.zero_sign_diffs(got)
        if diffs:
            return fail(i, diffs)

    # Iterators left open across clear() of a non-empty map: outside the exact
    # promise, but gomap's must produce nothing more (and change nothing).
    for it_id in sorted(poisoned - exhausted):
        before = m.snapshot() if check_snapshots else None
        try:
            kv = next(iters[it_id])
        except StopIteration:
            kv = None
        except Exception as e:  # noqa: BLE001
            return fail(len(trace.ops), [f"iterator #{it_id} (left open across clear) raised {type(e).__name__}: {e}"])
        if kv is not None:
            return fail(len(trace.ops), [f"iterator #{it_id} left open across clear() produced {kv!r}; expected nothing"])
        if check_snapshots and m.snapshot() != before:
            return fail(len(trace.ops), [f"advancing iterator #{it_id} (left open across clear) changed the map"])
    if draws.used != len(draws.draws):
        return fail(len(trace.ops), [f"draws: gomap took {draws.used} values, Go made {len(draws.draws)}"])
    return result


def save_failure(save_dir: str, trace: Trace, go_out: Dict[str, Any], result: TraceResult,
                 go: str = "1.19") -> Path:
    d = Path(save_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"trace-{trace.id}.json"
    mm = result.mismatch
    doc = {
        "trace": trace.to_wire(),
        "seed": trace.seed,
        "go": go_out,
        "release": go,
        "mismatch": None if mm is None else {"step": mm.step, "op": mm.op, "diffs": mm.diffs},
    }
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def replay_saved(path: str, gomap_mod: Any = None) -> TraceResult:
    """Replay a trace saved by ``--save-failures`` (no Go needed)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return replay(trace_from_wire(doc["trace"], doc.get("seed", 0)), doc["go"], gomap_mod,
                  go=doc.get("release", "1.19"))
