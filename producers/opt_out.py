"""Opt-out list: seats whose viewers declined measurement. Their faces are dropped on the camera
host before anything (crop, box, landmarks) is built or sent.

File format: one seat id per line; blank lines and `#` comments are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OptOutList:
    seats: frozenset[str] = frozenset()

    def __contains__(self, seat_id: object) -> bool:
        return seat_id in self.seats


def parse_opt_out(text: str) -> OptOutList:
    seats = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return OptOutList(frozenset(seat for seat in seats if seat))


def load_opt_out(path: Path | str | None) -> OptOutList:
    """Read an opt-out file; None means nobody opted out. A missing file is an error (never
    silently measure people who opted out)."""
    if path is None:
        return OptOutList()
    path = Path(path)
    try:
        return parse_opt_out(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read opt-out list {path}: {exc}") from None
