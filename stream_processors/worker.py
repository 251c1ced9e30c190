"""The worker's logic and state, apart from Faust's wiring (stream_processors/app.py).

`FacesWorker.take` admits a `faces` micro-batch through the handover seam (`Handover`, stream_processors/handover/),
decodes it (bad messages are dead-lettered), scores it, and hands its finish to a second stage (batch_pipeline.py)
while the next batch is scored. The finish stores the `frame_scores` rows, updates the viewers' states, publishes
their completed seconds to `emotion-events`, then acks the batch. Timers call `close_idle` and `release_expired`;
a rebalance calls `on_revoked` and, after a table recovery, `on_restored`.

Acks: every message of a batch (dead letters, replays) gets an extra reference when taken (`hold`); the finish acks
them in offset order once it and every batch before it is stored, so no commit passes an unstored frame
(faust-streaming #606) nor a batch whose agent crashed (#527). `SecondsStore` stores `emotion-events` in
`viewer_seconds` under the same rule; `DeadLetters` sends rejects on.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Collection, MutableMapping, Protocol, Sequence

import numpy as np

from engines.engine import EmotionEngine
from infra.clickhouse.rows import frame_score_row, viewer_second_row
from infra.topics import faces_partition
from schemas.dead_letter import dead_letter
from schemas.emotion_event import SchemaError, decode_emotion_event, encode_emotion_event
from schemas.emotions import NUM_EMOTIONS
from schemas.face_frame import FaceFrame
from schemas.settings import Settings
from stream_processors.batch_pipeline import SecondStage
from stream_processors.config import StateConfig
from stream_processors.metrics import PipelineMetrics
from stream_processors.person_state import PersonState
from stream_processors.scoring import decode_batch, emotion_event, score, scored_frame
from stream_processors.viewers import ViewerActivity


def hold(events: Sequence[Any]) -> None:
    """Take an extra reference on each event's message; its owner acks it once the event's effects are stored.
    Faust's own ack alone would commit too early: an acked offset right after the committed one commits over it
    (faust-streaming #606), and `take_events` acks its batch even when the agent raised on it (faust-streaming #527)."""
    for event in events:
        event.message.incref()


class Handover(Protocol):
    """The worker's view of the partition-handover workaround (stream_processors/handover/)."""

    async def admit(self, events: list[Any]) -> list[Any]:
        """The events of one batch to process, in order."""

    def late_partitions(self, owned: Collection[int]) -> set[int]:
        """Owned `faces` partitions whose viewers' frames are waiting in Kafka (late, not gone)."""


class NoHandover:
    """No workaround: every event is scored, no partition is known to be late."""

    async def admit(self, events: list[Any]) -> list[Any]:
        return list(events)

    def late_partitions(self, owned: Collection[int]) -> set[int]:
        return set()


class Sender(Protocol):
    """A Kafka topic (faust.Topic): `send` returns once the message is buffered, with an awaitable delivery."""

    async def send(self, *, key: bytes, value: bytes, headers: Any = None) -> Awaitable[Any]: ...


class Sink(Protocol):
    def write(self, rows: Sequence[dict[str, Any]]) -> int: ...


class DeadLetters:
    """Sends a rejected message to `dead-letters` with its reason; only `emotion-events` letters keep their payload
    (anything else may hold a crop)."""

    def __init__(self, topic: Sender, settings: Settings, metrics: PipelineMetrics) -> None:
        self._topic = topic
        self._keep_payload_of = settings.topics.emotion_events
        self._metrics = metrics

    async def send(self, event: Any, reason: str, error: str) -> None:
        message = event.message
        letter = dead_letter(message.key, message.value, reason, error, message.topic, message.partition, message.offset,
                             keep_payload=message.topic == self._keep_payload_of)
        await self._topic.send(key=letter.key, value=letter.value, headers=letter.headers)
        self._metrics.dead_letters += 1


@dataclass(frozen=True)
class TakenBatch:
    """A micro-batch after scoring: all its events (acked by the finish, in order), the scored ones among them, their
    frames and (N, 8) probabilities, in the same order."""

    events: list[Any]
    scored: list[Any] = field(default_factory=list)
    frames: list[FaceFrame] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_EMOTIONS), dtype=np.float32))
    model_version: str = ""


