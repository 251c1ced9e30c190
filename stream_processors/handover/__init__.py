"""The one seam for faust-streaming 0.15's partition-handover bug (docs/upstream-faust-handover.md): Faust hands the
consumer thread its live set of active partitions, pausing empties it, aiokafka reads an empty set as "all
partitions" and moves positions past records that Faust drops and commits over. Both consumed topics are fenced
(`faces`, `emotion-events`). The worker sees `Handover` (worker.py): `admit(events)`, nothing past a skipped offset
(offset_guard.py, rewinder.py); `late_partitions(owned)`, owned `faces` partitions with messages waiting (late
frames, not gone). Timers repeat undelivered rewinds, rewind partitions whose waiting messages stopped arriving and
seek a stalled table recovery again (stall_watchdog.py). Everything that reaches into Faust internals is here.

Removal, once Faust gives the consumer thread a snapshot and fetches nothing for an empty active set: delete this
package and the `install_handover_workaround(...)` line in stream_processors/app.py (the worker runs `NoHandover`).
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Collection, Mapping

import faust
from faust.types import TP, EventT

from infra.kafka_broker import is_transient
from infra.kafka_security import kafka_python_kwargs
from infra.topics import read_start_offsets
from schemas.settings import Settings
from stream_processors.handover.offset_guard import OffsetGuard
from stream_processors.handover.rewinder import Rewinder, admitted_events, keep_skips_uncommitted
from stream_processors.handover.stall_watchdog import StallWatchdog

STALL_S = 5.0  # a partition with messages waiting but none admitted this long is rewound
START_OFFSETS_RETRY_S = (0.5, 5.0)  # first and longest pause between reads of the start offsets while Kafka is away


class Fence:
    """Offset guard, rewinder and stall watchdog of one topic; `is_busy`: its agent is mid-batch (no stall)."""

    def __init__(self, topic: str, is_busy: Callable[[], bool]) -> None:
        self.topic, self.is_busy = topic, is_busy
        self.guard, self.rewinder, self.stall = OffsetGuard(), Rewinder(topic), StallWatchdog(stall_s=STALL_S)


class HandoverWorkaround:
    """Offset guards, rewinders and stall watchdogs of the consumed topics and the table recovery; see the
    docstring. `busy` maps each fenced topic to its agent's busy flag; `start_offsets(topic)` gives
    {partition: offset} where the group has to read that topic from."""

    def __init__(self, app: faust.App, busy: Mapping[str, Callable[[], bool]],
                 start_offsets: Callable[[str], dict[int, int]], faces_topic: str) -> None:
        self._app = app
        self._fences = {topic: Fence(topic, is_busy) for topic, is_busy in busy.items()}
        self._start_offsets = start_offsets
        self._faces = self._fences[faces_topic]
        self._recovery_stall = StallWatchdog()

    async def admit(self, events: list[EventT]) -> list[EventT]:
        fence = self._fences.get(events[0].message.topic) if events else None
        if fence is None:
            return list(events)
        await self._ensure_guard(fence)
        return await admitted_events(events, fence.guard, fence.rewinder, self._app.consumer)

    def late_partitions(self, owned: Collection[int]) -> set[int]:
        if not self._faces.guard.current:
            return set()
        return set(self._waiting(self._faces, {TP(self._faces.topic, partition) for partition in owned}))

    async def on_assigned(self) -> None:
        """A new assignment: each guard restarts from where the group has to read (`_ensure_guard`)."""
        keep_skips_uncommitted(self._app.consumer, self._fences)
        for fence in self._fences.values():
            fence.guard.invalidate()
            fence.rewinder.clear()

    async def keep_partitions_moving(self) -> None:
        """Repeat a rewind that has not delivered the skipped messages, even if no new message arrives; rewind a
        partition that has messages waiting but admitted none for STALL_S while its agent was idle and no table
        recovery ran: its records were dropped after the last one it admitted."""
        assigned = self._app.assignor.assigned_actives()
        recovering = self._app.tables.recovery.in_recovery  # Faust pauses every active partition until it ends
        for fence in self._fences.values():
            await self._ensure_guard(fence)
            await fence.rewinder.retry_due(self._app.consumer, fence.guard, assigned)
            waiting = self._waiting(fence, assigned) if not (fence.is_busy() or recovering) else {}
            taken = {partition: fence.guard.expected(partition) - 1 for partition in waiting}
            for partition, offset in fence.stall.check(waiting, taken, time.monotonic()).items():
                state = fetch_state(self._app.consumer, TP(fence.topic, partition))
                await fence.rewinder.rewind(self._app.consumer, partition, offset,
                                            why=f"waiting messages stopped arriving (Faust fetches it: {state})")

    async def unstick_table_recovery(self) -> None:
        """Seek the changelog partitions of a recovery that has stopped receiving records."""
        recovery = self._app.tables.recovery
        remaining = recovery.active_remaining() if recovery.in_recovery else {}
        seeks = self._recovery_stall.check(remaining, recovery.active_offsets, time.monotonic())
        if seeks:
            self._app.log.warning("table recovery stalled; seeking changelog partitions again: %s", seeks)
            await self._app.consumer.seek_wait(seeks)

    async def _ensure_guard(self, fence: Fence) -> None:
        """After an assignment, start the guard (once) where the group has to read: its committed offsets, or the
        log start where retention deleted past them or nothing was committed. While the broker is away or its
        partitions have no leader yet (a broker restart), wait and read again: nothing can be admitted before."""
        pause, longest = START_OFFSETS_RETRY_S
        waited_since = None
        while not fence.guard.current:
            try:
                starts = await asyncio.get_running_loop().run_in_executor(None, self._start_offsets, fence.topic)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if waited_since is None:
                    waited_since = time.monotonic()
                    self._app.log.warning("start offsets of %s not readable (%r); retrying until Kafka answers",
                                          fence.topic, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
                continue
            if not fence.guard.current:  # the agent or the timer may have done it meanwhile
                fence.guard.reset(starts)
            if waited_since is not None:
                self._app.log.info("start offsets of %s read after %.1fs", fence.topic, time.monotonic() - waited_since)

    def _waiting(self, fence: Fence, assigned: Collection[TP]) -> dict[int, int]:
        """{partition: messages past the guard's expected offset} of the fence's assigned partitions."""
        waiting: dict[int, int] = {}
        for tp in assigned:
            expected = fence.guard.expected(tp.partition) if tp.topic == fence.topic else None
            if expected is not None:
                try:
                    highwater = self._app.consumer.highwater(tp)
                except (AssertionError, KeyError):  # no longer assigned to this consumer
                    continue
                if highwater is not None and highwater > expected:
                    waiting[tp.partition] = highwater - expected
        return waiting


def fetch_state(consumer, tp: TP) -> str:
    """Where Faust's consumer keeps `tp`: in the set it fetches ("active"), paused (a recovery), taken out because its
    stream buffer was full ("buffer full"), or in none of them (then nothing fetches it)."""
    sets = {"active": consumer._active_partitions or (), "paused": consumer._paused_partitions,
            "buffer full": consumer._buffered_partitions}
    return ", ".join(name for name, tps in sets.items() if tp in tps) or "none"


def install_handover_workaround(app: faust.App, settings: Settings,
                                busy: Mapping[str, Callable[[], bool]]) -> HandoverWorkaround:
    """Create the workaround for the topics of `busy` (topic -> its agent's busy flag) and register its assignment
    hook and timers on `app` (before the app starts)."""
    def start_offsets(topic: str) -> dict[int, int]:
        return read_start_offsets(settings.kafka_bootstrap, settings.processor_group, topic,
                                  security=kafka_python_kwargs(settings))

    handover = HandoverWorkaround(app, busy, start_offsets, settings.topics.faces)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender, assigned, **kwargs) -> None:
        await handover.on_assigned()

    app.timer(interval=1.0, name="handover.keep_partitions_moving")(handover.keep_partitions_moving)
    app.timer(interval=2.0, name="handover.unstick_table_recovery")(handover.unstick_table_recovery)
    return handover
