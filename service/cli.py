"""``tfship serve`` / ``python -m service``: check the settings, then run gunicorn in-process."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from service.settings import (
    CONFIG_VARIABLE,
    ServiceSettings,
    SettingsError,
    config_file_env,
    declarations,
    flag,
    parse_model_runtimes,
    variable,
)

CONFIG_FILE = Path(__file__).with_name("gunicorn.conf.py")
GPU_HTTP_THREADS = 8


def _help(doc: str) -> str:
    """A declaration's settings-table text as a flag's help: no Markdown."""
    return _LINK.sub(r"\1", doc).replace("`", "")


_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per declared setting (service/settings.py), plus --config."""
    # Defaults are None so that an unset flag leaves the TFSHIP_* variable in charge.
    parser.add_argument(
        "--config",
        help="settings file, YAML or JSON, keys named like the settings (rest_port: 8501); "
        f"flags and TFSHIP_* variables override it (env {CONFIG_VARIABLE})",
    )
    for name, declared in declarations().items():
        words = f"{declared.what} (env {variable(name)}; default: {_help(declared.doc)})"
        if name == "model_runtimes":
            parser.add_argument(
                flag(name),
                dest=name,
                action="append",
                default=[],
                metavar="NAME=RUNTIME",
                help=f"{words}; repeatable",
            )
            continue
        parser.add_argument(
            flag(name),
            dest=name,
            type=declared.flag_type,
            choices=declared.choices,
            help=words,
        )


def _environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.config is not None:
        env[CONFIG_VARIABLE] = args.config
    for name in declarations():
        value = getattr(args, name, None)
        if name != "model_runtimes" and value is not None:
            env[variable(name)] = str(value)
    if args.model_runtimes:
        # Flags add to the runtimes the variable (or else the settings file) names.
        key = variable("model_runtimes")
        base = env.get(key)
        if base is None and env.get(CONFIG_VARIABLE):
            base = config_file_env(Path(env[CONFIG_VARIABLE])).get(key)
        merged = parse_model_runtimes(base or "")
        merged.update(parse_model_runtimes(",".join(args.model_runtimes), flag("model_runtimes")))
        env[key] = ",".join(f"{k}={v}" for k, v in merged.items())
    return env


def _on_device(settings: ServiceSettings, env: dict[str, str]) -> ServiceSettings:
    """``auto`` resolved to cpu or cuda for the workers; DeviceError for cuda without a GPU.

    Checked here, once, from what ONNX Runtime offers (the SavedModel runtime checks
    TensorFlow's GPUs in each worker: importing TensorFlow here would cost every worker its
    memory before the fork). On a GPU one worker is the default: each would hold its own
    CUDA context and copy of every model on the same device; that worker takes HTTP
    requests on several threads so that batching (on by default there) can group them.
    """
    if settings.device == "cpu":
        return settings
    import onnxruntime as ort

    from tfship.devices import CUDA_PROVIDER, choose, nvidia_gpus

    chosen = choose(
        settings.device, CUDA_PROVIDER in ort.get_available_providers(), nvidia_gpus(), "onnx"
    )
    if chosen.warning:
        print(f"tfship serve: {chosen.warning}", file=sys.stderr)
    if chosen.device == "cpu":
        return dataclasses.replace(settings, device="cpu")
    return gpu_settings(settings, env)


def gpu_settings(settings: ServiceSettings, env: dict[str, str]) -> ServiceSettings:
    """The GPU's defaults for what neither the environment nor the settings file sets."""
    from_file = config_file_env(Path(env[CONFIG_VARIABLE])) if env.get(CONFIG_VARIABLE) else {}

    def unset(name: str) -> bool:
        return not env.get(variable(name)) and not from_file.get(variable(name))

    # HTTP threads, so that the default batching (GPU_BATCHING) can group HTTP requests.
    return dataclasses.replace(
        settings,
        device="cuda",
        workers=1 if unset("workers") else settings.workers,
        threads=GPU_HTTP_THREADS if unset("threads") else settings.threads,
    )


def run(args: argparse.Namespace) -> int:
    from tfship.devices import DeviceError

    try:
        env = _environment(args)
        settings = _on_device(ServiceSettings.from_env(env), env)
    except (SettingsError, DeviceError) as exc:
        print(f"tfship serve: {exc}", file=sys.stderr)
        return 2
    if "savedmodel" in {settings.runtime, *settings.model_runtimes.values()}:
        from tfship.extras import MissingExtra, require

        try:
            require("savedmodel", "the SavedModel runtime")
        except MissingExtra as exc:
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
