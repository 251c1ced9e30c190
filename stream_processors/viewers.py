"""When each viewer's last frame was scored: whose open second to close, whose state to release.

`ViewerActivity` keeps, per person key, the wall time of their last scored frame and their `faces` partition, and
which viewers have frames in the worker's own pipeline (`taken` until `finished`: admitted, scored or stored).
`idle` answers whose open second to close (no frame for `idle_flush_s`, none in the pipeline, on an owned
partition with no messages waiting) and remembers them as closed; `expired` answers which closed viewers' states
to release (no frame for `retention_s`) and forgets them; `revoke` forgets the viewers of partitions no longer
owned. Pure: the worker supplies the clock and the partitions, and does the closing and releasing.
"""
from __future__ import annotations

from collections import Counter
from typing import Collection, Iterable


class ViewerActivity:
    """Last frame time per viewer, open or closed; see the module docstring."""

    def __init__(self, idle_flush_s: float, retention_s: float) -> None:
        self._idle_flush_s = idle_flush_s
        self._retention_s = retention_s
        self._open: dict[bytes, tuple[float, int]] = {}  # key -> (last frame, partition): a second is open
        self._closed: dict[bytes, tuple[float, int]] = {}  # key -> (last frame, partition): state kept, nothing open
        self._in_flight: Counter[bytes] = Counter()  # key -> batches taken and not yet finished

    @property
    def open_keys(self) -> set[bytes]:
        return set(self._open)

    @property
    def closed_keys(self) -> set[bytes]:
        return set(self._closed)

    def update(self, key: bytes, partition: int, now: float) -> None:
        self._closed.pop(key, None)
        self._open[key] = (now, partition)

    def closed(self, key: bytes, partition: int, now: float) -> None:
        if key not in self._open:
            self._closed[key] = (now, partition)

    def taken(self, keys: Iterable[bytes]) -> None:
        """A batch with messages of `keys` is in the worker (admitted, scored or stored): not idle until
        `finished(keys)`."""
        self._in_flight.update(set(keys))

    def finished(self, keys: Iterable[bytes]) -> None:
        """The batch `taken(keys)` announced has updated its viewers (or failed)."""
        for key in set(keys):
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def idle(self, now: float, owned: Collection[int], late: Collection[int] = ()) -> list[bytes]:
        keys = [key for key, (seen, partition) in self._open.items()
                if now - seen >= self._idle_flush_s and partition in owned and partition not in late
                and key not in self._in_flight]
        for key in keys:
            self._closed[key] = self._open.pop(key)
        return keys

    def expired(self, now: float) -> list[bytes]:
        keys = [key for key, (seen, _) in self._closed.items() if now - seen >= self._retention_s]
        for key in keys:
            del self._closed[key]
        return keys

    def revoke(self, partitions: Collection[int]) -> None:
        for viewers in (self._open, self._closed):
            for key in [key for key, (_, partition) in viewers.items() if partition in partitions]:
                del viewers[key]
