"""Cross-check :class:`gomap.Map` against the real Go runtime.

Random operation traces are played twice: on a real Go 1.19-1.23 map
(``map[K]int64``, by the small Go program in ``gomap/_harness``, run with
``GODEBUG=cpu.aes=off`` so Go uses its portable hash keyed by
``runtime.hashkey``), and on ``gomap.Map`` built with the ``hashkey`` and the
``fastrand`` draws the Go program reports.  After every operation the result,
``len`` and the full ``snapshot()`` must be equal, bit for bit (float keys are
compared by their bit patterns, so ``-0.0`` is not ``+0.0``).

Command line: ``python -m gomap crosscheck --help``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "KEY_KINDS",
    "EXTRA_KINDS",
    "Trace",
    "TraceResult",
    "Report",
    "GoNotFound",
    "HarnessError",
    "generate_trace",
    "generate_traces",
    "trace_seed",
    "find_go",
    "build_harness",
    "run_harness",
    "replay",
    "diff_snapshots",
    "run_crosscheck",
    "save_failure",
    "replay_saved",
    "trace_from_wire",
]

KEY_KINDS: Tuple[str, ...] = ("int64", "int32", "uint64", "uint32", "float64", "float32", "string")
# Also checkable, but not in the default set: gomap's "bytes" keys, played on a
# Go map with string keys (Go hashes and compares those bytes the same way).
EXTRA_KINDS: Tuple[str, ...] = ("bytes",)
ALL_KINDS: Tuple[str, ...] = KEY_KINDS + EXTRA_KINDS

# Operation codes, shared with _harness/main.go.
SET, DELETE, LOOKUP, CLEAR, ITER_NEW, ITER_NEXT = range(6)
OP_NAMES = {SET: "set", DELETE: "delete", LOOKUP: "lookup", CLEAR: "clear",
            ITER_NEW: "iter_new", ITER_NEXT: "iter_next"}

HARNESS_DIR = Path(__file__).resolve().parent / "_harness"
HARNESS_FILES = ("main.go", "go.mod", "empty.s")
INSTALL_HINT = (
    "The Go cross-check needs the Go toolchain (Go 1.19-1.23, the classic runtime map).\n"
    "Install it, e.g. on Debian/Ubuntu:  apt-get install -y golang-go\n"
    "or from https://go.dev/dl/ , and make sure `go` is on PATH (or set GOMAP_GO=/path/to/go)."
)


class GoNotFound(RuntimeError):
    """The ``go`` tool is not available."""


class HarnessError(RuntimeError):
    """The Go harness could not be built or failed while running."""


# --------------------------------------------------------------------------
# Key encoding
# --------------------------------------------------------------------------

_INT_RANGES = {
    "int64": (-(1 << 63), (1 << 63) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint64": (0, (1 << 64) - 1),
    "uint32": (0, (1 << 32) - 1),
}

_F64_MAX = sys.float_info.max
_F32_MAX = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]


def f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64_from_bits(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def f32_from_bits(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b))[0]


def to_f32(x: float) -> float:
    """Round a Python float to the nearest float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def key_to_wire(kind: str, k: Any) -> Any:
    """The JSON form of a key for the harness (float keys as bit patterns)."""
    if kind == "float64":
        return f64_bits(k)
    if kind == "float32":
        return f32_bits(k)
    if kind == "bytes":
        return bytes(k).hex()
    return k


def key_from_wire(kind: str, k: Any) -> Any:
    if kind == "float64":
        return f64_from_bits(k)
    if kind == "float32":
        return f32_from_bits(k)
    if kind == "bytes":
        return bytes.fromhex(k)
    return k


def key_identity(kind: str, k: Any) -> Any:
    """A value equal for keys that are bit-identical (floats: their bits)."""
    if kind == "float64" and isinstance(k, float):
        return ("f64", f64_bits(k))
    if kind == "float32" and isinstance(k, float):
        return ("f32", f32_bits(k))
    return k


def fmt_key(kind: str, k: Any) -> str:
    if kind in ("float64", "float32") and isinstance(k, float):
        return repr(k)
    if isinstance(k, str):
        r = repr(k)
        return r if len(r) <= 50 else r[:47] + "...'"
    return repr(k)


# --------------------------------------------------------------------------
# Trace generation
# --------------------------------------------------------------------------


