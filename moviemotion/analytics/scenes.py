"""A film's scene timeline: read it from a scene CSV or (fallback) an SRT subtitle file, store it in `scenes`.

CSV: a header row with `start`, `end`, `title` and optionally `scene_no` and `description` columns; times are
`HH:MM:SS[.mmm]`, `MM:SS[.mmm]` or plain seconds. Without `scene_no` the rows are numbered 1, 2, ... in order.
SRT: cues are grouped into scenes by silence: a gap of at least `gap_s` seconds between one cue's end and the
next cue's start opens a new scene. Scenes tile the film: the first starts at 0, each ends where the next
begins, the last ends with its last cue. Titles are "Scene N", descriptions the scene's first line of dialogue.
Scenes must not overlap; each import is a new revision (see schemas/clickhouse/0100_screenings_scenes.sql).
"""
from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path

from infra.clickhouse.client import ClickHouseClient

DEFAULT_GAP_S = 5.0
_TIMECODE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
_SRT_TIMES = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")


class SceneFileError(ValueError):
    """A scene CSV or SRT file that cannot be read as a timeline (the message names the file and line)."""


@dataclass(frozen=True)
class Scene:
    scene_no: int
    start_s: float
    end_s: float
    title: str
    description: str = ""


def parse_timecode(text: str) -> float:
    """'01:02:03.5' / '02:03,5' / '123.5' -> seconds. Raises ValueError for anything else."""
    text = text.strip()
    match = _TIMECODE.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if int(minutes) >= 60 or float(seconds.replace(",", ".")) >= 60:
            raise ValueError(f"bad timecode {text!r}: minutes and seconds must be < 60")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"bad timecode {text!r}: expected HH:MM:SS[.mmm] or seconds") from None
    if value < 0:
        raise ValueError(f"bad timecode {text!r}: negative")
    return value


def validate(scenes: list[Scene], origin: str) -> list[Scene]:
    """Scenes sorted by start; raises SceneFileError on empty, inverted, duplicate-numbered or overlapping scenes."""
    if not scenes:
        raise SceneFileError(f"{origin}: no scenes")
    numbers = [scene.scene_no for scene in scenes]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise SceneFileError(f"{origin}: scene_no used twice: {duplicates}")
    ordered = sorted(scenes, key=lambda scene: scene.start_s)
    for scene in ordered:
        if scene.scene_no < 1:
            raise SceneFileError(f"{origin}: scene {scene.scene_no}: scene_no must be >= 1")
        if not scene.end_s > scene.start_s:
            raise SceneFileError(f"{origin}: scene {scene.scene_no}: end {scene.end_s} is not after start {scene.start_s}")
    for before, after in zip(ordered, ordered[1:]):
        if after.start_s < before.end_s:
            raise SceneFileError(f"{origin}: scene {after.scene_no} starts at {after.start_s} before scene {before.scene_no} ends at {before.end_s}")
    return ordered


def read_scene_csv(path: Path) -> list[Scene]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {name.strip().lower() for name in reader.fieldnames or ()}
        missing = {"start", "end", "title"} - header
        if missing:
            raise SceneFileError(f"{path}: header lacks {', '.join(sorted(missing))} (has: {', '.join(sorted(header)) or 'nothing'})")
        scenes = []
        for number, raw in enumerate(reader, 1):
            row = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
            try:
                scene_no = int(row["scene_no"]) if row.get("scene_no") else number
                scenes.append(Scene(scene_no, parse_timecode(row["start"]), parse_timecode(row["end"]), row["title"], row.get("description", "")))
            except ValueError as exc:
                raise SceneFileError(f"{path}:{reader.line_num}: {exc}") from None
    return validate(scenes, str(path))


def read_srt_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start_s, end_s, text) of every cue of an SRT file, in file order."""
    cues = []
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    for index, line in enumerate(lines):
        match = _SRT_TIMES.match(line)
        if not match:
            continue
        try:
            start, end = parse_timecode(match.group(1)), parse_timecode(match.group(2))
        except ValueError as exc:
            raise SceneFileError(f"{path}:{index + 1}: {exc}") from None
        text_lines = []
        for text in lines[index + 1 :]:
            if not text.strip():
                break
            text_lines.append(text.strip())
        cues.append((start, end, " ".join(text_lines)))
    if not cues:
        raise SceneFileError(f"{path}: no subtitle cues (lines like '00:00:01,000 --> 00:00:02,000')")
    return cues


def scenes_from_cues(cues: list[tuple[float, float, str]], gap_s: float = DEFAULT_GAP_S) -> list[Scene]:
    """Group cues into scenes at silences of at least gap_s seconds (see the module docstring)."""
    if gap_s <= 0:
        raise ValueError(f"gap_s must be > 0, got {gap_s}")
    ordered = sorted(cues)
    groups: list[list[tuple[float, float, str]]] = [[ordered[0]]]
    for cue in ordered[1:]:
        if cue[0] - max(end for _, end, _ in groups[-1]) >= gap_s:
            groups.append([cue])
        else:
            groups[-1].append(cue)
    starts = [0.0] + [group[0][0] for group in groups[1:]]
    ends = starts[1:] + [max(end for _, end, _ in groups[-1])]
    return [Scene(n, start, end, f"Scene {n}", group[0][2]) for n, (start, end, group) in enumerate(zip(starts, ends, groups), 1)]


def read_scene_file(path: Path, gap_s: float = DEFAULT_GAP_S) -> list[Scene]:
    """Scenes from a .csv scene list or a .srt subtitle file (by extension)."""
    path = Path(path)
    if not path.is_file():
        raise SceneFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_scene_csv(path)
    if suffix == ".srt":
        return validate(scenes_from_cues(read_srt_cues(path), gap_s), str(path))
    raise SceneFileError(f"{path}: unknown scene file type {suffix!r} (expected .csv or .srt)")


def store_scenes(client: ClickHouseClient, film_id: str, scenes: list[Scene], source: str) -> int:
    """Insert the scenes as the film's newest revision (older revisions stay, unread); return the revision."""
    if not film_id:
        raise ValueError("film_id must not be empty")
    revision = time.time_ns() // 1000
    client.insert(
        "scenes",
        [
            {"film_id": film_id, "revision": revision, "scene_no": s.scene_no, "start_s": s.start_s, "end_s": s.end_s, "title": s.title, "description": s.description, "source": source}
            for s in validate(scenes, source)
        ],
    )
    return revision


def current_scenes(client: ClickHouseClient, film_id: str) -> list[Scene]:
    """The film's scenes of its newest revision, in time order."""
    rows = client.query(
        "SELECT scene_no, start_s, end_s, title, description FROM current_scenes WHERE film_id = %(film)s ORDER BY start_s",
        {"film": film_id},
    )
    return [Scene(int(n), float(start), float(end), title, description) for n, start, end, title, description in rows]
