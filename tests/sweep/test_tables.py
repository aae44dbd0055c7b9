"""The tidy table and everything drawn from it: csv, parquet, sweep.md (with the paper's columns), sweep.html."""

from __future__ import annotations

import csv
import io
import math

import pyarrow as pa
import pytest
import pyarrow.parquet as pq

from dpaudit.errors import InputError
from dpaudit.sweep.grid import parse_grid
from dpaudit.sweep.plots import figures, heatmap_figure, line_figure, pareto_front
from dpaudit.sweep.table import render_markdown, shown, summarise, to_csv, to_parquet, write_tables

GRID = """
name = "eps"
description = "A <b>study</b>"
[[axis]]
name = "target_epsilon"
values = [1.0, 8.0, inf]
[[axis]]
name = "rank"
values = [4, 8]
[[plot]]
kind = "line"
x = "target_epsilon"
metrics = ["worst_auc", "ppl_heldout"]
log_x = true
[[plot]]
kind = "heatmap"
x = "target_epsilon"
y = "rank"
metric = "worst_auc"
[paper]
axis = "target_epsilon"
columns = ["AUC"]
note = "theirs, on a bigger model"
[paper.rows]
"8" = ["0.65"]
"""


def _rows(seeds=(0, 1)):
    rows = []
    for eps in (1.0, 8.0, math.inf):
        for rank in (4, 8):
            for seed in seeds:
                auc = 0.5 + (0.3 if math.isinf(eps) else 0.02 * eps) + 0.01 * seed
                rows.append({
                    "cell": f"c{eps}{rank}{seed}", "seed": seed, "axis:target_epsilon": "inf" if math.isinf(eps) else f"{eps:g}",
                    "axis:rank": str(rank), "rank": rank, "dp": not math.isinf(eps), "dp_target_epsilon": None if math.isinf(eps) else eps,
                    "ppl_heldout": 20.0 - eps if math.isfinite(eps) else 10.0, "worst_auc": auc, "worst_attack": "ref",
                    "tpr_at_1%": 0.05, "adherence_strict": None, "epsilon": eps, "epsilon_lb": 0.1,
                    "verdict": "consistent", "exposure_bits": None, "wall_time_s": 1.5, "status": "done", "error": None,
                })
    rows[-1].update(status="failed", error="ConfigError: boom", worst_auc=None)
    return rows


def test_csv_and_parquet_hold_every_row_with_typed_columns():
    rows = _rows()
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 12 and parsed[0]["axis:target_epsilon"] == "1" and parsed[-1]["status"] == "failed"
    table = pq.read_table(pa.BufferReader(to_parquet(rows)))
    assert table.num_rows == 12
    assert table.schema.field("rank").type == pa.int64()
    assert table.schema.field("dp").type == pa.bool_()
    assert table.schema.field("worst_auc").type == pa.float64()
    assert table.schema.field("adherence_strict").type == pa.string()  # never measured: all null
    assert table.column("epsilon").to_pylist()[-1] == math.inf
    assert table.column("worst_auc").to_pylist()[-1] is None


def test_summary_pools_seeds_as_mean_and_std():
    summary = summarise(_rows(), axes=["target_epsilon", "rank"])
    first = summary[0]
    assert first["labels"] == {"target_epsilon": "1", "rank": "4"} and first["n"] == 2 and first["done"] == 2
    mean, std = first["metrics"]["worst_auc"]
    assert math.isclose(mean, 0.525) and math.isclose(std, math.sqrt(0.00005))
    assert shown("worst_auc", first["metrics"]["worst_auc"]) == "0.525 ± 0.007"
    assert shown("epsilon", summary[-1]["metrics"]["epsilon"]) == "∞"
    assert summary[-1]["done"] == 1 and summary[-1]["errors"] == ["ConfigError: boom"]
    assert shown("adherence_strict", first["metrics"]["adherence_strict"]) == "—"


