"""A virtual camera sink: the generated video as a webcam that video-call apps can pick (``pyvirtualcam``).

`pyvirtualcam <https://github.com/letmaik/pyvirtualcam>`_ (its README and ``pyvirtualcam/camera.py``, v0.15)
writes frames to a virtual camera device: v4l2loopback on Linux (``/dev/videoN``), OBS Virtual Camera on
Windows and macOS. An app that opens that camera (a browser's video call, Zoom, Teams, OBS) sees the target
dancing. Setup and what was tested: ``docs/virtual-camera.md``.

- :func:`open_virtual_camera` opens the device once (``pyvirtualcam.Camera(width, height, fps,
  fmt=PixelFormat.RGB, device=..., backend=...)``, imported lazily) and turns a missing module or device into
  :class:`VirtualCameraError`, whose message says what to install.
- :class:`VirtualCameraSink` is one session's output to that camera (a
  :class:`realtime.serving.sink.PushSink`, shaped like :mod:`realtime.serving.recorder`): on the generation
  thread it letterboxes the view it shows (the generated target alone by default, or stick figure |
  generated) into the camera's size; on its own thread it hands each frame to the camera's ``send()``;
  while that thread is busy, newer frames replace each other in its feed (dropped and counted,
  :attr:`VirtualCameraSink.dropped`).
- :class:`VirtualCameraOutput` owns the server's one camera (opened at server start, so a missing device is
  reported at start-up) and lends it to one session at a time (:meth:`VirtualCameraOutput.sink_for`): a
  device has one picture, and two dancers would flicker in turns. When that session's sink stops, the
  camera shows black and is free for the next session that starts.

Between sessions the camera shows **black**: a black frame is sent when the camera is opened and when a
session gives it back, so a call never freezes on the last dancer's pose. (v4l2loopback's readers keep
showing the last frame written until the next one comes.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PIL import Image

from realtime.serving.sink import GeneratedFrame, PushSink

log = logging.getLogger(__name__)

VIEWS = ("target", "side_by_side")
"""What a virtual camera can show: ``"target"``, the generated target alone (the default: the view a call
shows of the person); ``"side_by_side"``, the stick figure left of the generated target."""

SETUP_HINT = (
    "on Linux install and load v4l2loopback (sudo apt install v4l2loopback-dkms; sudo modprobe v4l2loopback "
    'devices=1 exclusive_caps=1 card_label="Dance Live"), on Windows or macOS install OBS Studio 26 or later '
    "and start its virtual camera once (Start Virtual Camera, then Stop); see docs/virtual-camera.md"
)
"""What to do when no virtual camera device exists (part of :class:`VirtualCameraError`'s message)."""

INSTALL_HINT = "pip install pyvirtualcam (or pip install 'dance-live[vcam]')"
"""What to do when ``pyvirtualcam`` is not installed."""


class VirtualCameraError(Exception):
    """No virtual camera could be opened (``pyvirtualcam`` missing, no device, the device busy or refusing
    the size), or the camera was used after :meth:`VirtualCameraOutput.close`. The message names the device
    and backend asked for and says what to do."""


class VirtualCamera(Protocol):
    """What this module uses of an opened ``pyvirtualcam.Camera`` (and what a test's fake provides)."""

    @property
    def width(self) -> int:
        """Frame width in pixels."""

    @property
    def height(self) -> int:
        """Frame height in pixels."""

    @property
    def device(self) -> str:
        """The device in use (``/dev/videoN``, ``OBS Virtual Camera``)."""

    def send(self, frame: np.ndarray) -> None:
        """Write one uint8 ``(height, width, 3)`` RGB frame to the device."""

    def close(self) -> None:
        """Release the device."""


CameraFactory = Callable[..., VirtualCamera]
"""Makes a camera as ``pyvirtualcam.Camera`` does: ``(width, height, fps, *, fmt, device, backend)``."""


def open_virtual_camera(
    width: int,
    height: int,
    fps: float,
    *,
    device: str | None = None,
    backend: str | None = None,
    camera_factory: CameraFactory | None = None,
) -> VirtualCamera:
    """Open a virtual camera that takes uint8 ``(height, width, 3)`` RGB frames (``PixelFormat.RGB``), and
    show black on it.

    Args:
        width, height: the camera's frame size in pixels (what the video-call app sees).
        fps: the frame rate announced to the device (frames per second; a hint: frames are sent as they are
            generated, and v4l2loopback and OBS repeat or skip as their readers need).
        device: the device, e.g. ``/dev/video10`` (v4l2loopback) or ``OBS Virtual Camera``; None: the first
            free one.
        backend: ``v4l2loopback`` (Linux), ``obs`` (Windows, macOS) or ``unitycapture`` (Windows); None: each
            available backend in turn.
        camera_factory: replaces ``pyvirtualcam.Camera`` (tests); it is called with ``fmt`` set to
            ``pyvirtualcam.PixelFormat.RGB`` where pyvirtualcam is installed, else the string ``"RGB"``.

    Returns:
        The opened camera; close it when done (:class:`VirtualCameraOutput` does).

    Raises:
        ValueError: for a size below 1 pixel or a rate that is not a positive number.
        VirtualCameraError: pyvirtualcam is not installed (with the install command), the backend is not
            available on this system, or the backend cannot open a device of that size (no v4l2loopback
            device, the device is missing or busy, OBS's virtual camera never started; with what to install).
    """
    if width < 1 or height < 1:
        raise ValueError(f"the virtual camera's size must be at least 1x1 pixels, got {width}x{height}")
    if not fps > 0:
        raise ValueError(f"the virtual camera's frame rate must be a positive number, got {fps}")
    asked = f"device {device or '(first free)'}, backend {backend or '(any available)'}"
    fmt: Any = "RGB"
    if camera_factory is None:
        try:
            pyvirtualcam = importlib.import_module("pyvirtualcam")
        except ImportError as exc:
            raise VirtualCameraError(
                f"cannot open a virtual camera ({asked}): the pyvirtualcam package is not installed "
                f"({exc}); {INSTALL_HINT}"
            ) from exc
        registry = getattr(importlib.import_module("pyvirtualcam.camera"), "BACKENDS", None)
        available = sorted(registry) if isinstance(registry, dict) else None
        if backend is not None and available is not None and backend not in available:
            # pyvirtualcam itself would raise a bare KeyError (and a second error from Camera.__del__)
            raise VirtualCameraError(
                f"cannot open a virtual camera ({asked}): pyvirtualcam has no {backend!r} backend on this "
                f"system (available: {', '.join(available) or 'none'}); give one of those or no backend"
            )
        camera_factory, fmt = pyvirtualcam.Camera, pyvirtualcam.PixelFormat.RGB
    try:
        camera = camera_factory(width, height, fps, fmt=fmt, device=device, backend=backend)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # pyvirtualcam raises RuntimeError
        raise VirtualCameraError(
            f"cannot open a {width}x{height} virtual camera at {fps:g} fps ({asked}): {exc}. If no virtual "
            f"camera device exists: {SETUP_HINT}"
        ) from exc
    try:
        camera.send(np.zeros((height, width, 3), np.uint8))
    except Exception as exc:
        camera.close()
        raise VirtualCameraError(
            f"the virtual camera {camera.device} ({asked}) opened but refused a {width}x{height} RGB frame: "
            f"{exc}"
        ) from exc
    log.info("virtual camera %s open: %dx%d at %g fps", camera.device, width, height, fps)
    return camera


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width`` x ``height`` keeping its aspect ratio, centred on black.

    The scale is ``min(width / w, height / h)``, the scaled size rounded to whole pixels (at least 1), the
    bars split evenly (an odd pixel goes to the right or bottom bar). Resampling is PIL's bilinear filter,
    which averages over the source footprint when shrinking (Pillow's ``Image.resize``).

    Args:
        image: uint8 ``(h, w, 3)`` RGB.
        width, height: the output's size in pixels.

    Returns:
        A new uint8 ``(height, width, 3)`` RGB array.

    Raises:
        ValueError: for an image that is not uint8 ``(h, w, 3)``.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (h, w, 3) image, got {image.dtype} {image.shape}")
    source_h, source_w = image.shape[:2]
    scale = min(width / source_w, height / source_h)
    fit_w = min(width, max(1, round(source_w * scale)))
    fit_h = min(height, max(1, round(source_h * scale)))
    if (fit_w, fit_h) == (source_w, source_h):
        scaled = image
    else:
        scaled = np.asarray(
            Image.fromarray(np.ascontiguousarray(image)).resize((fit_w, fit_h), Image.Resampling.BILINEAR)
        )
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    out[top : top + fit_h, left : left + fit_w] = scaled
    return out


class VirtualCameraSink(PushSink[np.ndarray]):
    """One session's output to a virtual camera: each generated frame letterboxed to the camera's size and
    sent on the sink's own thread (never on the event loop).

    :meth:`stop` finishes the frame being sent, then calls ``on_stop`` (the :class:`VirtualCameraOutput`
    that lent the camera shows black and frees it); it does not close the camera, which outlives sessions.
    A ``send`` that raises ends the sink's task: the relay logs it and detaches the sink, and the stream and
    its other sinks go on.

    Args:
        camera: the opened camera (:func:`open_virtual_camera`); frames are uint8 ``(camera.height,
            camera.width, 3)`` RGB.
        view: one of :data:`VIEWS`.
        on_stop: called once, on the sink's thread, after its last frame was sent.

    Raises:
        ValueError: for a view not in :data:`VIEWS`.
    """

    name = "virtual-camera"

    def __init__(
        self, camera: VirtualCamera, *, view: str = "target", on_stop: Callable[[], None] | None = None
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown virtual camera view {view!r}; give one of {', '.join(VIEWS)}")
        super().__init__()
        self.camera = camera
        self.view = view
        self.frames_sent = 0
        """Frames handed to the camera so far."""
        self._on_stop = on_stop
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="virtual-camera")
        self._stopped = False

    def compose(self, frame: GeneratedFrame) -> np.ndarray:
        """The view, letterboxed into a new uint8 ``(camera.height, camera.width, 3)`` RGB array (generation
        worker thread)."""
        if self.view == "target":
            image = frame.generated
        else:
            image = np.concatenate((frame.stick_figure, frame.generated), axis=1)
        return letterbox(image, self.camera.width, self.camera.height)

    async def deliver(self, item: np.ndarray) -> None:
        """Hand ``item`` to the sink's thread and wait until the camera took it (newer items wait in the
        feed, latest wins)."""
        await asyncio.wrap_future(self._executor.submit(self._send, item))

    def _send(self, item: np.ndarray) -> None:  # the sink's thread
        self.camera.send(item)
        self.frames_sent += 1

    def _finish(self) -> None:  # the sink's thread, after every frame it was given
        log.info(
            "%s: sent %d frames to %s (%d dropped)",
            self.name,
            self.frames_sent,
            self.camera.device,
            self.dropped,
        )
        if self._on_stop is not None:
            self._on_stop()

    async def stop(self) -> None:
        """Take no more frames, finish the one being sent, then call ``on_stop`` (on the sink's thread).
        Idempotent; the camera stays open.

        Raises:
            Whatever ``on_stop`` raises.
        """
        await super().stop()
        if self._stopped:
            return
        self._stopped = True
        try:
            await asyncio.wrap_future(self._executor.submit(self._finish))
        finally:
            self._executor.shutdown(wait=False)


class _LentCamera:
    """The output's camera as lent to one sink: ``send`` refuses once the output is closed, and a send never
    runs while the camera is being closed."""

    def __init__(self, camera: VirtualCamera, lock: threading.Lock, is_closed: Callable[[], bool]) -> None:
        self._camera = camera
        self._lock = lock
        self._is_closed = is_closed

    @property
    def width(self) -> int:
        return self._camera.width

    @property
    def height(self) -> int:
        return self._camera.height

    @property
    def device(self) -> str:
        return self._camera.device

    def send(self, frame: np.ndarray) -> None:
        with self._lock:
            if self._is_closed():
                raise VirtualCameraError(f"the virtual camera {self.device} was closed (the server stopped)")
            self._camera.send(frame)

    def close(self) -> None:
        raise RuntimeError(
            "a session's virtual camera is closed by its VirtualCameraOutput, not by the session"
        )


class VirtualCameraOutput:
    """The server's one virtual camera, lent to one session at a time.

    Open it once at server start (:meth:`open`: a missing device is reported then, not at the first call),
    give :meth:`sink_for` to the sessions as their sink factory, and :meth:`close` it at shutdown. The first
    session that asks while the camera is free gets a :class:`VirtualCameraSink`; the others get None (they
    run without it). When the holder's sink stops, the camera shows black and the next session that starts
    gets it. Safe to call from the event loop and from the sinks' threads.

    Args:
        camera: an opened camera (:func:`open_virtual_camera`); the output closes it.
        view: what each session's sink shows, one of :data:`VIEWS`.

    Raises:
        ValueError: for a view not in :data:`VIEWS`.
    """

    def __init__(self, camera: VirtualCamera, *, view: str = "target") -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown virtual camera view {view!r}; give one of {', '.join(VIEWS)}")
        self.camera = camera
        self.view = view
        self._lock = threading.Lock()  # guards the holder and the closed flag (held briefly, on the loop too)
        self._io_lock = threading.Lock()  # one camera call at a time: sends (sinks' threads) and close
        self._holder: int | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        width: int,
        height: int,
        fps: float,
        *,
        device: str | None = None,
        backend: str | None = None,
        view: str = "target",
        camera_factory: CameraFactory | None = None,
    ) -> VirtualCameraOutput:
        """Open the camera (:func:`open_virtual_camera`, same arguments and errors) and wrap it.

        Raises:
            ValueError: for a bad size, rate or view.
            VirtualCameraError: as :func:`open_virtual_camera`.
        """
        if view not in VIEWS:
            raise ValueError(f"unknown virtual camera view {view!r}; give one of {', '.join(VIEWS)}")
        camera = open_virtual_camera(
            width, height, fps, device=device, backend=backend, camera_factory=camera_factory
        )
        return cls(camera, view=view)

    @property
    def holder(self) -> int | None:
        """The id of the session holding the camera, None while it is free."""
        return self._holder

    def sink_for(self, session_id: int) -> VirtualCameraSink | None:
        """Session ``session_id``'s sink to the camera, or None while another session holds it (or after
        :meth:`close`). The caller must await the sink's ``stop()`` (the relay does when the session ends):
        that frees the camera."""
        with self._lock:
            if self._closed:
                return None
            if self._holder is not None:
                log.info(
                    "session %d: the virtual camera %s is held by session %d; this session runs without it",
                    session_id,
                    self.camera.device,
                    self._holder,
                )
                return None
            self._holder = session_id
        log.info("session %d now holds the virtual camera %s", session_id, self.camera.device)
        lent = _LentCamera(self.camera, self._io_lock, lambda: self._closed)
        sink = VirtualCameraSink(lent, view=self.view, on_stop=lambda: self._release(session_id))
        sink.name = f"virtual-camera-{session_id}"
        return sink

    def _release(self, session_id: int) -> None:  # the sink's thread, after its last frame
        with self._io_lock:  # the holder's sink sends nothing more; the next holder sends after this
            if not self._closed:
                try:
                    self.camera.send(np.zeros((self.camera.height, self.camera.width, 3), np.uint8))
                except Exception:  # the camera is freed all the same; the next session's sink will report
                    log.exception("virtual camera %s: cannot show black between sessions", self.camera.device)
        with self._lock:
            if self._holder != session_id:
                return
            self._holder = None
        log.info("session %d gave back the virtual camera %s; it is free", session_id, self.camera.device)

    def close(self) -> None:
        """Close the camera (after a frame being sent); a sink still holding it then fails at its next frame
        and is detached. Idempotent."""
        with self._io_lock:  # after a frame being sent (at most one send's wait)
            with self._lock:
                if self._closed:
                    return
                self._closed = True
            self.camera.close()
        log.info("virtual camera %s closed", self.camera.device)
