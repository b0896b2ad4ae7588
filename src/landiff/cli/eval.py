"""``landiff eval``: metrics computed from runs or sample files, never inside the trainer.

    landiff eval nll --run runs/tiny --n 256        # bits/dim on held-out images
    landiff eval swd --samples runs/tiny/samples/dpm++-20 --ref synthetic --n 512 --repeats 3
    landiff eval fid --run runs/tiny --inception ~/pt_inception-2015-12-05.safetensors   # also kid, pr
    landiff eval memorization --run runs/tiny --train synthetic --heldout synthetic

With ``--run`` the result is appended to ``RUN/metrics-<name>.jsonl``; with files only it is printed.
``eval nll`` also runs under torchrun: the images are shared out between the processes and rank 0
gathers the per-image bounds and writes the record; the noise of the batch starting at image k
comes from (--seed, k), so the number does not depend on the number of processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from landiff.data import open_dataset
from landiff.errors import UserError
from landiff.grid import from_uint8, save_grid
from landiff.metrics import (
    InceptionFeatures,
    InceptionUnavailable,
    append_record,
    evaluate,
    find_inception_weights,
    latest_samples,
    load_reference,
    load_samples,
)
from landiff.metrics.memorization import DISTANCE_THRESHOLD, RATIO_THRESHOLD
from landiff.metrics.provenance import provenance_for, samples_provenance
from landiff.options import (
    BATCH,
    DEVICE,
    N_IMAGES,
    REPEATS,
    RUN,
    SEED,
    Spec,
    check_memory,
    check_output_file,
    check_seed,
    pick_device,
    unet_bytes,
)
from landiff.progress import Progress
from landiff.runs.load import refuse_classifier
from landiff.train import load_run
from landiff.train.data_stream import keyed_seed
from landiff.train.distributed import gather_cat, process_group

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from landiff.diffusion import GaussianDiffusion
    from landiff.metrics.io import ImageSet
    from landiff.metrics.memorization import MemorizationResult
    from landiff.metrics.provenance import Provenance
    from landiff.metrics.records import MetricRecord
    from landiff.runs.load import LoadedRun
    from landiff.train.distributed import Dist


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a run (nll, …)",
                                   description="metrics from runs or sample files, appended to `RUN/metrics-<name>.jsonl`")
    sub = parser.add_subparsers(dest="eval_command", metavar="METRIC")
    p = sub.add_parser("nll", help="negative log-likelihood bound in bits/dim on held-out images")
    RUN.add_to(p, required=True, help="run directory (the record is appended to RUN/metrics-nll.jsonl)")
    Spec("--data", "str", "held-out images: 'synthetic', an image folder or a prepared dataset",
         default_text="the run's data (synthetic: its held-out split)").add_to(p)
    N_IMAGES.add_to(p, default=64)
    BATCH.add_to(p, default=16, help="images per batch")
    SEED.add_to(p, help="seed of the forward-process noise")
    Spec("--no-ema", "switch", "evaluate the raw weights instead of the EMA").add_to(p)
    DEVICE.add_to(p)
    p.set_defaults(func=run_nll)
    _register_metrics(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_nll(args: argparse.Namespace) -> int:
    for flag, value in (("--n", args.n), ("--batch", args.batch)):
        if value < 1:
            raise UserError(f"{flag} must be an integer >= 1, got {value}")
    check_seed(args.seed)
    check_output_file(Path(args.run) / "metrics-nll.jsonl", "--run")  # the result must not be lost after the work
    with process_group(args.device) as (dist, device):
        loaded = load_run(args.run, device=str(device))
        refuse_classifier(loaded, "eval nll")
        if loaded.diffusion is None:
            raise UserError(f"{args.run} is a GAN run; a likelihood bound exists only for diffusion runs (eval nll)")
        if loaded.config.diffusion.formulation != "discrete":
            raise UserError(f"{args.run} is an --formulation {loaded.config.diffusion.formulation} run, which has no "
                            "likelihood bound (eval nll is for the discrete process); use eval swd, fid, kid or pr")
        config = loaded.config
        check_memory(unet_bytes(config.net, args.batch, training=False), ["--batch"], device)
        check_memory({"per-image bounds": 8.0 * args.n * (2 + loaded.diffusion.num_steps)}, ["--n"], "cpu")
        spec = args.data or config.data
        if spec != "synthetic" and args.data is None and dist.is_main:
            print("note: evaluating on the training folder; pass --data with held-out images for an unbiased number")
        dataset = open_dataset(spec, config.resolution, class_cond=config.class_cond, seed=config.seed,
                               synthetic_n=max(args.n, 1), split="heldout")
        bounds = _nll_sharded(args, loaded, loaded.diffusion, dataset, min(args.n, len(dataset)), dist)
        if not dist.is_main:
            return 0
    record = nll_record(bounds[:, 0], bounds[:, 1], bounds[:, 2:])
    record.update(run=str(args.run), data=spec, split="heldout" if spec == "synthetic" else "given",
                  seed=args.seed, ema=not args.no_ema, checkpoint=str(loaded.checkpoint), step=loaded.state.step,
                  time=time.strftime("%Y-%m-%dT%H:%M:%S"), provenance=_nll_provenance(args, loaded))
    print(format_nll(record))
    with open(Path(args.run) / "metrics-nll.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return 0


def _nll_sharded(
    args: argparse.Namespace, loaded: LoadedRun, diffusion: GaussianDiffusion, dataset: Dataset, n: int, dist: Dist
) -> torch.Tensor:
    """Per-image (total, prior, L_0 … L_{T−1}) in bits/dim, (n, 2 + T) float64, gathered from all ranks.

    Rounds of ``batch × ranks`` images; rank r takes the r-th batch of each round, with noise from
    a generator keyed by (seed, index of the batch's first image). ``diffusion`` is ``loaded.diffusion``.
    """
    model = loaded.model if args.no_ema else loaded.ema_model
    device = next(model.parameters()).device
    steps = diffusion.num_steps
    progress = Progress(n * steps, "nll", unit="evals") if dist.is_main else None
    done, blocks = 0, []
    for round_start in range(0, n, args.batch * dist.world):
        first = min(n, round_start + dist.rank * args.batch)
        items = [dataset[k] for k in range(first, min(n, first + args.batch))]
        local = torch.zeros((0, 2 + steps), dtype=torch.float64)
        if items:
            x0 = from_uint8(torch.stack([img for img, _ in items])).to(device)
            kwargs = {"y": torch.tensor([lab for _, lab in items], device=device)} if loaded.config.class_cond else None

            def tick(_step: int, size: int = len(items) * dist.world) -> None:
                nonlocal done
                done += size
                if progress is not None:
                    progress.update(min(done, n * steps))

            generator = torch.Generator(device=device).manual_seed(keyed_seed(args.seed, "noise", first))
            result = diffusion.nll(model, x0, model_kwargs=kwargs, generator=generator, callback=tick)
            local = torch.cat([result.total_bpd[:, None], result.prior_bpd[:, None], result.vb], dim=1).double().cpu()
        blocks.append(gather_cat(local))
    if progress is not None:
        progress.close()
    return torch.cat(blocks)


def nll_record(total: torch.Tensor, prior: torch.Tensor, vb: torch.Tensor) -> dict:
    """Mean ± standard error of the bound, with the prior, decoder (t = 0) and four bands of t."""
    n, steps = vb.shape

    def stat(x: torch.Tensor) -> dict:
        x = x.double()
        se = float(x.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
        return {"mean": float(x.mean()), "se": se}

    edges = [0, 1] + [1 + (steps - 1) * k // 4 for k in range(1, 5)]
    bands = {f"t{lo}-{hi - 1}": stat(vb[:, lo:hi].sum(1)) for lo, hi in zip(edges[1:-1], edges[2:], strict=True) if hi > lo}
    return {"metric": "nll_bpd", "n": n, "bpd": stat(total), "prior_bpd": stat(prior), "decoder_bpd": stat(vb[:, 0]),
            "terms_bpd": bands}


def format_nll(record: dict) -> str:
    lines = [f"NLL bound: {record['bpd']['mean']:.4f} ± {record['bpd']['se']:.4f} bits/dim (n={record['n']}, mean ± s.e.)",
             f"  prior  KL(q(x_T|x0)||N(0,I)): {record['prior_bpd']['mean']:.6f}",
             f"  decoder L_0:                  {record['decoder_bpd']['mean']:.4f}"]
    for name, value in record["terms_bpd"].items():
        lines.append(f"  sum of L_t, {name:<16}   {value['mean']:.4f}")
    return "\n".join(lines)


# --- sample-quality metrics (landiff.metrics): swd, fid, kid, pr, memorization -------------------

_METRICS = {
    "swd": "multi-scale sliced Wasserstein distance x1e3 (ProGAN), per pyramid level and mean",
    "fid": "Frechet Inception Distance (needs Inception weights: landiff weights import-inception)",
    "kid": "Kernel Inception Distance, mean ± std over subsets (unbiased; prefer at small n)",
    "pr": "improved precision and recall, k-NN manifolds on Inception features (k = 3)",
}


@dataclass(frozen=True)
class RunData:
    """What a run's config.json says about its data (read raw, so any model family works)."""

    data: str
    seed: int
    synthetic_n: int


def _run_data(run: str | None) -> RunData | None:
    if run is None:
        return None
    path = Path(run) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise UserError(f"--run {run}: cannot read {path} ({err}); give a run directory made by landiff train") from None
    data, seed, synthetic_n = (raw.get(k) if isinstance(raw, dict) else None for k in ("data", "seed", "synthetic_n"))
    data = "synthetic" if data is None else data
    seed = 0 if seed is None else seed
    synthetic_n = 50_000 if synthetic_n is None else synthetic_n
    if (not isinstance(raw, dict) or not isinstance(data, str) or not _is_int(seed, 0) or not _is_int(synthetic_n, 1)):
        raise UserError(f"--run {run}: {path} is not a valid run config (data must be a string, seed an integer "
                        ">= 0, synthetic_n an integer >= 1); give a run directory made by landiff train")
    return RunData(data=data, seed=seed, synthetic_n=synthetic_n)


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _add_sample_options(p: argparse.ArgumentParser, n_default: int | None) -> None:
    Spec("--samples", "path", "samples.npz, a sample directory or a folder of PNGs",
         default_text="with --run, the newest RUN/samples/*/samples.npz").add_to(p)
    RUN.add_to(p, help="run directory: default samples and reference; appends the result to RUN/metrics-<name>.jsonl",
               default_text="none: the result is only printed")
    N_IMAGES.add_to(p, default=n_default, help="use the first N samples", default_text="" if n_default else "all")
    SEED.add_to(p, help="seed of every random choice of the metric")


def _register_metrics(sub: argparse._SubParsersAction) -> None:
    for name, text in _METRICS.items():
        p = sub.add_parser(name, help=text)
        _add_sample_options(p, 512)
        Spec("--ref", "str", "reference: 'synthetic' (built-in held-out landscapes), an image folder, a prepared "
             "dataset or B.npz; as many reference images as samples are used",
             default_text="with --run, the run's data").add_to(p)
        REPEATS.add_to(p)
        if name != "swd":
            Spec("--inception", "path", "FID Inception weights (.safetensors), e.g. from landiff weights "
                 "import-inception, which writes ~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors."
                 " Without weights the metric prints 'unavailable: …' and exits 1",
             default_text="$LANDIFF_INCEPTION, then that file").add_to(p)
            BATCH.add_to(p, default=50, help="images per Inception batch")
            DEVICE.add_to(p)
        if name == "kid":
            Spec("--subsets", "int", "random subsets of the feature vectors the KID is averaged over", default=100,
                 low=1).add_to(p)
            Spec("--subset-size", "int", "feature vectors per subset (at most --n)", default=1000, low=2,
                 unit="images").add_to(p)
        if name == "pr":
            Spec("--k", "int", "the k-th nearest neighbour's distance is each feature's manifold radius (Kynkaanniemi "
                 "et al. 2019)", default=3, low=1).add_to(p)
        p.set_defaults(func=run_metric, metric=name)
    p = sub.add_parser("memorization", help="flag samples that copy a training image (nearest train vs held-out)")
    _add_sample_options(p, None)
    Spec("--train", "str", "training images: 'synthetic', a folder, prepared dataset or .npz",
         default_text="with --run, the run's data").add_to(p)
    Spec("--heldout", "str", "held-out real images never trained on",
         default_text="for synthetic, the synthetic held-out split").add_to(p)
    Spec("--n-train", "int", "synthetic: the training images the model saw; folders: all", low=1, unit="images",
         default_text="with --run, its synthetic_n").add_to(p)
    Spec("--n-heldout", "int", "held-out images", low=1, unit="images", default_text="as many as training").add_to(p)
    Spec("--ratio", "float", "flag a sample when d_train/d_heldout (distance to its nearest training image over that "
         "to its nearest held-out image) is below this", low=0.0, low_open=True,
         default_text=f"{RATIO_THRESHOLD:.4g}").add_to(p)
    Spec("--max-distance", "float", "and d_train is below this RMS distance at 16x16, pixel values in [0, 1]",
         default=DISTANCE_THRESHOLD, low=0.0, low_open=True).add_to(p)
    Spec("--pairs", "path", "PNG of the 16 closest samples beside their nearest training image",
         default_text="with --run, RUN/memorization-pairs.png; else none").add_to(p)
    p.set_defaults(func=run_memorization, ratio=RATIO_THRESHOLD, metric="memorization")


def _samples(args: argparse.Namespace) -> ImageSet:
    if args.n is not None and args.n < 1:
        raise UserError("--n must be >= 1")
    spec = args.samples or (latest_samples(args.run) if args.run else None)
    if spec is None:
        raise UserError("give --samples A.npz|DIR, or --run RUN to use its newest samples")
    return load_samples(spec, args.n)


def _inception(args: argparse.Namespace) -> InceptionFeatures | None:
    try:
        weights = find_inception_weights(args.inception)
    except InceptionUnavailable as err:
        print(f"{args.metric}: {err}")
        return None
    return InceptionFeatures(weights, device=args.device, batch=args.batch)


def check_ranges(args: argparse.Namespace) -> None:
    """Range checks of the numeric options a metric command has, each naming the option and its range."""
    minimums = {"n": 1, "repeats": 1, "batch": 1, "subsets": 1, "subset_size": 2, "k": 1, "n_train": 1,
                "n_heldout": 1, "seed": 0}
    for name, low in minimums.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise UserError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value}")
    for name in ("ratio", "max_distance"):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")


