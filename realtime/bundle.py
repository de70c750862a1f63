"""The target bundle's JSON sidecar: everything the runtime needs that an engine file cannot carry.

A trained target travels as files with one stem: ``NAME.onnx`` (or ``NAME.plan``, ``NAME.pt``) and
``NAME.json``. See DESIGN.md, "Target bundle".
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.normalize import BodyStats
from realtime.render import RenderParams
from realtime.skeleton import SKELETON_NAME

BUNDLE_FORMAT_VERSION = 1
#: Names of the generator's inputs and output in every exported engine. All are float32 ``(B, 3, H, W)``
#: RGB in [0, 1]: the stick figure, the previously generated frame (zeros for a stream's first frame), and
#: the generated frame.
INPUT_STICK_FIGURE = "stick_figure"
INPUT_PREVIOUS_FRAME = "previous_frame"
OUTPUT_FRAME = "frame"


class BundleError(ValueError):
    """A target bundle that is missing its sidecar or whose sidecar is malformed or incompatible."""


@dataclass(frozen=True)
class TargetBundle:
    """The sidecar's contents.

    Attributes:
        name: the target's name (the file stem by default).
        canvas_width, canvas_height: generator input and output size in pixels.
        skeleton: the skeleton convention's name (:data:`realtime.skeleton.SKELETON_NAME`).
        render: stick-figure rendering parameters the generator was trained on.
        stats: the target's normalization statistics in canvas pixels.
        face_box_size_px: side of the face crop in canvas pixels (with a face model: the whole-pixel side of
            the crops it takes, see :mod:`realtime.face`).
        face_model: file name of the face residual model in the engine's folder (``NAME.face.onnx``, or the
            ``.pt`` checkpoint itself), or None (no face stage trained).
        temporal: whether the generator takes the previous generated frame as an input.
        precision: numeric precision of the engine ("fp32", "fp16").
        inputs, outputs: tensor names in the engine.
        versions: library versions that produced the bundle (torch, onnx, onnxruntime, mediapipe).
        checkpoint_sha256: SHA-256 of the training checkpoint the engine was exported from.
        checkpoint_step: training step of that checkpoint.
    """

    name: str
    canvas_width: int
    canvas_height: int
    render: RenderParams
    stats: BodyStats
    face_box_size_px: float
    temporal: bool
    checkpoint_sha256: str
    checkpoint_step: int
    face_model: str | None = None
    precision: str = "fp32"
    skeleton: str = SKELETON_NAME
    inputs: tuple[str, ...] = (INPUT_STICK_FIGURE, INPUT_PREVIOUS_FRAME)
    outputs: tuple[str, ...] = (OUTPUT_FRAME,)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = BUNDLE_FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = self.stats.to_json()
        data["inputs"], data["outputs"] = list(self.inputs), list(self.outputs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetBundle:
        """Raises :class:`BundleError` for a wrong format version, skeleton or missing field."""
        if data.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise BundleError(
                f"sidecar format version {data.get('format_version')!r}, this code reads "
                f"{BUNDLE_FORMAT_VERSION}; export the target again"
            )
        if data.get("skeleton") != SKELETON_NAME:
            raise BundleError(f"sidecar skeleton {data.get('skeleton')!r}, this code uses {SKELETON_NAME!r}")
        try:
            fields = dict(data)
            fields["render"] = RenderParams(**data["render"])
            fields["stats"] = BodyStats.from_json(data["stats"])
            fields["inputs"], fields["outputs"] = tuple(data["inputs"]), tuple(data["outputs"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"malformed sidecar: {exc}") from exc


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    """``NAME.json`` beside ``NAME.onnx`` / ``NAME.plan`` / ``NAME.pt``."""
    return Path(engine).with_suffix(".json")


def read_bundle(engine: str | os.PathLike[str]) -> TargetBundle:
    """Read the sidecar of an engine file.

    Raises:
        BundleError: if the sidecar is missing, not JSON, or malformed.
    """
    path = sidecar_path(engine)
    if not path.is_file():
        raise BundleError(f"no sidecar {path} beside {engine}; export writes both (python -m export.onnx)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read sidecar {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"sidecar {path} is not a JSON object")
    return TargetBundle.from_json(data)


def write_bundle(engine: str | os.PathLike[str], bundle: TargetBundle) -> Path:
    """Write ``bundle`` as the sidecar of ``engine`` (atomically). Returns the sidecar's path."""
    path = sidecar_path(engine)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(bundle.to_json(), indent=2))
    os.replace(tmp, path)
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape an engine."""
    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "mediapipe", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def bundle_for_checkpoint(checkpoint_path: str | os.PathLike[str], name: str) -> TargetBundle:
    """The sidecar of a checkpoint's generator: canvas, rendering and statistics from its prepared data.

    A face-stage checkpoint's sidecar names the checkpoint itself as its ``face_model`` (the PyTorch backend
    reads the face generator from it; the ONNX exporter replaces it with ``NAME.face.onnx``), and its
    ``face_box_size_px`` is the side of the face crops the face generator was trained on.

    Raises:
        train.checkpoint.CheckpointError: if the file is not a readable checkpoint.
    """
    from train.checkpoint import face_crop_px, load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path)
    meta = checkpoint.data_meta
    has_face = checkpoint.face_generator is not None
    return TargetBundle(
        name=name,
        canvas_width=meta.canvas_width,
        canvas_height=meta.canvas_height,
        render=meta.render,
        stats=meta.stats,
        face_box_size_px=float(face_crop_px(checkpoint)) if has_face else meta.face_box_size_px,
        face_model=Path(checkpoint_path).name if has_face else None,
        temporal=checkpoint.config.generator.temporal,
        checkpoint_sha256=file_sha256(checkpoint_path),
        checkpoint_step=checkpoint.step,
        versions=library_versions(),
    )
