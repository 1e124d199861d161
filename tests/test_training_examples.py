"""Every shipped example config trains, exports and publishes with its own quality gate; the
run folder holds logs and the report; the gate refuses and --force overrides; a killed run
resumes; a deterministic run repeats exactly; augmentation is gone at inference."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    GATE_OFF,
    ROOT,
    ExamplesRepo,
    quiet_env,
    run_python_json,
    run_training,
    runs_dir_for,
    training_command,
)

from tfship.repository import list_versions

CONFIGS = ROOT / "training" / "configs"


def test_every_example_publishes_past_its_own_gate(examples_repo: ExamplesRepo) -> None:
    expected = {
        "breast_cancer": ("roc_auc", 0.95),
        "diabetes": ("r2", 0.3),
        "churn": ("accuracy", 0.7),
        "shapes": ("accuracy", 0.8),
        "sine_waves": ("accuracy", 0.85),
    }
    for name, (metric, floor) in expected.items():
        assert list_versions(examples_repo.path / name) == [1], name
        meta = examples_repo.metadata(name)
        assert meta["metrics"]["onnx"][metric] >= floor, (name, meta["metrics"]["onnx"])
        assert meta["quality_gate"]["passed"] and meta["quality_gate"]["metric"] == metric
        assert meta["parity"]["max_abs_diff"] <= 1e-4
        assert f"quality gate: passed: test {metric}" in examples_repo.logs[name]


def test_metadata_describes_inputs_outputs_and_preprocessing(examples_repo: ExamplesRepo) -> None:
    cancer = examples_repo.metadata("breast_cancer")
    assert [(i["name"], i["shape"]) for i in cancer["inputs"]] == [("features", [-1, 30])]
    assert cancer["class_names"] == ["malignant", "benign"]
    assert len(cancer["preprocessing"][0]["mean"]) == 30
    assert 0.9 < cancer["evaluation"]["per_class"]["benign"]["recall"] <= 1

    diabetes = examples_repo.metadata("diabetes")
    assert diabetes["task"] == "regression" and diabetes["class_names"] == []
    assert [(o["name"], o["shape"]) for o in diabetes["outputs"]] == [("predictions", [-1, 1])]
    metrics = diabetes["metrics"]["onnx"]
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5)
    assert 30 < metrics["mae"] < 70  # progression scores run 25..346

    churn = examples_repo.metadata("churn")
    inputs = {i["name"]: i["dtype"] for i in churn["inputs"]}
    assert inputs == {
        "monthly_price": "float32",
        "plan": "object",
        "region": "object",
        "support_calls": "float32",
        "tenure_months": "float32",
    }
    lookups = {p["input"]: p["vocabulary"] for p in churn["preprocessing"] if "vocabulary" in p}
    assert lookups == {
        "plan": ["basic", "premium", "standard"],
        "region": ["east", "north", "south", "west"],
    }
    assert churn["data"]["cleaning"]["duplicates_dropped"] == 6

    sine = examples_repo.metadata("sine_waves")
    assert [(i["name"], i["shape"]) for i in sine["inputs"]] == [("sequence", [-1, 40, 1])]


def test_run_folder_holds_logs_checkpoint_and_report(examples_repo: ExamplesRepo) -> None:
    meta = examples_repo.metadata("shapes")
    folder = Path(meta["training"]["run_folder"])
    assert folder.parent.parent == runs_dir_for(examples_repo.path)
    report = (folder / "report.md").read_text()
    assert "outcome: **published as version 1**" in report
    for image in ("loss.png", "accuracy.png", "confusion_matrix.png"):
        assert (folder / "plots" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{image})" in report
    history = (folder / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == meta["training"]["epochs_run"] + 1
    assert (folder / "checkpoints" / "best.weights.h5").stat().st_size > 0
    assert list((folder / "tensorboard").rglob("events.out.tfevents.*"))
    # A finished run leaves no backup and no "in progress" marker behind.
    assert not (folder / "backup").exists()
    assert not (folder.parent / "in_progress.json").exists()


def test_quality_gate_refuses_then_force_publishes(
    examples_repo: ExamplesRepo, tmp_path: Path
) -> None:
    repo = tmp_path / "models"
    shutil.copytree(examples_repo.path / "breast_cancer", repo / "breast_cancer")
    config = CONFIGS / "breast_cancer.yaml"
    overrides = ("fit.epochs=1", "gate.threshold=0.9999", "gate.tolerance=0")
    refused = run_training(repo, *overrides, config=config)
    assert refused.returncode == 1
    assert "tfship train: quality gate: refused: roc_auc" in refused.stderr
    assert "is below the threshold 0.9999" in refused.stderr
    assert "nothing was published (--force overrides)" in refused.stderr
    assert list_versions(repo / "breast_cancer") == [1]
    assert not [p for p in (repo / "breast_cancer").iterdir() if p.name.startswith(".")]
    reports = list(runs_dir_for(repo).glob("breast_cancer/*/report.md"))
    assert len(reports) == 1 and "refused by the quality gate" in reports[0].read_text()

    forced = subprocess.run(
        [*training_command(repo, *overrides, config=config), "--force"],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "quality gate: forced through (--force)" in forced.stderr
    assert list_versions(repo / "breast_cancer") == [1, 2]
    gate = json.loads((repo / "breast_cancer" / "2" / "metadata.json").read_text())["quality_gate"]
    assert (gate["passed"], gate["forced"], gate["baseline_version"]) == (False, True, 1)
    assert (
        gate["baseline_value"]
        == examples_repo.metadata("breast_cancer")["metrics"]["onnx"]["roc_auc"]
    )


def test_killed_fit_resumes_from_its_backup(tmp_path: Path) -> None:
    """SIGKILL after a few epochs; the rerun with the same config continues the same run
    from the backup, and the published history covers every epoch once."""
    repo = tmp_path / "models"
    overrides = ("fit.epochs=10", "fit.early_stopping.patience=100", *GATE_OFF)
    runs = runs_dir_for(repo)
    run = subprocess.Popen(
        training_command(repo, *overrides),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=quiet_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    backed_up = 0
    try:
        while time.monotonic() < deadline and run.poll() is None and backed_up < 3:
            for meta in runs.glob("digits/*/backup/training_metadata.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    backed_up = json.loads(meta.read_text())["epoch"]
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert backed_up >= 3, "the run never backed up 3 epochs"
    assert list_versions(repo / "digits") == []

    again = run_training(repo, *overrides)
    assert again.returncode == 0, again.stderr[-3000:]
    (folder,) = runs.glob("digits/*/")
    assert f"resuming run {folder.name} after epoch" in again.stderr
    meta = json.loads((repo / "digits" / "1" / "metadata.json").read_text())
    training = meta["training"]
    assert training["run_id"] == folder.name
    assert training["resumed_from_epoch"] >= 3
    assert training["epochs_run"] == 10
    assert len(training["history"]["loss"]) == 10
    assert meta["metrics"]["onnx"]["accuracy"] > 0.9


def test_same_config_and_seed_give_the_same_model(tmp_path: Path) -> None:
    overrides = ("fit.epochs=3", "fit.deterministic=true", "fit.tensorboard=false", *GATE_OFF)
    config = CONFIGS / "breast_cancer.yaml"
    results = []
    for name in ("a", "b"):
        result = run_training(tmp_path / name, *overrides, config=config)
        assert result.returncode == 0, result.stderr[-3000:]
        meta = json.loads((tmp_path / name / "breast_cancer" / "1" / "metadata.json").read_text())
        results.append((meta["training"]["history"], meta["metrics"]))
    assert results[0] == results[1]


def test_augmentation_is_inactive_at_inference() -> None:
    code = """
