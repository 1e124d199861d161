"""Request bodies: Content-Type, size and JSON, checked before any work, with messages that
say what to fix."""

from __future__ import annotations

from flask import Request, current_app, request

from service.errors import PayloadTooLarge, UnsupportedMediaType

# What JSON endpoints accept. No Content-Type at all is accepted too (tritonclient and many
# hand-written clients send none), and so is curl's default for -d,
# application/x-www-form-urlencoded: TF Serving's documented curl examples send that.
JSON_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})
# V2 infer also takes the binary tensor data extension's bodies.
BINARY_TYPES = frozenset({"application/octet-stream"})
_INFER_TYPES = JSON_TYPES | BINARY_TYPES


def accepted_types(api: str) -> frozenset[str]:
    """The Content-Types an API's POST takes: JSON everywhere, binary too for V2 infer."""
    return _INFER_TYPES if api == "infer" else JSON_TYPES


def too_large(size: int | None, limit: int) -> PayloadTooLarge:
    got = f"{size} bytes" if size is not None else "larger than that"
    return PayloadTooLarge(
        f"request body is {got}; the limit is {limit} bytes (TFSHIP_MAX_BODY_BYTES)"
    )


def check_request(request: Request, accepted: frozenset[str], max_bytes: int) -> None:
    """Refuse a body of the wrong type (415) or a declared size over the limit (413).

    A chunked body has no Content-Length: ``read_body`` catches that one as it reads.
    """
    check_content(request.mimetype, request.content_length, accepted, max_bytes)


def check_content(
    mimetype: str, content_length: int | None, accepted: frozenset[str], max_bytes: int
) -> None:
    """``check_request`` on the values themselves (the fast path has no Flask request)."""
    if mimetype and mimetype not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type {mimetype} is not accepted here; send " + " or ".join(sorted(accepted))
        )
    if content_length is not None and content_length > max_bytes:
        raise too_large(content_length, max_bytes)


def read_body() -> bytes:
    """The request body, or a 413 if it is over the limit.

    The app sets Flask's MAX_CONTENT_LENGTH one byte over the limit: werkzeug stops reading a
    chunked body there (without an error), so a body longer than the limit shows as such.
    """
    limit = current_app.extensions["tfship.settings"].max_body_bytes
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise too_large(request.content_length, limit)
    return raw
