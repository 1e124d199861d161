"""Every JSON field of every request kind given every JSON type: a 2xx, or a 4xx whose body
names the problem; never a 5xx. In-process, on the app (fast path included), against the
digits model and a two-input model with a string input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TrainedRepo
from flask.testing import FlaskClient
from foreign_models import write_tagged_onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_models import publish_linear_regression

from service.app import create_app
from service.settings import ServiceSettings

ROW = [[[0.0]] * 8] * 8
# One of each JSON type, and the edge values of numbers and containers.
VALUES: list[Any] = [None, True, False, 0, -1, 7, 1.5, 2**70, "", "x", [], [1], [[]], {}, {"a": 1}]
# Valid requests of each kind, with every optional field there, so each can be replaced.
TEMPLATES: dict[str, tuple[str, Any]] = {
    "predict rows": (
        "/v1/models/digits:predict",
        {"signature_name": "serving_default", "instances": [ROW]},
    ),
    "predict columns": (
        "/v1/models/tagged:predict",
        {"inputs": {"plan": [["basic"]], "monthly_price": [[9.5]]}},
    ),
    "predict named rows": (
        "/v1/models/tagged:predict",
        {"instances": [{"plan": ["pro"], "monthly_price": [1.0]}]},
    ),
    "classify": (
        "/v1/models/digits:classify",
        {"signature_name": "", "examples": [{"pixels": [0.0] * 64}], "context": {}, "top_k": 2},
    ),
    "regress": (
        "/v1/models/linear:regress",
        {"examples": [{"features": [1.0, 2.0, 3.0]}], "context": {"unused": 1}},
    ),
    "infer": (
        "/v2/models/digits/infer",
        {
            "id": "r1",
            "parameters": {"binary_data_output": False},
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [1, 8, 8, 1],
                    "parameters": {},
                    "data": [0.0] * 64,
                }
            ],
            "outputs": [
                {"name": "probabilities", "parameters": {"binary_data": False, "classification": 2}}
            ],
        },
    ),
    "infer strings": (
        "/v2/models/tagged/infer",
        {
            "inputs": [
                {"name": "plan", "datatype": "BYTES", "shape": [1, 1], "data": ["basic"]},
                {"name": "monthly_price", "datatype": "FP32", "shape": [1, 1], "data": [2.0]},
            ]
        },
    ),
    "repository index": ("/v2/repository/index", {"ready": True}),
}


def paths_of(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value: each key of each object, each item of each list."""
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):  # the first two of long lists
            yield from paths_of(item, (*at, index))


def replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = json.loads(json.dumps(value))
    holder = copy
    for step in at[:-1]:
        holder = holder[step]
    holder[at[-1]] = new
    return copy


@pytest.fixture(scope="module")
def client(trained_repo: TrainedRepo, tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    repo = tmp_path_factory.mktemp("sweep") / "repo"
    shutil.copytree(trained_repo.path, repo)
    write_tagged_onnx(repo / "tagged" / "1" / "model.onnx")
    publish_linear_regression(repo)
    app = create_app(ServiceSettings(model_dir=Path(repo)), load_models=False)
    app.extensions["tfship.registry"].poll()
    return app.test_client()


def answered_well(client: FlaskClient, path: str, body: Any) -> int:
    answer = client.post(path, data=json.dumps(body), content_type="application/json")
    assert answer.status_code < 500, (path, body, answer.data[:300])
    if answer.status_code >= 400:
        error = answer.get_json()["error"]
        assert isinstance(error, str) and error, (path, body)
    return answer.status_code


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_field_given_every_json_type(client: FlaskClient, kind: str) -> None:
    path, template = TEMPLATES[kind]
    assert answered_well(client, path, template) == 200, "the template itself must be valid"
    statuses = set()
    for at in paths_of(template):
        for value in VALUES:
            statuses.add(answered_well(client, path, replaced(template, at, value)))
    assert 400 in statuses  # the sweep reached validation, not only the router


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=20,
)
PLACES = [
    (path, template, at) for path, template in TEMPLATES.values() for at in paths_of(template)
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(place=st.sampled_from(PLACES), value=JSON)
def test_any_json_value_in_any_field(client: FlaskClient, place: Any, value: Any) -> None:
    path, template, at = place
    answered_well(client, path, replaced(template, at, value))
