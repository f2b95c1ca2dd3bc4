"""gomap.Map('int64', 'int64') against dict and other int64 hash tables, from Python
(and string-keyed lookups against dict).

    python benches/peers.py [--quick] [--out FILE] [--before PATH_TO_CORE_SO]

One command, one process: every workload is run for every implementation in
turn, repeatedly (A/B interleaved), and the median ns per operation is
reported, with the machine's load average before and after. Sizes 1,000 and
1,000,000; lookups in two access orders: "random" (shuffled, with fresh int
objects equal to the stored keys) and "insertion order" (the very objects that
were inserted: dict's best case). Peers (the `bench` extra): preshed's
PreshMap, cykhash's Int64toInt64Map and pandas' Int64HashTable; a peer that is
not installed is left out. Keys are distinct non-negative 62-bit ints (preshed
takes uint64 keys and reserves 0). String rows: 16-character ASCII keys
looked up in ``Map()`` (object keys) and in ``Map('string', 'int64')``, against
a dict of the same strings ("random" lookups use fresh, equal str objects). Output: a Markdown table on stdout and in
FILE (default benches/results/peers.md). ``--before`` loads a second build
of ``gomap._core`` (e.g. one built from main) as "gomap-before", interleaved
with the rest, for before/after figures from the same run. Nothing asserts a
timing.
"""
from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time

import numpy as np
from _data import str_keys

import gomap

PEERS: dict[str, object] = {}
try:
    from preshed.maps import PreshMap

    PEERS["preshed"] = PreshMap
except ImportError:
    pass
try:
    import cykhash

    PEERS["cykhash"] = cykhash.Int64toInt64Map
except ImportError:
    pass
try:
    from pandas._libs import hashtable as _pd_ht

    PEERS["pandas"] = _pd_ht.Int64HashTable
except ImportError:
    pass


BUILDS = {"gomap": gomap}


