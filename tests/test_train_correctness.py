"""Training does what its config says: checkpoints before previews, no combination that trains
something else than it claims, an LR schedule whose horizon a resume cannot move (issue 13)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from landiff.cli.main import main
from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.errors import UserError
from landiff.runs.checkpoint import list_checkpoints
from landiff.runs.config import RECIPES, OptimConfig, TrainConfig, validate
from landiff.runs.run_dir import read_stats
from landiff.train import loop_common, recipe, train
from landiff.train.schedule import learning_rate
from tiny_runs import small_dcgan, small_unet

# Same miniature as tests/test_train.py: a 16 px UNet that trains a step in well under a second.
SMALL = ["--resolution", "16", "--channels", "16", "--channel-mult", "1,2", "--res-blocks", "1",
         "--attention", "8", "--batch", "8", "--preview-count", "4", "--preview-steps", "3", "--precision", "fp32",
         "--decay", "none"]


def small_config(**changes) -> TrainConfig:
    return small_unet(warmup=1, **{"synthetic_n": 32, "log_every": 1, "checkpoint_every": 100, **changes})


def small_gan_config(**changes) -> TrainConfig:
    return small_dcgan(width=8, **{"synthetic_n": 16, "log_every": 1, **changes})


def with_optim(config: TrainConfig, **changes) -> TrainConfig:
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, **changes))


def cli_error(tmp_path: Path, capsys, *argv: str) -> str:
    """The one-line error of a refused ``landiff train … --dry-run``."""
    assert main(["train", "--run", str(tmp_path / "r"), *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------ 1. the preview never costs a checkpoint
def _break_previews(monkeypatch, family: str) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("preview exploded")

    if family == "diffusion":
        monkeypatch.setattr("landiff.train.diffusion_trainer.sample", boom)
    else:
        monkeypatch.setattr("landiff.train.gan_trainer.latents", boom)


def test_a_failing_preview_is_a_warning_and_training_goes_on(tmp_path, monkeypatch):
    _break_previews(monkeypatch, "diffusion")
    lines: list[str] = []
    state = train(small_config(train_steps=3, sample_every=2, checkpoint_every=2), tmp_path / "run", log=lines.append)
    assert state.step == 3
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [2, 3]
    warnings = [line for line in lines if "preview" in line and "preview exploded" in line]
    assert len(warnings) == 2 and all(line.startswith("warning: step ") for line in warnings), lines
    assert [s["step"] for s in read_stats(tmp_path / "run" / "stats.jsonl")] == [1, 2, 3]


@pytest.mark.parametrize("family", ["diffusion", "gan"])
def test_a_run_shorter_than_sample_every_ends_with_its_checkpoint(tmp_path, monkeypatch, family):
    _break_previews(monkeypatch, family)
    config = small_config(train_steps=2) if family == "diffusion" else small_gan_config(train_steps=2)
    lines: list[str] = []
    assert train(config, tmp_path / "run", log=lines.append).step == 2
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [2]
    assert sum("preview exploded" in line for line in lines) == 1


@pytest.mark.parametrize("argv,needles", [
    (["--diffusion-steps", "2"], ["--diffusion-steps 2", "--preview-steps 1..2", "--preview-count 0"]),
])
def test_preview_settings_the_process_cannot_sample_are_refused_up_front(tmp_path, capsys, argv, needles):
    err = cli_error(tmp_path, capsys, *argv, *SMALL)
    assert all(needle in err for needle in needles), err
    # The same config without previews, or with previews it can draw, is fine.
    assert main(["train", "--run", str(tmp_path / "r"), *argv, *SMALL, "--preview-count", "0", "--dry-run"]) == 0
    steps = argv[argv.index("--diffusion-steps") + 1]
    assert main(["train", "--run", str(tmp_path / "r"), *argv, *SMALL, "--preview-steps", steps, "--dry-run"]) == 0
    capsys.readouterr()


def test_up_front_preview_check_is_the_samplers_own(tmp_path):
    """validate() and sample() refuse with the same check: a 2-step process sampled in 3 steps."""
    from landiff.samplers import sample

    config = small_config(diffusion=dataclasses.replace(recipe("tiny").diffusion, num_steps=2), preview_steps=3)
    with pytest.raises(UserError, match=r"3 steps from a 2-step process \(--diffusion-steps 2\); use --preview-steps 1..2"):
        validate(config)
    with pytest.raises(UserError, match=r"3 steps from a 2-step process; use --steps 1..2"):
        sample(lambda x, t: x, GaussianDiffusion(beta_schedule("cosine", 2)), (3, 4, 4), [0], steps=3)


# ------------------------------------------------------------------ 2. combinations that would not train what they say
def _output_grads(variance: str, loss: str, channels: int) -> torch.Tensor:
    """Gradient of a 1x1-conv 'network' under one training loss."""
    torch.manual_seed(0)
    net = nn.Conv2d(3, channels, 1)
    diffusion = GaussianDiffusion(beta_schedule("cosine", 10), prediction="eps", variance=variance, loss=loss)
    x0 = torch.rand(4, 3, 4, 4) * 2 - 1
    t = torch.tensor([0, 3, 6, 9])
    diffusion.training_losses(lambda x, _t: net(x), x0, t, torch.randn_like(x0)).loss.mean().backward()
    return net.weight.grad.clone()


def test_learned_variance_without_a_bound_and_hybrid_without_a_learned_variance_are_refused(tmp_path, capsys):
    # Why: with L_simple the variance channels get exactly no gradient (they would never move) …
    assert _output_grads("learned_range", "mse", 6)[3:].abs().max() == 0
    assert _output_grads("learned_range", "hybrid", 6)[3:].abs().max() > 0
    # … and with a fixed variance the hybrid loss gives exactly the gradient of mse.
    assert torch.equal(_output_grads("fixed_small", "hybrid", 3), _output_grads("fixed_small", "mse", 3))

    err = cli_error(tmp_path, capsys, "--variance", "learned_range", "--loss", "mse")
    assert "--variance learned_range" in err and "--loss hybrid" in err and "--loss kl" in err
    err = cli_error(tmp_path, capsys, "--loss", "hybrid")  # tiny: fixed_small
    assert "--loss hybrid" in err and "--variance fixed_small" in err and "--loss mse" in err
    err = cli_error(tmp_path, capsys, "--preset", "ddpm-cifar", "--loss", "hybrid")
    assert "--variance fixed_large" in err
    for argv in (["--variance", "learned_range", "--loss", "hybrid"], ["--variance", "learned_range", "--loss", "kl"],
                 ["--loss", "kl"]):
        assert main(["train", "--run", str(tmp_path / "r"), *argv, "--dry-run"]) == 0
    capsys.readouterr()


def test_every_recipe_validates_and_the_refused_list_is_one_line_each():
    from landiff.runs.config import REFUSED_COMBINATIONS

    for name in RECIPES:
        validate(recipe(name))
    assert len(REFUSED_COMBINATIONS) >= 6
    assert all(isinstance(line, str) and line and "\n" not in line for line in REFUSED_COMBINATIONS)
    assert any("--variance learned_range with --loss mse" in line for line in REFUSED_COMBINATIONS)


@pytest.mark.parametrize("argv,needles", [
    (["--label-dropout", "0.2"], ["--label-dropout", "--class-cond"]),
    (["--model", "gan", "--ema-decay", "0.99"], ["--ema-decay", "--gan-ema"]),
    (["--model", "gan", "--no-ema-warmup"], ["--no-ema-warmup", "--gan-ema"]),
    (["--decay", "cosine", "--steps", "100"], ["--decay cosine", "--warmup 200", "--steps"]),  # tiny warms up 200 steps
])
def test_flags_the_run_would_ignore_are_refused(tmp_path, capsys, argv, needles):
    err = cli_error(tmp_path, capsys, *argv)
    assert all(needle in err for needle in needles), err


def test_flags_that_take_effect_are_accepted(tmp_path, capsys):
    for argv in (["--label-dropout", "0.2", "--class-cond"], ["--model", "gan", "--ema-decay", "0.99", "--gan-ema"],
                 ["--decay", "cosine", "--steps", "1000"], ["--decay", "linear", "--minutes", "5"]):
        assert main(["train", "--run", str(tmp_path / "r"), *argv, "--dry-run"]) == 0, argv
    capsys.readouterr()


def test_stored_values_that_would_be_ignored_are_refused_but_stay_loadable():
    for config, needle in [
        (small_config(label_dropout=0.3), "--class-cond"),
        (with_optim(small_config(), min_lr_ratio=0.1), "--decay none"),
        (dataclasses.replace(small_config(), gan=dataclasses.replace(small_config().gan, ngf=8)), "diffusion run"),
        (small_gan_config(diffusion=dataclasses.replace(small_config().diffusion, schedule="linear")), "GAN run"),
        (small_gan_config(preview_steps=7), "--preview-steps"),
    ]:
        with pytest.raises(UserError, match=needle):
            validate(config)
    # A run written with a refused combination can still be read (to sample or evaluate it).
    legacy = small_config(diffusion=dataclasses.replace(small_config().diffusion, variance="learned_range"))
    assert TrainConfig.from_dict(legacy.to_dict()).diffusion.variance == "learned_range"


# ------------------------------------------------------------------ 3. the LR schedule's horizon
def test_learning_rate_against_hand_computed_values():
    base = OptimConfig(lr=1.0, warmup=4, min_lr_ratio=0.1, decay_steps=14)
    cosine, linear = dataclasses.replace(base, decay="cosine"), dataclasses.replace(base, decay="linear")
    # warm-up: lr (s + 1) / w, the same whatever the decay
    for optim in (base, cosine, linear):
        assert [learning_rate(optim, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(base, 1000) == 1.0  # decay none: constant after warm-up
    # progress p = (s - 4) / 10; cosine 0.1 + 0.9 * (1 + cos(pi p)) / 2, linear 1 - 0.9 p, floor 0.1
    for step, p in [(4, 0.0), (6, 0.2), (9, 0.5), (11, 0.7), (14, 1.0), (50, 1.0)]:
        assert learning_rate(cosine, step) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * p)), abs=1e-12)
        assert learning_rate(linear, step) == pytest.approx(1 - 0.9 * p, abs=1e-12)
    assert learning_rate(cosine, 6) == pytest.approx(0.914058, abs=1e-6)
    assert learning_rate(linear, 6) == pytest.approx(0.82, abs=1e-12)
    # with a time budget the decay follows whichever budget is further along
    timed = dataclasses.replace(linear, decay_steps=1004, decay_minutes=2.0)
    assert learning_rate(timed, 104, seconds=60.0) == pytest.approx(1 - 0.9 * 0.5)  # time: 0.5, steps: 0.1
    assert learning_rate(timed, 904, seconds=6.0) == pytest.approx(1 - 0.9 * 0.9)  # time: 0.05, steps: 0.9
    assert learning_rate(timed, 5, seconds=500.0) == pytest.approx(0.1)  # past the time horizon: the floor
    with pytest.raises(ValueError, match="horizon"):
        learning_rate(OptimConfig(decay="cosine", warmup=0), 3)


def _cosine(lr: float, step: int, warmup: int, horizon: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / (horizon - warmup))
    return lr * 0.5 * (1 + math.cos(math.pi * p))


def test_a_decaying_run_keeps_its_horizon_across_resumes(tmp_path):
    run = tmp_path / "run"
    config = with_optim(small_config(train_steps=4, preview_count=0), decay="cosine", warmup=1)
    train(config, run, log=lambda _: None)
    lrs = [s["lr"] for s in read_stats(run / "stats.jsonl")]
    assert lrs == pytest.approx([_cosine(1e-3, s, 1, 4) for s in range(4)], abs=1e-12)  # 1e-3, 1e-3, 7.5e-4, 2.5e-4
    # More --steps would move the horizon (the LR would jump up): refused, naming the flags.
    with pytest.raises(UserError, match=r"--decay cosine.*over 4 steps.*resume with --steps 4") as err:
        train(dataclasses.replace(config, train_steps=8), run, log=lambda _: None)
    assert len(str(err.value).splitlines()) == 1
    assert len(read_stats(run / "stats.jsonl")) == 4
    # Keeping the stored horizon explicitly (Python API) extends the run at the floor LR.
    train(with_optim(dataclasses.replace(config, train_steps=6), decay_steps=4), run, log=lambda _: None)
    lrs = [s["lr"] for s in read_stats(run / "stats.jsonl")]
    assert lrs[4:] == [0.0, 0.0]


def test_decay_none_lets_steps_change_freely(tmp_path):
    config = small_config(train_steps=2, preview_count=0)
    train(config, tmp_path / "run", log=lambda _: None)
    assert train(dataclasses.replace(config, train_steps=3), tmp_path / "run", log=lambda _: None).step == 3
    assert [s["lr"] for s in read_stats(tmp_path / "run" / "stats.jsonl")] == [1e-3, 1e-3, 1e-3]


def test_the_cli_refuses_a_resume_that_moves_the_horizon(tmp_path, capsys):
    argv = ["train", "--run", str(tmp_path / "run"), *SMALL, "--decay", "linear", "--warmup", "1", "--synthetic-n", "16",
            "--log-every", "1", "--preview-count", "0"]
    assert main([*argv, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*argv, "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps 2" in err and "--restart" in err, err


def test_a_minutes_run_decays_over_its_trained_time(tmp_path, monkeypatch):
    """Every step takes one fake minute: a 5-minute cosine run decays over those 5 minutes, not over its
    12-step cap, and the stored horizon is the time budget."""
    clock = iter(range(10**6))
    start = loop_common.time.monotonic()
    monkeypatch.setattr(loop_common, "time", SimpleNamespace(monotonic=lambda: start + 60.0 * next(clock)))
    config = with_optim(small_config(train_steps=12, max_minutes=5.0, preview_count=0), decay="cosine", warmup=0)
    state = train(config, tmp_path / "run", log=lambda _: None)
    stats = read_stats(tmp_path / "run" / "stats.jsonl")
    # step k starts after 60 k s: p = max(k / 12, 60 k / 300) = k / 5
    assert [s["lr"] for s in stats[:5]] == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(5)])
    assert state.step == 5
    assert [s["seconds"] for s in stats] == pytest.approx([60, 120, 180, 240, 300])
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["optim"]
    assert (stored["decay_steps"], stored["decay_minutes"]) == (12, 5.0)


def test_a_config_written_before_the_horizon_was_stored_decays_over_its_steps():
    values = with_optim(small_config(train_steps=300), decay="linear").to_dict()
    del values["optim"]["decay_steps"], values["optim"]["decay_minutes"]
    optim = TrainConfig.from_dict(values).optim
    assert (optim.decay_steps, optim.decay_minutes) == (300, 0.0)


# ------------------------------------------------------------------ 4. the study's "loss" cell names both factors
def test_study_loss_cell_is_labelled_with_both_factors():
    from landiff.workflows.study.experiments import _cell
    from landiff.workflows.study.options import StudyOptions
    from landiff.workflows.study.plan import DEFAULT_SETTING, GRID, RunSpec, apply_cell, base_config

    (cell,) = [c for c in GRID["diffusion"] if c.factor == "loss"]
    assert "learned σ" in cell.shown and "hybrid" in cell.shown
    assert "fixed σ" in DEFAULT_SETTING["loss"] and "mse" in DEFAULT_SETTING["loss"]
    default = base_config("diffusion", StudyOptions(budget=None), "synthetic", 0)
    assert (default.diffusion.variance, default.diffusion.loss) == ("fixed_small", "mse")
    changed = apply_cell(default, cell)
    assert (changed.diffusion.variance, changed.diffusion.loss) == ("learned_range", "hybrid")
    validate(changed)
    spec = RunSpec("diffusion-loss-hybrid", "diffusion", "grid", cell=cell)
    assert _cell(spec, SimpleNamespace(status="diverged"), None).setting == cell.shown  # what the report's table shows


def test_train_help_lists_every_refused_combination(capsys):
    import re

    from landiff.cli.main import main
    from landiff.runs.config import REFUSED_COMBINATIONS

    try:
        code = main(["train", "--help"])
    except SystemExit as exit_:  # argparse's own exit, where main() does not catch it
        code = exit_.code
    assert code == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "refused flag combinations" in text
    for entry in REFUSED_COMBINATIONS:
        assert re.sub(r"\s+", " ", entry) in text, entry
