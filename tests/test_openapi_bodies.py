"""The request schemas of /openapi.json against the decoders, in-process: for a tabular
model (a string, a float and an integer input), each body is allowed by the schema exactly
when the server's decoder takes it. (tests/test_fuzz.py runs schemathesis on a served image
model; this covers what that model has not: several inputs, strings, integers.)"""

from __future__ import annotations

from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from service.codecs.tensor_checks import DeclaredLimits, batch_rows
from service.codecs.tfserving_json import decode_predict
from service.codecs.v2_tensors import decode_infer
from service.dataplane import tasks
from service.errors import InvalidArgument
from service.models.model_view import ModelView, with_aliases
from service.models.runtimes.base import Signature, TensorSpec
from service.protocols import openapi_bodies
from service.protocols.tfserving_rest import _example_inputs

LIMITS = DeclaredLimits(max_rows=4, max_fill_bytes=1 << 20)
SIGNATURE = with_aliases(
    Signature(
        "serving_default",
        (
            TensorSpec("plan", np.dtype(object), (-1, 1)),
            TensorSpec("monthly_price", np.dtype(np.float32), (-1, 1)),
            TensorSpec("tenure", np.dtype(np.int8), (-1, 2)),
        ),
        (TensorSpec("probabilities", np.dtype(np.float32), (-1, 2)),),
    ),
    {},
)
VIEW = ModelView(
    "churn", 1, "onnx", SIGNATURE, "classification", ("stay", "leave"), True, {}, run=None
)  # type: ignore[arg-type]


def _takes(kind: str, body: Any) -> bool:
    """Whether the server's decoder for ``kind`` takes ``body``."""
    try:
        if kind == "predict":
            inputs, _ = decode_predict(body, SIGNATURE)
            batch_rows(inputs, SIGNATURE)  # the dataplane's check, before the model runs
            if isinstance(body, dict) and "top_k" in body:
                tasks.parse_top_k(body["top_k"], VIEW)
        elif kind == "classify":
            _example_inputs(body, SIGNATURE, "classify", LIMITS)
            if "top_k" in body:
                tasks.parse_top_k(body["top_k"], VIEW)
        else:
            batch_rows(decode_infer(orjson.dumps(body), None, SIGNATURE, LIMITS).inputs, SIGNATURE)
    except InvalidArgument:
        return False
    return True


def _allows(kind: str, body: Any) -> bool:
    schema = {
        "predict": lambda: openapi_bodies.predict_request(VIEW, LIMITS.max_rows),
        "classify": lambda: openapi_bodies.examples_request(VIEW, "classify", LIMITS.max_rows),
        "infer": lambda: openapi_bodies.infer_request(VIEW, LIMITS.max_rows),
    }[kind]()
    return jsonschema.Draft202012Validator(schema).is_valid(body)


ROW = {"plan": ["pro"], "monthly_price": [9.5], "tenure": [3, 4]}
FEATURES = {"plan": "pro", "monthly_price": 9.5, "tenure": [3, 4]}  # a lone value bare
COLUMNS = {"plan": [["pro"]], "monthly_price": [[9.5]], "tenure": [[3, 4]]}


def _v2(**changes: Any) -> dict[str, Any]:
    tensors = {
        "plan": {"name": "plan", "datatype": "BYTES", "shape": [1, 1], "data": ["pro"]},
        "monthly_price": {
            "name": "monthly_price",
            "datatype": "FP32",
            "shape": [1, 1],
            "data": [9.5],
        },
        "tenure": {"name": "tenure", "datatype": "INT8", "shape": [1, 2], "data": [3, 4]},
    }
    for name, change in changes.items():
        if change is None:
            del tensors[name]
        else:
            tensors[name] = {**tensors[name], **change}
    return {"inputs": list(tensors.values())}


