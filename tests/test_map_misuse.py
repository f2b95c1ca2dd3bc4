"""Misuse: user code (``__eq__``, ``__hash__``, ``__del__``) re-entering the map.

Go detects a write while another write or a read is in progress and dies with one of
``concurrent map writes`` / ``concurrent map read and map write`` / ``concurrent map
iteration and map write``; gomap raises ``gomap.ConcurrentMapError`` (a RuntimeError)
with Go's wording, leaves the map unchanged and usable.  Scenarios with no clear
contract only have to not crash and leave a consistent map; they run in a subprocess
so a crash is reported as a failure instead of killing the test run.
"""

from __future__ import annotations

import os
import sys
import textwrap

sys.path.insert(0, os.path.dirname(__file__))

import pytest

import gomap
from conftest import GO_MESSAGES, check_snapshot, run_py, snap_eq


class Trigger:
    """An action shared by colliding keys: one-shot, or (``repeat``) re-armed so that
    it fires on every comparison (never re-entrantly)."""

    def __init__(self):
        self.action = None
        self.repeat = False
        self.busy = False
        self.fired = 0
        self.caught = []

    def fire(self):
        if self.busy or self.action is None:
            return
        act = self.action
        if not self.repeat:
            self.action = None
        self.busy = True
        try:
            self.fired += 1
            act()
        finally:
            self.busy = False

    def disarm(self):
        self.action = None
        self.repeat = False


class Evil:
    """Colliding key (constant hash) whose __eq__ runs the trigger's action first."""

    def __init__(self, tag, trig, h=42):
        self.tag = tag
        self.trig = trig
        self.h = h

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        self.trig.fire()
        if not isinstance(other, Evil):
            return NotImplemented
        return self.tag == other.tag

    def __repr__(self):
        return f"Evil({self.tag!r})"


def setup_map(n_other=5):
    trig = Trigger()
    m = gomap.Map()
    a = Evil("a", trig)
    m[a] = "A"
    for i in range(n_other):
        m[f"k{i}"] = i
    return m, trig, a


def assert_go_message(exc, allowed=GO_MESSAGES):
    msg = str(exc)
    assert any(w in msg for w in allowed), f"message {msg!r} lacks Go's wording {allowed}"


def test_concurrent_map_error_type():
    assert issubclass(gomap.ConcurrentMapError, RuntimeError)


# ---------------------------------------------------------------------------
# read in progress, write attempted
# ---------------------------------------------------------------------------

WRITES = {
    "setitem": lambda m: m.__setitem__("new", 1),
    "setitem_existing": lambda m: m.__setitem__("k1", 100),
    "delitem": lambda m: m.__delitem__("k1"),
    "delete": lambda m: m.delete("k1"),
    "pop": lambda m: m.pop("k1"),
    "update": lambda m: m.update({"new": 1}),
    "clear": lambda m: m.clear(),
    "setdefault_new": lambda m: m.setdefault("new", 1),
}

READS = {
    "getitem": lambda m, k: m[k],
    "get": lambda m, k: m.get(k),
    "contains": lambda m, k: k in m,
    "keys_contains": lambda m, k: k in m.keys(),
}


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize("write", list(WRITES))
def test_write_during_read(read, write):
    m, trig, a = setup_map()
    s = m.snapshot()
    trig.action = lambda: WRITES[write](m)
    with pytest.raises(gomap.ConcurrentMapError) as ei:
        READS[read](m, Evil("a", trig))
    assert trig.fired == 1, "the key comparison must have run user __eq__"
    assert_go_message(ei.value)
    assert snap_eq(m.snapshot(), s), "the rejected write changed the map"
    assert "new" not in m and m["k1"] == 1 and len(m) == 6
    # the map is usable afterwards: the read flag was released
    m["after"] = 1
    assert m["after"] == 1 and m[a] == "A"
    del m["after"]
    check_snapshot(m.snapshot())


