"""The tfship command: models listing, the predict client, module entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT, Server, TrainedRepo, quiet_env, run_tfship


def tfship(*args: str) -> subprocess.CompletedProcess[str]:
    return run_tfship(*args)


def test_models_lists_versions_artifacts_and_metrics(trained_repo: TrainedRepo) -> None:
    table = tfship("models", "--model-dir", str(trained_repo.path))
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.strip().splitlines()
    assert header.split()[:2] == ["MODEL", "VERSION"]
    accuracy = trained_repo.metadata()["metrics"]["onnx"]["accuracy"]
    assert row.startswith("digits") and f"accuracy: savedmodel={accuracy:.4f}" in row
    assert f"onnx={accuracy:.4f}" in row
    assert "onnx,onnx.int8,savedmodel" in row

    listing = tfship("models", "--model-dir", str(trained_repo.path), "--json", "--verify")
    (entry,) = json.loads(listing.stdout)
    assert entry["model"] == "digits" and entry["version"] == 1
    assert entry["verified"] == "ok"
    assert (
        entry["test_metrics"]["savedmodel"]
        == trained_repo.metadata()["metrics"]["savedmodel"]["accuracy"]
    )


def test_models_verify_reports_corruption(repo_copy: Path) -> None:
    (repo_copy / "digits" / "1" / "variables" / "variables.index").write_bytes(b"torn")
    listing = tfship("models", "--model-dir", str(repo_copy), "--json", "--verify")
    (entry,) = json.loads(listing.stdout)
    assert "variables/variables.index is corrupted" in entry["verified"]
    missing = tfship("models", "--model-dir", str(repo_copy / "none"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_predict_sends_npy_and_json_files(
    onnx_server: Server,
    trained_repo: TrainedRepo,
    tmp_path: Path,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    import onnxruntime as ort

    x = digits[0][:9]
    session = ort.InferenceSession(
        str(trained_repo.version_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(["probabilities"], {"pixels": x})[0]
    np.save(tmp_path / "rows.npy", x[:5])
    (tmp_path / "rows.json").write_text(json.dumps(x[5:8].tolist()))
    (tmp_path / "body.json").write_text(json.dumps({"inputs": x[8:9].tolist()}))

    npy = tfship(
        "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--url", onnx_server.url
    )
    assert npy.returncode == 0, npy.stderr
    np.testing.assert_array_equal(
        np.asarray(json.loads(npy.stdout)["predictions"], dtype=np.float32), expected[:5]
    )
    rows = tfship(
        "predict",
        str(tmp_path / "rows.json"),
        "--model",
        "digits",
        "--version",
        "1",
        "--url",
        onnx_server.url,
    )
    np.testing.assert_array_equal(
        np.asarray(json.loads(rows.stdout)["predictions"], dtype=np.float32), expected[5:8]
    )
    body = tfship(
        "predict", str(tmp_path / "body.json"), "--model", "digits", "--url", onnx_server.url
    )
    np.testing.assert_array_equal(
        np.asarray(json.loads(body.stdout)["outputs"], dtype=np.float32), expected[8:9]
    )


def test_predict_reports_server_and_file_errors(onnx_server: Server, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[[1, 2]]")
    rejected = tfship(
        "predict", str(tmp_path / "bad.json"), "--model", "digits", "--url", onnx_server.url
    )
    assert rejected.returncode == 1
    assert "server answered 400: input 'pixels'" in rejected.stderr
    unknown = tfship(
        "predict", str(tmp_path / "bad.json"), "--model", "nope", "--url", onnx_server.url
    )
    assert "server answered 404: model 'nope' not found" in unknown.stderr
    unreadable = tfship("predict", str(tmp_path / "missing.npy"), "--model", "digits")
    assert unreadable.returncode == 1 and "cannot read" in unreadable.stderr


def test_module_entry_points_match_the_subcommands() -> None:
    for module, expected in (("training", "--model-dir"), ("service", "--rest-port")):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            capture_output=True,
            text=True,
            env=quiet_env(),
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 0 and expected in result.stdout
    top = tfship("--help")
    for command in ("train", "serve", "predict", "models", "import"):
        assert command in top.stdout
