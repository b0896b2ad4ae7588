"""Crash safety, numerical faults, untrusted files and bad input, on a tiny net at 16 px.

The kill -9 trials fork training processes from a preloaded fork server (multiprocessing
"forkserver" with this module preloaded), so each trial costs a fork instead of the 2-3 s import
of torch; the ``slow`` variant runs real ``python -m landiff train`` subprocesses
(``pytest -m slow``).
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from multiprocessing import forkserver as server
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landiff.cli.main import COMMAND_MODULES, main
from landiff.cli.train import OVERRIDES
from landiff.diffusion import GaussianDiffusion, TrainingLosses
from landiff.errors import TrainingDiverged, UserError
from landiff.metrics.io import read_npz
from landiff.nets.dcgan import Discriminator
from landiff.runs import checkpoint as checkpoint_module
from landiff.runs.checkpoint import MAX_HEADER_BYTES, list_checkpoints, load_checkpoint, read_header, save_checkpoint
from landiff.runs.config import read_config
from landiff.runs.files import replace_dir, resolve_inside
from landiff.runs.run_dir import RunLock, read_stats
from landiff.train import load_run, train
from landiff.train.loop_common import clipped_step
from landiff.train.precision import MIN_LOSS_SCALE, Precision
from landiff.train.signals import GracefulStop
from tiny_runs import dcgan32, four_step_unet

SMALL = ["--resolution", "16", "--channels", "16", "--channel-mult", "1,2", "--res-blocks", "1", "--attention", "8",
         "--batch", "4", "--synthetic-n", "32", "--precision", "fp32", "--preview-count", "0", "--diffusion-steps", "50",
         "--decay", "none"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def quiet(_: str) -> None:
    pass


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in-process; (exit code, stdout, stderr). A traceback would propagate and fail the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------- processes to kill
def _cli_child(argv: list[str]) -> None:
    """Target of a forked training process: the landiff CLI, one thread, output discarded."""
    torch.set_num_threads(1)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    raise SystemExit(main(argv))


class Child:
    """A training process: forked from the preloaded server, or a real ``python -m landiff`` subprocess."""

    def __init__(self, argv: list[str], context=None) -> None:
        if context is not None:
            self.process = context.Process(target=_cli_child, args=(argv,))
            self.process.start()
            self.popen = None
        else:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            self.popen = subprocess.Popen([sys.executable, "-m", "landiff", *argv], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen is not None else self.process.pid

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if still running after ``timeout`` seconds."""
        if self.popen is not None:
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        self.process.join(timeout)
        return self.process.exitcode

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)


@pytest.fixture(scope="module")
def forkserver():
    """A fork server that has imported this module (so torch and landiff) once for all trials.

    Python 3.11's fork server ignores the parent's sys.path, so the tests folder goes in PYTHONPATH
    while it starts.
    """
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([__name__, *COMMAND_MODULES, "torch._dynamo"])  # AdamW imports dynamo
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), before]))
    try:
        server.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return context


def kill_argv(run: Path, steps: int) -> list[str]:
    return ["train", "--run", str(run), "--steps", str(steps), "--checkpoint-every", "1", "--log-every", "1",
            "--keep", "2", *SMALL]


def _latest_step(run: Path) -> int:
    found = list_checkpoints(run / "checkpoints")
    return found[-1][0] if found else 0


