"""The HTTP scoring service, posting real images (FER+ faces upscaled onto a background) and crops."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.emotions import EMOTIONS
from engines.face_detector import FaceDetector
from engines.preprocessing import align_face
from engines.image_header import HeaderError, ImageHeader, read_image_header
from engines.serve import ScoringServer, ScoringService, ServeLimits

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
        ("/v1/faces:detect-and-score", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x00"
         b"\x00\x00\x00broken", "image/png", 400, "body is not a decodable PNG image"),
        ("/v1/crops:score", b'{"crops": ["anVuaw=="]}', "application/json", 400, r"crop 0 is not a decodable image \(not a"),
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


# --- Hostile input: pixel budget before decoding, bounded connections/scoring, request deadline ---------


def black_png(width: int, height: int, band: int = 100) -> bytes:
    """A valid all-black 8-bit gray PNG of any size, built without holding its pixels: one band of zero rows
    is deflated once (ending in a full flush, so it references nothing before it) and repeated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def deflated_zeros(n: int) -> bytes:
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        return z.compress(bytes(n)) + z.flush(zlib.Z_FULL_FLUSH)

    row = width + 1  # filter byte + pixels
    full, rest = divmod(height, band)
    stream = deflated_zeros(row * band) * full + (deflated_zeros(row * rest) if rest else b"") + b"\x03\x00"
    adler = (row * height % 65521) << 16 | 1  # adler32 of zeros: A = 1, B = length
    idat = b"\x78\xda" + stream + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0, a COM and a baseline SOF0 declaring width x height: what the header check reads."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    com = b"\xff\xfe" + struct.pack(">H", 7) + b"hello"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + com + sof + b"\xff\xd9"


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 3 * width * abs(height), 0, 0, 54) + info


