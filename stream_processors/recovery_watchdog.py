"""Watchdog for a table recovery that stopped receiving its changelog records.

faust-streaming 0.15 can lose changelog records in a partition handover the same way it loses `faces` records
(docs/reliability.md): the consumer thread fetches them while Faust's active set is empty for a moment, moves
the position past them and the records are dropped. A worker that takes over a killed worker's partitions then
waits forever for "events since recovery start" that never come, and scores nothing.

`RecoveryWatchdog.check` is pure: given the changelog records still to be applied per active partition, it
answers which partitions to seek again (from the next offset to apply) once that set has not moved for
`stall_s`, and again every `stall_s` while it stays stuck. The Faust app reads the recovery's figures and
performs the seek.
"""
from __future__ import annotations

from typing import Hashable, Mapping

DEFAULT_STALL_S = 10.0


class RecoveryWatchdog:
    """Detects a recovery whose remaining changelog records stopped moving; see the module docstring."""

    def __init__(self, stall_s: float = DEFAULT_STALL_S) -> None:
        self._stall_s = stall_s
        self._remaining: dict[Hashable, int] = {}
        self._since = 0.0

    def check(self, remaining: Mapping[Hashable, int], applied: Mapping[Hashable, int], now: float) -> dict[Hashable, int]:
        """`remaining`: records still to apply per partition (empty or all zero when no recovery runs);
        `applied`: the last offset applied per partition (-1 for none). Returns {partition: offset to seek to},
        empty unless the recovery is stuck."""
        behind = {tp: count for tp, count in remaining.items() if count > 0}
        if behind != self._remaining:
            self._remaining, self._since = behind, now
            return {}
        if not behind or now - self._since < self._stall_s:
            return {}
        self._since = now
        return {tp: max(applied.get(tp, -1), -1) + 1 for tp in behind}
