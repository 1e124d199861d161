"""What a training config must satisfy beyond each key's type: the checks across keys
(data source and task, architecture and inputs, metrics and task, tuning ranges, compression),
run on every parsed config before any work."""

from __future__ import annotations

import glob

from training.config import TrainConfig
from training.errors import ConfigError

SKLEARN_CLASSIFICATION = ("digits", "breast_cancer", "iris", "wine")
SKLEARN_REGRESSION = ("diabetes",)
SYNTHETIC_SETS = ("sine_waves",)

CLASSIFICATION_METRICS = frozenset(
    {"accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "loss"}
)
MAX_FOLDS = 20  # beyond this a typo is likelier than a wish: each fold is a whole fit
REGRESSION_METRICS = frozenset({"mse", "rmse", "mae", "r2"})


def _check_data(config: TrainConfig) -> None:
    data = config.data
    if data.source == "sklearn":
        known = SKLEARN_REGRESSION if config.task == "regression" else SKLEARN_CLASSIFICATION
        if data.dataset not in known:
            raise ConfigError(
                f"data.dataset: {data.dataset!r} is not a bundled scikit-learn set for "
                f"{config.task} (choose from {', '.join(known)})"
            )
    elif data.source == "synthetic":
        if data.dataset not in SYNTHETIC_SETS:
            raise ConfigError(
                f"data.dataset: {data.dataset!r} is not a generated set "
                f"(choose from {', '.join(SYNTHETIC_SETS)})"
            )
    elif not data.path:
        raise ConfigError(f"data.path: required for source {data.source!r}")
    if data.source == "capture" and not data.labels:
        raise ConfigError(
            "data.labels: source 'capture' needs a CSV of labels (columns request_id and "
            f"{data.label!r}, optionally row)"
        )
    if data.source != "capture" and (data.labels or data.model):
        raise ConfigError("data.labels / data.model: only for source 'capture'")
    if data.source != "csv" and (data.categorical or data.features is not None):
        raise ConfigError("data.features / data.categorical: only for source 'csv'")
    if len(data.image_size) != 2 or any(n < 1 for n in data.image_size):
        raise ConfigError("data.image_size: expected [height, width] of positive integers")
    if config.task == "regression" and data.balance != "none":
        raise ConfigError("data.balance: class balancing is for classification only")
    data.split.check("data.split")
    if data.streaming:
        _check_streaming(config)
    elif data.source == "csv" and glob.has_magic(data.path):
        raise ConfigError(
            f"data.path: {data.path!r} is a glob; several files are read with data.streaming: true"
        )


def _check_streaming(config: TrainConfig) -> None:
    """Refuse, by name, what cannot run on rows seen one batch at a time."""
    data, cleaning = config.data, config.cleaning
    if data.source != "csv":
        raise ConfigError(f"data.streaming: only for source 'csv', not {data.source!r}")
    if config.model.architecture != "mlp":
        raise ConfigError("model.architecture: streamed CSV columns train an mlp")
    if cleaning.missing in ("median", "most_frequent"):
        raise ConfigError(
            f"cleaning.missing: {cleaning.missing} needs every train value of a column at "
            "once; with data.streaming use error, drop or mean (categorical columns then get "
            "their most frequent value, counted in the streaming pass)"
        )
    if cleaning.outliers != "none":
        raise ConfigError(
            f"cleaning.outliers: {cleaning.outliers} clipping changes the statistics the "
            "scaler is adapted on, so it needs a pass over the train split before the "
            "streaming pass; with data.streaming set outliers: none"
        )
    if cleaning.duplicates == "drop":
        raise ConfigError(
            "cleaning.duplicates: drop needs every row seen at once; with data.streaming set "
            "duplicates: keep (identical rows hash into the same split, so a repeated row "
            "never reaches val or test from train)"
        )
    if data.balance == "oversample":
        raise ConfigError(
            "data.balance: oversample repeats train rows held in memory; with data.streaming "
            "use class_weight"
        )
    if config.cross_validation.folds:
        raise ConfigError(
            "cross_validation: the folds re-split the train rows in memory; drop it with "
            "data.streaming"
        )
    if config.distill.teacher.model:
        raise ConfigError(
            "distill: the teacher's soft targets are held per train row in memory; drop it "
            "with data.streaming"
        )
    if data.sample_rows < 100:
        raise ConfigError(f"data.sample_rows: must be at least 100, got {data.sample_rows}")
    if data.shuffle_window < 1:
        raise ConfigError(f"data.shuffle_window: must be at least 1, got {data.shuffle_window}")


def _check_model(config: TrainConfig) -> None:
    model = config.model
    if not model.conv_filters or any(n < 1 for n in model.conv_filters):
        raise ConfigError("model.conv_filters: must be a non-empty list of positive integers")
    if not model.rnn_units or any(n < 1 for n in model.rnn_units):
        raise ConfigError("model.rnn_units: must be a non-empty list of positive integers")
    if any(n < 1 for n in model.dense_units):
        raise ConfigError("model.dense_units: every entry must be a positive integer")
    if not 0 <= model.dropout < 1:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {model.dropout}")
    for key in ("l1", "l2"):
        if getattr(model, key) < 0:
            raise ConfigError(f"model.{key}: must be 0 or more")


def check_config(config: TrainConfig) -> None:
    from tfship.repository import is_valid_model_name

    if not is_valid_model_name(config.name):
        raise ConfigError(
            f"name: {config.name!r} is not a valid model name "
            "(letters, digits, '_', '-', '.', starting with a letter or digit)"
        )
    _check_data(config)
    _check_model(config)
    positive_ints = {
        "fit.batch_size": config.fit.batch_size,
        "fit.epochs": config.fit.epochs,
        "fit.schedule.decay_steps": config.fit.schedule.decay_steps,
        "model.kernel_size": config.model.kernel_size,
        "export.onnx_opset": config.export.onnx_opset,
    }
    for key, value in positive_ints.items():
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value}")
    logged = {"loss", "accuracy"} if config.task == "classification" else {"loss", "mae", "rmse"}
    monitor = config.fit.early_stopping.monitor
    if monitor.removeprefix("val_") not in logged:
        choices = ", ".join(sorted(f"{p}{m}" for m in logged for p in ("val_", "")))
        raise ConfigError(
            f"fit.early_stopping.monitor: {monitor!r} is not logged for {config.task} "
            f"(choose from {choices})"
        )
    if config.fit.early_stopping.patience < 0:
        raise ConfigError("fit.early_stopping.patience: must be 0 or more")
    if config.fit.learning_rate <= 0:
        raise ConfigError("fit.learning_rate: must be positive")
    if not 0 < config.fit.schedule.factor < 1:
        raise ConfigError("fit.schedule.factor: must be between 0 and 1")
    if config.export.warmup_rows < 0:
        raise ConfigError("export.warmup_rows: must be 0 or more")
    if config.export.parity_tolerance <= 0:
        raise ConfigError("export.parity_tolerance: must be positive")
    if config.cleaning.outlier_threshold < 0:
        raise ConfigError("cleaning.outlier_threshold: must be 0 (the default) or more")
    metrics = CLASSIFICATION_METRICS if config.task == "classification" else REGRESSION_METRICS
    if config.gate_metric() not in metrics:
        raise ConfigError(
            f"gate.metric: {config.gate_metric()!r} is not a {config.task} metric "
            f"(choose from {', '.join(sorted(metrics))})"
        )
    if config.gate.tolerance < 0:
        raise ConfigError("gate.tolerance: must be 0 or more")
    _check_compress(config)
    _check_tune(config)
    init = config.init_from
    if (init.freeze or init.unfreeze_after or init.version) and not init.model:
        raise ConfigError("init_from: name the model to start from (init_from.model)")
    if init.version < 0 or init.unfreeze_after < 0:
        raise ConfigError("init_from: version and unfreeze_after must be >= 0")
    if init.unfreeze_after and not init.freeze:
        raise ConfigError("init_from.unfreeze_after: only with init_from.freeze")
    distill = config.distill
    if distill.teacher.model:
        if config.task != "classification":
            raise ConfigError("distill: classification only (the teacher's soft targets)")
        if not distill.temperature > 0 or not 0 <= distill.alpha <= 1:
            raise ConfigError("distill: temperature must be positive and alpha in [0, 1]")
    folds = config.cross_validation.folds
    if folds and (init.model or distill.teacher.model):
        # The folds would train plain models from scratch: not what the final run does.
        raise ConfigError(
            "cross_validation: not with init_from or distill yet (the folds would train "
            "from scratch without the teacher)"
        )
    if folds and not 2 <= folds <= MAX_FOLDS:
        raise ConfigError(f"cross_validation.folds: {folds}; 0 (off) or 2 to {MAX_FOLDS} folds")


