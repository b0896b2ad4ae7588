"""``Pipeline``: one object per trained run that turns seeds into images, the way a diffusers pipeline does.

    from landiff import Pipeline

    pipe = Pipeline.from_pretrained("runs/tiny")          # a run directory, or one of its checkpoint files
    images = pipe(batch_size=16)                           # 16 PIL images, seeds 0..15
    array = pipe(seeds=range(100, 164), output="np")       # uint8 (64, H, W, 3): `landiff sample --seed 100 --n 64`

It is a thin layer over :func:`~landiff.runs.load.load_run` (the weights, the config, the EMA) and
:func:`~landiff.generate.generate` (the sampling), with the defaults and the refusals of ``landiff sample``:
image k of ``pipe(seeds=...)`` comes from seed k alone, so it is the same at any ``batch_size`` and the same
image that ``landiff sample --run RUN --seed S --n N`` writes for that seed (``samples.npz`` and its PNGs),
for discrete and EDM diffusion runs, GAN runs and diffusion runs guided by a noisy classifier run
(Dhariwal & Nichol 2021, arXiv 2105.05233 §4).

What follows diffusers' pipelines (https://huggingface.co/docs/diffusers/using-diffusers/loading):
``from_pretrained``, ``.to(device)`` returning the pipeline, ``.device``, ``batch_size`` (with neither ``n``
nor ``seeds`` it is also the number of images, so ``pipe(batch_size=4)`` returns 4 images), and PIL images
by default. What does not, on purpose: randomness is a list of ``seeds`` (one per image, landiff's
per-image noise streams) rather than a ``torch.Generator`` shared by the batch, which would make image k
depend on the batch; the images are returned themselves, not in an output object; ``output="np"`` is the
uint8 array ``landiff sample`` stores rather than floats in [0, 1]; ``output="pt"`` is those same pixels
as floats in [0, 1] (N, 3, H, W) on the CPU, so all three outputs hold identical images; and
``from_pretrained`` reads local runs only (there is no model hub).
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from landiff.errors import UserError
from landiff.generate import Labels, class_labels, classifier_class_labels, classifier_classes, default_steps, generate
from landiff.options import check_device, check_seed, pick_device
from landiff.runs.config import TrainConfig
from landiff.runs.load import LoadedRun, load_run
from landiff.samplers import DEFAULT_SAMPLER, PRECISIONS, check_sampler_settings

Output = Literal["pil", "np", "pt"]
OUTPUTS: tuple[str, ...] = ("pil", "np", "pt")
RunPath = str | os.PathLike[str]
Images = list[Image.Image] | np.ndarray | torch.Tensor
_CLASSIFIER_FIX = "pass the directory of a run trained with `landiff train --model classifier`"


class Pipeline:
    """A trained run ready to draw images: ``Pipeline.from_run(dir)(n=16)`` → 16 PIL images.

    Attributes:
        run: the :class:`~landiff.runs.load.LoadedRun` (networks, process, config, checkpoint); the
            low-level API (:func:`~landiff.generate.generate`, :func:`~landiff.samplers.sample`) takes it.
        classifier: the loaded noisy-classifier run that guides every call (None: unguided).
    """

    def __init__(self, run: LoadedRun, classifier: LoadedRun | None = None) -> None:
        """Wraps runs loaded already (:meth:`from_run` loads them); the classifier moves to the run's device."""
        _refuse_run(run, classifier is not None)
        if classifier is not None:
            _check_classifier(run, classifier)
        self.run, self.classifier = run, classifier
        if classifier is not None:
            _move(classifier, self.device)

    @classmethod
    def from_run(cls, run: RunPath, *, device: str | torch.device | None = None, ema_length: float | None = None,
                 classifier: RunPath | LoadedRun | Pipeline | None = None) -> Pipeline:
        """Loads a trained run: its directory (the latest checkpoint) or one ``checkpoints/step-N.safetensors``.

        Args:
            device: where to sample (default: CUDA where there is one, else the CPU); ``.to()`` moves it later.
            ema_length: the post-hoc EMA's σ_rel to sample (a ``--posthoc-ema`` run; 0: the fixed-decay EMA;
                default: the run's own length), as ``landiff sample --ema-length``.
            classifier: a noisy-classifier run (``landiff train --model classifier``: its directory, a
                checkpoint or its :class:`LoadedRun`, or a Pipeline loaded with one, whose classifier is shared)
                that guides every call of a diffusion run, as ``landiff sample --classifier``.
        """
        target = None if device is None else str(_device(device))
        loaded = _load(run, "run", device=target, ema_length=ema_length)
        _refuse_run(loaded, classifier is not None)  # before loading the classifier, as `landiff sample` does
        return cls(loaded, _classifier(classifier, str(_device_of(loaded))))

    @classmethod
    def from_pretrained(cls, run: RunPath, *, device: str | torch.device | None = None, ema_length: float | None = None,
                        classifier: RunPath | LoadedRun | Pipeline | None = None) -> Pipeline:
        """:meth:`from_run` under diffusers' name for it, so that code written for a diffusers pipeline
        (``Pipeline.from_pretrained(path)``, then ``.to(device)``) loads a landiff run unchanged; it reads
        local run directories and checkpoint files only."""
        return cls.from_run(run, device=device, ema_length=ema_length, classifier=classifier)

    def __call__(self, n: int | None = None, *, seeds: Iterable[int] | None = None, sampler: str | None = None,
                 steps: int | None = None, guidance: float = 1.0, class_name: str | None = None,
                 classifier_scale: float | None = None, batch_size: int = 16, precision: str = "auto",
                 output: Output = "pil") -> Images:
        """Draws one image per seed.

        Args:
            n: the number of images, from seeds 0..n−1 (default: ``batch_size``); or give ``seeds``.
            seeds: one seed per image (e.g. ``range(100, 164)``, ``landiff sample --seed 100 --n 64``).
            sampler, steps: a diffusion run's sampler (``dpm++sde`` by default) and its network evaluations
                (20; 250 for ``ddpm``), as ``landiff sample``; ``heun`` takes (steps + 1) // 2 levels.
            guidance: classifier-free guidance w of a class-conditional diffusion run (1: plain conditional).
            class_name: a class of the run, or ``"all"`` (image k gets class k mod C). Default: none for a
                diffusion run (its null label), ``"all"`` for a conditional GAN; with a classifier and an
                unconditional run, a class of the classifier (default ``"all"``).
            classifier_scale: classifier guidance s ≥ 0 (default 1 with a classifier; 0: unguided).
            batch_size: images per network batch (diffusers' name); the images do not depend on it.
            precision: ``auto`` (bf16 autocast where the device has it natively), ``fp32`` or ``bf16``.
            output: ``"pil"`` (a list of RGB images), ``"np"`` (uint8 (N, H, W, 3)) or ``"pt"`` (float32
                (N, 3, H, W) in [0, 1], the same pixels, on the CPU).
        """
        batch = _positive_int(batch_size, "batch_size")
        chosen = _seeds(n, seeds, batch)
        if output not in OUTPUTS:
            raise UserError(f"output {output!r:.40} is not an output type; use one of: {', '.join(OUTPUTS)}")
        if self.run.diffusion is None:
            _refuse_for_gan({"sampler": sampler is not None, "steps": steps is not None, "guidance": guidance != 1.0,
                             "precision": precision != "auto", "classifier_scale": classifier_scale is not None})
            default = "all" if self.run.num_classes else None  # a conditional G needs labels (landiff sample)
            labels: Labels = class_labels(self.run, _class_name(class_name) or default, len(chosen),
                                          flag="class_name")
            generated = generate(self.run, chosen, batch=batch, labels=labels)
        else:
            generated = generate(self.run, chosen, batch=batch, **self._diffusion_settings(
                sampler, steps, guidance, class_name, classifier_scale, precision, len(chosen)))
        return _convert(generated.images, output)

    def _diffusion_settings(self, sampler: str | None, steps: int | None, guidance: float, class_name: str | None,
                            classifier_scale: float | None, precision: str, n: int) -> dict:
        """:func:`generate`'s keywords for a diffusion run, every argument checked (one line each)."""
        name = DEFAULT_SAMPLER if sampler is None else sampler
        count = default_steps(name) if steps is None else _positive_int(steps, "steps")
        num_steps = self.run.diffusion.num_steps if self.run.diffusion is not None else 0
        check_sampler_settings(name, count, num_steps, sampler_flag="sampler", steps_flag="steps")
        if precision not in PRECISIONS:
            raise UserError(f"precision {precision!r:.40} is not a precision; use one of: {', '.join(PRECISIONS)}")
        guidance = _non_negative(guidance, "guidance", "1 = plain conditional")
        if guidance != 1.0 and self.run.num_classes == 0:
            raise UserError("guidance (classifier-free) needs a class-conditional run; this one is unconditional: drop "
                            "guidance, or guide with a classifier (Pipeline.from_run(RUN, classifier=CLASSIFIER_RUN))")
        if guidance != 1.0 and class_name is None:
            raise UserError("guidance needs class_name (a class to guide towards, or 'all'); add class_name or drop guidance")
        return dict(sampler=name, steps=count, guidance=guidance, precision=precision, classifier=self.classifier,
                    classifier_scale=self._classifier_scale(classifier_scale),
                    labels=self._diffusion_labels(_class_name(class_name), n))

    def _diffusion_labels(self, class_name: str | None, n: int) -> torch.Tensor | None:
        """The labels :func:`generate` takes: the run's (``landiff sample --class``), or with a classifier and an
        unconditional run the classifier's classes to guide towards."""
        if self.classifier is not None and self.run.num_classes == 0:
            return classifier_class_labels(self.classifier, class_name, n, flag="class_name")
        if self.run.num_classes == 0 and class_name is not None:
            raise UserError(f"class_name needs a class-conditional run or a classifier; {self.run_dir} is unconditional: "
                            "drop class_name, or load the pipeline with classifier=CLASSIFIER_RUN")
        if self.classifier is not None and class_name is None:
            raise UserError("classifier guidance of a class-conditional run needs class_name (a class or 'all'): the "
                            "classes to sample and to guide towards")
        return class_labels(self.run, class_name, n, flag="class_name")

    def _classifier_scale(self, scale: float | None) -> float:
        if scale is None:
            return 0.0 if self.classifier is None else 1.0  # landiff sample's default with --classifier
        if self.classifier is None:
            raise UserError("classifier_scale needs a classifier: load the pipeline with "
                            "Pipeline.from_run(RUN, classifier=CLASSIFIER_RUN), or drop classifier_scale")
        return _non_negative(scale, "classifier_scale", "0 = unguided")

    def to(self, device: str | torch.device) -> Pipeline:
        """Moves the networks (and the classifier's) to ``device``; returns the pipeline, as diffusers does."""
        target = _device(device)
        for loaded in (self.run, self.classifier):
            if loaded is not None:
                _move(loaded, target)
        return self

    @property
    def device(self) -> torch.device:
        return _device_of(self.run)

    @property
    def config(self) -> TrainConfig:
        """The run's resolved training config (``config.json``; the checkpoint's own copy)."""
        return self.run.config

    @property
    def family(self) -> Literal["diffusion", "gan"]:
        """``"diffusion"`` (discrete or EDM: see :attr:`formulation`) or ``"gan"``."""
        return "gan" if self.run.is_gan else "diffusion"

    @property
    def formulation(self) -> str | None:
        """A diffusion run's ``discrete`` or ``edm`` formulation; None for a GAN."""
        return None if self.run.is_gan else self.run.config.diffusion.formulation

    @property
    def class_names(self) -> list[str]:
        """What ``class_name`` accepts besides ``"all"``: the run's classes (their label numbers where the run has
        no names), or with a classifier guiding an unconditional run, the classifier's; [] for neither."""
        if self.classifier is not None and self.run.num_classes == 0:
            return classifier_classes(self.classifier)
        return list(self.run.classes) or [str(k) for k in range(self.run.num_classes)]

    @property
    def resolution(self) -> int:
        return self.run.config.resolution

    @property
    def run_dir(self) -> Path:
        return self.run.checkpoint.parent.parent

    def __repr__(self) -> str:
        run, cfg = self.run, self.run.config
        kind = "GAN" if run.is_gan else f"{cfg.diffusion.formulation} diffusion"
        parts = [f"{kind} at step {run.state.step}", f"{cfg.resolution} px",
                 f"classes {', '.join(self.class_names)}" if run.num_classes else "unconditional"]
        if run.diffusion is not None:
            ema = "fixed-decay EMA" if run.ema_length is None else f"EMA sigma_rel {run.ema_length:g}"
            parts += [f"T={run.diffusion.num_steps}", ema, f"sampler {DEFAULT_SAMPLER} x {default_steps(DEFAULT_SAMPLER)}"]
        else:
            parts.append("EMA generator" if cfg.gan.ema else "generator")
        if self.classifier is not None:
            parts.append(f"classifier {str(_where(self.classifier))!r} ({', '.join(classifier_classes(self.classifier))})")
        return f"Pipeline({str(self.run_dir)!r}: {', '.join(parts)}; {self.device})"


