"""YuNet face detection (cv2.FaceDetectorYN) with the model shipped in engines/models/."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

YUNET_MODEL = Path(__file__).parent / "models" / "face_detection_yunet_2023mar.onnx"


@dataclass(frozen=True)
class Detection:
    """One face: box (x, y, w, h) in pixels, 5 landmarks (5, 2), and the detector's score."""

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


class FaceDetector:
    """Finds faces in BGR or gray frames; resizes its input size to each frame's size."""

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 500,
        model_path: Path | str = YUNET_MODEL,
    ) -> None:
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"YuNet model not found: {model_path}")
        self._detector = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), score_threshold, nms_threshold, top_k
        )
        self._size: tuple[int, int] = (320, 320)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        height, width = frame.shape[:2]
        if (width, height) != self._size:
            self._detector.setInputSize((width, height))
            self._size = (width, height)
        _, faces = self._detector.detect(frame)
        if faces is None:
            return []
        return [
            Detection(
                bbox=(float(f[0]), float(f[1]), float(f[2]), float(f[3])),
                landmarks=f[4:14].reshape(5, 2).astype(np.float32),
                score=float(f[14]),
            )
            for f in faces
        ]

    def detect_best(self, frame: np.ndarray) -> Detection | None:
        """The most confident face in `frame`, or None (for images that show one person)."""
        return max(self.detect(frame), key=lambda d: d.score, default=None)
