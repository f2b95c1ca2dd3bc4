"""Semantics of gomap.SyncMap (Go's sync.Map): the Go 1.19 methods, Go 1.20's
Swap / CompareAndSwap / CompareAndDelete and Go 1.23's Clear as Go documents
and implements them, the Python mapping dunders, and a hypothesis state
machine against a dict model that also checks the internal invariants of Go's
algorithm.  (tests/test_syncmap_go.py compares against Go itself.)"""

from __future__ import annotations

import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gomap import syncmap as _syncmap
from gomap import SyncMap


def check_invariants(m) -> dict:
    """The invariants Go's map.go states for read / dirty / entry.p."""
    s = m._debug_state()
    read, dirty, exp = s["read"], s["dirty"], s["expunged"]
    if s["amended"]:
        assert dirty is not None, s
    else:
        assert not dirty, s  # nil, or emptied by Clear
    if dirty is None:
        assert not exp and not s["shared"] and s["misses"] == 0, s
    else:
        # expunged entries are in read.m only; every other read entry is
        # also in dirty, as the same entry object
        assert exp <= read and not (exp & dirty), s
        assert read - exp <= dirty, s
        assert s["shared"] == read - exp, s
        assert s["misses"] == 0 or s["misses"] < len(dirty), s
    assert s["deleted"] <= read | (dirty or frozenset()), s
    return s


def promoted(m) -> None:
    """Promote the dirty map (a full Range does)."""
    m.range(lambda k, v: True)
    assert not m._debug_state()["amended"]


def state_with_dirty_only_key():
    """A map where key 1 is in read (promoted) and key 2 only in dirty."""
    m = SyncMap()
    m.store(1, "one")
    promoted(m)
    m.store(2, "two")
    s = m._debug_state()
    assert s["read"] == {1} and s["dirty"] == {1, 2} and s["amended"]
    return m


# -- Go 1.19 API --------------------------------------------------------------------


def test_load_store_basics():
    m = SyncMap()
    assert m.load("missing") == (None, False)
    m.store("a", 1)
    assert m.load("a") == (1, True)
    m.store("a", 2)
    assert m.load("a") == (2, True)
    m.store("n", None)  # None is a value, like Go's nil interface
    assert m.load("n") == (None, True)
    assert len(m) == 2
    check_invariants(m)


def test_load_or_store():
    m = SyncMap()
    assert m.load_or_store("k", 1) == (1, False)
    assert m.load_or_store("k", 2) == (1, True)
    assert m.load("k") == (1, True)
    assert m.load_or_store("n", None) == (None, False)
    assert m.load_or_store("n", 5) == (None, True)
    promoted(m)
    m.delete("k")
    assert m.load_or_store("k", 3) == (3, False)  # deleted (nil) read entry
    check_invariants(m)


def test_load_and_delete_and_delete():
    m = SyncMap()
    assert m.load_and_delete("x") == (None, False)
    m.store("x", 1)
    assert m.load_and_delete("x") == (1, True)
    assert m.load_and_delete("x") == (None, False)
    m.store("y", 2)
    promoted(m)
    m.delete("y")
    m.delete("y")
    m.delete("never")
    assert m.load("y") == (None, False)
    assert len(m) == 0
    check_invariants(m)


def test_miss_promotion_and_expunge():
    m = SyncMap()
    for k in range(3):
        m.store(k, k)
    s = m._debug_state()
    assert s["read"] == set() and s["dirty"] == {0, 1, 2} and s["amended"]
    m.load(9)
    m.load(8)
    assert m._debug_state()["misses"] == 2
    m.load(7)  # misses == len(dirty): promote
    s = m._debug_state()
    assert s["read"] == {0, 1, 2} and s["dirty"] is None and s["misses"] == 0
    m.delete(0)
    m.store(3, 3)  # new key: dirty is rebuilt, the nil entry 0 expunged
    s = check_invariants(m)
    assert s["expunged"] == {0} and s["dirty"] == {1, 2, 3}
    m.store(0, "back")  # unexpunged and re-added to dirty
    s = check_invariants(m)
    assert s["expunged"] == set() and s["dirty"] == {0, 1, 2, 3}
    assert m.load(0) == ("back", True)


# -- range ---------------------------------------------------------------------------


def test_range_visits_everything_and_promotes():
    m = SyncMap()
    for k in range(10):
        m.store(k, k * k)
    m.delete(3)
    seen = {}
    m.range(lambda k, v: seen.__setitem__(k, v))  # returns None: continues
    assert seen == {k: k * k for k in range(10) if k != 3}
    assert not m._debug_state()["amended"]


