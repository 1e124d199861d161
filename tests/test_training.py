"""The training pipeline on the real digits config: accuracy, artifacts, metadata, publish."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    DIGITS_CONFIG,
    GATE_OFF,
    ROOT,
    TrainedRepo,
    quiet_env,
    run_python_json,
    run_training,
    training_command,
)

from tfship.repository import TEMP_PREFIX, list_versions
from training.config_file import load_config


def test_training_publishes_version_1_with_all_artifacts(trained_repo: TrainedRepo) -> None:
    assert list_versions(trained_repo.path / "digits") == [1]
    folder = trained_repo.version_dir
    for name in ("saved_model.pb", "variables/variables.index", "model.onnx", "metadata.json"):
        assert (folder / name).is_file(), name
    assert not [
        p for p in (trained_repo.path / "digits").iterdir() if p.name.startswith(TEMP_PREFIX)
    ]
    # Progress is shown stage by stage and per epoch.
    assert "[1/6] data" in trained_repo.log and "Epoch 1/" in trained_repo.log
    assert "[6/6] published digits version 1" in trained_repo.log


def test_metadata_follows_the_contract(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    assert meta["format_version"] == 1
    assert (meta["name"], meta["version"], meta["task"]) == ("digits", 1, "classification")
    assert meta["inputs"] == [
        {
            "name": "pixels",
            "dtype": "float32",
            "shape": [-1, 8, 8, 1],
            "tf_name": "serving_default_pixels:0",
        }
    ]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities"]
    assert meta["outputs"][0]["shape"] == [-1, 10]
    assert meta["class_names"] == [str(i) for i in range(10)]
    (pre,) = meta["preprocessing"]
    assert pre["layer"] == "Normalization" and pre["adapted_on"] == "train split"
    # Adapted on raw 0..16 pixels of the train split: mean about 4.9, variance about 36.
    assert 4.0 < pre["mean"] < 6.0 and 30 < pre["variance"] < 42
    assert meta["training_config"] == load_config(DIGITS_CONFIG).to_dict()
    assert (
        meta["training_config"]["model"]["conv_filters"]
        == yaml.safe_load(DIGITS_CONFIG.read_text())["model"]["conv_filters"]
    )
    assert meta["data"]["rows"] == {"train": 1257, "val": 270, "test": 270}
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["rows"] == 270
    sig = meta["tf_serving_signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert [d["size"] for d in sig["inputs"]["pixels"]["tensor_shape"]["dim"]] == [
        "-1",
        "8",
        "8",
        "1",
    ]


def test_every_artifact_file_has_its_sha256(trained_repo: TrainedRepo) -> None:
    folder = trained_repo.version_dir
    listed: dict[str, str] = {}
    for artifact in trained_repo.metadata()["artifacts"].values():
        listed.update(artifact["files"])
    on_disk = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "metadata.json"
    }
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel


def test_accuracy_and_speed_targets(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    for artifact in ("keras", "savedmodel", "onnx"):
        assert meta["metrics"][artifact]["accuracy"] >= 0.95, artifact
        assert meta["metrics"][artifact]["rows"] == 270
    # Target: under 60 s on 2 cores, from config to published version.
    assert meta["training"]["total_seconds"] < 60
    assert meta["training"]["best_epoch"] <= meta["training"]["epochs_run"]


def test_published_onnx_takes_raw_pixels(
    trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """Checked here, independently of the pipeline: raw 0..16 pixels in, right digits out."""
    import onnxruntime as ort

    x, y = digits
    session = ort.InferenceSession(
        str(trained_repo.version_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    probabilities = session.run(["probabilities"], {"pixels": x})[0]
    assert probabilities.shape == (len(x), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities.argmax(axis=1) == y).mean() >= 0.95


def test_savedmodel_and_onnx_agree_on_the_whole_dataset(
    trained_repo: TrainedRepo, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    code = (
        "import json,sys,numpy as np,tensorflow as tf,onnxruntime as ort\n"
        "from sklearn.datasets import load_digits\n"
        "x=load_digits().images.astype(np.float32)[...,None]\n"
        "f=tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "a=f(pixels=tf.constant(x))['probabilities'].numpy()\n"
        "s=ort.InferenceSession(sys.argv[1]+'/model.onnx',providers=['CPUExecutionProvider'])\n"
        "b=s.run(None,{'pixels':x})[0]\n"
        "print(json.dumps(float(np.abs(a-b).max())))\n"
    )
    assert run_python_json(code, str(trained_repo.version_dir)) <= 1e-4


def test_second_run_publishes_version_2_and_failed_run_publishes_nothing(repo_copy: Path) -> None:
    before = {p: p.read_bytes() for p in (repo_copy / "digits" / "1").rglob("*") if p.is_file()}
    ok = run_training(repo_copy, "fit.epochs=1", *GATE_OFF)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert list_versions(repo_copy / "digits") == [1, 2]
    assert json.loads((repo_copy / "digits" / "2" / "metadata.json").read_text())["version"] == 2
    assert {p: p.read_bytes() for p in before} == before, "version 1 must not change"

    # A parity tolerance no float model can meet: the run must fail after export, and
    # leave neither a version 3 nor its staging folder behind.
    failed = run_training(repo_copy, "fit.epochs=1", "export.parity_tolerance=1e-15", *GATE_OFF)
    assert failed.returncode == 1
    assert "export failed: ONNX output differs from TensorFlow" in failed.stderr
    assert "nothing was published" in failed.stderr
    assert list_versions(repo_copy / "digits") == [1, 2]
    assert not [p for p in (repo_copy / "digits").iterdir() if p.name.startswith(".")]


def test_killed_during_export_publishes_nothing_and_the_next_run_cleans_up(
    repo_copy: Path,
) -> None:
    """SIGKILL while tf2onnx converts: no version appears, only a staging folder, which the
    next run removes before it publishes."""
    run = subprocess.Popen(
        training_command(repo_copy, "fit.epochs=1", *GATE_OFF),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        start_new_session=True,  # its own process group: the converter dies with it
    )
    seen = []
    assert run.stderr is not None
    for line in run.stderr:  # ends when the run does, at the latest
        seen.append(line)
        if "export: ONNX" in line:
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    root = repo_copy / "digits"
    assert list_versions(root) == [1]
    (staging,) = [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert (staging / "saved_model.pb").is_file()  # killed mid-export, not before it

    again = run_training(repo_copy, "fit.epochs=1", *GATE_OFF)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"removed leftover staging folder {staging.name}" in again.stderr
    assert list_versions(root) == [1, 2]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fit.epochz=3", "fit.epochz: unknown key"),
        ("fit.epochs=ten", "fit.epochs: expected an integer, got str 'ten'"),
        ("fit.epochs=0", "fit.epochs: must be at least 1"),
        (
            "model.architecture=transformer",
            "model.architecture: expected one of 'mlp', 'cnn', 'rnn'",
        ),
        ("data.split.train=0.9", "data.split: train + val + test must sum to 1"),
        ("name=../evil", "name: '../evil' is not a valid model name"),
        ("fit", "--set 'fit': expected KEY=VALUE"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(tmp_path: Path, override: str, message: str) -> None:
    started = time.monotonic()
    result = run_training(tmp_path, override)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written for a bad config"
    # The config is checked before TensorFlow is imported.
    assert time.monotonic() - started < 15


def test_missing_and_invalid_config_files(tmp_path: Path) -> None:
    missing = run_training(tmp_path, config=tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "cannot read config" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    invalid = run_training(tmp_path / "repo", config=broken)
    assert invalid.returncode == 2 and "is not valid YAML" in invalid.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "is empty" in run_training(tmp_path / "repo", config=empty).stderr


def test_tfship_train_is_the_same_command(tmp_path: Path) -> None:
    """``tfship train`` and ``python -m training`` share flags and behaviour."""
    from conftest import tfship_command

    result = subprocess.run(
        [
            *tfship_command(),
            "train",
            str(DIGITS_CONFIG),
            "--model-dir",
            str(tmp_path),
            "--set",
            "fit.nope=1",
        ],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
    )
    assert result.returncode == 2 and "fit.nope: unknown key" in result.stderr


def test_numbers_in_exponent_notation_are_numbers(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` as a string; the config must still take it as a number."""
    config = tmp_path / "c.yaml"
    config.write_text(
        DIGITS_CONFIG.read_text().replace("learning_rate: 0.002", "learning_rate: 2e-3")
    )
    assert load_config(config).fit.learning_rate == 0.002
    assert (
        load_config(DIGITS_CONFIG, ["export.parity_tolerance=1e-6"]).export.parity_tolerance == 1e-6
    )


