"""Typed, frozen training configuration, loaded from a YAML file plus ``key=value`` overrides.

One dataclass per component (generator, discriminator, losses, optimizer, the local enhancer and face stages,
pose augmentation) gathered in :class:`FitConfig`.
Files and overrides are merged with OmegaConf structured configs, so an unknown key or a value of the wrong
type is reported with its dotted name; ranges are checked in each dataclass's ``__post_init__``.

Defaults are pix2pixHD's global generator and discriminator (Wang et al., CVPR 2018) as used by Everybody
Dance Now (Chan et al., ICCV 2019); ``train/configs/small.yaml`` shrinks them to train on a 2-core CPU and
``train/configs/full.yaml`` runs all three stages (global, local, face).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG_PATH = CONFIG_DIR / "small.yaml"

#: Training stages in the order they run (Everybody Dance Now, Sec. 3.2-3.3; pix2pixHD, Sec. 3.2), then the
#: real-time student distilled from the finished model (GAN Compression, Li et al., CVPR 2020).
STAGES = ("global", "local", "face", "student")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


#: Architectures of the global stage's generator (``generator.kind``), registered in
#: :mod:`realtime.model.nets`.
GENERATOR_KINDS = ("global", "mobile")


@dataclass(frozen=True)
class GeneratorConfig:
    """The global stage's generator: pix2pixHD's global generator (Wang et al. 2018, Sec. 3.2; see
    :class:`train.models.GlobalGenerator`) or, with ``kind`` "mobile", the light CPU generator
    :class:`realtime.model.nets.MobileGenerator` (depthwise-separable blocks, nothing at the full resolution
    but the input and output; no local stage can follow it).

    ``kind``: "global" or "mobile". ``ngf``, ``n_downsample``, ``n_blocks``: its sizes.
    ``temporal``: condition on the previous output frame (Everybody Dance Now, Sec. 3.2).
    ``extra_inputs``: names of further generator inputs declared in :mod:`realtime.model.inputs`, after the
    stick figure (and the previous frame); each widens the first layer by its channels. ``background_hw``:
    ``[H, W]`` of a learned background the "mobile" generator composites its foreground over (vid2vid's
    foreground-background prior; must be the canvas), or ``[0, 0]`` for none. ``blend_prior``: the name of
    an input of ``extra_inputs`` (the appearance prior, ``appearance_prior``) whose warped appearance the
    generator may copy where it lands (:func:`realtime.model.nets.blend_with_prior`), or "" for none.
    ``composite_over``: a per-target input listed in ``extra_inputs`` (``background_plate``, the target's
    background without the person, :mod:`realtime.model.plate`) that the generator composites its
    foreground over with a predicted alpha (Balakrishnan et al. 2018, Sec. 3.4), or "" for none; not with
    ``background_hw``.
    """

    kind: str = "global"
    ngf: int = 64
    n_downsample: int = 4
    n_blocks: int = 9
    temporal: bool = True
    extra_inputs: tuple[str, ...] = ()
    background_hw: tuple[int, int] = (0, 0)
    blend_prior: str = ""
    composite_over: str = ""

    def __post_init__(self) -> None:
        _require(
            not self.blend_prior or self.blend_prior in tuple(self.extra_inputs),
            f"generator.blend_prior {self.blend_prior!r} must be one of generator.extra_inputs "
            f"{list(self.extra_inputs)}",
        )
        try:
            background_hw = tuple(int(v) for v in self.background_hw)
        except (TypeError, ValueError):
            background_hw = ()
        _require(
            len(background_hw) == 2 and min(background_hw) >= 0,
            f"generator.background_hw must be [H, W] (or [0, 0] for none), got {self.background_hw!r}",
        )
        object.__setattr__(self, "background_hw", background_hw)
        _require(
            not any(self.background_hw) or (self.kind == "mobile" and all(self.background_hw)),
            f"generator.background_hw {list(self.background_hw)} needs kind 'mobile' and H, W > 0",
        )
        _require(
            self.kind in GENERATOR_KINDS,
            f"generator.kind must be one of {GENERATOR_KINDS}, got {self.kind!r}",
        )
        _require(self.ngf >= 1, f"generator.ngf must be >= 1, got {self.ngf}")
        _require(
            1 <= self.n_downsample <= 6, f"generator.n_downsample must be in [1, 6], got {self.n_downsample}"
        )
        _require(self.n_blocks >= 0, f"generator.n_blocks must be >= 0, got {self.n_blocks}")
        object.__setattr__(self, "extra_inputs", tuple(self.extra_inputs))
        _require(
            not self.composite_over or self.composite_over in self.extra_inputs,
            f"generator.composite_over={self.composite_over!r} must be one of generator.extra_inputs "
            f"{list(self.extra_inputs)} (e.g. generator.extra_inputs=[background_plate])",
        )
        _require(
            not (self.composite_over and any(self.background_hw)),
            f"generator.composite_over={self.composite_over!r} and a learned background "
            f"(generator.background_hw {list(self.background_hw)}) are two backgrounds; keep one",
        )


@dataclass(frozen=True)
class DiscriminatorConfig:
    """pix2pixHD multi-scale PatchGAN; see :class:`train.models.MultiscaleDiscriminator`."""

    ndf: int = 64
    n_layers: int = 3
    n_scales: int = 2

    def __post_init__(self) -> None:
        _require(self.ndf >= 1, f"discriminator.ndf must be >= 1, got {self.ndf}")
        _require(1 <= self.n_layers <= 6, f"discriminator.n_layers must be in [1, 6], got {self.n_layers}")
        _require(1 <= self.n_scales <= 4, f"discriminator.n_scales must be in [1, 4], got {self.n_scales}")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the generator's loss terms (the LSGAN term has weight 1) in the global and local stages.

    ``lambda_feature_matching``: pix2pixHD's discriminator feature matching (their ``lambda_feat`` = 10).
    ``lambda_vgg``: pix2pixHD's VGG19 perceptual loss (their weight 10), used only when ``vgg_weights``
    names a local file with torchvision's ``vgg19`` state dict (weights cannot be downloaded here); without
    one the term is off and the log says so once. ``vgg_weights``: that file's path ("" = none).
    ``lambda_pose_mask_l1``: PG2's pose-mask L1 (Ma et al., NeurIPS 2017, Eq. 2), ``|(G - y) * (1 + M)|``
    with M the prepared body mask in [0, 1]: an L1 that counts the person twice as much as the background.
    ``lambda_l1``: plain L1 between generated and real frames (not in the papers). Both L1 terms make small
    CPU models converge to something recognizable within minutes. ``lambda_alpha_mask``: L1 between a
    compositing generator's alpha (``generator.composite_over`` or a learned background) and the prepared
    person mask in [0, 1], on the unroll's last frame (Balakrishnan et al. 2018 learn their mask without one;
    default 0: the image terms alone shape it; not measured yet). 0 turns a term off.
    """

    lambda_feature_matching: float = 10.0
    lambda_vgg: float = 10.0
    vgg_weights: str = ""
    lambda_pose_mask_l1: float = 0.0
    lambda_l1: float = 0.0
    lambda_alpha_mask: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "lambda_feature_matching", "lambda_vgg", "lambda_pose_mask_l1", "lambda_l1", "lambda_alpha_mask"
        ):  # fmt: skip
            value = getattr(self, name)
            _require(value >= 0, f"loss.{name} must be >= 0, got {value}")

    @property
    def use_vgg_loss(self) -> bool:
        """Whether the VGG perceptual term is on: a weights file is given and its weight is positive."""
        return bool(self.vgg_weights) and self.lambda_vgg > 0


