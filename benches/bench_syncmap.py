"""SyncMap against a dict behind a threading.Lock (a script, not a test).

    python benches/bench_syncmap.py [--n 200000] [--rounds 9]

Single-threaded per-operation cost, A/B interleaved (each round times SyncMap
and the dict+Lock competitor back to back, alternating which goes first), and
the ratio of the medians (SyncMap / dict+Lock; below 1 is faster):

* ``load`` hit: every key in the read map (after one ``range``), versus
  ``with lock: d.get(k)``; also ``m.get(k)`` and ``m[k]``;
* ``store`` of a new key (a fresh map each round), versus ``with lock: d[k] = v``.

Keys are int64 (``SyncMap("int64", "int64")``) and, separately, the default
``object`` kind with int keys.  The 1-minute load average is printed: the
machine may be shared, which is why the runs are interleaved and reported as
medians of ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time

from gomap import SyncMap


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_pair(rounds: int, a, b, n: int, setup_a=None, setup_b=None) -> tuple[float, float]:
    ta, tb = [], []
    for r in range(rounds):
        order = [("a", a, setup_a), ("b", b, setup_b)]
        if r % 2:
            order.reverse()
        for name, fn, setup in order:
            arg = setup() if setup else None
            t = timed(lambda fn=fn, arg=arg: fn(arg))
            (ta if name == "a" else tb).append(t / n * 1e9)
    return statistics.median(ta), statistics.median(tb)


def run(n: int, rounds: int, kind: str) -> list[tuple[str, float, float]]:
    rng = random.Random(1)
    keys = list({rng.randrange(-(2**62), 2**62) for _ in range(n)})
    lookup = keys[:]
    rng.shuffle(lookup)
    m = SyncMap(kind, "int64" if kind == "int64" else "object")
    for k in keys:
        m.store(k, k)
    m.range(lambda k, v: True)  # promote: every key in the read map
    assert m._debug_state()["amended"] is False
    d = dict.fromkeys(keys, 0)
    lock = threading.Lock()

    def sync_load(_):
        ld = m.load
        for k in lookup:
            ld(k)

    def sync_get(_):
        g = m.get
        for k in lookup:
            g(k)

    def sync_getitem(_):
        for k in lookup:
            m[k]

    def dict_get(_):
        g = d.get
        lk = lock
        for k in lookup:
            with lk:
                g(k)

    def fresh_sync():
        return SyncMap(kind, "int64" if kind == "int64" else "object")

    def sync_store(s):
        st = s.store
        for k in keys:
            st(k, k)

    def dict_store(dd):
        lk = lock
        for k in keys:
            with lk:
                dd[k] = k

    out = []
    for name, fn in (("load hit", sync_load), ("get hit", sync_get), ("[k] hit", sync_getitem)):
        a, b = bench_pair(rounds, fn, dict_get, n)
        out.append((name, a, b))
    a, b = bench_pair(rounds, sync_store, dict_store, n, fresh_sync, dict)
    out.append(("store new key", a, b))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=9)
    a = p.parse_args()
    load = os.getloadavg()[0]
    print(f"SyncMap vs dict+Lock, n={a.n}, {a.rounds} interleaved rounds, load average {load:.2f} "
          f"on {os.cpu_count()} CPUs")
    print("| key kind | operation | SyncMap ns/op | dict+Lock ns/op | ratio |")
    print("|---|---|---:|---:|---:|")
    for kind in ("int64", "object"):
        for name, x, y in run(a.n, a.rounds, kind):
            print(f"| {kind} | {name} | {x:.0f} | {y:.0f} | {x / y:.2f}x |", flush=True)
    print(f"(load average after: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
