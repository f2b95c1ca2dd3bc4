"""Random operation traces: key kinds, the wire encoding shared with the Go
harness, and the generator (:func:`generate_traces`)."""

from __future__ import annotations

import hashlib
import math
import random
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

KEY_KINDS: Tuple[str, ...] = ("int64", "int32", "uint64", "uint32", "float64", "float32", "string")
# Also checkable, but not in the default set: gomap's "bytes" keys, played on a
# Go map with string keys (Go hashes and compares those bytes the same way).
EXTRA_KINDS: Tuple[str, ...] = ("bytes",)
ALL_KINDS: Tuple[str, ...] = KEY_KINDS + EXTRA_KINDS

# Operation codes, shared with _harness/main.go.
SET, DELETE, LOOKUP, CLEAR, ITER_NEW, ITER_NEXT = range(6)
OP_NAMES = {SET: "set", DELETE: "delete", LOOKUP: "lookup", CLEAR: "clear",
            ITER_NEW: "iter_new", ITER_NEXT: "iter_next"}


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


def _load_factor_num(go: str) -> int:
    """``loadFactorNum`` of Go release ``go`` (over ``loadFactorDen`` = 2)."""
    return 12 if go == "1.21" else 13


def _over_load_factor(count: int, b: int, go: str = "1.19") -> bool:
    """Go's overLoadFactor: more than 6.5 entries per bucket on average (6.0 in Go 1.21)."""
    return count > 8 and count > _load_factor_num(go) * ((1 << b) // 2)


class _Generator:
    def __init__(self, kind: str, rng: random.Random, n_ops: int, go: str = "1.19"):
        self.kind = kind
        self.go = go
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
        elif _over_load_factor(len(self.live) + 1, self.model_B, self.go):
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


def generate_trace(kind: str, seed: int, n_ops: int = 300, trace_id: int = 0, go: str = "1.19") -> Trace:
    """A random trace for key kind ``kind``, fully determined by ``seed`` and the
    Go release ``go`` (whose load factor decides where the growth edges are)."""
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
    g = _Generator(kind, rng, n_ops, go)
    while _over_load_factor(hint, g.model_B, go):
        g.model_B += 1
    ops = g.generate()
    return Trace(id=trace_id, kind=kind, seed=seed, hint=hint, ops=ops)


def generate_traces(n: int, seed: int, kinds: Sequence[str] = KEY_KINDS, n_ops: int = 300,
                    only: Optional[Iterable[int]] = None, go: str = "1.19") -> List[Trace]:
    """``n`` traces spread round-robin over ``kinds``; trace ``i`` uses ``trace_seed(seed, i)``."""
    kinds = list(kinds)
    ids = range(n) if only is None else sorted(set(only))
    return [generate_trace(kinds[i % len(kinds)], trace_seed(seed, i), n_ops, trace_id=i, go=go) for i in ids]


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
