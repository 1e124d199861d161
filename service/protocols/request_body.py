"""Request bodies: Content-Type, size and JSON, checked before any work, with messages that
say what to fix."""

from __future__ import annotations

import zlib

from flask import Request, current_app, request

from service.errors import InvalidArgument, PayloadTooLarge, UnsupportedMediaType

# What JSON endpoints accept. No Content-Type at all is accepted too (tritonclient and many
# hand-written clients send none), and so is curl's default for -d,
# application/x-www-form-urlencoded: TF Serving's documented curl examples send that.
JSON_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})
# V2 infer also takes the binary tensor data extension's bodies.
BINARY_TYPES = frozenset({"application/octet-stream"})
_INFER_TYPES = JSON_TYPES | BINARY_TYPES
# Content-Encodings a request body may arrive in (Triton's client compresses with either);
# zlib's window bits for each: gzip's header, or zlib's (deflate).
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


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
    encodings(request.headers.get("Content-Encoding"))


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
    for encoding in reversed(encodings(request.headers.get("Content-Encoding"))):
        raw = decompress(raw, encoding, limit)
    return raw


def encodings(header: str | None) -> list[str]:
    """The body's Content-Encodings in the order they were applied; 415 for one tfship
    cannot decode."""
    found = [part.strip().lower() for part in (header or "").split(",") if part.strip()]
    found = [e for e in found if e != "identity"]
    for encoding in found:
        if encoding not in _DECODERS:
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding} is not accepted; send the body plain, gzip or deflate"
            )
    return found


def decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    """The decoded body, never more than ``limit`` bytes of it held: a small body that
    inflates past the limit is a 413, found without inflating it all."""
    wbits = _DECODERS[encoding]
    if encoding == "deflate" and raw[:1] and (raw[0] & 0x0F) != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without zlib's header, as some clients send
    decoder = zlib.decompressobj(wbits)
    out = bytearray()
    pending = raw
    try:
        while pending:
            out += decoder.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise PayloadTooLarge(
                    f"request body inflates ({encoding}) past {limit} bytes, the limit "
                    "(TFSHIP_MAX_BODY_BYTES)"
                )
            pending = decoder.unconsumed_tail
            if not pending and decoder.eof and decoder.unused_data and encoding != "deflate":
                # Another gzip member follows (concatenated files are one gzip stream).
                pending = decoder.unused_data
                decoder = zlib.decompressobj(wbits)
        out += decoder.flush()
    except zlib.error as exc:
        raise InvalidArgument(f"request body is not valid {encoding} data: {exc}") from None
    if not decoder.eof:
        raise InvalidArgument(f"request body is truncated {encoding} data")
    if len(out) > limit:
        raise PayloadTooLarge(f"request body inflates past the limit of {limit} bytes")
    return bytes(out)
