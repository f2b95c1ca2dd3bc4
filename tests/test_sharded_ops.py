"""``gomap.ShardedMap``'s Rust engine: the operations added with it (``update_with``,
``add``, ``add_many``, ``retain``, ``delete_if``), dict's ``==``, re-entrance from
user code (ConcurrentMapError, never a hang), GC, a Hypothesis model check of the
new operations against a dict, and 8-thread exactness/stress runs.
"""

from __future__ import annotations

import gc
import math
import os
import random
import sys
import threading
import weakref
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))

import gomap
import numpy as np
import pytest
from conftest import N_THREADS, run_threads
from gomap import ShardedMap
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

ConcurrentMapError = gomap.ConcurrentMapError


def state(m):
    return sorted((i, repr(k), repr(v)) for i in range(m.num_shards) for k, v in m._shard_items(i))


@pytest.fixture(params=["inline", "parallel"])
def batch_mode(request):
    if request.param == "parallel":
        old = gomap._core._sharded_parallel_min_keys(0)
        yield request.param
        gomap._core._sharded_parallel_min_keys(old)
    else:
        yield request.param


# ---------------------------------------------------------------------------
# update_with
# ---------------------------------------------------------------------------


def test_update_with_basic_default_and_errors():
    m = ShardedMap("string", "int64", shards=4)
    assert m.update_with("a", lambda v: v + 1, 0) == 1
    assert m.update_with("a", lambda v: v * 10) == 10 and m["a"] == 10
    with pytest.raises(KeyError):
        m.update_with("missing", lambda v: v)
    before = state(m)

    def boom(v):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        m.update_with("a", boom)
    with pytest.raises(TypeError):
        m.update_with("a", lambda v: "not an int")
    with pytest.raises(TypeError):
        m.update_with(5, lambda v: v)  # a wrong-typed key
    assert state(m) == before
    f = ShardedMap("int64", "float64", shards=2)
    assert f.update_with(1, lambda v: v + 1, 0) == 1.0 and isinstance(f[1], float)
    o = ShardedMap(shards=2)
    assert o.update_with("k", lambda v: [v], None) == [None]  # None is a default like any other
    o["n"] = 1
    assert o.update_with("n", fn=lambda v: v + 1) == 2  # `fn` by keyword
    with pytest.raises(TypeError, match="at most 3"):
        o.update_with("k", lambda v: v, 1, 2)


def test_update_with_retries_when_the_entry_changed():
    """fn runs with no lock held; a write that lands meanwhile makes the commit
    fail its check and fn run again on the new value."""
    m = ShardedMap("object", "object", shards=4)
    m["k"] = [1]
    calls = []

    def fn(v):
        calls.append(v)
        if len(calls) == 1:
            m["k"] = [2]  # allowed: no lock is held while fn runs
        return v + [0]

    assert m.update_with("k", fn) == [2, 0]
    assert calls == [[1], [2]] and m["k"] == [2, 0]
    # a key deleted meanwhile is retried as missing (with the default)
    m["d"] = 1
    seen = []

    def fn2(v):
        seen.append(v)
        if len(seen) == 1:
            del m["d"]
        return v + 1

    assert m.update_with("d", fn2, 100) == 101 and seen == [1, 100]


# ---------------------------------------------------------------------------
# add
# ---------------------------------------------------------------------------


def test_add_int_float_and_overflow():
    m = ShardedMap("int64", "int64", shards=8)
    assert m.add(1, 5) == 5 and m.add(1, -7) == -2 and m[1] == -2
    m[2] = 2**63 - 2
    assert m.add(2, 1) == 2**63 - 1
    before = state(m)
    with pytest.raises(OverflowError, match="unchanged"):
        m.add(2, 1)
    with pytest.raises(OverflowError):
        m.add(3, -(2**64))  # the delta itself does not fit
    m[4] = -(2**63)
    before = state(m)
    with pytest.raises(OverflowError):
        m.add(4, -1)
    with pytest.raises(TypeError):
        m.add(1, 1.5)
    with pytest.raises(TypeError):
        m.add("x", 1)
    assert state(m) == before and 3 not in m
    f = ShardedMap("string", "float64", shards=2)
    assert f.add("x", 0.5) == 0.5 and f.add("x", 2) == 2.5
    assert f.add("y", math.inf) == math.inf and math.isnan(f.add("y", -math.inf))
    o = ShardedMap("int64", "object", shards=2)
    with pytest.raises(TypeError, match="int64 or float64"):
        o.add(1, 1)
    with pytest.raises(TypeError, match="int64 or float64"):
        o.add_many([1], [1])
    assert len(o) == 0


