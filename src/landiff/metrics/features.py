"""Inception pool3 features for FID / KID / precision-recall, from weights the user supplies.

landiff downloads nothing. The weights are pytorch-fid's conversion of the TF 2015-12-05 Inception
graph, turned into safetensors once by the user::

    # download pt_inception-2015-12-05-6726825d.pth yourself (pytorch-fid's GitHub release), then
    landiff weights import-inception pt_inception-2015-12-05-6726825d.pth

which writes ``~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors``. Lookup order:
``--inception PATH``, then the environment variable ``LANDIFF_INCEPTION``, then that cache file.
Without any of them the Inception metrics are reported as "unavailable: …" with these
instructions — never computed with another network.

Resize path (fixed, recorded with every result, :data:`RESIZE_PATH`): uint8 → float32 / 255 →
bilinear resize to 299×299 (``F.interpolate``, ``align_corners=False``, no antialias) → 2x − 1, so
inputs lie in [−1, 1] as the graph expects; features are returned in float64 for the statistics.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from landiff.errors import UserError
from landiff.metrics.inception import FEATURE_DIM, INPUT_SIZE, FIDInceptionV3
from landiff.runs.files import atomic_write

FeatureExtractor = Callable[[np.ndarray], np.ndarray]
"""Images (N, H, W, 3) uint8 → features (N, D) float64."""

ENV_VAR = "LANDIFF_INCEPTION"
WEIGHTS_NAME = "pt_inception-2015-12-05.safetensors"
SOURCE_NAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub names files <name>-<first 8 hex digits of the file's SHA-256>.pth.
SOURCE_SHA256_PREFIX = "6726825d"
RESIZE_PATH = (
    "uint8 -> float32/255 -> bilinear 299x299 (torch F.interpolate, align_corners=False, antialias=False) "
    "-> 2x-1 in [-1,1] -> FID Inception-v3 pool3 (2048-d), float64 statistics"
)


class InceptionUnavailable(UserError):
    """No Inception weights are configured; the message starts with ``unavailable:`` and says how to add them."""


def default_weights_path() -> Path:
    """``~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors`` (resolved now, so HOME counts)."""
    return Path.home() / ".cache" / "landiff" / "inception" / WEIGHTS_NAME


def how_to_supply() -> str:
    """The exact instructions for supplying the weights, as one sentence."""
    return (
        f"download {SOURCE_NAME} yourself (pytorch-fid's GitHub release 'fid_weights'), then run "
        f"'landiff weights import-inception {SOURCE_NAME}' (writes {default_weights_path()}), "
        f"or pass --inception FILE.safetensors, or set {ENV_VAR}=FILE.safetensors"
    )


def unavailable_message() -> str:
    """``unavailable: <how to supply the weights>`` — what FID/KID/PR report without weights."""
    return f"unavailable: no Inception weights found; {how_to_supply()}"


def find_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The weights file to use: ``path``, else ``$LANDIFF_INCEPTION``, else the cache file.

    Raises:
        UserError: ``path`` or ``$LANDIFF_INCEPTION`` names a file that does not exist.
        InceptionUnavailable: nothing is configured and the cache file is absent.
    """
    for given, origin in ((path, "--inception"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if given is not None:
            if not Path(given).is_file():
                raise UserError(f"{origin} {str(given)!r} is not a file; {how_to_supply()}")
            return Path(given)
    cached = default_weights_path()
    if cached.is_file():
        return cached
    raise InceptionUnavailable(unavailable_message())


def _checked_state_dict(state: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """Validates keys and shapes against :class:`FIDInceptionV3`; BatchNorm step counters optional."""
    model_state = FIDInceptionV3().state_dict()
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{source} is not a state dict of tensors; expected pytorch-fid's {SOURCE_NAME}")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}  # all of them, as just checked
    optional = {k for k in model_state if k.endswith("num_batches_tracked")}
    missing = sorted(set(model_state) - set(state) - optional)
    unexpected = sorted(set(state) - set(model_state))
    wrong = sorted(k for k in set(state) & set(model_state) if tuple(tensors[k].shape) != tuple(model_state[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(f"{name}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                           for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                           if keys)
        raise UserError(f"{source} does not match the FID Inception-v3 ({detail}); expected pytorch-fid's {SOURCE_NAME}")
    merged = dict(model_state)
    merged.update(tensors)
    return merged


def load_inception(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception with weights from a ``.safetensors`` file, in eval mode on ``device``."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise UserError(f"Inception weights {path}: not a readable safetensors file ({err}); "
                        "convert the .pth with landiff weights import-inception") from err
    model = FIDInceptionV3()
    model.load_state_dict(_checked_state_dict(state, str(path)), strict=True)
    return model.eval().to(device)


def import_inception(source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Converts pytorch-fid's ``.pth`` to safetensors without unpickling arbitrary objects.

    ``torch.load(weights_only=True)`` only rebuilds tensors and plain containers. The state dict is
    checked against the architecture before anything is written (atomically).

    Returns:
        (the written path, the source file's SHA-256 in hex).
    """
    source = Path(source)
    if not source.is_file():
        raise UserError(f"{source} does not exist; download {SOURCE_NAME} from pytorch-fid's GitHub release first")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling refusal is the user's file, reported in one line
        raise UserError(f"{source} could not be loaded as a plain state dict ({type(err).__name__}); "
                        f"expected pytorch-fid's {SOURCE_NAME}") from err
    tensors = {k: v.contiguous() for k, v in _checked_state_dict(state, str(source)).items()}
    target = Path(out) if out is not None else default_weights_path()
    meta = {"source": source.name, "source_sha256": digest, "format": "landiff FID Inception-v3 state dict"}
    atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return target, digest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resize_for_inception(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, 299, 299) float32 in [−1, 1], following :data:`RESIZE_PATH`."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return 2.0 * x - 1.0


class InceptionFeatures:
    """A :data:`FeatureExtractor`: (N, H, W, 3) uint8 → (N, 2048) float64 pool3 features.

    Attributes:
        description: network and weights (file name and SHA-256 prefix), recorded with results.
        resize: :data:`RESIZE_PATH`.
    """

    def __init__(self, weights: str | os.PathLike[str], *, device: str | None = None, batch: int = 50) -> None:
        if batch < 1:
            raise UserError("--batch must be >= 1")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_inception(weights, self.device)
        self.batch = batch
        self.description = f"FID Inception-v3 pool3 ({Path(weights).name}, sha256 {file_sha256(Path(weights))[:12]})"
        self.resize = RESIZE_PATH

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = np.empty((len(images), FEATURE_DIM), dtype=np.float64)
        # Full float32 convolutions: TF32 (cuDNN's default on Ampere and later) would make the
        # features, and so FID, depend on the GPU generation.
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            for start in range(0, len(images), self.batch):
                chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch])).to(self.device)
                out[start : start + len(chunk)] = self.model(resize_for_inception(chunk)).double().cpu().numpy()
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        return out
