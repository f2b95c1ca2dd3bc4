"""Adversarial: cycles through iterators are collectable (issue 9, class 3).

An iterator keeps the bucket array it walks alive. If that array holds the
iterator (as a value, or as a retained key after a grow) once the map has let go
of it (clear, grow), only the iterator's `__traverse__` can show the GC the cycle;
before, ~53 MB leaked per 2,000 such maps.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import pytest

N_MAPS = 2_000


class Sentinel:
    """Something weak-referenceable and sizeable to find in the arrays."""

    def __init__(self):
        self.payload = bytearray(4096)


def _collects(build) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        refs = []
        for _ in range(N_MAPS):
            refs.append(build())
        gc.collect()
        gc.collect()
        alive = sum(r() is not None for r in refs)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert alive == 0, f"{alive} of {N_MAPS} sentinels still alive after gc.collect()"
    # The weakref list itself stays: allow it, not the 8 MB of payloads.
    assert grown - base < 2 * 2**20, grown - base


def test_iterator_stored_in_the_array_it_walks_then_cleared(gomap):
    def build():
        m = gomap.Map("int64", "object")
        for j in range(40):
            m[j] = j
        s = Sentinel()
        m[100] = s
        it = iter(m)
        m[101] = it  # the array holds the iterator that holds the array
        m.clear()  # ... and now only the iterator reaches it
        return weakref.ref(s)

    _collects(build)


def test_iterator_as_key_retained_in_the_old_array_after_a_grow(gomap):
    def build():
        m = gomap.Map("object", "object")
        for j in range(7):
            m[j] = j
        it = iter(m)
        s = Sentinel()
        m[it] = s  # 8 entries: no grow yet
        # The grow evacuates `it` while an iterator is open: the old array keeps a
        # copy of the key for the iterator, which holds the old array.
        for j in range(8, 200):  # grow, and finish the grow
            m[j] = j
        assert m.stats()["growing"] is False
        return weakref.ref(s)

    _collects(build)


def test_iterator_over_a_cleared_map_held_by_the_map(gomap):
    def build():
        m = gomap.Map("object", "object")
        s = Sentinel()
        m[s] = s
        it = iter(m.items())
        m.clear()
        m["it"] = it  # map -> iterator -> map, and the iterator's old array -> s
        return weakref.ref(s)

    _collects(build)


def test_shared_detached_array_is_never_freed_while_reachable(gomap):
    # Two iterators share an array the map let go of: neither visits it (each
    # would count its references again), so what it holds is never collected
    # while one of them is alive, and is freed with the last one.
    m = gomap.Map("int64", "object")
    s = Sentinel()
    m[1] = s
    it1, it2 = iter(m), iter(m)
    m.clear()
    r = weakref.ref(s)
    del s
    gc.collect()
    assert r() is not None
    del it1
    gc.collect()
    assert r() is not None
    assert r().payload == bytearray(4096)  # not cleared by the GC either
    del it2
    gc.collect()
    assert r() is None


def test_gc_clear_of_an_iterator_ends_it(gomap):
    m = gomap.Map("int64", "object")
    for j in range(20):
        m[j] = j
    it = iter(m)
    m[99] = it
    m.clear()
    m[1] = 1
    del m
    # `it` is alive: gc must not clear it, and it still iterates (to its end:
    # the map was cleared under it).
    gc.collect()
    assert list(it) == []


@pytest.mark.parametrize("threshold", [1, 5])
def test_collection_during_iteration_and_writes(gomap, threshold):
    # Frequent collections while iterators are created, stepped and abandoned
    # over maps that hold them: nothing crashes, everything is freed.
    old = gc.get_threshold()
    gc.set_threshold(threshold)
    try:
        refs = []
        for i in range(200):
            m = gomap.Map("object", "object")
            s = Sentinel()
            refs.append(weakref.ref(s))
            m[s] = s
            for j in range(30):
                m[j] = iter(m)
            its = [iter(m.items()) for _ in range(3)]
            for it in its:
                next(it)
            m["its"] = its
            if i % 2:
                m.clear()
            else:
                m.shrink()
        del m, s, its, it
    finally:
        gc.set_threshold(*old)
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