@pytest.mark.parametrize("ret", [None, 0, "", [], True, 1, "no"])
def test_range_continues_unless_exactly_false(ret):
    m = SyncMap()
    for k in range(5):
        m.store(k, k)
    calls = []
    m.range(lambda k, v: calls.append(k) or ret)
    assert sorted(calls) == list(range(5))


def test_range_stops_on_false():
    m = SyncMap()
    for k in range(5):
        m.store(k, k)
    calls = []

    def f(k, v):
        calls.append(k)
        return len(calls) < 2  # True, then False

    m.range(f)
    assert len(calls) == 2


def test_range_callback_may_mutate_the_map():
    m = SyncMap()
    for k in range(20):
        m.store(k, k)
    seen = []

    def f(k, v):
        seen.append(k)
        m.delete(k + 1)
        m.store(100 + k, k)  # new keys go to dirty, not the map being ranged
        m.load_or_store(k, -1)
        return True

    m.range(f)
    assert len(seen) == len(set(seen))
    assert set(seen) <= set(range(20))
    check_invariants(m)


# -- Go 1.20: Swap, CompareAndSwap, CompareAndDelete ------------------------------


def test_swap():
    m = SyncMap()
    assert m.swap("k", 1) == (None, False)
    assert m.load("k") == (1, True)
    assert m.swap("k", 2) == (1, True)
    promoted(m)
    assert m.swap("k", 3) == (2, True)  # fast path on a read entry
    m.delete("k")
    assert m.swap("k", 4) == (None, False)  # nil read entry
    m.delete("k")
    m.store("other", 0)  # dirty rebuilt: "k" expunged
    assert m._debug_state()["expunged"] == {"k"}
    assert m.swap("k", 5) == (None, False)  # unexpunged
    assert m.load("k") == (5, True)
    assert m.swap("n", None) == (None, False)
    assert m.swap("n", 1) == (None, True)
    check_invariants(m)


def test_compare_and_swap():
    m = SyncMap()
    assert m.compare_and_swap("k", None, 1) is False  # missing, even old=None
    assert m.load("k") == (None, False)
    m.store("k", 1)
    assert m.compare_and_swap("k", 2, 3) is False
    assert m.load("k") == (1, True)
    assert m.compare_and_swap("k", 1, 3) is True
    assert m.load("k") == (3, True)
    assert m.compare_and_swap("k", 3.0, 4) is True  # Python ==: 3 == 3.0
    promoted(m)
    assert m.compare_and_swap("k", 4, [1]) is True  # fast path
    assert m.compare_and_swap("k", [1], None) is True  # values needn't be hashable
    assert m.compare_and_swap("k", None, 5) is True
    m.delete("k")
    assert m.compare_and_swap("k", None, 6) is False  # deleted entry
    assert m.compare_and_swap("k", 5, 6) is False
    m.store("other", 0)  # expunges "k"
    assert m.compare_and_swap("k", None, 6) is False
    assert m.load("k") == (None, False)
    check_invariants(m)


def test_compare_and_swap_nan_never_matches():
    m = SyncMap()
    nan = float("nan")
    m.store("f", nan)
    assert m.compare_and_swap("f", nan, 1.0) is False  # Go: NaN != NaN too
    assert math.isnan(m.load("f")[0])


def test_compare_and_swap_on_dirty_only_key_counts_a_miss():
    m = state_with_dirty_only_key()
    assert m.compare_and_swap(2, "nope", "x") is False
    assert m._debug_state()["misses"] == 1
    assert m.compare_and_swap(2, "two", "TWO") is True  # miss #2 == len(dirty)
    s = m._debug_state()
    assert s["read"] == {1, 2} and s["dirty"] is None and s["misses"] == 0
    assert m.load(2) == ("TWO", True)


def test_compare_and_swap_absent_key_while_amended_is_not_a_miss():
    m = state_with_dirty_only_key()
    assert m.compare_and_swap(3, None, 1) is False
    assert m._debug_state()["misses"] == 0  # Go misses only when dirty has it


def test_compare_and_delete():
    m = SyncMap()
    assert m.compare_and_delete("k", None) is False  # even for old=None
    m.store("k", None)
    assert m.compare_and_delete("k", 1) is False
    assert m.compare_and_delete("k", None) is True
    assert m.load("k") == (None, False)
    m.store("k", 1)
    promoted(m)
    assert m.compare_and_delete("k", 2) is False
    assert m.compare_and_delete("k", 1.0) is True  # 1 == 1.0
    assert m.compare_and_delete("k", 1) is False
    assert len(m) == 0
    check_invariants(m)