AGREED = [
    ("predict", {"instances": [ROW, ROW]}, True),
    ("predict", {"instances": [ROW], "top_k": 2}, True),
    ("predict", {"instances": [ROW], "top_k": 2.0}, True),  # JSON's 2.0 is the integer 2
    ("predict", {"instances": [ROW], "top_k": 3}, False),  # two classes
    ("predict", {"instances": [ROW], "signature_name": None}, True),
    ("predict", {"instances": [ROW], "signature_name": "other"}, False),
    ("predict", {"instances": [ROW] * 4}, True),
    ("predict", {"instances": [{**ROW, "extra": [1]}]}, False),
    ("predict", {"instances": [{"plan": ["pro"], "monthly_price": [9.5]}]}, False),
    ("predict", {"instances": [{**ROW, "plan": "pro"}]}, False),  # rank 1, not 2
    ("predict", {"instances": [{**ROW, "plan": [1]}]}, False),
    ("predict", {"instances": [{**ROW, "plan": [True]}]}, False),
    ("predict", {"instances": [{**ROW, "monthly_price": ["9.5"]}]}, False),
    ("predict", {"instances": [{**ROW, "monthly_price": [True]}]}, False),
    ("predict", {"instances": [{**ROW, "monthly_price": [1e39]}]}, False),  # past float32
    ("predict", {"instances": [{**ROW, "monthly_price": [7]}]}, True),
    ("predict", {"instances": [{**ROW, "tenure": [3, 400]}]}, False),  # past int8
    ("predict", {"instances": [{**ROW, "tenure": [3, 4.0]}]}, True),
    ("predict", {"instances": [{**ROW, "tenure": [3, 4.5]}]}, False),
    ("predict", {"instances": [{**ROW, "tenure": [3]}]}, False),
    ("predict", {"instances": []}, False),
    ("predict", {"instances": [ROW], "inputs": COLUMNS}, False),
    ("predict", {"inputs": COLUMNS}, True),
    ("predict", {"inputs": COLUMNS, "top_k": 1}, True),
    ("predict", {"inputs": {**COLUMNS, "tenure": [[3, 4, 5]]}}, False),
    ("predict", {"inputs": {"plan": [["pro"]]}}, False),
    ("predict", {"inputs": [[1]]}, False),  # a bare tensor: the model has several inputs
    ("predict", {}, False),
    ("classify", {"examples": [FEATURES]}, True),
    ("classify", {"examples": [FEATURES], "top_k": 1}, True),
    ("classify", {"examples": [FEATURES], "top_k": 0}, False),
    ("classify", {"examples": [ROW]}, True),
    ("classify", {"examples": [{**FEATURES, "unused": [1, "a", None]}]}, True),
    ("classify", {"examples": [{**FEATURES, "unused": [[1]]}]}, False),
    ("classify", {"examples": [{**FEATURES, "unused": {}}]}, False),
    ("classify", {"examples": [{"monthly_price": 9.5, "tenure": [3, 4]}], "context": ROW}, True),
    ("classify", {"examples": [{"monthly_price": 9.5, "tenure": [3, 4]}]}, False),
    ("classify", {"examples": [FEATURES], "context": {"plan": 5}}, False),  # checked anyway
    ("classify", {"examples": [FEATURES], "context": []}, False),
    ("classify", {"examples": [FEATURES], "context": None}, True),
    ("classify", {"examples": [{**FEATURES, "tenure": [3, True]}]}, False),
    ("classify", {"examples": [{**FEATURES, "tenure": [3, 4, 5]}]}, False),
    ("classify", {"examples": [FEATURES] * 5}, False),  # past max_rows
    ("classify", {"examples": []}, False),
    ("infer", _v2(), True),
    ("infer", _v2(tenure={"shape": [1.0, 2]}), True),
    ("infer", _v2(tenure={"data": [[3, 4]]}), True),
    ("infer", _v2(tenure={"datatype": "INT64"}), False),
    ("infer", _v2(tenure={"data": [3, 400]}), False),
    ("infer", _v2(tenure={"shape": [1, 3]}), False),
    ("infer", _v2(tenure={"shape": [5, 2], "data": [3, 4] * 5}), False),  # past max_rows
    ("infer", _v2(tenure={"parameters": None}), True),
    ("infer", _v2(tenure={"parameters": []}), False),
    ("infer", _v2(tenure=None), False),
    ("infer", {**_v2(), "outputs": [{"name": "probabilities"}]}, True),
    (
        "infer",
        {**_v2(), "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]},
        True,
    ),
    (
        "infer",
        {**_v2(), "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]},
        False,
    ),
    ("infer", {**_v2(), "outputs": [{"name": "probabilities"}, {"name": "probabilities"}]}, False),
    ("infer", {**_v2(), "outputs": [{"name": "scores"}]}, False),
    ("infer", {**_v2(), "parameters": {"binary_data_output": "yes"}}, False),
    ("infer", {**_v2(), "id": 7}, False),
    ("infer", {"inputs": [*_v2()["inputs"], _v2()["inputs"][0]]}, False),
]


@pytest.mark.parametrize(("kind", "body", "taken"), AGREED)
def test_schema_allows_exactly_what_the_server_takes(kind: str, body: Any, taken: bool) -> None:
    assert (_allows(kind, body), _takes(kind, body)) == (taken, taken)


# What JSON Schema cannot relate, the descriptions say; the server refuses these.
BEYOND_SCHEMA = [
    ("predict", {"inputs": {**COLUMNS, "plan": [["pro"], ["basic"]]}}),  # rows disagree
    ("infer", _v2(tenure={"shape": [2, 2]})),  # 4 values declared, 2 sent
    ("infer", _v2(tenure={"shape": [2, 2], "data": [3, 4, 5, 6]})),  # rows disagree
]


@pytest.mark.parametrize(("kind", "body"), BEYOND_SCHEMA)
def test_rules_told_in_words_are_kept_by_the_server(kind: str, body: Any) -> None:
    assert _allows(kind, body) and not _takes(kind, body)


def test_the_descriptions_say_the_rules_json_schema_cannot() -> None:
    predict = openapi_bodies.predict_request(VIEW, 0)
    infer = openapi_bodies.infer_request(VIEW, 0)
    assert openapi_bodies.SAME_ROWS in predict["description"]
    assert (
        "multiply out" in infer["description"] and openapi_bodies.SAME_ROWS in infer["description"]
    )
    assert openapi_bodies.B64 in predict["description"]  # a string input


def test_examples_are_not_offered_for_inputs_of_varying_row_shape() -> None:
    varying = Signature("s", (TensorSpec("tokens", np.dtype(np.int64), (-1, -1)),), ())
    view = ModelView("text", 1, "onnx", varying, "classification", (), True, {}, run=None)  # type: ignore[arg-type]
    assert openapi_bodies.examples_request(view, "classify", 0) is None
