"""Targets bundled with the code, so the live server and the offline retargeting run with no trained model.

:data:`DEFAULT_TARGET` is a synthetic wooden mannequin (no real person): its generator was trained with the
project's own pipeline on frames rendered by :mod:`train.synthetic` (``python -m train.synthetic``, then
``python -m train.fit ... --config train/configs/mannequin.yaml``, then ``python -m export.onnx``). The engine
``mannequin.onnx`` and its sidecar ``mannequin.json`` lie beside this file.
"""

from __future__ import annotations

from pathlib import Path

#: This folder, where the bundled engines and their sidecars are.
TARGETS_DIR: Path = Path(__file__).resolve().parent
#: The bundled default target's engine (ONNX, 256x256 canvas, CPU real-time); its sidecar is
#: ``mannequin.json`` beside it.
DEFAULT_TARGET: Path = TARGETS_DIR / "mannequin.onnx"

__all__ = ["DEFAULT_TARGET", "TARGETS_DIR"]
