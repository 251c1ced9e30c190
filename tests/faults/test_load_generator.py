"""The load generator against a real broker that is up, then stopped: `published` counts what the broker
acknowledged, so a soak or capacity run whose sends expired says so (`delivery_errors`) instead of waiting for faces
that were never written (a dedicated broker: the session one stays up)."""
from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from benchmarks.load_generator import LoadSpec, publish_load

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

SPEC = LoadSpec(screening_id="load-test", faces_per_s=60.0, cameras=2, seats_per_camera=3)
FACES = 60


def stored(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)]).values())
    finally:
        consumer.close()


def test_published_counts_only_what_the_broker_acknowledged(dedicated_broker):
    broker, settings = dedicated_broker
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, request_timeout_ms=2000,
                             delivery_timeout_ms=5000)
    try:
        up = publish_load(producer, settings.topics.faces, SPEC, faces=FACES, paced=False)
        assert (up.sent, up.delivery_errors, up.published) == (FACES, 0, FACES)
        assert stored(broker.bootstrap, settings.topics.faces, settings.faces_partitions) == FACES

        broker.stop()  # every send now expires in the producer after its delivery timeout
        down = publish_load(producer, settings.topics.faces, SPEC, faces=FACES, paced=False)
        assert (down.sent, down.delivery_errors, down.published) == (FACES, FACES, 0)
    finally:
        producer.close(timeout=5)
