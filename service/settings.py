"""Service settings: a config file, environment variables (``TFSHIP_*``) and CLI flags.

Precedence: flag > environment variable > config file (``TFSHIP_CONFIG`` / ``--config``) >
default. The config file uses the settings' own names (``rest_port: 8501``); each becomes
the variable ``TFSHIP_REST_PORT`` unless that is already set, so one parser and one set of
checks serve all three sources. Workers read their settings from the environment, which
``tfship serve`` fills from its flags before gunicorn forks them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

RUNTIMES = ("onnx", "savedmodel")


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_model_runtimes(text: str, source: str = "TFSHIP_MODEL_RUNTIMES") -> dict[str, str]:
    """``digits=savedmodel,other=onnx`` -> {"digits": "savedmodel", "other": "onnx"}."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, runtime = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"{source}: expected NAME=RUNTIME, got {item!r}")
        runtime = runtime.strip()
        if runtime not in RUNTIMES:
            raise SettingsError(
                f"{source}: runtime {runtime!r} for model {name.strip()!r} is not one of "
                f"{', '.join(RUNTIMES)}"
            )
        result[name.strip()] = runtime
    return result


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key}: must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key}: expected a number, got {raw!r}") from None
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        raise SettingsError(
            f"{key}: must be {'zero or more' if allow_zero else 'positive'}, got {raw}"
        )
    return value


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(key) or default
    if value not in choices:
        raise SettingsError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


# Parts of the API that TFSHIP_AUTH_EXEMPT can leave open without a key.
EXEMPTIBLE = ("health", "metrics", "openapi")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _header_name(value: str) -> str:
    if not _HEADER_NAME.match(value) or value.lower() == "authorization":
        raise SettingsError(
            f"TFSHIP_API_KEY_HEADER: expected a header name such as X-API-Key, got {value!r}"
        )
    return value


def _exempt(value: str) -> tuple[str, ...]:
    """``health,metrics`` -> ("health", "metrics"); ``none`` -> ()."""
    if value.strip() == "none":
        return ()
    parts = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    unknown = [p for p in parts if p not in EXEMPTIBLE]
    if unknown:
        raise SettingsError(
            f"TFSHIP_AUTH_EXEMPT: {unknown[0]!r} is not one of {', '.join(EXEMPTIBLE)} (or none)"
        )
    return parts


