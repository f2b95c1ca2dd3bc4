"""Threads against ``gomap.ShardedMap`` (8 racing threads) and against a plain
``gomap.Map`` (whose misuse must raise ``ConcurrentMapError``, never crash).

The thread switch interval is cut to a microsecond so that GIL builds
interleave inside ShardedMap's Python methods.  Each test checks an outcome
that a lost update, a torn compound operation, a deadlock or a crash would
break; each has a 60 s timeout (a deadlock fails instead of hanging).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))

import gomap
import numpy as np
import pytest
from conftest import N_THREADS, check_snapshot, run_threads
from gomap.sharded import ShardedMap

ConcurrentMapError = gomap.ConcurrentMapError
pytestmark = pytest.mark.usefixtures("tiny_switch_interval")


# ---------------------------------------------------------------------------
# ShardedMap: compound operations are atomic
# ---------------------------------------------------------------------------


class Num:
    """A counter value whose __eq__ yields the GIL: a compare_and_swap that
    were not atomic would lose updates here even on a GIL build."""

    __slots__ = ("n",)
    __hash__ = None

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        time.sleep(0)
        return isinstance(other, Num) and self.n == other.n


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kinds", [("int64", "int64"), ("object", "object")])
def test_cas_counters_lose_nothing(kinds):
    """8 threads x N increments of a few shared counters, each a
    compare_and_swap retry loop: the final counts are exact."""
    kk, vk = kinds
    if kk == "int64":
        n_inc, keys = 1500, [0, 1, 2]
        zero, inc, val = 0, (lambda c: c + 1), (lambda c: c)
    else:
        n_inc, keys = 400, ["a", ("b", 1), 2.5]
        zero, inc, val = Num(0), (lambda c: Num(c.n + 1)), (lambda c: c.n)
    m = ShardedMap(kk, vk, shards=8)
    for k in keys:
        m[k] = zero

    def worker(i):
        rng = random.Random(i)
        retries = 0
        for _ in range(n_inc):
            k = keys[rng.randrange(len(keys))]
            while True:
                cur = m[k]
                if m.compare_and_swap(k, cur, inc(cur)):
                    break
                retries += 1
        return retries

    retries = run_threads(worker)
    total = sum(val(m[k]) for k in keys)
    assert total == N_THREADS * n_inc, f"lost {N_THREADS * n_inc - total} increments"
    assert len(m) == len(keys)
    print(f"\nCAS counters {kinds}: {N_THREADS}x{n_inc} increments exact, {sum(retries)} CAS retries")
    if kk == "object":
        assert sum(retries) > 0  # the threads did race


@pytest.mark.timeout(60)
def test_swap_and_setdefault_counters():
    """swap hands out every token exactly once; set_if_absent + pop as a
    per-key mutex never admits two threads."""
    m = ShardedMap("int64", "int64", shards=8)
    m[0] = -1

    def swapper(i):
        got = []
        for j in range(2000):
            old, loaded = m.swap(0, i * 10_000 + j)
            assert loaded
            got.append(old)
        return got

    seen = [x for lst in run_threads(swapper) for x in lst] + [m[0]]
    # every value stored is returned by exactly one later swap (or is the last)
    assert sorted(seen) == sorted([-1] + [i * 10_000 + j for i in range(N_THREADS) for j in range(2000)])

    inside = Counter()
    violations = []

    def locker(i):
        for _ in range(500):
            k = i % 2  # two "mutexes", four threads each
            while not m.set_if_absent(100 + k, i):
                pass
            inside[k] += 1
            if inside[k] != 1:
                violations.append(k)
            inside[k] -= 1
            assert m.compare_and_delete(100 + k, i)

    run_threads(locker)
    assert not violations and 100 not in m and 101 not in m


@pytest.mark.timeout(60)
def test_set_if_absent_one_winner_per_key():
    n_keys = 3000
    m = ShardedMap("int64", "int64", shards=16)

    def worker(i):
        order = list(range(n_keys))
        random.Random(i).shuffle(order)
        return [k for k in order if m.set_if_absent(k, i)]

    wins = run_threads(worker)
    winners = Counter(k for lst in wins for k in lst)
    assert len(winners) == n_keys and set(winners.values()) == {1}, "a key with 0 or 2+ winners"
    for i, lst in enumerate(wins):
        for k in lst:
            assert m[k] == i, "the value is not the winner's"
    assert len(m) == n_keys
    print(f"\nset_if_absent: {n_keys} keys, one winner each; wins per thread {[len(w) for w in wins]}")


# ---------------------------------------------------------------------------
# ShardedMap: object keys with Python __eq__ (forced collisions) -- no deadlock
# ---------------------------------------------------------------------------


class SlowKey:
    """Hash collides in 5 classes; __eq__ is Python code that yields the GIL."""

    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __hash__(self):
        return self.x % 16

    def __eq__(self, other):
        if not isinstance(other, SlowKey):
            return NotImplemented
        if self.x % 7 == 0:
            time.sleep(0)  # a real GIL release inside the shard's lock
        return self.x == other.x

    def __repr__(self):
        return f"SlowKey({self.x})"


@pytest.mark.timeout(60)
def test_object_keys_python_eq_no_deadlock():
    m = ShardedMap("object", "object", shards=4)
    per = 100

    def worker(i):
        mine = [SlowKey(i + N_THREADS * j) for j in range(per)]  # disjoint per thread
        rng = random.Random(i)
        for rnd in range(3):
            for k in mine:
                m[k] = (i, rnd)
            for k in mine:
                assert m[k] == (i, rnd)
            rng.shuffle(mine)
            assert m.get_many(mine).tolist() == [(i, rnd)] * per
            half = mine[: per // 2]
            assert m.delete_many(half).all()
            for k in half:
                assert m.set_if_absent(k, (i, rnd))
            for k in mine[:20]:
                assert m.compare_and_swap(k, (i, rnd), (i, rnd))
                assert m.pop(k) == (i, rnd)
                m.setdefault(k, (i, rnd))
            # other threads' keys: reads race with their writes, never raise
            for k in range(0, 200, 3):
                m.get(SlowKey(k))
                _ = SlowKey(k) in m
            len(m)
            list(m.items())

    run_threads(worker)
    assert len(m) == N_THREADS * per
    for i in range(N_THREADS):
        for j in range(per):
            assert m[SlowKey(i + N_THREADS * j)] == (i, 2)
    for i in range(m.num_shards):
        check_snapshot(m._shard_snapshot(i))


# ---------------------------------------------------------------------------
# ShardedMap: batch operations from many threads
# ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_sharded_batches_from_8_threads():
    old = gomap._core._sharded_parallel_min_keys(256)  # use several threads
    try:
        _batches_from_8_threads()
    finally:
        gomap._core._sharded_parallel_min_keys(old)


def _batches_from_8_threads():
    m = ShardedMap("int64", "int64", shards=8)
    shared = np.arange(-5000, 0, dtype=np.int64)
    m.set_many(shared, shared * 2)
    n = 4000

    def worker(i):
        mine = np.arange(i * n, (i + 1) * n, dtype=np.int64)
        for rnd in range(6):
            m.set_many(mine, mine * 10 + rnd)
            assert (m.get_many(mine) == mine * 10 + rnd).all()
            assert (m.get_many(shared) == shared * 2).all()
            assert m.contains_many(mine).all()
            assert m.delete_many(mine[::2].copy()).all()
            assert not m.contains_many(mine[::2].copy()).any()
            m.set_many(mine[::2].copy(), mine[::2] * 10 + rnd)
            for k in mine[:50].tolist():
                assert m.compare_and_swap(k, k * 10 + rnd, k * 10 + rnd)

    run_threads(worker)
    assert len(m) == len(shared) + N_THREADS * n
    allk = np.arange(0, N_THREADS * n, dtype=np.int64)
    assert (m.get_many(allk) == allk * 10 + 5).all()


# ---------------------------------------------------------------------------
# plain Map: misuse from two threads raises, never crashes
# ---------------------------------------------------------------------------


class Gate:
    """A rendezvous a key's __eq__ runs while the Map holds its claim."""

    def __init__(self):
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def pause(self):
        if self.armed:
            self.armed = False
            self.entered.set()
            # keep the claim until the other thread has tried (bounded: never hang)
            self.release.wait(5)


