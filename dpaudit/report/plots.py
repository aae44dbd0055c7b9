"""Matplotlib figures for the reports, returned as PNG data URIs so that the HTML stays one file.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no pyplot global
state, no display needed, safe in threads and CI. Each function returns ``None`` when there is
nothing to draw, and the template leaves that figure out.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

_DPI = 110
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
THEORY_COLOR = "#4c72b0"
EMPIRICAL_COLOR = "#dd8452"
ESTIMATE_COLOR = "#bbbbbb"
ADAPTER_COLOR = "#55a868"
BASE_COLOR = "#8c8c8c"


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins (constrained layout would double the rendering time)."""
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**margins)
    return fig


def to_data_uri(fig: Figure) -> str:
    """PNG bytes of ``fig`` as ``data:image/png;base64,...`` (no timestamp: same figure, same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _draw_roc(ax: Any, curves: Mapping[str, Mapping[str, Sequence[float]]], *, log: bool) -> None:
    smallest = 1.0
    for name, roc in curves.items():
        fpr, tpr = list(roc.get("fpr") or []), list(roc.get("tpr") or [])
        if log:
            kept = [(f, t) for f, t in zip(fpr, tpr) if f > 0 and t > 0]
            fpr, tpr = [f for f, _ in kept], [t for _, t in kept]
            smallest = min([smallest, *fpr])
        if fpr:
            ax.plot(fpr, tpr, drawstyle="steps-post" if log else "default", label=name, linewidth=1.4)
    if log:
        low = max(min(smallest, 1e-3) / 2, 1e-6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, 1)
        ax.set_ylim(low, 1.02)
        ax.plot([low, 1], [low, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
        ax.set_title("ROC, log-log (the low-FPR region)")
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
        ax.set_title("ROC, linear")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right")


@matplotlib.rc_context(_STYLE)
def roc_figure(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str | None:
    """ROC curves of every attack, linear (left) and log-log (right); ``curves``: name → {fpr, tpr}."""
    curves = {name: roc for name, roc in curves.items() if roc.get("fpr")}
    if not curves:
        return None
    fig = _figure(9.5, 4.0, left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.25)
    _draw_roc(fig.add_subplot(1, 2, 1), curves, log=False)
    _draw_roc(fig.add_subplot(1, 2, 2), curves, log=True)
    return to_data_uri(fig)


@matplotlib.rc_context(_STYLE)
def roc_loglog_figure(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str | None:
    """One log-log ROC panel with one curve per entry (compare: each report's worst-case attack)."""
    curves = {name: roc for name, roc in curves.items() if roc.get("fpr")}
    if not curves:
        return None
    fig = _figure(5.5, 4.2, left=0.13, right=0.97, bottom=0.12, top=0.92)
    _draw_roc(fig.add_subplot(1, 1, 1), curves, log=True)
    return to_data_uri(fig)


@matplotlib.rc_context(_STYLE)
def histogram_figure(histograms: Mapping[str, Mapping[str, Sequence[float]]]) -> str | None:
    """Member vs non-member score histograms, one small panel per attack (name → histogram)."""
    histograms = {name: h for name, h in histograms.items() if h and h.get("edges")}
    if not histograms:
        return None
    columns = min(3, len(histograms))
    rows = math.ceil(len(histograms) / columns)
    fig = _figure(3.3 * columns, 2.6 * rows, left=0.22 / columns, right=0.98, bottom=0.5 / (2.6 * rows), top=1 - 0.3 / (2.6 * rows), wspace=0.25, hspace=0.55)
    for i, (name, hist) in enumerate(histograms.items()):
        ax = fig.add_subplot(rows, columns, i + 1)
        edges = list(hist["edges"])
        for key, label, color in (("nonmember", "non-members", BASE_COLOR), ("member", "members", EMPIRICAL_COLOR)):
            ax.stairs(list(hist[key]), edges, fill=True, alpha=0.45, color=color, label=label)
        ax.set_title(name)
        ax.set_xlabel("score (higher = member)")
        if i % columns == 0:
            ax.set_ylabel("records")
        if i == 0:
            ax.legend(loc="upper left")
    return to_data_uri(fig)


@matplotlib.rc_context(_STYLE)
def epsilon_figure(epsilon: Mapping[str, Any] | None) -> str | None:
    """ε promised by each accountant beside each empirical lower bound (estimates in grey)."""
    if not epsilon:
        return None
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    for accountant, value in (epsilon.get("theory") or {}).items():
        if _finite(value):
            labels.append(f"theory\n{accountant}")
            values.append(float(value))
            colors.append(THEORY_COLOR)
    for entry in epsilon.get("empirical") or []:
        if _finite(entry.get("epsilon_lb")):
            labels.append(f"{entry['attack']}\n{entry['method']}")
            values.append(float(entry["epsilon_lb"]))
            colors.append(EMPIRICAL_COLOR if entry.get("is_bound", True) else ESTIMATE_COLOR)
    if not values:
        return None
    fig = _figure(max(4.0, 0.9 * len(values) + 1.5), 3.4, left=0.12, right=0.98, bottom=0.17, top=0.9)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("ε")
    legend = [Patch(color=THEORY_COLOR, label="accountant (promise)"),
              Patch(color=EMPIRICAL_COLOR, label="empirical lower bound"),
              Patch(color=ESTIMATE_COLOR, label="empirical estimate")]
    shown = [h for h in legend if h.get_facecolor() in {_rgba(c) for c in colors}]
    ax.legend(handles=shown, loc="upper center", ncols=len(shown), fontsize=7)
    ax.set_title("Theoretical vs empirical ε" if epsilon.get("theory") else "Empirical ε (no DP guarantee: theory ε = ∞)")
    ax.margins(y=0.35)
    return to_data_uri(fig)


@matplotlib.rc_context(_STYLE)
def adherence_figure(adherence: Mapping[str, Any] | None) -> str | None:
    """Per-instruction-type adherence of the adapter (and the base, when measured) as bars."""
    if not adherence:
        return None
    adapter_types = (adherence.get("adapter") or {}).get("per_type") or {}
    base_types = ((adherence.get("base") or {}).get("per_type")) or {}
    types = sorted(set(adapter_types) | set(base_types))
    if not types:
        return None
    fig = _figure(max(5.0, 0.38 * len(types) + 2), 4.0, left=0.12, right=0.98, bottom=0.35, top=0.92)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.4 if base_types else 0.7
    positions = range(len(types))
    ax.bar([p - (width / 2 if base_types else 0) for p in positions],
           [_or_nan(adapter_types.get(t)) for t in types], width, color=ADAPTER_COLOR, label="adapter")
    if base_types:
        ax.bar([p + width / 2 for p in positions], [_or_nan(base_types.get(t)) for t in types], width,
               color=BASE_COLOR, label="base")
    ax.set_xticks(list(positions), types, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("instructions followed")
    ax.set_title("Adherence per instruction type (strict)")
    ax.legend(loc="upper right")
    return to_data_uri(fig)


@dataclass(frozen=True)
class TradeoffPoint:
    """One adapter in the privacy-utility scatter."""

    label: str
    auc: float | None
    utility: float | None


def utility_limits(values: Sequence[float], *, rate: bool) -> tuple[float, float]:
    """The y-range of the privacy-utility scatter: from zero, so that a small difference looks small.

    A rate (adherence) spans [0, 1]; anything else (perplexity) [0, 1.15 × the largest value].
    Autoscaling instead stretched 12.50 vs 12.51 over the whole axis.
    """
    return (0.0, 1.05) if rate else (0.0, 1.15 * max(values))


@matplotlib.rc_context(_STYLE)
def privacy_utility_figure(points: Sequence[TradeoffPoint], *, utility_label: str, rate: bool = False) -> str | None:
    """Highest AUC (x: left is more private) against a utility number (y), one dot per adapter.

    Dots are named in a legend rather than by annotations, which overlapped when adapters were close.
    """
    points = [p for p in points if _finite(p.auc) and _finite(p.utility)]
    if not points:
        return None
    fig = _figure(5.5, 4.2, left=0.13, right=0.95, bottom=0.12, top=0.92)
    ax = fig.add_subplot(1, 1, 1)
    for point in points:
        ax.scatter([point.auc], [point.utility], s=40, zorder=3, label=point.label)
    ax.axvline(0.5, linestyle="--", color="grey", linewidth=0.8)
    low = min(0.45, min(p.auc for p in points) - 0.05)
    ax.set_xlim(low, max(1.0, max(p.auc for p in points) + 0.05))
    ax.set_ylim(*utility_limits([p.utility for p in points], rate=rate))
    ax.set_xlabel("highest MIA AUC, any attack (0.5 = no leakage)")
    ax.set_ylabel(utility_label)
    ax.set_title("Privacy vs utility")
    ax.legend(loc="lower left", fontsize=8)
    return to_data_uri(fig)


def _rgba(color: str) -> tuple[float, ...]:
    return tuple(to_rgba(color))


def _or_nan(value: Any) -> float:
    return float(value) if _finite(value) else math.nan
