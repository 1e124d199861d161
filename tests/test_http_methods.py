"""RFC 9110 on the app's routes: a 405 names the allowed methods in ``Allow``, and OPTIONS
lists the methods a path really takes (not GET on TF Serving's verb paths, which GET
answers 400), without touching a model or counting as a call of its API."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from service.app import create_app
from service.settings import ServiceSettings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder: Path = tmp_path_factory.mktemp("empty-repo")
    return create_app(ServiceSettings(model_dir=folder), load_models=False)


@pytest.mark.parametrize(
    "path, allowed",
    [
        ("/v1/models/digits:predict", "OPTIONS, POST"),
        ("/v1/models/digits/versions/2:classify", "OPTIONS, POST"),
        ("/v1/models/digits/labels/stable:regress", "OPTIONS, POST"),
        ("/v1/models/digits", "GET, HEAD, OPTIONS"),
        ("/v2/models/digits/infer", "OPTIONS, POST"),
        ("/v2/repository/index", "OPTIONS, POST"),
        ("/metrics", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_and_405_name_the_same_methods(app: Flask, path: str, allowed: str) -> None:
    client = app.test_client()
    options = client.options(path)
    assert options.status_code == 204
    assert options.headers["Allow"] == allowed
    refused = client.delete(path)
    assert refused.status_code == 405
    assert refused.headers["Allow"] == allowed
    assert refused.get_json()["error"] == (
        f"method DELETE is not allowed on {path} (allowed: {allowed})"
    )


def test_options_on_an_unknown_path_is_a_404(app: Flask) -> None:
    assert app.test_client().options("/v3/anything").status_code == 404


def test_options_is_not_counted_as_a_call_of_the_api(app: Flask) -> None:
    client = app.test_client()
    client.options("/v1/models/digits:predict")
    metrics = client.get("/metrics").get_data(as_text=True).splitlines()
    # (Other tests in this process count real predicts: only an OPTIONS answers 204.)
    assert not [line for line in metrics if 'api="predict"' in line and 'status="204"' in line]
