"""Adversarial odds and ends (issue 9, beyond the numbered classes): re-entrant
`__eq__`/`__hash__`, raising hashes, iterators outliving their maps, malformed
pickles and `_rebuild` arguments, odd buffers, threads hammering one map. The
map must answer with a clear exception or the right result, stay consistent
(checked against a dict model), and never crash.
"""

from __future__ import annotations

import array
import pickle
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gomap as _gomap_mod


def consistent(m, model):
    assert len(m) == len(model)
    assert dict(m.items()) == model
    for k, v in model.items():
        assert m[k] == v


class Reentrant:
    """An object key whose __eq__ or __hash__ touches the map it is in."""

    def __init__(self, m, v, action):
        self.m, self.v, self.action = m, v, action

    def __hash__(self):
        if self.action == "hash-write":
            self.m["from-hash"] = 1  # before the claim: allowed
        return self.v % 4

    def __eq__(self, other):
        if self.action == "eq-write":
            self.m["from-eq"] = 1  # under the claim: refused
        elif self.action == "eq-read":
            _ = len(self.m), "x" in self.m  # a read under a read claim is fine
        return isinstance(other, Reentrant) and other.v == self.v


@pytest.mark.parametrize("action", ["hash-write", "eq-write", "eq-read"])
def test_reentrant_eq_and_hash(gomap, action):
    # __hash__ runs before the claim: its write lands. __eq__ runs during the
    # probe, under the claim: a write from it is refused, and so is a read from it
    # during a write; the operation then fails and changes nothing.
    m = gomap.Map("object", "int64")
    keys = [Reentrant(m, i, action) for i in range(40)]
    present = {}  # id -> key, so the model never calls __eq__
    for k in keys:
        try:
            m[k] = k.v
            present[id(k)] = k
        except gomap.ConcurrentMapError:
            assert action in ("eq-write", "eq-read")
    extra = {"from-hash": 1} if action == "hash-write" else {}

    def check():
        assert len(m) == len(present) + len(extra)
        assert {id(k) for k in m if isinstance(k, Reentrant)} == set(present)
        for k in present.values():
            assert m[k] == k.v

    check()
    for k in keys[::3]:
        try:
            del m[k]
            del present[id(k)]
        except KeyError:
            assert id(k) not in present
        except gomap.ConcurrentMapError:
            assert action in ("eq-write", "eq-read")
    check()


def test_raising_hash_changes_nothing(gomap):
    class H:
        def __hash__(self):
            raise RuntimeError("nope")

    m = gomap.Map()
    m[1] = 1
    before = m.snapshot()
    for op in (lambda: m.__setitem__(H(), 1), lambda: m.get(H()), lambda: H() in m, lambda: m.pop(H(), 0),
               lambda: m.set_many([2, H()], [1, 1]), lambda: m.update({H(): 1})):
        with pytest.raises((RuntimeError, TypeError)):
            op()
    assert m.snapshot() == before
    with pytest.raises(TypeError):
        m[[1]] = 1  # unhashable, as dict


def test_iterators_outlive_their_maps(gomap):
    its = []
    for mode in ("keys", "values", "items"):
        m = gomap.Map("int64", "object")
        for i in range(100):
            m[i] = str(i)
        its.append(iter(getattr(m, mode)()))
        next(its[-1])
        del m
    import gc

    gc.collect()
    assert [len(list(it)) for it in its] == [99, 99, 99]


def test_iterator_survives_clear_shrink_and_growth_underneath(gomap):
    m = gomap.Map("string", "object")
    for i in range(50):
        m[str(i)] = i
    it = iter(m.items())
    seen = [next(it)]
    for i in range(50, 500):
        m[str(i)] = i
    for i in range(0, 400):
        m.delete(str(i))
    m.shrink()
    seen += list(it)  # ended by the shrink: nothing more
    assert all(isinstance(k, str) for k, _ in seen)
    it2 = iter(m)
    m.clear()
    assert list(it2) == []


