"""``python server.py`` with no ``--engine`` (the README's main command) serves the bundled mannequin."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import server as server_cli
from realtime.targets import DEFAULT_TARGET, TARGETS_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0


def start(*argv: str) -> subprocess.Popen[str]:
    """``argv`` running from the repository root, its output (stdout and stderr) readable as text."""
    return subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_bundled_folder_is_the_default_engine():
    assert server_cli.build_parser().parse_args([]).engine is None
    assert server_cli.default_engines() == [TARGETS_DIR]
    targets = server_cli.load_targets(server_cli.default_engines(), server_cli.pipeline_factory())
    assert targets[0].name == DEFAULT_TARGET.stem and targets[0].canvas_size == (256, 256)
    assert "actions" not in [t.name for t in targets]  # the action artifact's folder is not a target


def test_the_idle_action_is_on_by_default_and_reaches_each_stream(capsys):
    """``--idle-action`` (default idle_sway, or off) and ``--idle-after`` reach every stream's Retargeter;
    ``/targets`` lists the bundled actions per target; an unknown idle action stops the server at start."""
    from realtime.model.actions import read_action_labels

    args = server_cli.build_parser().parse_args([])
    assert (args.idle_action, args.idle_after) == ("idle_sway", 5.0)
    factory = server_cli.pipeline_factory(idle_action="turn", idle_after_s=2.5)
    (choice,) = server_cli.load_targets([DEFAULT_TARGET], factory)
    assert choice.actions == read_action_labels() and "wave" in choice.actions
    assert choice.describe()["actions"] == list(choice.actions)
    retargeter = choice.make_retargeter()
    try:
        assert retargeter.action_params.idle_action == "turn" and retargeter.action_params.idle_after_s == 2.5
    finally:
        retargeter.close()
    off = server_cli.pipeline_factory(idle_action=None)
    assert off.make_retargeter(factory.load_target(DEFAULT_TARGET)).action_params.idle_action is None
    argv = ["--idle-action", "dance", "--port", "0", "--log-level", "debug"]  # debug: stderr unfiltered
    assert server_cli.main(argv) == server_cli.EXIT_BAD_TARGET
    assert "--idle-action 'dance' is not an action" in capsys.readouterr().err


def test_the_generator_threads_reach_onnx_runtime():
    """``--generator-threads``: one core for the generator by default, the other for MediaPipe's pose."""
    for threads in (server_cli.DEFAULT_GENERATOR_THREADS, 2):
        target = server_cli.pipeline_factory(threads).load_target(DEFAULT_TARGET)
        session = target.backend._session
        assert session.get_session_options().intra_op_num_threads == threads
    assert server_cli.DEFAULT_GENERATOR_THREADS == 1


def test_playout_delay_is_zero_unless_asked():
    """``--playout-delay``: the generated video asks the browser to show frames once decoded, by default."""
    parser = server_cli.build_parser()
    assert parser.parse_args([]).playout_delay == "zero"
    assert parser.parse_args(["--playout-delay", "browser"]).playout_delay == "browser"


def test_record_takes_a_folder_it_can_write_and_names_a_file_per_session(tmp_path):
    """``--record DIR``: DIR/session-N.mp4 per session; a folder that cannot be written: a one-line error."""
    parser = server_cli.build_parser()
    folder = tmp_path / "recordings" / "today"
    args = parser.parse_args(["--record", str(folder)])
    assert server_cli.check_args(args) is None and folder.is_dir()  # created
    assert parser.parse_args([]).record is None
    a_file = tmp_path / "file.mp4"
    a_file.write_bytes(b"")
    problem = server_cli.check_args(parser.parse_args(["--record", str(a_file)]))
    assert problem is not None and problem.startswith(f"--record {a_file}: not a folder")
    problem = server_cli.check_args(parser.parse_args(["--record", str(a_file / "sub")]))
    assert problem is not None and "cannot create this folder" in problem
    recorder = server_cli.recorder_factory(folder)(3)
    assert recorder.path == folder / "session-3.mp4" and not recorder.path.exists()  # written from frame 1


HEAVY_MODULES = ("asyncio", "numpy", "av", "aiortc", "websockets", "torch", "mediapipe", "onnxruntime")


def test_help_and_argument_errors_import_no_heavy_module():
    """``--help`` and bad arguments answer at once: nothing heavy is imported before the arguments are
    checked (``--help`` took 1.7 s with aiortc, PyAV and NumPy imported at the top, 0.2 s without)."""
    probe = (
        "import runpy, sys\n"
        "try:\n"
        "    runpy.run_path('server.py', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    for argv in (["--help"], ["--port", "80000"], ["--engine", "missing.onnx"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.stdout.strip().splitlines()[-2:] == [
            "exit " + ("0" if argv == ["--help"] else "2"),
            "[]",
        ], (
            argv,
            result.stdout,
            result.stderr,
        )


