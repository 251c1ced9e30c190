"""The worker without a broker: `build_app` applies the settings, and `FacesWorker`'s batch logic (ack order, idle
close, state release, revoke) runs on the real engine with real Faust messages, a dict for the state table and a
store that blocks until released. The same logic against a real broker: tests/faults/test_worker_*.py."""
from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from faust.types import TP, Message

from benchmarks.load_generator import LoadSpec, face_frames, sprite_crops
from schemas.emotion_event import decode_emotion_event
from schemas.face_frame import encode_face_frame
from schemas.settings import load_settings
from stream_processors.app import build_app
from stream_processors.handover import HandoverWorkaround, fetch_state
from stream_processors.handover.rewinder import keep_skips_uncommitted
from stream_processors.metrics import PipelineMetrics
from stream_processors.scoring import load_scoring_engine
from stream_processors.viewers import ViewerActivity
from infra.topics import faces_partition
from stream_processors.worker import DeadLetters, FacesWorker, SecondsStore

SETTINGS = load_settings(engine_backend="onnxruntime", idle_flush_s=2.0, state_retention_s=60.0)


@pytest.fixture(scope="module")
def engine():
    return load_scoring_engine(SETTINGS)


def test_build_app_needs_no_broker_and_takes_its_settings(engine):
    settings = SETTINGS.with_overrides(worker_session_timeout_s=7.0, worker_heartbeat_interval_s=2.0, processor_group="g1")
    app = build_app(settings, engine)
    assert app.conf.id == "g1"
    assert (app.conf.broker_session_timeout, app.conf.broker_heartbeat_interval) == (7.0, 2.0)
    assert {name.rsplit(".", 1)[1] for name in app.agents} == {"score_faces", "store_events"}
    assert app.tables["person-states"].partitions == settings.faces_partitions


def test_the_shipped_failover_settings_fit_the_broker_and_the_target():
    settings = load_settings()
    assert 6.0 <= settings.worker_session_timeout_s <= 10.0  # broker's group.min.session.timeout.ms; 15 s target
    assert settings.worker_heartbeat_interval_s <= settings.worker_session_timeout_s / 3


class Topic:
    """Stands in for a faust.Topic: records what was sent; delivery is immediate."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key, value, headers=None):
        self.sent.append((key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class GatedSink:
    """A store whose writes block until `release()` (a ClickHouse outage, say)."""

    def __init__(self, open_: bool = True) -> None:
        self.gate = threading.Event()
        if open_:
            self.gate.set()
        self.rows: list[dict] = []

    def write(self, rows):
        assert self.gate.wait(30), "the store was never released"
        self.rows.extend(rows)
        return len(rows)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(partition: int, offset: int, key: bytes, value: bytes, topic: str = "faces") -> SimpleNamespace:
    message = Message(topic, partition, offset, time.time(), 0, None, key, value, None)
    message.incref()  # the stream's own reference, released by take_events' ack
    return SimpleNamespace(message=message)


def make_worker(engine, sink: GatedSink, clock: Clock, states: dict) -> tuple[FacesWorker, Topic, Topic]:
    events, dead = Topic(), Topic()
    metrics = PipelineMetrics()
    worker = FacesWorker(SETTINGS, engine, states, events, DeadLetters(dead, SETTINGS, metrics), sink, metrics,
                         clock=clock)
    return worker, events, dead


def viewer_frames(viewers: int, ticks: int) -> list[list]:
    """[tick][viewer] FaceFrames of `viewers` viewers, 5 per second."""
    spec = LoadSpec(screening_id="worker-test", faces_per_s=5.0 * viewers, cameras=1, seats_per_camera=viewers)
    crops = sprite_crops()
    return [face_frames(spec, crops, tick, time.time_ns() // 1000) for tick in range(ticks)]


async def score_all(worker: FacesWorker, ticks: list[list]) -> list[SimpleNamespace]:
    """Take the frames of `ticks` as one batch on their viewers' partitions, finish it, and return its events."""
    batch = [event(faces_partition(f.person_key.encode(), SETTINGS.faces_partitions), offset, f.person_key.encode(),
                   encode_face_frame(f)) for offset, tick in enumerate(ticks) for f in tick]

    async def ack(e) -> None:
        e.message.decref()

    await worker.take(batch, ack)
    await worker.drain()
    return batch


