"""Iteration semantics: Go's order (start bucket and offset from the iterator's draw),
mutation during iteration, deletes before an entry is reached, growth under an open
iterator, iterators left open across clear(), and iterators over empty maps."""

from __future__ import annotations

import gc
import math
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gomap
from conftest import (
    F_SAME_SIZE_GROW,
    FLOAT_KINDS,
    KEY_KINDS,
    CountingRand,
    HashOracle,
    assert_seq_equal,
    check_snapshot,
    go_iter_order,
    hint_for_b,
    is_nan,
    key_strategy,
    sample_keys,
    snap_eq,
)


def _map(kk, n, seed=0, hint=0, vk="int64", hashkey=(7, 9, 11, 13), hash0=1234):
    r = CountingRand(seed=seed, values=[hash0])
    m = gomap.Map(kk, vk, hint, hashkey=hashkey, rand=r)
    keys = sample_keys(kk, n, seed=seed)
    for i, k in enumerate(keys):
        m[k] = i
    return m, r, keys


def _iter_with(m, r, rv, view="items"):
    r.push(rv)
    n = r.n
    it = {"items": lambda: iter(m.items()), "keys": lambda: iter(m), "values": lambda: iter(m.values())}[view]()
    assert r.n == n + (1 if len(m) else 0)
    if len(m):
        assert r.last == rv, "the iterator's draw was not taken at creation"
    return it


# ---------------------------------------------------------------------------
# Exact order
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_single_bucket_rotation(kk):
    """B=0: the order is the slot order rotated by offset = r & 7."""
    m, r, keys = _map(kk, 8)
    (chain,) = m.snapshot()["buckets"]
    slots = chain[0]["keys"]
    assert sorted(map(repr, slots)) == sorted(map(repr, keys))
    for rv in range(16):
        got = list(_iter_with(m, r, rv, "keys"))
        off = rv & 7
        assert got == slots[off:] + slots[:off], (rv, got, slots)


def test_single_bucket_partial_rotation():
    m, r, keys = _map("int64", 5)
    (chain,) = m.snapshot()["buckets"]
    slots = chain[0]["keys"][:5]
    for rv in range(8):
        got = list(_iter_with(m, r, rv, "keys"))
        # slots rv..7 then 0..rv-1, skipping the empty ones
        expected = [k for k in (chain[0]["keys"][rv:] + chain[0]["keys"][:rv]) if k is not None]
        assert got == expected, (rv, got, expected)
    assert set(slots) == set(keys)


@pytest.mark.parametrize("kk", KEY_KINDS)
@pytest.mark.parametrize("n", [1, 9, 30, 100, 700])
def test_exact_order_steady(kk, n):
    m, r, keys = _map(kk, n, seed=n)
    s = m.snapshot()
    while s["growing"]:
        m[keys[0]] = 0  # finish the grow (assignments do growWork)
        s = m.snapshot()
    check_snapshot(s)
    for rv in [0, 1, 7, 8, 9, 255, 256, 0xFFFFFFFF, 0x12345678, 2**31 + 5]:
        for view in ("items", "keys", "values"):
            got = list(_iter_with(m, r, rv, view))
            exp = go_iter_order(s, rv)
            if view == "items":
                assert_seq_equal(kk, "int64", got, exp)
            elif view == "keys":
                assert_seq_equal(kk, "int64", [(k, 0) for k in got], [(k, 0) for k, _ in exp])
            else:
                assert got == [v for _, v in exp]


@pytest.mark.parametrize("kk", ["int64", "string", "float64", "object", "uint32", "bytes"])
def test_exact_order_while_growing(kk):
    m, r, keys = _map(kk, 0, hint=hint_for_b(3))
    keys = sample_keys(kk, 400, seed=3)
    oracle = HashOracle(kk, m.hashkey)
    i = 0
    checked = 0
    while checked < 6 and i < len(keys):
        m[keys[i]] = i
        i += 1
        s = m.snapshot()
        if not s["growing"]:
            continue
        for rv in (0, 3, 0xBEEF, 0xFFFFFFFF):
            got = list(_iter_with(m, r, rv))
            exp = go_iter_order(s, rv, oracle)
            assert_seq_equal(kk, "int64", got, exp)
            assert sorted(map(repr, (k for k, _ in got))) == sorted(map(repr, keys[:i]))
        checked += 1
    assert checked > 0, "never observed a grow in progress"


