"""Per-partition offset continuity of a consumed topic: nothing is processed past a skipped message.

Neither fenced topic is compacted nor transactional, so a jump in offsets is always a skip (the handover drop,
docs/reliability.md). `OffsetGuard` knows per partition the next offset the agent must see: where the group has
to read from at assignment (`infra.topics.read_start_offsets`; a partition without one takes its first message),
then one past each admitted message. `admit` answers PROCESS (the next one), REPLAYED (already admitted: a
rewind re-reads it; ack, do not process twice) or HOLD (messages are missing before it: leave it unacked so no
commit passes them, and rewind to `expected(partition)`). Pure: the Faust app supplies offsets, rewinds and acks.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping


class Admission(Enum):
    PROCESS = "process"
    REPLAYED = "replayed"
    HOLD = "hold"


class OffsetGuard:
    """Expected next offset per partition; see the module docstring."""

    def __init__(self) -> None:
        self._expected: dict[int, int] = {}
        self._current = False

    @property
    def current(self) -> bool:
        """False after `invalidate` until `reset` gives the new assignment's start offsets."""
        return self._current

    def invalidate(self) -> None:
        """The assignment changed: the expected offsets are unknown until the next `reset`."""
        self._current = False

    def reset(self, starts: Mapping[int, int]) -> None:
        """Start from the offsets the group has to read next (partition -> offset)."""
        self._expected = {partition: offset for partition, offset in starts.items() if offset >= 0}
        self._current = True

    def expected(self, partition: int) -> int | None:
        return self._expected.get(partition)

    def admit(self, partition: int, offset: int) -> Admission:
        expected = self._expected.get(partition)
        if expected is None or offset == expected:
            self._expected[partition] = offset + 1
            return Admission.PROCESS
        return Admission.REPLAYED if offset < expected else Admission.HOLD
