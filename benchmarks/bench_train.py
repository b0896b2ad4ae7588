"""Training-step and sampling speed of landiff's UNet next to diffusers and denoising-diffusion-pytorch.

    ./dev bench                                   # installs the anchors, runs this and the data benchmark
    python benchmarks/bench_train.py              # the default table (about 10 min on 2 CPU cores)
    python benchmarks/bench_train.py --quick      # seconds: CI's end-to-end check, results not appended

For each setting (landiff preset @ resolution, batch) every library is measured in the same run, in
its own subprocess (so peak RSS is per library), in four modes: fp32, fp32 + channels_last, bf16
autocast, bf16 autocast + channels_last. Anchors are sized by width to the landiff net's training
FLOPs per image (torch's FLOP counter: convolutions, matmuls, attention; forward + backward). A
training step is forward + MSE loss + backward + optimizer step (landiff: its fused AdamW; anchors:
torch's default AdamW, as their training scripts use). Sampling is a no-grad forward in eval mode:
img·NFE/s. The machine's bf16 conv and fp32/bf16 matmul peaks are measured first, in the same run.
Tables are printed and appended to benchmarks/RESULTS.md (unless --no-append).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchors import Candidate, available, ddpm_pytorch_unet, diffusers_unet, match_width, train_flops  # noqa: E402
from measure import RESULTS, append_results, median_seconds  # noqa: E402
from peaks import measure_peaks  # noqa: E402

MODES = ("fp32", "fp32+cl", "bf16", "bf16+cl")


def landiff_candidate(preset: str, resolution: int) -> Candidate:
    import dataclasses

    from landiff.nets import UNet, get_preset

    config = dataclasses.replace(get_preset(preset), resolution=resolution)
    return Candidate("landiff", f"{preset} preset", lambda: UNet(config), lambda net, x, t: net(x, t))


def candidate_for(spec: dict) -> Candidate:
    if spec["library"] == "landiff":
        return landiff_candidate(spec["preset"], spec["resolution"])
    if spec["library"] == "diffusers":
        return diffusers_unet(spec["width"], spec["resolution"], tuple(spec["attention_px"]))
    return ddpm_pytorch_unet(spec["width"])


def _optimizer(library: str, net: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    if library == "landiff":
        from landiff.runs.config import OptimConfig
        from landiff.train.components import make_adamw

        return make_adamw(net.parameters(), OptimConfig(lr=1e-4), device)
    return torch.optim.AdamW(net.parameters(), lr=1e-4)


def time_mode(spec: dict, candidate: Candidate, mode: str, device: torch.device, best: dict | None) -> dict:
    """Median seconds per training step and per sampling forward in one mode."""
    torch.manual_seed(0)
    batch, res = spec["batch"], spec["resolution"]
    fmt = torch.channels_last if mode.endswith("+cl") else torch.contiguous_format
    dtype = torch.bfloat16 if mode.startswith("bf16") else None
    net = candidate.build().to(device).to(memory_format=fmt)
    optimizer = _optimizer(spec["library"], net, device)
    x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=fmt)
    t = torch.randint(0, 1000, (batch,), device=device)
    target = torch.randn_like(x)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = candidate.fwd(net, x, t)
        torch.nn.functional.mse_loss(out.float(), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def sample_forward() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            candidate.fwd(net, x, t)

    slow = 4.0  # a mode 4x slower than the best so far is timed once
    step = median_seconds(train_step, spec["steps"], device, spec["warmup"], slow * best["train_s"] if best else float("inf"))
    net.eval()
    forward = median_seconds(sample_forward, spec["steps"], device, spec["warmup"],
                           slow * best["sample_s"] if best else float("inf"))
    return {"mode": mode, "train_s": step, "sample_s": forward}


def worker(spec: dict) -> dict:
    """Runs every mode of one library in one setting (in its own process: peak RSS is its own)."""
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    candidate = candidate_for(spec)
    net = candidate.build()
    result = {
        "library": spec["library"], "model": candidate.label,
        "params": sum(p.numel() for p in net.parameters()),
        "flops": train_flops(candidate, spec["resolution"]),
        "modes": [],
    }
    for mode in spec["modes"]:
        fastest = min(result["modes"], key=lambda m: m["train_s"]) if result["modes"] else None
        result["modes"].append(time_mode(spec, candidate, mode, device, fastest))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_worker(spec: dict, cache: Path | None = None) -> dict:
    """Result of one worker; with ``cache`` (a JSON-lines file) finished workers are not re-run."""
    key = json.dumps(spec, sort_keys=True)
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            entry = json.loads(line)
            if entry["spec"] == key:
                return entry["result"]
    result = _spawn(spec)
    if cache is not None:
        with open(cache, "a") as handle:
            handle.write(json.dumps({"spec": key, "result": result}) + "\n")
    return result


def _spawn(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed for {spec['library']}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def setting_specs(preset: str, resolution: int, batch: int, args: argparse.Namespace) -> list[dict]:
    """Worker specs for landiff and each installed anchor, widths matched to landiff's FLOPs."""
    base = {"resolution": resolution, "batch": batch, "modes": list(MODES), "steps": args.steps,
            "warmup": args.warmup, "device": args.device}
    specs = [dict(base, library="landiff", preset=preset)]
    target = train_flops(landiff_candidate(preset, resolution), resolution)
    have = available()
    widths = tuple(range(8, 33, 8)) if args.quick else tuple(range(16, 161, 8))
    attention_px = (resolution // 4,) if preset == "tiny" else (resolution // 4, resolution // 8)
    if have["diffusers"]:
        width, _ = match_width(lambda w: diffusers_unet(w, resolution, attention_px), target, resolution, widths)
        specs.append(dict(base, library="diffusers", width=width, attention_px=list(attention_px)))
    if have["denoising-diffusion-pytorch"]:
        width, _ = match_width(ddpm_pytorch_unet, target, resolution, widths)
        specs.append(dict(base, library="denoising-diffusion-pytorch", width=width))
    return specs


def best(result: dict, key: str) -> dict:
    return min(result["modes"], key=lambda m: m[key])


def default_mode(result: dict) -> dict:
    """landiff's training default on this machine: bf16 autocast where the CPU has it, NCHW."""
    from landiff.train.precision import resolve_precision

    wanted = "bf16" if resolve_precision("auto", torch.device("cpu")) == "bf16" else "fp32"
    return next(m for m in result["modes"] if m["mode"] == wanted)


def train_rows(setting: str, batch: int, results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        b = best(r, "train_s")
        shown = [("best", b)]
        if r["library"] == "landiff":
            shown = [("default", default_mode(r))] + ([("best", b)] if default_mode(r) is not b else [])
        for kind, m in shown:
            rows.append([setting, str(batch), r["library"], r["model"], f"{r['params'] / 1e6:.2f} M",
                         f"{r['flops'] / 1e9:.2f}", f"{m['mode']} ({kind})", f"{batch / m['train_s']:.1f}",
                         f"{r['flops'] * batch / m['train_s'] / 1e9:.3g}", f"{r['peak_rss_mb']:.0f}"])
    return rows


def sample_rows(setting: str, batch: int, results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        m = best(r, "sample_s")
        fwd_flops = r["flops"] / 3  # forward ≈ a third of forward + backward
        rows.append([setting, str(batch), r["library"], m["mode"], f"{batch / m['sample_s']:.0f}",
                     f"{fwd_flops * batch / m['sample_s'] / 1e9:.3g}"])
    return rows


def ratio_rows(setting: str, batch: int, results: list[dict]) -> list[list[str]]:
    """landiff default GFLOP/s over each anchor's best, training step (the issue's target)."""
    ours = next(r for r in results if r["library"] == "landiff")
    ours_rate = ours["flops"] / default_mode(ours)["train_s"]
    rows = []
    for r in results:
        if r["library"] != "landiff":
            rate = r["flops"] / best(r, "train_s")["train_s"]
            rows.append([setting, str(batch), r["library"], f"{ours_rate / rate:.2f}x"])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="tiny@32,small@64", help="landiff presets @ resolution")
    parser.add_argument("--batches", default="32,64")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 2, 1 step, 16 px: an end-to-end check")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--cache", type=Path, default=None,
                        help="JSON-lines file of finished workers: an interrupted run continues where it stopped")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.settings, args.batches, args.steps, args.warmup, args.no_append = "tiny@16", "2", 1, 0, True
    print(report(args))


def report(args: argparse.Namespace) -> str:
    command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    peaks = measure_peaks(torch.device(args.device), quick=args.quick)
    train, sample, ratios = [], [], []
    for setting in args.settings.split(","):
        preset, res = setting.split("@")
        for batch in map(int, args.batches.split(",")):
            results = [run_worker(spec, getattr(args, "cache", None)) for spec in setting_specs(preset, int(res), batch, args)]
            train += train_rows(setting, batch, results)
            sample += sample_rows(setting, batch, results)
            ratios += ratio_rows(setting, batch, results)
            print(table(["setting", "batch", "library", "model", "params", "GFLOP/img", "mode", "img/s", "GFLOP/s", "RSS MB"],
                        train_rows(setting, batch, results)), file=sys.stderr, flush=True)
    text = "\n\n".join([
        f"## Training and sampling speed vs diffusers and denoising-diffusion-pytorch\n\n`{command.strip()}` — "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, device {args.device}",
        "Machine peaks, same run: " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items()),
        "Training step (forward + backward + optimizer); GFLOP/s = counted FLOPs per image × img/s; "
        "landiff's default mode and each library's best mode; RSS = peak of that library's process.",
        table(["setting", "batch", "library", "model", "params", "GFLOP/img", "mode", "img/s", "GFLOP/s", "RSS MB"], train),
        "landiff (default mode) achieved GFLOP/s over each anchor's best mode, training step:",
        table(["setting", "batch", "anchor", "landiff / anchor"], ratios),
        "Sampling (one no-grad network evaluation per image, best mode):",
        table(["setting", "batch", "library", "mode", "img·NFE/s", "GFLOP/s"], sample),
    ])
    if not args.no_append:
        append_results(args.results, text)
    return text


if __name__ == "__main__":
    main()
