"""``tfship serve`` / ``python -m service``: check the settings, then run gunicorn in-process."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.settings import (
    CONFIG_VARIABLE,
    RUNTIMES,
    ServiceSettings,
    SettingsError,
    config_file_env,
    parse_model_runtimes,
)

CONFIG_FILE = Path(__file__).with_name("gunicorn.conf.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are None so that an unset flag leaves the TFSHIP_* variable in charge.
    parser.add_argument(
        "--config",
        help="settings file, YAML or JSON, keys named like the settings (rest_port: 8501); "
        "flags and TFSHIP_* variables override it (env TFSHIP_CONFIG)",
    )
    parser.add_argument(
        "--model-dir", help="model repository (env TFSHIP_MODEL_DIR; default: models)"
    )
    parser.add_argument(
        "--host",
        help="address to listen on (env TFSHIP_HOST; default: "
        "127.0.0.1; use 0.0.0.0 in containers)",
    )
    parser.add_argument(
        "--rest-port", type=int, help="REST port (env TFSHIP_REST_PORT; default: 8501)"
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        help="gRPC port, TF Serving's PredictionService and ModelService (env "
        "TFSHIP_GRPC_PORT; default: 8500; 0 = no gRPC)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="gunicorn worker processes (env TFSHIP_WORKERS; default: CPUs, at most 4)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="default runtime for every model (env TFSHIP_RUNTIME; default: onnx)",
    )
    parser.add_argument(
        "--model-config",
        help="model config file, YAML or JSON: names, runtimes, version policies, labels "
        "(env TFSHIP_MODEL_CONFIG; default: serve every model folder)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        help="how often to look for new versions (env TFSHIP_POLL_SECONDS; default: 2; "
        "0 = load once)",
    )
    parser.add_argument(
        "--grpc-threads",
        type=int,
        help="threads per worker answering gRPC calls (env TFSHIP_GRPC_THREADS; default: 4)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="HTTP request threads per worker (env TFSHIP_THREADS; default: 1, gunicorn's "
        "sync worker; more: its gthread worker, which dynamic batching needs to group HTTP "
        "requests)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        help="onnxruntime/TensorFlow threads per worker (env TFSHIP_INTRA_OP_THREADS; "
        "default: 0 = CPUs divided among workers)",
    )
    parser.add_argument(
        "--load-wait-seconds",
        type=float,
        help="how long a request for a model still loading waits before a 503 (env "
        "TFSHIP_LOAD_WAIT_SECONDS; default: 60)",
    )
    parser.add_argument(
        "--unload-drain-seconds",
        type=float,
        help="how long a version leaving service waits for its in-flight requests (env "
        "TFSHIP_UNLOAD_DRAIN_SECONDS; default: 30)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="log lines as JSON objects or plain text (env TFSHIP_LOG_FORMAT; default: json)",
    )
    parser.add_argument(
        "--access-log",
        choices=("on", "off"),
        help="one log line per request (env TFSHIP_ACCESS_LOG; default: on)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        help="largest request body (REST: 413 above it) and gRPC message (env "
        "TFSHIP_MAX_BODY_BYTES; default: 16777216 = 16 MiB)",
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        help="most rows (instances) in one request; more is a 400 (env TFSHIP_MAX_ROWS; "
        "default: 10000)",
    )
    parser.add_argument(
        "--request-timeout-seconds",
        type=float,
        help="model compute time per request before it is stopped with a 504 (ONNX "
        "runtime; env TFSHIP_REQUEST_TIMEOUT_SECONDS; default: 30; 0 = no limit)",
    )
    parser.add_argument(
        "--non-finite",
        choices=("reject", "allow"),
        help="NaN and Infinity in request tensors: a 400, or passed to the model (env "
        "TFSHIP_NON_FINITE; default: reject)",
    )
    parser.add_argument(
        "--api-keys-file",
        help="turn authentication on: one API key per line, optional name=CLIENT and "
        "models=A,B (env TFSHIP_API_KEYS_FILE; default: none, no authentication)",
    )
    parser.add_argument(
        "--api-key-header",
        help="header that may carry the key besides 'Authorization: Bearer' (env "
        "TFSHIP_API_KEY_HEADER; default: X-API-Key)",
    )
    parser.add_argument(
        "--auth-exempt",
        help="what stays open with keys on: any of health,metrics,openapi, or none (env "
        "TFSHIP_AUTH_EXEMPT; default: health,metrics)",
    )
    parser.add_argument(
        "--model-runtime",
        action="append",
        default=[],
        metavar="NAME=RUNTIME",
        help="runtime for one model, e.g. digits=savedmodel (repeatable; env "
        "TFSHIP_MODEL_RUNTIMES=a=onnx,b=savedmodel)",
    )


def _environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    flags = {
        "TFSHIP_CONFIG": args.config,
        "TFSHIP_MODEL_DIR": args.model_dir,
        "TFSHIP_HOST": args.host,
        "TFSHIP_REST_PORT": args.rest_port,
        "TFSHIP_GRPC_PORT": args.grpc_port,
        "TFSHIP_WORKERS": args.workers,
        "TFSHIP_RUNTIME": args.runtime,
        "TFSHIP_MODEL_CONFIG": args.model_config,
        "TFSHIP_POLL_SECONDS": args.poll_seconds,
        "TFSHIP_GRPC_THREADS": args.grpc_threads,
        "TFSHIP_THREADS": args.threads,
        "TFSHIP_INTRA_OP_THREADS": args.intra_op_threads,
        "TFSHIP_LOAD_WAIT_SECONDS": args.load_wait_seconds,
        "TFSHIP_UNLOAD_DRAIN_SECONDS": args.unload_drain_seconds,
        "TFSHIP_LOG_FORMAT": args.log_format,
        "TFSHIP_ACCESS_LOG": args.access_log,
        "TFSHIP_MAX_BODY_BYTES": args.max_body_bytes,
        "TFSHIP_MAX_ROWS": args.max_rows,
        "TFSHIP_REQUEST_TIMEOUT_SECONDS": args.request_timeout_seconds,
        "TFSHIP_NON_FINITE": args.non_finite,
        "TFSHIP_API_KEYS_FILE": args.api_keys_file,
        "TFSHIP_API_KEY_HEADER": args.api_key_header,
        "TFSHIP_AUTH_EXEMPT": args.auth_exempt,
    }
    env.update({key: str(value) for key, value in flags.items() if value is not None})
    if args.model_runtime:
        # Flags add to the runtimes the variable (or else the settings file) names.
        base = env.get("TFSHIP_MODEL_RUNTIMES")
        if base is None and env.get(CONFIG_VARIABLE):
            base = config_file_env(Path(env[CONFIG_VARIABLE])).get("TFSHIP_MODEL_RUNTIMES")
        merged = parse_model_runtimes(base or "")
        merged.update(parse_model_runtimes(",".join(args.model_runtime), "--model-runtime"))
        env["TFSHIP_MODEL_RUNTIMES"] = ",".join(f"{k}={v}" for k, v in merged.items())
    return env


def run(args: argparse.Namespace) -> int:
    try:
        settings = ServiceSettings.from_env(_environment(args))
    except SettingsError as exc:
        print(f"tfship serve: {exc}", file=sys.stderr)
        return 2
    if settings.model_config is not None:
        from service.models.model_config import load_model_config

        try:
            load_model_config(settings.model_config, settings)  # fail here, not in every worker
        except SettingsError as exc:
            print(f"tfship serve: {exc}", file=sys.stderr)
            return 2
    if settings.api_keys_file is not None:
        from service.auth import KeysFileError, parse_keys_file

        try:
            parse_keys_file(settings.api_keys_file)  # fail here, not in every worker
        except KeysFileError as exc:
            print(f"tfship serve: {exc}", file=sys.stderr)
            return 2
    if settings.model_config is None and not settings.model_dir.is_dir():
        print(
            f"tfship serve: model repository {settings.model_dir} does not exist; train a "
            f"model first (tfship train CONFIG --model-dir {settings.model_dir})",
            file=sys.stderr,
        )
        return 2
    # Workers are forked from this process and read their settings from here.
    os.environ.update(settings.to_env())
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["tfship serve", "-c", str(CONFIG_FILE)]
    WSGIApplication("%(prog)s [OPTIONS]", prog="tfship serve").run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfship serve",
        description="Serve the models of a repository over REST (TF Serving and V2) and gRPC.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
