"""The offline tool: a source video file in, the retargeted video file out (``python -m realtime.offline``).

Imports :mod:`realtime.model` and :mod:`realtime.pose`. See ``docs/architecture.md``.
"""
