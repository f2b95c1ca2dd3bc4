"""Shared configuration and helpers for the Python test suite of ``gomap.Map``.

Hypothesis profiles (select with the environment variable ``HYPOTHESIS_PROFILE``):

* ``ci`` (default): modest example counts so the whole Python suite stays a few minutes;
* ``dev``: even smaller, for quick local iteration;
* ``thorough``: many more examples and longer stateful runs (nightly / before a release).

The helpers below are imported by the test modules (``from conftest import ...``):
snapshot invariant checks, a counting ``rand`` source, a hash "oracle" (a fresh
``gomap.Map`` with the same ``hashkey``/``hash0`` used to learn which bucket a key
belongs to) and a model of Go's ``mapiternext`` that predicts the exact iteration
order from a snapshot and the iterator's draw ``r``.
"""

from __future__ import annotations

import math
import os
import random
import struct
import sys
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------------------
# Hypothesis profiles
# ---------------------------------------------------------------------------

_COMMON = dict(
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile("ci", max_examples=25, stateful_step_count=40, **_COMMON)
settings.register_profile("dev", max_examples=8, stateful_step_count=25, **_COMMON)
settings.register_profile(
    "thorough", max_examples=400, stateful_step_count=120, **_COMMON
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ---------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------

KEY_KINDS = (
    "int64",
    "int32",
    "uint64",
    "uint32",
    "float64",
    "float32",
    "string",
    "bytes",
    "object",
)
VALUE_KINDS = ("int64", "float64", "object")
INT_RANGES = {
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint64": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
}
FLOAT_KINDS = ("float64", "float32")

GO_MESSAGES = (
    "concurrent map writes",
    "concurrent map read and map write",
    "concurrent map iteration and map write",
)

# Go's tophash constants (runtime/map.go)
EMPTY_REST = 0
EMPTY_ONE = 1
EVACUATED_X = 2
EVACUATED_Y = 3
EVACUATED_EMPTY = 4
MIN_TOPHASH = 5

# hmap.flags bits
F_ITERATOR = 1
F_OLD_ITERATOR = 2
F_HASH_WRITING = 4
F_SAME_SIZE_GROW = 8


def f32(x: float) -> float:
    """Round ``x`` to the nearest float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def is_neg_zero(x) -> bool:
    return isinstance(x, float) and x == 0.0 and math.copysign(1.0, x) < 0


def b_for_hint(hint: int) -> int:
    """Go's makemap: the smallest B with overLoadFactor(hint, B) false."""
    b = 0
    while hint > 8 and hint > 13 * ((1 << b) >> 1):
        b += 1
    return b


def hint_for_b(b: int) -> int:
    """A hint for which Go's makemap picks exactly ``b``."""
    return 0 if b == 0 else 13 << (b - 1)


# ---------------------------------------------------------------------------
# Object keys used by several modules (module level so they pickle)
# ---------------------------------------------------------------------------


class Coll:
    """A well-behaved hashable whose hashes collide often (hash = x % 3)."""

    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __hash__(self):
        return self.x % 3

    def __eq__(self, other):
        if not isinstance(other, Coll):
            return NotImplemented
        return self.x == other.x

    def __repr__(self):
        return f"Coll({self.x})"

    def __reduce__(self):
        return (Coll, (self.x,))


class Token:
    """A picklable value compared by identity (object values)."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n=0):
        self.n = n

    def __repr__(self):
        return f"Token({self.n})"

    def __reduce__(self):
        return (Token, (self.n,))


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

_F64_POOL = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    3.0,
    math.inf,
    -math.inf,
    5e-324,
    -5e-324,
    1.7976931348623157e308,
    2.0**53,
]
_F32_POOL = [f32(x) for x in (0.0, -0.0, 1.0, -1.0, 0.5, 3.0, math.inf, -math.inf, 1e-45, 3.4028234663852886e38, 0.1)]


def key_strategy(kind: str):
    """Keys of ``kind``: a small pool (so keys collide often) or the whole range."""
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        pool = sorted({lo, hi, 0, 1, 2, 3, 7, 8, 100, max(lo, -1), max(lo, -2)})
        return st.one_of(
            st.sampled_from(pool),
            st.integers(max(lo, -4), 40),
            st.integers(lo, hi),
        )
    if kind == "float64":
        return st.one_of(
            st.sampled_from(_F64_POOL),
            st.integers(-4, 40).map(float),
            st.floats(allow_nan=False),
        )
    if kind == "float32":
        return st.one_of(
            st.sampled_from(_F32_POOL),
            st.integers(-4, 40).map(float),
            st.floats(allow_nan=False, width=32),
        )
    if kind == "string":
        return st.one_of(
            st.sampled_from(["", "a", "b", "go", "ключ", "a\x00b", "x" * 40, "日本"]),
            st.integers(0, 40).map(str),
            st.text(max_size=24),
        )
    if kind == "bytes":
        return st.one_of(
            st.sampled_from([b"", b"a", b"b", b"\x00", b"\xff" * 9, b"go"]),
            st.integers(0, 40).map(lambda i: str(i).encode()),
            st.binary(max_size=24),
        )
    if kind == "object":
        return st.one_of(
            st.integers(-4, 30),
            st.sampled_from(
                ["a", "b", (1, 2), None, 1.5, -0.0, frozenset(), b"x", True, ("a", (1,))]
            ),
            st.builds(Coll, st.integers(0, 12)),
            st.text(max_size=6),
            st.integers(),
        )
    raise AssertionError(kind)


def value_strategy(kind: str):
    if kind == "int64":
        lo, hi = INT_RANGES["int64"]
        return st.one_of(st.integers(-3, 50), st.integers(lo, hi))
    if kind == "float64":
        return st.one_of(
            st.sampled_from([0.0, -0.0, 1.5, math.inf]), st.floats(allow_nan=False)
        )
    if kind == "object":
        return st.one_of(
            st.integers(-3, 50),
            st.text(max_size=5),
            st.builds(Token, st.integers(0, 99)),
            st.none(),
            st.lists(st.integers(), max_size=3),
        )
    raise AssertionError(kind)


def sample_keys(kind: str, n: int, seed: int = 0) -> list:
    """``n`` distinct, deterministic, non-NaN keys of ``kind``."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        i = rng.getrandbits(40)
        if kind in INT_RANGES:
            lo, hi = INT_RANGES[kind]
            k = lo + (i * 2654435761) % (hi - lo + 1)
        elif kind == "float64":
            k = float(i) / 7.0 - 1000.0
        elif kind == "float32":
            k = f32(float(i % 1_000_000) / 8.0 - 1000.0)
        elif kind == "string":
            k = f"k{i}"
        elif kind == "bytes":
            k = b"k%d" % i
        else:
            k = (i, "o") if i % 2 else i
        if k in seen:
            continue
        seen.add(k)
        out.append(k)
    return out


def sample_value(kind: str, i: int):
    if kind == "int64":
        return i * 3 - 7
    if kind == "float64":
        return i * 0.25 - 3.0
    return Token(i)


def value_eq(kind: str, got, expected) -> bool:
    """Stored-value equality for a value kind (object values: identity)."""
    if kind == "object":
        return got is expected
    if kind == "int64":
        return type(got) is int and got == expected
    if type(got) is not float:
        return False
    if math.isnan(expected):
        return math.isnan(got)
    return got == expected and math.copysign(1.0, got) == math.copysign(1.0, float(expected))


def key_same(kind: str, a, b) -> bool:
    """Keys equal as the map sees them (NaN only equals NaN here, for list comparisons)."""
    if kind in FLOAT_KINDS:
        if is_nan(a) or is_nan(b):
            return is_nan(a) and is_nan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


# ---------------------------------------------------------------------------
# rand sources
# ---------------------------------------------------------------------------


class CountingRand:
    """A zero-argument callable ``rand`` that records every draw.

    ``push`` queues specific values for the next draws; otherwise values come from a
    seeded generator (32-bit, so ``hash0`` and the iterator ``r`` are the value itself).
    """

    def __init__(self, seed: int = 0, values=()):
        self._rng = random.Random(seed)
        self._queue = list(values)
        self.values: list[int] = []

    def push(self, *vals):
        self._queue.extend(vals)

    def __call__(self):
        v = self._queue.pop(0) if self._queue else self._rng.getrandbits(32)
        self.values.append(v)
        return v

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def last(self) -> int:
        return self.values[-1]


# ---------------------------------------------------------------------------
# Snapshot checks
# ---------------------------------------------------------------------------


def _check_bucket_shape(b):
    assert isinstance(b, dict), b
    th = b["tophash"]
    assert isinstance(th, list) and len(th) == 8, th
    assert all(isinstance(t, int) and 0 <= t <= 255 for t in th), th
    assert len(b["keys"]) == 8 and len(b["values"]) == 8


def _check_chain(chain, where):
    """Checks a live chain; returns [(key, value, tophash)] of its occupied slots."""
    assert isinstance(chain, list) and len(chain) >= 1, (where, chain)
    live = []
    seen_rest = False
    for bi, b in enumerate(chain):
        _check_bucket_shape(b)
        for i in range(8):
            t = b["tophash"][i]
            if seen_rest:
                # emptyRest: every later slot of the chain is emptyRest too
                assert t == EMPTY_REST, f"{where}: slot after emptyRest is {t} (bucket {bi} slot {i})"
            if t == EMPTY_REST:
                seen_rest = True
            if t < MIN_TOPHASH:
                assert t in (EMPTY_REST, EMPTY_ONE), f"{where}: tophash {t} in a live chain"
                assert b["keys"][i] is None and b["values"][i] is None, (
                    f"{where}: empty slot holds {b['keys'][i]!r}: {b['values'][i]!r}"
                )
            else:
                live.append((b["keys"][i], b["values"][i], t))
    return live


def check_snapshot(s: dict) -> list:
    """Asserts the structural invariants of ``Map.snapshot()``.

    Returns the live entries ``[(key, value, tophash, where)]`` where ``where`` is
    ``("new", chain_index)`` or ``("old", chain_index)``.
    """
    for f in ("count", "B", "flags", "noverflow", "hash0", "nevacuate", "growing", "buckets", "oldbuckets"):
        assert f in s, f"snapshot lacks {f!r}: {sorted(s)}"
    count, B, flags = s["count"], s["B"], s["flags"]
    assert isinstance(count, int) and count >= 0
    assert isinstance(B, int) and 0 <= B < 64
    assert isinstance(s["hash0"], int) and 0 <= s["hash0"] < 2**32
    assert isinstance(s["noverflow"], int) and 0 <= s["noverflow"] < 2**16
    assert flags & F_HASH_WRITING == 0, f"hashWriting visible in flags {flags}"
    assert flags & ~(F_ITERATOR | F_OLD_ITERATOR | F_SAME_SIZE_GROW) == 0, flags
    assert isinstance(s["growing"], bool)
    assert s["growing"] == (s["oldbuckets"] is not None)
    if s["buckets"] is None:
        assert count == 0 and B == 0 and not s["growing"], s
        return []
    assert len(s["buckets"]) == 1 << B, (len(s["buckets"]), B)
    live = []
    for j, chain in enumerate(s["buckets"]):
        for k, v, t in _check_chain(chain, f"buckets[{j}]"):
            live.append((k, v, t, ("new", j)))
    if s["growing"]:
        old = s["oldbuckets"]
        same = bool(flags & F_SAME_SIZE_GROW)
        if same:
            assert len(old) == 1 << B
        else:
            assert B >= 1 and len(old) == 1 << (B - 1), (len(old), B)
        nev = s["nevacuate"]
        assert 0 <= nev < len(old), (nev, len(old))
        for i, ob in enumerate(old):
            if isinstance(ob, dict):
                assert ob.get("evacuated") is True, ob
                th = ob["tophash"]
                assert len(th) == 8 and all(t in (EVACUATED_X, EVACUATED_Y, EVACUATED_EMPTY) for t in th), th
            else:
                assert i >= nev, f"oldbuckets[{i}] not evacuated but nevacuate={nev}"
                for k, v, t in _check_chain(ob, f"oldbuckets[{i}]"):
                    live.append((k, v, t, ("old", i)))
        if len(old) <= 1024:
            assert not isinstance(old[nev], dict), "growing, but oldbuckets[nevacuate] is evacuated"
    else:
        assert flags & F_SAME_SIZE_GROW == 0, flags
    assert len(live) == count, f"{len(live)} occupied slots but count={count}"
    # load: Go grows before count passes 6.5 * 2**B (plus at most 2**B inserts during a grow)
    assert count <= max(8, (15 << B) // 2), (count, B)
    return live


def check_stats(st_: dict, s: dict):
    for f in (
        "count",
        "B",
        "buckets",
        "overflow_buckets",
        "noverflow",
        "load_factor",
        "growing",
        "same_size_grow",
        "nevacuate",
        "bytes",
    ):
        assert f in st_, f"stats() lacks {f!r}: {sorted(st_)}"
    assert st_["count"] == s["count"]
    assert st_["B"] == s["B"]
    assert st_["buckets"] == (0 if s["buckets"] is None else 1 << s["B"]), (st_["buckets"], s["B"])
    assert st_["noverflow"] == s["noverflow"]
    assert st_["growing"] == s["growing"]
    assert st_["same_size_grow"] == bool(s["flags"] & F_SAME_SIZE_GROW)
    assert st_["nevacuate"] == s["nevacuate"]
    assert isinstance(st_["load_factor"], float) and st_["load_factor"] >= 0.0
    assert isinstance(st_["bytes"], int) and st_["bytes"] >= 0
    if s["buckets"] is not None:
        assert st_["bytes"] > 0
    assert isinstance(st_["overflow_buckets"], int) and st_["overflow_buckets"] >= 0
    if s["buckets"] is not None:
        linked = sum(len(c) - 1 for c in s["buckets"])
        assert st_["overflow_buckets"] >= linked, (st_["overflow_buckets"], linked)


# ---------------------------------------------------------------------------
# Hash oracle and Go's mapiternext
# ---------------------------------------------------------------------------


class HashOracle:
    """Learns a key's bucket index and tophash for given (hashkey, hash0, B).

    It builds a fresh ``Map`` with the same ``hashkey``, ``hash0`` (as the single
    creation draw) and ``B`` (via the hint), inserts keys, and reads their positions
    back from ``snapshot()``.  This relies on nothing but the contract that the hash
    is a function of (hashkey, hash0, key).  Keys are inserted in batches of at most
    half the load limit; a batch whose map started growing is redone key by key.
    """

    def __init__(self, kind: str, hashkey):
        import gomap

        self._gomap = gomap
        self.kind = kind
        self.hashkey = tuple(hashkey)
        self._cache = {}

    @staticmethod
    def _ck(hash0, B, key):
        return (hash0, B, type(key).__name__, key)

    def _fresh(self, hash0, B):
        return self._gomap.Map(self.kind, "int64", hint_for_b(B), hashkey=self.hashkey, rand=[hash0])

    def _batch(self, hash0, B, keys):
        o = self._fresh(hash0, B)
        for k in keys:
            o[k] = 0
        s = o.snapshot()
        if s["growing"] or s["B"] != B:
            return False
        assert s["hash0"] == hash0, (s["hash0"], hash0)
        pos = {}
        for j, chain in enumerate(s["buckets"]):
            for b in chain:
                for i, t in enumerate(b["tophash"]):
                    if t >= MIN_TOPHASH:
                        pos[self._ck(hash0, B, b["keys"][i])] = (j, t)
        for k in keys:
            ck = self._ck(hash0, B, k)
            if ck not in pos:
                # an equal key of another type (object maps: 1 == 1.0 == True)
                alt = [v for kk, v in pos.items() if kk[3] == k]
                assert len(alt) >= 1, f"oracle lost key {k!r}"
                pos[ck] = alt[0]
        self._cache.update(pos)
        return True

    def prime(self, hash0: int, B: int, keys):
        todo = []
        seen = set()
        for k in keys:
            if is_nan(k):
                continue
            ck = self._ck(hash0, B, k)
            if ck in self._cache or ck in seen:
                continue
            seen.add(ck)
            todo.append(k)
        step = max(1, (13 << B) // 4)
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            if not self._batch(hash0, B, chunk):
                for k in chunk:
                    assert self._batch(hash0, B, [k]), f"a single key made the oracle map grow: {k!r}"

    def locate(self, hash0: int, B: int, key):
        ck = self._ck(hash0, B, key)
        if ck not in self._cache:
            assert self._batch(hash0, B, [key])
        return self._cache[ck]


def go_iter_order(s: dict, r: int, oracle: HashOracle | None = None) -> list:
    """The (key, value) sequence Go's mapiternext yields for an iterator created on
    the map whose snapshot is ``s`` with draw ``r``, run to the end without writes."""
    if s["count"] == 0:
        return []
    B = s["B"]
    nb = 1 << B
    start = r & (nb - 1)
    offset = (r >> B) & 7
    growing = s["growing"]
    same = bool(s["flags"] & F_SAME_SIZE_GROW)
    if growing and not same and oracle is not None:
        oracle.prime(
            s["hash0"],
            B,
            [k for ob in s["oldbuckets"] if not isinstance(ob, dict) for b in ob for k, t in zip(b["keys"], b["tophash"]) if t >= MIN_TOPHASH],
        )
    out = []
    for j in range(nb):
        bucket = (start + j) & (nb - 1)
        check = None
        chain = s["buckets"][bucket]
        if growing:
            old = s["oldbuckets"]
            ob = old[bucket & (len(old) - 1)]
            if not isinstance(ob, dict):  # not evacuated
                chain = ob
                if not same:
                    check = bucket
        for b in chain:
            for i in range(8):
                offi = (i + offset) & 7
                t = b["tophash"][offi]
                if t < MIN_TOPHASH:
                    continue
                k = b["keys"][offi]
                if check is not None:
                    if is_nan(k):
                        if (check >> (B - 1)) != (t & 1):
                            continue
                    else:
                        assert oracle is not None
                        hb, _ = oracle.locate(s["hash0"], B, k)
                        if hb != check:
                            continue
                out.append((k, b["values"][offi]))
    return out


def check_layout(s: dict, oracle: HashOracle, kind: str):
    """Every key sits in the chain its hash selects, with the tophash its hash gives."""
    B = s["B"]
    live = check_snapshot(s)
    oracle.prime(s["hash0"], B, [e[0] for e in live])
    for k, v, t, (where, idx) in live:
        if is_nan(k):
            continue
        hb, ht = oracle.locate(s["hash0"], B, k)
        assert ht == t, f"key {k!r}: tophash {t} in map, {ht} for the same hash alone"
        if where == "new":
            assert hb == idx, f"key {k!r} in chain {idx}, its hash selects {hb}"
        else:
            nold = len(s["oldbuckets"])
            assert hb & (nold - 1) == idx, f"key {k!r} in old chain {idx}, hash selects {hb & (nold - 1)}"


def entries_multiset_equal(kind: str, got: list, expected: list) -> bool:
    """Compares two (key, value) lists as multisets, keys only (values checked elsewhere)."""
    def norm(k):
        if kind in FLOAT_KINDS and is_nan(k):
            return ("nan",)
        return k

    return Counter(norm(k) for k in got) == Counter(norm(k) for k in expected)


def assert_seq_equal(kind: str, vkind: str, got: list, expected: list):
    assert len(got) == len(expected), f"{len(got)} entries produced, Go produces {len(expected)}:\n got {got}\n exp {expected}"
    for n, ((gk, gv), (ek, ev)) in enumerate(zip(got, expected)):
        assert key_same(kind, gk, ek), f"entry {n}: key {gk!r}, Go gives {ek!r}\n got {got}\n exp {expected}"
        assert value_eq(vkind, gv, ev) or (vkind != "object" and gv == ev), (
            f"entry {n} ({gk!r}): value {gv!r}, Go gives {ev!r}"
        )


def _norm(x):
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))
    if isinstance(x, list):
        return [_norm(y) for y in x]
    if isinstance(x, tuple):
        return ("t",) + tuple(_norm(y) for y in x)
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    return x


def snap_eq(a, b) -> bool:
    """Snapshot equality that sees float bits (NaN == NaN, -0.0 != 0.0)."""
    return _norm(a) == _norm(b)


def run_py(code: str, timeout: float = 120.0):
    """Runs ``code`` in a fresh interpreter (for tests that could crash the process)."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )


@pytest.fixture
def gomap():
    import gomap as g

    return g


# --- shared by the thread tests ----------------------------------------------

N_THREADS = 8


@pytest.fixture
def tiny_switch_interval():
    """Switch threads as often as CPython allows, to widen race windows."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(target, n=N_THREADS):
    """Runs target(i) in n threads released together; returns their results and
    re-raises the first exception."""
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def body(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
