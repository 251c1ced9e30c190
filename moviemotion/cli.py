"""`moviemotion` command line: one group; each area adds its commands from its own module."""
from __future__ import annotations

import importlib
import logging

import click

from schemas.secrets import SecretError
from schemas.settings import load_settings

# Modules under moviemotion/commands/ that each expose `register(group)`.
COMMAND_MODULES = ("stack", "store", "produce", "process", "engine", "analytics", "film", "demo")

# The product's own top-level packages: their INFO lines are its progress and summaries.
OWN_PACKAGES = frozenset({"moviemotion", "infra", "engines", "schemas", "producers", "stream_processors", "benchmarks",
                          "__main__"})
# Libraries known to log at INFO (kafka-python logs every connection): held at WARNING unless -v.
LIBRARY_LOGGERS = ("kafka", "aiokafka", "faust", "mode", "urllib3", "requests", "clickhouse_driver", "chdb",
                   "grafana_client", "asyncio", "filelock", "PIL", "matplotlib", "h5py", "onnxruntime")
# Long-running services that log to their own file at their own --loglevel, libraries included.
SERVICE_COMMANDS = frozenset({"worker"})
CONSOLE_HANDLER = "moviemotion-console"


class OwnInfoOnly(logging.Filter):
    """Passes warnings and errors from anyone, lower levels only from the product's own packages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.partition(".")[0] in OWN_PACKAGES


def configure_logging(verbose: bool, quiet_libraries: bool = True) -> None:
    """Console logging on stderr: the product's INFO lines, libraries' warnings and errors only (`-v`: everything
    at DEBUG). Leaves logging alone when something else configured it first (a test runner, an embedding app)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == CONSOLE_HANDLER), None)
    if handler is None:
        if root.handlers:
            return
        handler = logging.StreamHandler()
        handler.set_name(CONSOLE_HANDLER)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet = quiet_libraries and not verbose
    for filter_ in [f for f in handler.filters if isinstance(f, OwnInfoOnly)]:
        handler.removeFilter(filter_)
    if quiet:
        handler.addFilter(OwnInfoOnly())  # any library, listed or not
    for name in LIBRARY_LOGGERS:  # and the known chatty ones skip formatting what would be dropped
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="Local state (Kafka data, chDB store, logs). Default: ./.moviemotion or $MOVIEMOTION_STATE_DIR.")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers. Default: $MOVIEMOTION_KAFKA_BOOTSTRAP or 127.0.0.1:19092.")
@click.option("--clickhouse", "clickhouse_url", default=None, help="A real server: clickhouses://user@host:9440/db?ca_certs=CA.pem (TLS) or clickhouse://user@host:9000/db, "
                   "password from MOVIEMOTION_CLICKHOUSE_PASSWORD_FILE; default: the embedded chDB store.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, libraries' INFO/DEBUG lines included (kept out otherwise).")
@click.pass_context
def main(ctx: click.Context, state_dir, bootstrap, clickhouse_url, verbose) -> None:
    """MoviEmotion: live audience emotion measurement for film test screenings."""
    configure_logging(verbose, quiet_libraries=ctx.invoked_subcommand not in SERVICE_COMMANDS)
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
