"""A model version's life: its state, its hold by requests, and its load and unload.

States are TF Serving's ManagerState names. ``load_version`` and ``unload_version`` are the
only places a runtime is created or dropped; the registry (registry.py) decides when.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.codecs.tensor_checks import batch_rows, check_rows
from service.errors import InvalidArgument
from service.metrics import observe_inference, observe_load, set_version_info
from service.models.batching import Batcher
from service.models.batching import describe as describe_batching
from service.models.foreign_versions import foreign_metadata
from service.models.model_config import BatchingConfig, ServedModelSpec
from service.models.model_view import ModelView, VersionStatus
from service.models.version_agreement import Choice
from service.models.runtimes import ARTIFACT_FOR_RUNTIME, load_runtime
from service.models.runtimes.base import Runtime
from service.models.warmup import warm_up
from tfship.repository import (
    RepositoryError,
    artifact_key,
    check_inside,
    has_metadata,
    read_metadata,
    verify_artifact,
)
from tfship.version_metadata import VersionMetadata

log = logging.getLogger("tfship.registry")

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass(eq=False)
class ServedVersion:
    name: str
    version: int
    path: Path
    runtime_kind: str
    variant: str = ""
    # Most rows one request may send (TFSHIP_MAX_ROWS); 0 = no limit.
    max_rows: int = 0
    # Model compute time allowed per request (TFSHIP_REQUEST_TIMEOUT_SECONDS); 0 = none.
    timeout_seconds: float = 0.0
    batching: BatchingConfig | None = None
    state: str = START
    # False once loaded from a folder without metadata.json: nothing was checked.
    verified: bool = True
    error_code: str = "OK"
    error_message: str = ""
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    # What front doors see of it, built once it has loaded (see model_view.py).
    view: ModelView | None = None
    in_flight: int = 0
    # Failed loads of this version so far, and when the poller may try again (monotonic):
    # a version copied file by file fails while half there, and loads once it is whole.
    failed_loads: int = 0
    retry_at: float = 0.0
    # When it became AVAILABLE in this worker (epoch seconds; version_agreement.py).
    available_since: float = 0.0
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def snapshot(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error_code, self.error_message)

    @property
    def failed(self) -> bool:
        return self.state == END and self.error_code != "OK"

    def predict(self, inputs: dict[str, Any], outputs: list[str] | None = None) -> dict[str, Any]:
        """Run the model (through the batcher when batching is on)."""
        self._check_rows(inputs, None)
        if self.batcher is not None:
            return self.batcher.predict(inputs, outputs)
        return self.run_runtime(inputs, outputs)

    def predict_signature(
        self, name: str, inputs: dict[str, Any], outputs: list[str] | None = None
    ) -> dict[str, Any]:
        """Run another signature of the artifact by name (never batched: the batcher's
        requests share the served signature)."""
        self._check_rows(inputs, name)
        return self.run_runtime(inputs, outputs, name)

    def _check_rows(self, inputs: Mapping[str, Any], signature: str | None) -> None:
        view = self.view
        assert view is not None, "only called on a held AVAILABLE version"
        if signature is not None:
            view = view.others[signature]
        check_rows(batch_rows(inputs, view.signature), self.max_rows)

    def run_runtime(
        self,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None = None,
        signature: str | None = None,
    ) -> dict[str, Any]:
        """One runtime call (of ``signature`` when given), timing the model compute alone
        for the metrics."""
        runtime = self.runtime
        assert runtime is not None, "only called on a held AVAILABLE version"
        rows = len(next(iter(inputs.values()))) if inputs else 0
        timeout = self.timeout_seconds or None
        started = time.perf_counter()
        if signature is None:
            result = runtime.predict(inputs, outputs, timeout)
        else:
            result = runtime.run_signature(signature, inputs, outputs, timeout)
        observe_inference(
            self.name, self.version, self.runtime_kind, rows, time.perf_counter() - started
        )
        return result

    def try_acquire(self) -> bool:
        with self._cond:
            if self.state != AVAILABLE:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Stop taking requests and wait for those in flight; True if they all ended."""
        with self._cond:
            self.state = UNLOADING
            return self._cond.wait_for(lambda: self.in_flight == 0, timeout)


