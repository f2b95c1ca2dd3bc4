"""Go's ``sync.Map`` for Python, on gomap's maps.

:class:`SyncMap` is the Rust engine ``gomap._core.SyncMap`` -- Go's ``sync.Map``
algorithm (``src/sync/map.go``) whose read and dirty maps are gomap hmaps --
plus the conveniences of a Python mapping (repr, pickling, copies, views).

Which Go it reproduces
----------------------
The algorithm of Go 1.19 through 1.23: a read-only map published atomically, a
dirty map behind a mutex, promotion after ``misses >= len(dirty)``, expunged
entries; with the methods Go 1.20 added (``Swap``, ``CompareAndSwap``,
``CompareAndDelete``) and Go 1.23's ``Clear``.  Go 1.24 replaced ``sync.Map``
with a hash-trie (``internal/sync.HashTrieMap``) and maps with Swiss tables;
built with ``GOEXPERIMENT=nosynchashtriemap,noswissmap`` Go 1.24 still runs the
algorithm and the maps this class reproduces.  The Range order of the hash-trie
(Go 1.24's default) is not reproduced.

Both inner maps are Go's ``map[any]*entry``: keys hash as Go hashes an
interface holding the key kind's type (``nilinterhash``), buckets hold a
16-byte key and an 8-byte elem, and the maps draw where Go draws (``hash0`` of
each ``make`` in ``dirtyLocked``, the start of the ``range`` over the read map
there and in ``Range``, ``hash0`` when ``delete`` empties the dirty map or
``Clear`` clears it).  So given ``hashkey`` and the draws (``rand=``, as for
:class:`gomap.Map`), ``range()`` and iteration visit keys in exactly the order
Go's ``Range`` does, and the bucket layout of both maps is Go's
(``_debug_maps()``); ``tests/test_syncmap_go.py`` and
``python -m gomap._synccheck`` check this against the Go runtime.

Semantics and decisions
-----------------------
* ``SyncMap(key="object", value="object", *, hashkey=None, rand=None)``: the
  kinds of :class:`gomap.Map`.  ``object`` keys follow dict semantics
  (``hash``/``==``: ``1``, ``1.0`` and ``True`` are one key); an unhashable key
  raises ``TypeError`` before anything changes.  For typed key kinds a lookup
  with a key the map cannot hold answers "absent"; a write raises.
* Missing keys load as ``(None, False)``; ``None`` is a storable ``object``
  value (``load`` then returns ``(None, True)``), like Go's nil interface.
* ``compare_and_swap`` / ``compare_and_delete`` compare with Python ``==``
  (``current == old``) with no lock held -- except ``compare_and_swap`` of a
  key only the dirty map holds, which compares under the mutex as Go does (so
  a raising ``__eq__`` leaves the state exactly as it was); the swap succeeds
  only if the entry still holds the value that was compared.  NaN never compares equal.
  ``compare_and_delete(k, None)`` on a missing key is ``False``.
* ``range(f)`` calls ``f(key, value)`` with no lock held and stops when ``f``
  returns exactly ``False``; it promotes the dirty map first when amended, as
  Go does.  ``iter(m)``, ``keys()``, ``values()`` and ``items()`` are one such
  ``Range`` pass, taken as a snapshot.
* ``len(m)`` is O(n): it counts the live entries of the dirty map (under the
  mutex) when the read map is amended, else of the read map (lock-free).  It,
  ``repr``, ``==``, ``copy`` and pickling draw nothing and change no state.
* Loads are lock-free (an atomic load of the read map, a lookup in an immutable
  hmap, an atomic load of the entry).  The mutex is a real lock, waited for
  with the interpreter detached; no Python object is released while it is held.
  User code that can run under it: ``__eq__`` of ``object`` keys looked up in
  the dirty map and of values in ``compare_and_swap`` of a dirty-only key (Go
  compares under the mutex there too), and a ``rand=`` source.  If such code calls back into the same map, it gets
  :class:`gomap.ConcurrentMapError` rather than a deadlock.
* ``==`` is dict's: equal to any mapping with the same items (identity first,
  so a map holding NaN or itself equals itself).  ``copy()``, ``copy.copy`` and
  ``copy.deepcopy`` give independent maps with the same kinds and hashkey.
* ``_debug_state()`` / ``_debug_maps()`` expose Go's internal state for the
  differential tests; they are not API.
"""

from __future__ import annotations

import copy as _copy
import reprlib
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._core import SyncMap as _CoreSyncMap

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["SyncMap"]

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Any = object()


class _Keys(KeysView):  # type: ignore[type-arg]
    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        items = self._mapping._range_items()  # type: ignore[attr-defined]
        return iter([k for k, _ in items])


class _Values(ValuesView):  # type: ignore[type-arg]
    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        items = self._mapping._range_items()  # type: ignore[attr-defined]
        return iter([v for _, v in items])


class _Items(ItemsView):  # type: ignore[type-arg]
    __slots__ = ()

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self._mapping._range_items())  # type: ignore[attr-defined, no-any-return]


