"""The one error raised for any malformed or unknown-version wire message, and the field checks that raise it."""
from __future__ import annotations

import math
import time

import numpy as np

# Machine-readable reasons (also used as the `reason` header of dead letters).
REASONS = (
    "truncated",
    "bad_magic",
    "unknown_version",
    "bad_shape",
    "bad_value",
    "bad_json",
    "missing_field",
)


class SchemaError(ValueError):
    """A message that cannot be decoded or built: `.reason` is one of REASONS, str() says why."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown SchemaError reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason


MAX_ID_CHARS = 128
MAX_FUTURE_US = 24 * 3600 * 1_000_000  # timestamps more than a day ahead are rejected
# Capture times before 2020-01-01 UTC are rejected: no camera of this product ran before, and a clock at the epoch
# (1970) is a camera host without time sync whose frames would expire from frame_scores at once.
MIN_CAPTURED_US = 1_577_836_800 * 1_000_000


def check_id(name: str, value: object) -> str:
    """A non-empty id string of at most MAX_ID_CHARS characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise SchemaError("bad_value", f"{name} must be a non-empty string of <= {MAX_ID_CHARS} chars, got {value!r:.60}")
    return value


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """An integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SchemaError("bad_value", f"{name} must be an integer >= {minimum}, got {value!r:.60}")
    return int(value)


def check_float(name: str, value: object, low: float = -math.inf, high: float = math.inf, allow_nan: bool = False) -> float:
    """A finite real number in [low, high] (NaN only when allow_nan)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SchemaError("bad_value", f"{name} must be a number, got {value!r:.60}")
    number = float(value)
    if math.isnan(number) and allow_nan:
        return number
    if not (math.isfinite(number) and low <= number <= high):
        raise SchemaError("bad_value", f"{name} must be finite and in [{low}, {high}], got {number}")
    return number


def check_captured_us(value: object, now_us: int | None = None) -> int:
    """UTC microseconds since the epoch, from 2020-01-01 and not more than a day in the future."""
    captured = check_int("captured_us", value, minimum=1)
    if captured < MIN_CAPTURED_US:
        raise SchemaError("bad_value", f"captured_us {captured} is before 2020-01-01 (is the camera host's clock set?)")
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    if captured > now_us + MAX_FUTURE_US:
        raise SchemaError("bad_value", f"captured_us {captured} is more than a day in the future")
    return captured
