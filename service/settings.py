"""Service settings: a config file, environment variables (``TFSHIP_*``) and CLI flags.

Precedence: flag > environment variable > config file (``TFSHIP_CONFIG`` / ``--config``) >
default. The config file uses the settings' own names (``rest_port: 8501``); each becomes
the variable ``TFSHIP_REST_PORT`` unless that is already set, so one parser and one set of
checks serve all three sources. Workers read their settings from the environment, which
``tfship serve`` fills from its flags before gunicorn forks them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from service.setting_parsers import (
    RUNTIMES,
    Parse,
    SettingsError,
    choice,
    exempt_parts,
    header_name,
    integer,
    number,
    on_off,
    parse_model_runtimes,
    path,
    text,
)
from tfship.devices import DEVICES


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Declaration:
    """One setting, declared once: its variable (``TFSHIP_<NAME>``), file key (the name),
    flag (``--name-with-dashes``), parser, default and documentation all come from here."""

    parse: Parse
    # What it is, for the flag's help.
    what: str
    # The settings table's third column (docs/serving.md): the default and its meaning.
    doc: str
    # The variable's text for a value (what ``tfship serve`` hands its workers).
    show: Callable[[Any], str] = str
    # argparse's type and choices for the flag, so a bad flag fails before anything runs.
    flag_type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    # What a settings file may give besides a single value (a mapping, a list, a boolean);
    # ``show`` turns it into the variable's text.
    file_type: type | None = None


def setting(
    default: Any = MISSING,
    *,
    what: str,
    factory: Callable[[], Any] | None = None,
    parse: Parse,
    doc: str,
    show: Callable[[Any], str] = str,
    flag_type: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    file_type: type | None = None,
) -> Any:
    declared = {"tfship": Declaration(parse, what, doc, show, flag_type, choices, file_type)}
    if factory is not None:
        return field(default_factory=factory, metadata=declared)
    return field(default=default, metadata=declared)


def _show_optional(value: Any) -> str:
    return "" if value is None else str(value)


def _show_runtimes(value: dict[str, str]) -> str:
    return ",".join(f"{name}={runtime}" for name, runtime in value.items())


def _default_workers() -> int:
    return min(available_cpus(), 4)


@dataclass(frozen=True)
class ServiceSettings:
    model_dir: Path = setting(Path("models"), parse=path, doc="`models`", what="model repository")
    host: str = setting(
        "127.0.0.1",
        parse=text,
        doc="`127.0.0.1` (use `0.0.0.0` in a container)",
        what="address to listen on",
    )
    rest_port: int = setting(
        8501,
        parse=integer(1, 65535),
        doc="`8501`",
        flag_type=int,
        what="REST port (TF Serving REST, V2, health, metrics)",
    )
    grpc_port: int = setting(
        8500,
        parse=integer(0, 65535),
        doc="`8500`; `0` turns gRPC off",
        flag_type=int,
        what="gRPC port: TF Serving's PredictionService and ModelService",
    )
    grpc_threads: int = setting(
        4,
        parse=integer(1, 256),
        doc="`4`: threads per worker answering gRPC calls",
        flag_type=int,
        what="threads per worker answering gRPC calls",
    )
    workers: int = setting(
        factory=_default_workers,
        parse=integer(1, 256),
        doc="number of CPUs, at most 4",
        flag_type=int,
        what="gunicorn worker processes",
    )
    threads: int = setting(
        1,
        parse=integer(1, 256),
        doc="`1`: HTTP requests one worker handles at once. `1` answers whole requests in "
        "the worker's event-loop thread (the fastest for small requests); more hands them "
        "to a pool of that many threads, which [dynamic batching](#dynamic-batching) needs "
        "to group HTTP requests",
        flag_type=int,
        what="HTTP request threads per worker",
    )
    max_connections: int = setting(
        1000,
        parse=integer(1, 1_000_000),
        doc="`1000`: open HTTP connections per worker, idle keep-alive ones included; one "
        "more is answered 503 and closed",
        flag_type=int,
        what="open HTTP connections per worker (503 above it)",
    )
    header_timeout_seconds: float = setting(
        10.0,
        parse=number(),
        doc="`10`: a request's headers must arrive within this time of its first byte (or "
        "of the connection's opening), else 408",
        flag_type=float,
        what="seconds for a request's headers to arrive (408 after)",
    )
    body_timeout_seconds: float = setting(
        30.0,
        parse=number(),
        doc="`30`: the longest gap between two reads of a request body, else 408",
        flag_type=float,
        what="seconds a request body may go without a byte (408 after)",
    )
    keepalive_seconds: float = setting(
        5.0,
        parse=number(),
        doc="`5`: how long an idle keep-alive connection waits for its next request",
        flag_type=float,
        what="seconds an idle keep-alive connection is kept",
    )
    runtime: str = setting(
        "onnx",
        parse=choice(*RUNTIMES),
        doc="`onnx`",
        choices=RUNTIMES,
        what="default runtime for every model",
    )
    model_runtimes: dict[str, str] = setting(
        factory=dict,
        parse=lambda raw, key: parse_model_runtimes(raw, key),
        doc="none; e.g. `digits=savedmodel,other=onnx`",
        show=_show_runtimes,
        file_type=dict,
        what="runtime for one model, e.g. digits=savedmodel",
    )
    device: str = setting(
        "cpu",
        parse=choice(*DEVICES),
        doc="`cpu`; `cuda`: ONNX Runtime's CUDA provider (and TensorFlow's GPU for "
        "SavedModels), refused at start without a GPU; there the defaults become one worker, 8 "
        "HTTP threads and [dynamic batching](#dynamic-batching) of up to 64 rows waiting 1 ms "
        "for every model without its own; `auto`: the GPU when there is one, else the CPU "
        "with a warning",
        choices=DEVICES,
        what="device that runs the models: cpu, cuda or auto",
    )
    model_config: Path | None = setting(
        None,
        parse=path,
        doc="none: serve every model folder, newest version",
        show=_show_optional,
        what="model config file, YAML or JSON: names, runtimes, version policies, labels",
    )
    poll_seconds: float = setting(
        2.0,
        parse=number(allow_zero=True),
        doc="`2`: how often the repository is checked for new versions; `0` loads once",
        flag_type=float,
        what="how often to look for new versions",
    )
    unload_drain_seconds: float = setting(
        30.0,
        parse=number(),
        doc="`30`: how long a version leaving service waits for its in-flight requests",
        flag_type=float,
        what="how long a version leaving service waits for its in-flight requests",
    )
    log_format: str = setting(
        "json",
        parse=choice("json", "text"),
        doc="`json` (one object per line) or `text`",
        choices=("json", "text"),
        what="log lines as JSON objects or plain text",
    )
    access_log: bool = setting(
        True,
        parse=on_off,
        doc="`on`: one log line per request; `off`",
        show=lambda on: "on" if on else "off",
        choices=("on", "off"),
        file_type=bool,
        what="one log line per request",
    )
    max_body_bytes: int = setting(
        16 * 1024 * 1024,
        parse=integer(1024, 2**31 - 1),
        doc="`16777216` (16 MiB): larger REST bodies get a 413; also the gRPC message limit",
        flag_type=int,
        what="largest request body (REST: 413 above it) and gRPC message",
    )
    max_rows: int = setting(
        10_000,
        parse=integer(1, 10**8),
        doc="`10000`: rows (instances, batch size) per request; more is a 400 naming the limit",
        flag_type=int,
        what="most rows (instances) in one request",
    )
    request_timeout_seconds: float = setting(
        30.0,
        parse=number(allow_zero=True),
        doc="`30`: model compute per request; past it ONNX Runtime is stopped and the answer "
        "is a 504 (gRPC `DEADLINE_EXCEEDED`); `0`: no limit. TensorFlow cannot be stopped: "
        "there gunicorn's 60 s worker timeout replaces a stuck worker",
        flag_type=float,
        what="model compute time per request before it is stopped with a 504",
    )
    non_finite: str = setting(
        "reject",
        parse=choice("reject", "allow"),
        doc="`reject`: NaN and Infinity in request tensors are a 400; `allow` passes them to "
        "the model, and REST bodies may then spell them `NaN`, `Infinity`, `-Infinity` (as TF "
        "Serving reads them)",
        choices=("reject", "allow"),
        what="NaN and Infinity in request tensors: a 400, or passed to the model",
    )
    api_keys_file: Path | None = setting(
        None,
        parse=path,
        doc="none: no authentication. See [Authentication](#authentication)",
        show=_show_optional,
        what="turn authentication on: one API key per line, optional name=CLIENT and models=A,B",
    )
    api_key_header: str = setting(
        "X-API-Key",
        parse=header_name,
        doc="`X-API-Key`: header that may carry the key besides `Authorization: Bearer`",
        what="header that may carry the key besides 'Authorization: Bearer'",
    )
    auth_exempt: tuple[str, ...] = setting(
        ("health", "metrics"),
        parse=exempt_parts,
        doc="`health,metrics`: open without a key (any of `health`, `metrics`, `openapi`, "
        "or `none`)",
        show=lambda parts: ",".join(str(p) for p in parts) or "none",
        file_type=list,
        what="what stays open with keys on",
    )
    load_wait_seconds: float = setting(
        60.0,
        parse=number(),
        doc="`60`: how long a request for a still-loading model waits before a 503",
        flag_type=float,
        what="how long a request for a model still loading waits before a 503",
    )
    intra_op_threads: int = setting(
        0,
        parse=integer(0, 1024),
        doc="CPUs ÷ workers: onnxruntime/TensorFlow threads per worker",
        flag_type=int,
        what="onnxruntime/TensorFlow threads per worker",
    )
    ui: bool = setting(
        True,
        parse=on_off,
        doc="`on`: the browser console at `/ui/` (its data under the same API keys as the "
        "models it shows); `off`",
        show=lambda on: "on" if on else "off",
        choices=("on", "off"),
        file_type=bool,
        what="the browser console at /ui/",
    )
    drift_window: int = setting(
        1000,
        parse=integer(0, 10**7),
        doc="`1000`: rows per model version the [drift scores](#drift) are computed over (the "
        "latest, across workers); `0` turns drift off",
        flag_type=int,
        what="rows of the latest requests drift scores are computed over (0: off)",
    )
    drift_sample_rate: float = setting(
        500.0,
        parse=number(),
        doc="`500`: rows a second per version and worker counted into the drift window at "
        "most; above it requests are sampled, so drift's cost per request falls as traffic "
        "grows",
        flag_type=float,
        what="most rows a second per version and worker counted for drift",
    )
    capture_dir: Path | None = setting(
        None,
        parse=path,
        doc="none: no capture. A folder for [captured requests](#request-capture) as JSON lines",
        show=_show_optional,
        what="folder to write sampled requests and answers to (JSON lines)",
    )
    capture_sample: float = setting(
        1.0,
        parse=number(maximum=1.0),
        doc="`1`: the share of answered inference requests captured when `TFSHIP_CAPTURE_DIR` "
        "is set (`0.05`: one in twenty)",
        flag_type=float,
        what="share of requests captured (0 < FRACTION <= 1)",
    )
    capture_max_bytes: int = setting(
        64 * 1024 * 1024,
        parse=integer(4096, 2**40),
        doc="`67108864` (64 MiB): a capture file is closed and a new one begun at this size",
        flag_type=int,
        what="size at which a capture file is rotated",
    )
    capture_files: int = setting(
        10,
        parse=integer(1, 100_000),
        doc="`10`: closed capture files kept; the oldest are deleted beyond it",
        flag_type=int,
        what="closed capture files kept (oldest deleted)",
    )

    def runtime_for(self, model: str) -> str:
        return self.model_runtimes.get(model, self.runtime)

    def threads_per_worker(self) -> int:
        if self.intra_op_threads:
            return self.intra_op_threads
        # Workers are processes; giving each more threads than its share of cores only
        # makes them fight over the same cores.
        return max(1, available_cpus() // self.workers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        if env.get(CONFIG_VARIABLE):
            env = {**config_file_env(Path(env[CONFIG_VARIABLE])), **env}
        values = {}
        for name, declared in declarations().items():
            raw = env.get(variable(name))
            if raw:  # unset or empty: the default
                values[name] = declared.parse(raw, variable(name))
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {
            variable(name): declared.show(getattr(self, name))
            for name, declared in declarations().items()
        }


def declarations() -> dict[str, Declaration]:
    """Every setting's declaration, in the order of the settings table."""
    return {f.name: f.metadata["tfship"] for f in fields(ServiceSettings)}


