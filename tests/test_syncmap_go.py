"""Differential tests: gomap.SyncMap against Go's own sync.Map.

A small Go program (python/gomap/_harness_sync) plays traces of the Go 1.19
methods (Load, Store, LoadOrStore, LoadAndDelete, Delete, Range) on a real
sync.Map and reports every result plus sync.Map's internal state (read with
reflect/unsafe): the keys of read.m, amended, the keys of dirty (or nil),
misses, and which entries are expunged / nil / shared between read and dirty.
The same traces run on SyncMap, whose ``_debug_state()`` must match after every
operation.  Range visits Go's map in random order, so full Ranges compare as
multisets and limited Ranges by size and membership.

The harness is built with the local ``go`` (or ``$GOMAP_GO``) into
``~/.cache/gomap/harness_sync/<hash>/`` (by ``gomap._synccheck``, which also
checks Range order and both inner hmaps bucket for bucket, for every key kind:
``test_range_order_and_buckets_match_go``).  Without Go the tests skip -- unless
``$CI`` is set, then they fail.  ``$GOMAP_SYNC_TRACES`` (default 300) sets the
number of random traces and ``$GOMAP_SYNC_SEED`` their seed.
"""

from __future__ import annotations

import collections
import os
import random
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gomap import _synccheck
from gomap import SyncMap

N_TRACES = int(os.environ.get("GOMAP_SYNC_TRACES", "300"))
SEED = int(os.environ.get("GOMAP_SYNC_SEED", "20240519"))


# -- the harness ---------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Go harness unavailable under CI: {reason}")
    pytest.skip(f"Go harness unavailable: {reason}")


@pytest.fixture(scope="module")
def harness():
    try:
        h = _synccheck.Harness(_synccheck.build())
    except (OSError, _synccheck.HarnessError, subprocess.SubprocessError) as exc:
        _unavailable(str(exc))
    yield h
    h.close()


# -- playing a trace on SyncMap and comparing ----------------------------------


def play_python(ops: list, cls=SyncMap) -> list:
    m = cls()
    steps = []
    for op in ops:
        name = op[0]
        if name == "Load":
            r = list(m.load(op[1]))
        elif name == "Store":
            r = m.store(op[1], op[2])
        elif name == "LoadOrStore":
            r = list(m.load_or_store(op[1], op[2]))
        elif name == "LoadAndDelete":
            r = list(m.load_and_delete(op[1]))
        elif name == "Delete":
            r = m.delete(op[1])
        elif name == "Range":
            limit = op[1]
            seen: list = []

            def f(k, v, seen=seen, limit=limit):
                seen.append([k, v])
                return limit < 0 or len(seen) < limit

            m.range(f)
            r = seen
        else:
            raise ValueError(name)
        steps.append({"r": r, "s": m._debug_state()})
    return steps


def _go_state(s: dict) -> dict:
    out = {}
    for name in ("read", "dirty", "expunged", "deleted", "shared"):
        keys = s[name]
        if keys is None:
            out[name] = None
            continue
        assert len(keys) == len(set(keys)), f"duplicate keys in Go's {name}: {keys}"
        out[name] = frozenset(keys)
    out["amended"] = s["amended"]
    out["misses"] = s["misses"]
    return out


def compare(ops: list, go_steps: list, py_steps: list) -> None:
    """Assert that Go and SyncMap agree on every result and state, and that
    both agree with a dict model."""
    assert len(go_steps) == len(py_steps) == len(ops)
    model: dict = {}
    for i, (op, g, p) in enumerate(zip(ops, go_steps, py_steps)):
        where = f"op #{i} {op!r}; trace prefix: {ops[: i + 1]!r}"
        name, k = op[0], op[1]
        if name == "Range":
            items = collections.Counter(map(tuple, model.items()))
            got_go = collections.Counter(map(tuple, g["r"]))
            got_py = collections.Counter(map(tuple, p["r"]))
            if k < 0:
                assert got_go == items, where
                assert got_py == items, where
            else:
                # f returns False on call max(k, 1): Range(0) still visits one.
                want = min(max(k, 1), len(model))
                for got in (got_go, got_py):
                    assert sum(got.values()) == want, where
                    assert all(items[kv] >= n for kv, n in got.items()), where
        else:
            assert p["r"] == g["r"], f"result differs at {where}: go {g['r']} py {p['r']}"
            if name == "Load":
                want = [model.get(k), k in model]
            elif name == "LoadOrStore":
                want = [model[k], True] if k in model else [op[2], False]
                model.setdefault(k, op[2])
            elif name == "LoadAndDelete":
                want = [model.get(k), k in model]
                model.pop(k, None)
            elif name == "Store":
                want = None
                model[k] = op[2]
            else:  # Delete
                want = None
                model.pop(k, None)
            assert g["r"] == want, f"Go disagrees with the dict model at {where}"
        gs = _go_state(g["s"])
        assert p["s"] == gs, f"state differs at {where}:\n go {gs}\n py {p['s']}"


# -- traces ----------------------------------------------------------------------

OPS = ["Load", "Store", "LoadOrStore", "LoadAndDelete", "Delete", "Range"]
WEIGHTS = [30, 22, 15, 10, 10, 6]


def random_trace(rng: random.Random) -> list:
    keys: list = list(range(rng.randint(1, 8)))
    keys += rng.sample(["a", "b", "k", ""], rng.randint(0, 3))
    ops = []
    for _ in range(rng.randint(1, 120)):
        name = rng.choices(OPS, WEIGHTS)[0]
        if name == "Range":
            ops.append([name, rng.choice([-1, -1, -1, 0, 1, 2, 3])])
            continue
        k = rng.choice(keys)
        if name in ("Store", "LoadOrStore"):
            v = rng.choice([rng.randint(-3, 99), f"v{rng.randint(0, 9)}", None])
            ops.append([name, k, v])
        else:
            ops.append([name, k])
    return ops


