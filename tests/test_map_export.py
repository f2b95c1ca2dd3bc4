"""keys_array / values_array / items_arrays: NumPy exports in Go's iteration order.

Each export is one Go iteration (mapiterinit draws its start, as iter(m) does):
given the same draws, two identical maps export in the order that iterating
them produces.
"""
from __future__ import annotations

import numpy as np
import pytest

import gomap

HK = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x2545F4914F6CDD1D)


def twin_maps(kk, vk, items, draws):
    """Two maps built identically, drawing `draws` (hash0 first) in order."""
    out = []
    for _ in range(2):
        m = gomap.Map(kk, vk, hashkey=HK, rand=iter(list(draws)))
        for k, v in items:
            m[k] = v
        out.append(m)
    return out


DRAWS = [12345] + [0x9E3779B9 * (i + 1) & 0xFFFFFFFF for i in range(64)]


@pytest.mark.parametrize(
    "kk,vk,make",
    [
        ("int64", "int64", lambda i: (i * 7919 - 50_000, i)),
        ("uint32", "float64", lambda i: (i * 31, i / 4)),
        ("float64", "int64", lambda i: (i * 0.5 - 3.0, -i)),
        ("string", "int64", lambda i: (f"k{i:05d}", i)),
        ("object", "object", lambda i: ((i, "t") if i % 3 else i, str(i))),
    ],
)
def test_exports_follow_go_iteration_order(kk, vk, make):
    items = [make(i) for i in range(1000)]
    a, b = twin_maps(kk, vk, items, DRAWS)
    ks = a.keys_array()
    expect = list(b)  # the same draw for the iteration start
    assert isinstance(ks, np.ndarray) and len(ks) == len(items)
    assert ks.tolist() == expect
    # The next draw for the next iteration, on both.
    vs = a.values_array()
    assert vs.tolist() == list(b.values())
    ka, va = a.items_arrays()
    assert list(zip(ka.tolist(), va.tolist())) == list(b.items())
    assert dict(zip(ka.tolist(), va.tolist())) == dict(items)


def test_export_dtypes_and_empty():
    m = gomap.Map("int64", "float64")
    k, v = m.items_arrays()
    assert k.dtype == np.int64 and v.dtype == np.float64 and len(k) == len(v) == 0
    m[3] = 1.5
    assert m.keys_array().dtype == np.int64 and m.values_array().tolist() == [1.5]
    s = gomap.Map("string", "int64")
    s["x"] = 1
    assert s.keys_array().dtype == object and s.keys_array().tolist() == ["x"]


def test_export_during_growth_sees_every_entry_once():
    # Stop in the middle of a grow: the export walks new and old buckets as an
    # iterator started then would.
    m = gomap.Map("int64", "int64")
    n = 0
    while not m.stats()["growing"] or n < 100:
        m[n] = n * 2
        n += 1
    assert m.stats()["growing"]
    k, v = m.items_arrays()
    assert sorted(k.tolist()) == list(range(n))
    assert (v == k * 2).all()


def test_export_from_a_finalizer_run_after_a_write():
    m = gomap.Map("int64", "object")
    m[1] = 1

    class Sneaky:
        def __del__(self):
            try:
                m.keys_array()
            except gomap.ConcurrentMapError:
                caught.append(True)

    caught: list[bool] = []
    m[2] = Sneaky()
    m[2] = 0  # the old value is dropped after the write claim: no error
    assert caught == []
    assert sorted(m.keys_array().tolist()) == [1, 2]