@dataclass(eq=False)
class ModelEntry:
    spec: ServedModelSpec
    versions: dict[int, ServedVersion] = field(default_factory=dict)
    problem: str | None = None
    # Set once the first sync has registered this model's versions.
    synced: threading.Event = field(default_factory=threading.Event)
    # The server's default version for requests that name none (version_agreement.py).
    choice: Choice = field(default_factory=lambda: Choice(None))

    def available(self) -> list[ServedVersion]:
        return sorted(
            (v for v in self.versions.values() if v.state == AVAILABLE), key=lambda v: v.version
        )

    def default_version(self, available: list[ServedVersion]) -> ServedVersion | None:
        """Of ``available`` (this entry's, newest last), the one a request that names no
        version gets: the server's choice, or the newest while there is none here."""
        chosen = self.choice.version_at(time.time())
        for served in available:
            if served.version == chosen:
                return served
        return available[-1] if available else None

    def loading(self) -> bool:
        return any(v.state in (START, LOADING) for v in self.versions.values())

    def report(self) -> dict[str, Any]:
        """This model's part of the readiness report."""
        available = self.available()
        spec = self.spec
        return {
            "runtime": spec.runtime,
            **({"variant": spec.variant} if spec.variant else {}),
            **({"batching": describe_batching(spec.batching)} if spec.batching else {}),
            "version_policy": spec.policy.describe(),
            "serving": served.version if (served := self.default_version(available)) else None,
            "versions": [
                {
                    "version": s.version,
                    "state": s.state,
                    **({"verified": s.verified} if s.state == AVAILABLE else {}),
                    **({"error": s.error_message} if s.error_message else {}),
                }
                for _, s in sorted(self.versions.items())
            ],
            **({"error": self.problem} if self.problem else {}),
        }


def load_version(
    served: ServedVersion, threads: int, http_threads: int, device: str = "cpu"
) -> None:
    """Verify, load and warm up a registered version: AVAILABLE, or END with the reason.

    ``threads``: the runtime's compute threads; ``http_threads``: each worker's HTTP
    threads (1 means HTTP requests cannot share a batch); ``device``: cpu or cuda.
    """
    started = time.monotonic()
    try:
        check_inside(served.path, served.path.parent)
        metadata = _checked_metadata(served)
        runtime = load_runtime(
            served.runtime_kind,
            served.path,
            metadata,
            threads,
            served.variant,
            device,
        )
        view = ModelView.build(
            served.name,
            served.version,
            served.runtime_kind,
            runtime.signature,
            metadata,
            served.verified,
            served.predict,
            {
                name: (signature, functools.partial(served.predict_signature, name))
                for name, signature in runtime.other_signatures.items()
            },
        )
        rounds, source = warm_up(runtime, served.path, view.signature)
        served.runtime = runtime
        served.view = view
        if served.batching is not None:
            served.batcher = Batcher(
                served.name, served.batching, served.run_runtime, served.version
            )
            if http_threads == 1:
                log.warning(
                    "model %s: batching is on, but each worker answers one HTTP request "
                    "at a time (TFSHIP_THREADS=1): only concurrent gRPC calls can share "
                    "a batch; set --threads above 1 for HTTP",
                    served.name,
                )
        seconds = time.monotonic() - started
        served.state = AVAILABLE
        observe_load(served.name, True, seconds)
        set_version_info(served.name, served.version, served.runtime_kind, served.verified, True)
        log.info(
            "model %s version %d AVAILABLE (%s runtime, %s, loaded and warmed up with %d "
            "%s in %.2f s)",
            served.name,
            served.version,
            served.runtime_kind,
            "sha256 verified" if served.verified else "UNVERIFIED: no metadata.json",
            rounds,
            source,
            seconds,
        )
    except Exception as exc:  # any failure leaves the version unserved, with its reason
        # DATA_LOSS only for files that differ from what was published (IntegrityError);
        # the runtime's own failures keep their exception's name in the message.
        served.error_code = exc.code if isinstance(exc, RepositoryError) else "UNKNOWN"
        served.error_message = f"{type(exc).__name__}: {exc}"
        served.state = END
        observe_load(served.name, False, time.monotonic() - started)
        log.error(
            "model %s version %d failed to load: %s",
            served.name,
            served.version,
            served.error_message,
        )


def _checked_metadata(served: ServedVersion) -> VersionMetadata:
    """metadata.json with the runtime's artifact checked against its sha256, or, for a
    version without one, what the artifact itself says (served unverified)."""
    if not has_metadata(served.path):
        served.verified = False
        return foreign_metadata(
            served.path, served.name, served.version, served.runtime_kind, served.variant
        )
    metadata = read_metadata(served.path)
    artifact = artifact_key(ARTIFACT_FOR_RUNTIME[served.runtime_kind], served.variant)
    verify_artifact(served.path, metadata, artifact)
    return metadata


def unload_version(served: ServedVersion, drain_seconds: float) -> None:
    """Refuse new holds, wait (at most ``drain_seconds``) for the running requests, then
    drop the runtime: END."""
    if not served.drain(drain_seconds):
        log.warning(
            "model %s version %d: %d requests still running after %.0f s; unloading anyway",
            served.name,
            served.version,
            served.in_flight,
            drain_seconds,
        )
    if served.batcher is not None:
        served.batcher.stop()
        served.batcher = None
    served.runtime = served.view = None
    served.state = END
    set_version_info(served.name, served.version, served.runtime_kind, served.verified, False)
    log.info("model %s version %d unloaded (END)", served.name, served.version)
