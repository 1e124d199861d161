"""The tfship command: models listing, the predict client, module entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, ExamplesRepo, Server, TrainedRepo, quiet_env, run_tfship


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
        "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--url", onnx_server.url,
        "--json",
    )  # fmt: skip
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
        "--json",
    )
    np.testing.assert_array_equal(
        np.asarray(json.loads(rows.stdout)["predictions"], dtype=np.float32), expected[5:8]
    )
    body = tfship(
        "predict", str(tmp_path / "body.json"), "--model", "digits", "--url", onnx_server.url,
        "--json",
    )  # fmt: skip
    np.testing.assert_array_equal(
        np.asarray(json.loads(body.stdout)["outputs"], dtype=np.float32), expected[8:9]
    )


def _table(text: str) -> list[list[str]]:
    lines = text.strip().splitlines()
    return [line.split() for line in lines[1:]] if lines else []


def test_predict_prints_classes_and_rounded_scores_by_default(
    onnx_server: Server, trained_repo: TrainedRepo, tmp_path: Path, digits: tuple
) -> None:
    x, labels = digits[0][:4], digits[1][:4]
    expected = trained_repo.onnx_probabilities(x)
    np.save(tmp_path / "rows.npy", x)
    one = tfship(
        "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--url", onnx_server.url
    )
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0].split() == ["ROW", "CLASS", "SCORE"]
    rows = _table(one.stdout)
    assert [int(r[1]) for r in rows] == expected.argmax(axis=1).tolist() == labels.tolist()
    assert [r[2] for r in rows] == [f"{p:.4f}" for p in expected.max(axis=1)]
    three = tfship(
        "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--url", onnx_server.url,
        "--top-k", "3",
    )  # fmt: skip
    assert three.stdout.splitlines()[0].split() == ["ROW", "RANK", "CLASS", "SCORE"]
    ranked = _table(three.stdout)
    assert len(ranked) == 12 and [r[1] for r in ranked[:3]] == ["1", "2", "3"]
    first_row = [int(r[2]) for r in ranked[:3]]
    assert first_row == np.argsort(-expected[0], kind="stable")[:3].tolist()
    full = tfship(
        "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--url", onnx_server.url,
        "--top-k", "2", "--json",
    )  # fmt: skip
    scores = json.loads(full.stdout)["predictions"][0]["scores"]
    assert scores[0] == pytest.approx(float(expected[0].max()), rel=1e-6)
    assert (
        tfship(
            "predict", str(tmp_path / "rows.npy"), "--model", "digits", "--top-k", "0"
        ).returncode
        == 2
    )


def test_predict_prints_values_for_a_regression_model(
    examples_repo: ExamplesRepo, start_server: Any, tmp_path: Path
) -> None:
    server = start_server(examples_repo.path, "--workers", "1")
    server.wait_ready()
    rows = np.linspace(-0.05, 0.05, 20, dtype=np.float32).reshape(2, 10)
    (tmp_path / "rows.json").write_text(json.dumps(rows.tolist()))
    raw = tfship(
        "predict", str(tmp_path / "rows.json"), "--model", "diabetes", "--url", server.url, "--json"
    )
    values = np.asarray(json.loads(raw.stdout)["predictions"]).reshape(-1)
    table = tfship(
        "predict", str(tmp_path / "rows.json"), "--model", "diabetes", "--url", server.url
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ROW", "VALUE"]
    assert [r[1] for r in _table(table.stdout)] == [f"{v:.4g}" for v in values]


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