def _same_size_grow_map():
    hk, h0 = (0x9E3779B97F4A7C15, 3, 5, 7), 77
    oracle = HashOracle("int64", hk)
    cand = sample_keys("int64", 4000, seed=21)
    oracle.prime(h0, 2, cand)
    by_bucket = {0: [], 1: [], 2: [], 3: []}
    for k in cand:
        by_bucket[oracle.locate(h0, 2, k)[0]].append(k)
    r = CountingRand(values=[h0])
    m = gomap.Map("int64", "int64", hint_for_b(2), hashkey=hk, rand=r)
    for bucket in range(4):
        ks = by_bucket[bucket][:9]
        for k in ks:
            m[k] = k & 0xFFFF
        if bucket < 2:
            for k in ks[:7]:
                del m[k]
    m[by_bucket[0][9]] = 1
    return m, r, oracle, by_bucket


def test_exact_order_same_size_grow():
    m, r, oracle, by_bucket = _same_size_grow_map()
    s = m.snapshot()
    assert s["growing"] and s["flags"] & F_SAME_SIZE_GROW
    for rv in range(0, 64, 5):
        got = list(_iter_with(m, r, rv))
        assert_seq_equal("int64", "int64", got, go_iter_order(s, rv, oracle))


@pytest.mark.parametrize("kk", FLOAT_KINDS)
def test_exact_order_with_nans_while_growing(kk):
    r = CountingRand(values=[99])
    m = gomap.Map(kk, "int64", hint_for_b(2), hashkey=(3, 5, 7, 11), rand=r)
    oracle = HashOracle(kk, m.hashkey)
    checked = 0
    for i in range(200):
        if i % 3 == 0:
            m[math.nan] = i
        else:
            m[float(i)] = i
        s = m.snapshot()
        if s["growing"]:
            for rv in (0, 1, 6, 0xABCDEF):
                got = list(_iter_with(m, r, rv))
                assert_seq_equal(kk, "int64", got, go_iter_order(s, rv, oracle))
            checked += 1
    assert checked > 0


@given(
    kk=st.sampled_from(KEY_KINDS),
    keys=st.data(),
    rv=st.integers(0, 2**32 - 1),
)
def test_every_key_exactly_once(kk, keys, rv):
    ks = keys.draw(st.lists(key_strategy(kk), max_size=150))
    r = CountingRand()
    m = gomap.Map(kk, "int64", rand=r)
    model = {}
    for i, k in enumerate(ks):
        m[k] = i
        model[k] = i
    got = list(_iter_with(m, r, rv))
    assert len(got) == len(model)
    assert Counter(k for k, _ in got) == Counter(list(model))
    for k, v in got:
        assert model[k] == v
    s = m.snapshot()
    exp = go_iter_order(s, rv, HashOracle(kk, m.hashkey))
    assert_seq_equal(kk, "int64", list(_iter_with(m, r, rv)), exp)


def test_start_varies_with_draw():
    m, r, keys = _map("int64", 100)
    orders = {tuple(_iter_with(m, r, rv, "keys")) for rv in range(64)}
    assert len(orders) > 8, "the draw must move the start bucket and offset"
    assert all(sorted(o) == sorted(keys) for o in orders)


# ---------------------------------------------------------------------------
# Mutation during iteration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_delete_before_reached_not_produced(kk):
    m, r, keys = _map(kk, 200, seed=5)
    it = _iter_with(m, r, 12345, "keys")
    s = m.snapshot()
    expected = [k for k, _ in go_iter_order(s, 12345)] if not s["growing"] else None
    produced = [next(it) for _ in range(50)]
    remaining = [k for k in keys if k not in set(produced)]
    victims = remaining[::2]
    for k in victims:
        del m[k]  # no RuntimeError, ever
    rest = list(it)
    assert not set(rest) & set(victims), "deleted before reached, yet produced"
    assert Counter(produced + rest) == Counter(produced) + Counter(remaining[1::2])
    if expected is not None:
        vs = set(victims)
        assert produced + rest == [k for k in expected if k not in vs or k in set(produced)]