def _wait_and_kill(child: Child, run: Path, rng: random.Random, startup: float) -> None:
    """SIGKILLs ``child`` at a random moment: a quarter of the time during start-up (config, resume,
    stats truncation), otherwise 1-3 checkpoints later plus a random fraction of a step, so the kill
    lands anywhere in a step or a save whatever the machine's speed."""
    if rng.random() < 0.25:
        assert child.wait(rng.uniform(0.0, startup)) is None, "the run ended before the kill; give it more steps"
    else:
        target, deadline = _latest_step(run) + rng.randint(1, 3), time.monotonic() + 120
        while _latest_step(run) < target:
            assert child.wait(0.005) is None, "the run ended before the kill; give it more steps"
            assert time.monotonic() < deadline, "no progress"
        time.sleep(rng.uniform(0.0, 0.1))
    child.signal(signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL


def kill_trials(tmp: Path, kills: int, steps: int, startup: float, context=None) -> list[int]:
    """SIGKILLs a training run ``kills`` times at random moments, re-running it after each; then
    checks the finished run against an uninterrupted one. Returns the checkpoint step after each kill."""
    reference = Child(kill_argv(tmp / "reference", steps), context)  # runs alongside, on the other core
    run, rng, resumed_at = tmp / "killed", random.Random(1234), []
    while len(resumed_at) < kills:
        _wait_and_kill(Child(kill_argv(run, steps), context), run, rng, startup)
        found = list_checkpoints(run / "checkpoints")
        for _, path in found:  # whatever is there under its final name is complete and loads
            load_checkpoint(path)
        resumed_at.append(found[-1][0] if found else 0)
    assert resumed_at == sorted(resumed_at)  # never resumes from an older state
    assert Child(kill_argv(run, steps), context).wait(300) == 0
    assert reference.wait(300) == 0
    a, meta_a = load_checkpoint(list_checkpoints(tmp / "reference" / "checkpoints")[-1][1])
    b, meta_b = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    assert meta_b["state"]["step"] == steps and a.keys() == b.keys()
    for key in a:  # weights, EMA, optimiser, RNG: bitwise
        assert torch.equal(a[key], b[key]), key
    assert meta_a["extra"] == meta_b["extra"] and meta_a["state"]["images_seen"] == meta_b["state"]["images_seen"]
    stats_a, stats_b = read_stats(tmp / "reference" / "stats.jsonl"), read_stats(run / "stats.jsonl")
    assert [(s["step"], s["loss"]) for s in stats_a] == [(s["step"], s["loss"]) for s in stats_b]
    assert not list((run / "checkpoints").glob(".*.tmp")) and not list(run.glob(".*.tmp"))
    return resumed_at


def test_kill_9_at_random_moments_resumes_exactly(tmp_path, forkserver):
    resumed_at = kill_trials(tmp_path, kills=12, steps=80, startup=0.4, context=forkserver)
    assert len(resumed_at) == 12 and resumed_at[-1] > 0


@pytest.mark.slow
def test_kill_9_real_subprocesses_many_times(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow: run with pytest -m slow")
    resumed_at = kill_trials(tmp_path, kills=30, steps=200, startup=4.0)
    assert len(resumed_at) == 30


def _stats_lines(run: Path) -> int:
    try:
        return len(read_stats(run / "stats.jsonl"))
    except ValueError:  # a line being written
        return 0


def test_sigterm_saves_the_current_step_and_exits_cleanly(tmp_path, forkserver):
    run = tmp_path / "run"
    argv = ["train", "--run", str(run), "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "1", *SMALL]
    child = Child(argv, forkserver)
    deadline = time.monotonic() + 120
    while _stats_lines(run) < 3:
        assert child.wait(0.05) is None and time.monotonic() < deadline
    child.signal(signal.SIGTERM)
    assert child.wait(60) == 0
    (step, path), = list_checkpoints(run / "checkpoints")  # one checkpoint: where it stopped
    assert step >= 3 and read_stats(run / "stats.jsonl")[-1]["step"] == step
    _, meta = load_checkpoint(path)
    assert meta["state"]["step"] == step
    # re-running resumes there (here: two more steps)
    code, out, _ = run_cli(["train", "--run", str(run), "--steps", str(step + 2), "--checkpoint-every", "100000",
                            "--log-every", "1", *SMALL])
    assert code == 0 and f"resumed from {path}" in out
    assert list_checkpoints(run / "checkpoints")[-1][0] == step + 2


def test_a_second_sigint_aborts_at_once(tmp_path, forkserver):
    with GracefulStop() as stop:  # the handler itself: first signal = request, second = KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.requested and stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    run = tmp_path / "run"  # batch 32: steps long enough that the second signal comes mid-step
    argv = ["train", "--run", str(run), "--steps", "100000", "--checkpoint-every", "1", "--log-every", "1", *SMALL,
            "--batch", "32"]
    child = Child(argv, forkserver)
    deadline = time.monotonic() + 120
    while _stats_lines(run) < 2:
        assert child.wait(0.01) is None and time.monotonic() < deadline
    child.signal(signal.SIGINT)
    time.sleep(0.05)  # two signals at once would coalesce into one
    child.signal(signal.SIGINT)
    assert child.wait(60) == 130  # the CLI's exit code for an interrupt
    for _, path in list_checkpoints(run / "checkpoints"):
        load_checkpoint(path)
    assert not list((run / "checkpoints").glob(".*.tmp"))  # the interrupted write cleaned up after itself


# ----------------------------------------------------------------- saves that fail
def test_an_exception_halfway_through_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(four_step_unet(train_steps=2, checkpoint_every=1, keep_checkpoints=1), run, log=quiet)
    original = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        original(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(UserError, match=r"step-3 checkpoint.*No space left.*step-00000002\.safetensors.*intact"):
        train(four_step_unet(train_steps=3, checkpoint_every=1, keep_checkpoints=1), run, log=quiet)
    monkeypatch.undo()
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.safetensors"]  # no partial file
    load_checkpoint(run / "checkpoints" / "step-00000002.safetensors")
    assert train(four_step_unet(train_steps=3, checkpoint_every=1, keep_checkpoints=1), run, log=quiet).step == 3


def test_rotation_waits_for_a_verified_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    for step in (1, 2):
        save_checkpoint(folder, step, {"w": torch.ones(2)}, {"step": step}, keep=2)
    def corrupt(path: Path) -> dict:
        raise UserError(f"{path} is not a landiff checkpoint")

    monkeypatch.setattr(checkpoint_module, "read_header", corrupt)
    with pytest.raises(OSError, match="failed verification"):
        save_checkpoint(folder, 3, {"w": torch.ones(2)}, {"step": 3}, keep=2)
    assert [s for s, _ in list_checkpoints(folder)] == [1, 2]  # nothing rotated out, bad file removed


# ----------------------------------------------------------------- numerical faults
def _poison(monkeypatch, first_bad_call: int, last_bad_call: int | None = None, factor: float = float("nan")) -> None:
    """Multiplies the training loss by ``factor`` (NaN or inf) from the ``first_bad_call``-th call of
    ``training_losses`` on (to the ``last_bad_call``-th, when given)."""
    original = GaussianDiffusion.training_losses
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls["n"] += 1
        if first_bad_call <= calls["n"] <= (last_bad_call or calls["n"]):
            return TrainingLosses(loss=losses.loss * factor, mse=losses.mse, vb=losses.vb)
        return losses

    monkeypatch.setattr(GaussianDiffusion, "training_losses", poisoned)


def test_nan_steps_are_skipped_counted_and_stop_the_run_after_k(tmp_path, monkeypatch):
    _poison(monkeypatch, first_bad_call=3)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--run", str(run), "--steps", "20", "--checkpoint-every", "2", "--log-every", "1",
                            "--max-skips", "3", *SMALL])
    last = err.strip().splitlines()[-1]  # (progress lines come before it)
    assert code == 2 and last.startswith("landiff: error: training diverged") and "Traceback" not in err
    assert "steps 3-5" in last and "step-00000004.safetensors" in last and "--max-skips" in last, last
    stats = read_stats(run / "stats.jsonl")
    assert [s["skipped_steps"] for s in stats] == [0, 0, 1, 2]  # step 5 raised before logging
    tensors, meta = load_checkpoint(run / "checkpoints" / "step-00000004.safetensors")
    two, _ = load_checkpoint(run / "checkpoints" / "step-00000002.safetensors")
    assert meta["state"]["skipped_steps"] == 2 and meta["state"]["consecutive_skips"] == 2
    assert all(torch.equal(two[k], tensors[k]) for k in tensors if k.startswith("model."))  # skipped = untouched


def test_divergence_raises_its_own_error_type_for_callers_such_as_the_study(tmp_path, monkeypatch):
    _poison(monkeypatch, first_bad_call=2)
    with pytest.raises(TrainingDiverged, match="training diverged: steps 2-3"):
        train(four_step_unet(train_steps=10, max_consecutive_skips=2), tmp_path / "run", log=quiet)


def test_one_nan_step_is_skipped_and_training_goes_on(tmp_path, monkeypatch):
    _poison(monkeypatch, first_bad_call=2, last_bad_call=2, factor=float("inf"))
    state = train(four_step_unet(train_steps=4, max_consecutive_skips=1 + 1), tmp_path / "run", log=quiet)
    assert state.step == 4 and state.skipped_steps == 1 and state.consecutive_skips == 0
    tensors, _ = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])  # finite (checked on load)
    assert any(k.startswith("model.") for k in tensors)


