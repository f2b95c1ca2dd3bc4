"""Bad keys and values: the right exception, and the map left exactly unchanged
(``snapshot()`` before == after, no ``rand`` draw), for every kind and every
operation that takes a key or a value."""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gomap
from conftest import (
    INT_RANGES,
    KEY_KINDS,
    CountingRand,
    check_snapshot,
    sample_keys,
    sample_value,
    snap_eq,
)


class Unhashable:
    __hash__ = None


class BadHash:
    def __hash__(self):
        return "not an int"


class RaisingHash:
    def __hash__(self):
        raise ZeroDivisionError("boom")


# (key kind) -> [(bad key, exception types)] for writes
BAD_KEYS = {
    "int64": [
        (2**63, OverflowError),
        (-(2**63) - 1, OverflowError),
        (2**200, OverflowError),
        ("1", TypeError),
        (b"1", TypeError),
        (None, TypeError),
        (1.5, (TypeError, ValueError)),
        ([1], TypeError),
    ],
    "int32": [
        (2**31, OverflowError),
        (-(2**31) - 1, OverflowError),
        (2**63, OverflowError),
        ("1", TypeError),
        (None, TypeError),
        (1.5, (TypeError, ValueError)),
    ],
    "uint64": [
        (-1, OverflowError),
        (2**64, OverflowError),
        (-(2**63), OverflowError),
        ("1", TypeError),
        (None, TypeError),
        (1.5, (TypeError, ValueError)),
    ],
    "uint32": [
        (-1, OverflowError),
        (2**32, OverflowError),
        (2**64, OverflowError),
        ("1", TypeError),
        (None, TypeError),
    ],
    "float64": [("1.0", TypeError), (None, TypeError), (b"x", TypeError), ([1.0], TypeError)],
    "float32": [("1.0", TypeError), (None, TypeError), (b"x", TypeError)],
    "string": [(b"a", TypeError), (1, TypeError), (None, TypeError), (("a",), TypeError)],
    "bytes": [("a", TypeError), (1, TypeError), (None, TypeError), (["a"], TypeError)],
    "object": [
        ([1], TypeError),
        ({}, TypeError),
        (set(), TypeError),
        (Unhashable(), TypeError),
        (BadHash(), TypeError),
        (RaisingHash(), ZeroDivisionError),
        ((1, [2]), TypeError),
    ],
}

BAD_VALUES = {
    "int64": [
        (2**63, OverflowError),
        (-(2**63) - 1, OverflowError),
        (2**64, OverflowError),
        ("1", TypeError),
        (None, TypeError),
        (1.5, (TypeError, ValueError)),
        ([1], TypeError),
    ],
    "float64": [("1.5", TypeError), (None, TypeError), (b"1", TypeError), (10**400, OverflowError), ([1.0], TypeError)],
}

KEY_CASES = [(kk, bad, exc) for kk, lst in BAD_KEYS.items() for bad, exc in lst]
VALUE_CASES = [(kk, vk, bad, exc) for vk, lst in BAD_VALUES.items() for bad, exc in lst for kk in ("int64", "string", "object")]


def _populated(kk, vk="int64", n=30, growing=False):
    r = CountingRand(seed=1)
    m = gomap.Map(kk, vk, rand=r)
    keys = sample_keys(kk, 200, seed=2)
    i = 0
    for i in range(n):
        m[keys[i]] = sample_value(vk, i)
    if growing:
        while not m.snapshot()["growing"]:
            i += 1
            m[keys[i]] = sample_value(vk, i)
    return m, r, keys


def _unchanged(m, r, s, n):
    assert r.n == n, "a rejected input must not draw"
    s2 = m.snapshot()
    assert snap_eq(s2, s), "a rejected input changed the map"
    check_snapshot(s2)


@pytest.mark.parametrize("growing", [False, True], ids=["steady", "growing"])
@pytest.mark.parametrize("kk,bad,exc", KEY_CASES, ids=[f"{k}-{b!r:.20}" for k, b, _ in KEY_CASES])
def test_bad_key_writes(kk, bad, exc, growing):
    m, r, keys = _populated(kk, growing=growing)
    s, n = m.snapshot(), r.n
    with pytest.raises(exc):
        m[bad] = 1
    _unchanged(m, r, s, n)
    with pytest.raises(exc):
        m.setdefault(bad, 1)
    _unchanged(m, r, s, n)
    with pytest.raises(exc):
        m.update({bad: 1} if _hashable(bad) else [(bad, 1)])
    _unchanged(m, r, s, n)
    with pytest.raises(exc):
        m.update([(bad, 1)])
    _unchanged(m, r, s, n)
    # deletes: object maps must raise (the key cannot be hashed); typed maps may raise
    # the conversion error or treat the key as missing
    strict = kk == "object"
    for fn, missing in (
        (lambda: m.delete(bad), None),
        (lambda: m.pop(bad, NOT_FOUND), NOT_FOUND),
        (lambda: _lookup(lambda: m.pop(bad)), NOT_FOUND),
        (lambda: _lookup(lambda: m.__delitem__(bad)), NOT_FOUND),
    ):
        if strict:
            with pytest.raises(exc):
                fn()
        else:
            try:
                got = fn()
            except exc:
                got = missing
            assert got is missing, got
        _unchanged(m, r, s, n)
    # the map is still fully usable
    m[keys[150]] = 5
    assert m[keys[150]] == 5


def _hashable(x):
    try:
        hash(x)
        return True
    except Exception:
        return False


NOT_FOUND = object()


def _lookup(fn):
    try:
        return fn()
    except KeyError:
        return NOT_FOUND


