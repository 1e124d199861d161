"""The fast path answers predict and infer exactly as the Flask views do.

Each request goes through the app twice, in process: once as gunicorn hands it over (the
fast path takes it) and once straight to Flask (the fallback the fast path wraps). Status,
body and headers must be the same, for answers and for every kind of refusal.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TrainedRepo

from service import logs
from service.app import create_app
from service.dataplane.plane import DataPlane
from service.models.registry import Registry
from service.protocols.fast_path import FastPath
from service.settings import ServiceSettings


@pytest.fixture(scope="module")
def app(trained_repo: TrainedRepo) -> Iterator[Any]:
    app = create_app(ServiceSettings(model_dir=trained_repo.path, poll_seconds=0, max_rows=50))
    registry = app.extensions["tfship.registry"]
    deadline = time.monotonic() + 60
    while not registry.readiness()[0]:
        assert time.monotonic() < deadline, registry.readiness()
        time.sleep(0.05)
    yield app


def _call(wsgi: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8501",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    started: list[Any] = []
    chunks = wsgi(
        environ, lambda status, response_headers: started.append((status, response_headers))
    )
    body_out = b"".join(chunks)
    status, response_headers = started[0]
    kept = {k: v for k, v in response_headers if k != "X-Request-ID"}
    return status, kept, body_out


def _cases(x: np.ndarray) -> list[tuple[str, str, bytes, dict[str, str]]]:
    json_type = {"Content-Type": "application/json"}
    rows = json.dumps({"instances": x[:3].tolist()}).encode()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [2, 8, 8, 1],
                    "parameters": {"binary_data_size": 2 * 64 * 4},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    binary = header + x[:2].astype(np.float32).tobytes()
    v2_json = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [1, 8, 8, 1],
                    "data": x[0].ravel().tolist(),
                }
            ]
        }
    ).encode()
    binary_type = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    bad_length = {**binary_type, "Inference-Header-Content-Length": "99999"}
    predict = "/v1/models/digits:predict"

    def instances(value: Any, **extra: Any) -> bytes:
        return json.dumps({"instances": value, **extra}).encode()

    return [
        ("rows", predict, rows, json_type),
        ("columns", predict, json.dumps({"inputs": x[:2].tolist()}).encode(), json_type),
        ("top_k", predict, instances(x[:2].tolist(), top_k=2), json_type),
        ("version", "/v1/models/digits/versions/1:predict", rows, json_type),
        ("missing version", "/v1/models/digits/versions/7:predict", rows, json_type),
        ("unknown label", "/v1/models/digits/labels/stable:predict", rows, json_type),
        ("unknown model", "/v1/models/nope:predict", rows, json_type),
        ("bad json", predict, b"{nope", json_type),
        ("no content type", predict, rows, {}),
        ("wrong content type", predict, rows, {"Content-Type": "text/plain"}),
        ("wrong shape", predict, instances([[1, 2, 3]]), json_type),
        ("nan", predict, b'{"instances": [[[[NaN]]]]}', json_type),
        ("too many rows", predict, instances(x[:51].tolist()), json_type),
        ("boolean", predict, instances([[[[True]] * 8] * 8]), json_type),
        ("v2 json", "/v2/models/digits/infer", v2_json, json_type),
        ("v2 binary", "/v2/models/digits/infer", binary, binary_type),
        ("v2 version", "/v2/models/digits/versions/1/infer", v2_json, json_type),
        ("v2 bad header length", "/v2/models/digits/infer", binary, bad_length),
        ("v2 unknown model", "/v2/models/nope/infer", v2_json, json_type),
    ]


@contextmanager
def _fallbacks(fast: FastPath) -> Iterator[tuple[list[str], Any]]:
    """The paths the fast path hands on to Flask while the block runs, and Flask itself."""
    seen: list[str] = []
    flask = fast.fallback

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(environ["PATH_INFO"])
        return flask(environ, start_response)

    fast.fallback = recording
    try:
        yield seen, flask
    finally:
        fast.fallback = flask


def test_fast_path_answers_as_flask_does(app: Any, digits: tuple[np.ndarray, np.ndarray]) -> None:
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    with _fallbacks(fast) as (fallbacks, flask):
        x, _ = digits
        statuses = set()
        for label, path, body, headers in _cases(x):
            through_fast = _call(fast, path, body, headers)
            through_flask = _call(flask, path, body, headers)
            assert through_fast == through_flask, label
            statuses.add(through_fast[0].split()[0])
    assert fallbacks == [], "the fast path passed requests on to Flask"
    # The cases cover answers and refusals alike.
    assert {"200", "400", "404", "415"} <= statuses, statuses


def test_unusual_requests_go_to_flask(app: Any) -> None:
    with _fallbacks(app.wsgi_app) as (seen, _):
        for path in (
            "/v1/models/digits",
            "/v1/models/di%20gits:predict",
            "/v1/models/digits/versions/01:predict",
        ):
            _call(app.wsgi_app, path, b"{}", {"Content-Type": "application/json"})
        chunked = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
        _call(app.wsgi_app, "/v2/models/digits/infer", b'{"instances": [[1]]}', chunked)
    assert seen == [
        "/v1/models/digits",
        "/v1/models/di%20gits:predict",
        "/v1/models/digits/versions/01:predict",
        "/v2/models/digits/infer",
    ]  # fmt: skip


def test_request_id_and_access_line(app: Any, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    body = json.dumps({"instances": x[:1].tolist()}).encode()
    started: list[Any] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/models/digits:predict",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_X_REQUEST_ID": "client-id-42",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
    }
    handler = logs._json_handler
    assert handler is not None
    stream, handler.stream = handler.stream, io.StringIO()
    try:
        b"".join(app.wsgi_app(environ, lambda s, h: started.append((s, dict(h)))))
        written = handler.stream.getvalue()
    finally:
        handler.stream = stream
    assert started[0][0] == "200 OK"
    assert started[0][1]["X-Request-ID"] == "client-id-42"
    lines = [json.loads(line) for line in written.splitlines() if "client-id-42" in line]
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "tfship.access" and line["request_id"] == "client-id-42"
    assert (line["status"], line["model"], line["version"], line["api"]) == (
        200,
        "digits",
        "1",
        "predict",
    )


def test_pathless_environ_is_not_ours(tmp_path: Path) -> None:
    calls: list[str] = []

    def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ.get("REQUEST_METHOD", ""))
        return [b""]

    settings = ServiceSettings(model_dir=tmp_path)
    fast = FastPath(fallback, DataPlane(Registry(settings), settings, keys=None), settings)
    fast({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/models/digits:predict"}, lambda *a: None)
    fast({"REQUEST_METHOD": "POST"}, lambda *a: None)
    assert calls == ["GET", "POST"]


def test_api_keys_are_checked_as_flask_checks_them(
    trained_repo: TrainedRepo, tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        "all-models-key-0123456789 name=ops\nother-models-key-0123456789 models=other\n"
    )
    app = create_app(
        ServiceSettings(model_dir=trained_repo.path, poll_seconds=0, api_keys_file=keys)
    )
    registry = app.extensions["tfship.registry"]
    deadline = time.monotonic() + 60
    while not registry.readiness()[0]:
        assert time.monotonic() < deadline, registry.readiness()
        time.sleep(0.05)
    fast = app.wsgi_app
    flask = fast.fallback
    x, _ = digits
    rows = json.dumps({"instances": x[:1].tolist()}).encode()
    json_type = {"Content-Type": "application/json"}
    bearer = {**json_type, "Authorization": "Bearer all-models-key-0123456789"}

    def key(value: str) -> dict[str, str]:
        return {**json_type, "X-API-Key": value}

    predict = "/v1/models/digits:predict"
    cases = [
        ("no key", predict, json_type),
        ("bad key", predict, key("wrong-key-0123456789")),
        ("bearer", predict, bearer),
        ("header", "/v2/models/digits/infer", key("all-models-key-0123456789")),
        ("other model's key", predict, key("other-models-key-0123456789")),
        ("wrong type", predict, {**bearer, "Content-Type": "text/plain"}),
        ("unknown model", "/v1/models/nope:predict", bearer),
    ]
    statuses = []
    for label, path, headers in cases:
        body = rows if "/v1/" in path else b'{"inputs": []}'
        through_fast = _call(fast, path, body, headers)
        assert through_fast == _call(flask, path, body, headers), label
        statuses.append(through_fast[0].split()[0])
    assert statuses == ["401", "401", "200", "400", "403", "415", "404"]
