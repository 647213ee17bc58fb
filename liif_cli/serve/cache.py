"""A least-recently-used store bounded in bytes, for saved encodings (issue 10's `Encoding`).

An encoding of a large image weighs hundreds of megabytes, so the bound is on bytes, not on entries:
adding one evicts the least recently used until the total fits. Anything with an `nbytes` attribute
can be stored. Ids are random and unguessable, so one client cannot name another's encoding. A lookup
of an evicted id says so (`Evicted`), distinct from an id that never existed (`Unknown`).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Any


class Unknown(KeyError):
    """No such id: never issued, or deleted."""


class Evicted(Unknown):
    """The id was issued but its entry was evicted to make room."""


class TooLarge(ValueError):
    """One entry larger than the whole cache."""


class ByteLRU:
    def __init__(self, max_bytes: int, *, remember_evicted: int = 10_000):
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._evicted: OrderedDict[str, None] = OrderedDict()  # recent evictions, for a clearer 404
        self._remember = remember_evicted
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def add(self, value: Any) -> str:
        """Store `value` under a fresh id (returned), evicting the least recently used as needed."""
        size = int(value.nbytes)
        if size > self.max_bytes:
            raise TooLarge(f"{size / 2**20:.1f} MiB is more than the whole cache ({self.max_bytes / 2**20:.1f} MiB)")
        key = secrets.token_urlsafe(12)
        with self._lock:
            while self.nbytes + size > self.max_bytes:
                old, (_, old_size) = self._items.popitem(last=False)
                self.nbytes -= old_size
                self._evicted[old] = None
                if len(self._evicted) > self._remember:
                    self._evicted.popitem(last=False)
            self._items[key] = (value, size)
            self.nbytes += size
        return key

    def get(self, key: str) -> Any:
        """The value, now the most recently used; Evicted or Unknown when it is not here."""
        with self._lock:
            try:
                value, _ = self._items[key]
            except KeyError:
                if key in self._evicted:
                    raise Evicted(key) from None
                raise Unknown(key) from None
            self._items.move_to_end(key)
            return value

    def delete(self, key: str) -> None:
        """Forget `key`; Evicted or Unknown when it is not here."""
        with self._lock:
            try:
                _, size = self._items.pop(key)
            except KeyError:
                if key in self._evicted:
                    raise Evicted(key) from None
                raise Unknown(key) from None
            self.nbytes -= size