class GateKey:
    """Colliding key (hash ``h``): its __eq__ runs the gate's pause."""

    __slots__ = ("gate", "h", "x")

    def __init__(self, x, gate, h):
        self.x = x
        self.gate = gate
        self.h = h

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        if not isinstance(other, GateKey):
            return NotImplemented
        self.gate.pause()
        return self.x == other.x


@pytest.mark.timeout(60)
def test_plain_map_misuse_raises_across_1000_overlaps():
    """1,000 provoked overlaps: thread A is inside a Map operation (its key's
    __eq__ pauses with the read or write claim held) while thread B writes or
    reads. B gets ConcurrentMapError every time; afterwards the map holds
    exactly the keys whose stores succeeded and is structurally sound."""
    gate = Gate()
    m = gomap.Map("object", "int64")
    n_classes = 32
    stored = {}
    for h in range(n_classes):  # one anchor per hash class: every probe collides with one
        m[GateKey(-1 - h, gate, h)] = -1 - h
        stored[-1 - h] = -1 - h
    rounds = 1000
    errors = Counter()
    a_errors = []
    rng = random.Random(5)
    plan = [rng.choice(["read/write", "write/write", "write/read", "iterate/write"]) for _ in range(rounds)]
    b_go = threading.Event()
    b_done = threading.Event()
    job = {}

    def thread_b():
        while True:
            b_go.wait()
            b_go.clear()
            if job.get("stop"):
                return
            r, mode = job["r"], job["mode"]
            try:
                if mode.endswith("/write"):
                    m[GateKey(10_000 + r, gate, r % n_classes)] = r
                    job["outcome"] = "stored"
                else:
                    m.get(GateKey(-1, gate, 0))
                    job["outcome"] = "read"
            except ConcurrentMapError as e:
                errors[str(e)] += 1
                job["outcome"] = "refused"
            except BaseException as e:  # noqa: BLE001
                job["outcome"] = f"unexpected {e!r}"
            gate.release.set()
            b_done.set()

    def trigger():
        # wakes B once A is inside its operation
        if gate.entered.wait(5):
            b_go.set()

    tb = threading.Thread(target=thread_b, daemon=True)
    tb.start()
    outcomes = Counter()
    for r, mode in enumerate(plan):
        gate.entered.clear()
        gate.release.clear()
        b_done.clear()
        job.update(r=r, mode=mode, outcome=None)
        h = r % n_classes
        tt = threading.Thread(target=trigger, daemon=True)
        tt.start()
        try:
            if mode.startswith("read"):
                gate.armed = True
                assert m.get(GateKey(-1 - h, gate, h)) == -1 - h  # pauses holding a read claim
            elif mode.startswith("write"):
                gate.armed = True
                m[GateKey(r, gate, h)] = r  # compares with the anchor under the write claim
                stored[r] = r
            else:  # a write between two steps of a live iterator
                it = iter(m)
                next(it)
                gate.entered.set()
                assert b_done.wait(5)
                list(it)
        except ConcurrentMapError as e:
            a_errors.append(str(e))
        tt.join(5)
        assert b_done.wait(5), f"round {r}: thread B never ran"
        assert not gate.armed, f"round {r}: A never paused"
        outcomes[(mode, job["outcome"])] += 1
        if job["outcome"] == "stored":
            stored[10_000 + r] = r
    job["stop"] = True
    b_go.set()
    tb.join(5)

    print(f"\nplain Map misuse: {rounds} overlaps, outcomes {dict(outcomes)}, errors {dict(errors)}, A errors {len(a_errors)}")
    assert sum(errors.values()) > 0
    # every overlap with a claim held by A was refused to B; nothing else happened to B
    for (mode, outcome), count in outcomes.items():
        if mode.startswith("iterate"):
            assert outcome in ("stored", "refused"), (mode, outcome)
        else:
            assert outcome == "refused", (mode, outcome, count)
    assert set(errors) <= {"concurrent map writes", "concurrent map read and map write", "concurrent map iteration and map write"}
    assert not a_errors, a_errors[:3]
    # consistent afterwards: exactly the successful stores, sound structure
    assert len(m) == len(stored)
    assert {k.x: v for k, v in m.items()} == stored
    check_snapshot(m.snapshot())
    m[GateKey(-99, gate, 0)] = 1  # still usable
    assert len(m) == len(stored) + 1


