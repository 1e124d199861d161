"""Which tf.distribute strategy a run uses, and where each worker writes.

- Several workers named in ``TF_CONFIG`` (or in ``TFSHIP_WORKER_HOSTS`` with Kubernetes'
  ``JOB_COMPLETION_INDEX``, from which TF_CONFIG is built): ``MultiWorkerMirroredStrategy``.
  The chief (worker 0) publishes; the others train in lock-step and write to a scratch
  folder, because saving is collective and every worker must take part.
- Several GPUs on one machine: ``MirroredStrategy``.
- Otherwise TensorFlow's default strategy (one device).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from training.errors import ConfigError

WORKER_HOSTS_ENV = "TFSHIP_WORKER_HOSTS"
INDEX_ENV = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True)
class Cluster:
    workers: list[str]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def cluster_from_env(environ: dict[str, str] | None = None) -> Cluster | None:
    """The multi-worker cluster this process belongs to, or None for a single worker.

    Sets ``TF_CONFIG`` from ``TFSHIP_WORKER_HOSTS`` and ``JOB_COMPLETION_INDEX`` when it is
    not set already (an Indexed Job gives each pod its index; a headless Service its name).
    """
    env = os.environ if environ is None else environ
    raw = env.get("TF_CONFIG")
    if not raw and env.get(WORKER_HOSTS_ENV):
        hosts = [h.strip() for h in env[WORKER_HOSTS_ENV].split(",") if h.strip()]
        try:
            index = int(env.get(INDEX_ENV, ""))
        except ValueError:
            raise ConfigError(
                f"{WORKER_HOSTS_ENV} is set but {INDEX_ENV} is not a number: this worker's "
                "index is unknown"
            ) from None
        raw = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        env["TF_CONFIG"] = raw
    if not raw:
        return None
    try:
        config = json.loads(raw)
        workers = list(config["cluster"]["worker"])
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not a valid cluster spec: {exc}") from None
    if task.get("type") != "worker":
        raise ConfigError("TF_CONFIG: tfship runs workers only (task type 'worker')")
    if not 0 <= index < len(workers):
        raise ConfigError(f"TF_CONFIG: task index {index} is not one of {len(workers)} workers")
    if len(workers) < 2:
        return None
    return Cluster(workers, index)


def make_strategy(cluster: Cluster | None) -> Any:
    """Created before any other TensorFlow op, as multi-worker collectives require."""
    import tensorflow as tf

    if cluster is not None:
        # RING collectives work on CPUs and GPUs alike; NCCL would need GPUs everywhere.
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# The chief's outcome, through TensorFlow's coordination service (hosted by the chief):
# the other workers wait for it, so nobody leaves while the chief still runs (its
# heartbeat check would report them as crashed), and they exit as the chief did.
_OUTCOME_KEY = "tfship/chief_outcome"
PUBLISHED = "published"


def announce_outcome(outcome: str) -> None:
    from tensorflow.python.eager import context

    context.context().set_config_key_value(_OUTCOME_KEY, outcome)


def wait_for_chief() -> str:
    """Blocks until the chief announces; fails if the chief (and its service) is gone."""
    from tensorflow.python.eager import context

    return str(context.context().get_config_key_value(_OUTCOME_KEY))


def describe(strategy: Any, cluster: Cluster | None) -> str:
    name = type(strategy).__name__
    if cluster is not None:
        name = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
        role = "chief" if cluster.is_chief else "worker"
        return (
            f"{name}: worker {cluster.index} of {len(cluster.workers)} ({role}), "
            f"{strategy.num_replicas_in_sync} replicas in sync"
        )
    if strategy.num_replicas_in_sync > 1:
        return f"{name}: {strategy.num_replicas_in_sync} devices"
    return "one device"
