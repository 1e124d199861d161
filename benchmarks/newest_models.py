"""Each model's newest ``model.onnx`` in a tfship repository: what every server the serving
benchmark compares loads. Standard library only, since KServe's and MLServer's
environments import it too."""

from __future__ import annotations

from pathlib import Path


def newest_onnx_files(repo: Path) -> dict[str, Path]:
    """Model name -> its highest numbered version's model.onnx, models in name order."""
    found = {}
    for folder in sorted(repo.iterdir()):
        versions = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
        if versions:
            found[folder.name] = folder / str(versions[-1]) / "model.onnx"
    return found
