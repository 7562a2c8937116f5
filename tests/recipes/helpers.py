"""Tiny generated datasets and recipe configs for fast CPU runs of the training recipes."""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from types import ModuleType

import numpy as np
import yaml
from PIL import Image

RECIPES = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")


def load_recipe(name: str) -> ModuleType:
    """Import ``recipes/<name>.py`` as a module (the recipes folder is not a package)."""
    path = os.path.abspath(os.path.join(RECIPES, f"{name}.py"))
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour field (upsampled noise): something a tiny model can learn quickly."""
    small = rng.uniform(0, 255, size=(max(2, height // 8), max(2, width // 8), 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def write_pairs(root: str, count: int, height: int, width: int, seed: int) -> tuple[str, str]:
    """``root/lq`` (darkened, noisy) and ``root/gt`` PNG pairs; returns the two folders."""
    rng = np.random.default_rng(seed)
    lq_dir, gt_dir = os.path.join(root, "lq"), os.path.join(root, "gt")
    os.makedirs(lq_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    for i in range(count):
        gt = smooth_image(rng, height, width)
        lq = np.clip(gt * 0.25 + rng.normal(0, 4, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(gt).save(os.path.join(gt_dir, f"img_{i:02d}.png"))
        Image.fromarray(lq).save(os.path.join(lq_dir, f"img_{i:02d}.png"))
    return lq_dir, gt_dir


def tiny_recipe(tmp: str, name: str, **sections: dict) -> str:
    """Write a recipe YAML for a few-iteration CPU run on generated pairs; returns its path.

    Training pairs are 48 px (32 px crops), validation pairs 44 x 40 (not multiples of 8: padded).
    ``sections`` update the YAML sections (e.g. ``train={"total_iter": 4}``).
    """
    data = os.path.join(tmp, "data")
    if not os.path.isdir(data):
        write_pairs(os.path.join(data, "train"), 6, 48, 48, seed=1)
        write_pairs(os.path.join(data, "val"), 2, 44, 40, seed=2)
    options = {
        "name": name,
        "manual_seed": 3,
        "device": "cpu",
        "datasets": {
            "train": {
                "type": "paired",
                "dataroot_lq": f"{data}/train/lq",
                "dataroot_gt": f"{data}/train/gt",
                "gt_size": 32,
                "batch_size_per_gpu": 2,
                "num_worker_per_gpu": 0,
            },
            "val": {"type": "paired", "dataroot_lq": f"{data}/val/lq", "dataroot_gt": f"{data}/val/gt", "gt_size": 0},
        },
        "network_g": {"preset": "tiny"},
        "network_d": {"width": 8, "num_layers": 2},
        "path": {"experiments_root": os.path.join(tmp, "experiments")},
        "train": {
            "total_iter": 3,
            "optim_g": {"lr": 1e-3},
            "optim_d": {"lr": 1e-3},
            "scheduler": {"milestones": [2], "gamma": 0.5},
            "losses": {"perceptual_weight": 1.0, "adversarial_weight": 0.1},
        },
        "val": {"val_freq": 0},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "show_tf_imgs_freq": 2, "use_tb_logger": False},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(options.get(section), dict):
            options[section] = {**options[section], **values}
        else:
            options[section] = values
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as out:
        yaml.safe_dump(options, out)
    return path


def logged_values(experiment: str, prefix: str = "train/") -> dict[tuple[int, str], float]:
    """``{(iteration, name): value}`` from an experiment's metrics.csv (later rows win)."""
    with open(os.path.join(experiment, "logs", "metrics.csv")) as source:
        return {
            (int(row["iteration"]), row["name"]): float(row["value"])
            for row in csv.DictReader(source)
            if row["name"].startswith(prefix)
        }


TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
