"""The "Observations": for each of the study's four original claims, what the measurements say.

Each verdict is "supported", "not supported", "inconclusive" or "not measured", with the numbers
and the rule that decided it (stated here and in the report):

1. *Diffusion gives higher-quality images than the GAN.* Welch's t on the seed means of SWD.
   Supported / not supported when the gap clears the 95 % two-sided level in the claim's / the
   opposite direction ("strong" at 99 %); otherwise inconclusive.
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
from landiff.workflows.study.uncertainty import fisher_greater, two_proportions

Verdict = Literal["supported", "not supported", "inconclusive", "not measured"]
FAR_MORE = 2.0  # "far more expensive": at least twice the compute for the same quality
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


def quality_claim(q: QualityResult | None) -> Claim:
    if q is None:
        return Claim(1, CLAIMS[0], "not measured", "", "run: landiff study quality")
    c, d, g = q.comparison, q.diffusion.summary, q.gan.summary
    text = (f"SWD (lower is better) diffusion {_pm(d.mean, d.sd)} vs GAN {_pm(g.mean, g.sd)} (mean ± s.d. over "
            f"{d.n} and {g.n} seeds, {q.diffusion.n} samples each; real-vs-real floor {q.diffusion.floor:.3g}); "
            f"GAN − diffusion = {_pm(c.difference, c.se)} (± s.e.), t = {c.t:.2f} on {c.df:.1f} df")
    if c.level == "none":
        return Claim(1, CLAIMS[0], "inconclusive", "the gap is within seed-to-seed noise", text)
    verdict: Verdict = "supported" if c.difference > 0 else "not supported"
    return Claim(1, CLAIMS[0], verdict, _strength(c.level), text)


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
