"""Two training workers on 127.0.0.1 with MultiWorkerMirroredStrategy (TF_CONFIG) train
one model together in lock-step; the chief publishes one version, the other none."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import GATE_OFF, free_port, quiet_env, runs_dir_for, training_command

from tfship.repository import list_versions

EPOCH_LINE = re.compile(r"^\d+/\d+ - \d+s - (.*)$")


def _epoch_logs(stdout: str) -> list[dict[str, float]]:
    logs = []
    for line in stdout.splitlines():
        match = EPOCH_LINE.match(line.strip())
        if match:
            logs.append(
                {k: float(v) for k, v in (part.split(": ") for part in match[1].split(" - "))}
            )
    return logs


def train_on_two_workers(
    repo: Path, *overrides: str, config: Path | None = None
) -> list[tuple[int, str, str]]:
    """The same training command on two local workers; (returncode, stdout, stderr) each."""
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = training_command(
            repo, *overrides, *GATE_OFF, **({"config": config} if config else {})
        )
        processes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=quiet_env(TF_CONFIG=json.dumps(tf_config)),
            )
        )
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=420)
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return outputs


def test_two_workers_train_one_model_and_the_chief_publishes(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    overrides = ("fit.epochs=4", "fit.early_stopping.patience=100", "compress.quantize=[]")
    outputs = train_on_two_workers(repo, *overrides)
    for index, (code, _, stderr) in enumerate(outputs):
        assert code == 0, f"worker {index}:\n{stderr[-4000:]}"
        assert f"MultiWorkerMirroredStrategy: worker {index} of 2" in stderr
    (_, chief_out, chief_err), (_, other_out, other_err) = outputs
    assert "[6/6] published digits version 1" in chief_err
    assert "worker 1: trained in lock-step with the chief" in other_err
    # It waits for the chief's outcome, so neither sees the other vanish mid-run.
    assert "worker 1: the chief published digits version 1; nothing is published here" in (
        other_err
    )
    assert "[6/6] published" not in other_err
    assert "unhealthy" not in chief_err and "unhealthy" not in other_err
    assert list_versions(repo / "digits") == [1]

    # Lock-step: the same weights on both workers, so the same numbers every epoch.
    chief, other = _epoch_logs(chief_out), _epoch_logs(other_out)
    assert len(chief) == len(other) == 4
    assert chief == other
    assert chief[-1]["loss"] < chief[0]["loss"]

    meta = json.loads((repo / "digits" / "1" / "metadata.json").read_text())
    assert meta["training"]["epochs_run"] == 4
    assert meta["metrics"]["onnx"]["accuracy"] > 0.8
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    # The chief's run folder has the history; the other worker kept its own logs apart.
    assert (runs_dir_for(repo) / ".worker-1" / "digits").is_dir()
    history = (Path(meta["training"]["run_folder"]) / "history.csv").read_text().splitlines()
    assert len(history) == 5


def test_two_workers_stream_a_glob_of_shards(tmp_path: Path) -> None:
    """data.streaming under MultiWorkerMirroredStrategy: two shards, one per worker; both
    run the same steps per epoch (from the pass's row count) and stay in lock-step."""
    rng = np.random.default_rng(3)
    shards = tmp_path / "shards"
    shards.mkdir()
    for part in range(2):
        x = rng.normal(size=(1500, 2)).round(4)
        label = np.where(x[:, 0] - x[:, 1] > 0, "up", "down")
        lines = [f"{a},{b},{c}" for (a, b), c in zip(x, label, strict=True)]
        (shards / f"part-{part}.csv").write_text("a,b,label\n" + "\n".join(lines) + "\n")
    config = tmp_path / "streamed.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "streamed",
                "data": {"source": "csv", "path": "shards/*.csv", "streaming": True},
                "cleaning": {"duplicates": "keep"},
                "model": {"dense_units": [8]},
                "fit": {
                    "batch_size": 64,
                    "epochs": 3,
                    "learning_rate": 0.01,
                    "early_stopping": {"patience": 100},
                },
                "compress": {"quantize": []},
            }
        )
    )
    repo = tmp_path / "models"
    outputs = train_on_two_workers(repo, config=config)
    for index, (code, _, stderr) in enumerate(outputs):
        assert code == 0, f"worker {index}:\n{stderr[-4000:]}"
    (_, chief_out, chief_err), (_, other_out, other_err) = outputs
    assert "[6/6] published streamed version 1" in chief_err
    # Sharded by file: each worker reads one shard.
    assert "fit: worker 0 streams its files part-0.csv" in chief_err
    assert "fit: worker 1 streams its files part-1.csv" in other_err
    meta = json.loads((repo / "streamed" / "1" / "metadata.json").read_text())
    steps = meta["data"]["rows"]["train"] // 64
    chief, other = _epoch_logs(chief_out), _epoch_logs(other_out)
    assert len(chief) == len(other) == 3 and chief == other
    assert re.search(rf"^{steps}/{steps} - ", chief_out, re.MULTILINE), chief_out
    assert meta["data"]["streaming"]["files"] == ["part-0.csv", "part-1.csv"]
    assert meta["metrics"]["onnx"]["accuracy"] > 0.9


def test_bad_cluster_spec_is_a_config_error(tmp_path: Path) -> None:
    result = subprocess.run(
        training_command(tmp_path / "models"),
        capture_output=True,
        text=True,
        env=quiet_env(TFSHIP_WORKER_HOSTS="a:1,b:2", JOB_COMPLETION_INDEX="x"),
        timeout=120,
    )
    assert result.returncode == 2
    assert "JOB_COMPLETION_INDEX is not a number" in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"TFSHIP_WORKER_HOSTS": "w-0.svc:2222,w-1.svc:2222", "JOB_COMPLETION_INDEX": "1"}, 1),
        (
            {
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
                )
            },
            None,  # one worker is no cluster
        ),
    ],
)
def test_cluster_from_the_environment(env: dict[str, str], expected: int | None) -> None:
    from training.distribute import cluster_from_env

    environ = dict(env)
    cluster = cluster_from_env(environ)
    assert (cluster.index if cluster else None) == expected
    if "TFSHIP_WORKER_HOSTS" in env:
        built = json.loads(environ["TF_CONFIG"])  # as Kubernetes' Indexed Job would need it
        assert built == {
            "cluster": {"worker": ["w-0.svc:2222", "w-1.svc:2222"]},
            "task": {"type": "worker", "index": 1},
        }
