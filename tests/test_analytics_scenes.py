"""Scene timelines: CSV and SRT parsing, validation, storage as revisions (both stores) and `import-scenes`."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from moviemotion.analytics.scenes import (
    Scene,
    SceneFileError,
    current_scenes,
    parse_timecode,
    read_scene_file,
    scenes_from_cues,
    store_scenes,
)
from moviemotion.cli import main
from tests.data import known_screening as known


def cli(target, *args):
    result = CliRunner().invoke(main, ["--state-dir", str(target.settings.state_dir), "--clickhouse", target.settings.clickhouse_url, *args])
    return result


def test_timecodes():
    assert parse_timecode("01:02:03.250") == 3723.25
    assert parse_timecode("02:03,5") == 123.5
    assert parse_timecode(" 60.5 ") == 60.5
    for bad in ("1:61:00", "abc", "-3", "00:00:60"):
        with pytest.raises(ValueError, match="bad timecode"):
            parse_timecode(bad)


def test_scene_csv():
    scenes = read_scene_file(known.SCENES_CSV)
    assert [(s.scene_no, s.start_s, s.end_s, s.title) for s in scenes] == [
        (1, 0.0, 30.0, "Opening"), (2, 30.0, 60.5, "The Joke"), (3, 60.5, 90.0, "The Twist"), (4, 90.0, 118.0, "Farewell")
    ]
    assert scenes[1].description == "The waiter drops the cake"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start,end\n0,1\n", "header lacks title"),
        ("start,end,title\n0,1,a\n0:00:30,0:00:20,b\n", ":3: .*|end 20.0 is not after start 30.0"),
        ("start,end,title\n0,10,a\n5,20,b\n", "scene 2 starts at 5.0 before scene 1 ends at 10.0"),
        ("scene_no,start,end,title\n1,0,1,a\n1,1,2,b\n", "scene_no used twice"),
        ("start,end,title\n0,soon,a\n", "bad timecode 'soon'"),
        ("start,end,title\n", "no scenes"),
    ],
)
def test_scene_csv_errors(tmp_path, text, message):
    path = tmp_path / "scenes.csv"
    path.write_text(text)
    with pytest.raises(SceneFileError, match=message):
        read_scene_file(path)


def test_srt_groups_cues_by_silence():
    scenes = read_scene_file(known.SUBTITLES_SRT)
    assert scenes == [
        Scene(1, 0.0, 20.25, "Scene 1", "Where are we going?"),
        Scene(2, 20.25, 60.0, "Scene 2", "Look out!"),
        Scene(3, 60.0, 63.0, "Scene 3", "The end."),
    ]
    assert [s.start_s for s in read_scene_file(known.SUBTITLES_SRT, gap_s=1.0)] == [0.0, 20.25, 23.0, 60.0]
    with pytest.raises(ValueError, match="gap_s"):
        scenes_from_cues([(0.0, 1.0, "x")], gap_s=0)


def test_scene_file_errors(tmp_path):
    with pytest.raises(SceneFileError, match="no such file"):
        read_scene_file(tmp_path / "missing.csv")
    (tmp_path / "film.txt").write_text("x")
    with pytest.raises(SceneFileError, match="unknown scene file type"):
        read_scene_file(tmp_path / "film.txt")
    (tmp_path / "empty.srt").write_text("hello\n")
    with pytest.raises(SceneFileError, match="no subtitle cues"):
        read_scene_file(tmp_path / "empty.srt")


def test_reimport_replaces_timeline(clickhouse):
    store_scenes(clickhouse, "film-x", read_scene_file(known.SCENES_CSV), "known_scenes.csv")
    assert len(current_scenes(clickhouse, "film-x")) == 4
    store_scenes(clickhouse, "film-x", read_scene_file(known.SUBTITLES_SRT), "known_subtitles.srt")
    assert current_scenes(clickhouse, "film-x") == read_scene_file(known.SUBTITLES_SRT)
    assert clickhouse.query("SELECT count() FROM scenes WHERE film_id = 'film-x'")[0][0] == 7  # old revision kept, unread


def test_scene_seconds_follow_half_open_ranges(clickhouse):
    known.load(clickhouse)
    rows = clickhouse.query(
        "SELECT scene_no, min(movie_second), max(movie_second), count() FROM screening_scene_seconds "
        "WHERE screening_id = %(s)s GROUP BY scene_no ORDER BY scene_no",
        {"s": known.SCREENING_A},
    )
    # [0,30) [30,60.5) [60.5,90) [90,118): second 60 is in The Joke, 61 in The Twist
    assert rows == [(1, 0, 29, 30), (2, 30, 60, 31), (3, 61, 89, 29), (4, 90, 117, 28)]


def test_import_scenes_command(clickhouse_target):
    result = cli(clickhouse_target, "import-scenes", "--film", "film-y", str(known.SCENES_CSV))
    assert result.exit_code == 0, result.output
    assert "imported 4 scenes for film-y" in result.output
    assert [s.title for s in current_scenes(clickhouse_target.client, "film-y")] == ["Opening", "The Joke", "The Twist", "Farewell"]
    bad = cli(clickhouse_target, "import-scenes", "--film", "film-y", str(known.DATA_DIR / "missing.csv"))
    assert bad.exit_code == 1 and "no such file" in bad.output
