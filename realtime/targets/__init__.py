"""Targets bundled with the code, so the live server and the offline retargeting run with no trained model.

:data:`DEFAULT_TARGET` is a synthetic wooden mannequin (no real person) sized for real time on 2 CPU cores:
the light :class:`realtime.model.nets.MobileGenerator` (0.52M parameters, about 11 ms per 256x256 frame in
ONNX Runtime on one thread), trained with the project's own pipeline on frames rendered by
:mod:`train.synthetic` (``python -m train.synthetic``, then ``python -m train fit ... --config
train/configs/mannequin_mobile.yaml``, then ``python -m export onnx``), with :data:`HD_TARGET` as its
distillation teacher. The engine ``mannequin.onnx`` and its sidecar ``mannequin.json`` lie beside this file.

:data:`HD_TARGET` (``hd/mannequin_hd.onnx``) is the same mannequin on Everybody Dance Now's temporal
pix2pixHD global generator (``train/configs/mannequin.yaml``; 3.1M parameters, 1.37 GMACs per frame): the
previous default, kept as the teacher and for servers with a GPU (``server.py --engine
realtime/targets/hd``). It lies in a folder of its own so that ``server.py`` with no ``--engine`` offers
only the default. Their quality side by side: ``docs/RESULTS.md``.
"""

from __future__ import annotations

from pathlib import Path

#: This folder, where the bundled engines and their sidecars are.
TARGETS_DIR: Path = Path(__file__).resolve().parent
#: The bundled default target's engine (ONNX, 256x256 canvas, CPU real-time); its sidecar is
#: ``mannequin.json`` beside it.
DEFAULT_TARGET: Path = TARGETS_DIR / "mannequin.onnx"
#: The mannequin on the temporal pix2pixHD generator (ONNX, 256x256), sidecar ``mannequin_hd.json`` beside it.
HD_TARGET: Path = TARGETS_DIR / "hd" / "mannequin_hd.onnx"

__all__ = ["DEFAULT_TARGET", "HD_TARGET", "TARGETS_DIR"]
