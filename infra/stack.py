"""The local stack as one unit: `up` (broker + topics + ClickHouse store + migrations), `down`, `status`.

A bootstrap on 127.0.0.1/localhost gets the local `KafkaBroker`; any other bootstrap is treated as an
external cluster: `up` only checks that it answers and creates the topics, `down` leaves it alone.
`up(secure=True)` runs the local broker SASL_SSL (infra/secure_broker.py); `status` asks such a broker as its
admin, with the credentials from the state dir.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Callable

from infra.clickhouse.client import connect
from infra.clickhouse.migrations import apply_migrations
from infra.clickhouse.service import start_store, stop_store, store_status
from infra.kafka_broker import BrokerError, KafkaBroker, ensure_jars, is_local_bootstrap, ping
from infra.kafka_security import PLAINTEXT, kafka_python_kwargs
from infra.secure_broker import local_credentials, start_secure_broker
from infra.topics import PROCESSOR_GROUP, consumer_lag, describe_topics, ensure_topics
from schemas.settings import Settings

log = logging.getLogger(__name__)

STATUS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TopicStatus:
    partitions: int
    retention_ms: int | None
    cleanup_policy: str | None
    segment_ms: int | None


@dataclass(frozen=True)
class StackStatus:
    bootstrap: str
    local_broker: bool  # True: the stack runs the broker itself (bootstrap on 127.0.0.1)
    broker_pid: int | None
    broker_answering: bool
    secure: bool = False  # the local broker runs SASL_SSL (`up --secure`)
    topics: dict[str, TopicStatus] = field(default_factory=dict)
    consumer_group: str = PROCESSOR_GROUP
    consumer_lag: dict[str, int] = field(default_factory=dict)
    store: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.broker_answering and bool(self.topics) and bool(self.store.get("running"))

    def to_dict(self) -> dict:
        return {**asdict(self), "healthy": self.healthy}


def _topic_status(described: dict) -> TopicStatus:
    configs = described["configs"]

    def as_int(key: str) -> int | None:
        value = configs.get(key)
        return int(value) if value not in (None, "") else None

    return TopicStatus(partitions=described["partitions"], retention_ms=as_int("retention.ms"),
                       cleanup_policy=configs.get("cleanup.policy"), segment_ms=as_int("segment.ms"))


def up(settings: Settings, timeout: float = 90, progress: Callable[[str], None] = lambda step: None,
       secure: bool = False) -> StackStatus:
    """Start (or reuse) the broker, create/align the topics, start the store; returns the resulting status.

    `secure`: the local broker listens SASL_SSL only, with SCRAM users and ACLs (credentials made once under
    `<state_dir>/security/`); the topics are created as its admin."""
    if secure:
        security = _start_secure_local_broker(settings, timeout, progress)
    else:
        security = kafka_python_kwargs(settings)
        if is_local_bootstrap(settings.kafka_bootstrap):
            if security["security_protocol"] != PLAINTEXT:
                raise BrokerError("the local broker of `moviemotion up` is plaintext; for SASL_SSL run "
                                  "`moviemotion up --secure` or use a secured cluster (see docs/security.md)")
            progress("Kafka jars")
            ensure_jars()
            progress("Kafka broker")
            KafkaBroker.from_settings(settings).start(timeout=timeout)
        else:
            progress("Kafka broker (external)")
            if not ping(settings.kafka_bootstrap, timeout_s=min(timeout, 15), security=security):
                raise BrokerError(f"external Kafka at {settings.kafka_bootstrap} does not answer")
    progress("Kafka topics")
    ensure_topics(settings.kafka_bootstrap, settings, timeout_s=min(timeout, 60), security=security)
    progress("ClickHouse store")
    if not settings.clickhouse_url:
        start_store(settings, timeout=min(timeout, 60))
    with connect(settings) as client:
        apply_migrations(client)
    return status(settings)


def _start_secure_local_broker(settings: Settings, timeout: float, progress: Callable[[str], None]) -> dict:
    """Start the local broker SASL_SSL with its users and ACLs; the admin's client options."""
    if not is_local_bootstrap(settings.kafka_bootstrap):
        raise BrokerError(f"--secure starts the local broker on 127.0.0.1; {settings.kafka_bootstrap} names an "
                          f"external cluster, whose security is configured there (see docs/security.md)")
    progress("Kafka jars")
    ensure_jars()
    progress("Kafka broker (SASL_SSL)")
    _, credentials = start_secure_broker(settings, timeout=timeout)
    return credentials.security.admin_kwargs()


def down(settings: Settings, timeout: float = 30) -> None:
    """Stop the store and the local broker (an external Kafka or ClickHouse server is left running)."""
    if not settings.clickhouse_url:
        stop_store(settings, timeout=timeout)
    if is_local_bootstrap(settings.kafka_bootstrap):
        KafkaBroker.from_settings(settings).stop(timeout=timeout)


def status(settings: Settings) -> StackStatus:
    """Broker process/answering, topics (partitions, retention), the configured processor group's lag, store status."""
    local = is_local_bootstrap(settings.kafka_bootstrap)
    broker = KafkaBroker.from_settings(settings) if local else None
    pid = broker.pid() if broker else None
    secure = bool(broker and broker.formatted_secure())
    # A local secure broker is asked as its admin (the credentials `up --secure` left in the state dir).
    security = (local_credentials(settings.state_dir, create=False).security.admin_kwargs() if secure
                else kafka_python_kwargs(settings))
    answering = ping(settings.kafka_bootstrap, timeout_s=STATUS_TIMEOUT_S, security=security)
    topics: dict[str, TopicStatus] = {}
    lag: dict[str, int] = {}
    if answering:
        names = [settings.topics.faces, settings.topics.emotion_events, settings.topics.dead_letters]
        described = describe_topics(settings.kafka_bootstrap, names, timeout_s=STATUS_TIMEOUT_S, security=security)
        topics = {name: _topic_status(described[name]) for name in names if name in described}
        lag = consumer_lag(settings.kafka_bootstrap, settings.processor_group, timeout_s=STATUS_TIMEOUT_S,
                           security=security)
    store = store_status(settings)
    return StackStatus(bootstrap=settings.kafka_bootstrap, local_broker=local, broker_pid=pid,
                       broker_answering=answering, secure=secure, topics=topics,
                       consumer_group=settings.processor_group, consumer_lag=lag, store=store)
