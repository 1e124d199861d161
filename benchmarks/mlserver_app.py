"""MLServer around ``InferenceSession.run``, as its docs write a custom runtime: an
``MLModel`` that decodes the V2 request with MLServer's NumPy codec and encodes the output.

benchmarks/serving_servers.py writes the settings (``implementation:
mlserver_app.OnnxModel``, the ``model.onnx`` as ``parameters.uri``) and runs ``mlserver
start``. Runs in its own environment (benchmarks/envs/mlserver.txt, ``make bench-envs``):
one onnxruntime thread per session, ``parallel_workers`` inference processes, like the
tutorial baseline's workers.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        y = self.session.run(None, {self.input_name: x})[0]
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(name="probabilities", payload=y)],
        )
