"""Kafka headers of a dead letter (topic `dead-letters`): why a message was rejected and where it came from.

The dead letter's value and key are the original message's, untouched; everything about the
failure travels in these headers (all UTF-8; an unknown partition/offset is an empty value).
"""
from __future__ import annotations

import time

from schemas.errors import SchemaError

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 2000
_PREFIX = "dl-"
_KEYS = ("version", "reason", "error", "source-topic", "source-partition", "source-offset", "at-us")


def dead_letter_headers(
    reason: str, error: str, source_topic: str, partition: int | None, offset: int | None
) -> list[tuple[str, bytes]]:
    """Headers for a dead letter; `error` is cut to MAX_ERROR_CHARS."""
    if not reason or not isinstance(reason, str):
        raise ValueError("a dead letter needs a non-empty reason")
    values = {
        "version": str(SCHEMA_VERSION),
        "reason": reason,
        "error": str(error)[:MAX_ERROR_CHARS],
        "source-topic": source_topic,
        "source-partition": "" if partition is None else str(int(partition)),
        "source-offset": "" if offset is None else str(int(offset)),
        "at-us": str(time.time_ns() // 1000),
    }
    return [(_PREFIX + key, values[key].encode("utf-8")) for key in _KEYS]


def read_dead_letter_headers(headers) -> dict:
    """Parse headers (pairs of str and bytes, as kafka clients give them) back into a dict with keys
    version, reason, error, source_topic, partition, offset, at_us; SchemaError if they are not ours."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if key.startswith(_PREFIX):
            found[key[len(_PREFIX):]] = (value or b"").decode("utf-8", "replace")
    missing = [key for key in _KEYS if key not in found]
    if missing:
        raise SchemaError("missing_field", f"dead-letter headers missing {missing}")
    if found["version"] != str(SCHEMA_VERSION):
        raise SchemaError("unknown_version", f"dead-letter header version {found['version']!r} is not {SCHEMA_VERSION}")
    try:
        return {
            "version": SCHEMA_VERSION,
            "reason": found["reason"],
            "error": found["error"],
            "source_topic": found["source-topic"],
            "partition": int(found["source-partition"]) if found["source-partition"] else None,
            "offset": int(found["source-offset"]) if found["source-offset"] else None,
            "at_us": int(found["at-us"]),
        }
    except ValueError as exc:
        raise SchemaError("bad_value", f"dead-letter header is not a number: {exc}") from None
