"""pytest-benchmark suite: gomap.Map against dict.

Run with ``pytest benches/ --benchmark-only`` (``benches/run_all.py`` does, and
turns the JSON into BENCHMARKS.md). Not collected by the normal test run
(``testpaths = ["tests"]``). Nothing here asserts a timing.

Every benchmark is one pass over ``N`` keys (``GOMAP_BENCH_N``, default 1M) with
the same Python loop for both sides, so per-op figures are the pass time / N;
``extra_info["ops"]`` records N. Groups are ``<kind>/<workload>``; the
parameter ``impl`` is ``gomap`` or ``dict``.

Kinds: ``int64`` (``Map("int64", "int64")`` vs dict of int), ``string``
(``Map("string", "int64")``, 16-char strings), ``object-int`` and
``object-str`` (``Map()``, object keys and values). ``batch/*``:
``get_many``/``set_many`` on NumPy int64 arrays vs the equivalent dict loop.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import gomap

sys.path.insert(0, os.path.dirname(__file__))
from _data import int_keys, str_keys  # noqa: E402

N = int(os.environ.get("GOMAP_BENCH_N", "1000000"))
ROUNDS = int(os.environ.get("GOMAP_BENCH_ROUNDS", "5"))

KINDS = {
    "int64": ("int64", "int64"),
    "string": ("string", "int64"),
    "object-int": ("object", "object"),
    "object-str": ("object", "object"),
}
IMPLS = ["gomap", "dict"]


@pytest.fixture(scope="module")
def data():
    hi, mi = int_keys(N)
    hs, ms = str_keys(N)
    vals = np.arange(N, dtype=np.int64)
    out = {
        "np_keys": hi,
        "np_vals": vals,
        "vals": vals.tolist(),
    }
    for kind in KINDS:
        if kind in ("int64", "object-int"):
            # separate int objects for inserting and for looking up (no identity shortcut)
            out[kind] = (hi.tolist(), np.random.default_rng(5).permutation(hi).tolist(), mi.tolist())
        else:
            out[kind] = (hs, [s.encode().decode() for s in np.random.default_rng(5).permutation(hs).tolist()], ms)
    return out


def new_map(impl: str, kind: str):
    if impl == "dict":
        return {}
    return gomap.Map(*KINDS[kind])


def filled(impl: str, kind: str, data):
    keys, _, _ = data[kind]
    m = new_map(impl, kind)
    if impl == "dict":
        m.update(zip(keys, data["vals"]))
    else:
        for k, v in zip(keys, data["vals"]):
            m[k] = v
    return m


# The loops: identical for gomap and dict.
def do_get(m, ks):
    for k in ks:
        m[k]


def do_contains(m, ks):
    for k in ks:
        k in m  # noqa: B015


def do_set(make, ks, vs):
    m = make()
    for k, v in zip(ks, vs):
        m[k] = v
    return m


def do_delete(m, ks):
    for k in ks:
        del m[k]


def do_iterate(m):
    for k, v in m.items():
        pass


@pytest.fixture(scope="module")
def maps(data):
    return {(impl, kind): filled(impl, kind, data) for impl in IMPLS for kind in KINDS}


def run(benchmark, group, fn, *, args=(), setup=None):
    benchmark.group = group
    benchmark.extra_info["ops"] = N
    if setup is not None:
        return benchmark.pedantic(fn, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_get_hit(benchmark, maps, data, impl, kind):
    run(benchmark, f"{kind}/get", do_get, args=(maps[impl, kind], data[kind][1]))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_contains_miss(benchmark, maps, data, impl, kind):
    run(benchmark, f"{kind}/contains", do_contains, args=(maps[impl, kind], data[kind][2]))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_set_fresh(benchmark, data, impl, kind):
    run(benchmark, f"{kind}/set", do_set, args=(lambda: new_map(impl, kind), data[kind][0], data["vals"]))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_delete(benchmark, maps, data, impl, kind):
    full = maps[impl, kind]
    ks = data[kind][1]
    run(benchmark, f"{kind}/delete", do_delete, setup=lambda: ((full.copy(), ks), {}))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_iterate(benchmark, maps, impl, kind):
    run(benchmark, f"{kind}/iterate", do_iterate, args=(maps[impl, kind],))


# Batch API on NumPy arrays vs the equivalent dict loop (tolist() is the fastest
# way for a dict to consume an int64 array, and it is inside the timed part).
def dict_get_many(d, keys):
    return np.array([d[k] for k in keys.tolist()], dtype=np.int64)


def dict_set_many(keys, vals):
    d = {}
    for k, v in zip(keys.tolist(), vals.tolist()):
        d[k] = v
    return d


@pytest.mark.parametrize("impl", IMPLS)
def test_get_many(benchmark, maps, data, impl):
    keys = np.random.default_rng(6).permutation(data["np_keys"])
    if impl == "gomap":
        m = maps["gomap", "int64"]
        run(benchmark, "batch/get_many", m.get_many, args=(keys,))
    else:
        run(benchmark, "batch/get_many", dict_get_many, args=(maps["dict", "int64"], keys))


@pytest.mark.parametrize("impl", IMPLS)
def test_set_many(benchmark, data, impl):
    keys, vals = data["np_keys"], data["np_vals"]
    if impl == "gomap":

        def gomap_set_many(keys, vals):
            m = gomap.Map("int64", "int64")
            m.set_many(keys, vals)
            return m

        run(benchmark, "batch/set_many", gomap_set_many, args=(keys, vals))
    else:
        run(benchmark, "batch/set_many", dict_set_many, args=(keys, vals))
