"""Models tfship did not train, in TF Serving's and Triton's layouts, served as they are.

A Keras ``model.export`` SavedModel, ``onnx.helper`` graphs in zero-padded version folders
(``00000123``, as TF Serving's test models have them), no metadata.json anywhere: the
signature comes from the artifact, the version is served unverified and says so in
``/readyz``, ``tfship models`` and a metric label, and every load error has its own code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import ROOT, Server, TrainedRepo, quiet_env, run_tfship
from foreign_models import (
    export_keras_saved_model,
    export_keras_two_signatures,
    keras_logits,
    keras_probabilities,
    scale_prediction,
    write_mixed_types_onnx,
    write_scale_onnx,
)

from service.app import create_app
from service.models.runtimes.onnx import OnnxRuntime
from service.models.versions import AVAILABLE, END
from service.settings import ServiceSettings
from tfship.repository import list_versions, version_folders
from tfship.version_metadata import VersionMetadata

KERAS_ROWS = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]], np.float32)


@pytest.fixture(scope="session")
def foreign_repo(trained_repo: TrainedRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tfship's own digits beside Keras exports (one function; two), a zero-padded ONNX and
    an int64/bool ONNX."""
    repo = tmp_path_factory.mktemp("foreign") / "repo"
    shutil.copytree(trained_repo.path, repo)
    export_keras_saved_model(repo / "keras_export" / "1")
    export_keras_two_signatures(repo / "two_heads" / "1")
    write_scale_onnx(repo / "half_plus" / "00000123" / "model.onnx")
    write_mixed_types_onnx(repo / "mixed" / "7" / "model.onnx")
    return repo


@pytest.fixture(scope="module")
def foreign_server(foreign_repo: Path, start_server: Any) -> Server:
    server = start_server(
        foreign_repo, "--workers", "2", "--model-runtime", "keras_export=savedmodel",
        "--model-runtime", "two_heads=savedmodel",
    )  # fmt: skip
    server.wait_ready()
    return server


# --- pure parts ---


def test_version_folders_are_read_as_tf_serving_reads_them(tmp_path: Path) -> None:
    for name in ("00000123", "7", "0007", "0", "000", "12a", ".tmp-publish-x", "1.5"):
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    folders = version_folders(tmp_path)
    # 7 and 0007 are one version: the folder without leading zeros is the one read.
    assert folders == {7: tmp_path / "7", 123: tmp_path / "00000123"}
    assert list_versions(tmp_path) == [7, 123]
    (tmp_path / "7").rmdir()
    assert version_folders(tmp_path)[7] == tmp_path / "0007"


def test_onnx_signature_comes_from_the_graph(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    write_mixed_types_onnx(folder / "model.onnx")
    runtime = OnnxRuntime(folder, VersionMetadata(), threads=1)
    signature = runtime.signature
    assert [(s.name, s.dtype.name, s.shape) for s in signature.inputs] == [
        ("ids", "int64", (-1, -1)),
        ("mask", "bool", (-1, -1)),
    ]
    assert [(s.name, s.dtype.name, s.shape) for s in signature.outputs] == [
        ("count", "int64", (-1,))
    ]
    fixed = tmp_path / "fixed"
    write_scale_onnx(fixed / "model.onnx", batch=1)
    (spec,) = OnnxRuntime(fixed, VersionMetadata(), threads=1).signature.inputs
    assert spec.shape == (1, 2)


def test_saved_model_signatures_are_read_without_tensorflow(foreign_repo: Path) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from service.models.foreign_versions import foreign_metadata\n"
        "m = foreign_metadata(Path(sys.argv[1]), 'keras_export', 1, 'savedmodel')\n"
        "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'name': m.signature_name,\n"
        "  'inputs': [t.to_json() for t in m.inputs],\n"
        "  'outputs': [t.to_json() for t in m.outputs],\n"
        "  'signatures': sorted(m.tf_serving_signature_def)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(foreign_repo / "keras_export" / "1")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=quiet_env(PYTHONPATH=str(ROOT)),
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["tf"] is False
    assert found["name"] == "serving_default"
    assert found["signatures"] == ["serve", "serving_default"]
    (tensor,) = found["inputs"]
    assert (tensor["name"], tensor["dtype"], tensor["shape"]) == (
        "keras_tensor",
        "float32",
        [-1, 4],
    )
    (tensor,) = found["outputs"]
    assert (tensor["name"], tensor["dtype"], tensor["shape"]) == ("output_0", "float32", [-1, 3])


def _load_states(repo: Path, tmp_path: Path, runtime: str = "onnx") -> dict[str, Any]:
    """Every version of every model after one poll, policy 'all'."""
    names = sorted(p.name for p in repo.iterdir() if p.is_dir())
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        + "".join(
            f"  - name: {n}\n    runtime: {runtime}\n    version_policy: {{all: true}}\n"
            for n in names
        )
    )
    app = create_app(
        ServiceSettings(model_dir=repo, model_config=config, poll_seconds=0), load_models=False
    )
    registry = app.extensions["tfship.registry"]
    registry.poll()
    return {f"{n}/{s.version}": s for n in names for s in registry.statuses(n)}


