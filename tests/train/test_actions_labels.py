"""The repository's label file of real clips (train/actions/labels/shared_clips.csv): it parses, every range
gives at least one training window, a part is held out, and its videos are the shared ones."""

from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from realtime.video import video_info
from train.actions.clips import read_label_file
from train.actions.config import DEFAULT_ACTIONS_CONFIG_PATH, load_actions_config
from train.actions.sequences import ACTION_LABELS

LABEL_FILE = Path(__file__).resolve().parents[2] / "train" / "actions" / "labels" / "shared_clips.csv"


def test_label_file_parses_with_window_long_ranges_and_a_held_out_part():
    rows = read_label_file(LABEL_FILE)
    data = load_actions_config(DEFAULT_ACTIONS_CONFIG_PATH).data
    assert rows and all(row.label in ACTION_LABELS for row in rows)
    for row in rows:
        # clips.estimate_clip takes floor(duration * fps) frames; a window is num_frames of them.
        frames = int((row.end_s - row.start_s) * data.fps)
        assert frames >= data.num_frames, (
            f"{row} gives {frames} frames, under one window of {data.num_frames}"
        )
        # the videos are the shared ones beside the checkout (../shared/data), never copies in the repo
        assert row.video.resolve().parent == SHARED_DATA.resolve(), row.video
    assert any(row.heldout for row in rows) and not all(row.heldout for row in rows)
    ranges = Counter(row.label for row in rows)
    for label, count in ranges.items():
        if count >= 2:  # a label with two ranges or more keeps one for training and holds one out
            splits = {row.heldout for row in rows if row.label == label}
            assert splits == {True, False}, f"{label}: {count} ranges, splits {splits}"
    # ranges of one video do not overlap (a held-out window never shares frames with a training one)
    for video in {row.video for row in rows}:
        spans = sorted((row.start_s, row.end_s) for row in rows if row.video == video)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False)), spans


def test_label_file_ranges_lie_within_their_videos():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (the real clips live in ../shared/data beside the checkout)")
    for row in read_label_file(LABEL_FILE):
        assert row.video.is_file(), f"{row.video} is missing"
        info = video_info(row.video)
        duration_s = info.num_frames / info.fps
        assert info.num_frames > 0 and 0.0 <= row.start_s < row.end_s <= duration_s, (row, duration_s)
