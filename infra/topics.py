"""MoviEmotion's Kafka topics: their specs (partitions + explicit configs), idempotent creation, consumer lag.

`faces` carries face crops, so its retention is short and enforced. Kafka deletes whole closed segments once their
newest record is older than `retention.ms`, at its next retention check: a crop stays readable at most retention +
`segment.ms` + the check interval (`crop_lifetime_ms`). The defaults (10 min + 2 min + 1 min) keep that within the
15 minutes the product promises (`CROP_PROMISE_MS`). `emotion-events` and `dead-letters` keep 7 days, in 1-day segments (a record is gone at
most 8 days after it was written). The worker's person-state changelog is created here too (Faust then finds it):
compacted, with `max.compaction.lag.ms` 1 day, so a purged person's older states (`moviemotion purge`) are compacted
away within about a day of being written, not whenever the cleaner gets to them. `security` is the client options
from `infra.kafka_security.kafka_python_kwargs(settings)` (None = plaintext).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from aiokafka.partitioner import DefaultPartitioner
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec
from kafka.errors import (CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError,
                          TopicAlreadyExistsError)

from infra.kafka_broker import RETENTION_CHECK_INTERVAL_MS, admin_client

log = logging.getLogger(__name__)

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
MAX_FACES_SEGMENT_MS = 2 * 60 * 1000
CROP_PROMISE_MS = 15 * 60 * 1000  # README "Privacy by design": no crop readable 15 minutes after it was produced
DEAD_LETTER_PARTITIONS = 3
MIN_FACES_PARTITIONS = 12
# Largest `faces` message the broker takes (a crop is a few KB; the limit lets oversized junk reach the worker and be
# dead-lettered instead of being refused at the producer). A dead letter is the message plus its reason headers.
FACES_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEAD_LETTER_MAX_MESSAGE_BYTES = FACES_MAX_MESSAGE_BYTES + 64 * 1024
PROCESSOR_GROUP = "moviemotion-processor"
# The worker's per-person state table (stream_processors/app.py); Faust backs it with the compacted topic
# `<processor group>-person-states-changelog` (key: person key, value: the state as JSON).
PERSON_STATE_TABLE = "person-states"
_partitioner = DefaultPartitioner()  # murmur2: the camera producer's, Faust's and the state changelog's


def faces_partition(key: bytes, partitions: int) -> int:
    """The `faces` partition of a person key (the camera producer's murmur2), also its state changelog's."""
    return _partitioner(key, list(range(partitions)), None)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


def topic_specs(settings) -> tuple[TopicSpec, ...]:
    """The three topics and the person-state changelog with the partition counts and configs `settings` asks for."""
    if settings.faces_partitions < MIN_FACES_PARTITIONS:
        raise ValueError(f"faces_partitions must be >= {MIN_FACES_PARTITIONS}, got {settings.faces_partitions}")
    if settings.faces_retention_ms <= 0:
        raise ValueError(f"faces_retention_ms must be positive, got {settings.faces_retention_ms}")
    retention = settings.faces_retention_ms
    week = {"cleanup.policy": "delete", "retention.ms": str(SEVEN_DAYS_MS), "segment.ms": str(DAY_MS)}
    return (
        TopicSpec(settings.topics.faces, settings.faces_partitions, {
            "cleanup.policy": "delete",
            "retention.ms": str(retention),
            "segment.ms": str(faces_segment_ms(retention)),
            "message.timestamp.type": "CreateTime",
            "max.message.bytes": str(FACES_MAX_MESSAGE_BYTES),
        }),
        TopicSpec(settings.topics.emotion_events, settings.events_partitions, dict(week)),
        TopicSpec(settings.topics.dead_letters, DEAD_LETTER_PARTITIONS,
                  {**week, "max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)}),
        # the Faust table's changelog: as many partitions as the table (= faces), compacted
        TopicSpec(person_state_changelog(settings), settings.faces_partitions, {
            "cleanup.policy": "compact",
            "segment.ms": str(DAY_MS),
            "max.compaction.lag.ms": str(DAY_MS),
        }),
    )


def faces_segment_ms(retention_ms: int) -> int:
    return min(retention_ms, MAX_FACES_SEGMENT_MS)


def crop_lifetime_ms(retention_ms: int, check_interval_ms: int = RETENTION_CHECK_INTERVAL_MS) -> int:
    """The longest a crop written to `faces` stays readable: until its segment closes (`segment.ms`), its newest
    record ages past `retention.ms`, and the broker's next retention check runs."""
    return retention_ms + faces_segment_ms(retention_ms) + check_interval_ms


def person_state_changelog(settings) -> str:
    """The name of the person-state table's changelog topic (Faust: `<app id>-<table name>-changelog`)."""
    return f"{settings.processor_group}-{PERSON_STATE_TABLE}-changelog"


def _partition_counts(admin, names: list[str]) -> dict[str, int]:
    existing = set(admin.list_topics())
    wanted = [name for name in names if name in existing]
    if not wanted:
        return {}
    return {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(wanted)
            if topic.get("error_code", 0) == 0}


def _configs(admin, name: str, keys: list[str] | None = None) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=keys)
    described = admin.describe_configs([resource], config_filter="all")["topic"][name]
    return {key: entry["value"] for key, entry in described.items()}