def _refuse_run(run: LoadedRun, with_classifier: bool) -> None:
    """Refuses a run that draws no images, and a classifier for a GAN (``landiff sample``'s refusals)."""
    if run.is_classifier:
        raise UserError(f"{_where(run)} is a noisy-classifier run, which draws no images; pass it as classifier= "
                        "with a diffusion run: Pipeline.from_run(DIFFUSION_RUN, classifier=CLASSIFIER_RUN)")
    if run.is_gan and with_classifier:
        raise UserError(f"classifier guides diffusion sampling; {_where(run)} is a GAN run: drop classifier")


def _classifier(source: RunPath | LoadedRun | Pipeline | None, device: str) -> LoadedRun | None:
    """The classifier run ``source`` names or holds (None without one); anything but a classifier run is refused."""
    if source is None:
        return None
    if isinstance(source, Pipeline):
        if source.classifier is None:
            raise UserError(f"classifier is a Pipeline without a classifier ({source.run_dir}); {_CLASSIFIER_FIX}")
        return source.classifier
    if isinstance(source, LoadedRun):
        return source
    return _load(source, "classifier", device=device, fix=_CLASSIFIER_FIX)


def _check_classifier(run: LoadedRun, classifier: LoadedRun) -> None:
    """Refuses anything but a noisy-classifier run at the run's resolution."""
    if not isinstance(classifier, LoadedRun):
        raise UserError(f"classifier is a {type(classifier).__name__}, not a classifier run; {_CLASSIFIER_FIX}")
    where = _where(classifier)
    if not classifier.is_classifier:
        kind = "GAN" if classifier.is_gan else "diffusion"
        raise UserError(f"classifier {str(where)!r} is a {kind} run, not a classifier; {_CLASSIFIER_FIX}")
    if classifier.config.resolution != run.config.resolution:
        raise UserError(f"classifier {str(where)!r} takes {classifier.config.resolution} px images and the run draws "
                        f"{run.config.resolution} px; use a classifier trained at {run.config.resolution} px")


