"""init_from: fine-tuning starts from the published version's weights, keeps frozen layers
fixed, records its lineage, and refuses a missing or incompatible source publishing nothing.

The source is the session's trained digits model; training/configs/digits-finetune.yaml is
the config, shortened with --set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GATE_OFF, ROOT, run_training

FINETUNE = ROOT / "training" / "configs" / "digits-finetune.yaml"
SCRATCH = ("init_from.model=''", "init_from.freeze=[]", "init_from.unfreeze_after=0")


def _variables(folder: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {v.name.rsplit(":", 1)[0]: v.numpy() for v in tf.saved_model.load(str(folder)).variables}


def _metadata(repo: Path, name: str) -> dict[str, Any]:
    return json.loads((repo / name / "1" / "metadata.json").read_text())


def test_fine_tuning_starts_from_the_source_and_keeps_frozen_layers(
    repo_copy: Path, tmp_path: Path
) -> None:
    tuned = run_training(
        repo_copy, "fit.epochs=2", "init_from.unfreeze_after=0",
        config=FINETUNE, run_dir=tmp_path / "runs",
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    scratch = run_training(
        repo_copy, "fit.epochs=2", "name=digits_scratch", *SCRATCH, *GATE_OFF,
        config=FINETUNE, run_dir=tmp_path / "runs",
    )  # fmt: skip
    assert scratch.returncode == 0, scratch.stderr[-3000:]
    meta, fresh = _metadata(repo_copy, "digits_finetuned"), _metadata(repo_copy, "digits_scratch")
    lineage = meta["init_from"]
    assert (lineage["model"], lineage["version"]) == ("digits", 1)
    assert lineage["loaded_layers"] == ["conv1", "conv2", "dense1", "probabilities"]
    assert lineage["frozen_layers"] == ["conv1", "conv2", "dense1"]
    source_meta = _metadata(repo_copy, "digits")
    assert (
        lineage["checksums"]["onnx/model.onnx"]
        == source_meta["artifacts"]["onnx"]["files"]["model.onnx"]
    )
    # The first epoch starts where the source left off, far below a fresh model.
    first = meta["training"]["history"]["val_loss"][0]
    assert first < 0.25 * fresh["training"]["history"]["val_loss"][0], (first, fresh)
    # Frozen for the whole fit: those weights are the source's, exactly; the head moved.
    source = _variables(repo_copy / "digits" / "1")
    tuned_vars = _variables(repo_copy / "digits_finetuned" / "1")
    for name in ("conv1/kernel", "conv2/kernel", "dense1/kernel", "dense1/bias"):
        np.testing.assert_array_equal(tuned_vars[name], source[name])
    assert not np.array_equal(tuned_vars["probabilities/kernel"], source["probabilities/kernel"])
    assert "Fine-tuned from **digits version 1**" in Path(meta["training"]["report"]).read_text()


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (("init_from.model=nosuch",), "no published version of 'nosuch'"),
        (("init_from.version=7",), "'digits' has no version 7"),
        (
            ("model.architecture=mlp", "model.dense_units=[5]", "init_from.freeze=[]",
             "init_from.unfreeze_after=0", "preprocessing.augmentation.rotation=0",
             "preprocessing.augmentation.translation=0"),
            "no layer of the configured model matches",
        ),
        (("init_from.freeze=[nosuch]",), "no layer named nosuch"),
    ],
)  # fmt: skip
def test_a_bad_source_is_a_clear_error_and_publishes_nothing(
    repo_copy: Path, tmp_path: Path, overrides: tuple[str, ...], says: str
) -> None:
    result = run_training(repo_copy, "fit.epochs=1", *overrides, config=FINETUNE,
                          run_dir=tmp_path / "runs")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert says in result.stderr
    assert not (repo_copy / "digits_finetuned").exists() or not any(
        p.name.isdigit() for p in (repo_copy / "digits_finetuned").iterdir()
    )
