"""/openapi.json stays true: every route and only routes, per-model request schemas, and
live answers that fit its schemas."""

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
        # The browser console's page and the JSON it reads are not the serving API
        # (docs/serving.md#browser-console): they change with the page.
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def _template_of(path: str, templates: set[str]) -> str | None:
    """The route template a described path is (a path template itself), or is an instance
    of (a model's own path: /v1/models/digits:predict is /v1/models/{name}:predict)."""
    if path in templates:
        return path
    for template in templates:
        pattern = "^" + re.sub(r"\\{\w+\\}", "[^/:]+", re.escape(template)) + "$"
        if re.match(pattern, path) and "{" not in path:
            return template
    return None


def test_spec_describes_every_route_and_only_routes(onnx_server: Server, tmp_path: Path) -> None:
    spec = onnx_server.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    routes = _route_paths(tmp_path)
    templates = {path for path, _ in routes}
    covered = set()
    for path, ops in spec["paths"].items():
        template = _template_of(path, templates)
        assert template is not None, f"{path} is no route of the app"
        for method, op in ops.items():
            assert (template, method) in routes, (path, method)
            covered.add((template, method))
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"{(\w+)}", path)), path
    # Calls with bodies are listed per served model: this server's one model is a
    # classifier with no labels, so nothing reaches regress or the label paths.
    assert routes - covered == {
        ("/v1/models/{name}:regress", "post"),
        ("/v1/models/{name}/versions/{version}:regress", "post"),
        ("/v1/models/{name}/labels/{label}:regress", "post"),
        ("/v1/models/{name}/labels/{label}:predict", "post"),
        ("/v1/models/{name}/labels/{label}:classify", "post"),
    }


def test_calls_with_bodies_are_listed_per_model_and_version(onnx_server: Server) -> None:
    paths = onnx_server.get("/openapi.json").json()["paths"]
    with_bodies = sorted(p for p, ops in paths.items() if "requestBody" in ops.get("post", {}))
    # digits (a classifier, version 1): predict and classify, by default and by version;
    # no regress (a 400 for a classifier); V2 infer both ways; the index takes a body too.
    assert with_bodies == [
        "/v1/models/digits/versions/1:classify",
        "/v1/models/digits/versions/1:predict",
        "/v1/models/digits:classify",
        "/v1/models/digits:predict",
        "/v2/models/digits/infer",
        "/v2/models/digits/versions/1/infer",
        "/v2/repository/index",
    ]
    pixels = paths["/v1/models/digits:predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["properties"]["inputs"]["anyOf"][0]
    # [-1, 8, 8, 1] float32: rows of 8 x 8 x 1 numbers within float32's range.
    assert pixels["minItems"] == 1 and pixels["maxItems"] == 10_000
    assert pixels["items"]["minItems"] == pixels["items"]["maxItems"] == 8
    assert pixels["items"]["items"]["items"]["maxItems"] == 1
    assert pixels["items"]["items"]["items"]["items"]["maximum"] == float(np.finfo("f4").max)


@pytest.fixture(scope="module")
def validate(onnx_server: Server) -> Any:
    return _validator(onnx_server)


def _validator(server: Server) -> Any:
    """check(path, method, status, body): the body fits the server's document."""
    spec = server.get("/openapi.json").json()
    jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
    # The spec is one resource; response schemas point into it with $ref.
    registry = Registry().with_resource("urn:tfship", DRAFT202012.create_resource(spec))

    def check(path: str, method: str, status: int, body: Any) -> None:
        template = _match(spec, path)
        if template is None:
            # A call the document does not list (a label no one defined, regress on a
            # classifier) is refused with the error body every refusal has.
            assert status in (400, 404), path
            schema = {"$ref": "#/components/schemas/Error"}
        else:
            response = spec["paths"][template][method]["responses"][str(status)]
            schema = response["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(
            {"$ref": "urn:tfship#" + schema["$ref"][1:]} if "$ref" in schema else schema,
            registry=registry,
        ).validate(body)

    return check


def _match(spec: dict[str, Any], path: str) -> str | None:
    if path in spec["paths"]:
        return path
    for template in spec["paths"]:
        pattern = "^" + re.sub(r"\\{\w+\\}", "[^/:]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


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
        ("get", "/monitoring/drift", None, 200),
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


def test_regress_answer_fits_the_schema(mixed_server: Server) -> None:
    path = "/v1/models/linear:regress"
    answer = mixed_server.post(path, {"examples": [{"features": [1, 2, 3]}]})
    assert answer.status == 200, answer.body
    _validator(mixed_server)(path, "post", 200, answer.json())
