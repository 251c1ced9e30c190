"""A small HTTP scoring service around an emotion engine (in the manner of TF Serving's REST API).

Routes:
  GET  /healthz                    -> {"status": "ok"}
  GET  /v1/model                   -> model metadata, backend, max batch
  POST /v1/faces:detect-and-score  body: one JPEG/PNG image -> faces found by YuNet, each with
                                   box, five landmarks, named emotion probabilities, dominant
  POST /v1/crops:score             body: a .npy uint8 (N, S, S) array (Content-Type
                                   application/x-npy), or JSON {"crops": [base64 PNG/JPEG, ...]}
                                   of face crops (resized to S if needed) -> one result per crop
Bad input gets 400 with {"error": "..."}; sockets time out so no client can hold a thread forever.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from engines.engine import EmotionEngine
from engines.face_detector import FaceDetector
from engines.preprocessing import align_face, resize_crop

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CROPS = 4096
SOCKET_TIMEOUT_S = 30.0


class BadRequest(ValueError):
    """The request cannot be scored; the message is sent back with status 400 (or `status`)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


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


def decode_image(body: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> BGR image; BadRequest if they do not decode."""
    if not body:
        raise BadRequest("empty body: send a JPEG or PNG image")
    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadRequest("body is not a decodable JPEG or PNG image")
    return image


def decode_crops(body: bytes, content_type: str, size: int) -> np.ndarray:
    """A crops request body -> uint8 (N, size, size); BadRequest naming what is wrong."""
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
        for i, item in enumerate(items):
            try:
                raw = base64.b64decode(item, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadRequest(f"crop {i} is not valid base64") from None
            crop = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
            if crop is None:
                raise BadRequest(f"crop {i} is not a decodable PNG or JPEG image")
            crops.append(resize_crop(crop, size))
        return np.stack(crops)
    if content_type.startswith(("application/x-npy", "application/octet-stream")):
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


class ScoringService:
    """Detect, align and score faces with one engine; safe to call from many threads."""

    def __init__(self, engine: EmotionEngine, detector: FaceDetector | None = None) -> None:
        self.engine = engine
        self.detector = detector or FaceDetector()
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
        with self._detect_lock:
            detections = self.detector.detect(image)
        if not detections:
            return []
        size = self.engine.metadata.input_size
        crops = np.stack([align_face(image, d.landmarks, size) for d in detections])
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


class ScoringHandler(BaseHTTPRequestHandler):
    """Routes requests to the server's ScoringService."""

    server: "ScoringServer"
    timeout = SOCKET_TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/v1/model":
            self._reply(HTTPStatus.OK, self.server.service.model_info())
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        service = self.server.service
        try:
            body = self._read_body()
            if self.path == "/v1/faces:detect-and-score":
                image = decode_image(body)
                faces = service.detect_and_score(image)
                result = {
                    "model_version": service.engine.model_version,
                    "image_size": [image.shape[1], image.shape[0]],
                    "faces": [f.to_json() for f in faces],
                }
            elif self.path == "/v1/crops:score":
                crops = decode_crops(body, self.headers.get("Content-Type", ""), service.engine.metadata.input_size)
                result = {"model_version": service.engine.model_version, "crops": service.score_crops(crops)}
            else:
                raise BadRequest(f"no route POST {self.path}", HTTPStatus.NOT_FOUND)
        except BadRequest as exc:
            self._reply(exc.status, {"error": str(exc)})
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
        return self.rfile.read(n)

    def _reply(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ScoringServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the ScoringService for its handlers."""

    daemon_threads = True

    def __init__(self, service: ScoringService, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), ScoringHandler)
        self.service = service

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
