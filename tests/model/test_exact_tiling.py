"""Exact tiled inference (vqcnir.tiling) equals whole-image inference, for our models and a network of
standard layers; what it cannot run is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.recipes.checkpoints import awake
from vqcnir import VQCNIR, VQGAN, VQCNIRConfig
from vqcnir.restoring.models import restore_tensor
from vqcnir.tiling import MemoryBudgetError, TilingError, parse_memory, plan_exact, run_exact
from vqcnir.tiling.memory import pass_halo
from vqcnir_ops import DeformConv2dPack

TINY = VQCNIRConfig.tiny()
# The official structure (12 AIEMs, 4/4/2/1 heads, 4 offset groups) at reduced widths.
PAPER_STRUCTURE = VQCNIRConfig(
    encoder_channels=(32, 64, 64, 64), decoder_channels=(64, 64, 32, 32), codebook_size=128, code_dim=64,
    norm_groups=16,
)  # fmt: skip
CPU = torch.device("cpu")


def _max_error(model: nn.Module, image: torch.Tensor, padding: str = "official", **options) -> float:
    whole = model.restore(image, padding, tiling="whole")
    exact = model.restore(image, padding, tiling="exact", **options)
    assert exact.shape == whole.shape == image.shape and whole.std() > 0.05
    return (exact - whole).abs().max().item()


@pytest.mark.parametrize(
    ("padding", "size", "tile"),
    [("official", (45, 71), 16), ("reflect", (40, 57), 24), ("reflect", (33, 17), 16)],
    ids=["official-odd", "reflect-tile-not-dividing", "tile-smaller-than-halo"],
)
def test_tiny_vqcnir_float32(tiny, padding, size, tile):
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    assert _max_error(tiny, image, padding=padding, tile=tile) < 1e-3


def test_tiny_vqcnir_float64_batch_of_two():
    model = awake(VQCNIR(TINY)).double()
    image = torch.rand(2, 3, 37, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert _max_error(model, image, padding="reflect", tile=20) < 1e-9


def test_tile_smaller_than_the_halo_grows_to_it(tiny):
    plan = plan_exact(lambda x: tiny(x).image, (1, 3, 64, 64), torch.float32, CPU, tiny, tile=2)
    for p, side in zip(plan.schedule.passes, plan.sides, strict=True):
        assert side >= min(pass_halo(p, 2), max(p.grid.height, p.grid.width))
    assert max(plan.sides) > 2


def test_vqgan_float32():
    model = awake(VQGAN(TINY))
    image = torch.rand(1, 3, 29, 43, generator=torch.Generator().manual_seed(3))
    assert _max_error(model, image, tile=16) < 1e-3


def test_paper_structure_reduced_widths():
    model = awake(VQCNIR(PAPER_STRUCTURE), offset_std=0.02)
    image = torch.rand(1, 3, 41, 35, generator=torch.Generator().manual_seed(4))
    assert _max_error(model, image, padding="reflect", tile=16) < 1e-3


@pytest.mark.slow
def test_paper_config_once():
    model = awake(VQCNIR(VQCNIRConfig.paper()), offset_std=0.01)
    image = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(5))
    assert _max_error(model, image, padding="reflect", tile=24) < 1e-3


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


class UserNetwork(nn.Module):
    """Standard layers and vqcnir_ops layers, written as a user would."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.down = nn.Conv2d(16, 32, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(4, 32)
        self.inorm = nn.InstanceNorm2d(32, affine=True)
        self.se = SqueezeExcite(32)
        self.dcn = DeformConv2dPack(16, 16, 3, padding=1, offset_groups=2)
        self.up = nn.Sequential(nn.Conv2d(32, 64, 3, padding="same"), nn.PixelShuffle(2))
        self.out = nn.Conv2d(32, 3, 3, padding=1, dilation=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.stem(image))
        x = x + self.dcn(x)
        y = self.down(x)
        y = F.relu(self.norm(y), inplace=True)
        y = self.se(self.inorm(y))
        a, b = y.chunk(2, dim=1)
        y = torch.cat([F.max_pool2d(a, 3, stride=1, padding=1), F.avg_pool2d(b, 3, stride=1, padding=1)], dim=1)
        y += (y - y.mean(dim=(2, 3), keepdim=True)) / (y.var(dim=(2, 3), keepdim=True) + 1).sqrt()
        z = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        up = self.up(y)
        z = torch.cat([z[:, :16], up[:, :16]], dim=1) + F.pixel_unshuffle(F.pixel_shuffle(z, 2), 2)
        return self.out(z) + image.amax(dim=(2, 3), keepdim=True)


