"""The OBS page in Chromium (``python -m bench.obs_page``): a live-page session shown full-window by WHEP over
chroma-key green, a plain colour and its own background; checked on the screenshots' pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.browser import skip_reason
from bench.obs_page import run_obs_page
from realtime.targets import DEFAULT_TARGET

pytestmark = pytest.mark.slow


def test_the_obs_page_shows_the_sessions_target_over_each_background(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from conftest import shared_video

    result, output = run_obs_page(DEFAULT_TARGET, shared_video("source_dance.mp4"), tmp_path, seconds=3)
    assert "failure" not in result, output
    assert result["session"] == 1 and "OBS page" in result["outputs_line"], result
    assert result["obs_link"] == "obs?session=1&background=green", result
    backdrops = {"green": (0x00, 0xB1, 0x40), "plate": (0x80, 0x80, 0x80)}
    for background, colour in backdrops.items():
        state = result[background]
        assert state["backgroundReady"] and not state["errors"] and state["frames"] > 40, state
        # Most of the frame is backdrop, but not all of it: the target stands in it.
        assert 0.6 < state["keyedFraction"] < 0.99, state
        pixels = np.asarray(Image.open(state["screenshot"]).convert("RGB"), np.int16)
        backdrop = np.all(np.abs(pixels - np.array(colour)) <= 2, axis=-1)
        assert backdrop[:20].all() and backdrop[:, :20].all(), background  # edges and letterbox bars
        assert 0.02 < 1 - backdrop.mean() < 0.4, (background, 1 - backdrop.mean())  # the target is there
    target = np.asarray(Image.open(result["target"]["screenshot"]).convert("RGB"), np.int16)
    assert result["target"]["frames"] > 40
    assert not np.all(np.abs(target - np.array(backdrops["green"])) <= 2, axis=-1).any()  # no keying