def test_markdown_puts_the_papers_numbers_beside_ours_labelled_as_theirs():
    grid = parse_grid(GRID, source="g.toml")
    md = render_markdown(summarise(_rows(), axes=["target_epsilon", "rank"]), grid=grid, n_rows=12)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| target_epsilon"))
    assert "AUC of the worst case (highest TPR at 1% FPR) ↓" in header and "paper (theirs): AUC" in header
    eight = next(line for line in lines if line.startswith("| 8 | 4 |"))
    assert eight.rstrip().endswith("| 0.65 |")
    assert "theirs, on a bigger model" in md and "1 failed cell(s)" in md


def test_plots_draw_the_non_dp_level_heatmaps_and_the_frontier():
    summary = summarise(_rows(), axes=["target_epsilon", "rank"])
    assert line_figure(summary, x="target_epsilon", metrics=["worst_auc"], log_x=True).startswith("data:image/png;base64,")
    assert heatmap_figure(summary, x="target_epsilon", y="rank", metric="ppl_heldout").startswith("data:image/png")
    assert line_figure(summary, x="rank", metrics=["adherence_strict"]) is None  # nothing measured
    titles = [f["title"] for f in figures(summary, grid=parse_grid(GRID, source="g.toml"))]
    assert len(titles) == 3 and titles[-1].startswith("Privacy-utility frontier: worst-case AUC vs perplexity")


def test_pareto_front_keeps_only_undominated_points():
    points = [(0.5, 30.0), (0.6, 20.0), (0.7, 25.0), (0.8, 10.0)]
    assert pareto_front(points, higher_is_better=False) == [(0.5, 30.0), (0.6, 20.0), (0.8, 10.0)]
    assert pareto_front(points, higher_is_better=True) == [(0.5, 30.0)]


def test_html_is_self_contained_and_escapes_text(tmp_path):
    grid = parse_grid(GRID.replace('name = "eps"', 'name = "<script>alert(1)</script>"'), source="g.toml")
    write_tables(_rows(), grid=grid, out=tmp_path)
    html = (tmp_path / "sweep.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "A &lt;b&gt;study&lt;/b&gt;" in html
    assert html.count("data:image/png;base64,") == 3
    assert "http://" not in html and "https://" not in html
    assert "paper (theirs): AUC" in html
    assert {p.name for p in tmp_path.iterdir()} == {"sweep.csv", "sweep.parquet", "sweep.md", "sweep.html"}


def test_budget_reads_the_smallest_epsilon_that_meets_the_utility_target():
    from dpaudit.sweep.budget import budget_table, epsilon_needed

    summary = summarise(_rows(), axes=["target_epsilon", "rank"])  # perplexity 19 at ε 1, 12 at ε 8, 10 without DP
    loose = epsilon_needed(summary, budget={"axis": "target_epsilon", "metric": "ppl_heldout", "within": 0.25})
    assert [(r["labels"], r["reference"], r["target"], r["epsilon"]) for r in loose] == [
        ({"rank": "4"}, 10.0, 12.5, 8.0), ({"rank": "8"}, 10.0, 12.5, 8.0)]
    assert math.isclose(loose[0]["worst_auc"], 0.665)  # the AUC at the ε needed
    strict = {"axis": "target_epsilon", "metric": "ppl_heldout", "within": 0.05}
    tight = epsilon_needed(summary, budget=strict)
    assert [r["epsilon"] for r in tight] == [None, None]
    header, body = budget_table(tight, budget=strict)
    assert header[-2:] == ["ε needed", "worst-case AUC at that ε"] and body[0][:4] == ["4", "10.00", "10.50", "> 8"]


def test_a_grid_with_a_budget_shows_the_epsilon_needed_table():
    text = GRID.replace("[paper]", '[budget]\naxis = "target_epsilon"\nmetric = "ppl_heldout"\nwithin = 0.25\n[paper]')
    grid = parse_grid(text, source="eps.toml")
    markdown = render_markdown(summarise(_rows(), axes=["target_epsilon", "rank"]), grid=grid, n_rows=12)
    assert "### ε needed for a fixed utility" in markdown and "| 4 | 10.00 | 12.50 | 8 |" in markdown
    bad = text.replace('axis = "target_epsilon"\nmetric', 'axis = "rank"\nmetric')
    with pytest.raises(InputError, match="target_epsilon axis whose values include inf") as caught:
        parse_grid(bad, source="eps.toml")
    assert caught.value.field == "budget.axis"
