"""Matplotlib (Agg) plots for the nightly report, returned as base64 PNG strings for ``<img src="data:...">``.

One figure object is reused for all runner trend plots (clearing it is much cheaper than creating one).
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
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


def _png(fig: plt.Figure, dpi: int = 96) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class RunnerTrendPlotter:
    """Per-runner 8-week trend: daily distance (spikes highlighted) over compensation score."""

    def __init__(self) -> None:
        self.fig, (self.ax_load, self.ax_comp) = plt.subplots(
            2, 1, figsize=(6.2, 2.9), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]}
        )

    def render(self, days: pd.DataFrame, start: dt.date, end: dt.date) -> str:
        """``days``: one runner's daily rows (``local_date``, ``distance_m``, ``spike_ratio``,
        ``compensation_score``, optional ``chronic_load``/``acute_load``)."""
        ax1, ax2 = self.ax_load, self.ax_comp
        ax1.clear()
        ax2.clear()
        d = days.sort_values("local_date")
        x = pd.to_datetime(d["local_date"])
        km = pd.to_numeric(d.get("distance_m"), errors="coerce").fillna(0).to_numpy() / 1000.0
        ratio = pd.to_numeric(d.get("spike_ratio"), errors="coerce").to_numpy()
        colours = np.where(np.nan_to_num(ratio) > 1.10, SPIKE, LOAD)
        ax1.bar(x, km, width=0.8, color=colours, linewidth=0)
        ax1.set_ylabel("km / day")
        ax1.set_title("Load (orange = run >10 % over previous 30-day longest)", loc="left")
        comp = pd.to_numeric(d.get("compensation_score"), errors="coerce")
        ax2.plot(x, comp, color=COMP, marker="o", markersize=2.5, linewidth=1.4)
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("comp. score")
        ax2.set_title("Compensation score (0-100)", loc="left")
        cutoff = pd.Timestamp(end - dt.timedelta(days=6))
        for ax in (ax1, ax2):
            ax.axvspan(cutoff, pd.Timestamp(end) + pd.Timedelta(hours=12), color="#fef3c7", alpha=0.6, lw=0)
            ax.set_xlim(
                pd.Timestamp(start) - pd.Timedelta(hours=12), pd.Timestamp(end) + pd.Timedelta(hours=12)
            )
        ax2.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO, interval=2))
        ax2.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
        self.fig.tight_layout(pad=0.4, h_pad=0.6)
        return _png(self.fig, dpi=88)

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
    out = _png(fig)
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
    out = _png(fig)
    plt.close(fig)
    return out
