"""Operational endpoints: liveness (also KServe's V1 ``GET /``), readiness and Prometheus
metrics."""

from __future__ import annotations

import functools

import orjson
from flask import Blueprint, Response

from service.metrics import exposition
from service.protocols.flask_calls import plane

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    # Alive means the worker answers; model state is /readyz's business.
    return Response(b'{"status":"ok"}', mimetype="application/json")


@blueprint.get("/")
def root() -> Response:
    # KServe's V1 liveness (its client reads "status" here); the same answer as /healthz's
    # purpose, in the words that client checks.
    return Response(b'{"status":"alive"}', mimetype="application/json")


@blueprint.get("/readyz")
def readyz() -> Response:
    ready, report = plane().ready()
    return Response(orjson.dumps(report), status=200 if ready else 503, mimetype="application/json")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return Response(_openapi_body(), mimetype="application/json")


@functools.cache
def _openapi_body() -> bytes:
    from service.protocols.openapi import build_spec
    from tfship import __version__

    return orjson.dumps(build_spec(__version__))


@blueprint.get("/metrics")
@blueprint.get("/monitoring/prometheus/metrics")  # TF Serving's path, for its scrape configs
def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, content_type=content_type)
