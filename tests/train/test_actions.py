import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.actions.checkpoint import load_actions_checkpoint
from train.actions.choreography import ChoreographyConfig, synthetic_sequence, synthetic_sequences
from train.actions.cli import main
from train.actions.clips import clip_sequences, read_label_file
from train.actions.config import (
    DEFAULT_ACTIONS_CONFIG_PATH,
    ActionsConfig,
    ClassifierConfig,
    SequenceDiscriminatorConfig,
    SequenceGeneratorConfig,
    actions_config_keys,
    load_actions_config,
)
from train.actions.evaluate import TABLE_COLUMNS, classifier_accuracy, diversity, speed_and_acceleration
from train.actions.fit import pose_statistics, train_classifier
from train.actions.models import ActionClassifier, PoseSequenceDiscriminator, PoseSequenceGenerator
from train.actions.sequences import ACTION_LABELS, load_sequences, save_sequences

SMALL = ChoreographyConfig(sequences_per_label=5, num_frames=16)
SMOKE = ["data.sequences_per_label=5", "data.num_frames=16", "classifier.steps=2", "generator.hidden=16",
         "discriminator.hidden=16", "classifier.channels=8", "batch_size=4"]  # fmt: skip


def path_length(joints: np.ndarray, joint: Joint) -> float:
    return float(np.linalg.norm(np.diff(joints[:, joint], axis=0), axis=-1).sum())


def test_synthetic_sequences_shapes_labels_and_fixed_split():
    data = synthetic_sequences(SMALL)
    n = 5 * len(ACTION_LABELS)
    assert data.joints.shape == (n, 16, NUM_JOINTS, 2) and data.joints.dtype == np.float32
    assert data.confidence.shape == (n, 16, NUM_JOINTS)
    assert np.isfinite(data.joints).all()
    assert np.bincount(data.labels).tolist() == [5] * len(ACTION_LABELS)
    # Sequence i of a label is held out when i % 5 == 0: one per label here, the same on every call.
    assert np.bincount(data.labels[data.heldout]).tolist() == [1] * len(ACTION_LABELS)
    again = synthetic_sequences(SMALL)
    np.testing.assert_array_equal(again.joints, data.joints)
    np.testing.assert_array_equal(again.heldout, data.heldout)
    # Normalized: every body has the canonical size and place, whatever its drawn size and spot.
    hips = data.joints[:, :, Joint.MID_HIP]
    assert np.ptp(hips[..., 0]) < 0.1 and 0.45 < np.median(hips[..., 1]) < 0.7


def test_wave_moves_one_wrist_much_more_than_the_other():
    for seed in range(4):
        joints, _ = synthetic_sequence("wave", seed, SMALL)
        right, left = path_length(joints, Joint.RIGHT_WRIST), path_length(joints, Joint.LEFT_WRIST)
        moving = Joint.RIGHT_WRIST if right > left else Joint.LEFT_WRIST
        assert max(right, left) > 2.0 * min(right, left)
        assert joints[:, moving, 1].mean() < joints[:, Joint.NOSE, 1].mean()  # the waving hand is up


def test_idle_sway_moves_little_and_turn_turns():
    wrists = (Joint.RIGHT_WRIST, Joint.LEFT_WRIST)
    idle = [
        sum(path_length(synthetic_sequence("idle_sway", s, SMALL)[0], w) for w in wrists) for s in range(3)
    ]
    pump = [
        sum(path_length(synthetic_sequence("arm_pump", s, SMALL)[0], w) for w in wrists) for s in range(3)
    ]
    assert max(idle) < 0.4 * min(pump)
    joints, _ = synthetic_sequence("turn", 0, SMALL)
    width = np.abs(joints[:, Joint.RIGHT_SHOULDER, 0] - joints[:, Joint.LEFT_SHOULDER, 0])
    assert width.min() < 0.7 * width.max()  # the shoulders foreshorten as the body turns


def test_sequence_file_round_trip(tmp_path):
    data = synthetic_sequences(ChoreographyConfig(sequences_per_label=2, num_frames=8, heldout_every=2))
    loaded = load_sequences(save_sequences(tmp_path / "seqs.npz", data))
    np.testing.assert_array_equal(loaded.joints, data.joints)
    assert loaded.sources == data.sources and loaded.fps == data.fps
    with pytest.raises(FileNotFoundError, match="python -m train.actions data"):
        load_sequences(tmp_path / "missing.npz")


