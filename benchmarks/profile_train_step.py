"""Where one stage-2 training iteration of a recipe spends its time on the CPU, part by part.

    python benchmarks/profile_train_step.py [--config recipes/configs/vqcnir_demo.yaml] [--threads 1]
                                            [--iterations 25] [--clock process|wall] [--profile] [--compile]
                                            [--json-out FILE] [--label TEXT]

Runs the loop of ``recipes/train_vqcnir.py`` without the session around it (no logs, checkpoints or
validation; the stage-1 prior is a randomly initialised VQGAN, which costs the same as a trained one)
and times each part of an iteration: the next batch (loading, crops, degradation), the prior's gt codes,
the generator's forward, and the update (losses, the discriminator when the config enables it, backward,
optimizer and scheduler steps). Prints the median of each part and the iterations per second; with
``--profile`` also torch.profiler's top operators; ``--json-out`` appends the medians as one JSON line
(with ``--label``, the git commit, the machine and its load), e.g. to compare two checkouts of the kernels.
``--clock process`` (the default with 1 thread) counts only this process's CPU time, so other work on a
shared machine does not inflate it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository, for vqcnir
from vqcnir import VQCNIR  # noqa: E402
from vqcnir.training.config import parse_recipe_args  # noqa: E402
from vqcnir.training.data import DataPosition, batch_stream, build_dataset  # noqa: E402
from vqcnir.training.runtime import setup_runtime  # noqa: E402
from vqcnir.training.update import GANUpdate  # noqa: E402
from vqcnir.vqgan import VQGAN  # noqa: E402

DEMO = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "configs", "vqcnir_demo.yaml"
)
PARTS = ("data", "prior codes", "forward", "update", "iteration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEMO, help="a stage-2 recipe config (default: the demo)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--iterations", type=int, default=25, help="timed iterations, after 5 warm-up ones")
    parser.add_argument("--clock", choices=("wall", "process"), default=None, help="default: process with 1 thread")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator, as train.compile=true")
    parser.add_argument("--json-out", default=None, help="append the medians to this file as one JSON line")
    parser.add_argument("--label", default="", help="a free text stored with --json-out (e.g. 'before')")
    args = parser.parse_args()
    if args.threads < 1 or args.iterations < 1:
        parser.error("--threads and --iterations must be >= 1")
    torch.set_num_threads(args.threads)
    clock_name = args.clock or ("process" if args.threads == 1 else "wall")
    clock = time.process_time if clock_name == "process" else time.perf_counter

    options = parse_recipe_args([], args.config, "profile")
    runtime = setup_runtime("cpu")
    torch.manual_seed(options.manual_seed)
    config = options.network_g.model_config()
    dataset = build_dataset(options.datasets.train, train=True, seed=options.manual_seed)
    prior = VQGAN(config).eval().requires_grad_(False)
    model = VQCNIR(config)
    model.load_stage1(prior)
    model.freeze_prior()
    net_g = torch.compile(model) if args.compile else model  # the recipes' wrap_model with train.compile
    update = GANUpdate(options.train, options.network_d, [p for p in model.parameters() if p.requires_grad], runtime)
    train = options.datasets.train
    stream = batch_stream(dataset, train.batch_size_per_gpu, train.num_worker_per_gpu, options.manual_seed,
                          DataPosition())  # fmt: skip

    def iteration(number: int) -> list[float]:
        t0 = clock()
        batch = next(stream)
        t1 = clock()
        gt_indices = prior.encode_indices(batch["gt"])
        t2 = clock()
        out = net_g(batch["lq"], gt_indices)
        t3 = clock()
        update.step(out.image, batch["gt"], out.quant_loss, number, contextlib.nullcontext)
        t4 = clock()
        return [1e3 * t for t in (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)]

    for number in range(1, 6):
        iteration(number)
    samples = [iteration(number) for number in range(6, 6 + args.iterations)]
    medians = {part: statistics.median(s[i] for s in samples) for i, part in enumerate(PARTS)}
    print(f"{os.path.basename(args.config)}: batch {train.batch_size_per_gpu}, {train.gt_size} px, "
          f"{args.threads} thread(s), {clock_name} clock, median of {args.iterations} iterations")  # fmt: skip
    for part, ms in medians.items():
        print(f"  {part:<12} {ms:9.1f} ms")
    print(f"  {1e3 / medians['iteration']:.2f} iterations per second")
    if args.json_out:
        _append_record(args, train, clock_name, medians)
    if args.profile:
        with torch.profiler.profile() as prof:
            for number in range(6 + args.iterations, 11 + args.iterations):
                iteration(number)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def _git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _append_record(args: argparse.Namespace, train: object, clock_name: str, medians: dict[str, float]) -> None:
    record = {
        "bench": "profile_train_step",
        "config": os.path.basename(args.config),
        "label": args.label,
        "commit": _git_commit(),
        "batch": train.batch_size_per_gpu,
        "crop": train.gt_size,
        "threads": args.threads,
        "clock": clock_name,
        "compile": args.compile,
        "iterations": args.iterations,
        "median_ms": {part: round(ms, 2) for part, ms in medians.items()},
        "iterations_per_second": round(1e3 / medians["iteration"], 3),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "load_average": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(args.json_out, "a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
