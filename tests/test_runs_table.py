"""``landiff runs``: the table and the JSON of every run under a folder (landiff.runs.inventory, landiff.cli.runs).

One folder holds a really trained diffusion run (2 steps, finished) and, built by hand with the real writers,
a stopped copy of it, a GAN, a time-budgeted run, a classifier, a run stopped by the NaN guard, one without a
checkpoint, one with a corrupt config, one with a corrupt checkpoint and a folder that is not a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from landiff.cli.main import main
from landiff.metrics.provenance import Provenance
from landiff.metrics.records import Estimate, MetricRecord, append_record
from landiff.runs.checkpoint import TrainState, save_checkpoint
from landiff.runs.config import write_config
from landiff.runs.inventory import PROC_LOCKS, find_runs
from landiff.runs.run_dir import RunLock, append_stats
from landiff.train import train
from tiny_runs import tiny_classifier, tiny_diffusion, tiny_gan

QUIET = {"log": lambda _: None}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _swd(run: Path, value: float, samples: str, provenance: Provenance) -> None:
    estimate = Estimate(value=value, std=0.5, repeats=2, spread="std over 2 seeds")
    append_record(run, MetricRecord(metric="swd", estimates={"swd": estimate}, n_samples=4, n_reference=4,
                                    samples=samples, reference="synthetic held-out", seed=0, provenance=provenance))


def _hand_built(run: Path, config, *, step: int, seconds: float = 10.0, stats: dict | None = None) -> None:
    """A run directory as landiff train leaves it, written by the real writers (one stand-in tensor)."""
    write_config(config, run / "config.json")
    state = TrainState(step=step, images_seen=8 * step, seconds=seconds)
    meta = {"state": dataclasses.asdict(state), "config": config.to_dict()}
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(run / "checkpoints", step, {"model.w": torch.zeros(2)}, meta, keep=1)
    append_stats(run / "stats.jsonl", {"step": step, **(stats or {"loss": 0.25})})


def _finished_metrics(run: Path) -> None:
    """SWD at steps 2 and 1 (the step-1 one written last), an external SWD, compare's FID and an NLL bound."""
    sha1, sha2 = (_sha(run / "checkpoints" / f"step-{s:08d}.safetensors") for s in (1, 2))
    at1, at2 = (Provenance(checkpoint_sha256=sha, sampler="dpm++sde", steps=20, seed=0) for sha in (sha1, sha2))
    folder = run / "samples" / "dpm++sde-20"
    folder.mkdir(parents=True)
    meta = {"step": 1, "checkpoint_sha256": sha1, "provenance": at1.to_dict()}
    np.savez(folder / "samples.npz", images=np.zeros((4, 32, 32, 3), np.uint8), meta=np.array(json.dumps(meta)))
    _swd(run, 20.0, f"{run} step 2, seeds 0..3", at2)  # compare's description names the step
    _swd(run, 30.0, f"{folder / 'samples.npz'} (first 4)", at1)  # the step is in the samples' meta only
    _swd(run, 999.0, "elsewhere.npz (first 4)", Provenance(checkpoint_sha256="f" * 64, source="external", weights=None))
    summary = {"step": 2, "checkpoint_sha256": sha2, "provenance": at2.to_dict(),
               "metrics": {"swd": {"value": 21.0, "std": 0.4}, "fid": {"value": 40.0, "std": 1.5}}}
    (run / "compare").mkdir()
    (run / "compare" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    nll = {"metric": "nll_bpd", "n": 4, "bpd": {"mean": 4.5, "se": 0.1}, "step": 2,
           "provenance": Provenance(checkpoint_sha256=sha2).to_dict()}
    (run / "metrics-nll.jsonl").write_text(json.dumps(nll) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs-table")
    finished = root / "study" / "runs" / "finished"
    train(tiny_diffusion(train_steps=2, checkpoint_every=1, log_every=1), finished, **QUIET)
    torch.set_num_threads(threads)
    stopped = root / "study" / "runs" / "stopped"
    shutil.copytree(finished, stopped)
    write_config(tiny_diffusion(train_steps=10, checkpoint_every=1, log_every=1), stopped / "config.json")  # --steps 10
    _finished_metrics(finished)
    sha1 = _sha(stopped / "checkpoints" / "step-00000001.safetensors")
    _swd(stopped, 50.0, f"{stopped} step 1, seeds 0..3", Provenance(checkpoint_sha256=sha1))
    (finished / "previous-20260101-000000").mkdir()  # a --restart's old run: part of this one, not listed
    (finished / "previous-20260101-000000" / "config.json").write_text("{}", encoding="utf-8")

    measured = root / "study" / "runs" / "measured"  # the study keeps its measurements beside its runs
    _hand_built(measured, tiny_diffusion(train_steps=4), step=4)
    (root / "study" / "results" / "runs").mkdir(parents=True)
    (root / "study" / "results" / "runs" / "measured.json").write_text(json.dumps(
        {"name": "measured", "step": 4, "checkpoint_sha256": "a" * 64, "swd": 64.9, "swd_std": 1.25}), encoding="utf-8")

    _hand_built(root / "gan", tiny_gan(train_steps=5), step=5, stats={"loss_d": 1.25, "loss_g": 0.75})
    _swd(root / "gan", 999.0, "elsewhere.npz (first 4)",  # eval swd --samples of files landiff did not draw
         Provenance(checkpoint_sha256="e" * 64, source="external", weights=None))
    _hand_built(root / "timed", tiny_diffusion(train_steps=10**6, max_minutes=1.5), step=7, seconds=95.0)
    _hand_built(root / "clf", tiny_classifier(), step=6, stats={"loss": 0.5, "acc": 0.7})
    (root / "clf" / "classifier-summary.json").write_text(json.dumps(
        {"step": 6, "checkpoint_sha256": "c" * 64, "heldout_acc": 0.75}), encoding="utf-8")
    _hand_built(root / "nan", tiny_diffusion(train_steps=10), step=3, stats={"loss": float("nan")})  # diverged
    (root / "fresh").mkdir()
    write_config(tiny_diffusion(), root / "fresh" / "config.json")
    (root / "corrupt-config").mkdir()
    (root / "corrupt-config" / "config.json").write_text('{"preset": "tiny", ', encoding="utf-8")
    _hand_built(root / "bad-checkpoint", tiny_diffusion(), step=4)
    (root / "bad-checkpoint" / "checkpoints" / "step-00000004.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run", encoding="utf-8")
    return root


NAMES = ["bad-checkpoint", "clf", "corrupt-config", "fresh", "gan", "nan", "study/runs/finished", "study/runs/measured",
         "study/runs/stopped", "timed"]


def _json(capsys, *argv: str) -> list[dict]:
    assert main(["runs", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_finds_every_run_and_nothing_inside_one(tree):
    assert [p.relative_to(tree).as_posix() for p in find_runs(tree)] == NAMES


def test_json_records(tree, capsys):
    runs = {r["name"]: r for r in _json(capsys, str(tree))}
    assert list(runs) == NAMES and len({tuple(r) for r in runs.values()}) == 1  # the same keys for every run
    done = runs["study/runs/finished"]
    assert (done["family"], done["preset"], done["resolution"], done["state"]) == ("diffusion", "tiny", 32, "finished")
    assert (done["step"], done["target_steps"], done["target_minutes"], done["images_seen"]) == (2, 2, None, 16)
    assert done["checkpoint"] == "checkpoints/step-00000002.safetensors" and done["train_seconds"] > 0
    assert isinstance(done["loss"], float) and done["loss_step"] == 2
    # Of the SWD records the one of the latest step wins although a step-1 record was written after it, and the
    # external one (written last) is not the run's; compare's summary of the same step is ranked below the jsonl.
    assert done["swd"] == {"value": 20.0, "spread": 0.5, "step": 2, "latest": True, "source": "metrics-swd.jsonl"}
    assert done["fid"] == {"value": 40.0, "spread": 1.5, "step": 2, "latest": True, "source": "compare/summary.json"}
    assert (done["nll"]["value"], done["nll"]["spread"], done["nll"]["step"]) == (4.5, 0.1, 2)
    stopped = runs["study/runs/stopped"]
    assert (stopped["state"], stopped["step"], stopped["target_steps"], stopped["note"]) == ("stopped", 2, 10, None)
    assert (stopped["swd"]["value"], stopped["swd"]["step"], stopped["swd"]["latest"]) == (50.0, 1, False)
    gan = runs["gan"]
    assert (gan["family"], gan["preset"], gan["state"], gan["loss"], gan["loss_d"], gan["loss_g"]) == (
        "gan", "dcgan", "finished", None, 1.25, 0.75)
    assert gan["swd"] is None  # its only SWD record measured other images
    assert (runs["timed"]["state"], runs["timed"]["target_minutes"], runs["timed"]["step"]) == ("finished", 1.5, 7)
    assert runs["study/runs/measured"]["swd"] == {"value": 64.9, "spread": 1.25, "step": 4, "latest": True,
                                                  "source": "../../results/runs/measured.json"}
    assert runs["clf"]["family"] == "classifier" and runs["clf"]["accuracy"]["value"] == 0.75
    assert runs["clf"]["accuracy"]["step"] == 6 and runs["clf"]["accuracy"]["latest"] is True
    assert runs["nan"]["state"] == "stopped" and "not finite" in runs["nan"]["note"] and runs["nan"]["loss"] is None
    assert (runs["fresh"]["state"], runs["fresh"]["step"], runs["fresh"]["target_steps"]) == ("no-checkpoint", None, 2000)
    corrupt = runs["corrupt-config"]
    assert corrupt["state"] == "broken" and corrupt["note"].startswith("config.json is not valid JSON")
    broken = runs["bad-checkpoint"]
    assert broken["state"] == "broken" and broken["family"] == "diffusion" and broken["step"] is None
    assert "checkpoints/step-00000004.safetensors is not a landiff checkpoint" in broken["note"]
    assert str(tree) not in broken["note"]  # named relative to the run


def test_table(tree, capsys):
    assert main(["runs", str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0].split(), {line.split()[0]: line for line in lines[1:len(NAMES) + 1]}
    assert header[:4] == ["name", "family", "preset", "px"] and {"SWD", "FID", "acc", "state"} <= set(header)
    assert list(rows) == NAMES
    assert "2/2" in rows["study/runs/finished"] and "20.0 @2 " in rows["study/runs/finished"]
    assert rows["study/runs/finished"].endswith("finished") and "40.0 @2" in rows["study/runs/finished"]
    assert "2/10" in rows["study/runs/stopped"] and "50.0 @1*" in rows["study/runs/stopped"]
    assert rows["study/runs/stopped"].endswith("stopped")
    assert "7/1.5 min" in rows["timed"] and "D 1.250 G 0.750" in rows["gan"] and "75.0% @6" in rows["clf"]
    assert rows["fresh"].endswith("no checkpoint") and "-/2000" in rows["fresh"]
    assert "broken: config.json is not valid JSON" in rows["corrupt-config"]
    assert any(line.startswith("* measured on an earlier checkpoint") for line in lines)
    assert lines[-1] == "10 runs: 5 finished, 2 stopped, 1 no checkpoint, 2 broken"


def test_sort(tree, capsys):
    by_swd = [r["name"] for r in _json(capsys, str(tree), "--sort", "swd")]
    sorted_swd = ["study/runs/finished", "study/runs/stopped", "study/runs/measured"]  # 20 < 50 < 64.9
    assert by_swd == sorted_swd + [n for n in NAMES if n not in sorted_swd]  # runs without an SWD after, by name
    by_step = [r["name"] for r in _json(capsys, str(tree), "--sort", "step")]
    assert by_step == ["timed", "clf", "gan", "study/runs/measured", "nan", "study/runs/finished", "study/runs/stopped",
                       "bad-checkpoint", "corrupt-config", "fresh"]  # highest first, ties and unknowns by name
    by_state = [(r["state"], r["name"]) for r in _json(capsys, str(tree), "--sort", "state")]
    assert [state for state, _ in by_state] == ["finished"] * 5 + ["stopped"] * 2 + ["no-checkpoint"] + ["broken"] * 2
    assert main(["runs", str(tree), "--sort", "state"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table[1:len(NAMES) + 1]] == [name for _, name in by_state]  # the same order
    assert main(["runs", str(tree), "--sort", "colour"]) == 2
    assert "--sort" in capsys.readouterr().err


def test_reads_no_weights(tree, capsys, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("landiff runs read tensor data")

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert [r["state"] for r in _json(capsys, str(tree / "study"))] == ["finished", "finished", "stopped"]


@pytest.mark.skipif(not PROC_LOCKS.exists(), reason="needs /proc/locks (Linux)")
def test_a_run_being_trained(tree, capsys):
    lock = RunLock(tree / "fresh")
    lock.acquire()
    try:
        runs = {r["name"]: r for r in _json(capsys, str(tree))}
    finally:
        lock.release()
    assert runs["fresh"]["state"] == "training" and "pid" in runs["fresh"]["note"]
    assert runs["gan"]["state"] == "finished"


def test_empty_missing_and_default_folders(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no run directories under") and len(out.splitlines()) == 1
    assert _json(capsys, str(tmp_path / "empty")) == []
    assert main(["runs", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landiff: error: DIR") and "does not exist" in err[0]
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert main(["runs", str(tmp_path / "a-file")]) == 2
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 2 and "'runs' does not exist" in capsys.readouterr().err
    (tmp_path / "runs" / "one").mkdir(parents=True)
    write_config(tiny_diffusion(), tmp_path / "runs" / "one" / "config.json")
    assert [r["name"] for r in _json(capsys)] == ["one"]
    assert [r["name"] for r in _json(capsys, "runs/one")] == ["."]  # a run directory itself