def _check_tune(config: TrainConfig) -> None:
    tune = config.tune
    if tune.trials < 1 or tune.timeout_seconds <= 0 or tune.epochs < 0:
        raise ConfigError("tune: trials must be at least 1, timeout_seconds positive, epochs >= 0")
    for key, spec in tune.search.items():
        where = f"tune.search.{key}"
        if key.split(".")[0] in ("name", "tune", "seed", "data"):
            raise ConfigError(f"{where}: {key.split('.')[0]} is not tunable")
        if spec.choices is not None:
            if not spec.choices or spec.low is not None or spec.high is not None:
                raise ConfigError(f"{where}: give either non-empty choices or low and high")
        elif spec.low is None or spec.high is None or not spec.low < spec.high:
            raise ConfigError(f"{where}: needs low < high (or choices)")
        elif spec.log and spec.low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0")


def _check_compress(config: TrainConfig) -> None:
    compress = config.compress
    if len(set(compress.quantize)) != len(compress.quantize):
        raise ConfigError("compress.quantize: a variant is listed twice")
    if compress.calibration_rows < 1:
        raise ConfigError("compress.calibration_rows: must be at least 1")
    if compress.tolerance < 0:
        raise ConfigError("compress.tolerance: must be 0 or more")
    pruning = compress.pruning
    if not 0 <= pruning.target_sparsity < 1:
        raise ConfigError("compress.pruning.target_sparsity: must be in [0, 1)")
    if pruning.frequency_steps < 1:
        raise ConfigError("compress.pruning.frequency_steps: must be at least 1")
    end = config.pruning_end_epoch()
    if pruning.target_sparsity and not 0 <= pruning.begin_epoch < end <= config.fit.epochs:
        raise ConfigError(
            f"compress.pruning: need 0 <= begin_epoch ({pruning.begin_epoch}) < end_epoch "
            f"({end}) <= fit.epochs ({config.fit.epochs})"
        )
