"""gomap.SyncMap under 8 racing threads.

The thread switch interval is cut to a microsecond during these tests so that
GIL builds interleave inside SyncMap's methods (free-threaded builds race
anyway).  Each test checks an outcome that a lost update or a torn
compare-and-swap would break."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from conftest import N_THREADS, run_threads

from gomap import syncmap as _syncmap
from gomap import SyncMap

pytestmark = pytest.mark.usefixtures("tiny_switch_interval")


def check_invariants(m):
    s = m._debug_state()
    read, dirty, exp = s["read"], s["dirty"], s["expunged"]
    assert (dirty is not None) if s["amended"] else not dirty, s
    if dirty is None:
        assert not exp and s["misses"] == 0, s
    else:
        assert exp <= read and not (exp & dirty) and read - exp <= dirty, s
        assert s["shared"] == read - exp, s


def _deleted_read_entries(keys):
    """A map whose read.m holds nil entries for keys (dirty is None): every
    load_or_store / swap / delete on them takes the lock-free entry paths."""
    m = SyncMap()
    for k in keys:
        m.store(k, "old")
    m.range(lambda k, v: True)
    for k in keys:
        m.delete(k)
    s = m._debug_state()
    assert s["dirty"] is None and s["deleted"] == set(keys)
    return m


def _key_order(keys, i, shuffled):
    """All threads walk the keys in one order (they collide on every key), or
    each in its own shuffled order."""
    order = keys[:]
    if shuffled:
        random.Random(i).shuffle(order)
    return order


@pytest.mark.timeout(60)
@pytest.mark.parametrize("setup", ["fresh", "deleted-read-entries"])
def test_load_or_store_has_one_winner_per_key(setup):
    keys = list(range(2000))
    for shuffled in (False, True) * 5:
        m = SyncMap() if setup == "fresh" else _deleted_read_entries(keys)

        def worker(i, m=m, shuffled=shuffled):
            return {k: m.load_or_store(k, (i, k)) for k in _key_order(keys, i, shuffled)}

        results = run_threads(worker)
        for k in keys:
            winners = [i for i in range(N_THREADS) if results[i][k][1] is False]
            assert len(winners) == 1, (k, winners)
            want = (winners[0], k)
            assert all(results[i][k][0] == want for i in range(N_THREADS)), k
            assert m.load(k) == (want, True)
        check_invariants(m)


@pytest.mark.timeout(60)
def test_cas_loop_counters_lose_nothing():
    m = SyncMap()
    keys = ["c0", 1]  # few keys: many collisions
    m.store("c0", 0)  # c0 starts in dirty; key 1 is created by the racers
    per_thread = 10000

    def worker(i):
        rng = random.Random(i)
        mine = Counter()
        for _ in range(per_thread):
            k = rng.choice(keys)
            while True:
                v, ok = m.load(k)
                if not ok:
                    if not m.load_or_store(k, 1)[1]:
                        break
                    continue
                if m.compare_and_swap(k, v, v + 1):
                    break
            mine[k] += 1
        return mine

    total = sum(run_threads(worker), Counter())
    assert sum(total.values()) == N_THREADS * per_thread
    for k in keys:
        assert m.load(k) == (total[k], True), k
    check_invariants(m)


@pytest.mark.timeout(60)
def test_swap_hands_out_every_previous_value_once():
    keys = [0, 1]  # few keys: many collisions
    m = _deleted_read_entries(keys)  # read entries: the lock-free trySwap path
    per_thread = 10000

    def worker(i):
        rng = random.Random(i)
        stored, prev = [], []
        for j in range(per_thread):
            k = rng.choice(keys)
            p, loaded = m.swap(k, (i, j))
            stored.append((k, (i, j)))
            prev.append((k, p if loaded else None))
        return stored, prev

    results = run_threads(worker)
    stored = Counter(kv for s, _ in results for kv in s)
    returned = Counter(kv for _, p in results for kv in p)
    # every token stored under k comes back exactly once, as a previous value
    # of k or as k's final value; each key's first swap returns "absent"
    for k in keys:
        assert returned.pop((k, None)) == 1, k
        returned[(k, m.load(k)[0])] += 1
    assert returned == stored
    check_invariants(m)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["compare_and_delete", "load_and_delete"])
def test_delete_races_have_one_winner(how):
    keys = list(range(2000))
    for layout, shuffled in [("read", False), ("dirty", False), ("read", True), ("dirty", True)] * 3:
        m = SyncMap()
        for k in keys:
            m.store(k, f"v{k}")
        if layout == "read":
            m.range(lambda k, v: True)

        def worker(i, m=m, shuffled=shuffled):
            order = _key_order(keys, i, shuffled)
            if how == "compare_and_delete":
                return [k for k in order if m.compare_and_delete(k, f"v{k}")]
            return [k for k in order if m.load_and_delete(k) == (f"v{k}", True)]

        wins = Counter(k for won in run_threads(worker) for k in won)
        assert wins == Counter(keys), layout
        assert len(m) == 0
        check_invariants(m)


@pytest.mark.timeout(60)
def test_churn_keeps_invariants_and_range_visits_keys_once():
    m = SyncMap()
    ops_per_thread = 3000

    def worker(i):
        rng = random.Random(100 + i)
        own = {}  # keys owned by this thread: exact expectations
        for j in range(ops_per_thread):
            r = rng.random()
            shared = rng.randrange(16)
            if r < 0.25:
                m.store(shared, j)
            elif r < 0.4:
                m.delete(shared)
            elif r < 0.55:
                m.load(shared)
            elif r < 0.65:
                m.load_or_store(shared, j)
            elif r < 0.7:
                seen = set()

                def f(k, v, seen=seen):
                    assert k not in seen
                    seen.add(k)

                m.range(f)
            else:
                k = ("own", i, rng.randrange(20))
                if rng.random() < 0.7:
                    m.store(k, j)
                    own[k] = j
                else:
                    m.delete(k)
                    own.pop(k, None)
            if j % 200 == 0:
                for k, v in own.items():
                    assert m.load(k) == (v, True)
        return own

    owns = run_threads(worker)
    check_invariants(m)
    for own in owns:
        for k, v in own.items():
            assert m.load(k) == (v, True)
    own_keys = {k for k in m if isinstance(k, tuple)}
    assert own_keys == {k for own in owns for k in own}
    assert len(m) == len(list(m))


class Meddling:
    """An object key that collides with every other one and whose ``__eq__``
    re-enters the map (a lookup, sometimes a store): under the mutex that must
    raise ConcurrentMapError, never deadlock."""

    def __init__(self, m, n):
        self.m, self.n = m, n

    def __hash__(self):
        return 7

    def __eq__(self, other):
        if self.n % 3 == 0:
            self.m.store(("side", self.n), self.n)
        else:
            self.m.load(("side", self.n))
        return isinstance(other, Meddling) and other.n == self.n


@pytest.mark.timeout(120)
def test_every_op_under_8_threads_with_reentrant_keys():
    import copy
    import pickle

    from gomap import ConcurrentMapError

    m = SyncMap()
    keys = [Meddling(m, i) for i in range(6)] + list(range(10))
    m.store(keys[0], 0)  # the dirty map's first Meddling: later ones compare with it

    def worker(i):
        rng = random.Random(i)
        errors = 0
        for j in range(1500):
            k = rng.choice(keys)
            op = rng.randrange(15)
            try:
                if op == 0:
                    m.load(k)
                elif op == 1:
                    m.store(k, j)
                elif op == 2:
                    m.load_or_store(k, j)
                elif op == 3:
                    m.load_and_delete(k)
                elif op == 4:
                    m.delete(k)
                elif op == 5:
                    m.swap(k, j)
                elif op == 6:
                    m.compare_and_swap(k, j - 1, j)
                elif op == 7:
                    m.compare_and_delete(k, j)
                elif op == 8:
                    m.range(lambda a, b: rng.random() < 0.9)
                elif op == 9 and j % 200 == 0:
                    m.clear()
                elif op == 10:
                    len(m)
                elif op == 11:
                    list(m)
                elif op == 12:
                    m.get(k)
                elif op == 13 and j % 50 == 0:
                    copy.copy(m)
                elif op == 14 and j % 100 == 0:
                    pickle.loads(pickle.dumps(m))
            except ConcurrentMapError:
                errors += 1
        return errors

    refused = sum(run_threads(worker))
    assert refused > 0  # the re-entrant compares did happen under the mutex
    check_invariants(m)
    assert len(m) == len(list(m))
