"""Which device runs a model: ``--device cpu|cuda|auto`` (``TFSHIP_DEVICE``).

``cuda`` is a promise: without a usable GPU it is refused (exit 2), never silently run on
the CPU. ``auto`` takes the GPU when there is one and says so when it falls back. Nothing
here imports onnxruntime or TensorFlow: the callers pass what their runtime reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("cpu", "cuda", "auto")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


class DeviceError(RuntimeError):
    """``cuda`` asked for where none can be used; the message says why and what to do."""


def nvidia_gpus() -> int:
    """GPUs the NVIDIA driver exposes to this process (0 without a driver).

    The driver lists each GPU under /proc/driver/nvidia/gpus; a container sees the ones
    the NVIDIA runtime mounted. ``CUDA_VISIBLE_DEVICES`` empty or -1 hides them all.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return sum(1 for _ in gpus.iterdir())
    except OSError:
        return 0


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu" or "cuda": what runs
    warning: str = ""  # set when ``auto`` fell back


def choose(requested: str, cuda_runtime: bool, gpus: int, runtime: str) -> DeviceChoice:
    """Resolve a requested device against what the runtime and the machine offer.

    ``cuda_runtime``: the runtime was built with CUDA (onnxruntime-gpu's provider, a CUDA
    build of TensorFlow); ``gpus``: how many GPUs the driver shows.
    """
    if requested not in DEVICES:
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return DeviceChoice("cpu")
    missing = _why_no_cuda(cuda_runtime, gpus, runtime)
    if not missing:
        return DeviceChoice("cuda")
    if requested == "cuda":
        raise DeviceError(f"--device cuda: {missing}")
    return DeviceChoice("cpu", f"--device auto: {missing}; running on the CPU")


def _why_no_cuda(cuda_runtime: bool, gpus: int, runtime: str) -> str:
    if gpus == 0:
        return "this machine shows no NVIDIA GPU (no /proc/driver/nvidia/gpus)"
    if not cuda_runtime:
        if runtime == "onnx":
            return (
                f"onnxruntime has no {CUDA_PROVIDER} (the CPU wheel is installed): install "
                "requirements/serve-gpu.txt, or use the serve-gpu image"
            )
        return "this TensorFlow was built without CUDA: pip install 'tensorflow[and-cuda]'"
    return ""


def onnx_providers(device: str) -> list[str]:
    """onnxruntime's providers for a resolved device, CPU last as its own fallback for
    operators the CUDA provider lacks."""
    return [CUDA_PROVIDER, CPU_PROVIDER] if device == "cuda" else [CPU_PROVIDER]