# Hand-written traces for the paths random traces reach rarely.
SCENARIOS = [
    # promotion by misses: misses reach len(dirty)
    [["Store", 1, 1], ["Store", 2, 2], ["Store", 3, 3], ["Load", 9], ["Load", 8], ["Load", 1]],
    # a deleted read entry is expunged when dirty is created, then unexpunged
    [["Store", 1, 1], ["Load", 1], ["Delete", 1], ["Store", 2, 2], ["Store", 1, 5],
     ["Load", 1], ["Range", -1]],
    # LoadOrStore on an expunged entry, and on a dirty-only key (counts a miss)
    [["Store", 1, 1], ["Load", 1], ["Delete", 1], ["Store", 2, 2], ["LoadOrStore", 1, "x"],
     ["LoadOrStore", 2, "y"], ["LoadOrStore", 3, None], ["Load", 3]],
    # LoadAndDelete of a dirty-only key removes it from dirty and counts a miss
    [["Store", "a", 1], ["Store", "b", 2], ["LoadAndDelete", "a"], ["LoadAndDelete", "a"],
     ["Load", "b"]],
    # nil values are values
    [["Store", 0, None], ["Load", 0], ["LoadOrStore", 0, 1], ["LoadAndDelete", 0],
     ["LoadOrStore", 0, None], ["Range", -1], ["Load", 0]],
    # Range promotes; a limited Range promotes too
    [["Store", 1, 1], ["Store", 2, 2], ["Range", 1], ["Store", 3, 3], ["Range", 0],
     ["Delete", 3], ["Store", 4, 4], ["Range", -1]],
    # Load of a key present in read while amended: no miss
    [["Store", 1, 1], ["Range", -1], ["Store", 2, 2], ["Load", 1], ["Load", 2], ["Load", 2]],
]


def test_scenarios(harness):
    for ops in SCENARIOS:
        compare(ops, harness.play(ops), play_python(ops))


def test_random_traces(harness):
    rng = random.Random(SEED)
    n_ops = 0
    for t in range(N_TRACES):
        ops = random_trace(rng)
        try:
            compare(ops, harness.play(ops), play_python(ops))
        except AssertionError as exc:
            raise AssertionError(f"trace {t} (seed {SEED}): {exc}") from None
        n_ops += len(ops)
    print(f"\nSyncMap vs {harness.go_version} sync.Map: {N_TRACES}/{N_TRACES} "
          f"traces matched ({n_ops} ops, results and internal state)")


_key = st.sampled_from([0, 1, 2, 3, 4, "a", "b"])
_val = st.one_of(st.integers(-5, 30), st.sampled_from(["x", "y"]), st.none())
_op = st.one_of(
    st.tuples(st.just("Load"), _key),
    st.tuples(st.just("Store"), _key, _val),
    st.tuples(st.just("LoadOrStore"), _key, _val),
    st.tuples(st.just("LoadAndDelete"), _key),
    st.tuples(st.just("Delete"), _key),
    st.tuples(st.just("Range"), st.sampled_from([-1, 0, 1, 2])),
).map(list)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=60))
def test_hypothesis_traces(harness, ops):
    compare(ops, harness.play(ops), play_python(ops))


def test_comparison_catches_a_mutant(harness):
    """The differential check must be able to fail: a SyncMap that stored
    where Go only looked up disagrees with Go."""
    ops = SCENARIOS[0]
    compare(ops, harness.play(ops), play_python(ops))
    mutant = ops[:4] + [["Store", 8, 8]] + ops[5:]
    py = play_python(mutant)
    with pytest.raises(AssertionError, match="state differs|result differs"):
        compare(ops, harness.play(ops), py)


# -- Range order and the inner maps' buckets, every key kind ----------------------------


def test_range_order_and_buckets_match_go(harness):
    """Random traces of every key kind: results, Range order, internal state and
    both inner hmaps bucket for bucket (iteration draws inferred, hash0 read:
    see gomap._synccheck)."""
    rng = random.Random(SEED)
    totals = collections.Counter()
    kinds = _synccheck.KINDS
    for t in range(N_TRACES):
        kind = kinds[t % len(kinds)]
        ops = _synccheck.random_trace(rng, kind)
        steps = harness.play(ops, kind, maps=True)
        try:
            totals.update(_synccheck.play_trace(ops, kind, steps, harness.hashkey))
        except _synccheck.Mismatch as exc:
            raise AssertionError(f"trace {t} (seed {SEED}, kind {kind}): {exc}") from None
    assert totals["ranges"] > 0 and totals["inferred"] > 0 and totals["hash0"] > 0
    print(f"\nSyncMap vs {harness.go_version}: {N_TRACES}/{N_TRACES} traces bit-exact, {dict(totals)}")


def test_bucket_check_catches_a_wrong_hashkey(harness):
    """The layout comparison must be able to fail: with another hashkey the
    keys land in other buckets (or no iteration start reproduces Go)."""
    ops = [["Store", k, k] for k in range(12)] + [["Range", -1], ["Store", 99, 1]]
    steps = harness.play(ops, "int64", maps=True)
    _synccheck.play_trace(ops, "int64", steps, harness.hashkey)
    wrong = (harness.hashkey[0] ^ 2, *harness.hashkey[1:])
    with pytest.raises(_synccheck.Mismatch):
        _synccheck.play_trace(ops, "int64", steps, wrong)
