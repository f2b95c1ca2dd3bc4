"""Pickling (every kind combination, every protocol), copy/deepcopy, and garbage
collection of reference cycles through object-valued maps."""

from __future__ import annotations

import copy
import gc
import math
import os
import pickle
import sys
import weakref

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gomap
from conftest import (
    FLOAT_KINDS,
    KEY_KINDS,
    VALUE_KINDS,
    Coll,
    CountingRand,
    Token,
    check_snapshot,
    is_nan,
    is_neg_zero,
    key_strategy,
    sample_keys,
    sample_value,
    snap_eq,
    value_strategy,
)

ALL_COMBOS = [(k, v) for k in KEY_KINDS for v in VALUE_KINDS]
PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))


def _values_equal(vk, a, b):
    if vk == "object":
        return (a == b) if not isinstance(b, Token) else (isinstance(a, Token) and a.n == b.n)
    if vk == "float64" and is_nan(b):
        return is_nan(a)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("kk,vk", ALL_COMBOS)
def test_pickle_round_trip(kk, vk, proto):
    hk = (2**64 - 1, 12345, 3, 2**63)
    r = CountingRand(seed=3)
    m = gomap.Map(kk, vk, 50, hashkey=hk, rand=r)
    keys = sample_keys(kk, 120, seed=proto)
    for i, k in enumerate(keys):
        m[k] = sample_value(vk, i)
    for k in keys[::4]:
        del m[k]
    n, s = r.n, m.snapshot()
    data = pickle.dumps(m, proto)
    assert r.n == n, "pickling must not draw"
    assert snap_eq(m.snapshot(), s), "pickling must not change the map"
    p = pickle.loads(data)
    assert type(p) is gomap.Map
    assert p.key_kind == kk and p.value_kind == vk
    assert p.hashkey == hk
    assert len(p) == len(m) == 90
    for i, k in enumerate(keys):
        if i % 4 == 0:
            assert k not in p
        else:
            assert _values_equal(vk, p[k], sample_value(vk, i)), (k, p[k])
    check_snapshot(p.snapshot())
    if vk != "object":
        assert p == m
    # the copy is independent
    p[keys[1]] = sample_value(vk, 999)
    assert snap_eq(m.snapshot(), s)


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_pickle_empty(kk):
    m = gomap.Map(kk, "float64", hashkey=(1, 2, 3, 4))
    p = pickle.loads(pickle.dumps(m))
    assert len(p) == 0 and p.key_kind == kk and p.value_kind == "float64" and p.hashkey == (1, 2, 3, 4)
    p[sample_keys(kk, 1)[0]] = 1.0
    assert len(p) == 1


@pytest.mark.parametrize("kk", FLOAT_KINDS)
def test_pickle_float_keys_zero_sign_and_nan(kk):
    m = gomap.Map(kk, "int64")
    m[-0.0] = 1
    m[math.nan] = 2
    m[math.nan] = 3
    m[math.inf] = 4
    p = pickle.loads(pickle.dumps(m))
    assert len(p) == 4, "NaN entries are items too"
    zero = [k for k in p if k == 0]
    assert len(zero) == 1 and is_neg_zero(zero[0])
    assert sorted(v for k, v in p.items() if is_nan(k)) == [2, 3]
    assert p[math.inf] == 4 and p[0.0] == 1


def test_pickle_object_values_shared_references():
    shared = [1, 2]
    m = gomap.Map("int64", "object")
    m[1] = shared
    m[2] = shared
    p = pickle.loads(pickle.dumps(m))
    assert p[1] == [1, 2] and p[1] is p[2], "pickle memo keeps shared references"


def test_pickle_self_referential():
    m = gomap.Map()
    m["self"] = m
    m["x"] = Token(5)
    for proto in PROTOCOLS:
        if proto < 2:
            continue
        p = pickle.loads(pickle.dumps(m, proto))
        assert p["self"] is p
        assert p["x"].n == 5


def test_pickle_object_keys():
    m = gomap.Map("object", "int64")
    keys = [Coll(i) for i in range(20)] + [(1, "a"), frozenset({3}), None, 2.5, b"b", "s"]
    for i, k in enumerate(keys):
        m[k] = i
    p = pickle.loads(pickle.dumps(m))
    for i, k in enumerate(keys):
        assert p[k] == i
    assert p == m