def test_gan_nan_is_skipped_and_stops_after_k(tmp_path, monkeypatch):
    original = Discriminator.forward
    monkeypatch.setattr(Discriminator, "forward", lambda self, x, y=None: original(self, x, y) * float("nan"))
    config = dcgan32(8, batch=4, synthetic_n=16, preview_count=0, checkpoint_every=100, max_consecutive_skips=2)
    with pytest.raises(UserError, match=r"steps 1-2 .*last good checkpoint: none yet"):
        train(config, tmp_path / "gan", log=quiet)


def test_fp16_loss_scale_backs_off_to_its_floor_and_never_below():
    precision = Precision(mode="fp16", device=torch.device("cpu"), scaler=torch.amp.GradScaler("cpu", init_scale=8.0))
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scales = []
    for _ in range(8):  # overflow after overflow
        loss = (weight * float("inf")).sum()
        precision.scale(loss).backward()
        _, applied = clipped_step(optimizer, [weight], precision, 1.0, loss)
        assert not applied
        scales.append(precision.scaler.get_scale())
    assert scales == [4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0] and MIN_LOSS_SCALE == 1.0
    assert torch.equal(weight.detach(), torch.ones(3))  # no update reached the weights
    loss = (weight * 2).sum()
    precision.scale(loss).backward()
    assert clipped_step(optimizer, [weight], precision, 0.0, loss)[1]
    assert torch.allclose(weight.detach(), torch.full((3,), 0.8))


