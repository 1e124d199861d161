"""Request bodies placed for the runtime (service/http_server/body_buffers.py), in-process:
one copy out of the connection's buffer, V2 binary tensors aligned, and decoded as views
of that copy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.codecs.tensor_checks import DeclaredLimits
from service.codecs.v2_tensors import decode_infer
from service.http_server.body_buffers import binary_offset, body_stream, placed_body
from service.models.runtimes.base import Signature, TensorSpec

SIGNATURE = Signature(
    "serving_default",
    (TensorSpec("x", np.dtype(np.float32), (-1, 3)),),
    (TensorSpec("y", np.dtype(np.float32), (-1, 1)),),
)


def _v2_request(header_padding: int) -> tuple[bytes, bytes, np.ndarray]:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    header = json.dumps(
        {
            "id": "p" * header_padding,
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [4, 3],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
        }
    ).encode()
    head = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: h\r\n"
        b"Inference-Header-Content-Length: " + str(len(header)).encode() + b"\r\n"
        b"Content-Length: " + str(len(header) + x.nbytes).encode() + b"\r\n\r\n"
    )
    return head, header + x.tobytes(), x


@pytest.mark.parametrize("header_padding", range(8))
def test_the_binary_tail_starts_on_a_64_byte_boundary_and_decodes_without_a_copy(
    header_padding: int,
) -> None:
    head, body, x = _v2_request(header_padding)
    buffer = bytearray(head + body + b"GET / HTTP/1.1\r\n\r\n")  # a pipelined request after
    placed = placed_body(buffer, len(head), len(head) + len(body), head)
    assert bytes(placed) == body
    header_length = binary_offset(head, len(body))
    tail = np.frombuffer(placed[header_length:], dtype=np.uint8)
    assert tail.ctypes.data % 64 == 0
    del buffer[: len(head) + len(body)]  # the worker trims its buffer: no view holds it
    decoded = decode_infer(placed, str(header_length), SIGNATURE, DeclaredLimits())
    array = decoded.inputs["x"]
    assert np.array_equal(array, x)
    assert array.flags.aligned and np.shares_memory(array, np.frombuffer(placed, np.uint8))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\ninference-header-content-length: 7\r\n\r\n", 7),
        (b"POST / HTTP/1.1\r\nInference-Header-Content-Length:  4 \r\n\r\n", 4),
        (b"POST / HTTP/1.1\r\nInference-Header-Content-Length: x\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\nInference-Header-Content-Length: 11\r\n\r\n", 0),  # past the body
    ],
)
def test_binary_offset_reads_the_header_or_places_nothing(head: bytes, expected: int) -> None:
    assert binary_offset(head, 10) == expected


def test_wsgi_input_reads_the_same_bytes_in_any_pieces() -> None:
    data = b"line one\nline two\n" + bytes(range(256)) * 40
    buffer = bytearray(b"HEAD" + data)
    body = placed_body(buffer, 4, len(buffer), b"")
    assert body_stream(body).read() == data
    stream = body_stream(body)
    assert stream.readline() == b"line one\n"
    pieces = [stream.read(7)]
    while piece := stream.read(1000):
        pieces.append(piece)
    assert b"line one\n" + b"".join(pieces) == data
    assert body_stream(placed_body(bytearray(), 0, 0, b"")).read() == b""


def test_a_body_without_a_binary_tail_is_bytes_copied_once() -> None:
    data = b'{"instances": [[1.0, 2.0, 3.0]]}'
    buffer = bytearray(b"HEAD" + data + b"NEXT")
    body = placed_body(buffer, 4, 4 + len(data), b"POST / HTTP/1.1\r\n\r\n")
    assert type(body) is bytes and body == data
    buffer[4:8] = b"XXXX"  # the worker reuses its buffer: the body is a copy
    assert body == data