import json, sys
import numpy as np
from training.config_file import load_config
from training.data import prepare_data
from training.model import build_model
config = load_config(__import__("pathlib").Path(sys.argv[1]))
splits = prepare_data(config)
model, _, described = build_model(config, splits)
x = splits.x_test["pixels"][:8]
infer = [model(x, training=False).numpy() for _ in range(2)]
train = model(x, training=True).numpy()
layers = [layer.name for layer in model.layers if layer.name.startswith("augment")]
print(json.dumps({
    "inference_equal": bool(np.array_equal(*infer)),
    "training_differs": bool(not np.allclose(train, infer[0])),
    "layers": layers,
    "described": described[-1]["layer"],
}))
"""
    result = run_python_json(code, str(CONFIGS / "shapes.yaml"))
    assert result == {
        "inference_equal": True,
        "training_differs": True,
        "layers": ["augment_rotation", "augment_shift", "augment_zoom", "augment_flip"],
        "described": "augmentation",
    }


CUSTOMERS = [
    # tenure_months, support_calls, monthly_price, plan, region
    (3, 6, 45.0, "basic", "north"),
    (70, 0, 30.0, "premium", "west"),
    (24, 1, 29.9, "standard", "atlantis"),  # a region never seen: the lookup's extra slot
]


def _customer_columns() -> dict[str, Any]:
    names = ("tenure_months", "support_calls", "monthly_price", "plan", "region")
    return {name: [row[i] for row in CUSTOMERS] for i, name in enumerate(names)}


def test_served_examples_take_raw_values(examples_repo: ExamplesRepo, start_server: Any) -> None:
    """String columns, raw measurements, sequences: every example model answers what the
    exported ONNX answers in-process, over TF Serving REST, V2 (binary BYTES) and gRPC."""
    import numpy as np
    import onnxruntime as ort
    import tritonclient.http as triton
    from sklearn.datasets import load_breast_cancer

    server = start_server(examples_repo.path, "--runtime", "onnx")
    server.wait_ready()
    columns = _customer_columns()
    session = ort.InferenceSession(str(examples_repo.path / "churn" / "1" / "model.onnx"))
    feeds = {
        name: np.array(values, dtype=object if isinstance(values[0], str) else np.float32)
        for name, values in columns.items()
    }
    expected = session.run(["probabilities"], feeds)[0]

    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    rest = server.post("/v1/models/churn:predict", {"instances": rows})
    assert rest.status == 200, rest.body
    assert np.allclose(rest.json()["predictions"], expected, atol=1e-6)
    b64 = server.post(
        "/v1/models/churn:predict",
        {"instances": [{**rows[0], "plan": {"b64": "YmFzaWM="}}]},  # "basic"
    )
    assert np.allclose(b64.json()["predictions"][0], expected[0], atol=1e-6)
    wrong = server.post("/v1/models/churn:predict", {"instances": [{**rows[0], "plan": 5}]})
    assert wrong.status == 400
    assert wrong.json()["error"] == "input 'plan' in 'instances': expected strings, got int 5"

    with triton.InferenceServerClient(server.url.removeprefix("http://")) as client:
        inputs = []
        for name, array in feeds.items():
            tensor = triton.InferInput(
                name, [len(array)], "BYTES" if array.dtype == object else "FP32"
            )
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        answer = client.infer("churn", inputs).as_numpy("probabilities")
    assert np.allclose(answer, expected, atol=1e-6)

    # Raw measurements in, the model's own scaling inside: nearly every answer right.
    cancer = load_breast_cancer()
    predicted = server.post(
        "/v1/models/breast_cancer:predict", {"instances": cancer.data.tolist()}
    ).json()["predictions"]
    assert (np.argmax(predicted, axis=1) == cancer.target).mean() > 0.95
    regressed = server.post(
        "/v1/models/diabetes:regress", {"examples": [{"features": [0.0] * 10}]}
    ).json()["results"]
    assert len(regressed) == 1 and 50 < regressed[0] < 300


def test_string_inputs_over_grpc(examples_repo: ExamplesRepo, start_server: Any) -> None:
    import grpc
    import numpy as np

    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    server = start_server(examples_repo.path, "--runtime", "onnx")
    server.wait_ready()
    columns = _customer_columns()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "churn"
    for name, values in columns.items():
        dtype = tf.string if isinstance(values[0], str) else tf.float32
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    rest = server.post(
        "/v1/models/churn:predict",
        {"inputs": columns},
    ).json()["outputs"]
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(request, timeout=30)
        assert np.allclose(tf.make_ndarray(reply.outputs["probabilities"]), rest, atol=1e-6)
        request.inputs["plan"].CopyFrom(tf.make_tensor_proto([1.0, 2.0, 3.0]))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'plan': expected string, got float" in caught.value.details()


def test_mixed_precision_trains_and_exports_float32(tmp_path: Path) -> None:
    overrides = ("fit.epochs=3", "fit.mixed_precision=true", "fit.tensorboard=false", *GATE_OFF)
    result = run_training(tmp_path, *overrides, config=CONFIGS / "breast_cancer.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mixed precision training done; exporting a float32 single-device copy" in result.stderr
    meta = json.loads((tmp_path / "breast_cancer" / "1" / "metadata.json").read_text())
    assert meta["training_config"]["fit"]["mixed_precision"] is True
    assert [i["dtype"] for i in meta["inputs"]] == ["float32"]
    assert meta["parity"]["max_abs_diff"] <= 1e-4


def test_regression_savedmodel_has_tf_serving_regress_signature(
    examples_repo: ExamplesRepo,
) -> None:
    code = """
