"""Adversarial: allocations that size or input controls fail with MemoryError and
leave the map as it was (issue 9, class 2: `Map("int64", "int64", 2**31)` aborted
the process with "memory allocation of ... bytes failed").

Nothing here really allocates tens of GB: a failing allocation is forced with
`RLIMIT_AS` in a fresh interpreter (which also turns a regression into a failed
test, not a dead pytest), or with sizes no address space can hold.
"""

from __future__ import annotations

import pickle
import sys
import textwrap

import pytest

from conftest import run_py

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")

# Caps the address space at the current size plus `headroom` MB, runs `body`.
PRELUDE = textwrap.dedent(
    """
    import resource, gomap, pickle, sys
    def vm_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    def cap(headroom_mb):
        resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + headroom_mb * 2**20, resource.RLIM_INFINITY))
    def uncap():
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    """
)


def run_capped(body: str):
    r = run_py(PRELUDE + textwrap.dedent(body), timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    return r.stdout.split()


@pytest.mark.parametrize("kinds", [("int64", "int64"), ("string", "object"), ("object", "float64")])
def test_huge_hint_is_memory_error(kinds):
    out = run_capped(
        f"""
        cap(64)
        for hint in (2**31, 2**34, 2**38):  # all within Go's maxAlloc
            try:
                gomap.Map({kinds[0]!r}, {kinds[1]!r}, hint)
            except MemoryError:
                print("MemoryError")
        m = gomap.Map({kinds[0]!r}, {kinds[1]!r}, 1000)   # still usable
        print(len(m))
        """
    )
    assert out == ["MemoryError"] * 3 + ["0"]


def test_hint_beyond_go_max_alloc_falls_back_to_zero_even_capped():
    # Go's makemap treats a hint whose buckets exceed maxAlloc as 0: nothing to allocate.
    out = run_capped(
        """
        cap(64)
        m = gomap.Map("int64", "int64", 2**62)
        m[1] = 2
        print(m.snapshot()["B"], m[1])
        """
    )
    assert out == ["0", "2"]


def test_unpickling_a_huge_hint_is_memory_error():
    out = run_capped(
        """
        m = gomap.Map("int64", "int64")
        m[1] = 2
        fn, args, *rest = m.__reduce__()
        evil = (fn, args[:4] + (2**35,), *rest)
        class P:
            def __reduce__(self):
                return evil
        payload = pickle.dumps(P())
        cap(64)
        try:
            pickle.loads(payload)
        except MemoryError:
            print("MemoryError")
        try:
            gomap._core._rebuild("int64", "int64", (1, 1, 1, 1), 0, 2**36)
        except MemoryError:
            print("MemoryError")
        uncap()
        print(pickle.loads(pickle.dumps(m)) == m)
        """
    )
    assert out == ["MemoryError", "MemoryError", "True"]


def test_growth_that_cannot_allocate_changes_nothing():
    # Fill until the doubling of the bucket array no longer fits: the assignment
    # that needed it fails, every entry is still there, and once memory is back
    # the map grows normally.
    out = run_capped(
        """
        m = gomap.Map("int64", "int64")
        keys = list(range(1_500_000))
        n = 0
        cap(24)
        try:
            for k in keys:
                m[k] = k
                n += 1
        except MemoryError:
            print("MemoryError")
        uncap()
        assert len(m) == n, (len(m), n)
        assert all(m[k] == k for k in keys[:n])
        assert keys[n] not in m
        for k in keys[n : n + 100_000]:
            m[k] = k
        print(len(m) == n + 100_000)
        """
    )
    assert out == ["MemoryError", "True"]


@pytest.mark.parametrize("op", ["copy", "shrink", "set_many", "get_many"])
def test_bulk_operations_that_cannot_allocate_change_nothing(op):
    out = run_capped(
        f"""
        import numpy as np
        m = gomap.Map("int64", "int64")
        n = 600_000
        m.set_many(np.arange(n), np.arange(n))
        if {op!r} == "shrink":
            m.delete_many(np.arange(0, n - 450_000))
        before = m.stats()
        keys = np.arange(n, 3 * n)
        zeros = np.zeros(20_000_000, dtype=np.int64)
        cap(4)
        try:
            if {op!r} == "copy":
                c = m.copy()
            elif {op!r} == "shrink":
                m.shrink()
            elif {op!r} == "set_many":
                m.set_many(keys, keys)
            else:
                m.get_many(zeros, default=0)
        except MemoryError:
            print("MemoryError")
        uncap()
        after = m.stats()
        print(before["count"] == after["count"])
        lo = n - 450_000 if {op!r} == "shrink" else 0
        print(bool((m.get_many(np.arange(lo, n)) == np.arange(lo, n)).all()))
        """
    )
    assert out == ["MemoryError", "True", "True"], out


def test_out_of_range_hints_are_refused(gomap):
    with pytest.raises(OverflowError):
        gomap.Map("int64", "int64", 2**64)
    with pytest.raises(ValueError):
        gomap.Map("int64", "int64", -1)
