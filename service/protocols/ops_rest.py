"""Operational endpoints: liveness (also KServe's V1 ``GET /``), readiness and Prometheus
metrics."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, g

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
    # Built per request: the bodies it describes are those of the versions serving now.
    from service.protocols.openapi import build_spec
    from tfship import __version__

    dataplane = plane()
    spec = build_spec(__version__, dataplane.served_views(g.call), dataplane.limits.max_rows)
    return Response(orjson.dumps(spec), mimetype="application/json")


@blueprint.get("/metrics")
@blueprint.get("/monitoring/prometheus/metrics")  # TF Serving's path, for its scrape configs
def metrics() -> Response:
    body, content_type = exposition(plane().drift.scores())
    return Response(body, content_type=content_type)


@blueprint.get("/monitoring/drift")
def drift() -> Response:
    """Every served version's drift scores with all features (``tfship models --drift``);
    only models the call's API key may use."""
    from service.drift.scores import THRESHOLD

    dataplane = plane()
    client = g.call.client
    versions = [
        s.to_json() for s in dataplane.drift.scores() if client is None or client.may_use(s.model)
    ]
    body = {
        "method": "psi",
        "threshold": THRESHOLD,
        "window": dataplane.settings.drift_window,
        "versions": versions,
    }
    return Response(orjson.dumps(body), mimetype="application/json")
