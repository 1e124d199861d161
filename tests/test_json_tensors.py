"""JSON tensors read straight into arrays (service/codecs/json_tensors.py), in-process.

The reader must give what the reference parse gives (orjson, then numpy) or nothing: the
differential tests run the predict and infer decoders on the same bytes both ways and want
the same arrays, bit for bit, or the same error message.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.codecs import json_tensors
from service.codecs.json_body import parse_json
from service.codecs.json_tensors import parse_tensor_body, read_body, rectangle
from service.codecs.tensor_checks import DeclaredLimits, body_may_hold_bool
from service.codecs.tfserving_json import PREDICT_TENSORS, decode_predict
from service.codecs.v2_tensors import INFER_TENSORS, decode_infer
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec

LIMITS = DeclaredLimits(max_rows=64, max_fill_bytes=1 << 20)


def _signature(*inputs: TensorSpec) -> Signature:
    return Signature("serving_default", inputs, (TensorSpec("y", np.dtype(np.float32), (-1, 1)),))


SIGNATURES = {
    "float32": _signature(TensorSpec("x", np.dtype(np.float32), (-1, 2))),
    "float16": _signature(TensorSpec("x", np.dtype(np.float16), (-1, 2))),
    "float64 any": _signature(TensorSpec("x", np.dtype(np.float64), (-1, -1))),
    "int8": _signature(TensorSpec("x", np.dtype(np.int8), (-1, 2))),
    "int64 rank 3": _signature(TensorSpec("x", np.dtype(np.int64), (-1, 2, 1))),
    "uint8": _signature(TensorSpec("x", np.dtype(np.uint8), (-1, 2))),
    "bool": _signature(TensorSpec("x", np.dtype(np.bool_), (-1, 2))),
    "string": _signature(TensorSpec("x", np.dtype(object), (-1, 2))),
    "two inputs": _signature(
        TensorSpec("a", np.dtype(np.float32), (-1, 2)), TensorSpec("b", np.dtype(np.int32), (-1,))
    ),
}


def test_rectangle_is_the_brackets_and_commas_of_that_shape() -> None:
    for shape in [(1,), (3,), (2, 3), (2, 1, 2), (1, 1, 1, 1)]:
        value = np.zeros(shape, dtype=int).tolist()
        text = json.dumps(value).encode()
        assert rectangle(shape) == bytes(c for c in text if c in b"[],")


@pytest.mark.parametrize(
    "body",
    [
        {"instances": np.round(np.linspace(-1, 1, 32 * 784), 4).reshape(32, 784).tolist()},
        {"instances": [[[[1], [2]], [[3], [4]]]], "signature_name": "serving_default"},
        {"instances": [[1, 2.5], [-0.0, 1e-300]], "top_k": 2},
        {"inputs": {"a": [[1, 2]], "b": [7]}},
        {"inputs": [[9007199254740993, 2]]},  # int64 as it is
        {"inputs": [[1.5, 9223372036854775807]]},  # a float among: numpy's float64
    ],
)
def test_numeric_tensors_come_as_the_arrays_numpy_makes_of_the_lists(body: dict) -> None:
    raw = orjson.dumps(body)
    got = read_body(raw, PREDICT_TENSORS)
    assert got is not None
    _assert_same(got, orjson.loads(raw))


def test_v2_data_comes_as_an_array_and_the_rest_as_orjson_gives_it() -> None:
    body = {
        "id": "r-1",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4.5]},
            {"name": "z", "datatype": "INT32", "shape": [2, 1], "data": [[1], [2]]},
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
        "parameters": None,
    }
    got = read_body(orjson.dumps(body), INFER_TENSORS)
    assert got is not None
    assert isinstance(got["inputs"][0]["data"], np.ndarray)
    assert got["inputs"][1]["data"].dtype == np.int64
    _assert_same(got, body)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"instances": [[1, 2], [3]]}',  # ragged
        b'{"instances": [[1, 2], 3]}',  # mixed depth
        b'{"instances": [[1], [2, 3], []]}',  # ragged, the same count as [3, 1]
        b'{"instances": [[1, true]]}',
        b'{"instances": [[1, null]]}',
        b'{"instances": [["a", "b"]]}',
        b'{"instances": [{"x": [1, 2]}]}',
        b'{"instances": []}',
        b'{"instances": [[]]}',
        b'{"instances": [[1, 2]], "instances": [[3, 4]]}',  # orjson keeps the last
        b'{"signature_name": "a,b", "instances": [[1, 2]]}',  # a comma hiding structure
        b'{"signature_name": "]", "instances": [[1, 2]]}',
        b'\xef\xbb\xbf{"instances": [[1, 2]]}',  # orjson refuses a byte-order mark
        b'{"instances": [[18446744073709551615, 1]]}',  # numpy keeps uint64
        b'{"instances": [[-9223372036854775809, 1]]}',
        b'{"instances": [[123456789012345678901234567890, 1]]}',
        b'{"instances": [[NaN, 1]]}',
        b'{"instances": [[1e400, 1]]}',
        b'{"instances": [[1, 2]]} x',
        b'{"instances": [[1, 2]], "s": "\xff"}',
        b'{"instances": [[1, 2]], "s": "\\ud800"}',
        b'{"instances": [[1, 2]], "a\\u0000b": 1}',  # a key simdjson cannot look up
        b"[" * 100 + b"1" + b"]" * 100,
        b'{"instances": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
        b"",
    ],
)
def test_bodies_the_reader_leaves_to_the_reference_parse(raw: bytes) -> None:
    assert read_body(raw, PREDICT_TENSORS) is None


def test_a_document_left_referenced_does_not_stop_the_reader() -> None:
    import simdjson

    parser = json_tensors._parser(10)
    kept = parser.parse(b"[1, 2]")  # a proxy alive, as a traceback could keep one
    got = read_body(b'{"instances": [[1, 2]]}', PREDICT_TENSORS)
    assert got is not None and got["instances"].tolist() == [[1, 2]]
    assert isinstance(kept, simdjson.Array)


def test_a_big_body_is_read_by_a_parser_of_its_own() -> None:
    rows = np.arange(300_000, dtype=np.float64).reshape(-1, 4).tolist()
    raw = orjson.dumps({"instances": rows})
    assert len(raw) > json_tensors._KEPT_PARSER_BYTES
    got = read_body(raw, PREDICT_TENSORS)
    assert got is not None and np.array_equal(got["instances"], np.asarray(rows))


# --- differential: the decoders on the same bytes, fast and reference ----------------

_leaf = st.one_of(
    st.integers(-300, 300),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(-70000, 70000),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "[", ",", "]", ""]),
)
_tensor = st.recursive(
    st.lists(_leaf, min_size=0, max_size=4),
    lambda inner: st.lists(inner, min_size=0, max_size=3),
    max_leaves=12,
)
_rows = st.one_of(
    _tensor,
    st.integers(1, 3).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(-300, 300) | st.floats(-1e6, 1e6), min_size=2, max_size=2),
            min_size=n,
            max_size=n,
        )
    ),
)
_extra = st.dictionaries(
    st.sampled_from(["signature_name", "top_k", "other", "x,y", "\x00", "a\x00"]),
    st.one_of(st.integers(0, 3), st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2)),
    max_size=2,
)


def _predict_bodies() -> st.SearchStrategy[bytes]:
    columnar = st.one_of(_rows, st.fixed_dictionaries({"a": _rows, "b": _rows}))
    body = st.one_of(
        st.builds(lambda t, e: {**e, "instances": t}, _rows, _extra),
        st.builds(lambda t, e: {**e, "inputs": t}, columnar, _extra),
    )
    return st.builds(_serialize, body, st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")]))


def _serialize(body: Any, separators: tuple[str, str]) -> bytes:
    return json.dumps(body, separators=separators).encode()


def _outcome(run: Any) -> Any:
    try:
        return ("ok", run())
    except InvalidArgument as error:
        return ("refused", error.message)


def _predict_both_ways(raw: bytes, signature: Signature) -> tuple[Any, Any]:
    def fast() -> Any:
        body, may_hold_bool = parse_tensor_body(
            raw, PREDICT_TENSORS, signature.takes_numbers_only, False
        )
        return decode_predict(body, signature, may_hold_bool)

    def reference() -> Any:
        return decode_predict(parse_json(raw), signature, body_may_hold_bool(raw))

    return _outcome(fast), _outcome(reference)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_predict_bodies(), which=st.sampled_from(sorted(SIGNATURES)))
def test_predict_decodes_alike_read_fast_or_not(raw: bytes, which: str) -> None:
    fast, reference = _predict_both_ways(raw, SIGNATURES[which])
    _assert_same(fast, reference)


_V2_TYPES = {"FP32": "float32", "FP16": "float16", "INT8": "int8", "UINT8": "uint8"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_rows,
    datatype=st.sampled_from(sorted(_V2_TYPES)),
    shape=st.sampled_from([[1, 2], [2, 2], [3, 2], [4]]),
)
def test_infer_decodes_alike_read_fast_or_not(data: Any, datatype: str, shape: list[int]) -> None:
    signature = SIGNATURES[_V2_TYPES[datatype]]
    raw = json.dumps(
        {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]}
    ).encode()
    fast = _outcome(lambda: decode_infer(raw, None, signature, LIMITS).inputs)
    with pytest.MonkeyPatch.context() as patched:  # the reference parse alone
        patched.setattr(json_tensors, "read_body", lambda raw, paths: None)
        reference = _outcome(lambda: decode_infer(raw, None, signature, LIMITS).inputs)
    _assert_same(fast, reference)


def test_the_differential_sees_the_fast_path_taken() -> None:
    """The properties above would pass if the reader never read anything."""
    raw = b'{"instances": [[1.5, 2], [3, 4]]}'
    body, may_hold_bool = parse_tensor_body(raw, PREDICT_TENSORS, True, False)
    assert isinstance(body["instances"], np.ndarray) and not may_hold_bool
    fast, reference = _predict_both_ways(raw, SIGNATURES["float32"])
    assert fast[0] == "ok"
    _assert_same(fast, reference)


def _assert_same(got: Any, want: Any) -> None:
    """Equal as JSON values, arrays compared with what numpy makes of the other side."""
    if isinstance(got, np.ndarray) or isinstance(want, np.ndarray):
        got_array, want_array = np.asarray(got), np.asarray(want)
        assert got_array.dtype == want_array.dtype
        assert got_array.shape == want_array.shape
        if got_array.dtype == object:
            assert got_array.tolist() == want_array.tolist()
        else:
            assert got_array.tobytes() == want_array.tobytes()
    elif isinstance(got, dict):
        assert isinstance(want, dict) and list(got) == list(want)
        for key in got:
            _assert_same(got[key], want[key])
    elif isinstance(got, list | tuple):
        assert isinstance(want, list | tuple) and len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            _assert_same(a, b)
    else:
        assert type(got) is type(want) and got == want