def _load(source: RunPath, argument: str, *, device: str | None, ema_length: float | None = None,
          fix: str | None = None) -> LoadedRun:
    """:func:`load_run` of a run directory or a checkpoint file, with this API's argument names in its messages
    (and, given ``fix``, the argument and the fix around them)."""
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise UserError(f"{argument} must be a run directory or a checkpoint file, got {source!r:.60}")
    path = Path(source)
    if not path.exists():
        raise UserError(f"{argument} {str(path)!r:.120} does not exist; " + (fix or "give a run directory (landiff train "
                        "--run DIR) or one of its checkpoints/step-N.safetensors"))
    try:
        if path.is_file():
            return load_run(checkpoint=path, device=device, ema_length=ema_length)
        return load_run(path, device=device, ema_length=ema_length)
    except UserError as err:
        message = str(err).replace("--ema-length", "ema_length")
        if fix is not None:
            message = f"{argument} {str(path)!r:.120}: {message.rstrip('.')}; {fix}"
        raise UserError(message) from None


def _where(loaded: LoadedRun) -> Path:
    """The run directory of a loaded run, for messages."""
    return Path(loaded.checkpoint).parent.parent


def _device(device: str | torch.device) -> torch.device:
    text = str(device) if isinstance(device, torch.device) else device
    return pick_device(check_device(text, "device"))


