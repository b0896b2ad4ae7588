"""Image folders with every kind of bad and odd file, prepared caches, open_dataset, data check/prepare."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
import torch
from PIL import Image

import landiff.data.open
from landiff.cli.main import main
from landiff.data import (
    ImageFolderDataset,
    PreparedDataset,
    is_prepared,
    open_dataset,
    prepare_folder,
    read_manifest,
    write_skipped_report,
)
from landiff.data import cache as cache_module
from landiff.data import prepared as prepared_module
from landiff.data.flip import flip_decision
from landiff.data.images import decode_image, load_array, resize_center_crop, to_rgb
from landiff.data.prepared import write_manifest
from landiff.errors import UserError

RES = 16
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)

GOOD = [
    "a/UPPER.JPG", "a/anim.gif", "a/cmyk.jpg", "a/exif6.jpg", "a/good.jpg", "a/gray.png", "a/gray16.png",
    "a/img.bmp", "a/img.tif", "a/img.webp", "a/palette.png", "a/rgba.png", "a/tiny.png",
    "b/dup.jpg", "b/good2.jpg",
]
BAD = {
    "b/bomb.png": "decompression bomb",
    "b/random.jpg": "not an image",
    "b/text.png": "not an image",
    "b/trunc.jpg": "truncated",
    "b/trunc.png": "truncated",
    "b/zero.jpg": "empty",
}


# ----------------------------------------------------------------------------- fixtures
def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _halves(left, right, size=(40, 24), mode="RGB") -> Image.Image:
    """A ``size`` = (W, H) image whose left half is ``left`` and right half ``right``."""
    img = Image.new(mode, size, left)
    img.paste(Image.new(mode, (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return img


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _bomb_png() -> bytes:
    """A 200-byte PNG that declares 100000 x 100000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _exif6_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed after a 90° clockwise rotation
    return _encode(_halves(RED, GREEN), "JPEG", quality=95, exif=exif)


def _palette_png() -> bytes:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (16, 0, 32, 32))
    return _encode(img, "PNG", transparency=0)  # index 0 (left half) is transparent


def _gray16_png() -> bytes:
    values = np.full((24, 40), 32896, dtype=np.uint16)  # 32896 / 257 = 128 exactly
    values[:, 20:] = 65535
    return _encode(Image.fromarray(values), "PNG")


def _anim_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _files() -> dict[str, bytes]:
    good = _encode(_noise(48, 32, 0), "JPEG", quality=90)
    rgba = _halves((255, 0, 0, 0), (0, 0, 255, 255), (32, 32), "RGBA")  # left half fully transparent
    return {
        "a/good.jpg": good,
        "a/UPPER.JPG": _encode(_noise(40, 30, 1), "JPEG"),
        "a/gray.png": _encode(Image.new("L", (24, 24), 100), "PNG"),
        "a/palette.png": _palette_png(),
        "a/rgba.png": _encode(rgba, "PNG"),
        "a/cmyk.jpg": _encode(Image.new("CMYK", (24, 24), (0, 255, 255, 0)), "JPEG", quality=95),
        "a/gray16.png": _gray16_png(),
        "a/img.webp": _encode(Image.new("RGB", (24, 24), BLUE), "WEBP", lossless=True),
        "a/img.bmp": _encode(Image.new("RGB", (24, 24), GREEN), "BMP"),
        "a/anim.gif": _anim_gif(),
        "a/img.tif": _encode(Image.new("RGB", (24, 24), (10, 20, 30)), "TIFF"),
        "a/exif6.jpg": _exif6_jpeg(),
        "a/tiny.png": _encode(Image.new("RGB", (8, 8), (200, 100, 50)), "PNG"),
        "a/notes.txt": b"not an image, ignored\n",
        "a/.hidden.jpg": good,
        "b/good2.jpg": _encode(_noise(32, 32, 2), "JPEG"),
        "b/dup.jpg": good,
        "b/zero.jpg": b"",
        "b/trunc.jpg": _encode(_noise(64, 48, 3), "JPEG", quality=95)[:1500],
        "b/trunc.png": _encode(_noise(40, 24, 4), "PNG")[:1500],
        "b/text.png": b"hello, I am text\n",
        "b/random.jpg": np.random.default_rng(5).bytes(3000),
        "b/bomb.png": _bomb_png(),
    }


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("messy"), _files())