def load_build(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gomap_before._core", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make(impl: str):
    if impl in BUILDS:
        return BUILDS[impl].Map("int64", "int64")
    if impl == "dict":
        return {}
    return PEERS[impl]()


def fill(impl: str, keys, vals):
    m = make(impl)
    if impl == "pandas":
        for k, v in zip(keys, vals):
            m.set_item(k, v)
    else:
        for k, v in zip(keys, vals):
            m[k] = v
    return m


def loop_get(impl, m, ks):
    t = time.perf_counter_ns()
    if impl == "pandas":
        g = m.get_item
        for k in ks:
            g(k)
    else:
        for k in ks:
            m[k]
    return time.perf_counter_ns() - t


def loop_contains(impl, m, ks):
    t = time.perf_counter_ns()
    if impl == "preshed":
        for k in ks:
            m[k] is not None
    else:
        for k in ks:
            k in m
    return time.perf_counter_ns() - t


def loop_set(impl, keys, vals):
    t = time.perf_counter_ns()
    fill(impl, keys, vals)
    return time.perf_counter_ns() - t


def loop_items(impl, m, _):
    t = time.perf_counter_ns()
    for k, v in m.items():
        pass
    return time.perf_counter_ns() - t


def batch_get(impl, m, arr):
    t = time.perf_counter_ns()
    if impl in BUILDS:
        m.get_many(arr)
    elif impl == "pandas":
        m.lookup(arr)
    elif impl == "dict":
        np.array([m[k] for k in arr.tolist()])
    return time.perf_counter_ns() - t


def batch_set(impl, keys_arr, vals_arr, presize=False):
    t = time.perf_counter_ns()
    if impl in BUILDS:
        if presize:
            BUILDS[impl].Map("int64", "int64").set_many(keys_arr, vals_arr, presize=True)
        else:
            BUILDS[impl].Map("int64", "int64").set_many(keys_arr, vals_arr)
    elif impl == "pandas":
        _pd_ht.Int64HashTable().map_locations(keys_arr)
    elif impl == "dict":
        d = {}
        for k, v in zip(keys_arr.tolist(), vals_arr.tolist()):
            d[k] = v
    return time.perf_counter_ns() - t


def main() -> None:
    quick = "--quick" in sys.argv
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "benches/results/peers.md"
    sizes = [1000, 100_000] if quick else [1000, 1_000_000]
    reps = 3 if quick else 5
    if "--before" in sys.argv:
        BUILDS["gomap-before"] = load_build(sys.argv[sys.argv.index("--before") + 1])
    impls = [*BUILDS, "dict", *PEERS]
    load0 = os.getloadavg()
    rows = []
    for n in sizes:
        rng = random.Random(n)
        keys = rng.sample(range(1, 2**62), n)
        vals = list(range(n))
        shuffled = keys[:]
        rng.shuffle(shuffled)
        fresh = [int(str(k)) for k in shuffled]
        miss = [k + 2**62 for k in fresh]
        karr = np.array(keys, dtype=np.int64)
        varr = np.array(vals, dtype=np.int64)
        sarr = np.array(shuffled, dtype=np.int64)
        passes = max(1, 1_000_000 // n)  # ~1M operations per measurement
        maps = {i: fill(i, keys, vals) for i in impls}
        skeys, _ = str_keys(n, seed=n)
        sfresh = [s.encode().decode() for s in rng.sample(skeys, n)]  # new, equal str objects

        def str_maps(kind: str) -> dict:
            out = {}
            for i in [*BUILDS, "dict"]:
                m = {} if i == "dict" else BUILDS[i].Map(*(() if kind == "object" else ("string", "int64")))
                for s, v in zip(skeys, vals):
                    m[s] = v
                out[i] = m
            return out

        smaps = {"object": str_maps("object"), "string": str_maps("string")}
        work = [
            ("m[k] random", "get", lambda i: loop_get(i, maps[i], fresh)),
            ("m[k] insertion order", "get", lambda i: loop_get(i, maps[i], keys)),
            ("k in m, miss", "contains", lambda i: loop_contains(i, maps[i], miss)),
            ("m[k] = v, fresh map", "set", lambda i: loop_set(i, keys, vals)),
            ("for k, v in m.items()", "items", lambda i: loop_items(i, maps[i], None)),
            ("get_many (batch, random)", "batch_get", lambda i: batch_get(i, maps[i], sarr)),
            ("set_many (batch, fresh map)", "batch_set", lambda i: batch_set(i, karr, varr)),
            ("set_many presize=True (fresh map)", "batch_presize", lambda i: batch_set(i, karr, varr, True)),
            ("m[s] random, str keys, Map()", "str", lambda i: loop_get(i, smaps["object"][i], sfresh)),
            ("m[s] insertion order, str keys, Map()", "str", lambda i: loop_get(i, smaps["object"][i], skeys)),
            ("m[s] random, Map('string', 'int64')", "str", lambda i: loop_get(i, smaps["string"][i], sfresh)),
            ("m[s] insertion order, Map('string', 'int64')", "str", lambda i: loop_get(i, smaps["string"][i], skeys)),
        ]
        for name, kind, fn in work:
            who = [i for i in impls if not (kind == "items" and i in ("preshed", "cykhash", "pandas"))]
            if kind.startswith("batch"):
                who = [i for i in who if i in BUILDS or i in ("dict", "pandas")]
            if kind == "str":
                who = [*BUILDS, "dict"]
            if kind == "batch_presize":
                who = ["gomap", "dict", *(["pandas"] if "pandas" in PEERS else [])]
            res: dict[str, list[float]] = {i: [] for i in who}
            gc.disable()
            try:
                for _ in range(reps):
                    for i in who:
                        p = 1 if kind in ("set", "batch_set", "batch_presize") else passes
                        tot = sum(fn(i) for _ in range(p))
                        res[i].append(tot / (p * n))
            finally:
                gc.enable()
            med = {i: statistics.median(v) for i, v in res.items()}
            rows.append((n, name, med))
            print(n, name, {i: round(v, 1) for i, v in med.items()}, flush=True)
        del maps, smaps
    load1 = os.getloadavg()
    lines = [
        "| size | workload | "
        + " | ".join(impls)
        + " | gomap/dict | "
        + " | ".join(f"gomap/{p}" for p in PEERS)
        + (" | after/before" if "gomap-before" in BUILDS else "")
        + " |",
        "|---:|---|" + "---:|" * (len(impls) + 1 + len(PEERS) + ("gomap-before" in BUILDS)),
    ]
    for n, name, med in rows:
        cells = [f"{med[i]:.1f}" if i in med else "" for i in impls]
        ratios = [f"{med['gomap'] / med[p]:.2f}×" if p in med else "" for p in ["dict", *PEERS]]
        if "gomap-before" in BUILDS:
            ratios.append(f"{med['gomap'] / med['gomap-before']:.2f}×" if "gomap-before" in med else "")
        lines.append(f"| {n:,} | {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    text = (
        f"ns/op, median of {reps} interleaved passes; load average (1/5/15 min) at start "
        f"{' '.join(f'{x:.2f}' for x in load0)}, at end {' '.join(f'{x:.2f}' for x in load1)}; "
        f"Python {sys.version.split()[0]}, gomap {gomap.__file__}\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
