"""Model runtime: the generator-input declaration, the networks needed to run inference weights, the target
bundle's sidecar, the inference backends, the face residual and the retargeting pipeline (a pose in, a
generated frame out).

Imports :mod:`realtime.pose` and :mod:`kernels`; nothing about serving or files of video. See
``docs/architecture.md``.
"""

# Inputs declared outside inputs.py, beside their producers, imported here so that every process that runs or
# trains a model has them (a model's sidecar names its inputs; their producers must exist where it runs).
from realtime.model import appearance as appearance  # noqa: E402
from realtime.model import plate as _plate  # noqa: E402, F401
