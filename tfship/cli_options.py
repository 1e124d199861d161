"""Command-line options more than one ``tfship`` command takes (no heavy imports: parsers
are built before any command runs)."""

from __future__ import annotations

import argparse
import os


def api_key_argument(parser: argparse.ArgumentParser, when: str = "") -> None:
    """``--api-key``, defaulting to ``TFSHIP_API_KEY``."""
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TFSHIP_API_KEY"),
        help=f"{when}API key for a server with keys on (env TFSHIP_API_KEY)",
    )
