"""sweep.html: the summary table and the plots a study needs, drawn from the tidy table.

A grid asks for plots with ``[[plot]]`` entries:

- ``kind = "line"``, ``x = AXIS``, ``metrics = [...]`` (optional ``log_x``): each metric against
  the axis, one series per value of the other axes, error bars = std over seeds; an x value of
  ``inf`` (ε = ∞, no DP) is drawn as a dashed horizontal line, the non-DP level;
- ``kind = "heatmap"``, ``x = AXIS``, ``y = AXIS``, ``metric = M``: a two-axis study;

and every sweep gets the privacy-utility frontier: worst-case AUC against adherence (or held-out
perplexity when adherence was not measured), one point per cell, the Pareto front drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dpaudit.report.plots import to_data_uri
from dpaudit.sweep.grid import Grid

TEMPLATES = Path(__file__).with_name("templates")
METRIC_LABELS = {
    "ppl_heldout": "perplexity, held-out (lower is better)",
    "ppl_members": "perplexity, members",
    "worst_auc": "MIA AUC of the worst case, by TPR at 1% FPR (0.5 = no leakage)",
    "tpr_at_0.1%": "TPR at 0.1% FPR",
    "tpr_at_1%": "TPR at 1% FPR",
    "tpr_at_10%": "TPR at 10% FPR",
    "adherence_strict": "adherence, strict (higher is better)",
    "adherence_loose": "adherence, loose",
    "epsilon": "ε (accountant)",
    "epsilon_lb": "empirical ε lower bound",
    "exposure_bits": "canary exposure (bits)",
    "wall_time_s": "wall time (s)",
}
_STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
          "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False, "legend.fontsize": 8}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _number(label: str) -> float | None:
    try:
        return float(label)
    except ValueError:
        return None


def _finite(stat: Any) -> bool:
    return stat is not None and math.isfinite(stat[0])


@matplotlib.rc_context(_STYLE)
def line_figure(summary: Sequence[Mapping[str, Any]], *, x: str, metrics: Sequence[str], log_x: bool = False) -> str | None:
    """One panel per metric: metric vs axis ``x``, a series per combination of the other axes."""
    metrics = [m for m in metrics if any(_finite(s["metrics"].get(m)) for s in summary)]
    if not metrics:
        return None
    labels = list(dict.fromkeys(s["labels"][x] for s in summary))
    numeric = all(_number(label) is not None for label in labels)
    positions = {label: (_number(label) if numeric else float(i)) for i, label in enumerate(labels)}
    fig = _figure(4.2 * len(metrics), 3.6)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.88, wspace=0.3)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        series: dict[str, list[tuple[float, float, float]]] = {}
        for entry in summary:
            stat = entry["metrics"].get(metric)
            if not _finite(stat):
                continue
            name = ", ".join(f"{k}={v}" for k, v in entry["labels"].items() if k != x) or metric
            series.setdefault(name, []).append((positions[entry["labels"][x]], stat[0], 0.0 if math.isnan(stat[1]) else stat[1]))
        for name, points in series.items():
            finite = sorted(p for p in points if math.isfinite(p[0]))
            if finite:
                line = ax.errorbar([p[0] for p in finite], [p[1] for p in finite], yerr=[p[2] for p in finite],
                                   marker="o", capsize=3, linestyle="-" if numeric else "none", label=name)
                color = line[0].get_color()
            else:
                color = None
            for p in points:
                if not math.isfinite(p[0]):  # x = ∞: the non-DP level
                    ax.axhline(p[1], linestyle="--", linewidth=1, color=color, label=f"{name}: {x} = ∞ (no DP)")
        if log_x and numeric:
            ax.set_xscale("log")
            ax.minorticks_off()
        shown = [(v, label) for label, v in positions.items() if math.isfinite(v)]
        ax.set_xticks([v for v, _ in shown], [label for _, label in shown], rotation=0 if numeric else 30,
                      ha="center" if numeric else "right")
        ax.set_xlabel(x)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        if i == 0 and len(series) + any(not math.isfinite(v) for v in positions.values()) > 1:
            ax.legend(loc="best")
    return to_data_uri(fig)


@matplotlib.rc_context(_STYLE)
def heatmap_figure(summary: Sequence[Mapping[str, Any]], *, x: str, y: str, metric: str) -> str | None:
    """Mean of ``metric`` over the (x, y) grid, each square annotated."""
    xs = list(dict.fromkeys(s["labels"][x] for s in summary))
    ys = list(dict.fromkeys(s["labels"][y] for s in summary))
    grid = [[math.nan] * len(xs) for _ in ys]
    for entry in summary:
        stat = entry["metrics"].get(metric)
        if _finite(stat):
            grid[ys.index(entry["labels"][y])][xs.index(entry["labels"][x])] = stat[0]
    if all(math.isnan(v) for row in grid for v in row):
        return None
    fig = _figure(1.1 * len(xs) + 2.5, 0.7 * len(ys) + 1.8)
    fig.subplots_adjust(left=0.18, right=0.95, bottom=0.2, top=0.85)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax)
    for row, values in enumerate(grid):
        for col, value in enumerate(values):
            if math.isfinite(value):
                ax.text(col, row, f"{value:.3g}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(False)
    ax.set_title(METRIC_LABELS.get(metric, metric))
    return to_data_uri(fig)


def pareto_front(points: Sequence[tuple[float, float]], *, higher_is_better: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (x: AUC, lower is better), sorted by x.

    >>> pareto_front([(0.5, 0.2), (0.6, 0.5), (0.7, 0.4), (0.9, 0.9)], higher_is_better=True)
    [(0.5, 0.2), (0.6, 0.5), (0.9, 0.9)]
    """
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if higher_is_better else p[1])):
        value = y if higher_is_better else -y
        if value > best:
            front.append((x, y))
            best = value
    return front