def test_label_file_is_read_and_checked(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "# how the ranges were chosen\n\nvideo,start_s,end_s,label,split\n# a comment\n"
        "clip.mp4,1.0,3.5,wave,heldout\n"
    )
    (row,) = read_label_file(tmp_path / "labels.csv")  # comments and blank lines skipped
    assert row.video == tmp_path / "clip.mp4" and (row.start_s, row.end_s, row.label, row.heldout) == (
        1.0, 3.5, "wave", True,
    )  # fmt: skip
    (tmp_path / "bad.csv").write_text("# comment\nvideo,start_s,end_s,label\nclip.mp4,1.0,3.5,dance\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: unknown action label 'dance'"):  # the file's line
        read_label_file(tmp_path / "bad.csv")
    (tmp_path / "nolabel.csv").write_text("video,start_s,end_s\n")
    with pytest.raises(ValueError, match="lacks"):
        read_label_file(tmp_path / "nolabel.csv")


def test_real_clip_through_the_pose_estimator(tmp_path):
    video = SHARED_DATA / "target_fashion.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent (real clips live in ../shared/data)")
    (tmp_path / "labels.csv").write_text(f"video,start_s,end_s,label\n{video},0.0,2.0,turn\n")
    data = clip_sequences(tmp_path / "labels.csv", num_frames=8, fps=8.0)
    assert data.joints.shape[1:] == (8, NUM_JOINTS, 2) and len(data.labels) == 3  # 16 frames, windows every 4
    assert np.isfinite(data.joints).all() and (data.labels == ACTION_LABELS.index("turn")).all()
    assert data.confidence[:, :, Joint.NECK].mean() > 0.9  # the person was found
    hips = data.joints[:, :, Joint.MID_HIP]
    assert 0.4 < np.median(hips[..., 0]) < 0.6 and 0.45 < np.median(hips[..., 1]) < 0.7  # normalized