def test_a_checkpoint_holding_nan_is_refused_on_load(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"w": torch.tensor([1.0, float("nan")]), "n": torch.tensor([3])}, {}, keep=1)
    with pytest.raises(UserError, match="'w' holds NaN or Inf"):
        load_checkpoint(path)


# ----------------------------------------------------------------- untrusted files
class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture()
def evil_files(tmp_path) -> tuple[list[Path], Path]:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"model": _Payload(marker)})
    plain, renamed = tmp_path / "evil.pt", tmp_path / "evil.safetensors"
    plain.write_bytes(payload)
    renamed.write_bytes(payload)
    zipped = tmp_path / "zipped.safetensors"  # what torch.save writes: a zip holding a pickle
    torch.save({"model": _Payload(marker)}, zipped)
    assert not marker.exists()
    return [plain, renamed, zipped], marker


def test_a_pickle_posing_as_a_checkpoint_is_refused_without_running(tmp_path, evil_files):
    files, marker = evil_files
    for path in files:
        with pytest.raises(UserError, match="not a landiff checkpoint"):
            load_checkpoint(path)
        with pytest.raises(UserError, match="not a landiff checkpoint"):
            load_run(checkpoint=path)
        code, _, err = run_cli(["sample", "--ckpt", str(path), "--n", "1", "--out", str(tmp_path / "out")])
        assert code == 2 and len(err.strip().splitlines()) == 1 and "safetensors expected" in err
    run = tmp_path / "run"  # a poisoned latest checkpoint in a run directory: resume, sample, eval refuse
    train(four_step_unet(train_steps=1), run, log=quiet)
    shutil.copy(files[1], run / "checkpoints" / "step-00000009.safetensors")
    with pytest.raises(UserError, match="step-00000009.safetensors is not a landiff checkpoint"):
        train(four_step_unet(train_steps=12), run, log=quiet)
    assert run_cli(["sample", "--run", str(run), "--n", "1"])[0] == 2
    assert run_cli(["eval", "nll", "--run", str(run), "--n", "1"])[0] == 2
    assert not marker.exists()


