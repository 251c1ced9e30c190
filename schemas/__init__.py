"""The bottom layer: wire formats (one versioned module per message: face crops, emotion events, dead letters)
and the settings every component is given (settings.py, secrets.py). Imports nothing of the project above it."""
from schemas.dead_letter import dead_letter_headers, read_dead_letter_headers
from schemas.emotion_event import EmotionEvent, decode_emotion_event, encode_emotion_event
from schemas.errors import SchemaError
from schemas.face_frame import FaceFrame, decode_face_frame, encode_face_frame, person_key_of

__all__ = [
    "EmotionEvent",
    "FaceFrame",
    "SchemaError",
    "dead_letter_headers",
    "decode_emotion_event",
    "decode_face_frame",
    "encode_emotion_event",
    "encode_face_frame",
    "person_key_of",
    "read_dead_letter_headers",
]
