"""Knowledge distillation: the loss is the labels' cross-entropy plus the teacher's softened
KL term as written; a real student trains on a real teacher's soft targets, which change it
(alpha 1, labels only, gives exactly the plain student), and its record compares the two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import GATE_OFF, ROOT, run_training

from training.distill import loss, targets

DISTILLED = ROOT / "training" / "configs" / "digits-distilled.yaml"
SHORT = ("fit.epochs=3", *GATE_OFF)


def test_the_loss_is_the_hard_and_the_softened_terms_weighted() -> None:
    labels = np.array([0, 2])
    student = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    teacher = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32)
    y = targets(labels, teacher)
    hard = -np.log(student[[0, 1], labels])
    assert np.asarray(loss(3.0, 1.0)(y, student)) == pytest.approx(hard, rel=1e-5)
    # T = 1: softening is the identity, the soft term is KL(teacher || student).
    kl = (teacher * (np.log(teacher) - np.log(student))).sum(axis=1)
    assert np.asarray(loss(1.0, 0.0)(y, student)) == pytest.approx(kl, rel=1e-5)
    mixed = np.asarray(loss(1.0, 0.25)(y, student))
    assert mixed == pytest.approx(0.25 * hard + 0.75 * kl, rel=1e-5)


def _weights(folder: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {v.name: v.numpy() for v in tf.saved_model.load(str(folder)).trainable_variables}


def test_a_student_learns_from_the_teacher(repo_copy: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cases = {
        "digits_small": (),
        "labels_only": ("name=labels_only", "distill.alpha=1"),
        "plain": ("name=plain", "distill.teacher.model=''"),
    }
    for name, overrides in cases.items():
        result = run_training(repo_copy, *SHORT, *overrides, config=DISTILLED, run_dir=runs)
        assert result.returncode == 0, f"{name}:\n{result.stderr[-3000:]}"
    meta = json.loads((repo_copy / "digits_small" / "1" / "metadata.json").read_text())
    record = meta["distillation"]
    assert (record["teacher"]["model"], record["teacher"]["version"]) == ("digits", 1)
    assert (record["temperature"], record["alpha"]) == (4.0, 0.3)
    assert record["parameter_ratio"] <= 0.25
    assert record["student_parameters"] * 4 <= record["teacher"]["parameters"]
    assert record["student_test"] == meta["metrics"]["onnx"]["accuracy"]
    assert 0.9 < record["teacher_test"] <= 1.0
    assert "Distilled from **digits version 1**" in Path(meta["training"]["report"]).read_text()
    distilled, labels_only, plain = (
        _weights(repo_copy / name / "1") for name in ("digits_small", "labels_only", "plain")
    )
    # With alpha 1 the teacher's term is gone: exactly the plain student (same seed).
    for key in plain:
        np.testing.assert_allclose(labels_only[key], plain[key], rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(distilled[k], plain[k], atol=1e-4) for k in plain)


def test_a_missing_teacher_is_refused_publishing_nothing(repo_copy: Path, tmp_path: Path) -> None:
    result = run_training(
        repo_copy, *SHORT, "distill.teacher.model=nosuch", config=DISTILLED,
        run_dir=tmp_path / "runs",
    )  # fmt: skip
    assert result.returncode == 2
    assert "no published version of 'nosuch'" in result.stderr
    assert not (repo_copy / "digits_small").exists()
