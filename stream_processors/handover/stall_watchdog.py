"""Watchdog for consumption that stopped although records are waiting: which partitions to seek again, and where.

faust-streaming 0.15 can drop fetched records in a partition handover: the consumer thread fetches them while
Faust's active set is empty for a moment, moves the position past them, and Faust drops them
(docs/reliability.md). Two places then wait forever for records that will not come:

- a table recovery ("No event received for active tp ... since recovery start"): the worker scores nothing;
- a `faces` partition whose whole backlog was in the dropped fetch: no later message arrives to show the offset
  guard a jump, and that partition's viewers stay unscored.

`StallWatchdog.check` is pure: given, per partition, the records still waiting and the last offset taken, it
answers which partitions to seek again (from the next offset) once the waiting counts have not moved for
`stall_s`, and again every `stall_s` while they stay stuck. Seeking again from the next offset is what the
consumer would do anyway, so a slow but moving partition is never touched. The Faust app supplies the figures
and performs the seeks.
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
