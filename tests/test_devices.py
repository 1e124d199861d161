"""--device cpu|cuda|auto, and TensorFlow's start-up noise on a machine without a GPU.

CI has no GPU: the choice itself is tested as a pure function over what a runtime and a
machine offer; on this machine `cuda` must be refused (exit 2, saying why) and `auto` must
fall back with a warning, by the real commands.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TrainedRepo, quiet_env, tfship_command

from tfship.devices import DeviceError, choose, nvidia_gpus, onnx_providers
from tfship.tensorflow_import import is_noise, native_stderr_filtered

NO_GPU = nvidia_gpus() == 0
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")

# Lines TensorFlow 2.21 wrote at start-up on a machine without a GPU (seen in tfship train).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796187779.978133    1966 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1796187779.979751    1966 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796187786.222657    1966 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796188750.158365    7291 cpu_feature_guard.cc:227] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
]


@pytest.mark.parametrize(
    ("requested", "cuda_runtime", "gpus", "device", "warns"),
    [
        ("cpu", True, 1, "cpu", False),
        ("cuda", True, 2, "cuda", False),
        ("auto", True, 1, "cuda", False),
        ("auto", False, 1, "cpu", True),
        ("auto", True, 0, "cpu", True),
    ],
)
def test_the_device_follows_what_the_machine_offers(
    requested: str, cuda_runtime: bool, gpus: int, device: str, warns: bool
) -> None:
    chosen = choose(requested, cuda_runtime, gpus, "onnx")
    assert (chosen.device, bool(chosen.warning)) == (device, warns)


@pytest.mark.parametrize(
    ("cuda_runtime", "gpus", "says"),
    [
        (True, 0, "no NVIDIA GPU"),
        (False, 1, "requirements/serve-gpu.txt"),
    ],
)
def test_cuda_is_refused_with_the_reason(cuda_runtime: bool, gpus: int, says: str) -> None:
    with pytest.raises(DeviceError, match=says):
        choose("cuda", cuda_runtime, gpus, "onnx")


def test_cuda_keeps_the_cpu_provider_for_what_it_lacks() -> None:
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


def test_hidden_devices_count_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert nvidia_gpus() == 0


def test_noise_is_recognised_and_real_errors_are_not() -> None:
    assert all(is_noise(line, gpu_present=False) for line in NOISE)
    # With a GPU present, the CUDA lines mean something and stay.
    assert not is_noise(NOISE[3], gpu_present=True)
    assert not is_noise("E0000 ... op_kernel.cc:1830] OP_REQUIRES failed: OOM", False)


def test_the_filter_drops_noise_and_keeps_the_rest(capfd: pytest.CaptureFixture[str]) -> None:
    with native_stderr_filtered(lambda line: is_noise(line, gpu_present=False)):
        os.write(2, ("\n".join([*NOISE, "a real warning"]) + "\n").encode())
    assert capfd.readouterr().err == "a real warning\n"


def test_on_failure_every_line_comes_back(capfd: pytest.CaptureFixture[str]) -> None:
    with (
        pytest.raises(ImportError),
        native_stderr_filtered(lambda line: is_noise(line, gpu_present=False)),
    ):
        os.write(2, (NOISE[3] + "\n").encode())
        raise ImportError("libcudart.so: cannot open shared object file")
    assert "cuInit" in capfd.readouterr().err


@needs_no_gpu
def test_training_prints_no_cuda_errors_or_start_up_banners(trained_repo: TrainedRepo) -> None:
    for marker in ("cuInit", "absl::InitializeLog", "cuda drivers", "oneDNN", "E0000"):
        assert marker not in trained_repo.log, marker


@needs_no_gpu
@pytest.mark.parametrize(
    "command",
    [
        ["train", str(ROOT / "training" / "configs" / "digits.yaml"), "--device", "cuda"],
        ["serve", "--device", "cuda"],
    ],
)
def test_cuda_without_a_gpu_exits_2_saying_so(
    command: list[str], trained_repo: TrainedRepo, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*tfship_command(), *command, "--model-dir", str(trained_repo.path)],
        capture_output=True, text=True, cwd=tmp_path, env=quiet_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--device cuda: this machine shows no NVIDIA GPU" in result.stderr
    assert "cuInit" not in result.stderr and "Traceback" not in result.stderr


@needs_no_gpu
def test_auto_serves_on_the_cpu_with_a_warning(
    trained_repo: TrainedRepo, start_server: Any
) -> None:
    server = start_server(trained_repo.path, "--device", "auto", "--workers", "1")
    server.wait_ready()
    row = {"instances": [[[[0.0]] * 8] * 8]}
    assert server.post("/v1/models/digits:predict", row).status == 200
    assert "--device auto: this machine shows no NVIDIA GPU" in server.log()


def test_on_a_gpu_one_worker_several_http_threads_and_batching_are_the_defaults(
    tmp_path: Path,
) -> None:
    from service.cli import GPU_HTTP_THREADS, gpu_settings
    from service.models.model_config import (
        GPU_BATCHING,
        BatchingConfig,
        load_model_config,
    )
    from service.models.model_config import discover as discover_models
    from service.settings import ServiceSettings

    (tmp_path / "digits" / "1").mkdir(parents=True)
    env = {"TFSHIP_MODEL_DIR": str(tmp_path)}
    on_gpu = gpu_settings(ServiceSettings.from_env(env), env)
    assert (on_gpu.device, on_gpu.workers, on_gpu.threads) == ("cuda", 1, GPU_HTTP_THREADS)
    assert [spec.batching for spec in discover_models(on_gpu)] == [GPU_BATCHING]
    # What the operator set stays; a model's own batching replaces the default.
    env |= {"TFSHIP_WORKERS": "3", "TFSHIP_THREADS": "2"}
    kept = gpu_settings(ServiceSettings.from_env(env), env)
    assert (kept.workers, kept.threads) == (3, 2)
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  - name: digits\n    batching: {max_batch_size: 1}\n")
    (spec,) = load_model_config(config, on_gpu)
    assert spec.batching == BatchingConfig(max_batch_size=1)
    # On the CPU nothing changes.
    assert [spec.batching for spec in discover_models(ServiceSettings.from_env(env))] == [None]
