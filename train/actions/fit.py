"""Training of the action models, top to bottom: the action classifier on the real (training-split) labelled
sequences, then PSGAN (Yang et al., ECCV 2018, Sec. 3.1) adversarially, conditioned on the label, with a
term that matches the real batch's acceleration (``smooth_weight``) and an optional mode-seeking term
(``diversity_weight``, MSGAN).

One run folder holds ``checkpoint.pt`` (:mod:`train.actions.checkpoint`), ``config.yaml`` (the resolved
config) and ``metrics.jsonl`` (training scalars). A run stops at ``config.steps`` or after
``config.max_minutes`` of training, with a checkpoint; started again on the same folder it resumes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from tqdm import tqdm

from train.actions.checkpoint import load_actions_checkpoint, save_actions_checkpoint
from train.actions.choreography import synthetic_sequences
from train.actions.config import ActionsConfig
from train.actions.models import (
    ActionClassifier,
    PoseSequenceDiscriminator,
    PoseSequenceGenerator,
    PoseStatistics,
)
from train.actions.sequences import LabelledSequences, load_sequences

log = logging.getLogger(__name__)

#: The data argument that asks for the labelled synthetic choreography instead of a sequence file.
SYNTHETIC = "synthetic"


def load_training_data(data: str, config: ActionsConfig) -> LabelledSequences:
    """The labelled sequences named by ``data``: :data:`SYNTHETIC` (made from ``config.data``) or the path of
    a sequence file (``python -m train.actions data``).

    Raises:
        FileNotFoundError, ValueError: as :func:`train.actions.sequences.load_sequences`; ValueError also for
            data without training or held-out sequences.
    """
    sequences = synthetic_sequences(config.data) if data == SYNTHETIC else load_sequences(data)
    if not sequences.heldout.any() or sequences.heldout.all():
        raise ValueError(f"{data}: the data needs both training and held-out sequences")
    return sequences


def pose_statistics(train: LabelledSequences) -> PoseStatistics:
    """Mean pose and one overall spread of the training sequences (the networks' input normalization)."""
    mean = train.joints.reshape(-1, *train.joints.shape[2:]).mean(axis=0)
    scale = float(np.sqrt(((train.joints - mean) ** 2).mean()))
    return PoseStatistics(torch.from_numpy(mean), max(scale, 1e-3))


def acceleration_energy(poses: torch.Tensor, stats: PoseStatistics) -> torch.Tensor:
    """Mean squared second difference over time of standardized poses ``(B, T, NUM_JOINTS, 2)`` (a scalar)."""
    x = stats.standardize(poses)
    return ((x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]) ** 2).mean()


