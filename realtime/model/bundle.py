"""The target bundle's JSON sidecar: everything the runtime needs that an engine file cannot carry.

A trained target travels as files with one stem: ``NAME.onnx`` (or ``NAME.plan``, ``NAME.pt``) and
``NAME.json``, and ``NAME.target_inputs.npz`` when the generator takes ``per_target`` inputs (named and hashed
in the sidecar). See docs/architecture.md, "Target bundle".
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kernels.rasterize import RenderParams
from realtime.catalog import DEFAULT_POSE_ESTIMATOR
from realtime.model.inputs import TEMPORAL_INPUTS, GeneratorInputs, InputRole, TensorSpec, target_value_shape
from realtime.pose.normalize import BodyStats
from realtime.pose.skeleton import SKELETON_NAME

#: Version 4 may add a real-time ``student`` beside the teacher; version 3 names the per-target inputs'
#: file (``target_inputs``); version 2 records the whole generator-input declaration (``generator_inputs``).
#: Version 3 and 2 sidecars (no student; no per-target inputs) and version 1 sidecars (only the input names,
#: always the stick figure and the previous frame) are still read.
BUNDLE_FORMAT_VERSION = 4
#: Roles of the models a bundle can hold: the model the bundle's fields describe (the ``teacher``: the
#: target as trained by its main stages) and its real-time ``student`` (:class:`StudentModel`).
MODEL_ROLES = ("teacher", "student")
#: The suffix of the per-target inputs' file beside the engine: ``NAME.target_inputs.npz``.
TARGET_INPUTS_SUFFIX = ".target_inputs.npz"


class BundleError(ValueError):
    """A target bundle that is missing its sidecar or whose sidecar is malformed or incompatible."""


@dataclass(frozen=True)
class TargetInputsFile:
    """The sidecar's entry for the per-target inputs' file.

    Attributes:
        file: its name in the engine's folder (``NAME.target_inputs.npz``): one float16 ``(C, H, W)`` array
            in [0, 1] per ``per_target`` input, under the input's name.
        sha256: hex SHA-256 of its bytes.
    """

    file: str
    sha256: str


@dataclass(frozen=True)
class StudentModel:
    """The sidecar's entry for a bundle's real-time student (issue 19): a light generator distilled from the
    bundle's main model (the teacher), for the CPU; the same canvas, rendering, statistics and per-target
    inputs' file (its per-target inputs are among the teacher's), no face model.

    Attributes:
        file: its engine file in the teacher's folder (``NAME.student.onnx``; ``NAME.student.pt`` beside it
            holds the same generator as inference weights).
        generator_inputs: its inputs and output (no previous frame: the student is not temporal).
        checkpoint_sha256: SHA-256 of the student's training checkpoint.
        checkpoint_step: its training step.
        cpu_threads: ONNX Runtime intra-op threads chosen by measurement at export (:mod:`export.tune`), the
            default when the caller sets none; 0 = not measured.
        precision: the precision of ``file`` as chosen by that measurement: "fp32", or "int8" (ONNX Runtime
            static quantization, then ``NAME.student.int8.onnx``; the fp32 engine stays beside it).
    """

    file: str
    generator_inputs: GeneratorInputs
    checkpoint_sha256: str
    checkpoint_step: int
    cpu_threads: int = 0
    precision: str = "fp32"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "generator_inputs": self.generator_inputs.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudentModel:
        """Raises KeyError, TypeError or ValueError for a malformed entry."""
        return cls(
            file=str(data["file"]),
            generator_inputs=GeneratorInputs.from_json(data["generator_inputs"]),
            checkpoint_sha256=str(data["checkpoint_sha256"]),
            checkpoint_step=int(data["checkpoint_step"]),
            cpu_threads=int(data.get("cpu_threads", 0)),
            precision=str(data.get("precision", "fp32")),
        )


@dataclass(frozen=True)
class TargetBundle:
    """The sidecar's contents.

    Attributes:
        name: the target's name (the file stem by default).
        canvas_width, canvas_height: generator input and output size in pixels.
        skeleton: the skeleton convention's name (:data:`realtime.pose.skeleton.SKELETON_NAME`).
        pose_estimator: the pose estimator the target's data was prepared with, a name in
            :data:`realtime.catalog.POSE_ESTIMATORS`; the pipeline estimates source poses with it. Sidecars
            written before the field read as :data:`realtime.catalog.DEFAULT_POSE_ESTIMATOR` ("mediapipe").
        render: stick-figure rendering parameters the generator was trained on.
        stats: the target's normalization statistics in canvas pixels.
        face_box_size_px: side of the face crop in canvas pixels (with a face model: the whole-pixel side of
            the crops it takes, see :mod:`realtime.model.face`).
        face_model: file name of the face residual model in the engine's folder (``NAME.face.onnx``, or the
            ``.pt`` checkpoint itself), or None (no face stage trained).
        generator_inputs: the generator's inputs and output (:class:`realtime.model.inputs.GeneratorInputs`):
            names, channels and roles, in the engine's input order.
        precision: numeric precision of the engine ("fp32", "fp16").
        versions: library versions that produced the bundle (torch, onnx, onnxruntime, mediapipe).
        checkpoint_sha256: SHA-256 of the training checkpoint the engine was exported from.
        checkpoint_step: training step of that checkpoint.
        target_inputs: the per-target inputs' file (:func:`read_target_inputs`), or None for a generator
            without ``per_target`` inputs.
        student: the bundle's real-time student (:class:`StudentModel`), or None; the other fields describe
            the teacher (:meth:`for_student` gives the student's view).
    """

    name: str
    canvas_width: int
    canvas_height: int
    render: RenderParams
    stats: BodyStats
    face_box_size_px: float
    checkpoint_sha256: str
    checkpoint_step: int
    generator_inputs: GeneratorInputs = TEMPORAL_INPUTS
    face_model: str | None = None
    precision: str = "fp32"
    skeleton: str = SKELETON_NAME
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR
    versions: dict[str, str] = field(default_factory=dict)
    target_inputs: TargetInputsFile | None = None
    student: StudentModel | None = None
    format_version: int = BUNDLE_FORMAT_VERSION

    @property
    def temporal(self) -> bool:
        """Whether the generator takes its previous output as an input."""
        return self.generator_inputs.temporal

    @property
    def inputs(self) -> tuple[str, ...]:
        """The engine's input tensor names, in order."""
        return self.generator_inputs.names

    @property
    def outputs(self) -> tuple[str, ...]:
        """The engine's output tensor names."""
        return (self.generator_inputs.output.name,)

    def for_student(self) -> TargetBundle:
        """The bundle as its student sees it: the student's inputs and checkpoint, no face model, no student.

        Raises:
            BundleError: if the bundle has no student, or the student takes a per-target value the teacher
                does not (the one per-target inputs' file would not hold it).
        """
        if self.student is None:
            raise BundleError(
                f"target {self.name!r} has no student (export a run trained with the student stage)"
            )
        own = {spec.name for spec in self.generator_inputs.target_values}
        missing = [spec.name for spec in self.student.generator_inputs.target_values if spec.name not in own]
        if missing:
            raise BundleError(
                f"target {self.name!r}: its student takes per-target values {missing} the teacher lacks"
            )
        return dataclasses.replace(
            self, generator_inputs=self.student.generator_inputs, face_model=None, student=None,
            checkpoint_sha256=self.student.checkpoint_sha256, checkpoint_step=self.student.checkpoint_step,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = self.stats.to_json()
        data["generator_inputs"] = self.generator_inputs.to_json()
        data["student"] = None if self.student is None else self.student.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetBundle:
        """Raises :class:`BundleError` for a wrong format version, skeleton or missing field."""
        version = data.get("format_version")
        if version not in (1, 2, 3, BUNDLE_FORMAT_VERSION):
            raise BundleError(
                f"sidecar format version {version!r}, this code reads 1 to {BUNDLE_FORMAT_VERSION}; "
                "export the target again"
            )
        if data.get("skeleton") != SKELETON_NAME:
            raise BundleError(f"sidecar skeleton {data.get('skeleton')!r}, this code uses {SKELETON_NAME!r}")
        try:
            fields = dict(data)
            if version == 1:
                fields = _upgrade_v1(fields)
            fields["format_version"] = BUNDLE_FORMAT_VERSION  # versions 2 and 3 lack later optional fields
            if fields.get("student") is not None:
                fields["student"] = StudentModel.from_json(fields["student"])
            if fields.get("target_inputs") is not None:
                fields["target_inputs"] = TargetInputsFile(**fields["target_inputs"])
            fields["render"] = RenderParams(**data["render"])
            fields["stats"] = BodyStats.from_json(data["stats"])
            fields["generator_inputs"] = GeneratorInputs.from_json(fields["generator_inputs"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"malformed sidecar: {exc}") from exc


def _upgrade_v1(fields: dict[str, Any]) -> dict[str, Any]:
    """A version-1 sidecar's fields in version 2's form: its ``inputs``/``outputs``/``temporal`` become the
    generator-input declaration they stood for (version 1 engines always took the stick figure and the
    previous frame; a non-temporal one ignored the previous frame).

    Raises:
        ValueError: for inputs or outputs that version 1 never wrote.
    """
    from realtime.model.inputs import FRAME, PREVIOUS_FRAME, STICK_FIGURE

    inputs, outputs = tuple(fields.pop("inputs")), tuple(fields.pop("outputs"))
    fields.pop("temporal")
    if inputs != (STICK_FIGURE.name, PREVIOUS_FRAME.name) or outputs != (FRAME.name,):
        raise ValueError(f"a version 1 sidecar with inputs {list(inputs)} and outputs {list(outputs)}")
    fields["generator_inputs"] = TEMPORAL_INPUTS.to_json()
    fields["format_version"] = BUNDLE_FORMAT_VERSION
    return fields


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
        raise BundleError(f"no sidecar {path} beside {engine}; export writes both (python -m export onnx)")
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


def target_inputs_path(engine: str | os.PathLike[str]) -> Path:
    """``NAME.target_inputs.npz`` beside ``NAME.onnx`` / ``NAME.plan`` / ``NAME.pt`` (one file for all three,
    like the sidecar)."""
    engine = Path(engine)
    return engine.with_name(engine.stem + TARGET_INPUTS_SUFFIX)


def write_target_inputs(
    engine: str | os.PathLike[str], values: Mapping[str, np.ndarray], inputs: GeneratorInputs | None = None
) -> TargetInputsFile:
    """Write a target's per-target values beside ``engine`` (atomically), by name: the ``per_target`` inputs
    as float16 ``(C, H, W)``, the target data (keypoints in pixels among them) as float32.

    Args:
        engine: the engine file.
        values: every value of ``inputs.target_values`` by name: float ``(C, H, W)`` in [0, 1] (or
            ``(1, C, H, W)``); target data ``(C, ...)`` (or ``(1, C, ...)``).
        inputs: the generator's declaration (which values are inputs and which are data); None: every value
            is a ``per_target`` input of as many channels as it has.

    Returns:
        the sidecar's entry for the file (put it in :attr:`TargetBundle.target_inputs`).

    Raises:
        KeyError: for a value of ``inputs.target_values`` missing from ``values``.
        ValueError: for a value of the wrong shape.
    """
    path = target_inputs_path(engine)
    tmp = path.with_name(path.name + ".tmp.npz")
    arrays = {}
    specs = (
        inputs.target_values
        if inputs is not None
        else tuple(TensorSpec(name, np.shape(v)[-3], InputRole.PER_TARGET) for name, v in values.items())
    )
    for spec in specs:
        value = np.asarray(values[spec.name], np.float32)
        canvas_hw = (int(value.shape[-2]), int(value.shape[-1]))  # a per_target input's own canvas
        value = value.reshape(target_value_shape(spec, value.shape, canvas_hw))
        arrays[spec.name] = value.astype(np.float16 if spec.role is InputRole.PER_TARGET else np.float32)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return TargetInputsFile(path.name, file_sha256(path))


def read_target_inputs(engine: str | os.PathLike[str], bundle: TargetBundle) -> dict[str, np.ndarray]:
    """The per-target inputs of ``bundle``'s generator from the file its sidecar names beside ``engine``.

    Returns:
        ``{name: float32 (C, H, W) in [0, 1]}`` for every ``per_target`` input of ``bundle.generator_inputs``,
        and ``{name: float32 (C, ...)}`` for its target data (empty when it has none).

    Raises:
        BundleError: naming the file and the fix, if the sidecar names no file, the file is missing, its
            hash differs from the sidecar's, or an input is missing from it or has the wrong shape.
    """
    specs = bundle.generator_inputs.target_values
    if not specs:
        return {}
    again = "export the target again (python -m export.onnx CHECKPOINT OUT.onnx) and copy all its files"
    names = [spec.name for spec in specs]
    if bundle.target_inputs is None:
        raise BundleError(
            f"the sidecar {sidecar_path(engine)} names no per-target inputs file, but the generator takes "
            f"per-target inputs {names}; {again}"
        )
    path = Path(engine).parent / bundle.target_inputs.file
    if not path.is_file():
        raise BundleError(f"per-target inputs file {path} is missing (the generator takes {names}); {again}")
    if file_sha256(path) != bundle.target_inputs.sha256:
        raise BundleError(
            f"per-target inputs file {path} does not match the SHA-256 in {sidecar_path(engine)} "
            f"(it belongs to another export); {again}"
        )
    canvas_hw = (bundle.canvas_height, bundle.canvas_width)
    out = {}
    try:
        with np.load(path) as stored:
            for spec in specs:
                if spec.name not in stored.files:
                    raise BundleError(
                        f"per-target inputs file {path} has no {spec.name!r} "
                        f"(it holds {sorted(stored.files)}); {again}"
                    )
                value = stored[spec.name].astype(np.float32)
                out[spec.name] = value.reshape(target_value_shape(spec, value.shape, canvas_hw))
    except (OSError, ValueError) as error:
        if isinstance(error, BundleError):
            raise
        raise BundleError(f"per-target inputs file {path}: {error}; {again}") from error
    return out
