"""Adversarial: freeing deeply nested maps must not recurse without bound.

A chain of maps, each holding the next (as a value, as a key through an iterator,
through iterators, through views), used to overflow the C stack when its head was
dropped (issue 9, class 1: ~25,000 levels crashed; dict frees 300,000). Each case
runs in a fresh interpreter so a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import textwrap

import pytest

from conftest import run_py

DEPTH = 300_000

BUILD = {
    # m[0] = next map
    "value": 'm = gomap.Map("int64", "object")\n    if head is not None: m[0] = head',
    # the next map reached through an iterator used as an object key
    "key": 'm = gomap.Map("object", "int64")\n    if head is not None: m[iter(head)] = 0',
    # an iterator over the next map as a value
    "iterator": 'm = gomap.Map("int64", "object")\n    if head is not None: m[0] = iter(head.items())',
    # a keys view of the next map
    "view": 'm = gomap.Map("string", "object")\n    if head is not None: m["k"] = head.keys()',
    # a ShardedMap holding the next one as a value (its shards free like Maps)
    "sharded": 'm = gomap.ShardedMap("int64", "object", shards=1)\n    if head is not None: m[0] = head',
    # a SyncMap holding the next one as a value
    "syncmap": 'm = gomap.SyncMap("int64", "object")\n    if head is not None: m.store(0, head)',
    # the chain hangs off an iterator's detached array: the map was cleared after
    # the iterator started, so only the iterator keeps the array (and the next map)
    "detached": (
        'm = gomap.Map("int64", "object")\n'
        "    if head is not None:\n"
        '        tmp = gomap.Map("int64", "object")\n'
        "        tmp[0] = head\n"
        "        it = iter(tmp)\n"
        "        tmp.clear()\n"
        "        m[1] = it\n"
        "        del tmp, it\n"
    ),
}


@pytest.mark.parametrize("how", sorted(BUILD))
def test_deep_chain_frees_without_stack_overflow(how):
    code = textwrap.dedent(
        """
        import gc, sys, gomap
        gc.disable()  # free by refcount alone, in one cascade
        head = None
        for i in range({depth}):
            {build}
            head = m
        del m
        head = None
        print("freed")
        """
    ).format(depth=DEPTH if how != "detached" else DEPTH // 3, build=BUILD[how])
    r = run_py(code, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["freed"], (r.returncode, r.stderr[-2000:])


def test_deep_chain_in_a_thread_with_a_small_stack():
    # Threads get smaller stacks than the main thread: the work list must keep the
    # depth of the C stack independent of the depth of the chain.
    code = textwrap.dedent(
        """
        import threading, gc, gomap
        gc.disable()
        threading.stack_size(256 * 1024)
        def work():
            head = None
            for i in range(100_000):
                m = gomap.Map("int64", "object")
                if head is not None:
                    m[0] = head
                head = m
            del m
            head = None
            print("freed")
        t = threading.Thread(target=work)
        t.start(); t.join()
        """
    )
    r = run_py(code, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["freed"], (r.returncode, r.stderr[-2000:])


def test_freeing_runs_every_finalizer_once(gomap):
    # The work list defers, it must not lose: every object of a wide and deep
    # structure is finalized exactly once, and a __del__ that builds and drops
    # more maps while the list drains is handled too.
    import gc
    import weakref

    class Leaf:
        freed = 0

        def __del__(self):
            Leaf.freed += 1
            side = gomap.Map("int64", "object")
            side[0] = gomap.Map("int64", "object")
            del side

    refs = []
    head = None
    for i in range(2_000):
        m = gomap.Map("int64", "object")
        for j in range(3):
            leaf = Leaf()
            refs.append(weakref.ref(leaf))
            m[j] = leaf
        if head is not None:
            m[99] = head
        head = m
    del m, leaf
    gc.collect()
    Leaf.freed = 0
    head = None
    assert Leaf.freed == 6_000
    assert all(r() is None for r in refs)
