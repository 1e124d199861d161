"""TensorProto -> numpy, checked against TensorFlow's own reader (``tf.make_ndarray``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from service.codecs.tensor_checks import DeclaredLimits
from service.codecs.tensor_proto import TensorProto, to_numpy
from service.errors import InvalidArgument
from service.models.runtimes.base import TensorSpec

LIMITS = DeclaredLimits(max_rows=10_000, max_fill_bytes=16 * 2**20)


def ours(tf_proto: Any, spec_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decoded by tfship for an input of the proto's own shape (or ``spec_shape``)."""
    proto = TensorProto()
    proto.ParseFromString(tf_proto.SerializeToString())
    shape = spec_shape or tuple(dim.size for dim in proto.tensor_shape.dim)
    return to_numpy(proto, TensorSpec("x", np.dtype(np.float32), shape), "x", LIMITS)


def typed(dtype: Any, shape: list[int], field: str, values: list[Any]) -> Any:
    """A proto with its values in a typed field, as TF Serving's clients may send it."""
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    getattr(proto, field).extend(values)
    return proto


@pytest.mark.parametrize(
    "proto",
    [
        tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3)),  # tensor_content
        typed(tf.float32, [2, 2], "float_val", [1.5]),  # one value fills the shape
        typed(tf.float32, [3], "float_val", [1.0, 2.0, 3.0]),
        typed(tf.int64, [2, 1], "int64_val", [7]),
        typed(tf.float16, [2], "half_val", [15360]),  # bit pattern of 1.0
        typed(tf.string, [2, 2], "string_val", [b"a"]),
        typed(tf.string, [3], "string_val", [b"a", b"bb", b"c"]),
        typed(tf.bool, [1, 2], "bool_val", [True, False]),
    ],
)
def test_reads_what_tensorflow_reads(proto: Any) -> None:
    expected = tf.make_ndarray(proto)
    got = ours(proto)
    assert got.shape == expected.shape
    if expected.dtype.kind == "O":  # TensorFlow keeps bytes; tfship decodes UTF-8 text
        np.testing.assert_array_equal(got, np.vectorize(bytes.decode)(expected))
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "proto, message",
    [
        (typed(tf.float32, [3], "float_val", [1.0, 2.0]), "x: 2 values for shape [3] (3 elements)"),
        (typed(tf.string, [3], "string_val", [b"a", b"b"]), "x: 2 strings for shape [3] (3 el"),
        (typed(tf.string, [1], "string_val", [b"\xff"]), "x: strings must be UTF-8 text"),
    ],
)
def test_refuses_what_does_not_fit(proto: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ours(proto)
    assert str(caught.value).startswith(message)


def declared(shape: list[int]) -> Any:
    """A tiny proto declaring ``shape``, filled from one float (TensorFlow's convention)."""
    return typed(tf.float32, shape, "float_val", [1.0])


@pytest.mark.parametrize(
    "shape, spec_shape, message",
    [
        # 2^22 rows from one float_val: 2 GiB before the row limit used to see it.
        ([2**22, 8, 8, 1], (-1, 8, 8, 1), "request has 4194304 rows; the limit is 10000"),
        ([2**32, 2**32, 8, 1], (-1, 8, 8, 1), "x: dimension 1 must be 8, got 4294967296"),
        ([1] * 65, (-1, 8, 8, 1), "x: expected shape [-1, 8, 8, 1] (rank 4), got shape [1, 1"),
        # Dynamic inner dimensions: the row limit holds, the fill is capped in bytes.
        ([10, 2**30], (-1, -1), "x: one value cannot fill 10737418240 elements"),
    ],
)
def test_declared_shapes_are_refused_before_any_allocation(
    shape: list[int], spec_shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ours(declared(shape), spec_shape)
    assert message in str(caught.value)


def test_one_value_still_fills_a_shape_within_the_limits() -> None:
    np.testing.assert_array_equal(ours(declared([3, 2]), (-1, 2)), np.ones((3, 2), np.float32))


def test_half_val_outside_the_float16_bit_patterns_is_refused() -> None:
    # 65536 + 15360 wrapped to 1.0 before: refused, not read as another number.
    proto = typed(tf.float16, [2], "half_val", [15360, 65536 + 15360])
    with pytest.raises(InvalidArgument) as caught:
        ours(proto)
    assert "half_val holds float16 bit patterns, 0..65535; got 15360..80896" in str(caught.value)


def test_integers_a_float32_input_cannot_hold_exactly_are_refused() -> None:
    from service.codecs.tensor_proto import to_dtype

    exact = np.array([1, -(2**24), 2**24, 2**40], np.int64)  # 2^40 is a float32 too
    np.testing.assert_array_equal(to_dtype(exact, np.dtype(np.float32), "x"), exact)
    with pytest.raises(InvalidArgument) as caught:
        to_dtype(np.array([2**24 + 1], np.int64), np.dtype(np.float32), "x")
    assert "integers beyond ±16777216 do not convert exactly to float32" in str(caught.value)
    # Floats are rounded to the nearest float32, as TF Serving does.
    assert to_dtype(np.array([0.1]), np.dtype(np.float32), "x")[0] == np.float32(0.1)
