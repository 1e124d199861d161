"""The model repository contract, shared by training (writer) and service (reader).

Standard library only: the server's ONNX path imports this, and it must stay light.

Layout (TF Serving's, so TF Serving and Triton can serve the same folder)::

    <repo>/<name>/<version>/        version: positive integer, newest = highest
        saved_model.pb, variables/  SavedModel at the version root
        model.onnx                  float ONNX
        metadata.json               this contract (see METADATA_FILE)

A version is written into a hidden temporary folder beside the versions and renamed into
place, so a reader never sees half a version.

A version folder without metadata.json is a *foreign* version (TF Serving's or Triton's
layout: ``saved_model.pb`` or ``model.onnx`` alone): served, but unverified, since nothing
records what its files should hash to. Version folders are read as TF Serving reads them:
``00000123`` is version 123.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tfship.processes import pid_alive
from tfship.version_metadata import MetadataError, VersionMetadata

METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
SAVED_MODEL_FILE = "saved_model.pb"
# TF Serving's warm-up requests, inside the SavedModel (training writes it, the server
# replays it before a version is AVAILABLE).
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
TEMP_PREFIX = ".tmp-publish-"
# Files TF Serving or the SavedModel format keep at the version root that belong to the
# SavedModel artifact (everything else at the root is listed by its own artifact).
SAVED_MODEL_PARTS = ("saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Stale temp folders from another host cannot be checked by pid; after this long they are
# assumed abandoned.
_FOREIGN_TEMP_MAX_AGE_S = 6 * 3600


class RepositoryError(Exception):
    """The repository or a version in it breaks the contract.

    ``code`` is the status a version that fails to load this way reports (TF Serving's
    error codes): the subclasses below say which problem it is.
    """

    code = "FAILED_PRECONDITION"


class IntegrityError(RepositoryError):
    """A file differs from what was published: a checksum mismatch, a listed file missing,
    a torn metadata.json. The only load failure reported as DATA_LOSS."""

    code = "DATA_LOSS"


class ArtifactMissing(RepositoryError):
    """The version holds no artifact the chosen runtime can load."""

    code = "NOT_FOUND"


class OutsideRepository(RepositoryError):
    code = "PERMISSION_DENIED"


_VARIANT_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


def is_valid_variant(variant: str) -> bool:
    return bool(_VARIANT_RE.match(variant))


def onnx_file(variant: str = "") -> str:
    """``model.onnx``, or ``model.<variant>.onnx`` for a variant such as ``int8``."""
    return f"model.{variant}.onnx" if variant else ONNX_FILE


def artifact_key(artifact: str, variant: str = "") -> str:
    """The ``artifacts`` entry of metadata.json: ``onnx``, or ``onnx.<variant>``."""
    return f"{artifact}.{variant}" if variant else artifact


def is_valid_model_name(name: str) -> bool:
    """Model names become path components and metric labels: keep them boring."""
    return bool(_NAME_RE.match(name)) and name not in {".", ".."}


_VERSION_DIR_RE = re.compile(r"^[0-9]{1,18}$")


def version_folders(model_root: Path) -> dict[int, Path]:
    """Published versions of one model and their folders, ascending by version.

    A folder name of digits is a version, leading zeros allowed (TF Serving's test models
    use ``00000123``). Should two names give the same number (``123`` and ``0123``), the
    one without leading zeros is taken, else the first in name order, so every reader
    picks the same folder. Temp folders and stray files are ignored.
    """
    if not model_root.is_dir():
        return {}
    found: dict[int, Path] = {}
    for entry in sorted(model_root.iterdir()):
        if not (_VERSION_DIR_RE.match(entry.name) and entry.is_dir()):
            continue
        version = int(entry.name)
        if version < 1:
            continue
        if version not in found or entry.name == str(version):
            found[version] = entry
    return dict(sorted(found.items()))


def list_versions(model_root: Path) -> list[int]:
    """Published versions of one model, ascending."""
    return list(version_folders(model_root))


def version_folder(model_root: Path, version: int) -> Path:
    """The folder of one version (``<root>/<version>`` when it does not exist yet)."""
    return version_folders(model_root).get(version, model_root / str(version))


def list_models(repo: Path) -> dict[str, list[int]]:
    """Every model folder under the repository with its published versions."""
    if not repo.is_dir():
        raise _no_repository(repo)
    models = {}
    for entry in sorted(repo.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and is_valid_model_name(entry.name):
            models[entry.name] = list_versions(entry)
    if not repo.is_dir():
        # Gone while being listed: its folders read as empty, which would unload them all.
        raise _no_repository(repo)
    return models


def _no_repository(repo: Path) -> RepositoryError:
    return RepositoryError(f"model repository {repo} does not exist or is not a folder")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_files(root: Path, relative_paths: Iterable[str]) -> dict[str, str]:
    return {rel: sha256_file(root / rel) for rel in sorted(relative_paths)}


def files_under(root: Path, parts: Iterable[str]) -> list[str]:
    """Relative paths of every file at or below the given top-level entries of root."""
    found = []
    for part in parts:
        path = root / part
        if path.is_file():
            found.append(part)
        elif path.is_dir():
            found.extend(
                p.relative_to(root).as_posix() for p in sorted(path.rglob("*")) if p.is_file()
            )
    return found


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: int
    path: Path


def check_inside(path: Path, root: Path) -> None:
    """Refuse a path that leads (through a symlink or ``..``) out of ``root``.

    A server reads only its repository: a version folder, or a file of one, that points
    elsewhere on the machine is refused, whatever it points at.
    """
    real, real_root = path.resolve(), root.resolve()
    if not real.is_relative_to(real_root):
        raise OutsideRepository(f"{path} leads to {real}, outside {real_root}; refusing to read it")


def has_metadata(version_dir: Path) -> bool:
    """Whether tfship published this version (it has a metadata.json, readable or not)."""
    return os.path.lexists(version_dir / METADATA_FILE)


def foreign_artifacts(version_dir: Path) -> list[str]:
    """The artifacts a version without metadata.json holds: ``savedmodel``, ``onnx``."""
    found = []
    if (version_dir / SAVED_MODEL_FILE).is_file():
        found.append("savedmodel")
    if (version_dir / ONNX_FILE).is_file():
        found.append("onnx")
    return found


def read_metadata(version_dir: Path) -> VersionMetadata:
    path = version_dir / METADATA_FILE
    check_inside(path, version_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RepositoryError(f"{path} is missing") from exc
    except ValueError as exc:  # torn or truncated: not what was published
        raise IntegrityError(f"{path} cannot be read: {exc}") from exc
    except OSError as exc:
        raise RepositoryError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise RepositoryError(f"{path} is not a JSON object")
    try:
        return VersionMetadata.from_json(data)
    except MetadataError as exc:
        raise RepositoryError(f"{path}: {exc}") from None


def verify_artifact(version_dir: Path, metadata: VersionMetadata, artifact: str) -> None:
    """Check every file of one artifact against the sha256 recorded at publish time.

    Only the artifact about to be loaded is hashed: a server using ONNX need not read the
    SavedModel's variables, which can be large.
    """
    if artifact not in metadata.artifacts:
        known = ", ".join(sorted(metadata.artifacts)) or "none"
        raise ArtifactMissing(
            f"{version_dir} has no '{artifact}' artifact in {METADATA_FILE} (it has: {known})"
        )
    for rel, want in metadata.files(artifact).items():
        path = version_dir / rel
        check_inside(path, version_dir)
        if not path.is_file():
            raise IntegrityError(f"{path} is listed in {METADATA_FILE} but missing")
        got = sha256_file(path)
        if got != want:
            raise IntegrityError(
                f"{path} is corrupted: sha256 {got[:12]}… does not match {want[:12]}… "
                f"recorded in {METADATA_FILE}"
            )


def write_metadata(version_dir: Path, metadata: VersionMetadata) -> None:
    text = json.dumps(metadata.to_json(), indent=2, sort_keys=False)
    (version_dir / METADATA_FILE).write_text(text + "\n")


def _fsync_tree(root: Path) -> None:
    # A rename is only as durable as the data behind it: flush file contents first, so a
    # crash right after publish cannot leave a version whose files are empty.
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def new_temp_dir(model_root: Path) -> Path:
    """A hidden staging folder beside the versions (same filesystem, so rename is atomic)."""
    model_root.mkdir(parents=True, exist_ok=True)
    token = os.urandom(4).hex()
    path = model_root / f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{token}"
    path.mkdir()
    return path


def publish(
    staging: Path,
    model_root: Path,
    finalize: Callable[[Path, int], None],
    version: int | None = None,
) -> VersionRef:
    """Move a fully written staging folder into place as the next version, or as
    ``version`` when given (RepositoryError if that version exists).

    ``finalize(staging, version)`` runs once the version number is chosen (it writes
    metadata.json, which records the version). If another writer takes the same number
    first, the number is chosen again (or, for a given version, the publish fails).
    """
    for _ in range(100):
        chosen = version or (list_versions(model_root) or [0])[-1] + 1
        target = model_root / str(chosen)
        if version is not None and chosen in version_folders(model_root):
            raise RepositoryError(f"version {chosen} exists: {version_folder(model_root, chosen)}")
        if target.exists():
            continue
        finalize(staging, chosen)
        _fsync_tree(staging)
        try:
            os.rename(staging, target)
        except OSError:
            # Lost a race with another publisher (target now exists and is not empty).
            if target.exists() and version is None:
                continue
            if target.exists():
                raise RepositoryError(
                    f"version {chosen} was published meanwhile: {target}"
                ) from None
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(model_root, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
        return VersionRef(model_root.name, chosen, target)
    raise RepositoryError(f"could not choose a free version number under {model_root}")


def remove_stale_temp_dirs(model_root: Path) -> list[Path]:
    """Delete staging folders left by publishers that died; returns what was removed."""
    removed: list[Path] = []
    if not model_root.is_dir():
        return removed
    host = socket.gethostname()
    for entry in model_root.iterdir():
        if not (entry.is_dir() and entry.name.startswith(TEMP_PREFIX)):
            continue
        rest = entry.name[len(TEMP_PREFIX) :]
        try:
            owner_host, pid_text, _token = rest.rsplit("-", 2)
            pid = int(pid_text)
        except ValueError:
            continue
        if owner_host == host:
            stale = pid != os.getpid() and not pid_alive(pid)
        else:
            stale = time.time() - entry.stat().st_mtime > _FOREIGN_TEMP_MAX_AGE_S
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
