"""PSGAN's networks (Yang et al., "Pose Guided Human Video Generation", ECCV 2018, Sec. 3.1) and the action
classifier that scores them, over pose sequences in the normalized joint space.

The paper's PSGAN encodes a first pose and decodes a sequence with convolutions; issue 22 asks for a pose
sequence from noise and a label alone, so here the generator is recurrent (as in its recurrent
predecessors, e.g. MoCoGAN's motion GRU, Tulyakov et al., CVPR 2018): a GRU from per-step noise, a
per-sequence noise and a label embedding to each frame's joint offsets from the mean pose. The
discriminator is a GRU over poses and velocities whose per-step score adds a projection onto the label's
embedding (projection discriminator, Miyato & Koyama, ICLR 2018).

All networks see poses as ``(pose - mean_pose) / scale`` with the training data's mean pose and spread held
as buffers, so their weights carry their own normalization.
"""

from __future__ import annotations

import torch
from torch import nn

from realtime.pose.skeleton import NUM_JOINTS
from train.actions.config import ClassifierConfig, SequenceDiscriminatorConfig, SequenceGeneratorConfig
from train.actions.sequences import ACTION_LABELS

NUM_LABELS = len(ACTION_LABELS)
_COORDS = NUM_JOINTS * 2


def _check_poses(poses: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    if poses.ndim != 4 or poses.shape[2:] != (NUM_JOINTS, 2) or poses.shape[1] < 2:
        raise ValueError(f"poses must be (B, T >= 2, {NUM_JOINTS}, 2), got {tuple(poses.shape)}")
    if labels is not None and (labels.shape != poses.shape[:1] or labels.dtype != torch.int64):
        raise ValueError(
            f"labels must be int64 ({poses.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
        )


class PoseStatistics(nn.Module):
    """The training data's mean pose and spread as buffers: ``standardize`` maps poses to network units.

    Args:
        mean_pose: float ``(NUM_JOINTS, 2)`` normalized joint space; scale: the spread (> 0, one number).
    """

    mean_pose: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean_pose: torch.Tensor | None = None, scale: float = 0.1) -> None:
        super().__init__()
        if mean_pose is None:
            mean_pose = torch.full((NUM_JOINTS, 2), 0.5)
        self.register_buffer("mean_pose", mean_pose.detach().to(torch.float32).clone())
        self.register_buffer("scale", torch.tensor(float(scale)))

    def standardize(self, poses: torch.Tensor) -> torch.Tensor:
        """``(B, T, NUM_JOINTS, 2)`` -> ``(B, T, 2 * NUM_JOINTS)`` standardized."""
        return ((poses - self.mean_pose) / self.scale).flatten(2)

    def features(self, poses: torch.Tensor) -> torch.Tensor:
        """Standardized poses and their frame-to-frame velocities (0 at the first frame), concatenated:
        ``(B, T, 4 * NUM_JOINTS)``."""
        x = self.standardize(poses)
        velocity = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        return torch.cat([x, 4.0 * velocity], dim=-1)


