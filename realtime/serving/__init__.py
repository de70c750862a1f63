"""Serving: the live stream's stages off the event loop, the sinks that consume its results (the page's
WebRTC track among them), the signaling server and its page, and the aiortc patch.

Imports :mod:`realtime.pose` (pose frames) and takes the pipeline through a protocol; the server wires in
:mod:`realtime.model`. See ``docs/architecture.md``.
"""
