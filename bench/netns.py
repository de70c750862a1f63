"""Run a server and a client together inside a fresh network namespace, for WebRTC tests and measurements.

aiortc never offers 127.0.0.1 as an ICE candidate, so WebRTC tests use 127.0.0.2 on the loopback of a new
network namespace (``unshare -n``; ``unshare -r -n`` for non-root users where user namespaces are allowed):
no other interface exists there, so no traffic can leave the machine.

From a test or a measurement (``from bench import netns``)::

    reason = netns.skip_reason()
    if reason: pytest.skip(reason)
    result = netns.run_server_and_client(server_argv, client_argv, port=8080)

Inside the namespace this file runs as a script (``python bench/netns.py SPEC_JSON``): it starts the server,
waits for its port, runs the client, stops the server with SIGTERM, and prints one line
``NETNS-RESULT {json}`` with both exit codes and how long the server took to stop.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NETNS_HOST = "127.0.0.2"
"""The address WebRTC tests listen on and connect to."""

SETUP = f"ip link set lo up && ip addr add {NETNS_HOST}/8 dev lo"
"""Shell commands run first inside the new namespace."""

RESULT_PREFIX = "NETNS-RESULT "
REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository root: both commands run there (so ``python -m bench.client`` finds :mod:`bench`)."""
_UNSHARE_VARIANTS = (["unshare", "-n"], ["unshare", "-r", "-n"])