def run_metric(args: argparse.Namespace) -> int:
    check_ranges(args)
    run = _run_data(args.run)
    _check_outputs(args)
    if args.metric != "swd":  # the Inception input batch alone: 299 x 299 x 3 float32 per image
        check_memory({"Inception input batch": 4.0 * 299 * 299 * 3 * args.batch}, ["--batch"],
                     pick_device(args.device))
    extractor = _inception(args) if args.metric != "swd" else None
    if args.metric != "swd" and extractor is None:
        return 1
    samples = _samples(args)
    ref = args.ref or (run.data if run else None)
    if ref is None:
        raise UserError("give --ref synthetic|FOLDER|B.npz (the reference images), or --run RUN to use its data")
    if args.ref is None and ref != "synthetic":
        print("note: comparing with the run's training images; pass --ref with held-out images for an unbiased number")
    data_seed = run.seed if run is not None and ref == "synthetic" else 0
    reference = load_reference(ref, samples.size, len(samples), seed=args.seed, data_seed=data_seed)
    if args.metric == "swd":
        record = evaluate.evaluate_swd(samples, reference, seed=args.seed, repeats=args.repeats)
    elif extractor is None:  # not reached: returned above when the Inception weights are missing
        return 1
    elif args.metric == "fid":
        record = evaluate.evaluate_fid(samples, reference, extractor, seed=args.seed, repeats=args.repeats)
    elif args.metric == "kid":
        record = evaluate.evaluate_kid(samples, reference, extractor, seed=args.seed, subsets=args.subsets,
                                       subset_size=args.subset_size)
    else:
        record = evaluate.evaluate_pr(samples, reference, extractor, seed=args.seed, repeats=args.repeats, k=args.k)
    return _report(args, record)


