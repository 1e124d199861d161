"""The Dockerfile, without a Docker engine: hadolint, what the images contain, and each
target's entrypoint and command run here exactly as the image would run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, ROOT, TrainedRepo, free_port, quiet_env

from tfship.repository import list_versions

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages by name, each with its (INSTRUCTION, arguments) list; continuations joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.match(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            current = Stage(match.group(2), match.group(1))
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction, rest.strip()))
    return stages


def chain(stages: dict[str, Stage], target: str) -> list[tuple[str, str]]:
    """Every instruction a target inherits, base first."""
    stage = stages[target]
    inherited = chain(stages, stage.parent) if stage.parent in stages else []
    return inherited + stage.instructions


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in instructions:
        if instruction == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def last(instructions: list[tuple[str, str]], name: str) -> Any:
    values = [rest for instruction, rest in instructions if instruction == name]
    return values[-1] if values else None


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), f"exec form expected, got {rest}"
    return value


def local_command(argv: list[str], paths: dict[str, Path]) -> list[str]:
    """The image's argv with the image's paths mapped to this checkout's."""
    mapped = []
    for arg in argv:
        # The longest image path that matches, once (a local path may itself be under /tmp).
        for image_path in sorted(paths, key=len, reverse=True):
            if arg == image_path or arg.startswith(image_path + "/"):
                arg = str(paths[image_path]) + arg[len(image_path) :]
                break
        mapped.append(arg)
    if mapped and (BIN / mapped[0]).exists():
        mapped[0] = str(BIN / mapped[0])
    return mapped


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Image -> the tfship command it runs; each installs requirements/<image>.txt.
IMAGES = {"serve": "serve", "serve-tf": "serve", "serve-gpu": "serve", "train": "train"}


def test_images_are_slim_non_root_and_serve_by_default() -> None:
    stages = parse_dockerfile()
    assert list(stages)[-1] == "serve", "the default target is the last stage"
    assert set(IMAGES) <= set(stages)
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base and base.group(1).startswith("python:3.11-slim")
    for target, command in IMAGES.items():
        instructions = chain(stages, target)
        user = last(instructions, "USER")
        assert user and user.isdigit() and int(user) > 0, "numeric non-root user (runAsNonRoot)"
        assert exec_form(last(instructions, "ENTRYPOINT"))[:2] == ["tfship", command]
        # Built from the runtime stage, which copies the venv and nothing of the build.
        runs = " ".join(rest for name, rest in instructions if name == "RUN")
        assert "apt-get" not in runs and "[dev]" not in runs
        copied = [rest for name, rest in instructions if name == "COPY" and "/opt/venv" in rest]
        assert copied == [f"--from=venv-{target} /opt/venv /opt/venv"], copied
    serve = chain(stages, "serve")
    assert set(last(serve, "EXPOSE").split()) == {"8500", "8501"}
    env = env_of(serve)
    assert (env["TFSHIP_REST_PORT"], env["TFSHIP_GRPC_PORT"]) == ("8501", "8500")
    assert "/healthz" in last(serve, "HEALTHCHECK")
    assert env_of(chain(stages, "serve-gpu"))["TFSHIP_DEVICE"] == "cuda"


@pytest.mark.parametrize("target", IMAGES)
def test_each_image_installs_its_own_lock_file_with_hashes(target: str) -> None:
    venv = chain(parse_dockerfile(), f"venv-{target}")
    lock = f"requirements/{target}.txt"
    assert (ROOT / lock).is_file()
    assert next(rest for name, rest in venv if name == "COPY") == f"{lock} /tmp/requirements.txt"
    installs = [rest for name, rest in venv if name == "RUN" and "requirements.txt" in rest]
    assert installs and all("--require-hashes" in r and "--no-deps" in r for r in installs)


def test_dockerignore_lets_in_exactly_what_the_image_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "ignore everything, then let in what the image needs"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for stage in parse_dockerfile().values():
        for instruction, rest in stage.instructions:
            if instruction == "COPY" and not rest.startswith("--from"):
                # What the context must let in: each source's top-level file or folder.
                copied.update(source.split("/")[0] for source in rest.split()[:-1])
    assert copied == allowed


def _image_env(target: str, **overrides: str) -> dict[str, str]:
    """The target's ENV as `docker run -e` would override it, on this machine's venv."""
    env = env_of(chain(parse_dockerfile(), target))
    env.pop("PATH")  # /opt/venv/bin in the image; this checkout's venv here
    return quiet_env(**{**env, "HOME": os.environ.get("HOME", "/tmp"), **overrides})


def test_serve_target_runs_as_the_image_would(trained_repo: TrainedRepo, tmp_path: Path) -> None:
    instructions = chain(parse_dockerfile(), "serve")
    argv = exec_form(last(instructions, "ENTRYPOINT")) + exec_form(last(instructions, "CMD"))
    rest_port, grpc_port = free_port(), free_port()
    # As `docker run -e ...` would: loopback only here, free ports, this repository.
    env = _image_env(
        "serve",
        TFSHIP_HOST="127.0.0.1",
        TFSHIP_REST_PORT=str(rest_port),
        TFSHIP_GRPC_PORT=str(grpc_port),
        TFSHIP_MODEL_DIR=str(trained_repo.path),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        local_command(argv, {}), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/readyz", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "not ready in 60 s"
                time.sleep(0.1)
        health = exec_form(re.sub(r"^.*?CMD\s+", "", last(instructions, "HEALTHCHECK")))
        assert health[0] == "python"
        check = subprocess.run(
            [sys.executable, *health[1:]], env=env, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
    finally:
        process.send_signal(signal.SIGTERM)  # what `docker stop` sends
        code = process.wait(timeout=60)
        log.close()
    assert code == 0, "graceful stop"
    # The health check fails once the server is gone: it does check something.
    failed = subprocess.run([sys.executable, *health[1:]], env=env, capture_output=True)
    assert failed.returncode != 0


@pytest.mark.parametrize("target", ["train"])
def test_train_target_runs_as_the_image_would(tmp_path: Path, target: str) -> None:
    instructions = chain(parse_dockerfile(), target)
    argv = exec_form(last(instructions, "ENTRYPOINT")) + exec_form(last(instructions, "CMD"))
    models = tmp_path / "models"
    models.mkdir()
    command = local_command(
        argv, {"/app/configs": ROOT / "training" / "configs", "/models": models}
    )
    result = subprocess.run(
        command,
        env=_image_env(target, TFSHIP_MODEL_DIR=str(models), TFSHIP_RUN_DIR=str(tmp_path / "runs")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list_versions(models / "digits") == [1]