def train_classifier(
    classifier: ActionClassifier,
    train: LabelledSequences,
    config: ActionsConfig,
    *,
    show_progress: bool = True,
) -> float:
    """Train the action classifier with cross-entropy for ``config.classifier.steps`` Adam steps on random
    batches of whole ``train`` sequences. Returns the last batch's accuracy in [0, 1] (0 without steps)."""
    c = config.classifier
    optimizer = torch.optim.Adam(classifier.parameters(), lr=c.lr)
    rng = np.random.default_rng(config.seed + 1)
    joints, labels = torch.from_numpy(train.joints), torch.from_numpy(train.labels)
    accuracy = 0.0
    classifier.train()
    for _ in tqdm(range(c.steps), desc="classifier", disable=not show_progress, leave=False):
        idx = torch.from_numpy(rng.integers(0, len(labels), c.batch_size))
        logits = classifier(joints[idx])
        loss = nn.functional.cross_entropy(logits, labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = float((logits.argmax(-1) == labels[idx]).float().mean())
    classifier.eval()
    return accuracy


def _adversarial(scores: torch.Tensor, real: bool, loss: str) -> torch.Tensor:
    if loss == "lsgan":
        return ((scores - (1.0 if real else 0.0)) ** 2).mean()
    return nn.functional.softplus(-scores if real else scores).mean()


def fit_actions(
    data: str,
    out: str | os.PathLike[str],
    config: ActionsConfig,
    *,
    show_progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> Path:
    """Train (or resume) an action run.

    Args:
        data: :data:`SYNTHETIC` or a sequence file (:func:`load_training_data`).
        out: the run folder; its ``checkpoint.pt``, if any, is resumed (its networks, optimizers, step and
            classifier) with ``config`` (which must describe the same networks).
        config: the resolved config.
        show_progress: show tqdm bars.
        report: receives one line per phase.

    Returns:
        the checkpoint's path.

    Raises:
        FileNotFoundError, ValueError: for bad data, or a run folder trained on other data;
            train.checkpoint.CheckpointError for a checkpoint whose networks differ from ``config``'s.
    """
    torch.manual_seed(config.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "checkpoint.pt"
    sequences = load_training_data(data, config)
    train = sequences.train()
    stats = pose_statistics(train)
    generator = PoseSequenceGenerator(config.generator, stats)
    discriminator = PoseSequenceDiscriminator(config.discriminator, stats)
    classifier = ActionClassifier(config.classifier, stats)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
    step, classifier_steps, elapsed_s = 0, 0, 0.0
    if path.is_file():
        previous = load_actions_checkpoint(path)
        if previous.data != data:
            raise ValueError(
                f"{path} was trained on {previous.data!r}, not {data!r}; resume it on that data or train "
                "into a new run folder"
            )
        generator = previous.build_generator().train()
        discriminator = previous.build_discriminator().train()
        classifier = previous.build_classifier()
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
        opt_g.load_state_dict(previous.optimizer_g)
        opt_d.load_state_dict(previous.optimizer_d)
        step, classifier_steps, elapsed_s = previous.step, previous.classifier_steps, previous.elapsed_s
        report(f"resuming {path} at step {step}")
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))

    def save() -> None:
        save_actions_checkpoint(path, {
            "step": step, "config": config, "data": data, "fps": sequences.fps,
            "num_frames": sequences.num_frames, "generator": generator, "discriminator": discriminator,
            "classifier": classifier, "optimizer_g": opt_g, "optimizer_d": opt_d,
            "classifier_steps": classifier_steps, "elapsed_s": elapsed_s,
        })  # fmt: skip

    start = time.perf_counter()
    if classifier_steps == 0 and config.classifier.steps > 0:
        accuracy = train_classifier(classifier, train, config, show_progress=show_progress)
        classifier_steps = config.classifier.steps
        report(f"classifier: {classifier_steps} steps, last batch accuracy {accuracy:.2f}")
    rng = np.random.default_rng(config.seed + step)
    joints, labels = torch.from_numpy(train.joints), torch.from_numpy(train.labels)
    budget_s = 60.0 * config.max_minutes if config.max_minutes > 0 else float("inf")
    metrics = (out / "metrics.jsonl").open("a")
    bar = tqdm(total=config.steps, initial=step, desc="psgan", disable=not show_progress)
    t_frames = sequences.num_frames
    try:
        while step < config.steps and elapsed_s + (time.perf_counter() - start) < budget_s:
            idx = torch.from_numpy(rng.integers(0, len(labels), config.batch_size))
            real, y = joints[idx], labels[idx]
            fake = generator(y, t_frames)
            loss_d = _adversarial(discriminator(real, y), True, config.loss) + _adversarial(
                discriminator(fake.detach(), y), False, config.loss
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_adv = _adversarial(discriminator(fake, y), True, config.loss)
            smooth = (
                acceleration_energy(fake, generator.stats).sqrt()
                - acceleration_energy(real, generator.stats).sqrt()
            ) ** 2
            loss_g = loss_adv + config.smooth_weight * smooth
            gap = torch.zeros(())
            if config.diversity_weight > 0:  # mode seeking: two noises of one label should differ
                other = generator(y, t_frames)
                stats = generator.stats
                gap = (stats.standardize(fake) - stats.standardize(other)).abs().mean()
                loss_adv_other = _adversarial(discriminator(other, y), True, config.loss)
                loss_g = loss_g + loss_adv_other + config.diversity_weight / (gap + 1e-2)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            step += 1
            bar.update(1)
            if step % 25 == 0 or step == config.steps:
                row = {
                    "step": step,
                    "loss_d": loss_d.item(),
                    "loss_g_adv": loss_adv.item(),
                    "loss_smooth": smooth.item(),
                    "pair_distance": gap.item(),
                    "elapsed_s": elapsed_s + time.perf_counter() - start,
                }
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g_adv']:.3f}")
            if step % config.checkpoint_every == 0:
                elapsed_s += time.perf_counter() - start
                start = time.perf_counter()
                save()
    except KeyboardInterrupt:
        report("interrupted: saving a checkpoint")
    finally:
        bar.close()
        metrics.close()
    elapsed_s += time.perf_counter() - start
    save()
    report(f"psgan: step {step} of {config.steps}, {elapsed_s / 60:.1f} min in all; wrote {path}")
    return path
