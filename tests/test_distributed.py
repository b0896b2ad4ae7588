"""Data-parallel training on CPU: two gloo processes (torch.multiprocessing, spawn) on a tiny net at 16 px.

One module fixture runs every two-rank scenario in a single spawn (the imports cost seconds per
process); the tests then compare what the ranks wrote with each other and with single-process runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from landiff.cli.main import main
from landiff.diffusion import GaussianDiffusion, TrainingLosses
from landiff.errors import UserError
from landiff.options import pick_device
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.run_dir import read_stats
from landiff.train import train
from landiff.train.components import Checkpointable
from landiff.train.data_stream import StreamSampler, stream_order
from landiff.train.distributed import SINGLE, Dist, env_dist, gather_cat
from tiny_runs import dcgan32, tiny_classifier, unet16

WORLD = 2
SPAWN_TIMEOUT_S = 240


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def diffusion_config(batch: int, **changes):
    """Loss-aware timesteps, hybrid loss, labels with dropout and accumulation: every keyed draw in play."""
    config = unet16()
    diffusion = dataclasses.replace(config.diffusion, num_steps=4, variance="learned_range", loss="hybrid",
                                    timestep_sampler="loss-aware")
    config = dataclasses.replace(
        config, diffusion=diffusion, synthetic_n=32, preview_count=0, log_every=2, checkpoint_every=2, train_steps=4,
        class_cond=True, label_dropout=0.5, optim=dataclasses.replace(config.optim, batch=batch, accum=2, warmup=2),
    )
    return dataclasses.replace(config, **changes)


def gan_config(batch: int, **changes):
    config = dcgan32(8, batch=batch, synthetic_n=32, preview_count=0, log_every=2, checkpoint_every=2, train_steps=4,
                     class_cond=True)
    config = dataclasses.replace(config, gan=dataclasses.replace(config.gan, ema=True, d_steps=2))
    return dataclasses.replace(config, **changes)


def classifier_config(batch: int, **changes):
    """The noisy classifier with a held-out evaluation at every log line (a collective inside the flush)."""
    config = tiny_classifier(synthetic_n=32, log_every=2, checkpoint_every=2, train_steps=4)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=batch),
                                 classifier=dataclasses.replace(config.classifier, holdout=6, eval_every=2))
    return dataclasses.replace(config, **changes)


# ----------------------------------------------------------------- what each rank runs
def _quiet(_: str) -> None:
    pass


def _capture_snapshots(out: Path, tag: str, rank: int):
    """Patches Checkpointable.to_checkpoint (called on every rank) to also dump this rank's weights."""
    original = Checkpointable.to_checkpoint

    def capture(self, state, config, dist_info=SINGLE):
        tensors, meta = original(self, state, config, dist_info)
        mine = {k: v.contiguous() for k, v in tensors.items() if not k.startswith("rng.")}
        safetensors.torch.save_file(mine, str(out / f"{tag}-rank{rank}-step{state.step}.safetensors"))
        return tensors, meta

    return mock.patch.object(Checkpointable, "to_checkpoint", capture)


def _poison_losses(from_call: int, until_call: int):
    """Makes the diffusion loss NaN on calls from_call..until_call of this process."""
    original = GaussianDiffusion.training_losses
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls["n"] += 1
        if from_call <= calls["n"] <= until_call:
            return TrainingLosses(loss=losses.loss * float("nan"), mse=losses.mse, vb=losses.vb)
        return losses

    return mock.patch.object(GaussianDiffusion, "training_losses", poisoned)


