"""The "Observations": for each of the study's four original claims, what the measurements say.

Each verdict is "supported", "not supported", "inconclusive" or "not measured", with the numbers
and the rule that decided it (stated here and in the report):

1. *Diffusion gives higher-quality images than the GAN.* R = diffusion SWD / GAN SWD, the ratio of
   the two families' geometric means over seeds, with its 95 % and 99 % intervals (Welch's t on the
   logs of the SWD values; :func:`~landiff.workflows.study.uncertainty.log_ratio`). Supported when
   the 95 % interval lies wholly below 1 ("strong" when the 99 % interval does too); not supported
   when it lies wholly above 1 (the GAN was better), or when it lies wholly within
   [1 − EQUIVALENCE, 1 + EQUIVALENCE] = [0.85, 1.15]: the two are equivalent within ±15 % at this
   budget, a tie is a finding. Otherwise (the interval contains 1 and reaches outside that band, or
   a family has fewer than two seeds, so there is no interval) inconclusive. The direction is
   checked first: an interval below 1 but inside the band is supported, noted as a small difference.
2. *Training diffusion is far more expensive.* Training FLOPs each family needed to reach a common
   quality (the worse family's final curve SWD). Supported when diffusion needed ≥ 2× the GAN's
   ("far more"), not supported when ≤ 1×, inconclusive between or when an upper bound blocks the
   conclusion. One training seed per curve: indicative, not a tested difference.
3. *A slight data change makes the GAN's images completely different, but not diffusion's.* On the
   ``replace`` variant, read as the claim's words: supported when most of the GAN's images became
   different pictures (the Wilson upper bound of its "same picture" share is below 1/2) and
   diffusion kept the same picture significantly more often (two-proportion z, 95 %); not
   supported when the GAN kept the same picture at least as often as diffusion, or kept most of
   its pictures (lower bound ≥ 1/2); inconclusive otherwise. The change relative to a new training
   seed (D-vs-D′ distance / seed-vs-seed distance, per family) is stated with the verdict: when
   the GAN's ratio is not above diffusion's, the GAN is as sensitive to its seed as to its data,
   and the verdict says so.
4. *Diffusion is stable at the papers' settings but not when they change; the GAN is not.* Counts of
   unstable grid cells (diverged, collapsed, or worse than the default beyond 2 combined s.d.);
   one-sided Fisher exact test. Supported at p < 0.05 with diffusion the less stable; not supported
   when diffusion had no more unstable cells than the GAN; inconclusive otherwise, and whenever a
   family's default config itself collapsed on a seed (its grid then has no healthy reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from landiff.workflows.study.evaluation import COLLAPSE_RATIO
from landiff.workflows.study.experiments import CostResult, FamilyGrid, QualityResult, StudyResults
from landiff.workflows.study.sensitivity import SensitivityResult
from landiff.workflows.study.uncertainty import RatioInterval, fisher_greater, two_proportions

Verdict = Literal["supported", "not supported", "inconclusive", "not measured"]
FAR_MORE = 2.0  # "far more expensive": at least twice the compute for the same quality
EQUIVALENCE = 0.15  # claim 1's tie: the whole 95 % interval of the SWD ratio lies within 1 ± 15 %
MOSTLY = 0.5  # "completely different": most image pairs are no longer the same picture
CLAIMS = (
    "diffusion gives higher-quality images than the GAN",
    "training diffusion is far more expensive",
    "a slight change in the training data makes the GAN generate completely different images, but not diffusion",
    "diffusion is stable with the papers' hyper-parameters and unstable when they change, unlike the GAN",
)


@dataclass(frozen=True)
class Claim:
    """One claim's verdict; ``strength`` says how firmly, ``evidence`` gives the numbers."""

    number: int
    statement: str
    verdict: Verdict
    strength: str
    evidence: str


def _strength(level: str) -> str:
    return {"99%": "strong: clears the 99% level", "95%": "moderate: clears the 95% level"}.get(level, "weak")


def _pm(value: float, spread: float) -> str:
    return f"{value:.3g}" if not math.isfinite(spread) else f"{value:.3g} ± {spread:.2g}"


QUALITY_RULE = (f"supported when the 95% interval of the ratio lies below 1 (strong when the 99% interval does too), "
                f"not supported when it lies above 1 (the GAN is better) or within [{1 - EQUIVALENCE:.2f}, "
                f"{1 + EQUIVALENCE:.2f}] (equivalent within ±{EQUIVALENCE:.0%}), inconclusive otherwise; checked in that order")


