"""Backend selection: auto picks TensorRT only where it can run, fallback logged once; the library reads no
environment (the settings do, and are passed in)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engines.select import EngineUnavailable, load_engine, resolve_backend
from engines.tensorrt_engine import unavailable_reason

REPO = Path(__file__).resolve().parents[1]
needs_no_tensorrt = pytest.mark.skipif(unavailable_reason() is None, reason="TensorRT runs here: no fallback to see")


def test_auto_picks_what_this_machine_can_run(shipped_model, monkeypatch):
    monkeypatch.delenv("MOVIEMOTION_ENGINE", raising=False)
    expected = "tensorrt" if unavailable_reason() is None else "onnxruntime"
    engine = load_engine("auto", shipped_model)
    assert engine.backend == expected
    assert engine.model_version


@needs_no_tensorrt
def test_fallback_reason_is_logged_once_per_process(shipped_model):
    script = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s')\n"
        "from engines.select import load_engine\n"
        f"engines = [load_engine('auto', {str(shipped_model)!r}) for _ in range(3)]\n"
        "print('backends', *[e.backend for e in engines])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    fallbacks = [line for line in lines if line.startswith("engines.select") and "falling back to ONNX Runtime" in line]
    assert len(fallbacks) == 1, lines
    assert unavailable_reason() in fallbacks[0]
    assert "backends onnxruntime onnxruntime onnxruntime" in lines


def test_the_environment_reaches_the_engine_only_through_the_settings(shipped_model, monkeypatch):
    """MOVIEMOTION_ENGINE / MOVIEMOTION_MODEL_PRECISION are settings; the engines package ignores them."""
    from schemas.settings import load_settings

    monkeypatch.setenv("MOVIEMOTION_ENGINE", "tensorrt")
    monkeypatch.setenv("MOVIEMOTION_MODEL_PRECISION", "fp32")
    assert resolve_backend("auto") == ("tensorrt" if unavailable_reason() is None else "onnxruntime")
    assert resolve_backend("onnxruntime") == "onnxruntime"
    assert load_engine("onnxruntime").model_version.endswith("-int8")  # the library default, not the environment
    settings = load_settings()
    assert (settings.engine_backend, settings.model_precision) == ("tensorrt", "fp32")


def test_unknown_backend_names_are_refused(monkeypatch):
    monkeypatch.delenv("MOVIEMOTION_ENGINE", raising=False)
    with pytest.raises(ValueError, match="unknown engine backend 'cuda-magic'"):
        resolve_backend("cuda-magic")


@needs_no_tensorrt
def test_explicit_tensorrt_without_it_is_a_clear_error(shipped_model, monkeypatch):
    monkeypatch.delenv("MOVIEMOTION_ENGINE", raising=False)
    with pytest.raises(EngineUnavailable, match="TensorRT backend requested but"):
        load_engine("tensorrt", shipped_model)


def test_precision_picks_the_shipped_file(monkeypatch):
    """No file named: the precision (default int8) picks the INT8 or the float file on ONNX Runtime."""
    from engines.model_files import DEFAULT_MODEL, INT8_MODEL
    from engines.select import shipped_model

    monkeypatch.delenv("MOVIEMOTION_MODEL_PRECISION", raising=False)
    assert (shipped_model("int8"), shipped_model("fp32"), shipped_model("fp16")) == (INT8_MODEL, DEFAULT_MODEL, DEFAULT_MODEL)
    float_version = load_engine("onnxruntime", precision="fp32").model_version
    assert load_engine("onnxruntime").model_version == float_version + "-int8"  # the default is int8
    assert load_engine("onnxruntime", precision="int8").model_version == float_version + "-int8"  # explicit wins
    # A named file runs as it is, whatever the precision setting.
    assert load_engine("onnxruntime", INT8_MODEL).model_version == float_version + "-int8"


def test_unknown_precision_is_refused(monkeypatch):
    from engines.select import resolve_precision

    with pytest.raises(ValueError, match=r"unknown model precision 'int4'"):
        load_engine("onnxruntime", precision="int4")
    with pytest.raises(ValueError, match="unknown model precision 'bf16'"):
        resolve_precision("bf16")


def test_worker_engine_follows_the_precision_setting(monkeypatch):
    """The worker's engine (two single-thread lanes) runs the file its settings' precision names; the worker command
    applies `--precision` to the settings it builds the app with; a child process gets it through `settings_env`."""
    from click.testing import CliRunner

    from moviemotion.commands.process import worker
    from schemas.settings import load_settings, settings_env
    from stream_processors.scoring import load_scoring_engine

    monkeypatch.delenv("MOVIEMOTION_MODEL_PRECISION", raising=False)
    monkeypatch.setenv("MOVIEMOTION_ENGINE", "onnxruntime")
    settings = load_settings()
    assert settings.model_precision == "int8"
    versions = {p: load_scoring_engine(settings.with_overrides(model_precision=p)).model_version for p in ("int8", "fp32")}
    assert versions["int8"] == versions["fp32"] + "-int8"
    assert settings_env(settings.with_overrides(model_precision="fp32"))["MOVIEMOTION_MODEL_PRECISION"] == "fp32"
    monkeypatch.setenv("MOVIEMOTION_MODEL_PRECISION", "fp32")
    assert load_settings().model_precision == "fp32"
    result = CliRunner().invoke(worker, ["--precision", "int4"], obj=settings)
    assert result.exit_code == 2 and "'int4' is not one of 'fp32', 'fp16', 'int8'" in result.output
