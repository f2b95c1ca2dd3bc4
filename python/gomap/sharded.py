"""``gomap.ShardedMap``: a thread-safe map made of power-of-two many ``gomap.Map``
shards, each behind its own lock.

A plain :class:`gomap.Map` never blocks: overlapping use from two threads is
refused with :class:`gomap.ConcurrentMapError`, as Go's runtime map throws.
:class:`ShardedMap` is what to use instead when several threads share a map.
"""

from __future__ import annotations

import operator
import os
import struct
import threading
from collections import deque
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from reprlib import recursive_repr
from typing import Any

from ._core import Map

try:  # NumPy is only needed by the batch operations (as for Map's).
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only without NumPy
    _np = None  # type: ignore[assignment]

__all__ = ["ShardedMap"]

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd

_INT_KINDS = frozenset({"int64", "int32", "uint64", "uint32"})
_FLOAT_KINDS = frozenset({"float64", "float32"})
_NUMERIC_KINDS = _INT_KINDS | _FLOAT_KINDS
#: Key kinds whose batch operations run with the GIL released (given a
#: numeric value kind): no Python object is touched during the map work.
_DETACHABLE_KEYS = _NUMERIC_KINDS | {"string", "bytes"}
_DETACHABLE_VALUES = frozenset({"int64", "float64"})

#: Below this many keys a batch runs its per-shard calls in the calling thread:
#: handing work to the pool costs more than it saves.
PARALLEL_MIN_KEYS = 16384

_pack_d = struct.Struct("<d").pack
_pack_f = struct.Struct("<f").pack
_unpack_f = struct.Struct("<f").unpack
_from_le = int.from_bytes


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _mix(x: int, shift: int) -> int:
    """The shard of a 64-bit pattern ``x`` (an int in [0, 2**64)): fold the high
    half into the low one, then Fibonacci hashing -- multiply by 2**64/phi and
    keep the top ``64 - shift`` bits, which depend on every bit of ``x``."""
    x ^= x >> 32
    return ((x * _GOLDEN) & _M64) >> shift


def _mix_np(x, shift: int):
    """The same, vectorised over a uint64 array (``x`` is left untouched)."""
    np = _np
    y = x >> np.uint64(32)
    y ^= x
    with np.errstate(over="ignore"):
        y *= np.uint64(_GOLDEN)
    y >>= np.uint64(shift)
    return y


def _as_double(x: Any) -> float:
    """``PyFloat_AsDouble``: a float (subclass) by its value, else ``__float__``
    / ``__index__`` -- as the Map converts float keys and values."""
    if isinstance(x, float):
        return float.__float__(x)
    return float(x)


def _default_shards() -> int:
    n = max(8, 4 * (os.cpu_count() or 1))
    return 1 << (n - 1).bit_length()


def _cpu_count() -> int:
    return os.cpu_count() or 1


