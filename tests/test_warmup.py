"""Warm-up from TF Serving's ``assets.extra/tf_serving_warmup_requests``, written here the
way TF Serving's documentation writes it (``tf.io.TFRecordWriter`` of ``PredictionLog``s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.app import create_app
from service.models.runtimes import load_runtime
from service.models.tfrecord import crc32c, read_records
from service.models.versions import AVAILABLE, END
from service.models.warmup import warm_up
from service.settings import ServiceSettings
from tfship.repository import WARMUP_FILE, read_metadata

tf = pytest.importorskip("tensorflow")
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    predict_pb2,
    prediction_log_pb2,
)


def predict_log(pixels: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def classify_log() -> Any:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "digits"
    example = request.input.example_list.examples.add()
    example.features.feature["pixels"].float_list.value.extend([3.0] * 64)
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=request)
    )


def write_warmup(version_dir: Path, logs: list[Any]) -> Path:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def runtime_of(version_dir: Path) -> Any:
    return load_runtime("onnx", version_dir, read_metadata(version_dir), threads=1)


def test_crc32c_known_answer() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0


def test_replays_every_record_of_the_file(repo_copy: Path) -> None:
    version_dir = repo_copy / "digits" / "1"
    write_warmup(
        version_dir,
        [
            predict_log(np.zeros((1, 8, 8, 1), np.float32)),
            predict_log(np.ones((4, 8, 8, 1)).tolist()),  # float32 from Python floats
            classify_log(),
        ],
    )
    assert warm_up(runtime_of(version_dir), version_dir) == (3, f"requests from {WARMUP_FILE}")


def test_training_writes_a_warmup_file_of_test_rows(repo_copy: Path) -> None:
    """digits.yaml: one single-row request, then one of 8 rows (export.warmup_rows)."""
    version_dir = repo_copy / "digits" / "1"
    assert warm_up(runtime_of(version_dir), version_dir) == (2, f"requests from {WARMUP_FILE}")
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r)
        for r in read_records(version_dir / WARMUP_FILE, 10)
    ]
    shapes = [
        [d.size for d in log.predict_log.request.inputs["pixels"].tensor_shape.dim] for log in logs
    ]
    assert shapes == [[1, 8, 8, 1], [8, 8, 8, 1]]
    assert {log.predict_log.request.model_spec.name for log in logs} == {"digits"}


def test_without_the_file_synthetic_requests_run(repo_copy: Path) -> None:
    version_dir = repo_copy / "digits" / "1"
    (version_dir / WARMUP_FILE).unlink()
    assert warm_up(runtime_of(version_dir), version_dir) == (3, "synthetic requests")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("bad_shape", "record 1): input 'pixels': expected shape [-1, 8, 8, 1] (rank 4)"),
        ("flip_data_byte", "record 0 fails its checksum"),
        ("flip_length_byte", "record 0 has a corrupted length"),
        ("truncate", "record 1 is truncated"),
        ("not_a_log", "record 0): not a PredictionLog"),
        ("empty_log", "record 0): empty requests are not supported"),
        ("empty_file", "holds no request"),
    ],
)
def test_a_bad_warmup_file_fails_the_version(repo_copy: Path, damage: str, message: str) -> None:
    version_dir = repo_copy / "digits" / "1"
    good = predict_log(np.zeros((1, 8, 8, 1), np.float32))
    if damage == "bad_shape":
        path = write_warmup(version_dir, [good, predict_log(np.zeros((1, 8, 8), np.float32))])
    elif damage == "not_a_log":
        path = version_dir / WARMUP_FILE
        path.parent.mkdir(exist_ok=True)
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(b"\xff\xff\xff not a proto")
    elif damage == "empty_log":
        path = write_warmup(version_dir, [prediction_log_pb2.PredictionLog()])
    elif damage == "empty_file":
        path = write_warmup(version_dir, [])
    else:
        path = write_warmup(version_dir, [good, good])
        data = bytearray(path.read_bytes())
        if damage == "flip_data_byte":
            data[20] ^= 0x01
        elif damage == "flip_length_byte":
            data[0] ^= 0x01
        else:
            data = data[:-3]
        path.write_bytes(bytes(data))

    # Through the registry, as a server loads it: the version ends with the reason.
    app = create_app(ServiceSettings(model_dir=repo_copy, poll_seconds=0), load_models=False)
    registry = app.extensions["tfship.registry"]
    registry.poll()
    (served,) = registry.statuses("digits")
    assert served.state == END and served.error_code == "UNKNOWN"
    assert message in served.error_message, served.error_message
    assert registry.readiness()[0] is False

    path.unlink()  # the same version without the file loads (a new poll of a fresh registry)
    app = create_app(ServiceSettings(model_dir=repo_copy, poll_seconds=0), load_models=False)
    registry = app.extensions["tfship.registry"]
    registry.poll()
    assert registry.statuses("digits")[0].state == AVAILABLE