def test_networks_shapes_and_errors():
    g = PoseSequenceGenerator(SequenceGeneratorConfig(hidden=16))
    labels = torch.tensor([0, 5, 2])
    poses = g(labels, 7, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (3, 7, NUM_JOINTS, 2)
    again = g(labels, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, poses)
    assert g(labels, 30).shape[1] == 30  # any length
    with pytest.raises(ValueError, match="labels must be in"):
        g(torch.tensor([6]), 4)
    d = PoseSequenceDiscriminator(SequenceDiscriminatorConfig(hidden=16))
    assert d(poses, labels).shape == (3, 7)
    c = ActionClassifier(ClassifierConfig(channels=8))
    assert c(poses).shape == (3, len(ACTION_LABELS))
    with pytest.raises(ValueError, match="poses must be"):
        c(poses[:, :, :5])


def test_classifier_beats_chance_on_held_out_synthetic_sequences():
    data = synthetic_sequences(ChoreographyConfig(sequences_per_label=10, num_frames=16))
    train, heldout = data.train(), data.held_out()
    torch.manual_seed(0)
    classifier = ActionClassifier(ClassifierConfig(channels=32), pose_statistics(train))
    config = ActionsConfig(classifier=ClassifierConfig(channels=32, steps=60, batch_size=32))
    train_classifier(classifier, train, config, show_progress=False)
    accuracy = classifier_accuracy(classifier, heldout.joints, heldout.labels)
    assert accuracy >= 0.5  # chance is 1/6


def test_diversity_and_smoothness_measures():
    a = np.zeros((1, 5, NUM_JOINTS, 2), np.float32)
    assert diversity(np.concatenate([a, a])) == 0.0
    assert diversity(np.concatenate([a, a + [0.03, 0.04]])) == pytest.approx(0.05)
    assert np.isnan(diversity(a))
    moving = a + np.arange(5, dtype=np.float32)[None, :, None, None] * [0.01, 0.0]  # constant velocity
    speed, accel = speed_and_acceleration(moving, fps=10.0)
    np.testing.assert_allclose(speed, 0.1, rtol=1e-5)
    np.testing.assert_allclose(accel, 0.0, atol=1e-5)


def test_config_file_matches_the_defaults_and_overrides_are_checked():
    assert load_actions_config(DEFAULT_ACTIONS_CONFIG_PATH) == ActionsConfig()
    assert load_actions_config(None, ["generator.hidden=32"]).generator.hidden == 32
    with pytest.raises(ValueError, match="nonsense"):
        load_actions_config(None, ["nonsense=1"])
    with pytest.raises(ValueError, match="loss must be"):
        load_actions_config(None, ["loss=hinge"])
    assert "classifier.steps" in actions_config_keys() and "data.fps" in actions_config_keys()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("actions") / "run"
    assert main(["fit", "synthetic", "--out", str(run), "steps=2", *SMOKE, "--no-progress"]) == 0
    return run


def test_two_step_fit_writes_a_checkpoint_that_resumes_and_samples(smoke_run, tmp_path, capsys):
    checkpoint = load_actions_checkpoint(smoke_run)
    assert checkpoint.step == 2 and checkpoint.classifier_steps == 2 and checkpoint.fps == 12.0
    assert (smoke_run / "metrics.jsonl").read_text().count("\n") == 1  # the last step's row
    assert (
        main(
            ["sample", str(smoke_run), "--label", "wave", "--seconds", "4", "--out", str(tmp_path / "s.npy")]
        )
        == 0
    )
    poses = np.load(tmp_path / "s.npy")
    assert poses.shape == (48, NUM_JOINTS, 2) and poses.dtype == np.float32 and np.isfinite(poses).all()
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["fps"] == 12.0 and meta["label"] == "wave" and meta["num_frames"] == 48
    assert main(["sample", str(smoke_run), "--label", "dance", "--out", str(tmp_path / "x.npy")]) == 2
    assert "unknown action label 'dance'" in capsys.readouterr().err
    resumed = tmp_path / "resumed"
    assert main(["fit", "synthetic", "--out", str(resumed), "steps=1", *SMOKE, "--no-progress"]) == 0
    argv = ["fit", "synthetic", "--out", str(resumed), "steps=3", "diversity_weight=0.1", "--no-progress"]
    assert main(argv) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_actions_checkpoint(resumed).step == 3
    other = tmp_path / "seqs.npz"
    save_sequences(other, synthetic_sequences(ChoreographyConfig(sequences_per_label=2, heldout_every=2)))
    assert main(["fit", str(other), "--out", str(resumed), "steps=4", "--no-progress"]) == 2
    assert "was trained on 'synthetic'" in capsys.readouterr().err
    last = json.loads((resumed / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and last["pair_distance"] > 0  # the mode-seeking pair was made


def test_evaluate_prints_every_column_and_writes_the_sheet(smoke_run, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    argv = ["evaluate", str(smoke_run), "--generated", "3", "--sheet", str(sheet), "--sheet-frames", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    header, _, *rows = out.splitlines()[:9]
    assert [c.strip() for c in header.strip("|").split("|")] == list(TABLE_COLUMNS)
    assert [r.split("|")[1].strip() for r in rows] == [*ACTION_LABELS, "all"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(TABLE_COLUMNS) and all(" / " in c for c in cells[1:])
    assert rows[0].split("|")[2].strip() == "0 / 1 / 3"  # no real clip, one held-out synthetic wave, 3 made
    assert rows[0].split("|")[3].strip().startswith("- / ")  # no accuracy on real clips without any
    assert Image.open(sheet).size == (80 + 4 * 128, len(ACTION_LABELS) * 128)


def test_export_writes_an_onnx_generator_that_matches_pytorch_and_its_sidecar(smoke_run, tmp_path, capsys):
    import hashlib

    import onnxruntime as ort

    from realtime.model.actions import ActionModel

    out = tmp_path / "actions" / "actions.onnx"
    assert main(["export", str(smoke_run), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    meta = json.loads(out.with_suffix(".json").read_text())
    checkpoint = load_actions_checkpoint(smoke_run)
    assert meta["labels"] == list(ACTION_LABELS) and meta["fps"] == 12.0 and meta["num_frames"] == 16
    assert meta["checkpoint_sha256"] == hashlib.sha256(checkpoint.path.read_bytes()).hexdigest()
    assert meta["step_noise_dim"] == checkpoint.config.generator.step_noise_dim
    # any length; the same numbers as PyTorch for the same noise and label
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    step = rng.standard_normal((1, 40, meta["step_noise_dim"])).astype(np.float32)
    sequence = rng.standard_normal((1, meta["sequence_noise_dim"])).astype(np.float32)
    label = np.array([ACTION_LABELS.index("clap")], np.int64)
    (got,) = session.run(None, {"label": label, "step_noise": step, "sequence_noise": sequence})
    with torch.no_grad():
        want = checkpoint.build_generator()(
            torch.from_numpy(label),
            40,
            step_noise=torch.from_numpy(step),
            sequence_noise=torch.from_numpy(sequence),
        ).numpy()
    assert got.shape == (1, 40, NUM_JOINTS, 2) and np.abs(got - want).max() < 1e-4
    assert ActionModel.load(out).generate("turn", 20, seed=3).shape == (
        20,
        NUM_JOINTS,
        2,
    )  # the reader agrees
    assert main(["export", str(smoke_run), "--out", str(tmp_path / "a.pt")]) == 2
    assert "must be an .onnx file" in capsys.readouterr().err


def test_evaluate_scores_held_out_real_clips_apart_from_synthetic(tmp_path, capsys):
    from train.actions.evaluate import score_run
    from train.actions.sequences import LabelledSequences, concatenate

    synthetic = synthetic_sequences(ChoreographyConfig(sequences_per_label=2, num_frames=16, heldout_every=2))
    turns = synthetic.subset(synthetic.labels == ACTION_LABELS.index("turn"))
    # two "real clip" windows of turn (stand-ins: synthetic poses with a clip's source), one held out
    clips = LabelledSequences(
        joints=turns.joints,
        confidence=turns.confidence,
        labels=turns.labels,
        heldout=np.array([True, False]),
        fps=turns.fps,
        sources=("clip.mp4@0.00-1.33", "clip.mp4@1.33-2.67"),
    )
    data = concatenate([clips, synthetic])
    assert data.synthetic.tolist() == [False, False] + [True] * len(synthetic.labels)
    path = save_sequences(tmp_path / "mixed.npz", data)
    assert load_sequences(path).synthetic.tolist() == data.synthetic.tolist()  # kept apart in the file
    run = tmp_path / "run"
    assert main(["fit", str(path), "--out", str(run), "steps=1", *SMOKE[2:], "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--generated", "2"]) == 0
    rows = {r.split("|")[1].strip(): r for r in capsys.readouterr().out.splitlines()[2:]}
    assert rows["turn"].split("|")[2].strip() == "1 / 1 / 2"  # one held-out clip, one synthetic, two made
    assert rows["wave"].split("|")[2].strip() == "0 / 1 / 2"
    assert rows["all"].split("|")[2].strip() == f"1 / {len(ACTION_LABELS)} / {2 * len(ACTION_LABELS)}"
    scores, _ = score_run(load_actions_checkpoint(run), generated_per_label=2)
    turn = scores[ACTION_LABELS.index("turn")]
    classifier = load_actions_checkpoint(run).build_classifier()
    k = ACTION_LABELS.index("turn")
    assert turn.accuracy_clips == classifier_accuracy(classifier, clips.joints[:1], np.array([k]))
    held_synthetic = synthetic.held_out().subset(synthetic.held_out().labels == k)
    assert turn.accuracy_synthetic == classifier_accuracy(
        classifier, held_synthetic.joints, held_synthetic.labels
    )
    assert np.isnan(scores[0].accuracy_clips) and scores[0].num_clips == 0


def test_evaluate_scores_an_exported_generator_with_the_runs_classifier(smoke_run, tmp_path, capsys):
    from realtime.model.actions import ActionModel
    from train.actions.evaluate import score_run

    out = tmp_path / "actions.onnx"
    assert main(["export", str(smoke_run), "--out", str(out)]) == 0
    rows, generated = score_run(load_actions_checkpoint(smoke_run), generated_per_label=3, artifact=out)
    want = ActionModel.load(out).generate("clap", 16, seed=5 + 2)  # sequence 2 from seed 5 + 2
    _, generated5 = score_run(load_actions_checkpoint(smoke_run), generated_per_label=3, seed=5, artifact=out)
    np.testing.assert_array_equal(generated5["clap"][2], want)
    assert generated["wave"].shape == (3, 16, NUM_JOINTS, 2)
    assert rows[-1].num_generated == 3 * len(ACTION_LABELS)
    capsys.readouterr()
    assert main(["evaluate", str(smoke_run), "--generated", "3", "--onnx", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("| label | n clip/synth/gen |")
    meta = json.loads(out.with_suffix(".json").read_text())
    out.with_suffix(".json").write_text(json.dumps({**meta, "fps": 15.0}))
    assert main(["evaluate", str(smoke_run), "--generated", "3", "--onnx", str(out)]) == 2
    assert "at 15 fps; the run has" in capsys.readouterr().err