@dataclass
class Trace:
    """One random operation sequence on one map.

    ``ops`` holds tuples ``(code, key, arg)``: ``(SET, k, v)``, ``(DELETE, k,
    None)``, ``(LOOKUP, k, style)`` (style: which Python lookup API the replay
    uses: 0 ``get``, 1 ``in``, 2 ``m[k]``), ``(CLEAR, None, None)``,
    ``(ITER_NEW, None, id)``, ``(ITER_NEXT, None, id)``.
    """

    id: int
    kind: str
    seed: int
    hint: int
    ops: List[Tuple[int, Any, Any]] = field(default_factory=list)

    def to_wire(self, full: bool = False, verify: bool = False) -> Dict[str, Any]:
        kind = self.kind
        wops = []
        for code, k, arg in self.ops:
            if code == SET:
                wops.append([code, key_to_wire(kind, k), arg])
            elif code == DELETE:
                wops.append([code, key_to_wire(kind, k)])
            elif code == LOOKUP:
                wops.append([code, key_to_wire(kind, k), arg or 0])  # Go ignores the style
            elif code == CLEAR:
                wops.append([code])
            else:
                wops.append([code, None, arg])
        out = {"id": self.id, "kind": kind, "hint": self.hint, "full": full, "ops": wops}
        if verify:
            out["verify"] = True
        return out


def trace_seed(seed: int, trace_id: int) -> int:
    """The seed of trace ``trace_id`` of a run with master seed ``seed``."""
    h = hashlib.sha256(f"gomap-crosscheck/{seed}/{trace_id}".encode()).digest()
    return int.from_bytes(h[:8], "little")


_NON_ASCII = ["é", "ß", "ñ", "ü", "Ω", "ж", "中", "文", "字", "한", "€", "😀", "🐹", "\u200b", "ℤ"]
_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:"
_ODD_ASCII = ['"', "\\", "\x00", "\n", "\t", "\x7f", " ", "<", ">", "&"]


