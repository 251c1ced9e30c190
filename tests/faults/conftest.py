"""Fixtures of the fault tests: a dedicated Kafka broker (for tests that stop it) and a dedicated clickhouse-server."""
from __future__ import annotations

from typing import Iterator

import pytest

from infra.clickhouse.client import NativeClient
from infra.clickhouse.local_server import ClickHouseServerProcess
from infra.clickhouse.migrations import apply_migrations
from infra.kafka_broker import KafkaBroker
from infra.topics import ensure_topics
from schemas.settings import Settings, load_settings
from tests.fixtures.clickhouse import require_server_binary
from tests.fixtures.kafka import distinct_free_ports


@pytest.fixture
def dedicated_broker(tmp_path_factory) -> Iterator[tuple[KafkaBroker, Settings]]:
    """A broker of this test only (free ports, temp dir, topics created): the test may stop and restart it."""
    state_dir = tmp_path_factory.mktemp("dedicated-kafka")
    port, controller_port = distinct_free_ports(2)
    broker = KafkaBroker(state_dir, port=port, controller_port=controller_port)
    broker.start(timeout=120)
    try:
        settings = load_settings(state_dir=state_dir, kafka_bootstrap=broker.bootstrap, kafka_controller_port=controller_port)
        ensure_topics(broker.bootstrap, settings)
        yield broker, settings
    finally:
        broker.stop()


@pytest.fixture
def dedicated_server(tmp_path_factory) -> Iterator[ClickHouseServerProcess]:
    """A clickhouse-server of this test only (migrated `default` database): the test may stop and restart it."""
    require_server_binary()
    server = ClickHouseServerProcess(tmp_path_factory.mktemp("dedicated-clickhouse")).start()
    try:
        with NativeClient(server.url) as client:
            apply_migrations(client)
        yield server
    finally:
        server.stop()