@pytest.mark.parametrize(
    "args",
    [
        ("int64", "int64", (1, 2, 3), 0, 0),  # 3 hashkey words
        ("int64", "int64", (1, 2, 3, 4, 5), 0, 0),
        ("int64", "int64", "abcd", 0, 0),
        ("int64", "int64", (1, 2, 3, -4), 0, 0),
        ("int64", "int64", (1, 2, 3, 2**64), 0, 0),
        ("int64", "int64", (1, 2, 3, 4), -1, 0),
        ("int64", "int64", (1, 2, 3, 4), 2**32, 0),
        ("int64", "int64", (1, 2, 3, 4), 0, -5),
        ("int64", "int64", (1, 2, 3, 4), 0, 2**70),
        ("nope", "int64", (1, 2, 3, 4), 0, 0),
        ("int64", "string", (1, 2, 3, 4), 0, 0),
        (None, None, None, None, None),
    ],
)
def test_malformed_rebuild_args_are_clear_errors(args):
    with pytest.raises((TypeError, ValueError, OverflowError)):
        _gomap_mod._core._rebuild(*args)


def test_malformed_pickles(gomap):
    m = gomap.Map("int64", "int64")
    m.update({1: 2, 3: 4})
    fn, args, state, _, items = m.__reduce__()
    for bad_items in ([(1, "x")], [("k", 1)], [(1,)], [1], [(2**70, 1)]):

        class P:
            def __reduce__(self, bad_items=bad_items):
                return (fn, args, state, None, iter(bad_items))

        with pytest.raises((TypeError, ValueError, OverflowError)):
            pickle.loads(pickle.dumps(P()))
    assert pickle.loads(pickle.dumps(m)) == m


np = pytest.importorskip("numpy")


@pytest.mark.parametrize(
    "buf",
    [
        np.arange(6, dtype=">i8"),
        np.arange(6, dtype=np.int32),
        np.arange(6, dtype=np.float64),
        np.arange(12, dtype=np.int64)[::2],
        np.arange(6, dtype=np.int64).reshape(2, 3),
        array.array("b", [1, 2]),
        memoryview(b"abcdefgh"),
        np.array(["a", "b"]),
        np.zeros(3, dtype=[("a", "i8")]),
    ],
    ids=["big-endian", "int32", "float", "strided", "2d", "array-b", "bytes-view", "unicode", "struct"],
)
def test_odd_buffers_are_refused_cleanly(gomap, buf):
    m = gomap.Map("int64", "int64")
    m[0] = 0
    before = m.snapshot()
    with pytest.raises((TypeError, ValueError)):
        m.set_many(buf, np.zeros(len(buf), dtype=np.int64))
    assert m.snapshot() == before


def test_threads_hammering_one_map_raise_or_succeed(gomap):
    m = gomap.Map("int64", "object")
    errors, other = [], []
    stop = threading.Event()

    def writer(base):
        i = 0
        while not stop.is_set() and i < 3000:
            try:
                m[base + i % 200] = i
                if i % 7 == 0:
                    m.delete(base + (i * 3) % 200)
                if i % 500 == 0:
                    m.shrink()
            except gomap.ConcurrentMapError:
                errors.append(1)
            except Exception as e:  # pragma: no cover - a failure
                other.append(e)
            i += 1

    def reader():
        while not stop.is_set():
            try:
                for _ in m.items():
                    pass
                m.get(5)
                m.snapshot()
            except gomap.ConcurrentMapError:
                errors.append(1)
            except Exception as e:  # pragma: no cover
                other.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ts = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(3)]
        ts += [threading.Thread(target=reader) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts[:3]:
            t.join()
        stop.set()
        for t in ts:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert other == []
    # Whatever happened, the map is consistent afterwards.
    items = dict(m.items())
    assert len(items) == len(m)
    assert all(m[k] == v for k, v in items.items())


keys = st.one_of(st.integers(-3, 3), st.text(max_size=2), st.floats(allow_nan=True), st.binary(max_size=2))
ops = st.lists(
    st.tuples(st.sampled_from(["set", "del", "pop", "clear", "shrink", "copy", "iter", "pickle"]), keys, st.integers()),
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_object_map_matches_dict_under_any_sequence(ops):
    m = _gomap_mod.Map("object", "object")
    d = {}
    its = []
    for op, k, v in ops:
        if op == "set":
            m[k] = v
            d[k] = v
        elif op == "del":
            assert (k in m) == (k in d)
            if k in d:
                del m[k]
                del d[k]
        elif op == "pop":
            assert m.pop(k, None) == d.pop(k, None)
        elif op == "clear":
            m.clear()
            d.clear()
        elif op == "shrink":
            m.shrink()
        elif op == "copy":
            m = m.copy()
        elif op == "iter":
            its.append(iter(m.items()))
            for it in its[:-1]:
                next(it, None)
        else:
            m = pickle.loads(pickle.dumps(m))
        assert len(m) == len(d)
    assert sorted(map(repr, m.items())) == sorted(map(repr, d.items()))