def test_a_dead_letter_is_acked_only_after_the_frames_before_it_are_stored(engine):
    """faust-streaming #606: an acked offset right after the committed one commits over it; so nothing is acked
    ahead of a frame still being stored."""
    async def run() -> None:
        sink, clock, states = GatedSink(open_=False), Clock(), {}
        worker, _, dead = make_worker(engine, sink, clock, states)
        frame = viewer_frames(1, 1)[0][0]
        key = frame.person_key.encode()
        acked: list[int] = []

        async def ack(e) -> None:
            if e.message.decref() == 0:
                acked.append(e.message.offset)

        first = [event(0, 10, key, encode_face_frame(frame)), event(0, 11, key, b"garbage")]
        await worker.take(first, ack)
        for e in first:  # take_events acks the batch when the agent asks for the next one
            await ack(e)
        assert len(dead.sent) == 1 and acked == [], "acked while the frame at 10 is not stored"
        second = asyncio.ensure_future(worker.take([event(0, 12, key, b"more garbage")], ack))
        await asyncio.sleep(0.2)
        assert not second.done() and acked == [], "a later batch of dead letters ran ahead of the store"
        sink.gate.set()
        await second
        await worker.drain()
        assert acked == [10, 11] and len(sink.rows) == 1
    asyncio.run(run())


def test_idle_viewers_are_closed_then_released_after_the_retention(engine):
    async def run() -> None:
        sink, clock, states = GatedSink(), Clock(), {}
        worker, published, _ = make_worker(engine, sink, clock, states)
        ticks = viewer_frames(3, 6)
        await score_all(worker, ticks)
        keys = {f.person_key.encode() for f in ticks[0]}
        assert set(states) == keys
        owned = set(range(SETTINGS.faces_partitions))
        clock.now += SETTINGS.idle_flush_s
        await worker.close_idle(owned)
        last_seconds = {decode_emotion_event(value).person_key for _, value in published.sent}
        assert last_seconds == {key.decode() for key in keys}, "the viewers' open seconds were not published"
        assert worker.release_expired() == [] and set(states) == keys, "released before the retention"
        clock.now += SETTINGS.state_retention_s
        assert set(worker.release_expired()) == keys
        assert states == {}, "the table still holds the finished screening's viewers"
    asyncio.run(run())


def test_a_viewer_whose_frame_is_still_being_stored_is_not_idle(engine):
    """A frame taken but not yet finished (a slow store, a long batch) belongs to the viewer's open second: the idle
    flush waits for it instead of closing the second one frame short (CI: the fuzz test's seconds of 4 of 5 frames)."""
    async def run() -> None:
        sink, clock, states = GatedSink(), Clock(), {}
        worker, published, _ = make_worker(engine, sink, clock, states)
        ticks = viewer_frames(1, 5)  # one viewer's first second: 5 frames
        await score_all(worker, ticks[:4])
        owned = set(range(SETTINGS.faces_partitions))
        frame = ticks[4][0]
        key = frame.person_key.encode()

        async def ack(e) -> None:
            e.message.decref()

        sink.gate.clear()
        await worker.take([event(faces_partition(key, SETTINGS.faces_partitions), 4, key, encode_face_frame(frame))], ack)
        clock.now += SETTINGS.idle_flush_s  # the store holds the fifth frame past the idle flush
        await worker.close_idle(owned)
        assert published.sent == [], "the open second was closed while its last frame was being stored"
        sink.gate.set()
        await worker.drain()
        clock.now += SETTINGS.idle_flush_s
        await worker.close_idle(owned)
        assert [decode_emotion_event(value).frames for _, value in published.sent] == [5]
    asyncio.run(run())


def test_a_viewer_seen_again_is_not_released():
    activity = ViewerActivity(idle_flush_s=2.0, retention_s=60.0)
    activity.update(b"a", 1, now=0.0)
    assert activity.idle(now=2.0, owned={1}) == [b"a"]
    activity.update(b"a", 1, now=50.0)
    assert activity.expired(now=70.0) == []
    assert activity.idle(now=52.0, owned={1}) == [b"a"] and activity.expired(now=110.0) == [b"a"]


def test_late_partitions_and_unowned_partitions_are_not_idle():
    activity = ViewerActivity(idle_flush_s=2.0, retention_s=60.0)
    for key, partition in ((b"a", 1), (b"b", 2), (b"c", 3)):
        activity.update(key, partition, now=0.0)
    assert activity.idle(now=5.0, owned={1, 2}, late={2}) == [b"a"]


