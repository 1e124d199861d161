"""The dataplane on its own, in process: the call envelope and the model operations that
every front door uses, on a real registry serving a real ONNX model (y = x . w + b)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from onnx_models import linear_prediction, publish_linear_regression
from prometheus_client import REGISTRY

from service.auth import ApiKeys
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from service.models.registry import Registry
from service.settings import ServiceSettings

ROWS = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], np.float32)


def _plane(tmp_path: Path, **settings: object) -> DataPlane:
    publish_linear_regression(tmp_path / "repo")
    config = ServiceSettings(model_dir=tmp_path / "repo", poll_seconds=0, **settings)  # type: ignore[arg-type]
    registry = Registry(config)
    registry.poll()
    keys = None
    if config.api_keys_file is not None:
        keys = ApiKeys(config.api_keys_file, config.api_key_header, frozenset(config.auth_exempt))
    return DataPlane(registry, config, keys)


def _requests(model: str, protocol: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "tfship_requests_total",
        {"model": model, "version": "1" if model else "", "protocol": protocol, "api": "predict",
         "status": status},
    )  # fmt: skip
    return value or 0.0


def test_a_call_is_labelled_held_answered_and_logged(tmp_path: Path) -> None:
    plane = _plane(tmp_path)
    before = _requests("linear", "test", "200")
    call = plane.begin("test", "predict", "client-id-7")
    assert call.request_id == "client-id-7"
    with plane.hold(call, "linear") as model:
        assert (call.model, call.version) == ("linear", "1")
        assert model.signature.input_names == ["features"] and model.task == "regression"
        outputs = plane.predict(model, {"features": ROWS})
        assert plane.regress(model, {"features": ROWS}) == pytest.approx(linear_prediction(ROWS))
    np.testing.assert_allclose(outputs["value"][:, 0], linear_prediction(ROWS), rtol=1e-6)
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("tfship.access")
    access.addHandler(collect)  # a handler of its own: the line goes through logging
    level = access.level
    access.setLevel(logging.INFO)
    try:
        plane.finish(call, 200, method="POST", path="/x", remote="127.0.0.1", grpc_code="OK")
    finally:
        access.removeHandler(collect)
        access.setLevel(level)
    assert _requests("linear", "test", "200") == before + 1
    (line,) = records
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["status"] == 200 and fields["grpc_code"] == "OK"
    assert (fields["model"], fields["version"], fields["api"]) == ("linear", "1", "predict")


def test_made_up_names_never_become_labels(tmp_path: Path) -> None:
    plane = _plane(tmp_path)
    call = plane.begin("test", "predict", "not a sane id!")
    assert call.request_id != "not a sane id!" and len(call.request_id) == 32
    with pytest.raises(NotFound, match="model 'nope' not found"), plane.hold(call, "nope"):
        pass
    assert call.model == ""  # counted under no model, so label values stay bounded
    with pytest.raises(NotFound, match="version 9 of model 'linear' is not served"):
        plane.statuses(call, "linear", 9)


def test_task_and_policy_refusals_are_the_dataplanes(tmp_path: Path) -> None:
    plane = _plane(tmp_path)
    call = plane.begin("test", "predict", "")
    with plane.hold(call, "linear") as model:
        with pytest.raises(InvalidArgument, match="is a regression model; classify needs"):
            plane.classify(model, {"features": ROWS})
        bad = ROWS.copy()
        bad[1, 2] = np.inf
        with pytest.raises(InvalidArgument, match=r"NaN and Infinity .*NON_FINITE=reject"):
            plane.predict(model, {"features": bad})
    allowing = _plane(tmp_path / "allow", non_finite="allow")
    with allowing.hold(allowing.begin("test", "predict", ""), "linear") as model:
        outputs = allowing.predict(model, {"features": bad})
    assert np.isinf(outputs["value"][1, 0]) and np.isfinite(outputs["value"][0, 0])


def test_keys_are_checked_per_model(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("other-models-key-0123456789 name=ops models=other\n")
    plane = _plane(tmp_path, api_keys_file=keys)
    call = plane.begin("test", "predict", "")
    with pytest.raises(Unauthenticated, match="an API key is required"):
        plane.authenticate(call, {})
    plane.authenticate(call, {"Authorization": "Bearer other-models-key-0123456789"})
    assert call.client is not None and call.client.name == "ops"
    # Authenticated without a model (gRPC knows it later): the hold refuses the model.
    with (
        pytest.raises(PermissionDenied, match="may not use model 'linear'"),
        plane.hold(call, "linear"),
    ):
        pass
    assert plane.checks_keys() and not plane.checks_keys("health")
