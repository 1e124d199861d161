"""The data stage in-process (no TensorFlow): every loader, every bad-data error, cleaning
counts, stratification and balancing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ROOT

from training.config_file import load_config, parse_config
from training.data import prepare_data
from training.errors import DataError
from training.loaders import load_dataset, sine_waves

CONFIGS = ROOT / "training" / "configs"


def config_for(tmp_path: Path, data: dict[str, Any], **sections: Any) -> Any:
    raw = {"name": "t", "data": data, **sections}
    return parse_config(raw, tmp_path)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("dataset", "task", "kind", "input_name", "shape", "classes"),
    [
        ("digits", "classification", "image", "pixels", (8, 8, 1), 10),
        ("breast_cancer", "classification", "tabular", "features", (30,), 2),
        ("iris", "classification", "tabular", "features", (4,), 3),
        ("wine", "classification", "tabular", "features", (13,), 3),
        ("diabetes", "regression", "tabular", "features", (10,), 0),
    ],
)
def test_bundled_sklearn_sets(
    tmp_path: Path,
    dataset: str,
    task: str,
    kind: str,
    input_name: str,
    shape: tuple[int, ...],
    classes: int,
) -> None:
    config = parse_config(
        {"name": "t", "task": task, "data": {"source": "sklearn", "dataset": dataset}}, tmp_path
    )
    data = load_dataset(config)
    assert data.kind == kind
    assert list(data.x) == [input_name]
    assert data.x[input_name].shape[1:] == shape and data.x[input_name].dtype == np.float32
    assert len(data.class_names) == classes
    if task == "regression":
        assert data.y.dtype == np.float32
    else:
        assert set(np.unique(data.y)) == set(range(classes))


def test_breast_cancer_keeps_its_class_names(tmp_path: Path) -> None:
    data = load_dataset(load_config(CONFIGS / "breast_cancer.yaml"))
    assert data.class_names == ["malignant", "benign"]


def test_csv_loader_with_categorical_columns() -> None:
    config = load_config(CONFIGS / "churn.yaml")
    data = load_dataset(config)
    assert data.kind == "columns"
    assert list(data.x) == ["tenure_months", "support_calls", "monthly_price", "plan", "region"]
    assert data.categorical == ["plan", "region"]
    assert data.x["plan"].dtype == object and data.x["tenure_months"].dtype == np.float32
    assert data.class_names == ["0", "1"]


def test_csv_cleaning_counts_what_it_changed() -> None:
    splits = prepare_data(load_config(CONFIGS / "churn.yaml"))
    report = splits.cleaning
    # make_examples.py: 400 rows + 6 repeated; 12 blanks; 4 prices of 9999.
    assert report["rows_loaded"] == 406
    assert report["duplicates_dropped"] == 6
    assert sum(report["missing_values"].values()) == 12 - report["missing_label_dropped"]
    assert sum(report["imputed"].values()) == sum(report["missing_values"].values())
    for values in splits.x_train.values():
        assert (
            not any(v is None for v in values)
            if values.dtype == object
            else np.isfinite(values).all()
        )
    clipped = report["clipped_in_train"]["monthly_price"]
    assert clipped["rows"] >= 1 and clipped["high"] < 9999
    assert splits.x_train["monthly_price"].max() <= clipped["high"] + 1e-3
    # Oversampling evens the train split only.
    balance = report["balance"]
    assert len(set(balance["train_counts_after"])) == 1
    assert balance["rows_added"] > 0
    assert (
        len(splits.y_val) + len(splits.y_test) + sum(balance["train_counts_before"])
        == (report["rows_kept"])
    )


def test_missing_values_stop_the_run_by_default(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n,3,y\n4,5,x\n6,7,y\n")
    config = config_for(tmp_path, {"source": "csv", "path": str(path)})
    with pytest.raises(DataError, match=r"missing values in a \(1 rows\); set cleaning.missing"):
        prepare_data(config)


def test_drop_removes_rows_with_missing_values(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 3 if i % 7 else ''},{i % 2}" for i in range(60))
    path = write_csv(tmp_path / "d.csv", "a,b,label\n" + rows + "\n")
    config = config_for(
        tmp_path, {"source": "csv", "path": str(path)}, cleaning={"missing": "drop"}
    )
    splits = prepare_data(config)
    assert splits.cleaning["missing_rows_dropped"] == 9  # i = 0, 7, ..., 56
    assert sum(splits.sizes().values()) == 51


@pytest.mark.parametrize(
    ("text", "data", "message"),
    [
        ("", {}, "the file is empty"),
        ("a,label\n", {}, "has a header but no rows"),
        ("a,b\n1,2\n", {}, "label column 'label' not found"),
        ("a,label\n1,x\nhello,y\n", {}, "feature column 'a' is not numeric (row 3: 'hello')"),
        ("a,label\n1,x\n2,x\n3,x\n", {}, "a single class ('x')"),
        ("a,label\n1,x\n2,y\n3,x\n4,y\n", {}, "too few rows for the split"),
        ("a,label\n1,x\n", {"features": ["zz"]}, "column 'zz' not found"),
    ],
)
def test_bad_csv_files_name_the_problem(
    tmp_path: Path, text: str, data: dict[str, Any], message: str
) -> None:
    path = write_csv(tmp_path / "d.csv", text)
    config = config_for(tmp_path, {"source": "csv", "path": str(path), **data})
    with pytest.raises(DataError) as caught:
        prepare_data(config)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) or "too few" in message or "single" in message


def test_missing_csv_file(tmp_path: Path) -> None:
    config = config_for(tmp_path, {"source": "csv", "path": "nope.csv"})
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_dataset(config)


def test_npz_loader_and_its_errors(tmp_path: Path) -> None:
    x, y = sine_waves(0, rows=90)
    good = tmp_path / "seq.npz"
    np.savez(good, x=x, y=y)
    config = config_for(
        tmp_path, {"source": "npz", "path": "seq.npz"}, model={"architecture": "rnn"}
    )
    data = load_dataset(config)
    assert (data.kind, list(data.x), data.x["sequence"].shape) == (
        "sequence",
        ["sequence"],
        x.shape,
    )

    np.savez(tmp_path / "nolabels.npz", x=x)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 3, dtype=object), y=[0, 1, 0])
    np.savez(tmp_path / "short.npz", x=x, y=y[:10])
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    cases = {
        "nolabels.npz": "missing array 'y'",
        "objects.npz": "holds object arrays, which need pickle",
        "short.npz": "'x' has 90 rows but 'y' has 10",
        "junk.npz": "not a readable NPZ file",
    }
    for name, message in cases.items():
        config = config_for(tmp_path, {"source": "npz", "path": name})
        with pytest.raises(DataError, match=message):
            load_dataset(config)


def test_image_folder_loader(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "shapes.yaml")
    data = load_dataset(config)
    assert data.kind == "image" and data.class_names == ["circle", "square", "triangle"]
    assert data.x["pixels"].shape == (120, 16, 16, 1)
    assert data.x["pixels"].min() >= 0 and data.x["pixels"].max() <= 255


def test_image_that_does_not_decode_is_named(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / label / "ok.png")
    broken = tmp_path / "imgs" / "b" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    config = config_for(
        tmp_path, {"source": "images", "path": "imgs"}, model={"architecture": "cnn"}
    )
    with pytest.raises(DataError, match=r"broken\.jpg: image does not decode"):
        load_dataset(config)
    empty = tmp_path / "empty"
    empty.mkdir()
    config = config_for(
        tmp_path, {"source": "images", "path": "empty"}, model={"architecture": "cnn"}
    )
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(config)


def test_architecture_must_fit_the_data(tmp_path: Path) -> None:
    config = config_for(
        tmp_path, {"source": "sklearn", "dataset": "iris"}, model={"architecture": "cnn"}
    )
    with pytest.raises(DataError, match="'cnn' does not fit tabular data"):
        load_dataset(config)


def test_split_is_stratified_and_fixed_by_the_seed() -> None:
    config = load_config(CONFIGS / "digits.yaml")
    first, second = prepare_data(config), prepare_data(config)
    assert np.array_equal(first.y_test, second.y_test)
    assert np.array_equal(first.x_test["pixels"], second.x_test["pixels"])
    overall = np.bincount(np.concatenate([first.y_train, first.y_val, first.y_test])) / 1797
    for labels in (first.y_train, first.y_val, first.y_test):
        share = np.bincount(labels, minlength=10) / len(labels)
        assert np.abs(share - overall).max() < 0.01


def test_class_weight_balances_the_loss() -> None:
    splits = prepare_data(load_config(CONFIGS / "breast_cancer.yaml"))
    weights = splits.class_weight
    assert weights is not None
    counts = np.bincount(splits.y_train)
    # Balanced: every class carries the same total weight.
    assert weights[0] * counts[0] == pytest.approx(weights[1] * counts[1])
    assert weights[0] > 1 > weights[1]  # malignant is the minority


def test_every_shipped_config_parses() -> None:
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {"digits", "breast_cancer", "diabetes", "churn", "shapes", "sine_waves"} <= set(names)
    for path in CONFIGS.glob("*.yaml"):
        config = load_config(path)
        assert config.name == yaml.safe_load(path.read_text())["name"]


def _config_keys(cls: type, prefix: str = "") -> list[str]:
    import dataclasses
    import typing

    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "base_dir":  # set from the file's location, not a key
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _config_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def test_docs_list_every_config_key() -> None:
    from training.config import TrainConfig

    text = (ROOT / "docs" / "training.md").read_text()
    table = text.split("## Every key", 1)[1]
    documented = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert documented == _config_keys(TrainConfig)
