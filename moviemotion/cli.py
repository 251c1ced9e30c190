"""`moviemotion` command line: one group; each area adds its commands from its own module."""
from __future__ import annotations

import importlib
import logging

import click

from infra.secrets import SecretError
from moviemotion.settings import load_settings

# Modules under moviemotion/commands/ that each expose `register(group)`.
COMMAND_MODULES = ("stack", "store", "produce", "process", "engine", "analytics", "film", "demo")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="Local state (Kafka data, chDB store, logs). Default: ./.moviemotion or $MOVIEMOTION_STATE_DIR.")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers. Default: $MOVIEMOTION_KAFKA_BOOTSTRAP or 127.0.0.1:19092.")
@click.option("--clickhouse", "clickhouse_url", default=None, help="clickhouse://user:pass@host:9000/db for a real server; default: the embedded chDB store.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, state_dir, bootstrap, clickhouse_url, verbose) -> None:
    """MoviEmotion: live audience emotion measurement for film test screenings."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    try:
        ctx.obj = load_settings(
            state_dir=Path(state_dir).resolve() if state_dir else None,
            kafka_bootstrap=bootstrap,
            clickhouse_url=clickhouse_url,
        )
    except SecretError as exc:  # e.g. MOVIEMOTION_KAFKA_PASSWORD_FILE names a missing file
        raise click.UsageError(str(exc)) from None


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"moviemotion.commands.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"moviemotion.commands.{_name}":
            raise
        continue
    _module.register(main)