def test_write_during_read_swallowed_then_read_completes():
    m, trig, a = setup_map()
    s = m.snapshot()

    def act():
        try:
            m["new"] = 1
        except gomap.ConcurrentMapError as e:
            trig.caught.append(e)

    trig.action = act
    assert m[Evil("a", trig)] == "A", "the lookup continues after __eq__ returns normally"
    assert len(trig.caught) == 1
    assert_go_message(trig.caught[0])
    assert snap_eq(m.snapshot(), s)
    assert "new" not in m


def test_read_during_read_is_allowed():
    m, trig, a = setup_map()
    got = []
    trig.action = lambda: got.append((m.get("k2"), "k3" in m, m["k4"]))
    assert m[Evil("a", trig)] == "A"
    assert got == [(2, True, 4)], "Go allows concurrent reads"


def test_iterate_during_read_is_allowed():
    m, trig, a = setup_map()
    it = iter(m.items())
    first = next(it)
    got = []
    trig.action = lambda: got.append(next(it))
    assert m.get(Evil("a", trig)) == "A"
    assert len(got) == 1
    rest = list(it)
    produced = [first] + got + rest
    assert sorted(map(repr, produced)) == sorted(map(repr, m.items()))


# ---------------------------------------------------------------------------
# write in progress, read / write / iteration attempted
# ---------------------------------------------------------------------------

OUTER_WRITES = {
    "setitem_new": lambda m, k: m.__setitem__(k, "B"),
    "update_new": lambda m, k: m.update([(k, "B")]),
    "delitem": lambda m, k: m.__delitem__(k),
    "delete": lambda m, k: m.delete(k),
    "pop": lambda m, k: m.pop(k, None),
}


def _outer_key(outer, trig):
    # deletes look for "a" itself (present); inserts use a new, colliding key
    if outer in ("delitem", "pop"):
        # these may be built as a lookup followed by Go's delete: fire on every
        # comparison so the write phase is reached either way
        trig.repeat = True
    return Evil("a" if outer in ("delitem", "delete", "pop") else "b", trig)


def _msgs(outer, exact):
    # a lookup-then-delete pop/del may be refused in its lookup phase instead
    return GO_MESSAGES if outer in ("delitem", "pop") else exact


@pytest.mark.parametrize("read", ["getitem", "get", "contains"])
@pytest.mark.parametrize("outer", list(OUTER_WRITES))
def test_read_during_write(outer, read):
    m, trig, a = setup_map()
    s = m.snapshot()
    inner = {"getitem": lambda: m["k1"], "get": lambda: m.get("k1"), "contains": lambda: "k1" in m}[read]
    trig.action = inner
    with pytest.raises(gomap.ConcurrentMapError) as ei:
        OUTER_WRITES[outer](m, _outer_key(outer, trig))
    trig.disarm()
    assert trig.fired >= 1
    assert_go_message(ei.value, _msgs(outer, ("concurrent map read and map write",)))
    assert snap_eq(m.snapshot(), s), "an aborted write changed the map"
    assert m[a] == "A" and len(m) == 6
    m["after"] = 1
    assert m["after"] == 1
    check_snapshot(m.snapshot())


@pytest.mark.parametrize("inner", ["setitem", "delete", "clear", "update"])
@pytest.mark.parametrize("outer", list(OUTER_WRITES))
def test_write_during_write(outer, inner):
    m, trig, a = setup_map()
    s = m.snapshot()
    trig.action = {
        "setitem": lambda: m.__setitem__("new", 1),
        "delete": lambda: m.delete("k1"),
        "clear": lambda: m.clear(),
        "update": lambda: m.update(new=1),
    }[inner]
    with pytest.raises(gomap.ConcurrentMapError) as ei:
        OUTER_WRITES[outer](m, _outer_key(outer, trig))
    trig.disarm()
    assert trig.fired >= 1
    assert_go_message(ei.value, _msgs(outer, ("concurrent map writes",)))
    assert snap_eq(m.snapshot(), s)
    assert len(m) == 6 and m[a] == "A" and "new" not in m
    m["after"] = 1
    del m["after"]
    check_snapshot(m.snapshot())