@pytest.fixture(scope="module")
def messy_ds(messy) -> ImageFolderDataset:
    return ImageFolderDataset(messy, RES, workers=2)


def _small_folder(root: Path, n: int = 4) -> Path:
    return _write(root, {f"img{i}.png": _encode(_noise(20, 20, 10 + i), "PNG") for i in range(n)})


def _item(ds, path: str) -> np.ndarray:
    image, _ = ds[ds.files.index(path)]
    return image.permute(1, 2, 0).numpy().astype(int)  # (H, W, 3)


# ----------------------------------------------------------------------------- scanning
def test_loads_exactly_the_good_files_and_names_each_bad_one(messy, caplog):
    with caplog.at_level(logging.WARNING, logger="landiff.data"):
        ds = ImageFolderDataset(messy, RES, workers=2)
    assert ds.files == sorted(GOOD)
    assert len(ds) == 15 and ds.summary.readable == 15
    reasons = {s.path: s.reason for s in ds.summary.skipped}
    assert set(reasons) == set(BAD)
    for path, kind in BAD.items():
        assert reasons[path].startswith(kind), (path, reasons[path])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(BAD)
    for path in BAD:
        assert sum(str(messy / path) in w for w in warnings) == 1
    assert ds.summary.upscaled == ("a/tiny.png",)
    assert ds.classes == [] and set(ds.labels) == {0}


def test_items_are_uint8_rgb_at_the_resolution(messy_ds):
    for k in range(len(messy_ds)):
        image, label = messy_ds[k]
        assert image.dtype == torch.uint8 and image.shape == (3, RES, RES) and label == 0


def test_mode_conversions(messy_ds):
    ds = messy_ds
    assert (_item(ds, "a/gray.png") == 100).all()
    rgba = _item(ds, "a/rgba.png")
    assert rgba[0, 0].tolist() == [255, 255, 255]  # transparent → white, not red or black
    assert rgba[0, -1].tolist() == [0, 0, 255]
    palette = _item(ds, "a/palette.png")
    assert palette[0, 0].tolist() == [255, 255, 255] and palette[0, -1].tolist() == [0, 255, 0]
    gray16 = _item(ds, "a/gray16.png")
    assert gray16[0, 0].tolist() == [128] * 3  # scaled, not clipped to 255
    assert gray16[0, -1].tolist() == [255] * 3
    cmyk = _item(ds, "a/cmyk.jpg")[8, 8]
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60
    assert (_item(ds, "a/anim.gif") == np.array(RED)).all()  # first frame
    assert (_item(ds, "a/img.webp") == np.array(BLUE)).all()
    assert (_item(ds, "a/img.bmp") == np.array(GREEN)).all()
    assert (_item(ds, "a/img.tif") == np.array([10, 20, 30])).all()
    assert (_item(ds, "a/tiny.png") == np.array([200, 100, 50])).all()


@pytest.mark.parametrize(
    "img, want",
    [
        (Image.new("L", (2, 2), 100), 100),
        (Image.new("1", (2, 2), 1), 255),
        (Image.new("LA", (2, 2), (0, 0)), 255),  # fully transparent black → white
        (Image.new("I", (2, 2), 32896), 128),  # 16-bit range held in a 32-bit mode
        (Image.fromarray(np.full((2, 2), 1285, dtype=">u2")), 5),  # I;16B, big-endian
        (Image.new("F", (2, 2), 0.5), 128),  # float in [0, 1]
        (Image.new("F", (2, 2), 300.0), 255),  # float above 1: clipped
    ],
)
def test_to_rgb_modes(img, want):
    out = np.asarray(to_rgb(img))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3) and (out == want).all()


def test_large_jpeg_dct_scaling_barely_changes_pixels():
    yy, xx = np.mgrid[0:128, 0:160] / 128.0
    smooth = np.stack([np.sin(5 * xx), np.cos(4 * yy), np.sin(3 * (xx + yy))], -1) * 100 + 127
    data = _encode(Image.fromarray(smooth.astype(np.uint8)), "JPEG", quality=95)
    fast = load_array(data, (16, 16)).astype(int)  # decoded at 1/4 scale (40x32) first
    exact = resize_center_crop(decode_image(data), (16, 16)).astype(int)
    assert fast.shape == (16, 16, 3) and np.abs(fast - exact).mean() < 1.0


