"""Decoding one image file into 8-bit RGB at the model resolution, robustly.

Every image the package reads goes through :func:`decode_image` then :func:`resize_center_crop`,
so the image-folder dataset and the prepared cache give byte-identical tensors.

Conversions (all to 8-bit RGB):

* grayscale ``L``/``1`` → replicated channels;
* 16-bit ``I;16*`` and 32-bit ``I`` → scaled 0..65535 → 0..255 (``v / 257``, rounded), never clipped;
* float ``F`` → values in [0, 1] are scaled by 255, otherwise clipped to 0..255;
* alpha (``RGBA``, ``LA``, ``PA``, palette with a transparent index) → composited on white;
* ``CMYK``, ``YCbCr`` and others → Pillow's ``convert("RGB")``.

EXIF orientation is applied right after decoding (``ImageOps.exif_transpose``). JPEGs more than
twice the target size are decoded with libjpeg's DCT scaling first (see :func:`load_array`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Extensions the folder reader accepts, matched case-insensitively.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
)
# Pillow plugins allowed to open a file. Restricting them stops a renamed EPS/PDF from reaching
# an external decoder (EPS calls Ghostscript) and keeps "image" to what the extensions promise.
_PIL_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "GIF", "TIFF")
# Refuse anything above 8192 x 8192 pixels: a tiny file can declare a huge canvas.
DEFAULT_MAX_PIXELS = 8192 * 8192
RESIZE_FILTER = "lanczos"
# JPEGs are decoded at a reduced DCT scale down to this multiple of the target's longer side.
JPEG_DRAFT_FACTOR = 2

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageProblem(Exception):
    """A file that cannot be used as a training image; ``reason`` is a short human phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What scanning learns about a readable file; sizes are after EXIF orientation, in pixels."""

    width: int
    height: int
    format: str


def as_size(resolution: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalises a resolution to ``(height, width)``; an int means a square."""
    if isinstance(resolution, (int, np.integer)):
        size = [int(resolution), int(resolution)]
    else:
        size = [int(v) for v in resolution]
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resolution must be an int or (height, width) of positive ints, got {resolution!r}")
    return size[0], size[1]


def has_image_extension(name: str) -> bool:
    """True when ``name`` ends with an accepted image extension (any letter case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Opens (header only) and refuses decompression bombs before any pixel is decoded."""
    try:
        img = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except UnidentifiedImageError:
        raise ImageProblem("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageProblem("decompression bomb (declared size too large)") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageProblem(f"decompression bomb ({width}x{height} pixels > limit {max_pixels})")
    if width < 1 or height < 1:
        raise ImageProblem(f"invalid size {width}x{height}")
    return img


def _describe(err: Exception) -> str:
    text = str(err) or type(err).__name__
    if "truncated" in text.lower() or isinstance(err, EOFError):
        return f"truncated file ({text})"
    return f"cannot decode ({text})"


def _decode_first_frame(data: bytes, max_pixels: int, min_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """verify() (checksums where the format has them) then a real decode of the first frame.

    With ``min_side``, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling)
    as long as both sides stay >= ``min_side``; libjpeg still reads every byte, so truncation
    is still detected.

    Returns the decoded image and its (width, height) from the header.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow would silently pad a truncated file with grey; we want to see the truncation.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; landiff needs it False")
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        _open(data, max_pixels).verify()
        img = _open(data, max_pixels)  # verify() leaves the image unusable: open again
        header_size = img.size
        if min_side is not None and img.format in ("JPEG", "MPO"):
            img.draft(img.mode, (min_side, min_side))
        img.load()
    except ImageProblem:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageProblem("decompression bomb (declared size too large)") from None
    except Exception as err:  # noqa: BLE001 - Pillow raises many types on corrupt input
        raise ImageProblem(_describe(err)) from None
    return img, header_size


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Checks that ``data`` decodes, cheaply (JPEGs at 1/8 scale), and returns its oriented size.

    Raises:
        ImageProblem: empty, not an image, truncated, corrupt or a decompression bomb.
    """
    img, (width, height) = _decode_first_frame(data, max_pixels, min_side=1)
    fmt = img.format or "?"
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception as err:  # noqa: BLE001 - decode_image would fail on the same EXIF
        raise ImageProblem(f"unreadable EXIF ({err})") from None
    # EXIF orientations 5-8 are rotations by 90 degrees: they swap width and height.
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(width=width, height=height, format=fmt)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Decodes the first frame of ``data``, applies EXIF orientation, returns an RGB image.

    Args:
        data: the bytes of an image file.
        max_pixels: refuse images declaring more pixels (decompression bombs).
        min_side: None decodes at full size; otherwise a JPEG may come back smaller by DCT
            scaling, with both sides still >= ``min_side`` pixels.

    Raises:
        ImageProblem: as :func:`inspect_image`, or a mode that cannot become RGB.
    """
    img, _ = _decode_first_frame(data, max_pixels, min_side)
    try:
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
    except Exception as err:  # noqa: BLE001 - odd EXIF or modes fail in many ways
        raise ImageProblem(_describe(err)) from None


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    # 0..65535 → 0..255 is v * 255 / 65535 = v / 257; clipping would turn most of the range white.
    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")


def _float_to_l(img: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(img, dtype=np.float64))
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit ``RGB`` (see the module docstring for the rules)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_l(img).convert("RGB")
    if mode == "F":
        return _float_to_l(img).convert("RGB")
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        return _on_white(img)
    return img.convert("RGB")


def covers(width: int, height: int, size: tuple[int, int]) -> bool:
    """True when a ``width`` x ``height`` image reaches ``size`` = (H, W) without upscaling."""
    return width >= size[1] and height >= size[0]


def resize_center_crop(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Scales ``img`` so it just covers ``size`` then crops the centre.

    For a square target this is "resize the shorter side to the resolution". The resize uses
    Pillow's LANCZOS, which widens its kernel when shrinking (antialiased).

    Args:
        img: an RGB image of any size.
        size: target (height, width) in pixels.

    Returns:
        uint8 array of shape (height, width, 3).
    """
    out_h, out_w = size
    width, height = img.size
    scale = max(out_w / width, out_h / height)
    new_w = max(out_w, round(width * scale))
    new_h = max(out_h, round(height * scale))
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), resample=Image.Resampling.LANCZOS)
    left = (new_w - out_w) // 2
    top = (new_h - out_h) // 2
    img = img.crop((left, top, left + out_w, top + out_h))
    return np.asarray(img, dtype=np.uint8).copy()


def load_array(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes of an image file → uint8 array (H, W, 3) at ``size``; raises :class:`ImageProblem`.

    JPEGs larger than twice the target are first decoded at a reduced DCT scale (never below
    2x the target's longer side, so LANCZOS still does the final, antialiased reduction): about
    twice as fast at 256 → 64 px for a mean change under half a grey level.
    """
    return resize_center_crop(decode_image(data, max_pixels, min_side=JPEG_DRAFT_FACTOR * max(size)), size)
