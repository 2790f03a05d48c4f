"""DeepFER edge core: the light runtime that runs on the device.

Nothing in this package imports TensorFlow. train/ and convert/ reuse its labels and
preprocessing so that training and the device see the same pixels. Where things are:
the capture loop in ``capture/reader.py``, face detectors in ``detectors/``, the model
wrapper in ``model/classifier.py``, the MQTT publisher in ``outputs/mqtt/sink.py``, the
wire format in ``messages.py``, every error in ``errors.py`` (README has the full table).
"""

__version__ = "0.1.0"

__all__ = ["EmotionRecognizer"]


def __getattr__(name: str):
    # ``from deepfer.edge import EmotionRecognizer`` without making every import of the
    # package (the ``deepfer`` command's start) load OpenCV and the runtime
    if name == "EmotionRecognizer":
        from deepfer.edge.recognizer import EmotionRecognizer

        return EmotionRecognizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