def test_network_of_standard_layers_float64_with_split_deform_boxes():
    torch.manual_seed(6)
    net = UserNetwork().double().eval()
    with torch.no_grad():
        net.dcn.conv_offset.weight.normal_(0, 0.3)  # offsets of several pixels: boxes wider than the tiles
    image = torch.rand(1, 3, 38, 30, dtype=torch.float64)
    with torch.no_grad():
        whole = net(image)
    plan = plan_exact(net, image.shape, torch.float64, CPU, net, tile=8)
    exact = run_exact(plan, image, fetch_limit=4096)  # forces deform tiles to split
    assert whole.std() > 0.05
    assert (exact - whole).abs().max().item() < 1e-9


class Flip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=[3])


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.mean() > 0.5 else x


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (nn.Sequential(nn.Conv2d(3, 3, 1), Flip()), r"1 \(Flip\): flip: works along the pixel dims"),
        (Branchy(), r"\(Branchy\): __bool__: needs the value"),
        (nn.Upsample(scale_factor=3), "only powers of two"),
        (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), "cannot be tiled exactly"),
        (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")), r"0 \(Conv2d\): pad:"),
    ],
    ids=["flip", "data-dependent", "scale-3", "align-corners", "circular-padding"],
)
def test_what_cannot_be_tiled_is_named(net, message):
    with pytest.raises(TilingError, match=message):
        plan_exact(net, (1, 3, 16, 16), torch.float32, CPU, net, tile=8)


def test_budget_picks_tiles_and_refuses_the_impossible(tiny):
    shape = (1, 3, 256, 256)
    roomy = plan_exact(lambda x: tiny(x).image, shape, torch.float32, CPU, tiny, budget=parse_memory("2GB"))
    tight = plan_exact(lambda x: tiny(x).image, shape, torch.float32, CPU, tiny, budget=parse_memory("200MB"))
    assert tight.peak_bytes <= parse_memory("200MB") < tight.whole_bytes
    grids = [max(p.grid.height, p.grid.width) for p in tight.schedule.passes]
    assert roomy.sides == grids and any(side < grid for side, grid in zip(tight.sides, grids, strict=True))
    with pytest.raises(MemoryBudgetError, match="do not fit max_memory=.*full-resolution activations"):
        plan_exact(lambda x: tiny(x).image, shape, torch.float32, CPU, tiny, budget=parse_memory("130MB"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4GB", 4 * 10**9), ("4 GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5g", int(1.5 * 2**30)), (1000, 1000)],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["4 parsecs", "-1GB", "0", True, [1]])
def test_parse_memory_rejects(bad):
    with pytest.raises((ValueError, TypeError), match="max_memory"):
        parse_memory(bad)


MEASURE = """
import json, sys, torch
from vqcnir import VQCNIR, VQCNIRConfig

torch.set_num_threads(1)
torch.manual_seed(0)
model = VQCNIR(VQCNIRConfig.tiny()).eval()
image = torch.rand(1, 3, 512, 512)


def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))


peaks = {}
for mode, budget in (("exact", sys.argv[1]), ("whole", None)):
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")
    before = status("VmRSS")
    model.restore(image, "reflect", tiling=mode, max_memory=budget)
    peaks[mode] = status("VmHWM") - before
print(json.dumps(peaks))
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_measured_peak_stays_within_the_budget_and_below_whole_image():
    budget = "250MB"
    result = subprocess.run([sys.executable, "-c", MEASURE, budget], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks["exact"] <= parse_memory(budget), peaks  # the process's resident memory, measured
    assert peaks["exact"] < peaks["whole"] / 2, peaks


def test_offloaded_activations_and_a_plain_module_through_restore_tensor(tiny, tmp_path):
    image = torch.rand(1, 3, 30, 44, generator=torch.Generator().manual_seed(7))
    whole = tiny.restore(image, tiling="whole")
    offloaded = tiny.restore(image, tiling="exact", tile=16, offload=str(tmp_path))
    assert (offloaded - whole).abs().max() < 1e-3 and os.listdir(tmp_path) == []  # files removed once mapped
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU(), nn.Conv2d(8, 3, 1)).eval()
    plain = restore_tensor(net, image, "reflect", tiling="whole")
    exact = restore_tensor(net, image, "reflect", tile=16, tiling="exact")
    assert plain.std() > 0.01 and (exact - plain).abs().max() < 1e-5
