"""gomap: Go's classic runtime map (Go 1.19-1.24 ``runtime/map.go``, the release
chosen per map with ``Map(go=...)``) for Python.

``gomap.Map`` reproduces the Go runtime bit for bit (buckets, tophash bytes,
overflow chains, growth, iteration order) given Go's ``hashkey`` and random
draws; see ``Map.snapshot()`` and ``python -m gomap crosscheck``.
"""

from collections.abc import ItemsView, KeysView, MutableMapping, ValuesView

from ._core import ConcurrentMapError, Map, build_info
from . import _core
from .sharded import ShardedMap
from .syncmap import SyncMap

MutableMapping.register(Map)
KeysView.register(_core.map_keys)
ValuesView.register(_core.map_values)
ItemsView.register(_core.map_items)

__all__ = ["ConcurrentMapError", "Map", "ShardedMap", "SyncMap", "build_info"]
__version__ = build_info()[1]
