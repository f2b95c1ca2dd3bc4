"""get-hit ns/op against map size (1k -> 10M), gomap.Map("int64", "int64") vs
dict, from Python: 1M lookups of present keys in random order (fresh int
objects, so dict gets no identity shortcut), median of 3 passes.

``python benches/sweep.py [sizes]`` prints one JSON object
``{"get_hit": {"gomap": {size: ns}, "dict": {size: ns}}}``.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _data import int_keys  # noqa: E402

import gomap  # noqa: E402

LOOKUPS = 1_000_000


def do_get(m, ks):
    for k in ks:
        m[k]


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1000,10000,100000,1000000,10000000").split(",")]
    res: dict = {"gomap": {}, "dict": {}}
    for n in sizes:
        keys, _ = int_keys(n, seed=3)
        probe = keys[np.random.default_rng(4).integers(0, n, size=LOOKUPS)].tolist()
        for impl in ("gomap", "dict"):
            if impl == "gomap":
                m = gomap.Map("int64", "int64")
                m.set_many(keys, np.arange(n, dtype=np.int64))
            else:
                m = dict(zip(keys.tolist(), range(n)))
            gc.collect()
            times = []
            for _ in range(3):
                t = time.perf_counter_ns()
                do_get(m, probe)
                times.append((time.perf_counter_ns() - t) / LOOKUPS)
            res[impl][str(n)] = sorted(times)[1]
            del m
            gc.collect()
    print(json.dumps({"get_hit": res}))


if __name__ == "__main__":
    main()
