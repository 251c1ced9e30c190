"""The screenings catalogue: which film a screening showed, where and when (table `screenings`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from infra.clickhouse.client import ClickHouseClient


@dataclass(frozen=True)
class Screening:
    screening_id: str
    film_id: str
    film_title: str
    theater_id: str
    starts_at: datetime  # naive UTC
    seats: int
    notes: str = ""


class UnknownScreening(LookupError):
    """No screening with that id in the catalogue."""


def register_screening(client: ClickHouseClient, screening: Screening) -> None:
    """Add or replace (same screening_id) a screening."""
    if not screening.screening_id or not screening.film_id:
        raise ValueError("screening_id and film_id must not be empty")
    if not 0 < screening.seats < 65536:
        raise ValueError(f"seats must be in 1..65535, got {screening.seats}")
    client.insert("screenings", [asdict(screening)])


def get_screening(client: ClickHouseClient, screening_id: str) -> Screening:
    rows = client.query_dicts(
        "SELECT screening_id, film_id, film_title, theater_id, starts_at, seats, notes FROM screenings FINAL WHERE screening_id = %(id)s",
        {"id": screening_id},
    )
    if not rows:
        raise UnknownScreening(f"unknown screening {screening_id!r}: register it first (moviemotion register-screening)")
    return Screening(**{**rows[0], "seats": int(rows[0]["seats"])})
