"""The fast path: predict and infer requests answered without Flask's request machinery.

The two requests a model server spends its life on, TF Serving's predict and V2 infer,
are recognized from the WSGI environ and answered here through the same dataplane calls as
the Flask views (``begin``, ``authenticate``, ``hold``, ``finish``) and the same body
functions (``tfserving_rest.predict_body``, ``v2_rest.infer_body``), but with no request
context, URL map, hooks or Response objects, which for a small request cost more than the
model. Anything else, or anything unusual (a chunked body, a path Flask would need to
decode), goes to Flask unchanged, so the Flask views stay the reference and the fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

from service import logs
from service.dataplane.plane import DataPlane
from service.dataplane.queue_time import REQUEST_START_HEADER_ENVIRON
from service.errors import ServingError, internal_error
from service.http_server.body_buffers import BODY_ENVIRON
from service.protocols import tfserving_rest, v2_rest
from service.protocols.json_responses import encode_json
from service.protocols.request_body import accepted_types, check_content
from service.settings import ServiceSettings

log = logging.getLogger("tfship.app")

# Only plain names and versions; anything else is left to Flask's router.
_PREDICT = re.compile(
    r"^/v1/models/([A-Za-z0-9._-]+)(?:/versions/([1-9][0-9]{0,17})|/labels/([A-Za-z0-9._-]+))?"
    r":predict$"
)
_INFER = re.compile(r"^/v2/models/([A-Za-z0-9._-]+)(?:/versions/([1-9][0-9]{0,17}))?/infer$")
_JSON_HEADERS = [("Content-Type", "application/json")]
# Status lines as werkzeug writes them, so both paths answer byte for byte alike.
_STATUS_LINES = {code: f"{code} {reason.upper()}" for code, reason in HTTP_STATUS_CODES.items()}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastPath:
    def __init__(self, fallback: WsgiApp, plane: DataPlane, settings: ServiceSettings) -> None:
        self.fallback = fallback
        self.plane = plane
        self.max_body_bytes = settings.max_body_bytes
        self.checks_keys = plane.checks_keys()
        # The environ key of the header that may carry the API key besides Authorization.
        self._key_header = settings.api_key_header
        self._key_variable = "HTTP_" + settings.api_key_header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            path = environ.get("PATH_INFO", "")
            length = environ.get("CONTENT_LENGTH", "")
            # No Content-Length: a chunked body, which Flask reads with its own limit; a
            # compressed one is decoded there too.
            if (
                length.isdigit()
                and "HTTP_TRANSFER_ENCODING" not in environ
                and "HTTP_CONTENT_ENCODING" not in environ
            ):
                match = _PREDICT.match(path)
                if match:
                    name, version, label = match.groups()
                    return self._serve(
                        environ, start_response, tfserving_rest.PROTOCOL, "predict",
                        name, version, label, int(length),
                    )  # fmt: skip
                match = _INFER.match(path)
                if match:
                    name, version = match.groups()
                    return self._serve(
                        environ, start_response, v2_rest.PROTOCOL, "infer",
                        name, version, None, int(length),
                    )  # fmt: skip
        return self.fallback(environ, start_response)

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        protocol: str,
        api: str,
        name: str,
        version: str | None,
        label: str | None,
        length: int,
    ) -> Iterable[bytes]:
        plane = self.plane
        call = plane.begin(protocol, api, environ.get("HTTP_X_REQUEST_ID", ""))
        token = logs.CURRENT_REQUEST_ID.set(call.request_id)
        headers: list[tuple[str, str]]
        try:
            if self.checks_keys:  # as app.py's _start hook, in the same order
                presented = {
                    "Authorization": environ.get("HTTP_AUTHORIZATION", ""),
                    self._key_header: environ.get(self._key_variable, ""),
                }
                plane.authenticate(call, presented, name)
            mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            check_content(mimetype, length, accepted_types(api), self.max_body_bytes)
            with plane.hold(call, name, int(version) if version else None, label) as model:
                # tfship's worker hands the body over as it read it (body_buffers.py);
                # another server through wsgi.input, at most ``length`` bytes, which
                # check_content held to the limit.
                raw = environ.get(BODY_ENVIRON)
                if raw is None or len(raw) != length:
                    raw = environ["wsgi.input"].read(length)
                if api == "predict":
                    body = encode_json(tfserving_rest.predict_body(plane, model, raw))
                    headers = list(_JSON_HEADERS)
                else:
                    body, extra = v2_rest.infer_body(
                        plane, model, raw, environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
                    )
                    headers = list(extra.items())
            status = 200
        except ServingError as error:
            status = error.status
            body = encode_json({"error": error.message})
            headers = [*_JSON_HEADERS, *error.headers.items()]
        except Exception as error:  # a bug: log it, answer 500, keep serving
            log.exception("unhandled error")
            status = 500
            body = encode_json({"error": internal_error(error)})
            headers = list(_JSON_HEADERS)
        finally:
            logs.CURRENT_REQUEST_ID.reset(token)
        headers.append(("Content-Length", str(len(body))))
        headers.append((logs.REQUEST_ID_HEADER, call.request_id))
        plane.finish(
            call,
            status,
            method="POST",
            path=environ.get("PATH_INFO", ""),
            remote=environ.get("REMOTE_ADDR"),
            queue_header=environ.get(REQUEST_START_HEADER_ENVIRON),
        )
        start_response(_STATUS_LINES.get(status, f"{status} UNKNOWN"), headers)
        return [body]