def webp_vp8x_header(width: int, height: int) -> bytes:
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def test_black_png_is_a_valid_png():
    for width, height in [(300, 200), (301, 257)]:
        image = cv2.imdecode(np.frombuffer(black_png(width, height), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (height, width, 3) and image.max() == 0


@pytest.mark.parametrize("height, width", [(1, 1), (37, 53), (240, 320), (1000, 17)])
@pytest.mark.parametrize("ext, params, chunk", [
    (".png", [], None), (".jpg", [], None), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], None), (".bmp", [], None),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], b"VP8 "), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], b"VP8L"),
])
@pytest.mark.parametrize("channels", [3, 4])
def test_header_size_is_the_size_opencv_decodes(height, width, ext, params, chunk, channels):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, channels), np.uint8)
    data = encode_with(image, ext, params)
    if chunk is not None and channels == 4 and chunk == b"VP8 ":
        chunk = b"VP8X"  # lossy with alpha: the extended format
    if chunk is not None:
        assert data[12:16] == chunk
    header = read_image_header(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (header.width, header.height) == (decoded.shape[1], decoded.shape[0]) == (width, height)


def test_header_readers_agree_with_the_hand_made_headers():
    assert read_image_header(black_png(30000, 30000)) == ImageHeader("PNG", 30000, 30000)
    assert read_image_header(jpeg_header(6000, 7000)) == ImageHeader("JPEG", 6000, 7000)
    assert read_image_header(bmp_header(6000, -7000)) == ImageHeader("BMP", 6000, 7000)  # top-down
    assert read_image_header(webp_vp8x_header(6000, 7000)) == ImageHeader("WebP", 6000, 7000)
    for truncated in (black_png(10, 10)[:20], jpeg_header(10, 10)[:30], bmp_header(10, 10)[:20], webp_vp8x_header(9, 9)[:26]):
        with pytest.raises(HeaderError, match="truncated"):
            read_image_header(truncated)


def encode_with(image: np.ndarray, ext: str, params=()) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext", [".tiff", ".jp2", ".pgm", ".ppm", ".pam", ".hdr", ".ras", ".pfm", ".gif", ".avif"])
def test_formats_opencv_could_decode_but_the_header_check_cannot_size_are_refused(server, ext):
    image = np.full((32, 48, 3), 90, np.uint8)
    if ext in (".hdr", ".pfm"):
        image = image.astype(np.float32) / 255
    elif ext == ".pgm":
        image = image[:, :, 0]
    data = encode_with(image, ext)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV would decode it
    status, reply = request(server, "/v1/faces:detect-and-score", data, "application/octet-stream")
    assert status == 415, reply
    assert re.fullmatch(r"body is a [\w /]+ image, not a PNG, JPEG, BMP or WebP image", reply["error"]), reply


@pytest.mark.parametrize("make, name", [
    (lambda: jpeg_header(6000, 6000), "JPEG"), (lambda: bmp_header(6000, -6000), "BMP"),
    (lambda: webp_vp8x_header(6000, 6000), "WebP"), (lambda: black_png(6000, 6000), "PNG"),
])
def test_images_over_the_pixel_budget_are_refused_before_decoding(server, make, name):
    # 36 MP > the default 25 MP budget; small enough that a regression decoding it would not hurt the machine
    status, reply = request(server, "/v1/faces:detect-and-score", make(), "image/png")
    assert status == 413, reply
    assert "6000x6000 = 36.0 MP, over the 25.0 MP pixel budget" in reply["error"]
    assert request(server, "/healthz")[0] == 200


def test_json_crops_count_against_the_pixel_budget(server):
    big = base64.b64encode(black_png(1100, 1000)).decode()  # 1.1 MP: over MAX_CROP_PIXELS
    status, reply = request(server, "/v1/crops:score", json.dumps({"crops": [big]}).encode(), "application/json")
    assert status == 413 and "crop 0 is 1100x1000" in reply["error"], reply
    many = [base64.b64encode(black_png(1000, 1000)).decode()] * 26  # 26 x 1 MP > 25 MP together
    status, reply = request(server, "/v1/crops:score", json.dumps({"crops": many}).encode(), "application/json")
    assert status == 413 and "crops 0..25 hold 26.0 MP" in reply["error"], reply
    status, reply = request(server, "/v1/crops:score", json.dumps({"crops": many[:3]}).encode(), "application/json")
    assert status == 200 and len(reply["crops"]) == 3, reply


def test_npy_header_promising_more_than_the_body_holds_is_refused(server):
    forged = io.BytesIO()  # 2.3 TB declared, 4608 bytes sent: np.load would allocate before it noticed
    np.lib.format.write_array_header_1_0(forged, {"descr": "|u1", "fortran_order": False, "shape": (999_999_999, 48, 48)})
    status, reply = request(server, "/v1/crops:score", forged.getvalue() + bytes(2 * 48 * 48), "application/x-npy")
    assert status == 400 and "declares 2303999997696 bytes of data, the body holds 4608" in reply["error"], reply


@pytest.fixture(scope="module")
def small_detect_server(onnx_engine):
    """A server that detects on images downscaled to 360 px (the test scene is 720 px wide)."""
    limits = ServeLimits(detect_max_side=360)
    srv = ScoringServer(ScoringService(onnx_engine, detect_max_side=360), "127.0.0.1", 0, limits)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_large_images_are_downscaled_for_detection_and_boxes_come_back_in_full_size_pixels(
        server, small_detect_server, scene):
    body = encode(scene, ".png")
    _, full = request(server, "/v1/faces:detect-and-score", body, "image/png")
    status, small = request(small_detect_server, "/v1/faces:detect-and-score", body, "image/png")
    assert status == 200, small
    assert small["image_size"] == full["image_size"] == [scene.shape[1], scene.shape[0]]
    full_faces, small_faces = (sorted(r["faces"], key=lambda f: f["box"][0]) for r in (full, small))
    assert len(small_faces) == len(full_faces) == 3
    height, width = scene.shape[:2]
    found = sorted(FaceDetector().detect(cv2.resize(scene, (width // 2, height // 2), interpolation=cv2.INTER_AREA)),
                   key=lambda d: d.bbox[0])
    for a, b, d in zip(full_faces, small_faces, found):
        np.testing.assert_allclose(b["box"], np.array(d.bbox) * 2, rtol=1e-4)  # the half-size detection, x2
        np.testing.assert_allclose(b["landmarks"], d.landmarks * 2, rtol=1e-4)
        centre = lambda f: (f["box"][0] + f["box"][2] / 2, f["box"][1] + f["box"][3] / 2)  # noqa: E731
        np.testing.assert_allclose(centre(b), centre(a), atol=0.12 * a["box"][2])  # the same face as at full size
        np.testing.assert_allclose(b["landmarks"], a["landmarks"], atol=0.15 * a["box"][2])


@contextmanager
def running(service: ScoringService, limits: ServeLimits):
    srv = ScoringServer(service, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_a_request_that_finds_every_scoring_slot_busy_gets_503_with_retry_after(onnx_engine, public_test_faces):
    body = npy(public_test_faces.pixels[:4])
    with running(ScoringService(onnx_engine), ServeLimits(max_inflight=1, request_timeout_s=1.0)) as srv:
        req = urllib.request.Request(srv.url + "/v1/crops:score", data=body, method="POST",
                                     headers={"Content-Type": "application/x-npy"})
        with srv.scoring_slot(time.monotonic() + 30):  # the one slot, as a long request would hold it
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=30)
            waited = time.monotonic() - started
        assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
        assert "scoring slots are busy" in json.loads(refused.value.read())["error"]
        assert 0.9 < waited < 5  # waited for a slot until its deadline, not forever
        with urllib.request.urlopen(req, timeout=30) as resp:  # the slot is free again
            assert resp.status == 200 and len(json.loads(resp.read())["crops"]) == 4


def handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_slow_clients_are_cut_off_and_do_not_starve_a_normal_request(onnx_engine):
    """More trickling clients than connection slots: each sends a byte every 0.3 s (a per-read socket
    timeout would never fire), yet each is cut off at the request deadline; handler threads stay at
    max_connections; a normal request made after them is served once the ones ahead are cut off."""
    limits = ServeLimits(max_connections=3, max_inflight=1, request_timeout_s=2.0)
    slow, outcomes, peak_threads = 6, {}, [0]
    with running(ScoringService(onnx_engine), limits) as srv:
        host, port = srv.server_address[:2]
        began = time.monotonic()

        head = (b"POST /v1/crops:score HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-npy\r\n"
                b"Content-Length: 100000\r\n\r\n")

        def trickle(i: int) -> None:  # even clients trickle the body, odd ones the headers themselves
            reply = b""
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(head if i % 2 == 0 else head[:20])
                sock.settimeout(0.3)
                while time.monotonic() - began < 60:
                    try:
                        sock.sendall(b"x")
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:  # reset: the server closed while our bytes were in flight
                        break
                    if not chunk:
                        break
                    reply += chunk
            outcomes[i] = (time.monotonic() - began, reply)

        clients = [threading.Thread(target=trickle, args=(i,)) for i in range(slow)]
        for client in clients:
            client.start()
        time.sleep(0.5)  # every slow client has connected; the normal request queues behind them
        started = time.monotonic()
        sampler_stop = threading.Event()

        def sample() -> None:
            while not sampler_stop.wait(0.05):
                peak_threads[0] = max(peak_threads[0], handler_threads())

        sampler = threading.Thread(target=sample)
        sampler.start()
        status, reply = request(srv, "/v1/model")
        normal_s = time.monotonic() - started
        for client in clients:
            client.join(timeout=60)
        sampler_stop.set()
        sampler.join()

    print(f"\nnormal request served after {normal_s:.1f} s; slow clients cut off at "
          f"{', '.join(f'{t:.1f}' for t in sorted(t for t, _ in outcomes.values()))} s; peak handler threads {peak_threads[0]}")
    assert status == 200 and reply["input_size"] == onnx_engine.metadata.input_size
    rounds = -(-(slow + 1) // limits.max_connections)  # connections served in waves of max_connections
    assert normal_s < rounds * limits.request_timeout_s + 3, normal_s
    assert len(outcomes) == slow
    cut_at = sorted(t for t, _ in outcomes.values())
    assert cut_at[-1] < -(-slow // limits.max_connections) * limits.request_timeout_s + 3, cut_at
    body_replies = [outcomes[i][1] for i in range(0, slow, 2) if outcomes[i][1]]
    assert body_replies and all(r.startswith(b"HTTP/1.1 408 ") and b"not received within 2 s" in r
                                for r in body_replies), body_replies
    assert all(outcomes[i][1] == b"" for i in range(1, slow, 2))  # headers never completed: closed, no reply
    assert 1 <= peak_threads[0] <= limits.max_connections, peak_threads


ADDRESS_SPACE_CAP = 6 << 30  # safety net for the shared test machine should the check regress (the bomb is 2.7 GB BGR)


@contextmanager
def serve_process(state_dir, *options: str):
    """`moviemotion engine serve` in a child process on a free port; yields (process, base URL)."""
    def cap_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))

    process = subprocess.Popen(
        [sys.executable, "-m", "moviemotion", "--state-dir", str(state_dir), "engine", "serve", "--port", "0",
         "--backend", "onnxruntime", *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=cap_address_space,
    )
    try:
        output = ""
        for line in process.stdout:  # "serving <version> on <backend> at http://127.0.0.1:<port> (Ctrl-C stops)"
            output += line
            if match := re.match(r"serving .* at (http://\S+)", line):
                break
        else:
            raise AssertionError(f"serve exited {process.wait()}: {output}")
        yield process, match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident set size (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024


def test_a_30000x30000_png_is_refused_and_the_server_stays_small(tmp_path, scene):
    """The issue's attack on the real `moviemotion engine serve`: an 875 KB PNG whose header says
    30000x30000 (900 MP, all black, valid) drove the server past 18 GB. Now it is refused from its header."""
    bomb = black_png(30000, 30000)
    assert len(bomb) < 1 << 20
    with serve_process(tmp_path, "--max-megapixels", "25", "--request-timeout", "10") as (process, url):
        ready = time.monotonic() + 60
        while True:  # the engine is loaded before the port opens, so this is quick
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < ready and process.poll() is None
                time.sleep(0.2)
        baseline = peak_rss_bytes(process.pid)
        status, reply = request_url(url + "/v1/faces:detect-and-score", bomb, "image/png")
        assert status == 413, reply
        assert "30000x30000 = 900.0 MP, over the 25.0 MP pixel budget" in reply["error"]
        status, reply = request_url(url + "/v1/faces:detect-and-score", encode(scene, ".png"), "image/png")
        assert status == 200 and len(reply["faces"]) == 3  # still serving, and still finding faces
        peak = peak_rss_bytes(process.pid)
    print(f"\nserver VmHWM: {baseline / 2**20:.0f} MiB before the bomb, {peak / 2**20:.0f} MiB after it and a real image")
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"


def request_url(url: str, body: bytes, content_type: str):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
