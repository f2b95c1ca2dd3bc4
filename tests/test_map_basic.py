"""Basic behaviour of ``gomap.Map``: construction, kinds, the MutableMapping API,
views, float and object key semantics, ``rand`` draws, ``snapshot()`` and ``stats()``."""

from __future__ import annotations

import collections.abc
import math
import os
import pickle
import sys
import textwrap

sys.path.insert(0, os.path.dirname(__file__))

import pytest

import gomap
from conftest import (
    F_ITERATOR,
    F_OLD_ITERATOR,
    F_SAME_SIZE_GROW,
    FLOAT_KINDS,
    INT_RANGES,
    KEY_KINDS,
    VALUE_KINDS,
    Coll,
    CountingRand,
    HashOracle,
    Token,
    b_for_hint,
    check_layout,
    check_snapshot,
    check_stats,
    f32,
    hint_for_b,
    is_nan,
    is_neg_zero,
    run_py,
    sample_keys,
    sample_value,
    snap_eq,
    value_eq,
)

ALL_COMBOS = [(k, v) for k in KEY_KINDS for v in VALUE_KINDS]


# ---------------------------------------------------------------------------
# Construction and kinds
# ---------------------------------------------------------------------------


def test_defaults():
    m = gomap.Map()
    assert m.key_kind == "object" and m.value_kind == "object"
    assert len(m) == 0
    assert isinstance(m, collections.abc.MutableMapping)
    assert isinstance(m, collections.abc.Mapping)


@pytest.mark.parametrize("kk,vk", ALL_COMBOS)
def test_every_kind_combination(kk, vk):
    m = gomap.Map(kk, vk)
    assert m.key_kind == kk and m.value_kind == vk
    m2 = gomap.Map(key=kk, value=vk)
    assert m2.key_kind == kk and m2.value_kind == vk
    keys = sample_keys(kk, 40, seed=3)
    vals = [sample_value(vk, i) for i in range(40)]
    for k, v in zip(keys, vals):
        m[k] = v
    assert len(m) == 40
    for k, v in zip(keys, vals):
        assert value_eq(vk, m[k], v)
    check_snapshot(m.snapshot())


@pytest.mark.parametrize(
    "alias,canon",
    [(int, "int64"), (float, "float64"), (str, "string"), (bytes, "bytes"), (object, "object")],
)
def test_key_type_aliases(alias, canon):
    assert gomap.Map(alias).key_kind == canon
    assert gomap.Map(key=alias).key_kind == canon


@pytest.mark.parametrize("alias,canon", [(int, "int64"), (float, "float64"), (object, "object")])
def test_value_type_aliases(alias, canon):
    assert gomap.Map(value=alias).value_kind == canon
    assert gomap.Map("string", alias).value_kind == canon


@pytest.mark.parametrize("bad", ["int16", "uint8", "", "complex128", "int64 ", "interface", "map"])
def test_unknown_key_kind(bad):
    with pytest.raises(ValueError):
        gomap.Map(bad)


@pytest.mark.parametrize("bad", ["string", "bytes", "int32", "uint64", "float32", "", "complex128"])
def test_unknown_value_kind(bad):
    with pytest.raises(ValueError):
        gomap.Map("int64", bad)


@pytest.mark.parametrize("bad", [list, dict, complex, bool, 5])
def test_non_kind_objects_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        gomap.Map(bad)
    with pytest.raises((ValueError, TypeError)):
        gomap.Map("int64", bad)


def test_bytes_and_str_value_types_rejected():
    with pytest.raises((ValueError, TypeError)):
        gomap.Map("int64", str)
    with pytest.raises((ValueError, TypeError)):
        gomap.Map("int64", bytes)


@pytest.mark.parametrize("hint", [-1, -9, -(2**40)])
def test_negative_hint(hint):
    with pytest.raises(ValueError):
        gomap.Map("int64", "int64", hint)
    with pytest.raises(ValueError):
        gomap.Map(hint=hint)


def test_hint_must_be_int():
    with pytest.raises(TypeError):
        gomap.Map("int64", "int64", 1.5)
    with pytest.raises(TypeError):
        gomap.Map("int64", "int64", "8")


def test_hint_picks_go_B():
    for hint in list(range(0, 300)) + [415, 416, 417, 832, 833, 1664, 1665, 6656, 6657]:
        m = gomap.Map("int64", "int64", hint)
        s = m.snapshot()
        assert s["B"] == b_for_hint(hint), (hint, s["B"], b_for_hint(hint))
        if s["B"] == 0:
            assert s["buckets"] is None, "B=0: the bucket is allocated lazily, as in Go"
        else:
            assert len(s["buckets"]) == 1 << s["B"]
        assert s["count"] == 0 and not s["growing"]
        assert m.stats()["B"] == s["B"]


def test_hint_table_spot_values():
    # overLoadFactor(count, B) = count > 8 && count > 13 * (2**B / 2)
    for hint, b in [(0, 0), (8, 0), (9, 1), (13, 1), (14, 2), (26, 2), (27, 3), (52, 3), (53, 4), (104, 4), (105, 5)]:
        assert gomap.Map("string", "int64", hint).snapshot()["B"] == b, hint
    for b in range(0, 10):
        assert gomap.Map("int64", "int64", hint_for_b(b)).snapshot()["B"] == b


