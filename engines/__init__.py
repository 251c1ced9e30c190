"""Emotion engines: aligned gray face crops in, 8-class emotion probabilities out."""
from schemas.emotions import EMOTIONS, NUM_EMOTIONS

__all__ = ["EMOTIONS", "NUM_EMOTIONS"]