def _equivalent(r: RatioInterval) -> bool:
    """Whether the whole 95 % interval lies within [1 − EQUIVALENCE, 1 + EQUIVALENCE]."""
    return 1 - EQUIVALENCE <= r.low95 and r.high95 <= 1 + EQUIVALENCE


def _quality_evidence(q: QualityResult) -> str:
    d, g, r = q.diffusion.summary, q.gan.summary, q.ratio
    return (f"SWD (lower is better) diffusion {_pm(d.mean, d.sd)} vs GAN {_pm(g.mean, g.sd)} (mean ± s.d. over "
            f"{d.n} and {g.n} seeds, {q.diffusion.n} samples each; real-vs-real floor {q.diffusion.floor:.3g}); "
            f"ratio diffusion / GAN of the geometric means {r.ratio:.3g}, 95% interval [{r.low95:.3g}, {r.high95:.3g}], "
            f"99% [{r.low99:.3g}, {r.high99:.3g}] (Welch's t on log SWD, {r.df:.1f} df); rule: {QUALITY_RULE}")


def quality_claim(q: QualityResult | None) -> Claim:
    if q is None:
        return Claim(1, CLAIMS[0], "not measured", "", "run: landiff study quality")
    r, text = q.ratio, _quality_evidence(q)
    if not (math.isfinite(r.low95) and math.isfinite(r.high95)):
        return Claim(1, CLAIMS[0], "inconclusive", "no interval: each family needs at least 2 seeds", text)
    small = (f"; a small difference: the whole 95% interval lies within ±{EQUIVALENCE:.0%}" if _equivalent(r) else "")
    if r.high95 < 1:
        firm = ("strong: the 99% interval also lies below 1" if r.high99 < 1 else
                "moderate: the 95% interval lies below 1, the 99% interval reaches 1")
        return Claim(1, CLAIMS[0], "supported", firm + small, text)
    if r.low95 > 1:
        firm = ("strong: the 99% interval also lies above 1" if r.low99 > 1 else
                "moderate: the 95% interval lies above 1, the 99% interval reaches 1")
        return Claim(1, CLAIMS[0], "not supported", f"the GAN was better ({firm})" + small, text)
    if _equivalent(r):
        return Claim(1, CLAIMS[0], "not supported", f"equivalent within ±{EQUIVALENCE:.0%} at this budget: the whole 95% "
                     f"interval lies in [{1 - EQUIVALENCE:.2f}, {1 + EQUIVALENCE:.2f}]", text)
    return Claim(1, CLAIMS[0], "inconclusive", f"the 95% interval contains 1 and reaches outside ±{EQUIVALENCE:.0%}: "
                 "neither a difference nor a tie at this budget", text)


def cost_claim(c: CostResult | None) -> Claim:
    if c is None:
        return Claim(2, CLAIMS[1], "not measured", "", "run: landiff study cost")
    ratio = c.diffusion.to_target_flops / c.gan.to_target_flops
    text = (f"to reach SWD {c.target_swd:.3g}, diffusion needed {c.diffusion.to_target_flops:.3g} training FLOPs "
            f"({c.diffusion.to_target_seconds / 60:.2f} min), the GAN {c.gan.to_target_flops:.3g} "
            f"({c.gan.to_target_seconds / 60:.2f} min): {ratio:.2g}x; per training image diffusion costs "
            f"{c.ratio('flops_per_train_image'):.2g}x the GAN's FLOPs, per generated image {c.ratio('flops_per_sample'):.3g}x "
            f"({c.diffusion.nfe} network evaluations vs {c.gan.nfe}); after {c.equal_seconds / 60:.2f} min of training "
            f"each, SWD diffusion {c.diffusion.swd_at_equal_time:.3g} vs GAN {c.gan.swd_at_equal_time:.3g}")
    weak = "indicative: one training seed per curve"
    if not math.isfinite(ratio):
        return Claim(2, CLAIMS[1], "inconclusive", weak, text + "; a curve never reached the target")
    if ratio >= FAR_MORE and not c.diffusion.at_first_point:
        return Claim(2, CLAIMS[1], "supported", weak, text)
    if ratio <= 1 and not c.gan.at_first_point:
        return Claim(2, CLAIMS[1], "not supported", weak, text)
    note = "; the first curve point was already below the target, so the ratio is a bound" if (
        c.diffusion.at_first_point or c.gan.at_first_point) else f"; between 1x and {FAR_MORE:g}x"
    return Claim(2, CLAIMS[1], "inconclusive", weak, text + note)


