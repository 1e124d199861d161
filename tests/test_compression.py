"""Pruning during fit and quantized ONNX variants: the schedule, the masks, what ships,
and the tolerance check that keeps a lossy variant out of the repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import GATE_OFF, ROOT, TrainedRepo, run_python_json, run_training
from onnx import numpy_helper

from tfship.repository import list_versions, read_metadata, verify_artifact

PRUNED_CONFIG = ROOT / "training" / "configs" / "digits-pruned.yaml"


def _initializers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@pytest.fixture(scope="session")
def pruned_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_pruned with a shorter schedule: dense for 1 epoch, 80% by epoch 6, 12 in all."""
    repo = tmp_path_factory.mktemp("pruned") / "models"
    result = run_training(
        repo,
        "fit.epochs=12",
        "compress.pruning.begin_epoch=1",
        "compress.pruning.end_epoch=6",
        "compress.quantize=[]",
        *GATE_OFF,
        config=PRUNED_CONFIG,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return repo


def test_digits_ships_a_static_int8_variant_within_tolerance(trained_repo: TrainedRepo) -> None:
    meta = trained_repo.metadata()
    folder = trained_repo.version_dir
    verify_artifact(folder, read_metadata(folder), "onnx.int8")
    record = meta["compression"]["variants"]["int8"]
    assert record["published"] and record["method"] == "static" and record["per_channel"]
    assert record["size_ratio"] <= 0.35  # the target for digits
    assert record["loss"] <= record["tolerance"] == 0.01
    assert meta["metrics"]["onnx.int8"]["accuracy"] >= meta["metrics"]["onnx"]["accuracy"] - 0.01
    ops = {node.op_type for node in onnx.load(str(folder / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    # Every kernel (the big initializers) is stored as int8.
    kernels = [a for a in _initializers(folder / "model.int8.onnx").values() if a.size >= 256]
    assert len(kernels) == 4 and all(a.dtype == np.int8 for a in kernels)


def test_pruned_model_has_the_target_sparsity_and_plain_layers(
    pruned_repo: Path, trained_repo: TrainedRepo
) -> None:
    assert list_versions(pruned_repo / "digits_pruned") == [1]
    folder = pruned_repo / "digits_pruned" / "1"
    meta = json.loads((folder / "metadata.json").read_text())
    pruning = meta["compression"]["pruning"]
    assert pruning["target_sparsity"] == 0.8 and pruning["end_epoch"] == 6
    assert set(pruning["layers"]) == {"conv1", "conv2", "dense1"}
    for name, layer in pruning["layers"].items():
        assert layer["sparsity"] == pytest.approx(0.8, abs=0.005), name
    assert meta["metrics"]["onnx"]["accuracy"] >= 0.95

    # No wrappers or masks in what ships: the same weights (every initializer beyond
    # tf2onnx's small shape constants) as the dense digits model, and the zeros are really
    # in the exported ONNX kernels.
    pruned = _initializers(folder / "model.onnx")
    dense = _initializers(trained_repo.version_dir / "model.onnx")

    def weight_shapes(arrays: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
        return sorted(a.shape for a in arrays.values() if a.size > 8)

    assert weight_shapes(pruned) == weight_shapes(dense)
    kernels = [a for a in pruned.values() if a.size in (288, 18432, 65536)]
    assert len(kernels) == 3
    for kernel in kernels:
        assert (kernel == 0).mean() == pytest.approx(0.8, abs=0.005)
    # Zeros compress: the target is a gzip 3x smaller than the dense model's.
    dense_gzip = trained_repo.metadata()["artifacts"]["onnx"]["gzip_bytes"]
    assert dense_gzip / meta["artifacts"]["onnx"]["gzip_bytes"] >= 3


def test_pruning_schedule_and_masks() -> None:
    code = """
import json
import numpy as np
from training.pruning import magnitude_mask, sparsity_at
schedule = [round(sparsity_at(t, 0.8, 100, 200), 4) for t in (0, 99, 100, 150, 200, 500)]
weights = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
mask = magnitude_mask(weights, 0.75)
kept = np.abs(weights[mask == 1])
dropped = np.abs(weights[mask == 0])
tied = magnitude_mask(np.ones((10, 10), np.float32), 0.3)
print(json.dumps({
    "schedule": schedule,
    "zeros": int((mask == 0).sum()),
    "smallest_dropped": bool(dropped.max() <= kept.min()),
    "tied_zeros": int((tied == 0).sum()),
}))
"""
    result = run_python_json(code)
    # Polynomial decay, power 3: half-way through is 1 - 0.5^3 = 87.5% of the target.
    assert result["schedule"] == [0.0, 0.0, 0.0, 0.7, 0.8, 0.8]
    assert result["zeros"] == 1536  # 75% of 2048, exactly
    assert result["smallest_dropped"]
    assert result["tied_zeros"] == 30  # ties do not prune more or fewer than asked


@pytest.mark.parametrize(
    ("variant", "reference_shift", "published"),
    [("fp16", 0.0, True), ("int8_dynamic", 0.0, True), ("int8_dynamic", 0.5, False)],
)
def test_a_variant_that_loses_too_much_is_not_published(
    trained_repo: TrainedRepo, tmp_path: Path, variant: str, reference_shift: float, published: bool
) -> None:
    """The real quantizer on the real model; a float reference raised by ``reference_shift``
    stands in for a variant that loses that much accuracy."""
    staging = tmp_path / "staging"
    shutil.copytree(trained_repo.version_dir, staging)
    (staging / "model.int8.onnx").unlink()
    code = """
import json, sys
from pathlib import Path
import numpy as np
from training.config_file import load_config
from training.data import prepare_data
from training.quantize import build_variant, sample_rows
config = load_config(Path(sys.argv[1]))
splits = prepare_data(config)
metadata = json.loads((Path(sys.argv[2]) / "metadata.json").read_text())
float_accuracy = metadata["metrics"]["onnx"]["accuracy"]
outcome = build_variant(
    sys.argv[3], config, Path(sys.argv[2]), sample_rows(splits.x_train, 64, 0),
    splits.x_test, splits.y_test, splits.class_names, "probabilities",
    float_accuracy + float(sys.argv[4]),
)
print(json.dumps({"published": outcome.published, "record": outcome.record,
                  "has_artifact": outcome.artifact is not None}))
"""
    result: dict[str, Any] = run_python_json(
        code,
        str(ROOT / "training" / "configs" / "digits.yaml"),
        str(staging),
        variant,
        str(reference_shift),
    )
    record = result["record"]
    assert result["published"] is published and result["has_artifact"] is published
    assert (staging / f"model.{variant}.onnx").exists() is published
    assert record["size_bytes"] < record["float_size_bytes"] * 0.6
    if published:
        assert record["loss"] <= 0.01
    else:
        assert record["reason"].startswith("accuracy ")
        assert "more than compress.tolerance 0.01" in record["reason"]