def test_huge_hint_falls_back_to_zero_like_go():
    # Go's makemap: if hint * bucketsize overflows (or exceeds maxAlloc), hint = 0.
    r = run_py(
        textwrap.dedent(
            """
            import gomap
            m = gomap.Map("int64", "int64", 2**60)
            s = m.snapshot()
            print(s["B"], s["buckets"] is None)
            m[1] = 2
            assert m[1] == 2
            """
        ),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["0", "True"], r.stdout


def test_hashkey_given():
    hk = (1, 2**64 - 1, 12345678901234567890, 0)
    m = gomap.Map("int64", "int64", hashkey=hk)
    assert m.hashkey == hk
    assert isinstance(m.hashkey, tuple)
    assert gomap.Map(hashkey=list(hk)).hashkey == hk


def test_hashkey_default_is_random_and_odd():
    seen = set()
    for _ in range(4):
        hk = gomap.Map("string").hashkey
        assert isinstance(hk, tuple) and len(hk) == 4
        for w in hk:
            assert isinstance(w, int) and 0 <= w < 2**64
            assert w & 1 == 1, f"Go makes each hashkey word odd: {hk}"
        seen.add(hk)
    assert len(seen) == 4, "each map gets its own random hashkey"


@pytest.mark.parametrize(
    "bad",
    [(1, 2, 3), (1, 2, 3, 4, 5), (), (-1, 1, 1, 1), (2**64, 1, 1, 1), ("a", 1, 1, 1), (1.5, 1, 1, 1), 5, "abcd", (None, 1, 1, 1)],
)
def test_bad_hashkey(bad):
    with pytest.raises((ValueError, TypeError)):
        gomap.Map("int64", "int64", hashkey=bad)


def test_hashkey_changes_layout():
    keys = sample_keys("int64", 40, seed=1)
    a = gomap.Map("int64", "int64", hashkey=(1, 3, 5, 7), rand=[99])
    b = gomap.Map("int64", "int64", hashkey=(9, 11, 13, 15), rand=[99])
    for k in keys:
        a[k] = b[k] = k & 0xFFFF
    assert a == b
    assert not snap_eq(a.snapshot(), b.snapshot())


def test_same_inputs_same_layout():
    for kk in KEY_KINDS:
        keys = sample_keys(kk, 100, seed=7)
        snaps = []
        for _ in range(2):
            m = gomap.Map(kk, "int64", hashkey=(11, 13, 17, 19), rand=[12345])
            for i, k in enumerate(keys):
                m[k] = i
            for k in keys[::3]:
                del m[k]
            snaps.append(m.snapshot())
        assert snap_eq(snaps[0], snaps[1]), kk


def test_hash0_changes_layout():
    keys = sample_keys("string", 40)
    a = gomap.Map("string", "int64", hashkey=(1, 3, 5, 7), rand=[1])
    b = gomap.Map("string", "int64", hashkey=(1, 3, 5, 7), rand=[2])
    for k in keys:
        a[k] = b[k] = 1
    assert a.snapshot()["hash0"] == 1 and b.snapshot()["hash0"] == 2
    assert not snap_eq(a.snapshot()["buckets"], b.snapshot()["buckets"])


# ---------------------------------------------------------------------------
# rand
# ---------------------------------------------------------------------------


def test_rand_iterable_and_hash0():
    m = gomap.Map("int64", "int64", rand=[7, 8, 9])
    assert m.snapshot()["hash0"] == 7
    m = gomap.Map("int64", "int64", rand=iter([2**40 + 5]))
    assert m.snapshot()["hash0"] == 5, "hash0 is the low 32 bits of the draw"
    m = gomap.Map("int64", "int64", rand=(x for x in [2**32 - 1]))
    assert m.snapshot()["hash0"] == 2**32 - 1


def test_rand_callable():
    r = CountingRand(values=[0xDEADBEEF])
    m = gomap.Map("string", "int64", rand=r)
    assert r.n == 1
    assert m.snapshot()["hash0"] == 0xDEADBEEF


def test_rand_runs_out_then_own_generator():
    m = gomap.Map("int64", "int64", rand=[3])
    m[1] = 1
    del m[1]  # draws: source is exhausted, continues from the map's own generator
    m[2] = 2
    m.clear()
    list(m)
    m[3] = 3
    assert list(m) == [3]
    assert len(m) == 1


@pytest.mark.parametrize("bad", [[-1], ["x"], [1.5], [None], [2**64]])
def test_rand_bad_values(bad):
    """Unspecified whether a bad draw raises or warns and falls back to the map's own
    generator; it must do one of the two, never silently use a wrong value."""
    import warnings

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            m = gomap.Map("int64", "int64", rand=bad)
        except (ValueError, TypeError, OverflowError):
            return
    assert w, "a bad rand value was accepted silently"
    m[1] = 1
    assert m[1] == 1 and 0 <= m.snapshot()["hash0"] < 2**32


def test_rand_not_iterable_nor_callable():
    with pytest.raises(TypeError):
        gomap.Map("int64", "int64", rand=5)


def test_draw_points():
    r = CountingRand(seed=1)
    m = gomap.Map("int64", "int64", rand=r)
    assert r.n == 1
    it = iter(m)  # empty map: no draw
    assert r.n == 1
    assert list(it) == []
    m.clear()  # empty: no draw
    assert r.n == 1
    for i in range(20):
        m[i] = i
    assert r.n == 1
    m.delete(100)
    del m[0]
    m.pop(1)
    m.pop(100, None)
    m.setdefault(2, 5)
    m.setdefault(200, 5)
    m.update({300: 1})
    assert r.n == 1, "writes and lookups of int keys never draw below B=16"
    _ = m[2], m.get(3), 4 in m, m.get(999)
    assert r.n == 1
    it = iter(m)
    assert r.n == 2, "creating an iterator over a non-empty map draws once"
    list(it)
    assert r.n == 2
    ks, vs, its = m.keys(), m.values(), m.items()
    assert r.n == 2, "creating a view does not draw"
    iter(ks)
    assert r.n == 3
    iter(vs)
    iter(its)
    assert r.n == 5
    r.push(0xABCDEF01)
    m.clear()
    assert r.n == 6
    assert m.snapshot()["hash0"] == 0xABCDEF01
    m[1] = 1
    m[2] = 2
    del m[1]
    assert r.n == 6
    r.push(0x12345678)
    m.delete(2)  # leaves the map empty: new hash0
    assert r.n == 7
    assert m.snapshot()["hash0"] == 0x12345678
    m[5] = 5
    r.push(77)
    assert m.pop(5) == 5
    assert r.n == 8 and m.snapshot()["hash0"] == 77
    m[5] = 5
    r.push(78)
    del m[5]
    assert r.n == 9 and m.snapshot()["hash0"] == 78
    m.delete(5)  # missing key on an empty map: no draw
    assert r.n == 9


def test_conveniences_never_draw():
    r = CountingRand(seed=2)
    m = gomap.Map("object", "object", rand=r)
    for i in range(50):
        m[i] = Token(i)
    n = r.n
    s = m.snapshot()
    repr(m)
    str(m)
    m == m.copy()
    m != {}
    m == {1: 2}
    m.copy()
    pickle.dumps(m)
    m.snapshot()
    m.stats()
    len(m)
    len(m.keys())
    len(m.items())
    len(m.values())
    3 in m.keys()
    m.key_kind, m.value_kind, m.hashkey
    assert r.n == n, "conveniences must not draw from rand"
    assert snap_eq(m.snapshot(), s), "conveniences must not change the map"


def test_iterator_flags_set_at_creation():
    m = gomap.Map("int64", "int64")
    assert m.snapshot()["flags"] == 0
    it = iter(m)
    assert m.snapshot()["flags"] == 0, "an iterator over an empty map sets no flags"
    m[1] = 1
    it = iter(m)
    assert m.snapshot()["flags"] & (F_ITERATOR | F_OLD_ITERATOR) == F_ITERATOR | F_OLD_ITERATOR
    del it


# ---------------------------------------------------------------------------
# MutableMapping API
# ---------------------------------------------------------------------------


def test_mapping_api_object():
    m = gomap.Map()
    assert m.get("a") is None and m.get("a", 5) == 5
    m["a"] = 1
    m["b"] = 2
    assert m["a"] == 1 and "a" in m and "z" not in m
    assert len(m) == 2
    with pytest.raises(KeyError):
        m["z"]
    with pytest.raises(KeyError):
        del m["z"]
    assert m.delete("z") is None
    assert m.pop("a") == 1
    assert "a" not in m
    with pytest.raises(KeyError):
        m.pop("a")
    sentinel = object()
    assert m.pop("a", sentinel) is sentinel
    assert m.pop("a", None) is None
    assert m.setdefault("b", 9) == 2
    assert m.setdefault("c") is None
    assert "c" in m and m["c"] is None
    assert m.setdefault("d", 4) == 4 and m["d"] == 4
    k, v = m.popitem()
    assert k in ("b", "c", "d") and k not in m
    m.clear()
    assert len(m) == 0
    with pytest.raises(KeyError):
        m.popitem()


def test_popitem_drains():
    m = gomap.Map("int64", "int64")
    for i in range(100):
        m[i] = -i
    seen = {}
    while m:
        k, v = m.popitem()
        assert v == -k and k not in seen
        seen[k] = v
    assert len(seen) == 100
    with pytest.raises(KeyError):
        m.popitem()


def test_bool_and_truthiness():
    m = gomap.Map("int64", "int64")
    assert not m
    m[0] = 0
    assert m
    m.clear()
    assert not m


def test_update_variants():
    m = gomap.Map("string", "int64")
    m.update({"a": 1, "b": 2})
    m.update([("c", 3), ("a", 10)])
    m.update((x for x in [("d", 4)]))
    src = gomap.Map("string", "int64")
    src["e"] = 5
    src["b"] = 20
    m.update(src)
    m.update(f=6, g=7)
    m.update({"h": 8}, i=9, a=11)
    m.update()

    class MappingLike:
        def keys(self):
            return ["j", "k"]

        def __getitem__(self, k):
            return ord(k)

    m.update(MappingLike())
    expected = {"a": 11, "b": 20, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": ord("j"), "k": ord("k")}
    assert dict(m.items()) == expected
    assert m == expected


def test_update_errors():
    m = gomap.Map("string", "int64")
    m["x"] = 1
    s = m.snapshot()
    with pytest.raises(TypeError):
        m.update(5)
    with pytest.raises((TypeError, ValueError)):
        m.update([("a", 1, 2)])
    with pytest.raises((TypeError, ValueError)):
        m.update(["a"])
    assert snap_eq(m.snapshot(), s)
    mi = gomap.Map("int64", "int64")
    with pytest.raises(TypeError):
        mi.update(a=1)  # keyword keys are strings
    assert len(mi) == 0


def test_update_from_self():
    m = gomap.Map("int64", "int64")
    for i in range(50):
        m[i] = i
    m.update(m)
    assert m == {i: i for i in range(50)}


def test_equality():
    a = gomap.Map("int64", "int64")
    b = gomap.Map("int64", "int64", 100)
    for i in range(30):
        a[i] = i * i
    for i in reversed(range(30)):
        b[i] = i * i
    d = {i: i * i for i in range(30)}
    assert a == b and b == a and a == d and d == a
    assert not (a != b) and not (a != d)
    b[0] = 1
    assert a != b and a != {**d, 0: 1}
    del b[0]
    assert a != b
    assert a != {i: i for i in range(3)}
    assert (a == 5) is False and (a != 5) is True
    assert (a == [(i, i * i) for i in range(30)]) is False
    o = gomap.Map("object", "object")
    for i in range(30):
        o[i] = i * i
    assert o == a and a == o, "Maps with the same items are equal whatever their kinds"
    assert gomap.Map() == {} and gomap.Map("bytes") == gomap.Map("float32")


def test_unhashable():
    m = gomap.Map()
    with pytest.raises(TypeError):
        hash(m)
    with pytest.raises(TypeError):
        {m: 1}


def test_copy():
    r = CountingRand()
    m = gomap.Map("string", "object", 20, hashkey=(3, 5, 7, 9), rand=r)
    vals = [Token(i) for i in range(60)]
    for i, v in enumerate(vals):
        m[str(i)] = v
    n = r.n
    c = m.copy()
    assert r.n == n
    assert type(c) is type(m)
    assert c.key_kind == "string" and c.value_kind == "object"
    assert c == m and len(c) == 60
    for i, v in enumerate(vals):
        assert c[str(i)] is v, "copy is shallow"
    check_snapshot(c.snapshot())
    s = m.snapshot()
    c["new"] = 1
    del c["0"]
    c["1"] = None
    assert snap_eq(m.snapshot(), s)
    assert m["0"] is vals[0] and "new" not in m


def test_repr_and_str():
    m = gomap.Map("int64", "int64")
    assert isinstance(repr(m), str)
    m[12345] = 67890
    assert isinstance(repr(m), str) and isinstance(str(m), str)


def test_repr_self_referential_does_not_recurse_forever():
    m = gomap.Map()
    m["self"] = m
    m["other"] = 1
    r = repr(m)
    assert isinstance(r, str)


def test_len_matches_after_many_ops():
    m = gomap.Map("uint32", "int64")
    d = {}
    for i in range(3000):
        k = (i * 7919) % 1500
        if i % 3 == 2:
            m.delete(k)
            d.pop(k, None)
        else:
            m[k] = i
            d[k] = i
        assert len(m) == len(d)
    assert m == d
    check_snapshot(m.snapshot())


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


def test_views():
    m = gomap.Map("int64", "int64")
    for i in range(10):
        m[i] = i * 10
    ks, vs, its = m.keys(), m.values(), m.items()
    assert len(ks) == len(vs) == len(its) == 10
    assert 3 in ks and 30 not in ks
    assert 30 in vs and 3 not in vs
    assert (3, 30) in its and (3, 31) not in its and (30, 3) not in its
    assert sorted(ks) == list(range(10))
    assert sorted(vs) == [i * 10 for i in range(10)]
    assert sorted(its) == [(i, i * 10) for i in range(10)]
    # set operations, like dict views
    assert ks & {1, 2, 99} == {1, 2}
    assert ks | {99} == set(range(10)) | {99}
    assert ks - {0, 1} == set(range(2, 10))
    assert ks ^ {0, 99} == set(range(1, 10)) | {99}
    assert ks == set(range(10)) and ks != set(range(9))
    assert ks.isdisjoint({100, 200}) and not ks.isdisjoint({5})
    assert its & {(1, 10), (2, 99)} == {(1, 10)}
    assert its - {(1, 10)} == {(i, i * 10) for i in range(10) if i != 1}
    # views are live
    m[100] = 1
    del m[0]
    assert len(ks) == 10 and 100 in ks and 0 not in ks
    assert (100, 1) in its


def test_views_iterate_consistently_with_same_draw():
    keys = sample_keys("string", 70, seed=4)
    r = CountingRand(values=[5, 1234567, 1234567, 1234567, 1234567])
    m = gomap.Map("string", "int64", rand=r)
    for i, k in enumerate(keys):
        m[k] = i
    a = list(m)
    b = list(m.keys())
    c = list(m.values())
    d = list(m.items())
    assert a == b
    assert d == list(zip(a, c)), "keys/values/items with the same draw walk the same order"
    assert sorted(a) == sorted(keys)


# ---------------------------------------------------------------------------
# Float keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kk", FLOAT_KINDS)
def test_signed_zero_is_one_key_stored_key_updated(kk):
    m = gomap.Map(kk, "int64")
    m[0.0] = 1
    m[-0.0] = 2
    assert len(m) == 1
    assert m[0.0] == 2 and m[-0.0] == 2
    (k,) = list(m)
    assert is_neg_zero(k), "Go updates the stored key (needkeyupdate): the last assigned -0.0"
    (k2,) = [k for c in m.snapshot()["buckets"] for b in c for k in b["keys"] if k is not None]
    assert is_neg_zero(k2)
    m[0.0] = 3
    (k,) = list(m)
    assert k == 0.0 and not is_neg_zero(k)
    m.update([(-0.0, 4)])
    assert is_neg_zero(list(m.keys())[0]) and m[0.0] == 4
    assert -0.0 in m and 0.0 in m
    del m[-0.0]
    assert len(m) == 0 and 0.0 not in m


@pytest.mark.parametrize("kk", FLOAT_KINDS)
def test_nan_keys(kk):
    r = CountingRand(seed=5)
    m = gomap.Map(kk, "int64", rand=r)
    nan = math.nan
    # lookups on an empty map do not hash (Go returns before hashing): no draw
    assert nan not in m and m.get(nan) is None
    m.delete(nan)
    assert r.n == 1
    m[nan] = 1
    assert r.n == 2, "hashing a NaN key draws once"
    m[nan] = 2
    m[float("nan")] = 3
    assert r.n == 4
    assert len(m) == 3, "every NaN assignment adds an entry"
    m[1.0] = 4
    assert len(m) == 4
    n = r.n
    assert nan not in m
    assert m.get(nan, "d") == "d"
    with pytest.raises(KeyError):
        m[nan]
    assert r.n == n + 3, "each NaN lookup on a non-empty map hashes (draws) once"
    with pytest.raises(KeyError):
        del m[nan]
    m.delete(nan)
    assert m.pop(nan, None) is None
    assert len(m) == 4
    items = list(m.items())
    nans = [v for k, v in items if is_nan(k)]
    assert sorted(nans) == [1, 2, 3]
    assert sum(1 for k in m if is_nan(k)) == 3
    assert sorted(m.values()) == [1, 2, 3, 4]
    live = check_snapshot(m.snapshot())
    assert sum(1 for k, *_ in live if is_nan(k)) == 3
    m.clear()
    assert len(m) == 0 and list(m) == []
    m[nan] = 5
    assert len(m) == 1


@pytest.mark.parametrize("kk", FLOAT_KINDS)
def test_many_nans_grow(kk):
    m = gomap.Map(kk, "int64")
    for i in range(500):
        m[math.nan] = i
        m[float(i)] = i
    assert len(m) == 1000
    assert sum(1 for k in m if is_nan(k)) == 500
    assert sorted(v for k, v in m.items() if is_nan(k)) == list(range(500))
    for i in range(500):
        assert m[float(i)] == i
    live = check_snapshot(m.snapshot())
    assert len(live) == 1000
    m.clear()
    assert len(m) == 0


def test_float_specials():
    m = gomap.Map("float64", "int64")
    specials = [math.inf, -math.inf, 5e-324, -5e-324, 1.7976931348623157e308, 2.0**53, 2.0**53 + 2]
    for i, x in enumerate(specials):
        m[x] = i
    for i, x in enumerate(specials):
        assert m[x] == i
    assert 2.0**53 + 1 in m  # rounds to 2**53


def test_float32_keys():
    m = gomap.Map("float32", "int64")
    xs = [f32(x) for x in (0.1, 1.5, -2.25, 3.4028234663852886e38, 1e-45, math.inf)]
    for i, x in enumerate(xs):
        m[x] = i
    for i, x in enumerate(xs):
        assert m[x] == i
    got = set(m)
    assert got == set(xs), "float32 keys come back as the same float32 values"


# ---------------------------------------------------------------------------
# Typed values
# ---------------------------------------------------------------------------


def test_int64_value_bounds():
    m = gomap.Map("int64", "int64")
    m[1] = 2**63 - 1
    m[2] = -(2**63)
    assert m[1] == 2**63 - 1 and m[2] == -(2**63)
    assert type(m[1]) is int


def test_float64_values():
    m = gomap.Map("string", "float64")
    m["a"] = 1.5
    m["b"] = 3
    assert m["b"] == 3.0 and type(m["b"]) is float, "float64 values accept ints like float()"
    m["c"] = -0.0
    assert is_neg_zero(m["c"])
    m["d"] = math.nan
    assert is_nan(m["d"])
    m["e"] = math.inf
    assert m["e"] == math.inf
    assert type(m["a"]) is float


def test_object_values_identity_and_refcount():
    m = gomap.Map("int64", "object")
    vals = [Token(i) for i in range(200)]
    for i, v in enumerate(vals):
        m[i] = v
    for i, v in enumerate(vals):
        assert m[i] is v
    assert m.get(5) is vals[5]
    before = sys.getrefcount(vals[7])
    for _ in range(100):
        m[7]
        m.get(7)
        7 in m
        list(m.values())
        m.snapshot()
    after = sys.getrefcount(vals[7])  # (not inside assert: pytest's rewriting holds temporaries)
    assert after == before, "reads leak references"


def test_object_key_refcounts():
    key = ("refcount", "key")
    val = Token(1)
    rk, rv = sys.getrefcount(key), sys.getrefcount(val)
    m = gomap.Map()
    for _ in range(50):
        m[key] = val
        m[key]
        m.get(key)
        key in m
        m.setdefault(key, val)
        list(m.items())
        del m[key]
        m[key] = val
        m.pop(key)
        m[key] = val
        m.clear()
    counts = (sys.getrefcount(key), sys.getrefcount(val))
    assert counts == (rk, rv)
    m[key] = val
    del m
    import gc

    gc.collect()
    counts = (sys.getrefcount(key), sys.getrefcount(val))
    assert counts == (rk, rv)


def test_map_keeps_values_alive_and_releases_them():
    import gc
    import weakref

    m = gomap.Map("int64", "object")
    toks = [Token(i) for i in range(300)]
    refs = [weakref.ref(t) for t in toks]
    for i, t in enumerate(toks):
        m[i] = t
    del toks, t
    gc.collect()
    assert all(r() is not None for r in refs), "the map must keep its values alive"
    assert not m.snapshot()["growing"]
    for i in range(0, 300, 2):
        del m[i]
    for i in range(1, 100, 2):
        m[i] = None
    gc.collect()
    for i in range(300):
        alive = refs[i]() is not None
        assert alive == (i % 2 == 1 and i >= 100), f"value {i}: alive={alive}"
    m.clear()
    gc.collect()
    assert all(r() is None for r in refs), "clear() must release every value"


def test_map_dealloc_releases_keys_and_values():
    import gc
    import weakref

    m = gomap.Map("object", "object")
    objs = [Token(i) for i in range(100)]
    refs = [weakref.ref(t) for t in objs]
    for i in range(0, 100, 2):
        m[objs[i]] = objs[i + 1]
    del objs
    del m
    gc.collect()
    assert all(r() is None for r in refs)


# ---------------------------------------------------------------------------
# Object keys: dict equality
# ---------------------------------------------------------------------------


def test_object_keys_dict_equality():
    m = gomap.Map()
    m[1] = "int"
    m[1.0] = "float"
    m[True] = "bool"
    assert len(m) == 1 and m[1] == "bool"
    m[(1, 2)] = "t"
    assert m[(1, 2)] == "t"
    m[frozenset({1})] = "fs"
    assert m[frozenset([1])] == "fs"
    m[-0.0] = "z"
    assert m[0] == "z" and m[0.0] == "z"
    m["1"] = "s"
    m[b"1"] = "b"
    assert len(m) == 6
    assert m["1"] == "s" and m[b"1"] == "b"


def test_object_nan_identity_implies_equality():
    m = gomap.Map()
    nan = float("nan")
    m[nan] = 1
    assert m[nan] == 1 and nan in m, "the same NaN object is found (identity)"
    assert float("nan") not in m
    m[float("nan")] = 2
    assert len(m) == 2
    m[nan] = 3
    assert len(m) == 2 and m[nan] == 3
    del m[nan]
    assert len(m) == 1


def test_object_keys_colliding_hashes():
    m = gomap.Map()
    cs = [Coll(i) for i in range(200)]
    for c in cs:
        m[c] = c.x
    for i in range(200):
        assert m[Coll(i)] == i
    for i in range(0, 200, 3):
        del m[Coll(i)]
    assert len(m) == 200 - len(range(0, 200, 3))
    for i in range(200):
        assert (Coll(i) in m) == (i % 3 != 0)
    check_snapshot(m.snapshot())


def test_object_key_hash_minus_one_and_huge():
    class H:
        def __init__(self, h):
            self.h = h

        def __hash__(self):
            return self.h

        def __eq__(self, o):
            return isinstance(o, H) and o.h == self.h

    m = gomap.Map()
    for h in (-1, -2, 0, 2**61 - 1, -(2**61), 2**100):
        m[H(h)] = h
    for h in (-1, -2, 0, 2**61 - 1, -(2**61), 2**100):
        assert m[H(h)] == h
    assert len(m) == 6


# ---------------------------------------------------------------------------
# Integer and string key ranges
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kk", list(INT_RANGES))
def test_int_kind_extremes(kk):
    lo, hi = INT_RANGES[kk]
    m = gomap.Map(kk, "int64")
    for k in (lo, hi, 0, lo + 1, hi - 1):
        m[k] = 1
    assert set(m) == {lo, hi, 0, lo + 1, hi - 1}
    for k in m:
        assert type(k) is int


def test_string_and_bytes_keys():
    m = gomap.Map("string", "int64")
    ks = ["", "a", "a\x00", "\x00", "ключ", "日本語", "x" * 1000, "\U0001F600"]
    for i, k in enumerate(ks):
        m[k] = i
    assert len(m) == len(ks)
    for i, k in enumerate(ks):
        assert m[k] == i
    assert all(type(k) is str for k in m)
    b = gomap.Map("bytes", "int64")
    bs = [b"", b"\x00", b"\x00\x00", b"\xff", b"a" * 1000, "ключ".encode()]
    for i, k in enumerate(bs):
        b[k] = i
    for i, k in enumerate(bs):
        assert b[k] == i
    assert all(type(k) is bytes for k in b)


# ---------------------------------------------------------------------------
# snapshot / stats / growth / clear
# ---------------------------------------------------------------------------


def test_snapshot_fresh_and_first_insert():
    m = gomap.Map("int64", "int64", rand=[42])
    s = m.snapshot()
    assert s == {
        "count": 0,
        "B": 0,
        "flags": 0,
        "noverflow": 0,
        "hash0": 42,
        "nevacuate": 0,
        "growing": False,
        "go": "1.19",
        "buckets": None,
        "oldbuckets": None,
    }
    m[5] = 6
    s = m.snapshot()
    assert len(s["buckets"]) == 1 and len(s["buckets"][0]) == 1
    b = s["buckets"][0][0]
    assert b["tophash"][0] >= 5 and b["tophash"][1:] == [0] * 7
    assert b["keys"][0] == 5 and b["values"][0] == 6
    assert b["keys"][1:] == [None] * 7 and b["values"][1:] == [None] * 7


def test_fill_one_bucket_in_slot_order():
    m = gomap.Map("int64", "int64", rand=[0])
    for i in range(8):
        m[i] = i
    (chain,) = m.snapshot()["buckets"]
    assert len(chain) == 1
    assert chain[0]["keys"] == list(range(8)), "Go fills slots in order"
    del m[3]
    (chain,) = m.snapshot()["buckets"]
    assert chain[0]["tophash"][3] == 1, "a deleted middle slot is emptyOne"
    del m[7]
    (chain,) = m.snapshot()["buckets"]
    assert chain[0]["tophash"][7] == 0, "a deleted last slot is emptyRest"
    del m[6], m[5], m[4]
    (chain,) = m.snapshot()["buckets"]
    assert chain[0]["tophash"][3:] == [0] * 5, "emptyRest propagates back over emptyOne slots"
    m[100] = 100
    (chain,) = m.snapshot()["buckets"]
    assert chain[0]["keys"][3] == 100, "insert reuses the first empty slot"


def test_growth_and_delete_all():
    for kk in KEY_KINDS:
        r = CountingRand(seed=9)
        m = gomap.Map(kk, "int64", rand=r)
        keys = sample_keys(kk, 2000, seed=11)
        for i, k in enumerate(keys):
            m[k] = i
            if i % 97 == 0:
                check_snapshot(m.snapshot())
        s = m.snapshot()
        check_snapshot(s)
        assert s["B"] >= 8
        assert r.n == 1
        for i, k in enumerate(keys):
            assert m[k] == i
        B = s["B"]
        for k in keys[:-1]:
            del m[k]
        assert r.n == 1
        del m[keys[-1]]
        assert r.n == 2, "the delete that empties the map draws the new hash0"
        s = m.snapshot()
        check_snapshot(s)
        assert s["count"] == 0 and s["B"] >= B, "deletes never shrink the map"


def test_incremental_growth_observable():
    m = gomap.Map("int64", "int64", 14, hashkey=(1, 3, 5, 7), rand=[10])
    assert m.snapshot()["B"] == 2
    i = 0
    while not m.snapshot()["growing"]:
        m[i] = i
        i += 1
        assert i < 100
    s = m.snapshot()
    assert s["B"] == 3 and i == 27, "B=2 grows when the 27th key goes in"
    assert len(s["oldbuckets"]) == 4
    check_snapshot(s)
    assert not s["flags"] & F_SAME_SIZE_GROW
    st_ = m.stats()
    assert st_["growing"] and not st_["same_size_grow"]
    # lookups never move data, even while growing
    for j in range(i):
        assert m[j] == j
    assert snap_eq(m.snapshot(), s)
    # a delete of a missing key still does growWork (as Go's mapdelete does)
    m.delete(-12345)
    s2 = m.snapshot()
    assert s2["count"] == s["count"]
    assert (not s2["growing"]) or s2["nevacuate"] > s["nevacuate"] or not snap_eq(s2["oldbuckets"], s["oldbuckets"])
    while m.snapshot()["growing"]:
        m[i] = i
        i += 1
    check_snapshot(m.snapshot())


def _same_size_grow_map(kk="int64"):
    """Builds a B=2 map caught in the middle of a same-size grow (too many overflow
    buckets while not over the load factor)."""
    hk, h0 = (0x9E3779B97F4A7C15, 3, 5, 7), 77
    oracle = HashOracle(kk, hk)
    cand = sample_keys(kk, 4000, seed=21)
    oracle.prime(h0, 2, cand)
    by_bucket = {0: [], 1: [], 2: [], 3: []}
    for k in cand:
        by_bucket[oracle.locate(h0, 2, k)[0]].append(k)
    m = gomap.Map(kk, "int64", hint_for_b(2), hashkey=hk, rand=[h0])
    extra = []
    for bucket in range(4):
        ks = by_bucket[bucket][:9]
        assert len(ks) == 9
        for k in ks:
            m[k] = 1
        if bucket < 2:
            for k in ks[:7]:
                del m[k]
        extra.append(by_bucket[bucket][9:])
    s = m.snapshot()
    assert s["count"] == 22 and s["noverflow"] == 4 and not s["growing"], (s["count"], s["noverflow"])
    m[extra[0][0]] = 2  # tooManyOverflowBuckets(4, 2): same-size grow
    return m, oracle, extra


def test_same_size_grow():
    m, oracle, extra = _same_size_grow_map()
    s = m.snapshot()
    check_snapshot(s)
    assert s["growing"], "too many overflow buckets must start a same-size grow"
    assert s["flags"] & F_SAME_SIZE_GROW and s["B"] == 2
    assert len(s["oldbuckets"]) == 4
    assert m.stats()["same_size_grow"] is True
    check_layout(s, oracle, "int64")
    n = 0
    while m.snapshot()["growing"]:
        m[extra[1][n]] = 3
        n += 1
    s = m.snapshot()
    check_snapshot(s)
    assert s["B"] == 2 and not s["flags"] & F_SAME_SIZE_GROW
    assert s["noverflow"] <= 4


def test_clear_keeps_B_and_bucket_array():
    r = CountingRand(seed=4)
    m = gomap.Map("string", "object", rand=r)
    for i in range(500):
        m[str(i)] = i
    s = m.snapshot()
    B = s["B"]
    r.push(31337)
    m.clear()
    s = m.snapshot()
    check_snapshot(s)
    assert s["B"] == B and len(s["buckets"]) == 1 << B
    assert s["hash0"] == 31337 and s["count"] == 0 and s["noverflow"] == 0
    assert s["oldbuckets"] is None and not s["growing"] and s["nevacuate"] == 0
    assert all(len(c) == 1 and c[0]["tophash"] == [0] * 8 for c in s["buckets"])
    n = r.n
    m.clear()
    assert r.n == n, "clear() of an empty map does not draw"
    m["a"] = 1
    assert dict(m.items()) == {"a": 1}


def test_clear_while_growing():
    m = gomap.Map("int64", "int64", 14)
    i = 0
    while not m.snapshot()["growing"]:
        m[i] = i
        i += 1
    m.clear()
    s = m.snapshot()
    check_snapshot(s)
    assert not s["growing"] and s["B"] == 3 and not s["flags"] & F_SAME_SIZE_GROW


def test_stats():
    m = gomap.Map("int64", "int64")
    st_ = m.stats()
    check_stats(st_, m.snapshot())
    assert st_["count"] == 0
    for i in range(1000):
        m[i] = i
        if i % 50 == 0:
            check_stats(m.stats(), m.snapshot())
    st_ = m.stats()
    assert st_["count"] == 1000
    assert 0.0 < st_["load_factor"]
    b1 = st_["bytes"]
    for i in range(1000, 5000):
        m[i] = i
    assert m.stats()["bytes"] > b1


def test_snapshot_returns_fresh_data():
    m = gomap.Map("int64", "object")
    m[1] = [1]
    s = m.snapshot()
    s["buckets"][0][0]["tophash"][0] = 0
    s["count"] = 99
    s2 = m.snapshot()
    assert s2["count"] == 1 and s2["buckets"][0][0]["tophash"][0] >= 5
    assert len(m) == 1 and m[1] == [1]


def test_isinstance_mutable_mapping_mixins_work():
    m = gomap.Map("int64", "int64")
    m.update({1: 2})
    assert collections.abc.MutableMapping.get(m, 1) == 2
    assert dict(m) == {1: 2}
    assert list(reversed(sorted(m))) == [1]


@pytest.mark.parametrize("kk", KEY_KINDS)
def test_keyerror_carries_the_key(kk):
    """Like dict: KeyError(key), with the key as the single argument."""
    m = gomap.Map(kk, "int64")
    present, missing = sample_keys(kk, 2, seed=8)
    m[present] = 1
    for op in (lambda: m[missing], lambda: m.__delitem__(missing), lambda: m.pop(missing)):
        with pytest.raises(KeyError) as ei:
            op()
        assert ei.value.args == (missing,)
    m.clear()
    with pytest.raises(KeyError):
        m.popitem()