@pytest.mark.parametrize("outer", list(OUTER_WRITES))
def test_iteration_during_write(outer):
    m, trig, a = setup_map()
    it = iter(m)
    first = next(it)
    s = m.snapshot()
    consumed = []
    trig.action = lambda: consumed.append(next(it))
    with pytest.raises(gomap.ConcurrentMapError) as ei:
        OUTER_WRITES[outer](m, _outer_key(outer, trig))
    trig.disarm()
    assert trig.fired >= 1
    assert_go_message(ei.value, _msgs(outer, ("concurrent map iteration and map write",)))
    if outer not in ("delitem", "pop"):
        assert consumed == []
    assert snap_eq(m.snapshot(), s)
    # the refused step consumed nothing: the iterator finishes the walk
    rest = list(it)
    produced = [first] + consumed + rest
    assert len(produced) == 6
    assert sorted(map(repr, produced)) == sorted(map(repr, m.keys()))


def test_write_during_read_while_growing():
    trig = Trigger()
    m = gomap.Map("object", "int64", 14)
    i = 0
    while not m.snapshot()["growing"]:
        m[Evil(i, trig)] = i
        i += 1
    s = m.snapshot()
    trig.action = lambda: m.__setitem__("x", 1)
    with pytest.raises(gomap.ConcurrentMapError):
        m[Evil(i - 1, trig)]
    assert snap_eq(m.snapshot(), s), "lookups never move data, even when refused"
    trig.action = lambda: m.get(0)
    with pytest.raises(gomap.ConcurrentMapError) as ei:
        m[Evil(i - 1, trig)] = 5
    assert_go_message(ei.value, ("concurrent map read and map write",))
    assert len(m) == i
    assert m[Evil(i - 1, trig)] == i - 1
    check_snapshot(m.snapshot())


# ---------------------------------------------------------------------------
# __hash__ / __eq__ raising
# ---------------------------------------------------------------------------


class HashBoom:
    def __hash__(self):
        raise ValueError("hash boom")


class EqBoomError(Exception):
    pass


class EqBoom:
    def __init__(self, tag):
        self.tag = tag

    def __hash__(self):
        return 7

    def __eq__(self, other):
        raise EqBoomError("eq boom")


OPS = {
    "setitem": lambda m, k: m.__setitem__(k, 1),
    "getitem": lambda m, k: m[k],
    "get": lambda m, k: m.get(k),
    "contains": lambda m, k: k in m,
    "delitem": lambda m, k: m.__delitem__(k),
    "delete": lambda m, k: m.delete(k),
    "pop": lambda m, k: m.pop(k),
    "pop_default": lambda m, k: m.pop(k, None),
    "setdefault": lambda m, k: m.setdefault(k, 1),
    "update": lambda m, k: m.update([(k, 1)]),
}


@pytest.mark.parametrize("op", list(OPS))
def test_hash_raising_propagates_and_map_stays_usable(op):
    m = gomap.Map()
    for i in range(20):
        m[i] = i
    s = m.snapshot()
    with pytest.raises(ValueError, match="hash boom"):
        OPS[op](m, HashBoom())
    assert snap_eq(m.snapshot(), s)
    m[100] = 100  # would raise ConcurrentMapError if the write flag were left set
    assert m[100] == 100 and m.get(5) == 5
    del m[100]
    assert len(list(m)) == 20


@pytest.mark.parametrize("op", list(OPS))
def test_eq_raising_propagates_and_map_stays_usable(op):
    m = gomap.Map()
    m[EqBoom("x")] = 1
    for i in range(5):
        m[i] = i
    s = m.snapshot()
    with pytest.raises(EqBoomError, match="eq boom"):
        OPS[op](m, EqBoom("y"))
    assert snap_eq(m.snapshot(), s)
    m["after"] = 1
    assert m["after"] == 1 and m.get(3) == 3
    check_snapshot(m.snapshot())


# ---------------------------------------------------------------------------
# __hash__ that mutates the map (Go hashes before it marks the write)
# ---------------------------------------------------------------------------


class MutatingHash:
    def __init__(self, tag, action):
        self.tag = tag
        self.action = action

    def __hash__(self):
        act, self.action = self.action, None
        if act is not None:
            act()
        return hash(("mh", self.tag))

    def __eq__(self, other):
        return isinstance(other, MutatingHash) and other.tag == self.tag


