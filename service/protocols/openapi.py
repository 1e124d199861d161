"""The OpenAPI 3.1 description of every REST endpoint, served at ``/openapi.json``.

Calls without a body are described once, by path template; calls with one (predict,
classify, regress, infer) once per served model and way to name its version, with that
version's request schema (openapi_bodies.py). tests/test_openapi.py keeps it true: every
path is one of the app's routes and every route is described, live responses fit the
schemas, and tests/test_fuzz.py runs schemathesis with all its checks against it.
"""

from __future__ import annotations

from typing import Any

from service.models.model_view import ModelView, ServedViews
from service.protocols import openapi_bodies
from service.protocols.openapi_schemas import SCHEMAS

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_METRICS = {
    "get": {
        "summary": "Prometheus metrics, summed over workers (also at TF Serving's path)",
        "responses": {
            "200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }
}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "bad request",
        401: "no valid API key (only when API keys are on)",
        403: "the API key may not use this model",
        404: "unknown model, version, label or path",
        413: "request body over the size limit (TFSHIP_MAX_BODY_BYTES)",
        415: "Content-Type not accepted",
        503: "model loading or failed to load",
        504: "model compute stopped at the request timeout",
    }
    return {str(code): _json(ERROR, words[code]) for code in codes}


NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
LABEL = {"name": "label", "in": "path", "required": True, "schema": {"type": "string"}}


def _variants(base: str, suffix: str, labels: bool) -> list[tuple[str, list[dict[str, Any]]]]:
    """``base{suffix}``, by version, and (TF Serving only) by label."""
    found = [(base + suffix, [NAME]), (f"{base}/versions/{{version}}{suffix}", [NAME, VERSION])]
    if labels:
        found.append((f"{base}/labels/{{label}}{suffix}", [NAME, LABEL]))
    return found


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _build_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": 'Liveness in KServe\'s V1 words: {"status": "alive"}',
                "responses": {"200": _json({"type": "object"}, "the process answers")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "responses": {"200": _json({"type": "object"}, "the process answers")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: every model has an AVAILABLE version",
                "responses": {
                    "200": _json(_ref("Readiness"), "ready"),
                    "503": _json(_ref("Readiness"), "not ready"),
                },
            }
        },
        "/metrics": _METRICS,
        "/monitoring/prometheus/metrics": _METRICS,
        "/monitoring/drift": {
            "get": {
                "summary": "Drift of every served version against its training baseline: the "
                "population stability index of each input, feature and the predictions over "
                "the latest requests (the models the API key may use)",
                "responses": {"200": _json(_ref("DriftReport"), "the scores")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This description",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "V2 server liveness",
                "responses": {"200": _json(_ref("V2Live"), "live")},
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "V2 server readiness: the status code, and the body KServe reads",
                "responses": {
                    "200": _json(_ref("V2Ready"), "ready"),
                    "400": _json(_ref("V2Ready"), "not ready"),
                },
            }
        },
        "/v2/repository/index": {
            "post": {
                "summary": "Triton's repository index: every model version and its state",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("V2IndexRequest")}},
                },
                "responses": {
                    "200": _json(_ref("V2RepositoryIndex"), "index"),
                    **_errors(400, 413, 415),
                },
            }
        },
        "/v2": {
            "get": {
                "summary": "V2 server metadata",
                "responses": {"200": _json(_ref("V2ServerMetadata"), "server metadata")},
            }
        },
    }
    for path, params in _variants("/v1/models/{name}", "", labels=True):
        paths[path] = {
            "get": {
                "summary": "TF Serving model status",
                "parameters": params,
                "responses": {"200": _json(_ref("ModelStatus"), "status"), **_errors(404)},
            }
        }
    for path, params in _variants("/v1/models/{name}", "/metadata", labels=True):
        paths[path] = {
            "get": {
                "summary": "TF Serving model metadata",
                "parameters": params,
                "responses": {"200": _json(_ref("ModelMetadata"), "metadata"), **_errors(404, 503)},
            }
        }
    for path, params in _variants("/v2/models/{name}", "", labels=False):
        paths[path] = {
            "get": {
                "summary": "V2 model metadata",
                "parameters": params,
                "responses": {
                    "200": _json(_ref("V2ModelMetadata"), "metadata"),
                    **_errors(404, 503),
                },
            }
        }
    for path, params in _variants("/v2/models/{name}", "/ready", labels=False):
        paths[path] = {
            "get": {
                "summary": "V2 model readiness: the status code, and a body",
                "parameters": params,
                "responses": {
                    "200": _json(_ref("V2ModelReady"), "ready"),
                    "400": _json(_ref("V2ModelReady"), "not ready"),
                    **_errors(404),
                },
            }
        }
    for path, params in _variants("/v2/models/{name}", "/config", labels=False):
        paths[path] = {
            "get": {
                "summary": "Triton's model configuration (inputs, outputs, dims, max_batch_size)",
                "parameters": params,
                "responses": {
                    "200": _json(_ref("TritonModelConfig"), "configuration"),
                    **_errors(404, 503),
                },
            }
        }
    stats = {
        "summary": "Triton's inference statistics: request, queue and compute counts and times",
        "responses": {"200": _json(_ref("TritonStatistics"), "statistics"), **_errors(404)},
    }
    paths["/v2/models/stats"] = {"get": stats}
    for path, params in _variants("/v2/models/{name}", "/stats", labels=False):
        paths[path] = {"get": {**stats, "parameters": params}}
    return paths


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _targets(views: ServedViews, base: str, labels: bool) -> list[tuple[str, ModelView, str]]:
    """Where a model's calls go: by default, by each AVAILABLE version, by each label."""
    found = []
    if views.default is not None:
        found.append(
            (base, views.default, f"the version served by default (now {views.default.version})")
        )
    found += [
        (f"{base}/versions/{version}", view, f"version {version}")
        for version, view in sorted(views.versions.items())
    ]
    if labels:
        found += [
            (f"{base}/labels/{label}", view, f"label '{label}' (version {view.version})")
            for label, view in views.labels.items()
        ]
    return found


