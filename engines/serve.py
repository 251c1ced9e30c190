"""A small HTTP scoring service around an emotion engine (in the manner of TF Serving's REST API).

Routes:
  GET  /healthz                    -> {"status": "ok"}
  GET  /v1/model                   -> model metadata, backend, max batch
  POST /v1/faces:detect-and-score  body: one PNG/JPEG/BMP/WebP image -> faces found by YuNet, each
                                   with box, five landmarks, named emotion probabilities, dominant
  POST /v1/crops:score             body: a .npy uint8 (N, S, S) array (Content-Type
                                   application/x-npy), or JSON {"crops": [base64 PNG/JPEG, ...]}
                                   of face crops (resized to S if needed) -> one result per crop
Bad input gets 400 with {"error": "..."}. Limits (ServeLimits) hold against hostile clients: an image's
header is read before it is decoded and more pixels than the budget get 413; large images are
downscaled for detection; at most `max_connections` threads serve connections (more wait in the listen
backlog) and `max_inflight` requests decode and score at once (a request that waits past its deadline
gets 503 with Retry-After); a request's headers and body must arrive within `request_timeout_s` in
total (else 408), so a client trickling bytes cannot hold a thread.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from engines.engine import EmotionEngine
from engines.face_detector import Detection, FaceDetector
from engines.image_header import HeaderError, ImageHeader, UnsupportedFormat, read_image_header
from engines.preprocessing import align_face, resize_crop, to_gray

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CROPS = 4096
MAX_CROP_PIXELS = 1024 * 1024  # one JSON crop; all of a request's crops together count against max_pixels
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServeLimits:
    """What one server lets its clients use (`moviemotion engine serve` options).

    Worst-case memory is about max_connections x MAX_BODY_BYTES (bodies being read or waiting) plus
    max_inflight x max_pixels x ~10 bytes (decoder buffers and the decoded BGR image).
    """

    max_pixels: int = 25_000_000  # decoded pixels per request: the image, or all JSON crops together
    detect_max_side: int = 1920  # longer images are downscaled to this side for detection only
    max_connections: int = 8  # connections served at once, one thread each; more wait in the backlog
    max_inflight: int = 2  # requests decoding + scoring at once; others wait until their deadline, then 503
    request_timeout_s: float = 30.0  # headers + body must arrive (and a scoring slot be free) within this

    def __post_init__(self) -> None:
        for name in ("max_pixels", "detect_max_side", "max_connections", "max_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")


class BadRequest(ValueError):
    """The request cannot be scored; the message is sent back with status 400 (or `status`)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class ScoredFace:
    """One face: box (x, y, w, h), five landmarks, detector score, probabilities by emotion."""

    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    detector_score: float
    emotions: dict[str, float]

    @property
    def dominant(self) -> str:
        return max(self.emotions, key=self.emotions.get)

    def to_json(self) -> dict:
        return {
            "box": list(self.box),
            "landmarks": [list(p) for p in self.landmarks],
            "detector_score": self.detector_score,
            "emotions": self.emotions,
            "dominant": self.dominant,
        }