def data_claim(s: SensitivityResult | None) -> Claim:
    if s is None:
        return Claim(3, CLAIMS[2], "not measured", "", "run: landiff study data-sensitivity")
    d, g = s.family("diffusion"), s.family("gan")
    pd, pg = d.variant("replace"), g.variant("replace")
    if pd is None or pg is None:
        return Claim(3, CLAIMS[2], "not measured", "", "the replace variant of both families is needed")
    collapsed = [f.family for f in (d, g) if f.collapsed]
    if collapsed:
        return Claim(3, CLAIMS[2], "inconclusive", "", f"the D-model of {', '.join(collapsed)} collapsed (its samples are "
                     f"less than {COLLAPSE_RATIO:.0%} as diverse as the data), so 'the same picture' says nothing about it; "
                     "train longer (a larger --budget)")
    cmp = two_proportions(pd.same, pg.same)
    rel_d, rel_g = d.relative("replace"), g.relative("replace")
    text = (f"with {s.n} shared latent inputs, 'the same picture' between the D-model and the D-replace model: "
            f"diffusion {pd.same.share:.0%} [{pd.same.low:.0%}, {pd.same.high:.0%}], GAN {pg.same.share:.0%} "
            f"[{pg.same.low:.0%}, {pg.same.high:.0%}] (Wilson 95%); D-vs-D′ distance relative to seed-vs-seed: "
            f"diffusion {rel_d:.2f}, GAN {rel_g:.2f}; one D′ training per family")
    seed_note = ""
    if math.isfinite(rel_d) and math.isfinite(rel_g) and rel_g <= rel_d:
        seed_note = ("; but relative to a new training seed the GAN changed no more than diffusion: its images depend "
                     "as much on its seed as on its data, so the sensitivity is not specific to data")
    if pg.same.high < MOSTLY and cmp.level != "none" and cmp.difference > 0:
        return Claim(3, CLAIMS[2], "supported", _strength(cmp.level) + seed_note, text)
    if pg.same.low >= MOSTLY or pg.same.share >= pd.same.share:
        return Claim(3, CLAIMS[2], "not supported", seed_note.lstrip("; "), text)
    return Claim(3, CLAIMS[2], "inconclusive", "the shares do not separate beyond their uncertainty" + seed_note, text)


def stability_claim(grids: tuple[FamilyGrid, ...] | None) -> Claim:
    found = {g.family: g for g in grids or ()}
    if "diffusion" not in found or "gan" not in found:
        return Claim(4, CLAIMS[3], "not measured", "", "run: landiff study hparam-stability")
    d, g = found["diffusion"], found["gan"]
    nd, ng = len(d.cells), len(g.cells)
    p = fisher_greater(d.unstable, nd, g.unstable, ng)
    text = (f"unstable cells (diverged, collapsed or worse than the default by > 2 combined s.d.): diffusion "
            f"{d.unstable}/{nd}, GAN {g.unstable}/{ng}; one-sided Fisher p = {p:.3f}")
    failed = [grid.family for grid in (d, g) if grid.default.collapsed]
    if failed:
        return Claim(4, CLAIMS[3], "inconclusive", "", text + f"; the default config collapsed on a seed "
                     f"(samples < {COLLAPSE_RATIO:.0%} as diverse as the data) for: {', '.join(failed)}, so its grid "
                     "has no healthy reference")
    if d.unstable > g.unstable and p < 0.05:
        return Claim(4, CLAIMS[3], "supported", "moderate: p < 0.05" if p >= 0.01 else "strong: p < 0.01", text)
    if d.unstable <= g.unstable:
        reverse = fisher_greater(g.unstable, ng, d.unstable, nd)
        strength = f"the GAN was the less stable, p = {reverse:.3f}" if g.unstable > d.unstable else ""
        return Claim(4, CLAIMS[3], "not supported", strength, text)
    return Claim(4, CLAIMS[3], "inconclusive", "the direction agrees but the counts are too small", text)


def observations(results: StudyResults) -> list[Claim]:
    """The four claims in order."""
    return [quality_claim(results.quality), cost_claim(results.cost), data_claim(results.sensitivity),
            stability_claim(results.hparam)]
