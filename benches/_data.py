"""Shared key sets for the Python benchmarks (deterministic, NumPy-generated).

* int64: `n` distinct random int64 keys that are present (even) and `n` that are
  absent (odd).
* string: 16-character ASCII strings; present ones end in 'h', absent in 'm'.
"""
from __future__ import annotations

import numpy as np

_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", dtype=np.uint8)


def int_keys(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hit = np.unique(rng.integers(-(2**63), 2**63 - 1, size=n + n // 100 + 16, dtype=np.int64) & ~1)
    hit = rng.permutation(hit[:n])
    miss = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64) | 1
    assert len(hit) == n
    return hit, miss


def str_keys(n: int, seed: int = 2) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)

    def make(last: bytes) -> list[str]:
        idx = rng.integers(0, 64, size=(n, 16), dtype=np.uint8)
        raw = _ALPHABET[idx]
        raw[:, 15] = last[0]
        return [b.decode("ascii") for b in raw.view("S16").ravel().tolist()]

    hit = list(dict.fromkeys(make(b"h")))  # 64**15 keys: duplicates are practically impossible
    assert len(hit) == n
    return hit, make(b"m")
