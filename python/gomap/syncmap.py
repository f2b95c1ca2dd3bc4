"""Go's ``sync.Map`` for Python, in pure Python.

:class:`SyncMap` follows the algorithm of Go's ``sync.Map`` (``src/sync/map.go``,
Go 1.19, plus the methods Go 1.20 added -- ``Swap``, ``CompareAndSwap``,
``CompareAndDelete`` -- and Go 1.23's ``Clear``) with Go's API spelled the Python
way.  Its state is the state of Go's map:

* ``_read`` -- a published :class:`_ReadOnly` (``m``: a dict key -> entry,
  ``amended``: whether the dirty dict holds keys ``m`` lacks).  A published
  ``_ReadOnly`` and its dict are never mutated: they are replaced wholesale,
  with the mutex held.  Readers take no lock: one attribute read, one dict
  lookup, one read of ``entry.p``.
* ``_dirty`` -- ``None`` or a dict key -> entry, guarded by ``_mu``; when not
  ``None`` it holds every non-expunged entry of ``_read.m`` (the very same entry
  objects) plus the keys stored since.
* ``_misses`` -- lookups that had to take the mutex since the last promotion;
  once ``misses >= len(dirty)`` the dirty dict becomes the read map.
* each entry's ``p`` is the value, or the sentinel ``_NIL`` (deleted; the key
  may still sit in ``dirty``) or ``_EXPUNGED`` (deleted and left out of
  ``dirty``).  Go swaps ``p`` with atomic compare-and-swap; here every write
  of ``p`` happens under a small striped lock (one of ``_NSTRIPES`` module-wide
  locks, picked per entry), which makes the compare-and-swap atomic on GIL and
  on free-threaded builds alike.  Reads of ``p`` take no lock.  No user code
  (``__eq__``, ``__del__``...) runs while a stripe lock is held.

Semantics and decisions
-----------------------
* Missing keys load as ``(None, False)``; ``None`` is a storable value
  (``load`` then returns ``(None, True)``), like Go's nil interface.
* Keys follow Python dict semantics (``hash``/``==``; so ``1``, ``1.0`` and
  ``True`` are one key, unlike Go where ``int(1)`` and ``float64(1)`` differ).
  An unhashable key raises ``TypeError`` before anything changes.
* ``compare_and_swap`` / ``compare_and_delete`` compare with Python ``==``
  (``current == old``), where Go compares interfaces with ``==`` (and panics on
  incomparable dynamic types).  Exceptions raised by ``==`` propagate.  NaN is
  not equal to itself, so a NaN value never compares equal -- as in Go.
  ``compare_and_delete(k, None)`` on a missing key is ``False`` (Go: "even if
  the old value is the nil interface value").
* ``range(f)`` calls ``f(key, value)`` and stops when ``f`` returns exactly
  ``False`` (``is False``).  Any other result -- ``None`` included, so a plain
  function without ``return`` visits everything -- continues.  Like Go it
  promotes the dirty dict first when ``amended``, visits the read map (every
  key at most once; concurrent changes may or may not be seen) and never holds
  the mutex while calling ``f``; ``f`` may call any method of the map.
* ``len(m)`` is O(n): it counts the live entries of the dirty dict (taking the
  mutex) when ``amended``, else of the read map (no lock needed: it is
  immutable).  Exact when no other thread writes during the call; under
  concurrent writes each entry is observed at some moment during the call.
* ``iter(m)`` is a list snapshot of the keys that one range-like pass saw live
  (so, like ``range``, it promotes the dirty dict); ``repr`` likewise.
* Locks: the mutex is a non-reentrant :class:`threading.Lock`.  User code that
  may run while it is held -- key ``__hash__``/``__eq__`` in the slow paths,
  value ``__eq__`` in ``compare_and_swap`` on a key present only in the dirty
  dict (Go also compares there with the mutex held), finalizers triggered by
  garbage collection -- must not call back into the *same* SyncMap, or it
  deadlocks.  Values replaced or dropped by an operation are released after the
  locks are.
* ``_debug_state()`` exposes Go's internal state (for the differential tests
  against Go's own ``sync.Map``); it is not API.
"""

from __future__ import annotations

import threading
from itertools import chain
from reprlib import recursive_repr
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["SyncMap"]

K = TypeVar("K")
V = TypeVar("V")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: entry.p when the entry was deleted (Go: p == nil).
_NIL: Any = _Sentinel("<nil>")
#: entry.p when the entry was deleted and left out of the dirty dict
#: (Go: p == expunged).
_EXPUNGED: Any = _Sentinel("<expunged>")

#: Striped locks that make each entry's compare-and-swap of ``p`` atomic.  A
#: prime count spreads the (16-byte aligned) object addresses over the stripes.
_NSTRIPES = 61
_STRIPES = tuple(threading.Lock() for _ in range(_NSTRIPES))


