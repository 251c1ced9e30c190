"""Purging one screening from Kafka: tombstones for its keys in the person-state changelog, and what the topics that
cannot be purged per key keep, until when.

- The person-state changelog (`infra.topics.person_state_changelog`, compacted; key = person key
  `screening|theater|seat`, value = the worker's state as JSON, whose `ids.screening_id` names the screening):
  `scan_changelog` reads it from the beginning to its current end; `screening_state_keys` picks the keys whose
  latest record is a state of the screening; `tombstone` writes a null value for each key to the partition that
  holds it. A reader (or a restarting worker) then sees no state for those keys; the log cleaner drops their older
  records when it compacts the segment, and the tombstone itself after `delete.retention.ms`.
- `faces`, `emotion-events`, `dead-letters` (cleanup.policy=delete) have no per-key delete: a record leaves with
  its segment, at most `segment.ms` + `retention.ms` after it was written (plus the broker's retention check,
  `log.retention.check.interval.ms`). `retention_notes` says so, with the topics' live configs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from infra.kafka_broker import BrokerUnreachable

NO_LIMIT_MS = 2 ** 63 - 1  # Kafka's "unset" max.compaction.lag.ms
DEFAULT_CHECK_INTERVAL_MS = 5 * 60 * 1000  # log.retention.check.interval.ms, broker default


@dataclass(frozen=True)
class ChangelogScan:
    """The latest record of every (partition, key) of a changelog topic, read up to its end when scanned."""

    topic: str
    exists: bool
    latest: dict[tuple[int, bytes | None], bytes | None]


def scan_changelog(bootstrap: str, topic: str, timeout_s: float = 60.0,
                   security: Mapping[str, Any] | None = None) -> ChangelogScan:
    """Read `topic` from its start to its current end offsets; BrokerUnreachable when no broker answers."""
    ms = max(1000, int(timeout_s * 1000))
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                 request_timeout_ms=max(ms, 31_000), bootstrap_timeout_ms=min(ms, 15_000),
                                 **(security or {}))
    except KafkaError as exc:
        raise BrokerUnreachable(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({exc})") from exc
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return ChangelogScan(topic, False, {})
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        latest: dict[tuple[int, bytes | None], bytes | None] = {}
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end took over {timeout_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset < ends[tp]:
                        latest[(tp.partition, record.key)] = record.value
            remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
        return ChangelogScan(topic, True, latest)
    finally:
        consumer.close()


def is_state_of(key: bytes | None, value: bytes | None, screening_id: str) -> bool:
    """Whether a changelog record is a (live) state of `screening_id`: its `ids` say so; a state without ids (no
    frame accepted yet) by its person key `screening|theater|seat`. A tombstone is no state."""
    if value is None or key is None:
        return False
    try:
        state = json.loads(value)
    except ValueError:
        state = None
    ids = state.get("ids") if isinstance(state, dict) else None
    if isinstance(ids, dict) and isinstance(ids.get("screening_id"), str):
        return ids["screening_id"] == screening_id
    text = key.decode("utf-8", "replace")
    return text.startswith(screening_id + "|") and text.count("|") == screening_id.count("|") + 2


def screening_state_keys(scan: ChangelogScan, screening_id: str) -> dict[bytes, set[int]]:
    """{person key: partitions} whose latest changelog record is a state of `screening_id`."""
    keys: dict[bytes, set[int]] = {}
    for (partition, key), value in scan.latest.items():
        if is_state_of(key, value, screening_id):
            keys.setdefault(key, set()).add(partition)
    return keys


def keys_to_tombstone(scan: ChangelogScan, screening_id: str, known_keys: Iterable[str]) -> dict[bytes, set[int]]:
    """The screening's state keys found in the changelog, plus `known_keys` (e.g. from ClickHouse) that the scan
    did not see at all (an empty set: the producer's murmur2 partitioner picks the partition, as the worker's
    does). Keys whose latest record is already a tombstone are left alone."""
    keys = screening_state_keys(scan, screening_id)
    seen = {key for _, key in scan.latest}
    for text in known_keys:
        key = text.encode("utf-8")
        if key not in seen:
            keys.setdefault(key, set())
    return keys


def tombstone(bootstrap: str, topic: str, keys: Mapping[bytes, Iterable[int]], timeout_s: float = 60.0,
              security: Mapping[str, Any] | None = None) -> int:
    """Write a tombstone (null value) for each key to each of its partitions (none given: the default partitioner);
    returns how many were written, all acknowledged by the broker (acks=all)."""
    if not keys:
        return 0
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5, max_block_ms=int(timeout_s * 1000),
                             **(security or {}))
    try:
        futures = [producer.send(topic, key=key, value=None, partition=partition)
                   for key, partitions in keys.items() for partition in (sorted(partitions) or [None])]
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)
        return len(futures)
    finally:
        producer.close(timeout=timeout_s)


# -- what retention removes later --------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicRetention:
    """The configs of a topic that decide when a record written now is gone."""

    topic: str
    cleanup_policy: str
    retention_ms: int
    segment_ms: int
    delete_retention_ms: int
    max_compaction_lag_ms: int

    @classmethod
    def from_configs(cls, topic: str, configs: Mapping[str, str]) -> "TopicRetention":
        return cls(topic, configs.get("cleanup.policy", "delete"), int(configs.get("retention.ms", "-1")),
                   int(configs["segment.ms"]), int(configs.get("delete.retention.ms", "86400000")),
                   int(configs.get("max.compaction.lag.ms", str(NO_LIMIT_MS))))

    def deleted_within_ms(self) -> int | None:
        """At most how long after it was written a record is deleted by retention (None: never)."""
        if "delete" not in self.cleanup_policy or self.retention_ms < 0:
            return None
        return self.segment_ms + self.retention_ms


def duration(ms: int) -> str:
    """A short human duration: 15 min, 1 day, 7 days, 26 h, 40 s."""
    seconds = ms / 1000
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            value = seconds / size
            text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
            return f"{text} {unit}{'s' if unit == 'day' and text != '1' else ''}"
    return f"{seconds:g} s"


def _by(now: datetime, ms: int, check_ms: int) -> str:
    return (now + timedelta(milliseconds=ms + check_ms)).strftime("%Y-%m-%d %H:%M UTC")


def retention_notes(retention: Mapping[str, TopicRetention | str], faces: str, events: str, dead_letters: str,
                    changelog: str, now: datetime, check_ms: int = DEFAULT_CHECK_INTERVAL_MS) -> list[str]:
    """What Kafka still holds of a purged screening and until when, one line per topic. `retention` maps a topic
    to its configs, or to why they could not be read; `now` is UTC."""
    def bound(topic: str, what: str) -> str:
        info = retention.get(topic, "not found")
        if isinstance(info, str):
            return f"{topic}: {what}; its retention could not be read ({info})"
        within = info.deleted_within_ms()
        if within is None:
            return f"{topic}: {what}; cleanup.policy={info.cleanup_policy} never deletes them"
        return (f"{topic}: {what}; Kafka deletes them with their segment, at most {duration(within)} after they were "
                f"written (segment.ms {duration(info.segment_ms)} + retention.ms {duration(info.retention_ms)}): "
                f"gone by {_by(now, within, check_ms)} at the latest")

    notes = [
        bound(events, "this screening's emotion events (person keys and per-second scores, no pixels) cannot be "
                      "deleted per key"),
        bound(dead_letters, "dead letters from `faces` keep no pixels (schemas/dead_letter.py); those from "
                            f"{events} keep the rejected event"),
        bound(faces, "face crops are not purged per key"),
    ]
    info = retention.get(changelog)
    what = (f"{changelog}: older states of the tombstoned keys stay readable from the topic's start until the log "
            "cleaner compacts them")
    if info is None or isinstance(info, str):
        notes.append(f"{what}; its configs could not be read ({info or 'not found'})")
    elif info.max_compaction_lag_ms < NO_LIMIT_MS:
        notes.append(f"{what}, at most {duration(min(info.segment_ms, info.max_compaction_lag_ms))} after they were "
                     f"written (max.compaction.lag.ms): by {_by(now, info.max_compaction_lag_ms, check_ms)}; the "
                     f"tombstones themselves go {duration(info.delete_retention_ms)} (delete.retention.ms) after that")
    else:
        notes.append(f"{what}: after their segment rolls (segment.ms {duration(info.segment_ms)}) and the cleaner "
                     f"picks the topic (min.cleanable.dirty.ratio); no max.compaction.lag.ms bounds that; the "
                     f"tombstones themselves go {duration(info.delete_retention_ms)} (delete.retention.ms) after")
    return notes


def read_retention(bootstrap: str, names: Iterable[str], timeout_s: float = 15.0,
                   security: Mapping[str, Any] | None = None) -> dict[str, TopicRetention | str]:
    """{topic: its TopicRetention, or why not} for `names` (a topic that does not exist: "not found")."""
    from infra.topics import describe_topics

    names = list(dict.fromkeys(names))
    try:
        described = describe_topics(bootstrap, names, timeout_s, security)
    except Exception as exc:  # a report only: an account without DESCRIBE_CONFIGS, say, gets the reason printed
        return {name: f"{type(exc).__name__}: {exc}" for name in names}
    out: dict[str, TopicRetention | str] = {}
    for name in names:
        if name not in described:
            out[name] = "not found"
            continue
        try:
            out[name] = TopicRetention.from_configs(name, described[name]["configs"])
        except (KeyError, ValueError) as exc:
            out[name] = f"unreadable configs ({exc})"
    return out
