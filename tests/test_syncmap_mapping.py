"""gomap.SyncMap as a Python mapping: typed kinds, the MutableMapping surface,
dict's ``==``, independent copies, pickling, the GC, and the lock discipline
(no Python object released under the mutex, re-entrance is an error)."""

from __future__ import annotations

import copy
import gc
import math
import pickle
import sys
import weakref
from collections.abc import Mapping, MutableMapping

import pytest

import gomap
from gomap import ConcurrentMapError, SyncMap

KEYS = {
    "int64": [0, -5, 2**63 - 1, -(2**63)],
    "int32": [0, -5, 2**31 - 1],
    "uint64": [0, 7, 2**64 - 1],
    "uint32": [0, 7, 2**32 - 1],
    "float64": [0.0, -1.5, 1e300],
    "float32": [0.0, -1.5, 0.25],
    "string": ["", "a", "héllo"],
    "bytes": [b"", b"a", b"\xff\x00"],
    "object": [None, 1, "a", (1, 2)],
}
VALUES = {"int64": [0, -(2**63), 42], "float64": [0.5, -1e10, 3.0], "object": [None, [1], "x"]}
WRONG_KEY = {"int64": "x", "int32": 2**40, "uint64": -1, "uint32": 1.5, "float64": "x", "float32": b"x",
             "string": 3, "bytes": "x"}


def promoted(m):
    m.range(lambda k, v: True)


@pytest.mark.parametrize("kk", list(KEYS))
@pytest.mark.parametrize("vk", list(VALUES))
def test_every_kind(kk, vk):
    m = SyncMap(kk, vk)
    assert (m.key_kind, m.value_kind) == (kk, vk)
    keys, vals = KEYS[kk], VALUES[vk]
    model = {}
    for i, k in enumerate(keys):
        v = vals[i % len(vals)]
        m.store(k, v)
        model[k] = v
        if i == 1:
            promoted(m)
    assert len(m) == len(model)
    assert dict(m.items()) == model
    assert m == model
    for k, v in model.items():
        assert m.load(k) == (v, True)
        assert m[k] == v and k in m
    k0 = keys[0]
    assert m.load_and_delete(k0) == (model.pop(k0), True)
    assert m.load(k0) == (None, False) and k0 not in m
    assert m.load_or_store(k0, vals[0]) == (vals[0], False)
    assert m.swap(k0, vals[-1]) == (vals[0], True)
    assert m.compare_and_swap(k0, vals[-1], vals[1]) is True
    assert m.compare_and_delete(k0, vals[1]) is True
    assert sorted(map(repr, m)) == sorted(map(repr, model))


@pytest.mark.parametrize("kk", [k for k in KEYS if k != "object"])
def test_typed_map_wrong_key_reads_absent_writes_raise(kk):
    m = SyncMap(kk, "int64")
    m.store(KEYS[kk][1], 1)
    before = m._debug_state()
    bad = WRONG_KEY[kk]
    assert m.load(bad) == (None, False)
    assert bad not in m and m.get(bad, 7) == 7
    assert m.load_and_delete(bad) == (None, False)
    assert m.compare_and_swap(bad, 1, 2) is False
    m.delete(bad)
    with pytest.raises((TypeError, OverflowError)):
        m.store(bad, 1)
    with pytest.raises((TypeError, OverflowError)):
        m.load_or_store(bad, 1)
    with pytest.raises(TypeError):
        m.store(KEYS[kk][1], "not an int")
    assert m._debug_state() == before
    if kk == "string":
        assert "\ud800" not in m and m.load("\ud800") == (None, False)


def test_bad_kinds_and_hashkey():
    with pytest.raises(ValueError, match="unknown key kind"):
        SyncMap("nope")
    with pytest.raises(ValueError, match="unknown value kind"):
        SyncMap("int64", "string")
    with pytest.raises(ValueError, match="4 words"):
        SyncMap(hashkey=[1, 2])
    assert SyncMap(int, float).key_kind == "int64"
    assert SyncMap(hashkey=[1, 3, 5, 7]).hashkey == (1, 3, 5, 7)