def _check_consistent(m, expected: dict):
    assert len(m) == len(expected)
    for k, v in expected.items():
        assert k in m, f"{k!r} unreachable"
        assert m[k] == v
    assert dict(m.items()) == expected
    check_snapshot(m.snapshot())


@pytest.mark.parametrize(
    "scenario", ["empty_via_delete", "clear", "grow", "delete_self_target"]
)
def test_hash_that_mutates_map(scenario):
    m = gomap.Map()
    m["only"] = 0
    expected = {"only": 0}
    if scenario == "empty_via_delete":
        act = lambda: m.__delitem__("only")  # empties the map: new hash0
        after = {}
    elif scenario == "clear":
        act = m.clear
        after = {}
    elif scenario == "grow":
        act = lambda: m.update({i: i for i in range(200)})
        after = {"only": 0, **{i: i for i in range(200)}}
    else:
        act = lambda: m.__setitem__(MutatingHash("t", None), "inner")
        after = {"only": 0, MutatingHash("t", None): "inner"}
    k = MutatingHash("t", act)
    s = m.snapshot()
    try:
        m[k] = "outer"
    except gomap.ConcurrentMapError as e:
        # refusing is allowed; then nothing happened at all
        assert_go_message(e)
        assert snap_eq(m.snapshot(), s)
        _check_consistent(m, expected)
        return
    after = dict(after)
    after[MutatingHash("t", None)] = "outer"
    _check_consistent(m, after)


# ---------------------------------------------------------------------------
# No-crash scenarios (subprocess)
# ---------------------------------------------------------------------------

_PRELUDE = textwrap.dedent(
    """
    import gc, pickle, sys
    import gomap

    def consistent(m):
        s = m.snapshot()
        n = 0
        for chain in s["buckets"] or []:
            for b in chain:
                n += sum(1 for t in b["tophash"] if t >= 5)
        for chain in s["oldbuckets"] or []:
            if isinstance(chain, dict):
                continue
            for b in chain:
                n += sum(1 for t in b["tophash"] if t >= 5)
        assert n == len(m) == s["count"], (n, len(m), s["count"])
        for k, v in list(m.items()):
            if k == k:
                assert k in m, k
        m["__probe__"] = 1
        del m["__probe__"]

    class Trig:
        action = None
        def fire(self):
            act, self.action = self.action, None
            if act is not None:
                try:
                    act()
                except Exception as e:
                    pass

    class K:
        def __init__(self, tag, trig, h=42):
            self.tag, self.trig, self.h = tag, trig, h
        def __hash__(self):
            return self.h
        def __eq__(self, other):
            self.trig.fire()
            return isinstance(other, K) and self.tag == other.tag
    """
)


