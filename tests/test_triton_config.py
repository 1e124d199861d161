"""Triton's model configuration as tfship writes it: the batching rule, and the same
description as JSON and as config.pbtxt (parsed with Triton's own message)."""

from __future__ import annotations

from google.protobuf import json_format, text_format

from tfship.triton_config import config_pbtxt, model_config
from tfship.version_metadata import TensorInfo


def test_batchable_signatures_leave_the_batch_out_and_others_keep_it() -> None:
    inputs = [TensorInfo("x", "float32", (-1, 3)), TensorInfo("ids", "int64", (-1,))]
    outputs = [TensorInfo("y", "float64", (-1,)), TensorInfo("names", "object", (-1, 2))]
    config = model_config("m", "onnx", inputs, outputs, 64, labels=True)
    assert config["max_batch_size"] == 64
    assert config["input"] == [
        {"name": "x", "data_type": "TYPE_FP32", "dims": [3]},
        # One value per row: Triton wants a dim, reshaped away.
        {"name": "ids", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}},
    ]
    assert config["output"][0]["label_filename"] == "labels.txt"
    assert config["output"][1]["data_type"] == "TYPE_STRING"

    fixed = model_config("f", "savedmodel", [TensorInfo("x", "uint8", (1, 4))], outputs, 64)
    assert (fixed["max_batch_size"], fixed["platform"], fixed["backend"]) == (
        0,
        "tensorflow_savedmodel",
        "tensorflow",
    )
    assert fixed["input"][0]["dims"] == [1, 4]


def test_pbtxt_and_json_describe_the_same_config() -> None:
    from tritonclient.grpc import model_config_pb2

    config = model_config(
        "digits",
        "onnx",
        [TensorInfo("pixels", "float32", (-1, 8, 8, 1))],
        [TensorInfo("probabilities", "float32", (-1, 10)), TensorInfo("v", "float32", (-1,))],
        10000,
        labels=True,
    )
    parsed = text_format.Parse(config_pbtxt(config), model_config_pb2.ModelConfig())
    as_json = json_format.MessageToDict(parsed, preserving_proto_field_name=True)
    assert as_json["max_batch_size"] == 10000 and as_json["name"] == "digits"
    for key in ("input", "output"):
        for ours, theirs in zip(config[key], as_json[key], strict=True):
            assert ours["name"] == theirs["name"]
            assert ours["data_type"] == theirs["data_type"]
            assert ours["dims"] == [int(d) for d in theirs["dims"]]
            assert ("reshape" in ours) == ("reshape" in theirs)
            assert ours.get("label_filename") == theirs.get("label_filename")
