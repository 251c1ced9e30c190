"""Faust side of the offset guard (offset_guard.py): hold, rewind, never commit over a skip.

- `keep_skips_uncommitted`: Faust counts an offset jump as an "acked" gap (meant for compacted or transactional
  topics); on the fenced topics that would commit past skipped messages, so jumps there are not gaps.
- `admitted_events`: a batch through the guard: what to process is returned, held events get an extra reference
  (the batch's ack leaves them unacked) and their partition is rewound to the first missing offset.
- `Rewinder.retry_due`: a rewind can come to nothing (records fetched before the seek are dropped again), and no
  later message may come to show it, so a timer repeats it every `REWIND_RETRY_S` until it delivers.
"""
from __future__ import annotations

import logging
import time
from typing import Collection, Sequence

from faust.types import TP, EventT

from stream_processors.handover.offset_guard import Admission, OffsetGuard

log = logging.getLogger(__name__)

REWIND_RETRY_S = 2.0


def keep_skips_uncommitted(consumer, topics: Collection[str]) -> None:
    """Make the consumer's gap bookkeeping ignore `topics` (idempotent)."""
    topics = frozenset(topics)
    add_gap = consumer._add_gap
    if getattr(add_gap, "keeps_skips_of", None) == topics:
        return

    async def _add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic not in topics:
            await add_gap(tp, offset_from, offset_to)

    _add_gap.keeps_skips_of = topics
    consumer._add_gap = _add_gap


class Rewinder:
    """Rewinds partitions of one topic and remembers each rewind until the guard has seen its offset."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._pending: dict[int, tuple[int, float]] = {}  # partition -> (offset rewound to, when)

    @property
    def pending(self) -> dict[int, int]:
        """{partition: offset} of the rewinds that have not delivered yet."""
        return {partition: offset for partition, (offset, _) in self._pending.items()}

    def clear(self) -> None:
        """A new assignment: Faust seeks every partition to its committed offset, the guard starts over."""
        self._pending.clear()

    def book(self, partition: int, offset: int, now: float | None = None) -> bool:
        """Record a rewind of `partition` to `offset`; False if the same one was booked less than `REWIND_RETRY_S`
        ago (nothing to do)."""
        now = time.monotonic() if now is None else now
        last = self._pending.get(partition)
        if last is not None and last[0] == offset and now - last[1] < REWIND_RETRY_S:
            return False
        self._pending[partition] = (offset, now)
        return True

    async def rewind(self, consumer, partition: int, offset: int, why: str = "skipped messages") -> None:
        """Seek `partition` back to `offset` (see `book`); `why` goes to the log line."""
        if self.book(partition, offset):
            log.warning("%s partition %s: %s from offset %s: rewinding", self._topic, partition, why, offset)
            # seek_wait runs the seek in the consumer's own thread, like Faust's recovery does: a plain `seek` from
            # the event loop can race the fetcher (aiokafka's fetched_records then crashes with a KeyError).
            await consumer.seek_wait({TP(self._topic, partition): offset})

    def settle(self, guard: OffsetGuard) -> None:
        """Forget the rewinds whose offset the guard has now admitted."""
        for partition, (offset, _) in list(self._pending.items()):
            expected = guard.expected(partition)
            if expected is None or expected > offset:
                del self._pending[partition]

    def due(self, guard: OffsetGuard, assigned: Collection[TP], now: float | None = None) -> dict[int, int]:
        """{partition: offset} of the rewinds to repeat: still undelivered `REWIND_RETRY_S` after the last one, on
        a partition this worker still owns (the others are forgotten)."""
        self.settle(guard)
        now = time.monotonic() if now is None else now
        for partition in [p for p in self._pending if TP(self._topic, p) not in assigned]:
            del self._pending[partition]
        return {partition: offset for partition, (offset, at) in self._pending.items() if now - at >= REWIND_RETRY_S}

    async def retry_due(self, consumer, guard: OffsetGuard, assigned: Collection[TP]) -> None:
        for partition, offset in self.due(guard, assigned).items():
            await self.rewind(consumer, partition, offset, why="rewind not delivered yet")


async def admitted_events(events: Sequence[EventT], guard: OffsetGuard, rewinder: Rewinder, consumer) -> list[EventT]:
    kept: list[EventT] = []
    held: dict[int, int] = {}
    for event in events:
        message = event.message
        admission = guard.admit(message.partition, message.offset)
        if admission is Admission.PROCESS:
            kept.append(event)
        elif admission is Admission.HOLD:
            message.incref()  # the batch's ack then leaves it unacked
            held[message.partition] = guard.expected(message.partition)
    rewinder.settle(guard)
    for partition, offset in held.items():
        await rewinder.rewind(consumer, partition, offset)
    return kept
