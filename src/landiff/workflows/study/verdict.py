"""The "Observations": for each of the study's four original claims, what the measurements say.

Each verdict is "supported", "not supported", "inconclusive" or "not measured", with the numbers
and the rule that decided it (stated here and in the report). Every claim is judged against each GAN
of the study in turn (``--gans``: the DCGAN and ``gan-strong``), by the rule below applied to
diffusion and that GAN alone, as a study with that one GAN would judge it; "the GAN" in the rules is
that GAN, and :attr:`Claim.against` names it:

1. *Diffusion gives higher-quality images than the GAN.* R = diffusion SWD / GAN SWD, the ratio of
   the two families' geometric means over seeds, with its 95 % and 99 % intervals (Welch's t on the
   logs of the SWD values; :func:`~landiff.workflows.study.uncertainty.log_ratio`). Supported when
   the 95 % interval lies wholly below 1 ("strong" when the 99 % interval does too); not supported
   when it lies wholly above 1 (the GAN was better), or when it lies wholly within
   [1 − EQUIVALENCE, 1 + EQUIVALENCE] = [0.85, 1.15]: the two are equivalent within ±15 % at this
   budget, a tie is a finding. Otherwise (the interval contains 1 and reaches outside that band, or
   a family has fewer than two seeds, so there is no interval) inconclusive. The direction is
   checked first: an interval below 1 but inside the band is supported, noted as a small difference.
2. *Training diffusion is far more expensive.* The target quality is the highest final curve SWD over
   every seed run of diffusion and that GAN (the best quality all of them reached; with one seed per
   family, the worse family's final point). Each seed run's training FLOPs to first reach it are interpolated
   along its own curve (log-compute between points; NaN if it never does; its first point's compute,
   an upper bound, if already below the target there). C = diffusion / GAN, the ratio of the two
   families' geometric means of those per-seed FLOPs, with its 95 % interval (Welch's t on log FLOPs,
   :func:`~landiff.workflows.study.uncertainty.log_ratio`). Supported when the interval's lower bound
   is ≥ FAR_MORE = 2× ("strong" when the 99 % interval's is too); not supported when its upper bound
   is < 2×, and then: diffusion was cheaper (upper bound < 1), equivalent within ±EQUIVALENCE = ±15 %
   (the whole interval within [0.85, 1.15]), more expensive but not far more (lower bound > 1), or
   less than 2× with the direction unresolved; inconclusive otherwise (the interval contains 2×), when
   a family has fewer than two seeds that reached the target, or when a bound blocks the conclusion:
   diffusion's values being upper bounds blocks "supported" (its true compute may be lower), the GAN's
   blocks "not supported". The same rule is applied to training wall-clock and stated beside; the
   verdict follows FLOPs (wall-clock depends on the machine and its load).
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
from landiff.workflows.study.experiments import CostResult, FamilyCost, FamilyGrid, QualityResult, SeedCost, StudyResults
from landiff.workflows.study.options import Family
from landiff.workflows.study.sensitivity import FamilySensitivity, SensitivityResult
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
    """One claim's verdict against one GAN (``against``: its family, e.g. ``dcgan``); ``strength`` says how
    firmly, ``evidence`` gives the numbers."""

    number: int
    statement: str
    against: str
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
    d, g, r, gan = q.diffusion.summary, q.gan.summary, q.ratio, q.gan.family
    return (f"SWD (lower is better) diffusion {_pm(d.mean, d.sd)} vs {gan} {_pm(g.mean, g.sd)} (mean ± s.d. over "
            f"{d.n} and {g.n} seeds, {q.diffusion.n} samples each; real-vs-real floor {q.diffusion.floor:.3g}); "
            f"ratio diffusion / {gan} of the geometric means {r.ratio:.3g}, 95% interval [{r.low95:.3g}, "
            f"{r.high95:.3g}], 99% [{r.low99:.3g}, {r.high99:.3g}] (Welch's t on log SWD, {r.df:.1f} df); "
            f"rule: {QUALITY_RULE}")


def quality_claim(q: QualityResult | None, gan: Family) -> Claim:
    """Claim 1 against ``gan`` (``q``: diffusion against it, None when not measured)."""
    def claim(verdict: Verdict, strength: str, evidence: str) -> Claim:
        return Claim(1, CLAIMS[0], gan, verdict, strength, evidence)

    if q is None:
        return claim("not measured", "", "run: landiff study quality")
    r, text = q.ratio, _quality_evidence(q)
    if not (math.isfinite(r.low95) and math.isfinite(r.high95)):
        return claim("inconclusive", "no interval: each family needs at least 2 seeds", text)
    small = (f"; a small difference: the whole 95% interval lies within ±{EQUIVALENCE:.0%}" if _equivalent(r) else "")
    if r.high95 < 1:
        firm = ("strong: the 99% interval also lies below 1" if r.high99 < 1 else
                "moderate: the 95% interval lies below 1, the 99% interval reaches 1")
        return claim("supported", firm + small, text)
    if r.low95 > 1:
        firm = ("strong: the 99% interval also lies above 1" if r.low99 > 1 else
                "moderate: the 95% interval lies above 1, the 99% interval reaches 1")
        return claim("not supported", f"{gan} was better ({firm})" + small, text)
    if _equivalent(r):
        return claim("not supported", f"equivalent within ±{EQUIVALENCE:.0%} at this budget: the whole 95% "
                     f"interval lies in [{1 - EQUIVALENCE:.2f}, {1 + EQUIVALENCE:.2f}]", text)
    return claim("inconclusive", f"the 95% interval contains 1 and reaches outside ±{EQUIVALENCE:.0%}: "
                 "neither a difference nor a tie at this budget", text)


COST_RULE = (f"supported when the 95% interval of the ratio lies at or above {FAR_MORE:g}x (strong when the 99% interval "
             f"does too), not supported when it lies below {FAR_MORE:g}x (diffusion cheaper when below 1x, equivalent "
             f"when within [{1 - EQUIVALENCE:.2f}, {1 + EQUIVALENCE:.2f}]), inconclusive otherwise, with fewer than 2 "
             "seeds per family that reached the target, or when an upper bound (a seed already below the target at its "
             "first curve point) blocks the conclusion")


def cost_outcome(r: RatioInterval, diffusion: FamilyCost, gan: FamilyCost) -> tuple[Verdict, str]:
    """Claim 2's rule (module docstring) on one ratio C = diffusion / GAN of compute to the target."""
    few = [f"{f.family} {f.reached}/{len(f.seeds)}" for f in (diffusion, gan) if f.reached < 2]
    if few:
        return "inconclusive", f"fewer than 2 seeds reached the target ({', '.join(few)}), so there is no interval"
    if r.low95 >= FAR_MORE:
        if diffusion.bounded:
            return "inconclusive", ("the 95% interval lies at or above 2x, but diffusion's compute is an upper bound (a seed "
                                    "was already below the target at its first curve point), so that lower bound does not hold")
        return "supported", ("strong: the 99% interval also lies at or above 2x" if r.low99 >= FAR_MORE else
                             f"moderate: the 95% interval lies at or above {FAR_MORE:g}x, the 99% interval reaches below")
    if r.high95 < FAR_MORE:
        if gan.bounded:
            return "inconclusive", (f"the 95% interval lies below 2x, but {gan.family}'s compute is an upper bound (a seed "
                                    "was already below the target at its first curve point), so that upper bound does not hold")
        return "not supported", _below_far_more(r) + ("; diffusion's values are upper bounds, so its true compute may be "
                                                      "lower still" if diffusion.bounded else "")
    return "inconclusive", f"the 95% interval contains {FAR_MORE:g}x"


