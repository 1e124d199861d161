"""/openapi.json stays true: exactly the app's routes, and live answers fit its schemas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from conftest import Server
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from service.app import create_app
from service.settings import ServiceSettings


def _route_paths(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(ServiceSettings(model_dir=tmp_path), load_models=False)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def test_spec_lists_exactly_the_apps_routes(onnx_server: Server, tmp_path: Path) -> None:
    spec = onnx_server.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert described == _route_paths(tmp_path)
    for path, ops in spec["paths"].items():
        for op in ops.values():
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"{(\w+)}", path)), path


@pytest.fixture(scope="module")
def validate(onnx_server: Server) -> Any:
    spec = onnx_server.get("/openapi.json").json()
    jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
    # The spec is one resource; response schemas point into it with $ref.
    registry = Registry().with_resource("urn:tfship", DRAFT202012.create_resource(spec))

    def check(path: str, method: str, status: int, body: Any) -> None:
        template = _match(spec, path)
        response = spec["paths"][template][method]["responses"][str(status)]
        schema = response["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(
            {"$ref": "urn:tfship#" + schema["$ref"][1:]} if "$ref" in schema else schema,
            registry=registry,
        ).validate(body)

    return check


def _match(spec: dict[str, Any], path: str) -> str:
    for template in spec["paths"]:
        pattern = "^" + re.sub(r"\\{\w+\\}", "[^/:]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    raise AssertionError(f"{path} matches no path of the spec")


ROW = np.zeros((8, 8, 1)).tolist()
V2 = {
    "inputs": [
        {"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": np.zeros(64).tolist()}
    ]
}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/readyz", None, 200),
        ("get", "/v1/models/digits", None, 200),
        ("get", "/v1/models/digits/versions/1", None, 200),
        ("get", "/v1/models/ghost", None, 404),
        ("get", "/v1/models/digits/metadata", None, 200),
        ("post", "/v1/models/digits:predict", {"instances": [ROW]}, 200),
        ("post", "/v1/models/digits:predict", {"inputs": [ROW]}, 200),
        ("post", "/v1/models/digits/versions/1:predict", {"instances": [[1]]}, 400),
        ("post", "/v1/models/digits/labels/none:predict", {"instances": [ROW]}, 404),
        ("post", "/v1/models/digits:classify", {"examples": [{"pixels": [0] * 64}]}, 200),
        ("post", "/v1/models/digits:predict", {"instances": [ROW], "top_k": 2}, 200),
        ("post", "/v1/models/digits:predict", {"inputs": [ROW], "top_k": 2}, 200),
        ("post", "/v1/models/digits:classify", {"examples": [{"pixels": [0]}]}, 400),
        ("post", "/v1/models/digits:regress", {"examples": [{"pixels": [0] * 64}]}, 400),
        ("get", "/v2", None, 200),
        ("get", "/v2/models/digits", None, 200),
        ("post", "/v2/models/digits/infer", V2, 200),
        ("post", "/v2/models/digits/versions/1/infer", {"inputs": []}, 400),
    ],
)
def test_live_answers_fit_the_schemas(
    onnx_server: Server, validate: Any, method: str, path: str, body: Any, status: int
) -> None:
    answer = onnx_server.get(path) if method == "get" else onnx_server.post(path, body)
    assert answer.status == status, answer.body
    validate(path, method, status, answer.json())


def test_regress_answer_fits_the_schema(mixed_server: Server, validate: Any) -> None:
    path = "/v1/models/linear:regress"
    answer = mixed_server.post(path, {"examples": [{"features": [1, 2, 3]}]})
    assert answer.status == 200, answer.body
    validate(path, "post", 200, answer.json())
