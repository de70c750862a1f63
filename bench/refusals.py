"""Every refusal of the server's access control and WHIP/WHEP endpoints, as a client sees it: one row per case
with the HTTP status (or the WebSocket's close) and the server's one line.

    python -m bench.refusals [--engine TARGET.onnx] [--json OUT]

Starts ``server.py`` on 127.0.0.1 with ``--token`` and ``--max-sessions 1`` (no media flows: the offers carry
no ICE candidates, so nothing is sent anywhere), then tries each case and prints a markdown table. The
per-address start limit (429) exempts loopback, so it is shown by ``tests/realtime/serving/test_whip.py``,
not here.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.targets import DEFAULT_TARGET

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-refusals-token"


async def offer_without_candidates() -> str:
    """A sendonly video offer from aiortc with its ICE candidates removed (nothing can be sent)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))


def request(
    port: int, method: str, path: str, body: str | None = None, **headers: str
) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else body.encode(), headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode().strip(), dict(response.getheaders())
    finally:
        conn.close()


async def websocket_status(url: str, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and line of a refused WebSocket handshake, or (101, first message) if accepted."""
    try:
        async with connect(url, **kwargs) as ws:
            message = await asyncio.wait_for(ws.recv(), 10)
            await ws.close()
            return 101, f"{message} (then closed with {ws.close_code})"
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode().strip()


async def cases(port: int) -> list[dict[str, Any]]:
    offer = await offer_without_candidates()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    sdp = {"Content-Type": "application/sdp"}
    rows: list[dict[str, Any]] = []

    def row(case: str, status: int, line: str) -> None:
        rows.append({"case": case, "status": status, "line": line})

    ws = f"ws://127.0.0.1:{port}/ws"
    row(
        "page WebSocket from another site's page",
        *await websocket_status(f"{ws}?token={TOKEN}", origin="https://evil.example"),
    )  # type: ignore[arg-type]
    row("page WebSocket without the token", *await websocket_status(ws))
    row("page WebSocket with a wrong token", *await websocket_status(f"{ws}?token=wrong"))
    row("GET /targets without the token", *request(port, "GET", "/targets")[:2])
    row("WHIP without the token", *request(port, "POST", "/whip", offer, **sdp)[:2])
    row(
        "WHIP with a wrong token", *request(port, "POST", "/whip", offer, **sdp, Authorization="Bearer x")[:2]
    )
    row("WHEP without the token", *request(port, "POST", "/whep/1", offer, **sdp)[:2])
    as_json = {"Content-Type": "application/json", **bearer}
    row(
        "WHIP offer that is not SDP",
        *request(port, "POST", "/whip", json.dumps({"sdp": offer}), **as_json)[:2],
    )
    row("WHIP to an unknown target", *request(port, "POST", "/whip/nobody", offer, **sdp, **bearer)[:2])
    status, line, headers = request(port, "POST", "/whip", offer, **sdp, **bearer)
    row("WHIP publish (admitted: fills the server)", status, f"Location: {headers.get('Location')}")
    status, line, headers = request(port, "POST", "/whip", offer, **sdp, **bearer)
    row(f"WHIP to a full server (Retry-After: {headers.get('Retry-After')})", status, line)
    row("page WebSocket to a full server", *await websocket_status(f"{ws}?token={TOKEN}"))
    row(
        "WHEP of a session that does not exist",
        *request(port, "POST", "/whep/99", offer, **sdp, **bearer)[:2],
    )
    row("DELETE of an unknown WHIP resource", *request(port, "DELETE", "/whip/sessions/99", **bearer)[:2])
    row(
        "PATCH (trickle ICE) of a WHIP session",
        *request(port, "PATCH", "/whip/sessions/1", "a=x", **sdp, **bearer)[:2],
    )
    row("GET on the WHIP endpoint", *request(port, "GET", "/whip", **bearer)[:2])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refusals", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engine", type=Path, default=DEFAULT_TARGET, help="target (default: the bundled one)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "server.py", "--engine", str(args.engine), "--port", str(port), "--token", TOKEN,
         "--max-sessions", "1", "--log-level", "warning"],
        cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request(port, "GET", "/")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("error: server.py did not start", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        rows = asyncio.run(cases(port))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("| case | status | the server's line |\n|---|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['status']} | {r['line'][:220]} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