@dataclass(frozen=True)
class ServiceSettings:
    model_dir: Path
    host: str = "127.0.0.1"
    rest_port: int = 8501
    # gRPC port, served by every worker (SO_REUSEPORT); 0 = no gRPC.
    grpc_port: int = 8500
    # Threads per worker answering gRPC calls.
    grpc_threads: int = 4
    # HTTP request threads per worker: 1 = gunicorn's sync worker, more = its gthread worker.
    threads: int = 1
    workers: int = 2
    runtime: str = "onnx"
    model_runtimes: dict[str, str] = field(default_factory=dict)
    # How long a request for a model that is still loading waits before a 503.
    load_wait_seconds: float = 60.0
    # onnxruntime/TensorFlow intra-op threads per worker; 0 = CPUs divided among workers.
    intra_op_threads: int = 0
    # Model config file (YAML/JSON); None = serve every model folder of model_dir.
    model_config: Path | None = None
    # How often the repository is checked for new or removed versions; 0 = load once.
    poll_seconds: float = 2.0
    # How long an unloading version waits for its in-flight requests.
    unload_drain_seconds: float = 30.0
    # "json" (one object per line) or "text"; the access log is one line per request.
    log_format: str = "json"
    access_log: bool = True
    # Request limits: body bytes (REST 413; also the gRPC message limit), rows per request.
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 10_000
    # Model compute time per request before it is stopped with a 504 (ONNX); 0 = no limit.
    request_timeout_seconds: float = 30.0
    # "reject" (default): NaN and Infinity in a request are a 400; "allow": passed to the model.
    non_finite: str = "reject"
    # API keys file; None = no authentication (the default).
    api_keys_file: Path | None = None
    # The header that may carry a key besides "Authorization: Bearer KEY".
    api_key_header: str = "X-API-Key"
    # Parts left open when keys are on: any of health, metrics, openapi.
    auth_exempt: tuple[str, ...] = ("health", "metrics")

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
        return cls(
            model_dir=Path(env.get("TFSHIP_MODEL_DIR") or "models"),
            host=env.get("TFSHIP_HOST") or "127.0.0.1",
            rest_port=_int(env, "TFSHIP_REST_PORT", 8501, 1, 65535),
            grpc_port=_int(env, "TFSHIP_GRPC_PORT", 8500, 0, 65535),
            grpc_threads=_int(env, "TFSHIP_GRPC_THREADS", 4, 1, 256),
            threads=_int(env, "TFSHIP_THREADS", 1, 1, 256),
            workers=_int(env, "TFSHIP_WORKERS", min(available_cpus(), 4), 1, 256),
            runtime=_choice(env, "TFSHIP_RUNTIME", RUNTIMES, "onnx"),
            model_runtimes=parse_model_runtimes(env.get("TFSHIP_MODEL_RUNTIMES") or ""),
            load_wait_seconds=_float(env, "TFSHIP_LOAD_WAIT_SECONDS", 60.0),
            intra_op_threads=_int(env, "TFSHIP_INTRA_OP_THREADS", 0, 0, 1024),
            model_config=Path(env["TFSHIP_MODEL_CONFIG"])
            if env.get("TFSHIP_MODEL_CONFIG")
            else None,
            poll_seconds=_float(env, "TFSHIP_POLL_SECONDS", 2.0, allow_zero=True),
            unload_drain_seconds=_float(env, "TFSHIP_UNLOAD_DRAIN_SECONDS", 30.0),
            log_format=_choice(env, "TFSHIP_LOG_FORMAT", ("json", "text"), "json"),
            access_log=_choice(env, "TFSHIP_ACCESS_LOG", ("on", "off"), "on") == "on",
            max_body_bytes=_int(env, "TFSHIP_MAX_BODY_BYTES", 16 * 1024 * 1024, 1024, 2**31 - 1),
            max_rows=_int(env, "TFSHIP_MAX_ROWS", 10_000, 1, 10**8),
            request_timeout_seconds=_float(
                env, "TFSHIP_REQUEST_TIMEOUT_SECONDS", 30.0, allow_zero=True
            ),
            non_finite=_choice(env, "TFSHIP_NON_FINITE", ("reject", "allow"), "reject"),
            api_keys_file=Path(env["TFSHIP_API_KEYS_FILE"])
            if env.get("TFSHIP_API_KEYS_FILE")
            else None,
            api_key_header=_header_name(env.get("TFSHIP_API_KEY_HEADER") or "X-API-Key"),
            auth_exempt=_exempt(env.get("TFSHIP_AUTH_EXEMPT") or "health,metrics"),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "TFSHIP_MODEL_DIR": str(self.model_dir),
            "TFSHIP_HOST": self.host,
            "TFSHIP_REST_PORT": str(self.rest_port),
            "TFSHIP_GRPC_PORT": str(self.grpc_port),
            "TFSHIP_GRPC_THREADS": str(self.grpc_threads),
            "TFSHIP_THREADS": str(self.threads),
            "TFSHIP_WORKERS": str(self.workers),
            "TFSHIP_RUNTIME": self.runtime,
            "TFSHIP_MODEL_RUNTIMES": ",".join(f"{k}={v}" for k, v in self.model_runtimes.items()),
            "TFSHIP_LOAD_WAIT_SECONDS": str(self.load_wait_seconds),
            "TFSHIP_INTRA_OP_THREADS": str(self.intra_op_threads),
            "TFSHIP_MODEL_CONFIG": str(self.model_config) if self.model_config else "",
            "TFSHIP_POLL_SECONDS": str(self.poll_seconds),
            "TFSHIP_UNLOAD_DRAIN_SECONDS": str(self.unload_drain_seconds),
            "TFSHIP_LOG_FORMAT": self.log_format,
            "TFSHIP_ACCESS_LOG": "on" if self.access_log else "off",
            "TFSHIP_MAX_BODY_BYTES": str(self.max_body_bytes),
            "TFSHIP_MAX_ROWS": str(self.max_rows),
            "TFSHIP_REQUEST_TIMEOUT_SECONDS": str(self.request_timeout_seconds),
            "TFSHIP_NON_FINITE": self.non_finite,
            "TFSHIP_API_KEYS_FILE": str(self.api_keys_file) if self.api_keys_file else "",
            "TFSHIP_API_KEY_HEADER": self.api_key_header,
            "TFSHIP_AUTH_EXEMPT": ",".join(self.auth_exempt) or "none",
        }


CONFIG_VARIABLE = "TFSHIP_CONFIG"


def setting_names() -> list[str]:
    """The config-file keys; each is also the variable ``TFSHIP_<NAME>``."""
    return [f.name for f in fields(ServiceSettings)]


def _as_text(key: str, value: Any, source: str) -> str:
    if key == "model_runtimes" and isinstance(value, dict):
        return ",".join(f"{name}={runtime}" for name, runtime in value.items())
    if key == "auth_exempt" and isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    if key == "access_log" and isinstance(value, bool):
        return "on" if value else "off"
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
            env[f"TFSHIP_{key.upper()}"] = _as_text(key, value, source)
    return env
