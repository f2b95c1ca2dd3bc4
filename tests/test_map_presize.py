"""set_many(..., presize=True): opt-in, grows to the final size first."""
from __future__ import annotations

import numpy as np

import gomap

HK = (3, 5, 7, 11)


def test_default_set_many_keeps_go_growth_history():
    keys = np.arange(5000, dtype=np.int64) * 7919
    a = gomap.Map("int64", "int64", hashkey=HK, rand=[1] * 10)
    b = gomap.Map("int64", "int64", hashkey=HK, rand=[1] * 10)
    a.set_many(keys, keys)
    for k in keys.tolist():
        b[k] = k
    assert a.snapshot() == b.snapshot()


def test_presize_fresh_map_never_grows():
    n = 50_000
    keys = np.random.default_rng(1).permutation(n).astype(np.int64) * 3 - n
    m = gomap.Map("int64", "int64", hashkey=HK, rand=[9] * 10)
    m.set_many(keys, keys * 2, presize=True)
    hinted = gomap.Map("int64", "int64", n, hashkey=HK, rand=[9] * 10)
    s, h = m.stats(), hinted.stats()
    assert s["B"] == h["B"] and not s["growing"]
    assert len(m) == n
    got = m.get_many(keys)
    assert (got == keys * 2).all()
    # The same layout as a map made with the hint: makemap's B, no growth.
    for k in keys.tolist():
        hinted[k] = k * 2
    assert m.snapshot() == hinted.snapshot()


def test_presize_non_empty_map_keeps_entries_and_adds():
    m = gomap.Map("string", "float64")
    for i in range(100):
        m[f"a{i}"] = float(i)
    b0 = m.stats()["B"]
    keys = [f"b{i}" for i in range(10_000)]
    m.set_many(keys, np.arange(10_000, dtype=np.float64), presize=True)
    assert m.stats()["B"] > b0 and not m.stats()["growing"]
    assert len(m) == 10_100
    assert m["a7"] == 7.0 and m["b9999"] == 9999.0


def test_presize_big_enough_already_is_a_no_op():
    m = gomap.Map("int64", "int64", 1000, hashkey=HK, rand=[5] * 4)
    before = m.snapshot()
    m.set_many(np.array([], dtype=np.int64), np.array([], dtype=np.int64), presize=True)
    assert m.snapshot() == before
