"""The baseline: the smallest Flask app, served by gunicorn with tfship's worker settings."""

from flask import Flask

app = Flask(__name__)


@app.get("/readyz")
def ready() -> str:
    return "ok"
