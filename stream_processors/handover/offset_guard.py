"""Per-partition offset continuity of a consumed stream (`faces`, `emotion-events`): nothing is processed past a
skipped message.

faust-streaming 0.15 can skip a run of messages of a partition that changes owner in a rebalance: records
fetched while the partition was briefly active are dropped when it is paused again, aiokafka's position has
already moved past them, and Faust commits over the jump (docs/reliability.md). Neither topic is compacted
nor transactional, so their offsets are contiguous and a jump is always a skip.

`OffsetGuard` knows, per partition, the next offset the agent must see: where the group has to read from at
assignment (its committed offset, or the log start where retention deleted past it or nothing was committed:
`infra.topics.read_start_offsets`), then one past each message it admitted. `admit` returns what to do with a message:

- `PROCESS`: it is the next one;
- `REPLAYED`: it was already admitted (a rewind re-reads it): ack it, do not score it twice;
- `HOLD`: messages are missing before it: leave it unacked, so no commit can pass the missing ones, and
  rewind the partition to `expected(partition)`; it comes back after them.

A partition without a start offset takes its first message as the start.
Pure: the Faust app supplies the start offsets, performs the rewind and the acks.
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
