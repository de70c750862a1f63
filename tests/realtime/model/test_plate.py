"""The background plate's producer (realtime/model/plate.py): a known background behind a moving square."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.model.inputs import InputRole, TargetFrames, declared_input, produce_target_input
from realtime.model.plate import BACKGROUND_PLATE, median_plate
from realtime.pose.skeleton import NUM_JOINTS

HEIGHT, WIDTH, FRAMES = 48, 64, 16


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random background, a bright square moving left to right over it (its mask 255 where it is, with a
    soft edge the mask misses by a pixel), a block at the top right there for 12 of the 16 frames, and a block
    at the bottom left that covers the same place in every frame (a person standing still there):
    ``(background (H, W, 3), frames (N, H, W, 3), masks (N, H, W))``."""
    rng = np.random.default_rng(seed)
    background = rng.integers(20, 235, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = np.repeat(background[None], FRAMES, axis=0)
    masks = np.zeros((FRAMES, HEIGHT, WIDTH), np.uint8)
    for i in range(FRAMES):
        x = 3 * i
        frames[i, 8:28, max(0, x - 1) : x + 13] = 250  # a pixel of "soft edge" either side of the mask
        masks[i, 8:28, x : x + 12] = 255
    frames[:12, 0:6, 50:60] = 250  # a person who stands there for 12 of the 16 frames, then leaves
    masks[:12, 0:6, 50:60] = 255
    frames[:, 36:46, 2:12] = 0
    masks[:, 36:46, 2:12] = 255
    return background, frames, masks


def test_the_plate_is_the_background_also_where_the_square_passed() -> None:
    background, frames, masks = _scene()
    plate, seen = median_plate(frames, masks, dilation_px=2)
    assert plate.dtype == np.float32 and plate.shape == (3, HEIGHT, WIDTH)
    assert 0.0 <= plate.min() and plate.max() <= 1.0
    error = np.abs(plate.transpose(1, 2, 0) * 255.0 - background.astype(np.float32))
    # Where the square covered the background in some frames (every column it swept), exact.
    swept = masks[:, :, :].max(axis=0) > 0
    swept[36:46, 2:12] = False
    assert swept.sum() > 600
    assert error[swept].max() < 0.5
    assert error[seen].max() < 0.5
    # Unseen: only the standing block grown by the dilation (2 px).
    unseen = ~seen
    assert (
        unseen[36:46, 2:12].all()
        and unseen.sum() < 14 * 14
        and not unseen[:34].any()
        and not unseen[:, 14:].any()
    )
    # Where the person stood for most frames, the plain median shows them; the masked median does not.
    plain = np.median(frames, axis=0)
    assert np.abs(plain[0:6, 50:60] - background[0:6, 50:60]).min() > 10
    assert error[0:6, 50:60].max() < 0.5


def test_never_seen_pixels_are_filled_from_the_nearest_seen_pixel() -> None:
    background, frames, masks = _scene()
    plate, seen = median_plate(frames, masks, dilation_px=0)
    assert not seen[36:46, 2:12].any() and seen[:, 20:].all()
    block = plate[:, 36:46, 2:12].transpose(1, 2, 0) * 255.0
    assert not np.isnan(block).any()
    # Each filled pixel holds the value of a seen pixel next to the block (never black, the person's colour).
    border = np.concatenate(
        [background[35, 1:13], background[46, 1:13], background[35:47, 1], background[35:47, 12]]
    ).astype(np.float32)
    for pixel in block.reshape(-1, 3):
        assert np.abs(border - pixel).sum(axis=1).min() < 1.0
    # The top-left filled pixel is its nearest seen neighbour's value (one pixel up or left).
    candidates = [background[35, 2].astype(np.float32), background[36, 1].astype(np.float32)]
    assert min(np.abs(block[0, 0] - c).max() for c in candidates) < 0.5


def test_bands_memory_maps_and_frame_subsampling_do_not_change_the_plate(tmp_path) -> None:
    _, frames, masks = _scene(seed=1)
    whole, _ = median_plate(frames, masks)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "masks.npy", masks)
    on_disk = np.load(tmp_path / "frames.npy", mmap_mode="r"), np.load(tmp_path / "masks.npy", mmap_mode="r")
    banded, _ = median_plate(*on_disk, band_bytes=1)  # one row per band (each with its margin)
    np.testing.assert_array_equal(whole, banded)
    few, seen_in_few = median_plate(frames, masks, max_frames=FRAMES // 2)
    assert seen_in_few.mean() > 0.9
    assert np.abs(few - whole)[:, seen_in_few].max() < 0.5 / 255


def test_a_person_everywhere_falls_back_to_the_plain_median(caplog: pytest.LogCaptureFixture) -> None:
    _, frames, _ = _scene()
    masks = np.full(frames.shape[:3], 255, np.uint8)
    plate, seen = median_plate(frames, masks)
    assert not seen.any() and "covers every pixel" in caplog.text
    np.testing.assert_allclose(plate.transpose(1, 2, 0), np.median(frames, axis=0) / 255.0, atol=1e-6)


def test_shape_and_dtype_errors() -> None:
    _, frames, masks = _scene()
    with pytest.raises(ValueError, match="frames must be uint8"):
        median_plate(frames.astype(np.float32), masks)
    with pytest.raises(ValueError, match="frames must be uint8"):
        median_plate(frames[..., :2], masks)
    with pytest.raises(ValueError, match="masks must be uint8"):
        median_plate(frames, masks[:, :-1])
    with pytest.raises(ValueError, match="masks must be uint8"):
        median_plate(frames, masks.astype(bool))
    with pytest.raises(ValueError, match="dilation_px"):
        median_plate(frames, masks, dilation_px=-1)


def test_the_plate_is_a_declared_per_target_input() -> None:
    assert declared_input("background_plate") == BACKGROUND_PLATE
    assert BACKGROUND_PLATE.role is InputRole.PER_TARGET and BACKGROUND_PLATE.channels == 3
    background, frames, masks = _scene()
    joints = np.zeros((FRAMES, NUM_JOINTS, 2), np.float32)
    target = TargetFrames(frames, masks, joints, np.ones((FRAMES, NUM_JOINTS), np.float32), range(FRAMES))
    plate = produce_target_input(BACKGROUND_PLATE, target)
    assert plate.dtype == np.float32 and plate.shape == (3, HEIGHT, WIDTH)
    np.testing.assert_allclose(
        plate[:, 12:30, 20:], background[12:30, 20:].transpose(2, 0, 1) / 255.0, atol=2e-3
    )