@functools.cache
def _unshare_prefix() -> tuple[list[str] | None, str]:
    """The first ``unshare`` command line that can make and set up a namespace here, or None and why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None, "WebRTC tests need `unshare` (util-linux) and `ip` (iproute2), and one is not installed"
    failures = []
    for prefix in _UNSHARE_VARIANTS:
        try:
            proc = subprocess.run(
                [*prefix, "sh", "-c", SETUP], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            failures.append(f"`{' '.join(prefix)}`: {exc}")
            continue
        if proc.returncode == 0:
            return list(prefix), ""
        failures.append(f"`{' '.join(prefix)}`: {proc.stderr.strip() or f'exit code {proc.returncode}'}")
    return None, "cannot create a network namespace for WebRTC tests (" + "; ".join(failures) + ")"


def skip_reason() -> str | None:
    """None where a network namespace can be made here, else the reason WebRTC tests are skipped."""
    prefix, reason = _unshare_prefix()
    return None if prefix is not None else reason


def in_netns(argv: list[str]) -> list[str]:
    """``argv`` wrapped to run in a fresh network namespace whose loopback is up and has :data:`NETNS_HOST`.

    Raises:
        RuntimeError: where no namespace can be made (check :func:`skip_reason` first).
    """
    prefix, reason = _unshare_prefix()
    if prefix is None:
        raise RuntimeError(reason)
    return [*prefix, "sh", "-c", f'{SETUP} && exec "$0" "$@"', *argv]


@dataclass(frozen=True)
class NetnsRun:
    """What :func:`run_server_and_client` saw.

    Attributes:
        client_rc: the client's exit code (None if it timed out).
        server_rc: the server's exit code after SIGTERM (None if it had to be killed).
        server_stop_s: seconds from SIGTERM to the server's exit.
        server_early_rc: the server's exit code if it exited on its own before being stopped (else None).
        output: everything printed inside the namespace (stdout and stderr), for failure messages.
    """

    client_rc: int | None
    server_rc: int | None
    server_stop_s: float | None
    server_early_rc: int | None
    output: str


def run_server_and_client(
    server_argv: list[str],
    client_argv: list[str],
    *,
    port: int,
    host: str = NETNS_HOST,
    start_timeout_s: float = 60.0,
    client_timeout_s: float = 120.0,
    stop_timeout_s: float = 20.0,
    sigterm_server_after_s: float | None = None,
) -> NetnsRun:
    """Start ``server_argv``, wait until ``host:port`` accepts, run ``client_argv``, SIGTERM the server, all
    inside one fresh network namespace. Both commands run in the repository root.

    With ``sigterm_server_after_s``, the server gets SIGTERM that long after the client started, while the
    client still runs (a shutdown with a live session); otherwise after the client exited.

    Raises:
        RuntimeError: where no namespace can be made, or if the namespace run reports nothing.
    """
    spec = {
        "server": server_argv,
        "client": client_argv,
        "host": host,
        "port": port,
        "start_timeout_s": start_timeout_s,
        "client_timeout_s": client_timeout_s,
        "stop_timeout_s": stop_timeout_s,
        "sigterm_server_after_s": sigterm_server_after_s,
    }
    argv = in_netns([sys.executable, str(Path(__file__).resolve()), json.dumps(spec)])
    outer_timeout_s = start_timeout_s + client_timeout_s + stop_timeout_s + 30.0
    result, output = _run_for_result(argv, RESULT_PREFIX, outer_timeout_s, "namespace")
    return NetnsRun(output=output, **result)


def run_module(
    module: str, spec: dict[str, Any], result_prefix: str, timeout_s: float, what: str
) -> tuple[dict[str, Any], str]:
    """Run ``python -m MODULE --inner SPEC_JSON`` from the repository root inside a fresh namespace (the
    measurements of :mod:`bench.browser`, :mod:`bench.obs_page`, :mod:`bench.whip_clients`); returns the JSON
    of its last line starting with ``result_prefix``, and everything it printed.

    Raises:
        RuntimeError: where no namespace can be made, or if the run printed no result (``what`` names it).
        subprocess.TimeoutExpired: after ``timeout_s`` seconds.
    """
    argv = in_netns([sys.executable, "-m", module, "--inner", json.dumps(spec)])
    return _run_for_result(argv, result_prefix, timeout_s, what)


def _run_for_result(
    argv: list[str], result_prefix: str, timeout_s: float, what: str
) -> tuple[dict[str, Any], str]:
    """Run ``argv`` from the repository root; the JSON of its last output line starting with
    ``result_prefix``, and everything it printed (stdout and stderr).

    Raises:
        RuntimeError: if it printed no such line (``what`` names the run).
        subprocess.TimeoutExpired: after ``timeout_s`` seconds.
    """
    proc = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(result_prefix):
            return json.loads(line[len(result_prefix) :]), proc.stdout
    raise RuntimeError(f"the {what} run printed no result (exit code {proc.returncode}):\n{proc.stdout}")


def _wait_for_port(host: str, port: int, server: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop_server(server: subprocess.Popen[bytes], timeout_s: float, result: dict[str, Any]) -> None:
    stop_start_s = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        result["server_rc"] = server.wait(timeout=timeout_s)
        result["server_stop_s"] = round(time.monotonic() - stop_start_s, 3)
    except subprocess.TimeoutExpired:
        print(f"netns: the server ignored SIGTERM for {timeout_s} s; killing it", file=sys.stderr)
        server.kill()
        server.wait()


def _main(spec_json: str) -> int:
    """Inside the namespace: server up, client run, server stopped; prints the :data:`RESULT_PREFIX` line."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {
        "client_rc": None,
        "server_rc": None,
        "server_stop_s": None,
        "server_early_rc": None,
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(spec["server"], env=env)
    stopped = False
    try:
        if not _wait_for_port(spec["host"], spec["port"], server, spec["start_timeout_s"]):
            print(f"netns: the server did not listen on {spec['host']}:{spec['port']}", file=sys.stderr)
        else:
            client = subprocess.Popen(spec["client"], env=env)
            if spec["sigterm_server_after_s"] is not None:
                time.sleep(spec["sigterm_server_after_s"])
                stopped = True
                _stop_server(server, spec["stop_timeout_s"], result)
            try:
                result["client_rc"] = client.wait(timeout=spec["client_timeout_s"])
            except subprocess.TimeoutExpired:
                print(f"netns: the client ran over {spec['client_timeout_s']} s", file=sys.stderr)
                client.kill()
                client.wait()
    finally:
        if not stopped:
            early_rc = server.poll()
            if early_rc is not None:
                result["server_early_rc"] = early_rc
            else:
                _stop_server(server, spec["stop_timeout_s"], result)
    sys.stdout.flush()
    sys.stderr.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
