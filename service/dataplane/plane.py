"""The dataplane: what every front door calls, with one envelope around each call.

The envelope (``begin`` → ``authenticate`` → ``hold``/``statuses`` → ``finish``) is the one
place that assigns the request id, checks API keys, labels the call with its model and
version, holds the version so it is not unloaded under the call, observes the request
metrics and writes the access line. The model operations take and return numpy arrays and a
``ModelView``; no front door touches a runtime, the registry or a metadata key.

A new front door plugs in by: ``call = plane.begin(protocol, api, client_request_id)``;
``plane.authenticate(call, credentials, model)`` when it knows the credentials; ``with
plane.hold(call, name, version, label) as model:`` around ``plane.predict(model, inputs)``
(or classify, regress); ``plane.finish(call, status, ...)`` once the answer is known, with
the status from the error's ``status`` (and ``grpc_code``) for a ``ServingError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from service import logs
from service.auth import ApiKeys
from service.capture.writer import CaptureWriter
from service.codecs.tensor_checks import DeclaredLimits
from service.dataplane import tasks
from service.dataplane.call import Call
from service.dataplane.queue_time import queue_seconds
from service.dataplane.statistics import VersionStatistics, read_statistics
from service.drift.tracker import DriftTracker
from service.errors import InvalidArgument, NotFound
from service.metrics import observe_queue, observe_request
from service.models.model_view import ModelView, ServedViews, VersionStatus
from service.models.registry import Registry
from service.models.versions import AVAILABLE, ServedVersion
from service.models.worker_readiness import WorkerBoard
from service.settings import ServiceSettings


class DataPlane:
    def __init__(
        self,
        registry: Registry,
        settings: ServiceSettings,
        keys: ApiKeys | None,
        board: WorkerBoard | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.keys = keys
        self.board = board
        self.allow_non_finite = settings.non_finite == "allow"
        # What codecs check declared shapes against before they allocate anything.
        self.limits = DeclaredLimits(settings.max_rows, settings.max_body_bytes)
        if board is not None:
            registry.add_listener(lambda: board.publish(registry.readiness()[0]))
        self.drift = DriftTracker.from_env(settings.drift_window, settings.drift_sample_rate)
        if self.drift.on:
            registry.add_listener(
                lambda: self.drift.track(
                    view for views in registry.served_views() for view in views.versions.values()
                )
            )
        self.capture = (
            CaptureWriter(
                settings.capture_dir,
                settings.capture_sample,
                settings.capture_max_bytes,
                settings.capture_files,
            )
            if settings.capture_dir is not None
            else None
        )

    # --- the envelope ---

    def begin(self, protocol: str | None, api: str | None, given_request_id: str) -> Call:
        """A call record; the client's request id is kept when it is a sane token."""
        return Call(protocol, api, logs.request_id_from(given_request_id))

    def checks_keys(self, part: str = "api") -> bool:
        """Whether calls to this part (setting_parsers.EXEMPTIBLE, or "api") need an API key."""
        return self.keys is not None and part not in self.keys.exempt

    def authenticate(
        self,
        call: Call,
        credentials: Mapping[str, str],
        model: str | None = None,
        part: str = "api",
    ) -> None:
        """401 without a valid key, 403 when the key may not use ``model``."""
        # checks_keys(part), spelled out so that a type checker sees the keys are set
        if self.keys is None or part in self.keys.exempt:
            return
        call.client = self.keys.authenticate(credentials)
        call.client.check_model(model)

    def finish(
        self,
        call: Call,
        status: int,
        *,
        method: str,
        path: str,
        remote: str | None,
        queue_header: str | None = None,
        grpc_code: str | None = None,
    ) -> None:
        """The call's metrics (API calls only) and its access line."""
        seconds = time.perf_counter() - call.started
        if call.api is not None:
            assert call.protocol is not None
            waited = queue_seconds(queue_header, call.received)
            if waited is not None:
                observe_queue(call.protocol, waited)
            observe_request(call.model, call.version, call.protocol, call.api, status, seconds)
        if self.settings.access_log:
            logs.write_access(
                call.request_id,
                method=method,
                path=path,
                status=status,
                grpc_code=grpc_code,
                seconds=seconds,
                protocol=call.protocol,
                api=call.api,
                model=call.model or None,
                version=call.version or None,
                remote=remote,
                client=call.client.name if call.client is not None else None,
            )

    def _label(self, call: Call, name: str) -> None:
        # A key restricted to other models is refused before anything is looked up (a
        # no-op where the front door already checked it with the same name).
        if call.client is not None:
            call.client.check_model(name)
        # Only names the registry knows become labels, so requests for made-up names
        # cannot create metric label values. Known now: label it even if the lookup then
        # fails (a 503 for a model that is loading still counts under its model).
        if self.registry.has_model(name):
            call.model = name

    @contextmanager
    def hold(
        self, call: Call, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[ModelView]:
        """The AVAILABLE version a call names, held until the answer is built."""
        self._label(call, name)
        with self.registry.serving(name, version, label) as served:
            call.model, call.version = served.name, str(served.version)
            assert served.view is not None  # AVAILABLE versions have one
            yield served.view

    def statuses(
        self, call: Call, name: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """One version's status, or every managed version's, newest first."""
        self._label(call, name)
        found = self.registry.statuses(name, version, label)
        call.model = name
        if len(found) == 1:
            call.version = str(found[0].version)
        return [s.snapshot() for s in found]

    def _usable_versions(self, call: Call) -> list[tuple[str, list[ServedVersion] | None]]:
        """Each model the call's API key may use, with its managed versions newest first
        (None for a model with no version yet)."""
        found: list[tuple[str, list[ServedVersion] | None]] = []
        for name in self.registry.model_names():
            if call.client is not None and not call.client.may_use(name):
                continue
            try:
                found.append((name, self.registry.statuses(name)))
            except NotFound:  # no version yet
                found.append((name, None))
        return found

    def repository(self, call: Call) -> list[tuple[str, VersionStatus | None]]:
        """Every model's managed versions, oldest first, as the repository index lists them
        (None for a model with no version yet): only models the call's API key may use."""
        found: list[tuple[str, VersionStatus | None]] = []
        for name, versions in self._usable_versions(call):
            if versions is None:  # listed by name alone
                found.append((name, None))
                continue
            found += [(name, s.snapshot()) for s in reversed(versions)]
        return found

    def served_views(self, call: Call) -> list[ServedViews]:
        """The views of every model the call's API key may use, as they serve now."""
        return [
            views
            for views in self.registry.served_views()
            if call.client is None or call.client.may_use(views.name)
        ]

    def statistics(
        self, call: Call, name: str = "", version: int | None = None
    ) -> list[VersionStatistics]:
        """Inference statistics of one version, of a model's serving versions, or (no name)
        of the serving versions of every model the call's API key may use."""
        if name:
            self._label(call, name)
            found = self.registry.statuses(name, version)
            call.model = name
            if version is None:
                found = [v for v in found if v.state == AVAILABLE]
        else:
            found = [
                v
                for _, versions in self._usable_versions(call)
                for v in versions or ()
                if v.state == AVAILABLE
            ]
        return read_statistics([(v.name, v.version, v.batching is not None) for v in found])

    def available_versions(self, name: str) -> list[int]:
        """Versions of a model that are serving now, newest first."""
        return [s.version for s in self.registry.statuses(name) if s.state == AVAILABLE]

    # --- the server ---

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a model version changes state (gRPC health)."""
        self.registry.add_listener(listener)

    def ready(self, *, this_worker: bool = False) -> tuple[bool, dict[str, Any]]:
        """Ready for traffic: every model has an available version in this worker and in
        as many live workers as the server runs, since each new HTTP connection may go to
        any of them. ``this_worker``: this worker's models alone (gRPC health, whose answer
        is about the channel it is asked on, which stays with this worker)."""
        ready, report = self.registry.readiness()
        if self.board is None or this_worker:
            return ready, report
        # This worker's own state is its registry's; the board says the others'.
        serving = self.board.others_ready() + (1 if ready else 0)
        report["workers"] = {"ready": serving, "expected": self.board.expected}
        if ready and serving < self.board.expected:
            ready = report["ready"] = False
            report["error"] = (
                f"{serving} of {self.board.expected} workers ready; the others are still "
                "loading or cannot load the models (their logs say which)"
            )
        return ready, report

    # --- the model operations ---

    def predict(
        self, model: ModelView, inputs: dict[str, Any], outputs: list[str] | None = None
    ) -> dict[str, Any]:
        """Output arrays by name (all the signature's, or those asked for)."""
        if not self.allow_non_finite:
            _refuse_non_finite(inputs)
        answer = model.run(inputs, outputs)
        if model.drift_profile is not None and self.drift.on:
            self.drift.observe(model, inputs, answer)
        if self.capture is not None:
            self.capture.offer(model.name, model.version, logs.current_request_id(), inputs, answer)
        return answer

    def classify(self, model: ModelView, inputs: dict[str, Any], k: int = 0) -> tasks.Classes:
        """Per row: (class, score) for every class in class order, or the ``k`` best."""
        outputs = self.predict(model, inputs)
        return tasks.top_k(model, outputs, k) if k else tasks.classifications(model, outputs)

    def regress(self, model: ModelView, inputs: dict[str, Any]) -> list[np.floating]:
        return tasks.regressions(model, self.predict(model, inputs))


def _refuse_non_finite(inputs: Mapping[str, Any]) -> None:
    """TFSHIP_NON_FINITE=reject: NaN and Infinity in a float input are a 400, whichever
    door the request came through (the codecs pass them, having no policy of their own)."""
    for name, array in inputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidArgument(
                f"input '{name}': NaN and Infinity are not accepted (TFSHIP_NON_FINITE=reject)"
            )
