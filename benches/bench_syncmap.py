"""SyncMap against a dict behind a threading.Lock (a script, not a test).

    python benches/bench_syncmap.py [--n 10000,200000] [--rounds 41] [--before PATH_TO_CORE_SO]

Single-threaded per-operation cost, A/B interleaved: each round times a block
of 10,000 operations on SyncMap and on the dict+Lock competitor back to back,
alternating which goes first; the table shows the medians and the median of the
per-round ratios (SyncMap / dict+Lock; below 1 is faster):

* ``load`` hit: every key in the read map (after one ``range``), versus
  ``with lock: d.get(k)``; also ``m.get(k)`` and ``m[k]``;
* ``store`` of a new key (a fresh map each round), versus ``with lock: d[k] = v``.

Keys are int64 (``SyncMap("int64", "int64")``) and, separately, the default
``object`` kind with int keys; each size of ``--n`` is run (10,000 keys stay in
the CPU caches; 200,000 random keys mostly miss them, where every pointer a
lookup follows costs a memory access).  The 1-minute load average is printed: the
machine may be shared, which is why the runs are interleaved and reported as
medians of ratios measured in the same run.

``--before`` loads a second build of ``gomap._core`` (as ``peers.py`` does) and
adds a row timing this build's ``load`` against that build's, interleaved (in
that row the second column is the other build's ns/op).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import threading
import time

from gomap import SyncMap


def paired(rounds: int, a, b, setup_a=None, setup_b=None) -> tuple[float, float, float, float]:
    """Times ``a`` and ``b`` back to back ``rounds`` times (alternating which
    goes first; the GC off while timing, as timeit does) and returns the
    medians of each, in ns per op, the median of the per-round ratios, which
    is robust to a machine whose load changes between rounds, and the ratio of
    the best rounds (the least disturbed ones)."""
    ta, tb, ratios = [], [], []
    for r in range(rounds):
        argv = {"a": setup_a() if setup_a else None, "b": setup_b() if setup_b else None}
        times = {}
        for name in ("ab" if r % 2 == 0 else "ba"):
            fn = a if name == "a" else b
            gc.disable()
            t0 = time.perf_counter_ns()
            n = fn(argv[name])
            times[name] = (time.perf_counter_ns() - t0) / n
            gc.enable()
        ta.append(times["a"])
        tb.append(times["b"])
        ratios.append(times["a"] / times["b"])
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios), min(ta) / min(tb)


def run(n: int, rounds: int, kind: str, before=None) -> list[tuple[str, float, float, float, float]]:
    rng = random.Random(1)
    keys = list({rng.randrange(-(2**62), 2**62) for _ in range(n)})
    lookup = keys[:]
    rng.shuffle(lookup)
    block = lookup[:10_000]  # one timed block: ~1 ms, shorter than a scheduler slice
    vk = "int64" if kind == "int64" else "object"
    m = SyncMap(kind, vk)
    for k in keys:
        m.store(k, k)
    m.range(lambda k, v: True)  # promote: every key in the read map
    assert m._debug_state()["amended"] is False
    d = dict.fromkeys(keys, 0)
    lock = threading.Lock()

    def sync_load(_):
        ld = m.load
        for k in block:
            ld(k)
        return len(block)

    if before is not None:
        mb = before.SyncMap(kind, vk)
        for k in keys:
            mb.store(k, k)
        mb.range(lambda k, v: True)

        def before_load(_):
            ld = mb.load
            for k in block:
                ld(k)
            return len(block)

    def sync_get(_):
        g = m.get
        for k in block:
            g(k)
        return len(block)

    def sync_getitem(_):
        for k in block:
            m[k]
        return len(block)

    def dict_get(_):
        g = d.get
        lk = lock
        for k in block:
            with lk:
                g(k)
        return len(block)

    new_keys = [keys[i : i + 10_000] for i in range(0, len(keys), 10_000)]
    it = iter(range(10**9))

    def fresh_sync():
        # A map already holding most keys (a new key goes to the dirty map
        # behind the mutex, the path a first store takes), and a block of new ones.
        s = SyncMap(kind, vk)
        return s, new_keys[next(it) % len(new_keys)]

    def fresh_dict():
        return {}, new_keys[next(it) % len(new_keys)]

    def sync_store(arg):
        s, ks = arg
        st = s.store
        for k in ks:
            st(k, k)
        return len(ks)

    def dict_store(arg):
        dd, ks = arg
        lk = lock
        for k in ks:
            with lk:
                dd[k] = k
        return len(ks)

    out = []
    for name, fn in (("load hit", sync_load), ("get hit", sync_get), ("[k] hit", sync_getitem)):
        out.append((name, *paired(rounds, fn, dict_get)))
    if before is not None:
        out.append(("load hit: this build / --before", *paired(rounds, sync_load, before_load)))
    out.append(("store new key", *paired(rounds, sync_store, dict_store, fresh_sync, fresh_dict)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", default="10000,200000", help="comma-separated key counts")
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--before", help="path of another build's _core .so, compared on load hit")
    a = p.parse_args()
    before = None
    if a.before:
        from peers import load_build

        before = load_build(a.before)
    load = os.getloadavg()[0]
    sizes = [int(x) for x in a.n.split(",") if x]
    print(f"SyncMap vs dict+Lock, {a.rounds} interleaved rounds, load average {load:.2f} "
          f"on {os.cpu_count()} CPUs")
    print("| keys | key kind | operation | SyncMap ns/op | dict+Lock ns/op | ratio (median of rounds) "
          "| ratio (best rounds) |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for n in sizes:
        for kind in ("int64", "object"):
            for name, x, y, ratio, best in run(n, a.rounds, kind, before):
                print(f"| {n} | {kind} | {name} | {x:.0f} | {y:.0f} | {ratio:.2f}x | {best:.2f}x |", flush=True)
    print(f"(load average after: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
