"""Dead letters (topic `dead-letters`): why a message was rejected, where it came from, and what of it is kept.

Everything about the failure travels in Kafka headers (all UTF-8; an unknown partition/offset, or the length and
hash of a null value, is an empty value). `dead_letter(...)` builds the whole record:

- `keep_payload=True` (messages that by contract hold no pixels, e.g. `emotion-events`): key and value are the
  original message's, untouched (`dl-payload: original`).
- `keep_payload=False` (`faces`, and anything else that may carry a face crop): the value is dropped (the letter's
  value is empty) and only its byte length and SHA-256 stay (`dl-payload: stripped`). Nothing of a message that
  can hold a crop outlives the crop retention, however malformed or hostile it is: the key is kept only if it is
  printable UTF-8 of at most MAX_KEPT_KEY_BYTES (the longest person key), else dropped like the value (its length
  and hash stay); the error text is cut to MAX_STRIPPED_ERROR_CHARS ASCII characters. So a stripped letter holds at
  most MAX_KEPT_KEY_BYTES + MAX_STRIPPED_ERROR_CHARS bytes derived from the message, as text: under a quarter of
  the smallest crop the engine scores (48x48 = 2304 bytes).

Version 1 letters (before stripping existed) read back with payload "original" and no lengths or hashes.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from schemas.errors import MAX_ID_CHARS, SchemaError

SCHEMA_VERSION = 2
READABLE_VERSIONS = ("1", "2")
MAX_ERROR_CHARS = 2000
MAX_STRIPPED_ERROR_CHARS = 160
MAX_KEPT_KEY_BYTES = 3 * MAX_ID_CHARS + 2  # "screening|theater|seat" with ASCII ids of MAX_ID_CHARS each
ORIGINAL, STRIPPED = "original", "stripped"
_PREFIX = "dl-"
_KEYS_V1 = ("version", "reason", "error", "source-topic", "source-partition", "source-offset", "at-us")
_KEYS_V2 = ("payload", "key-bytes", "key-sha256", "value-bytes", "value-sha256")
_KEYS = _KEYS_V1 + _KEYS_V2


@dataclass(frozen=True)
class DeadLetter:
    """One record for `dead-letters`: what to send as key, value and headers."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(key: bytes | None, value: bytes | None, reason: str, error: str, source_topic: str,
                partition: int | None, offset: int | None, *, keep_payload: bool) -> DeadLetter:
    """The dead letter of a rejected message; without `keep_payload`, stripped as the module docstring says."""
    if keep_payload:
        return DeadLetter(key, value, dead_letter_headers(reason, error, source_topic, partition, offset, key, value))
    kept_key = key if is_keepable_key(key) else None
    error = str(error).encode("ascii", "backslashreplace").decode("ascii")[:MAX_STRIPPED_ERROR_CHARS]
    headers = dead_letter_headers(reason, error, source_topic, partition, offset, key, value, payload=STRIPPED)
    return DeadLetter(kept_key, b"", headers)


def is_keepable_key(key: bytes | None) -> bool:
    """A key a stripped dead letter may keep: printable UTF-8 of at most MAX_KEPT_KEY_BYTES (a person key)."""
    if key is None:
        return True
    if len(key) > MAX_KEPT_KEY_BYTES:
        return False
    try:
        return bytes(key).decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _length_and_hash(data: bytes | None) -> tuple[str, str]:
    return ("", "") if data is None else (str(len(data)), hashlib.sha256(data).hexdigest())


def dead_letter_headers(
    reason: str, error: str, source_topic: str, partition: int | None, offset: int | None,
    key: bytes | None = None, value: bytes | None = None, payload: str = ORIGINAL,
) -> list[tuple[str, bytes]]:
    """Headers for a dead letter; `error` is cut to MAX_ERROR_CHARS; `key`/`value` are the original message's
    (their lengths and SHA-256 go into the headers)."""
    if not reason or not isinstance(reason, str):
        raise ValueError("a dead letter needs a non-empty reason")
    if payload not in (ORIGINAL, STRIPPED):
        raise ValueError(f"payload must be {ORIGINAL!r} or {STRIPPED!r}, got {payload!r}")
    key_bytes, key_sha = _length_and_hash(key)
    value_bytes, value_sha = _length_and_hash(value)
    values = {
        "version": str(SCHEMA_VERSION),
        "reason": reason,
        "error": str(error)[:MAX_ERROR_CHARS],
        "source-topic": source_topic,
        "source-partition": "" if partition is None else str(int(partition)),
        "source-offset": "" if offset is None else str(int(offset)),
        "at-us": str(time.time_ns() // 1000),
        "payload": payload,
        "key-bytes": key_bytes,
        "key-sha256": key_sha,
        "value-bytes": value_bytes,
        "value-sha256": value_sha,
    }
    return [(_PREFIX + name, values[name].encode("utf-8")) for name in _KEYS]


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None


def read_dead_letter_headers(headers) -> dict:
    """Parse headers (pairs of str and bytes, as kafka clients give them) back into a dict with keys
    version, reason, error, source_topic, partition, offset, at_us, payload ("original" or "stripped"),
    key_bytes, key_sha256, value_bytes, value_sha256 (None: null, or a version 1 letter);
    SchemaError if they are not ours."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if key.startswith(_PREFIX):
            found[key[len(_PREFIX):]] = (value or b"").decode("utf-8", "replace")
    if "version" in found and found["version"] not in READABLE_VERSIONS:
        raise SchemaError("unknown_version", f"dead-letter header version {found['version']!r} is not one of {READABLE_VERSIONS}")
    expected = _KEYS if found.get("version") == str(SCHEMA_VERSION) else _KEYS_V1
    missing = [key for key in expected if key not in found]
    if missing:
        raise SchemaError("missing_field", f"dead-letter headers missing {missing}")
    version = int(found["version"])
    if version >= 2 and found["payload"] not in (ORIGINAL, STRIPPED):
        raise SchemaError("bad_value", f"dead-letter payload {found['payload']!r} is not {ORIGINAL!r} or {STRIPPED!r}")
    try:
        return {
            "version": version,
            "reason": found["reason"],
            "error": found["error"],
            "source_topic": found["source-topic"],
            "partition": _int_or_none(found["source-partition"]),
            "offset": _int_or_none(found["source-offset"]),
            "at_us": int(found["at-us"]),
            "payload": found.get("payload", ORIGINAL),
            "key_bytes": _int_or_none(found.get("key-bytes", "")),
            "key_sha256": found.get("key-sha256") or None,
            "value_bytes": _int_or_none(found.get("value-bytes", "")),
            "value_sha256": found.get("value-sha256") or None,
        }
    except ValueError as exc:
        raise SchemaError("bad_value", f"dead-letter header is not a number: {exc}") from None
