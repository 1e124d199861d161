"""BentoML's server around ``InferenceSession.run``, as its docs write a service: a class
under ``@bentoml.service`` whose ``@bentoml.api`` methods take a typed numpy argument,
here ``instances`` (so TF Serving's row-format bodies post unchanged) and answer
``{"predictions": ...}``, one method per benchmarked model at TF Serving's path.

    BENTO_MODEL_DIR=MODEL_DIR BENTO_WORKERS=N bentoml serve bentoml_app:OnnxService \\
        --working-dir benchmarks --host 127.0.0.1 --port PORT

Runs in its own environment (benchmarks/envs/bentoml.txt, ``make bench-envs``). Each
model's newest ``model.onnx`` in the tfship repository is opened with one onnxruntime
thread per session (one per worker process), like the tutorial baseline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
import onnxruntime as ort
from bentoml.validators import DType
from newest_models import newest_onnx_files

Rows = Annotated[np.ndarray, DType("float32")]


@bentoml.service(workers=int(os.environ.get("BENTO_WORKERS", "1")))
class OnnxService:
    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.sessions = {
            name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in newest_onnx_files(Path(os.environ["BENTO_MODEL_DIR"])).items()
        }

    def _run(self, name: str, instances: np.ndarray) -> dict[str, Any]:
        session = self.sessions[name]
        outputs = session.run(None, {session.get_inputs()[0].name: instances})
        return {"predictions": outputs[0].tolist()}

    @bentoml.api(route="/v1/models/digits:predict")
    def digits(self, instances: Rows) -> dict[str, Any]:
        return self._run("digits", instances)

    @bentoml.api(route="/v1/models/mlp784:predict")
    def mlp784(self, instances: Rows) -> dict[str, Any]:
        return self._run("mlp784", instances)