class FacesWorker:
    """Scores, stores and publishes `faces` micro-batches and owns the viewers' state (module docstring)."""

    def __init__(self, settings: Settings, engine: EmotionEngine, states: MutableMapping[bytes, Any], events: Sender,
                 dead_letters: DeadLetters, frame_sink: Sink, metrics: PipelineMetrics,
                 handover: Handover | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._state_config = StateConfig(reaction_threshold=settings.reaction_threshold)
        self._engine = engine
        self._crop_size = engine.metadata.input_size
        self._states = states
        self._events = events
        self._dead_letters = dead_letters
        self._frame_sink = frame_sink
        self._metrics = metrics
        self.handover: Handover = handover or NoHandover()
        self._clock = clock
        self.activity = ViewerActivity(settings.idle_flush_s, settings.state_retention_s)
        self._finishing = SecondStage()
        self._scoring = False

    @property
    def busy(self) -> bool:
        """True while a batch is being scored or finished."""
        return self._scoring or self._finishing.busy

    async def take(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Score one micro-batch, then hand its finish (store, publish, `ack` each event) to the second stage."""
        self._scoring = True
        try:
            batch = await self.score(events)
            await self._finishing.hand_over(self.finish(batch, ack))
        finally:
            self._scoring = False

    async def drain(self) -> None:
        """Wait for the finish in flight (the agent stops)."""
        await self._finishing.drain()

    async def score(self, events: list[Any]) -> TakenBatch:
        """Admit, decode and score one micro-batch; bad messages go to the dead letters. Every event gets the extra
        reference that `finish` releases, and its viewer counts as active (not idle) until then."""
        hold(events)
        self.activity.taken(event.message.key for event in events)  # admitted frames have left Kafka: not idle
        try:
            return await self._score(events)
        except BaseException:
            self.activity.finished(event.message.key for event in events)
            raise

    async def _score(self, events: list[Any]) -> TakenBatch:
        admitted = await self.handover.admit(list(events))
        decoded, rejected = decode_batch([e.message.value for e in admitted], self._crop_size,
                                         [e.message.key for e in admitted])
        for bad in rejected:
            await self._dead_letters.send(admitted[bad.index], bad.reason, bad.error)
        if not decoded:
            return TakenBatch(list(events))
        frames = [frame for _, frame in decoded]
        probs = await asyncio.get_running_loop().run_in_executor(None, score, self._engine, frames)
        return TakenBatch(list(events), [admitted[index] for index, _ in decoded], frames, probs,
                          self._engine.model_version)

    async def finish(self, batch: TakenBatch, ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Store a scored batch, update its viewers' states, publish their seconds; then ack all its events."""
        try:
            if batch.scored:
                await self._store_and_publish(batch)
        finally:
            self.activity.finished(event.message.key for event in batch.events)
        for event in batch.events:
            await ack(event)

    async def _store_and_publish(self, batch: TakenBatch) -> None:
        rows = [frame_score_row(f, p, batch.model_version) for f, p in zip(batch.frames, batch.probs)]
        await asyncio.get_running_loop().run_in_executor(None, self._frame_sink.write, rows)
        self._metrics.record_frames(rows)
        states: dict[bytes, tuple[PersonState, list]] = {}
        now = self._clock()
        for event, frame, frame_probs in zip(batch.scored, batch.frames, batch.probs):
            key = event.message.key
            state, summaries = states.get(key) or (self.load_state(key), [])
            summaries.extend(state.update(scored_frame(frame, frame_probs, batch.model_version)))
            states[key] = (state, summaries)
            self.activity.update(key, event.message.partition, now)
        await self._publish(states)

    def load_state(self, key: bytes) -> PersonState:
        stored = self._states.get(key)
        return PersonState(self._state_config) if stored is None else PersonState.from_dict(stored, self._state_config)

    async def _publish(self, states: dict[bytes, tuple[PersonState, list]]) -> None:
        """Send each person's completed seconds, wait until Kafka has them, then save the states."""
        pending = [
            await self._events.send(key=key, value=encode_emotion_event(emotion_event(summary)))
            for key, (_, summaries) in states.items() for summary in summaries
        ]
        await asyncio.gather(*pending)
        for key, (state, _) in states.items():
            self._states[key] = state.to_dict()

    async def close_idle(self, owned: Collection[int]) -> None:
        """Publish the open second of viewers whose frames stopped (end of film, left the seat), on the owned `faces`
        partitions. A viewer whose partition still has messages waiting is not idle: their frames are late."""
        late = self.handover.late_partitions(owned)
        states = {}
        for key in self.activity.idle(self._clock(), owned, late):
            state = self.load_state(key)
            summaries = state.flush()
            if summaries:
                states[key] = (state, summaries)
        if states:
            await self._publish(states)

    def release_expired(self) -> list[bytes]:
        """Delete the states of viewers with no frame for `state_retention_s` whose last second is published (a
        tombstone in the table's changelog); returns their keys."""
        keys = self.activity.expired(self._clock())
        for key in keys:
            if key in self._states:
                del self._states[key]
        return keys

    def on_revoked(self, partitions: Collection[int]) -> None:
        """`faces` partitions taken away in a rebalance: forget their viewers (the new owner restores them)."""
        self.activity.revoke(partitions)

    def on_restored(self) -> None:
        """After a table recovery: restored states with an open second get closed by the idle flush even if no frame
        of theirs arrives (the film has ended); the others count towards the retention from now."""
        now = self._clock()
        known = self.activity.open_keys | self.activity.closed_keys
        for key, stored in list(self._states.items()):
            if stored is None or key in known:
                continue
            partition = faces_partition(key, self._settings.faces_partitions)
            if stored.get("open") is not None:
                self.activity.update(key, partition, now)
            else:
                self.activity.closed(key, partition, now)


class SecondsStore:
    """Stores `emotion-events` batches in `viewer_seconds` (once each, ClickHouseSink); bad events go to the dead
    letters. Only what the handover seam admits is stored: events after a skipped offset stay unacked until the
    skipped ones come back."""

    def __init__(self, sink: Sink, dead_letters: DeadLetters, metrics: PipelineMetrics,
                 handover: Handover | None = None) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._metrics = metrics
        self.handover: Handover = handover or NoHandover()
        self.busy = False

    async def store(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Store one batch, then release the extra reference each event gets here with `ack`. Faust's `take_events`
        acks a batch even when the agent crashed on it; the extra reference keeps a batch that was never stored
        uncommitted (faust-streaming #527; docs/reliability.md, "A batch whose agent crashed is never committed")."""
        hold(events)
        self.busy = True
        try:
            rows = []
            for event in await self.handover.admit(list(events)):
                try:
                    rows.append(viewer_second_row(decode_emotion_event(event.message.value)))
                except SchemaError as exc:
                    await self._dead_letters.send(event, exc.reason, str(exc))
            if rows:
                await asyncio.get_running_loop().run_in_executor(None, self._sink.write, rows)
                self._metrics.record_events(rows)
        finally:
            self.busy = False
        for event in events:
            await ack(event)
