"""Runtimes: SavedModel (TensorFlow) agrees with ONNX; the ONNX path never imports TensorFlow."""

from __future__ import annotations

import numpy as np
from conftest import Server, TrainedRepo, run_python_json


def test_savedmodel_runtime_gives_the_same_answers(
    savedmodel_server: Server, onnx_server: Server, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    rows = x[:64].tolist()
    tf_answer = savedmodel_server.post("/v1/models/digits:predict", {"instances": rows})
    onnx_answer = onnx_server.post("/v1/models/digits:predict", {"instances": rows})
    assert tf_answer.status == 200, tf_answer.body
    tf_probs = np.asarray(tf_answer.json()["predictions"])
    onnx_probs = np.asarray(onnx_answer.json()["predictions"])
    np.testing.assert_array_equal(tf_probs.argmax(axis=1), onnx_probs.argmax(axis=1))
    np.testing.assert_allclose(tf_probs, onnx_probs, atol=1e-4)
    assert (tf_probs.argmax(axis=1) == y[:64]).mean() >= 0.9
    columnar = savedmodel_server.post("/v1/models/digits:predict", {"inputs": rows})
    assert columnar.json()["outputs"] == tf_answer.json()["predictions"]


def test_savedmodel_runtime_reports_the_same_metadata(
    savedmodel_server: Server, onnx_server: Server
) -> None:
    assert (
        savedmodel_server.get("/v1/models/digits/metadata").json()
        == onnx_server.get("/v1/models/digits/metadata").json()
    )
    assert savedmodel_server.get("/readyz").json()["models"]["digits"]["runtime"] == "savedmodel"
    bad = savedmodel_server.post("/v1/models/digits:predict", {"instances": [[1, 2]]})
    assert bad.status == 400 and "expected shape [-1, 8, 8, 1]" in bad.json()["error"]


def test_onnx_path_does_not_import_tensorflow(trained_repo: TrainedRepo) -> None:
    """Start-up time and memory: a worker serving ONNX must never load TensorFlow."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from service.app import create_app\n"
        "from service.settings import ServiceSettings\n"
        "app = create_app(ServiceSettings(model_dir=Path(sys.argv[1]), grpc_port=0),\n"
        "                 load_models=False)\n"
        "registry = app.extensions['tfship.registry']\n"
        "registry.poll()\n"
        "client = app.test_client()\n"
        "row = [[[0.0]] * 8] * 8\n"
        "answer = client.post('/v1/models/digits:predict', json={'instances': [row]})\n"
        "import grpc, numpy as np\n"
        "from service.codecs.grpc_protos import message\n"
        "from service.protocols.grpc_server import GrpcServer\n"
        "from service.codecs.tensor_proto import write_tensor\n"
        "server = GrpcServer(app.extensions['tfship.dataplane'],\n"
        "                    app.extensions['tfship.settings'])\n"
        "port = server.start()\n"
        "request = message('tensorflow.serving.PredictRequest')()\n"
        "request.model_spec.name = 'digits'\n"
        "write_tensor(request.inputs['pixels'], np.zeros((1, 8, 8, 1), np.float32))\n"
        "Response = message('tensorflow.serving.PredictResponse')\n"
        "with grpc.insecure_channel(f'127.0.0.1:{port}') as channel:\n"
        "    call = channel.unary_unary('/tensorflow.serving.PredictionService/Predict',\n"
        "        request_serializer=type(request).SerializeToString,\n"
        "        response_deserializer=Response.FromString)\n"
        "    grpc_outputs = sorted(call(request, timeout=30).outputs)\n"
        "server.stop(1)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "               ('tensorflow', 'keras', 'tf2onnx', 'tensorflow_serving'))\n"
        "print(json.dumps({'status': answer.status_code, 'ready': registry.readiness()[0],\n"
        "                  'grpc_outputs': grpc_outputs, 'heavy': heavy}))\n"
    )
    report = run_python_json(code, str(trained_repo.path), timeout=60)
    assert report == {
        "status": 200,
        "ready": True,
        "grpc_outputs": ["probabilities"],
        "heavy": [],
    }


def test_request_during_the_first_poll_is_counted_under_its_model(
    trained_repo: TrainedRepo,
) -> None:
    """A worker may take a request before its first poll has registered the models: the
    request waits, succeeds, and must be counted under its model (not as an unknown one)."""
    import threading
    import time
    from pathlib import Path

    from prometheus_client import REGISTRY

    from service.app import create_app
    from service.settings import ServiceSettings

    labels = {
        "model": "digits",
        "version": "1",
        "protocol": "tfserving",
        "api": "predict",
        "status": "200",
    }
    app = create_app(ServiceSettings(model_dir=Path(trained_repo.path)), load_models=False)
    registry = app.extensions["tfship.registry"]
    before = REGISTRY.get_sample_value("tfship_requests_total", labels) or 0.0
    answers: list[int] = []
    row = [[[0.0]] * 8] * 8

    def send() -> None:
        answer = app.test_client().post("/v1/models/digits:predict", json={"instances": [row]})
        answers.append(answer.status_code)

    client = threading.Thread(target=send)
    client.start()
    time.sleep(0.3)  # the request is now waiting for the first poll
    assert answers == [], "the request must wait for the first poll"
    registry.poll()
    client.join(timeout=30)
    assert answers == [200]
    assert (REGISTRY.get_sample_value("tfship_requests_total", labels) or 0.0) - before == 1
