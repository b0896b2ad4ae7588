"""``landiff study``'s claim 2 ("training diffusion is far more expensive") on constructed per-seed curves: the
target, each seed's compute to it, the ratio of geometric means with its interval (by hand and against scipy),
the curve's mean ± s.d. over seeds, and every branch of the verdict rule."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from landiff.workflows.study.evaluation import CurvePoint, RunEval
from landiff.workflows.study.experiments import CostResult, cost, cost_of
from landiff.workflows.study.options import FAMILIES
from landiff.workflows.study.verdict import cost_claim

T = 100.0  # the target SWD of the branch tests: every seed's final point


def _family(name: str) -> str:
    return next(f for f in FAMILIES if name.startswith(f"{f}-D-"))


def _run_eval(name: str) -> RunEval:
    return RunEval(name, _family(name), "finished", 4, 32, 1.0, 1e6, 1e6, 1, 0.01, 100.0, 1.0, 50.0, 1.0, 0.8, False, 16, "")


def _point(stage: int, flops: float, swd: float, seconds_per_flop: float) -> CurvePoint:
    return CurvePoint(stage, 10 * stage, int(flops / 1e6), flops * seconds_per_flop, flops, swd, 1.0, 8, f"sha{stage}")


def _cost(curves: dict[str, list[tuple[float, float]]], target: float | None = None,
          seconds_per_flop: dict[str, float] | None = None, gan: str = "dcgan") -> CostResult:
    """cost_of, diffusion against ``gan``, on curves given as (training FLOPs, SWD) per stage, by run name;
    training seconds ∝ FLOPs."""
    points = _points(curves, seconds_per_flop)
    result = cost_of({name: _run_eval(name) for name in curves}, points, target, gan=gan)
    assert result is not None
    return result


def _points(curves: dict[str, list[tuple[float, float]]],
            seconds_per_flop: dict[str, float] | None = None) -> dict[str, list[CurvePoint]]:
    scale = seconds_per_flop or {}
    return {name: [_point(k + 1, f, swd, scale.get(_family(name), 1e-9)) for k, (f, swd) in enumerate(curve)]
            for name, curve in curves.items()}


def test_compute_to_the_target_and_its_ratio_by_hand_and_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    curves = {  # (FLOPs, SWD) per stage; every stage is ×4 in FLOPs
        "diffusion-D-seed0": [(1e12, 200.0), (4e12, 100.0)],  # 150 halfway in SWD: w = ½, 1e12·4^½ = 2e12
        "diffusion-D-seed1": [(1e12, 300.0), (4e12, 100.0)],  # w = ¾: 1e12·4^¾ = 2^1.5·1e12
        "diffusion-D-seed2": [(2e12, 180.0), (8e12, 120.0)],  # w = ½: 4e12
        "dcgan-D-seed0": [(1e10, 300.0), (4e10, 100.0)],  # w = ¾: 2^1.5·1e10
        "dcgan-D-seed1": [(1e10, 250.0), (4e10, 50.0)],  # w = ½: 2e10
        "dcgan-D-seed2": [(1e10, 350.0), (4e10, 150.0)],  # the highest final SWD: the target, reached at its last point
    }
    c = _cost(curves, seconds_per_flop={"diffusion": 1e-9, "dcgan": 1e-8})
    assert c.target_swd == 150.0
    d_flops, g_flops = [2e12, 2**1.5 * 1e12, 4e12], [2**1.5 * 1e10, 2e10, 4e10]
    assert [s.to_target_flops for s in c.diffusion.seeds] == pytest.approx(d_flops, rel=1e-12)
    assert [s.to_target_flops for s in c.gan.seeds] == pytest.approx(g_flops, rel=1e-12)
    # seconds are linear in w between the points: 1000 + ½·3000, 1000 + ¾·3000, 2000 + ½·6000; GAN 100 + ¾·300, …
    d_seconds, g_seconds = [2500.0, 3250.0, 5000.0], [325.0, 250.0, 400.0]
    assert [s.to_target_seconds for s in c.diffusion.seeds] == pytest.approx(d_seconds, rel=1e-12)
    assert [s.to_target_seconds for s in c.gan.seeds] == pytest.approx(g_seconds, rel=1e-12)
    assert not c.diffusion.bounded and not c.gan.bounded and (c.diffusion.reached, c.gan.reached) == (3, 3)
    # logs ln 2e12 + ln 2·(0, ½, 1) and ln 1e10 + ln 2·(1.5, 1, 2): geometric means 2^1.5·1e12 and 2^1.5·1e10, C = 100;
    # log s.d. ½ ln 2 in each, se = ½ ln 2·√(2/3) = 0.28297, df = 4: 95 % 100·e^(∓2.776·se) = [45.59, 219.4]
    r = c.flops
    assert (c.diffusion.to_target_flops, c.gan.to_target_flops) == pytest.approx((2**1.5 * 1e12, 2**1.5 * 1e10), rel=1e-12)
    assert r.ratio == pytest.approx(100.0, rel=1e-12) and r.df == pytest.approx(4.0, rel=1e-9)
    assert r.log_se == pytest.approx(0.5 * math.log(2) * math.sqrt(2 / 3), rel=1e-12)
    assert (r.low95, r.high95) == pytest.approx((45.59, 219.4), rel=1e-3)
    for values, interval in (((d_flops, g_flops), c.flops), ((d_seconds, g_seconds), c.seconds)):
        a, b = np.log(values[0]), np.log(values[1])
        res = stats.ttest_ind(a, b, equal_var=False)
        assert interval.ratio == pytest.approx(stats.gmean(values[0]) / stats.gmean(values[1]), rel=1e-12)
        assert math.log(interval.ratio) / interval.log_se == pytest.approx(res.statistic, rel=1e-9)
        assert interval.df == pytest.approx(res.df, rel=1e-9)
        half = stats.t.ppf(0.975, res.df) * interval.log_se  # t_critical is exact at integer df, ≤ 5 % wider above df 2
        assert half * (1 - 1e-3) <= math.log(interval.high95 / interval.ratio) <= half * 1.05
    claim = cost_claim(c, "dcgan")
    assert claim.verdict == "supported" and claim.strength.startswith("strong") and claim.against == "dcgan"
    for text in ("target SWD 150", "diffusion / dcgan 100,", "95% interval [45.6, 219]", "4.0 df", "3/3 seeds",
                 "by the same rule on wall-clock: supported"):
        assert text in claim.evidence, text


def test_the_curve_is_mean_and_sd_over_the_seeds_at_each_stage():
    curves = {"diffusion-D-seed0": [(1e9, 300.0), (2e9, 200.0), (4e9, 150.0)],
              "diffusion-D-seed1": [(1.2e9, 260.0), (2.2e9, 180.0)],  # its last stage made no progress: no point
              "dcgan-D-seed0": [(1e8, 400.0), (2e8, 250.0)], "dcgan-D-seed1": [(1e8, 420.0), (2e8, 230.0)]}
    c = _cost(curves)
    d = c.diffusion.curve
    assert [(s.stage, s.seeds) for s in d] == [(1, 2), (2, 2), (3, 1)]
    assert (d[0].swd, d[0].swd_sd, d[0].train_flops) == pytest.approx((280.0, math.sqrt(800.0), 1.1e9))
    assert d[2].swd == 150.0 and math.isnan(d[2].swd_sd)
    assert c.target_swd == 250.0  # the GAN's seed 0 ends highest
    # the equal-time SWD is read on the mean curves, at the shorter family's last mean time (the GAN's 0.2 s)
    assert c.equal_seconds == pytest.approx(0.2) and c.gan.swd_at_equal_time == pytest.approx(240.0)



def test_a_mean_curve_that_starts_after_the_common_time_is_not_extrapolated():
    """Diffusion's first point comes after the GAN's last (seconds per FLOP 10x a GAN's): no value, said in words."""
    curves = {"diffusion-D-seed0": [(1e9, 300.0), (2e9, 200.0)], "diffusion-D-seed1": [(1e9, 310.0), (2e9, 210.0)],
              "dcgan-D-seed0": [(1e8, 400.0), (2e8, 250.0)], "dcgan-D-seed1": [(1e8, 420.0), (2e8, 230.0)]}
    c = _cost(curves, seconds_per_flop={"diffusion": 1e-8, "dcgan": 1e-9})
    assert math.isnan(c.diffusion.swd_at_equal_time) and math.isfinite(c.gan.swd_at_equal_time)
    evidence = cost_claim(c, "dcgan").evidence
    assert "mean SWD diffusion not measured (its mean curve starts later) vs dcgan 240" in evidence
    assert "nan" not in evidence

def _around(centre: float, spread: float) -> list[float]:
    """Three values whose logs are ln(centre) + (−spread, 0, spread): geometric mean ``centre``, log s.d. ``spread``."""
    return [centre * math.exp(k * spread) for k in (-1, 0, 1)]


def _claim(d_flops: list[float], g_flops: list[float], d_first: int | None = None, g_first: int | None = None,
           seconds_per_flop: dict[str, float] | None = None):
    """Claim 2 from seeds that reach the target T at their second point with exactly these FLOPs; seed ``d_first``
    of diffusion (``g_first`` of the GAN) is already below T at its first point instead (an upper bound)."""
    def curve(flops: float, first: bool) -> list[tuple[float, float]]:
        return [(flops, 0.5 * T), (2 * flops, 0.4 * T)] if first else [(flops / 2, 2 * T), (flops, T)]
    curves = {f"diffusion-D-seed{k}": curve(v, k == d_first) for k, v in enumerate(d_flops)}
    curves |= {f"dcgan-D-seed{k}": curve(v, k == g_first) for k, v in enumerate(g_flops)}
    return cost_claim(_cost(curves, seconds_per_flop=seconds_per_flop), "dcgan")


def test_each_branch_of_the_claim_2_rule():
    # Three seeds per family with log spread s: se = s·√(2/3), df = 4, t_0.975 = 2.776, t_0.995 = 4.604.
    # s = 0.1: half-widths 0.2267 (95 %) and 0.3759 (99 %). C = 10: 95 % [7.97, 12.5], 99 % from 6.87: strong
    claim = _claim(_around(1e10, 0.1), _around(1e9, 0.1))
    assert claim.verdict == "supported" and claim.strength.startswith("strong")
    assert "95% interval [7.97, 12.5]" in claim.evidence
    # ln C = 1: 95 % from e^0.7733 = 2.17 ≥ 2, 99 % from e^0.6241 = 1.87 < 2: moderately
    claim = _claim(_around(math.e * 1e9, 0.1), _around(1e9, 0.1))
    assert claim.verdict == "supported" and claim.strength.startswith("moderate")
    # C = 2: [1.59, 2.51] contains 2x
    claim = _claim(_around(2e9, 0.1), _around(1e9, 0.1))
    assert claim.verdict == "inconclusive" and "contains 2x" in claim.strength
    # C = 10, but a diffusion seed was already below the target at its first point: its compute is an upper bound,
    # so the lower bound of C does not hold
    claim = _claim(_around(1e10, 0.1), _around(1e9, 0.1), d_first=0)
    assert claim.verdict == "inconclusive" and "diffusion's compute is an upper bound" in claim.strength
    assert "≤ " in claim.evidence
    # the GAN's upper bound does not block "supported": the true ratio is then larger still
    assert _claim(_around(1e10, 0.1), _around(1e9, 0.1), g_first=1).verdict == "supported"
    # C = 0.5: [0.399, 0.627] below 1: diffusion was cheaper
    claim = _claim(_around(5e8, 0.1), _around(1e9, 0.1))
    assert claim.verdict == "not supported" and claim.strength.startswith("diffusion was cheaper")
    # s = 0.02, ln C = 0.03: [0.985, 1.08] within ±15 %: equivalent
    claim = _claim(_around(math.exp(0.03) * 1e9, 0.02), _around(1e9, 0.02))
    assert claim.verdict == "not supported" and claim.strength.startswith("equivalent within ±15%")
    # s = 0.05 (half-width 0.1133), C = 1.5: [1.34, 1.68]: more expensive, but not far more
    claim = _claim(_around(1.5e9, 0.05), _around(1e9, 0.05))
    assert claim.verdict == "not supported" and claim.strength.startswith("more expensive, but not far more")
    # C = 1, s = 0.1: [0.797, 1.25] lies below 2x but contains 1 and leaves the band
    claim = _claim(_around(1e9, 0.1), _around(1e9, 0.1))
    assert claim.verdict == "not supported" and "direction unresolved" in claim.strength
    # below 2x, but the GAN's values are upper bounds: its true compute may be lower, so C may be larger
    claim = _claim(_around(5e8, 0.1), _around(1e9, 0.1), g_first=2)
    assert claim.verdict == "inconclusive" and "dcgan's compute is an upper bound" in claim.strength
    # diffusion's upper bounds do not block "not supported" (its true compute is lower still), and it is said
    claim = _claim(_around(5e8, 0.1), _around(1e9, 0.1), d_first=0)
    assert claim.verdict == "not supported" and "upper bounds" in claim.strength


def test_claim_2_needs_two_seeds_per_family_that_reached_the_target():
    assert (cost_claim(None, "gan-strong").verdict, cost_claim(None, "gan-strong").against) == ("not measured", "gan-strong")
    claim = _claim([1e10], _around(1e9, 0.1))  # one diffusion seed: a ratio, no interval
    assert claim.verdict == "inconclusive" and "fewer than 2 seeds reached the target (diffusion 1/1)" in claim.strength
    # a target below what two diffusion seeds reached: they never reach it (NaN), so only one is left
    curves = {"diffusion-D-seed0": [(1e10, 200.0), (2e10, 40.0)], "diffusion-D-seed1": [(1e10, 200.0), (2e10, 90.0)],
              "diffusion-D-seed2": [(1e10, 200.0), (2e10, 80.0)],
              "dcgan-D-seed0": [(1e9, 200.0), (2e9, 30.0)], "dcgan-D-seed1": [(1e9, 200.0), (2e9, 20.0)]}
    c = _cost(curves, target=50.0)
    assert [s.reached for s in c.diffusion.seeds] == [True, False, False] and c.gan.reached == 2
    assert math.isnan(c.diffusion.seeds[1].to_target_flops) and math.isnan(c.flops.low95)
    claim = cost_claim(c, "dcgan")
    assert claim.verdict == "inconclusive" and "diffusion 1/3" in claim.strength and "never" in claim.evidence


def test_wall_clock_is_judged_by_the_same_rule_beside_the_flops_verdict():
    # C = 10 in FLOPs, but a diffusion FLOP takes a tenth of a GAN FLOP's time: C = 1 in wall-clock
    claim = _claim(_around(1e10, 0.1), _around(1e9, 0.1), seconds_per_flop={"diffusion": 1e-10, "dcgan": 1e-9})
    assert claim.verdict == "supported"  # the verdict follows FLOPs
    assert "by the same rule on wall-clock: not supported (less than 2x, the direction unresolved" in claim.evidence


def test_each_gan_is_its_own_pair_with_its_own_target(tmp_path):
    """With two GANs, claim 2 compares diffusion with each alone: a pair's target is the highest final SWD over
    diffusion's and that GAN's seeds, whatever the other GAN reached, and both pairs come out of cost()."""
    curves = {"diffusion-D-seed0": [(1e12, 200.0), (4e12, 100.0)], "diffusion-D-seed1": [(1e12, 300.0), (4e12, 100.0)],
              "dcgan-D-seed0": [(1e10, 300.0), (4e10, 150.0)], "dcgan-D-seed1": [(1e10, 250.0), (4e10, 50.0)],
              "gan-strong-D-seed0": [(1e10, 300.0), (4e10, 80.0)], "gan-strong-D-seed1": [(1e10, 250.0), (4e10, 90.0)]}
    dcgan, strong = _cost(curves, gan="dcgan"), _cost(curves, gan="gan-strong")
    assert (dcgan.target_swd, strong.target_swd) == (150.0, 100.0)  # gan-strong's own pair: diffusion's 100 is highest
    assert [f.family for f in dcgan.families] == ["diffusion", "dcgan"] and strong.gan.family == "gan-strong"
    alone = {k: v for k, v in curves.items() if not k.startswith("gan-strong")}
    alone_pair = _cost(alone, gan="dcgan")  # the other GAN changes nothing in this pair
    assert (alone_pair.target_swd, alone_pair.flops.ratio, alone_pair.flops.low95) == (
        dcgan.target_swd, dcgan.flops.ratio, dcgan.flops.low95)
    evaluations = {name: _run_eval(name) for name in curves}
    folder = tmp_path / "results" / "curves"
    folder.mkdir(parents=True)
    for name, points in _points(curves).items():
        (folder / f"{name}.json").write_text(json.dumps([dataclasses.asdict(p) for p in points]))
    both = cost(evaluations, tmp_path)
    assert both is not None and [c.gan.family for c in both] == ["dcgan", "gan-strong"]
    assert [c.target_swd for c in both] == [150.0, 100.0]
    claims = [cost_claim(c, c.gan.family) for c in both]
    assert [c.against for c in claims] == ["dcgan", "gan-strong"]
    assert "diffusion / gan-strong" in claims[1].evidence and "dcgan" not in claims[1].evidence
