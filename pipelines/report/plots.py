"""Matplotlib (Agg) plots for the nightly report, returned as base64 PNG strings for ``<img src="data:...">``.

One figure object is reused for all runner trend plots (clearing it is much cheaper than creating one).
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["RunnerTrendPlotter", "driver_prevalence_png", "score_histogram_png"]

INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
LOAD = "#3b82f6"
SPIKE = "#f97316"
COMP = "#7c3aed"
LEVEL_COLOURS = {"low": "#10b981", "elevated": "#f59e0b", "high": "#ef4444"}

plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 8.5,
        "axes.edgecolor": GRID,
        "axes.labelcolor": MUTED,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": GRID,
        "grid.linewidth": 0.6,
        "axes.titlesize": 9,
        "axes.titleweight": "bold",
        "axes.titlecolor": INK,
    }
)


def _png(fig: plt.Figure, dpi: int = 96, tight: bool = True) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class RunnerTrendPlotter:
    """Per-runner 8-week trend: daily distance (spikes highlighted) over compensation score.

    The figure, bars, line and ticks are created once per report date; each runner only updates bar
    heights/colours and the line's data before one ``savefig`` (~20x faster than drawing anew).
    """

    def __init__(self, n_days: int = 56) -> None:
        self.n_days = n_days
        self.fig, (self.ax_load, self.ax_comp) = plt.subplots(
            2, 1, figsize=(6.2, 2.9), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]}
        )
        self.fig.subplots_adjust(left=0.09, right=0.985, top=0.92, bottom=0.1, hspace=0.42)
        x = np.arange(n_days)
        # one LineCollection for all day bars (much cheaper to draw than 56 Rectangle patches)
        self.bars = self.ax_load.vlines(x, 0, np.zeros(n_days), colors=LOAD, linewidth=5.5)
        self.x = x
        (self.line,) = self.ax_comp.plot(
            x, np.full(n_days, np.nan), color=COMP, marker="o", markersize=2.5, lw=1.4
        )
        self.ax_load.set_ylabel("km / day")
        self.ax_load.set_title("Load (orange = run >10 % over previous 30-day longest)", loc="left")
        self.ax_comp.set_ylim(0, 100)
        self.ax_comp.set_ylabel("comp. score")
        self.ax_comp.set_title("Compensation score (0-100; shaded = last 7 days)", loc="left")
        for ax in (self.ax_load, self.ax_comp):
            ax.axvspan(n_days - 7 - 0.5, n_days - 0.5, color="#fef3c7", lw=0, zorder=0)
            ax.set_xlim(-0.5, n_days - 0.5)
        self._end: dt.date | None = None

    def _set_dates(self, end: dt.date) -> None:
        if self._end == end:
            return
        first = end - dt.timedelta(days=self.n_days - 1)
        ticks = [i for i in range(self.n_days) if (first + dt.timedelta(days=i)).weekday() == 0][::2]
        self.ax_comp.set_xticks(ticks, [(first + dt.timedelta(days=i)).strftime("%d %b") for i in ticks])
        self._end = end

    def render(self, days: pd.DataFrame, start: dt.date, end: dt.date) -> str:
        """``days``: one runner's daily rows (``local_date``, ``distance_m``, ``spike_ratio``,
        ``compensation_score``); ``start``/``end`` frame the plotted window."""
        self._set_dates(end)
        first = end - dt.timedelta(days=self.n_days - 1)
        idx = np.array([(d - first).days for d in days["local_date"]], dtype=int)
        ok = (idx >= 0) & (idx < self.n_days)
        idx = idx[ok]
        km = np.zeros(self.n_days)
        ratio = np.full(self.n_days, np.nan)
        comp = np.full(self.n_days, np.nan)
        km[idx] = pd.to_numeric(days["distance_m"], errors="coerce").fillna(0).to_numpy()[ok] / 1000.0
        if "spike_ratio" in days.columns:
            ratio[idx] = pd.to_numeric(days["spike_ratio"], errors="coerce").to_numpy()[ok]
        if "compensation_score" in days.columns:
            comp[idx] = pd.to_numeric(days["compensation_score"], errors="coerce").to_numpy()[ok]
        spike = np.nan_to_num(ratio) > 1.10
        self.bars.set_segments([[(xi, 0.0), (xi, h)] for xi, h in zip(self.x, km, strict=True)])
        self.bars.set_color([SPIKE if s else LOAD for s in spike])
        self.ax_load.set_ylim(0, max(1.0, float(km.max()) * 1.12))
        self.line.set_ydata(comp)
        return _png(self.fig, dpi=88, tight=False)

    def close(self) -> None:
        plt.close(self.fig)


def score_histogram_png(scores: np.ndarray, elevated_at: float, high_at: float) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 2.4))
    bins = np.arange(0, 105, 5)
    counts, edges = np.histogram(np.clip(scores, 0, 100), bins=bins)
    colours = [
        LEVEL_COLOURS["high"]
        if lo >= high_at
        else LEVEL_COLOURS["elevated"]
        if lo >= elevated_at
        else LEVEL_COLOURS["low"]
        for lo in edges[:-1]
    ]
    ax.bar(edges[:-1], counts, width=4.6, align="edge", color=colours, linewidth=0)
    ax.set_xlabel("risk score")
    ax.set_ylabel("runners")
    ax.set_title("Risk score distribution", loc="left")
    ax.set_xlim(0, 100)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.88, bottom=0.2)
    out = _png(fig, tight=False)
    plt.close(fig)
    return out


def driver_prevalence_png(counts: dict[str, int], total: int) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 2.4))
    items = sorted(((k, v) for k, v in counts.items() if v > 0), key=lambda kv: kv[1])[-8:]
    if not items:
        items = [("none", 0)]
    labels = [k for k, _ in items]
    vals = np.array([v for _, v in items], dtype=float)
    pct = 100.0 * vals / max(total, 1)
    ax.barh(labels, pct, color=LOAD, height=0.6)
    for y, (p, v) in enumerate(zip(pct, vals, strict=True)):
        ax.text(p + 0.5, y, f"{int(v)}", va="center", fontsize=7.5, color=MUTED)
    ax.set_xlabel("% of runners with this driver")
    ax.set_title("Active risk drivers in the cohort", loc="left")
    fig.subplots_adjust(left=0.36, right=0.97, top=0.88, bottom=0.2)
    out = _png(fig, tight=False)
    plt.close(fig)
    return out
