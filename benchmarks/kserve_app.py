"""KServe's Python model server around ``InferenceSession.run``, as its docs write a custom
model: a ``kserve.Model`` whose ``predict`` takes TF Serving's row format (KServe's V1
protocol) and answers ``{"predictions": ...}``.

    python kserve_app.py MODEL_DIR PORT WORKERS

Runs in its own environment (benchmarks/envs/kserve.txt, ``make bench-envs``). Every
model's newest ``model.onnx`` in the tfship repository MODEL_DIR is served, with one
onnxruntime thread per session (one per worker process), like the tutorial baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import onnxruntime as ort
from newest_models import newest_onnx_files


class OnnxModel(kserve.Model):
    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.ready = True
        return self.ready

    # With several workers KServe pickles each model into processes it spawns; an
    # InferenceSession does not pickle, so each worker opens its own.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("session", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        x = np.asarray(payload["instances"], dtype=np.float32)
        return {"predictions": self.session.run(None, {self.input_name: x})[0].tolist()}


if __name__ == "__main__":
    repo, port, workers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    kserve.ModelServer(http_port=port, workers=workers, enable_grpc=False).start(
        [OnnxModel(name, path) for name, path in newest_onnx_files(repo).items()]
    )
