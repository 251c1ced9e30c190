"""Several copies of one model scoring chunks of a batch at the same time, one thread each.

ONNX Runtime's own intra-op threads meet at a barrier after every layer: on a machine whose cores are shared with
other busy processes (the broker, the store, the Kafka client), one preempted thread stalls the other, and a
two-thread session keeps little more than half its speed. Independent single-thread sessions ("lanes") have no
barrier: the scheduler gives each whatever core is free. `ParallelEngine` cuts a batch into chunks of a lane's
`max_batch`; each lane takes the next chunk as soon as it is done with the last, so a preempted lane simply scores
fewer chunks. The result is the same as one engine's, row for row.
"""
from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from engines.engine import EmotionEngine


class ParallelEngine(EmotionEngine):
    """`lanes` engines of one model, each scoring on its own thread; see the module docstring."""

    def __init__(self, lanes: Sequence[EmotionEngine], max_batch: int | None = None) -> None:
        if not lanes:
            raise ValueError("ParallelEngine needs at least one lane")
        versions = {lane.model_version for lane in lanes}
        if len(versions) != 1:
            raise ValueError(f"the lanes must hold one model, got versions {sorted(versions)}")
        self.lanes = list(lanes)
        self.chunk = min(lane.max_batch for lane in self.lanes)
        super().__init__(self.lanes[0].metadata, max_batch or 4 * self.chunk * len(self.lanes))
        self.backend = self.lanes[0].backend
        self._idle: queue.SimpleQueue[EmotionEngine] = queue.SimpleQueue()
        for lane in self.lanes:
            self._idle.put(lane)
        self._pool = ThreadPoolExecutor(len(self.lanes), thread_name_prefix="engine-lane")

    def _run(self, batch: np.ndarray) -> np.ndarray:
        chunks = [self._pool.submit(self._score, batch[start:start + self.chunk]) for start in range(0, len(batch), self.chunk)]
        return np.concatenate([chunk.result() for chunk in chunks])

    def _score(self, chunk: np.ndarray) -> np.ndarray:
        lane = self._idle.get()  # never waits: the pool has one thread per lane
        try:
            return lane.infer(chunk)
        finally:
            self._idle.put(lane)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for lane in self.lanes:
            lane.close()
