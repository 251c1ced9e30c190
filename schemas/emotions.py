"""The fixed emotion class order shared by every engine, model file and message."""

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
NUM_EMOTIONS = len(EMOTIONS)
EMOTION_INDEX = {name: i for i, name in enumerate(EMOTIONS)}
