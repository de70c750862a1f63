"""Pose geometry: the skeleton, pose estimators, tracking and filters of a keypoint stream, Everybody Dance
Now's pose normalization, and the skeleton-bound drawing ops (stick figure, body-part warp).

Imports :mod:`kernels` and the light modules at the top of :mod:`realtime` only; nothing about models or
serving. See ``docs/architecture.md``.
"""
