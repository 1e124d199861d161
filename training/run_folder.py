"""The run folder: logs, checkpoints, the backup a killed run resumes from, and the report.

``RUN_DIR/<name>/<run id>/`` holds one run. ``RUN_DIR/<name>/in_progress.json`` names the
run that has not finished; the next run with the same settings (config fingerprint)
continues it from its backup instead of starting over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from training.config import TrainConfig
from training.errors import TrainingError

STATE_FILE = "in_progress.json"


@dataclass(frozen=True)
class RunFolder:
    root: Path
    run_id: str
    resumed: bool

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "best.weights.h5"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def backed_up_epochs(self) -> int:
        """Epochs the backup holds (0 when there is none): where a resumed fit starts."""
        meta = self.backup / "training_metadata.json"
        try:
            return int(json.loads(meta.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


def _state_path(run_dir: Path, name: str) -> Path:
    return run_dir / name / STATE_FILE


def open_run(run_dir: Path, config: TrainConfig) -> RunFolder:
    """The unfinished run with the same settings, or a new one."""
    state_path = _state_path(run_dir, config.name)
    try:
        state = json.loads(state_path.read_text())
        folder = run_dir / config.name / str(state["run_id"])
        if state.get("fingerprint") == config.fingerprint() and folder.is_dir():
            return RunFolder(folder, str(state["run_id"]), resumed=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id, n = stamp, 1
    while (run_dir / config.name / run_id).exists():
        n += 1
        run_id = f"{stamp}-{n}"
    folder = run_dir / config.name / run_id
    try:
        folder.mkdir(parents=True)
        temp = state_path.with_suffix(".tmp")
        temp.write_text(json.dumps({"run_id": run_id, "fingerprint": config.fingerprint()}))
        os.replace(temp, state_path)
    except OSError as exc:
        raise TrainingError(f"cannot create the run folder {folder}: {exc}") from exc
    return RunFolder(folder, run_id, resumed=False)


def finish_run(run_dir: Path, config: TrainConfig) -> None:
    """The run ended (published or refused): the next one starts afresh."""
    _state_path(run_dir, config.name).unlink(missing_ok=True)
