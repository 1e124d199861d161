"""data.streaming: CSV files read from disk with tf.data. The pass and the reader in-process
on generated CSVs (hash splits, statistics, samples, refusals, bad files), then real runs:
streamed and in-memory training on the same rows reach the same metric, and a glob of
shards trains on every train row while holding only the samples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import GATE_OFF, ROOT, run_training

from training.config_file import parse_config
from training.errors import ConfigError, DataError

PLANS = ["basic", "plus", "premium"]


def make_frame(rows: int, seed: int = 0, missing: bool = False) -> pd.DataFrame:
    """An id, three numeric columns, a categorical one and a label that depends on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).round(4)
    plan = rng.choice(PLANS, size=rows)
    signal = 2 * x[:, 0] - x[:, 1] + (plan == "premium") * 1.5
    frame = pd.DataFrame(
        {
            "id": np.arange(rows) + seed * 1_000_000,
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2] * 10 + 3,
            "plan": plan,
            "label": np.where(signal + rng.normal(0, 0.3, rows) > 0, "yes", "no"),
        }
    )
    if missing:
        frame.loc[rng.choice(rows, rows // 20, replace=False), "c"] = np.nan
        frame.loc[rng.choice(rows, rows // 25, replace=False), "plan"] = np.nan
    return frame


def streaming_config(path: Path, **data: Any) -> Any:
    cleaning = data.pop("cleaning", {"missing": "error", "duplicates": "keep"})
    raw = {
        "name": "s",
        "data": {
            "source": "csv",
            "path": str(path),
            "label": "label",
            "categorical": ["plan"],
            "streaming": True,
            **data,
        },
        "cleaning": cleaning,
        "model": {"architecture": "mlp", "dense_units": [16]},
    }
    return parse_config(raw, path.parent)


def split_ids(config: Any) -> dict[int, set[int]]:
    from training.stream_csv import SPLIT_FIELD, blocks, read_layout

    layout = read_layout(config)
    fractions = (config.data.split.train, config.data.split.val)
    found: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for block in blocks(layout, config.seed, fractions).as_numpy_iterator():
        for split in found:
            found[split].update(block["id"][block[SPLIT_FIELD] == split].astype(int).tolist())
    return found


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    frame = make_frame(6000, missing=True)
    path = tmp_path_factory.mktemp("stream") / "rows.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_hash_splits_are_disjoint_cover_every_row_and_are_stable(
    csv_file: tuple[Path, pd.DataFrame],
) -> None:
    path, frame = csv_file
    config = streaming_config(path)
    first, second = split_ids(config), split_ids(config)
    assert first == second
    train, val, test = first[0], first[1], first[2]
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(frame["id"])
    shares = [len(s) / len(frame) for s in (train, val, test)]
    assert shares == pytest.approx([0.7, 0.15, 0.15], abs=0.025)
    # The seed keys the hash: another seed, another assignment of the same rows.
    other = split_ids(parse_config({**config.to_dict(), "seed": 7}, path.parent))
    assert other[0] != train and len(other[0] ^ train) > 1000


def test_identical_rows_share_a_split(tmp_path: Path) -> None:
    frame = make_frame(500)
    # Every row twice, the copies far apart in the file.
    doubled = pd.concat([frame, frame], ignore_index=True)
    path = tmp_path / "doubled.csv"
    doubled.to_csv(path, index=False)
    from training.stream_csv import SPLIT_FIELD, blocks, read_layout

    config = streaming_config(path)
    ((block),) = list(blocks(read_layout(config), 42, (0.7, 0.15)).as_numpy_iterator())
    splits = block[SPLIT_FIELD]
    assert (splits[:500] == splits[500:]).all()


def test_the_pass_adapts_on_the_whole_train_split_and_keeps_bounded_samples(
    csv_file: tuple[Path, pd.DataFrame],
) -> None:
    from training.data import prepare_data

    path, frame = csv_file
    config = streaming_config(
        path, sample_rows=300, cleaning={"missing": "mean", "duplicates": "keep"}
    )
    splits = prepare_data(config)
    ids = split_ids(config)
    train = frame[frame["id"].isin(ids[0])]
    plan = splits.stream
    assert splits.sizes() == {"train": len(ids[0]), "val": len(ids[1]), "test": len(ids[2])}
    assert plan.sampled == {"train": 300, "val": 300, "test": 300}
    for name in ("x_train", "x_val", "x_test"):
        assert all(len(v) == 300 for v in getattr(splits, name).values())

    # Mean-filled columns: the mean of present values, the variance over all rows (of the
    # values as float32, as the reader parses them).
    for column in ("a", "b", "c"):
        present = train[column].dropna().to_numpy(np.float32).astype(np.float64)
        stats = plan.numeric[column]
        assert stats["mean"] == pytest.approx(present.mean(), rel=1e-9, abs=1e-9)
        squares = np.square(present - present.mean()).sum()
        assert stats["variance"] == pytest.approx(squares / len(train), rel=1e-9)
        assert stats["min"] == pytest.approx(present.min()) and stats["max"] == pytest.approx(
            present.max()
        )
    assert plan.fills["c"] == pytest.approx(train["c"].mean())
    assert plan.fills["plan"] == train["plan"].value_counts().idxmax()
    assert plan.vocabulary["plan"] == PLANS
    assert splits.class_names == ["no", "yes"]
    assert splits.cleaning["missing_values"] == {
        "c": int(frame["c"].isna().sum()),
        "plan": int(frame["plan"].isna().sum()),
    }
    # The samples are imputed like the train rows; the raw train sample keeps the gaps.
    assert not np.isnan(splits.x_test["c"]).any()
    assert np.isnan(splits.dataset.x["c"]).any()

    # The sample: the split's 300 rows with the smallest hash keys, a spread of the file.
    sampled = set(splits.x_test["id"].astype(int).tolist())
    assert sampled <= ids[2]
    assert np.median(sorted(sampled)) == pytest.approx(len(frame) / 2, rel=0.2)
    assert prepare_data(config).x_test["id"].tolist() == splits.x_test["id"].tolist()


def test_training_batches_are_the_train_rows_filled_or_dropped(
    csv_file: tuple[Path, pd.DataFrame],
) -> None:
    from training.data import prepare_data

    path, frame = csv_file
    ids = split_ids(streaming_config(path))
    for missing in ("mean", "drop"):
        config = streaming_config(path, cleaning={"missing": missing, "duplicates": "keep"})
        plan = prepare_data(config).stream
        seen, labels = [], []
        for x, y in plan.train_batches(64, 1):
            assert not np.isnan(x["c"].numpy()).any()
            assert not (x["plan"].numpy() == b"").any()
            seen += x["id"].numpy().astype(int).tolist()
            labels += y.numpy().tolist()
        train = frame[frame["id"].isin(ids[0])]
        if missing == "drop":
            train = train.dropna()
        assert sorted(seen) == sorted(train["id"])
        assert len(seen) == plan.rows["train"]
        # Rows are shuffled (not in file order), labels encoded like the class names.
        assert seen != sorted(seen)
        expected = dict(zip(train["id"], (train["label"] == "yes").astype(int), strict=True))
        assert labels == [expected[i] for i in seen]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"cleaning": {"missing": "median", "duplicates": "keep"}}, "cleaning.missing"),
        ({"cleaning": {"missing": "most_frequent", "duplicates": "keep"}}, "cleaning.missing"),
        ({"cleaning": {"outliers": "iqr", "duplicates": "keep"}}, "cleaning.outliers"),
        ({"cleaning": {"outliers": "zscore", "duplicates": "keep"}}, "cleaning.outliers"),
        ({"cleaning": {"duplicates": "drop"}}, "cleaning.duplicates"),
        ({"balance": "oversample"}, "data.balance"),
        ({"sample_rows": 10}, "data.sample_rows"),
        ({"source": "npz", "categorical": []}, "data.streaming"),
    ],
)
def test_what_cannot_stream_is_refused_by_name(
    tmp_path: Path, override: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        streaming_config(tmp_path / "x.csv", **override)


def test_folds_distillation_and_globs_without_streaming_are_refused(tmp_path: Path) -> None:
    base = streaming_config(tmp_path / "x.csv").to_dict()
    with pytest.raises(ConfigError, match="cross_validation"):
        parse_config({**base, "cross_validation": {"folds": 3}}, tmp_path)
    with pytest.raises(ConfigError, match="distill"):
        parse_config({**base, "distill": {"teacher": {"model": "digits"}}}, tmp_path)
    glob = {**base, "data": {**base["data"], "streaming": False, "path": "shards/*.csv"}}
    with pytest.raises(ConfigError, match="glob"):
        parse_config(glob, tmp_path)


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    from training.data import prepare_data

    frame = make_frame(3000)
    bad = frame.astype({"b": object})
    bad.loc[2500, "b"] = "n/a?"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    message = "bad.csv: row 2,501: column 'b' has a value that is not a number ('n/a?')"
    with pytest.raises(DataError, match=re.escape(message)):
        prepare_data(streaming_config(tmp_path / "bad.csv"))
    short = tmp_path / "short.csv"
    short.write_text("id,a,b,c,plan,label\n1,2,3,4,basic,yes\n1,2,3\n" + "2,2,3,4,plus,no\n" * 9)
    with pytest.raises(DataError, match=re.escape("short.csv: row 2: 3 fields where the header")):
        prepare_data(streaming_config(short))

    shards = tmp_path / "shards"
    shards.mkdir()
    frame.to_csv(shards / "1.csv", index=False)
    frame[["label", "id", "a", "b", "c", "plan"]].to_csv(shards / "2.csv", index=False)
    with pytest.raises(DataError, match=re.escape("2.csv: its header differs from 1.csv's")):
        prepare_data(streaming_config(shards / "*.csv"))
    with pytest.raises(DataError, match="no file matches"):
        prepare_data(streaming_config(tmp_path / "none-*.csv"))

    gaps = frame.copy()
    gaps.loc[[5, 6], "c"] = np.nan
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    with pytest.raises(DataError, match=r"missing values in c \(2 rows\).*drop or mean"):
        prepare_data(streaming_config(tmp_path / "gaps.csv"))


def write_run_config(tmp_path: Path, path: str, streaming: bool) -> Path:
    data: dict[str, Any] = {
        "source": "csv",
        "path": path,
        "label": "label",
        "features": ["a", "b", "c", "plan"],
        "categorical": ["plan"],
    }
    if streaming:
        data.update(streaming=True, sample_rows=400)
    config = {
        "name": "streamed" if streaming else "loaded",
        "task": "classification",
        "data": data,
        "cleaning": {"missing": "error", "duplicates": "keep"},
        "model": {"architecture": "mlp", "dense_units": [16]},
        "fit": {"batch_size": 64, "epochs": 6, "early_stopping": {"patience": 100}},
        "compress": {"quantize": []},
    }
    out = tmp_path / f"{config['name']}.yaml"
    out.write_text(json.dumps(config))
    return out


def onnx_accuracy(version_dir: Path, frame: pd.DataFrame, classes: list[str]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    feeds = {}
    for item in session.get_inputs():
        column = frame[item.name].to_numpy()
        feeds[item.name] = (
            column.astype(object) if item.name == "plan" else column.astype(np.float32)
        ).reshape(-1, *[1] * (len(item.shape) - 1))
    probabilities = session.run(None, feeds)[0]
    predicted = np.array(classes)[probabilities.argmax(axis=1)]
    return float((predicted == frame["label"].to_numpy()).mean())


def test_streamed_and_loaded_training_reach_the_same_metric(tmp_path: Path) -> None:
    frame = make_frame(4000, seed=1)
    shards = tmp_path / "shards"
    shards.mkdir()
    frame.to_csv(tmp_path / "all.csv", index=False)
    frame.iloc[:2500].to_csv(shards / "part-1.csv", index=False)
    frame.iloc[2500:].to_csv(shards / "part-2.csv", index=False)
    repo = tmp_path / "models"
    outcomes = {}
    for streaming, path in ((False, str(tmp_path / "all.csv")), (True, "shards/*.csv")):
        config = write_run_config(tmp_path, path, streaming)
        result = run_training(repo, *GATE_OFF, config=config)
        assert result.returncode == 0, result.stderr[-3000:]
        name = "streamed" if streaming else "loaded"
        meta = json.loads((repo / name / "1" / "metadata.json").read_text())
        outcomes[name] = (result, meta)

    result, meta = outcomes["streamed"]
    record = meta["data"]["streaming"]
    assert record["files"] == ["part-1.csv", "part-2.csv"]
    rows = record["rows"]
    assert sum(rows.values()) == 4000 and meta["data"]["rows"] == rows
    assert record["held_in_memory"] == {"train": 400, "val": 400, "test": 400}
    # Every epoch ran over the whole train split, not its 400-row sample.
    steps = -(-rows["train"] // 64)
    assert re.search(rf"^{steps}/{steps} - ", result.stdout, re.MULTILINE), result.stdout[-2000:]
    assert "training reads the train split from disk" in result.stderr
    scaler = next(p for p in meta["preprocessing"] if p["layer"] == "Normalization")
    assert scaler["adapted_on"] == f"train split, streamed ({rows['train']:,} rows)"
    assert meta["parity"]["rows"] == 400
    report = Path(meta["training"]["report"]).read_text()
    assert "Streamed from part-1.csv, part-2.csv" in report
    assert f"| train | {rows['train']} | 400 |" in report

    accuracy = {
        name: onnx_accuracy(repo / name / "1", frame, m["class_names"])
        for name, (_, m) in outcomes.items()
    }
    assert accuracy["loaded"] > 0.9, accuracy
    assert accuracy["streamed"] == pytest.approx(accuracy["loaded"], abs=0.03), accuracy


def test_the_shipped_streaming_config_publishes(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    config = ROOT / "training" / "configs" / "churn-streaming.yaml"
    result = run_training(repo, config=config)  # its own epochs and quality gate
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((repo / "churn_streamed" / "1" / "metadata.json").read_text())
    assert meta["data"]["streaming"]["files"] == ["churn.csv"]
    assert meta["data"]["cleaning"]["imputed"]  # churn.csv has gaps; the mean filled them
    assert meta["data"]["cleaning"]["balance"]["class_weight"]
