"""Live server: serves the page and WebRTC signaling on one port and streams the target dancing back.

    python server.py --engine target.onnx [--engine other.onnx | --engine FOLDER] [--host 127.0.0.1]
        [--port 8080] [--cert cert.pem --key key.pem] [--max-sessions 4] [--test-stamp] [--record DIR]
        [--log-level info]

This file only wires the web (:mod:`realtime.serving.signaling`, :mod:`realtime.serving.stages`) and the
outputs (:mod:`realtime.serving.recorder` with ``--record``) to the pipeline (:mod:`realtime.model.pipeline`).
Ctrl-C or SIGTERM stops it cleanly: sessions closed (their recordings closed), tasks cancelled, peer
connections closed, the inference threads drained.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import math
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from realtime.catalog import (
    DEFAULT_IDLE_ACTION,
    DEFAULT_IDLE_AFTER_S,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_VIEWERS,
    DEFAULT_POSE_THREADS,
    DEFAULT_SESSION_STARTS_PER_MINUTE,
    ENGINE_SUFFIXES,
    GARMENTS,
    MODEL_CHOICES,
    MODEL_HELP,
    ONNX_SUFFIX,
    PLAYOUT_DELAYS,
    VIRTUAL_CAMERA_FPS,
    VIRTUAL_CAMERA_SIZE,
)

# Only light modules here: `--help` and argument errors must not wait for aiortc, PyAV, NumPy, torch or
# MediaPipe (seconds). The heavy ones are imported where they are used, after the arguments are checked.
from realtime.cli import canvas_size, positive_float
from realtime.console import filter_native_stderr
from realtime.serving.access import AccessPolicy, is_loopback, new_token
from realtime.targets import DEFAULT_TARGET, TARGETS_DIR

if TYPE_CHECKING:
    import ssl

    from realtime.serving.signaling import TargetChoice
    from realtime.serving.stages import RetargeterLike

log = logging.getLogger("server")

BUNDLED_TARGETS = TARGETS_DIR
"""Folder of bundled targets: the default ``--engine`` when it holds at least one engine (the bundled default
target :data:`realtime.targets.DEFAULT_TARGET` first)."""

MAX_PORT = 65535
EXIT_BAD_TARGET = 2
EXIT_CANNOT_LISTEN = 1
EXIT_NO_VIRTUAL_CAMERA = 3
EXIT_INTERRUPTED = 130
DEFAULT_TORCH_THREADS = 1
"""PyTorch intra-op threads in the live server (see ``--torch-threads``)."""
DEFAULT_GENERATOR_THREADS = 1
"""ONNX Runtime intra-op threads of a ``.onnx`` target's generator in the live server (see
``--generator-threads``)."""
DEFAULT_MAX_INPUT_FPS = 15.0
"""The camera frame rate the page is asked not to exceed (see ``--max-input-fps``)."""


class TargetLike(Protocol):
    """What the server needs of a loaded target (:class:`realtime.model.pipeline.Target` in production)."""

    @property
    def name(self) -> str:
        """The name the page lists."""
        ...

    @property
    def canvas_size(self) -> tuple[int, int]:
        """``(width, height)`` of the generated frames in pixels."""
        ...


TargetT = TypeVar("TargetT", bound=TargetLike)


@dataclass(frozen=True)
class TargetFactory(Generic[TargetT]):
    """How the server makes its targets: the one place the pipeline is chosen (tests pass a fake one).

    Attributes:
        load_target: an engine file -> a loaded target, shared by all its streams; raises (any exception,
            reported with the file's name) for a file it cannot load.
        make_retargeter: a loaded target -> one stream's own Retargeter (called off the event loop).
        action_labels: the actions a stream's target can perform (``/targets`` lists them; the page shows a
            button each).
    """

    load_target: Callable[[Path], TargetT]
    make_retargeter: Callable[[TargetT], RetargeterLike]
    action_labels: tuple[str, ...] = ()


def pipeline_factory(
    generator_threads: int = DEFAULT_GENERATOR_THREADS,
    model: str = "auto",
    idle_action: str | None = None,
    idle_after_s: float = DEFAULT_IDLE_AFTER_S,
) -> TargetFactory[Any]:
    """The real pipeline: :meth:`realtime.model.pipeline.Target.load` (``.onnx`` engines with
    ``generator_threads`` ONNX Runtime intra-op threads, 0 = all cores; ``model``: which of a bundle's models
    runs, :data:`realtime.catalog.MODEL_CHOICES`; a target whose pose estimator is not
    in :data:`realtime.catalog.POSE_ESTIMATORS` is refused) and a live
    :class:`realtime.model.pipeline.Retargeter` per stream, which performs ``idle_action`` (None: none) after
    ``idle_after_s`` with nobody found and plays the bundled actions on request
    (:mod:`realtime.model.actions`). Imports the pipeline (models, ML runtimes: slow).

    Raises:
        TargetLoadError: for an idle action the action artifact does not have (or no artifact).
    """
    from realtime.catalog import pose_estimator_entry
    from realtime.model.actions import ActionParams, read_action_labels
    from realtime.model.pipeline import Retargeter, Target

    actions = ActionParams(idle_action=idle_action, idle_after_s=idle_after_s)
    labels = read_action_labels(actions.artifact)
    if idle_action is not None and idle_action not in labels:
        raise TargetLoadError(
            f"--idle-action {idle_action!r} is not an action of {actions.artifact} "
            f"({', '.join(labels) or 'no such artifact'}); choose one, or off"
        )

    def load_target(path: Path) -> Target:
        options: dict[str, Any] = {"threads": generator_threads} if path.suffix.lower() == ONNX_SUFFIX else {}
        target = Target.load(path, model=model, **options)
        # A target prepared with a pose estimator this process does not know fails here, at start-up, not
        # when a session builds its Retargeter.
        pose_estimator_entry(target.bundle.pose_estimator)
        return target

    def live_retargeter(target: Target) -> Retargeter:
        return Retargeter(target, live=True, actions=actions)

    return TargetFactory(load_target=load_target, make_retargeter=live_retargeter, action_labels=labels)


class ListenError(Exception):
    """The server cannot listen on the address it was given."""


class TargetLoadError(Exception):
    """A target given on the command line cannot be loaded; the message says which and why."""


def engines_in(folder: Path) -> list[list[Path]]:
    """The engines of a folder of target bundles: per stem (sorted, the bundled default target's first), its
    engine files that have a ``.json`` sidecar, in :data:`realtime.catalog.ENGINE_SUFFIXES` order (the first
    that loads is used)."""
    stems: dict[str, list[Path]] = {}
    for suffix in ENGINE_SUFFIXES:
        for path in sorted(folder.glob(f"*{suffix}")):
            if path.is_file() and path.with_suffix(".json").is_file():
                stems.setdefault(path.stem, []).append(path)
    first = DEFAULT_TARGET.stem if folder.resolve() == TARGETS_DIR.resolve() else None
    return [stems[stem] for stem in sorted(stems, key=lambda stem: (stem != first, stem))]


def default_engines() -> list[Path]:
    """``[BUNDLED_TARGETS]`` when that folder holds an engine, else ``[]`` (then ``--engine`` is required)."""
    return [BUNDLED_TARGETS] if BUNDLED_TARGETS.is_dir() and engines_in(BUNDLED_TARGETS) else []


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python server.py``."""
    defaults = default_engines()
    parser = argparse.ArgumentParser(
        prog="server.py",
        description=(
            "Live motion retargeting server. Open the page it serves, choose a target and a camera, press "
            "Start, and watch the target person do your moves (camera | stick figure | generated, side by "
            "side, with frames per second and latency). The page, GET /targets, GET /status, the WebRTC "
            "signaling (WebSocket at /ws), WHIP ingest (POST /whip/TARGET: OBS and other WHIP publishers), "
            "WHEP playback (POST /whep/SESSION) and the OBS page (/obs?session=N) share one port."
        ),
        epilog=(
            "Browsers give the camera only to https pages or to localhost/127.0.0.1. To use the page from "
            "another device (a phone, another computer), serve HTTPS and WSS on the same port with --cert "
            "and --key, e.g. a self-signed pair made with: openssl req -x509 -newkey rsa:2048 -nodes "
            "-days 30 -subj /CN=dance -keyout key.pem -out cert.pem (the browser asks once to accept it), "
            "and --host 0.0.0.0 to listen on every interface: the server then requires a token (generated "
            "and printed in the page's URL unless --token gives one) from the page, WHIP and WHEP. Stop with "
            "Ctrl-C or SIGTERM (a second Ctrl-C exits at once)."
        ),
    )
    parser.add_argument(
        "--engine",
        type=Path,
        action="append",
        required=not defaults,
        help=(
            "a target to offer: NAME.plan (TensorRT), NAME.onnx (ONNX Runtime) or NAME.pt (PyTorch) with "
            "its NAME.json sidecar beside it, or a folder of such bundles; repeat to offer several (the page "
            "lists them; the first is the default)" + (f"; default: {defaults[0]}" if defaults else "")
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="TCP port for the page and the WebSocket, 1-65535, or 0 for any free one (default: %(default)s)",
    )
    parser.add_argument("--cert", type=Path, default=None, help="TLS certificate (PEM): serve HTTPS and WSS")
    parser.add_argument("--key", type=Path, default=None, help="the certificate's private key (PEM)")
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        help="clients served at once; the next one is told the server is full (default: %(default)s)",
    )
    parser.add_argument(
        "--pose-threads",
        type=int,
        default=DEFAULT_POSE_THREADS,
        help=(
            "threads estimating poses, shared by all sessions taking turns (one session's frames go one at a "
            "time); generation runs on one more thread, at the same time (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--generator-threads",
        type=int,
        default=DEFAULT_GENERATOR_THREADS,
        help=(
            "ONNX Runtime intra-op threads of a .onnx target's generator and face model, 0 = all cores. One "
            "core generates while MediaPipe estimates the next pose on the other: the bundled mannequin's "
            "generator took 10.8 ms per frame on 1 thread and 27.6 ms on 2 on the 2-core machine "
            "(default: %(default)s)"
        ),
    )
    parser.add_argument("--model", choices=MODEL_CHOICES, default="auto", help=MODEL_HELP)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=DEFAULT_TORCH_THREADS,
        help=(
            "PyTorch intra-op threads (the stick-figure rasterizer, .pt engines). The stages already run on "
            "threads of their own, and on 2 cores torch's extra threads only compete with them: the 256x256 "
            "rasterization took 7.6 ms with 1 thread and 10.7 ms with 2 on an idle 2-core machine "
            "(default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--max-input-fps",
        type=float,
        default=DEFAULT_MAX_INPUT_FPS,
        help=(
            "ask the page to send the camera at most this many frames per second, 0 = the camera's own rate. "
            "Frames beyond what the server can generate cost the browser an encode and the server a decode, "
            "and are then dropped as stale: on 2 CPU cores the pipeline makes ~15 fps, and capping the "
            "camera at 15 (instead of its 24) took glass-to-glass p95 from 258 to 242 ms in one 60 s browser "
            "run. Below this cap, a session whose frames the server drops is asked for about what it "
            "generates for it (input_rate messages). Raise it on a GPU server (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--playout-delay",
        choices=PLAYOUT_DELAYS,
        default=PLAYOUT_DELAYS[0],
        help=(
            "zero: the generated video carries the RTP playout-delay extension at 0, so the browser shows "
            "each frame as soon as it is decoded (lowest latency; over a network with jitter the motion may "
            "stutter); browser: leave the delay to the browser's jitter buffer, which smooths the server's "
            "varying processing time at the cost of latency. In three alternating pairs of 60 s runs of "
            "python -m bench.browser on the 2-core machine, a generated frame took 8-17 ms (median) from its "
            "last packet to the screen with zero and 43-78 ms with browser (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--test-stamp",
        action="store_true",
        help=(
            "test mode: copy the frame-index barcode at the top of each camera frame into the output frame "
            "made from it, for glass-to-glass latency measurements (see realtime/serving/stamp.py); "
            "off by default"
        ),
    )
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help=(
            "record each session's generated frames (the target alone, without the stick figure) to "
            "DIR/session-N.mp4 (H.264, timed by the camera's timestamps; N is the session's number in the "
            "log; an existing file of that name is replaced), encoding on a thread of its own and dropping "
            "frames when it falls behind; DIR is created if missing (default: no recording)"
        ),
    )
    parser.add_argument(
        "--token",
        default=None,
        help=(
            "the bearer token the page (?token=), WHIP and WHEP clients (Authorization: Bearer) must give. "
            "Default: none when listening on loopback only; a new random one, printed in the page's URL at "
            "start, when listening beyond loopback (--host 0.0.0.0 or a LAN address). A token that begins "
            "with '-' is given as --token=TOKEN"
        ),
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=(
            "a web page origin (scheme://host:port) besides the server's own page that may open the "
            "signaling WebSocket and call WHIP/WHEP from a browser (CORS); repeat for several, * for any. "
            "Other pages' "
            "WebSockets are refused with 403 (cross-site WebSocket hijacking) (default: the page's own only)"
        ),
    )
    parser.add_argument(
        "--session-starts-per-minute",
        type=int,
        default=DEFAULT_SESSION_STARTS_PER_MINUTE,
        help=(
            "session starts (page, WHIP, WHEP viewers) one client address may make a minute, 0 = no limit; "
            "loopback addresses are not limited (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--max-viewers",
        type=int,
        default=DEFAULT_MAX_VIEWERS,
        help="WHEP viewers of one session at once; the next is answered 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--virtual-camera",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help=(
            "send a session's generated target to a virtual camera for video calls (pyvirtualcam: "
            "v4l2loopback on Linux, OBS Virtual Camera on Windows and macOS; pip install pyvirtualcam; "
            "docs/virtual-camera.md): the first session that starts holds it, the next one after it ends. "
            "DEVICE, e.g. /dev/video10 or 'OBS Virtual Camera'; none given: the first free one. The server "
            "stops at start with what to install when no virtual camera exists (default: off)"
        ),
    )
    parser.add_argument(
        "--virtual-camera-size",
        type=canvas_size,
        default=VIRTUAL_CAMERA_SIZE,
        metavar="WxH",
        help="the virtual camera's frame size; the target is letterboxed into it (default: "
        f"{VIRTUAL_CAMERA_SIZE[0]}x{VIRTUAL_CAMERA_SIZE[1]})",
    )
    parser.add_argument(
        "--virtual-camera-fps",
        type=positive_float,
        default=VIRTUAL_CAMERA_FPS,
        help="the frame rate announced to the virtual camera (default: %(default)g)",
    )
    parser.add_argument(
        "--idle-action",
        default=DEFAULT_IDLE_ACTION,
        metavar="LABEL|off",
        help="the action the target performs in a loop while nobody is in frame (a label of the bundled "
        "actions, realtime/targets/actions), or off to have it stand still (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-after",
        type=positive_float,
        default=DEFAULT_IDLE_AFTER_S,
        metavar="SECONDS",
        help="seconds with nobody found before the idle action starts (default: %(default)g)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: %(default)s)",
    )
    return parser


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with parsed ``server.py`` arguments, in one line for ``parser.error``, or None.

    Checks what can be checked before anything is loaded: the port is 0-65535 (0: any free port), counts are
    >= 1, the camera cap is a finite number >= 0, the ``--engine`` paths exist, the ``--record`` folder can
    be written (it is created if missing), and ``--cert`` / ``--key`` are given together and are files.
    """
    if not 0 <= args.port <= MAX_PORT:
        return f"--port must be 1-{MAX_PORT}, or 0 for any free port; got {args.port}"
    if not args.host.strip():
        return "--host must not be empty (e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
    if args.token is not None and (
        not args.token or args.token != args.token.strip() or len(args.token) > 256
    ):
        return "--token must be 1-256 characters (no spaces at the ends)"
    for origin in args.allow_origin:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            return (
                f"--allow-origin {origin!r}: give an origin as scheme://host[:port], e.g. https://example.org"
            )
    if args.session_starts_per_minute < 0:
        return f"--session-starts-per-minute must be >= 0 (0: no limit), got {args.session_starts_per_minute}"
    for option, value in (
        ("--max-viewers", args.max_viewers),
        ("--max-sessions", args.max_sessions),
        ("--pose-threads", args.pose_threads),
        ("--torch-threads", args.torch_threads),
    ):
        if value < 1:
            return f"{option} must be >= 1, got {value}"
    if args.generator_threads < 0:
        return f"--generator-threads must be >= 0 (0: all cores), got {args.generator_threads}"
    if not (math.isfinite(args.max_input_fps) and args.max_input_fps >= 0):
        return f"--max-input-fps must be >= 0 (0: no cap), got {args.max_input_fps}"
    for path in args.engine or ():
        if not path.exists():
            return f"--engine {path}: no such file or folder"
    if args.record is not None:
        problem = check_writable_folder(args.record)
        if problem is not None:
            return f"--record {args.record}: {problem}"
    if (args.cert is None) != (args.key is None):
        return "--cert and --key go together: give both to serve HTTPS, or neither"
    for option, path in (("--cert", args.cert), ("--key", args.key)):
        if path is not None and not path.is_file():
            return f"{option} {path}: no such file"
    return None


def check_writable_folder(folder: Path) -> str | None:
    """What keeps files from being written into ``folder`` (created if missing), in a few words, or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "not a folder; give a folder to write the recordings into"
    except OSError as exc:
        return f"cannot create this folder ({exc.strerror or exc}); give a folder you can write to"
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return f"cannot write into this folder ({exc.strerror or exc}); give a folder you can write to"
    return None


def recorder_factory(folder: Path) -> Callable[[int], Any]:
    """The ``--record`` output: session N -> a :class:`realtime.serving.recorder.VideoRecorder` writing
    ``folder/session-N.mp4`` (a sink factory of ``SessionSettings.sinks``)."""
    from realtime.serving.recorder import VideoRecorder

    def make(session_id: int) -> VideoRecorder:
        return VideoRecorder(folder / f"session-{session_id}.mp4")

    return make


def page_url(host: str, port: int, *, https: bool = False, token: str | None = None) -> str:
    """The address to open in a browser for a server listening on ``host:port`` (with ``?token=`` when the
    server has a token)."""
    scheme = "https" if https else "http"
    query = "" if token is None else "?" + urllib.parse.urlencode({"token": token})
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{scheme}://{host}:{port}/{query}"
    if address.is_unspecified:
        return f"{scheme}://localhost:{port}/{query}"
    if address.version == 6:
        return f"{scheme}://[{host}]:{port}/{query}"
    return f"{scheme}://{host}:{port}/{query}"


def access_policy(args: argparse.Namespace) -> AccessPolicy:
    """The server's access policy from its options: ``--token`` if given, else a new random token when
    ``--host`` is beyond loopback (printed with the page's URL), else none; ``--allow-origin``;
    ``--session-starts-per-minute``."""
    token = args.token
    if token is None and not is_loopback(args.host):
        token = new_token()
        log.warning(
            "listening beyond loopback (%s): the page, WHIP and WHEP need the token printed below", args.host
        )
    return AccessPolicy.create(token, args.allow_origin, args.session_starts_per_minute)


def open_virtual_camera(args: argparse.Namespace) -> Any:
    """The ``--virtual-camera`` output (a :class:`realtime.serving.virtual_camera.VirtualCameraOutput`), or
    None without the option.

    Raises:
        realtime.serving.virtual_camera.VirtualCameraError: no virtual camera (with what to install).
    """
    if args.virtual_camera is None:
        return None
    from realtime.serving.virtual_camera import VirtualCameraOutput

    width, height = args.virtual_camera_size
    return VirtualCameraOutput.open(
        width, height, args.virtual_camera_fps, device=args.virtual_camera or None
    )


def load_targets(paths: Sequence[Path], factory: TargetFactory[Any]) -> list[TargetChoice]:
    """Load every engine named on the command line (files, or folders of bundles), in order.

    Each target is loaded once with ``factory.load_target`` and shared by all its streams; a stream gets its
    own ``factory.make_retargeter(target)``. A name used twice gets its engine file's name appended.

    Raises:
        TargetLoadError: for an engine that cannot be loaded, or a folder without any.
    """
    from realtime.model.appearance import has_reference_appearance
    from realtime.serving.signaling import TargetChoice

    choices: list[TargetChoice] = []
    for path in paths:
        if path.is_dir():
            groups = engines_in(path)
            if not groups:
                suffixes = "/".join(ENGINE_SUFFIXES)
                raise TargetLoadError(f"{path} holds no target bundles (NAME{suffixes} with NAME.json)")
        else:
            groups = [[path]]
        for candidates in groups:
            target: Any = None
            loaded_from = candidates[0]
            failures = []
            for candidate in candidates:
                try:
                    target = factory.load_target(candidate)
                    loaded_from = candidate
                    break
                except Exception as exc:  # every load failure is reported the same way, with its cause
                    log.debug("loading %s failed", candidate, exc_info=True)
                    failures.append(f"{candidate}: {exc}")
            if target is None:
                raise TargetLoadError("cannot load the target " + "; ".join(failures))
            for failure in failures:
                log.warning("skipped %s (loaded %s instead)", failure, loaded_from)
            name = str(target.name)
            if any(c.name == name for c in choices):
                name = f"{name} ({loaded_from.name})"
            role = getattr(target, "role", "only")
            which = "" if role == "only" else f", its {role}"
            width, height = target.canvas_size
            log.info("target %r loaded from %s (canvas %dx%d%s)", name, loaded_from, width, height, which)
            make = functools.partial(factory.make_retargeter, target)
            garments = tuple(GARMENTS) if has_reference_appearance(getattr(target, "per_target", {})) else ()
            choices.append(
                TargetChoice(name, make, tuple(target.canvas_size), garments, factory.action_labels)
            )
    return choices


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate and key.

    Raises:
        OSError, ssl.SSLError: if the files cannot be read or do not match.
    """
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def serve(
    targets: Sequence[TargetChoice],
    host: str,
    port: int,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    pose_threads: int = DEFAULT_POSE_THREADS,
    ssl_context: ssl.SSLContext | None = None,
    test_stamp: bool = False,
    max_input_fps: float = 0.0,
    playout_delay: str = PLAYOUT_DELAYS[0],
    record_dir: Path | None = None,
    access: AccessPolicy | None = None,
    max_viewers: int = DEFAULT_MAX_VIEWERS,
    virtual_camera: Any = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then close every session and drain the inference threads. With
    ``record_dir``, each session's generated frames are recorded there (:func:`recorder_factory`); with
    ``virtual_camera`` (a :class:`realtime.serving.virtual_camera.VirtualCameraOutput`), one session at a
    time is sent to it, and it is closed at the end. ``access``: the origin allowlist, token and start limit
    (none by default).

    Raises:
        ListenError: if ``host:port`` cannot be bound.
    """
    import asyncio
    import signal

    from realtime.serving.signaling import SessionSettings, SignalingServer
    from realtime.serving.workers import StreamWorkers

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # a second Ctrl-C while shutting down: the user wants out now
            log.warning("%s again while shutting down: exiting immediately", sig.name)
            os._exit(EXIT_INTERRUPTED)
        log.info("%s received", sig.name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    workers = StreamWorkers.create(pose_threads)
    sinks: list[Callable[[int], Any]] = []
    if record_dir is not None:
        sinks.append(recorder_factory(record_dir))
    if virtual_camera is not None:
        sinks.append(virtual_camera.sink_for)
    access = access or AccessPolicy()
    server = SignalingServer(
        targets,
        workers,
        max_sessions=max_sessions,
        ssl_context=ssl_context,
        settings=SessionSettings(
            test_stamp=test_stamp,
            max_input_fps=max_input_fps,
            zero_playout_delay=playout_delay == "zero",
            sinks=tuple(sinks),
            max_viewers=max_viewers,
        ),
        access=access,
    )
    try:
        try:
            await server.start(host, port)
        except OSError as exc:
            raise ListenError(f"cannot listen on {host}:{port}: {exc}") from exc
        if test_stamp:
            log.warning("test mode: copying the camera frames' index stamp into the output (--test-stamp)")
        url = page_url(host, server.port, https=ssl_context is not None, token=access.token)
        log.info("open %s in a browser (camera access needs https or localhost)", url)
        if access.token is not None:
            log.info("WHIP and WHEP clients: send the header Authorization: Bearer %s", access.token)
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()
        await asyncio.to_thread(workers.shutdown, wait=True)
        if virtual_camera is not None:
            virtual_camera.close()
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("stopped")


def main(argv: list[str] | None = None, factory: TargetFactory[Any] | None = None) -> int:
    """Run the server; returns the exit code (0 after Ctrl-C/SIGTERM, 2 for a target that cannot be loaded,
    3 for ``--virtual-camera`` without a virtual camera, 1 if the address cannot be bound). Bad arguments
    (see :func:`check_args`) and a certificate that cannot be used end it through ``parser.error``: usage,
    one line, exit status 2. ``factory`` makes the targets; None means the real pipeline
    (:func:`pipeline_factory`, imported only after the arguments are checked)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_args(args)
    if problem is not None:
        parser.error(problem)
    if args.log_level != "debug":
        filter_native_stderr()  # MediaPipe's and TensorFlow Lite's routine native log lines
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":  # aioice logs every ICE candidate pair check at INFO
        logging.getLogger("aioice").setLevel(logging.WARNING)
    import asyncio
    import ssl

    ssl_context = None
    if args.cert is not None:
        try:
            ssl_context = tls_context(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(
                f"cannot use the certificate {args.cert} with key {args.key} ({exc}): give a PEM "
                "certificate and its matching private key"
            )
    import torch  # heavy: after --help and the option checks

    torch.set_num_threads(args.torch_threads)
    idle_action = None if args.idle_action == "off" else args.idle_action
    try:
        if factory is None:
            factory = pipeline_factory(args.generator_threads, args.model, idle_action, args.idle_after)
        targets = load_targets(args.engine or default_engines(), factory)
    except TargetLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_TARGET
    from realtime.serving.virtual_camera import VirtualCameraError

    try:
        virtual_camera = open_virtual_camera(args)
    except VirtualCameraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_VIRTUAL_CAMERA
    try:
        asyncio.run(
            serve(
                targets,
                args.host,
                args.port,
                max_sessions=args.max_sessions,
                pose_threads=args.pose_threads,
                ssl_context=ssl_context,
                test_stamp=args.test_stamp,
                max_input_fps=args.max_input_fps,
                playout_delay=args.playout_delay,
                record_dir=args.record,
                access=access_policy(args),
                max_viewers=args.max_viewers,
                virtual_camera=virtual_camera,
            )
        )
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return 0


if __name__ == "__main__":
    sys.exit(main())
