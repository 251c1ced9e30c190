"""The Faust worker: faces -> scores -> per-person state -> emotion events -> ClickHouse.

Topology (the logic lives in scoring.py, person_state.py, sink.py, metrics.py, offset_guard.py,
batch_pipeline.py and stall_watchdog.py):

    faces (raw FaceFrame bytes, key = person key)
      -> score_faces: micro-batches (offset guard: nothing scored past a skipped message, see faust_offsets.py)
                      -> engine; then, while the next batch is scored (finish_batch, one at a time, in order):
                      -> frame_scores rows (ClickHouse, once each)
                      -> person_states table (changelog, co-partitioned with faces)
                      -> emotion-events (one EmotionEvent per person per movie second)
      bad input -> dead-letters (reason in headers; a `faces` message's bytes are dropped, schemas/dead_letter.py)
    emotion-events -> store_events: batches -> viewer_seconds (ClickHouse, once each;
                      the audience_seconds materialized view aggregates on insert)
    every second: close the open second of viewers with no frame for `idle_flush_s` (restored states too);
                  repeat a `faces` rewind that has not delivered yet, rewind a `faces` partition whose waiting
                  messages stopped arriving, seek again a stalled table recovery
    every 5 seconds: pipeline health -> pipeline_metrics

Offsets are committed only after a batch's effects are stored: the agent takes one extra reference
on each scored message before handing the batch to `finish_batch`, so `take_events`' ack leaves them
unacked; `finish_batch` acks them after ClickHouse accepted the rows and Kafka the events (and a
rebalance waits for those acks). A replay after a crash is harmless: the sink skips stored keys and
the person state drops frames it has already seen.

Run: `moviemotion worker` (or `python -m stream_processors.app worker -l info`).
"""
from __future__ import annotations

import asyncio
import time

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from infra.clickhouse.client import connect
from infra.kafka_security import faust_credentials, kafka_python_kwargs
from infra.topics import DEAD_LETTER_MAX_MESSAGE_BYTES, PERSON_STATE_TABLE, consumer_lag, read_start_offsets
from schemas.settings import load_settings
from schemas.dead_letter import dead_letter
from schemas.emotion_event import SchemaError, decode_emotion_event, encode_emotion_event
from stream_processors.batch_pipeline import SecondStage
from stream_processors.config import StateConfig
from stream_processors.faust_offsets import Rewinder, admitted_events, keep_skips_uncommitted
from stream_processors.metrics import TABLE as METRICS_TABLE, PipelineMetrics
from stream_processors.offset_guard import OffsetGuard
from stream_processors.person_state import PersonState
from stream_processors.scoring import (ScoredBatch, decode_batch, emotion_event, frame_score_row, load_scoring_engine, score,
                                       scored_frame, viewer_second_row)
from stream_processors.sink import FRAME_SCORES, VIEWER_SECONDS, ClickHouseSink
from stream_processors.stall_watchdog import StallWatchdog

settings = load_settings()
state_config = StateConfig(reaction_threshold=settings.reaction_threshold)

app = faust.App(
    settings.processor_group,
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=faust_credentials(settings),
    store="memory://",
    topic_partitions=settings.faces_partitions,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=settings.commit_interval_s,
    datadir=str(settings.state_dir / "faust"),
    producer_acks=-1,
    producer_max_request_size=DEAD_LETTER_MAX_MESSAGE_BYTES,  # an oversized `faces` message can be dead-lettered
    producer_linger_ms=10,  # a batch's events and state changelog records go to the broker in a few requests
    web_enabled=False,
)

faces_topic = app.topic(settings.topics.faces, key_serializer="raw", value_serializer="raw", internal=False)
events_topic = app.topic(settings.topics.emotion_events, key_serializer="raw", value_serializer="raw", internal=False)
dead_letters = app.topic(settings.topics.dead_letters, key_serializer="raw", value_serializer="raw", internal=False)

# Per-person state, keyed by person key. use_partitioner: a key's changelog partition is the
# murmur2 partition its faces go to, so state follows the faces partitions on rebalance.
person_states = app.Table(
    PERSON_STATE_TABLE, default=None, partitions=settings.faces_partitions,
    use_partitioner=True, key_type=bytes,
)

