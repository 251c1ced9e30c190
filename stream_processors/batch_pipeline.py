"""Two-stage micro-batch pipeline: one batch's store-and-publish runs while the agent scores the next batch.

The `faces` agent's work per batch has two halves: score (decode, engine) and finish (store the rows, update the
viewers' states, publish their seconds, ack). Run one after the other, the engine idles while the store and the
broker answer. `SecondStage` lets the agent hand a batch's finish over and go on scoring the next one:

- at most one finish runs at a time, and finishes run in batch order (a viewer's state sees its frames in order);
- `hand_over` first waits for the previous finish, so a failure there surfaces in the agent at the next batch
  (or at `drain`) and the agent dies on it as before;
- acks stay with the finish: the agent increfs the batch's events before handing over, the finish acks them after
  its effects are stored, so offsets are still committed only after the batch is stored.

Pure asyncio; the Faust app supplies the work.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable


class SecondStage:
    """At most one in-flight finish, in order; see the module docstring."""

    def __init__(self) -> None:
        self._running: asyncio.Future | None = None

    @property
    def busy(self) -> bool:
        """True while a handed-over finish has not completed."""
        return self._running is not None and not self._running.done()

    async def drain(self) -> None:
        """Wait for the finish in flight (if any); re-raises its error."""
        running, self._running = self._running, None
        if running is not None:
            await running

    async def hand_over(self, finish: Awaitable[None]) -> None:
        """Wait for the previous finish, then start `finish` in the background and return."""
        try:
            await self.drain()
        except BaseException:
            if asyncio.iscoroutine(finish):
                finish.close()  # never started: no "was never awaited" warning
            raise
        self._running = asyncio.ensure_future(finish)
