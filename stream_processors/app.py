"""The Faust worker's topology: faces -> scores -> per-person state -> emotion events -> ClickHouse.

    faces (FaceFrame bytes, key = person key) -> score_faces: micro-batches -> FacesWorker.take (worker.py):
        frame_scores rows, person_states table (changelog co-partitioned with faces), emotion-events, then acks
    emotion-events -> store_events: batches -> viewer_seconds (once each)
    bad input -> dead-letters (reason in headers; a `faces` message's bytes are dropped, schemas/dead_letter.py)
    timers: close idle viewers' open second (1 s), release finished viewers (10 s), pipeline health (5 s)
    handover/ (the faust-streaming 0.15 workaround, one seam): offset guards, rewinds, stall watchdogs

Run: `moviemotion worker` (or `python -m stream_processors.app worker -l info`).
"""
from __future__ import annotations

import asyncio

import faust
from faust.types import TP

from engines.engine import EmotionEngine
from infra.clickhouse.client import connect
from infra.kafka_security import faust_credentials, kafka_python_kwargs
from infra.topics import DEAD_LETTER_MAX_MESSAGE_BYTES, PERSON_STATE_TABLE, consumer_lag
from schemas.settings import Settings
from stream_processors.handover import install_handover_workaround
from stream_processors.metrics import TABLE as METRICS_TABLE, PipelineMetrics
from infra.clickhouse.sink import FRAME_SCORES, VIEWER_SECONDS, ClickHouseSink
from stream_processors.worker import DeadLetters, FacesWorker, SecondsStore


def build_app(settings: Settings, engine: EmotionEngine) -> faust.App:
    """The worker's Faust app for `settings`, scoring with `engine` (nothing connects until it runs)."""
    app = faust.App(
        settings.processor_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=settings.worker_heartbeat_interval_s,
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
    raw = {"key_serializer": "raw", "value_serializer": "raw", "internal": False}
    faces_topic = app.topic(settings.topics.faces, **raw)
    events_topic = app.topic(settings.topics.emotion_events, **raw)
    # Per-person state. use_partitioner: a key's changelog partition is the murmur2 partition its faces go to, so
    # state follows the faces partitions on rebalance.
    person_states = app.Table(PERSON_STATE_TABLE, default=None, partitions=settings.faces_partitions,
                              use_partitioner=True, key_type=bytes)
    metrics = PipelineMetrics()
    dead_letters = DeadLetters(app.topic(settings.topics.dead_letters, **raw), settings, metrics)
    worker = FacesWorker(settings, engine, person_states, events_topic, dead_letters,
                         ClickHouseSink(lambda: connect(settings), FRAME_SCORES), metrics)
    seconds = SecondsStore(ClickHouseSink(lambda: connect(settings), VIEWER_SECONDS), dead_letters, metrics)
    worker.handover = seconds.handover = install_handover_workaround(app, settings, busy={
        settings.topics.faces: lambda: worker.busy, settings.topics.emotion_events: lambda: seconds.busy})

    def owned_faces() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topics.faces}

    @app.agent(faces_topic)
    async def score_faces(stream):
        async for events in stream.take_events(settings.max_batch, within=settings.batch_within_s):
            await worker.take(events, stream.ack)
        await worker.drain()

    @app.agent(events_topic)
    async def store_events(stream):
        async for events in stream.take_events(settings.sink_batch, within=settings.sink_within_s):
            await seconds.store(events, stream.ack)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender, revoked: set[TP], **kwargs) -> None:
        worker.on_revoked({tp.partition for tp in revoked if tp.topic == settings.topics.faces})

    @person_states.on_recover
    async def watch_restored_viewers() -> None:
        worker.on_restored()

    @app.timer(interval=1.0)
    async def close_idle_viewers():
        await worker.close_idle(owned_faces())

    @app.timer(interval=10.0)
    async def release_finished_viewers():
        released = worker.release_expired()
        if released:
            app.log.info("released the states of %s viewers gone for %ss", len(released), settings.state_retention_s)

    @app.timer(interval=5.0)
    async def report_health():
        """Write this worker's pipeline health; a store or broker hiccup only skips one sample."""
        def write() -> None:
            lag = consumer_lag(settings.kafka_bootstrap, settings.processor_group,
                               security=kafka_python_kwargs(settings)).get(settings.topics.faces, 0)
            with connect(settings) as client:
                client.insert(METRICS_TABLE, metrics.sample(component="worker", lag=lag))

        try:
            await asyncio.get_running_loop().run_in_executor(None, write)
        except Exception as exc:  # health reporting must never stop scoring
            app.log.warning("pipeline metrics not written: %s", exc)

    return app


if __name__ == "__main__":
    from schemas.settings import load_settings
    from stream_processors.scoring import load_scoring_engine

    main_settings = load_settings()
    build_app(main_settings, load_scoring_engine(main_settings)).main()