engine = load_scoring_engine(settings)
crop_size = engine.metadata.input_size
frame_sink = ClickHouseSink(lambda: connect(settings), FRAME_SCORES)
event_sink = ClickHouseSink(lambda: connect(settings), VIEWER_SECONDS)
metrics = PipelineMetrics()
last_frame_at: dict[bytes, tuple[float, int]] = {}  # person key -> (wall time, faces partition)
faces_partition = DefaultPartitioner()  # murmur2, like the camera producer's and the state changelog's partitioner
faces_offsets = OffsetGuard()  # nothing is scored past a skipped `faces` message (docs/reliability.md)
faces_rewinder = Rewinder(settings.topics.faces)
recovery_stall = StallWatchdog()  # a table recovery whose changelog records were dropped is sought again
faces_stall = StallWatchdog(stall_s=5.0)  # so is a `faces` partition whose waiting records were dropped
faces_finish = SecondStage()  # a batch is stored and published while the agent scores the next (batch_pipeline.py)
faces_scoring = False  # the stall check of `faces` waits while the agent is busy with a batch


async def to_dead_letters(event: faust.types.EventT, reason: str, error: str) -> None:
    message = event.message  # only `emotion-events` letters keep their payload: anything else may hold a crop
    letter = dead_letter(message.key, message.value, reason, error, message.topic, message.partition, message.offset,
                         keep_payload=message.topic == settings.topics.emotion_events)
    await dead_letters.send(key=letter.key, value=letter.value, headers=letter.headers)
    metrics.dead_letters += 1


def load_state(key: bytes) -> PersonState:
    stored = person_states.get(key)
    return PersonState(state_config) if stored is None else PersonState.from_dict(stored, state_config)


async def publish(states: dict[bytes, tuple[PersonState, list]]) -> None:
    """Send each person's completed seconds, wait until Kafka has them, then save the states."""
    pending = [
        await events_topic.send(key=key, value=encode_emotion_event(emotion_event(summary)))
        for key, (_, summaries) in states.items() for summary in summaries
    ]
    await asyncio.gather(*pending)
    for key, (state, _) in states.items():
        person_states[key] = state.to_dict()
    metrics.events_out += len(pending)


@app.on_partitions_assigned.connect
async def on_faces_assigned(sender, assigned, **kwargs) -> None:
    """A new assignment: the guard restarts from where the group has to read (`ensure_faces_guard`)."""
    keep_skips_uncommitted(app.consumer, settings.topics.faces)
    faces_offsets.invalidate()
    faces_rewinder.clear()


def faces_start_offsets() -> dict[int, int]:
    return read_start_offsets(settings.kafka_bootstrap, settings.processor_group, settings.topics.faces,
                              security=kafka_python_kwargs(settings))


async def ensure_faces_guard() -> None:
    """After an assignment, start the offset guard where the group has to read `faces` from (once): its committed
    offsets, or the log start where retention deleted past them or nothing was committed (else the guard would
    rewind to deleted offsets forever, or take a message after a skip as the start)."""
    if not faces_offsets.current:
        starts = await asyncio.get_running_loop().run_in_executor(None, faces_start_offsets)
        if not faces_offsets.current:  # the agent or the timer may have done it meanwhile
            faces_offsets.reset(starts)


@app.agent(faces_topic)
async def score_faces(stream):
    global faces_scoring
    async for events in stream.take_events(settings.max_batch, within=settings.batch_within_s):
        faces_scoring = True
        try:
            scored = await score_batch(events)
            if scored is not None:
                for event in scored.events:
                    event.message.incref()  # the batch's ack leaves them to the finish
                await faces_finish.hand_over(finish_batch(stream, scored))
        finally:
            faces_scoring = False
    await faces_finish.drain()


async def score_batch(events: list[faust.types.EventT]) -> ScoredBatch | None:
    """Guard, decode and score one micro-batch of `faces`; bad messages go to the dead letters."""
    loop = asyncio.get_running_loop()
    await ensure_faces_guard()
    events = await admitted_events(events, faces_offsets, faces_rewinder, app.consumer)
    decoded, rejected = decode_batch([e.message.value for e in events], crop_size, [e.message.key for e in events])
    for bad in rejected:
        await to_dead_letters(events[bad.index], bad.reason, bad.error)
    if not decoded:
        return None
    frames = [frame for _, frame in decoded]
    probs = await loop.run_in_executor(None, score, engine, frames)
    return ScoredBatch([events[index] for index, _ in decoded], frames, probs, engine.model_version)


async def finish_batch(stream, batch: ScoredBatch) -> None:
    """Store a scored batch, update its viewers' states, publish their seconds; then ack its events."""
    rows = [frame_score_row(f, p, batch.model_version) for f, p in zip(batch.frames, batch.probs)]
    await asyncio.get_running_loop().run_in_executor(None, frame_sink.write, rows)
    metrics.record_frames(rows)
    states: dict[bytes, tuple[PersonState, list]] = {}
    for event, frame, frame_probs in zip(batch.events, batch.frames, batch.probs):
        key = event.message.key
        state, summaries = states.get(key) or (load_state(key), [])
        summaries.extend(state.update(scored_frame(frame, frame_probs, batch.model_version)))
        states[key] = (state, summaries)
        last_frame_at[key] = (time.monotonic(), event.message.partition)
    await publish(states)
    for event in batch.events:
        await stream.ack(event)


