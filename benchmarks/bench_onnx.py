"""ONNX Runtime (CPU) vs our PyTorch CPU path, whole models: the file ``vqcnir.export_onnx`` writes.

    python benchmarks/bench_onnx.py [--quick] [--threads N] [--only TEXT] [--no-save]

The ``tiny`` and ``paper`` VQCNIR (random weights) at 256 x 256 and 1024 x 1024 (1 MP), batch 1, each model
exported once (dynamic sizes) and run at both sizes. Both sides run the bare network on the same image
(``padding="none"``: sizes are multiples of 8, so neither pads): PyTorch ``model(image).image`` with the
automatic backends (the C++ kernels on the CPU) under ``torch.inference_mode``, ONNX Runtime's CPU execution
provider with all graph optimizations. Same threads on both sides: ``--threads`` (default: torch's) sets
torch's and ONNX Runtime's intra-op threads. Time is the median of the timed runs after one warm-up
(three runs, one for the paper model at 1 MP); the speed-up is PyTorch time / ONNX Runtime time in the
same run. Also reports the difference relative to the largest output value: its maximum and the share of
elements above 1e-4 (see the comment at the comparison).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Report, Result, append_json, device_name, parse_args, print_table  # noqa: E402

from vqcnir import VQCNIR, VQCNIRConfig, export_onnx  # noqa: E402

SIZES = (256, 1024)
BASELINE = "pytorch (auto)"


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.device != "cpu" or args.dtype != torch.float32:
        raise SystemExit("bench_onnx compares float32 models on the CPU (--device cpu --dtype float32)")
    threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    report = Report(bench="bench_onnx", device=device_name(torch.device("cpu")), torch=torch.__version__)
    parity: dict[str, dict[str, float]] = {}
    presets = ("tiny",) if args.quick else ("tiny", "paper")
    sizes = (64,) if args.quick else SIZES
    with tempfile.TemporaryDirectory() as folder:
        for preset in presets:
            wanted = args.only.split(",") if args.only else [""]
            cases = [(size, f"{preset} {size}x{size} batch 1") for size in sizes]
            cases = [(size, case) for size, case in cases if any(text in case for text in wanted)]
            if not cases:
                continue
            torch.manual_seed(0)
            model = VQCNIR(VQCNIRConfig.preset(preset)).eval()
            path = os.path.join(folder, f"{preset}.onnx")
            start = time.perf_counter()
            export_onnx(model, path, padding="none")
            print(f"exported {preset} in {time.perf_counter() - start:.0f} s ({os.path.getsize(path) / 2**20:.0f} MiB)")
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            for size, case in cases:
                image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
                feed = {"image": image.numpy()}
                reps = 1 if (preset == "paper" and size >= 1024) else 3

                def pytorch(model=model, image=image) -> torch.Tensor:
                    with torch.inference_mode():
                        return model(image).image

                def onnxruntime(session=session, feed=feed) -> np.ndarray:
                    return session.run(None, feed)[0]

                want, got = pytorch().numpy(), onnxruntime()
                # A latent pixel whose two nearest codes are nearly tied (relative gap ~1e-7, found at 1 MP) may get
                # a different code on each side, as any two float32 implementations may: that changes the output
                # near that pixel only, so the share of elements off by more than 1e-4 is reported too.
                off = np.abs(got - want) / np.abs(want).max()
                parity[case] = {"max": float(off.max()), "share_above_1e-4": float((off > 1e-4).mean())}
                torch_ms = _median_ms(pytorch, reps)
                ort_ms = _median_ms(onnxruntime, reps)
                report.results.append(Result(case, BASELINE, torch_ms, ratio_to_baseline=1.0))
                report.results.append(Result(case, "onnxruntime (CPU)", ort_ms, ratio_to_baseline=torch_ms / ort_ms))
                print(
                    f"{case}: |onnxruntime - pytorch| / max |pytorch|: max {off.max():.1e}, "
                    f"{100 * parity[case]['share_above_1e-4']:.3f}% of the elements above 1e-4",
                    flush=True,
                )
    print_table(report, BASELINE)
    record = asdict(report) | {"threads": threads, "onnxruntime": ort.__version__, "max_relative_difference": parity}
    if not args.no_save:
        append_json(record, args.results_dir)


if __name__ == "__main__":
    main()
