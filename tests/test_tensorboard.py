"""``landiff train --tensorboard``: the event files read back with TensorBoard's own reader hold every scalar of
stats.jsonl at its step, the preview grids and the config; a resume continues without duplicates; the flag changes
no weight; without the package it is refused before training."""

from __future__ import annotations

import io
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import landiff.train.tensorboard as tb
from landiff.cli.main import main
from landiff.errors import UserError
from landiff.runs.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint
from landiff.runs.run_dir import read_stats
from landiff.train import train
from tiny_runs import small_dcgan, small_unet, tiny_classifier


def quiet(_: str) -> None:
    pass


def events(run: Path) -> EventAccumulator:
    """Everything TensorBoard shows for ``run`` (no sampling: size 0 keeps every event)."""
    reader = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def expected_scalars(stats: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Tag → [(step, value)] written out by hand from the stats lines: keys as they are, list entries as key/i."""
    wanted: dict[str, list[tuple[int, float]]] = {}
    for record in stats:
        for key, value in record.items():
            items = [(f"{key}/{i}", v) for i, v in enumerate(value)] if isinstance(value, list) else [(key, value)]
            for tag, number in items:
                if key != "step" and number is not None:
                    wanted.setdefault(tag, []).append((record["step"], float(number)))
    return wanted


def check_scalars(run: Path, reader: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar equals its stats.jsonl number at its step (as float32), and nothing else is there."""
    wanted = expected_scalars(read_stats(run / "stats.jsonl"))
    assert sorted(reader.Tags()["scalars"]) == sorted(wanted)
    for tag, points in wanted.items():
        got = [(event.step, event.value) for event in reader.Scalars(tag)]
        assert [step for step, _ in got] == [step for step, _ in points], tag
        for (_, value), (_, number) in zip(got, points, strict=True):
            assert value == pytest.approx(number, rel=1e-6, abs=1e-30) or (math.isnan(value) and math.isnan(number)), tag
    return wanted


def config_of(reader: EventAccumulator) -> list[tuple[int, dict]]:
    """(step, config) of every ``config`` text event."""
    texts = []
    for event in reader.Tensors("config/text_summary"):
        text = event.tensor_proto.string_val[0].decode("utf-8")
        texts.append((event.step, json.loads("\n".join(line[4:] for line in text.splitlines()))))
    return texts


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    return tensors


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys() and any(k.startswith("optim.") for k in first)
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_diffusion_events_match_stats_and_a_resume_continues_the_curves(tmp_path):
    config = small_unet(train_steps=4, log_every=1, checkpoint_every=2, sample_every=2, keep_checkpoints=5)
    train(config, tmp_path / "plain", log=quiet)
    board = tmp_path / "board"
    lines: list[str] = []
    train(config, board, log=lines.append, tensorboard=True)
    assert_same_weights(tmp_path / "plain", board)  # the flag changes nothing the run computes
    assert any(line.startswith("tensorboard: event files in") for line in lines)
    first = {tag: [e.value for e in events(board).Scalars(tag)] for tag in ("img_per_s", "seconds")}

    # Lose the step-4 checkpoint, as if the run was killed after logging steps 3-4 but before saving them: the
    # resume trains 3-4 again and logs them again; TensorBoard must show each step once, with the new values.
    (board / "checkpoints" / checkpoint_name(4)).unlink()
    train(config, board, log=quiet, tensorboard=True)
    assert_same_weights(tmp_path / "plain", board)
    reader = events(board)
    wanted = check_scalars(board, reader)
    assert {"loss", "mse", "loss_q/0", "loss_q/3", "lr", "grad_norm", "img_per_s", "seconds", "images_seen",
            "skipped_steps"} <= wanted.keys()
    assert [step for step, _ in wanted["loss"]] == [1, 2, 3, 4]
    assert [e.value for e in reader.Scalars("seconds")][2:] != pytest.approx(first["seconds"][2:])  # the redone ones
    previews = reader.Images("preview")
    assert [image.step for image in previews] == [2, 4]
    for image in previews:  # the grid itself, pixel for pixel
        shown = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
        assert np.array_equal(shown, np.asarray(Image.open(board / "samples" / f"step-{image.step}.png").convert("RGB")))
    assert [step for step, _ in config_of(reader)] == [0, 2]  # the fresh start, then the resume from step 2
    assert all(value == json.loads((board / "config.json").read_text()) for _, value in config_of(reader))


def test_gan_events_match_stats_and_the_weights_do_not_change(tmp_path):
    config = small_dcgan(width=8, train_steps=4, log_every=2)
    train(config, tmp_path / "plain", log=quiet)
    train(config, tmp_path / "board", log=quiet, tensorboard=True)
    assert_same_weights(tmp_path / "plain", tmp_path / "board")
    reader = events(tmp_path / "board")
    wanted = check_scalars(tmp_path / "board", reader)
    assert {"loss_d", "loss_g", "d_real", "d_fake", "lr", "img_per_s"} <= wanted.keys()
    assert [step for step, _ in wanted["loss_g"]] == [2, 4]
    assert [image.step for image in reader.Images("preview")] == [4]
    assert config_of(reader)[0][1]["model"] == "gan"


def test_classifier_events_hold_the_heldout_accuracies(tmp_path):
    train(tiny_classifier(train_steps=3), tmp_path / "clf", log=quiet, tensorboard=True)
    reader = events(tmp_path / "clf")
    wanted = check_scalars(tmp_path / "clf", reader)
    assert {"acc", "acc_q/0", "heldout_acc", "heldout_acc_q/3", "heldout_n"} <= wanted.keys()
    assert reader.Tags()["images"] == []  # a classifier draws no previews


def test_scalars_flattens_lists_and_dicts_and_leaves_out_nulls():
    record = {"step": 7, "loss": 0.5, "vb": None, "loss_q": [1.0, None, 3], "n": 2, "kind": "x", "flag": True,
              "parts": {"a": 1.5}}
    assert dict(tb.scalars(record)) == {"loss": 0.5, "loss_q/0": 1.0, "loss_q/2": 3.0, "n": 2.0, "parts/a": 1.5}


def test_without_the_package_the_flag_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ModuleNotFoundError
    run = tmp_path / "run"
    assert main(["train", "--run", str(run), "--steps", "1", "--decay", "none", "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tensorboard" in err and "pip install 'landiff[tensorboard]'" in err
    assert "not installed" in err
    assert not (run / "config.json").exists() and not (run / "checkpoints").exists()
    broken = types.ModuleType("torch.utils.tensorboard")
    broken.__getattr__ = lambda name: (_ for _ in ()).throw(TypeError("Descriptors cannot be created directly"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", broken)
    with pytest.raises(UserError, match=r"importing it failed \(TypeError: Descriptors.*pip install"):
        tb.require_tensorboard()