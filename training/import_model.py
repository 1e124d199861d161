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
import sys
from dataclasses import dataclass, field
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
from tfship.version_metadata import TensorInfo, VersionMetadata
from training.errors import ExportError, ImportRefused

STEPS = 5
KERAS_SUFFIXES = (".keras", ".h5")
# Rows generated for the parity check and warm-up when no --calibration file is given.
GENERATED_ROWS = 256


def say(step: int, message: str) -> None:
    print(f"[{step}/{STEPS}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ImportRequest:
    source: Path
    name: str
    model_dir: Path
    version: int | None = None
    # .npz of rows keyed by input name (and ``labels``): parity, warm-up, calibration.
    calibration: Path | None = None
    labels_file: Path | None = None  # class names, one per line (Triton's labels file)
    output_name: str = "output_0"  # Keras's own export names its output so
    onnx: bool = True
    quantize: tuple[str, ...] = ()  # training's variants: int8, int8_dynamic, int8_static, fp16
    quantize_tolerance: float = 0.01  # most accuracy a variant may lose (with labels)
    opset: int = 17
    parity_tolerance: float = 1e-4
    warmup_rows: int = 8
    seed: int = 0


@dataclass
class Staged:
    """What the steps have put in the staging folder so far."""

    kind: str  # "keras", "savedmodel" or "onnx"
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    signature_defs: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # "compression" records
    variant_artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)


def source_kind(source: Path) -> str:
    """Which of the three sources SOURCE is; ImportRefused (exit 2) naming it otherwise."""
    if source.is_dir():
        if (source / SAVED_MODEL_FILE).is_file():
            return "savedmodel"
        raise ImportRefused(f"{source} is a folder without {SAVED_MODEL_FILE}: not a SavedModel")
    if not source.is_file():
        raise ImportRefused(f"{source} does not exist")
    if source.suffix in KERAS_SUFFIXES:
        return "keras"
    if source.suffix == ".onnx":
        return "onnx"
    raise ImportRefused(
        f"{source}: not a .keras file, a SavedModel folder or an .onnx file (by its name)"
    )


