"""The report's first screen: one summary row per run and the one-sentence verdict above the pictures.

A run is placed on the scale from the real-vs-real floor of its protocol (SWD between two sets of real
images at the same n, seed and reference: what a perfect model gets) to the noise ceiling (SWD of
uniform-noise images against the same reference: what a model that learned nothing gets), on a log
scale: position = ln(SWD / floor) / ln(ceiling / floor). A run at :data:`NOT_LEARNED_POSITION` or
beyond "has not learned the data yet", and no winner is declared among such runs: their difference
says how far each still is from the data, not which recipe is better.

Both ends move with n and with the data (the floor falls roughly as 1/√n, the ceiling hardly moves),
so a fixed multiple of the floor would not do: uniform noise is 23× the floor at n = 256 on the built-in
landscapes, 11× at n = 64, and 7.5× at n = 256 on night skylines. The position is stable. Measured
(``python benchmarks/learned_threshold.py``, benchmarks/RESULTS.md), landscapes at n = 64 and 256: GANs
after half a minute of training, whose samples are still colour noise or one blurred scene, at
0.83–0.89; 1.5-minute diffusion runs and 3-minute DCGANs, whose samples already show the scene types,
at 0.60–0.69; longer runs at 0.12–0.59; flat colours at 1.1; held-out images blurred to 4×4 px at
0.41–0.53. Skylines at n = 256: trained runs at −0.05–0.36, blurred skylines at 0.84–0.93. A summary
written before compare recorded the ceiling falls back to :data:`FALLBACK_RATIO` × the floor, the
same line on the landscapes at n = 256.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from landiff.report.numbers import difference, duration, metric_or_none, metric_title, plus_minus, si
from landiff.report.records import Estimate, Run, Unavailable
from landiff.report.render import Block, Bullets, Paragraph, Table

# From this far along the log scale floor → noise ceiling on: "has not learned the data yet".
NOT_LEARNED_POSITION = 0.75
FALLBACK_RATIO = 10.0  # the same line as a multiple of the floor at n = 256, when no ceiling was recorded
NOT_LEARNED = "has not learned the data yet"


@dataclass(frozen=True)
class Standing:
    """One run's SWD against its floor and ceiling; ``learned`` is None without a floor."""

    run: Run
    swd: Estimate | None
    floor: Estimate | None
    ceiling: Estimate | None = None

    @property
    def ratio(self) -> float | None:
        if self.swd is None or self.floor is None or self.floor.value <= 0:
            return None
        return self.swd.value / self.floor.value

    @property
    def threshold(self) -> float | None:
        """The SWD from which this run's protocol says "has not learned the data yet"."""
        if self.floor is None or self.floor.value <= 0:
            return None
        if self.ceiling is None or self.ceiling.value <= self.floor.value:
            return FALLBACK_RATIO * self.floor.value
        return self.floor.value * (self.ceiling.value / self.floor.value) ** NOT_LEARNED_POSITION

    @property
    def position(self) -> float | None:
        """ln(SWD / floor) / ln(ceiling / floor): 0 at the floor, 1 at uniform noise (None without a ceiling)."""
        if self.ratio is None or self.ceiling is None or self.floor is None or self.ceiling.value <= self.floor.value:
            return None
        return math.log(max(self.ratio, 1e-12)) / math.log(self.ceiling.value / self.floor.value)

    @property
    def learned(self) -> bool | None:
        threshold = self.threshold
        return None if self.swd is None or threshold is None else self.swd.value < threshold

    @property
    def state(self) -> str:
        if self.swd is None:
            return "not measured"
        return {None: "no floor measured", True: "learned enough to rank", False: NOT_LEARNED}[self.learned]


def standings(runs: list[Run]) -> list[Standing]:
    """Every run, with its own compare floor and ceiling (runs of one compare share them)."""
    result = []
    for run in runs:
        swd = metric_or_none(run.metrics().get("swd"))
        floor = metric_or_none(run.summary.noise_floor.get("swd")) if run.summary else None
        ceiling = metric_or_none(run.summary.noise_ceiling.get("swd")) if run.summary else None
        result.append(Standing(run, swd, floor, ceiling))
    return result


def _line(standings_: list[Standing]) -> str:
    """Where "has not learned" starts, as a multiple of the floor (one value per distinct protocol)."""
    lines = sorted({f"{s.threshold / s.floor.value:.3g}×" for s in standings_ if s.threshold and s.floor})
    return " / ".join(lines) or f"{FALLBACK_RATIO:g}×"


def _quoted(items: list[Standing]) -> str:
    names = [f'"{s.run.label}"' for s in items]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _times(standing: Standing) -> str:
    return f"{standing.ratio:.3g}×" if standing.ratio is not None else "?"


