"""Export the demo night-blur pairs into a git-ignored folder of the working tree, for the GPU check.

    python scripts/export_demo_set.py [--out gpu_check_data/demo]

GPU machines usually lack scikit-image and SPORCO, whose bundled photos the demo set is made from
(vqcnir.data.build_demo_set). Run this once on a machine that has them (``pip install -e ".[demo]"``, or
the test environment: scripts/install.sh test); the folder (~3 MB of PNGs, with the photos' NOTICE) then
travels with the working tree, and ``scripts/gpu_check.sh`` trains on it
(``benchmarks/train_vqcnir_gpu.py --data``). ``gpu_check_data/`` is in .gitignore: copy it along
explicitly where only tracked files are copied.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "gpu_check_data", "demo"), help="destination folder")
    args = parser.parse_args(argv)
    try:
        from vqcnir.data import build_demo_set

        demo = build_demo_set()
    except ImportError as error:
        print(f"export_demo_set: cannot build the demo set here ({error}); install scikit-image "
              "(pip install -e '.[demo]') or run this where it is installed", file=sys.stderr)  # fmt: skip
        return 1
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    shutil.copytree(demo.root, args.out)
    with open(os.path.join(args.out, "manifest.json")) as handle:
        manifest = json.load(handle)
    print(f"exported {manifest['num_train']} train and {manifest['num_test']} test pairs "
          f"({', '.join(manifest['sources'])}) from {demo.root} to {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
