"""Config loading: files, overrides, error messages, round trips."""

from __future__ import annotations

import pytest

from train.actions.config import DEFAULT_ACTIONS_CONFIG_PATH
from train.config import (
    CONFIG_DIR,
    DEFAULT_CONFIG_PATH,
    FitConfig,
    GeneratorConfig,
    config_differences,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)


def test_packaged_small_config_loads() -> None:
    config = load_config(DEFAULT_CONFIG_PATH)
    assert isinstance(config, FitConfig) and isinstance(config.generator, GeneratorConfig)
    assert config.generator.temporal and config.discriminator.n_scales == 2
    assert 256 % 2**config.generator.n_downsample == 0


def test_overrides_apply_with_types() -> None:
    config = load_config(
        DEFAULT_CONFIG_PATH, ["generator.ngf=8", "loss.lambda_l1=0", "generator.temporal=false"]
    )
    assert config.generator.ngf == 8 and config.loss.lambda_l1 == 0.0 and config.generator.temporal is False
    assert load_config(None, ["steps=7"]).steps == 7  # defaults + overrides only


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.steps = 3  # type: ignore[misc]


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(
        ValueError, match=r"unknown config key 'generator\.ngff'.*ngf, n_downsample, n_blocks"
    ):
        load_config(None, ["generator.ngff=8"])
    with pytest.raises(ValueError, match=r"unknown config key 'stepz'.*steps"):
        load_config(None, ["stepz=8"])


def test_bad_values_say_which_key() -> None:
    with pytest.raises(ValueError, match=r"bad value 'many' for key 'steps'"):
        load_config(None, ["steps=many"])
    with pytest.raises(ValueError, match=r"generator\.ngf must be >= 1, got 0"):
        load_config(None, ["generator.ngf=0"])
    with pytest.raises(ValueError, match=r"max_minutes must be >= 0"):
        load_config(None, ["max_minutes=-1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["steps"])


def test_bad_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator:\n  ngf: [1\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("discriminator:\n  n_scale: 2\n")
    with pytest.raises(ValueError, match=rf"config file {typo}: unknown config key 'discriminator\.n_scale'"):
        load_config(typo)
    flat = tmp_path / "flat.yaml"
    flat.write_text("generator: 3\n")
    with pytest.raises(ValueError, match=rf"config file {flat}: bad value"):
        load_config(flat)


def test_round_trips(tmp_path) -> None:
    config = load_config(DEFAULT_CONFIG_PATH, ["seed=3"])
    assert config_from_dict(config_to_dict(config)) == config
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path) == config
    assert load_config(None, ["steps=9"], base=config) == load_config(
        DEFAULT_CONFIG_PATH, ["seed=3", "steps=9"]
    )


def test_config_differences() -> None:
    a, b = load_config(None), load_config(None, ["steps=5", "generator.ngf=4"])
    assert config_differences(a, b) == {"generator.ngf": (64, 4), "steps": (1000, 5)}
    assert config_differences(a, a) == {}


#: The target models' packaged configs: every YAML there but the action models' (tests/train/test_actions.py).
TARGET_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p != DEFAULT_ACTIONS_CONFIG_PATH)


@pytest.mark.parametrize("path", TARGET_CONFIGS, ids=lambda p: p.name)
def test_every_packaged_config_loads_and_fits_a_256_canvas(path) -> None:
    config = load_config(path)
    multiple = 2**config.generator.n_downsample * config.global_downscale
    assert 256 % multiple == 0


def test_ablation_configs_share_one_step_budget() -> None:
    a, b, c = (load_config(CONFIG_DIR / f"ablation_{v}.yaml") for v in "abc")
    budgets = [sum(cfg.stage_steps(stage) for stage in cfg.stages) for cfg in (a, b, c)]
    assert budgets[0] == budgets[1] == budgets[2]
    assert not a.generator.temporal and b.generator.temporal and c.generator.temporal
    assert a.stages == b.stages == ("global",) and c.stages == ("global", "face")
    assert config_differences(a, b) == {"generator.temporal": (False, True)}


def test_stage_keys() -> None:
    config = load_config(None, ["stages=[global,local,face]", "steps=3", "local.steps=4", "face.steps=5"])
    assert [config.stage_steps(s) for s in config.stages] == [3, 4, 5]
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(ValueError, match=r"face\.n_downsample must be in \[1, 4\]"):
        load_config(None, ["face.n_downsample=5"])
    with pytest.raises(ValueError, match=r"loss\.lambda_pose_mask_l1 must be >= 0"):
        load_config(None, ["loss.lambda_pose_mask_l1=-1"])
    assert not load_config(None).loss.use_vgg_loss
    assert load_config(None, ["loss.vgg_weights=/x.pth"]).loss.use_vgg_loss
    assert not load_config(None, ["loss.vgg_weights=/x.pth", "loss.lambda_vgg=0"]).loss.use_vgg_loss
