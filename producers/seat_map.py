"""Per-camera seat map: which seat a face sits in, from the position of its box centre.

JSON file:
    {"camera_id": "cam-A", "frame_size": [width, height],
     "seats": [{"seat_id": "A1", "region": [x, y, w, h]}, ...]}
Regions are in pixels of the camera's frames and must not overlap; a face belongs to the seat
whose region contains its box centre (no seat: the face is dropped by the producer).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from producers.tracker import Box, centre


class SeatMapError(ValueError):
    """A seat map that is unreadable, malformed, or does not fit the camera's frames."""


@dataclass(frozen=True)
class SeatRegion:
    seat_id: str
    region: Box

    def contains(self, x: float, y: float) -> bool:
        rx, ry, rw, rh = self.region
        return rx <= x < rx + rw and ry <= y < ry + rh


@dataclass(frozen=True)
class SeatMap:
    camera_id: str
    frame_size: tuple[int, int]  # width, height
    seats: tuple[SeatRegion, ...]

    def seat_for(self, bbox: Box) -> str | None:
        """The seat whose region holds the box centre, or None."""
        x, y = centre(bbox)
        for seat in self.seats:
            if seat.contains(x, y):
                return seat.seat_id
        return None

    def check_frame_size(self, width: int, height: int) -> None:
        """Raise SeatMapError unless frames are the size this map was drawn for."""
        if (width, height) != self.frame_size:
            raise SeatMapError(
                f"seat map for camera {self.camera_id!r} is drawn for {self.frame_size[0]}x{self.frame_size[1]} "
                f"frames but the source gives {width}x{height}"
            )

    @property
    def seat_ids(self) -> tuple[str, ...]:
        return tuple(seat.seat_id for seat in self.seats)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def parse_seat_map(obj: object, origin: str = "seat map") -> SeatMap:
    """Validate a decoded seat-map JSON object."""
    try:
        camera_id = obj["camera_id"]
        width, height = (int(v) for v in obj["frame_size"])
        seats = tuple(
            SeatRegion(str(seat["seat_id"]), tuple(float(v) for v in seat["region"])) for seat in obj["seats"]
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise SeatMapError(f"{origin}: expected camera_id, frame_size [w, h] and seats [{{seat_id, region}}]: {exc!r}") from None
    if not isinstance(camera_id, str) or not camera_id:
        raise SeatMapError(f"{origin}: camera_id must be a non-empty string")
    if width <= 0 or height <= 0:
        raise SeatMapError(f"{origin}: frame_size must be positive, got {width}x{height}")
    if not seats:
        raise SeatMapError(f"{origin}: no seats")
    ids = [seat.seat_id for seat in seats]
    if len(set(ids)) != len(ids) or not all(ids):
        raise SeatMapError(f"{origin}: seat ids must be non-empty and unique, got {ids}")
    for i, seat in enumerate(seats):
        if len(seat.region) != 4:
            raise SeatMapError(f"{origin}: seat {seat.seat_id!r} region must be [x, y, w, h], got {list(seat.region)}")
        x, y, w, h = seat.region
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise SeatMapError(f"{origin}: seat {seat.seat_id!r} region {seat.region} is empty or outside the {width}x{height} frame")
        for other in seats[:i]:
            if _overlap(seat.region, other.region):
                raise SeatMapError(f"{origin}: seats {other.seat_id!r} and {seat.seat_id!r} overlap")
    return SeatMap(camera_id, (width, height), seats)


def load_seat_map(path: Path | str) -> SeatMap:
    """Read and validate a seat-map JSON file (SeatMapError on any problem)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeatMapError(f"cannot read seat map {path}: {exc}") from None
    return parse_seat_map(obj, origin=str(path))