def _below_far_more(r: RatioInterval) -> str:
    if r.high95 < 1:
        return "diffusion was cheaper: the whole 95% interval lies below 1x"
    if 1 - EQUIVALENCE <= r.low95 and r.high95 <= 1 + EQUIVALENCE:
        return (f"equivalent within ±{EQUIVALENCE:.0%}: the whole 95% interval lies in "
                f"[{1 - EQUIVALENCE:.2f}, {1 + EQUIVALENCE:.2f}]")
    if r.low95 > 1:
        return f"more expensive, but not far more: the whole 95% interval lies between 1x and {FAR_MORE:g}x"
    return f"less than {FAR_MORE:g}x, the direction unresolved: the 95% interval contains 1x"


def _per_seed(f: FamilyCost) -> str:
    def one(s: SeedCost) -> str:
        if not s.reached:
            return "never"
        return f"{'≤ ' if s.at_first_point else ''}{s.to_target_flops:.3g}"
    return ", ".join(one(s) for s in f.seeds)


def _cost_evidence(c: CostResult) -> str:
    d, g, r, t = c.diffusion, c.gan, c.flops, c.seconds
    gan = g.family
    return (f"target SWD {c.target_swd:.3g} (the highest final curve SWD over every seed run of diffusion and {gan}, "
            f"{d.seeds[0].curve[0].n} samples per point); training FLOPs to reach it per seed: diffusion {_per_seed(d)}, "
            f"{gan} {_per_seed(g)} (≤: already below the target at the first curve point, an upper bound); geometric "
            f"means {d.to_target_flops:.3g} ({d.reached}/{len(d.seeds)} seeds) vs {g.to_target_flops:.3g} "
            f"({g.reached}/{len(g.seeds)}): diffusion / {gan} {r.ratio:.3g}, 95% interval [{r.low95:.3g}, "
            f"{r.high95:.3g}], 99% [{r.low99:.3g}, {r.high99:.3g}] (Welch's t on log FLOPs, {r.df:.1f} df); in "
            f"training wall-clock {d.to_target_seconds / 60:.2f} vs {g.to_target_seconds / 60:.2f} min: {t.ratio:.3g}, "
            f"95% interval [{t.low95:.3g}, {t.high95:.3g}]; per training image diffusion costs "
            f"{c.ratio('flops_per_train_image'):.2g}x {gan}'s FLOPs, per generated image {c.ratio('flops_per_sample'):.3g}x "
            f"({d.nfe} network evaluations vs {g.nfe}); after {c.equal_seconds / 60:.2f} min of training each, mean SWD "
            f"diffusion {_at_equal_time(d)} vs {gan} {_at_equal_time(g)}; rule: {COST_RULE}")