def _nll_provenance(args: argparse.Namespace, loaded: LoadedRun) -> dict:
    """The bound depends on the checkpoint and the weights used, not on any sampler."""
    return provenance_for(loaded, use_ema=not args.no_ema).to_dict()


def _sample_provenance(args: argparse.Namespace) -> Provenance:
    """The provenance of the samples :func:`_samples` read: their landiff meta, else the file's sha256 (external)."""
    return samples_provenance(args.samples or latest_samples(args.run))


def _check_outputs(args: argparse.Namespace) -> None:
    """Where the result goes is writable, before any image is read or feature computed."""
    if args.run:
        name = "memorization" if args.metric == "memorization" else args.metric
        check_output_file(Path(args.run) / f"metrics-{name}.jsonl", "--run")
    pairs = getattr(args, "pairs", None)
    if pairs is not None:
        check_output_file(pairs, "--pairs")
    elif getattr(args, "metric", None) == "memorization" and args.run:
        check_output_file(Path(args.run) / "memorization-pairs.png", "--run")


def _report(args: argparse.Namespace, record: MetricRecord) -> int:
    record = dataclasses.replace(record, provenance=_sample_provenance(args))
    print(record.summary())
    if args.run:
        print(f"appended to {append_record(args.run, record)}")
    return 0