def variable(name: str) -> str:
    return f"TFSHIP_{name.upper()}"


def flag(name: str) -> str:
    # Repeatable, one model each: the flag is singular, the setting a mapping.
    return "--model-runtime" if name == "model_runtimes" else "--" + name.replace("_", "-")


def settings_table() -> str:
    """docs/serving.md's settings table, from the declarations (``python -m service.settings``)."""
    rows = [
        "| variable | flag | default |",
        "| --- | --- | --- |",
        f"| `{CONFIG_VARIABLE}` | `--config` | none: the settings file |",
    ]
    for name, declared in declarations().items():
        shown = f"`{flag(name)}`"
        if name == "model_runtimes":
            shown = f"`{flag(name)} NAME=RUNTIME` (repeatable)"
        rows.append(f"| `{variable(name)}` | {shown} | {declared.doc} |")
    return "\n".join(rows)


CONFIG_VARIABLE = "TFSHIP_CONFIG"


def setting_names() -> list[str]:
    """The config-file keys; each is also the variable ``TFSHIP_<NAME>``."""
    return list(declarations())


def _as_text(key: str, value: Any, source: str) -> str:
    declared = declarations()[key]
    if declared.file_type is not None and isinstance(value, declared.file_type):
        return declared.show(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SettingsError(f"{source}: '{key}' must be a single value, got {value!r}")
    return str(value)


def config_file_env(path: Path) -> dict[str, str]:
    """A settings file (YAML or JSON mapping) -> ``TFSHIP_*`` variables."""
    import yaml  # JSON is YAML; imported here so servers without a file never load it

    source = f"{CONFIG_VARIABLE} {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{source}: not valid YAML/JSON: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: expected a mapping of setting: value")
    known = setting_names()
    env = {}
    for key, value in raw.items():
        if key not in known:
            raise SettingsError(f"{source}: unknown setting '{key}' (settings: {', '.join(known)})")
        if value is not None:
            env[variable(key)] = _as_text(key, value, source)
    return env


if __name__ == "__main__":
    print(settings_table())