class PoseSequenceGenerator(nn.Module):
    """PSGAN's generator: label and noise to a pose sequence.

    Args:
        config: sizes (:class:`train.actions.config.SequenceGeneratorConfig`).
        stats: the data's mean pose and spread.
    """

    def __init__(self, config: SequenceGeneratorConfig, stats: PoseStatistics | None = None) -> None:
        super().__init__()
        self.config = config
        self.stats = stats or PoseStatistics()
        self.embed = nn.Embedding(NUM_LABELS, config.label_dim)
        cond = config.sequence_noise_dim + config.label_dim
        self.init_hidden = nn.Linear(cond, config.layers * config.hidden)
        self.inp = nn.Linear(config.step_noise_dim + cond, config.hidden)
        self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.layers, batch_first=True)
        self.out = nn.Linear(config.hidden, _COORDS)

    def forward(
        self,
        labels: torch.Tensor,
        num_frames: int,
        *,
        generator: torch.Generator | None = None,
        step_noise: torch.Tensor | None = None,
        sequence_noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate one sequence per label.

        Args:
            labels: int64 ``(B,)`` indices into :data:`ACTION_LABELS`.
            num_frames: T (>= 2); the generator runs for any length.
            generator: the random source of the noise (when not given).
            step_noise: float ``(B, T, step_noise_dim)``; sequence_noise: float ``(B, sequence_noise_dim)``;
                standard normal when None.

        Returns:
            float32 ``(B, T, NUM_JOINTS, 2)`` in the normalized joint space.

        Raises:
            ValueError: for labels of the wrong dtype, shape or range, or ``num_frames < 2``.
        """
        if labels.ndim != 1 or labels.dtype != torch.int64 or num_frames < 2:
            raise ValueError(
                f"labels must be int64 (B,) and num_frames >= 2, got {labels.dtype} {num_frames}"
            )
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= NUM_LABELS):
            raise ValueError(f"labels must be in [0, {NUM_LABELS}), got {labels.tolist()}")
        b, c, device = labels.shape[0], self.config, self.out.weight.device
        if sequence_noise is None:
            sequence_noise = torch.randn(b, c.sequence_noise_dim, generator=generator).to(device)
        if step_noise is None:
            step_noise = torch.randn(b, num_frames, c.step_noise_dim, generator=generator).to(device)
        cond = torch.cat([sequence_noise, self.embed(labels)], dim=-1)
        h0 = torch.tanh(self.init_hidden(cond)).view(b, c.layers, c.hidden).transpose(0, 1).contiguous()
        x = torch.cat([step_noise, cond[:, None].expand(b, num_frames, cond.shape[-1])], dim=-1)
        h, _ = self.gru(torch.relu(self.inp(x)), h0)
        offsets = self.out(h).view(b, num_frames, NUM_JOINTS, 2)
        return self.stats.mean_pose + self.stats.scale * offsets


class PoseSequenceDiscriminator(nn.Module):
    """PSGAN's discriminator: per-step realness of a pose sequence given its label.

    Args:
        config: sizes (:class:`train.actions.config.SequenceDiscriminatorConfig`).
        stats: the data's mean pose and spread.
    """

    def __init__(self, config: SequenceDiscriminatorConfig, stats: PoseStatistics | None = None) -> None:
        super().__init__()
        self.stats = stats or PoseStatistics()
        self.inp = nn.Linear(2 * _COORDS, config.hidden)
        self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.layers, batch_first=True)
        self.score = nn.Linear(config.hidden, 1)
        self.embed = nn.Embedding(NUM_LABELS, config.hidden)

    def forward(self, poses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Score sequences.

        Args:
            poses: float ``(B, T, NUM_JOINTS, 2)`` normalized joint space; labels: int64 ``(B,)``.

        Returns:
            float32 ``(B, T)`` logits, one per step (each seeing the sequence up to that step).

        Raises:
            ValueError: on wrong shapes or dtypes.
        """
        _check_poses(poses, labels)
        h, _ = self.gru(nn.functional.leaky_relu(self.inp(self.stats.features(poses)), 0.2))
        return self.score(h).squeeze(-1) + (h * self.embed(labels)[:, None]).sum(-1) / h.shape[-1] ** 0.5


class ActionClassifier(nn.Module):
    """The evaluation's action classifier: 1D convolutions over time on poses and velocities, averaged over
    time, to one logit per label.

    Args:
        config: sizes (:class:`train.actions.config.ClassifierConfig`).
        stats: the data's mean pose and spread.
    """

    def __init__(self, config: ClassifierConfig, stats: PoseStatistics | None = None) -> None:
        super().__init__()
        self.stats = stats or PoseStatistics()
        c = config.channels
        self.net = nn.Sequential(
            nn.Conv1d(2 * _COORDS, c, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(c, c, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(c, NUM_LABELS)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        """Classify sequences.

        Args:
            poses: float ``(B, T, NUM_JOINTS, 2)`` normalized joint space (any T >= 2).

        Returns:
            float32 ``(B, len(ACTION_LABELS))`` logits.

        Raises:
            ValueError: on wrong shapes.
        """
        _check_poses(poses)
        x = self.stats.features(poses).transpose(1, 2)
        return self.head(self.net(x).mean(dim=-1))