def run_memorization(args: argparse.Namespace) -> int:
    check_ranges(args)
    run = _run_data(args.run)
    _check_outputs(args)
    samples = _samples(args)
    train_spec = args.train or (run.data if run else None)
    if train_spec is None:
        raise UserError("give --train SPEC (the images the model was trained on), or --run RUN")
    heldout_spec = args.heldout or ("synthetic" if train_spec == "synthetic" else None)
    if heldout_spec is None:
        raise UserError("give --heldout SPEC: real images of the same kind that were never trained on")
    n_train = args.n_train or (run.synthetic_n if run and train_spec == "synthetic" else None)
    if train_spec == "synthetic" and n_train is None:
        raise UserError("--n-train: give the number of synthetic training images the model saw (its synthetic_n)")
    data_seed = run.seed if run is not None else 0
    train = load_reference(train_spec, samples.size, n_train, seed=args.seed, data_seed=data_seed, split="train")
    n_heldout = args.n_heldout or len(train)
    heldout = load_reference(heldout_spec, samples.size, n_heldout, seed=args.seed, data_seed=data_seed)
    record, result = evaluate.evaluate_memorization(samples, train, heldout, ratio_threshold=args.ratio,
                                                    distance_threshold=args.max_distance, seed=args.seed)
    pairs = args.pairs or (Path(args.run) / "memorization-pairs.png" if args.run else None)
    if pairs is not None:
        _save_pairs(Path(pairs), samples.images, train.images, result)
        print(f"wrote {pairs} (left: sample, right: nearest training image; lowest ratio first)")
    print(f"{len(result.flagged)} of {len(samples)} samples flagged as likely copies ({record.extra['rule']})")
    return _report(args, record)


def _save_pairs(path: Path, samples: np.ndarray, train: np.ndarray, result: MemorizationResult, count: int = 16) -> None:
    closest = result.closest(count)
    pairs = np.stack([samples[closest], train[result.nearest_train[closest]]], axis=1)  # (k, 2, H, W, 3)
    save_grid(pairs.reshape(-1, *pairs.shape[2:]), path, columns=2)
