"""The embedded store's two accounts and their password files.

`writer` (the sink, migrations, admin commands) may run anything; `analyst` (reports, ad-hoc SQL, dashboards)
only reads. Their passwords are generated the first time the store daemon starts and kept in
`<state_dir>/security/clickhouse-<user>.password` (directory 0700, files 0600); they never go on a command line
or into a log. The daemon checks them; `connect(settings)` reads the one it needs.
"""
from __future__ import annotations

import os
from pathlib import Path

from schemas.secrets import Secret, SecretError, generate_password, read_secret_file, write_private

WRITER = "writer"
ANALYST = "analyst"
USERS = (WRITER, ANALYST)


def password_file(state_dir: Path, user: str) -> Path:
    """Where `user`'s password lives."""
    if user not in USERS:
        raise ValueError(f"the embedded store has no user {user!r} (users: {', '.join(USERS)})")
    return state_dir / "security" / f"clickhouse-{user}.password"


def _create(path: Path) -> None:
    """Write a fresh random password to `path` unless it exists (atomic: a reader never sees a partial file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_private(tmp, generate_password().reveal() + "\n")
    try:
        os.link(tmp, path)  # fails if another starter created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def store_password(state_dir: Path, user: str) -> Secret:
    """`user`'s password; SecretError naming the file when it is missing (the store never started here)."""
    path = password_file(state_dir, user)
    try:
        return read_secret_file(path)
    except SecretError as exc:
        raise SecretError(f"{exc}: the embedded store creates it on its first start (`moviemotion up`)") from None


def ensure_store_passwords(state_dir: Path) -> dict[str, Secret]:
    """Every user's password, generated where missing (the daemon calls this before it serves)."""
    for user in USERS:
        path = password_file(state_dir, user)
        if not path.exists():
            _create(path)
    return {user: store_password(state_dir, user) for user in USERS}
