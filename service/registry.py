"""Model registry: which versions this worker serves, their state, and their runtimes.

Each gunicorn worker has its own registry and loads models in a background thread, so
``/healthz`` answers at once and ``/readyz`` can say "not yet" while loading goes on.
A request for a model that is still loading waits for it (up to ``load_wait_seconds``)
rather than failing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import NotFound, Unavailable
from service.runtimes import ARTIFACT_FOR_RUNTIME, load_runtime
from service.runtimes.base import Runtime
from service.settings import ServiceSettings
from tfship.repository import RepositoryError, list_models, read_metadata, verify_artifact

log = logging.getLogger("tfship.registry")

# TF Serving's ManagerState names, as its status API reports them.
START, LOADING, AVAILABLE, END = "START", "LOADING", "AVAILABLE", "END"


@dataclass
class ServedVersion:
    name: str
    version: int
    path: Path
    runtime_kind: str
    state: str = START
    error_code: str = "OK"
    error_message: str = ""
    runtime: Runtime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        """One entry of TF Serving's ``model_version_status``."""
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


class Registry:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._models: dict[str, ServedVersion] = {}
        self._problem: str | None = None
        self._thread: threading.Thread | None = None
        self._discover()

    def _discover(self) -> None:
        try:
            models = list_models(self.settings.model_dir)
        except RepositoryError as exc:
            self._problem = str(exc)
            log.error("%s", exc)
            return
        for name, versions in models.items():
            if not versions:
                log.warning(
                    "model folder %s has no published version; skipped",
                    self.settings.model_dir / name,
                )
                continue
            newest = versions[-1]
            self._models[name] = ServedVersion(
                name,
                newest,
                self.settings.model_dir / name / str(newest),
                self.settings.runtime_for(name),
            )
        unknown = set(self.settings.model_runtimes) - set(self._models)
        for name in sorted(unknown):
            log.warning(
                "a runtime is configured for model %r, which is not in %s",
                name,
                self.settings.model_dir,
            )
        if not self._models:
            self._problem = f"no published model found under {self.settings.model_dir}"
            log.error("%s", self._problem)

    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self.load_all, name="model-loader", daemon=True)
        self._thread.start()

    def load_all(self) -> None:
        for served in self._models.values():
            self._load(served)

    def _load(self, served: ServedVersion) -> None:
        served.state = LOADING
        started = time.monotonic()
        try:
            metadata = read_metadata(served.path)
            verify_artifact(served.path, metadata, ARTIFACT_FOR_RUNTIME[served.runtime_kind])
            served.runtime = load_runtime(
                served.runtime_kind, served.path, metadata, self.settings.threads_per_worker()
            )
            served.metadata = metadata
            served.load_seconds = time.monotonic() - started
            served.state = AVAILABLE
            log.info(
                "model %s version %d AVAILABLE (%s runtime, loaded in %.2f s)",
                served.name,
                served.version,
                served.runtime_kind,
                served.load_seconds,
            )
        except Exception as exc:  # any failure leaves the version unserved, with its reason
            served.state = END
            served.error_code = "DATA_LOSS" if isinstance(exc, RepositoryError) else "UNKNOWN"
            served.error_message = f"{type(exc).__name__}: {exc}"
            log.error(
                "model %s version %d failed to load: %s",
                served.name,
                served.version,
                served.error_message,
            )
        finally:
            served.done.set()

    # --- lookups used by the protocol layers ---

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def find(self, name: str, version: int | None = None) -> ServedVersion:
        """The version entry, whatever its state (for status endpoints)."""
        served = self._models.get(name)
        if served is None:
            available = ", ".join(self.model_names()) or "none"
            raise NotFound(f"model '{name}' not found (models served: {available})")
        if version is not None and version != served.version:
            raise NotFound(
                f"version {version} of model '{name}' is not served "
                f"(served version: {served.version})"
            )
        return served

    def ensure_available(self, served: ServedVersion) -> None:
        """Return once ``served`` can predict; waits (bounded) while it is still loading."""
        if not served.done.wait(self.settings.load_wait_seconds):
            raise Unavailable(
                f"model '{served.name}' version {served.version} is still loading; "
                "try again shortly"
            )
        if served.state != AVAILABLE:
            raise Unavailable(
                f"model '{served.name}' version {served.version} failed to load: "
                f"{served.error_message}"
            )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        models = {
            name: {
                "version": s.version,
                "state": s.state,
                "runtime": s.runtime_kind,
                **({"error": s.error_message} if s.error_message else {}),
            }
            for name, s in self._models.items()
        }
        ready = self._problem is None and all(s.state == AVAILABLE for s in self._models.values())
        report: dict[str, Any] = {"ready": ready, "models": models}
        if self._problem:
            report["error"] = self._problem
        return ready, report
