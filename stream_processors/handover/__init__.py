"""The one seam for faust-streaming 0.15's partition-handover bug; removing this package is the upgrade path.

The bug (docs/upstream-faust-handover.md): Faust hands the consumer thread its live, mutable set of active
partitions; pausing empties it in place, aiokafka's fetcher reads an empty set as "all partitions" and moves
positions past records that Faust then drops (and commits over). Everything here reaches into Faust internals
(`consumer._add_gap`, `consumer.highwater`, `consumer.seek_wait`, `assignor.assigned_actives()`,
`tables.recovery`); the worker sees only the two methods of `Handover` (stream_processors/worker.py):

- `admit(events)`: the `faces` events to score, in order; nothing past a skipped offset (offset_guard.py), the
  partition rewound to the first missing one (rewinder.py);
- `late_partitions(owned)`: owned `faces` partitions with messages waiting past what was admitted (their viewers'
  frames are late, not gone: the idle flush waits for them).

`install` also registers, on the app, what keeps partitions moving when no message comes to show a skip: a timer
that repeats undelivered rewinds and rewinds a `faces` partition whose waiting messages stopped arriving, and one
that seeks a stalled table recovery again (stall_watchdog.py).

Removal, once Faust gives the consumer thread a snapshot and fetches nothing for an empty active set: delete this
package and the `install_handover_workaround(...)` line in stream_processors/app.py; the worker then runs with
`NoHandover`.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Collection

import faust
from faust.types import TP, EventT

from infra.kafka_security import kafka_python_kwargs
from infra.topics import read_start_offsets
from schemas.settings import Settings
from stream_processors.handover.offset_guard import OffsetGuard
from stream_processors.handover.rewinder import Rewinder, admitted_events, keep_skips_uncommitted
from stream_processors.handover.stall_watchdog import StallWatchdog

FACES_STALL_S = 5.0  # a `faces` partition with messages waiting but none admitted this long is rewound


class HandoverWorkaround:
    """Offset guard, rewinder and stall watchdogs of the `faces` topic and the table recovery; see the docstring."""

    def __init__(self, app: faust.App, settings: Settings, is_busy: Callable[[], bool]) -> None:
        self._app = app
        self._settings = settings
        self._topic = settings.topics.faces
        self._is_busy = is_busy  # the agent scoring or finishing a batch is no stall
        self._guard = OffsetGuard()
        self._rewinder = Rewinder(self._topic)
        self._faces_stall = StallWatchdog(stall_s=FACES_STALL_S)
        self._recovery_stall = StallWatchdog()

    async def admit(self, events: list[EventT]) -> list[EventT]:
        await self._ensure_guard()
        return await admitted_events(events, self._guard, self._rewinder, self._app.consumer)

    def late_partitions(self, owned: Collection[int]) -> set[int]:
        if not self._guard.current:
            return set()
        return set(self._waiting({TP(self._topic, partition) for partition in owned}))

    async def on_assigned(self) -> None:
        """A new assignment: the guard restarts from where the group has to read (`_ensure_guard`)."""
        keep_skips_uncommitted(self._app.consumer, self._topic)
        self._guard.invalidate()
        self._rewinder.clear()

    async def keep_faces_moving(self) -> None:
        """Repeat a rewind that has not delivered the skipped messages, even if no new message arrives; rewind a
        partition that has messages waiting but admitted none for FACES_STALL_S: its records were dropped after the
        last one it admitted."""
        await self._ensure_guard()
        assigned = self._app.assignor.assigned_actives()
        await self._rewinder.retry_due(self._app.consumer, self._guard, assigned)
        waiting = self._waiting(assigned) if not self._is_busy() else {}  # e.g. waiting out a store outage
        taken = {partition: self._guard.expected(partition) - 1 for partition in waiting}
        for partition, offset in self._faces_stall.check(waiting, taken, time.monotonic()).items():
            await self._rewinder.rewind(self._app.consumer, partition, offset, why="waiting messages stopped arriving")

    async def unstick_table_recovery(self) -> None:
        """Seek the changelog partitions of a recovery that has stopped receiving records."""
        recovery = self._app.tables.recovery
        remaining = recovery.active_remaining() if recovery.in_recovery else {}
        seeks = self._recovery_stall.check(remaining, recovery.active_offsets, time.monotonic())
        if seeks:
            self._app.log.warning("table recovery stalled; seeking changelog partitions again: %s", seeks)
            await self._app.consumer.seek_wait(seeks)

    async def _ensure_guard(self) -> None:
        """After an assignment, start the guard where the group has to read `faces` from (once): its committed
        offsets, or the log start where retention deleted past them or nothing was committed (else the guard would
        rewind to deleted offsets forever, or take a message after a skip as the start)."""
        if not self._guard.current:
            starts = await asyncio.get_running_loop().run_in_executor(None, self._start_offsets)
            if not self._guard.current:  # the agent or the timer may have done it meanwhile
                self._guard.reset(starts)

    def _start_offsets(self) -> dict[int, int]:
        settings = self._settings
        return read_start_offsets(settings.kafka_bootstrap, settings.processor_group, self._topic,
                                  security=kafka_python_kwargs(settings))

    def _waiting(self, assigned: Collection[TP]) -> dict[int, int]:
        """{partition: messages past the guard's expected offset} of the assigned `faces` partitions (those known)."""
        waiting: dict[int, int] = {}
        for tp in assigned:
            expected = self._guard.expected(tp.partition) if tp.topic == self._topic else None
            if expected is not None:
                try:
                    highwater = self._app.consumer.highwater(tp)
                except (AssertionError, KeyError):  # no longer assigned to this consumer
                    continue
                if highwater is not None and highwater > expected:
                    waiting[tp.partition] = highwater - expected
        return waiting


def install_handover_workaround(app: faust.App, settings: Settings, is_busy: Callable[[], bool]) -> HandoverWorkaround:
    """Create the workaround and register its assignment hook and timers on `app` (before the app starts)."""
    handover = HandoverWorkaround(app, settings, is_busy)

    @app.on_partitions_assigned.connect
    async def on_faces_assigned(sender, assigned, **kwargs) -> None:
        await handover.on_assigned()

    app.timer(interval=1.0, name="handover.keep_faces_moving")(handover.keep_faces_moving)
    app.timer(interval=2.0, name="handover.unstick_table_recovery")(handover.unstick_table_recovery)
    return handover
