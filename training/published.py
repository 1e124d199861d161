"""A published version named in a config (init_from, distill.teacher): found, or refused
with the config key that named it, before anything is trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfship.repository import RepositoryError, list_versions, read_metadata
from tfship.version_metadata import VersionMetadata
from training.errors import ConfigError


@dataclass(frozen=True)
class Published:
    name: str
    version: int
    folder: Path
    metadata: VersionMetadata

    def checksums(self) -> dict[str, str]:
        """Every artifact file's sha256, as ``artifact/file``: the lineage record."""
        return {
            f"{artifact}/{file}": digest
            for artifact, entry in self.metadata.artifacts.items()
            for file, digest in entry.get("files", {}).items()
        }


def find_published(model_dir: Path, name: str, version: int, key: str) -> Published:
    """``version`` 0 is the newest; ``key``: the config key, for the error message."""
    versions = list_versions(model_dir / name)
    if not versions:
        raise ConfigError(f"{key}.model: no published version of {name!r} in {model_dir}")
    chosen = version or versions[-1]
    if chosen not in versions:
        raise ConfigError(
            f"{key}.version: {name!r} has no version {chosen} in {model_dir} "
            f"(it has {', '.join(map(str, versions))})"
        )
    folder = model_dir / name / str(chosen)
    try:
        return Published(name, chosen, folder, read_metadata(folder))
    except RepositoryError as exc:
        raise ConfigError(f"{key}: {exc}") from None
