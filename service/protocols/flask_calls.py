"""The dataplane as a Flask view sees it: the app's plane and the request's call record.

``app.py``'s hooks begin and finish the call; views in between hold the model it names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g

from service.dataplane.plane import DataPlane
from service.models.model_view import ModelView, VersionStatus


def plane() -> DataPlane:
    return current_app.extensions["tfship.dataplane"]


@contextmanager
def hold(name: str, version: int | None = None, label: str | None = None) -> Iterator[ModelView]:
    with plane().hold(g.call, name, version, label) as model:
        yield model


def statuses(
    name: str, version: int | None = None, label: str | None = None
) -> list[VersionStatus]:
    return plane().statuses(g.call, name, version, label)