def verdict(runs: list[Run]) -> str:
    """One sentence that answers the report's question, or says why it cannot yet."""
    ranked = sorted((s for s in standings(runs) if s.swd is not None), key=lambda s: s.swd.value if s.swd else 0.0)
    if not ranked:
        return "No run has a measured SWD yet: run landiff compare on the runs, then rebuild this report."
    learned = [s for s in ranked if s.learned]
    behind = [s for s in ranked if s.learned is False]
    if any(s.learned is None for s in ranked):
        return (f"SWD is measured but not the real-vs-real floor for {_quoted([s for s in ranked if s.learned is None])}, "
                "so the report cannot tell whether they have learned the data: re-run landiff compare.")
    if not learned:
        return (f"No run has learned the data yet: every SWD is at least {_line(ranked)} the real-vs-real "
                f"floor ({', '.join(f'{_quoted([s])} {_times(s)}' for s in ranked)}), so no winner is declared; "
                "train longer.")
    tail = (f"; {_quoted(behind)} {'has' if len(behind) == 1 else 'have'} not learned the data yet "
            f"(≥ {_line(behind)} the floor)") if behind else ""
    best = learned[0]
    if len(learned) == 1:
        lead = f"{_quoted([best])} is the only run that has learned the data: SWD {_times(best)} the real-vs-real floor"
        return lead + tail + "."
    second = learned[1]
    assert best.swd is not None and second.swd is not None
    diff = difference("swd", (best.run, best.swd), (second.run, second.swd), best.floor)
    values = f"SWD {plus_minus(best.swd.value, best.swd.std)} vs {plus_minus(second.swd.value, second.swd.std)}"
    if diff.within_noise is None:
        text = f"{_quoted([best])} has the lowest SWD ({values}), but no spread was measured to tell it from {_quoted([second])}"
    elif diff.within_noise:
        text = f"{_quoted([best])} and {_quoted([second])} are within noise of each other ({values})"
    else:
        others = " and every other run" if len(learned) > 2 else ""
        text = (f"{_quoted([best])} gives the images closest to the data, ahead of {_quoted([second])}{others} beyond "
                f"the noise ({values}; {_times(best)} vs {_times(second)} the real-vs-real floor)")
    return text + tail + "."


SUMMARY_HEADER = ("run", "family", "SWD ×10³", "÷ floor", "state", "train time", "images seen", "cost per sample")


def summary_rows(runs: list[Run]) -> tuple[tuple[str, ...], ...]:
    """The summary table's rows: per run the SWD with its spread and its ratio to the floor, its state,
    training time, images seen and the cost of one sample; then each distinct real-vs-real floor."""
    rows: list[tuple[str, ...]] = []
    all_standings = standings(runs)
    for s in all_standings:
        cost = s.run.summary.cost if s.run.summary else None
        per_sample = "not measured"
        if cost is not None and cost.sample_seconds_per_image is not None:
            per_sample = duration(cost.sample_seconds_per_image)
            if cost.nfe is not None:
                per_sample += f", {cost.nfe:g} NFE"
        rows.append((
            s.run.label, {"diffusion": "diffusion", "gan": "GAN"}.get(s.run.family or "", "unknown"),
            plus_minus(s.swd.value, s.swd.std) if s.swd else "not measured",
            _times(s) if s.ratio is not None else "—", s.state,
            duration(cost.train_seconds) if cost else "not measured",
            si(cost.images_seen) if cost else "not measured", per_sample,
        ))
    floors = list(dict.fromkeys((s.floor.value, s.floor.std) for s in all_standings if s.floor is not None))
    for value, std in floors:
        rows.append(("real vs real (the floor)", "—", plus_minus(value, std), "1×", "what a perfect model gets at this n",
                     "—", "—", "—"))
    return tuple(rows)


def unavailable_lines(runs: list[Run]) -> list[str]:
    """One line per reason a metric could not be computed, naming the metrics and the runs."""
    reasons: dict[str, tuple[list[str], list[str]]] = {}
    for run in runs:
        for name, value in run.metrics().items():
            if isinstance(value, Unavailable):
                titles, labels = reasons.setdefault(value.reason, ([], []))
                titles.extend([metric_title(name)] if metric_title(name) not in titles else [])
                labels.extend([f'"{run.label}"'] if f'"{run.label}"' not in labels else [])
    lines = []
    for reason, (titles, labels) in reasons.items():
        whom = "every run" if len(labels) == len(runs) else ", ".join(labels)
        lines.append(f"{', '.join(titles)} not computed for {whom}: {reason.removeprefix('unavailable: ')}")
    return lines


def summary_section(runs: list[Run]) -> list[Block]:
    """The table under the pictures, and the unavailable metrics, one line per reason."""
    blocks: list[Block] = [Table(SUMMARY_HEADER, summary_rows(runs)),
                           Paragraph(f"SWD: sliced Wasserstein distance to held-out real images (lower is better); "
                                     f"÷ floor: its multiple of the same distance between two sets of real images. "
                                     f"From {_line(standings(runs))} the floor up (three quarters of the way, on a log "
                                     f"scale, from the floor to uniform noise) a run {NOT_LEARNED}: that line "
                                     "separates half-minute GANs from minute-long diffusion runs (benchmarks/RESULTS.md).")]
    lines = unavailable_lines(runs)
    return blocks + ([Bullets(tuple(lines))] if lines else [])
