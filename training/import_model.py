"""``tfship import``: publish a model tfship did not train as a full, verified version.

SOURCE is a ``.keras`` (or legacy ``.h5``) file, a SavedModel folder, or an ONNX file. The
version gets what a trained one has, where the source allows: the SavedModel at the root
(Keras and SavedModel sources), ONNX converted from it and checked against TensorFlow,
warm-up requests, sha256 of every file, and a ``metadata.json`` that records the source, its
hashes, and what is unknown (test metrics, training data). It is staged in a hidden folder
and renamed into place, so a failure at any step publishes nothing.
"""

from __future__ import annotations

import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tfship.repository import (
    ONNX_FILE,
    SAVED_MODEL_FILE,
    SAVED_MODEL_PARTS,
    WARMUP_FILE,
    RepositoryError,
    VersionRef,
    digest_files,
    files_under,
    is_valid_model_name,
    new_temp_dir,
    publish,
    remove_stale_temp_dirs,
    sha256_file,
    write_metadata,
)
from tfship.version_metadata import VersionMetadata
from training import stages
from training.errors import ExportError, ImportRefused
from training.import_request import ImportRequest, Staged, say
from training.import_rows import count_rows, sample_rows
from training.import_sources import source_kind, stage_onnx, stage_saved_model


def check_request(request: ImportRequest) -> str:
    """Everything that can be refused before TensorFlow starts; returns the source kind."""
    if not is_valid_model_name(request.name):
        raise ImportRefused(
            f"--name {request.name!r}: use letters, digits, '_', '.', '-' (a path component)"
        )
    if request.version is not None and request.version < 1:
        raise ImportRefused(f"--version {request.version}: versions are positive integers")
    for flag, path in (
        ("--calibration", request.calibration),
        ("--profile-data", request.profile_data),
        ("--labels", request.labels_file),
    ):
        if path is not None and not path.is_file():
            raise ImportRefused(f"{flag} {path} does not exist or is not a file")
    kind = source_kind(request.source)
    from training.quantize import VARIANTS

    unknown = [v for v in request.quantize if v not in VARIANTS]
    if unknown:
        raise ImportRefused(f"--quantize {unknown[0]}: one of {', '.join(VARIANTS)}")
    if request.quantize and kind != "onnx" and not request.onnx:
        raise ImportRefused("--quantize makes variants of the ONNX file: drop --no-onnx")
    return kind


def import_model(request: ImportRequest) -> VersionRef:
    kind = check_request(request)
    class_names = _read_labels(request.labels_file)
    model_root = request.model_dir / request.name
    remove_stale_temp_dirs(model_root)
    staging = new_temp_dir(model_root)
    try:
        say(1, f"read {request.source} ({kind})")
        staged = Staged(kind)
        if kind == "onnx":
            stage_onnx(request, staging, staged)
        else:
            stage_saved_model(request, staging, staged, class_names)
        rows = sample_rows(request, staged.inputs)
        if kind != "onnx" and request.onnx:
            _convert_and_check(request, staging, staged, rows)
        _check_labels(staged, class_names)
        if request.warmup_rows:
            say(4, f"warm-up requests ({min(request.warmup_rows, count_rows(rows))} rows)")
            _write_warmup(request, staging, staged, rows)
        if request.quantize:
            _quantize(request, staging, staged, rows, class_names)
        say(5, "checksums, metadata.json, publish")
        _describe_artifacts(staging, staged)
        metadata = _metadata(
            request, staged, class_names, kind, _profile(request, staging, staged, class_names)
        )
        created = datetime.now(UTC).isoformat(timespec="seconds")

        published: list[VersionMetadata] = []

        def finalize(folder: Path, version: int) -> None:
            published[:] = [metadata.published(version, created)]
            write_metadata(folder, published[0])

        ref = publish(staging, model_root, finalize, request.version)
        for path in stages.write_triton_files(model_root, published[0]):
            say(5, f"Triton: {path}")
    except RepositoryError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImportRefused(str(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ref


def _check_labels(staged: Staged, class_names: list[str]) -> None:
    """Class names must match the one output's last axis (the scores per class)."""
    if not class_names:
        return
    shape = staged.outputs[0].shape if len(staged.outputs) == 1 else ()
    if len(shape) != 2 or shape[-1] != len(class_names):
        shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in staged.outputs)
        raise ImportRefused(
            f"--labels gives {len(class_names)} classes; a classifier has one output of shape "
            f"[-1, {len(class_names)}] (this model: {shapes})"
        )


def _read_labels(path: Path | None) -> list[str]:
    if path is None:
        return []
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names) or not names:
        raise ImportRefused(f"--labels {path}: needs one distinct class name per line")
    return names


# --- ONNX, warm-up, artifacts ---


