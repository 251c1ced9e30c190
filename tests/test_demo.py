"""`moviemotion demo` end to end, as a newcomer runs it: a separate process on a private state dir and free ports
(its own Kafka broker and embedded store), then `moviemotion report` as the README suggests next."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from infra.clickhouse.client import connect
from infra.ports import free_ports
from moviemotion.analytics.scenes import read_scene_csv
from moviemotion.cli import OWN_PACKAGES
from moviemotion.commands.demo import SAMPLE_SCENES_PATH
from moviemotion.ground_truth import agreement, read_segments, score_segments
from schemas.settings import load_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SCREENING = "demo-e2e"


def moviemotion(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moviemotion", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def demo_stack(tmp_path):
    """CLI args + environment of a private stack; `down` afterwards, whatever happened."""
    port, controller_port = free_ports(2)
    env = {**os.environ, "MOVIEMOTION_KAFKA_CONTROLLER_PORT": str(controller_port), "MOVIEMOTION_CLICKHOUSE_URL": ""}
    args = ["--state-dir", str(tmp_path / "state"), "--bootstrap", f"127.0.0.1:{port}"]
    yield args, env
    moviemotion([*args, "down"], env, timeout=120)


def stored_agreement(state_dir: Path, ground_truth: Path, column: str, truth_column: str) -> float:
    """The test's own reading of the store: majority stored label per scripted segment vs the script."""
    with connect(load_settings(state_dir=state_dir, clickhouse_url="")) as client:
        labels = {(seat, second): label for seat, second, label in client.query(
            f"SELECT seat_id, movie_second, {column} FROM viewer_seconds WHERE screening_id = %(s)s AND visible = 1",
            {"s": SCREENING})}
    return agreement(score_segments(read_segments(ground_truth, truth_column), labels))


def test_demo_end_to_end(demo_stack, tmp_path):
    args, env = demo_stack
    run = moviemotion([*args, "demo", "--screening", SCREENING, "--timeout", "900"], env, timeout=1500)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    lines = run.stdout.splitlines()
    print(run.stdout)

    # registered, with the sample film's committed scene list
    assert f"registered screening {SCREENING} of sample-film with 8 scenes from scenes.csv" in lines
    summary = next(line for line in lines if line.startswith(f"screening {SCREENING}: "))
    assert re.fullmatch(rf"screening {SCREENING}: \d+ face frames scored, 6 viewers, \d+ per-second events \(\d+ visible\)", summary)

    # both labels' agreement with the script, as the test reads the store itself
    state_dir = tmp_path / "state"
    truth = state_dir / "sample" / "ground_truth.csv"
    for label, column, truth_column in (("reaction (above each viewer's resting face)", "reaction", "reaction"), ("dominant (raw label)", "dominant", "emotion")):
        line = next(line for line in lines if line.strip().startswith(label))
        match = re.search(r"(\d+)% of (\d+) segments$", line)
        assert match, line
        assert int(match.group(1)) == round(100 * stored_agreement(state_dir, truth, column, truth_column))
        assert int(match.group(2)) == len(read_segments(truth, truth_column))
    assert re.search(r"^engagement: \d+% of viewers reacting per second on average; \d of 6 viewers reacted at some point$", run.stdout, re.M)
    moments = lines[lines.index("strongest moments (share of measured viewers showing the reaction; the strongest per reaction and scene):") + 1:]
    titles = {scene.title for scene in read_scene_csv(SAMPLE_SCENES_PATH)}
    shown = [line for line in moments[:5] if re.match(r"^  \d\d:\d\d  \w+ +\d+% of \d  ", line)]
    assert len(shown) == 5 and all(line.split("  ")[-1] in titles for line in shown)
    groups = [(line.split()[1], line.split("  ")[-1]) for line in shown]
    assert len(set(groups)) == 5  # one moment per reaction and scene, not five seconds of the same laugh

    # the report, where the demo says it is
    png = Path(next(line for line in lines if line.startswith("report: ")).split(": ", 1)[1])
    assert png == state_dir / "reports" / SCREENING / "timeline.png"
    assert matplotlib.image.imread(png).shape[1] >= 1400
    for name in ("timeline.csv", "scenes.csv", "moments.csv", "metrics.csv", "norms.csv"):
        assert (png.parent / name).is_file(), name
    with open(png.parent / "scenes.csv", newline="") as handle:
        assert [row["title"] for row in csv.DictReader(handle)] == [s.title for s in read_scene_csv(SAMPLE_SCENES_PATH)]

    # the README's next step works now that the demo registered its screening
    again = moviemotion([*args, "report", "--screening", SCREENING, "--out", str(tmp_path / "report")], env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "report" / "timeline.png").is_file()

    # quiet: progress bars and the product's own lines, no library's INFO or DEBUG logging
    loggers = re.findall(r"\b(?:INFO|DEBUG) ([\w.]+): ", output)
    assert not [name for name in loggers if name.partition(".")[0] not in OWN_PACKAGES], loggers


def test_strongest_moments_read_reactions(clickhouse):
    """On the known screening: shares of measured viewers by reaction, one moment per reaction and scene. By hand:
    4 of 6 surprised at 70 (a1-a4), 3 of the 5 left at 110 (a6 walked out at 100), 3 of 6 laughing at 36, 2 of 6
    surprised at 10, then a1's laugh at 100 (1 of 5) before a6's sadness (1 of 6). a3's resting face, 'sadness' to
    the raw label, is no reaction and never a moment."""
    from moviemotion.commands.demo import strongest_moments
    from tests.data import known_screening as known

    known.load(clickhouse)
    scenes = read_scene_csv(known.SCENES_CSV)
    got = strongest_moments(clickhouse, known.SCREENING_A, scenes)
    assert [(second, emotion, measured) for second, emotion, _share, measured in got] == [
        (70, "surprise", 6), (110, "surprise", 5), (36, "happiness", 6), (10, "surprise", 6), (100, "happiness", 5)]
    assert [share for _s, _e, share, _m in got] == pytest.approx([4 / 6, 3 / 5, 3 / 6, 2 / 6, 1 / 5])
