"""``python -m realtime.offline --action``: the bundled mannequin performing an action, no source video."""

import numpy as np

from realtime.offline.cli import main
from realtime.video import read_frames, video_info


def test_the_offline_tool_renders_an_action_to_a_video(tmp_path, capsys):
    out = tmp_path / "wave.mp4"
    assert main(["--action", "wave", "--seconds", "1", "--fps", "24", "--out", str(out)]) == 0
    assert f"wrote {out}: wave for 1.00 s, 24 frames at 24 fps" in capsys.readouterr().out
    info = video_info(out)
    assert (info.num_frames, info.width, info.height) == (24, 512, 256)  # stick figure | mannequin
    frames = np.stack([rgb for rgb, _ in read_frames(out)])
    stick, generated = frames[:, :, :256], frames[:, :, 256:]
    assert (stick.reshape(24, -1).max(axis=1) > 100).all()  # a figure in every frame
    assert generated.mean() > 60  # the mannequin's room, not the black start of the temporal generator
    assert np.abs(np.diff(stick.astype(np.float32), axis=0)).mean() > 0.05  # it moves

    assert main(["--action", "dance", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "unknown action 'dance'; known: wave" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
