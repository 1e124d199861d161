"""Fine-tuning: start the configured model from a published version's weights.

``init_from: {model: NAME, version: N}`` (0: the newest) reads that version's SavedModel
variables (named ``<layer>/<weight>``, as Keras names them) and assigns each to the layer of
the same name and weight of the same shape in the configured model. The preprocessing
layers are adapted on the new training data as always; a head whose shape changed (a new
class list) starts fresh: the head is replaced. ``freeze`` names layers to keep fixed
(``all_but_head``: every initialized layer but the output), for the first
``unfreeze_after`` epochs (0: the whole fit). The source's name, version, checksums and
what was matched go into metadata (``init_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.errors import ConfigError
from training.published import find_published

ALL_BUT_HEAD = "all_but_head"


@dataclass(frozen=True)
class Source:
    name: str
    version: int
    folder: Path
    weights: dict[str, np.ndarray]  # "<layer>/<weight>" -> values
    checksums: dict[str, str]  # the source's artifact files -> sha256


def load_source(config: TrainConfig, model_dir: Path) -> Source:
    """The published version to start from; ConfigError when it is not there."""
    import tensorflow as tf

    wanted = config.init_from
    found = find_published(model_dir, wanted.model, wanted.version, "init_from")
    loaded = tf.saved_model.load(str(found.folder))
    weights = {v.name.rsplit(":", 1)[0]: v.numpy() for v in loaded.variables}
    return Source(found.name, found.version, found.folder, weights, found.checksums())


def apply(net: Any, source: Source, head: str, freeze: list[str]) -> dict[str, Any]:
    """Assign the source's weights where layer name and shapes match; mark frozen layers.

    Returns the lineage record; ConfigError when nothing matches (a different model).
    """
    loaded, replaced, fresh = [], [], []
    for layer in net.layers:
        if not layer.weights:
            continue
        mine = {w.path.rsplit("/", 1)[-1]: w for w in layer.weights if w.trainable}
        if not mine:
            continue
        theirs = {key: source.weights.get(f"{layer.name}/{key}") for key in mine}
        if all(v is not None and v.shape == tuple(mine[k].shape) for k, v in theirs.items()):
            for key, variable in mine.items():
                variable.assign(theirs[key])
            loaded.append(layer.name)
        elif any(v is not None for v in theirs.values()):
            shapes = {k: list(v.shape) for k, v in theirs.items() if v is not None}
            replaced.append({"layer": layer.name, "source_shapes": shapes})
        else:
            fresh.append(layer.name)
    if not loaded:
        raise ConfigError(
            f"init_from: no layer of the configured model matches a layer of {source.name} "
            f"version {source.version} by name and shape: nothing to fine-tune"
        )
    frozen = [name for name in loaded if name != head] if ALL_BUT_HEAD in freeze else freeze
    unknown = sorted(set(frozen) - {layer.name for layer in net.layers})
    if unknown:
        raise ConfigError(f"init_from.freeze: no layer named {', '.join(unknown)} in the model")
    return {
        "model": source.name,
        "version": source.version,
        "path": str(source.folder),
        "checksums": source.checksums,
        "loaded_layers": loaded,
        "replaced_layers": replaced,
        "fresh_layers": fresh,
        "frozen_layers": frozen,
    }
