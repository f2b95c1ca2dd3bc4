"""Growth tail latency: the worst single insert while growing from empty to
10M int64 entries, gomap.Map("int64", "int64") vs dict, from Python.

``python benches/tail_latency.py gomap|dict [N]`` prints one JSON object:
max, percentiles and the slowest inserts (ns, with their index), timed with
``time.perf_counter_ns()`` around each ``m[k] = v`` (wall clock, as asked), and
inside that ``time.thread_time_ns()`` (this thread's CPU time, user + system, so
page faults count but being descheduled does not: the figure to trust on a
shared machine). The cyclic GC is disabled
during the loop for both sides. One run per implementation (each in its own
process): the worst case is a single sample and is noisy on a busy machine.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
from array import array

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _data import int_keys  # noqa: E402


def main() -> None:
    impl = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
    keys = int_keys(n, seed=11)[0].tolist()
    if impl == "gomap":
        import gomap

        m = gomap.Map("int64", "int64")
    else:
        m = {}
    lat = array("q", bytes(8 * n))
    cpu = array("q", bytes(8 * n))
    pc = time.perf_counter_ns
    tt = time.thread_time_ns
    # the timer's own cost, measured the same way
    empty = array("q", bytes(8 * 100_000))
    for i in range(100_000):
        t0 = pc()
        t1 = pc()
        empty[i] = t1 - t0
    gc.collect()
    gc.disable()
    t_start = pc()
    i = 0
    for k in keys:
        t0 = pc()
        c0 = tt()
        m[k] = i
        c1 = tt()
        t1 = pc()
        lat[i] = t1 - t0
        cpu[i] = c1 - c0
        i += 1
    total = pc() - t_start
    gc.enable()
    a = np.frombuffer(lat, dtype=np.int64)
    c = np.frombuffer(cpu, dtype=np.int64)
    ctop = np.argsort(c)[-5:][::-1]
    top = np.argsort(a)[-5:][::-1]
    out = {
        "impl": impl,
        "n": n,
        "count": len(m),
        "max_ns": int(a.max()),
        "p50_ns": float(np.percentile(a, 50)),
        "p99_ns": float(np.percentile(a, 99)),
        "p99_99_ns": float(np.percentile(a, 99.99)),
        "over_100us": int((a > 100_000).sum()),
        "over_1ms": int((a > 1_000_000).sum()),
        "slowest": [[int(j), int(a[j])] for j in top],
        "mean_ns": float(a.mean()),
        "cpu_max_ns": int(c.max()),
        "cpu_p99_99_ns": float(np.percentile(c, 99.99)),
        "cpu_slowest": [[int(j), int(c[j])] for j in ctop],
        "loop_total_s": total / 1e9,
        "timer_overhead_p50_ns": float(np.median(np.frombuffer(empty, dtype=np.int64))),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
