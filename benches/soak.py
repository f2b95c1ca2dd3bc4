"""Soak test for gomap.Map (``make soak``; not part of CI).

Runs at least 1M mixed operations — insert, delete, lookup, iterate (finished and
abandoned iterators, iterators stored in the maps they walk), pickle round trips,
copy, clear, shrink, batch calls, nested maps — from the main thread and worker
threads (which also hammer one shared map and expect ConcurrentMapError), and
checks that memory stays flat after a warm-up:

* RSS from /proc/self/statm, after ``gc.collect()``;
* the number of objects the GC tracks (``len(gc.get_objects())``), since
  ``sys.gettotalrefcount`` only exists on debug builds;
* optionally (``--tracemalloc``) the bytes Python's allocator traces.

Operations are counted per call (a batch call is one; an iteration step is one). Prints the figures and exits 1 if RSS grew by more than ``--max-growth-mb``
(default 1 MB) between the end of the warm-up and the end, or if the object count
grew by more than ``--max-objects`` (default 1000).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import random
import sys
import threading
import time
import tracemalloc

import gomap

PAGE = os.sysconf("SC_PAGE_SIZE")
BATCH: object = None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def settle() -> None:
    for _ in range(3):
        gc.collect()


class Payload:
    """A small object with a finalizer that touches its map (allowed: runs after claims)."""

    __slots__ = ("m", "k", "n", "__weakref__")

    def __init__(self, m, k, n):
        self.m, self.k, self.n = m, k, n

    def __del__(self):
        m = self.m
        if m is not None:
            try:
                m[self.k] = self.n
            except gomap.ConcurrentMapError:
                pass  # another thread holds the map


def cycle(rng: random.Random, shared, counts) -> int:
    """One round of mixed work; returns the number of map operations done."""
    ops = 0
    kind = rng.choice(["int64", "string", "object", "float64", "bytes"])
    m = gomap.Map(kind, "object")
    model = {}

    def key(i):
        return {"int64": i, "string": f"k{i}", "object": ("o", i), "float64": i + 0.5, "bytes": b"b%d" % i}[kind]

    n = rng.randrange(10, 300)
    for i in range(n):
        k = key(rng.randrange(400))
        v = Payload(m, key(-1), i) if i % 5 == 0 else i
        m[k] = v
        model[k] = v
        ops += 1
    for i in range(n // 2):
        k = key(rng.randrange(400))
        m.pop(k, None)
        model.pop(k, None)
        ops += 1
    for k in list(model)[:20]:
        assert k in m
        ops += 1
    # iterators: finished, abandoned, stored in the map they walk
    it = iter(m.items())
    for _ in zip(range(5), it):
        ops += 1
    if rng.random() < 0.5:
        m[key(-2)] = it  # a cycle through the iterator's array after the clear below
    ops += sum(1 for _ in m)
    # nested map
    inner = gomap.Map("int64", "object")
    inner[0] = m
    m[key(-3)] = inner
    ops += 2
    # pickle, copy
    if rng.random() < 0.3:
        plain = gomap.Map("int64", "float64")
        plain.update({i: i / 2 for i in range(rng.randrange(50))})
        assert pickle.loads(pickle.dumps(plain)) == plain
        ops += len(plain) + 3  # the updates, dumps, loads, ==
    c = m.copy()
    ops += 1
    del c
    # batch
    b = gomap.Map("int64", "int64")
    b.set_many(list(range(100)), list(range(100)))
    b.delete_many(list(range(0, 100, 3))) if "numpy" in sys.modules else None
    ops += 2
    # shrink or clear (ending open iterators), then drop everything
    if rng.random() < 0.5:
        m.shrink()
    else:
        m.clear()
    ops += 1
    # the shared maps: other threads may be in them (a typed map's batch call
    # releases the GIL while it holds the claim)
    objs, typed = shared
    for i in range(20):
        try:
            objs[rng.randrange(64)] = i
            if i % 4 == 0:
                for _ in objs.items():
                    pass
            if i % 5 == 0:
                typed.set_many(BATCH, BATCH)
                ops += 1
            typed.get(rng.randrange(64))
            typed[rng.randrange(64)] = i
        except gomap.ConcurrentMapError:
            counts["concurrent"] += 1
        ops += 3
    return ops


def worker(seed, shared, counts, stop, total, lock):
    rng = random.Random(seed)
    while not stop.is_set():
        done = cycle(rng, shared, counts)
        with lock:
            total[0] += done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1_000_000, help="map operations after the warm-up (default 1M)")
    ap.add_argument("--warmup", type=int, default=300_000, help="map operations of warm-up (default 300k)")
    ap.add_argument("--threads", type=int, default=2, help="worker threads besides the main one")
    ap.add_argument("--max-growth-mb", type=float, default=1.0)
    ap.add_argument("--max-objects", type=int, default=1000)
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    try:
        import numpy  # noqa: F401  (batch calls return arrays)
    except ImportError:
        pass
    unraisable = []
    sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    if args.tracemalloc:
        tracemalloc.start()
    sys.setswitchinterval(1e-5)  # threads interleave inside map calls
    global BATCH
    try:
        import numpy as np

        BATCH = np.arange(20_000, dtype=np.int64)
    except ImportError:
        BATCH = list(range(20_000))
    shared = (gomap.Map("int64", "object"), gomap.Map("int64", "int64"))
    counts = {"concurrent": 0}
    total = [0]
    lock = threading.Lock()
    stop = threading.Event()
    rng = random.Random(args.seed)
    t0 = time.time()

    settle()
    rss_start = rss_bytes()

    def run_until(target):
        while True:
            done = cycle(rng, shared, counts)
            with lock:
                total[0] += done
                if total[0] >= target:
                    return

    threads = [
        threading.Thread(target=worker, args=(args.seed * 100 + i, shared, counts, stop, total, lock), daemon=True)
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    run_until(args.warmup)
    stop.set()
    for t in threads:
        t.join()
    settle()
    rss_warm = rss_bytes()
    objs_warm = len(gc.get_objects())
    traced_warm = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
    ops_warm = total[0]

    stop.clear()
    threads = [
        threading.Thread(target=worker, args=(args.seed * 100 + 50 + i, shared, counts, stop, total, lock), daemon=True)
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    run_until(ops_warm + args.ops)
    stop.set()
    for t in threads:
        t.join()
    settle()
    rss_end = rss_bytes()
    objs_end = len(gc.get_objects())
    traced_end = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
    elapsed = time.time() - t0

    mb = 2**20
    growth = (rss_end - rss_warm) / mb
    print(f"gomap soak: {total[0]:,} map operations ({ops_warm:,} warm-up + {total[0] - ops_warm:,} measured) "
          f"in {elapsed:.1f} s, {args.threads + 1} threads, {counts['concurrent']:,} ConcurrentMapError (expected)")
    print(f"RSS: start {rss_start / mb:.1f} MB, after warm-up {rss_warm / mb:.1f} MB, end {rss_end / mb:.1f} MB "
          f"(growth after warm-up {growth:+.2f} MB, limit {args.max_growth_mb} MB)")
    print(f"GC-tracked objects: after warm-up {objs_warm:,}, end {objs_end:,} (delta {objs_end - objs_warm:+,})")
    if args.tracemalloc:
        print(f"tracemalloc: after warm-up {traced_warm / mb:.2f} MB, end {traced_end / mb:.2f} MB "
              f"(delta {(traced_end - traced_warm) / 1024:+.1f} KB)")
    print(f"'Exception ignored' (unraisable) messages: {len(unraisable)}" + (f", first: {unraisable[0]}" if unraisable else ""))
    ok = growth <= args.max_growth_mb and objs_end - objs_warm <= args.max_objects and not unraisable
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