class _Entry:
    """Go's ``entry``: a slot whose ``p`` is swapped atomically.

    Every write of ``p`` holds ``self.lk``; reads of ``p`` are lock-free.  The
    ``with self.lk`` blocks contain no allocation and no user code, and keep
    the previous value referenced until the lock is released.
    """

    __slots__ = ("lk", "p")

    def __init__(self, value: Any) -> None:
        self.p = value
        self.lk = _STRIPES[(id(self) >> 4) % _NSTRIPES]

    def try_swap(self, value: Any) -> tuple[Any, bool]:
        """Go ``trySwap``: store unless expunged; ``(previous p, stored)``."""
        with self.lk:
            p = self.p
            if p is not _EXPUNGED:
                self.p = value
        return p, p is not _EXPUNGED

    def try_store(self, value: Any) -> bool:
        """Go 1.19 ``tryStore``: store unless expunged."""
        with self.lk:
            ok = self.p is not _EXPUNGED
            if ok:
                old = self.p  # noqa: F841 - released after the lock
                self.p = value
        return ok

    def unexpunge_locked(self) -> bool:
        """Go ``unexpungeLocked`` (mutex held): expunged -> nil."""
        with self.lk:
            was = self.p is _EXPUNGED
            if was:
                self.p = _NIL
        return was

    def swap_locked(self, value: Any) -> Any:
        """Go ``swapLocked`` (mutex held, entry not expunged)."""
        with self.lk:
            p = self.p
            self.p = value
        return p

    def try_load_or_store(self, value: Any) -> tuple[Any, bool, bool]:
        """Go ``tryLoadOrStore``: ``(actual, loaded, ok)``; ok False iff expunged."""
        p = self.p
        if p is _NIL:
            with self.lk:
                p = self.p
                if p is _NIL:
                    self.p = value
            if p is _NIL:
                return value, False, True
        if p is _EXPUNGED:
            return None, False, False
        return p, True, True

    def delete(self) -> tuple[Any, bool]:
        """Go ``entry.delete``: ``(previous value, deleted)``."""
        p = self.p
        if p is _NIL or p is _EXPUNGED:
            return None, False
        with self.lk:
            p = self.p
            live = p is not _NIL and p is not _EXPUNGED
            if live:
                self.p = _NIL
        if live:
            return p, True
        return None, False

    def try_compare_and_swap(self, old: Any, new: Any) -> bool:
        """Go ``tryCompareAndSwap``: swap if live and ``p == old``.

        ``==`` runs outside the stripe lock; the swap then succeeds only if
        ``p`` still holds the very object that was compared.
        """
        while True:
            p = self.p
            if p is _NIL or p is _EXPUNGED or not (p == old):  # noqa: SIM201 - Python ==
                return False
            with self.lk:
                swapped = self.p is p
                if swapped:
                    self.p = new
            if swapped:
                return True

    def try_compare_and_delete(self, old: Any) -> bool:
        """The CAS loop of Go's ``CompareAndDelete``."""
        while True:
            p = self.p
            if p is _NIL or p is _EXPUNGED or not (p == old):  # noqa: SIM201 - Python ==
                return False
            with self.lk:
                deleted = self.p is p
                if deleted:
                    self.p = _NIL
            if deleted:
                return True

    def try_expunge_locked(self) -> bool:
        """Go ``tryExpungeLocked`` (mutex held): nil -> expunged."""
        p = self.p
        if p is _NIL:
            with self.lk:
                p = self.p
                if p is _NIL:
                    self.p = _EXPUNGED
                    p = _EXPUNGED
        return p is _EXPUNGED


class _ReadOnly:
    """Go's ``readOnly``; never mutated once published in ``SyncMap._read``."""

    __slots__ = ("amended", "m")

    def __init__(self, m: dict[Any, _Entry], amended: bool) -> None:
        self.m = m
        self.amended = amended


def _count_live(entries: dict[Any, _Entry]) -> int:
    n = 0
    for e in entries.values():
        p = e.p
        if p is not _NIL and p is not _EXPUNGED:
            n += 1
    return n


