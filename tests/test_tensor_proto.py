"""TensorProto -> numpy, checked against TensorFlow's own reader (``tf.make_ndarray``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from service.codecs.tensor_proto import TensorProto, to_numpy
from service.errors import InvalidArgument


def ours(tf_proto: Any) -> np.ndarray:
    proto = TensorProto()
    proto.ParseFromString(tf_proto.SerializeToString())
    return to_numpy(proto, "x")


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
        typed(tf.bool, [0, 4], "bool_val", []),
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