def test_compare_and_delete_on_dirty_only_key():
    m = state_with_dirty_only_key()
    m.store(3, "three")
    assert m.compare_and_delete(2, "two") is True
    s = check_invariants(m)
    # Go leaves the key in dirty (with a nil entry) and records a miss
    assert s["dirty"] == {1, 2, 3} and s["deleted"] == {2} and s["misses"] == 1
    assert m.load(2) == (None, False)
    assert m.compare_and_delete(2, None) is False


class Boom:
    def __eq__(self, other):
        raise ValueError("boom")

    __hash__ = object.__hash__


@pytest.mark.parametrize("where", ["read", "dirty"])
def test_eq_exceptions_propagate_state_unchanged(where):
    m = state_with_dirty_only_key()
    b = Boom()
    m.store(1 if where == "read" else 2, b)
    before = m._debug_state()
    k = 1 if where == "read" else 2
    with pytest.raises(ValueError, match="boom"):
        m.compare_and_swap(k, 0, 1)
    assert m._debug_state() == before
    assert m.load(k) == (b, True)
    with pytest.raises(ValueError, match="boom"):
        m.compare_and_delete(k, 0)
    assert m.load(k) == (b, True)


class Meddler:
    """A value whose first ``==`` overwrites its own entry, then says equal:
    the compare-and-* must notice the entry changed and compare again."""

    def __init__(self, m, key):
        self.m, self.key, self.fired = m, key, False

    def __eq__(self, other):
        if not self.fired:
            self.fired = True
            self.m.store(self.key, "meddled")
        return True

    __hash__ = object.__hash__


def test_compare_and_swap_rechecks_after_eq():
    m = SyncMap()
    m.store("k", Meddler(m, "k"))
    promoted(m)  # a read entry: compared outside the mutex, as in Go
    assert m.compare_and_swap("k", "anything", "new") is False
    assert m.load("k") == ("meddled", True)


def test_compare_and_delete_rechecks_after_eq():
    m = SyncMap()
    m.store("k", Meddler(m, "k"))
    promoted(m)
    assert m.compare_and_delete("k", "anything") is False
    assert m.load("k") == ("meddled", True)


# -- Go 1.23: Clear -------------------------------------------------------------------


def test_clear():
    m = SyncMap()
    m.clear()  # clear of an empty map
    assert m._debug_state()["dirty"] is None
    for k in range(5):
        m.store(k, k)
    promoted(m)
    m.store(9, 9)
    m.load(99)
    assert m._debug_state()["misses"] == 1
    m.clear()
    s = check_invariants(m)
    # Go: read = readOnly{}; clear(m.dirty) keeps a non-nil, empty dirty map
    assert s["read"] == set() and not s["amended"] and s["dirty"] == set()
    assert s["misses"] == 0
    assert len(m) == 0 and list(m) == [] and m.load(0) == (None, False)
    m.store(1, "x")  # dirty exists: no copy, just amended
    s = check_invariants(m)
    assert s["dirty"] == {1} and s["amended"]
    assert m.load(1) == ("x", True)
    promoted(m)
    m.clear()
    assert m._debug_state()["dirty"] is None  # nil dirty stays nil
    assert len(m) == 0


def test_clear_drops_values():
    import gc
    import weakref

    class V:
        pass

    m = SyncMap()
    v = V()
    ref = weakref.ref(v)
    m.store("k", v)
    del v
    m.clear()
    gc.collect()
    assert ref() is None


# -- dunders ----------------------------------------------------------------------------


def test_mapping_dunders():
    m = SyncMap()
    m["a"] = 1
    m["b"] = None
    assert m["a"] == 1 and m["b"] is None
    with pytest.raises(KeyError):
        m["zz"]
    assert "a" in m and "b" in m and "zz" not in m
    assert sorted(m) == ["a", "b"]
    assert len(m) == 2
    del m["a"]
    with pytest.raises(KeyError):
        del m["a"]
    assert "a" not in m and len(m) == 1
    assert repr(m) == "SyncMap({'b': None})"
    assert repr(SyncMap()) == "SyncMap({})"
    m["self"] = m
    assert "'self': ...}" in repr(m)  # recursion-safe
    assert bool(SyncMap()) is False and bool(m) is True
    assert SyncMap[int, str] is not None  # generic alias for type hints


