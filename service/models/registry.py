"""Model registry: which versions this worker serves, their state, and hot reload.

Each gunicorn worker has its own registry. A poller thread syncs it with the repository
every ``poll_seconds``: a new version is verified (sha256), loaded and warmed up before it
becomes AVAILABLE (a failed load is tried again after 1 s, then 2, 4... up to 60 s); a version that leaves the version policy is unloaded once its in-flight
requests have ended, and only when another wanted version is AVAILABLE, so a broken new
version never takes the working one down. Requests that name no version go to the highest
AVAILABLE one.

The first poll also runs in that thread, so ``/healthz`` answers at once and ``/readyz``
says "not yet" while loading; a request for a model still loading waits for it (bounded by
``load_wait_seconds``) rather than failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.errors import NotFound, Unavailable
from service.file_stamp import file_stamp
from service.metrics import IN_FLIGHT, set_version_states
from service.models.model_view import ServedViews
from service.models.model_config import BatchingConfig, ServedModelSpec, discover, load_model_config
from service.models.version_agreement import AGREEMENT_POLL_SECONDS, PeerVersions, choose
from service.models.versions import (
    AVAILABLE,
    END,
    LOADING,
    START,
    ModelEntry,
    ServedVersion,
    load_version,
    unload_version,
)
from service.models.worker_readiness import WorkerBoard
from service.settings import ServiceSettings, SettingsError
from tfship.repository import RepositoryError, version_folders

log = logging.getLogger("tfship.registry")

# Unloaded or failed versions kept for the status API, per model.
_ENDED_KEPT = 5
# Seconds before the first retry of a failed load, doubled after each failure up to the cap.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


def retry_delay(failures: int) -> float:
    return min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1))


class Registry:
    def __init__(self, settings: ServiceSettings, board: WorkerBoard | None = None) -> None:
        self.settings = settings
        # The server's other workers, to agree with on default versions; None: alone.
        self.board = board
        self._explicit: list[ServedModelSpec] | None = None
        # The model config file is re-read when its (mtime, size) changes; a bad edit is
        # reported and the previous config stays in force.
        self._config_stamp: tuple[int, int] | None = None
        self._config_problem: str | None = None
        if settings.model_config is not None:
            self._config_stamp = file_stamp(settings.model_config)
            self._explicit = load_model_config(settings.model_config, settings)
        self._models: dict[str, ModelEntry] = {}
        self._lock = threading.RLock()
        # Notified whenever a version changes state; waiting requests re-check.
        self._changed = threading.Condition(self._lock)
        self._problem: str | None = None
        self._polled = threading.Event()
        self._listeners: list[Callable[[], None]] = []

    # --- the poller ---

    def start(self) -> None:
        threading.Thread(target=self._run, name="model-poller", daemon=True).start()
        if self.board is not None:
            threading.Thread(target=self._agree_often, name="model-agreement", daemon=True).start()

    def _agree_often(self) -> None:
        while True:
            time.sleep(AGREEMENT_POLL_SECONDS)
            try:
                self._agree()
            except Exception:  # never let it die: the next round may succeed
                log.exception("agreeing default versions with the other workers failed")

    def _agree(self) -> None:
        """Each model's default version, by version_agreement's rule, and this worker's
        part of what the others read."""
        peers = self.board.peer_versions() if self.board is not None else []
        now = time.time()
        published: dict[str, Any] = {}
        with self._lock:
            for name, entry in self._models.items():
                since = {s.version: s.available_since for s in entry.available()}
                mine = [
                    PeerVersions(
                        {int(v): t for v, t in peer[name]["since"].items()}, peer[name]["default"]
                    )
                    for peer in peers
                    if name in peer
                ]
                # A ready worker always serves every model: one without it has an older
                # model config, and is left out of the agreement on this one.
                current = entry.choice.version_at(now)
                entry.choice = choose(since, current, mine, now)
                published[name] = {"since": since, "default": entry.choice.version_at(now)}
        if self.board is not None:
            self.board.publish_versions(published)

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # never let the poller die: the next poll may succeed
                log.exception("repository poll failed")
            if self.settings.poll_seconds == 0:
                return
            time.sleep(self.settings.poll_seconds)

    def _reload_model_config(self) -> None:
        path = self.settings.model_config
        assert path is not None
        stamp = file_stamp(path)
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            self._explicit = load_model_config(path, self.settings)
        except SettingsError as exc:
            self._config_problem = f"{exc}; still serving the previous model config"
            log.error("%s", self._config_problem)
            return
        self._config_problem = None
        log.info("model config %s reloaded: %s", path, ", ".join(s.name for s in self._explicit))

    def poll(self) -> None:
        """One sync of the registry with the repository (and the model config file)."""
        if self.settings.model_config is not None:
            self._reload_model_config()
        try:
            specs = self._explicit if self._explicit is not None else discover(self.settings)
        except RepositoryError as exc:
            # Keep serving what is loaded; report why nothing new can be seen.
            self._set_problem(str(exc))
            self._polled.set()
            self._notify()
            return
        if not specs:
            self._set_problem(f"no published model found under {self.settings.model_dir}")
        else:
            self._set_problem(None)
        gone: list[ModelEntry] = []
        with self._lock:
            for spec in specs:
                entry = self._models.get(spec.name)
                if entry is not None and _load_key(entry.spec) == _load_key(spec):
                    entry.spec = spec  # new policy and labels apply from this sync on
                    continue
                if entry is not None:  # other files or another runtime: load it afresh
                    gone.append(entry)
                self._models[spec.name] = ModelEntry(spec)
            names = {s.name for s in specs}
            gone += [e for n, e in self._models.items() if n not in names]
            for entry in gone:
                if self._models.get(entry.spec.name) is entry:
                    del self._models[entry.spec.name]
        for spec in specs:
            self._sync(self._models[spec.name])
        for entry in gone:  # a model left the config, or its folder was removed
            for served in list(entry.versions.values()):
                if served.state == AVAILABLE:
                    self._unload(served)
            if entry.spec.name not in self._models:
                set_version_states(entry.spec.name, {})
        self._polled.set()
        self._notify()

    def _set_problem(self, problem: str | None) -> None:
        if problem and problem != self._problem:
            log.error("%s", problem)
        self._problem = problem

    def _sync(self, entry: ModelEntry) -> None:
        spec = entry.spec
        try:
            if not spec.base_path.is_dir():
                # Missing altogether (the repository moved or unmounted, maybe between
                # listing it and now) is a fault, not an intent: keep serving what is loaded.
                # Emptying a folder that is still there does unload.
                raise FileNotFoundError("no such folder")
            folders = version_folders(spec.base_path)
            on_disk = list(folders)
        except OSError as exc:
            problem = f"cannot list {spec.base_path}: {exc.strerror or exc}"
            if problem != entry.problem:  # once, not at every poll
                log.error("model %s: %s; still serving what is loaded", spec.name, problem)
            entry.problem = problem
            entry.synced.set()
            return
        entry.problem = None if on_disk else f"no published version under {spec.base_path}"
        wanted = spec.policy.select(on_disk)
        # Register every new version (START) before loading any, so the status API lists
        # them all at once; then load them one by one.
        pending: list[ServedVersion] = []
        retries: list[tuple[ServedVersion, ServedVersion]] = []
        with self._lock:
            now = time.monotonic()
            for version in wanted:
                known = entry.versions.get(version)
                # A failed version is tried again after a backoff (it may have been read
                # while still being copied in), as TF Serving retries failed loads.
                retry = known is not None and known.failed and now >= known.retry_at
                if known is None or (known.state == END and not known.failed) or retry:
                    served = ServedVersion(
                        spec.name,
                        version,
                        folders[version],
                        spec.runtime,
                        spec.variant,
                        self.settings.max_rows,
                        self.settings.request_timeout_seconds,
                        spec.batching,
                    )
                    if retry:
                        # Loaded aside: the status API keeps showing the failure (END and
                        # its error) until a retry succeeds, not START/LOADING each time.
                        assert known is not None
                        served.failed_loads = known.failed_loads
                        retries.append((served, known))
                    else:
                        entry.versions[version] = served
                        pending.append(served)
        entry.synced.set()
        for served in pending:
            self._load(served)
        for served, known in retries:
            self._load(served, quietly=True)
            with self._lock:
                if served.state == AVAILABLE:
                    entry.versions[served.version] = served
                else:
                    known.failed_loads, known.retry_at = served.failed_loads, served.retry_at
                    known.error_code, known.error_message = served.error_code, served.error_message
            self._notify()
        # A version leaves only once the server's default is a wanted one: before that,
        # this worker may be the first to have the new one, and the others still serve
        # the old (version_agreement.py).
        self._agree()
        with self._lock:
            default = entry.default_version(entry.available())
        serving_wanted = default is not None and default.version in wanted
        for version, served in sorted(entry.versions.items()):
            if (
                version not in wanted
                and served.state == AVAILABLE
                and (serving_wanted or not on_disk)
            ):
                self._unload(served)
        self._forget_old(entry, wanted)

    def _forget_old(self, entry: ModelEntry, wanted: list[int]) -> None:
        with self._lock:
            ended = sorted(
                v for v, s in entry.versions.items() if s.state == END and v not in wanted
            )
            for version in ended[:-_ENDED_KEPT]:
                del entry.versions[version]

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every state change (e.g. to update gRPC health)."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        with self._changed:
            for name, entry in self._models.items():
                counts: dict[str, int] = {}
                for served in entry.versions.values():
                    state = "FAILED" if served.failed else served.state
                    counts[state] = counts.get(state, 0) + 1
                set_version_states(name, counts)
            self._changed.notify_all()
        self._agree()
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not stop loading
                log.exception("registry listener failed")

    def _load(self, served: ServedVersion, quietly: bool = False) -> None:
        """Load a version (``quietly``: one not in the registry yet, whose states nobody
        is to be told of)."""
        served.state = LOADING
        if not quietly:
            self._notify()
        try:
            load_version(
                served,
                self.settings.threads_per_worker(),
                self.settings.threads,
                self.settings.device,
            )
        finally:
            if served.state == AVAILABLE:
                served.available_since = time.time()
            if served.failed:
                served.failed_loads += 1
                delay = retry_delay(served.failed_loads)
                served.retry_at = time.monotonic() + delay
                log.info(
                    "model %s version %d: load %d failed; trying again in %g s",
                    served.name,
                    served.version,
                    served.failed_loads,
                    delay,
                )
            if not quietly:
                self._notify()

    def _unload(self, served: ServedVersion) -> None:
        log.info("model %s version %d UNLOADING", served.name, served.version)
        self._notify()
        unload_version(served, self.settings.unload_drain_seconds)
        self._notify()

    # --- lookups used by the protocol layers ---

    def has_model(self, name: str) -> bool:
        return name in self._models

    def model_names(self) -> list[str]:
        """Every model this worker manages, in name order (after the first poll)."""
        self._polled.wait(self.settings.load_wait_seconds)
        with self._lock:
            return sorted(self._models)

    def _entry(self, name: str) -> ModelEntry:
        entry = self._models.get(name)
        if entry is None and not self._polled.is_set():
            self._polled.wait(self.settings.load_wait_seconds)
            entry = self._models.get(name)
        if entry is None:
            available = ", ".join(sorted(self._models)) or "none"
            raise NotFound(f"model '{name}' not found (models served: {available})")
        return entry

    def _target(
        self, name: str, version: int | None, label: str | None
    ) -> tuple[ModelEntry, int | None]:
        """The model entry and the version a request names (a label resolves to a version)."""
        entry = self._entry(name)
        if label is None:
            return entry, version
        if label not in entry.spec.labels:
            known = ", ".join(sorted(entry.spec.labels)) or "none"
            raise NotFound(
                f"label '{label}' is not defined for model '{entry.spec.name}' (labels: {known})"
            )
        return entry, entry.spec.labels[label]

    def statuses(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> list[ServedVersion]:
        """Versions for the status API: one, or every managed version, newest first."""
        entry, version = self._target(name, version, label)
        # Between the model's entry appearing and its versions being registered there is a
        # moment with none; wait it out rather than answer "not found".
        entry.synced.wait(self.settings.load_wait_seconds)
        with self._lock:
            versions = dict(entry.versions)
        if version is not None:
            if version not in versions:
                raise NotFound(
                    f"version {version} of model '{name}' is not served "
                    f"(versions: {self._describe(versions)})"
                )
            return [versions[version]]
        if not versions:
            raise NotFound(
                f"model '{name}' has no version yet: "
                f"{entry.problem or 'waiting for the first poll'}"
            )
        return [versions[v] for v in sorted(versions, reverse=True)]

    @staticmethod
    def _describe(versions: dict[int, ServedVersion]) -> str:
        return ", ".join(f"{v} {s.state}" for v, s in sorted(versions.items())) or "none"

    def _resolve(self, entry: ModelEntry, version: int | None) -> ServedVersion:
        name = entry.spec.name
        deadline = time.monotonic() + self.settings.load_wait_seconds

        def settled() -> bool:
            if version is None:
                return bool(entry.available()) or not entry.loading()
            served = entry.versions.get(version)
            return served is None or served.state not in (START, LOADING)

        with self._changed:
            while not settled():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(f"model '{name}' is still loading; try again shortly")
                self._changed.wait(remaining)
            versions = dict(entry.versions)
            available = entry.available()
        if version is None:
            if available:
                chosen = entry.default_version(available)
                assert chosen is not None
                return chosen
            failures = "; ".join(
                f"version {s.version}: {s.error_message}" for s in versions.values() if s.failed
            )
            raise Unavailable(
                f"model '{name}' has no available version"
                + (f" ({failures})" if failures else f" ({entry.problem})" if entry.problem else "")
            )
        served = versions.get(version)
        if served is None or (served.state == END and not served.failed):
            raise NotFound(
                f"version {version} of model '{name}' is not served "
                f"(available: {', '.join(str(s.version) for s in available) or 'none'})"
            )
        if served.failed:
            raise Unavailable(
                f"model '{name}' version {version} failed to load: {served.error_message}"
            )
        return served

    @contextmanager
    def serving(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[ServedVersion]:
        """An AVAILABLE version, held for the request so it is not unloaded under it."""
        entry, version = self._target(name, version, label)
        for _ in range(5):
            served = self._resolve(entry, version)
            if served.try_acquire():
                break
            # It began unloading between lookup and acquire: look again.
        else:
            raise Unavailable(f"model '{name}' is changing versions; try again")
        in_flight = IN_FLIGHT.labels(name)
        in_flight.inc()
        try:
            yield served
        finally:
            in_flight.dec()
            served.release()

    def served_views(self) -> list[ServedViews]:
        """Every model's AVAILABLE versions as views, in name order, without waiting."""
        found = []
        with self._lock:
            entries = sorted(self._models.values(), key=lambda e: e.spec.name)
            for entry in entries:
                available = entry.available()
                views = {s.version: s.view for s in available if s.view is not None}
                default = entry.default_version(available)
                found.append(
                    ServedViews(
                        entry.spec.name,
                        default.view if default is not None else None,
                        views,
                        {
                            label: views[version]
                            for label, version in sorted(entry.spec.labels.items())
                            if version in views
                        },
                    )
                )
        return found

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: the first poll is done and every model has an AVAILABLE version."""
        with self._lock:
            entries = list(self._models.values())
            models = {entry.spec.name: entry.report() for entry in entries}
        ready = (
            self._polled.is_set()
            and self._problem is None
            and bool(entries)
            and all(m["serving"] is not None for m in models.values())
        )
        report: dict[str, Any] = {"ready": ready, "models": models}
        if self._config_problem:
            # Still ready (the previous config serves), but the edit must not go unnoticed.
            report["model_config_error"] = self._config_problem
        if self._problem:
            report["error"] = self._problem
        elif not self._polled.is_set():
            report["error"] = "loading models"
        return ready, report


def _load_key(spec: ServedModelSpec) -> tuple[Path, str, str, BatchingConfig | None]:
    """What a model's loaded versions depend on; a change means loading it afresh."""
    return spec.base_path, spec.runtime, spec.variant, spec.batching