import json, sys
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_diabetes
folder = sys.argv[1]
rows = load_diabetes().data[:8].astype(np.float32)
examples = [
    tf.train.Example(features=tf.train.Features(feature={"features": tf.train.Feature(
        float_list=tf.train.FloatList(value=row.tolist()))})).SerializeToString()
    for row in rows
]
loaded = tf.saved_model.load(folder)
regressed = loaded.signatures["regression"](inputs=tf.constant(examples))["outputs"].numpy()
predicted = loaded.signatures["serving_default"](features=tf.constant(rows))["predictions"]
print(json.dumps({"shape": list(regressed.shape),
                  "max_diff": float(np.abs(regressed - predicted.numpy()[:, 0]).max())}))
"""
    result = run_python_json(code, str(examples_repo.path / "diabetes" / "1"))
    assert result == {"shape": [8], "max_diff": 0.0}
    signatures = examples_repo.metadata("diabetes")["tf_serving_signature_def"]
    assert signatures["regression"]["method_name"] == "tensorflow/serving/regress"


def test_a_tabular_model_records_which_features_it_uses(examples_repo: ExamplesRepo) -> None:
    meta = examples_repo.metadata("churn")
    importance = meta["feature_importance"]
    assert importance["metric"] == "accuracy" and importance["split"] == "test"
    assert set(importance["features"]) == {i["name"] for i in meta["inputs"]}
    drops = [v["mean_drop"] for v in importance["features"].values()]
    assert drops == sorted(drops, reverse=True)
    assert drops[0] > 0.02, "the model uses at least one feature"
