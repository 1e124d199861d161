"""The methods a path really takes (RFC 9110): a 405's ``Allow`` header and ``OPTIONS``.

Flask's own answer counts every rule the path matches. For TF Serving's verb paths
(``/v1/models/m:predict``) that includes the model status route's GET, which answers them
400 ("Malformed request", as TF Serving does): listed, a client would be told a method works
that never does.
"""

from __future__ import annotations

from flask import Flask

_VERBS = frozenset({"predict", "classify", "regress"})


def allowed_methods(app: Flask, path: str) -> list[str]:
    """Sorted, OPTIONS included; empty for a path no route takes."""
    methods = set(app.url_map.bind("").allowed_methods(path))
    last = path.rsplit("/", 1)[-1]
    if ":" in last and last.rsplit(":", 1)[1] in _VERBS:
        methods -= {"GET", "HEAD"}
    if methods:
        methods.add("OPTIONS")
    return sorted(methods)
