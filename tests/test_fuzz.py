"""Fuzzing: schemathesis against /openapi.json on a real server, and hypothesis properties of
the request parsers (any input: a 2xx, or a 4xx with a message; never an exception)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BIN, Server, TrainedRepo, quiet_env
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.codecs.grpc_protos import message
from service.codecs.tensor_checks import DeclaredLimits
from service.codecs.tfserving_requests import predict_inputs
from service.errors import InvalidArgument
from service.models.runtimes.base import Signature, TensorSpec
from service.settings import ServiceSettings

# Enough requests for CI's bar (1,000) with margin; the seed makes a failure reproducible.
SCHEMATHESIS_EXAMPLES = 60
SCHEMATHESIS_SEED = 20261122


@pytest.fixture(scope="module")
def fuzz_server(trained_repo: TrainedRepo, start_server: Any, tmp_path_factory: Any) -> Server:
    config = tmp_path_factory.mktemp("fuzz") / "models.yaml"
    config.write_text(
        f"models:\n  - name: digits\n    base_path: {trained_repo.path / 'digits'}\n"
        "    labels: {stable: 1}\n"
    )
    server = start_server(trained_repo.path, "--workers", "2", "--model-config", str(config))
    server.wait_ready()
    return server


def test_schemathesis_with_every_check_finds_nothing(fuzz_server: Server, tmp_path: Path) -> None:
    """Every check: no 5xx, answers that fit the response schemas, and request schemas
    that match the server both ways (what they allow is answered, what they forbid is
    refused)."""
    settings_file = tmp_path / "schemathesis.toml"
    # Real names, so that generated bodies reach validation and the model, not a 404.
    settings_file.write_text(
        '[parameters]\n"path.name" = "digits"\n"path.version" = 1\n"path.label" = "stable"\n'
    )
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(settings_file),
            "run",
            f"{fuzz_server.url}/openapi.json",
            "--checks",
            "all",
            # The paths by version and by label take the same bodies as the model's own
            # (one version here): tested once, to keep the run short.
            "--exclude-path-regex",
            r"/(versions/[0-9]+|labels/[^/:]+)(:|/infer)",
            "--max-examples",
            str(SCHEMATHESIS_EXAMPLES),
            "--seed",
            str(SCHEMATHESIS_SEED),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        env={
            **quiet_env(),
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": str(Path(__file__).parent),
        },
        cwd=tmp_path,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts, output[-3000:]
    generated, passed = int(counts.group(1)), int(counts.group(2))
    assert generated >= 1000 and passed == generated, output[-3000:]
    assert " 500 " not in fuzz_server.log() and "unhandled error" not in fuzz_server.log()


# --- hypothesis: the parsers, in-process ---

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)
# Bodies shaped like the real ones, so the checks past the first few are reached too.
PREDICT = st.fixed_dictionaries(
    {},
    optional={
        "instances": JSON,
        "inputs": JSON,
        "signature_name": JSON,
        "top_k": JSON,
    },
)
TENSOR = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["pixels", "other"]) | st.text(max_size=4),
        "shape": st.lists(st.integers(-2, 70), max_size=5) | JSON,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "X"]),
    },
    optional={"data": JSON, "parameters": JSON},
)
INFER = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=2) | JSON},
    optional={"outputs": JSON, "id": JSON, "parameters": JSON},
)
EXAMPLES = st.fixed_dictionaries(
    {"examples": st.lists(st.dictionaries(st.sampled_from(["pixels", "x"]), JSON), max_size=3)},
    optional={"context": JSON, "top_k": JSON},
)


@pytest.fixture(scope="module")
def client(trained_repo: TrainedRepo) -> FlaskClient:
    app = create_app(ServiceSettings(model_dir=Path(trained_repo.path)), load_models=False)
    app.extensions["tfship.registry"].poll()
    return app.test_client()


def _answered_well(answer: Any) -> None:
    assert answer.status_code < 500, answer.data[:500]
    if answer.status_code >= 400:
        assert isinstance(answer.get_json()["error"], str)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=JSON | PREDICT)
def test_predict_parser(client: FlaskClient, body: Any) -> None:
    _answered_well(client.post("/v1/models/digits:predict", data=json.dumps(body)))


@FUZZ
@given(body=JSON | EXAMPLES, path=st.sampled_from([":classify", ":regress"]))
def test_classify_and_regress_parsers(client: FlaskClient, body: Any, path: str) -> None:
    _answered_well(client.post("/v1/models/digits" + path, data=json.dumps(body)))


@FUZZ
@given(body=JSON | INFER)
def test_v2_infer_parser(client: FlaskClient, body: Any) -> None:
    _answered_well(client.post("/v2/models/digits/infer", data=json.dumps(body)))


@FUZZ
@given(
    raw=st.binary(max_size=300),
    # Printable only: an HTTP client cannot send control characters in a header at all.
    header=st.none()
    | st.integers(-5, 400).map(str)
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5),
)
def test_v2_binary_framing(client: FlaskClient, raw: bytes, header: str | None) -> None:
    headers = {} if header is None else {"Inference-Header-Content-Length": header}
    _answered_well(client.post("/v2/models/digits/infer", data=raw, headers=headers))


SIGNATURE = Signature(
    "serving_default",
    (TensorSpec("pixels", np.dtype(np.float32), (-1, 8, 8, 1)),),
    (TensorSpec("probabilities", np.dtype(np.float32), (-1, 10)),),
)


@settings(max_examples=300, deadline=None)
@given(
    dtype=st.integers(0, 30),
    dims=st.lists(st.integers(-3, 12), max_size=5),
    content=st.binary(max_size=600),
    floats=st.lists(st.floats(width=32), max_size=70),
    signature_name=st.sampled_from(["", "serving_default", "other"]),
    output_filter=st.lists(st.sampled_from(["probabilities", "x"]), max_size=2),
)
def test_grpc_predict_parser(
    dtype: int,
    dims: list[int],
    content: bytes,
    floats: list[float],
    signature_name: str,
    output_filter: list[str],
) -> None:
    """Any PredictRequest: model inputs, or InvalidArgument; never another exception."""
    request = message("tensorflow.serving.PredictRequest")()
    request.model_spec.signature_name = signature_name
    request.output_filter.extend(output_filter)
    tensor = request.inputs["pixels"]
    tensor.dtype = dtype
    for size in dims:
        tensor.tensor_shape.dim.add().size = size
    if content:
        tensor.tensor_content = content
    else:
        tensor.float_val.extend(floats)
    try:
        inputs, _ = predict_inputs(request, SIGNATURE, DeclaredLimits(10_000, 2**24))
    except InvalidArgument as error:
        assert error.message
        return
    assert inputs["pixels"].dtype == np.float32
    assert inputs["pixels"].shape[1:] == (8, 8, 1)
    assert np.isfinite(inputs["pixels"]).all()
