"""Acceptance of issue 22's live handover (docs/robustness.md, section 4), in the style of test_robustness.py.

The dance video's poses drive the live Retargeter of the bundled mannequin; then the person is removed for
longer than ``idle_after_s`` (the target holds, eases into its neutral stand, then performs the idle action
in a loop), and comes back (the target blends from the action into the person's pose). A second run plays
an action on request in the middle of the dance. No generated frame may differ from the one before it by
more than :data:`test_robustness.JUMP_FACTOR` times the unmodified run's largest step; the worst step is
printed (the acceptance figure).
"""

import numpy as np
import pytest
from test_robustness import JUMP_FACTOR, WARMUP_FRAMES, frame_steps

from conftest import DANCE_POSE_FRAMES
from realtime.model.actions import ActionParams
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.targets import DEFAULT_TARGET

NUM_FRAMES = DANCE_POSE_FRAMES  # the dance_poses fixture (tests/conftest.py)
#: The person leaves after this many frames...
LEAVE_AT = 48
#: ...for this long (idle_after 1.5 s: the idle action plays for about 1.5 s)...
ABSENT_S = 3.0
IDLE_AFTER_S = 1.5
#: ...with the camera still sending frames at this interval.
FRAME_INTERVAL_MS = 1000 / 30
#: A requested action (second test): at this frame, for this long.
PLAY_AT, PLAY_S = 30, 1.5

pytestmark = pytest.mark.slow


def with_absence(poses: list[PoseFrame]) -> tuple[list[PoseFrame], int, int]:
    """The poses with the person gone after LEAVE_AT for ABSENT_S (empty frames in between, later timestamps
    shifted); returns them, the first absent frame and the first frame of the return."""
    gap = int(round(1e3 * ABSENT_S / FRAME_INTERVAL_MS))
    last = poses[LEAVE_AT - 1]
    empty = [
        PoseFrame.empty(last.timestamp_ms + (i + 1) * FRAME_INTERVAL_MS, last.image_size) for i in range(gap)
    ]
    shift = gap * FRAME_INTERVAL_MS
    back = [
        PoseFrame(p.joints_px, p.confidence, p.timestamp_ms + shift, p.image_size) for p in poses[LEAVE_AT:]
    ]
    return poses[:LEAVE_AT] + empty + back, LEAVE_AT, LEAVE_AT + gap


def run(
    target: Target, poses: list[PoseFrame], play_at: int | None = None, blend_s: float = 0.5
) -> tuple[np.ndarray, list[str | None]]:
    """Generated frames (float32 ``(N, H, W, 3)``) of a live stream with the idle action on, and what it
    played at each frame (``blend_s`` 0: no blends, to see what they avoid)."""
    params = ActionParams(idle_action="idle_sway", idle_after_s=IDLE_AFTER_S, blend_s=blend_s)
    retargeter = Retargeter(target, live=True, actions=params)
    frames, playing = [], []
    try:
        for i, pose in enumerate(poses):
            if i == play_at:
                assert retargeter.play_action("wave", PLAY_S, seed=0) == pytest.approx(PLAY_S, abs=0.1)
            result = retargeter.generate(retargeter.track(pose))
            assert result.stick_figure.max() > 0  # never a blank (garbled) stick figure
            assert np.isfinite(result.normalized.joints_px).all()
            frames.append(result.generated.astype(np.float32))
            playing.append(retargeter.playing_action)
    finally:
        retargeter.close()
    return np.stack(frames), playing


@pytest.fixture(scope="module")
def clean_bound(dance_poses) -> tuple[Target, float]:
    assert sum(not p.is_empty for p in dance_poses) == NUM_FRAMES
    target = Target.load(DEFAULT_TARGET)
    clean, _ = run(target, dance_poses)
    return target, JUMP_FACTOR * float(frame_steps(clean).max())


def worst_near(steps: np.ndarray, frame: int, span: int = 20) -> tuple[float, int]:
    """The largest step within ``span`` frames after ``frame`` (frame indices as in the stream): the blend
    (ActionParams.blend_s, 0.5 s = 15 frames) and a little more."""
    lo = frame - WARMUP_FRAMES
    window = steps[max(lo, 0) : lo + span]
    i = int(window.argmax())
    return float(window[i]), max(lo, 0) + i + WARMUP_FRAMES


def test_idle_action_starts_and_hands_back_without_a_jump(dance_poses, clean_bound):
    target, bound = clean_bound
    poses, leave, back = with_absence(dance_poses)
    frames, playing = run(target, poses)
    idle_start = next(i for i, p in enumerate(playing) if p == "idle_sway")
    # The idle action starts idle_after_s after the person left, and ends when they are found again.
    assert (poses[idle_start].timestamp_ms - poses[leave - 1].timestamp_ms) / 1e3 == pytest.approx(
        IDLE_AFTER_S, abs=0.05
    )
    assert all(p == "idle_sway" for p in playing[idle_start:back]) and playing[-1] is None
    assert playing[back - 1] == "idle_sway" and playing[back + 1] is None
    steps = frame_steps(frames)
    start_step, start_frame = worst_near(steps, idle_start)
    return_step, return_frame = worst_near(steps, back)
    worst = int(steps.argmax())
    print(
        f"idle handover: bound {bound:.2f}; action start (frame {idle_start}) worst step {start_step:.2f} "
        f"(frame {start_frame}); person back (frame {back}) worst step {return_step:.2f} "
        f"(frame {return_frame}); "
        f"whole run worst {steps[worst]:.2f} (frame {worst + WARMUP_FRAMES})"
    )
    assert steps.max() <= bound, f"frame {worst + WARMUP_FRAMES} jumps by {steps[worst]:.2f} > {bound:.2f}"
    # The idle action moves the target (it is not a frozen frame).
    assert steps[idle_start + 20 - WARMUP_FRAMES : back - WARMUP_FRAMES].max() > 0.05


def test_requested_action_replaces_the_dance_and_blends_back(dance_poses, clean_bound):
    target, bound = clean_bound
    frames, playing = run(target, dance_poses, play_at=PLAY_AT)
    played = [i for i, p in enumerate(playing) if p == "wave"]
    assert played[0] == PLAY_AT and playing[-1] is None
    duration_s = (dance_poses[played[-1]].timestamp_ms - dance_poses[PLAY_AT].timestamp_ms) / 1e3
    assert duration_s == pytest.approx(PLAY_S, abs=0.1)
    steps = frame_steps(frames)
    worst = int(steps.argmax())
    start_step, start_frame = worst_near(steps, PLAY_AT)
    end_step, end_frame = worst_near(steps, played[-1] + 1)
    print(
        f"requested wave: bound {bound:.2f}; action start (frame {PLAY_AT}) worst step {start_step:.2f} "
        f"(frame {start_frame}); back to the dance (frame {played[-1] + 1}) worst step {end_step:.2f} "
        f"(frame {end_frame}); whole run worst {steps[worst]:.2f} (frame {worst + WARMUP_FRAMES})"
    )
    assert steps.max() <= bound, f"frame {worst + WARMUP_FRAMES} jumps by {steps[worst]:.2f} > {bound:.2f}"
