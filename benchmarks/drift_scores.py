"""Drift scores of normal and shifted traffic: what the alert threshold is chosen from.

For each model (digits, churn) the script trains it (or takes it from --model-dir), then
scores windows of rows the model never trained on (its val and test splits, drawn with
replacement) against the version's own baseline_profile, with the server's own bins and
PSI (service/drift/). Normal traffic gives the noise floor at each window size; the shifted
scenarios give what a real change looks like. Prints one table:

    python benchmarks/drift_scores.py [--model-dir DIR] [--windows 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.drift.reference import Reference  # noqa: E402
from service.drift.scores import THRESHOLD, score  # noqa: E402

Rows = dict[str, np.ndarray]
SIZES = (100, 1000, 5000)


def _digits_shifts() -> dict[str, Callable[[Rows, np.random.Generator], Rows]]:
    def on_pixels(change: Callable[[np.ndarray, np.random.Generator], np.ndarray]):
        return lambda x, rng: {"pixels": np.clip(change(x["pixels"], rng), 0, 16)}

    return {
        "normal": lambda x, rng: x,
        "inverted (16 - x)": on_pixels(lambda p, rng: 16 - p),
        "scaled x0.5": on_pixels(lambda p, rng: p * 0.5),
        "brighter +2": on_pixels(lambda p, rng: p + 2),
        "noise sd 2": on_pixels(lambda p, rng: p + rng.normal(0, 2, p.shape)),
        "moved 1 px right": on_pixels(lambda p, rng: np.roll(p, 1, axis=2)),
    }


def _churn_shifts() -> dict[str, Callable[[Rows, np.random.Generator], Rows]]:
    def price(factor: float):
        return lambda x, rng: {**x, "monthly_price": x["monthly_price"] * factor}

    def new_plan(share: float):
        def change(x: Rows, rng: np.random.Generator) -> Rows:
            plan = x["plan"].copy()
            plan[rng.random(len(plan)) < share] = "enterprise"
            return {**x, "plan": plan}

        return change

    return {
        "normal": lambda x, rng: x,
        "prices x1.1": price(1.1),
        "prices x1.5": price(1.5),
        "unseen plan in 5%": new_plan(0.05),
        "unseen plan in 20%": new_plan(0.2),
    }


def _held_out_rows(config_path: Path) -> Rows:
    from training.config_file import load_config
    from training.data import prepare_data

    splits = prepare_data(load_config(config_path))
    held = np.concatenate([splits.rows["val"], splits.rows["test"]])
    return {name: values[held] for name, values in splits.dataset.x.items()}


def _scores(
    version: Path, rows: Rows, shift: Callable, size: int, windows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    metadata = json.loads((version / "metadata.json").read_text())
    reference = Reference(metadata["baseline_profile"])
    layout = reference.layout()
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    output = metadata["outputs"][0]["name"]
    rng = np.random.default_rng(seed)
    inputs, predictions = np.zeros(windows), np.zeros(windows)
    count = len(next(iter(rows.values())))
    for w in range(windows):
        pick = rng.integers(0, count, size)
        window = shift({k: v[pick] for k, v in rows.items()}, rng)
        feed = {
            k: (v.astype(np.float32) if v.dtype != object else v.astype(object))
            for k, v in window.items()
        }
        answer = session.run([output], feed)[0]
        counts = np.bincount(reference.slots(window, answer), minlength=reference.size)
        scored = score("", 0, layout, size, counts)
        inputs[w] = max(scored.inputs.values())
        predictions[w] = scored.predictions or 0.0
    return inputs, predictions


def _train(model_dir: Path, config: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tfship.cli", "train", str(config), "--model-dir", str(model_dir),
         "--run-dir", str(model_dir / ".runs")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a repository with digits and churn")
    parser.add_argument("--windows", type=int, default=200, help="windows per cell")
    args = parser.parse_args()
    configs = {
        "digits": (ROOT / "training/configs/digits.yaml", _digits_shifts()),
        "churn": (ROOT / "training/configs/churn.yaml", _churn_shifts()),
    }
    temporary = None
    model_dir = args.model_dir
    if model_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="tfship-drift-")
        model_dir = Path(temporary.name)
    print(
        f"PSI of windows of held-out rows (val + test, drawn with replacement) against "
        f"the version's baseline; {args.windows} windows a cell; the largest input's score. "
        f"Above {THRESHOLD}: the share of windows the alert's threshold flags.\n"
    )
    print("| model | traffic | window rows | input p50 | input p99 | prediction p50 | "
          f"prediction p99 | windows > {THRESHOLD} |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (config, shifts) in configs.items():
        versions = sorted((model_dir / name).glob("[0-9]*"), key=lambda p: int(p.name))
        if not versions:
            print(f"training {name}...", file=sys.stderr)
            _train(model_dir, config)
            versions = sorted((model_dir / name).glob("[0-9]*"), key=lambda p: int(p.name))
        rows = _held_out_rows(config)
        for scenario, shift in shifts.items():
            for size in SIZES if scenario == "normal" else (1000,):
                inputs, predictions = _scores(versions[-1], rows, shift, size, args.windows, 7)
                print(
                    f"| {name} | {scenario} | {size:,} | {np.median(inputs):.3f} | "
                    f"{np.quantile(inputs, 0.99):.3f} | {np.median(predictions):.3f} | "
                    f"{np.quantile(predictions, 0.99):.3f} | "
                    f"{np.mean(inputs > THRESHOLD):.0%} |"
                )
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    main()
