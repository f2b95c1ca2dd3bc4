"""Bytes per entry, int64 -> int64 at 1M entries: gomap.Map vs dict.

``python benches/memory.py gomap|dict [N]`` prints one JSON object. Run each
implementation in its own process (run_all.py does) so RSS deltas are clean.

* RSS delta (``/proc/self/statm``) around building the map from NumPy arrays
  that exist before the baseline; for dict it includes the int objects.
* ``stats()["bytes"]`` for gomap (bucket memory under Go's layout); for dict,
  ``sys.getsizeof(d)`` plus the int objects' sizes rounded to pymalloc's 16-byte
  blocks.
* The same after deleting 90% of the entries, and for gomap after ``shrink()``
  (for dict, after ``d = dict(d)``, the closest thing it has).
"""
from __future__ import annotations

import gc
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _data import int_keys  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def pyobj(x) -> int:
    return (sys.getsizeof(x) + 15) // 16 * 16


def dict_bytes(d: dict) -> int:
    return sys.getsizeof(d) + sum(pyobj(k) + pyobj(v) for k, v in d.items())


def main() -> None:
    impl = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    keys, _ = int_keys(n)
    vals = np.random.default_rng(7).integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    drop = keys[: n * 9 // 10]
    gc.collect()
    out: dict = {"impl": impl, "n": n}
    r0 = rss()
    if impl == "gomap":
        import gomap

        m = gomap.Map("int64", "int64")
        m.set_many(keys, vals)
        measure = lambda: m.stats()["bytes"]  # noqa: E731
    else:
        m = dict(zip(keys.tolist(), vals.tolist()))
        measure = lambda: dict_bytes(m)  # noqa: E731
    gc.collect()
    out["full"] = {"count": len(m), "rss_delta": rss() - r0, "bytes": measure()}
    if impl == "gomap":
        m.delete_many(drop)
    else:
        for k in drop.tolist():
            del m[k]
    gc.collect()
    out["deleted_90"] = {"count": len(m), "rss_delta": rss() - r0, "bytes": measure()}
    if impl == "gomap":
        m.shrink()
    else:
        m = dict(m)
    gc.collect()
    out["shrunk"] = {"count": len(m), "rss_delta": rss() - r0, "bytes": measure()}
    for k in ("full", "deleted_90", "shrunk"):
        e = out[k]
        e["rss_per_entry"] = e["rss_delta"] / e["count"]
        e["bytes_per_entry"] = e["bytes"] / e["count"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
