"""The synthetic default target: an artist's wooden mannequin, its motion, its dataset and its evaluation.

A target that needs no real person: the demo runs out of the box, and any pose, seen or unseen, has an exact
ground-truth image (the mannequin rendered in that pose), so generalization can be measured on the poses of
real source videos. Five parts, one module each:

- :mod:`train.synthetic.renderer`: :func:`render_mannequin`, a deterministic renderer from a pose on the
  project's skeleton to a shaded wooden mannequin in a fixed room, plus its silhouette mask (its depth order
  is documented there, as part of the ground truth).
- :mod:`train.synthetic.motion`: :func:`generate_motion`, seeded, smooth, varied dance-like motion from a
  joint-angle model with anatomical limits, stepping across the floor and toward and away from the camera,
  projected by a pinhole camera.
- :mod:`train.synthetic.dataset`: :func:`write_synthetic_dataset` (``python -m train.synthetic --out DIR``),
  a prepared directory in exactly :mod:`train.prepare`'s format (:mod:`train.dataset`), to train the demo
  model with ``train.fit``.
- :mod:`train.synthetic.evaluation`: :func:`evaluate_synthetic` (``python -m train.evaluate --synthetic``),
  a trained mannequin model driven with the poses of real source videos through the offline retargeting
  (:func:`realtime.retarget.retarget_frames`), compared with the mannequin rendered in the same poses.
- :mod:`train.synthetic.source`: :func:`cached_source_video` (``python -m train.synthetic source --out
  VIDEO``), a rendered source dancer unlike the target (body, clothes, room, choreographed motion) that
  drives the camera-less demo and the tests where no real video is at hand.

:mod:`train.synthetic.body` holds the proportions both the motion and the renderer use, and
:mod:`train.synthetic.cli` the command lines. The names below are re-exported here.
"""

from train.synthetic.body import BODY, MannequinBody
from train.synthetic.cli import main
from train.synthetic.dataset import SYNTHETIC_SOURCE, SyntheticDatasetReport, write_synthetic_dataset
from train.synthetic.evaluation import (
    SourceEvaluation,
    SyntheticEvaluation,
    evaluate_source,
    evaluate_synthetic,
)
from train.synthetic.motion import (
    ANGLE_INDEX,
    ANGLE_SPECS,
    AngleSpec,
    CameraModel,
    Motion,
    MotionConfig,
    generate_motion,
    mannequin_pose,
)
from train.synthetic.renderer import (
    DEFAULT_STYLE,
    BodyOrientation,
    MannequinRender,
    MannequinStyle,
    estimate_orientation,
    estimate_scale_px_per_m,
    render_background,
    render_mannequin,
)
from train.synthetic.source import (
    SOURCE_BODY,
    SOURCE_STYLE,
    SourceParams,
    SourceVideo,
    cached_source_video,
    generate_source_motion,
    render_source_video,
)

__all__ = [
    "ANGLE_INDEX",
    "ANGLE_SPECS",
    "BODY",
    "DEFAULT_STYLE",
    "SOURCE_BODY",
    "SOURCE_STYLE",
    "SYNTHETIC_SOURCE",
    "AngleSpec",
    "BodyOrientation",
    "CameraModel",
    "MannequinBody",
    "MannequinRender",
    "MannequinStyle",
    "Motion",
    "MotionConfig",
    "SourceEvaluation",
    "SourceParams",
    "SourceVideo",
    "SyntheticDatasetReport",
    "SyntheticEvaluation",
    "cached_source_video",
    "estimate_orientation",
    "estimate_scale_px_per_m",
    "evaluate_source",
    "evaluate_synthetic",
    "generate_motion",
    "generate_source_motion",
    "main",
    "mannequin_pose",
    "render_background",
    "render_mannequin",
    "render_source_video",
    "write_synthetic_dataset",
]