# ---------------------------------------------------------------------------
# add_many
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 1000, 40000])
def test_add_many_int64_vs_counter(batch_mode, n):
    rng = np.random.default_rng(n)
    keys = rng.integers(-50, max(1, n // 10), n).astype(np.int64)
    m = ShardedMap("int64", "int64", shards=16)
    m[7] = 1000
    m.add_many(keys, 1)
    ref = Counter(keys.tolist())
    ref[7] += 1000
    assert dict(m.items()) == dict(ref) and len(m) == len(ref)
    deltas = rng.integers(-1000, 1000, n).astype(np.int64)
    m.add_many(keys, deltas)
    for k, d in zip(keys.tolist(), deltas.tolist()):
        ref[k] += d
    assert dict(m.items()) == dict(ref)
    m.add_many(keys.tolist(), deltas.tolist())  # sequences work too
    for k, d in zip(keys.tolist(), deltas.tolist()):
        ref[k] += d
    assert dict(m.items()) == dict(ref)


def test_add_many_other_kinds(batch_mode):
    words = ["a", "b", "c", "a", "日本", "a"]
    s = ShardedMap("string", "float64", shards=8)
    s.add_many(words, np.array([1.0, 2.0, 3.0, 4.0, 0.5, 0.25]))
    assert dict(s.items()) == {"a": 5.25, "b": 2.0, "c": 3.0, "日本": 0.5}
    o = ShardedMap("object", "int64", shards=4)
    o.add_many([(1, 2), "x", (1, 2)], [1, 2, 3])
    assert dict(o.items()) == {(1, 2): 4, "x": 2}
    f = ShardedMap("float64", "int64", shards=4)
    f.add_many(np.array([0.0, -0.0, 1.5]), 1)
    assert dict(f.items()) == {0.0: 2, 1.5: 1}


def test_add_many_bad_input_changes_nothing(batch_mode):
    m = ShardedMap("int64", "int64", shards=8)
    m.set_many(np.arange(100, dtype=np.int64), np.arange(100, dtype=np.int64))
    before = state(m)
    for keys, deltas, exc in [
        ([1, 2, 3], [1, 2], ValueError),
        ([1, 2, "x"], [1, 2, 3], TypeError),
        ([1, 2, 3], [1, 2, 1.5], TypeError),
        ([1, 2, 3], "abc", TypeError),
        ([1, 2, 3], [1, 2, 2**63], OverflowError),
        (np.arange(3, dtype=np.int32), [1, 2, 3], TypeError),
        ([1, 2, 3], np.arange(3, dtype=np.float64), TypeError),
    ]:
        with pytest.raises(exc):
            m.add_many(keys, deltas)
        assert state(m) == before


def test_add_many_overflow_is_all_or_nothing(batch_mode):
    """An overflow in one shard undoes every shard's additions, including new
    keys, whether the shards ran inline or on several threads."""
    m = ShardedMap("int64", "int64", shards=8)
    m.set_many(np.arange(0, 2000, 2, dtype=np.int64), np.arange(0, 2000, 2, dtype=np.int64))
    big = 10**6 + 1
    m[big] = 2**63 - 10
    before = state(m)
    keys = np.concatenate([np.arange(3000, dtype=np.int64), [big], np.arange(3000, dtype=np.int64)])
    deltas = np.ones(len(keys), dtype=np.int64)
    deltas[3000] = 100  # overflows the key `big`
    with pytest.raises(OverflowError, match="changed nothing"):
        m.add_many(keys, deltas)
    assert state(m) == before and len(m) == 1001
    with pytest.raises(OverflowError):
        m.add_many(np.array([1, 1, big, big], dtype=np.int64), 5)
    assert state(m) == before


# ---------------------------------------------------------------------------
# retain / delete_if
# ---------------------------------------------------------------------------


def test_retain_and_delete_if_vs_dict():
    m = ShardedMap("int64", "object", shards=8)
    ref = {i: str(i) for i in range(500)}
    m.update(ref)
    assert m.retain(lambda k, v: k % 3 != 0) == len([k for k in ref if k % 3 == 0])
    ref = {k: v for k, v in ref.items() if k % 3 != 0}
    assert dict(m.items()) == ref
    assert m.delete_if(lambda k, v: v.endswith("1")) == len([v for v in ref.values() if v.endswith("1")])
    ref = {k: v for k, v in ref.items() if not v.endswith("1")}
    assert dict(m.items()) == ref
    assert m.delete_if(lambda k, v: False) == 0 and m.retain(lambda k, v: True) == 0
    assert m.delete_if(lambda k, v: True) == len(ref) and len(m) == 0


def test_retain_pred_errors_and_concurrent_changes():
    m = ShardedMap("int64", "int64", shards=1)
    m.update({1: 1, 2: 2, 3: 3})

    def pred(k, v):
        if k == 2:
            m[2] = 20  # changed after the snapshot: not deleted
        return False

    assert m.delete_if(lambda k, v: pred(k, v) or True) == 2
    assert dict(m.items()) == {2: 20}
    m.update({5: 5})
    before = state(m)

    def bad(k, v):
        raise KeyError("pred failed")

    with pytest.raises(KeyError, match="pred failed"):
        m.retain(bad)
    assert state(m) == before


# ---------------------------------------------------------------------------
# dict semantics: ==, reversed, docstrings, copy, GC
# ---------------------------------------------------------------------------


def test_eq_identity_first_and_self_containing():
    nan = float("nan")
    m = ShardedMap("int64", "object", shards=4)
    m[1] = nan
    assert m == m and m == {1: nan} and {1: nan} == m
    assert m != {1: float("nan")}  # another NaN object: == is False, as for dict
    f = ShardedMap("int64", "float64", shards=4)
    f[1] = nan
    assert f == f  # a float64 map stores the number, not the object: only m is m holds
    o = ShardedMap(shards=4)
    o["me"] = o
    assert o == o and o == {"me": o} and not (o != o)
    d = {}
    d["me"] = o
    assert o == d  # o["me"] is d["me"]
    assert m != {1: 1.0} and f != {1: 1.0}


def test_reversed_is_a_type_error():
    m = ShardedMap("int64", "int64", shards=2)
    m[0] = 1
    with pytest.raises(TypeError):
        reversed(m)
    with pytest.raises(TypeError):
        reversed(gomap.Map("int64", "int64"))


def test_every_public_method_has_a_docstring():
    missing = []
    for name in dir(ShardedMap):
        if name.startswith("_"):
            continue
        attr = getattr(ShardedMap, name)
        if not (getattr(attr, "__doc__", None) or "").strip():
            missing.append(name)
    assert not missing, missing


def test_copy_is_independent_and_keeps_the_type():
    class Sub(ShardedMap):
        pass

    m = Sub("int64", "int64", shards=4)
    m.set_many(np.arange(1000, dtype=np.int64), np.arange(1000, dtype=np.int64))
    m.delete_many(np.arange(0, 1000, 3, dtype=np.int64))
    c = m.copy()
    assert type(c) is Sub and c == m and len(c) == len(m)
    assert [c._shard_snapshot(i) == m._shard_snapshot(i) for i in range(4)] == [True] * 4
    c[5000] = 1
    del c[1]
    assert 5000 not in m and 1 in m and len(c) == len(m)


def test_a_cycle_through_the_map_is_collected():
    m = ShardedMap(shards=4)

    class Holder:
        pass

    h = Holder()
    h.m = m
    m["h"] = h
    m[h] = m
    r = weakref.ref(m)
    del m, h
    gc.collect()
    assert r() is None


# ---------------------------------------------------------------------------
# re-entrance from user code: ConcurrentMapError, never a hang
# ---------------------------------------------------------------------------


class Hook:
    """A colliding object key (hash ``h``) whose __eq__ runs ``action`` once."""

    def __init__(self, tag, h=77):
        self.tag = tag
        self.h = h
        self.action = None

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        act, self.action = self.action, None
        if act is not None:
            act()
        return isinstance(other, Hook) and self.tag == other.tag


def raised(fn):
    try:
        fn()
    except ConcurrentMapError:
        return True
    return False


@pytest.mark.timeout(20)
def test_reentrant_calls_raise_instead_of_hanging():
    m = ShardedMap("object", "object", shards=8)
    stored = Hook(1)  # the map compares its stored key with the probe: stored.__eq__ runs
    m[stored] = 1
    results = {}

    def probe(name, outer, inner):
        stored.action = lambda: results.__setitem__(name, raised(inner))
        outer(Hook(2))
        m.pop(Hook(2), None)

    # writes (and whole-map operations) inside a lookup or a write: refused
    probe("set_in_get", lambda k: m.get(k), lambda: m.__setitem__(Hook(3), 3))
    probe("clear_in_get", lambda k: m.get(k), m.clear)
    probe("get_in_set", lambda k: m.__setitem__(k, 2), lambda: m.get(Hook(1)))
    probe("len_in_set", lambda k: m.__setitem__(k, 2), lambda: len(m))
    probe("add_in_set_if_absent", lambda k: m.set_if_absent(k, 2), lambda: m.update_with(Hook(1), lambda v: v))
    probe("get_in_get", lambda k: m.get(k), lambda: m.get(Hook(1)))
    probe("stats_in_get", lambda k: m.get(k), m.stats)
    probe("copy_in_pop", lambda k: m.pop(k, None), m.copy)
    assert results == {
        "set_in_get": True,
        "clear_in_get": True,
        "get_in_set": True,
        "len_in_set": False,  # len takes no lock
        "add_in_set_if_absent": True,
        "get_in_get": False,  # a lookup inside a lookup is allowed, as on Map
        "stats_in_get": False,  # reads every shard: allowed inside a lookup
        "copy_in_pop": True,
    }

    # a value's __eq__ in compare_and_swap runs under the shard lock
    class Val:
        def __eq__(self, other):
            results["val"] = raised(lambda: m.get("v"))  # its own shard: refused
            results["val_other"] = raised(lambda: m.get(elsewhere))  # a free shard: fine
            return True

        __hash__ = None

    elsewhere = next(x for x in range(100) if m.shard_of(x) != m.shard_of("v"))
    m["v"] = Val()
    assert m.compare_and_swap("v", 0, "new") and m["v"] == "new"
    assert results["val"] is True and results["val_other"] is False
    # and the map is intact, all locks free
    assert len(m) == len(list(m.items())) and m.get(Hook(1)) == 1
    m.clear()
    assert len(m) == 0


@pytest.mark.timeout(30)
def test_crossed_callbacks_on_two_shards_do_not_deadlock():
    """Thread 1 holds shard A in a key's __eq__ and wants shard B; thread 2
    holds B and wants A: each gets ConcurrentMapError instead of waiting."""
    m = ShardedMap("object", "int64", shards=8)
    ha = 11
    hb = next(h for h in range(12, 10_000) if m.shard_of(Hook(0, h)) != m.shard_of(Hook(0, ha)))
    m_keys = [Hook("a", ha), Hook("b", hb)]
    m[m_keys[0]] = 1
    m[m_keys[1]] = 2
    inside = [threading.Event(), threading.Event()]
    outcome = [None, None]

    stored = {ha: m_keys[0], hb: m_keys[1]}

    def worker(i):
        mine, theirs = (ha, hb) if i == 0 else (hb, ha)
        k = stored[mine]  # compared with the probe below: its __eq__ runs act()

        def act():
            inside[i].set()
            inside[1 - i].wait(5)
            try:
                m.get(Hook("x", theirs))
                outcome[i] = "ok"
            except ConcurrentMapError:
                outcome[i] = "refused"

        k.action = act
        m.get(Hook("probe", mine))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not any(t.is_alive() for t in ts)
    # at least one side was refused (both, when their callbacks overlapped)
    assert "refused" in outcome and set(outcome) <= {"ok", "refused"}
    assert len(m) == 2


# ---------------------------------------------------------------------------
# Hypothesis: the new operations against a dict
# ---------------------------------------------------------------------------


class NewOpsVsDict(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.m = ShardedMap("int64", "int64", shards=4)
        self.d: dict = {}

    keys = st.integers(-5, 30)
    deltas = st.integers(-(2**62), 2**62)

    @rule(k=keys, v=st.integers(-(2**63), 2**63 - 1))
    def set(self, k, v):
        self.m[k] = v
        self.d[k] = v

    @rule(k=keys, d=deltas)
    def add(self, k, d):
        new = self.d.get(k, 0) + d
        if -(2**63) <= new < 2**63:
            assert self.m.add(k, d) == new
            self.d[k] = new
        else:
            with pytest.raises(OverflowError):
                self.m.add(k, d)

    @rule(ks=st.lists(keys, max_size=20), d=st.data())
    def add_many(self, ks, d):
        ds = d.draw(st.lists(self.deltas, min_size=len(ks), max_size=len(ks)))
        new = dict(self.d)
        ok = True
        for k, x in zip(ks, ds):
            new[k] = new.get(k, 0) + x
            ok = ok and -(2**63) <= new[k] < 2**63
        if ok:
            self.m.add_many(ks, ds)
            self.d = new
        else:
            with pytest.raises(OverflowError):
                self.m.add_many(ks, ds)

    @rule(k=keys, c=st.integers(-3, 3), use_default=st.booleans())
    def update_with(self, k, c, use_default):
        if k not in self.d and not use_default:
            with pytest.raises(KeyError):
                self.m.update_with(k, lambda v: v * c)
            return
        old = self.d.get(k, 7)
        call = (lambda: self.m.update_with(k, lambda v: v * c, 7)) if use_default else (
            lambda: self.m.update_with(k, lambda v: v * c)
        )
        if not -(2**63) <= old * c < 2**63:
            with pytest.raises(OverflowError):  # fn's result does not fit: nothing stored
                call()
            return
        assert call() == old * c
        self.d[k] = old * c

    @rule(mod=st.integers(1, 5), keep=st.booleans())
    def filter(self, mod, keep):
        if keep:
            n = self.m.retain(lambda k, v: k % mod == 0)
            gone = [k for k in self.d if k % mod != 0]
        else:
            n = self.m.delete_if(lambda k, v: v % mod == 0)
            gone = [k for k, v in self.d.items() if v % mod == 0]
        assert n == len(gone)
        for k in gone:
            del self.d[k]

    @invariant()
    def same(self):
        assert len(self.m) == len(self.d)
        assert dict(self.m.items()) == self.d
        assert self.m == self.d


TestNewOpsVsDict = NewOpsVsDict.TestCase
TestNewOpsVsDict.settings = settings(
    max_examples=int(os.environ.get("SHARDED_EXAMPLES", "15")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------
# threads: exact counts, and a stress of every operation with re-entrant keys
# ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("tiny_switch_interval")
@pytest.mark.parametrize("vk", ["int64", "float64"])
def test_add_and_add_many_exact_under_8_threads(vk):
    m = ShardedMap("int64", vk, shards=8)
    keys = np.arange(64, dtype=np.int64)
    old = gomap._core._sharded_parallel_min_keys(32)  # batches also use Rust threads
    try:

        def worker(i):
            rng = random.Random(i)
            for _ in range(300):
                m.add(rng.randrange(64), 1)
            for _ in range(30):
                m.add_many(keys, 2)
                m.update_with(rng.randrange(64), lambda v: v + 3, 0)

        run_threads(worker)
    finally:
        gomap._core._sharded_parallel_min_keys(old)
    assert sum(m.values()) == N_THREADS * (300 + 30 * 64 * 2 + 30 * 3)


class Reenter:
    """Colliding object keys (8 hash classes) whose __eq__ sometimes calls back
    into the map -- a lookup, a write, or a whole-map operation."""

    m: ShardedMap | None = None

    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __hash__(self):
        return self.x % 8

    def __eq__(self, other):
        m = Reenter.m
        r = (self.x * 7 + getattr(other, "x", 0)) % 23
        if m is not None and r < 6:
            try:
                if r == 0:
                    m.get(Reenter(self.x + 1))
                elif r == 1:
                    m[Reenter(1000 + self.x)] = 0
                elif r == 2:
                    len(m)
                elif r == 3:
                    m.pop(Reenter(self.x + 2), None)
                elif r == 4:
                    m.stats()
                else:
                    m.add(Reenter(self.x), 1)
            except ConcurrentMapError:
                pass
        return isinstance(other, Reenter) and self.x == other.x

    def __repr__(self):
        return f"R({self.x})"


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("tiny_switch_interval")
def test_stress_every_op_with_reentrant_keys():
    m = ShardedMap("object", "int64", shards=4)
    Reenter.m = m
    errors = Counter()
    try:

        def worker(i):
            rng = random.Random(i)
            for _ in range(250):
                k = Reenter(rng.randrange(40))
                op = rng.randrange(22)
                try:
                    if op == 0:
                        m[k] = i
                    elif op == 1:
                        m.get(k)
                    elif op == 2:
                        _ = k in m
                    elif op == 3:
                        m.pop(k, None)
                    elif op == 4:
                        m.setdefault(k, i)
                    elif op == 5:
                        m.set_if_absent(k, i)
                    elif op == 6:
                        m.swap(k, i)
                    elif op == 7:
                        m.compare_and_swap(k, i, i + 1)
                    elif op == 8:
                        m.compare_and_delete(k, i)
                    elif op == 9:
                        m.add(k, 1)
                    elif op == 10:
                        m.update_with(k, lambda v: v + 1, 0)
                    elif op == 11:
                        m.add_many([k, Reenter(k.x + 1)], [1, 2])
                    elif op == 12:
                        m.set_many([k, Reenter(k.x + 3)], [i, i])
                    elif op == 13:
                        m.get_many([k], default=0)
                    elif op == 14:
                        m.delete_many([k])
                    elif op == 15:
                        m.retain(lambda kk, v: kk.x % 5 != i % 5)
                    elif op == 16:
                        list(m.items())
                    elif op == 17:
                        m.copy()
                    elif op == 18:
                        m.stats()
                    elif op == 19:
                        if rng.random() < 0.1:
                            m.clear()
                    elif op == 20:
                        m.popitem()
                    else:
                        m.shrink()
                except ConcurrentMapError:
                    errors["cme"] += 1
                except KeyError:
                    errors["keyerror"] += 1  # popitem on an empty map, get_many

        run_threads(worker)
    finally:
        Reenter.m = None
    items = list(m.items())
    assert len(m) == len(items) == len({k.x for k, _ in items})
    for i in range(m.num_shards):
        snap = m._shard_snapshot(i)
        assert snap["count"] == len(m._shard_items(i))


# ---------------------------------------------------------------------------
# nothing the map held is released under a lock (issue 9, class 4)
# ---------------------------------------------------------------------------


class Boom:
    """Collides with Coll5 and raises from __eq__."""

    def __hash__(self):
        return 5

    def __eq__(self, other):
        raise ValueError("boom")


class Coll5:
    def __hash__(self):
        return 5

    def __eq__(self, other):
        # NotImplemented for a Boom: Python then asks Boom, which raises
        return other is self if isinstance(other, Coll5) else NotImplemented


@pytest.mark.parametrize("op", ["set_many", "delete_many"])
def test_batch_error_releases_objects_after_the_unlock(op):
    m = ShardedMap(shards=1)
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append

    class Writer:
        """A value (or key) whose finalizer writes to the map."""

        def __del__(self):
            m[f"written-{id(self)}"] = 1

    try:
        m[Coll5()] = 0
        m["a"] = Writer()
        if op == "set_many":
            # "a"'s old value is replaced, then Boom raises; the generator's
            # Writer keys after it are owned by the batch alone
            keys = (k for k in ["a", Boom(), Writer(), Writer()])
            with pytest.raises(ValueError, match="boom"):
                m.set_many(keys, [1, 2, 3, 4])
        else:
            with pytest.raises(ValueError, match="boom"):
                m.delete_many(["a", Boom()])
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert not unraisable, [u.exc_value for u in unraisable]
    written = [k for k in m if isinstance(k, str) and k.startswith("written-")]
    assert len(written) == (3 if op == "set_many" else 1)
