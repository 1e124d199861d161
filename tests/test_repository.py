"""The repository contract on its own: publish, version listing, verification, cleanup."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfship import repository as repo
from tfship.version_metadata import VersionMetadata


def _stage(model_root: Path, payload: bytes = b"weights") -> Path:
    staging = repo.new_temp_dir(model_root)
    (staging / "model.onnx").write_bytes(payload)
    return staging


def _finalize(folder: Path, version: int) -> None:
    files = repo.digest_files(folder, ["model.onnx"])
    repo.write_metadata(
        folder, VersionMetadata(version=version, artifacts={"onnx": {"files": files}})
    )


def test_publish_numbers_versions_and_leaves_no_staging(tmp_path: Path) -> None:
    root = tmp_path / "m"
    first = repo.publish(_stage(root), root, _finalize)
    second = repo.publish(_stage(root), root, _finalize)
    assert (first.version, second.version) == (1, 2)
    assert repo.list_versions(root) == [1, 2]
    assert json.loads((root / "2" / "metadata.json").read_text())["version"] == 2
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_publish_skips_a_number_taken_meanwhile(tmp_path: Path) -> None:
    root = tmp_path / "m"
    staging = _stage(root)
    (root / "1").mkdir()
    (root / "1" / "x").write_text("another writer's version")
    assert repo.publish(staging, root, _finalize).version == 2
    assert (root / "1" / "x").read_text() == "another writer's version"


def test_listing_ignores_staging_and_non_versions(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "a" / "3").mkdir(parents=True)
    (root / "a" / "10").mkdir()
    (root / "a" / "0").mkdir()
    (root / "a" / "latest").mkdir()
    (root / "a" / f"{repo.TEMP_PREFIX}host-1-ab").mkdir()
    (root / ".hidden").mkdir()
    (root / "b").mkdir()
    assert repo.list_models(root) == {"a": [3, 10], "b": []}


def test_missing_repository_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(repo.RepositoryError, match="does not exist"):
        repo.list_models(tmp_path / "nope")


def test_verify_detects_corruption_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "m"
    ref = repo.publish(_stage(root, b"good"), root, _finalize)
    metadata = repo.read_metadata(ref.path)
    repo.verify_artifact(ref.path, metadata, "onnx")
    assert metadata.files("onnx")["model.onnx"] == hashlib.sha256(b"good").hexdigest()

    (ref.path / "model.onnx").write_bytes(b"evil")
    with pytest.raises(repo.RepositoryError, match="corrupted"):
        repo.verify_artifact(ref.path, metadata, "onnx")
    (ref.path / "model.onnx").unlink()
    with pytest.raises(repo.RepositoryError, match="missing"):
        repo.verify_artifact(ref.path, metadata, "onnx")
    with pytest.raises(repo.RepositoryError, match="no 'savedmodel' artifact"):
        repo.verify_artifact(ref.path, metadata, "savedmodel")


def test_read_metadata_rejects_other_format_versions(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text('{"format_version": 99}')
    with pytest.raises(repo.RepositoryError, match="format_version 99"):
        repo.read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(repo.RepositoryError, match="cannot be read"):
        repo.read_metadata(tmp_path)


def test_stale_staging_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    # A real process that has exited: its pid is known dead.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    stale = root / f"{repo.TEMP_PREFIX}{socket.gethostname()}-{int(dead.stdout)}-abcd"
    stale.mkdir()
    (stale / "half-written").write_text("x")
    mine = repo.new_temp_dir(root)
    removed = repo.remove_stale_temp_dirs(root)
    assert removed == [stale]
    assert not stale.exists()
    assert mine.exists(), "a live run's staging folder must be kept"
    assert os.getpid() == int(mine.name.rsplit("-", 2)[1])


@pytest.mark.parametrize(
    "name,ok",
    [
        ("digits", True),
        ("a.b-c_1", True),
        ("..", False),
        ("a/b", False),
        ("", False),
        (".x", False),
    ],
)
def test_model_names(name: str, ok: bool) -> None:
    assert repo.is_valid_model_name(name) is ok


def test_metadata_round_trips_and_names_what_is_wrong(tmp_path: Path) -> None:
    written = {
        "format_version": 1,
        "name": "m",
        "version": 3,
        "task": "classification",
        "signature_name": "serving_default",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4], "tf_name": "x:0"}],
        "outputs": [{"name": "p", "dtype": "float32", "shape": [-1, 2]}],
        "class_names": ["no", "yes"],
        "training": {"epochs_run": 5},
        "metrics": {"onnx": {"accuracy": 0.9}},
        "artifacts": {"onnx": {"format": "onnx", "files": {"model.onnx": "ab" * 32}}},
    }
    (tmp_path / "metadata.json").write_text(json.dumps(written))
    metadata = repo.read_metadata(tmp_path)
    assert (metadata.name, metadata.version, metadata.task) == ("m", 3, "classification")
    assert metadata.inputs[0].shape == (-1, 4) and metadata.inputs[0].tf_name == "x:0"
    assert metadata.class_names == ("no", "yes")
    assert metadata.record == {"training": {"epochs_run": 5}}  # training's own account
    assert metadata.files("onnx") == {"model.onnx": "ab" * 32}
    assert metadata.to_json() == written  # nothing lost or added on the way through
    published = metadata.published(4, "2026-12-01T00:00:00+00:00", training={"seconds": 2})
    assert published.version == 4
    assert published.record["training"] == {"epochs_run": 5, "seconds": 2}
    assert metadata.record["training"] == {"epochs_run": 5}  # the original is unchanged

    for key, value, message in [
        ("inputs", [{"name": "x", "dtype": "float32", "shape": "4"}], "inputs[0].shape must"),
        ("inputs", {"x": 1}, "'inputs' must be a list, got dict"),
        ("version", "3", "'version' must be an integer, got str"),
        ("artifacts", {"onnx": {"files": ["model.onnx"]}}, "artifacts.onnx.files must map"),
    ]:
        (tmp_path / "metadata.json").write_text(json.dumps({**written, key: value}))
        with pytest.raises(repo.RepositoryError, match=re.escape(message)):
            repo.read_metadata(tmp_path)
