"""Watchdog for consumption that stopped although records are waiting: which partitions to seek again, and where.

When the handover drop (docs/reliability.md) takes a partition's whole backlog, no later message shows the offset
guard a jump, and a table recovery waits forever for records that will not come. `StallWatchdog.check` is pure:
given per partition the records still waiting and the last offset taken, it answers which partitions to seek again
(from the next offset) once the waiting counts have not moved for `stall_s`, and again every `stall_s` while they
stay stuck. A slow but moving partition is never touched.
"""
from __future__ import annotations

from typing import Hashable, Mapping

DEFAULT_STALL_S = 10.0


class StallWatchdog:
    """Detects partitions whose waiting records stopped moving; see the module docstring."""

    def __init__(self, stall_s: float = DEFAULT_STALL_S) -> None:
        self._stall_s = stall_s
        self._waiting: dict[Hashable, int] = {}
        self._since = 0.0

    def check(self, waiting: Mapping[Hashable, int], taken: Mapping[Hashable, int], now: float) -> dict[Hashable, int]:
        """`waiting`: records not yet taken per partition (empty or all zero when nothing waits);
        `taken`: the last offset taken per partition (-1 for none). Returns {partition: offset to seek to},
        empty unless consumption is stuck."""
        behind = {tp: count for tp, count in waiting.items() if count > 0}
        if behind != self._waiting:
            self._waiting, self._since = behind, now
            return {}
        if not behind or now - self._since < self._stall_s:
            return {}
        self._since = now
        return {tp: max(taken.get(tp, -1), -1) + 1 for tp in behind}
