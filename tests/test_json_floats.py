"""Floats in JSON answers at their own dtype's precision: a float16 model's outputs over
TF Serving's REST predict (rows and columns) and V2 JSON infer, in-process on the app, and
the codec itself. float16's 0.1 is written 0.1, not float32's 0.099975586."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
from flask.testing import FlaskClient
from onnx import TensorProto, helper, numpy_helper

from service.app import create_app
from service.codecs.json_floats import json_float, json_floats
from service.settings import ServiceSettings

SCALE = np.array([1.0, 3.0], dtype=np.float16)


def write_half_onnx(path: Path) -> None:
    """``x`` [N, 2] float16 -> ``y`` = x * (1, 3), float16."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"])],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 2])],
        initializer=[numpy_helper.from_array(SCALE, "scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    repo = tmp_path_factory.mktemp("half") / "repo"
    write_half_onnx(repo / "half" / "1" / "model.onnx")
    app = create_app(ServiceSettings(model_dir=repo), load_models=False)
    app.extensions["tfship.registry"].poll()
    return app.test_client()


ROWS = [[0.1, 0.2], [1.7, -0.3]]
EXPECTED = (np.array(ROWS, dtype=np.float16) * SCALE).astype(np.float16)


def answered_values(path: str, body: dict, client: FlaskClient) -> tuple[bytes, list[float]]:
    answer = client.post(path, data=orjson.dumps(body), content_type="application/json")
    assert answer.status_code == 200, answer.data
    data = answer.get_json()
    if path.startswith("/v2"):
        values = data["outputs"][0]["data"]
    else:
        values = data.get("predictions", data.get("outputs"))
    return answer.data, np.array(values, dtype=np.float64).ravel().tolist()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/half:predict", {"instances": ROWS}),
        ("/v1/models/half:predict", {"inputs": ROWS}),
        (
            "/v2/models/half/infer",
            {"inputs": [{"name": "x", "datatype": "FP16", "shape": [2, 2], "data": ROWS}]},
        ),
    ],
)
def test_float16_outputs_are_written_at_float16_precision(
    client: FlaskClient, path: str, body: dict
) -> None:
    raw, values = answered_values(path, body, client)
    # Each value is float16's own shortest decimal, which reads back as the answer.
    shortest = [float(np.format_float_positional(v, unique=True)) for v in EXPECTED.ravel()]
    assert values == shortest
    assert np.array_equal(np.array(values, dtype=np.float16), EXPECTED.ravel())
    assert b"0.1," in raw and b"0.099975586" not in raw


def test_the_codec_leaves_other_dtypes_alone() -> None:
    single = np.array([0.1, 0.99999994], dtype=np.float32)
    assert json_floats(single) is single
    half = np.array([[0.1, 65504.0], [np.float16(1e-7), -2.5]], dtype=np.float16)
    text = orjson.dumps(json_floats(half), option=orjson.OPT_SERIALIZE_NUMPY)
    # 65504 (float16's largest) reads back from 65500 already: the shortest decimal that does.
    assert text == b"[[0.1,65500.0],[1e-7,-2.5]]"
    assert np.array_equal(np.array(orjson.loads(text), dtype=np.float16), half)
    assert json_float(np.float16(0.2)) == 0.2 and json_float(np.float32(0.2)) == np.float32(0.2)
