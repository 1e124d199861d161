"""The run report: PNG plots, report.md beside the run's logs, and report.html (the same,
one self-contained file).

The report is written whatever the outcome (published, or refused by the quality gate), so
a run can always be explained from its folder alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    history: dict[str, list[float]], folder: Path, title: str = "", best_epoch: int = 0
) -> list[Path]:
    """One PNG per metric: train vs validation over epochs, the gap between them shaded and
    the epoch whose weights were kept marked. ``title``: the model and run, on every plot."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key in sorted(k for k in history if not k.startswith("val_") and k != "learning_rate"):
        fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
        epochs = list(range(1, len(history[key]) + 1))
        ax.plot(epochs, history[key], label=f"train {key}", color="tab:blue")
        validation = history.get(f"val_{key}")
        if validation and len(validation) == len(epochs):
            ax.plot(epochs, validation, label=f"validation {key}", color="tab:orange")
            ax.fill_between(
                epochs, history[key], validation, color="tab:orange", alpha=0.12,
                label="train-validation gap",
            )  # fmt: skip
        if 0 < best_epoch <= len(epochs):
            ax.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1)
            marked = validation if validation else history[key]
            ax.plot([best_epoch], [marked[best_epoch - 1]], "o", color="tab:green")
            ax.annotate(
                f"epoch {best_epoch}: weights kept",
                (best_epoch, marked[best_epoch - 1]),
                textcoords="offset points", xytext=(6, 8), color="tab:green", fontsize=8,
            )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(f"{title}: {key} per epoch" if title else f"{key} per epoch", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        path = folder / f"{key}.png"
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def confusion_colours(matrix: list[list[int]]) -> Any:
    """RGB per cell: the diagonal in blue, errors in red, each by its share of the row (the
    true class), and any error at least a clear pink, so a single miss stands out."""
    import matplotlib

    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    blues, reds = matplotlib.colormaps["Blues"], matplotlib.colormaps["Reds"]
    colours = np.ones((*counts.shape, 3))
    for i, j in np.ndindex(counts.shape):
        if i == j:
            colours[i, j] = blues(0.15 + 0.85 * share[i, j])[:3]
        elif counts[i, j] > 0:
            colours[i, j] = reds(0.35 + 0.65 * share[i, j])[:3]
    return colours


def plot_confusion(
    matrix: list[list[int]], class_names: list[str], folder: Path, title: str = ""
) -> Path:
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    size = max(4.5, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    colours = confusion_colours(matrix)
    ax.imshow(colours)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    heading = "confusion matrix (test split; colour: share of the actual class)"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            dark = float(np.mean(colours[i, j])) < 0.5
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if dark else "black", fontweight="bold" if i != j and count else None,
            )  # fmt: skip
    path = folder / "confusion_matrix.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _balance_table(balance: dict[str, Any]) -> list[str]:
    before = balance.get("train_counts_before", [])
    after = balance.get("train_counts_after")
    weights = balance.get("class_weight", {})
    headers = ["class index", "rows"]
    rows: list[list[Any]] = []
    for index, count in enumerate(before):
        row: list[Any] = [index, count]
        if after is not None:
            row.append(after[index] if index < len(after) else "")
        rows.append(row)
    if after is not None:
        headers.append("rows after oversampling")
    lines = [f"Mode: {balance.get('mode', 'none')}", ""]
    lines += _table(headers, rows) if rows else []
    if weights:
        lines += ["", "Class weights:", ""]
        lines += _table(["class", "weight"], [[k, v] for k, v in weights.items()])
    return lines


def _inside(summary: dict[str, Any]) -> list[str]:
    """Per-layer weights and, for tabular models, which features the model uses."""
    lines: list[str] = []
    weights = summary.get("weights")
    if weights:
        lines += ["", "## Inside the model", "", "Weights per layer (trainable tensors):", ""]
        lines += _table(
            ["layer", "weight", "shape", "L2 norm", "mean abs", "std", "zeros", "near zero"],
            [
                [
                    w["layer"],
                    w["weight"],
                    "x".join(str(d) for d in w["shape"]),
                    w["l2_norm"],
                    w["mean_abs"],
                    w["std"],
                    f"{w['zeros']:.1%}",
                    f"{w['near_zero']:.1%}",
                ]
                for w in weights
            ],
        )
    importance = summary.get("feature_importance")
    if importance:
        lines += [
            "",
            f"Permutation importance: test {importance['metric']} lost when one feature is "
            f"shuffled ({importance['repeats']} shuffles each), most used first:",
            "",
        ]
        lines += _table(
            ["feature", "mean drop", "std"],
            [[name, v["mean_drop"], v["std"]] for name, v in importance["features"].items()],
        )
    return lines


def write_report(path: Path, summary: dict[str, Any], images: list[Path]) -> Path:
    """The Markdown report; ``summary`` is the run's record (metadata.json's fields)."""
    lines = [f"# Training run {summary['run_id']}: {summary['name']}", ""]
    lines += [f"- task: {summary['task']}", f"- outcome: **{summary['outcome']}**"]
    if summary.get("version_path"):
        lines.append(f"- published: `{summary['version_path']}`")
    lines += ["", "## Data", "", f"{summary['data']['description']}", ""]
    streaming = summary["data"].get("streaming")
    if streaming:
        held = streaming["held_in_memory"]
        lines += [
            f"Streamed from {', '.join(streaming['files'])} (one pass, "
            f"{streaming['scan_seconds']} s; split by {streaming['split_by']}); the train "
            "split was read from disk every epoch, and the rows below marked as held are the "
            "samples that validation, the test metrics and the export checks ran on.",
            "",
        ]
        lines += _table(
            ["split", "rows", "held in memory"],
            [[k, v, held.get(k, "")] for k, v in summary["data"]["rows"].items()],
        )
    else:
        lines += _table(["split", "rows"], [[k, v] for k, v in summary["data"]["rows"].items()])
    cleaning = summary["data"].get("cleaning", {})
    if cleaning:
        lines += ["", "Cleaning (what changed):", ""]
        lines += _table(
            ["step", "count"],
            [
                [key, value if not isinstance(value, dict) else len(value)]
                for key, value in cleaning.items()
                if key not in ("balance", "outliers")
            ],
        )
        if "balance" in cleaning:
            lines += ["", "Class balance of the train split:", ""]
            lines += _balance_table(cleaning["balance"])
    training = summary["training"]
    lines += ["", "## Fit", ""]
    lines += _table(
        ["epochs run", "best epoch", "resumed from epoch", "fit seconds"],
        [
            [
                training["epochs_run"],
                training["best_epoch"],
                training["resumed_from_epoch"],
                training["fit_seconds"],
            ]
        ],
    )
    lineage = summary.get("init_from")
    if lineage:
        lines += [
            "",
            f"Fine-tuned from **{lineage['model']} version {lineage['version']}** "
            f"(`{lineage['path']}`): weights loaded into {', '.join(lineage['loaded_layers'])}"
            + (
                "; replaced (new shape): "
                + ", ".join(r["layer"] for r in lineage["replaced_layers"])
                if lineage["replaced_layers"]
                else ""
            )
            + (
                f"; frozen: {', '.join(lineage['frozen_layers'])}"
                if lineage["frozen_layers"]
                else ""
            )
            + ".",
        ]
    distilled = summary.get("distillation")
    if distilled:
        teacher = distilled["teacher"]
        lines += [
            "",
            f"Distilled from **{teacher['model']} version {teacher['version']}** "
            f"({teacher['parameters']:,} parameters; this student "
            f"{distilled['student_parameters']:,}, {distilled['parameter_ratio']:.1%}), "
            f"temperature {distilled['temperature']:g}, alpha {distilled['alpha']:g}: test "
            f"{distilled['metric']} {distilled['student_test']:.4f} against the teacher's "
            f"{distilled['teacher_test']:.4f} on the same rows.",
        ]
    diagnosis = summary.get("fit_diagnosis")
    if diagnosis:
        lines += ["", f"**{diagnosis['verdict']}**: {diagnosis['summary']}."]
    lines += ["", "## Test metrics", ""]
    metrics = summary["metrics"]
    keys = sorted({k for m in metrics.values() for k, v in m.items() if isinstance(v, float)})
    lines += _table(
        ["artifact", *keys], [[a, *(m.get(k, "") for k in keys)] for a, m in metrics.items()]
    )
    per_class = summary.get("evaluation", {}).get("per_class")
    if per_class:
        lines += ["", "Per class (SavedModel):", ""]
        lines += _table(
            ["class", "precision", "recall", "f1", "support"],
            [
                [name, v["precision"], v["recall"], v["f1"], v["support"]]
                for name, v in per_class.items()
            ],
        )
    if summary.get("parity"):
        parity = summary["parity"]
        lines += [
            "",
            f"ONNX vs TensorFlow: max |diff| {parity['max_abs_diff']:.3g} over {parity['rows']} "
            f"test rows (tolerance {parity['tolerance']:g})",
        ]
    cv = summary.get("cross_validation")
    if cv:
        kind = "stratified " if cv["stratified"] else ""
        lines += ["", "## Cross-validation", ""]
        lines += [
            f"{cv['folds']}-fold {kind}cross-validation on the train and val rows (test rows "
            f"left out), one model per fold scored on its held-out fold:",
            "",
        ]
        lines += _table(
            ["metric", "mean", "std", *(f"fold {i}" for i in range(1, cv["folds"] + 1))],
            [
                [name, v["mean"], v["std"], *(fold.get(name, "") for fold in cv["per_fold"])]
                for name, v in cv["metrics"].items()
            ],
        )
    lines += _inside(summary)
    gate = summary.get("quality_gate")
    if gate:
        lines += ["", "## Quality gate", "", gate["message"]]
    stages = summary.get("stage_seconds")
    if stages:
        lines += ["", "## Stage timings", ""]
        lines += _table(["stage", "seconds"], [[k, v] for k, v in stages.items()])
    if images:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(path.parent).as_posix()})" for p in images]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_html(path: Path, markdown: Path, name: str) -> Path:
    """report.html beside report.md: the same report, one file, every image inline."""
    from training.report_html import render

    path.write_text(render(markdown.read_text(), markdown.parent, f"tfship run report: {name}"))
    return path
