"""Live server: serves the page and WebRTC signaling on one port and streams the target dancing back.

    python server.py --engine target.onnx [--host 127.0.0.1] [--port 8080] [--log-level info]

This file only wires the web (:mod:`realtime.signaling`, :mod:`realtime.stream`) to the pipeline
(:mod:`realtime.pipeline`). Ctrl-C or SIGTERM stops it cleanly: sessions closed, tasks cancelled, peer
connections closed, the thread pool drained.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from realtime.signaling import SignalingServer
from realtime.stream import RetargeterLike

log = logging.getLogger("server")

DEFAULT_ENGINE: Path | None = None
"""The bundled default target. None for now: a later change ships one and sets it here, which makes
``--engine`` optional."""

EXIT_BAD_TARGET = 2
EXIT_CANNOT_LISTEN = 1
EXIT_INTERRUPTED = 130


class ListenError(Exception):
    """The server cannot listen on the address it was given."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python server.py``."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description=(
            "Live motion retargeting server. Open the page it serves, allow the camera, press Start, and "
            "watch the target person do your moves (stick figure | generated, side by side). The page and "
            "the WebRTC signaling (WebSocket at /ws) share one port."
        ),
        epilog=(
            "Browsers give the camera only to https pages or to localhost/127.0.0.1; to serve other "
            "machines, put an https reverse proxy in front. Stop with Ctrl-C or SIGTERM (a second Ctrl-C "
            "exits at once)."
        ),
    )
    parser.add_argument(
        "--engine",
        type=Path,
        required=DEFAULT_ENGINE is None,
        default=DEFAULT_ENGINE,
        help=(
            "the exported target model: NAME.plan (TensorRT), NAME.onnx (ONNX Runtime) or NAME.pt (PyTorch), "
            "with its NAME.json sidecar beside it"
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="TCP port for the page and the WebSocket (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=(
            "threads running the pipeline, shared by all sessions (one session uses one at a time); "
            "default: 1 for a .plan engine (GPU work stays on one thread), else 2"
        ),
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: %(default)s)",
    )
    return parser


def page_url(host: str, port: int) -> str:
    """The address to open in a browser for a server listening on ``host:port``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}/"
    if address.is_unspecified:
        return f"http://localhost:{port}/"
    return f"http://[{host}]:{port}/" if address.version == 6 else f"http://{host}:{port}/"


async def serve(make_retargeter: Callable[[], RetargeterLike], host: str, port: int, workers: int) -> None:
    """Serve until SIGINT or SIGTERM, then close every session and drain the thread pool.

    Raises:
        ListenError: if ``host:port`` cannot be bound.
    """
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
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retarget")
    server = SignalingServer(make_retargeter, executor)
    try:
        try:
            await server.start(host, port)
        except OSError as exc:
            raise ListenError(f"cannot listen on {host}:{port}: {exc}") from exc
        log.info("open %s in a browser (camera access needs https or localhost)", page_url(host, server.port))
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()
        await loop.run_in_executor(None, functools.partial(executor.shutdown, wait=True, cancel_futures=True))
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit code (0 after Ctrl-C/SIGTERM, 2 for a target that cannot be
    loaded, 1 if the address cannot be bound)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":  # aioice logs every ICE candidate pair check at INFO
        logging.getLogger("aioice").setLevel(logging.WARNING)
    workers = args.workers or (1 if args.engine.suffix == ".plan" else 2)

    from realtime.pipeline import Retargeter, Target  # heavy (models, ML runtimes): after --help

    try:
        target = Target.load(args.engine)
    except Exception as exc:  # any failure to load is reported the same way: one line, exit code 2
        log.debug("loading the target failed", exc_info=True)
        print(f"error: cannot load the target {args.engine}: {exc}", file=sys.stderr)
        return EXIT_BAD_TARGET
    log.info("target %r loaded from %s (canvas %dx%d)", target.name, args.engine, *target.canvas_size)

    make_retargeter = functools.partial(Retargeter, target, live=True)
    try:
        asyncio.run(serve(make_retargeter, args.host, args.port, workers))
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return 0


if __name__ == "__main__":
    sys.exit(main())
