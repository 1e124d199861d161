"""The console's blueprint: the page and its assets (open: they hold no data) and the JSON
the page reads (under API keys, like the models it describes).

Everything is served from the package: no CDN, no build step. Every answer carries a
Content-Security-Policy that allows this origin's script, style and fetches only, so a
model or class name, which the page only ever writes as text, could not run as script even
if it were written as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Response, g

from service.errors import NotFound
from service.models.model_view import ModelView
from service.protocols.flask_calls import plane

blueprint = Blueprint("console", __name__, url_prefix="/ui")

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _asset(name: str) -> Response:
    path = STATIC / name
    if path.suffix not in _TYPES or not path.is_file() or path.parent != STATIC:
        raise NotFound(f"no such console file: {name}")
    return _secured(Response(path.read_bytes(), content_type=_TYPES[path.suffix]))


@blueprint.get("/")
def shell() -> Response:
    return _asset("index.html")


@blueprint.get("/assets/<name>")
def asset(name: str) -> Response:
    return _asset(name)


def _json(body: Any) -> Response:
    return _secured(Response(orjson.dumps(body), mimetype="application/json"))


def _summary(view: ModelView) -> dict[str, Any]:
    gate = view.facts.get("quality_gate") or {}
    return {
        "runtime": view.runtime,
        "verified": view.verified,
        "task": view.task,
        "created": view.facts.get("created"),
        "metric": {"name": gate.get("metric"), "value": gate.get("value")} if gate else None,
        "variants": sorted(view.facts.get("compression") or {}),
    }


@blueprint.get("/api/models")
def models() -> Response:
    """Every model the key may use: each version's state (and error), the serving one, the
    labels, and for served versions their runtime and gated test metric."""
    dataplane = plane()
    views = {v.name: v for v in dataplane.served_views(g.call)}
    described = dataplane.ready(this_worker=True)[1].get("models", {})
    found: dict[str, dict[str, Any]] = {}
    for name, status in dataplane.repository(g.call):
        entry = found.setdefault(name, {"name": name, "versions": []})
        # The artifact a model config chose (model.int8.onnx), or none: the float model.
        entry["variant"] = described.get(name, {}).get("variant")
        served = views.get(name)
        entry["serving"] = served.default.version if served and served.default else None
        entry["labels"] = (
            {label: view.version for label, view in served.labels.items()} if served else {}
        )
        if status is None:
            continue
        version: dict[str, Any] = {"version": status.version, "state": status.state}
        if status.error_message:
            version["error"] = {"code": status.error_code, "message": status.error_message}
        view = served.versions.get(status.version) if served else None
        if view is not None:
            version.update(_summary(view))
        entry["versions"].append(version)
    for entry in found.values():
        entry["versions"].reverse()  # newest first
    return _json({"models": list(found.values())})


@blueprint.get("/api/models/<name>/versions/<int:version>")
def version(name: str, version: int) -> Response:
    """One served version: signature, class names and everything its metadata shows."""
    dataplane = plane()
    for served in dataplane.served_views(g.call):
        if served.name == name and version in served.versions:
            view = served.versions[version]
            return _json(
                {
                    "name": name,
                    "version": version,
                    **_summary(view),
                    "class_names": list(view.class_names),
                    "signature": {
                        "name": view.signature.name,
                        "inputs": [_tensor(t) for t in view.signature.inputs],
                        "outputs": [_tensor(t) for t in view.signature.outputs],
                    },
                    **view.facts,
                }
            )
    raise NotFound(f"model '{name}' has no served version {version}")


def _tensor(spec: Any) -> dict[str, Any]:
    import numpy as np

    return {"name": spec.name, "dtype": np.dtype(spec.dtype).name, "shape": list(spec.shape)}