def test_server_with_no_engine_serves_the_page_and_the_mannequin():
    port = free_port()
    server = start(sys.executable, "server.py", "--host", "127.0.0.1", "--port", str(port))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        targets = None
        while targets is None:
            assert server.poll() is None, f"server.py exited: {server.communicate()[0]}"
            assert time.monotonic() < deadline, "server.py did not answer GET /targets in time"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/targets", timeout=5) as response:
                    targets = json.load(response)
            except OSError:
                time.sleep(0.5)
        assert targets["default"] == DEFAULT_TARGET.stem
        assert targets["max_input_fps"] == server_cli.DEFAULT_MAX_INPUT_FPS  # the page caps the camera
        assert [t["name"] for t in targets["targets"]] == [DEFAULT_TARGET.stem]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200 and b"<video" in response.read()
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output


def test_offline_retarget_with_no_engine_uses_the_bundled_mannequin(tmp_path, capsys):
    from conftest import shared_video
    from realtime.offline.cli import main as retarget_main
    from realtime.video import video_info

    out = tmp_path / "result.mp4"
    assert (
        retarget_main(
            ["--source", str(shared_video("source_dance.mp4")), "--out", str(out), "--max-frames", "4"]
        )
        == 0
    )
    assert "4 frames (4 with a person)" in capsys.readouterr().out
    info = video_info(out)
    assert info.num_frames == 4 and info.height == 256  # source | stick figure | mannequin, 256 px high


def test_the_one_engine_table_names_a_backend_for_every_suffix_the_server_scans(tmp_path) -> None:
    """realtime.catalog.BACKENDS is the only list of engine suffixes: the server scans a folder for exactly
    those (in its order of preference), and each entry names an InferenceBackend the factory can import (the
    TensorRT one without TensorRT installed)."""
    from realtime.catalog import BACKENDS, ENGINE_SUFFIXES
    from realtime.model.backends import BackendError, InferenceBackend, backend_factory

    assert ENGINE_SUFFIXES == tuple(BACKENDS) and server_cli.ENGINE_SUFFIXES is ENGINE_SUFFIXES
    for suffix in ENGINE_SUFFIXES:
        factory = backend_factory(suffix)
        assert isinstance(factory, type) and issubclass(factory, InferenceBackend), (suffix, factory)
    with pytest.raises(BackendError, match="unknown engine type"):
        backend_factory(".bin")
    for suffix in (*ENGINE_SUFFIXES, ".bin"):
        (tmp_path / f"a{suffix}").write_bytes(b"")
    (tmp_path / "a.json").write_text("{}")
    assert server_cli.engines_in(tmp_path) == [[tmp_path / f"a{suffix}" for suffix in ENGINE_SUFFIXES]]


def test_a_target_with_an_unknown_pose_estimator_is_refused_at_start_up(tiny_engine, tmp_path) -> None:
    import shutil

    engine = Path(shutil.copy(tiny_engine, tmp_path / tiny_engine.name))
    sidecar = json.loads(tiny_engine.with_suffix(".json").read_text())
    sidecar["pose_estimator"] = "openpose-plugin"
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(server_cli.TargetLoadError, match="unknown pose estimator 'openpose-plugin'"):
        server_cli.load_targets([engine], server_cli.pipeline_factory())


def test_beyond_loopback_the_server_makes_a_token_and_prints_it_in_the_pages_url(tmp_path):
    """``--host 0.0.0.0`` without ``--token``: a new token, printed in the page's URL; requests without it
    are refused with 401 and one line, with it they are served (only loopback is spoken to here)."""
    from fake_pipeline import server_command

    engine = tmp_path / "fake.json"
    engine.write_text("{}")
    port = free_port()
    server = start(*server_command("--engine", str(engine), "--host", "0.0.0.0", "--port", str(port)))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = None
        lines = []
        while url is None:
            assert time.monotonic() < deadline and server.poll() is None, "".join(lines)
            line = server.stdout.readline()
            lines.append(line)
            if "open http://localhost:" in line:
                url = line.split("open ", 1)[1].split()[0]
        token = url.split("?token=", 1)[1]
        assert len(token) >= 20 and any("need the token" in line for line in lines), lines
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/targets", timeout=5)
        assert refused.value.code == 401 and b"token" in refused.value.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/targets?token={token}", timeout=5) as response:
            assert json.load(response)["default"] == "fake"
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output


def test_a_virtual_camera_that_does_not_exist_stops_the_server_at_start_with_what_to_install(tmp_path):
    """No v4l2loopback device (or no pyvirtualcam) here: exit status 3 and one line saying what to do."""
    from fake_pipeline import server_command

    engine = tmp_path / "fake.json"
    engine.write_text("{}")
    result = subprocess.run(
        server_command("--engine", str(engine), "--port", "0", "--virtual-camera"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == server_cli.EXIT_NO_VIRTUAL_CAMERA, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and ("v4l2loopback" in last or "pip install" in last), result.stderr
    assert "Traceback" not in result.stderr
