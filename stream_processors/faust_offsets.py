"""Faust side of the `faces` offset guard (stream_processors/offset_guard.py): hold, rewind, never commit over a skip.

- `keep_skips_uncommitted`: Faust's consumer counts an offset jump as a gap that is "acked" (meant for compacted
  or transactional topics); for `faces` that would commit past skipped messages, so jumps there are not gaps.
- `admitted_events`: filters a micro-batch through the guard. Events to score are returned; replayed ones are
  left to the batch's normal ack; held ones get an extra reference so the batch's ack leaves them unacked, and
  their partition is rewound to the first missing offset (again if the rewind has not delivered it within
  `REWIND_RETRY_S`).
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

from faust.types import TP, EventT

from stream_processors.offset_guard import Admission, OffsetGuard

log = logging.getLogger(__name__)

REWIND_RETRY_S = 2.0


def keep_skips_uncommitted(consumer, topic: str) -> None:
    """Make the consumer's gap bookkeeping ignore `topic` (idempotent)."""
    add_gap = consumer._add_gap
    if getattr(add_gap, "keeps_skips_of", None) == topic:
        return

    async def _add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic != topic:
            await add_gap(tp, offset_from, offset_to)

    _add_gap.keeps_skips_of = topic
    consumer._add_gap = _add_gap


class Rewinder:
    """Rewinds partitions of one topic, at most once per `REWIND_RETRY_S` for the same target offset."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._last: dict[int, tuple[int, float]] = {}

    async def rewind(self, consumer, partition: int, offset: int) -> None:
        now = time.monotonic()
        last = self._last.get(partition)
        if last is not None and last[0] == offset and now - last[1] < REWIND_RETRY_S:
            return
        self._last[partition] = (offset, now)
        log.warning("%s partition %s skipped messages from offset %s: rewinding", self._topic, partition, offset)
        await consumer.seek(TP(self._topic, partition), offset)


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
    for partition, offset in held.items():
        await rewinder.rewind(consumer, partition, offset)
    return kept
