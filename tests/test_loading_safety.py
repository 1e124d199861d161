"""What a server loads stays inside its repository: symlinks and ``..`` that lead out of a
model's folder are refused, and the version is reported, never served."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from conftest import ROOT

from service.app import create_app
from service.models.versions import AVAILABLE, END
from service.settings import ServiceSettings


def test_links_out_of_the_repository_are_refused(repo_copy: Path, tmp_path: Path) -> None:
    root = repo_copy / "digits"
    outside = tmp_path / "elsewhere"
    shutil.copytree(root / "1", outside)

    # Version 2: the whole folder is a symlink to a copy outside the model's folder.
    (root / "2").symlink_to(outside, target_is_directory=True)
    # Version 3: a real folder whose model.onnx links out.
    shutil.copytree(root / "1", root / "3")
    (root / "3" / "model.onnx").unlink()
    (root / "3" / "model.onnx").symlink_to(outside / "model.onnx")
    # Version 4: metadata.json names a file by a path that climbs out of the version.
    shutil.copytree(root / "1", root / "4")
    metadata = json.loads((root / "4" / "metadata.json").read_text())
    files = metadata["artifacts"]["onnx"]["files"]
    files["../1/model.onnx"] = files.pop("model.onnx")
    (root / "4" / "metadata.json").write_text(json.dumps(metadata))
    # Version 5: metadata.json itself links out.
    shutil.copytree(root / "1", root / "5")
    (root / "5" / "metadata.json").unlink()
    (root / "5" / "metadata.json").symlink_to(outside / "metadata.json")

    # Policy "all": every version is loaded, so each one's links are checked.
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  - name: digits\n    version_policy: {all: true}\n")
    app = create_app(
        ServiceSettings(model_dir=repo_copy, model_config=config, poll_seconds=0),
        load_models=False,
    )
    registry = app.extensions["tfship.registry"]
    registry.poll()
    states = {s.version: s for s in registry.statuses("digits")}
    assert states[1].state == AVAILABLE
    for version, needle in (
        (2, f"{root / '2'} leads to {outside.resolve()}, outside {root.resolve()}"),
        (3, f"{root / '3' / 'model.onnx'} leads to {(outside / 'model.onnx').resolve()}"),
        (4, f"{root / '4' / '../1/model.onnx'} leads to"),
        (5, f"{root / '5' / 'metadata.json'} leads to"),
    ):
        served = states[version]
        assert served.state == END and served.error_code == "PERMISSION_DENIED", version
        assert needle in served.error_message, served.error_message
        assert "refusing to read it" in served.error_message
    # Requests never reach them; the newest good version serves.
    with registry.serving("digits") as chosen:
        assert chosen.version == 1


def test_request_names_never_become_paths(onnx_server: Any) -> None:
    for path in ("/v1/models/..", "/v1/models/%2e%2e", "/v2/models/..%2F..%2Fetc"):
        answer = onnx_server.get(path)
        assert answer.status == 404, path
    assert onnx_server.get("/v1/models/..").json()["error"].startswith("model '..' not found")


UNSAFE = (
    re.compile(r"^\s*import pickle|^\s*from pickle|pickle\.loads?\("),
    re.compile(r"allow_pickle\s*=\s*True"),
    re.compile(r"np\.load\((?![^)]*allow_pickle=False)"),
    re.compile(r"yaml\.load\(|yaml\.unsafe_load|yaml\.full_load"),
    re.compile(r"\bjoblib\b|\bdill\b|\bmarshal\.loads"),
    re.compile(r"safe_mode\s*=\s*False"),
)


def test_no_unsafe_deserialization_in_the_code() -> None:
    """Nothing the service or training reads is unpickled or loaded unsafely."""
    found = []
    for package in ("service", "training", "tfship"):
        for source in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(source.read_text().splitlines(), start=1):
                if any(pattern.search(line) for pattern in UNSAFE):
                    found.append(f"{source.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