@pytest.mark.parametrize("growing", [False, True], ids=["steady", "growing"])
@pytest.mark.parametrize("kk,bad,exc", KEY_CASES, ids=[f"{k}-{b!r:.20}" for k, b, _ in KEY_CASES])
def test_bad_key_reads(kk, bad, exc, growing):
    """A key that cannot be a key of this map is either rejected with the write's
    exception or simply not found; either way nothing changes."""
    m, r, _ = _populated(kk, growing=growing)
    s, n = m.snapshot(), r.n
    strict = kk == "object"  # dict semantics: an unhashable key raises even on lookup
    for fn, nf in (
        (lambda: m[bad], NOT_FOUND),
        (lambda: m.get(bad), None),
        (lambda: m.get(bad, NOT_FOUND), NOT_FOUND),
        (lambda: bad in m, False),
        (lambda: bad in m.keys(), False),
        (lambda: (bad, 1) in m.items(), False),
    ):
        if strict:
            with pytest.raises(exc):
                fn()
        else:
            try:
                got = _lookup(fn)
            except exc:
                got = nf
            assert got is nf or got == nf, got
        _unchanged(m, r, s, n)


@pytest.mark.parametrize("bad", [[1], {}, set(), Unhashable(), (1, [2])])
@pytest.mark.parametrize("empty", [True, False])
def test_unhashable_key_lookups_raise_in_object_maps(bad, empty):
    """As with dict (and Go's hashMightPanic): even a lookup on an empty map hashes."""
    m = gomap.Map()
    if not empty:
        m["a"] = 1
    s = m.snapshot()
    with pytest.raises(TypeError):
        m[bad]
    with pytest.raises(TypeError):
        m.get(bad)
    with pytest.raises(TypeError):
        bad in m
    with pytest.raises(TypeError):
        m.pop(bad, None)
    with pytest.raises(TypeError):
        m.delete(bad)
    assert snap_eq(m.snapshot(), s)


@pytest.mark.parametrize("growing", [False, True], ids=["steady", "growing"])
@pytest.mark.parametrize("kk,vk,bad,exc", VALUE_CASES, ids=[f"{k}-{v}-{b!r:.20}" for k, v, b, _ in VALUE_CASES])
def test_bad_values(kk, vk, bad, exc, growing):
    m, r, keys = _populated(kk, vk, growing=growing)
    s, n = m.snapshot(), r.n
    existing, fresh = keys[0], keys[180]
    for k in (existing, fresh):
        with pytest.raises(exc):
            m[k] = bad
        _unchanged(m, r, s, n)
        with pytest.raises(exc):
            m.update([(k, bad)])
        _unchanged(m, r, s, n)
        with pytest.raises(exc):
            m.update({k: bad})
        _unchanged(m, r, s, n)
    with pytest.raises(exc):
        m.setdefault(fresh, bad)
    _unchanged(m, r, s, n)
    if kk in ("string", "object"):
        with pytest.raises(exc):
            m.update(kwkey=bad)
        _unchanged(m, r, s, n)
    assert fresh not in m
    assert m[existing] == sample_value(vk, 0) or vk == "object"


def test_setdefault_none_default_in_typed_map():
    m, r, keys = _populated("int64", "int64")
    s, n = m.snapshot(), r.n
    with pytest.raises(TypeError):
        m.setdefault(keys[150])  # default None is not an int64 value
    _unchanged(m, r, s, n)
    assert m.setdefault(keys[0]) == sample_value("int64", 0), "present key: no conversion of the default"


@pytest.mark.parametrize("kk", list(INT_RANGES))
def test_int_kind_boundaries_accepted(kk):
    lo, hi = INT_RANGES[kk]
    m = gomap.Map(kk, "int64")
    m[lo] = lo if kk != "uint64" else 0
    m[hi] = 1
    assert lo in m and hi in m and len(m) == 2
    with pytest.raises(OverflowError):
        m[hi + 1] = 1
    with pytest.raises(OverflowError):
        m[lo - 1] = 1
    assert len(m) == 2


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_update_midway_failure(kk):
    """Like dict.update, items before the bad one may be applied (or the whole update
    rejected), but nothing after it is, and the map stays consistent."""
    bad = BAD_KEYS[kk][0][0]
    exc = BAD_KEYS[kk][0][1]
    m = gomap.Map(kk, "int64")
    ks = sample_keys(kk, 3, seed=5)
    with pytest.raises(exc):
        m.update([(ks[0], 1), (bad, 2), (ks[1], 3)])
    assert list(m.items()) in ([(ks[0], 1)], [])
    check_snapshot(m.snapshot())


@given(st.integers())
def test_int64_key_range_property(x):
    m = gomap.Map("int64", "int64")
    lo, hi = INT_RANGES["int64"]
    if lo <= x <= hi:
        m[x] = 1
        assert m[x] == 1 and list(m) == [x]
    else:
        with pytest.raises(OverflowError):
            m[x] = 1
        assert len(m) == 0 and m.snapshot()["buckets"] is None


@given(st.integers(), st.sampled_from(["int32", "uint32", "uint64"]))
def test_narrow_int_key_range_property(x, kk):
    m = gomap.Map(kk, "int64")
    lo, hi = INT_RANGES[kk]
    if lo <= x <= hi:
        m[x] = 1
        assert list(m) == [x]
    else:
        with pytest.raises(OverflowError):
            m[x] = 1
        assert len(m) == 0


def test_float64_value_nan_inf_accepted():
    m = gomap.Map("int64", "float64")
    m[1] = math.nan
    m[2] = -math.inf
    m[3] = 2**1000  # finite: converts like float()
    assert math.isnan(m[1]) and m[2] == -math.inf and m[3] == float(2**1000)
