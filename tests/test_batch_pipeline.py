"""The two-stage batch pipeline: a batch's finish overlaps the next batch's scoring, finishes run one at a time in
batch order, and a failed finish stops the agent at its next hand-over."""
from __future__ import annotations

import asyncio

import pytest

from stream_processors.batch_pipeline import SecondStage


async def _finish(name: str, log: list[str], gate: asyncio.Event | None = None) -> None:
    log.append(f"{name} start")
    if gate is not None:
        await gate.wait()
    await asyncio.sleep(0)
    log.append(f"{name} end")


def test_the_agent_scores_the_next_batch_while_the_previous_one_finishes():
    async def run() -> list[str]:
        stage, log, gate = SecondStage(), [], asyncio.Event()
        await stage.hand_over(_finish("finish 1", log, gate))
        await asyncio.sleep(0)
        assert stage.busy
        log.append("score 2")  # the agent's next batch, while finish 1 waits on its store
        gate.set()
        await stage.hand_over(_finish("finish 2", log))
        await stage.drain()
        assert not stage.busy
        return log

    assert asyncio.run(run()) == ["finish 1 start", "score 2", "finish 1 end", "finish 2 start", "finish 2 end"]


def test_finishes_never_overlap_and_keep_batch_order():
    async def run() -> list[str]:
        stage, log = SecondStage(), []
        for n in range(1, 6):
            await stage.hand_over(_finish(f"finish {n}", log))
        await stage.drain()
        return log

    assert asyncio.run(run()) == [f"finish {n} {edge}" for n in range(1, 6) for edge in ("start", "end")]


def test_a_failed_finish_surfaces_at_the_next_hand_over_and_the_next_finish_never_starts():
    async def failing() -> None:
        raise RuntimeError("store refused the rows")

    async def run() -> list[str]:
        stage, log = SecondStage(), []
        await stage.hand_over(failing())
        with pytest.raises(RuntimeError, match="store refused"):
            await stage.hand_over(_finish("finish 2", log))
        assert not stage.busy
        await stage.drain()  # nothing left in flight
        return log

    assert asyncio.run(run()) == []


def test_drain_with_nothing_in_flight_returns_at_once_and_the_stage_stays_usable():
    finished = []

    async def finish() -> None:
        finished.append("batch")

    async def scenario() -> SecondStage:
        stage = SecondStage()
        await asyncio.wait_for(stage.drain(), timeout=1.0)  # nothing to wait for
        await stage.hand_over(finish())
        assert stage.busy and finished == []  # started in the background, not yet run
        await stage.drain()
        return stage

    stage = asyncio.run(scenario())
    assert finished == ["batch"] and not stage.busy
