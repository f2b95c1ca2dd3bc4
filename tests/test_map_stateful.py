"""Stateful (model-based) tests: ``gomap.Map`` against a ``dict`` model.

One state machine per key kind x value kind combination that matters: every key kind
with int64 values, plus object / float64 values with a few key kinds.  Besides the
MutableMapping results, every step checks:

* the snapshot's structural invariants (2**B chains, occupied slots == count, emptyRest
  tails, growth bookkeeping) and that its entries are exactly the model's;
* exactly where ``rand`` is drawn from (creation, delete-to-empty, clear of a non-empty
  map, iterator creation on a non-empty map, NaN hashing) and that conveniences never
  draw;
* open iterators interleaved with writes: every produced entry is present with its
  current value, keys present throughout are produced exactly once, keys deleted
  before being reached are not produced, clear() ends the iteration;
* full iterations in Go's exact order (predicted from the snapshot and the draw);
* every key sits where its hash says (checked with a hash oracle).
"""

from __future__ import annotations

import math
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import gomap
from conftest import (
    F_ITERATOR,
    F_OLD_ITERATOR,
    FLOAT_KINDS,
    CountingRand,
    HashOracle,
    assert_seq_equal,
    check_layout,
    check_snapshot,
    check_stats,
    go_iter_order,
    is_nan,
    key_strategy,
    snap_eq,
    value_eq,
    value_strategy,
)


class _OpenIter:
    def __init__(self, it, view, model_keys):
        self.it = it
        self.view = view
        self.guaranteed = dict.fromkeys(model_keys)  # present at start, never deleted since
        self.produced = {}  # key -> times
        self.tainted = {}  # keys deleted at some point since the start
        self.dead = False  # a clear() happened, or the map was empty at creation
        self.nan_produced = 0


