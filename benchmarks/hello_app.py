"""The baseline: the smallest Flask app, served by gunicorn with tfship's worker settings.

POST to any path reads the body (as any server must) and answers a fixed small JSON: the
ceiling a Flask + gunicorn service can reach on this machine.
"""

from flask import Flask, request

app = Flask(__name__)


@app.get("/readyz")
def ready() -> str:
    return "ok"


@app.post("/<path:anything>")
def answer(anything: str) -> tuple[bytes, int, dict[str, str]]:
    request.get_data()
    return b'{"predictions": [[1.0]]}', 200, {"Content-Type": "application/json"}
