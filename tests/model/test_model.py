"""The VQCNIR model: shapes, the paper's parameter count, stage-1 -> stage-2, freezing, checkpoints,
official-checkpoint loading against an independent re-implementation, gradients, compile."""

from __future__ import annotations

import pytest
import torch

from tests.model.official_structure import OfficialVQCNIR
from tests.recipes.checkpoints import awake
from vqcnir import VQCNIR, VQGAN, VQCNIRConfig, load_official_checkpoint, load_pretrained, save_pretrained
from vqcnir.model import PRIOR_MODULES

TINY = VQCNIRConfig.tiny()


def _tiny(seed: int = 0, backend: str | None = None) -> VQCNIR:
    torch.manual_seed(seed)
    return awake(VQCNIR(TINY, backend=backend), offset_std=0.3, seed=seed).train()


def test_paper_config_has_the_official_parameter_count():
    assert sum(p.numel() for p in VQCNIR(VQCNIRConfig.paper()).parameters()) == 47_854_222


@pytest.mark.parametrize(("h", "w"), [(64, 64), (40, 88), (8, 16)])
def test_shapes_through_every_level(h, w):
    model = _tiny().eval()
    out = model(torch.rand(2, 3, h, w))
    assert out.image.shape == (2, 3, h, w)
    assert out.indices.shape == (2, h // 8, w // 8) and out.latent.shape == (2, TINY.code_dim, h // 8, w // 8)
    features = model.encoder(torch.rand(1, 3, h, w))
    assert [f.shape[-1] for f in features] == [w // 2, w // 4, w // 8]
    g = model.decoder_g(torch.rand(1, TINY.decoder_channels[0], h // 8, w // 8))
    assert {level: f.shape[1:] for level, f in g.items()} == {
        8: (32, h // 8, w // 8), 4: (32, h // 4, w // 4), 2: (32, h // 2, w // 2), 1: (16, h, w)}  # fmt: skip


@pytest.mark.parametrize(("h", "w"), [(37, 53), (1, 9), (65, 64)])
def test_restore_any_size(h, w):
    model = _tiny().eval()
    image = torch.rand(1, 3, h, w)
    for padding in ("official", "reflect"):
        assert model.restore(image, padding=padding).shape == (1, 3, h, w)


def test_bad_image_sizes_are_explained():
    with pytest.raises(ValueError, match="divisible by 8"):
        _tiny()(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"'image' must be a \[B, 3, H, W\]"):
        _tiny()(torch.rand(3, 32, 32))


def test_stage1_weights_load_and_the_prior_freezes_by_module():
    torch.manual_seed(1)
    vqgan = VQGAN(TINY)
    model = _tiny()
    model.load_stage1(vqgan)
    for name, value in vqgan.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    frozen = set(model.freeze_prior())
    expected = {f"{m}.{n}" for m in PRIOR_MODULES for n, _ in getattr(model, m).named_parameters()}
    assert frozen == expected
    # Decoder D also has blocks named like G's ("decoder_d.fuse..."): a substring rule would freeze them.
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("decoder_d.") for n in trainable) and any(n.startswith("encoder.") for n in trainable)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gt_indices = torch.randint(0, TINY.codebook_size, (2, 4, 4))
    out = model(torch.rand(2, 3, 32, 32), gt_indices=gt_indices)
    (out.image.mean() + out.quant_loss).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        if name in frozen:
            assert param.grad is None, name
        else:  # gradient flows to every trainable parameter
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(id(p) not in {id(q) for q in optimizer.state} for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(TypeError, match="'vqgan' must be a stage-1 VQGAN"):
        model.load_stage1(model)


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = _tiny().eval()
    save_pretrained(model, str(tmp_path / "ckpt"))
    loaded = load_pretrained(str(tmp_path / "ckpt")).eval()
    assert isinstance(loaded, VQCNIR) and loaded.config == TINY
    image = torch.rand(1, 3, 32, 40)
    assert torch.equal(loaded(image).image, model(image).image)
    vqgan = VQGAN(TINY)
    save_pretrained(vqgan, str(tmp_path / "stage1"))
    assert type(load_pretrained(str(tmp_path / "stage1"))) is VQGAN


def test_official_checkpoint_loads_into_the_same_function(tmp_path):
    torch.manual_seed(2)
    official = OfficialVQCNIR(TINY).eval()
    with torch.no_grad():
        for name, param in official.named_parameters():
            if name.endswith(("beta", "gamma", "scale")):
                param.normal_(0, 0.5)
    path = tmp_path / "VQCNIR_LOLBlur_G.pth"
    torch.save({"params": official.state_dict()}, path)
    model = load_official_checkpoint(path, config=TINY)
    image = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        expected = official(image)
        got = model(image).image
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # Every official tensor is consumed, and strictness catches extra or missing keys.
    state = dict(official.state_dict())
    state["main_decode.extra.weight"] = torch.zeros(1)
    torch.save({"params": state}, path)
    with pytest.raises(KeyError, match="no mapping consumes"):
        load_official_checkpoint(path, config=TINY)
    state.pop("main_decode.extra.weight")
    state.pop("out_conv.bias")
    torch.save({"params": state}, path)
    # Missing, extra and mis-shaped tensors are named by their official keys, not ours (to_rgb.bias).
    with pytest.raises(RuntimeError, match=r"missing official keys \['out_conv.bias'\]"):
        load_official_checkpoint(path, config=TINY)
    state["out_conv.bias"] = torch.zeros(4)
    torch.save({"params": state}, path)
    with pytest.raises(RuntimeError, match=r"wrong shapes \['out_conv.bias \(4,\) \(expected \(3,\)\)'\]"):
        load_official_checkpoint(path, config=TINY)
    state["out_conv.bias"] = torch.zeros(3)
    state["multiscale_encoder.blocks.3.blks.9.gamma"] = torch.zeros(1, 8, 1, 1)  # an AIEM block TINY lacks
    torch.save({"params": state}, path)
    with pytest.raises(RuntimeError, match=r"unexpected official keys \['multiscale_encoder.blocks.3.blks.9.gamma'\]"):
        load_official_checkpoint(path, config=TINY)
    with pytest.raises(FileNotFoundError, match="'path'"):
        load_official_checkpoint(tmp_path / "absent.pth")


def test_tiled_restore_close_to_whole_image():
    model = _tiny().eval()
    image = torch.rand(1, 3, 96, 96)
    whole = model.restore(image, padding="reflect")
    tiles = model.restore(image, padding="reflect", tile=64, overlap=16, tiling="approximate")
    assert tiles.shape == whole.shape
    # GroupNorm / channel attention see tile statistics, so tiles differ, but not wildly.
    mse = torch.mean((tiles - whole) ** 2).item()
    assert mse < torch.var(whole).item()


@pytest.mark.slow
def test_whole_model_under_torch_compile():
    model = _tiny().eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(image).image, model(image).image, rtol=1e-5, atol=1e-5)


def test_config_json_carries_format_and_library_version_and_older_files_load(tmp_path):
    import json

    import vqcnir
    from vqcnir.checkpoint import CONFIG_NAME, FORMAT_VERSION

    model = _tiny().eval()
    save_pretrained(model, str(tmp_path))
    config_path = tmp_path / CONFIG_NAME
    payload = json.loads(config_path.read_text())
    assert payload["format_version"] == FORMAT_VERSION and payload["library_version"] == vqcnir.__version__
    del payload["format_version"], payload["library_version"]  # a folder saved before versions existed
    config_path.write_text(json.dumps(payload))
    assert isinstance(load_pretrained(str(tmp_path)), VQCNIR)
    payload["format_version"], payload["library_version"] = FORMAT_VERSION + 1, "9.0"
    config_path.write_text(json.dumps(payload))
    with pytest.raises(
        vqcnir.CheckpointError, match=r"config.json: checkpoint format 2 \(written by vqcnir 9.0\) is newer"
    ):
        load_pretrained(str(tmp_path))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").write_text('{"model": "VQCNIR", "config": {'), r"config.json: not valid JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json: expected a JSON object"),
        (
            lambda d: (d / "config.json").write_text('{"model": "VQCNIR", "config": {"norm_groups": "8"}}'),
            r"config.json: invalid model config: model config field 'norm_groups' must be an integer >= 1, got '8'",
        ),
        (
            lambda d: (d / "config.json").write_text('{"model": "VQCNIR", "config": {"encoder_channels": [8, 8]}}'),
            "field 'encoder_channels' must be 4 integers",
        ),
        (lambda d: (d / "config.json").write_text('{"model": "Unet", "config": {}}'), "unknown model type 'Unet'"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-100]),
            r"model.safetensors: cannot read the weights .*truncated",
        ),
    ],
)
def test_model_folder_problems_name_the_file(tmp_path, damage, message):
    from vqcnir import CheckpointError

    save_pretrained(VQGAN(TINY), str(tmp_path))
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(str(tmp_path))


def test_wrong_config_values_are_named():
    with pytest.raises(ValueError, match="field 'beta' must be a finite number >= 0, got nan"):
        VQCNIRConfig(beta=float("nan"))
    with pytest.raises(ValueError, match="field 'in_channels' must be an integer >= 1, got True"):
        VQCNIRConfig(in_channels=True)
    with pytest.raises(TypeError, match="'config' must be a VQCNIRConfig"):
        VQGAN({"preset": "tiny"})


def test_vqgan_takes_the_backend_and_load_pretrained_keeps_it(tmp_path):
    assert VQGAN(TINY, backend="reference").quantizer.backend == "reference"
    save_pretrained(VQGAN(TINY), str(tmp_path / "s1"))
    save_pretrained(_tiny(), str(tmp_path / "s2"))
    for folder in ("s1", "s2"):
        assert load_pretrained(str(tmp_path / folder), backend="reference").quantizer.backend == "reference"


@pytest.mark.parametrize(("content", "reason"), [(b"", "the file is empty"), (b"not a pickle", "UnpicklingError")])
def test_unreadable_official_checkpoint_names_the_file(tmp_path, content, reason):
    from vqcnir import CheckpointError

    path = tmp_path / "VQCNIR_LOLBlur_G.pth"
    path.write_bytes(content)
    with pytest.raises(
        CheckpointError, match=rf"cannot read '.*VQCNIR_LOLBlur_G.pth' as a PyTorch checkpoint \({reason}"
    ):
        load_official_checkpoint(path, config=TINY)