def test_savedmodel_has_tf_serving_classify_signature(trained_repo: TrainedRepo) -> None:
    """For TF Serving's own Classify API: serialized tf.Examples in, class names and the
    predict signature's scores out, with the method name TF Serving checks."""
    code = """
import json, sys
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from tensorflow.core.protobuf import saved_model_pb2
folder = sys.argv[1]
images = load_digits().images[:16].astype(np.float32)[..., None]
examples = [
    tf.train.Example(features=tf.train.Features(feature={"pixels": tf.train.Feature(
        float_list=tf.train.FloatList(value=image.reshape(-1).tolist()))})).SerializeToString()
    for image in images
]
loaded = tf.saved_model.load(folder)
classified = loaded.signatures["classification"](inputs=tf.constant(examples))
predicted = loaded.signatures["serving_default"](pixels=tf.constant(images))["probabilities"]
proto = saved_model_pb2.SavedModel()
proto.ParseFromString(open(folder + "/saved_model.pb", "rb").read())
signatures = proto.meta_graphs[0].signature_def
print(json.dumps({
    "max_diff": float(np.abs(classified["scores"].numpy() - predicted.numpy()).max()),
    "classes": [c.decode() for c in classified["classes"].numpy()[0]],
    "methods": {k: signatures[k].method_name for k in signatures},
    "inputs": {k: v.dtype for k, v in signatures["classification"].inputs.items()},
}))
"""
    result = run_python_json(code, str(trained_repo.version_dir))
    assert result["max_diff"] == 0.0
    assert result["classes"] == [str(i) for i in range(10)]
    assert result["methods"]["serving_default"] == "tensorflow/serving/predict"
    assert result["methods"]["classification"] == "tensorflow/serving/classify"
    assert result["inputs"] == {"inputs": 7}  # DT_STRING: serialized tf.Example
    signature_defs = trained_repo.metadata()["tf_serving_signature_def"]
    assert signature_defs["classification"]["method_name"] == "tensorflow/serving/classify"
