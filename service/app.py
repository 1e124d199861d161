"""The Flask app factory: settings in, a WSGI app with every blueprint out.

Tests build their own app with their own settings; gunicorn workers build theirs from the
environment (service/wsgi.py).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from service import logs
from service.auth import api_keys_for
from service.dataplane.plane import DataPlane
from service.dataplane.queue_time import REQUEST_START_HEADER
from service.errors import ServingError, internal_error
from service.metrics import start_process_metrics
from service.models.registry import Registry
from service.models.worker_readiness import WorkerBoard
from service.protocols import ops_rest, request_body, tfserving_rest, v2_rest
from service.protocols.allowed_methods import allowed_methods
from service.protocols.fast_path import FastPath
from service.protocols.json_responses import json_response
from service.protocols.request_body import accepted_types, check_request
from service.settings import ServiceSettings

log = logging.getLogger("tfship.app")
# Endpoints that TFSHIP_AUTH_EXEMPT can leave open (setting_parsers.EXEMPTIBLE); the rest are "api".
_PART_OF_ENDPOINT = {
    "ops.root": "health",
    "ops.healthz": "health",
    "ops.readyz": "health",
    "v2_rest.live": "health",
    "v2_rest.ready": "health",
    "ops.metrics": "metrics",
    "ops.openapi": "openapi",
    # The console's page and assets hold no data (what it shows comes from its API, under
    # keys): a browser loads them without a key, then asks for one.
    "console.shell": "open",
    "console.asset": "open",
}
# (protocol, api) metric labels of each API endpoint; the before_request hook sets them.
_API_OF_ENDPOINT = {
    "tfserving_rest.model_status": (tfserving_rest.PROTOCOL, "status"),
    "tfserving_rest.model_metadata": (tfserving_rest.PROTOCOL, "metadata"),
    "tfserving_rest.predict": (tfserving_rest.PROTOCOL, "predict"),
    "tfserving_rest.classify": (tfserving_rest.PROTOCOL, "classify"),
    "tfserving_rest.regress": (tfserving_rest.PROTOCOL, "regress"),
    "v2_rest.model_metadata": (v2_rest.PROTOCOL, "metadata"),
    "v2_rest.model_ready": (v2_rest.PROTOCOL, "ready"),
    "v2_rest.model_configuration": (v2_rest.PROTOCOL, "config"),
    "v2_rest.repository_index": (v2_rest.PROTOCOL, "repository_index"),
    "v2_rest.model_statistics": (v2_rest.PROTOCOL, "stats"),
    "v2_rest.infer": (v2_rest.PROTOCOL, "infer"),
}


def create_app(settings: ServiceSettings | None = None, *, load_models: bool = True) -> Flask:
    settings = settings or ServiceSettings.from_env()
    logs.configure(settings.log_format)
    app = Flask("tfship")
    # One byte over the limit: see request_body.read_body (chunked bodies).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    board = WorkerBoard.from_env(settings.workers)
    registry = Registry(settings, board)
    plane = DataPlane(registry, settings, api_keys_for(settings), board)
    app.extensions["tfship.registry"] = registry
    app.extensions["tfship.dataplane"] = plane
    app.extensions["tfship.settings"] = settings
    app.register_blueprint(ops_rest.blueprint)
    app.register_blueprint(tfserving_rest.blueprint)
    app.register_blueprint(v2_rest.blueprint)
    if settings.ui:
        from service.console import views as console

        app.register_blueprint(console.blueprint)

    def allowed(path: str) -> list[str]:
        return allowed_methods(app, path)

    # The hooks below run on every request: they take the request and ``g`` out of their
    # proxies once, since each proxy lookup costs about as much as the work done with it.
    @app.before_request
    def _start() -> Response | None:
        state = g._get_current_object()
        req = request._get_current_object()  # type: ignore[attr-defined]
        endpoint = req.endpoint
        if req.method == "OPTIONS" and endpoint:
            # Methods only, no model touched: open like health, and never counted as a
            # call of the route's API (its statistics count that API's 200s).
            state.call = plane.begin(None, None, req.headers.get(logs.REQUEST_ID_HEADER, ""))
            state.request_id = state.call.request_id
            return Response(status=204, headers={"Allow": ", ".join(allowed(req.path))})
        # Labelled now so that a request refused here (401, 413, 415...) is counted under
        # its API too; the model once the view knows it.
        protocol, api = _API_OF_ENDPOINT.get(endpoint, (None, None))
        call = state.call = plane.begin(protocol, api, req.headers.get(logs.REQUEST_ID_HEADER, ""))
        state.request_id = call.request_id  # for every log line written meanwhile
        part = _PART_OF_ENDPOINT.get(endpoint, "api") if endpoint else "open"
        if part != "open":
            plane.authenticate(call, req.headers, (req.view_args or {}).get("name"), part)
        if api is not None and req.method == "POST":
            check_request(req, accepted_types(api), settings.max_body_bytes)

    @app.after_request
    def _finish(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        call = g.call
        response.headers[logs.REQUEST_ID_HEADER] = call.request_id
        plane.finish(
            call,
            response.status_code,
            method=req.method,
            path=req.path,
            remote=req.remote_addr,
            queue_header=req.headers.get(REQUEST_START_HEADER),
        )
        return response

    @app.errorhandler(ServingError)
    def _serving_error(error: ServingError) -> Response:
        response = json_response({"error": error.message}, error.status)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        if isinstance(error, RequestEntityTooLarge):
            too_large = request_body.too_large(request.content_length, settings.max_body_bytes)
            return json_response({"error": too_large.message}, too_large.status)
        if isinstance(error, NotFound):
            message = f"no such endpoint: {request.method} {request.path}"
        elif isinstance(error, MethodNotAllowed):
            methods = ", ".join(allowed(request.path))
            message = (
                f"method {request.method} is not allowed on {request.path} (allowed: {methods})"
            )
            response = json_response({"error": message}, 405)
            response.headers["Allow"] = methods
            return response
        else:
            message = error.description or error.name
        return json_response({"error": message}, error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return json_response({"error": internal_error(error)}, 500)

    app.wsgi_app = FastPath(app.wsgi_app, plane, settings)  # type: ignore[method-assign]
    if load_models:
        registry.start()
        start_process_metrics()
    return app
