"""Watchdog for consumption that stopped although records are waiting: which partitions to seek again, and where.

When the handover drop (docs/reliability.md) takes a partition's whole backlog, no later message shows the offset
guard a jump, and a table recovery waits forever for records that will not come. `StallWatchdog.check` is pure:
given per partition the records still waiting and the last offset taken, it answers which partitions to seek again
(from the next offset) once a partition has had records waiting and taken none for `stall_s`, and again every
`stall_s` while it stays stuck. Each partition has its own clock, and only what is taken moves it: new records
arriving on a stuck partition (cameras still filming) or other partitions moving do not hide the stall, and a slow
but moving partition is never touched.
"""
from __future__ import annotations

from typing import Hashable, Mapping

DEFAULT_STALL_S = 10.0


class StallWatchdog:
    """Detects partitions whose waiting records stopped being taken; see the module docstring."""

    def __init__(self, stall_s: float = DEFAULT_STALL_S) -> None:
        self._stall_s = stall_s
        self._clocks: dict[Hashable, tuple[int, float]] = {}  # partition -> (last offset taken, since when)

    def check(self, waiting: Mapping[Hashable, int], taken: Mapping[Hashable, int], now: float) -> dict[Hashable, int]:
        """`waiting`: records not yet taken per partition (empty or all zero when nothing waits, or when the caller
        knows nothing can be taken now); `taken`: the last offset taken per partition (-1 for none). Returns
        {partition: offset to seek to}, empty unless consumption is stuck."""
        clocks, seeks = {}, {}
        for tp, count in waiting.items():
            if count <= 0:
                continue
            last = max(taken.get(tp, -1), -1)
            clock = self._clocks.get(tp)
            if clock is None or clock[0] != last:
                clock = (last, now)
            elif now - clock[1] >= self._stall_s:
                seeks[tp] = last + 1
                clock = (last, now)  # give the seek `stall_s` to deliver before seeking again
            clocks[tp] = clock
        self._clocks = clocks
        return seeks