def _header_file(tmp_path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


@pytest.mark.parametrize("header,data,length,why", [
    (b"", b"", 2**62, "impossible"),
    (b'{"a": 1}', b"", 10**6, "impossible"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    (b"\xff\xfe{}", b"", None, "utf-8"),
    (b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8, None, "do not fit"),
    (b'{"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4, None, "unsupported dtype"),
    (b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', b"\0" * 4, None, "non-negative"),
    (b'{"__metadata__": {"landiff": 5}}', b"", None, "strings"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}', b"\0" * 4, None, "entry must"),
    (b"[" * 100_000, b"", None, "not a landiff checkpoint"),
])
def test_malformed_safetensors_headers_are_refused(tmp_path, header, data, length, why):
    path = _header_file(tmp_path, header, data, length)
    with pytest.raises(UserError, match=why):
        read_header(path)
    with pytest.raises(UserError):
        load_checkpoint(path)


def test_an_oversized_header_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        handle.truncate(MAX_HEADER_BYTES + 64)  # sparse: no disk used
    with pytest.raises(UserError, match="impossible"):
        read_header(path)


def test_sample_archives_load_without_pickle(tmp_path, evil_files):
    _, marker = evil_files
    path = tmp_path / "samples.npz"
    np.savez(path, images=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(UserError, match="not a readable .npz"):
        read_npz(path)
    assert not marker.exists()


def test_a_directory_replaced_in_place_loses_nothing_when_the_rename_fails(tmp_path, monkeypatch):
    target, finished = tmp_path / "out", tmp_path / ".out.tmp"
    target.mkdir()
    (target / "old.txt").write_text("old")
    finished.mkdir()
    (finished / "new.txt").write_text("new")
    real_rename = os.rename

    def failing(src, dst):
        if Path(src) == finished:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError):
        replace_dir(finished, target)
    assert (target / "old.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp", "out"]
    monkeypatch.setattr(os, "rename", real_rename)
    replace_dir(finished, target)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (target / "new.txt").read_text() == "new"


def test_paths_from_files_cannot_leave_their_root(tmp_path):
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert resolve_inside(tmp_path / "root", "a/b.png") == (tmp_path / "root" / "a" / "b.png").resolve()
    for bad in ["../secret", "/etc/passwd", "a/../../x", "C:\\x", "..\\x", "link/secret", "", "a\0b"]:
        with pytest.raises(UserError, match="path"):
            resolve_inside(tmp_path / "root", bad)


def test_a_second_trainer_on_the_same_run_is_refused_and_stale_temp_files_swept(tmp_path):
    run = tmp_path / "run"
    train(four_step_unet(train_steps=1), run, log=quiet)
    stale = run / "checkpoints" / ".step-00000002.safetensors.x1y2.tmp"
    stale.write_bytes(b"half a checkpoint")
    lock = RunLock(run)
    lock.acquire()
    try:
        assert stale.exists() is False  # swept by whoever holds the lock
        stale.write_bytes(b"half a checkpoint")
        with pytest.raises(UserError, match=rf"being trained by another process \(pid {os.getpid()}\)"):
            train(four_step_unet(train_steps=2), run, log=quiet)
    finally:
        lock.release()
    assert train(four_step_unet(train_steps=2), run, log=quiet).step == 2
    assert not stale.exists()


# ----------------------------------------------------------------- versions and bad input
def test_other_format_versions_are_refused_with_both_numbers(tmp_path):
    run = tmp_path / "run"
    train(four_step_unet(train_steps=1), run, log=quiet)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(config, format_version=2)))
    with pytest.raises(UserError, match=r"config.json: run config has format version 2, this landiff reads version 1"):
        read_config(run / "config.json")
    (run / "config.json").write_text(json.dumps(config))
    tensors, meta = load_checkpoint(run / "checkpoints" / "step-00000001.safetensors")
    save_checkpoint(run / "checkpoints", 1, tensors, dict(meta, format_version=0), keep=5)
    with pytest.raises(UserError, match="format version 0; this landiff reads version 1"):
        train(four_step_unet(train_steps=2), run, log=quiet)


@pytest.mark.parametrize("argv,needles", [
    (["train", "--run", "R", "--preset", "huge", "--dry-run"], ["tiny", "dcgan", "--preset"]),
    (["train", "--run", "R", "--resolution", "30", "--dry-run"], ["--resolution", "multiple of 8"]),
    (["train", "--run", "R", "--resolution", "30", "--channel-mult", "1,2", "--dry-run"], ["--attention", "30, 15"]),
    (["train", "--run", "R", "--model", "gan", "--resolution", "100", "--dry-run"], ["--resolution 100", "96, 112"]),
    (["train", "--run", "R", "--model", "transformer", "--dry-run"], ["--model", "diffusion, gan"]),
    (["train", "--run", "R", "--max-skips", "0", "--dry-run"], ["--max-skips", ">= 1"]),
    (["train", "--run", "R", "--head-channels", "0", "--dry-run"], ["head_channels", "--head-channels"]),
    (["train", "--run", "R", "--lr", "nan", "--dry-run"], ["--lr", "[0.0, 1.0)"]),
    (["train", "--run", "R", "--seed=-3", "--dry-run"], ["--seed", ">= 0"]),
    (["train", "--run", "R", "--device", "gpu3", "--steps", "1"], ["--device", "cuda"]),
    (["sample", "--run", "R", "--n", "0"], ["--n", ">= 1"]),
    (["sample", "--run", "R", "--eta", "inf"], ["--eta", ">= 0"]),
    (["sample", "--run", "R", "--guidance=-2"], ["--guidance", ">= 0"]),
    (["sample", "--run", "R", "--device", "gpu3"], ["--device", "cuda"]),
    (["eval", "nll", "--run", "R", "--n", "0"], ["--n", ">= 1"]),
    (["eval", "swd", "--samples", "R", "--repeats", "0"], ["--repeats", ">= 1"]),
    (["eval", "kid", "--samples", "R", "--subset-size", "1"], ["--subset-size", ">= 2"]),
    (["eval", "memorization", "--samples", "R", "--ratio", "0"], ["--ratio", "> 0"]),
])
def test_bad_options_name_the_option_and_the_range(tmp_path, argv, needles):
    code, _, err = run_cli([str(tmp_path / "r") if a == "R" else a for a in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------------------------- fuzzing (bounded, deterministic)
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
FLAG_VALUES = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "-inf", "1e999", "0x10", "1,2", "1,,x", " 3", "2,2,2,2,2,2,2", "cosine", "gan",
                     "dpm++", "tiny", "dcgan", "loss-aware", "v", "\U0001f642", "a\nb"]),
    st.text(max_size=10),
)
SWITCHES = ["--class-cond", "--flip", "--compile", "--no-channels-last", "--no-ema-warmup", "--gan-ema"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _clean_failure(code: int, out: str, err: str) -> None:
    """Exit 0 with output, or exit 2 with one 'landiff: error:' line; a traceback never gets here."""
    assert code in (0, 2), (code, err)
    if code == 2:
        last = err.strip().splitlines()[-1]
        assert last.startswith("landiff: error: ") and "Traceback" not in err, err


@settings(FUZZ, max_examples=120)
@given(st.lists(st.tuples(st.sampled_from([*sorted(OVERRIDES), "model", "preset"]), FLAG_VALUES), max_size=4),
       st.lists(st.sampled_from(SWITCHES), max_size=2))
def test_fuzz_train_options_fail_cleanly(pairs, switches):
    argv = ["train", "--run", "/nonexistent/fuzz-run", *(f"--{f.replace('_', '-')}={v}" for f, v in pairs),
            *switches, "--dry-run"]
    code, out, err = run_cli(argv)
    _clean_failure(code, out, err)
    if code == 2:  # the one line names the option at fault
        assert "--" in err and len(err.strip().splitlines()) == 1, err
    else:
        assert json.loads(out)["format_version"] == 1


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz") / "run"
    assert run_cli(["train", "--run", str(run), "--steps", "1", *SMALL])[0] == 0
    return run


def _mutate(config: dict, key: str, value, delete: bool) -> dict:
    """``config`` with the dotted ``key`` set to ``value`` (or deleted)."""
    config = json.loads(json.dumps(config))
    *parents, last = key.split(".")
    node = config
    for name in parents:
        node = node[name]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return config


def _dotted(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in values.items():
        keys.append(prefix + name)
        if isinstance(value, dict):
            keys += _dotted(value, prefix + name + ".")
    return keys


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_fuzz_config_json_fails_cleanly(trained_once, tmp_path_factory, data):
    base = json.loads((trained_once / "config.json").read_text())
    choice = data.draw(st.sampled_from([*_dotted(base), "<unknown>", "<file>", "<bytes>"]))
    run = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(trained_once, run)
    if choice == "<bytes>":
        (run / "config.json").write_bytes(data.draw(st.binary(max_size=64)))
    elif choice == "<file>":
        (run / "config.json").write_text(json.dumps(data.draw(JSON_VALUES)))
    else:
        key = "extra_field" if choice == "<unknown>" else choice
        mutated = _mutate(base, key, data.draw(JSON_VALUES), delete=data.draw(st.booleans()) and key != "extra_field")
        (run / "config.json").write_text(json.dumps(mutated))
    # the same command as the one that made the run: an unharmed config resumes (nothing left to do)
    _clean_failure(*run_cli(["train", "--run", str(run), "--steps", "1", *SMALL]))
    _clean_failure(*run_cli(["eval", "swd", "--run", str(run), "--samples", str(run / "none.npz")]))