def _device_of(loaded: LoadedRun) -> torch.device:
    return next(loaded.ema_model.parameters()).device


def _move(loaded: LoadedRun, device: torch.device) -> None:
    loaded.model.to(device)
    loaded.ema_model.to(device)


def _positive_int(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{argument} must be an integer >= 1, got {value!r:.40}")
    return int(value)


def _non_negative(value: object, argument: str, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{argument} must be a finite number >= 0 ({meaning}), got {value!r:.40}")
    return float(value)


def _class_name(class_name: object) -> str | None:
    if class_name is not None and not isinstance(class_name, str):
        raise UserError(f"class_name must be a class name or 'all', got {class_name!r:.40}")
    return class_name


def _seeds(n: int | None, seeds: Iterable[int] | None, batch: int) -> list[int]:
    """The seed of every image: ``seeds``, else 0..n−1, else 0..batch−1 (diffusers' ``batch_size`` images)."""
    if seeds is None:
        return list(range(batch if n is None else _positive_int(n, "n")))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise UserError(f"seeds must be a list of integers, one per image (e.g. range(16)), got {seeds!r:.40}")
    chosen = []
    for seed in seeds:
        try:
            chosen.append(check_seed(operator.index(seed), "seeds"))
        except TypeError:
            raise UserError(f"seeds must hold integers (one per image), got {seed!r:.40}") from None
    if not chosen:
        raise UserError("seeds is empty; give one seed per image, e.g. range(16)")
    if n is not None and _positive_int(n, "n") != len(chosen):
        raise UserError(f"n={n} disagrees with the {len(chosen)} seeds given; pass only seeds, or n=len(seeds)")
    return chosen


def _refuse_for_gan(given: dict[str, bool]) -> None:
    """Refuses the diffusion-only arguments for a GAN run (``landiff sample`` reports them as ignored)."""
    names = [name for name, on in given.items() if on]
    if names:
        verb, them = ("applies", "it") if len(names) == 1 else ("apply", "them")
        raise UserError(f"{', '.join(names)} {verb} to diffusion runs only; a GAN draws each image in one generator "
                        f"pass: drop {them}")


def _convert(images: np.ndarray, output: str) -> Images:
    """uint8 (N, H, W, 3) images as ``output`` asks: PIL images, the array itself, or floats in [0, 1] (N, 3, H, W)."""
    if output == "np":
        return images
    if output == "pt":
        return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).contiguous()
    return [Image.fromarray(image) for image in images]


__all__ = ["OUTPUTS", "Output", "Pipeline"]
