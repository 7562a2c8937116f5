"""Recipe options: YAML loading, --key=value overrides (typed by the dataclasses) and their errors."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from vqcnir.training.config import RecipeOptions, parse_recipe_args
from vqcnir.training.options import OptionsError, apply_overrides, dump_yaml, from_dict, load_yaml, valid_keys

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "configs")


def test_overrides_are_typed_by_the_dataclass():
    options = apply_overrides(
        RecipeOptions(),
        [
            "train.optim_g.lr=2e-4",
            "--datasets.train.gt_size=128",
            "train.optim_g.betas=[0.5, 0.9]",
            "train.scheduler.milestones=[10, 20]",
            "val.save_img=false",
            "logger.use_tb_logger=1",
            "train.total_iter=1e3",
        ],
    )
    assert options.train.optim_g.lr == 2e-4 and isinstance(options.train.optim_g.lr, float)
    assert options.datasets.train.gt_size == 128
    assert options.train.optim_g.betas == (0.5, 0.9)
    assert options.train.scheduler.milestones == [10, 20]
    assert options.val.save_img is False and options.logger.use_tb_logger is True
    assert options.train.total_iter == 1000
    assert RecipeOptions().train.optim_g.lr == 1e-4  # the original is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=1", "unknown option 'train.lr'.*valid keys: .*train.optim_g.lr"),
        ("lr=1", "did you mean train.optim_g.lr, train.optim_d.lr"),
        ("train.total_iter=abc", "option 'train.total_iter' must be int, got 'abc'"),
        ("train.total_iter=1.5", "must be int"),
        ("val.save_img=maybe", "option 'val.save_img' must be bool"),
        ("train.optim_g.betas=[0.9, x]", r"train.optim_g.betas\[1\]' must be float"),
        ("network_g.preset=huge", "unknown model preset 'huge'"),
        ("datasets.train.type=imagenet", "must be one of"),
        ("train.total_iter", "must look like --key=value"),
        ("train=3", "unknown option 'train'"),
        ("train.optim_g.betas=[0.9]", r"in train.optim_g: betas must be two numbers in \[0, 1\).*got \[0.9\]"),
        ("train.optim_d.betas=[0.9, 0.99, 0.999]", "in train.optim_d: betas must be two numbers"),
        ("train.optim_g.betas=[0.9, 1.5]", "betas must be two numbers"),
        ("train.optim_g.lr=nan", "in train.optim_g: lr must be a finite number >= 0, got nan"),
        ("train.optim_g.lr=-1e-4", "lr must be a finite number >= 0, got -0.0001"),
        ("train.scheduler.gamma=0", "gamma must be a finite number > 0"),
        ("val.padding=zeros", r"in val: padding must be one of \('official', 'reflect'\), got 'zeros'"),
        ("train.losses.gan_type=wgan", r"gan_type must be one of \('hinge', 'non_saturating'\)"),
        ("train.losses.perceptual_net=resnet", r"perceptual_net must be one of \('vgg16', 'alexnet'\)"),
        ("train.losses.pixel_weight=-1", "pixel_weight must be a finite number >= 0"),
        ("network_d.norm=group", "norm must be one of"),
        ("logger.keep_checkpoints=0", "keep_checkpoints must be >= 1"),
        ("name=../elsewhere", "name must be a folder name"),
        ("network_g.norm_groups=5", r"must be divisible by norm_groups \(5\)"),
        ("network_g.encoder_channels=[8, 8]", "field 'encoder_channels' must be 4 integers"),
    ],
)
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(OptionsError, match=message):
        apply_overrides(RecipeOptions(), [override])


def test_yaml_unknown_keys_list_the_valid_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  optim_g:\n    learning_rate: 0.1\n")
    with pytest.raises(OptionsError, match=r"bad.yaml: unknown option\(s\) train.optim_g.learning_rate.*valid keys: "):
        load_yaml(RecipeOptions, str(path))


def test_round_trip_through_yaml(tmp_path):
    options = apply_overrides(RecipeOptions(), ["name=x", "train.optim_d.betas=[0.5, 0.999]"])
    path = tmp_path / "o.yaml"
    path.write_text(dump_yaml(options))
    assert load_yaml(RecipeOptions, str(path)) == options


@pytest.mark.parametrize(
    "name", ["vqgan_lolblur", "vqcnir_lolblur", "vqgan_demo", "vqcnir_demo", "vqgan_default", "vqcnir_default"]
)
def test_shipped_configs_load(name):
    options = load_yaml(RecipeOptions, os.path.join(CONFIGS, f"{name}.yaml"))
    assert options.name == name
    if "lolblur" in name:  # the paper's settings
        train = options.train
        assert (train.optim_g.lr, train.optim_g.betas, train.scheduler.type) == (1e-4, (0.9, 0.99), "MultiStepLR")
        assert (options.datasets.train.batch_size_per_gpu, options.datasets.train.gt_size) == (8, 256)
        assert train.total_iter == 500_000
        losses = train.losses
        weights = (losses.pixel_weight, losses.alignment_weight, losses.perceptual_weight, losses.adversarial_weight)
        assert weights == (1.0, 1.0, 1.0, 0.1)


def test_command_line(tmp_path, capsys):
    config = os.path.join(CONFIGS, "vqcnir_demo.yaml")
    options = parse_recipe_args(["--config", config, "--train.total_iter=7", "--resume"], config, "test")
    assert options.train.total_iter == 7 and options.path.resume_state == "auto"
    assert os.path.isabs(options.path.stage1_config) and os.path.isfile(options.path.stage1_config)
    with pytest.raises(SystemExit):
        parse_recipe_args(["--config", config, "--train.totl_iter=7"], config, "test")
    assert "unknown option 'train.totl_iter'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe_args(["--config", config, "stray"], config, "test")
    assert "options are given as --key=value" in capsys.readouterr().err


def test_valid_keys_are_dotted_leaves():
    keys = valid_keys(RecipeOptions)
    assert "train.optim_g.lr" in keys and "datasets.val.max_images" in keys and "train" not in keys
    assert from_dict(RecipeOptions, {}) == RecipeOptions()


def test_network_g_takes_any_model_field_on_top_of_a_preset(tmp_path):
    from vqcnir import VQCNIRConfig

    path = tmp_path / "n.yaml"
    path.write_text("network_g: {preset: tiny, codebook_size: 128, beta: 0.5}\n")
    options = load_yaml(RecipeOptions, str(path), ["network_g.attention_heads=[1, 1, 1, 1]"])
    expected = VQCNIRConfig(**{**VQCNIRConfig.tiny().to_dict(), "codebook_size": 128, "beta": 0.5})
    assert options.network_g.model_config() == replace(expected, attention_heads=(1, 1, 1, 1))
    # the preset decides what is not set, also when it is changed after the fields
    options = apply_overrides(options, ["network_g.preset=paper"])
    assert options.network_g.model_config().encoder_channels == VQCNIRConfig.paper().encoder_channels
    assert options.network_g.model_config().codebook_size == 128
    path.write_text(dump_yaml(options))
    assert load_yaml(RecipeOptions, str(path)).network_g.model_config() == options.network_g.model_config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train:\n  total_iter: 3\n   lr: 1\n",
            r"bad.yaml: not valid YAML at line 3, column 6: mapping values are not allowed",
        ),
        ("train: [1, 2\n", r"bad.yaml: not valid YAML at line 2"),
    ],
)
def test_yaml_syntax_errors_name_the_line(tmp_path, text, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(OptionsError, match=message):
        load_yaml(RecipeOptions, str(path))
    with pytest.raises(SystemExit):
        parse_recipe_args(["--config", str(path)], str(path), "test")
    assert "not valid YAML" in capsys.readouterr().err
    with pytest.raises(OptionsError, match="cannot read the config file .*missing.yaml"):
        load_yaml(RecipeOptions, str(tmp_path / "missing.yaml"))


def test_a_device_this_machine_lacks_is_refused_before_anything_runs(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = os.path.join(CONFIGS, "vqgan_demo.yaml")
    for device, message in [("cuda", "cannot use CUDA; use --device=cpu"), ("tpu", "must be 'auto', 'cpu', 'cuda'")]:
        with pytest.raises(SystemExit):
            parse_recipe_args(["--config", config, f"--device={device}"], config, "test")
        assert message in capsys.readouterr().err
