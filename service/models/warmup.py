"""Warm-up: run requests through a freshly loaded version before it is AVAILABLE.

The first run of a session allocates buffers and picks kernels; doing that here keeps it
out of the first client's latency. It also proves the artifact answers in the shapes its
signature declares: a version whose model and metadata disagree fails here, never in front
of a client.

The requests are TF Serving's when the version has them: ``assets.extra/
tf_serving_warmup_requests``, a TFRecord file of ``PredictionLog`` protos (predict, classify
or regress requests), each replayed once, as TF Serving does by default. Otherwise a few
synthetic requests (zeros) are built from the signature. A warm-up file that is corrupted,
or holds a request the model refuses, fails the version.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.errors import ServingError
from service.models.runtimes.base import Runtime, Signature
from tfship.repository import WARMUP_FILE

ROUNDS = 3
# TF Serving reads at most this many warm-up records.
MAX_RECORDS = 1000


def synthetic_inputs(signature: Signature, batch: int = 1) -> dict[str, np.ndarray]:
    return {
        spec.name: np.full(
            tuple(batch if d == -1 else d for d in spec.shape),
            "" if spec.dtype.kind == "O" else 0,
            dtype=spec.dtype,
        )
        for spec in signature.inputs
    }


def _check_outputs(signature: Signature, outputs: dict[str, np.ndarray], where: str) -> None:
    for spec in signature.outputs:
        if spec.name not in outputs:
            continue  # a warm-up request may filter outputs
        got = outputs[spec.name].shape
        if len(got) != len(spec.shape) or any(
            want not in (-1, have) for want, have in zip(spec.shape, got, strict=True)
        ):
            raise ValueError(
                f"warm-up{where}: output '{spec.name}' has shape {list(got)}, the signature "
                f"declares {list(spec.shape)}"
            )


def _replay(runtime: Runtime, path: Path, signature: Signature) -> int:
    # Imported here: the proto descriptors are only needed when a version ships the file.
    from service.codecs import tfserving_requests as messages
    from service.codecs.grpc_protos import message
    from service.codecs.tensor_checks import DeclaredLimits
    from service.models.tfrecord import read_records

    # The model's own file, trusted as its artifact is: no request limits apply to it.
    limits = DeclaredLimits()

    prediction_log = message("tensorflow.serving.PredictionLog")
    count = 0
    for index, record in enumerate(read_records(path, MAX_RECORDS)):
        where = f" ({WARMUP_FILE} record {index})"
        try:
            log = prediction_log.FromString(record)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ValueError(f"warm-up{where}: not a PredictionLog: {exc}") from None
        kind = log.WhichOneof("log_type")
        try:
            if kind == "predict_log":
                inputs, wanted = messages.predict_inputs(log.predict_log.request, signature, limits)
            elif kind in ("classify_log", "regress_log"):
                api = "classify" if kind == "classify_log" else "regress"
                inputs = messages.example_inputs(
                    getattr(log, kind).request, signature, api, limits
                )
                wanted = None
            else:
                raise ValueError(
                    f"warm-up{where}: {kind or 'empty'} requests are not supported "
                    "(predict_log, classify_log and regress_log are)"
                )
        except ServingError as exc:
            raise ValueError(f"warm-up{where}: {exc.message}") from None
        _check_outputs(signature, runtime.predict(inputs, wanted), where)
        count += 1
    if count == 0:
        raise ValueError(f"warm-up: {WARMUP_FILE} holds no request")
    return count


def warm_up(
    runtime: Runtime, folder: Path | None = None, signature: Signature | None = None
) -> tuple[int, str]:
    """Warm up; returns (requests run, what they were). Raises ValueError on failure.

    ``signature``: the runtime's with the other signature names requests may give
    (TF Serving's warm-up records name the signature they were recorded for)."""
    if folder is not None and (folder / WARMUP_FILE).is_file():
        replayed = _replay(runtime, folder / WARMUP_FILE, signature or runtime.signature)
        return replayed, f"requests from {WARMUP_FILE}"
    inputs = synthetic_inputs(runtime.signature)
    for _ in range(ROUNDS):
        _check_outputs(runtime.signature, runtime.predict(inputs), "")
    return ROUNDS, "synthetic requests"
