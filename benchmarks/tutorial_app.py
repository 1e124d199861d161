"""The tutorial app: what an engineer writes by hand around ``InferenceSession.run``.

Flask + gunicorn + onnxruntime, TF Serving's row format, no validation, no metrics, no
logs; and, for the V2 binary point, the least an engineer writes for the same bytes: the
JSON header read, the tensor taken from the body with ``frombuffer``, the first output
answered as binary (one input, no checks). ``TUTORIAL_MODEL_DIR`` names a tfship
repository; every model's newest ``model.onnx`` is loaded once per worker.
``TUTORIAL_ORT_THREADS``: onnxruntime's intra-op threads per session (unset: its default,
one per core, in every worker), what a competent engineer sets to one per worker when
there is a worker per core.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, jsonify, request
from newest_models import newest_onnx_files

app = Flask(__name__)
options = ort.SessionOptions()
if os.environ.get("TUTORIAL_ORT_THREADS"):
    options.intra_op_num_threads = int(os.environ["TUTORIAL_ORT_THREADS"])
sessions = {
    name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for name, path in newest_onnx_files(Path(os.environ["TUTORIAL_MODEL_DIR"])).items()
}


@app.get("/readyz")
def ready() -> str:
    return "ok"


@app.post("/v1/models/<name>:predict")
def predict(name: str):
    session = sessions[name]
    x = np.array(request.get_json()["instances"], dtype=np.float32)
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return jsonify({"predictions": outputs[0].tolist()})


@app.post("/v2/models/<name>/infer")
def infer(name: str) -> Response:
    session = sessions[name]
    body = request.get_data()
    size = int(request.headers["Inference-Header-Content-Length"])
    tensor = json.loads(body[:size])["inputs"][0]
    x = np.frombuffer(body, dtype=np.float32, offset=size).reshape(tensor["shape"])
    output = session.run(None, {tensor["name"]: x})[0]
    header = json.dumps(
        {
            "outputs": [
                {
                    "name": session.get_outputs()[0].name,
                    "datatype": "FP32",
                    "shape": list(output.shape),
                    "parameters": {"binary_data_size": output.nbytes},
                }
            ]
        }
    ).encode()
    answer = Response(header + output.tobytes(), content_type="application/octet-stream")
    answer.headers["Inference-Header-Content-Length"] = str(len(header))
    return answer