def test_exif_orientation_is_applied(messy, messy_ds):
    # Stored 40x24 with a red left half; orientation 6 shows it 24x40 with red on top.
    decoded = decode_image((messy / "a/exif6.jpg").read_bytes())
    assert decoded.size == (24, 40)
    out = _item(messy_ds, "a/exif6.jpg")
    top_right, bottom_left = out[0, -1], out[-1, 0]
    assert top_right[0] > 200 and top_right[1] < 60
    assert bottom_left[1] > 200 and bottom_left[0] < 60


def test_non_square_resolution(messy):
    ds = ImageFolderDataset(messy / "a", (8, 12), workers=1)
    image, _ = ds[ds.files.index("good.jpg")]
    assert image.shape == (3, 8, 12)


def test_smaller_pixel_limit_refuses_as_bomb(tmp_path):
    _small_folder(tmp_path, 2)
    (tmp_path / "big.png").write_bytes(_encode(_noise(64, 64, 9), "PNG"))
    ds = ImageFolderDataset(tmp_path, 8, max_pixels=1000)
    assert ds.files == ["img0.png", "img1.png"]
    assert ds.summary.skipped[0].path == "big.png"
    assert ds.summary.skipped[0].reason.startswith("decompression bomb (64x64")


def test_skipped_report_file_and_summary_line(messy_ds, tmp_path):
    line = write_skipped_report(messy_ds.summary, tmp_path / "run")
    report = tmp_path / "run" / "data-skipped.txt"
    assert line == f"15 readable, 6 skipped, 1 upscaled to 16x16 (see {report})"
    rows = [r.split("\t") for r in report.read_text().splitlines() if not r.startswith("#")]
    assert {r[0] for r in rows} == set(BAD) | {"a/tiny.png"}
    assert dict(rows)["b/zero.jpg"] == "empty file (0 bytes)"


# ----------------------------------------------------------------------------- classes and errors
def test_class_labels_from_first_level_subfolders(messy):
    ds = ImageFolderDataset(messy, RES, class_cond=True, workers=2)
    assert ds.classes == ["a", "b"] and ds.class_mapping() == {"a": 0, "b": 1}
    labels = {path: ds[k][1] for k, path in enumerate(ds.files)}
    assert labels["a/good.jpg"] == 0 and labels["b/dup.jpg"] == 1 and labels["b/good2.jpg"] == 1
    assert sum(labels.values()) == 2


def test_loose_images_with_class_cond_is_a_user_error(tmp_path):
    _small_folder(tmp_path, 2)
    with pytest.raises(UserError, match="class subfolders"):
        ImageFolderDataset(tmp_path, 8, class_cond=True)


