"""Model runtime: the generator-input declaration, the networks needed to run inference weights, the target
bundle's sidecar, the inference backends, the face residual and the retargeting pipeline (a pose in, a
generated frame out).

Imports :mod:`realtime.pose` and :mod:`kernels`; nothing about serving or files of video. See
``docs/architecture.md``.
"""

# Declarations of the generator inputs that live beside their producers, so that every process that loads a
# model knows them (realtime.model.inputs declares the stick figure and the previous frame itself).
from realtime.model import plate as _plate  # noqa: E402, F401