def _at_equal_time(f: FamilyCost) -> str:
    """The family's mean curve at the common training time, or why it has none there (a mean curve whose
    first point comes later, e.g. runs slowed by a busy machine, is not extrapolated)."""
    if math.isfinite(f.swd_at_equal_time):
        return f"{f.swd_at_equal_time:.3g}"
    return "not measured (its mean curve starts later)"


def cost_claim(c: CostResult | None, gan: Family) -> Claim:
    """Claim 2 against ``gan`` (``c``: diffusion against it, None when not measured)."""
    if c is None:
        return Claim(2, CLAIMS[1], gan, "not measured", "", "run: landiff study cost")
    verdict, why = cost_outcome(c.flops, c.diffusion, c.gan)
    by_time, why_time = cost_outcome(c.seconds, c.diffusion, c.gan)
    text = _cost_evidence(c) + f"; by the same rule on wall-clock: {by_time} ({why_time})"
    return Claim(2, CLAIMS[1], gan, verdict, why, text)


def _data_text(s: SensitivityResult, d: FamilySensitivity, g: FamilySensitivity) -> str:
    pd, pg = d.variant("replace"), g.variant("replace")
    assert pd is not None and pg is not None
    return (f"with {s.n} shared latent inputs, 'the same picture' between the D-model and the D-replace model: "
            f"diffusion {pd.same.share:.0%} [{pd.same.low:.0%}, {pd.same.high:.0%}], {g.family} {pg.same.share:.0%} "
            f"[{pg.same.low:.0%}, {pg.same.high:.0%}] (Wilson 95%); D-vs-D′ distance relative to seed-vs-seed: "
            f"diffusion {d.relative('replace'):.2f}, {g.family} {g.relative('replace'):.2f}; one D′ training per family")


