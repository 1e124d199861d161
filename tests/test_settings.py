"""Settings: config file < environment variable < flag, one name per setting, all documented."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from conftest import ROOT, Server

from service.cli import _environment, add_arguments
from service.settings import (
    ServiceSettings,
    SettingsError,
    available_cpus,
    setting_names,
    settings_table,
)


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser()
    add_arguments(made)
    return made


def settings_from(args: list[str], env: dict[str, str]) -> ServiceSettings:
    """What ``tfship serve ARGS`` would run with, in an environment of exactly ``env``."""
    with mock.patch.dict(os.environ, env, clear=True):
        return ServiceSettings.from_env(_environment(parser().parse_args(args)))


def test_file_then_environment_then_flag(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "model_dir: /srv/models\nrest_port: 9001\ngrpc_port: 9000\nworkers: 3\n"
        "poll_seconds: 0.5\naccess_log: false\nmodel_runtimes: {digits: savedmodel}\n"
    )
    from_file = settings_from(["--config", str(config)], {})
    assert (from_file.model_dir, from_file.rest_port, from_file.grpc_port) == (
        Path("/srv/models"),
        9001,
        9000,
    )
    assert from_file.workers == 3 and from_file.poll_seconds == 0.5
    assert from_file.access_log is False
    assert from_file.model_runtimes == {"digits": "savedmodel"}

    env = {"TFSHIP_CONFIG": str(config), "TFSHIP_REST_PORT": "9101", "TFSHIP_WORKERS": "5"}
    from_env = settings_from([], env)
    assert (from_env.rest_port, from_env.workers, from_env.grpc_port) == (9101, 5, 9000)

    flagged = settings_from(["--rest-port", "9201", "--model-runtime", "other=onnx"], env)
    assert (flagged.rest_port, flagged.workers) == (9201, 5)
    assert flagged.model_runtimes == {"digits": "savedmodel", "other": "onnx"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rest_prot: 1\n", "unknown setting 'rest_prot' (settings: model_dir, host"),
        ("workers: many\n", "TFSHIP_WORKERS: expected an integer, got 'many'"),
        ("workers: [1, 2]\n", "'workers' must be a single value"),
        ("- workers\n", "expected a mapping of setting: value"),
        ("workers: [\n", "not valid YAML/JSON"),
    ],
)
def test_bad_settings_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings_from(["--config", str(config)], {})
    with pytest.raises(SettingsError, match="cannot read"):
        settings_from(["--config", str(tmp_path / "missing.yaml")], {})


def test_every_setting_has_a_variable_a_flag_and_a_documented_row() -> None:
    flags = {option for action in parser()._actions for option in action.option_strings}
    reference = (ROOT / "docs" / "serving.md").read_text()
    env = ServiceSettings(model_dir=Path("m")).to_env()
    for name in setting_names():
        variable = f"TFSHIP_{name.upper()}"
        assert variable in env, name
        assert f"| `{variable}` |" in reference, f"{variable} missing from docs/serving.md's table"
        flag = "--model-runtime" if name == "model_runtimes" else "--" + name.replace("_", "-")
        assert flag in flags, flag
        assert f"`{flag}" in reference, f"{flag} missing from docs/serving.md's table"
    # The table itself is generated from the declarations: `python -m service.settings`.
    assert settings_table() in reference, "docs/serving.md: run python -m service.settings"


def test_defaults_are_declared_once() -> None:
    """A setting left unset has the same value built in code or read from the environment."""
    built = ServiceSettings()
    from_env = ServiceSettings.from_env({})
    assert built == from_env
    assert ServiceSettings.from_env(built.to_env()) == built
    assert built.workers == min(available_cpus(), 4)


def test_server_runs_from_a_settings_file(
    trained_repo: Any, start_server: Any, tmp_path: Path
) -> None:
    config = tmp_path / "serve.json"
    # JSON is YAML too. The fixture's own flags (--model-dir, ports) sit beside the file.
    config.write_text('{"workers": 1, "log_format": "text", "access_log": "off"}')
    server: Server = start_server(trained_repo.path, "--config", str(config))
    server.wait_ready()
    assert server.post("/v1/models/digits:predict", {"instances": [[[[0]] * 8] * 8]}).status == 200
    log = server.log()
    assert re.search(r"\[INFO\] tfship.registry: model digits version 1 AVAILABLE", log), log
    assert '"logger":"tfship' not in log  # text lines, not JSON
    assert "tfship.access" not in log  # access log off
    assert log.count("Booting worker") == 1