def test_a_viewer_whose_frame_waits_behind_slow_dead_letters_is_not_idle(engine):
    """A batch's dead letters are sent before it is scored; while they are slow (the fuzz test sends thousands), the
    batch's frames are already admitted and out of Kafka, and still belong to their viewers' open seconds (CI: one
    second per viewer closed early, after the fix above)."""
    async def run() -> None:
        sink, clock, states = GatedSink(), Clock(), {}
        events_topic, metrics = Topic(), PipelineMetrics()
        released = asyncio.Event()

        class SlowTopic(Topic):
            async def send(self, *, key, value, headers=None):
                await released.wait()
                return await super().send(key=key, value=value, headers=headers)

        worker = FacesWorker(SETTINGS, engine, states, events_topic, DeadLetters(SlowTopic(), SETTINGS, metrics), sink,
                             metrics, clock=clock)
        ticks = viewer_frames(1, 5)
        await score_all(worker, ticks[:4])
        frame = ticks[4][0]
        key = frame.person_key.encode()
        partition = faces_partition(key, SETTINGS.faces_partitions)

        async def ack(e) -> None:
            e.message.decref()

        taking = asyncio.ensure_future(worker.take(
            [event(partition, 4, b"junk", b"garbage"), event(partition, 5, key, encode_face_frame(frame))], ack))
        await asyncio.sleep(0.1)  # the batch is admitted and waits on its dead letter
        clock.now += SETTINGS.idle_flush_s
        await worker.close_idle(set(range(SETTINGS.faces_partitions)))
        assert events_topic.sent == [], "the open second was closed while its last frame waited behind a dead letter"
        released.set()
        await taking
        await worker.drain()
        clock.now += SETTINGS.idle_flush_s
        await worker.close_idle(set(range(SETTINGS.faces_partitions)))
        assert [decode_emotion_event(value).frames for _, value in events_topic.sent] == [5]
    asyncio.run(run())


def test_a_viewer_is_idle_only_when_every_batch_taken_with_their_frames_has_finished():
    activity = ViewerActivity(idle_flush_s=2.0, retention_s=60.0)
    activity.update(b"a", 1, now=0.0)
    activity.taken([b"a", b"a"])  # two frames of one batch
    activity.taken([b"a"])  # the next batch
    activity.finished([b"a", b"a"])
    assert activity.idle(now=5.0, owned={1}) == [], "idle while a batch with its frame is still in the pipeline"
    activity.finished([b"a"])
    assert activity.idle(now=5.0, owned={1}) == [b"a"]


