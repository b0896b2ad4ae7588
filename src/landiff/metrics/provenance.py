"""What a derived record was computed from: the one key shared by metrics, summaries, samples and caches.

A metric, a ``compare/summary.json`` or a ``samples.npz`` is only meaningful together with the
model and the procedure that made its images. :class:`Provenance` holds all of it — the checkpoint's
SHA-256 plus every setting that changes the images (sampler, steps and the sampler's parameters,
precision, which weights, guidance, class labels, seeds) — and :func:`provenance_for` is the one
place that builds it from a loaded run. Records carry its JSON form (:meth:`Provenance.to_dict`);
caches key on :meth:`Provenance.digest`. The report compares ``checkpoint_sha256`` with the run's
latest checkpoint and ignores records of any other model (see ``landiff.report.collect``).

New sampling options extend the key without a new format: a sampler's settings go into ``params``
(a JSON object), an EMA length into ``weights`` (e.g. ``"ema-0.10"``), a guidance method into
``guidance`` with the guiding network in ``guidance_model_sha256``. A field added later is left out of
the JSON form and the digest while it has its default (``classifier_scale``), so the records written
before it keep their keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from landiff.metrics.io import NOT_SAMPLES, SAMPLES_FILE

if TYPE_CHECKING:
    from landiff.runs.load import LoadedRun

DIGEST_CHARS = 16  # 64 bits of the SHA-256: a cache key, not a security boundary

# class_protocol values: the model takes no labels; a conditional model sampled with its null label
# (its unconditional mode); image k of the set gets class k mod C; every image gets one class; any
# other list of labels (``classes`` then holds the label of every image).
CLASS_PROTOCOLS = ("none", "null", "balanced", "fixed", "given")


@dataclass(frozen=True)
class Provenance:
    """The model and the procedure behind a set of images (or a likelihood bound).

    Attributes:
        checkpoint_sha256: SHA-256 of the checkpoint file; for ``source="external"`` the SHA-256 of
            the samples file (or of the PNG folder's files) that landiff did not write.
        source: ``"checkpoint"`` or ``"external"`` (no landiff meta: the model is unknown).
        weights: ``"ema"``, ``"ema-<σ_rel>"`` (a post-hoc EMA of that length, EDM2) or ``"raw"`` (a
            GAN run without EMA always samples its raw generator); None for external files.
        sampler: ``"ddpm"``, ``"ddim"``, ``"dpm++"`` or ``"gan"``; None when no images were drawn
            (the NLL bound) or the procedure is unknown.
        steps: network evaluations per image (1 for a GAN); None without sampling.
        params: the sampler's settings that change the images (``spacing``, ``eta``,
            ``clip_denoised`` …), JSON scalars.
        precision: the arithmetic of sampling, e.g. ``"fp32"`` or ``"fp32+tf32"``.
        guidance: ``"none"``, ``"cfg"`` (classifier-free guidance, Ho & Salimans 2022), ``"classifier"``
            (classifier guidance, Dhariwal & Nichol 2021) or ``"cfg+classifier"`` (both).
        guidance_scale: the classifier-free w (1 = plain conditional, also recorded as no ``cfg``).
        guidance_model_sha256: the guiding network's checkpoint when it is another file (the
            classifier's); None when the model guides itself (CFG) or nothing guides.
        class_protocol: one of :data:`CLASS_PROTOCOLS`; for an unconditional model under classifier
            guidance, of the classes guided towards (the classifier's).
        classes: ``balanced``: the class names cycled through, in label order; ``fixed``: the one
            class; ``given``: every image's class name; otherwise empty.
        seed: image k was drawn from seed ``seed + k``; None without sampling.
        classifier_scale: the classifier guidance scale s (0 = none; left out of the key at 0).
    """

    checkpoint_sha256: str
    source: str = "checkpoint"
    weights: str | None = "ema"
    sampler: str | None = None
    steps: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    precision: str | None = "fp32"
    guidance: str = "none"
    guidance_scale: float = 1.0
    guidance_model_sha256: str | None = None
    class_protocol: str = "none"
    classes: tuple[str, ...] = ()
    seed: int | None = None
    classifier_scale: float = 0.0

    def __post_init__(self) -> None:  # canonical types, so equal settings give equal digests
        object.__setattr__(self, "params", {str(k): self.params[k] for k in sorted(self.params)})
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))
        object.__setattr__(self, "classifier_scale", float(self.classifier_scale))
        if not (math.isfinite(self.guidance_scale) and math.isfinite(self.classifier_scale)):
            raise ValueError(f"guidance scales must be finite, got {self.guidance_scale} and {self.classifier_scale}")
        if self.class_protocol not in CLASS_PROTOCOLS:
            raise ValueError(f"class_protocol must be one of {CLASS_PROTOCOLS}, got {self.class_protocol!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into records: every field, plus ``digest``."""
        values = self._fields()
        return {**values, "digest": _digest(values)}

    def digest(self) -> str:
        """A stable short hex key (the first :data:`DIGEST_CHARS` hex digits of the SHA-256 of the fields)."""
        return _digest(self._fields())

    def short(self) -> str:
        """The checkpoint hash prefix people read in messages."""
        return self.checkpoint_sha256[:12]

    def _fields(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["params"] = dict(self.params)
        values["classes"] = list(self.classes)
        for name, default in _LATER_FIELDS.items():
            if values[name] == default:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, raw: Any) -> Provenance | None:
        """The provenance of a record's JSON form; None when absent or not readable as one."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("checkpoint_sha256"), str):
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if not isinstance(values.get("params", {}), Mapping) or not isinstance(values.get("classes", []), list):
            return None
        values["classes"] = tuple(values.get("classes", ()))
        try:
            found = cls(**values)
            found.digest()  # e.g. a NaN in params cannot be keyed
        except (TypeError, ValueError, OverflowError):
            return None
        return found


# Fields added after records were first written, with the default at which they are left out.
_LATER_FIELDS: dict[str, Any] = {"classifier_scale": 0.0}


def _digest(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def provenance_for(
    loaded: LoadedRun,
    *,
    use_ema: bool = True,
    sampler: str | None = None,
    steps: int | None = None,
    params: Mapping[str, Any] | None = None,
    precision: str | None = "fp32",
    guidance_scale: float = 1.0,
    guidance_model_sha256: str | None = None,
    labels: Sequence[int] | None = None,
    seed: int | None = None,
    classifier: LoadedRun | None = None,
    classifier_scale: float = 0.0,
    classifier_labels: Sequence[int] | None = None,
) -> Provenance:
    """The provenance of images drawn from ``loaded`` (or of a bound computed on it: ``sampler=None``).

    Args:
        loaded: the run; its checkpoint hash, family, EMA setting and class names are read from it.
        use_ema: whether the EMA weights were asked for (a GAN run without EMA has only raw ones).
        sampler, steps, params: the procedure; a GAN run is recorded as ``sampler="gan", steps=1``.
        precision: see :func:`sampling_precision`.
        guidance_scale: classifier-free guidance w; 1 means none.
        labels: the class label of every image (None: no labels were passed).
        seed: the first seed; image k from seed + k.
        classifier, classifier_scale: the classifier run that guided and its scale s (classifier
            guidance only when both are given and s > 0: at s = 0 the images are the unguided ones).
        classifier_labels: the classifier's label of every image; for an unconditional model, what
            the class protocol records (a conditional model's images keep its own labels' names).
    """
    gan = loaded.diffusion is None
    has_ema = not gan or bool(loaded.config.gan.ema)
    if sampler is not None and gan:
        sampler, steps, params = "gan", 1, {}
    protocol, classes = class_protocol(labels, loaded.num_classes, loaded.classes)
    guided = float(guidance_scale) != 1.0 and protocol != "none"
    by_classifier = classifier is not None and float(classifier_scale) > 0 and sampler is not None
    if by_classifier and loaded.num_classes == 0:
        names = list(getattr(classifier, "classes", []))
        protocol, classes = class_protocol(classifier_labels, len(names), names)
    if by_classifier:
        guidance_model_sha256 = getattr(classifier, "checkpoint_sha256", None)
    method = "+".join(name for name, on in (("cfg", guided), ("classifier", by_classifier)) if on) or "none"
    return Provenance(
        checkpoint_sha256=loaded.checkpoint_sha256, source="checkpoint",
        weights=_weights(loaded, use_ema and has_ema), sampler=sampler, steps=steps, params=dict(params or {}),
        precision=precision if sampler is not None else None,
        guidance=method, guidance_scale=guidance_scale if guided else 1.0,
        guidance_model_sha256=guidance_model_sha256 if method != "none" else None,
        class_protocol=protocol, classes=classes, seed=seed if sampler is not None else None,
        classifier_scale=float(classifier_scale) if by_classifier else 0.0,
    )


def _weights(loaded: LoadedRun, ema: bool) -> str:
    """``raw``, ``ema`` (the run's EMA) or ``ema-<σ_rel>`` (an EMA length chosen after training, post-hoc)."""
    if not ema:
        return "raw"
    return "ema" if loaded.ema_length is None else f"ema-{loaded.ema_length:g}"


def class_protocol(labels: Sequence[int] | None, num_classes: int, names: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(protocol, class names) of a label list; see :data:`CLASS_PROTOCOLS`."""
    if num_classes == 0:
        return "none", ()
    names = list(names) if len(names) == num_classes else [str(k) for k in range(num_classes)]
    if labels is None:
        return "null", ()
    values = [int(v) for v in labels]
    if values == [k % num_classes for k in range(len(values))]:
        return "balanced", tuple(names)
    if values and all(v == values[0] for v in values):
        return "fixed", (names[values[0]],)
    return "given", tuple(names[v] for v in values)


def sampling_precision(model: Any, autocast: str = "fp32") -> str:
    """The arithmetic a network samples in: its parameter dtype, plus ``+tf32`` where CUDA convolutions
    or matmuls may round to TF32 (cuDNN allows it by default); ``bf16-autocast`` when the sampler ran
    it under bf16 autocast (``autocast="bf16"``, a resolved sampling precision)."""
    if autocast == "bf16":
        return "bf16-autocast"
    parameter = next(iter(model.parameters()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    name = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}.get(
        dtype, str(dtype).removeprefix("torch."))
    on_cuda = parameter is not None and parameter.device.type == "cuda"
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return f"{name}+tf32" if on_cuda and dtype == torch.float32 and tf32 else name


def samples_provenance(spec: str | Path) -> Provenance:
    """The provenance of a ``--samples`` file as :func:`landiff.metrics.io.load_samples` resolves it:
    the ``provenance`` in a landiff ``samples.npz`` meta, else (any other .npz, a PNG folder) the
    SHA-256 of the file(s) as ``source="external"``."""
    path = Path(spec)
    if path.is_dir() and (path / SAMPLES_FILE).is_file():
        path = path / SAMPLES_FILE
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"])) if "meta" in data.files else None
        except (OSError, ValueError, KeyError):
            meta = None
        found = Provenance.from_dict(meta.get("provenance")) if isinstance(meta, dict) else None
        return found or external_provenance([path])
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.name.lower() not in NOT_SAMPLES)
    return external_provenance(files)


def external_provenance(files: Sequence[Path]) -> Provenance:
    """Images landiff did not draw (or drew before it recorded provenance): keyed by the files' bytes."""
    digest = hashlib.sha256()
    for path in files:
        if len(files) > 1:
            digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return Provenance(checkpoint_sha256=digest.hexdigest(), source="external", weights=None, precision=None)