def test_delete_everything_while_iterating():
    r = CountingRand()
    m = gomap.Map("string", "int64", rand=r)
    for i in range(1000):
        m[str(i)] = i
    seen = []
    for k in m:
        seen.append(k)
        del m[k]
    assert len(m) == 0 and sorted(seen, key=int) == [str(i) for i in range(1000)]
    assert r.n == 3, "draws: creation, the iterator, the delete that empties the map"
    assert m.snapshot()["hash0"] == r.last


def test_delete_current_and_others_each_step():
    m, r, keys = _map("int64", 300)
    model = dict.fromkeys(keys)
    seen = []
    for k in m:
        assert k in model, f"{k} produced after it was deleted"
        seen.append(k)
        del m[k]
        del model[k]
        # also delete one key not yet seen
        for other in list(model)[:1]:
            m.delete(other)
            del model[other]
    assert len(m) == 0 and len(set(seen)) == len(seen)


@pytest.mark.parametrize("kk", ["int64", "string", "object", "float32"])
def test_update_values_during_iteration(kk):
    m, r, keys = _map(kk, 500)
    seen = Counter()
    for k in m:
        seen[k] += 1
        m[k] = -1
    assert seen == Counter(keys), "overwriting values must not move or repeat entries"
    assert all(v == -1 for v in m.values())


@pytest.mark.parametrize("kk", ["int64", "string", "object", "float64"])
def test_insert_during_iteration_with_growth(kk):
    m, r, keys = _map(kk, 50)
    extra = [k for k in sample_keys(kk, 3000, seed=99) if k not in set(keys)][:2000]
    original = set(keys)
    produced = Counter()
    model = dict.fromkeys(keys, None)
    j = 0
    for k, v in m.items():
        produced[k] += 1
        assert k in model
        for _ in range(3):
            if j < len(extra):
                m[extra[j]] = j
                model[extra[j]] = j
                j += 1
    assert m.snapshot()["B"] > 3, "the map must have grown under the iterator"
    for k in original:
        assert produced[k] == 1, f"original key {k!r} produced {produced[k]} times"
    assert all(c == 1 for c in produced.values()), "an inserted key produced twice"
    assert len(m) == len(model)


@pytest.mark.parametrize("kk", ["int64", "string", "object"])
def test_iterator_across_growth_values_current(kk):
    m, r, keys = _map(kk, 40)
    it = iter(m.items())
    got = [next(it) for _ in range(10)]
    extra = [k for k in sample_keys(kk, 800, seed=7) if k not in set(keys)]
    for i, k in enumerate(extra[:400]):
        m[k] = 10_000 + i
    for k in keys:
        m[k] = -5  # update originals after the grow moved them
    rest = list(it)
    for k, v in rest:
        assert v == m[k], f"{k!r}: produced {v}, current {m[k]}"
    produced = Counter(k for k, _ in got + rest)
    for k in keys:
        assert produced[k] == 1
    assert all(c == 1 for c in produced.values())


def test_many_open_iterators_with_writes():
    m, r, keys = _map("int64", 100)
    model = {k: i for i, k in enumerate(keys)}
    its = [iter(m.items()) for _ in range(10)]
    seen = [Counter() for _ in its]
    extra = iter(sample_keys("int64", 5000, seed=123))
    step = 0
    live = list(range(10))
    while live:
        for idx in list(live):
            try:
                k, v = next(its[idx])
            except StopIteration:
                live.remove(idx)
                continue
            assert model.get(k, "missing") == v
            seen[idx][k] += 1
        step += 1
        e = next(extra)
        if e not in model:
            m[e] = step
            model[e] = step
    for c in seen:
        assert all(c[k] == 1 for k in keys)
        assert all(v == 1 for v in c.values())


# ---------------------------------------------------------------------------
# Iterators and clear() / empty maps / lifetime
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_iterator_open_across_clear_produces_nothing(kk):
    m, r, keys = _map(kk, 100)
    it = iter(m.items())
    for _ in range(10):
        next(it)
    m.clear()
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("refill", [5, 100, 2000])
def test_iterator_open_across_clear_then_refill(refill):
    m, r, keys = _map("int64", 300)
    it = iter(m)
    next(it)
    m.clear()
    for i in range(refill):
        m[i] = i
    assert list(it) == [], "an iterator left open across clear() produces no further entries"
    check_snapshot(m.snapshot())
    assert len(list(m)) == refill


