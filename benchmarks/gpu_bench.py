"""GPU benchmark (≤ 5 min on one GPU): bench_train's tables on CUDA plus ADM-64 against the bf16 matmul peak.

    python benchmarks/gpu_bench.py                 # on a CUDA machine; appends to benchmarks/RESULTS.md
    python benchmarks/gpu_bench.py --device cpu    # the dry path: tiny shapes, seconds, nothing appended

On CUDA: TF32 on, bf16 autocast, channels_last, landiff's fused AdamW. Sections:
1. the training/sampling tables of bench_train.py (landiff vs diffusers vs denoising-diffusion-pytorch,
   each library's best of fp32 / channels_last / bf16 / bf16 + channels_last) at GPU batch sizes;
2. the ``adm-64`` preset (296 M parameters, 64 px) at a batch that fills the GPU: img/s, achieved
   TFLOP/s, its share of the measured bf16 matmul peak, CUDA max allocated, and with ``--compile``
   the compile time and the compiled step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train  # noqa: E402
from anchors import train_flops  # noqa: E402
from measure import RESULTS, append_results, median_seconds  # noqa: E402
from peaks import measure_peaks  # noqa: E402


def adm_section(device: torch.device, batch: int, steps: int, compile_too: bool, dry: bool) -> str:
    """Training-step throughput of the adm-64 preset (or tiny on the dry path) against the matmul peak."""
    from landiff.runs.config import OptimConfig
    from landiff.train.components import make_adamw

    preset, res = ("tiny", 16) if dry else ("adm-64", 64)
    candidate = bench_train.landiff_candidate(preset, res)
    flops = train_flops(candidate, res)
    peak = measure_peaks(device, quick=dry)["matmul bf16"]
    rows = []
    for compiled in (False, True) if compile_too else (False,):
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        net = candidate.build().to(device).to(memory_format=torch.channels_last)
        if net.class_emb is not None:
            y = torch.zeros(batch, dtype=torch.long, device=device)
        forward = torch.compile(net) if compiled else net
        optimizer = make_adamw(net.parameters(), OptimConfig(lr=1e-4), device)
        x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, 1000, (batch,), device=device)
        kwargs = {"y": y} if net.class_emb is not None else {}

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = forward(x, t, **kwargs)
            out.float().square().mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        first = time.perf_counter() - start
        seconds = median_seconds(step, steps, device)
        achieved = flops * batch / seconds / 1e12
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else "–"
        rows.append([f"{preset}@{res}", str(batch), "compiled" if compiled else "eager", f"{first:.1f} s",
                     f"{batch / seconds:.3g}", f"{achieved:.3g}", f"{100 * achieved / (peak / 1000):.0f} %", memory])
    return "\n\n".join([
        f"{preset} training step (bf16 autocast, channels_last, fused AdamW); bf16 matmul peak {peak / 1000:.1f} TFLOP/s, same run:",
        bench_train.table(["setting", "batch", "mode", "first step (incl. compile)", "img/s", "TFLOP/s", "of bf16 peak",
                           "CUDA max allocated"], rows),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256, help="batch of the tables (GPU-sized)")
    parser.add_argument("--adm-batch", type=int, default=256, help="adm-64 batch (fill the GPU)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile for adm-64")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    dry = device.type != "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    tables = argparse.Namespace(settings="tiny@16" if dry else "tiny@32,small@64", batches="2" if dry else str(args.batch),
                                steps=1 if dry else args.steps, warmup=0 if dry else 2, device=args.device,
                                quick=dry, results=args.results, no_append=True)
    text = bench_train.report(tables).replace("bench_train.py", "gpu_bench.py", 1)
    text += "\n\n" + adm_section(device, 2 if dry else args.adm_batch, 1 if dry else args.steps, args.compile, dry)
    print(text)
    if not (dry or args.no_append):
        append_results(args.results, text)


if __name__ == "__main__":
    main()
