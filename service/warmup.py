"""Warm-up: run requests through a freshly loaded version before it is AVAILABLE.

The first run of a session allocates buffers and picks kernels; doing that here keeps it
out of the first client's latency. It also proves the artifact answers in the shapes its
signature declares: a version whose model and metadata disagree fails here, never in front
of a client.
"""

from __future__ import annotations

import numpy as np

from service.runtimes.base import Runtime, Signature

ROUNDS = 3


def synthetic_inputs(signature: Signature, batch: int = 1) -> dict[str, np.ndarray]:
    return {
        spec.name: np.zeros(tuple(batch if d == -1 else d for d in spec.shape), dtype=spec.dtype)
        for spec in signature.inputs
    }


def warm_up(runtime: Runtime, rounds: int = ROUNDS) -> int:
    """Run ``rounds`` synthetic requests; raises ValueError if an answer has the wrong shape."""
    signature = runtime.signature
    inputs = synthetic_inputs(signature)
    for _ in range(rounds):
        outputs = runtime.predict(inputs)
        for spec in signature.outputs:
            got = outputs[spec.name].shape
            if len(got) != len(spec.shape) or any(
                want not in (-1, have) for want, have in zip(spec.shape, got, strict=True)
            ):
                raise ValueError(
                    f"warm-up: output '{spec.name}' has shape {list(got)}, the signature "
                    f"declares {list(spec.shape)}"
                )
    return rounds
