"""Third-party clients in their own environments, built by ``make client-envs`` (which
``make test`` runs) into ``.client-envs/`` from the pins in ``tests/clients/``.

A test that needs one skips when it is missing, except under CI, where a missing client
fails the test: CI must judge compatibility with the real clients, never silently not.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, quiet_env

ENVS = Path(os.environ.get("TFSHIP_CLIENT_ENVS", ROOT / ".client-envs"))


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def client_env(name: str) -> Path:
    """The folder of an installed client environment (``kserve``, ``mlserver``...)."""
    folder = ENVS / name
    if not (folder / ".installed").exists():
        _missing(f"{folder} is not built: run `make client-envs`")
    return folder


def env_python(name: str) -> Path:
    return client_env(name) / "bin" / "python"


def perf_analyzer() -> tuple[Path, dict[str, str]]:
    """Triton's perf_analyzer and the environment it runs in (its CUDA runtime library)."""
    folder = client_env("perf_analyzer")
    binary = folder / "bin" / "perf_analyzer"
    binary.chmod(0o755)  # pip keeps the wheel's data files without their exec bit
    env = quiet_env(LD_LIBRARY_PATH=str(folder / "nvidia" / "cuda_runtime" / "lib"))
    probe = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, env=env, timeout=60
    )
    if probe.returncode != 0:
        hint = " (Debian: apt-get install libb64-0d)" if "libb64" in probe.stderr else ""
        _missing(f"perf_analyzer does not start{hint}: {probe.stderr.strip()[-500:]}")
    return binary, env