def describe_topics(bootstrap: str, names: list[str], timeout_s: float = 15,
                    security: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """{topic: {"partitions": n, "configs": {key: value}}} for those of `names` that exist (all configs)."""
    with admin_client(bootstrap, timeout_s, security) as admin:
        counts = _partition_counts(admin, names)
        return {name: {"partitions": count, "configs": _configs(admin, name)} for name, count in counts.items()}


def ensure_topics(bootstrap: str, settings, timeout_s: float = 30,
                  security: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Create/raise/re-configure the topics idempotently; returns {topic: {"partitions", "configs"}} read back.

    The returned configs hold the keys the spec sets. Partitions are only ever raised (Kafka cannot shrink).
    """
    specs = topic_specs(settings)
    names = [spec.name for spec in specs]
    with admin_client(bootstrap, timeout_s, security) as admin:
        counts = _partition_counts(admin, names)
        for spec in specs:
            _align_partitions(admin, spec, counts.get(spec.name), timeout_s)
        admin.wait_for_topics(names, timeout_ms=int(timeout_s * 1000))
        for spec in specs:
            _align_configs(admin, spec)
        counts = _partition_counts(admin, names)
        return {spec.name: {"partitions": counts[spec.name], "configs": _configs(admin, spec.name, list(spec.configs))}
                for spec in specs}


def _align_partitions(admin, spec: TopicSpec, current: int | None, timeout_s: float) -> None:
    timeout_ms = int(timeout_s * 1000)
    if current is None:
        log.info("Creating topic %s (%d partitions) %s", spec.name, spec.partitions, spec.configs)
        try:
            admin.create_topics({spec.name: {"num_partitions": spec.partitions, "configs": spec.configs}},
                                timeout_ms=timeout_ms)
        except TopicAlreadyExistsError:
            log.info("Topic %s was created concurrently", spec.name)
    elif current < spec.partitions:
        log.info("Raising %s partitions %d -> %d", spec.name, current, spec.partitions)
        admin.create_partitions({spec.name: spec.partitions}, timeout_ms=timeout_ms)
    elif current > spec.partitions:
        log.warning("%s has %d partitions (> %d asked); Kafka cannot shrink a topic, keeping them",
                    spec.name, current, spec.partitions)


def _align_configs(admin, spec: TopicSpec) -> None:
    current = _configs(admin, spec.name, list(spec.configs))
    changed = {key: value for key, value in spec.configs.items() if current.get(key) != value}
    if not changed:
        return
    log.info("Altering %s configs: %s", spec.name, changed)
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=changed)])
    if result["topic"][spec.name] != "OK":
        raise RuntimeError(f"altering {spec.name} configs {changed} failed: {result['topic'][spec.name]}")


def _group_offsets(admin, group_id: str, timeout_s: float) -> dict:
    """Committed offsets of `group_id`; retries while the group coordinator is being created or loaded."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_group_offsets(group_id).get(group_id, {})
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def read_start_offsets(bootstrap: str, group_id: str, topic: str, timeout_s: float = 15,
                       security: Mapping[str, Any] | None = None) -> dict[int, int]:
    """{partition: the first offset `group_id` has still to read} for every partition of `topic`: its committed
    offset, or the partition's log start where that is later (the records before were deleted by retention) or
    where the group never committed (it starts at the earliest record, as the worker's consumer does)."""
    with admin_client(bootstrap, timeout_s, security) as admin:
        committed = {tp.partition: meta.offset for tp, meta in _group_offsets(admin, group_id, timeout_s).items()
                     if tp.topic == topic and meta.offset >= 0}
        partitions = [TopicPartition(topic, p) for p in range(_partition_counts(admin, [topic])[topic])]
        starts = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in partitions},
                                              timeout_ms=int(timeout_s * 1000))
    return first_unread_offsets(committed, {tp.partition: info.offset for tp, info in starts.items()})


def first_unread_offsets(committed: Mapping[int, int], log_starts: Mapping[int, int]) -> dict[int, int]:
    """Per partition of `log_starts`: the committed offset, unless the log now starts later or nothing was
    committed, then the log start."""
    return {partition: max(committed.get(partition, -1), start) for partition, start in log_starts.items()}


def consumer_lag(bootstrap: str, group_id: str = PROCESSOR_GROUP, timeout_s: float = 15,
                 security: Mapping[str, Any] | None = None) -> dict[str, int]:
    """{topic: sum over partitions of (end offset - committed offset)} for the partitions `group_id` committed."""
    with admin_client(bootstrap, timeout_s, security) as admin:
        committed = {tp: meta.offset for tp, meta in _group_offsets(admin, group_id, timeout_s).items()
                     if meta.offset >= 0}
        if not committed:
            return {}
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in committed},
                                            timeout_ms=int(timeout_s * 1000))
    lag: dict[str, int] = {}
    for tp, offset in committed.items():
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends[tp].offset - offset)
    return lag