def data_claim(s: SensitivityResult | None, gan: Family) -> Claim:
    """Claim 3 against ``gan``, on the ``replace`` variant."""
    def claim(verdict: Verdict, strength: str, evidence: str) -> Claim:
        return Claim(3, CLAIMS[2], gan, verdict, strength, evidence)

    if s is None:
        return claim("not measured", "", "run: landiff study data-sensitivity")
    d, g = s.find("diffusion"), s.find(gan)
    if d is None or g is None or d.variant("replace") is None or g.variant("replace") is None:
        return claim("not measured", "", f"the replace variant of diffusion and {gan} is needed")
    collapsed = [f.family for f in (d, g) if f.collapsed]
    if collapsed:
        return claim("inconclusive", "", f"the D-model of {', '.join(collapsed)} collapsed (its samples are less than "
                     f"{COLLAPSE_RATIO:.0%} as diverse as the data), so 'the same picture' says nothing about it; "
                     "train longer (a larger --budget)")
    pd, pg = d.variant("replace"), g.variant("replace")
    assert pd is not None and pg is not None
    cmp, text = two_proportions(pd.same, pg.same), _data_text(s, d, g)
    rel_d, rel_g = d.relative("replace"), g.relative("replace")
    seed_note = ""
    if math.isfinite(rel_d) and math.isfinite(rel_g) and rel_g <= rel_d:
        seed_note = (f"; but relative to a new training seed {gan} changed no more than diffusion: its images depend "
                     "as much on its seed as on its data, so the sensitivity is not specific to data")
    if pg.same.high < MOSTLY and cmp.level != "none" and cmp.difference > 0:
        return claim("supported", _strength(cmp.level) + seed_note, text)
    if pg.same.low >= MOSTLY or pg.same.share >= pd.same.share:
        return claim("not supported", seed_note.lstrip("; "), text)
    return claim("inconclusive", "the shares do not separate beyond their uncertainty" + seed_note, text)


def stability_claim(grids: tuple[FamilyGrid, ...] | None, gan: Family) -> Claim:
    """Claim 4 against ``gan``: diffusion's unstable grid cells against ``gan``'s."""
    def claim(verdict: Verdict, strength: str, evidence: str) -> Claim:
        return Claim(4, CLAIMS[3], gan, verdict, strength, evidence)

    found = {g.family: g for g in grids or ()}
    if "diffusion" not in found or gan not in found:
        return claim("not measured", "", "run: landiff study hparam-stability")
    d, g = found["diffusion"], found[gan]
    nd, ng = len(d.cells), len(g.cells)
    p = fisher_greater(d.unstable, nd, g.unstable, ng)
    text = (f"unstable cells (diverged, collapsed or worse than the default by > 2 combined s.d.): diffusion "
            f"{d.unstable}/{nd}, {gan} {g.unstable}/{ng}; one-sided Fisher p = {p:.3f}")
    failed = [grid.family for grid in (d, g) if grid.default.collapsed]
    if failed:
        return claim("inconclusive", "", text + f"; the default config collapsed on a seed (samples < "
                     f"{COLLAPSE_RATIO:.0%} as diverse as the data) for: {', '.join(failed)}, so its grid has no "
                     "healthy reference")
    if d.unstable > g.unstable and p < 0.05:
        return claim("supported", "moderate: p < 0.05" if p >= 0.01 else "strong: p < 0.01", text)
    if d.unstable <= g.unstable:
        reverse = fisher_greater(g.unstable, ng, d.unstable, nd)
        strength = f"{gan} was the less stable, p = {reverse:.3f}" if g.unstable > d.unstable else ""
        return claim("not supported", strength, text)
    return claim("inconclusive", "the direction agrees but the counts are too small", text)


def observations(results: StudyResults) -> list[Claim]:
    """The four claims in order, each against every GAN of the study in turn (``--gans`` order): a flat list,
    claim 1 against each GAN, then claim 2 against each, and so on."""
    quality = {q.gan.family: q for q in results.quality or ()}
    cost = {c.gan.family: c for c in results.cost or ()}
    gans = results.options.gans
    return ([quality_claim(quality.get(g), g) for g in gans] + [cost_claim(cost.get(g), g) for g in gans]
            + [data_claim(results.sensitivity, g) for g in gans] + [stability_claim(results.hparam, g) for g in gans])