def _over_load_factor(count: int, b: int) -> bool:
    """Go's overLoadFactor: more than 6.5 entries per bucket on average."""
    return count > 8 and count > 13 * ((1 << b) // 2)


class _Generator:
    def __init__(self, kind: str, rng: random.Random, n_ops: int):
        self.kind = kind
        self.rng = rng
        self.n_ops = n_ops
        self.ops: List[Tuple[int, Any, Any]] = []
        self.live: Dict[Any, int] = {}  # the model: Python dict equality == Go key equality (no NaN)
        self.dead: List[Any] = []  # keys deleted at some point
        self.ever: set = set()
        self.active_iters: List[int] = []  # iterators that may still be advanced
        self.next_iter = 0
        self.seq = rng.randrange(0, 1000)
        self.model_B = 0
        self.value_seq = 0
        # per-trace flavour
        self.key_style = rng.choice(["mixed", "mixed", "seq", "random", "small"])
        self.stride = rng.choice([1, 1, 1, 2, 3, 8, 1000, 1 << 20, (1 << 32) + 1])
        self.iter_rate = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
        size_class = rng.random()
        if size_class < 0.55:
            self.max_live = rng.randint(1, 60)
        elif size_class < 0.88:
            self.max_live = rng.randint(60, 450)
        elif size_class < 0.97:
            self.max_live = rng.randint(450, 1700)
        else:
            self.max_live = rng.randint(1700, 4500)  # up to B = 10

    # ---- keys -----------------------------------------------------------

    def _raw_key(self) -> Any:
        rng, kind = self.rng, self.kind
        style = self.key_style
        if style == "mixed":
            style = rng.choice(["seq", "random", "small", "edge"])
        elif rng.random() < 0.03:
            style = "edge"
        if kind in _INT_RANGES:
            lo, hi = _INT_RANGES[kind]
            if style == "seq":
                self.seq += 1
                v = self.seq * self.stride
            elif style == "random":
                v = rng.getrandbits(64 if kind.endswith("64") else 32)
            elif style == "small":
                v = rng.randrange(-300, 300) if lo < 0 else rng.randrange(0, 600)
            else:
                v = rng.choice([0, 1, -1, lo, hi, lo + 1, hi - 1, 1 << 31, (1 << 31) - 1,
                                -(1 << 31), 1 << 32, 255, 256, 1 << 62, -(1 << 62)])
            span = hi - lo + 1
            return (v - lo) % span + lo
        if kind in ("float64", "float32"):
            f32 = kind == "float32"
            fv: float
            if style == "seq":
                self.seq += 1
                fv = float(self.seq * (self.stride if self.stride < (1 << 20) else 1)) * rng.choice([1.0, 0.5, 0.25, -1.0])
            elif style == "random":
                while True:
                    if f32:
                        fv = f32_from_bits(rng.getrandbits(32))
                    else:
                        fv = f64_from_bits(rng.getrandbits(64))
                    if fv == fv:
                        break
            elif style == "small":
                fv = rng.choice([float(rng.randrange(-100, 100)), rng.uniform(-10, 10),
                                rng.uniform(-1e6, 1e6), rng.random() * 1e-6])
            else:
                fv = rng.choice([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 5e-324, -5e-324,
                                2.2250738585072014e-308, 0.1, 1e300, -1e300, 0.5,
                                _F32_MAX, -_F32_MAX, 1.401298464324817e-45, 3.4e38])
            if f32:
                if math.isfinite(fv) and abs(fv) > _F32_MAX:
                    fv = math.copysign(_F32_MAX, fv)
                fv = to_f32(fv)
            return fv
        if kind == "bytes":
            if style == "seq":
                self.seq += 1
                return b"k" + str(self.seq * self.stride).encode()
            if style == "edge":
                return rng.choice([b"", b"\x00", b"\xff", b"\x80\x80", b"\x00" * 8, b"\xff" * 9,
                                   b"\xc3\xa9", b"\xed\xa0\x80", bytes(range(49)), b"\x00" * 17])
            n = rng.choice([rng.randint(0, 3), rng.randint(4, 8), rng.randint(9, 16),
                            rng.randint(17, 48), rng.randint(49, 120)])
            return bytes(rng.getrandbits(8) for _ in range(n))
        # string
        if style == "seq":
            self.seq += 1
            return rng.choice(["k", "key-", "", "prefix/with/a/longer/path/"]) + str(self.seq * self.stride)
        if style == "edge":
            return rng.choice(["", "a", "ab", "abc", "abcd", "abcdefg", "abcdefgh", "abcdefghi",
                               "x" * 16, "y" * 17, "z" * 32, "w" * 33, "v" * 48, "u" * 49, "t" * 96,
                               "\x00", "\x00\x00\x00\x00", "é", "中文", "😀"])
        r = rng.random()
        if r < 0.15:
            target = rng.randint(0, 3)
        elif r < 0.35:
            target = rng.randint(4, 8)
        elif r < 0.6:
            target = rng.randint(9, 16)
        elif r < 0.88:
            target = rng.randint(17, 48)
        else:
            target = rng.randint(49, 120)
        non_ascii = rng.random() < (0.5 if style == "random" else 0.15)
        parts: List[str] = []
        n = 0
        while n < target:
            x = rng.random()
            if non_ascii and x < 0.3:
                c = rng.choice(_NON_ASCII)
            elif x < 0.33:
                c = rng.choice(_ODD_ASCII)
            else:
                c = rng.choice(_ASCII)
            parts.append(c)
            n += len(c.encode("utf-8"))
        return "".join(parts)

    def fresh_key(self) -> Any:
        """A key not live now, preferably never used before."""
        k = None
        for _ in range(50):
            k = self._raw_key()
            if k not in self.live and k not in self.ever:
                return k
        for _ in range(200):
            k = self._raw_key()
            if k not in self.live:
                return k
        # dense small key spaces (e.g. "small" ints) can run out: fall back
        if self.kind in _INT_RANGES:
            lo, hi = _INT_RANGES[self.kind]
            while True:
                k = self.rng.randint(lo, hi)
                if k not in self.live:
                    return k
        if self.kind in ("float64", "float32"):
            while True:
                k = self.rng.uniform(-1e9, 1e9)
                if self.kind == "float32":
                    k = to_f32(k)
                if k not in self.live:
                    return k
        base: Any = self._raw_key()
        while True:
            suffix = "#%d" % self.rng.getrandbits(40)
            k = base + suffix.encode() if isinstance(base, bytes) else base + suffix
            if k not in self.live:
                return k

    def missing_key(self) -> Any:
        if self.dead and self.rng.random() < 0.5:
            k = self.rng.choice(self.dead)
            if k not in self.live:
                return k
        return self.fresh_key()

    def live_key(self) -> Any:
        return self.rng.choice(list(self.live)) if len(self.live) < 64 else self._sample_live()

    def _sample_live(self) -> Any:
        # random.choice over a big dict without copying every time
        keys = self._live_list_cache
        if keys is None or len(keys) != len(self.live) or self.rng.random() < 0.05:
            keys = self._live_list_cache = list(self.live)
        k = self.rng.choice(keys)
        if k in self.live:
            return k
        self._live_list_cache = keys = list(self.live)
        return self.rng.choice(keys)

    _live_list_cache: Optional[List[Any]] = None

    def _value(self) -> int:
        self.value_seq += 1
        r = self.rng.random()
        if r < 0.6:
            return self.value_seq
        if r < 0.9:
            return self.rng.randint(-(1 << 63), (1 << 63) - 1)
        return self.rng.choice([0, -1, 1, (1 << 63) - 1, -(1 << 63)])

    # ---- ops --------------------------------------------------------------

    def op_set(self, k: Any, v: Optional[int] = None) -> None:
        if v is None:
            v = self._value()
        self.ops.append((SET, k, v))
        if k in self.live:
            del self.live[k]  # re-insert so the model remembers the latest key (e.g. -0.0)
        elif _over_load_factor(len(self.live) + 1, self.model_B):
            self.model_B += 1  # roughly where Go starts growing (hashGrow)
        self.live[k] = v
        self.ever.add(k)

    def op_delete(self, k: Any) -> None:
        self.ops.append((DELETE, k, None))
        if k in self.live:
            del self.live[k]
            self.dead.append(k)
            if len(self.dead) > 4000:
                del self.dead[: len(self.dead) // 2]

    def op_lookup(self, k: Any) -> None:
        self.ops.append((LOOKUP, k, self.rng.choice((0, 0, 1, 2))))

    def op_clear(self) -> None:
        self.ops.append((CLEAR, None, None))
        if self.live:
            # Iterators left open across clear() of a non-empty map are outside the
            # exact promise: never advance them again (the replay checks that gomap's
            # produce nothing more).
            self.active_iters.clear()
            self.dead.extend(self.live)
            self.live.clear()

    def op_iter_new(self) -> int:
        it = self.next_iter
        self.next_iter += 1
        self.ops.append((ITER_NEW, None, it))
        self.active_iters.append(it)
        return it

    def op_iter_next(self, it: Optional[int] = None) -> None:
        if it is None:
            it = self.rng.choice(self.active_iters)
        self.ops.append((ITER_NEXT, None, it))

    def maybe_iter(self) -> None:
        rate = self.iter_rate
        if rate <= 0:
            return
        rng = self.rng
        if rng.random() < rate * 0.15 and len(self.active_iters) < 5:
            self.op_iter_new()
        if self.active_iters and rng.random() < rate:
            self.op_iter_next()
        if self.active_iters and rng.random() < rate * 0.02:
            # leave one open forever
            self.active_iters.remove(rng.choice(self.active_iters))

    def maybe_side_op(self) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.05 and self.live:
            self.op_lookup(self.live_key())
        elif r < 0.07:
            self.op_lookup(self.missing_key())
        elif r < 0.1 and self.live:
            self.op_set(self.live_key())
        elif r < 0.12:
            self.op_delete(self.missing_key())  # still does growWork while growing
        elif r < 0.13 and self.live:
            self.op_delete(self.live_key())
        self.maybe_iter()

    # ---- phases -----------------------------------------------------------

    def phase_grow(self) -> None:
        target = self.rng.randint(len(self.live) + 1, max(len(self.live) + 1, self.max_live))
        while len(self.live) < target:
            self.op_set(self.fresh_key())
            self.maybe_side_op()

    def phase_overwrite(self) -> None:
        if not self.live:
            return self.phase_grow()
        for _ in range(self.rng.randint(1, 30)):
            self.op_set(self.live_key())
            self.maybe_iter()

    def phase_delete(self) -> None:
        for _ in range(self.rng.randint(1, 40)):
            if self.live and self.rng.random() < 0.75:
                self.op_delete(self.live_key())
            else:
                self.op_delete(self.missing_key())
            self.maybe_side_op()

    def phase_delete_all(self) -> None:
        keys = list(self.live)
        self.rng.shuffle(keys)
        for k in keys:
            self.op_delete(k)
            if self.rng.random() < 0.1:
                self.maybe_side_op()
        if self.rng.random() < 0.5:
            self.op_delete(self.missing_key())  # delete on an empty map

    def phase_churn(self) -> None:
        rng = self.rng
        if rng.random() < 0.5 and self.model_B <= 5:
            # just under the load factor of the current B: buckets fill up, overflow
            # buckets pile up, and a same-size grow follows (noverflow >= 2**B)
            limit = max(1, int(6.5 * (1 << self.model_B)) - 1 - rng.randint(0, 3))
        else:
            limit = rng.randint(1, max(1, min(self.max_live, rng.choice([8, 16, 30, 60, 120]))))
        cycles = rng.randint(30, 400)
        fifo = rng.random() < 0.5
        order: List[Any] = list(self.live)
        for _ in range(cycles):
            k = self.fresh_key()
            self.op_set(k)
            order.append(k)
            while len(self.live) > limit:
                if fifo:
                    victim = order.pop(0)
                    if victim not in self.live:
                        continue
                else:
                    victim = self.live_key()
                self.op_delete(victim)
            if rng.random() < 0.1:
                self.maybe_side_op()
            else:
                self.maybe_iter()

    def phase_clear(self) -> None:
        self.op_clear()

    def phase_lookups(self) -> None:
        for _ in range(self.rng.randint(1, 30)):
            if self.live and self.rng.random() < 0.7:
                self.op_lookup(self.live_key())
            else:
                self.op_lookup(self.missing_key())

    def phase_iterate(self) -> None:
        """Open an iterator and walk it (maybe to the end), writing meanwhile."""
        rng = self.rng
        it = self.op_iter_new()
        steps = len(self.live) + 2 if rng.random() < 0.5 else rng.randint(1, 20)
        write_rate = rng.choice([0.0, 0.1, 0.3, 0.6])
        for _ in range(steps):
            self.op_iter_next(it)
            if rng.random() < write_rate:
                r = rng.random()
                if r < 0.5 or not self.live:
                    self.op_set(self.fresh_key())
                elif r < 0.8:
                    self.op_delete(self.live_key())
                else:
                    self.op_set(self.live_key())
        if rng.random() < 0.7 and it in self.active_iters:
            self.active_iters.remove(it)

    def phase_grow_edge(self) -> None:
        """Insert until a grow starts, then poke the map while it is half-evacuated."""
        rng = self.rng
        if rng.random() < 0.5:
            self.op_iter_new()  # an iterator started before the grow (it.B != h.B)
            self.op_iter_next()
        b = self.model_B
        for _ in range(6000):
            if self.model_B != b or len(self.live) >= 6000:
                break
            self.op_set(self.fresh_key())
        if rng.random() < 0.5:
            it = self.op_iter_new()  # an iterator started during the grow (it.B == h.B)
            self.op_iter_next(it)
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.25 and self.active_iters:
                self.op_iter_next()
            elif r < 0.4 and self.live:
                self.op_delete(self.live_key())
            elif r < 0.5:
                self.op_delete(self.missing_key())
            elif r < 0.6:
                self.op_lookup(self.live_key() if self.live and rng.random() < 0.7 else self.missing_key())
            elif r < 0.7 and self.live:
                self.op_set(self.live_key())
            elif r < 0.95:
                self.op_set(self.fresh_key())
            else:
                self.op_clear()

    def phase_zero(self) -> None:
        """Float keys: +0.0 and -0.0 are one key; the stored key follows the last assignment."""
        rng = self.rng
        for _ in range(rng.randint(2, 6)):
            z = rng.choice([0.0, -0.0])
            r = rng.random()
            if r < 0.55:
                self.op_set(z)
            elif r < 0.8:
                self.op_lookup(z)
            else:
                self.op_delete(z)

    def generate(self) -> List[Tuple[int, Any, Any]]:
        rng = self.rng
        phases: List[Tuple[Callable[[], None], float]] = [
            (self.phase_grow, 4.0),
            (self.phase_overwrite, 1.0),
            (self.phase_delete, 1.5),
            (self.phase_delete_all, 0.6),
            (self.phase_churn, 1.5),
            (self.phase_clear, 0.35),
            (self.phase_lookups, 1.0),
            (self.phase_iterate, 1.0),
            (self.phase_grow_edge, 0.6 if self.max_live > 60 else 0.25),
        ]
        if self.kind in ("float64", "float32"):
            phases.append((self.phase_zero, 0.8))
        funcs = [p for p, _ in phases]
        weights = [w for _, w in phases]
        # start by growing most of the time, so traces reach interesting sizes
        if rng.random() < 0.8:
            self.phase_grow()
        while len(self.ops) < self.n_ops:
            rng.choices(funcs, weights)[0]()
            # keep the map well below B = 16 (the draws of incrnoverflow are invisible there)
            if len(self.live) > 6000:
                self.phase_delete_all()
        # walk the still-active iterators a bit at the end
        for it in list(self.active_iters):
            for _ in range(rng.randint(0, 5)):
                self.op_iter_next(it)
        return self.ops


def generate_trace(kind: str, seed: int, n_ops: int = 300, trace_id: int = 0) -> Trace:
    """A random trace for key kind ``kind``, fully determined by ``seed``."""
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown key kind {kind!r} (expected one of {', '.join(ALL_KINDS)})")
    rng = random.Random(seed)
    r = rng.random()
    if r < 0.5:
        hint = 0
    elif r < 0.7:
        hint = rng.randint(1, 8)
    elif r < 0.92:
        hint = rng.randint(9, 120)
    else:
        hint = rng.randint(121, 1500)
    g = _Generator(kind, rng, n_ops)
    while _over_load_factor(hint, g.model_B):
        g.model_B += 1
    ops = g.generate()
    return Trace(id=trace_id, kind=kind, seed=seed, hint=hint, ops=ops)


def generate_traces(n: int, seed: int, kinds: Sequence[str] = KEY_KINDS, n_ops: int = 300,
                    only: Optional[Iterable[int]] = None) -> List[Trace]:
    """``n`` traces spread round-robin over ``kinds``; trace ``i`` uses ``trace_seed(seed, i)``."""
    kinds = list(kinds)
    ids = range(n) if only is None else sorted(set(only))
    return [generate_trace(kinds[i % len(kinds)], trace_seed(seed, i), n_ops, trace_id=i) for i in ids]


# --------------------------------------------------------------------------
# The Go harness
# --------------------------------------------------------------------------


def find_go() -> str:
    go = os.environ.get("GOMAP_GO") or shutil.which("go")
    if not go:
        raise GoNotFound(INSTALL_HINT)
    return go


def _go_version(go: str) -> Tuple[str, Tuple[int, int]]:
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60,
                             env=_go_env(_cache_root())).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise GoNotFound(f"cannot run {go}: {e}\n{INSTALL_HINT}") from e
    ver = out or "unknown"
    nums = ver[2:].split(".") if ver.startswith("go") else []
    try:
        major, minor = int(nums[0]), int("".join(ch for ch in nums[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        major, minor = 0, 0
    return ver, (major, minor)


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


def build_harness(go: Optional[str] = None, force: bool = False) -> Path:
    """Build the harness (once per source and Go version) and return the binary's path."""
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


# --------------------------------------------------------------------------
# Replay and comparison
# --------------------------------------------------------------------------

_HEADER = ("count", "B", "flags", "noverflow", "hash0", "nevacuate", "growing")


class _Expected:
    """The Go snapshot, rebuilt step by step from the harness's deltas."""

    def __init__(self, kind: str):
        self.kind = kind
        self.float = kind in ("float64", "float32")
        self.snap: Dict[str, Any] = {
            "count": 0, "B": 0, "flags": 0, "noverflow": 0, "hash0": 0, "nevacuate": 0,
            "growing": False, "buckets": None, "oldbuckets": None,
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
           check_snapshots: bool = True) -> TraceResult:
    """Play ``trace`` on ``gomap.Map`` and compare with the Go harness output."""
    if gomap_mod is None:
        import gomap as gomap_mod  # noqa: F811
    kind = trace.kind
    is_float = kind in ("float64", "float32")
    stats: Dict[str, int] = {}
    exp = _Expected(kind)
    draws = _Draws(go_out["draws"])
    steps = go_out["steps"]
    result = TraceResult(trace.id, kind, ok=True, steps=len(trace.ops), stats=stats)

    def fail(i: int, diffs: List[str]) -> TraceResult:
        result.ok = False
        op = "make" if i < 0 else ("end" if i >= len(trace.ops) else describe_op(trace, i))
        result.mismatch = Mismatch(trace.id, kind, trace.seed, i, op, diffs)
        return result

    try:
        m = gomap_mod.Map(key=kind, value="int64", hint=trace.hint, hashkey=list(go_out["hashkey"]), rand=draws)
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


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def save_failure(save_dir: str, trace: Trace, go_out: Dict[str, Any], result: TraceResult) -> Path:
    d = Path(save_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"trace-{trace.id}.json"
    mm = result.mismatch
    doc = {
        "trace": trace.to_wire(),
        "seed": trace.seed,
        "go": go_out,
        "mismatch": None if mm is None else {"step": mm.step, "op": mm.op, "diffs": mm.diffs},
    }
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def trace_from_wire(w: Dict[str, Any], seed: int = 0) -> Trace:
    """The inverse of :meth:`Trace.to_wire`."""
    kind = w["kind"]
    ops: List[Tuple[int, Any, Any]] = []
    for op in w["ops"]:
        code = op[0]
        if code == SET:
            ops.append((SET, key_from_wire(kind, op[1]), op[2]))
        elif code == DELETE:
            ops.append((DELETE, key_from_wire(kind, op[1]), None))
        elif code == LOOKUP:
            ops.append((LOOKUP, key_from_wire(kind, op[1]), op[2] if len(op) > 2 else 0))
        elif code == CLEAR:
            ops.append((CLEAR, None, None))
        else:
            ops.append((code, None, op[2]))
    return Trace(id=w["id"], kind=kind, seed=seed, hint=w["hint"], ops=ops)


def replay_saved(path: str, gomap_mod: Any = None) -> TraceResult:
    """Replay a trace saved by ``--save-failures`` (no Go needed)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return replay(trace_from_wire(doc["trace"], doc.get("seed", 0)), doc["go"], gomap_mod)


class _Progress:
    def __init__(self, total: int, enabled: bool, label: str = "replaying"):
        self.total = max(total, 1)
        self.enabled = enabled
        self.label = label
        self.last = 0.0
        self.start = time.monotonic()

    def update(self, done: int, bad: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        fill = width * done // self.total
        extra = f", {bad} mismatched" if bad else ""
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}"
                         f" traces{extra} ({now - self.start:.0f}s)")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass
class Report:
    seed: int
    results: List[TraceResult]
    kinds: List[str]
    go_version: str = ""
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
        lines = [f"gomap cross-check against {self.go_version or 'Go'} (GODEBUG=cpu.aes=off), seed {self.seed}"]
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
            lines.append(f"reproduce: python -m gomap crosscheck --seed {self.seed} --traces {self.n_traces}"
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
                   save_dir: Optional[str] = None) -> Report:
    """Generate, run on Go, replay on gomap, compare.  Raises GoNotFound/HarnessError.

    ``save_dir``: write each mismatching trace there as ``trace-<id>.json``
    (``{"trace": <harness input>, "go": <harness output>, "mismatch": ...}``),
    which replays without Go via :func:`replay_saved`.
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
    go = find_go()
    go_version = _go_version(go)[0]
    exe = build_harness(go)
    trs = generate_traces(traces, seed, kinds, n_ops, only=only)
    if progress is None:
        progress = sys.stderr.isatty()
    # One Go process per chunk keeps memory bounded and lets replay start early.
    chunk = 64
    bar = _Progress(len(trs), bool(progress))
    results: List[TraceResult] = []
    bad = 0
    for start in range(0, len(trs), chunk):
        part = trs[start:start + chunk]
        outs = run_harness(part, exe)
        for t, o in zip(part, outs):
            r = replay(t, o, gomap_mod, check_snapshots=check_snapshots)
            results.append(r)
            if not r.ok:
                bad += 1
                if save_dir is not None:
                    save_failure(save_dir, t, o, r)
            if log is not None:
                log(f"trace {t.id:4d} {t.kind:8s} hint={t.hint:<5d} ops={len(t.ops):<5d} "
                    f"maxB={r.stats.get('max_B', 0)} {'ok' if r.ok else 'MISMATCH'}")
            bar.update(len(results), bad)
    bar.close()
    return Report(seed=seed, results=results, kinds=kinds, go_version=go_version,
                  seconds=time.monotonic() - t0, n_traces=traces, n_ops=n_ops)
