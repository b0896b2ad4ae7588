"""Tests of the procedural landscape generator, the SyntheticLandscapes dataset and `landiff data synth`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from landiff.cli.main import main
from landiff.data.landscape_export import HORIZON_MIDDLE, LAYOUT_CLASSES, is_synth_output
from landiff.data.landscapes import (
    CLASSES,
    class_for_index,
    image_seed,
    landscape_params,
    render_batch,
    render_landscape,
)
from landiff.data.synthetic import HELDOUT_OFFSET, SyntheticLandscapes
from landiff.errors import UserError


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_render_is_a_pure_function_of_its_arguments() -> None:
    a, pa = render_landscape(123, 32)
    b, pb = render_landscape(123, 32)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert a.tobytes() == b.tobytes() and pa == pb
    c, _ = render_landscape(124, 32)
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("resolution", [16, 64, (24, 40)])
def test_batch_equals_single_images_whatever_the_batch(resolution: int | tuple[int, int]) -> None:
    # 20 images at 64 px span three render chunks; the order and company must not matter.
    batch, params = render_batch(7, range(20), resolution)
    for k in (0, 8, 9, 19):
        single, p = render_landscape(image_seed(7, k), resolution, class_for_index(k))
        assert single.tobytes() == batch[k].tobytes()
        assert p == params[k]
    reordered, _ = render_batch(7, [19, 9, 0], resolution)
    assert reordered[0].tobytes() == batch[19].tobytes() and reordered[2].tobytes() == batch[0].tobytes()


def test_images_are_identical_in_another_process() -> None:
    code = (
        "import hashlib, numpy as np\n"
        "from landiff.data.landscapes import render_batch\n"
        "images, _ = render_batch(3, [5, 11, 1000003], 32)\n"
        "print(hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest())\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    images, _ = render_batch(3, [5, 11, 1000003], 32)
    assert child.stdout.strip() == _digest(images)


def test_dataset_is_class_balanced_and_labels_match_params() -> None:
    ds = SyntheticLandscapes(n=400, resolution=16, seed=1)
    assert ds.classes == list(CLASSES)
    labels = [ds.label(k) for k in range(400)]
    assert Counter(labels) == {0: 100, 1: 100, 2: 100, 3: 100}
    assert all(ds.params(k).cls == ds.classes[labels[k]] for k in range(0, 400, 7))
    subset = SyntheticLandscapes(n=9, resolution=16, classes=("snow", "day", "night"))
    assert [subset.classes[subset.label(k)] for k in range(6)] == ["snow", "day", "night"] * 2
    assert subset.params(0).cls == "snow" and subset[1][1] == 1


def test_no_exact_duplicates_among_10000_images() -> None:
    images, _ = render_batch(0, range(10_000), 16)
    digests = {_digest(image) for image in images}
    assert len(digests) == 10_000


def test_shapes_dtypes_and_value_ranges() -> None:
    image, params = render_landscape(5, (24, 40), "day")
    assert image.shape == (24, 40, 3) and image.dtype == np.uint8
    assert image.max() - image.min() > 80  # real contrast, not a flat fill
    ds = SyntheticLandscapes(n=10, resolution=(24, 40))
    x, y = ds[3]
    assert x.shape == (3, 24, 40) and x.dtype == torch.uint8 and isinstance(y, int)
    assert torch.equal(x, torch.from_numpy(ds.render([3])[0][0]).permute(2, 0, 1))
    assert ds[-1][0].equal(ds[9][0])
    with pytest.raises(IndexError):
        ds[10]
    assert 2 <= len(params.ranges) <= 4 and params.cls == "day"
    json.dumps(asdict(params))  # latent parameters are plain JSON


def test_dataloader_batches_equal_single_items() -> None:
    ds = SyntheticLandscapes(n=12, resolution=16, seed=4)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (5, 3, 16, 16) and xb.dtype == torch.uint8
    for k in range(5):
        assert torch.equal(xb[k], ds[k][0]) and yb[k].item() == ds[k][1]


def test_heldout_split_uses_disjoint_generator_indices() -> None:
    train = SyntheticLandscapes(n=50, resolution=16, seed=2)
    held = SyntheticLandscapes(n=50, resolution=16, seed=2, split="heldout")
    assert held.generator_index(0) == HELDOUT_OFFSET and train.generator_index(49) == 49
    train_digests = {_digest(train[k][0].numpy()) for k in range(50)}
    assert not train_digests & {_digest(held[k][0].numpy()) for k in range(50)}
    assert held.params(3).seed == image_seed(2, HELDOUT_OFFSET + 3)
    assert Counter(held.label(k) for k in range(48)) == {0: 12, 1: 12, 2: 12, 3: 12}


def _class_images(cls: str, count: int = 48, size: int = 32) -> np.ndarray:
    images, _ = render_batch(11, range(count), size, classes=[cls])
    return images.astype(np.float64) / 255.0


def test_each_class_has_its_expected_colours() -> None:
    day, sunset, night, snow = (_class_images(c) for c in CLASSES)
    sky, ground = slice(0, 8), slice(28, 32)  # top quarter is sky; the bottom rows are ground/shore
    # Night is much darker than day, everywhere.
    assert night.mean() < 0.45 * day.mean()
    # A day sky is blue; a sunset sky is redder than a day sky.
    day_sky, sunset_sky = day[:, sky].mean(axis=(0, 1, 2)), sunset[:, sky].mean(axis=(0, 1, 2))
    assert day_sky[2] > day_sky[0] + 0.2
    assert sunset_sky[0] / sunset_sky[2] > 1.5 * day_sky[0] / day_sky[2]
    # Horizon glow: a sunset's brightest sky row is orange (red > green > blue).
    glow = sunset[:, 12:18].mean(axis=(0, 1, 2))
    assert glow[0] > glow[1] > glow[2]
    # Day ground is green, snow ground near white and brighter than day ground.
    day_ground, snow_ground = day[:, ground].mean(axis=(0, 1, 2)), snow[:, ground].mean(axis=(0, 1, 2))
    assert day_ground[1] > day_ground[0] and day_ground[1] > day_ground[2]
    assert snow_ground.min() > 0.75 and snow_ground.mean() > day_ground.mean() + 0.3
    # Snow scenes have a pale sky.
    assert snow[:, sky].mean() > day[:, sky].mean()


def test_lake_mirrors_the_scene_above_the_waterline() -> None:
    # The 6 rows under the waterline, flipped, should correlate pixel by pixel with the 6 rows
    # above it in lake scenes (darkened and rippled by ±1 px), and not where there is ground.
    images, params = render_batch(21, range(200), 64)
    correlations: dict[bool, list[float]] = {True: [], False: []}
    for image, p in zip(images.astype(np.float64).mean(axis=3), params, strict=True):
        row = round(p.horizon * 64)
        above, below = image[row - 6 : row][::-1].ravel(), image[row : row + 6].ravel()
        correlations[p.lake].append(float(np.corrcoef(above, below)[0, 1]) if below.std() > 0 else 0.0)
    assert len(correlations[True]) > 30 and len(correlations[False]) > 30
    assert np.percentile(correlations[True], 10) > 0.7
    assert np.median(correlations[False]) < 0.3


def test_forced_class_and_bad_arguments() -> None:
    assert render_landscape(9, 16, "night")[1].cls == "night"
    assert landscape_params(9, "night") == render_landscape(9, 16, "night")[1]
    assert {landscape_params(s).cls for s in range(40)} == set(CLASSES)
    with pytest.raises(UserError, match="class"):
        render_landscape(0, 16, "dusk")
    for bad in (4, (16, 5000), (16, 16, 3), (16.0, 16)):
        with pytest.raises(UserError, match="resolution"):
            render_landscape(0, bad)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="resolution"):
        SyntheticLandscapes(n=4, resolution=2)
    with pytest.raises(UserError, match="classes"):
        SyntheticLandscapes(n=4, classes=("day", "day"))
    with pytest.raises(UserError, match="n:"):
        SyntheticLandscapes(n=0)


def test_synth_cli_writes_pngs_and_params(tmp_path, capsys) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--n", "6", "--size", "16", "--classes", "day,snow"]) == 0
    assert "wrote 6 landscapes" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["day", "params.jsonl", "snow", "synth.json"]
    assert sorted(p.name for p in (out / "snow").iterdir()) == ["000001.png", "000003.png", "000005.png"]
    records = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(6))
    assert [r["class"] for r in records] == ["day", "snow"] * 3 and [r["label"] for r in records] == [0, 1] * 3
    first = records[1]
    assert first["file"] == "snow/000001.png" and first["params"]["cls"] == "snow"
    expected = render_landscape(image_seed(0, 1), 16, "snow")[0]
    assert np.array_equal(np.asarray(Image.open(out / first["file"])), expected)
    assert first["params"]["seed"] == image_seed(0, 1)
    # A previous synth output is replaced as a whole.
    assert main(["data", "synth", "--out", str(out), "--n", "2", "--size", "8"]) == 0
    assert is_synth_output(out) and len((out / "params.jsonl").read_text().splitlines()) == 2
    assert not (out / "snow").exists() and (out / "sunset" / "000001.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # no temporary directories left


def test_synth_cli_labels_by_layout(tmp_path, capsys) -> None:
    """--label-by layout files each scene under its lake / horizon class, whatever its palette, and a
    folder loader reads those folders as the labels."""
    out = tmp_path / "layouts"
    assert main(["data", "synth", "--out", str(out), "--n", "24", "--size", "16", "--label-by", "layout"]) == 0
    records = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    for r in records:
        p = r["params"]
        expected = f"{'lake' if p['lake'] else 'land'}-{'high' if p['horizon'] < HORIZON_MIDDLE else 'low'}"
        assert r["layout"] == expected and r["file"].startswith(f"{expected}/") and (out / r["file"]).is_file()
        assert r["layout_label"] == LAYOUT_CLASSES.index(expected)
    assert len({r["layout"] for r in records}) >= 3  # 24 scenes reach most of the four classes
    assert {r["class"] for r in records} == {"day", "sunset", "night", "snow"}  # palettes mixed within classes
    assert is_synth_output(out) and json.loads((out / "synth.json").read_text())["label_by"] == "layout"
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert set(folders) <= set(LAYOUT_CLASSES)
    # Re-running over it is allowed (it is synth output), as for the palette labels.
    assert main(["data", "synth", "--out", str(out), "--n", "4", "--size", "8", "--label-by", "layout"]) == 0


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--n", "0", "--size", "16"], "--n"),
        (["--n", "2", "--size", "4"], "--size"),
        (["--n", "2", "--size", "2000"], "--size"),
        (["--n", "2", "--size", "16", "--classes", "day,dusk"], "--classes"),
        (["--n", "2", "--size", "16", "--seed", "-1"], "--seed"),
        (["--n", "two", "--size", "16"], "--n"),
        (["--n", "2", "--size", "16", "--split", "test"], "--split"),
    ],
)
def test_synth_cli_rejects_bad_options(tmp_path, capsys, extra: list[str], needle: str) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "o").exists()


def test_synth_cli_refuses_a_foreign_non_empty_directory(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "2", "--size", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
