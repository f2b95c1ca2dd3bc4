"""Thread scaling of the batch operations (a script, not a test).

    python benches/bench_threads.py [--n 2000000] [--repeat 5] [--shards N]

1. ``Map.get_many`` on N int64 keys in one thread, versus two threads each
   looking up half of them on the same plain ``Map`` (concurrent reads are
   allowed, and ``get_many`` releases the GIL), and the throughput ratio.
2. ``ShardedMap.get_many`` (per-shard calls in parallel on its pool) versus
   ``Map.get_many`` on the same keys, with the ratio, plus the same for
   ``set_many`` into empty maps.

Times are the best of ``--repeat`` runs; keys are random int64s looked up in
a random order (so most lookups miss the CPU caches, as in real use).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import gomap
import numpy as np
from gomap.sharded import ShardedMap


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def in_threads(parts, fn) -> float:
    """Runs fn(part) for every part in its own thread, released together;
    returns the wall time from the release to the last finish."""
    barrier = threading.Barrier(len(parts) + 1)
    done = []
    errors = []

    def body(p):
        try:
            barrier.wait()
            fn(p)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        done.append(time.perf_counter())

    threads = [threading.Thread(target=body, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return max(done) - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shards", type=int, default=None)
    args = ap.parse_args()
    n, r = args.n, args.repeat

    rng = np.random.default_rng(12345)
    keys = np.unique(rng.integers(-(2**62), 2**62, int(n * 1.01), dtype=np.int64))[:n]
    rng.shuffle(keys)
    vals = keys * 3
    query = rng.permutation(keys)
    halves = [np.ascontiguousarray(query[: n // 2]), np.ascontiguousarray(query[n // 2 :])]

    print(f"gomap {gomap.__version__}, numpy {np.__version__}, os.cpu_count()={os.cpu_count()}, n={n:,}, best of {r}")

    m = gomap.Map("int64", "int64", n)
    m.set_many(keys, vals)
    assert len(m) == n
    assert np.array_equal(m.get_many(query), query * 3)

    t1 = best_of(r, lambda: m.get_many(query))
    t2 = min(in_threads(halves, m.get_many) for _ in range(r))
    print("\n[plain Map.get_many]")
    print(f"  1 thread , all keys      : {t1 * 1e3:8.1f} ms  {n / t1 / 1e6:6.2f} M keys/s")
    print(f"  2 threads, half each     : {t2 * 1e3:8.1f} ms  {n / t2 / 1e6:6.2f} M keys/s")
    print(f"  ratio 2 threads / 1 thread (throughput): {t1 / t2:.2f}x")

    sm = ShardedMap("int64", "int64", shards=args.shards, hint=n)
    sm.set_many(keys, vals)
    assert len(sm) == n
    assert np.array_equal(sm.get_many(query), query * 3)
    ts = best_of(r, lambda: sm.get_many(query))
    st = sm.stats()
    print(f"\n[ShardedMap.get_many]  shards={sm.num_shards} (per-shard count {st['min_count']:,}..{st['max_count']:,}), pool of {min(sm.num_shards, os.cpu_count() or 1)}")
    print(f"  ShardedMap.get_many      : {ts * 1e3:8.1f} ms  {n / ts / 1e6:6.2f} M keys/s")
    print(f"  Map.get_many             : {t1 * 1e3:8.1f} ms")
    print(f"  speed-up ShardedMap / Map: {t1 / ts:.2f}x")

    # the split/scatter overhead alone, for reference
    tsplit = best_of(r, lambda: np.argsort(sm._shard_indices(query), kind="stable"))
    print(f"  (shard choice + argsort alone: {tsplit * 1e3:.1f} ms)")

    def fresh_set(cls_args):
        def run():
            mm = cls_args()
            mm.set_many(keys, vals)
        return run

    tm_set = best_of(max(1, r // 2), fresh_set(lambda: gomap.Map("int64", "int64", n)))
    ts_set = best_of(max(1, r // 2), fresh_set(lambda: ShardedMap("int64", "int64", shards=args.shards, hint=n)))
    print("\n[set_many into an empty map (hint=n)]")
    print(f"  Map.set_many             : {tm_set * 1e3:8.1f} ms")
    print(f"  ShardedMap.set_many      : {ts_set * 1e3:8.1f} ms")
    print(f"  speed-up ShardedMap / Map: {tm_set / ts_set:.2f}x")


if __name__ == "__main__":
    main()