def named_probabilities(probs: np.ndarray, classes: tuple[str, ...]) -> list[dict[str, float]]:
    return [{name: float(p) for name, p in zip(classes, row)} for row in probs]


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def checked_header(data: bytes, max_pixels: int, what: str = "image") -> ImageHeader:
    """The image's header if it is a supported format within `max_pixels`; BadRequest (400, 413 over the
    budget, 415 another format) otherwise. Nothing is decoded."""
    try:
        header = read_image_header(data)
    except UnsupportedFormat as exc:  # another image format: 415; anything else is just not an image
        if exc.format:
            raise BadRequest(f"{what} is {exc}", HTTPStatus.UNSUPPORTED_MEDIA_TYPE) from None
        raise BadRequest(f"{what} is not a decodable image ({exc})") from None
    except HeaderError as exc:
        raise BadRequest(f"{what} is not a decodable image: {exc}") from None
    if header.pixels > max_pixels:
        raise BadRequest(
            f"{what} is {header.width}x{header.height} = {_megapixels(header.pixels)}, over the "
            f"{_megapixels(max_pixels)} pixel budget (--max-megapixels): send a smaller image",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    return header


def _imdecode(data: bytes, flags: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None


def decode_image(body: bytes, max_pixels: int = ServeLimits.max_pixels) -> np.ndarray:
    """PNG/JPEG/BMP/WebP bytes -> BGR image, decoded only after the header is within `max_pixels`;
    BadRequest if it is over the budget, another format, or does not decode."""
    if not body:
        raise BadRequest("empty body: send a PNG, JPEG, BMP or WebP image")
    header = checked_header(body, max_pixels, "body")
    image = _imdecode(body, cv2.IMREAD_COLOR)
    if image is None:
        raise BadRequest(f"body is not a decodable {header.format} image")
    return image


def _check_npy_size(body: bytes) -> None:
    """BadRequest unless the .npy header describes an array the body actually holds (np.load would
    otherwise allocate whatever the header claims before it finds the data missing)."""
    stream = io.BytesIO(body)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise BadRequest("body is not a .npy array") from None
    if dtype.hasobject:
        raise BadRequest("body is not a .npy array of numbers")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(body) - stream.tell():
        raise BadRequest(f"the .npy header declares {declared} bytes of data, the body holds {len(body) - stream.tell()}")


def decode_crops(body: bytes, content_type: str, size: int, max_pixels: int = ServeLimits.max_pixels) -> np.ndarray:
    """A crops request body -> uint8 (N, size, size); BadRequest naming what is wrong. JSON crops are
    checked header-first: each at most MAX_CROP_PIXELS, all together at most `max_pixels`."""
    if content_type.startswith("application/json"):
        try:
            items = json.loads(body)["crops"]
        except (ValueError, KeyError, TypeError):
            raise BadRequest('JSON body must be {"crops": [base64 PNG/JPEG, ...]}') from None
        if not isinstance(items, list) or not items:
            raise BadRequest('"crops" must be a non-empty list of base64 images')
        if len(items) > MAX_CROPS:
            raise BadRequest(f"at most {MAX_CROPS} crops per request, got {len(items)}")
        crops = []
        total_pixels = 0
        for i, item in enumerate(items):
            try:
                raw = base64.b64decode(item, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadRequest(f"crop {i} is not valid base64") from None
            header = checked_header(raw, MAX_CROP_PIXELS, f"crop {i}")
            total_pixels += header.pixels
            if total_pixels > max_pixels:
                raise BadRequest(f"crops 0..{i} hold {_megapixels(total_pixels)}, over the {_megapixels(max_pixels)} "
                                 "pixel budget (--max-megapixels): send fewer or smaller crops",
                                 HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            crop = _imdecode(raw, cv2.IMREAD_GRAYSCALE)
            if crop is None:
                raise BadRequest(f"crop {i} is not a decodable {header.format} image")
            crops.append(resize_crop(crop, size))
        return np.stack(crops)
    if content_type.startswith(("application/x-npy", "application/octet-stream")):
        _check_npy_size(body)
        try:
            crops = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise BadRequest("body is not a .npy array") from None
        if crops.ndim == 3 and len(crops) > MAX_CROPS:
            raise BadRequest(f"at most {MAX_CROPS} crops per request, got {len(crops)}")
        return crops
    raise BadRequest(
        f"unsupported Content-Type {content_type!r}: use application/x-npy or application/json",
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    )


def detection_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The (width, height) a width x height image is detected at: its longer side at most max_side."""
    factor = min(1.0, max_side / max(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def rescaled(detection: Detection, fx: float, fy: float) -> Detection:
    """A detection made on an image scaled by (fx, fy), in the original image's pixels."""
    x, y, w, h = detection.bbox
    return Detection(bbox=(x / fx, y / fy, w / fx, h / fy),
                     landmarks=(detection.landmarks / np.array([fx, fy], np.float32)).astype(np.float32),
                     score=detection.score)


class ScoringService:
    """Detect, align and score faces with one engine; safe to call from many threads.

    Detection runs on a copy downscaled to `detect_max_side`; faces are aligned from the full image."""

    def __init__(self, engine: EmotionEngine, detector: FaceDetector | None = None,
                 detect_max_side: int = ServeLimits.detect_max_side) -> None:
        self.engine = engine
        self.detector = detector or FaceDetector()
        self.detect_max_side = detect_max_side
        self._detect_lock = threading.Lock()  # cv2's detector keeps per-call state

    def model_info(self) -> dict:
        meta = self.engine.metadata
        return {
            "model_version": meta.model_version,
            "classes": list(meta.classes),
            "input_size": meta.input_size,
            "input_scale": meta.input_scale,
            "backend": self.engine.backend,
            "max_batch": self.engine.max_batch,
        }

    def detect_and_score(self, image: np.ndarray) -> list[ScoredFace]:
        height, width = image.shape[:2]
        small_width, small_height = detection_size(width, height, self.detect_max_side)
        if (small_width, small_height) == (width, height):
            with self._detect_lock:
                detections = self.detector.detect(image)
        else:
            small = cv2.resize(image, (small_width, small_height), interpolation=cv2.INTER_AREA)
            with self._detect_lock:
                found = self.detector.detect(small)
            detections = [rescaled(d, small_width / width, small_height / height) for d in found]
        if not detections:
            return []
        size = self.engine.metadata.input_size
        gray = to_gray(image)  # once, not once per face
        crops = np.stack([align_face(gray, d.landmarks, size) for d in detections])
        probs = named_probabilities(self.engine.infer(crops), self.engine.metadata.classes)
        return [
            ScoredFace(
                box=d.bbox,
                landmarks=tuple((float(x), float(y)) for x, y in d.landmarks),
                detector_score=d.score,
                emotions=p,
            )
            for d, p in zip(detections, probs)
        ]

    def score_crops(self, crops: np.ndarray) -> list[dict]:
        try:
            probs = self.engine.infer(crops)
        except ValueError as exc:
            raise BadRequest(f"crops: {exc}") from None
        return [
            {"emotions": named, "dominant": max(named, key=named.get)}
            for named in named_probabilities(probs, self.engine.metadata.classes)
        ]


class _DeadlineReader(io.RawIOBase):
    """A connection's reads, each allowed only the time left before the handler's request deadline:
    a client sending a byte now and then still runs out of time (TimeoutError)."""

    def __init__(self, sock: socket.socket, handler: "ScoringHandler") -> None:
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class ScoringHandler(BaseHTTPRequestHandler):
    """Routes requests to the server's ScoringService, within the server's ServeLimits."""

    server: "ScoringServer"
    protocol_version = "HTTP/1.1"
    deadline = 0.0  # monotonic time by which the current request must have arrived (set per request)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain makefile(); reads go through the deadline instead
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        # Waiting for the next request on a kept-alive connection counts too: idle connections are closed.
        self.deadline = time.monotonic() + self.server.limits.request_timeout_s
        super().handle_one_request()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/v1/model":
            self._reply(HTTPStatus.OK, self.server.service.model_info())
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        service, limits = self.server.service, self.server.limits
        try:
            body = self._read_body()
            if self.path == "/v1/faces:detect-and-score":
                with self.server.scoring_slot(self.deadline):
                    image = decode_image(body, limits.max_pixels)
                    del body
                    faces = service.detect_and_score(image)
                result = {
                    "model_version": service.engine.model_version,
                    "image_size": [image.shape[1], image.shape[0]],
                    "faces": [f.to_json() for f in faces],
                }
            elif self.path == "/v1/crops:score":
                content_type = self.headers.get("Content-Type", "")
                with self.server.scoring_slot(self.deadline):
                    crops = decode_crops(body, content_type, service.engine.metadata.input_size, limits.max_pixels)
                    result = {"model_version": service.engine.model_version, "crops": service.score_crops(crops)}
            else:
                raise BadRequest(f"no route POST {self.path}", HTTPStatus.NOT_FOUND)
        except BadRequest as exc:
            self._reply(exc.status, {"error": str(exc)}, exc.headers)
            return
        self._reply(HTTPStatus.OK, result)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest("Content-Length header is required", HTTPStatus.LENGTH_REQUIRED)
        try:
            n = int(length)
        except ValueError:
            raise BadRequest(f"bad Content-Length {length!r}") from None
        if n < 0 or n > MAX_BODY_BYTES:
            raise BadRequest(f"body must be 0..{MAX_BODY_BYTES} bytes, got {n}", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(n)
        except TimeoutError:
            raise BadRequest(f"request not received within {self.server.limits.request_timeout_s:g} s "
                             "(--request-timeout)", HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < n:
            raise BadRequest(f"body ended after {len(body)} of {n} bytes")
        return body

    def _reply(self, status: HTTPStatus, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.connection.settimeout(self.server.limits.request_timeout_s)  # a client that does not read the reply
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:  # the client went away or stopped reading: nobody to tell
            log.debug("reply %s to %s not sent: %s", status, self.address_string(), exc)
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ScoringServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the ScoringService for its handlers and enforces ServeLimits:
    at most max_connections handler threads (the accept loop waits for a free one; the kernel backlog
    holds the rest) and max_inflight requests decoding/scoring at once."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, service: ScoringService, host: str = "127.0.0.1", port: int = 0,
                 limits: ServeLimits | None = None) -> None:
        self.limits = limits or ServeLimits()
        self._connections = threading.BoundedSemaphore(self.limits.max_connections)
        self._inflight = threading.BoundedSemaphore(self.limits.max_inflight)
        self._closing = threading.Event()
        super().__init__((host, port), ScoringHandler)
        self.service = service

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @contextmanager
    def scoring_slot(self, deadline: float):
        """Hold one of the max_inflight slots; BadRequest 503 (Retry-After) if none frees up by `deadline`."""
        if not self._inflight.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BadRequest(f"all {self.limits.max_inflight} scoring slots are busy: retry later",
                             HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_S)})
        try:
            yield
        finally:
            self._inflight.release()

    def process_request(self, request, client_address) -> None:
        while not self._connections.acquire(timeout=0.2):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def handle_error(self, request, client_address) -> None:
        """A client that resets or drops its connection is routine: a debug line, not a traceback on stderr."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)