def _convert_and_check(
    request: ImportRequest, staging: Path, staged: Staged, rows: dict[str, np.ndarray]
) -> None:
    from training import export

    say(3, f"ONNX (tf2onnx, opset {request.opset})")
    export.convert_to_onnx(staging, request.opset)
    say(3, f"parity: ONNX Runtime vs TensorFlow on {count_rows(rows)} rows")
    diffs = []
    for output in staged.outputs:
        tf_out = export.predict_saved_model(staging, rows, output.name)
        onnx_out = export.predict_onnx(staging / ONNX_FILE, rows, output.name)
        if tf_out.shape != onnx_out.shape:
            raise ExportError(
                f"ONNX output '{output.name}' has shape {list(onnx_out.shape)}, TensorFlow's "
                f"{list(tf_out.shape)}; nothing was published"
            )
        diffs.append(float(np.abs(tf_out.astype(np.float64) - onnx_out).max(initial=0.0)))
    max_diff = max(diffs)
    if not max_diff <= request.parity_tolerance:
        raise ExportError(
            f"ONNX output differs from TensorFlow by {max_diff:.3g} (tolerance "
            f"{request.parity_tolerance:g}); nothing was published"
        )
    staged.parity = {
        "max_abs_diff": max_diff,
        "tolerance": request.parity_tolerance,
        "rows": count_rows(rows),
        "data": (
            f"--calibration {request.calibration}"
            if request.calibration
            else f"generated (seed {request.seed}): floats uniform in [0, 1), integers 0-9"
        ),
        "reference": "savedmodel",
    }


def _write_warmup(
    request: ImportRequest, staging: Path, staged: Staged, rows: dict[str, np.ndarray]
) -> None:
    from training import export
    from training.model import InputSpec

    specs = [InputSpec(t.name, t.shape[1:], t.dtype) for t in staged.inputs]
    warm = {k: v[: request.warmup_rows] for k, v in rows.items()}
    export.write_warmup_requests(staging, request.name, specs, warm)


def _quantize(
    request: ImportRequest,
    staging: Path,
    staged: Staged,
    rows: dict[str, np.ndarray],
    class_names: list[str],
) -> None:
    from training.import_variants import make_variants, read_labels

    labels = read_labels(request.calibration, count_rows(rows)) if class_names else None
    staged.variant_artifacts, staged.variants = make_variants(
        staging,
        list(request.quantize),
        rows,
        request.calibration is not None,
        labels,
        staged.outputs[0].name,
        request.quantize_tolerance,
        lambda message: say(4, message),
    )


def _describe_artifacts(staging: Path, staged: Staged) -> None:
    from training import quantize

    if (staging / SAVED_MODEL_FILE).is_file():
        staged.artifacts["savedmodel"] = {
            "format": "tf_saved_model",
            "files": digest_files(staging, files_under(staging, SAVED_MODEL_PARTS)),
        }
    if (staging / ONNX_FILE).is_file():
        files = [ONNX_FILE]
        if "savedmodel" not in staged.artifacts and (staging / WARMUP_FILE).is_file():
            files.append(WARMUP_FILE.as_posix())  # no SavedModel to list it: ONNX does
        staged.artifacts["onnx"] = {"format": "onnx", "files": digest_files(staging, files)}
    for entry in staged.artifacts.values():
        entry["size_bytes"] = sum((staging / f).stat().st_size for f in entry["files"])
        entry["gzip_bytes"] = quantize.gzip_size([staging / f for f in entry["files"]])
    staged.artifacts.update(staged.variant_artifacts)


def _source_hashes(source: Path) -> dict[str, str]:
    if source.is_file():
        return {source.name: sha256_file(source)}
    return digest_files(source, files_under(source, SAVED_MODEL_PARTS))


def _profile(
    request: ImportRequest, staging: Path, staged: Staged, class_names: list[str]
) -> dict[str, Any] | None:
    """The baseline profile of the --profile-data rows, with the model's own answers on them
    (ONNX when there is one, else the SavedModel)."""
    if request.profile_data is None:
        return None
    from training import baseline_profile, export
    from training.import_rows import read_rows

    rows = read_rows(request.profile_data, "--profile-data", staged.inputs)
    output = staged.outputs[0].name
    onnx = staging / "model.onnx"
    answers = (
        export.predict_onnx(onnx, rows, output)
        if onnx.exists()
        else export.predict_saved_model(staging, rows, output)
    )
    task = "classification" if class_names else "unknown"
    say(5, f"baseline profile of {count_rows(rows)} rows from {request.profile_data}")
    return baseline_profile.profile(
        rows, task, answers, class_names, "profile data", "profile data"
    )


def _metadata(
    request: ImportRequest,
    staged: Staged,
    class_names: list[str],
    kind: str,
    profile: dict[str, Any] | None,
) -> VersionMetadata:
    from importlib.metadata import PackageNotFoundError, version

    def version_of(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    record: dict[str, Any] = {
        "import": {
            "source": str(request.source.resolve()),
            "kind": kind,
            "source_sha256": _source_hashes(request.source),
            "labels_file": str(request.labels_file) if request.labels_file else None,
            # What a trained version records and an import cannot know.
            "unknown": ["test metrics", "training data and split", "training config"],
        },
        "environment": {
            "python": platform.python_version(),
            **{p: version_of(p) for p in ("tensorflow", "keras", "tf2onnx", "onnxruntime")},
        },
    }
    if profile is not None:
        record["baseline_profile"] = profile
    if staged.parity is not None:
        record["parity"] = staged.parity
    if staged.variants:
        record["compression"] = {"variants": staged.variants}
    return VersionMetadata(
        name=request.name,
        task="classification" if class_names else "unknown",
        signature_name="serving_default",
        inputs=tuple(staged.inputs),
        outputs=tuple(staged.outputs),
        class_names=tuple(class_names),
        artifacts=staged.artifacts,
        tf_serving_signature_def=staged.signature_defs,
        record=record,
    )