class SyncMap(Generic[K, V]):
    """Go's ``sync.Map``: a map safe for concurrent use, optimised for keys
    written once and read many times, or for threads touching disjoint keys.

    See the module docstring for the algorithm and the exact semantics.
    """

    __slots__ = ("__weakref__", "_dirty", "_misses", "_mu", "_read")

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._read = _ReadOnly({}, False)
        self._dirty: dict[Any, _Entry] | None = None
        self._misses = 0

    # -- internals (mutex held) ---------------------------------------------

    def _miss_locked(self) -> _ReadOnly | None:
        """Go ``missLocked``.  Returns the replaced read map (if any) so the
        caller releases it after unlocking."""
        self._misses += 1
        dirty = self._dirty
        assert dirty is not None
        if self._misses < len(dirty):
            return None
        old = self._read
        self._read = _ReadOnly(dirty, False)
        self._dirty = None
        self._misses = 0
        return old

    def _dirty_locked(self) -> None:
        """Go ``dirtyLocked``: copy the read map, omitting (and expunging)
        deleted entries."""
        if self._dirty is not None:
            return
        m = self._read.m
        dirty = m.copy()  # keeps the stored hashes: no user code for live keys
        for k, e in m.items():
            if e.try_expunge_locked():
                del dirty[k]
        self._dirty = dirty

    def _add_new_locked(self, key: Any, value: Any, read: _ReadOnly) -> None:
        if not read.amended:
            # The first new key for the dirty dict: make sure it exists and
            # mark the read map incomplete.
            self._dirty_locked()
            self._read = _ReadOnly(read.m, True)
        dirty = self._dirty
        assert dirty is not None
        dirty[key] = _Entry(value)

    def _range_read(self) -> _ReadOnly:
        """Range's prologue: promote the dirty dict if amended; return the
        read map to iterate."""
        read = self._read
        old = None
        if read.amended:
            with self._mu:
                read = self._read
                if read.amended:
                    old = read
                    dirty = self._dirty
                    assert dirty is not None
                    read = _ReadOnly(dirty, False)
                    self._read = read
                    self._dirty = None
                    self._misses = 0
            del old
        return read

    # -- Go 1.19 API ----------------------------------------------------------

    def load(self, key: K) -> tuple[V | None, bool]:
        """Go ``Load``: ``(value, True)``, or ``(None, False)`` if absent."""
        read = self._read
        e = read.m.get(key)
        if e is None and read.amended:
            with self._mu:
                # The dirty dict may have been promoted while we waited.
                read = self._read
                e = read.m.get(key)
                if e is None and read.amended:
                    e = self._dirty.get(key)  # type: ignore[union-attr]
                    # Record a miss whether or not the key was present.
                    _old = self._miss_locked()
        if e is None:
            return None, False
        p = e.p
        if p is _NIL or p is _EXPUNGED:
            return None, False
        return p, True

    def store(self, key: K, value: V) -> None:
        """Go ``Store``: set the value for a key."""
        e = self._read.m.get(key)
        if e is not None and e.try_store(value):
            return
        self._swap_slow(key, value)

    def load_or_store(self, key: K, value: V) -> tuple[V, bool]:
        """Go ``LoadOrStore``: ``(existing, True)`` if present, else store
        and return ``(value, False)``."""
        read = self._read
        e = read.m.get(key)
        if e is not None:
            actual, loaded, ok = e.try_load_or_store(value)
            if ok:
                return actual, loaded
        with self._mu:
            read = self._read
            e = read.m.get(key)
            if e is not None:
                if e.unexpunge_locked():
                    self._dirty[key] = e  # type: ignore[index]
                actual, loaded, _ = e.try_load_or_store(value)
            else:
                dirty = self._dirty
                e = dirty.get(key) if dirty is not None else None
                if e is not None:
                    actual, loaded, _ = e.try_load_or_store(value)
                    _old = self._miss_locked()
                else:
                    self._add_new_locked(key, value, read)
                    actual, loaded = value, False
        return actual, loaded

    def load_and_delete(self, key: K) -> tuple[V | None, bool]:
        """Go ``LoadAndDelete``: delete, returning ``(previous, True)``, or
        ``(None, False)`` if absent."""
        read = self._read
        e = read.m.get(key)
        if e is None and read.amended:
            with self._mu:
                read = self._read
                e = read.m.get(key)
                if e is None and read.amended:
                    e = self._dirty.pop(key, None)  # type: ignore[union-attr]
                    _old = self._miss_locked()
        if e is not None:
            return e.delete()
        return None, False

    def delete(self, key: K) -> None:
        """Go ``Delete``."""
        self.load_and_delete(key)

    def range(self, f: Callable[[K, V], object]) -> None:
        """Go ``Range``: call ``f(key, value)`` for each live entry; stop when
        ``f`` returns exactly ``False`` (``None`` and other values continue)."""
        read = self._range_read()
        for k, e in read.m.items():
            p = e.p
            if p is _NIL or p is _EXPUNGED:
                continue
            if f(k, p) is False:
                break

    # -- Go 1.20 / 1.23 API ----------------------------------------------------

    def swap(self, key: K, value: V) -> tuple[V | None, bool]:
        """Go ``Swap``: store, returning ``(previous, True)`` or
        ``(None, False)`` if the key was absent."""
        read = self._read
        e = read.m.get(key)
        if e is not None:
            p, ok = e.try_swap(value)
            if ok:
                if p is _NIL:
                    return None, False
                return p, True
        return self._swap_slow(key, value)

    def _swap_slow(self, key: Any, value: Any) -> tuple[Any, bool]:
        """The mutex half of Go's ``Swap`` (and of Go 1.19's ``Store``)."""
        with self._mu:
            read = self._read
            e = read.m.get(key)
            if e is not None:
                if e.unexpunge_locked():
                    # Expunged implies a non-None dirty dict lacking the entry.
                    self._dirty[key] = e  # type: ignore[index]
                p = e.swap_locked(value)
            else:
                dirty = self._dirty
                e = dirty.get(key) if dirty is not None else None
                if e is not None:
                    p = e.swap_locked(value)
                else:
                    self._add_new_locked(key, value, read)
                    p = _NIL
        if p is _NIL:
            return None, False
        return p, True

    def compare_and_swap(self, key: K, old: V, new: V) -> bool:
        """Go ``CompareAndSwap``: store ``new`` if the current value ``== old``."""
        read = self._read
        e = read.m.get(key)
        if e is not None:
            return e.try_compare_and_swap(old, new)
        if not read.amended:
            return False  # no existing value for key
        with self._mu:
            read = self._read
            e = read.m.get(key)
            if e is not None:
                return e.try_compare_and_swap(old, new)
            dirty = self._dirty
            e = dirty.get(key) if dirty is not None else None
            if e is None:
                return False
            swapped = e.try_compare_and_swap(old, new)
            # The key needed the mutex: count a miss so the dirty dict is
            # eventually promoted.
            _old = self._miss_locked()
        return swapped

    def compare_and_delete(self, key: K, old: V) -> bool:
        """Go ``CompareAndDelete``: delete if the current value ``== old``;
        ``False`` when the key is absent (even for ``old=None``)."""
        read = self._read
        e = read.m.get(key)
        if e is None and read.amended:
            with self._mu:
                read = self._read
                e = read.m.get(key)
                if e is None and read.amended:
                    # Left in the dirty dict: the compare is still to come.
                    e = self._dirty.get(key)  # type: ignore[union-attr]
                    _old = self._miss_locked()
        if e is None:
            return False
        return e.try_compare_and_delete(old)

    def clear(self) -> None:
        """Go 1.23 ``Clear``: delete all entries."""
        read = self._read
        if not read.m and not read.amended:
            return
        with self._mu:
            read = self._read
            if read.m or read.amended:
                self._read = _ReadOnly({}, False)
            # Go clears the dirty map in place (it stays non-nil); a fresh
            # empty dict is the same state, and lets the old contents be
            # released after unlocking.
            old_dirty = self._dirty
            if old_dirty is not None:
                self._dirty = {}
            # Don't immediately promote the cleared dirty dict.
            self._misses = 0
        del read, old_dirty

    # -- Python mapping protocol ----------------------------------------------

    def __len__(self) -> int:
        read = self._read
        if read.amended:
            with self._mu:
                read = self._read
                if read.amended:
                    return _count_live(self._dirty)  # type: ignore[arg-type]
        return _count_live(read.m)

    def __getitem__(self, key: K) -> V:
        value, ok = self.load(key)
        if not ok:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: K, value: V) -> None:
        self.store(key, value)

    def __delitem__(self, key: K) -> None:
        _, loaded = self.load_and_delete(key)
        if not loaded:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self.load(key)[1]  # type: ignore[arg-type]

    def _snapshot(self) -> list[tuple[Any, Any]]:
        items = []
        for k, e in self._range_read().m.items():
            p = e.p
            if p is not _NIL and p is not _EXPUNGED:
                items.append((k, p))
        return items

    def __iter__(self) -> Iterator[K]:
        return iter([k for k, _ in self._snapshot()])

    @recursive_repr()
    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self._snapshot())
        return f"{type(self).__name__}({{{body}}})"

    # -- debugging -------------------------------------------------------------

    def _debug_state(self) -> dict[str, Any]:
        """Go's internal state, for tests (not API).

        ``read``: keys of ``read.m``; ``amended``; ``dirty``: its keys or
        ``None``; ``misses``; ``expunged``: keys whose entry is expunged;
        ``deleted``: keys (of read or dirty) whose entry is nil; ``shared``:
        keys whose read and dirty entries are the same object.
        """
        with self._mu:
            read = self._read
            dirty = self._dirty
            rm = read.m
            dm: dict[Any, _Entry] = dirty if dirty is not None else {}
            return {
                "read": frozenset(rm),
                "amended": read.amended,
                "dirty": None if dirty is None else frozenset(dirty),
                "misses": self._misses,
                "expunged": frozenset(
                    k for k, e in chain(rm.items(), dm.items()) if e.p is _EXPUNGED
                ),
                "deleted": frozenset(
                    k for k, e in chain(rm.items(), dm.items()) if e.p is _NIL
                ),
                "shared": frozenset(k for k, e in rm.items() if dm.get(k) is e),
            }
