"""The read-only analyst account (used by analysts and by Grafana).

Servers with SQL access control (ClickHouse 20.5+ with access_management for the admin): a role `analyst`
with SELECT on the database, and a user holding it with readonly=1. Servers without it (Debian's 18.16):
a users.xml user with the `readonly` profile (infra/clickhouse/local_server.py `ServerUser`). The embedded
store has its own fixed `analyst` account (infra/clickhouse/store_auth.py) and creates no others.
"""
from __future__ import annotations

import re

from infra.clickhouse.client import ClickHouseClient, ClickHouseError

RBAC_SINCE = (20, 5)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AccessControlUnsupported(RuntimeError):
    """The store cannot create roles/users with SQL."""


def analyst_statements(database: str, user: str, password: str) -> list[str]:
    """CREATE ROLE/USER + GRANT SELECT statements for a read-only analyst on `database`."""
    for label, name in (("database", database), ("user", user)):
        if not _NAME.match(name):
            raise ValueError(f"{label} name {name!r} must be a plain identifier")
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        "CREATE ROLE IF NOT EXISTS analyst",
        f"GRANT SELECT ON {database}.* TO analyst",
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY '{quoted}' DEFAULT ROLE analyst SETTINGS readonly = 1",
        f"GRANT analyst TO {user}",
    ]


def create_analyst(client: ClickHouseClient, database: str, user: str, password: str) -> list[str]:
    """Run analyst_statements on the store; AccessControlUnsupported where SQL access control is missing."""
    version = client.server_version()
    if version < RBAC_SINCE:
        raise AccessControlUnsupported(f"ClickHouse {'.'.join(map(str, version))} has no SQL access control: add a users.xml user with the readonly profile")
    statements = analyst_statements(database, user, password)
    try:
        for statement in statements:
            client.execute(statement)
    except ClickHouseError as exc:
        raise AccessControlUnsupported(f"this store refused to create the analyst account ({str(exc).splitlines()[0]}); the embedded store creates no accounts (its read-only `analyst` is built in: docs/security.md)") from None
    return statements
