"""Runs a training recipe under ``torchrun`` and records, per rank, what ``test_ddp.py`` checks.

    torchrun --nproc_per_node=2 tests/recipes/ddp_driver.py RECIPE RECORD_DIR WATCHED_DIR [--die-at N] -- ARGS...

Into ``RECORD_DIR/rank<r>.pt``: the ``gt_path`` of every training batch the rank read, every path under
``WATCHED_DIR`` the rank opened for writing, created, renamed or removed (Python audit events, so nothing
in the library is instrumented), and the generator's and discriminator's parameters at the end.
``--die-at N``: rank 1 kills itself with SIGKILL after iteration N (a crashed process).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys

import torch

import vqcnir.training.session as session_module
from vqcnir.training.runtime import run_recipe

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("record_dir")
    parser.add_argument("watched_dir")
    parser.add_argument("--die-at", type=int, default=0)
    args, rest = parser.parse_known_args()
    rest = rest[1:] if rest[:1] == ["--"] else rest
    rank = int(os.environ["RANK"])
    watched = os.path.abspath(args.watched_dir)
    record: dict = {"samples": [], "written": set(), "parameters": {}}

    def audit(event: str, event_args: tuple) -> None:
        if event == "open":
            path, mode, flags = event_args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS
            paths = [path] if writing else []
        else:
            paths = list(event_args[:2]) if event in WRITE_EVENTS else []
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)):
                path = os.path.abspath(os.fsdecode(path))
                if path.startswith(watched + os.sep):
                    record["written"].add(os.path.relpath(path, watched))

    sys.addaudithook(audit)

    stream = session_module.batch_stream

    def recording_stream(*stream_args: object, **kwargs: object):
        for batch in stream(*stream_args, **kwargs):
            record["samples"].append([os.path.basename(p) for p in batch["gt_path"]])
            yield batch

    session_module.batch_stream = recording_stream
    after_step, finish = session_module.TrainingSession.after_step, session_module.TrainingSession.finish

    def dying_after_step(self, iteration, values, images):
        after_step(self, iteration, values, images)
        if rank == 1 and iteration == args.die_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def recording_finish(self):
        record["parameters"] = {f"g.{k}": v.detach().clone() for k, v in self.model.named_parameters()}
        if self.update.disc_raw is not None:
            record["parameters"].update(
                {f"d.{k}": v.detach().clone() for k, v in self.update.disc_raw.named_parameters()}
            )
        return finish(self)

    session_module.TrainingSession.after_step = dying_after_step
    session_module.TrainingSession.finish = recording_finish

    path = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", f"{args.recipe}.py")
    spec = importlib.util.spec_from_file_location(f"recipe_{args.recipe}", os.path.abspath(path))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    try:
        return run_recipe(lambda: recipe.main(rest))
    finally:
        os.makedirs(args.record_dir, exist_ok=True)
        record["written"] = sorted(record["written"])
        torch.save(record, os.path.join(args.record_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    sys.exit(main())
