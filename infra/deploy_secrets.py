"""The secret files infra/docker-compose.yml mounts:
`python -m infra.deploy_secrets --kafka-host HOST [--clickhouse-host HOST] [--dir DIR]`.

Writes the missing ones under DIR (default infra/.secrets, git-ignored; the directory is made 0700): one random
password per account (Kafka admin/camera/processor, ClickHouse admin/sink/analyst, Grafana admin) and the TLS
material (infra/tls.py): a venue CA (`venue_ca`, what every client trusts), the Kafka broker's certificate for
`kafka`, the name the containers use, and each --kafka-host, the address camera hosts use; the ClickHouse server's
certificate for `clickhouse`, localhost, 127.0.0.1 and each --clickhouse-host, the address analysts use. Existing
files are kept, so a re-run never rotates a password; values are never printed. The mounted files are 0644 inside
the 0700 directory: compose bind-mounts a file secret with its host owner and mode, and the containers' users
(kafka, clickhouse, grafana, moviemotion) are not the deploying user. The CA's key (tls/ca.key) stays 0600 and is
mounted nowhere.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.kafka_security import SecurityConfigError, generate_tls_material, load_tls_material
from infra.tls import TlsError, issue_server_certificate, load_server_certificate
from schemas.secrets import generate_password, write_private

DEFAULT_DIR = Path(__file__).resolve().parent / ".secrets"
TLS_DIR = "tls"
TLS_DAYS = 365
# compose secret name -> file under the secrets dir (the compose file's top-level `secrets:` must match this).
PASSWORD_SECRETS = ("kafka_admin_password", "kafka_camera_password", "kafka_processor_password",
                    "clickhouse_admin_password", "clickhouse_sink_password", "clickhouse_analyst_password",
                    "grafana_admin_password")
CLICKHOUSE_CERTIFICATE = "clickhouse"  # tls/clickhouse.pem, tls/clickhouse.key
CLICKHOUSE_LOCAL_HOSTS = ("clickhouse", "localhost", "127.0.0.1")  # the containers' name; the venue host itself
KAFKA_TLS_SECRETS = {"venue_ca": f"{TLS_DIR}/ca.pem", "kafka_keystore": f"{TLS_DIR}/broker.p12",
                     "kafka_keystore_password": f"{TLS_DIR}/keystore.pass"}
CLICKHOUSE_TLS_SECRETS = {"clickhouse_certificate": f"{TLS_DIR}/{CLICKHOUSE_CERTIFICATE}.pem",
                          "clickhouse_private_key": f"{TLS_DIR}/{CLICKHOUSE_CERTIFICATE}.key"}
TLS_SECRETS = {**KAFKA_TLS_SECRETS, **CLICKHOUSE_TLS_SECRETS}
COMPOSE_SECRETS = {**{name: name for name in PASSWORD_SECRETS}, **TLS_SECRETS}
CONTAINER_READABLE = 0o644


def write_secrets(directory: Path, kafka_hosts: tuple[str, ...], days: int = TLS_DAYS,
                  clickhouse_hosts: tuple[str, ...] = ()) -> list[str]:
    """Create the missing secret files under `directory` (a lost keystore or certificate is rebuilt on the kept CA);
    the compose names of the files written."""
    if not kafka_hosts:
        raise SecurityConfigError("give the address camera hosts use to reach Kafka (--kafka-host)")
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    created = []
    for name in PASSWORD_SECRETS:
        path = directory / name
        if not path.is_file():
            write_private(path, generate_password().reveal())
            created.append(name)
    tls = directory / TLS_DIR
    before = _contents(directory, TLS_SECRETS)
    try:
        load_tls_material(tls)
    except SecurityConfigError:
        generate_tls_material(tls, hosts=("kafka", *kafka_hosts), days=days)  # keeps a valid CA
    try:
        load_server_certificate(tls, CLICKHOUSE_CERTIFICATE)
    except TlsError:
        hosts = tuple(dict.fromkeys((*CLICKHOUSE_LOCAL_HOSTS, *clickhouse_hosts)))
        issue_server_certificate(tls, CLICKHOUSE_CERTIFICATE, hosts, days)
    after = _contents(directory, TLS_SECRETS)
    created += [name for name in after if after[name] != before[name]]
    tls.chmod(0o700)
    for relative in COMPOSE_SECRETS.values():
        (directory / relative).chmod(CONTAINER_READABLE)
    return created


def _contents(directory: Path, secrets: dict[str, str]) -> dict[str, bytes | None]:
    """{compose name: the file's bytes, None where missing}."""
    return {name: (directory / relative).read_bytes() if (directory / relative).is_file() else None
            for name, relative in secrets.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_secrets",
                                     description="Write the missing secret files of infra/docker-compose.yml "
                                                 "(passwords, TLS for Kafka and ClickHouse); existing ones are kept, "
                                                 "none is printed.")
    parser.add_argument("--kafka-host", action="append", default=[], metavar="HOST",
                        help="address (IP or DNS name) camera hosts use for Kafka, i.e. KAFKA_EXTERNAL_HOST; repeat "
                             "for several; goes into the broker certificate")
    parser.add_argument("--clickhouse-host", action="append", default=[], metavar="HOST",
                        help="address (IP or DNS name) analysts use for ClickHouse (CLICKHOUSE_BIND_ADDRESS's host); "
                             "repeat for several; goes into the ClickHouse certificate beside clickhouse, localhost "
                             "and 127.0.0.1")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"secrets directory (default {DEFAULT_DIR})")
    parser.add_argument("--days", type=int, default=TLS_DAYS, help="validity of a new CA and server certificate")
    args = parser.parse_args(argv)
    try:
        created = write_secrets(args.dir, tuple(args.kafka_host), args.days, tuple(args.clickhouse_host))
    except (SecurityConfigError, TlsError, OSError) as exc:
        print(f"deploy_secrets: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dir}: created {', '.join(created) if created else 'nothing (all present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
