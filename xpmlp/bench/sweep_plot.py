"""The sweep's one PNG: samples/s against width per batch size, and xpmlp's ratios to PyTorch and GEMM-only.

Top row, one panel per batch size: the median samples/s of every contender against the hidden
width (log-log), the min-max band shaded. Bottom row: xpmlp / PyTorch and xpmlp / GEMM-only
against the width, one colour per batch size, one line style per xpmlp backend. Where the
ratio to GEMM-only is low, the time outside the matrix products (Python, elementwise passes,
the optimizer update) matters; where it nears 1, it has vanished.

Built with matplotlib's object-oriented API on an Agg canvas (no display, no pyplot state) and
written atomically through :func:`xpmlp.io.atomic_write_bytes`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from ..io import atomic_write_bytes

STYLES = ("-", "--", ":", "-.")


def _labels(result: dict[str, Any]) -> dict[str, str]:
    """Each contender key of the cells -> a legend label (``xpmlp (torch)``, ``PyTorch``, ...)."""
    labels: dict[str, str] = {}
    for cell in result["cells"]:
        for key, res in cell["contenders"].items():
            labels.setdefault(key, res["label"] if key == res["kind"] else f"{res['label']} ({key.split(':', 1)[1]})")
    return labels


def _series(result: dict[str, Any], batch: int, pick: Any) -> tuple[list[int], list[float]]:
    """(widths, values) of one batch size, where ``pick(cell)`` gives a number (None: left out)."""
    points = [(cell["width"], pick(cell)) for cell in result["cells"] if cell["batch_size"] == batch]
    kept = [(width, value) for width, value in points if value is not None]
    return [width for width, _ in kept], [value for _, value in kept]


def _speed(key: str, field: str) -> Any:
    def pick(cell: dict[str, Any]) -> float | None:
        res = cell["contenders"].get(key)
        return res["samples_per_second"][field] if res and res["status"] == "ok" else None
    return pick


def _width_axis(ax: Axes, result: dict[str, Any]) -> None:
    """A log2 x axis ticked at the sweep's widths, written as plain numbers."""
    widths = sorted({cell["width"] for cell in result["cells"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(width) for width in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("hidden width W")
    ax.grid(True, which="both", alpha=0.3)


def _speed_panel(ax: Axes, result: dict[str, Any], batch: int, labels: dict[str, str]) -> None:
    for index, (key, label) in enumerate(labels.items()):
        widths, medians = _series(result, batch, _speed(key, "median"))
        if not widths:
            continue
        gemm = key == "gemm" or key.startswith("gemm:")  # the ceilings: dashed, NumPy's (or --device's) black
        line = ax.plot(widths, medians, marker="o", ms=3, ls="--" if gemm else "-", label=label,
                       color="black" if key == "gemm" else f"C{index}")[0]
        _, lows = _series(result, batch, _speed(key, "min"))
        _, highs = _series(result, batch, _speed(key, "max"))
        ax.fill_between(widths, lows, highs, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.set_title(f"batch {batch}")
    _width_axis(ax, result)


def _ratio_panel(ax: Axes, result: dict[str, Any], ratio: str, title: str, labels: dict[str, str]) -> None:
    batches = sorted({cell["batch_size"] for cell in result["cells"]})
    xpmlp = [key for key in labels if key == "xpmlp" or key.startswith("xpmlp:")]
    for color, batch in enumerate(batches):
        for style, key in zip(STYLES * len(xpmlp), xpmlp):
            widths, values = _series(result, batch, lambda cell, key=key: cell[ratio].get(key))
            if widths:
                ax.plot(widths, values, marker="o", ms=3, ls=style, color=f"C{color}",
                        label=f"batch {batch}, {labels[key]}")
    ax.axhline(1.0, color="gray", lw=1)
    ax.set_title(title)
    _width_axis(ax, result)
    if ax.lines[1:]:
        ax.legend(fontsize="x-small", ncol=2)


def sweep_figure(result: dict[str, Any]) -> Figure:
    """The figure of a sweep result (see the module docstring)."""
    batches = sorted({cell["batch_size"] for cell in result["cells"]})
    labels = _labels(result)
    columns = max(2, len(batches))
    fig = Figure(figsize=(4.2 * columns, 8.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2 * columns)
    for index, batch in enumerate(batches):
        ax = fig.add_subplot(grid[0, 2 * index:2 * index + 2])
        _speed_panel(ax, result, batch, labels)
        if index == 0:
            ax.set_ylabel("samples/s (median; band: min-max)")
            ax.legend(fontsize="small")
    _ratio_panel(fig.add_subplot(grid[1, :columns]), result, "ratio_to_torch", "xpmlp / PyTorch", labels)
    fig.axes[-1].set_yscale("log")
    for axis in (fig.axes[-1].yaxis.set_major_formatter, fig.axes[-1].yaxis.set_minor_formatter):
        axis(FuncFormatter(lambda value, _: f"{value:.2g}"))
    fig.axes[-1].set_ylabel("samples/s ratio (> 1: xpmlp faster)")
    _ratio_panel(fig.add_subplot(grid[1, columns:]), result, "ratio_to_gemm", "xpmlp / GEMM-only", labels)
    fig.axes[-1].set_ylabel("share of the matrix products' rate")
    machine, cfg = result["machine"], result["config"]
    fig.suptitle(f"{result['network']}, {cfg['dtype']}, {machine['threads']} threads, {machine['cpu_model']}; "
                 f"data: {'generated' if result['data']['generated'] else 'Fashion-MNIST'}"
                 + ("\nWARNING: the machine was busy (see the JSON's notes)"
                    if any("load average" in note for note in result["notes"]) else ""), fontsize="medium")
    return fig


def write_png(path: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Draw the sweep and write it as a PNG, atomically."""
    buffer = io.BytesIO()
    sweep_figure(result).savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
