"""train.ema_decay: the weights' moving average (vqcnir/training/average.py) and how the session uses it."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.recipes.helpers import load_recipe, logged_values, tiny_recipe
from vqcnir.training.average import WeightAverage
from vqcnir.training.config import TrainOptions
from vqcnir.training.state import find_checkpoint, load_training_state

train_vqgan = load_recipe("train_vqgan")


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].running_mean.uniform_()
    return net


def test_average_follows_the_exponential_formula_and_copies_integer_buffers():
    net = _net()
    average = WeightAverage(net, 0.9)
    average.updates = 100  # past the warm-up: the decay itself (0.9)
    start = {k: v.clone() for k, v in average.state_dict()["weights"].items()}
    assert not any(p.requires_grad for p in average.module.parameters()) and not average.module.training
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    average.update(net)
    now = dict(net.named_parameters()) | dict(net.named_buffers())
    for name, value in average.state_dict()["weights"].items():
        if value.is_floating_point():
            expected = 0.9 * start[name].double() + 0.1 * now[name].detach().double()
            torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(value, now[name])
    assert net[0].weight.requires_grad  # the trained model is untouched
    average.reset(net)
    assert all(torch.equal(v, now[k].detach()) for k, v in average.state_dict()["weights"].items())
    assert average.updates == 0


def test_the_warm_up_lets_an_early_average_follow_the_weights():
    net = _net()
    average = WeightAverage(net, 0.999)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    before = average.module[0].weight.clone()
    average.update(net)  # first update: d = 1 / 10
    expected = 0.1 * before.double() + 0.9 * net[0].weight.detach().double()
    torch.testing.assert_close(average.module[0].weight.double(), expected, rtol=1e-6, atol=1e-6)
    assert average.updates == 1


def test_average_state_round_trip_and_bad_arguments():
    net = _net()
    first, second = WeightAverage(net, 0.5), WeightAverage(_net(), 0.5)
    with torch.no_grad():
        net[0].weight.mul_(3)
    first.update(net)
    second.load_state_dict(first.state_dict())
    assert second.updates == first.updates == 1
    assert all(torch.equal(first.state_dict()["weights"][k], v) for k, v in second.state_dict()["weights"].items())
    for decay in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="'decay' must be in"):
            WeightAverage(net, decay)
    with pytest.raises(ValueError, match="missing \\['0.bias'\\]"):
        weights = {k: v for k, v in first.state_dict()["weights"].items() if k != "0.bias"}
        second.load_state_dict({"updates": 1, "weights": weights})
    with pytest.raises(ValueError, match="differ"):
        first.update(nn.Conv2d(3, 4, 3))


@pytest.mark.parametrize("value", [1.0, -0.5, float("inf")])
def test_option_range(value):
    with pytest.raises(ValueError, match="ema_decay must be in \\[0, 1\\)"):
        TrainOptions(ema_decay=value)


def test_recipe_validates_and_keeps_the_average_and_resumes_it_exactly(tmp_path, capsys):
    train = {"total_iter": 4, "ema_decay": 0.5}
    straight = tiny_recipe(str(tmp_path), "straight", train=train)
    split = tiny_recipe(str(tmp_path), "split", train={**train, "total_iter": 2})
    a = train_vqgan.main(["--config", straight])
    train_vqgan.main(["--config", split])
    b = train_vqgan.main(["--config", split, "--train.total_iter=4", "--resume"])
    state = load_training_state(find_checkpoint(a["directory"]))
    final = load_file(os.path.join(a["directory"], "final", "model.safetensors"))
    raw = load_file(os.path.join(find_checkpoint(a["directory"]), "model.safetensors"))
    averaged = state["average"]["weights"]
    assert final.keys() <= averaged.keys() and state["average"]["updates"] == 4
    assert all(torch.equal(final[k], averaged[k]) for k in final)  # final/ is the average ...
    assert any(not torch.equal(final[k], raw[k]) for k in final)  # ... not the raw weights the checkpoint holds
    resumed = load_file(os.path.join(b["directory"], "final", "model.safetensors"))
    assert all(torch.equal(final[k], resumed[k]) for k in final)  # the average survives a resume exactly
    scores_a, scores_b = logged_values(a["directory"], "val/"), logged_values(b["directory"], "val/")
    assert scores_a and scores_a == {key: scores_b[key] for key in scores_a}  # the same final validation

    capsys.readouterr()  # turned on at a resume: starts from the resumed weights, and says so
    late = tiny_recipe(str(tmp_path), "late", train={"total_iter": 2})
    train_vqgan.main(["--config", late])
    train_vqgan.main(["--config", late, "--resume", "--train.total_iter=3", "--train.ema_decay=0.9"])
    assert "weight average (train.ema_decay=0.9) starts here" in capsys.readouterr().out