def check_request(request: ImportRequest) -> str:
    """Everything that can be refused before TensorFlow starts; returns the source kind."""
    if not is_valid_model_name(request.name):
        raise ImportRefused(
            f"--name {request.name!r}: use letters, digits, '_', '.', '-' (a path component)"
        )
    if request.version is not None and request.version < 1:
        raise ImportRefused(f"--version {request.version}: versions are positive integers")
    for flag, path in (("--calibration", request.calibration), ("--labels", request.labels_file)):
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
            _stage_onnx(request, staging, staged)
        else:
            _stage_saved_model(request, staging, staged, class_names)
        rows = _sample_rows(request, staged.inputs)
        if kind != "onnx" and request.onnx:
            _convert_and_check(request, staging, staged, rows)
        _check_labels(staged, class_names)
        if request.warmup_rows:
            say(4, f"warm-up requests ({min(request.warmup_rows, _count(rows))} rows)")
            _write_warmup(request, staging, staged, rows)
        if request.quantize:
            _quantize(request, staging, staged, rows, class_names)
        say(5, "checksums, metadata.json, publish")
        _describe_artifacts(staging, staged)
        metadata = _metadata(request, staged, class_names, kind)
        created = datetime.now(UTC).isoformat(timespec="seconds")

        published: list[VersionMetadata] = []

        def finalize(folder: Path, version: int) -> None:
            published[:] = [metadata.published(version, created)]
            write_metadata(folder, published[0])

        ref = publish(staging, model_root, finalize, request.version)
        _write_triton_files(model_root, published[0])
    except RepositoryError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImportRefused(str(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ref


def _write_triton_files(model_root: Path, metadata: VersionMetadata) -> None:
    from tfship.triton_config import write_model_files

    try:
        for path in write_model_files(model_root, metadata):
            say(5, f"Triton: {path}")
    except OSError as exc:  # the version is published; only Triton's extras are missing
        print(f"warning: Triton's config.pbtxt not written: {exc}", file=sys.stderr)


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


# --- sources ---


def _stage_onnx(request: ImportRequest, staging: Path, staged: Staged) -> None:
    import onnxruntime as ort

    from tfship.onnx_signature import graph_signature

    try:
        session = ort.InferenceSession(str(request.source), providers=["CPUExecutionProvider"])
        staged.inputs, staged.outputs, skipped = graph_signature(session, str(request.source))
    except Exception as exc:  # onnxruntime's own errors: the file does not open as a model
        raise ExportError(f"{request.source} does not load in ONNX Runtime: {exc}") from None
    shutil.copyfile(request.source, staging / ONNX_FILE)
    if skipped:
        say(2, f"outputs that are not tensors, not served: {', '.join(skipped)}")
    say(2, "ONNX copied as model.onnx (no SavedModel: the source has none)")


def _stage_saved_model(
    request: ImportRequest, staging: Path, staged: Staged, class_names: list[str]
) -> None:
    from training import export

    if staged.kind == "keras":
        import keras

        try:
            model = keras.saving.load_model(str(request.source), compile=False)
        except Exception as exc:  # Keras raises ValueError, OSError, TypeError...
            raise ExportError(f"{request.source} does not load in Keras: {exc}") from None
        if len(model.outputs) != 1:
            raise ExportError(
                f"{request.source} has {len(model.outputs)} outputs; tfship import takes "
                "models with one (export yours with model.export() and import that folder)"
            )
        specs = _keras_input_specs(model)
        # A classify signature needs class names and fixed input shapes.
        examples = bool(class_names) and all(None not in s.shape for s in specs)
        say(2, "SavedModel from the Keras model")
        export.export_saved_model(model, specs, request.output_name, staging, class_names, examples)
    else:
        say(2, "SavedModel copied")
        for part in SAVED_MODEL_PARTS:
            path = request.source / part
            if path.is_dir():
                shutil.copytree(path, staging / part)
            elif path.is_file():
                shutil.copyfile(path, staging / part)
    try:
        info = export.read_saved_model_signature(staging)
    except KeyError:
        raise ExportError(
            f"{request.source} has no '{export.SIGNATURE_NAME}' signature; tfship serves "
            "that one (re-export with it, e.g. model.export())"
        ) from None
    staged.inputs = [TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in info.inputs]
    staged.outputs = [TensorInfo(t.name, t.dtype, tuple(t.shape), t.tf_name) for t in info.outputs]
    staged.signature_defs = info.signature_def_json


def _keras_input_specs(model: Any) -> list[Any]:
    from training.model import InputSpec

    specs = []
    for tensor in model.inputs:
        dtype = "string" if str(tensor.dtype) == "string" else str(tensor.dtype)
        specs.append(InputSpec(tensor.name, tuple(tensor.shape[1:]), dtype))
    return specs


# --- rows for parity and warm-up ---


def _count(rows: dict[str, np.ndarray]) -> int:
    return len(next(iter(rows.values())))


def _sample_rows(request: ImportRequest, inputs: list[TensorInfo]) -> dict[str, np.ndarray]:
    """The --calibration rows (checked against the signature), or generated ones."""
    if request.calibration is None:
        return _generated_rows(inputs, request.seed)
    try:
        with np.load(request.calibration, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ImportRefused(
            f"--calibration {request.calibration}: not a readable .npz: {exc}"
        ) from None
    rows = {}
    for spec in inputs:
        if spec.name not in arrays:
            raise ImportRefused(
                f"--calibration {request.calibration} has no array '{spec.name}' (it has: "
                f"{', '.join(sorted(arrays)) or 'none'}); one per model input"
            )
        values = arrays[spec.name]
        fits = values.ndim == len(spec.shape) and all(
            want in (-1, got) for want, got in zip(spec.shape[1:], values.shape[1:], strict=True)
        )
        if not fits:
            raise ImportRefused(
                f"--calibration: '{spec.name}' has shape {list(values.shape)}, the model "
                f"takes {list(spec.shape)}"
            )
        rows[spec.name] = values.astype(spec.dtype if spec.dtype != "object" else str)
    if len({len(v) for v in rows.values()}) != 1 or not _count(rows):
        raise ImportRefused(f"--calibration {request.calibration}: every input needs the same rows")
    return rows


def _generated_rows(inputs: list[TensorInfo], seed: int) -> dict[str, np.ndarray]:
    """Uniform [0, 1) floats, small integers, alternating booleans; unknown inner dims 1."""
    random = np.random.default_rng(seed)
    rows = {}
    for spec in inputs:
        shape = (GENERATED_ROWS, *(1 if d == -1 else d for d in spec.shape[1:]))
        if spec.dtype in ("object", "string"):
            raise ImportRefused(
                f"input '{spec.name}' takes strings: give rows with --calibration FILE.npz "
                "(tfship cannot make up strings the model knows)"
            )
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            rows[spec.name] = random.random(shape).astype(dtype)
        elif dtype.kind == "b":
            rows[spec.name] = random.random(shape) < 0.5
        else:
            rows[spec.name] = random.integers(0, 10, shape).astype(dtype)
    return rows


# --- ONNX, warm-up, artifacts ---


def _convert_and_check(
    request: ImportRequest, staging: Path, staged: Staged, rows: dict[str, np.ndarray]
) -> None:
    from training import export

    say(3, f"ONNX (tf2onnx, opset {request.opset})")
    export.convert_to_onnx(staging, request.opset)
    say(3, f"parity: ONNX Runtime vs TensorFlow on {_count(rows)} rows")
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
        "rows": _count(rows),
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

    labels = read_labels(request.calibration, _count(rows)) if class_names else None
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


def _metadata(
    request: ImportRequest, staged: Staged, class_names: list[str], kind: str
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
