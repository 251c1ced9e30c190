"""Loads the fixture plugins under tests/fixtures/ (each starts a real part of the stack)."""
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytest_plugins = [
    name
    for name in ("tests.fixtures.kafka", "tests.fixtures.clickhouse", "tests.fixtures.sample", "tests.fixtures.engine_faces",
                 "tests.fixtures.yale")
    if importlib.util.find_spec(name) is not None
]
