"""The synthetic default target: an artist's wooden mannequin, its motion, its dataset and its evaluation.

A target that needs no real person: the demo runs out of the box, and any pose, seen or unseen, has an exact
ground-truth image (the mannequin rendered in that pose), so generalization can be measured on the poses of
real source videos. Five parts, one module each:

- :mod:`train.synthetic.renderer`: :func:`render_mannequin`, a deterministic renderer from a pose on the
  project's skeleton to a shaded wooden mannequin in a fixed room, plus its silhouette mask (its depth order
  is documented there, as part of the ground truth).
- :mod:`train.synthetic.motion`: :func:`generate_motion`, seeded, smooth, varied dance-like motion from a
  joint-angle model with anatomical limits, stepping across the floor and toward and away from the camera,
  projected by a pinhole camera; and :data:`RESTRICTED_MOTION`, a short recording's motion (standing, walking
  a little, turning round, arms low).
- :mod:`train.synthetic.dataset`: :func:`write_synthetic_dataset` (``python -m train.synthetic --out DIR``),
  a prepared directory in exactly :mod:`train.prepare`'s format (:mod:`train.dataset`), to train the demo
  model with ``train.fit``.
- :mod:`train.synthetic.evaluation`: :func:`evaluate_synthetic` (``python -m train evaluate --synthetic``),
  a trained mannequin model driven with the poses of real source videos through the offline retargeting
  (:func:`realtime.offline.retarget.retarget_frames`), compared with the mannequin rendered in the same poses.
- :mod:`train.synthetic.source`: :func:`cached_source_video` (``python -m train.synthetic source --out
  VIDEO``), a rendered source dancer unlike the target (body, clothes, room, choreographed motion) that
  drives the camera-less demo and the tests where no real video is at hand.

:mod:`train.synthetic.body` holds the proportions both the motion and the renderer use, and
:mod:`train.synthetic.cli` the command lines. The names are re-exported here, each module imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it. Imported on first use (PEP 562), so that ``python -m
#: train.synthetic --help`` and the light command lines load none of the renderer's or evaluation's
#: dependencies.
_EXPORTS = {
    "ANGLE_INDEX": "train.synthetic.motion",
    "ANGLE_SPECS": "train.synthetic.motion",
    "AngleSpec": "train.synthetic.motion",
    "BODY": "train.synthetic.body",
    "BodyOrientation": "train.synthetic.renderer",
    "CameraModel": "train.synthetic.motion",
    "DEFAULT_STYLE": "train.synthetic.renderer",
    "MannequinBody": "train.synthetic.body",
    "MannequinRender": "train.synthetic.renderer",
    "MannequinStyle": "train.synthetic.renderer",
    "MOTION_PRESETS": "train.synthetic.motion",
    "Motion": "train.synthetic.motion",
    "MotionConfig": "train.synthetic.motion",
    "RESTRICTED_MOTION": "train.synthetic.motion",
    "SOURCE_BODY": "train.synthetic.source",
    "SOURCE_STYLE": "train.synthetic.source",
    "SYNTHETIC_SOURCE": "train.synthetic.dataset",
    "SourceEvaluation": "train.synthetic.evaluation",
    "SourceParams": "train.synthetic.source",
    "SourceVideo": "train.synthetic.source",
    "SyntheticDatasetReport": "train.synthetic.dataset",
    "SyntheticEvaluation": "train.synthetic.evaluation",
    "angle_specs": "train.synthetic.motion",
    "cached_source_video": "train.synthetic.source",
    "estimate_orientation": "train.synthetic.renderer",
    "estimate_scale_px_per_m": "train.synthetic.renderer",
    "evaluate_source": "train.synthetic.evaluation",
    "evaluate_synthetic": "train.synthetic.evaluation",
    "generate_motion": "train.synthetic.motion",
    "generate_source_motion": "train.synthetic.source",
    "main": "train.synthetic.cli",
    "mannequin_pose": "train.synthetic.motion",
    "motion_preset": "train.synthetic.motion",
    "render_background": "train.synthetic.renderer",
    "render_mannequin": "train.synthetic.renderer",
    "render_source_video": "train.synthetic.source",
    "write_synthetic_dataset": "train.synthetic.dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