@app.agent(events_topic)
async def store_events(stream):
    loop = asyncio.get_running_loop()
    async for events in stream.take_events(settings.sink_batch, within=settings.sink_within_s):
        rows = []
        for event in events:
            try:
                rows.append(viewer_second_row(decode_emotion_event(event.message.value)))
            except SchemaError as exc:
                await to_dead_letters(event, exc.reason, str(exc))
        if rows:
            await loop.run_in_executor(None, event_sink.write, rows)
            metrics.record_events(rows)


@person_states.on_recover
async def watch_restored_open_seconds() -> None:
    """States restored after a restart or rebalance may hold an open second whose frames all came before: let the
    idle flush close it even if no further frame of that viewer arrives (e.g. the film has ended)."""
    now = time.monotonic()
    for key, stored in person_states.items():
        if stored is not None and stored.get("open") is not None and key not in last_frame_at:
            last_frame_at[key] = (now, faces_partition(key, list(range(settings.faces_partitions)), None))


def waiting_faces(assigned) -> dict[int, int]:
    """{partition: messages past the guard's expected offset} of the assigned `faces` partitions (those known)."""
    waiting: dict[int, int] = {}
    for tp in assigned:
        expected = faces_offsets.expected(tp.partition) if tp.topic == settings.topics.faces else None
        if expected is not None:
            try:
                highwater = app.consumer.highwater(tp)
            except (AssertionError, KeyError):  # no longer assigned to this consumer
                continue
            if highwater is not None and highwater > expected:
                waiting[tp.partition] = highwater - expected
    return waiting


@app.timer(interval=1.0)
async def close_idle_viewers():
    """Publish the open second of viewers whose frames stopped (end of film, left the seat). A viewer whose partition
    still has messages waiting is not idle: their frames are late (a rewind, a busy agent), not gone."""
    now = time.monotonic()
    actives = app.assignor.assigned_actives()
    late = waiting_faces(actives) if faces_offsets.current else {}
    idle = [k for k, (seen, part) in last_frame_at.items()
            if now - seen >= settings.idle_flush_s and TP(settings.topics.faces, part) in actives and part not in late]
    states = {}
    for key in idle:
        del last_frame_at[key]
        state = load_state(key)
        summaries = state.flush()
        if summaries:
            states[key] = (state, summaries)
    if states:
        await publish(states)


@app.timer(interval=1.0)
async def keep_faces_moving():
    """Repeat a rewind of `faces` that has not delivered the skipped messages, even if no new message arrives; rewind
    a partition that has messages waiting (highwater past the guard's expected offset) but admitted none for
    `faces_stall`'s period: its records were dropped after the last one it admitted (stall_watchdog.py)."""
    await ensure_faces_guard()
    assigned = app.assignor.assigned_actives()
    await faces_rewinder.retry_due(app.consumer, faces_offsets, assigned)
    busy = faces_scoring or faces_finish.busy
    waiting = waiting_faces(assigned) if not busy else {}  # a busy agent (e.g. waiting out a store outage) is no stall
    taken = {partition: faces_offsets.expected(partition) - 1 for partition in waiting}
    for partition, offset in faces_stall.check(waiting, taken, time.monotonic()).items():
        await faces_rewinder.rewind(app.consumer, partition, offset, why="waiting messages stopped arriving")


@app.timer(interval=2.0)
async def unstick_table_recovery():
    """Seek the changelog partitions of a recovery that has stopped receiving records (stall_watchdog.py)."""
    recovery = app.tables.recovery
    remaining = recovery.active_remaining() if recovery.in_recovery else {}
    seeks = recovery_stall.check(remaining, recovery.active_offsets, time.monotonic())
    if seeks:
        app.log.warning("table recovery stalled; seeking changelog partitions again: %s", seeks)
        await app.consumer.seek_wait(seeks)


@app.timer(interval=5.0)
async def report_health():
    """Write this worker's pipeline health; a store or broker hiccup only skips one sample."""
    loop = asyncio.get_running_loop()

    def write() -> None:
        lag = consumer_lag(settings.kafka_bootstrap, settings.processor_group,
                           security=kafka_python_kwargs(settings)).get(settings.topics.faces, 0)
        with connect(settings) as client:
            client.insert(METRICS_TABLE, metrics.sample(component="worker", lag=lag))

    try:
        await loop.run_in_executor(None, write)
    except Exception as exc:  # health reporting must never stop scoring
        app.log.warning("pipeline metrics not written: %s", exc)

if __name__ == "__main__":
    app.main()