@given(
    kk=st.sampled_from(KEY_KINDS),
    data=st.data(),
)
def test_pickle_property(kk, data):
    vk = data.draw(st.sampled_from(["int64", "float64"]))
    items = data.draw(st.lists(st.tuples(key_strategy(kk), value_strategy(vk)), max_size=60))
    m = gomap.Map(kk, vk)
    for k, v in items:
        m[k] = v
    p = pickle.loads(pickle.dumps(m))
    assert p == m and len(p) == len(m)
    assert p.hashkey == m.hashkey


def test_copy_module():
    m = gomap.Map("string", "object", hashkey=(5, 6, 7, 8))
    inner = [1, 2]
    m["a"] = inner
    c = copy.copy(m)
    assert type(c) is gomap.Map and c["a"] is inner and c.key_kind == "string"
    d = copy.deepcopy(m)
    assert d["a"] == inner and d["a"] is not inner
    assert d.hashkey == (5, 6, 7, 8)
    m["self"] = m
    d = copy.deepcopy(m)
    assert d["self"] is d


# ---------------------------------------------------------------------------
# GC
# ---------------------------------------------------------------------------


class Node:
    def __init__(self):
        self.ref = None


def _collected(make):
    """``make()`` builds garbage and returns a weakref to a sentinel inside it."""
    gc.collect()
    wr = make()
    gc.collect()
    gc.collect()
    return wr() is None


def test_gc_self_cycle():
    def make():
        m = gomap.Map()
        s = Node()
        m["self"] = m
        m["sentinel"] = s
        return weakref.ref(s)

    assert _collected(make), "a Map that contains itself must be collected"


def test_gc_cycle_through_user_object():
    def make():
        m = gomap.Map("int64", "object")
        n = Node()
        n.ref = m
        m[1] = n
        return weakref.ref(n)

    assert _collected(make)


def test_gc_cycle_through_key():
    def make():
        m = gomap.Map("object", "int64")
        n = Node()
        n.ref = m
        m[n] = 1
        return weakref.ref(n)

    assert _collected(make), "an object key that refers to the map must be collected"


def test_gc_cycle_through_two_maps():
    def make():
        a = gomap.Map()
        b = gomap.Map("string", "object")
        s = Node()
        a["b"] = b
        b["a"] = a
        b["s"] = s
        return weakref.ref(s)

    assert _collected(make)


def test_gc_cycle_through_iterator():
    def make():
        m = gomap.Map()
        s = Node()
        m["s"] = s
        m["x"] = 1
        it = iter(m)
        m["it"] = it
        its = iter(m.items())
        m["its"] = its
        next(its)
        return weakref.ref(s)

    assert _collected(make), "a Map holding its own iterator must be collected"


def test_gc_cycle_through_view():
    def make():
        m = gomap.Map()
        s = Node()
        m["s"] = s
        m["keys"] = m.keys()
        m["values"] = m.values()
        return weakref.ref(s)

    assert _collected(make)


def test_gc_cycle_while_growing():
    def make():
        m = gomap.Map("int64", "object", 14)
        s = Node()
        i = 0
        while not m.snapshot()["growing"]:
            m[i] = [m, s]
            i += 1
        return weakref.ref(s)

    assert _collected(make), "values still in old buckets must be traversed too"


def test_gc_cycle_through_rand_callable():
    def make():
        s = Node()
        holder = {}

        def rand():
            holder.get("m")
            return 7

        rand.sentinel = s
        m = gomap.Map("int64", "int64", rand=rand)
        holder["m"] = m
        m[1] = 1
        return weakref.ref(s)

    assert _collected(make), "a rand callable referring to its map must be collected"


def test_gc_large_cyclic_structure():
    def make():
        s = Node()
        maps = [gomap.Map() for _ in range(50)]
        for i, m in enumerate(maps):
            m["next"] = maps[(i + 1) % 50]
            for j in range(30):
                m[j] = [m]
        maps[7]["s"] = s
        return weakref.ref(s)

    assert _collected(make)


def test_gc_tracked():
    assert gc.is_tracked(gomap.Map())


def test_gc_get_referents_include_values():
    m = gomap.Map("string", "object")
    v = Node()
    m["a"] = v
    assert any(r is v for r in gc.get_referents(m)), "tp_traverse must visit the values"
    k = Node()
    o = gomap.Map()
    o[k] = 1
    assert any(r is k for r in gc.get_referents(o)), "tp_traverse must visit object keys"


def test_live_map_not_collected():
    m = gomap.Map()
    n = Node()
    wr = weakref.ref(n)
    m["n"] = n
    n.ref = m
    del n
    gc.collect()
    assert wr() is not None and m["n"] is wr()
