"""Secrets (passwords) from the environment or from a file, wrapped so they never end up in logs.

`read_secret("MOVIEMOTION_KAFKA_PASSWORD")` reads `$MOVIEMOTION_KAFKA_PASSWORD`, or the file named by
`$MOVIEMOTION_KAFKA_PASSWORD_FILE` (Docker/Kubernetes secrets style; one trailing newline is dropped).
Setting both, naming a missing/unreadable file or an empty value is one clear `SecretError` (which names the
variable or path, never the value). A `Secret` prints as `Secret(***)`; `.reveal()` is the only way to the
value, so call it only where a client library needs the password. Even then the value is a `RedactedStr`: a
real str whose repr is `'***'`, so a library that logs its whole config dict (kafka-python's admin client
does at DEBUG) prints the mask. `generate_password` and `write_private` make new ones (random, file mode 0600 from
the start) for the Kafka roles, the TLS keystore and the embedded store's users.
"""
from __future__ import annotations

import os
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

FILE_SUFFIX = "_FILE"
MASK = "***"


class SecretError(ValueError):
    """A secret is configured wrongly (set twice, file missing or empty)."""


class RedactedStr(str):
    """A str that behaves as its value everywhere except repr() (what dict/list formatting uses)."""

    def __repr__(self) -> str:
        return repr(MASK)


@dataclass(frozen=True)
class Secret:
    """A password; `file` is where it was read from (None: from the environment or given in code)."""

    value: str = field(repr=False)
    file: Path | None = None

    def reveal(self) -> RedactedStr:
        return RedactedStr(self.value)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK}{f', file={self.file}' if self.file else ''})"


def read_secret_file(path: Path | str) -> Secret:
    """The secret stored in `path` (one trailing newline dropped); SecretError if missing or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or exc}") from None
    value = text[:-1] if text.endswith("\n") else text
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return Secret(value, file=path.resolve())


def read_secret(name: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """`$name`, or the contents of the file `$name_FILE`; None when neither is set."""
    env = os.environ if env is None else env
    direct, path = env.get(name), env.get(name + FILE_SUFFIX)
    if direct is not None and path is not None:
        raise SecretError(f"set either {name} or {name}{FILE_SUFFIX}, not both")
    if path is not None:
        return read_secret_file(path)
    if direct is None:
        return None
    if not direct:
        raise SecretError(f"{name} is set but empty")
    return Secret(direct)


def secret_env(name: str, secret: Secret | None) -> dict[str, str]:
    """Environment for a child process: `name_FILE` when the secret came from a file, else nothing
    (a secret from the environment reaches children through the inherited environment; never argv)."""
    if secret is None or secret.file is None:
        return {}
    return {name + FILE_SUFFIX: str(secret.file)}


def url_with_password(url: str, password: Secret | None) -> str:
    """`scheme://user@host/...` with `password` filled in; the URL unchanged when `password` is None.

    SecretError when the URL already carries a password or names no user (the password would be ambiguous).
    """
    if password is None:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        raise SecretError("the URL already contains a password; give it either in the URL or as a secret")
    if not parts.username:
        raise SecretError("a password secret is set but the URL names no user (use scheme://user@host:port/db)")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:{urllib.parse.quote(password.reveal(), safe='')}@{host}"
    return parts._replace(netloc=netloc).geturl()


def generate_password(nbytes: int = 24) -> Secret:
    """A random password made of URL-safe characters (safe in JAAS lines and `--add-scram`)."""
    return Secret(secrets.token_urlsafe(nbytes))


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 (from the start: no moment when others could read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
