"""Targets bundled with the code, so the live server and the offline retargeting run with no trained model.

:data:`DEFAULT_TARGET` is a synthetic wooden mannequin (no real person), made by the same commands as a
user's target (README, "Make a target"): frames rendered by :mod:`train.synthetic` (``python -m
train.synthetic`` in place of ``train prepare``), ``python -m train fit ... --config
train/configs/mannequin.yaml`` (a teacher stage and a student stage), then ``python -m export onnx``. The
bundle holds both models with one sidecar ``mannequin.json``: the teacher, Everybody Dance Now's temporal
pix2pixHD global generator (``mannequin.onnx``; 3.1M parameters, for a server with a GPU), and its student,
the light :class:`realtime.model.nets.MobileGenerator` (``mannequin.student.onnx``; 0.52M parameters, about
11 ms per 256x256 frame in ONNX Runtime on one thread) that the server and the offline tool run on a CPU
(:func:`realtime.model.pipeline.choose_model`; ``--model`` overrides). Their quality side by side:
``docs/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

#: This folder, where the bundled engines and their sidecars are.
TARGETS_DIR: Path = Path(__file__).resolve().parent
#: The bundled default target's engine (ONNX, 256x256 canvas): the teacher, with the student
#: ``mannequin.student.onnx`` and the sidecar ``mannequin.json`` beside it.
DEFAULT_TARGET: Path = TARGETS_DIR / "mannequin.onnx"

__all__ = ["DEFAULT_TARGET", "TARGETS_DIR"]
