"""ONNX variants (model.<variant>.onnx, e.g. a quantized int8 model) chosen per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask import Flask

from service.app import create_app
from service.models.model_config import load_model_config
from service.models.versions import AVAILABLE, END
from service.settings import ServiceSettings, SettingsError


def app_for(repo: Path, tmp_path: Path, variant_line: str) -> Flask:
    config = tmp_path / "models.yaml"
    config.write_text(
        f"models:\n  - name: digits\n    base_path: {repo / 'digits'}\n{variant_line}"
    )
    settings = ServiceSettings(model_dir=repo, model_config=config, poll_seconds=0)
    return create_app(settings, load_models=False)


def test_int8_variant_is_served_and_agrees_with_the_float_model(
    repo_copy: Path, tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    # digits.yaml publishes model.int8.onnx: static QDQ int8, calibrated on the train split.
    images, labels = digits
    answers = {}
    for name, line in (("float", ""), ("int8", "    variant: int8\n")):
        app = app_for(repo_copy, tmp_path, line)
        registry = app.extensions["tfship.registry"]
        registry.poll()
        assert registry.statuses("digits")[0].state == AVAILABLE
        report = registry.readiness()[1]["models"]["digits"]
        assert report.get("variant") == (None if name == "float" else "int8")
        answer = app.test_client().post(
            "/v1/models/digits:predict", json={"instances": images[:200].tolist()}
        )
        assert answer.status_code == 200
        answers[name] = np.array(answer.get_json()["predictions"])
    # Really a different model: quantized weights move the scores a little, not the answers.
    difference = np.abs(answers["float"] - answers["int8"])
    assert difference.max() > 0 and difference.mean() < 0.01
    assert (answers["int8"].argmax(1) == labels[:200]).mean() >= 0.95
    assert np.mean(answers["int8"].argmax(1) == answers["float"].argmax(1)) >= 0.98


def test_a_version_without_the_variant_is_not_served(repo_copy: Path, tmp_path: Path) -> None:
    app = app_for(repo_copy, tmp_path, "    variant: fp16\n")
    registry = app.extensions["tfship.registry"]
    registry.poll()
    (served,) = registry.statuses("digits")
    assert served.state == END and served.error_code == "NOT_FOUND"
    assert "has no 'onnx.fp16' artifact in metadata.json (it has: onnx, onnx.int8, savedmodel)" in (
        served.error_message
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("    variant: int8\n    runtime: savedmodel\n", "variants are ONNX files"),
        ("    variant: ../x\n", "'../x' is not a variant name"),
    ],
)
def test_bad_variants_are_refused(tmp_path: Path, lines: str, message: str) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - name: digits\n{lines}")
    with pytest.raises(SettingsError, match=message):
        load_model_config(config, ServiceSettings(model_dir=tmp_path))