def test_empty_and_missing_folders_are_user_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match=r"no readable image.*jpg, jpeg, png, webp, bmp, gif, tif, tiff"):
        ImageFolderDataset(tmp_path, 8)
    with pytest.raises(UserError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope", 8)


def test_file_broken_after_scan_is_replaced_not_fatal(tmp_path, caplog):
    _small_folder(tmp_path, 3)
    ds = ImageFolderDataset(tmp_path, 8)
    expected_next = ds[2][0]
    (tmp_path / "img1.png").write_bytes(b"garbage now")
    with caplog.at_level(logging.WARNING, logger="landiff.data"):
        image, _ = ds[1]
    assert torch.equal(image, expected_next) and ds.replaced == 1
    assert any("img1.png" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- flips
def test_flip_is_a_function_of_seed_epoch_index(tmp_path):
    _small_folder(tmp_path, 4)
    plain = ImageFolderDataset(tmp_path, 8)
    flipped = ImageFolderDataset(tmp_path, 8, flip=True, seed=3)
    again = ImageFolderDataset(tmp_path, 8, flip=True, seed=3)
    for epoch in range(3):
        flipped.set_epoch(epoch)
        again.set_epoch(epoch)
        for k in range(4):
            want = plain[k][0].flip(-1) if flip_decision(3, epoch, k) else plain[k][0]
            assert torch.equal(flipped[k][0], want) and torch.equal(again[k][0], want)
    decisions = {(e, k): flip_decision(3, e, k) for e in range(8) for k in range(16)}
    assert 0.3 < np.mean(list(decisions.values())) < 0.7
    assert len({tuple(decisions[(e, k)] for k in range(16)) for e in range(8)}) > 1  # epochs differ
    assert [flip_decision(4, 0, k) for k in range(16)] != [decisions[(0, k)] for k in range(16)]


# ----------------------------------------------------------------------------- prepared caches
def test_prepare_round_trips_the_folder_dataset(messy, messy_ds, tmp_path):
    manifest = prepare_folder(messy, RES, tmp_path / "prep", class_cond=True, workers=2)
    ds = PreparedDataset(tmp_path / "prep")
    assert isinstance(ds._array(), np.memmap)
    assert len(ds) == manifest.count == 15 and ds.classes == ["a", "b"]
    for k, path in enumerate(messy_ds.files):
        assert torch.equal(ds[k][0], messy_ds[k][0]), path
    assert [ds[k][1] for k in range(len(ds))] == [0] * 13 + [1] * 2
    raw = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert raw["format"] == "landiff-prepared" and raw["version"] == 1 and raw["resolution"] == [16, 16]
    assert raw["preprocessing"]["filter"] == "lanczos" and raw["preprocessing"]["crop"] == "center"
    assert {s["path"] for s in raw["skipped"]} == set(BAD)
    entry = next(e for e in raw["files"] if e["path"] == "b/dup.jpg")
    assert entry["size"] == (messy / "b/dup.jpg").stat().st_size
    assert entry["sha256"] == next(e for e in raw["files"] if e["path"] == "a/good.jpg")["sha256"]
    assert np.load(tmp_path / "prep" / "labels.npy", allow_pickle=False).dtype == np.int64


def test_prepared_dataset_pickles_without_its_pixels(tmp_path):
    prepare_folder(_small_folder(tmp_path / "src", 4), 32, tmp_path / "prep")
    ds = PreparedDataset(tmp_path / "prep", flip=True, seed=1)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 32 * 32 * 3 * 4
    assert torch.equal(clone[3][0], ds[3][0])


def test_interrupted_prepare_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    src = _small_folder(tmp_path / "src", 4)
    calls = []
    real = prepared_module.load_array

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepared_module, "load_array", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_folder(src, 8, tmp_path / "out", workers=1)
    assert sorted(os.listdir(tmp_path)) == ["src"]
    assert not is_prepared(tmp_path / "out")
    with pytest.raises(UserError, match="does not exist"):
        open_dataset(str(tmp_path / "out"), 8)


def test_cache_is_reused_then_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    src = _small_folder(tmp_path / "src", 4)
    first = open_dataset(str(src), 8, cache_dir=tmp_path / "cache")
    assert isinstance(first, PreparedDataset) and len(first) == 4
    built = read_manifest(first.path)

    def must_not_prepare(*args, **kwargs):
        raise AssertionError("cache should have been reused")

    monkeypatch.setattr(cache_module, "prepare_folder", must_not_prepare)
    second = open_dataset(str(src), 8, cache_dir=tmp_path / "cache")
    assert second.path == first.path and read_manifest(second.path).files == built.files
    monkeypatch.undo()

    # Same name, same size (a 20x20 noise PNG), new content: caught by size/mtime or the racy hash.
    (src / "img2.png").write_bytes(_encode(_noise(20, 20, 99), "PNG"))
    rebuilt = open_dataset(str(src), 8, cache_dir=tmp_path / "cache")
    assert read_manifest(rebuilt.path).files != built.files
    direct = ImageFolderDataset(src, 8)
    assert torch.equal(rebuilt[2][0], direct[2][0]) and not torch.equal(rebuilt[2][0], first[2][0])

    shutil.copy(src / "img0.png", src / "img9.png")
    assert len(open_dataset(str(src), 8, cache_dir=tmp_path / "cache")) == 5
    (src / "img0.png").unlink()
    assert len(open_dataset(str(src), 8, cache_dir=tmp_path / "cache")) == 4
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.path.name]  # no leftovers


def test_racy_files_are_hashed_then_settled(tmp_path, monkeypatch):
    src = _small_folder(tmp_path / "src", 2)
    hour_ago = (src / "img1.png").stat().st_mtime_ns - 3600 * 10**9
    for name in ("img0.png", "img1.png"):
        os.utime(src / name, ns=(hour_ago, hour_ago))
    first = open_dataset(str(src), 8, cache_dir=tmp_path / "cache")
    manifest = read_manifest(first.path)
    args = (src, (8, 8), False, manifest.preprocessing.max_pixels)
    assert cache_module.check_cache(manifest, *args).hashed == 0  # settled files are not hashed
    # Pretend the scan began in the clock tick of the last write: both files are now "racy".
    manifest = replace(manifest, created_ns=hour_ago)
    write_manifest(first.path, manifest)
    original = (src / "img1.png").read_bytes()
    (src / "img1.png").write_bytes(_encode(_noise(20, 20, 77), "PNG"))  # same size, new pixels
    os.utime(src / "img1.png", ns=(hour_ago, hour_ago))
    assert cache_module.stale_reason(manifest, *args) == "1 file(s) changed: img1.png"

    (src / "img1.png").write_bytes(original)
    os.utime(src / "img1.png", ns=(hour_ago, hour_ago))
    monkeypatch.setattr(cache_module, "prepare_folder", None)  # must be reused, not rebuilt
    again = open_dataset(str(src), 8, cache_dir=tmp_path / "cache")
    settled = read_manifest(again.path)
    assert settled.created_ns > hour_ago + 3000 * 10**9  # hashed equal: window moved to now
    assert cache_module.check_cache(settled, *args) == cache_module.CacheCheck(None, 0, ANY)


# ----------------------------------------------------------------------------- open_dataset
def test_open_dataset_dispatch(tmp_path, monkeypatch):
    src = _small_folder(tmp_path / "src", 3)
    assert isinstance(open_dataset(str(src), 8), ImageFolderDataset)
    prepare_folder(src, 8, tmp_path / "prep")
    assert isinstance(open_dataset(str(tmp_path / "prep"), 8), PreparedDataset)
    assert isinstance(open_dataset(str(tmp_path / "prep" / "manifest.json"), 8), PreparedDataset)
    with pytest.raises(UserError, match="prepared at 8x8 but the resolution is 16x16.*--size 16"):
        open_dataset(str(tmp_path / "prep"), 16)
    with pytest.raises(UserError, match="without class labels"):
        open_dataset(str(tmp_path / "prep"), 8, class_cond=True)
    with pytest.raises(UserError, match="--data .*does not exist.*'synthetic'"):
        open_dataset(str(tmp_path / "missing"), 8)
    with pytest.raises(UserError, match="--data .*is a file"):
        open_dataset(str(src / "img0.png"), 8)

    calls = []
    monkeypatch.setattr(landiff.data.open, "SyntheticLandscapes", lambda **kw: calls.append(kw) or "landscapes")
    assert open_dataset("synthetic", 32, seed=5, synthetic_n=10, split="heldout") == "landscapes"
    assert calls == [{"n": 10, "resolution": 32, "seed": 5, "split": "heldout"}]


# ----------------------------------------------------------------------------- CLI
def test_cli_check_reports_counts_duplicates_and_classes(messy, capsys):
    assert main(["data", "check", str(messy), "--size", "16", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "readable      15" in out and "skipped       6" in out and "upscaled      1" in out
    assert "ignored       2" in out
    assert "exact duplicates: 1 group(s), 1 redundant file(s)\n  a/good.jpg = b/dup.jpg" in out
    assert "  a  13 (86.7%)" in out and "  b  2 (13.3%)" in out
    assert "b/zero.jpg: empty file (0 bytes)" in out
    # shorter sides: tiny.png 8 px; 24-30 px; the 32 px ones (good, dup, good2, palette, rgba, anim)
    assert "        0-15  1\n       16-31  8\n       32-63  6\n" in out


def test_cli_check_without_readable_images_exits_2(tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"")
    assert main(["data", "check", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "readable      0" in captured.out
    last = captured.err.strip().splitlines()[-1]  # the one-line error (skip warnings may precede it)
    assert last.startswith("landiff: error: image folder") and "accepted extensions" in last


def test_cli_prepare(messy, tmp_path, capsys):
    out = tmp_path / "prep"
    assert main(["data", "prepare", str(messy), "--size", "12x16", "--out", str(out), "--class-cond"]) == 0
    assert f"prepared 15 images at 12x16, 2 classes into {out}" in capsys.readouterr().out
    ds = open_dataset(str(out), (12, 16), class_cond=True)
    assert ds.classes == ["a", "b"] and ds[0][0].shape == (3, 12, 16)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["data", "prepare", str(messy), "--size", "8", "--out", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