def test_iter_is_a_snapshot():
    m = SyncMap()
    for k in range(10):
        m.store(k, k)
    it = iter(m)
    m.store(100, 0)
    m.delete(0)
    assert sorted(it) == list(range(10))


@pytest.mark.parametrize("amended", [False, True])
def test_unhashable_keys_raise_type_error_state_unchanged(amended):
    m = SyncMap()
    m.store(1, 1)
    promoted(m)
    if amended:
        m.store(2, 2)
    before = m._debug_state()
    bad = [1]
    calls = [
        lambda: m.load(bad), lambda: m.store(bad, 1), lambda: m.load_or_store(bad, 1),
        lambda: m.load_and_delete(bad), lambda: m.delete(bad), lambda: m.swap(bad, 1),
        lambda: m.compare_and_swap(bad, 1, 2), lambda: m.compare_and_delete(bad, 1),
        lambda: m[bad], lambda: m.__setitem__(bad, 1), lambda: m.__delitem__(bad),
        lambda: bad in m,
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
        assert m._debug_state() == before


def test_keys_follow_python_dict_semantics():
    m = SyncMap()
    m.store(1, "int")
    assert m.load(1.0) == ("int", True)
    assert m.load(True) == ("int", True)
    assert m.load("1") == (None, False)


# -- hypothesis: a state machine against a dict model ------------------------------

KEYS = st.sampled_from([0, 1, 2, 3, 4, 5, "a", "b", ""])
VALUES = st.one_of(st.integers(-3, 20), st.none(), st.sampled_from(["x", "y"]))


class SyncMapMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.m = SyncMap()
        self.model: dict = {}

    def _current_or(self, data, k):
        """Often the current value (so compare-and-* succeed), else random."""
        if k in self.model and data.draw(st.booleans()):
            return self.model[k]
        return data.draw(VALUES)

    @rule(k=KEYS)
    def load(self, k):
        assert self.m.load(k) == (self.model.get(k), k in self.model)

    @rule(k=KEYS, v=VALUES)
    def store(self, k, v):
        self.m.store(k, v)
        self.model[k] = v

    @rule(k=KEYS, v=VALUES)
    def load_or_store(self, k, v):
        want = (self.model[k], True) if k in self.model else (v, False)
        assert self.m.load_or_store(k, v) == want
        self.model.setdefault(k, v)

    @rule(k=KEYS)
    def load_and_delete(self, k):
        assert self.m.load_and_delete(k) == (self.model.get(k), k in self.model)
        self.model.pop(k, None)

    @rule(k=KEYS)
    def delete(self, k):
        self.m.delete(k)
        self.model.pop(k, None)

    @rule(k=KEYS, v=VALUES)
    def swap(self, k, v):
        assert self.m.swap(k, v) == (self.model.get(k), k in self.model)
        self.model[k] = v

    @rule(data=st.data(), k=KEYS, new=VALUES)
    def compare_and_swap(self, data, k, new):
        old = self._current_or(data, k)
        want = k in self.model and self.model[k] == old
        assert self.m.compare_and_swap(k, old, new) is want
        if want:
            self.model[k] = new

    @rule(data=st.data(), k=KEYS)
    def compare_and_delete(self, data, k):
        old = self._current_or(data, k)
        want = k in self.model and self.model[k] == old
        assert self.m.compare_and_delete(k, old) is want
        if want:
            del self.model[k]

    @rule(stop_after=st.integers(0, 4))
    def range(self, stop_after):
        seen: dict = {}

        def f(k, v):
            assert k not in seen
            seen[k] = v
            return False if stop_after and len(seen) >= stop_after else None

        self.m.range(f)
        assert seen.items() <= self.model.items()
        want = len(self.model) if not stop_after else min(stop_after, len(self.model))
        assert len(seen) == want

    @rule()
    def clear(self):
        self.m.clear()
        self.model.clear()

    @rule(k=KEYS, v=VALUES)
    def setitem_getitem(self, k, v):
        self.m[k] = v
        self.model[k] = v
        assert self.m[k] == v

    @rule(k=KEYS)
    def delitem(self, k):
        if k in self.model:
            del self.m[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.m[k]

    @rule()
    def iterate(self):
        assert sorted(map(repr, self.m)) == sorted(map(repr, self.model))

    @invariant()
    def agrees_with_model(self):
        assert len(self.m) == len(self.model)  # len() leaves the state alone
        check_invariants(self.m)


SyncMapMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
test_syncmap_state_machine = SyncMapMachine.TestCase