class ShardedMap:
    """A thread-safe map: ``shards`` :class:`gomap.Map` shards, each behind its
    own :class:`threading.RLock`; a key's shard is chosen by its hash.

    ``ShardedMap(key="object", value="object", shards=None, hint=0)`` takes the
    key and value kinds of :class:`gomap.Map` (``hint`` is spread over the
    shards).  ``shards`` must be a power of two >= 1; by default it is
    ``4 * os.cpu_count()`` rounded up to a power of two, and at least 8.

    Guarantees and semantics
    ------------------------
    * Every single-key operation -- ``m[k]``, ``m[k] = v``, ``del m[k]``,
      ``k in m``, ``get``, ``delete``, ``pop``, ``setdefault`` and the compound
      operations ``set_if_absent``, ``swap``, ``compare_and_swap``,
      ``compare_and_delete`` -- runs entirely under its shard's lock, so it is
      atomic (linearizable) with respect to every other operation on the key.
      Compound operations compare values with Python ``==`` (``current == old``;
      NaN never compares equal).
    * Keys, values and errors are :class:`gomap.Map`'s: the shard's ``Map``
      converts every key, so a wrong-typed key raises the same ``TypeError`` /
      ``OverflowError`` (and ``get``/``in`` answer "missing" where ``Map``'s do).
    * ``len(m)`` is exact: the shard locks are taken in ascending order and the
      shard counts summed while all are held.  ``clear()``, ``copy()`` and
      ``stats()`` likewise hold all locks (ascending), so they see (and make)
      one consistent state; ``shrink()`` and ``popitem()`` visit the shards one
      lock at a time.
    * **Iteration is weakly consistent**: ``iter(m)``, ``keys()``, ``values()``,
      ``items()``, ``repr`` and ``==`` visit the shards in shard order, each one
      snapshotted (``list(shard.items())``) under its lock when the iteration
      reaches it.  Every entry present for the whole iteration is seen exactly
      once; entries added or removed meanwhile may or may not be seen; the
      whole sequence need not be a snapshot of one instant.  It never raises
      ``ConcurrentMapError`` and never holds a lock while your loop body runs.
    * Batch operations (``get_many``, ``contains_many``, ``set_many``,
      ``delete_many``) validate every key (and value) first -- bad input raises
      Map's error and changes nothing -- then split the keys by shard (keeping
      input order within a shard, so duplicate keys in ``set_many``: the last one
      wins) and run one ``Map`` batch call per shard under its lock.  For kinds
      whose batch calls release the GIL (numeric or string/bytes keys with
      int64/float64 values) and large batches these calls run in parallel on a
      thread pool (created on first use, ``min(shards, os.cpu_count())``
      threads).  A batch is atomic per shard, not across shards.  Results come
      back in input order; ``get_many`` without a default raises ``KeyError``
      for the first missing key in input order.
    * Locks: an operation holds at most one shard lock, except the all-shard
      operations above, which take them in ascending order; so ShardedMap's own
      locking cannot deadlock.  User code that runs under a shard lock -- a key's
      ``__hash__``/``__eq__`` (object keys), a value's ``__eq__`` in the
      compare operations, finalizers of replaced values -- may call back into
      the map: the lock is re-entrant, and a re-entrant *write* to the shard
      being read (or written) then fails with ``ConcurrentMapError`` from the
      shard's ``Map`` instead of deadlocking.  Such callbacks that touch *other*
      shards (or call ``len``/``clear``) can deadlock against another thread
      doing the same in the opposite order: keep ``__eq__`` free of map access.
    """

    __slots__ = (
        "__weakref__",
        "_key_kind",
        "_locks",
        "_mask",
        "_pool",
        "_pool_lock",
        "_shard_of",
        "_shards",
        "_value_kind",
    )

    def __init__(self, key: Any = "object", value: Any = "object", shards: int | None = None, hint: int = 0) -> None:
        if shards is None:
            n = _default_shards()
        else:
            n = operator.index(shards)
            if n < 1 or n & (n - 1):
                raise ValueError(f"shards must be a power of two >= 1, not {n}")
        per_shard = -(-hint // n) if isinstance(hint, int) and hint > 0 else hint
        first = Map(key, value, per_shard)
        self._key_kind = first.key_kind
        self._value_kind = first.value_kind
        self._shards = [first] + [Map(self._key_kind, self._value_kind, per_shard) for _ in range(n - 1)]
        self._locks = tuple(threading.RLock() for _ in range(n))
        self._mask = n - 1
        self._shard_of = self._make_shard_of()
        self._pool = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------
    # shard choice
    # ------------------------------------------------------------------

    def _make_shard_of(self):
        """A function key -> shard index. It gives equal keys (as the Map sees
        them) the same shard; a key the Map would refuse gets some shard."""
        kind, mask = self._key_kind, self._mask
        if mask == 0:
            return lambda k: 0
        mix = _mix
        shift = 64 - mask.bit_length()
        index = operator.index

        if kind in _INT_KINDS:

            def shard_of(k: Any) -> int:
                try:
                    if isinstance(k, float):
                        return 0
                    return mix(index(k) & _M64, shift)
                except Exception:  # the shard's Map raises the right error
                    return 0

        elif kind == "float64":

            def shard_of(k: Any) -> int:
                try:
                    if isinstance(k, (str, bytes)):
                        return 0
                    # + 0.0 makes -0.0 (== 0.0) hash like 0.0
                    return mix(_from_le(_pack_d(_as_double(k) + 0.0), "little"), shift)
                except Exception:
                    return 0

        elif kind == "float32":

            def shard_of(k: Any) -> int:
                try:
                    if isinstance(k, (str, bytes)):
                        return 0
                    f = _unpack_f(_pack_f(_as_double(k)))[0] + 0.0  # rounded as the Map does
                    return mix(_from_le(_pack_d(f), "little"), shift)
                except Exception:
                    return 0

        elif kind in ("string", "bytes"):
            # the base type's hash: a str subclass with its own __hash__ is
            # still compared by content in the Map
            base_hash = str.__hash__ if kind == "string" else bytes.__hash__

            def shard_of(k: Any) -> int:
                try:
                    return mix(base_hash(k) & _M64, shift)
                except Exception:
                    return 0

        else:  # object keys: dict semantics, equal keys have equal hashes

            def shard_of(k: Any) -> int:
                try:
                    return mix(hash(k) & _M64, shift)
                except Exception:  # unhashable: the Map raises TypeError
                    return 0

        return shard_of

    def shard_of(self, key: Any) -> int:
        """The index of the shard that holds ``key`` (any shard for a key the
        map would refuse)."""
        return self._shard_of(key)

    def _shard_indices(self, keys):
        """Vectorised shard choice for canonical keys: a NumPy array of the
        key kind (numeric kinds) or a list of hashes (other kinds)."""
        np = _np
        kind = self._key_kind
        mask = self._mask
        dt = np.uint8 if mask < 256 else (np.uint16 if mask < 65536 else np.uint32)
        n = len(keys)
        if mask == 0:
            return np.zeros(n, dtype=dt)
        if kind in ("int64", "int32"):
            x = keys.astype(np.int64, copy=False).view(np.uint64)
        elif kind in ("uint64", "uint32"):
            x = keys.astype(np.uint64, copy=False)
        elif kind in _FLOAT_KINDS:
            x = (keys.astype(np.float64, copy=False) + 0.0).view(np.uint64)
        else:  # a list of Python hashes (each fits a C Py_hash_t)
            x = np.fromiter(keys, dtype=np.int64, count=n).view(np.uint64)
        return _mix_np(x, 64 - mask.bit_length()).astype(dt)

    # ------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------

    @property
    def key_kind(self) -> str:
        return self._key_kind

    @property
    def value_kind(self) -> str:
        return self._value_kind

    @property
    def num_shards(self) -> int:
        return self._mask + 1

    # ------------------------------------------------------------------
    # locking helpers
    # ------------------------------------------------------------------

    def _lock_all(self) -> None:
        for lk in self._locks:
            lk.acquire()

    def _unlock_all(self) -> None:
        for lk in reversed(self._locks):
            lk.release()

    def _lookup(self, m: Map, k: Any) -> Any:
        """``m``'s value for ``k`` or ``_MISSING``; wrong-typed keys raise."""
        if self._key_kind == "object":
            return m.get(k, _MISSING)  # Map.get raises for unhashable keys
        try:
            return m[k]  # no user code runs for typed keys: KeyError = missing
        except KeyError:
            return _MISSING

    # ------------------------------------------------------------------
    # single-key operations
    # ------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        i = self._shard_of(key)
        with self._locks[i]:
            return self._shards[i][key]

    def __setitem__(self, key: Any, value: Any) -> None:
        i = self._shard_of(key)
        with self._locks[i]:
            self._shards[i][key] = value

    def __delitem__(self, key: Any) -> None:
        i = self._shard_of(key)
        with self._locks[i]:
            del self._shards[i][key]

    def __contains__(self, key: Any) -> bool:
        i = self._shard_of(key)
        with self._locks[i]:
            return key in self._shards[i]

    def get(self, key: Any, default: Any = None) -> Any:
        i = self._shard_of(key)
        with self._locks[i]:
            return self._shards[i].get(key, default)

    def delete(self, key: Any) -> None:
        """Go's ``delete(m, k)``: removes ``key`` if present (no error if not)."""
        i = self._shard_of(key)
        with self._locks[i]:
            self._shards[i].delete(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        i = self._shard_of(key)
        with self._locks[i]:
            return self._shards[i].pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        i = self._shard_of(key)
        with self._locks[i]:
            return self._shards[i].setdefault(key, default)

    def set_if_absent(self, key: Any, value: Any) -> bool:
        """Stores ``value`` unless ``key`` is present; True if it stored."""
        i = self._shard_of(key)
        with self._locks[i]:
            m = self._shards[i]
            n = len(m)
            m.setdefault(key, value)
            return len(m) != n

    def swap(self, key: Any, value: Any) -> tuple[Any, bool]:
        """Stores ``value``; returns ``(previous value, True)``, or ``(None,
        False)`` if ``key`` was absent (Go's ``sync.Map.Swap``)."""
        i = self._shard_of(key)
        with self._locks[i]:
            m = self._shards[i]
            old = self._lookup(m, key)
            m[key] = value
        if old is _MISSING:
            return None, False
        return old, True

    def compare_and_swap(self, key: Any, old: Any, new: Any) -> bool:
        """Stores ``new`` if ``key`` is present with a value ``== old``."""
        i = self._shard_of(key)
        with self._locks[i]:
            m = self._shards[i]
            cur = self._lookup(m, key)
            if cur is _MISSING or not (cur == old):
                return False
            m[key] = new
            return True

    def compare_and_delete(self, key: Any, old: Any) -> bool:
        """Deletes ``key`` if it is present with a value ``== old``."""
        i = self._shard_of(key)
        with self._locks[i]:
            m = self._shards[i]
            cur = self._lookup(m, key)
            if cur is _MISSING or not (cur == old):
                return False
            m.delete(key)
            return True

    def popitem(self) -> tuple[Any, Any]:
        """Removes and returns some ``(key, value)``; ``KeyError`` if empty."""
        for i, lk in enumerate(self._locks):
            with lk:
                m = self._shards[i]
                if len(m):
                    return m.popitem()
        raise KeyError("popitem(): map is empty")

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """As ``dict.update``; each store is atomic, the whole update is not."""
        if isinstance(other, ShardedMap):
            for k, v in other._iter_items():
                self[k] = v
        elif isinstance(other, Mapping):
            for k in other:
                self[k] = other[k]
        elif hasattr(other, "keys"):
            for k in other.keys():
                self[k] = other[k]
        else:
            for pair in other:
                k, v = pair
                self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    # ------------------------------------------------------------------
    # whole-map operations
    # ------------------------------------------------------------------

    def __len__(self) -> int:
        self._lock_all()
        try:
            return sum(len(m) for m in self._shards)
        finally:
            self._unlock_all()

    def __bool__(self) -> bool:
        return len(self) != 0

    def clear(self) -> None:
        """Empties every shard (all locks held: an atomic clear). The old
        shards' entries are released after the locks are."""
        self._lock_all()
        try:
            old = self._shards
            self._shards = [Map(self._key_kind, self._value_kind) for _ in old]
        finally:
            self._unlock_all()
        del old  # may run finalizers of the values: outside the locks

    def copy(self) -> ShardedMap:
        """A new ShardedMap with the same kinds, shards and entries (a
        consistent snapshot: all locks are held while copying)."""
        new = ShardedMap.__new__(ShardedMap)
        self._lock_all()
        try:
            new._shards = [m.copy() for m in self._shards]
        finally:
            self._unlock_all()
        new._locks = tuple(threading.RLock() for _ in new._shards)
        new._mask = self._mask
        new._key_kind = self._key_kind
        new._value_kind = self._value_kind
        new._shard_of = new._make_shard_of()
        new._pool = None
        new._pool_lock = threading.Lock()
        return new

    __copy__ = copy

    def shrink(self) -> None:
        """``Map.shrink()`` on every shard, one shard lock at a time."""
        for i, lk in enumerate(self._locks):
            with lk:
                self._shards[i].shrink()

    def stats(self) -> dict[str, Any]:
        """``{"shards": [Map.stats() of each shard], ...totals}``: ``count``,
        ``buckets``, ``overflow_buckets``, ``old_buckets``,
        ``old_overflow_buckets``, ``noverflow`` and ``bytes`` summed,
        ``load_factor`` = count / buckets, ``growing`` = how many shards are
        growing, ``num_shards``, ``max_count`` and ``min_count`` (shard
        balance). Taken with all locks held."""
        self._lock_all()
        try:
            per = [m.stats() for m in self._shards]
        finally:
            self._unlock_all()
        tot: dict[str, Any] = {"num_shards": len(per)}
        for f in ("count", "buckets", "overflow_buckets", "old_buckets", "old_overflow_buckets", "noverflow", "bytes"):
            tot[f] = sum(s.get(f, 0) for s in per)
        tot["load_factor"] = tot["count"] / tot["buckets"] if tot["buckets"] else 0.0
        tot["growing"] = sum(1 for s in per if s["growing"])
        tot["max_count"] = max(s["count"] for s in per)
        tot["min_count"] = min(s["count"] for s in per)
        tot["shards"] = per
        return tot

    # ------------------------------------------------------------------
    # iteration (weakly consistent: one snapshot per shard)
    # ------------------------------------------------------------------

    def _snapshot(self, i: int) -> list:
        with self._locks[i]:
            return list(self._shards[i].items())

    def _iter_items(self):
        for i in range(len(self._locks)):
            yield from self._snapshot(i)

    def __iter__(self):
        for i in range(len(self._locks)):
            for k, _ in self._snapshot(i):
                yield k

    def keys(self) -> KeysView:
        return _ShardedKeys(self)

    def values(self) -> ValuesView:
        return _ShardedValues(self)

    def items(self) -> ItemsView:
        return _ShardedItems(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        if other is self:
            return True
        items = list(self._iter_items())
        if len(items) != len(other):
            return False
        for k, v in items:
            try:
                theirs = other.get(k, _MISSING)
            except TypeError:
                return False
            if theirs is _MISSING or not (v == theirs):
                return False
        return True

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    @recursive_repr("{...}")
    def _body_repr(self) -> str:
        return ", ".join(f"{k!r}: {v!r}" for k, v in self._iter_items())

    def __repr__(self) -> str:
        head = f"ShardedMap(key='{self._key_kind}', value='{self._value_kind}', shards={self._mask + 1})"
        return f"{head} {{{self._body_repr()}}}"

    def __reduce__(self):
        return (_rebuild, (self._key_kind, self._value_kind, self._mask + 1, list(self._iter_items())))

    # ------------------------------------------------------------------
    # batch operations
    # ------------------------------------------------------------------

    def _executor(self):
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    pool = ThreadPoolExecutor(
                        max_workers=min(self._mask + 1, _cpu_count()),
                        thread_name_prefix="gomap-sharded",
                    )
                    self._pool = pool
        return pool

    def _probe(self) -> Map:
        """A fresh, empty Map of our kinds: its batch calls validate input
        exactly as a shard's would (and raise the same errors)."""
        return Map(self._key_kind, self._value_kind)

    def _materialize(self, ob: Any, validate) -> list:
        """``ob`` as a list, raising Map's error for what Map refuses to iterate."""
        if isinstance(ob, (str, bytes)):
            validate(ob)  # raises Map's "not a single str/bytes"
        try:
            it = iter(ob)
        except TypeError:
            validate(ob)  # raises Map's "must be a buffer or an iterable"
            raise
        return list(it)

    def _buffer_array(self, ob: Any, dtype, validate):
        """A C-contiguous 1-D array of ``dtype`` for a buffer-protocol ``ob``
        that Map accepts, else Map's error; ``None`` if ``ob`` is no buffer."""
        np = _np
        if type(ob) is np.ndarray:
            arr = ob
        else:
            try:
                memoryview(ob).release()
            except TypeError:
                return None
            arr = np.asarray(ob)
        if arr.dtype == dtype and arr.ndim <= 1 and arr.flags.c_contiguous:
            return arr.reshape(-1)
        validate(ob)  # raises the Map's TypeError/ValueError
        raise TypeError(f"unsupported buffer for a {dtype} batch")  # pragma: no cover

    def _prepare_keys(self, keys: Any):
        """Validates ``keys`` -> ``(n, shard index array, keys to pass)``: the
        keys to pass are a NumPy array of the kind (numeric kinds) or an object
        array of the original keys (string/bytes/object kinds)."""
        np = _np
        kind = self._key_kind

        def validate(ob: Any) -> None:
            self._probe().contains_many(ob)

        if kind in _NUMERIC_KINDS:
            dtype = np.dtype(kind)
            arr = self._buffer_array(keys, dtype, validate)
            if arr is None:
                seq = self._materialize(keys, validate)
                validate(seq)
                conv = operator.index if kind in _INT_KINDS else _as_double
                arr = np.array([conv(k) for k in seq], dtype=dtype)
            return len(arr), self._shard_indices(arr), arr
        seq = self._materialize(keys, validate)
        if kind == "string":
            validate(seq)
            hashes = list(map(str.__hash__, seq))
        elif kind == "bytes":
            validate(seq)
            hashes = list(map(bytes.__hash__, seq))
        else:
            hashes = list(map(hash, seq))  # raises what Map's hash() raises
        objs = np.fromiter(seq, dtype=object, count=len(seq))
        return len(seq), self._shard_indices(hashes), objs

    def _prepare_values(self, values: Any):
        """Validates ``values`` for ``set_many`` -> a NumPy array (int64 or
        float64 values) or an object array."""
        np = _np
        kind = self._value_kind

        def validate(ob: Any) -> None:
            try:
                self._probe().set_many((), ob)
            except ValueError as e:  # "0 keys but N values": the values are fine
                if not str(e).startswith("0 keys but "):
                    raise

        if kind in _DETACHABLE_VALUES:
            dtype = np.dtype(kind)
            arr = self._buffer_array(values, dtype, validate)
            if arr is None:
                seq = self._materialize(values, validate)
                validate(seq)
                conv = operator.index if kind == "int64" else _as_double
                arr = np.array([conv(v) for v in seq], dtype=dtype)
            return arr
        seq = self._materialize(values, validate)
        return np.fromiter(seq, dtype=object, count=len(seq))

    def _value_dtype(self):
        return _np.dtype(self._value_kind if self._value_kind in _DETACHABLE_VALUES else object)

    def _run(self, sidx, detach: bool, work) -> list:
        """Calls ``work(shard_index, positions)`` -- ``positions`` the input
        positions of that shard's keys, in input order -- for every shard that
        has keys; in parallel on the pool when that pays. Returns the results
        in shard order; the first exception (in shard order) is re-raised after
        every call has finished."""
        np = _np
        n = len(sidx)
        order = np.argsort(sidx, kind="stable")
        counts = np.bincount(sidx, minlength=self._mask + 1)
        ends = np.cumsum(counts).tolist()
        jobs = []
        start = 0
        for s, end in enumerate(ends):
            if end > start:
                jobs.append((s, order[start:end]))
            start = end
        workers = min(len(jobs), self._mask + 1, _cpu_count())
        if not detach or n < PARALLEL_MIN_KEYS or workers < 2:
            return [work(s, pos) for s, pos in jobs]
        # The calling thread and workers - 1 pool threads take shards from a
        # shared queue (deque.popleft is atomic) until none is left.
        results: list = [None] * len(jobs)
        errors: list = [None] * len(jobs)
        todo = deque(range(len(jobs)))

        def runner() -> None:
            while True:
                try:
                    j = todo.popleft()
                except IndexError:
                    return
                try:
                    results[j] = work(*jobs[j])
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    errors[j] = e

        pool = self._executor()
        futures = [pool.submit(runner) for _ in range(workers - 1)]
        try:
            runner()
        finally:
            for f in futures:
                f.result()
        for e in errors:
            if e is not None:
                raise e
        return results

    def _detach(self, values_too: bool) -> bool:
        return self._key_kind in _DETACHABLE_KEYS and (not values_too or self._value_kind in _DETACHABLE_VALUES)

    def get_many(self, keys: Any, default: Any = None) -> Any:
        """The values of ``keys`` as a NumPy array, in input order (int64 /
        float64 / object by value kind). A missing key is ``KeyError`` (the
        first missing one in input order) unless ``default`` is given (as for
        ``Map.get_many``, ``default=None`` means no default)."""
        if _np is None:
            return self._probe().get_many(keys, default)  # raises Map's ImportError
        n, sidx, ks = self._prepare_keys(keys)
        if default is not None:
            self._probe().get_many((), default)  # Map's conversion error, if any
        out = _np.empty(n, dtype=self._value_dtype())
        if n == 0:
            return out
        locks = self._locks

        def work(s, pos):
            sub = ks[pos]
            with locks[s]:
                m = self._shards[s]
                try:
                    res = m.get_many(sub, default)
                except KeyError as e:
                    found = m.contains_many(sub)
                    j = int(_np.argmin(found))  # the shard's first missing key
                    return int(pos[j]), e
            out[pos] = res
            return None

        missing = [r for r in self._run(sidx, self._detach(True), work) if r is not None]
        if missing:
            raise min(missing, key=lambda r: r[0])[1]
        return out

    def contains_many(self, keys: Any) -> Any:
        """Whether each of ``keys`` is present: a NumPy bool array."""
        if _np is None:
            return self._probe().contains_many(keys)
        n, sidx, ks = self._prepare_keys(keys)
        out = _np.zeros(n, dtype=bool)
        if n == 0:
            return out
        locks = self._locks

        def work(s, pos):
            sub = ks[pos]
            with locks[s]:
                res = self._shards[s].contains_many(sub)
            out[pos] = res

        self._run(sidx, self._detach(False), work)
        return out

    def set_many(self, keys: Any, values: Any) -> None:
        """``m[k] = v`` for each pair, in input order within each shard (so a
        duplicated key ends with its last value)."""
        if _np is None:  # Map's set_many needs no NumPy: validate, then store in order
            probe = self._probe()
            ks = self._materialize(keys, lambda ob: probe.set_many(ob, ()))
            vs = self._materialize(values, lambda ob: probe.set_many(ks, ob))
            probe.set_many(ks, vs)  # Map's errors for bad keys/values/lengths
            for k, v in zip(ks, vs):
                self[k] = v
            return
        n, sidx, ks = self._prepare_keys(keys)
        vs = self._prepare_values(values)
        if len(vs) != n:
            raise ValueError(f"{n} keys but {len(vs)} values")
        if n == 0:
            return
        locks = self._locks

        def work(s, pos):
            sub_k, sub_v = ks[pos], vs[pos]
            with locks[s]:
                self._shards[s].set_many(sub_k, sub_v)

        self._run(sidx, self._detach(True), work)
        return

    def delete_many(self, keys: Any) -> Any:
        """Deletes each of ``keys``; a NumPy bool array of which were present
        (a key repeated in ``keys`` is True at most once)."""
        if _np is None:
            return self._probe().delete_many(keys)
        n, sidx, ks = self._prepare_keys(keys)
        out = _np.zeros(n, dtype=bool)
        if n == 0:
            return out
        locks = self._locks

        def work(s, pos):
            sub = ks[pos]
            with locks[s]:
                res = self._shards[s].delete_many(sub)
            out[pos] = res

        self._run(sidx, self._detach(True), work)
        return out


def _rebuild(key: Any, value: Any, shards: int, items: list) -> ShardedMap:
    m = ShardedMap(key, value, shards, len(items))
    for k, v in items:
        m[k] = v
    return m


class _ShardedKeys(KeysView):
    """``ShardedMap.keys()``: a live view; iteration is weakly consistent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"sharded_keys({list(self)!r})"


class _ShardedValues(ValuesView):
    __slots__ = ()

    def __iter__(self):
        for _, v in self._mapping._iter_items():
            yield v

    def __repr__(self) -> str:
        return f"sharded_values({list(self)!r})"


class _ShardedItems(ItemsView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_items()

    def __repr__(self) -> str:
        return f"sharded_items({list(self)!r})"


MutableMapping.register(ShardedMap)