@dataclass(frozen=True)
class LocalConfig:
    """The ``local`` stage: pix2pixHD's local enhancer G2 (Wang et al. 2018, Sec. 3.2, "Coarse-to-fine
    generator"; reference code ``LocalEnhancer``) at the full canvas, around the global generator G1, which
    then runs at half the canvas (so a run with this stage trains its ``global`` stage at half the canvas,
    frames downsampled). G2's first layer has ``generator.ngf / 2`` channels, as in pix2pixHD.

    ``steps``: optimizer steps of this stage. ``n_blocks``: G2's residual blocks (pix2pixHD: 3). The stage
    starts from the finished global stage: G1 (all but its output layer) and the discriminator are copied,
    G2 is new; all of them train.
    """

    steps: int = 1000
    n_blocks: int = 3

    def __post_init__(self) -> None:
        _require(self.steps >= 1, f"local.steps must be >= 1, got {self.steps}")
        _require(self.n_blocks >= 0, f"local.n_blocks must be >= 0, got {self.n_blocks}")


@dataclass(frozen=True)
class FaceConfig:
    """The ``face`` stage: Everybody Dance Now's face GAN (Chan et al. 2019, Sec. 3.3). The main generator
    is frozen; a small pix2pixHD global generator sees the face crop of the stick figure and of the generated
    frame and outputs a residual added to the generated crop; its own PatchGAN judges (stick crop, face crop)
    pairs. Crops are ``face_box_size_px`` of the prepared data rounded up to a multiple of
    ``2**n_downsample``, centered on the face boxes.

    ``steps``: optimizer steps of this stage. ``ngf``, ``n_downsample``, ``n_blocks``: the face generator.
    ``ndf``, ``n_layers``, ``n_scales``: the face discriminator. ``lambda_feature_matching``: its feature
    matching weight. ``lambda_l1``: L1 between the corrected and the real face crop. (The VGG term, when on,
    applies to the crops with ``loss.lambda_vgg``.)
    """

    steps: int = 1000
    ngf: int = 32
    n_downsample: int = 2
    n_blocks: int = 3
    ndf: int = 32
    n_layers: int = 2
    n_scales: int = 1
    lambda_feature_matching: float = 10.0
    lambda_l1: float = 10.0

    def __post_init__(self) -> None:
        for name in ("steps", "ngf", "ndf"):
            value = getattr(self, name)
            _require(value >= 1, f"face.{name} must be >= 1, got {value}")
        _require(1 <= self.n_downsample <= 4, f"face.n_downsample must be in [1, 4], got {self.n_downsample}")
        _require(self.n_blocks >= 0, f"face.n_blocks must be >= 0, got {self.n_blocks}")
        _require(1 <= self.n_layers <= 4, f"face.n_layers must be in [1, 4], got {self.n_layers}")
        _require(1 <= self.n_scales <= 3, f"face.n_scales must be in [1, 3], got {self.n_scales}")
        for name in ("lambda_feature_matching", "lambda_l1"):
            value = getattr(self, name)
            _require(value >= 0, f"face.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time pose corruption, for robustness to imperfect poses at run time (Yang et al., "Pose
    Guided Human Video Generation", ECCV 2018: "abnormal poses" with missing or misplaced keypoints;
    Everybody Dance Now's remark on missed keypoints). When ``enabled``, stick figures are drawn on the fly
    from ``keypoints.npz`` (with the data's rendering parameters) after corrupting each frame's pose:

    ``joint_dropout_p``: each present joint is dropped (confidence 0) with this probability (default 0.05).
    ``chain_dropout_p``: with this probability per frame, one limb chain (an arm, a leg or the head, drawn
    uniformly) is dropped from a random joint of it outward to its end (default 0.1).
    ``jitter_px``: standard deviation in canvas pixels of Gaussian noise added to every joint's x and y
    (default 1.0; 0 = none). When not ``enabled``, the stored stick figures are used unchanged.

    Two more, for a short recording (:mod:`train.novel_poses`), also only when ``enabled``:
    ``novel_pose_p``: with this probability per training pair, the pair is moved into a pose the recording
    never showed (new arm directions, legs swung up to ``novel_leg_deg`` degrees), its ground truth made by
    warping the frame's own body parts there (default 0: off; it needs the background plate).
    ``garment_colour_p``: with this probability per pair, one garment gets a random colour in the reference
    appearance and in the frames predicted, so that the colour control changes the garment and nothing else
    (default 0: off; it needs the reference appearance).
    """

    enabled: bool = False
    joint_dropout_p: float = 0.05
    chain_dropout_p: float = 0.1
    jitter_px: float = 1.0
    novel_pose_p: float = 0.0
    novel_leg_deg: float = 20.0
    garment_colour_p: float = 0.0

    def __post_init__(self) -> None:
        for name in ("joint_dropout_p", "chain_dropout_p", "novel_pose_p", "garment_colour_p"):
            value = getattr(self, name)
            _require(0 <= value <= 1, f"augment.{name} must be in [0, 1], got {value}")
        _require(self.jitter_px >= 0, f"augment.jitter_px must be >= 0, got {self.jitter_px}")
        leg = self.novel_leg_deg
        _require(0 <= leg <= 90, f"augment.novel_leg_deg must be in [0, 90], got {leg}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a trained target model (the teacher) into the generator being trained,
    as GAN Compression does for pix2pix (Li et al., CVPR 2020, Sec. 3.1: the student's output is pulled
    towards the teacher's on the same inputs, beside the usual GAN losses; here the output-level term only).

    ``teacher``: an engine file the backends open (``NAME.onnx`` through ONNX Runtime, ``NAME.pt``
    inference weights), with its sidecar beside it; "" = no distillation. It must take the same declared
    inputs as the generator being trained, and is run on the batch's inputs in the same two-step unroll
    (its own previous output feeding its state input).
    ``lambda_l1``: weight of the L1 between the student's and the teacher's frames (summed over the
    unrolled frames, like the other image terms). ``threads``: the teacher's intra-op threads (ONNX Runtime).
    """

    teacher: str = ""
    lambda_l1: float = 10.0
    threads: int = 1

    def __post_init__(self) -> None:
        _require(self.lambda_l1 >= 0, f"distill.lambda_l1 must be >= 0, got {self.lambda_l1}")
        _require(self.threads >= 0, f"distill.threads must be >= 0 (0 = all cores), got {self.threads}")

    @property
    def enabled(self) -> bool:
        """Whether the distillation term is on: a teacher is named and its weight is positive."""
        return bool(self.teacher) and self.lambda_l1 > 0


@dataclass(frozen=True)
class StudentConfig:
    """The ``student`` stage: a light generator for real time on a CPU, distilled from the finished model of
    the stages before it (the teacher: the global, local or face stage's main generator, frozen), as the
    bundled mannequin's CPU tier was made (docs/RESULTS.md, issue 10) and as GAN Compression distills pix2pix
    (Li et al., CVPR 2020, Sec. 3.1: the student's output pulled towards the teacher's on the same inputs,
    beside the GAN losses against the real frames).

    The student is a :class:`realtime.model.nets.MobileGenerator` (``kind`` "mobile"; ``ngf``,
    ``n_downsample``, ``n_blocks`` its sizes) without the previous frame (``temporal`` false: a small network
    fed its own output drifted, docs/RESULTS.md, issue 10) and with the teacher's other inputs: the
    appearance prior it blends and the background plate it composites over, when the teacher has them. Its
    discriminator is ``discriminator``'s, new and judging single frames. ``background_hw``: ``[H, W]`` of a
    learned background (:class:`GeneratorConfig`'s; the canvas) for a teacher without the plate, as the
    bundled mannequin's student has; ``[0, 0]`` (the default) for none. ``steps``: optimizer steps.
    ``lambda_distill``: weight of the L1 between the student's frame and the teacher's (the teacher's frame
    ``t`` after its own two-step unroll); ``lambda_l1``: the student's plain L1 to the real frame (measured on
    the mannequin: 10 learned faster than 0); the other terms are ``loss``'s.
    """

    steps: int = 4000
    kind: str = "mobile"
    ngf: int = 16
    n_downsample: int = 4
    n_blocks: int = 6
    temporal: bool = False
    background_hw: tuple[int, int] = (0, 0)
    lambda_distill: float = 2.0
    lambda_l1: float = 10.0

    def __post_init__(self) -> None:
        _require(self.steps >= 1, f"student.steps must be >= 1, got {self.steps}")
        _require(
            self.kind in GENERATOR_KINDS, f"student.kind must be one of {GENERATOR_KINDS}, got {self.kind!r}"
        )
        for name in ("lambda_distill", "lambda_l1"):
            value = getattr(self, name)
            _require(value >= 0, f"student.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam for both networks (pix2pixHD: lr 2e-4, betas (0.5, 0.999))."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _require(0 <= self.beta1 < 1, f"optim.beta1 must be in [0, 1), got {self.beta1}")
        _require(0 <= self.beta2 < 1, f"optim.beta2 must be in [0, 1), got {self.beta2}")


@dataclass(frozen=True)
class FitConfig:
    """Everything ``python -m train fit`` needs besides the data and run directories.

    ``stages``: the training stages to run, in order, from :data:`STAGES`: ``global`` first, then
    optionally ``local`` and/or ``face`` (e.g. ``[global]``, ``[global, local, face]``, ``[global, face]``).
    A ``student`` stage may end any of these (e.g. ``[global, student]``): it distills the finished model
    into a light real-time generator (:class:`StudentConfig`).
    ``steps``: optimizer steps of the global stage (a resumed run continues to this total); the other stages
    have ``local.steps``, ``face.steps`` and ``student.steps``. ``stage_minutes``: a wall-time budget per
    stage in minutes, ``{stage: minutes}`` (e.g. ``stage_minutes.student=20``): the stage ends, with its
    checkpoint, at its steps or its minutes (summed over invocations), whichever comes first, and the next
    stage starts; a stage not listed has no budget. ``batch_size``: frame pairs per step and process (with
    ``torchrun``, each process draws its own batch). ``max_minutes``: stop cleanly,
    with a checkpoint, after this much wall time in this invocation (0 = no limit). ``*_every``: in steps.
    ``sample_frames``: number of fixed training frames drawn on each sample sheet. ``threads``: torch CPU
    threads (0 = all cores). ``num_workers``: DataLoader worker processes (0 = load in the main process).
    ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    stages: tuple[str, ...] = ("global",)
    stage_minutes: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    steps: int = 1000
    max_minutes: float = 0.0
    checkpoint_every: int = 200
    log_every: int = 10
    sample_every: int = 100
    sample_frames: int = 3
    seed: int = 0
    threads: int = 0
    num_workers: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "checkpoint_every", "log_every", "sample_every", "sample_frames"):
            value = getattr(self, name)
            _require(value >= 1, f"{name} must be >= 1, got {value}")
        for name in ("max_minutes", "threads", "num_workers"):
            value = getattr(self, name)
            _require(value >= 0, f"{name} must be >= 0 (0 = {_ZERO_MEANS[name]}), got {value}")
        _require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}",
        )
        stages = tuple(self.stages)
        _require(
            bool(stages) and stages[0] == "global" and len(set(stages)) == len(stages)
            and all(stage in STAGES for stage in stages)
            and list(stages) == sorted(stages, key=STAGES.index),
            f"stages must start with 'global' and follow the order {list(STAGES)} without repeats "
            f"(e.g. [global], [global,local,face], [global,face], [global,student]), got {list(stages)}",
        )  # fmt: skip
        minutes = dict(self.stage_minutes)
        _require(  # a budget for a stage this run skips (e.g. stages=[global] with small.yaml's) is unused
            all(stage in STAGES and value >= 0 for stage, value in minutes.items()),
            f"stage_minutes must map stages {list(STAGES)} to minutes >= 0, got {minutes}",
        )
        object.__setattr__(self, "stage_minutes", minutes)
        if "local" in stages:
            _require(
                self.generator.kind == "global",
                f"the local enhancer wraps pix2pixHD's global generator: generator.kind must be 'global' "
                f"with a local stage, got {self.generator.kind!r}",
            )
            _require(
                self.generator.ngf % 2 == 0,
                f"the local enhancer has generator.ngf / 2 channels: generator.ngf must be even, "
                f"got {self.generator.ngf}",
            )

    @property
    def main_generator(self) -> str:
        """The run's main generator (before any face stage): "local" if that stage runs, else "global"."""
        return "local" if "local" in self.stages else "global"

    @property
    def global_downscale(self) -> int:
        """Canvas size / the global stage's training size: 2 when a local stage follows, else 1."""
        return 2 if "local" in self.stages else 1

    def stage_steps(self, stage: str) -> int:
        """Optimizer steps of ``stage`` (one of :data:`STAGES`)."""
        steps = {"global": self.steps, "local": self.local.steps, "face": self.face.steps}
        return steps[stage] if stage != "student" else self.student.steps

    @property
    def teacher_stages(self) -> tuple[str, ...]:
        """The stages that train the model a ``student`` stage learns from (every stage but ``student``)."""
        return tuple(stage for stage in self.stages if stage != "student")


def student_config(config: FitConfig) -> FitConfig:
    """The config the ``student`` stage trains with, and that its checkpoint stores: ``config`` with the
    student's generator (:class:`StudentConfig`'s kind, sizes, ``temporal`` and learned background; the
    teacher's extra inputs, prior blend and composite), its L1 weight, a single global-stage run of
    ``student.steps`` steps, and distillation at ``student.lambda_distill`` (the teacher itself is the
    finished stage's checkpoint, not an engine file: :mod:`train.fit`). A student checkpoint thus loads, runs
    and exports like a global stage's.

    Raises:
        ValueError: if the student cannot take the teacher's inputs (see :class:`GeneratorConfig`).
    """
    student, teacher = config.student, config.generator
    return dataclasses.replace(
        config,
        generator=GeneratorConfig(
            kind=student.kind, ngf=student.ngf, n_downsample=student.n_downsample, n_blocks=student.n_blocks,
            temporal=student.temporal, extra_inputs=teacher.extra_inputs, blend_prior=teacher.blend_prior,
            composite_over=teacher.composite_over, background_hw=student.background_hw,
        ),
        loss=dataclasses.replace(config.loss, lambda_l1=student.lambda_l1),
        distill=dataclasses.replace(config.distill, teacher="", lambda_l1=student.lambda_distill),
        stages=("global",),
        steps=student.steps,
        stage_minutes={},
    )  # fmt: skip


_ZERO_MEANS = {"max_minutes": "no limit", "threads": "all cores", "num_workers": "main process"}


def _keys_under(dotted_parent: str) -> list[str]:
    """Field names of the config dataclass at ``dotted_parent`` ('' = FitConfig), or [] if not a dataclass."""
    cls: Any = FitConfig
    for part in filter(None, dotted_parent.split(".")):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields or not dataclasses.is_dataclass(fields[part].default_factory):
            return []
        cls = fields[part].default_factory
    return [f.name for f in dataclasses.fields(cls)]


def config_keys() -> tuple[str, ...]:
    """Every dotted key that a config file or a ``key=value`` override may set (``generator.extra_inputs``,
    ``steps``, ...), in :class:`FitConfig`'s field order: derived from the dataclasses, as nanoGPT derives its
    ``config_keys`` from its globals, so that no list of keys is kept by hand (``python -m train fit --help``
    shows these)."""
    keys: list[str] = []
    for name in _keys_under(""):
        children = _keys_under(name)
        if children:
            keys.extend(f"{name}.{child}" for child in children)
        else:
            keys.append(name)
    return tuple(keys)


def _merge(sources: Sequence[tuple[str, Any]]) -> FitConfig:
    """Merge ``(description, OmegaConf-compatible node)`` pairs over the defaults into a FitConfig.

    Raises:
        ValueError: naming the source and the key or value that was wrong.
    """
    merged = OmegaConf.structured(FitConfig)
    for description, node in sources:
        try:
            merged = OmegaConf.merge(merged, node)
        except ConfigKeyError as error:
            key = str(error.full_key)
            parent = key.rpartition(".")[0]
            valid = ", ".join(_keys_under(parent))
            raise ValueError(f"{description}: unknown config key {key!r}; valid keys here: {valid}") from None
        except OmegaConfBaseException as error:
            full_key = getattr(error, "full_key", None)
            which = f" {getattr(error, 'value', None)!r} for key {full_key!r}" if full_key else ""
            reason = str(getattr(error, "msg", None) or error).splitlines()[0]
            raise ValueError(f"{description}: bad value{which}: {reason}") from None
    try:
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ValueError(f"bad config: {str(error).splitlines()[0]}") from None
    assert isinstance(config, FitConfig)
    return config


def config_sources(
    base: Any, path: str | os.PathLike[str] | None, overrides: Sequence[str], see: str
) -> list[tuple[str, Any]]:
    """The ``(description, OmegaConf node)`` layers of a config, in merge order: ``base`` (a dataclass, if
    given), the YAML file at ``path`` (if given), then each ``key=value`` of ``overrides``. ``see``: where a
    user finds the config files (named when ``path`` does not exist). Shared by :func:`load_config` and
    :func:`train.actions.config.load_actions_config`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a file that is not valid YAML or an override without ``=``.
    """
    sources: list[tuple[str, Any]] = []
    if base is not None:
        sources.append(("base config", OmegaConf.structured(base)))
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist; see {see}")
        try:
            sources.append((f"config file {path}", OmegaConf.load(path)))
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {error}") from error
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"override {override!r} is not of the form key=value (e.g. steps=500)")
        sources.append((f"override {override!r}", OmegaConf.from_dotlist([override])))
    return sources


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    base: FitConfig | None = None,
) -> FitConfig:
    """Load a :class:`FitConfig`: defaults, then ``base`` (if given), then the YAML file at ``path`` (if
    given), then ``overrides`` like ``["generator.ngf=32", "steps=500"]``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unknown key (listing the valid ones), a value of the wrong type, an out-of-range
            value, or an override without ``=``.
    """
    return _merge(config_sources(base, path, overrides, f"{CONFIG_DIR} for the packaged ones"))


def config_to_dict(config: FitConfig) -> dict[str, Any]:
    """A plain, JSON/YAML-friendly nested dict of ``config`` (what checkpoints store)."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> FitConfig:
    """Inverse of :func:`config_to_dict`; keys missing from ``data`` take their defaults.

    Raises:
        ValueError: as :func:`load_config`.
    """
    return _merge([("stored config", OmegaConf.create(data))])


def config_to_yaml(config: FitConfig) -> str:
    """The resolved config as YAML text, loadable again with :func:`load_config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def config_differences(old: FitConfig, new: FitConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, mapped to ``(old, new)``."""

    def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flatten(config_to_dict(old)), flatten(config_to_dict(new))
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}
