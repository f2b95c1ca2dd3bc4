"""Concurrency benchmarks: gomap.ShardedMap against a dict behind one
threading.Lock (and, for counting, against a dict loop and collections.Counter).

One command, one process; the contenders run A/B interleaved, round after round,
and each figure is the median over the rounds. The machine's load average is
printed before and after (other work on the machine skews thread figures).

    python benches/bench_concurrency.py [--rounds 7] [--quick]

Targets (issue 7): single-thread set+get int64 <= 0.8x dict+Lock (object keys
<= 1.0x); 4 threads 90% get / 10% set >= dict+Lock's throughput; add_many of 1M
int64 keys (10% distinct) >= 10x a dict loop and >= 3x Counter; add_many on 2
threads >= 1.6x 1 thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter

import numpy as np

import gomap
from gomap import ShardedMap


def loadavg() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average n/a"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(rounds: int, contenders: dict) -> dict:
    """{name: median seconds}: every round runs every contender once, in a
    rotating order."""
    names = list(contenders)
    times: dict = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            times[n].append(timed(contenders[n]))
    return {n: statistics.median(t) for n, t in times.items()}


# ---------------------------------------------------------------------------
# single thread: set then get
# ---------------------------------------------------------------------------


def single_thread(rounds: int, n: int) -> list:
    out = []
    rng = np.random.default_rng(0)
    for label, kk, vk, keys in [
        ("int64 keys (ascending)", "int64", "int64", list(range(0, 7 * n, 7))),
        ("int64 keys (random)", "int64", "int64", rng.integers(-(2**62), 2**62, n).tolist()),
        ("object keys (str)", "object", "object", [f"key-{i}" for i in range(n)]),
    ]:

        def dict_lock(keys=keys):
            d = {}
            lock = threading.Lock()
            for k in keys:
                with lock:
                    d[k] = k
            for k in keys:
                with lock:
                    d.get(k)

        def sharded(keys=keys, kk=kk, vk=vk):
            m = ShardedMap(kk, vk)
            for k in keys:
                m[k] = k
            get = m.get
            for k in keys:
                get(k)

        def sharded_method(keys=keys, kk=kk, vk=vk):
            # the same through bound methods, as a hot loop would cache them
            m = ShardedMap(kk, vk)
            put, get = m.__setitem__, m.get
            for k in keys:
                put(k, k)
            for k in keys:
                get(k)

        med = interleave(rounds, {"dict+Lock": dict_lock, "ShardedMap": sharded, "ShardedMap(bound)": sharded_method})
        per = {k: v / (2 * n) * 1e9 for k, v in med.items()}
        out.append(
            (
                f"set+get, 1 thread, {label}, {n} keys",
                f"dict+Lock {per['dict+Lock']:.0f} ns/op, ShardedMap {per['ShardedMap']:.0f} ns/op "
                f"(bound methods {per['ShardedMap(bound)']:.0f})",
                med["ShardedMap"] / med["dict+Lock"],
                0.8 if kk == "int64" else 1.0,
                "<=",
            )
        )
    return out


# ---------------------------------------------------------------------------
# 4 threads: 90% get / 10% set
# ---------------------------------------------------------------------------


def mixed_threads(rounds: int, n_ops: int, n_threads: int = 4) -> list:
    universe = 100_000
    rng = np.random.default_rng(1)
    plans = []
    for t in range(n_threads):
        keys = rng.integers(0, universe, n_ops).tolist()
        writes = (rng.random(n_ops) < 0.1).tolist()
        plans.append(list(zip(keys, writes)))
    init = list(range(universe))

    def run(worker_factory):
        barrier = threading.Barrier(n_threads + 1)
        ths = []
        for t in range(n_threads):
            work = worker_factory(plans[t])

            def body(work=work):
                barrier.wait()
                work()

            ths.append(threading.Thread(target=body))
        for th in ths:
            th.start()
        t0 = time.perf_counter()
        barrier.wait()
        for th in ths:
            th.join()
        return time.perf_counter() - t0

    def dict_lock():
        d = dict.fromkeys(init, 0)
        lock = threading.Lock()

        def factory(plan):
            def work():
                for k, w in plan:
                    if w:
                        with lock:
                            d[k] = k
                    else:
                        with lock:
                            d.get(k)

            return work

        return run(factory)

    def sharded():
        m = ShardedMap("int64", "int64")
        m.set_many(np.array(init, dtype=np.int64), np.zeros(universe, dtype=np.int64))

        def factory(plan):
            get, put = m.get, m.__setitem__

            def work():
                for k, w in plan:
                    if w:
                        put(k, k)
                    else:
                        get(k)

            return work

        return run(factory)

    times: dict = {"dict+Lock": [], "ShardedMap": []}
    for r in range(rounds):
        for name in (["dict+Lock", "ShardedMap"] if r % 2 == 0 else ["ShardedMap", "dict+Lock"]):
            times[name].append(dict_lock() if name == "dict+Lock" else sharded())
    med = {k: statistics.median(v) for k, v in times.items()}
    total = n_threads * n_ops
    thr = {k: total / v / 1e6 for k, v in med.items()}
    return [
        (
            f"{n_threads} threads, 90% get / 10% set, int64, {n_ops} ops each",
            f"dict+Lock {thr['dict+Lock']:.2f} M ops/s, ShardedMap {thr['ShardedMap']:.2f} M ops/s",
            thr["ShardedMap"] / thr["dict+Lock"],
            1.0,
            ">=",
        )
    ]


# ---------------------------------------------------------------------------
# counting: add_many
# ---------------------------------------------------------------------------


def counting(rounds: int, n: int) -> list:
    rng = np.random.default_rng(2)
    arr = rng.integers(0, n // 10, n).astype(np.int64)  # 10% distinct
    lst = arr.tolist()

    def dict_loop():
        d: dict = {}
        get = d.get
        for k in lst:
            d[k] = get(k, 0) + 1

    def counter():
        Counter(lst)

    def add_many_1():
        ShardedMap("int64", "int64").add_many(arr, 1, threads=1)

    def add_many_2():
        ShardedMap("int64", "int64").add_many(arr, 1, threads=2)

    med = interleave(
        rounds,
        {"dict loop": dict_loop, "Counter": counter, "add_many(threads=1)": add_many_1, "add_many(threads=2)": add_many_2},
    )
    best = min(med["add_many(threads=1)"], med["add_many(threads=2)"])
    ms = {k: v * 1e3 for k, v in med.items()}
    detail = ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
    return [
        (f"add_many {n} int64 keys (10% distinct) vs dict loop", detail, med["dict loop"] / best, 10.0, ">="),
        (f"add_many {n} int64 keys vs Counter(list)", "", med["Counter"] / best, 3.0, ">="),
        ("add_many 2 threads vs 1 thread", "", med["add_many(threads=1)"] / med["add_many(threads=2)"], 1.6, ">="),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, 3 rounds (a smoke run)")
    a = ap.parse_args()
    rounds = 3 if a.quick else a.rounds
    scale = 10 if a.quick else 1
    print(f"gomap {gomap.__version__} ({gomap.build_info()[0]}), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, default shards {ShardedMap('int64', 'int64').num_shards}")
    print("before:", loadavg())
    rows = []
    rows += single_thread(rounds, 200_000 // scale)
    rows += mixed_threads(rounds, 200_000 // scale)
    rows += counting(rounds, 1_000_000 // scale)
    print("after: ", loadavg())
    print()
    print(f"{'benchmark':58} {'ratio':>7}  target  met")
    for name, detail, ratio, target, sense in rows:
        met = ratio <= target if sense == "<=" else ratio >= target
        print(f"{name:58} {ratio:7.2f}  {sense}{target:<5} {'yes' if met else 'NO'}")
        if detail:
            print(f"    {detail}")
    print("\nratios: set+get = ShardedMap time / dict+Lock time; the others = speedup of ShardedMap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