def make_machine(kk: str, vk: str):
    keys = key_strategy(kk)
    vals = value_strategy(vk)
    is_float = kk in FLOAT_KINDS
    kwargs_ok = kk in ("string", "object")

    class MapMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.model = {}
            self.nan_count = 0
            self.zero_sign = None  # sign of the stored float zero key, None if unknown
            self.iters: list[_OpenIter] = []
            self.m = None

        # -- setup -----------------------------------------------------------

        @initialize(
            seed=st.integers(0, 2**32 - 1),
            # always explicit: a random hashkey would make popitem's choice (and so
            # the rest of the run) differ between replays of the same example
            hashkey=st.one_of(
                st.tuples(*[st.integers(0, 2**64 - 1)] * 4),
                st.just((1, 1, 1, 1)),
            ),
            hint=st.one_of(st.just(0), st.integers(0, 120)),
        )
        def setup(self, seed, hashkey, hint):
            self.rand = CountingRand(seed)
            self.m = gomap.Map(kk, vk, hint, hashkey=hashkey, rand=self.rand)
            assert self.rand.n == 1, "creation must draw hash0 exactly once"
            s = self.m.snapshot()
            assert s["hash0"] == self.rand.last & 0xFFFFFFFF
            assert self.m.hashkey == tuple(hashkey)
            assert self.m.key_kind == kk and self.m.value_kind == vk
            self.oracle = HashOracle(kk, self.m.hashkey)
            self.draws = self.rand.n

        # -- helpers -----------------------------------------------------------

        def expect_draws(self, n, exact=True):
            got = self.rand.n - self.draws
            if exact:
                assert got == n, f"expected {n} rand draws, got {got}"
            else:
                assert got >= n, f"expected at least {n} rand draws, got {got}"
            self.draws = self.rand.n

        @property
        def exact(self):
            # NaN keys are re-hashed (and so draw) when buckets are evacuated
            return self.nan_count == 0

        def total(self):
            return len(self.model) + self.nan_count

        def _taint(self, k):
            for oi in self.iters:
                oi.guaranteed.pop(k, None)
                oi.tainted[k] = None

        def _model_set(self, k, v):
            self.model[k] = v
            if is_float and k == 0:
                self.zero_sign = math.copysign(1.0, k)

        def _model_del(self, k):
            del self.model[k]
            self._taint(k)

        def _after_delete_existing(self):
            if self.total() == 0:
                self.expect_draws(1, self.exact)
                assert self.m.snapshot()["hash0"] == self.rand.last & 0xFFFFFFFF
            else:
                self.expect_draws(0, self.exact)

        # -- writes ----------------------------------------------------------

        @rule(k=keys, v=vals)
        def set(self, k, v):
            self.m[k] = v
            self._model_set(k, v)
            self.expect_draws(0, self.exact)

        if is_float:

            @rule(v=vals, n=st.integers(1, 3))
            def set_nan(self, v, n):
                for _ in range(n):
                    self.m[math.nan] = v
                    self.nan_count += 1
                self.expect_draws(n, exact=False)

        @rule(ks=st.lists(keys, min_size=1, max_size=80), v=vals)
        def bulk_insert(self, ks, v):
            for k in ks:
                self.m[k] = v
                self._model_set(k, v)
            self.expect_draws(0, self.exact)

        @precondition(lambda self: len(self.model) > 0)
        @rule(data=st.data())
        def bulk_delete(self, data):
            victims = data.draw(st.lists(st.sampled_from(list(self.model)), max_size=60))
            victims = list(dict.fromkeys(victims))
            for k in victims:
                del self.m[k]
                self._model_del(k)
            if victims:
                if self.total() == 0:
                    self.expect_draws(1, self.exact)
                else:
                    self.expect_draws(0, self.exact)

        @rule(k=keys)
        def delitem(self, k):
            if k in self.model:
                del self.m[k]
                self._model_del(k)
                self._after_delete_existing()
            else:
                with pytest.raises(KeyError):
                    del self.m[k]
                self.expect_draws(0, self.exact)

        @precondition(lambda self: len(self.model) > 0)
        @rule(data=st.data())
        def delitem_existing(self, data):
            k = data.draw(st.sampled_from(list(self.model)))
            del self.m[k]
            self._model_del(k)
            self._after_delete_existing()

        @rule(k=keys)
        def go_delete(self, k):
            assert self.m.delete(k) is None
            if k in self.model:
                self._model_del(k)
                self._after_delete_existing()
            else:
                self.expect_draws(0, self.exact)

        @rule(k=keys, d=vals, with_default=st.booleans())
        def pop(self, k, d, with_default):
            if k in self.model:
                expected = self.model[k]
                got = self.m.pop(k, d) if with_default else self.m.pop(k)
                assert value_eq(vk, got, expected), (got, expected)
                self._model_del(k)
                self._after_delete_existing()
            elif with_default:
                assert self.m.pop(k, d) is d
                self.expect_draws(0, self.exact)
            else:
                with pytest.raises(KeyError):
                    self.m.pop(k)
                self.expect_draws(0, self.exact)

        @precondition(lambda self: self.nan_count == 0)
        @rule()
        def popitem(self):
            if not self.model:
                with pytest.raises(KeyError):
                    self.m.popitem()
            else:
                k, v = self.m.popitem()
                assert k in self.model, k
                assert value_eq(vk, v, self.model[k]), (k, v, self.model[k])
                self._model_del(k)
            self.draws = self.rand.n  # unspecified whether popitem iterates

        @rule(k=keys, d=vals)
        def setdefault(self, k, d):
            if k in self.model:
                got = self.m.setdefault(k, d)
                assert value_eq(vk, got, self.model[k]), (got, self.model[k])
                if is_float and k == 0:
                    self.zero_sign = None  # lookup or assign: not pinned down
            else:
                got = self.m.setdefault(k, d)
                self._model_set(k, d)
                if vk == "object":
                    assert got is d
                else:
                    assert got == d
            self.expect_draws(0, self.exact)

        @rule(
            items=st.lists(st.tuples(keys, vals), max_size=20),
            source=st.sampled_from(["dict", "pairs", "map", "generator", "kwargs"]),
        )
        def update(self, items, source):
            if source == "kwargs" and not kwargs_ok:
                source = "pairs"
            if source == "dict":
                arg = dict(items)
                self.m.update(arg)
                applied = list(arg.items())
            elif source == "pairs":
                self.m.update(items)
                applied = items
            elif source == "generator":
                self.m.update(x for x in items)
                applied = items
            elif source == "map":
                # a seeded source: the order update() walks it in must replay exactly
                src = gomap.Map(kk, vk, hashkey=self.m.hashkey, rand=CountingRand(len(items)))
                for k, v in items:
                    src[k] = v
                self.m.update(src)
                applied = list(dict(items).items())
                if is_float:
                    # the source's own zero key sign is the last assigned one
                    zs = [k for k, _ in items if k == 0]
                    if zs:
                        applied = [(k, v) for k, v in applied if k != 0] + [
                            (zs[-1], dict(items)[zs[-1]])
                        ]
            else:
                kw = {str(k): v for k, v in items}
                self.m.update(**kw)
                applied = list(kw.items())
            for k, v in applied:
                self._model_set(k, v)
            self.expect_draws(0, self.exact)

        @rule()
        def clear(self):
            n = self.total()
            old_b = self.m.snapshot()["B"]
            self.m.clear()
            self.model.clear()
            self.nan_count = 0
            self.zero_sign = None
            if n:
                # Go's mapclear returns at once on an empty map: only a real clear
                # ends open iterators
                for oi in self.iters:
                    oi.dead = True
                    oi.guaranteed.clear()
            self.expect_draws(1 if n else 0)
            s = self.m.snapshot()
            assert s["count"] == 0 and len(self.m) == 0
            assert s["B"] == old_b, "clear() must keep B"
            if n:
                assert s["hash0"] == self.rand.last & 0xFFFFFFFF
                assert s["oldbuckets"] is None and s["noverflow"] == 0 and s["nevacuate"] == 0
                assert all(len(c) == 1 and c[0]["tophash"] == [0] * 8 for c in s["buckets"])

        # -- reads -------------------------------------------------------------

        @rule(k=keys, d=vals)
        def lookups(self, k, d):
            before = self.m.snapshot()
            if k in self.model:
                assert value_eq(vk, self.m[k], self.model[k])
                assert value_eq(vk, self.m.get(k), self.model[k])
                assert value_eq(vk, self.m.get(k, d), self.model[k])
                assert k in self.m
                assert k in self.m.keys()
                assert (k, self.model[k]) in self.m.items()
            else:
                with pytest.raises(KeyError):
                    self.m[k]
                assert self.m.get(k) is None
                assert self.m.get(k, d) is d
                assert k not in self.m
                assert k not in self.m.keys()
            self.expect_draws(0)
            assert snap_eq(self.m.snapshot(), before), "lookups must never move data"

        if is_float:

            @rule()
            def lookup_nan(self):
                n = self.total()
                assert math.nan not in self.m
                assert self.m.get(math.nan, 7) == 7
                self.expect_draws(2 if n else 0)
                with pytest.raises(KeyError):
                    del self.m[math.nan]
                self.m.delete(math.nan)
                self.expect_draws(2 if n else 0, self.exact)
                assert len(self.m) == n

        # -- iteration ---------------------------------------------------------

        @precondition(lambda self: len(self.iters) < 3)
        @rule(view=st.sampled_from(["items", "keys", "iter"]))
        def open_iter(self, view):
            n = self.total()
            flags0 = self.m.snapshot()["flags"]
            if view == "items":
                it = iter(self.m.items())
            elif view == "keys":
                it = iter(self.m.keys())
            else:
                it = iter(self.m)
            self.expect_draws(1 if n else 0)
            oi = _OpenIter(it, view, self.model)
            if n == 0:
                oi.dead = True
                assert self.m.snapshot()["flags"] == flags0
            else:
                assert self.m.snapshot()["flags"] & (F_ITERATOR | F_OLD_ITERATOR) == 3
            self.iters.append(oi)

        @precondition(lambda self: len(self.iters) > 0)
        @rule(data=st.data(), steps=st.integers(1, 12))
        def advance_iter(self, data, steps):
            idx = data.draw(st.integers(0, len(self.iters) - 1))
            oi = self.iters[idx]
            before = self.m.snapshot()
            for _ in range(steps):
                if not self._step(oi):
                    self.iters.remove(oi)
                    break
            self.expect_draws(0)
            assert snap_eq(self.m.snapshot(), before), "iterating must not change the map"

        def _step(self, oi):
            """Advances ``oi`` once and checks the entry; False when it is exhausted."""
            try:
                item = next(oi.it)
            except StopIteration:
                missing = list(oi.guaranteed)
                assert not missing, f"iteration ended without producing {missing!r}"
                with pytest.raises(StopIteration):
                    next(oi.it)
                return False
            assert not oi.dead, f"iterator produced {item!r} after clear() / on an empty map"
            if oi.view == "items":
                k, v = item
            else:
                k, v = item, None
            if is_float and is_nan(k):
                oi.nan_produced += 1
                assert oi.nan_produced <= self.nan_count
                return True
            assert k in self.model, f"produced {k!r}, which is not in the map"
            if oi.view == "items":
                assert value_eq(vk, v, self.model[k]), f"{k!r}: produced {v!r}, current {self.model[k]!r}"
            if is_float and k == 0 and self.zero_sign is not None:
                assert math.copysign(1.0, k) == self.zero_sign
            if k not in oi.tainted:
                assert k not in oi.produced, f"{k!r} produced twice"
            oi.produced[k] = oi.produced.get(k, 0) + 1
            oi.guaranteed.pop(k, None)
            return True

        @rule(view=st.sampled_from(["items", "keys", "values", "iter"]))
        def full_iteration(self, view):
            s = self.m.snapshot()
            it = {
                "items": lambda: iter(self.m.items()),
                "keys": lambda: iter(self.m.keys()),
                "values": lambda: iter(self.m.values()),
                "iter": lambda: iter(self.m),
            }[view]()
            if s["count"] == 0:
                self.expect_draws(0)
                assert list(it) == []
                return
            self.expect_draws(1)
            r = self.rand.last
            got = list(it)
            expected = go_iter_order(s, r, self.oracle)
            if view == "items":
                assert_seq_equal(kk, vk, got, expected)
            elif view == "values":
                assert len(got) == len(expected)
                for g, (_, e) in zip(got, expected):
                    assert value_eq(vk, g, e), (g, e, got, expected)
            else:
                assert_seq_equal(kk, "int64", [(k, 0) for k in got], [(k, 0) for k, _ in expected])
            self.expect_draws(0)

        # -- conveniences ------------------------------------------------------

        @rule()
        def conveniences_do_not_draw(self):
            s = self.m.snapshot()
            repr(self.m)
            len(self.m)
            self.m.stats()
            c = self.m.copy()
            if self.nan_count == 0:
                assert self.m == self.model
                assert self.m == c and not (self.m != c)
                assert c == self.model
            pickle.dumps(self.m)
            self.m.keys(), self.m.values(), self.m.items()
            len(self.m.keys()), len(self.m.values()), len(self.m.items())
            self.expect_draws(0)
            assert snap_eq(self.m.snapshot(), s), "conveniences must not change the map"

        @rule(k=keys, v=vals)
        def copy_is_independent(self, k, v):
            c = self.m.copy()
            assert c.key_kind == kk and c.value_kind == vk
            assert len(c) == self.total()
            check_snapshot(c.snapshot())
            s = self.m.snapshot()
            c[k] = v
            self.draws = self.rand.n  # the copy's own draws are not this map's business
            assert snap_eq(self.m.snapshot(), s), "writing to a copy changed the original"
            if k in self.model:
                assert value_eq(vk, self.m[k], self.model[k])
            else:
                assert k not in self.m

        @precondition(lambda self: len(self.model) > 0)
        @rule(data=st.data())
        def not_equal_when_different(self, data):
            if self.nan_count:
                return
            k = data.draw(st.sampled_from(list(self.model)))
            other = dict(self.model)
            cur = other[k]
            if vk == "object":
                other[k] = object()
            elif vk == "int64":
                other[k] = cur + 1 if cur < 2**63 - 1 else cur - 1
            else:
                other[k] = 1.5 if cur != 1.5 else 2.5
            assert self.m != other and not (self.m == other)
            del other[k]
            assert self.m != other
            self.expect_draws(0)

        @rule(proto=st.integers(0, pickle.HIGHEST_PROTOCOL))
        def pickle_round_trip(self, proto):
            p = pickle.loads(pickle.dumps(self.m, proto))
            self.expect_draws(0)
            assert p.key_kind == kk and p.value_kind == vk
            assert p.hashkey == self.m.hashkey
            assert len(p) == self.total()
            check_snapshot(p.snapshot())
            for k, v in self.model.items():
                got = p[k]
                if vk == "object":
                    assert got == v or (got is not None and type(got) is type(v))
                else:
                    assert value_eq(vk, got, v), (k, got, v)

        @rule()
        def stats_agree_with_snapshot(self):
            s = self.m.snapshot()
            check_stats(self.m.stats(), s)
            self.expect_draws(0)

        @rule()
        def layout(self):
            s = self.m.snapshot()
            if s["buckets"] is None or s["B"] > 8:
                return
            check_layout(s, self.oracle, kk)

        # -- invariants --------------------------------------------------------

        @invariant()
        def agrees_with_model(self):
            if self.m is None:
                return
            assert len(self.m) == self.total()
            s = self.m.snapshot()
            live = check_snapshot(s)
            assert s["count"] == self.total()
            nan_seen = 0
            seen = {}
            for k, v, t, where in live:
                if is_float and is_nan(k):
                    nan_seen += 1
                    continue
                assert k in self.model, f"snapshot holds {k!r} ({where}), the model does not"
                assert k not in seen, f"{k!r} stored twice"
                seen[k] = None
                assert value_eq(vk, v, self.model[k]), f"{k!r}: stored {v!r}, expected {self.model[k]!r}"
                if is_float and k == 0 and self.zero_sign is not None:
                    assert math.copysign(1.0, k) == self.zero_sign, "stored zero key has the wrong sign"
            assert nan_seen == self.nan_count
            assert len(seen) == len(self.model)
            self.expect_draws(0)

        def teardown(self):
            if self.m is not None:
                self.iters.clear()

    MapMachine.__name__ = f"MapMachine_{kk}_{vk}"
    return MapMachine


COMBOS = [(k, "int64") for k in (
    "int64", "int32", "uint64", "uint32", "float64", "float32", "string", "bytes", "object"
)] + [
    ("object", "object"),
    ("string", "object"),
    ("int64", "object"),
    ("float64", "float64"),
    ("uint32", "float64"),
    ("object", "float64"),
]

for _kk, _vk in COMBOS:
    _M = make_machine(_kk, _vk)
    _tc = _M.TestCase
    _tc.__name__ = f"TestStateful_{_kk}_{_vk}"
    globals()[_tc.__name__] = _tc
del _M, _tc, _kk, _vk