def _scenarios(out: Path, rank: int) -> None:
    record: dict[str, object] = {}
    config = diffusion_config(batch=4)
    with _capture_snapshots(out, "diffusion", rank):
        train(config, out / "ddp-straight", log=_quiet)
    train(config, out / "ddp-resumed", stop_after=2, log=_quiet)
    train(config, out / "ddp-resumed", log=_quiet)
    # sharded sampling and NLL on the straight run (rank 0 writes)
    assert main(["sample", "--run", str(out / "ddp-straight"), "--n", "3", "--batch", "1", "--steps", "3",
                 "--out", str(out / "samples-ddp")]) == 0
    assert main(["eval", "nll", "--run", str(out / "ddp-straight"), "--n", "3", "--batch", "1"]) == 0
    # NaN on rank 1 only, at its 3rd and 4th loss (step 2 with accum 2): every rank skips that step
    nan_config = dataclasses.replace(config, train_steps=3, checkpoint_every=1)
    with _capture_snapshots(out, "nan-once", rank), _poison_losses(3 if rank == 1 else 0, 4 if rank == 1 else -1):
        state = train(nan_config, out / "nan-once", log=_quiet)
    record["nan_once"] = dataclasses.asdict(state)
    # NaN on rank 1 from step 3 on: both ranks stop after 2 skips in a row, with the same message
    stop_config = dataclasses.replace(config, train_steps=10, max_consecutive_skips=2)
    try:
        with _poison_losses(5 if rank == 1 else 0, 10**9 if rank == 1 else -1):
            train(stop_config, out / "nan-stop", log=_quiet)
        record["nan_stop"] = None
    except UserError as err:
        record["nan_stop"] = str(err)
    gan = gan_config(batch=4)
    with _capture_snapshots(out, "gan", rank):
        train(gan, out / "gan-straight", log=_quiet)
    train(gan, out / "gan-resumed", stop_after=2, log=_quiet)
    train(gan, out / "gan-resumed", log=_quiet)
    # every GAN flavour at once: spectral norm, hinge loss, lazy R1 (every 2nd D update), DiffAugment
    flavoured = gan_config(batch=4, gan=dataclasses.replace(gan.gan, loss="hinge", spectral_norm=True, r1_gamma=0.5,
                                                            r1_every=2, diffaugment="color,translation,cutout"))
    with _capture_snapshots(out, "gan-flavours", rank):
        train(flavoured, out / "gan-flavours-straight", log=_quiet)
    train(flavoured, out / "gan-flavours-resumed", stop_after=2, log=_quiet)
    train(flavoured, out / "gan-flavours-resumed", log=_quiet)
    classifier = classifier_config(batch=4)
    with _capture_snapshots(out, "classifier", rank):
        train(classifier, out / "classifier-straight", log=_quiet)
    train(classifier, out / "classifier-resumed", stop_after=2, log=_quiet)
    train(classifier, out / "classifier-resumed", log=_quiet)
    (out / f"record-rank{rank}.json").write_text(json.dumps(record))


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _scenarios(Path(out), rank)
        dist.barrier()  # both ranks done before either tears gloo down
    except BaseException:
        (Path(out) / f"error-rank{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()
    # Every result is on disk. Skip interpreter finalisation: in about one run in four, a gloo
    # thread destroyed at interpreter exit aborted the spawned process ("terminate called without
    # an active exception") after all scenarios had passed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory) -> Path:
    """Runs every two-rank scenario once; fails with the worker's traceback, or as a hang after a timeout."""
    out = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(_worker, args=(WORLD, _free_port(), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"two-rank run still going after {SPAWN_TIMEOUT_S} s: a collective is hanging")
    except mp.ProcessRaisedException:
        errors = "\n".join(p.read_text() for p in out.glob("error-rank*.txt"))
        pytest.fail(f"a rank failed:\n{errors}")
    return out


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


def _last_checkpoint(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])


# ----------------------------------------------------------------- the tests
def test_ranks_hold_identical_weights_ema_and_optimiser(ddp):
    for tag in ("diffusion", "gan", "gan-flavours", "classifier"):
        for step in (2, 4):
            a, b = _tensors(ddp / f"{tag}-rank0-step{step}.safetensors"), _tensors(ddp / f"{tag}-rank1-step{step}.safetensors")
            assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
            for key in a:
                assert torch.equal(a[key], b[key]), (tag, step, key)


def test_two_ranks_equal_one_process_with_the_global_batch(ddp, tmp_path):
    """Batch 4 on each of 2 ranks (accumulation 2) = batch 8 on one process: same data, noise, t, dropout."""
    train(diffusion_config(batch=8), tmp_path / "single", log=_quiet)
    (single, meta_s), (double, meta_d) = _last_checkpoint(tmp_path / "single"), _last_checkpoint(ddp / "ddp-straight")
    assert meta_s["state"]["images_seen"] == meta_d["state"]["images_seen"] == 4 * 8 * 2
    assert meta_d["world_size"] == 2 and meta_s["world_size"] == 1
    weights = [k for k in single if k.startswith(("model.", "ema."))]
    assert len(weights) > 10
    # Float summation order differs (two half batches + all-reduce vs one batch). Adam divides by
    # √v, so where a gradient is ~0 (zero-initialised output convs) that rounding noise becomes a
    # step of up to ±lr: allow lr (1e-3) for a handful of elements, demand 1e-5 for the rest.
    diffs = torch.cat([(double[k] - single[k]).abs().reshape(-1) for k in weights])
    assert float(diffs.max()) <= 1e-3 and float((diffs <= 1e-5).float().mean()) >= 0.999, float(diffs.max())
    # the weights did train between the checkpoints (equal because untouched would prove nothing)
    halfway = _tensors(ddp / "diffusion-rank0-step2.safetensors")
    assert max(float((halfway[k] - double[k]).abs().max()) for k in weights) > 1e-4
    # the importance sampler saw the same losses in the same (stream) order
    hist_s = np.array(meta_s["extra"]["timestep_sampler"]["losses"])
    hist_d = np.array(meta_d["extra"]["timestep_sampler"]["losses"])
    np.testing.assert_allclose(hist_d, hist_s, rtol=1e-4, atol=1e-6)
    assert meta_s["extra"]["timestep_sampler"]["counts"] == meta_d["extra"]["timestep_sampler"]["counts"]
    # same losses (same examples, noise, t, dropout) and same gradient norms (averaged, not summed)
    for key in ("loss", "vb", "grad_norm"):
        values_s = [s[key] for s in read_stats(tmp_path / "single" / "stats.jsonl")]
        values_d = [s[key] for s in read_stats(ddp / "ddp-straight" / "stats.jsonl")]
        np.testing.assert_allclose(values_d, values_s, rtol=1e-5, err_msg=key)


def test_classifier_on_two_ranks_equals_one_process_with_the_global_batch(ddp, tmp_path):
    """Batch 4 on each of 2 ranks = batch 8 on one process: same images, t and noise; held-out counts summed over ranks."""
    train(classifier_config(batch=8), tmp_path / "single", log=_quiet)
    (single, meta_s), (double, meta_d) = _last_checkpoint(tmp_path / "single"), _last_checkpoint(ddp / "classifier-straight")
    assert meta_s["state"]["images_seen"] == meta_d["state"]["images_seen"] == 4 * 8
    weights = [k for k in single if k.startswith(("model.", "ema."))]
    # As for diffusion above, Adam turns summation-order noise in ~0 gradients into steps of up to ±lr (1e-3) each:
    # here the biases that feed a GroupNorm, over 4 steps. The other weights agree to 1e-5.
    diffs = {k: (double[k] - single[k]).abs() for k in weights}
    assert max(float(d.max()) for d in diffs.values()) <= 4e-3
    others = torch.cat([d.reshape(-1) for k, d in diffs.items() if not k.endswith(".bias")])
    assert others.numel() > 10_000 and float((others <= 1e-5).float().mean()) >= 0.999, float(others.max())
    stats_s, stats_d = read_stats(tmp_path / "single" / "stats.jsonl"), read_stats(ddp / "classifier-straight" / "stats.jsonl")
    for key in ("loss", "acc", "grad_norm"):
        np.testing.assert_allclose([s[key] for s in stats_d], [s[key] for s in stats_s], rtol=1e-5, err_msg=key)
    assert [s["heldout_n"] for s in stats_d] == [s["heldout_n"] for s in stats_s] == [6, 6]
    assert [s["heldout_acc"] for s in stats_d] == [s["heldout_acc"] for s in stats_s]
    assert (ddp / "classifier-straight" / "classifier-summary.json").is_file()


def test_resume_under_ddp_equals_uninterrupted(ddp):
    for straight, resumed in (("ddp-straight", "ddp-resumed"), ("gan-straight", "gan-resumed"),
                              ("gan-flavours-straight", "gan-flavours-resumed"),
                              ("classifier-straight", "classifier-resumed")):
        (a, meta_a), (b, meta_b) = _last_checkpoint(ddp / straight), _last_checkpoint(ddp / resumed)
        assert a.keys() == b.keys()
        assert {k for k in a if k.startswith("rng.rank")} >= {"rng.rank0.torch", "rng.rank1.torch", "rng.rank1.host"}
        for key in a:  # weights, EMA, optimisers and both ranks' RNG states, bitwise
            assert torch.equal(a[key], b[key]), (straight, key)
        assert meta_a["extra"] == meta_b["extra"] and meta_a["state"]["step"] == meta_b["state"]["step"] == 4
        assert [s["step"] for s in read_stats(ddp / resumed / "stats.jsonl")] == [2, 4]


def test_each_rank_restores_its_own_rng_and_world_size_must_match(ddp, tmp_path):
    tensors, meta = _last_checkpoint(ddp / "ddp-straight")
    assert not torch.equal(tensors["rng.rank0.torch"], tensors["rng.rank1.torch"])  # seeded per rank
    shutil.copytree(ddp / "ddp-straight", tmp_path / "run")
    with pytest.raises(UserError, match="written by 2 process"):
        train(diffusion_config(batch=4, train_steps=6), tmp_path / "run", log=_quiet)


def test_nan_on_one_rank_skips_the_step_on_both(ddp):
    records = [json.loads((ddp / f"record-rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["nan_once"]["skipped_steps"] for r in records] == [1, 1]
    assert [r["nan_once"]["step"] for r in records] == [3, 3]
    for step in (1, 2, 3):
        a, b = _tensors(ddp / f"nan-once-rank0-step{step}.safetensors"), _tensors(ddp / f"nan-once-rank1-step{step}.safetensors")
        for key in a:
            assert torch.equal(a[key], b[key]), (step, key)
            assert torch.isfinite(a[key]).all() if a[key].is_floating_point() else True
    # the skipped step 2 changed nothing: weights after step 2 equal those after step 1
    one, two = _tensors(ddp / "nan-once-rank0-step1.safetensors"), _tensors(ddp / "nan-once-rank0-step2.safetensors")
    assert all(torch.equal(one[k], two[k]) for k in one if k.startswith(("model.", "ema.")))
    stats = read_stats(ddp / "nan-once" / "stats.jsonl")
    assert stats[-1]["skipped_steps"] == 1


def test_nan_run_stops_on_every_rank_with_the_same_message(ddp):
    messages = [json.loads((ddp / f"record-rank{r}.json").read_text())["nan_stop"] for r in range(WORLD)]
    assert messages[0] == messages[1]
    assert "steps 3-4" in messages[0] and "step-00000002.safetensors" in messages[0], messages[0]
    assert "--max-skips" in messages[0] and "\n" not in messages[0]


def test_sharded_sampling_and_nll_equal_single_process(ddp, tmp_path):
    run = ddp / "ddp-straight"
    assert main(["sample", "--run", str(run), "--n", "3", "--batch", "3", "--steps", "3", "--out", str(tmp_path / "s")]) == 0
    sharded = np.load(ddp / "samples-ddp" / "samples.npz", allow_pickle=False)["images"]
    single = np.load(tmp_path / "s" / "samples.npz", allow_pickle=False)["images"]
    assert sharded.shape == (3, 16, 16, 3) and sorted(p.name for p in (ddp / "samples-ddp").glob("0*.png")) == [
        "000000.png", "000001.png", "000002.png"]
    assert np.abs(sharded.astype(int) - single.astype(int)).max() <= 1
    assert main(["eval", "nll", "--run", str(run), "--n", "3", "--batch", "1"]) == 0
    first, second = (json.loads(line) for line in (run / "metrics-nll.jsonl").read_text().splitlines()[:2])
    assert first["n"] == second["n"] == 3
    assert first["bpd"]["mean"] == pytest.approx(second["bpd"]["mean"], rel=1e-5)


# ----------------------------------------------------------------- single-process pieces
def test_stream_split_by_position_matches_one_process():
    """Ranks take positions r, r+W, …; together one chunk per step, the chunk one process would take."""
    def take(sampler: StreamSampler, count: int) -> list[int]:
        it = iter(sampler)
        return [next(it)[2] for _ in range(count)]

    single = take(StreamSampler(10, 3, start=6), 8)
    ranks = [take(StreamSampler(10, 3, start=6, rank=r, world=2), 4) for r in range(2)]
    assert single == list(range(6, 14))
    assert sorted(ranks[0] + ranks[1]) == single and ranks[0] == [6, 8, 10, 12]
    gathered = torch.tensor(ranks[0] + ranks[1])
    assert stream_order(gathered, 2).tolist() == single


def test_env_and_devices_are_validated():
    assert env_dist({}) == Dist(0, 1, 0)
    assert env_dist({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Dist(1, 4, 1)
    for bad in ({"RANK": "x"}, {"RANK": "2", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "0"}):
        with pytest.raises(UserError, match="RANK|WORLD_SIZE"):
            env_dist(bad)
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="--device"):
        pick_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            pick_device("cuda")
    assert torch.equal(gather_cat(torch.arange(3)), torch.arange(3))  # identity without a process group

