"""WSGI entry point for gunicorn: ``service.wsgi:app`` (settings from ``TFSHIP_*`` env)."""

from service.app import create_app

app = create_app()