def test_after_a_revoke_no_viewer_of_the_revoked_partitions_is_kept(engine):
    async def run() -> None:
        sink, clock, states = GatedSink(), Clock(), {}
        worker, _, _ = make_worker(engine, sink, clock, states)
        batch = await score_all(worker, viewer_frames(6, 2))
        partitions = {e.message.partition for e in batch}
        revoked = set(sorted(partitions)[: max(1, len(partitions) // 2)])
        worker.on_revoked(revoked)
        kept = worker.activity.open_keys | worker.activity.closed_keys
        assert kept and all(faces_partition(key, SETTINGS.faces_partitions) not in revoked for key in kept)
    asyncio.run(run())


class SeekingConsumer:
    """Records the seeks the handover workaround asks of Faust's consumer (which needs a broker to seek; the same
    rewind against a real broker: tests/faults/test_worker_*.py)."""

    def __init__(self) -> None:
        self.seeks: list[dict] = []

    async def seek_wait(self, offsets) -> None:
        self.seeks.append({(tp.topic, tp.partition): offset for tp, offset in offsets.items()})


def test_emotion_events_after_a_skipped_offset_are_held_and_their_partition_rewound(engine):
    """The handover drop hits `emotion-events` too (a killed-worker run lost 48 viewer-seconds): a batch with a jump
    stores only what comes before the skip, leaves the rest unacked, and rewinds to the first missing offset."""
    async def run() -> None:
        worker, published, _ = make_worker(engine, GatedSink(), Clock(), {})
        await score_all(worker, viewer_frames(1, 40))  # 8 completed seconds of one viewer
        values = [value for _, value in published.sent]
        assert len(values) >= 6
        topic = SETTINGS.topics.emotion_events
        consumer = SeekingConsumer()
        busy = {SETTINGS.topics.faces: lambda: False, topic: lambda: False}
        handover = HandoverWorkaround(SimpleNamespace(consumer=consumer), busy, lambda t: {0: 10}, SETTINGS.topics.faces)
        sink = GatedSink()
        seconds = SecondsStore(sink, DeadLetters(Topic(), SETTINGS, PipelineMetrics()), PipelineMetrics(), handover)

        def batch(offsets) -> list:
            return [event(0, offset, b"k", values[offset - 10], topic=topic) for offset in offsets]

        async def ack(e) -> None:
            e.message.decref()

        skipped = batch([10, 11, 14, 15])  # 12 and 13 were dropped in a handover
        await seconds.store(skipped, ack)
        unacked = [e.message.offset for e in skipped if e.message.decref() > 0]  # take_events' ack
        assert [decode_emotion_event(values[i]).movie_second for i in (0, 1)] == [r["movie_second"] for r in sink.rows]
        assert unacked == [14, 15], "events past the skipped offsets were acked: a commit would pass the skip"
        assert consumer.seeks == [{(topic, 0): 12}]
        await seconds.store(batch([12, 13, 14, 15]), ack)  # the rewind delivers them again, in order
        assert len(sink.rows) == 6 and len({r["movie_second"] for r in sink.rows}) == 6
    asyncio.run(run())


class FailingSink:
    def write(self, rows):
        raise RuntimeError("the store failed")


def test_a_batch_of_seconds_that_failed_to_store_stays_unacked(engine):
    """Faust's `take_events` acks a batch in a `finally`, also when the agent crashed on it; the supervisor restarts
    the agent and the commit passes the batch (a CI run lost 72 viewer-seconds so). The store keeps its own
    reference on each event and releases it only once the batch is stored, so a failed batch stays uncommitted."""
    async def run() -> None:
        worker, published, _ = make_worker(engine, GatedSink(), Clock(), {})
        await score_all(worker, viewer_frames(1, 20))
        values = [value for _, value in published.sent]
        topic = SETTINGS.topics.emotion_events
        acked: list[int] = []

        async def ack(e) -> None:  # the stream's ack
            if e.message.decref() == 0:
                acked.append(e.message.offset)

        for sink, offset in ((FailingSink(), 0), (GatedSink(), 100)):
            seconds = SecondsStore(sink, DeadLetters(Topic(), SETTINGS, PipelineMetrics()), PipelineMetrics())
            batch = [event(0, offset + i, b"k", value, topic=topic) for i, value in enumerate(values)]
            try:
                await seconds.store(batch, ack)
            except RuntimeError:
                pass
            for e in batch:  # take_events' finally, crash or not
                await ack(e)
        assert acked == [100 + i for i in range(len(values))], "a batch that was never stored was acked"
    asyncio.run(run())


def test_jumps_on_both_consumed_topics_are_not_counted_as_acked_gaps(engine):
    """Faust's own consumer: a jump on `faces` or `emotion-events` stays out of its gap tree (so no commit passes the
    skipped offsets); other topics' gaps (a compacted changelog) are still recorded."""
    async def run() -> None:
        consumer = build_app(SETTINGS, engine).consumer
        keep_skips_uncommitted(consumer, {SETTINGS.topics.faces, SETTINGS.topics.emotion_events})
        keep_skips_uncommitted(consumer, {SETTINGS.topics.faces, SETTINGS.topics.emotion_events})  # idempotent
        tps = [TP(topic, 0) for topic in (SETTINGS.topics.faces, SETTINGS.topics.emotion_events, "compacted-changelog")]
        for tp in tps:
            await consumer._add_gap(tp, 5, 9)
        assert {tp.topic: sorted((i.begin, i.end) for i in consumer._gap[tp]) for tp in tps} == {
            SETTINGS.topics.faces: [], SETTINGS.topics.emotion_events: [], "compacted-changelog": [(5, 10)]}
    asyncio.run(run())


def test_the_stall_warning_says_where_fausts_consumer_keeps_the_partition(engine):
    """The watchdog's rewind line names Faust's fetch state of the partition: a partition that Faust no longer
    fetches reads differently from one whose messages are lost further down."""
    consumer = build_app(SETTINGS, engine).consumer
    fetched, paused, full, other = (TP(SETTINGS.topics.faces, partition) for partition in range(4))
    consumer._set_active_tps({fetched, paused, full})
    consumer.pause_partitions({paused})
    consumer.on_buffer_full(full)
    assert [fetch_state(consumer, tp) for tp in (fetched, paused, full, other)] == \
        ["active", "paused", "buffer full", "none"]
