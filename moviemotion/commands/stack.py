"""`moviemotion up | down | status`: run and inspect the local stack (Kafka broker, topics, ClickHouse store)."""
from __future__ import annotations

import json
import shlex

import click
from kafka.errors import KafkaError
from tqdm import tqdm

from infra import stack
from infra.kafka_broker import BrokerError
from infra.secure_broker import client_env, local_credentials, security_dir
from schemas.settings import Settings

UP_STEPS = 4  # jars, broker, topics, store (see infra.stack.up)


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def format_status(status: stack.StackStatus) -> str:
    """Human-readable multi-line status."""
    if status.local_broker:
        process = f"running (pid {status.broker_pid})" if status.broker_pid else "not running"
    else:
        process = "external"
    secure = " (SASL_SSL)" if status.secure else ""
    lines = [f"Kafka {status.bootstrap}{secure}: {process}, {'answering' if status.broker_answering else 'NOT answering'}"]
    for name, topic in status.topics.items():
        lines.append(f"  topic {name:<16} {topic.partitions:>3} partitions  retention {_duration(topic.retention_ms):>6}"
                     f"  segment {_duration(topic.segment_ms):>6}  cleanup {topic.cleanup_policy}")
    if status.broker_answering and not status.topics:
        lines.append("  no MoviEmotion topics yet (run `moviemotion up`)")
    if status.broker_answering:
        lag = ", ".join(f"{topic}={count}" for topic, count in sorted(status.consumer_lag.items())) or "no commits yet"
        lines.append(f"  consumer lag ({status.consumer_group}): {lag}")
    store = status.store
    if store.get("running"):
        lines.append(f"ClickHouse store {store.get('url')}: running, version {store.get('version')}, "
                     f"{len(store.get('migrations') or [])} migrations, rows {store.get('row_counts') or {}}")
    else:
        lines.append(f"ClickHouse store: not running{(' (' + store['error'] + ')') if store.get('error') else ''}")
    return "\n".join(lines)


def format_secure_clients(settings: Settings) -> str:
    """How each role's clients connect to the secure local broker: copy-paste `export` lines, passwords as files."""
    credentials = local_credentials(settings.state_dir, create=False)
    roles = (("Camera hosts (`moviemotion produce`; may only write faces)", credentials.camera),
             ("Stream workers (`moviemotion worker`)", credentials.processor),
             ("Admin (topics, users, ACLs; `moviemotion status` uses it itself)", credentials.security.admin))
    lines = [f"Kafka clients connect with SASL_SSL ({credentials.security.mechanism}) and TLS; the CA, keys and "
             f"passwords are in {security_dir(settings.state_dir)} (files mode 0600, never printed)."]
    for title, user in roles:
        env = client_env(settings, credentials, user)
        lines += [f"{title}:", "  export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())]
    return "\n".join(lines)


def register(group: click.Group) -> None:
    @group.command("up")
    @click.option("--timeout", type=float, default=90.0, show_default=True,
                  help="Seconds to wait for the broker (and store) to answer before failing.")
    @click.option("--secure", is_flag=True,
                  help="Run the local broker SASL_SSL only (SCRAM-SHA-512 over TLS, ACLs) with users admin, camera "
                       "and processor; TLS material and passwords are made once in <state-dir>/security/.")
    @click.pass_obj
    def up(settings: Settings, timeout: float, secure: bool) -> None:
        """Start the local stack: Kafka (KRaft, 127.0.0.1), its topics, the ClickHouse store.

        Idempotent: a running broker/store is reused, topics are created or aligned (partitions raised,
        configs reset to the spec). The first run resolves the Kafka jars with Maven (needs java + mvn).
        State lives under --state-dir (Kafka data + logs in <state-dir>/kafka/). With --secure it prints the
        settings each client role sets to connect; a state dir stays in the mode it was first started in.
        """
        with tqdm(total=UP_STEPS, desc="moviemotion up", unit="step", leave=False) as bar:
            def progress(step: str) -> None:  # called as each step begins: the previous one is done
                if bar.postfix:
                    bar.update(1)
                bar.set_postfix_str(step)

            try:
                status = stack.up(settings, timeout=timeout, progress=progress, secure=secure)
            except (BrokerError, KafkaError, ValueError, RuntimeError) as exc:
                raise click.ClickException(str(exc)) from exc
            bar.update(UP_STEPS - bar.n)
        click.echo(format_status(status))
        if secure:
            click.echo(format_secure_clients(settings))

    @group.command("down")
    @click.option("--timeout", type=float, default=30.0, show_default=True,
                  help="Seconds to wait for a graceful stop before killing the process.")
    @click.pass_obj
    def down(settings: Settings, timeout: float) -> None:
        """Stop the local broker and ClickHouse store (data is kept under --state-dir)."""
        try:
            stack.down(settings, timeout=timeout)
        except (BrokerError, KafkaError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Stack stopped (state kept in {settings.state_dir}).")

    @group.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")
    @click.pass_obj
    def status(settings: Settings, as_json: bool) -> None:
        """Show broker process/answering, topics (partitions, retention), consumer lag and store status."""
        try:
            current = stack.status(settings)
        except (BrokerError, KafkaError, ValueError, RuntimeError) as exc:  # ValueError: secure credentials missing
            raise click.ClickException(str(exc)) from exc
        click.echo(json.dumps(current.to_dict(), indent=2, default=str) if as_json else format_status(current))