def test_iterator_open_across_clear_while_growing():
    m = gomap.Map("string", "object", 14)
    i = 0
    while not m.snapshot()["growing"]:
        m[str(i)] = [i]
        i += 1
    its = [iter(m.items()) for _ in range(3)]
    next(its[1])
    m.clear()
    for j in range(500):
        m[f"n{j}"] = j
    for it in its:
        assert list(it) == []
    gc.collect()


def test_iterator_over_empty_map_stays_empty():
    r = CountingRand()
    m = gomap.Map("int64", "int64", rand=r)
    n = r.n
    it = iter(m)
    assert r.n == n, "an iterator over an empty map does not draw"
    m[1] = 1
    m[2] = 2
    assert list(it) == [], "Go's iteration over an empty map ends at once"
    assert sorted(m) == [1, 2]


def test_exhausted_iterator_stays_exhausted():
    m, r, keys = _map("int64", 20)
    it = iter(m)
    assert len(list(it)) == 20
    m[12345678] = 1
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        next(it)
    assert iter(it) is it


def test_iterator_keeps_map_alive():
    m, r, keys = _map("string", 300)
    it = iter(m.items())
    del m
    gc.collect()
    got = list(it)
    assert sorted(k for k, _ in got) == sorted(keys)


def test_iterator_after_delete_to_empty_and_refill():
    # deleting the last entry reseeds hash0; the open iterator must not crash
    m, r, keys = _map("int64", 30)
    it = iter(m)
    first = next(it)
    for k in keys:
        del m[k]
    for i in range(30):
        m[10_000 + i] = i
    rest = list(it)
    assert first in keys
    assert set(rest) <= set(range(10_000, 10_030))
    assert len(rest) == len(set(rest))


def test_nan_entries_iterated():
    for kk in FLOAT_KINDS:
        m = gomap.Map(kk, "int64")
        for i in range(40):
            m[math.nan] = i
        vals = sorted(v for k, v in m.items() if is_nan(k))
        assert vals == list(range(40))
        it = iter(m.items())
        got = [next(it) for _ in range(10)]
        for i in range(40, 100):
            m[float(i)] = i  # grows under the iterator
        got += list(it)
        nan_vals = [v for k, v in got if is_nan(k)]
        assert sorted(nan_vals) == list(range(40)), "each NaN entry present at the start is produced once"


def test_iteration_does_not_change_map():
    m, r, keys = _map("bytes", 500)
    i = 0
    while not m.snapshot()["growing"]:
        m[b"g%d" % i] = i
        i += 1
    it = iter(m.items())
    s = m.snapshot()
    assert s["flags"] & 3 == 3
    list(it)
    assert snap_eq(m.snapshot(), s), "iterating never moves data"


# ---------------------------------------------------------------------------
# Mutations between creating an iterator and its first next()
# ---------------------------------------------------------------------------
# The draw and the flags happen at creation, but no entry has been produced yet: an
# entry deleted (or cleared, or overwritten) before the first next() is "not yet
# reached" and must behave like any other unreached entry.


@pytest.mark.parametrize("view", ["items", "keys", "values"])
def test_delete_all_before_first_next(view):
    m, r, keys = _map("int64", 5)
    it = _iter_with(m, r, 0, view)
    for k in keys:
        del m[k]
    assert list(it) == [], "entries deleted before they were reached were produced"


def test_delete_first_slot_before_first_next():
    m, r, keys = _map("int64", 5)
    (chain,) = m.snapshot()["buckets"]
    first = chain[0]["keys"][0]
    it = _iter_with(m, r, 0, "keys")  # offset 0: slot 0 comes first
    del m[first]
    got = list(it)
    assert first not in got
    assert sorted(got) == sorted(k for k in keys if k != first)


def test_overwrite_before_first_next_gives_current_value():
    m, r, keys = _map("string", 5)
    it = _iter_with(m, r, 0, "items")
    for k in keys:
        m[k] = -1
    got = list(it)
    assert sorted(got) == sorted((k, -1) for k in keys), got


def test_clear_before_first_next():
    m, r, keys = _map("int64", 5)
    it = iter(m.items())
    m.clear()
    assert list(it) == [], "an iterator left open across clear() produces no further entries"