@matplotlib.rc_context(_STYLE)
def frontier_figure(summary: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """Worst-case AUC vs utility, one labelled point per cell, the Pareto front as a line."""
    use_adherence = any(_finite(s["metrics"].get("adherence_strict")) for s in summary)
    metric = "adherence_strict" if use_adherence else "ppl_heldout"
    points = [(s, s["metrics"]["worst_auc"], s["metrics"][metric]) for s in summary
              if _finite(s["metrics"].get("worst_auc")) and _finite(s["metrics"].get(metric))]
    if not points:
        return None, METRIC_LABELS[metric]
    fig = _figure(6.0, 4.4)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    ax = fig.add_subplot(1, 1, 1)
    for entry, auc, utility in points:
        ax.errorbar([auc[0]], [utility[0]], xerr=[_std(auc)], yerr=[_std(utility)], marker="o", capsize=2, color="#4c72b0")
        ax.annotate(", ".join(entry["labels"].values()), (auc[0], utility[0]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    front = pareto_front([(a[0], u[0]) for _, a, u in points], higher_is_better=use_adherence)
    ax.plot([p[0] for p in front], [p[1] for p in front], color="#dd8452", linewidth=1.5, label="Pareto front")
    ax.axvline(0.5, linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel(METRIC_LABELS["worst_auc"])
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_title("Privacy-utility frontier")
    ax.legend(loc="best")
    return to_data_uri(fig), METRIC_LABELS[metric]


def _std(stat: tuple[float, float]) -> float:
    return 0.0 if math.isnan(stat[1]) else stat[1]


def figures(summary: Sequence[Mapping[str, Any]], *, grid: Grid) -> list[dict[str, str]]:
    """Every figure the grid asks for, then the frontier: ``[{"title", "uri"}]`` (empty plots left out)."""
    out = []
    for spec in grid.plots:
        if spec.get("kind") == "heatmap":
            uri = heatmap_figure(summary, x=spec["x"], y=spec["y"], metric=spec["metric"])
            title = f"{METRIC_LABELS.get(spec['metric'], spec['metric'])} over {spec['x']} × {spec['y']}"
        else:
            metrics = list(spec.get("metrics") or ["worst_auc"])
            uri = line_figure(summary, x=spec["x"], metrics=metrics, log_x=bool(spec.get("log_x")))
            title = f"{', '.join(METRIC_LABELS.get(m, m) for m in metrics)} vs {spec['x']}"
        if uri:
            out.append({"title": spec.get("title") or title, "uri": uri})
    uri, axis = frontier_figure(summary)
    if uri:
        out.append({"title": f"Privacy-utility frontier: worst-case AUC vs {axis}", "uri": uri})
    return out


def render_html(summary: Sequence[Mapping[str, Any]], *, rows: Sequence[Mapping[str, Any]], grid: Grid) -> str:
    """sweep.html: self-contained (CSS inline, figures as data URIs), every text autoescaped."""
    import jinja2

    from dpaudit.report.html import TEMPLATES as REPORT_TEMPLATES
    from dpaudit.report.html import environment
    from dpaudit.sweep.table import summary_table

    env = environment().overlay(loader=jinja2.FileSystemLoader([TEMPLATES, REPORT_TEMPLATES]))
    header, body = summary_table(summary, grid=grid)
    from dpaudit.sweep.budget import budget_section

    budget = budget_section(summary, budget=grid.budget) if grid.budget else None
    return env.get_template("sweep.html").render(
        grid=grid, header=header, body=body, n_axes=len(grid.axes), figures=figures(summary, grid=grid),
        n_rows=len(rows), failed=[(s["labels"], e) for s in summary for e in s["errors"]], budget=budget,
    )