def test_mutable_mapping_surface():
    m = SyncMap()
    assert isinstance(m, MutableMapping) and isinstance(m, Mapping)
    m.update({"a": 1}, b=2)
    m.update([("c", 3)])
    assert m.get("a") == 1 and m.get("zz") is None and m.get("zz", 5) == 5
    assert sorted(m.keys()) == ["a", "b", "c"]
    assert sorted(m.values()) == [1, 2, 3]
    assert sorted(m.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert ("a", 1) in m.items() and "a" in m.keys() and 2 in m.values()
    assert len(m.keys()) == 3
    assert m.pop("a") == 1
    assert m.pop("a", "dflt") == "dflt"
    with pytest.raises(KeyError):
        m.pop("a")
    assert m.setdefault("b", 99) == 2
    assert m.setdefault("n") is None and m.load("n") == (None, True)
    k, v = m.popitem()
    assert k not in m and len(m) == 2
    m.clear()
    with pytest.raises(KeyError, match="empty"):
        m.popitem()
    f = SyncMap.fromkeys("xy", 0)
    assert type(f) is SyncMap and f == {"x": 0, "y": 0}
    with pytest.raises(TypeError):
        reversed(f)
    with pytest.raises(TypeError):
        hash(f)
    assert SyncMap[int, str] is not None
    g = SyncMap.fromkeys([1, 2], "a")
    h = g | {2: "b", 3: "c"}
    assert type(h) is SyncMap and h == {1: "a", 2: "b", 3: "c"} and g == {1: "a", 2: "a"}
    r = {0: "z", 1: "y"} | g
    assert type(r) is SyncMap and r == {0: "z", 1: "a", 2: "a"}
    g |= [(9, 9)]
    assert g == {1: "a", 2: "a", 9: 9}
    assert g.__or__(5) is NotImplemented


def test_docstrings_on_public_methods():
    for name in ("load", "store", "load_or_store", "load_and_delete", "delete", "swap", "compare_and_swap",
                 "compare_and_delete", "range", "clear", "get", "keys", "items", "values", "pop", "popitem",
                 "setdefault", "update", "copy", "fromkeys"):
        assert getattr(SyncMap, name).__doc__, name
    assert "Go" in SyncMap.__doc__ and "1.24" in sys.modules["gomap.syncmap"].__doc__


def test_eq_is_dicts():
    nan = float("nan")
    m = SyncMap()
    m[1] = nan
    assert m == m and m == {1: nan} and not (m != {1: nan})
    assert m != {1: 0.0} and m != {} and m != {1: nan, 2: 2}
    assert (m == 5) is False and m != [1]
    m["self"] = m
    assert m == m  # identity first: no RecursionError
    assert m == {1: nan, "self": m}
    t = SyncMap("int64", "float64")
    t[1] = 2.0
    assert t == {1: 2}
    u = SyncMap("int64", "int64")
    u[1] = 2
    assert t == u and u == t


def test_copies_are_independent():
    m = SyncMap("string", "object", hashkey=[1, 3, 5, 7])
    m["a"] = [1]
    promoted(m)
    m["b"] = [2]  # dirty-only
    for c in (m.copy(), copy.copy(m)):
        assert type(c) is SyncMap and c == m and c is not m
        assert (c.key_kind, c.value_kind, c.hashkey) == ("string", "object", (1, 3, 5, 7))
        c["x"] = 1
        del c["a"]
        assert "x" not in m and "a" in m
        assert c["b"] is m["b"]  # shallow
    d = copy.deepcopy(m)
    assert d == m and d["a"] is not m["a"]
    d["a"].append(9)
    assert m["a"] == [1]
    m["self"] = m
    d = copy.deepcopy(m)
    assert d["self"] is d


@pytest.mark.parametrize("kk,vk", [("object", "object"), ("int64", "float64"), ("bytes", "int64")])
def test_pickle_roundtrip(kk, vk):
    m = SyncMap(kk, vk, hashkey=[11, 13, 17, 19])
    for i, k in enumerate(KEYS[kk]):
        m.store(k, VALUES[vk][i % len(VALUES[vk])])
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        c = pickle.loads(pickle.dumps(m, proto))
        assert type(c) is SyncMap and c == m
        assert (c.key_kind, c.value_kind, c.hashkey) == (kk, vk, (11, 13, 17, 19))


def test_pickle_self_containing():
    m = SyncMap()
    m["self"] = m
    c = pickle.loads(pickle.dumps(m))
    assert c["self"] is c


def test_repr():
    assert repr(SyncMap()) == "SyncMap({})"
    m = SyncMap("int64", "float64")
    m[1] = 2.5
    assert repr(m) == "SyncMap({1: 2.5}, key='int64', value='float64')"


def test_gc_collects_cycles_through_read_and_dirty():
    refs = []
    for layout in ("read", "dirty"):
        m = SyncMap()
        m["self"] = m
        if layout == "read":
            promoted(m)
        m["other"] = [m]
        refs.append(weakref.ref(m))
        del m
    gc.collect()
    assert all(r() is None for r in refs)


def test_load_results_held_by_the_caller_are_never_refilled():
    # load's tuple is refilled only when nobody else holds it (dict's items
    # iterator trick): results kept by the caller keep their values.
    m = SyncMap("int64", "int64")
    m.store(1, 10)
    m.store(2, 20)
    promoted(m)
    first = m.load(1)
    second = m.load(2)
    missing = m.load(3)
    got = m.load_or_store(4, 40)
    assert (first, second, missing, got) == ((10, True), (20, True), (None, False), (40, False))
    assert [m.load(k) for k in (1, 2, 3, 4)] == [(10, True), (20, True), (None, False), (40, True)]
    assert m.load_or_store(1, 0) == (10, True)


def test_gc_collects_a_cycle_through_the_last_load_result():
    m = SyncMap()
    m["self"] = [m]
    promoted(m)
    m.load("self")  # the refilled tuple now holds [m]
    del m["self"]
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


def test_a_finalizer_run_by_refilling_the_result_may_load_again():
    # Refilling releases the previous value: its __del__ runs Python code,
    # which loads from the same map while the refilled tuple is on its way out.
    m = SyncMap()
    seen = []

    class Loads:
        def __del__(self):
            seen.append(m.load("k"))

    m["k"] = Loads()
    promoted(m)
    m.load("k")  # the tuple now holds the only other reference to the value
    m["k"] = "plain"
    got = m.load("k")  # refilled: the old value's __del__ runs here
    assert got == ("plain", True)
    assert seen == [("plain", True)]


class Finalizer:
    """A value whose finalizer writes to the map it was stored in."""

    def __init__(self, m, tag):
        self.m, self.tag = m, tag

    def __del__(self):
        self.m.store(("finalized", self.tag), True)


@pytest.mark.parametrize("how", ["swap-dirty", "swap-read", "clear", "delete-dirty", "promote"])
def test_no_value_is_released_under_the_mutex(how):
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        m = SyncMap()
        if how == "swap-read":
            m["k"] = Finalizer(m, how)
            promoted(m)
            m["z"] = 0
        else:
            m["z"] = 0
            promoted(m)
            m["k"] = Finalizer(m, how)  # dirty-only
        if how.startswith("swap"):
            m.store("k", 1)
        elif how == "clear":
            m.clear()
        elif how == "delete-dirty":
            m.delete("k")
        else:
            m.delete("k")
            m.store("q", 1)
            promoted(m)
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert not unraisable, [u.exc_value for u in unraisable]
    assert m.load(("finalized", how)) == (True, True)


class Reenter:
    """An object key whose ``__eq__`` calls back into the map."""

    def __init__(self, m, n):
        self.m, self.n = m, n

    def __hash__(self):
        return 1

    def __eq__(self, other):
        self.m.load("anything")
        return False


def test_reentrance_under_the_mutex_raises_and_changes_nothing():
    m = SyncMap()
    m.store(Reenter(m, 1), 1)  # the dirty map's first key: nothing to compare with
    before = m._debug_state()
    with pytest.raises(ConcurrentMapError):
        m.store(Reenter(m, 2), 2)  # compared under the mutex with key 1
    assert m._debug_state() == before
    assert len(m) == 1
    promoted(m)  # in the read map, lookups compare with no lock held
    assert m.load(Reenter(m, 3)) == (None, False)


def test_gomap_exports():
    assert gomap.SyncMap is SyncMap
    assert issubclass(SyncMap, gomap._core.SyncMap)


def test_nan_values_and_none_values():
    m = SyncMap("int64", "float64")
    m[1] = math.nan
    assert math.isnan(m[1])
    assert m.compare_and_swap(1, math.nan, 2.0) is False
    with pytest.raises(TypeError):
        m[2] = None


def test_stats_use_gos_layout_of_map_any_entry():
    m = SyncMap("int64", "int64")
    for k in range(100):
        m.store(k, k)
    s = m.stats()
    assert s["read"] is None and s["amended"] and s["dirty"]["count"] == 100
    d = s["dirty"]
    # Go's bucket of map[any]*entry: 8 tophash + 8*16 key + 8*8 elem + 8 = 208 bytes
    assert d["B"] == 4 and d["bytes"] >= (1 << 4) * 208
    promoted(m)
    s = m.stats()
    assert s["dirty"] is None and s["read"]["count"] == 100 and not s["amended"]


@pytest.mark.parametrize("cls", [SyncMap, gomap._core.SyncMap], ids=["SyncMap", "_core.SyncMap"])
@pytest.mark.parametrize("promote", [False, True])
def test_dropping_a_deep_chain_does_not_overflow_the_c_stack(cls, promote):
    """A 200,000-deep chain of maps frees like nested dicts: the engine's drop
    keeps a work list instead of recursing (gomap.SyncMap also gets CPython's
    trashcan as a Python subclass; the bare engine class relies on the list)."""
    head = cur = cls()
    for _ in range(200_000):
        nxt = cls()
        cur["next"] = nxt
        if promote:
            promoted(cur)
        cur = nxt
    ref = weakref.ref(cur)
    del cur, nxt
    del head
    assert ref() is None


class Holder:
    """A hashable key that holds a reference (so a map can reach itself through its keys)."""

    def __init__(self, ref):
        self.ref = ref


@pytest.mark.parametrize("layout", ["read", "dirty", "both"])
def test_gc_collects_cycles_through_keys_and_the_rand_source(layout):
    m = SyncMap()
    m[Holder(m)] = 1
    if layout != "dirty":
        promoted(m)
    if layout == "both":
        m["new"] = 2  # dirty copies the read map: the key is in both maps
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None
    src = []
    r = SyncMap(rand=lambda: len(src))
    src.append(r)  # the rand source reaches the map
    r["a"] = 1
    ref = weakref.ref(r)
    del r, src
    gc.collect()
    assert ref() is None


def test_nan_keys_are_never_found_as_in_go():
    """In Go's map[any]*entry a NaN key never equals itself: every Store adds
    an entry and every lookup misses (each hash of a NaN draws)."""
    draws = []

    def rand():
        draws.append(1)
        return len(draws)

    m = SyncMap("float64", "int64", rand=rand)
    for i in range(20):
        m.store(math.nan, i)
        m.store(float(i), i)
    assert len(m) == 40 and m.load(math.nan) == (None, False)
    promoted(m)
    assert sum(1 for k in m if k != k) == 20
    before = len(draws)
    assert m.load_and_delete(math.nan) == (None, False)
    assert m.compare_and_swap(math.nan, 1, 2) is False
    assert len(draws) > before  # NaN lookups draw, as f64hash does
    m.clear()
    assert len(m) == 0 and m.load(math.nan) == (None, False)
