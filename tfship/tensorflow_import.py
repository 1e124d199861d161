"""Import TensorFlow once, on the chosen device, without its start-up noise on a CPU machine.

TensorFlow's C++ side writes to file descriptor 2 while it loads, before any log level
applies (``TF_CPP_MIN_LOG_LEVEL`` does not reach these lines): the absl preamble and the
oneDNN notice, once per shared library (so twice), and on a machine without a GPU
"Could not find cuda drivers" and ``E0000 ... failed call to cuInit``, which read as a
failure to a newcomer. The import and the device set-up run with fd 2 sent to a file; the
lines come back afterwards, less those known to be noise. Where a GPU is present the CUDA
lines are kept: there they mean something.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from tfship.devices import DeviceChoice, DeviceError, choose, nvidia_gpus

# Start-up lines that say nothing actionable anywhere.
_ALWAYS_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\] oneDNN custom operations are on"
    r"|cpu_feature_guard\.cc.*This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)
# CUDA lines that only mean "there is no GPU here", noise where that is true.
_NO_GPU_NOISE = re.compile(
    r"Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
)


def is_noise(line: str, gpu_present: bool) -> bool:
    if _ALWAYS_NOISE.search(line):
        return True
    return not gpu_present and bool(_NO_GPU_NOISE.search(line))


@contextmanager
def native_stderr_filtered(drop: Callable[[str], bool]) -> Iterator[None]:
    """Run the body with fd 2 captured; afterwards write back the lines ``drop`` keeps.

    On an exception every captured line comes back, so nothing that explains it is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if failed or not drop(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


class _RetracingNoise(logging.Filter):
    """tfship builds several models in one process on purpose (cross-validation folds,
    permutation importance predicts), each tracing its predict function once; TensorFlow
    counts those across models and warns of "retracing" with advice that does not apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@cache
def _load() -> tuple[Any, list[Any], bool]:
    """TensorFlow, its GPUs and whether it was built with CUDA: once per process (the
    SavedModel runtime asks at every version load; the import and the capture of fd 2 need
    happen only the first time)."""
    gpu_present = nvidia_gpus() > 0
    with native_stderr_filtered(lambda line: is_noise(line, gpu_present)):
        import tensorflow as tf

        # Listing the GPUs is what calls cuInit: inside the window, so its error on a CPU
        # machine is caught with the rest.
        gpus = tf.config.list_physical_devices("GPU")
        built_with_cuda = tf.test.is_built_with_cuda()
    tf.get_logger().addFilter(_RetracingNoise())
    return tf, gpus, built_with_cuda


def import_tensorflow(device: str) -> tuple[Any, DeviceChoice]:
    """TensorFlow, with its GPUs hidden unless ``device`` resolves to ``cuda``.

    Must run before TensorFlow's first op (device visibility is fixed then). Raises
    DeviceError for ``cuda`` without a usable GPU.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf, gpus, built_with_cuda = _load()
    # Refused out here: the refusal explains itself, the window's lines are noise to it.
    chosen = choose(device, built_with_cuda, len(gpus), "tensorflow")
    if chosen.device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as exc:  # TensorFlow already ran an op in this process
            raise DeviceError(f"cannot hide the GPUs any more: {exc}") from None
    return tf, chosen
