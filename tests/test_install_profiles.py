"""The server install profile: `pip install tfship` from its lock file serves ONNX with no
TensorFlow, stays under 400 MB, and refuses what needs an extra with what to install.

A real virtual environment is built from requirements/serve.txt (hashes checked) plus tfship
itself without dependencies, as the `serve` image builds it; the server it runs is driven
by TF Serving's own REST and gRPC clients from this test's environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, TrainedRepo, quiet_env

SIZE_LIMIT_MB = 400  # the target for `pip install tfship`


def _site_packages(python: Path) -> Path:
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return Path(found.stdout.strip())


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


@pytest.fixture(scope="module")
def server_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-profile")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    locked = subprocess.run(
        [*pip, "--require-hashes", "-r", str(ROOT / "requirements" / "serve.txt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert locked.returncode == 0, locked.stderr[-3000:]
    # A copy of the sources, so the build leaves nothing in the checkout.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("tfship", "training", "service"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    return venv


def test_the_server_profile_has_no_tensorflow_and_fits_the_budget(server_venv: Path) -> None:
    python = server_venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c",
         "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'tf2onnx', "
         "'pandas', 'matplotlib', 'sklearn', 'tensorflow_serving') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]"
    size = _size_mb(_site_packages(python))
    print(f"server profile: {size:.0f} MB in site-packages")
    assert size <= SIZE_LIMIT_MB, f"{size:.0f} MB installed, the budget is {SIZE_LIMIT_MB} MB"


def test_the_server_profile_serves_digits_over_rest_and_grpc(
    server_venv: Path, trained_repo: TrainedRepo, start_server: Any
) -> None:
    import grpc
    import onnxruntime as ort
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    server = start_server(
        trained_repo.path, "--workers", "1", launcher=[str(server_venv / "bin" / "tfship")]
    )
    server.wait_ready()
    rows = np.random.default_rng(3).uniform(0, 16, (4, 8, 8, 1)).astype(np.float32)
    session = ort.InferenceSession(
        str(trained_repo.path / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(["probabilities"], {"pixels": rows})[0]

    answer = server.post("/v1/models/digits:predict", {"instances": rows.tolist()})
    assert answer.status == 200, answer.body
    np.testing.assert_allclose(np.array(answer.json()["predictions"]), expected, atol=1e-6)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(rows))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]), expected, atol=1e-6
    )
    assert "AVAILABLE (onnx runtime" in server.log() and "Traceback" not in server.log()


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["train", str(ROOT / "training" / "configs" / "digits.yaml")], "train"),
        (["tune", str(ROOT / "training" / "configs" / "digits.yaml")], "train"),
        (["import", "model.onnx", "--name", "x"], "train"),
        (["serve", "--runtime", "savedmodel", "--model-dir", "."], "savedmodel"),
    ],
)
def test_a_command_without_its_extra_exits_2_naming_it(
    server_venv: Path, tmp_path: Path, command: list[str], extra: str
) -> None:
    result = subprocess.run(
        [str(server_venv / "bin" / "tfship"), *command],
        capture_output=True, text=True, cwd=tmp_path, env=quiet_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"pip install 'tfship[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
