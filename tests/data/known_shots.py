"""The known film's shot index (film-known, 120 s): ten shots tiling the film, boundaries on and between whole
seconds, every shot scale at least once; stored like `moviemotion film index` stores an index.

Against the known screening (tests/data/known_screening.py): the laughs of 35-41 s fall in shot 4 (close-up,
starts 33.5 s), the surprise of 70-72 s in shot 7 (close-up, starts 68 s), a5's big laugh (95-97 s) in shot 9.
"""
from __future__ import annotations

from infra.clickhouse.client import ClickHouseClient
from producers.film_index import Shot, store_shots

# (start_s, end_s, scale, faces)
_PLAN = [
    (0.0, 8.5, "wide", 3),
    (8.5, 20.25, "medium", 2),
    (20.25, 33.5, "no_face", 0),
    (33.5, 45.0, "close_up", 1),
    (45.0, 60.5, "medium_close_up", 2),
    (60.5, 68.0, "wide", 4),
    (68.0, 75.5, "close_up", 1),
    (75.5, 93.0, "medium", 1),
    (93.0, 105.0, "close_up", 1),
    (105.0, 120.0, "medium_close_up", 1),
]
_FACE_HEIGHT = {"close_up": 0.4, "medium_close_up": 0.25, "medium": 0.15, "wide": 0.07, "no_face": 0.0}

SHOTS = tuple(
    Shot(n, start, end, scale, faces, _FACE_HEIGHT[scale], 0.25 + 0.5 * (n % 2), int((end - start) * 2))
    for n, (start, end, scale, faces) in enumerate(_PLAN, 1)
)


def load(client: ClickHouseClient, film_id: str) -> int:
    """Store SHOTS as the film's index; return the revision."""
    return store_shots(client, film_id, SHOTS, "known_shots.py")
