"""The report's first screen: pictures, one summary table, a one-sentence verdict that declares no winner
among runs that have not learned the data yet, and one line per reason a metric is unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from landiff.report.build import Assets, samples_section, title_section
from landiff.report.collect import load_runs
from landiff.report.render import FigureRow, Heading, Paragraph, Table, render_markdown
from landiff.report.verdict import FALLBACK_RATIO, NOT_LEARNED, NOT_LEARNED_POSITION, standings, summary_section, verdict
from test_report import FID_UNAVAILABLE, observation, observations_md, write_run

FLOOR, CEILING = 9.2, 300.0  # the real-vs-real and the uniform-noise SWD write_run records
LINE = FLOOR * (CEILING / FLOOR) ** NOT_LEARNED_POSITION  # 125.6: 13.6× the floor


def runs(tmp_path: Path, *swds: tuple[str, str, float, float]) -> list:
    return load_runs([write_run(tmp_path / name, family, swd, std) for name, family, swd, std in swds])


def test_runs_far_from_the_data_get_no_winner(tmp_path):
    far = runs(tmp_path, ("diffusion", "diffusion", 200.0, 0.8), ("gan", "gan", 300.0, 0.8))
    assert [s.learned for s in standings(far)] == [False, False]
    sentence = verdict(far)
    assert sentence.startswith("No run has learned the data yet") and "no winner is declared" in sentence
    assert '"diffusion" 21.7×' in sentence and '"gan" 32.6×' in sentence  # 200 / 9.2, 300 / 9.2
    md = observations_md(*(run.path for run in far)).replace("\\", "")
    assert "neither has learned the data yet, so neither wins" in md
    line = observation(md, "SWD:")
    assert "does not rank them" in line and "is better" not in line, line
    table = render_markdown(summary_section(far)).replace("\\", "")
    assert table.count(NOT_LEARNED) == 2 + 1  # both rows, and the legend under the table


def test_the_line_is_three_quarters_of_the_way_from_floor_to_noise(tmp_path):
    mixed = runs(tmp_path, ("a", "diffusion", LINE * 0.99, 0.8), ("b", "gan", LINE * 1.001, 0.8))
    assert [s.learned for s in standings(mixed)] == [True, False]
    assert standings(mixed)[1].position == pytest.approx(NOT_LEARNED_POSITION, abs=1e-3)
    sentence = verdict(mixed)
    assert sentence.startswith('"a" is the only run that has learned the data') and '"b" has not learned' in sentence
    assert "(≥ 13.6× the floor)" in sentence


def test_without_a_recorded_ceiling_the_line_is_ten_times_the_floor(tmp_path):
    (run,) = runs(tmp_path, ("old", "diffusion", FLOOR * 11, 0.8))
    (standing,) = standings([run])
    old = type(standing)(standing.run, standing.swd, standing.floor, None)  # a summary from before the ceiling
    assert standing.learned is True and old.learned is False and old.threshold == pytest.approx(FALLBACK_RATIO * FLOOR)


def test_a_winner_only_beyond_the_noise(tmp_path):
    clear = runs(tmp_path / "clear", ("diffusion", "diffusion", 31.2, 0.8), ("gan", "gan", 50.4, 0.8))
    assert verdict(clear).startswith('"diffusion" gives the images closest to the data, ahead of "gan" beyond the noise')
    assert "3.39× vs 5.48×" in verdict(clear)
    close = runs(tmp_path / "close", ("diffusion", "diffusion", 31.2, 2.0), ("gan", "gan", 31.9, 2.0))
    assert verdict(close).startswith('"diffusion" and "gan" are within noise of each other')


def test_one_line_per_unavailable_reason(tmp_path):
    pair = runs(tmp_path, ("diffusion", "diffusion", 31.2, 0.8), ("gan", "gan", 50.4, 0.8))
    md = render_markdown(summary_section(pair)).replace("\\", "")
    lines = [line for line in md.splitlines() if "not computed" in line]
    assert lines == [f"- FID, KID not computed for every run: {FID_UNAVAILABLE.removeprefix('unavailable: ')}"]


def test_the_first_screen_is_pictures_table_and_verdict(tmp_path):
    pair = runs(tmp_path, ("diffusion", "diffusion", 31.2, 0.8), ("gan", "gan", 50.4, 0.8))
    blocks = title_section(pair) + samples_section(pair, Assets()) + summary_section(pair)
    kinds = [type(block) for block in blocks]
    assert kinds[:3] == [Heading, Paragraph, FigureRow] and Table in kinds
    assert not any(isinstance(b, Heading) and b.level == 2 for b in blocks)  # no section heading before the table
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert [row[0] for row in table.rows] == ["diffusion", "gan", "real vs real (the floor)"]
    assert table.rows[0][2:5] == ("31.2 ± 0.8", "3.39×", "learned enough to rank")


@pytest.mark.parametrize("ratio", [0.5, 9.9, 13.5, 13.8, 40.0])
def test_state_follows_the_position(tmp_path, ratio):
    (run,) = runs(tmp_path, ("r", "diffusion", FLOOR * ratio, 0.8))
    (standing,) = standings([run])
    assert standing.ratio == pytest.approx(ratio) and standing.learned is (FLOOR * ratio < LINE)