def test_load_errors_have_their_own_codes(trained_repo: TrainedRepo, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    good = trained_repo.version_dir
    # tfship versions: a corrupted file, a torn metadata.json, one of another format.
    for version, damage in ((1, "onnx"), (2, "torn"), (3, "format")):
        folder = repo / "digits" / str(version)
        shutil.copytree(good, folder)
        if damage == "onnx":
            data = bytearray((folder / "model.onnx").read_bytes())
            data[100] ^= 0xFF
            (folder / "model.onnx").write_bytes(bytes(data))
        elif damage == "torn":
            text = (folder / "metadata.json").read_text()
            (folder / "metadata.json").write_text(text[: len(text) // 2])
        else:
            meta = json.loads((folder / "metadata.json").read_text())
            (folder / "metadata.json").write_text(json.dumps({**meta, "format_version": 9}))
    # Foreign versions: a SavedModel for the ONNX runtime, an empty folder, a torn ONNX.
    shutil.copytree(good, repo / "sm_only" / "1", ignore=shutil.ignore_patterns("*.onnx", "*.json"))
    (repo / "empty" / "1").mkdir(parents=True)
    torn = write_scale_onnx(repo / "torn" / "1" / "model.onnx")
    torn.write_bytes(torn.read_bytes()[:40])
    write_scale_onnx(repo / "fine" / "0004" / "model.onnx")

    states = _load_states(repo, tmp_path)
    codes = {key: (s.state, s.error_code) for key, s in states.items()}
    assert codes == {
        "digits/1": (END, "DATA_LOSS"),
        "digits/2": (END, "DATA_LOSS"),
        "digits/3": (END, "FAILED_PRECONDITION"),
        "sm_only/1": (END, "NOT_FOUND"),
        "empty/1": (END, "NOT_FOUND"),
        "torn/1": (END, "UNKNOWN"),
        "fine/4": (AVAILABLE, "OK"),
    }
    assert "model.onnx is corrupted: sha256" in states["digits/1"].error_message
    assert "metadata.json cannot be read" in states["digits/2"].error_message
    assert "format_version 9" in states["digits/3"].error_message
    assert (
        "holds a SavedModel and no model.onnx, and the ONNX runtime serves only ONNX: serve "
        "it with --model-runtime sm_only=savedmodel, or convert it with `tfship import"
    ) in states["sm_only/1"].error_message
    assert "has no metadata.json and no model.onnx" in states["empty/1"].error_message
    # The runtime's own failure, named by its exception (onnxruntime's protobuf error).
    assert re.match(r"\w+: .*(Protobuf|protobuf|parsing)", states["torn/1"].error_message)
    assert states["fine/4"].path == repo / "fine" / "0004"


# --- the real server ---


def test_foreign_versions_are_served_and_marked_unverified(foreign_server: Server) -> None:
    ready = foreign_server.get("/readyz").json()
    models = ready["models"]
    assert models["half_plus"]["serving"] == 123
    assert models["half_plus"]["versions"] == [
        {"version": 123, "state": "AVAILABLE", "verified": False}
    ]
    assert models["keras_export"]["versions"][0]["verified"] is False
    assert models["mixed"]["versions"][0]["verified"] is False
    assert models["digits"]["versions"][0]["verified"] is True

    metrics = foreign_server.get("/metrics").body.decode()
    for model, version, runtime, verified in (
        ("digits", 1, "onnx", "true"),
        ("half_plus", 123, "onnx", "false"),
        ("keras_export", 1, "savedmodel", "false"),
    ):
        line = (
            f'tfship_model_version_info{{model="{model}",runtime="{runtime}",'
            f'verified="{verified}",version="{version}"}} 1.0'
        )
        assert line in metrics, line


def test_foreign_models_answer_rest_with_known_values(foreign_server: Server) -> None:
    rows = [[1.0, 2.0], [-0.5, 4.0]]
    answer = foreign_server.post("/v1/models/half_plus:predict", {"instances": rows})
    assert answer.status == 200, answer.body
    np.testing.assert_allclose(answer.json()["predictions"], scale_prediction(np.array(rows)))
    # Read from its own folder, reached by the number TF Serving would give it.
    by_version = foreign_server.post(
        "/v1/models/half_plus/versions/123:predict", {"inputs": {"x": rows}}
    )
    np.testing.assert_allclose(by_version.json()["outputs"], scale_prediction(np.array(rows)))

    answer = foreign_server.post(
        "/v1/models/keras_export:predict", {"instances": KERAS_ROWS.tolist()}
    )
    assert answer.status == 200, answer.body
    np.testing.assert_allclose(
        answer.json()["predictions"], keras_probabilities(KERAS_ROWS), rtol=1e-5, atol=1e-6
    )

    infer = foreign_server.post(
        "/v2/models/mixed/infer",
        {
            "inputs": [
                {"name": "ids", "datatype": "INT64", "shape": [2, 3], "data": [1, 0, 3, 4, 5, 6]},
                {
                    "name": "mask",
                    "datatype": "BOOL",
                    "shape": [2, 3],
                    "data": [True, True, True, False, True, True],
                },
            ]
        },
    )
    assert infer.status == 200, infer.body
    (output,) = infer.json()["outputs"]
    assert output == {"name": "count", "datatype": "INT64", "shape": [2], "data": [2, 2]}

    # Keras exports "serve" beside "serving_default": the same function, either name works.
    served = foreign_server.post(
        "/v1/models/keras_export:predict",
        {"signature_name": "serve", "instances": KERAS_ROWS.tolist()},
    )
    assert served.status == 200 and served.json() == answer.json()
    unknown = foreign_server.post(
        "/v1/models/keras_export:predict", {"signature_name": "nope", "instances": [[0] * 4]}
    )
    assert unknown.status == 400 and unknown.json()["error"] == (
        "signature 'nope' not found; this model serves 'serving_default' (for predict also: "
        "'serve')"
    )

    metadata = foreign_server.get("/v1/models/keras_export/metadata").json()
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["serve", "serving_default"]
    assert signatures["serving_default"]["inputs"]["keras_tensor"]["dtype"] == "DT_FLOAT"


def test_another_signature_runs_as_itself_by_name(foreign_server: Server) -> None:
    """TF Serving's signature_name on predict: a signature that is not the served one's
    alias (here the logits beside the probabilities) runs its own function, REST and gRPC."""
    rows = KERAS_ROWS.tolist()
    served = foreign_server.post("/v1/models/two_heads:predict", {"instances": rows})
    assert served.status == 200, served.body
    np.testing.assert_allclose(
        served.json()["predictions"], keras_probabilities(KERAS_ROWS), rtol=1e-5, atol=1e-6
    )
    for body, key in (
        ({"signature_name": "logits", "instances": rows}, "predictions"),
        ({"signature_name": "logits", "inputs": {"features": rows}}, "outputs"),
    ):
        answer = foreign_server.post("/v1/models/two_heads:predict", body)
        assert answer.status == 200, answer.body
        np.testing.assert_allclose(answer.json()[key], keras_logits(KERAS_ROWS), rtol=1e-5)
    # Its own inputs are checked against its own signature.
    bad = foreign_server.post(
        "/v1/models/two_heads:predict", {"signature_name": "logits", "inputs": {"x": rows}}
    )
    assert bad.status == 400 and "'features'" in bad.json()["error"], bad.body

    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "two_heads"
    request.model_spec.signature_name = "logits"
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(KERAS_ROWS))
    with grpc.insecure_channel(foreign_server.grpc_target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    assert response.model_spec.signature_name == "logits"
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["logits"]), keras_logits(KERAS_ROWS), rtol=1e-5
    )


def test_foreign_models_answer_tf_serving_grpc_stubs(foreign_server: Server) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(foreign_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for model, name, rows, expected in (
            ("half_plus", "x", np.array([[3.0, 1.0]], np.float32), scale_prediction),
            ("keras_export", "keras_tensor", KERAS_ROWS, keras_probabilities),
        ):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs[name].CopyFrom(tf.make_tensor_proto(rows))
            response = stub.Predict(request, timeout=30)
            (output,) = response.outputs.values()
            np.testing.assert_allclose(
                tf.make_ndarray(output), expected(rows), rtol=1e-5, atol=1e-6
            )
            assert response.model_spec.version.value == (123 if model == "half_plus" else 1)


def test_models_command_lists_foreign_versions_as_unverified(foreign_repo: Path) -> None:
    def models(*args: str) -> subprocess.CompletedProcess[str]:
        return run_tfship("models", "--model-dir", str(foreign_repo), *args)

    table = models("--verify")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert re.search(r"half_plus\s+123\s+-\s+onnx\s+-\s+-\s+unverified", lines["half_plus"])
    assert re.search(r"keras_export\s+1\s+-\s+savedmodel\s+", lines["keras_export"])
    assert lines["digits"].rstrip().endswith("ok")
    assert "4 version(s) without metadata.json" in table.stdout
    rows = {r["model"]: r for r in json.loads(models("--json").stdout)}
    assert rows["half_plus"]["path"] == str(foreign_repo / "half_plus" / "00000123")
    assert rows["half_plus"]["artifacts"] == ["onnx"]