def _run(body: str):
    r = run_py(_PRELUDE + textwrap.dedent(body) + "\nprint('OK')\n", timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (
        f"exit code {r.returncode}\nstdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}"
    )


def test_no_crash_everything_inside_eq():
    _run(
        """
        ACTIONS = {
            "snapshot": lambda m: m.snapshot(),
            "stats": lambda m: m.stats(),
            "len": lambda m: len(m),
            "repr": lambda m: repr(m),
            "copy": lambda m: m.copy(),
            "pickle": lambda m: pickle.dumps(m),
            "eq": lambda m: m == {},
            "iter_new": lambda m: list(m),
            "keys": lambda m: list(m.keys()),
            "values": lambda m: list(m.values()),
            "popitem": lambda m: m.popitem(),
            "clear": lambda m: m.clear(),
            "update_many": lambda m: m.update({i: i for i in range(300)}),
            "set": lambda m: m.__setitem__("z", 1),
            "del": lambda m: m.__delitem__("k1"),
            "gc": lambda m: gc.collect(),
            "setdefault": lambda m: m.setdefault("q", 1),
        }
        OUTER = {
            "get": lambda m, k: m.get(k),
            "set": lambda m, k: m.__setitem__(k, 5),
            "set_new": lambda m, k: m.__setitem__(K("new", k.trig), 5),
            "delete": lambda m, k: m.delete(k),
            "pop": lambda m, k: m.pop(k, None),
            "setdefault": lambda m, k: m.setdefault(k, 1),
            "contains": lambda m, k: k in m,
            "items_contains": lambda m, k: (k, "A") in m.items(),
            "eq": lambda m, k: m == {k: "A"},
        }
        for growing in (False, True):
            for aname, act in ACTIONS.items():
                for oname, outer in OUTER.items():
                    trig = Trig()
                    m = gomap.Map("object", "object", 14 if growing else 0)
                    a = K("a", trig)
                    m[a] = "A"
                    i = 0
                    while True:
                        m[f"k{i}"] = i
                        i += 1
                        if not growing and i >= 6:
                            break
                        if growing and m.snapshot()["growing"]:
                            break
                    trig.action = lambda: act(m)
                    try:
                        outer(m, K("a", trig))
                    except Exception:
                        pass
                    trig.action = None
                    consistent(m)
        """
    )


def test_no_crash_write_inside_eq_during_iteration_lookup():
    # An iterator started before a grow looks evacuated keys up again (mapaccessK),
    # which compares keys and so runs __eq__; that __eq__ then writes to the map.
    _run(
        """
        for act_name in ("set", "del", "clear", "update", "next_same"):
            trig = Trig()
            m = gomap.Map("object", "int64")
            keys = [K(i, trig) for i in range(8)]
            for i, k in enumerate(keys):
                m[k] = i
            it = iter(m)
            first = next(it)
            for j in range(8, 40):
                m[K(j, trig)] = j  # grows; all keys collide, so lookups compare
            act = {
                "set": lambda: m.__setitem__("x", 1),
                "del": lambda: m.__delitem__(keys[3]),
                "clear": lambda: m.clear(),
                "update": lambda: m.update({i: i for i in range(100)}),
                "next_same": lambda: next(it),
            }[act_name]
            for _ in range(50):
                trig.action = act
                try:
                    next(it)
                except StopIteration:
                    break
                except Exception:
                    pass
            trig.action = None
            consistent(m)
        """
    )


def test_no_crash_del_side_effects():
    _run(
        """
        class Dying:
            def __init__(self, m, tag):
                self.m, self.tag = m, tag
            def __del__(self):
                try:
                    self.m[("from_del", self.tag)] = 1
                except Exception:
                    pass
                try:
                    len(self.m); list(self.m.items()); self.m.snapshot()
                except Exception:
                    pass

        for op in ("overwrite", "delete", "pop", "clear", "popitem", "update"):
            m = gomap.Map()
            for i in range(50):
                m[i] = Dying(m, i)
            if op == "overwrite":
                for i in range(50):
                    m[i] = None
            elif op == "delete":
                for i in range(50):
                    del m[i]
            elif op == "pop":
                for i in range(50):
                    m.pop(i)
            elif op == "clear":
                m.clear()
            elif op == "popitem":
                for _ in range(20):
                    m.popitem()
            else:
                m.update({i: None for i in range(50)})
            gc.collect()
            consistent(m)
        m = gomap.Map()
        for i in range(50):
            m[i] = Dying(m, i)
        del m
        gc.collect()
        """
    )


def test_no_crash_gc_inside_operations():
    _run(
        """
        calls = [0]
        def maybe_collect():
            calls[0] += 1
            if calls[0] % 11 == 0:
                gc.collect()

        class GcKey:
            def __init__(self, tag):
                self.tag = tag
            def __hash__(self):
                maybe_collect()
                return 5
            def __eq__(self, other):
                maybe_collect()
                return isinstance(other, GcKey) and other.tag == self.tag

        m = gomap.Map()
        m["self"] = m
        for i in range(60):
            m[GcKey(i)] = [m, i]
        for i in range(60):
            assert m[GcKey(i)][1] == i
        it = iter(m)
        for i in range(0, 60, 2):
            del m[GcKey(i)]
        list(it)
        consistent(m)
        """
    )
