"""``gomap.ShardedMap``: a thread-safe map made of power-of-two many typed gomap
maps ("shards"), each behind its own lock. The engine is Rust
(``gomap._core.ShardedMap``, src/python/sharded.rs): every operation is one
call into it. This module adds only what is Python-shaped: the iteration views,
``==``, ``repr`` and pickling.

A plain :class:`gomap.Map` never blocks: overlapping use from two threads is
refused with :class:`gomap.ConcurrentMapError`, as Go's runtime map throws.
:class:`ShardedMap` is what to use instead when several threads share a map.
"""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from reprlib import recursive_repr
from typing import Any

from . import _core

__all__ = ["ShardedMap"]


class ShardedMap(_core.ShardedMap):
    """A thread-safe map: ``shards`` typed gomap maps, each behind its own
    mutex; a key's shard is chosen (in Rust) from a hash of the key independent
    of the shard's own bucket hash.

    ``ShardedMap(key="object", value="object", shards=None, hint=0)`` takes the
    key and value kinds of :class:`gomap.Map` (``hint`` is spread over the
    shards). ``shards`` must be a power of two >= 1; by default it is
    ``4 * os.cpu_count()`` rounded up to a power of two, and at least 8.

    Guarantees and semantics
    ------------------------
    * Every single-key operation -- ``m[k]``, ``m[k] = v``, ``del m[k]``,
      ``k in m``, ``get``, ``delete``, ``pop``, ``setdefault``, ``add`` and the
      compound operations ``set_if_absent``, ``swap``, ``compare_and_swap``,
      ``compare_and_delete`` -- is one call into Rust that runs under its
      shard's lock: atomic (linearizable) with respect to every other operation
      on the key. Compound operations compare values with Python ``==``
      (``current == old``; NaN never compares equal). ``update_with`` is an
      optimistic loop (its function runs with no lock held and may run more
      than once); ``retain``/``delete_if`` work shard by shard.
    * Keys, values and errors are :class:`gomap.Map`'s: a wrong-typed key
      raises the same ``TypeError`` / ``OverflowError`` (and ``get``/``in``
      answer "missing" where ``Map``'s do).
    * ``len(m)`` is exact and takes no lock: an atomic total that every write
      updates while holding its shard's lock. ``clear()``, ``copy()`` and
      ``stats()`` hold all locks (ascending), so they see (and make) one
      consistent state; ``shrink()``, ``popitem()``, ``retain()`` visit the
      shards one lock at a time.
    * **Iteration is weakly consistent**: ``iter(m)``, ``keys()``,
      ``values()``, ``items()``, ``repr``, ``==`` and pickling visit the shards
      in order, each one copied under its lock when the iteration reaches it.
      Every entry present for the whole iteration is seen exactly once;
      entries added or removed meanwhile may or may not be seen. It never
      raises ``ConcurrentMapError`` and never holds a lock while your loop
      body runs.
    * Batch operations (``get_many``, ``contains_many``, ``set_many``,
      ``delete_many``, ``add_many``) validate every key (and value) first --
      bad input raises Map's error and changes nothing -- then split the keys
      by shard (input order kept within a shard) and work shard by shard.
      Numeric and string keys with int64/float64 values run with the GIL
      released, large batches (``_core._sharded_parallel_min_keys()``, 16384
      keys) on several Rust threads (``threads=`` caps them). They are atomic
      per shard, except ``add_many``, which is all or nothing.
    * Locks never deadlock against the GIL: a thread waits for a busy shard
      with the GIL released. A key's ``__eq__``/``__hash__`` or a value's
      ``__eq__`` that calls back into the shard its operation holds gets
      ``ConcurrentMapError`` (a lookup inside a lookup is allowed, as on a
      plain Map); such a callback that needs another, busy shard also gets
      ``ConcurrentMapError`` instead of waiting (which could deadlock).
    """

    __slots__ = ()

    def __iter__(self):
        """The keys, shard by shard (weakly consistent; see the class doc)."""
        shard_items = self._shard_items
        for i in range(self.num_shards):
            yield from shard_items(i, 0)

    def _iter_items(self):
        shard_items = self._shard_items
        for i in range(self.num_shards):
            yield from shard_items(i, 2)

    def _iter_values(self):
        shard_items = self._shard_items
        for i in range(self.num_shards):
            yield from shard_items(i, 1)

    def keys(self) -> KeysView:
        """A live view of the keys; its iteration is weakly consistent."""
        return _ShardedKeys(self)

    def values(self) -> ValuesView:
        """A live view of the values; its iteration is weakly consistent."""
        return _ShardedValues(self)

    def items(self) -> ItemsView:
        """A live view of the (key, value) pairs; its iteration is weakly
        consistent."""
        return _ShardedItems(self)

    #: ``reversed(m)`` is a TypeError, as for Map and dict views without order.
    __reversed__ = None

    def __eq__(self, other: object) -> bool:
        """As ``dict``: equal to any Mapping with the same keys and equal
        values; values are compared by identity first (so NaN in both, or a map
        that contains itself, compares equal)."""
        if not isinstance(other, Mapping):
            return NotImplemented
        if other is self:
            return True
        items = list(self._iter_items())
        if len(items) != len(other):
            return False
        missing = _MISSING
        for k, v in items:
            try:
                theirs = other.get(k, missing)
            except TypeError:
                return False
            if theirs is missing or not (v is theirs or v == theirs):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    @recursive_repr("{...}")
    def _body_repr(self) -> str:
        return ", ".join(f"{k!r}: {v!r}" for k, v in self._iter_items())

    def __repr__(self) -> str:
        head = f"ShardedMap(key='{self.key_kind}', value='{self.value_kind}', shards={self.num_shards})"
        return f"{head} {{{self._body_repr()}}}"

    def __reduce__(self):
        """Pickles as the kinds and shard count; the items are set on the new
        map after it exists (so a map that contains itself pickles)."""
        return (
            _rebuild,
            (self.key_kind, self.value_kind, self.num_shards, len(self)),
            None,
            None,
            self._iter_items(),
        )


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _rebuild(key: Any, value: Any, shards: int, hint: Any) -> ShardedMap:
    """Unpickling: an empty map; pickle then sets the items. (Accepts the old
    pickles' list of items in place of the hint.)"""
    if isinstance(hint, list):
        m = ShardedMap(key, value, shards, len(hint))
        for k, v in hint:
            m[k] = v
        return m
    return ShardedMap(key, value, shards, hint)


class _ShardedKeys(KeysView):
    """``ShardedMap.keys()``: a live view; iteration is weakly consistent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"sharded_keys({list(self)!r})"


class _ShardedValues(ValuesView):
    """``ShardedMap.values()``: a live view; iteration is weakly consistent."""

    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_values()

    def __repr__(self) -> str:
        return f"sharded_values({list(self)!r})"


class _ShardedItems(ItemsView):
    """``ShardedMap.items()``: a live view; iteration is weakly consistent."""

    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_items()

    def __repr__(self) -> str:
        return f"sharded_items({list(self)!r})"


MutableMapping.register(ShardedMap)
