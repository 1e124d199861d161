"""Over- or under-fitting, judged from a run's learning curves, in words and numbers.

The rules, in the order they are tried (the thresholds are recorded with the verdict):

- **overfitting**: after its best epoch the validation loss rose for at least
  ``RISE_EPOCHS`` epochs, ending at least ``RISE_FRACTION`` above its minimum, while the
  training loss kept falling; or, at the best epoch, the training metric beats the
  validation metric by more than ``METRIC_GAP`` (a gap the best weights keep).
- **under-trained**: the fit used every epoch it was allowed and the validation loss was
  still at its best in the last ``STILL_IMPROVING_EPOCHS`` epochs: more epochs would help.
- **underfitting**: the quality gate has a threshold and the model reaches it on neither
  its training nor its validation data at its best epoch (Keras' training metric is taken
  with dropout and augmentation on, so it alone can sit below the validation one): the
  model is too small or trained too little to fit what it is given.
- **good fit** otherwise.

Pure: lists of floats in, a dict out (metadata.json's ``fit_diagnosis``).
"""

from __future__ import annotations

import math
from typing import Any

from training.config import LOWER_IS_BETTER

RISE_EPOCHS = 3
RISE_FRACTION = 0.05
METRIC_GAP = 0.05
STILL_IMPROVING_EPOCHS = 2


def _higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def _at(values: list[float], epoch: int) -> float | None:
    return values[epoch - 1] if 0 < epoch <= len(values) else None


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def diagnose(
    history: dict[str, list[float]],
    max_epochs: int,
    metric: str = "",
    threshold: float | None = None,
    kept_epoch: int | None = None,
) -> dict[str, Any]:
    """The verdict, one sentence that says why, and the numbers behind it.

    ``metric``: the gate's metric when the history logs it (``accuracy``); ``threshold``:
    the gate's threshold, the bar underfitting is judged against; ``kept_epoch``: the epoch
    whose weights early stopping restored (by its own monitor), named in the verdict.
    """
    loss, val_loss = history.get("loss", []), history.get("val_loss", [])
    epochs = len(loss)
    if not loss or len(val_loss) != epochs:
        return {"verdict": "unknown", "summary": "no training and validation loss per epoch"}
    best = min(range(epochs), key=lambda i: val_loss[i]) + 1
    rising = sum(1 for i in range(best, epochs) if val_loss[i] > val_loss[i - 1])
    rise = (val_loss[-1] - val_loss[best - 1]) / abs(val_loss[best - 1] or 1.0)
    train_fell = loss[-1] < loss[best - 1]
    train_metric = _at(history.get(metric, []), best) if metric else None
    val_metric = _at(history.get(f"val_{metric}", []), best) if metric else None
    gap = None
    if train_metric is not None and val_metric is not None:
        gap = train_metric - val_metric if _higher_is_better(metric) else val_metric - train_metric
    numbers: dict[str, Any] = {
        "epochs_run": epochs,
        "max_epochs": max_epochs,
        "best_epoch": best,
        "best_val_loss": _rounded(val_loss[best - 1]),
        "final_val_loss": _rounded(val_loss[-1]),
        "val_loss_rise": _rounded(rise),
        "epochs_after_best": epochs - best,
        "val_loss_rising_epochs_after_best": rising,
        "train_loss_at_best": _rounded(loss[best - 1]),
        "loss_gap_at_best": _rounded(val_loss[best - 1] - loss[best - 1]),
        "kept_epoch": kept_epoch or best,
    }
    if threshold is not None and f"val_{metric}" in history:
        # How fast the model got good enough: what fine-tuning is for.
        reached = [
            i + 1
            for i, value in enumerate(history[f"val_{metric}"])
            if (value >= threshold if _higher_is_better(metric) else value <= threshold)
        ]
        numbers["first_epoch_reaching_threshold"] = reached[0] if reached else None
    if gap is not None:
        numbers |= {
            "metric": metric,
            f"train_{metric}_at_best": _rounded(train_metric),
            f"val_{metric}_at_best": _rounded(val_metric),
            "metric_gap_at_best": _rounded(gap),
        }
    rules = {
        "rise_epochs": RISE_EPOCHS,
        "rise_fraction": RISE_FRACTION,
        "metric_gap": METRIC_GAP,
        "still_improving_epochs": STILL_IMPROVING_EPOCHS,
        "threshold": threshold,
    }
    best_of_both = None
    if train_metric is not None and val_metric is not None:
        pick = max if _higher_is_better(metric) else min
        best_of_both = pick(train_metric, val_metric)
    verdict, summary = _judge(
        numbers, rising, rise, train_fell, gap, metric, threshold, best_of_both
    )
    return {"verdict": verdict, "summary": summary, "numbers": numbers, "rules": rules}


def _judge(
    n: dict[str, Any],
    rising: int,
    rise: float,
    train_fell: bool,
    gap: float | None,
    metric: str,
    threshold: float | None,
    train_metric: float | None,
) -> tuple[str, str]:
    best, epochs = n["best_epoch"], n["epochs_run"]
    if rising >= RISE_EPOCHS and rise >= RISE_FRACTION and train_fell:
        return "overfitting", (
            f"validation loss rose for {rising} epochs after epoch {best} (to {rise:.0%} above "
            f"its minimum) while training loss kept falling: overfitting; the weights of epoch "
            f"{n['kept_epoch']} are the ones kept"
        )
    if gap is not None and gap > METRIC_GAP:
        return "overfitting", (
            f"at its best epoch ({best}) training {metric} is {gap:.3f} above validation "
            f"{metric}: overfitting (regularize, or more data)"
        )
    if epochs >= n["max_epochs"] and best > epochs - STILL_IMPROVING_EPOCHS:
        return "under-trained", (
            f"validation loss was still at its best in epoch {best} of the {epochs} allowed: "
            "under-trained; more epochs (fit.epochs) would likely help"
        )
    if threshold is not None and train_metric is not None:
        # train_metric here: the better of training and validation at the best epoch.
        short = train_metric < threshold if _higher_is_better(metric) else train_metric > threshold
        if short:
            return "underfitting", (
                f"neither training nor validation {metric} reaches the gate's {threshold:g} "
                f"at the best epoch (at most {train_metric:.4f}): underfitting (a larger "
                "model or more epochs; more data would not help)"
            )
    return "good fit", (
        f"validation loss reached its minimum at epoch {best} of {epochs} and ended "
        f"{max(rise, 0.0):.0%} above it; training and validation stay close: a good fit"
    )
