"""The HTTP scoring service, posting real images (FER+ faces upscaled onto a background) and crops."""
from __future__ import annotations

import base64
import io
import json
import re
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from engines.emotions import EMOTIONS
from engines.face_detector import FaceDetector
from engines.preprocessing import align_face
from engines.serve import ScoringServer, ScoringService

TILE, FACE = 240, 192


@pytest.fixture(scope="module")
def server(onnx_engine):
    srv = ScoringServer(ScoringService(onnx_engine), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def request(server, path, body=None, content_type="application/octet-stream"):
    """(status, JSON reply) of one request."""
    req = urllib.request.Request(server.url + path, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def upscaled(face: np.ndarray) -> np.ndarray:
    return cv2.resize(face, (FACE, FACE), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def scene(public_test_faces):
    """A 3-face BGR image: PublicTest faces that YuNet finds on their own, side by side on grey."""
    detector = FaceDetector()
    picked = []
    for face in public_test_faces.pixels[:200]:
        alone = np.full((TILE, TILE), 90, np.uint8)
        alone[24 : 24 + FACE, 24 : 24 + FACE] = upscaled(face)
        if len(detector.detect(alone)) == 1:
            picked.append(face)
        if len(picked) == 3:
            break
    canvas = np.full((TILE + 80, TILE * 3), 90, np.uint8)
    for i, face in enumerate(picked):
        canvas[64 : 64 + FACE, 24 + TILE * i : 24 + TILE * i + FACE] = upscaled(face)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def test_health_and_model_routes(server, onnx_engine):
    assert request(server, "/healthz") == (200, {"status": "ok"})
    status, info = request(server, "/v1/model")
    assert status == 200
    assert info["classes"] == list(EMOTIONS)
    assert info["backend"] == onnx_engine.backend
    assert info["model_version"] == onnx_engine.model_version
    assert info["input_size"] == onnx_engine.metadata.input_size


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_detect_and_score_finds_every_face(server, scene, onnx_engine, ext):
    status, reply = request(server, "/v1/faces:detect-and-score", encode(scene, ext), f"image/{ext[1:]}")
    assert status == 200, reply
    assert reply["image_size"] == [scene.shape[1], scene.shape[0]]
    faces = sorted(reply["faces"], key=lambda f: f["box"][0])
    assert len(faces) == 3
    for i, face in enumerate(faces):
        x, y, w, h = face["box"]
        assert TILE * i <= x + w / 2 < TILE * (i + 1)
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
        assert list(face["emotions"]) == list(EMOTIONS)
        assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=1e-5)
        assert face["dominant"] == max(face["emotions"], key=face["emotions"].get)
        assert 0 < face["detector_score"] <= 1
    if ext == ".png":  # lossless: the service's scores are the engine's on the aligned crops
        crops = np.stack([align_face(scene, np.array(f["landmarks"]), 48) for f in faces])
        expected = onnx_engine.infer(crops)
        got = np.array([[f["emotions"][e] for e in EMOTIONS] for f in faces])
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_image_without_faces_gives_an_empty_list(server):
    blank = np.full((240, 320, 3), 128, np.uint8)
    status, reply = request(server, "/v1/faces:detect-and-score", encode(blank, ".png"), "image/png")
    assert status == 200 and reply["faces"] == []


def test_npy_and_json_crops_score_like_the_engine(server, onnx_engine, public_test_faces):
    crops = public_test_faces.pixels[:20]
    expected = onnx_engine.infer(crops)
    buf = io.BytesIO()
    np.save(buf, crops)
    status, reply = request(server, "/v1/crops:score", buf.getvalue(), "application/x-npy")
    assert status == 200, reply
    got = np.array([[c["emotions"][e] for e in EMOTIONS] for c in reply["crops"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [c["dominant"] for c in reply["crops"]] == [EMOTIONS[i] for i in expected.argmax(1)]

    pngs = [base64.b64encode(encode(c, ".png")).decode() for c in crops]
    status, reply = request(server, "/v1/crops:score", json.dumps({"crops": pngs}).encode(), "application/json")
    assert status == 200, reply
    got = np.array([[c["emotions"][e] for e in EMOTIONS] for c in reply["crops"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize(
    "path, body, content_type, status, message",
    [
        ("/v1/faces:detect-and-score", b"\xff\xd8 definitely not a jpeg", "image/jpeg", 400, "not a decodable"),
        ("/v1/faces:detect-and-score", b"", "image/png", 400, "empty body"),
        ("/v1/crops:score", npy(np.zeros((2, 48, 48), np.float32)), "application/x-npy", 400, "dtype must be uint8"),
        ("/v1/crops:score", npy(np.zeros((2, 32, 32), np.uint8)), "application/x-npy", 400, r"shape must be \(N, 48, 48\)"),
        ("/v1/crops:score", npy(np.zeros((0, 48, 48), np.uint8)), "application/x-npy", 400, "empty"),
        ("/v1/crops:score", b"garbage", "application/x-npy", 400, "not a .npy array"),
        ("/v1/crops:score", b'{"crops": []}', "application/json", 400, "non-empty list"),
        ("/v1/crops:score", b'{"crops": ["***"]}', "application/json", 400, "crop 0 is not valid base64"),
        ("/v1/crops:score", b"{not json", "application/json", 400, "JSON body must be"),
        ("/v1/crops:score", b"x", "text/plain", 415, "unsupported Content-Type"),
        ("/v1/nothing", b"x", "image/png", 404, "no route POST /v1/nothing"),
    ],
)
def test_bad_requests_get_a_clear_error(server, path, body, content_type, status, message):
    got_status, reply = request(server, path, body, content_type)
    assert got_status == status
    assert re.search(message, reply["error"]), reply["error"]


def test_service_keeps_serving_after_bad_requests(server):
    for _ in range(3):
        assert request(server, "/v1/crops:score", b"junk", "application/x-npy")[0] == 400
    assert request(server, "/healthz")[0] == 200
    assert request(server, "/unknown")[0] == 404


def test_serve_command_refuses_a_bad_model_file(tmp_path):
    from click.testing import CliRunner

    from moviemotion.cli import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "engine", "serve", "--model", str(bad), "--port", "0"])
    assert result.exit_code == 1
    assert "bad.onnx" in result.output and "Error" in result.output