_V2_BINARY = (
    " The binary tensor extension is taken too, though not described by this schema: with "
    "an Inference-Header-Content-Length header, that many bytes of this JSON come first, "
    "inputs give parameters.binary_data_size instead of data, and their raw little-endian "
    "bytes follow in input order."
)


def _model_paths(views: ServedViews, max_rows: int) -> dict[str, Any]:
    """Each model's calls with bodies, one path per way to name its version, each with the
    request schema of the version that path reaches (service/protocols/openapi_bodies.py)."""
    name = views.name
    paths: dict[str, Any] = {}
    failures = _errors(400, 404, 413, 415, 503, 504)
    for base, view, which in _targets(views, f"/v1/models/{name}", labels=True):
        paths[f"{base}:predict"] = {
            "post": {
                "summary": f"TF Serving predict: model '{name}', {which}",
                "requestBody": _body(openapi_bodies.predict_request(view, max_rows)),
                "responses": {"200": _json(_ref("PredictResponse"), "predictions"), **failures},
            }
        }
        # Only the API the model's task answers (the other is a 400).
        verb = {"classification": "classify", "regression": "regress"}.get(view.task)
        examples = openapi_bodies.examples_request(view, verb, max_rows) if verb else None
        if verb and examples is not None:
            response = "ClassifyResponse" if verb == "classify" else "RegressResponse"
            paths[f"{base}:{verb}"] = {
                "post": {
                    "summary": f"TF Serving {verb} (tf.Example-style features): model "
                    f"'{name}', {which}",
                    "requestBody": _body(examples),
                    "responses": {"200": _json(_ref(response), "results"), **failures},
                }
            }
    for base, view, which in _targets(views, f"/v2/models/{name}", labels=False):
        paths[f"{base}/infer"] = {
            "post": {
                "summary": f"V2 inference: model '{name}', {which}",
                "description": "JSON tensors in, JSON (or, when asked, binary) tensors out."
                + _V2_BINARY,
                "requestBody": _body(openapi_bodies.infer_request(view, max_rows)),
                "responses": {
                    "200": {
                        "description": "outputs; binary ones after the JSON header",
                        "content": {
                            "application/json": {"schema": _ref("V2InferResponse")},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **failures,
                },
            }
        }
    return paths


def build_spec(version: str, served: list[ServedViews], max_rows: int) -> dict[str, Any]:
    """The document for the models ``served`` now (``max_rows``: TFSHIP_MAX_ROWS)."""
    paths = _build_paths()
    for views in served:
        paths.update(_model_paths(views, max_rows))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tfship",
            "version": version,
            "description": "TensorFlow Serving REST API and the Open Inference Protocol "
            "(V2) over one model registry. Calls that take a body are listed per model and "
            "version, with that version's request schema; the document changes as "
            "versions come and go.",
        },
        "paths": _with_security(paths),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


# Open by default even when API keys are on (TFSHIP_AUTH_EXEMPT); /openapi.json can be too.
_OPEN_PATHS = {
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/monitoring/prometheus/metrics",
    "/v2/health/live",
    "/v2/health/ready",
}


def _with_security(paths: dict[str, Any]) -> dict[str, Any]:
    """API keys are optional (off by default): {} in the list says a call may carry none."""
    for path, operations in paths.items():
        if path in _OPEN_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{}, {"bearer": []}, {"apiKey": []}]
            operation["responses"].update(_errors(401, 403))
    return paths