@pytest.mark.timeout(60)
def test_plain_map_free_for_all_misuse_is_consistent():
    """8 threads hammer one plain Map with colliding slow keys, no handshake:
    many ConcurrentMapErrors, no crash, and afterwards the map holds exactly
    the keys whose stores (not undone by a successful delete) succeeded."""
    m = gomap.Map("object", "int64")
    per = 300

    def worker(i):
        ok = {}
        errs = 0
        for j in range(per):
            k = SlowKey(i + N_THREADS * j)
            try:
                m[k] = j
                ok[k.x] = j
            except ConcurrentMapError:
                errs += 1
            if j % 3 == 0:
                try:
                    m.get(SlowKey(j))
                except ConcurrentMapError:
                    errs += 1
            if j % 5 == 0 and ok:
                x = next(iter(ok))
                try:
                    del m[SlowKey(x)]
                    del ok[x]
                except ConcurrentMapError:
                    errs += 1
        return ok, errs

    res = run_threads(worker)
    expect = {}
    for ok, _ in res:
        expect.update(ok)
    n_err = sum(e for _, e in res)
    print(f"\nplain Map free-for-all: {n_err} ConcurrentMapErrors, {len(expect)} keys stored")
    assert n_err > 0
    assert len(m) == len(expect)
    assert {k.x: v for k, v in m.items()} == expect
    check_snapshot(m.snapshot())


@pytest.mark.timeout(60)
def test_plain_map_concurrent_get_many_from_2_threads():
    """Concurrent reads are allowed: two threads calling get_many on one plain
    Map (the GIL released inside) never raise, get the right answers, and their
    calls really do overlap in time."""
    n = 300_000
    keys = np.arange(n, dtype=np.int64) * 7 - 1000
    m = gomap.Map("int64", "int64", n)
    m.set_many(keys, keys + 1)
    rng = np.random.default_rng(0)
    queries = [rng.permutation(keys), rng.permutation(keys)]
    intervals = [[], []]

    def worker(i):
        q = queries[i]
        for _ in range(8):
            t0 = time.perf_counter()
            got = m.get_many(q)
            intervals[i].append((t0, time.perf_counter()))
            assert (got == q + 1).all()
            assert m.contains_many(q).all()

    run_threads(worker, n=2)
    overlaps = sum(1 for a0, a1 in intervals[0] for b0, b1 in intervals[1] if a0 < b1 and b0 < a1)
    print(f"\nconcurrent get_many: {overlaps} overlapping call pairs")
    assert overlaps > 0
    assert len(m) == n
