"""Two-stage micro-batch pipeline: one batch's store-and-publish runs while the agent scores the next batch.

`SecondStage` runs at most one finish at a time, in batch order (a viewer's state sees its frames in order).
`hand_over` first waits for the previous finish, so its failure surfaces in the agent at the next batch (or at
`drain`). Acks stay with the finish, after its effects are stored. Pure asyncio; the worker supplies the work.
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