def _unpickle(cls: type, key: str, value: str, hashkey: tuple[int, int, int, int]) -> SyncMap[Any, Any]:
    return cls(key, value, hashkey=hashkey)


class SyncMap(_CoreSyncMap, MutableMapping, Generic[K, V]):  # type: ignore[misc]
    """Go's ``sync.Map`` over gomap maps: a map safe for concurrent use,
    optimised for keys written once and read many times, or for threads
    touching disjoint keys.  Loads take no lock.

    It reproduces the ``sync.Map`` of Go 1.19 to 1.23 (with Go 1.20's
    ``Swap``/``CompareAndSwap``/``CompareAndDelete`` and Go 1.23's ``Clear``),
    and Go 1.24 built with ``GOEXPERIMENT=nosynchashtriemap,noswissmap``; Go
    1.24's default hash-trie ``sync.Map`` is a different algorithm.  Given
    ``hashkey`` and the draws (``rand=``), ``range()`` and iteration visit keys
    in the order Go's ``Range`` does.

    ``SyncMap(key="object", value="object", *, hashkey=None, rand=None)``;
    see the module documentation for the algorithm, the Go releases it
    matches and the exact semantics.
    """

    __slots__ = ()

    # -- the mapping protocol, atomically per call ---------------------------

    def keys(self) -> KeysView[K]:
        """A view of the keys; iterating it is one ``Range`` pass."""
        return _Keys(self)

    def values(self) -> ValuesView[V]:
        """A view of the values; iterating it is one ``Range`` pass."""
        return _Values(self)

    def items(self) -> ItemsView[K, V]:
        """A view of the ``(key, value)`` pairs; iterating it is one ``Range`` pass."""
        return _Items(self)

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (Go's ``LoadAndDelete``); if it
        is absent return ``default``, or raise ``KeyError`` if none is given."""
        value, loaded = self.load_and_delete(key)
        if loaded:
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        """Remove and return some ``(key, value)`` pair (the first a ``Range``
        pass yields that this call manages to delete); ``KeyError`` if empty."""
        while True:
            items = self._items()
            if not items:
                raise KeyError("popitem(): SyncMap is empty")
            for k, _ in items:
                value, loaded = self.load_and_delete(k)
                if loaded:
                    return k, value

    def setdefault(self, key: K, default: Any = None) -> Any:
        """``self[key]`` if present, else store ``default`` and return it
        (atomically: Go's ``LoadOrStore``)."""
        return self.load_or_store(key, default)[0]

    def __eq__(self, other: object) -> bool:
        """dict's ``==``: the same keys with equal values (identity first)."""
        if self is other:
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self._items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]
    __reversed__ = None  # type: ignore[assignment]

    # -- copies, pickling, repr ----------------------------------------------

    def copy(self) -> SyncMap[K, V]:
        """An independent map with the same kinds, hashkey and items."""
        new = type(self)(self.key_kind, self.value_kind, hashkey=self.hashkey)
        for k, v in self._items():
            new.store(k, v)
        return new

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> SyncMap[K, V]:
        new = type(self)(self.key_kind, self.value_kind, hashkey=self.hashkey)
        memo[id(self)] = new
        for k, v in self._items():
            new.store(_copy.deepcopy(k, memo), _copy.deepcopy(v, memo))
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _unpickle,
            (type(self), self.key_kind, self.value_kind, self.hashkey),
            None,
            None,
            iter(self._items()),
        )

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self._items())
        name = type(self).__name__
        if self.key_kind == "object" and self.value_kind == "object":
            return f"{name}({{{body}}})"
        return f"{name}({{{body}}}, key={self.key_kind!r}, value={self.value_kind!r})"

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store every pair of a mapping or an iterable of pairs, then ``kwargs``."""
        if isinstance(other, SyncMap):
            other = other._items()
        MutableMapping.update(self, other, **kwargs)

    def __or__(self, other: Any) -> SyncMap[Any, Any]:
        """A copy of this map updated with the mapping ``other`` (dict's ``|``)."""
        if not isinstance(other, Mapping):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Any) -> SyncMap[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        new = type(self)(self.key_kind, self.value_kind, hashkey=self.hashkey)
        new.update(other)
        new.update(self)
        return new

    def __ior__(self, other: Any) -> SyncMap[K, V]:
        """Update in place with a mapping or an iterable of pairs (dict's ``|=``)."""
        self.update(other)
        return self

    def stats(self) -> dict[str, Any]:
        """Go's view of the two inner maps: for ``read`` and ``dirty`` (``None``
        when Go's map is nil) the hmap header (count, B, hash0, noverflow,
        growth state) and ``bytes``, the memory Go's buckets take (16-byte
        interface keys, 8-byte ``*entry`` elems); plus ``amended`` and ``misses``."""
        maps = self._debug_maps()
        for name in ("read", "dirty"):
            if maps[name] is not None:
                maps[name] = {k: v for k, v in maps[name].items() if k not in ("buckets", "oldbuckets")}
        return maps

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> SyncMap[Any, Any]:
        """A new ``object`` -> ``object`` map with every key set to ``value``."""
        m = cls()
        for k in iterable:
            m.store(k, value)
        return m
