"""Loss and accuracy curves, and first-layer weight grids, written as PNG files.

Host-side only: every array argument goes through :func:`xpmlp.backend.to_numpy`
first, so CuPy, PyTorch or array-api-strict arrays never reach matplotlib.
Figures are built with the object-oriented API (``Figure`` + ``FigureCanvasAgg``),
which needs no display and leaves pyplot's global state alone, and files are
written atomically (temporary file in the same folder, then ``os.replace``) so a
crash never leaves a half-written plot in place of a good one.

A *history* is what the trainer returns (or its JSON file): a mapping with
``"iteration_loss"`` (training loss per iteration) and ``"eval"`` (a list of dicts
with ``"iteration"``, ``"epoch"``, ``"train_acc"``, ``"val_acc"``, ``"val_loss"``,
``"lr"``, ``"time"``). The plotting functions take one history, a list of them, or a
dict ``label -> history``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .backend import to_numpy
from .errors import InputError
from .io import atomic_write_bytes

__all__ = [
    "plot_loss", "loss_figure", "plot_accuracy", "accuracy_figure",
    "weight_grid", "tile_weights", "moving_average",
]

PathLike = str | os.PathLike[str]

# Keys whose presence marks a mapping as one history rather than ``label -> history``.
_HISTORY_KEYS = ("iteration_loss", "eval")


# -- histories ----------------------------------------------------------------

def _load_history(h: Any, where: str) -> Mapping[str, Any]:
    """One history as a mapping: a dict, a JSON file, or a trainer object that can become one."""
    if isinstance(h, Mapping):
        return h
    if isinstance(h, (str, os.PathLike)):
        with open(h, encoding="utf-8") as f:
            return _load_history(json.load(f), f"{where} ({os.fspath(h)})")
    if callable(getattr(h, "to_dict", None)):
        return _load_history(h.to_dict(), where)
    if dataclasses.is_dataclass(h) and not isinstance(h, type):
        return dataclasses.asdict(h)
    raise InputError(
        f"{where} is a {type(h).__name__}, not a history; pass the trainer's History, its dict or its JSON file"
    )


def _runs(histories: Any, labels: Sequence[str] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """Normalise the accepted shapes of ``histories`` into ``[(label, history), ...]``."""
    if isinstance(histories, Mapping) and not any(k in histories for k in _HISTORY_KEYS):
        names, items = [str(k) for k in histories], list(histories.values())
    elif isinstance(histories, (Mapping, str, os.PathLike)) or not isinstance(histories, Sequence):
        names, items = ["run 1"], [histories]
    else:
        items = list(histories)
        names = [f"run {i + 1}" for i in range(len(items))]
    if not items:
        raise InputError("no histories given; pass one history, a list of them or a dict label -> history")
    if labels is not None:
        if isinstance(labels, str):
            labels = [labels]
        if len(labels) != len(items):
            raise InputError(f"{len(labels)} labels for {len(items)} histories; give one label per history")
        names = [str(x) for x in labels]
    return [(name, _load_history(h, f"history {name!r}")) for name, h in zip(names, items, strict=True)]


def _as_float(v: Any) -> float:
    """A scalar (Python, NumPy or device 0-d array) as a host float; None becomes NaN (a gap)."""
    return math.nan if v is None else float(np.asarray(to_numpy(v), dtype=np.float64).reshape(()))


def _as_vector(values: Any, what: str) -> np.ndarray:
    """A 1-D float64 host vector from a list of scalars or a (device) array; None is empty."""
    if values is None:
        return np.zeros(0)
    if isinstance(values, (list, tuple)):
        # Element-wise, because a logged list may hold device 0-d arrays.
        return np.array([_as_float(v) for v in values], dtype=np.float64)
    out = np.asarray(to_numpy(values), dtype=np.float64)
    if out.ndim > 1:
        raise InputError(f"{what} has shape {out.shape}; it must be a 1-D sequence of numbers")
    return out.reshape(-1)


def _eval_column(evals: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """One field of the evaluation records; a missing or None value is NaN."""
    return np.array([_as_float(e.get(key)) for e in evals], dtype=np.float64)


# -- smoothing ----------------------------------------------------------------

def moving_average(values: Any, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points; NaN/inf values are skipped, not spread.

    The first points average over what exists so far, so the curve starts at the data.

    Parameters
    ----------
    values : array_like
        The series.
    window : int
        Points per average (>= 1).

    Returns
    -------
    numpy.ndarray
        float64, the same length as ``values``.

    Examples
    --------
    >>> from xpmlp.plots import moving_average
    >>> moving_average([1.0, 3.0, float("nan"), 5.0], 2).tolist()
    [1.0, 2.0, 3.0, 5.0]
    """
    x = _as_vector(values, "values")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InputError(f"window must be an integer >= 1, got {window!r}")
    finite = np.isfinite(x)
    # Cumulative sums with a leading zero give every window's sum in one subtraction.
    s = np.concatenate(([0.0], np.cumsum(np.where(finite, x, 0.0))))
    c = np.concatenate(([0], np.cumsum(finite)))
    hi = np.arange(1, x.size + 1)
    lo = np.maximum(hi - window, 0)
    total, count = s[hi] - s[lo], c[hi] - c[lo]
    return np.divide(total, count, out=np.full(x.size, np.nan), where=count > 0)


def _smoothing_window(smooth: int | str | None, n: int) -> int:
    """The window for ``smooth``: ``"auto"`` grows with the run length (about 5%, at most 500)."""
    if smooth is None:
        return 1
    if smooth == "auto":
        return max(1, min(n // 20, 500))
    if isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or smooth < 1:
        raise InputError(f"smooth must be 'auto', None or an integer window >= 1, got {smooth!r}")
    return int(smooth)


# -- figures and files --------------------------------------------------------

def _new_figure(figsize: tuple[float, float], dpi: float) -> Figure:
    """A figure attached to an Agg canvas: renders without a display or pyplot."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    """Write ``fig`` atomically; the format follows the suffix (PNG when there is none)."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    buf = io.BytesIO()
    # No bbox_inches="tight": the pixel size must stay figsize * dpi.
    fig.savefig(buf, format=fmt, dpi=fig.dpi)
    return atomic_write_bytes(path, buf.getvalue())


# -- loss ---------------------------------------------------------------------

def loss_figure(
    histories: Any,
    labels: Sequence[str] | None = None,
    smooth: int | str | None = "auto",
    title: str | None = "Training loss",
    figsize: tuple[float, float] = (8.0, 5.0),
    dpi: float = 100,
    logy: bool = False,
) -> Figure:
    """The training-loss figure: raw loss per iteration (faint) and its moving average, one colour per run.

    Parameters
    ----------
    histories : history, list of histories, or dict
        One run's history (a :class:`~xpmlp.train.History`, its dict, or a ``history.json`` path),
        a list of them, or ``{label: history}``.
    labels : list of str, optional
        One label per run (default: the dict's keys, or run numbers).
    smooth : int, "auto" or None, default "auto"
        The moving average's window: ``"auto"`` chooses one from the run length; None draws the
        raw loss only.
    title : str or None, default "Training loss"
        The axes' title.
    figsize : (float, float), default (8.0, 5.0)
        Size in inches.
    dpi : float, default 100
        Resolution.
    logy : bool, default False
        A logarithmic loss axis.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (built without pyplot: no display needed, pyplot's state untouched).

    Raises
    ------
    InputError
        A history without losses, or labels that do not match the runs.
    """
    runs = _runs(histories, labels)
    losses = [_as_vector(h.get("iteration_loss", []), f"history {name!r} iteration_loss") for name, h in runs]
    for (name, _), loss in zip(runs, losses, strict=True):
        if loss.size == 0:
            raise InputError(f"history {name!r} has no 'iteration_loss' values; train at least one iteration")
    # One window for every run, so the overlaid curves are smoothed alike.
    window = _smoothing_window(smooth, max(loss.size for loss in losses))
    fig = _new_figure(figsize, dpi)
    ax = fig.add_subplot()
    for i, ((name, _), loss) in enumerate(zip(runs, losses, strict=True)):
        it = np.arange(1, loss.size + 1)
        if window > 1:
            ax.plot(it, loss, color=f"C{i}", alpha=0.25, linewidth=0.8, label="_nolegend_")
            ax.plot(it, moving_average(loss, window), color=f"C{i}", linewidth=1.6, label=name)
        else:
            ax.plot(it, loss, color=f"C{i}", linewidth=1.0, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title=f"moving average over {window} iterations" if window > 1 else None)
    fig.tight_layout()
    return fig


def plot_loss(histories: Any, path: PathLike, **options: Any) -> Path:
    """Plot the training loss per iteration of one or several runs and write it to ``path``.

    Parameters
    ----------
    histories : history, list of histories, or dict
        One run's history (a :class:`~xpmlp.train.History`, its dict, or a ``history.json`` path),
        a list of them, or ``{label: history}``.
    path : str or path
        The PNG file to write (atomically).
    **options
        :func:`loss_figure`'s: ``labels``, ``smooth``, ``title``, ``figsize``, ``dpi``, ``logy``.

    Returns
    -------
    Path
        The path written.
    """
    return _save(loss_figure(histories, **options), path)


# -- accuracy -----------------------------------------------------------------

def _is_epoch_based(evals: Sequence[Mapping[str, Any]]) -> bool:
    """Whether evaluations fall once per whole epoch: every epoch set, whole and strictly increasing."""
    epochs = _eval_column(evals, "epoch")
    return bool(
        epochs.size
        and np.all(np.isfinite(epochs))
        and np.all(epochs == np.round(epochs))
        and np.all(np.diff(epochs) > 0)
    )


def _choose_x(runs: list[tuple[str, list[Mapping[str, Any]]]], x: str) -> str:
    """Resolve ``x="auto"`` to ``"epoch"`` when every run is epoch-based, else ``"iteration"``."""
    if x not in ("auto", "iteration", "epoch"):
        raise InputError(f"x must be 'auto', 'iteration' or 'epoch', got {x!r}")
    if x == "auto":
        return "epoch" if all(_is_epoch_based(evals) for _, evals in runs) else "iteration"
    for name, evals in runs:
        if not np.all(np.isfinite(_eval_column(evals, x))):
            raise InputError(f"history {name!r} has evaluations without {x!r}; use x='auto' or the other axis")
    return x


def accuracy_figure(
    histories: Any,
    labels: Sequence[str] | None = None,
    x: str = "auto",
    title: str | None = "Accuracy",
    figsize: tuple[float, float] = (8.0, 5.0),
    dpi: float = 100,
) -> Figure:
    """The accuracy figure: train (dashed) and validation (solid) per evaluation, one colour per run.

    Parameters
    ----------
    histories : history, list of histories, or dict
        One run's history (a :class:`~xpmlp.train.History`, its dict, or a ``history.json`` path),
        a list of them, or ``{label: history}``.
    labels : list of str, optional
        One label per run.
    x : {"auto", "iteration", "epoch"}, default "auto"
        The x axis; ``"auto"`` is the epoch when every run evaluated once per epoch.
    title : str or None, default "Accuracy"
        The axes' title.
    figsize : (float, float), default (8.0, 5.0)
        Size in inches.
    dpi : float, default 100
        Resolution.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    runs = []
    for name, h in _runs(histories, labels):
        evals = list(h.get("eval") or [])
        if not evals:
            raise InputError(f"history {name!r} has no 'eval' records; evaluate at least once during training")
        runs.append((name, evals))
    axis = _choose_x(runs, x)
    fig = _new_figure(figsize, dpi)
    ax = fig.add_subplot()
    marker = "o" if max(len(evals) for _, evals in runs) <= 30 else None
    handles, kinds = [], set()
    for i, (name, evals) in enumerate(runs):
        xs = _eval_column(evals, axis)
        for key, style in (("train_acc", "--"), ("val_acc", "-")):
            ys = _eval_column(evals, key)
            if np.any(np.isfinite(ys)):
                ax.plot(xs, ys, color=f"C{i}", linestyle=style, marker=marker, markersize=3, label="_nolegend_")
                kinds.add(key)
        handles.append(Line2D([], [], color=f"C{i}", linewidth=2, label=name))
    # Colour tells the run and line style tells the split: runs + 2 keys, not 2 entries per run.
    for key, style, text in (("train_acc", "--", "train"), ("val_acc", "-", "validation")):
        if key in kinds:
            handles.append(Line2D([], [], color="0.3", linestyle=style, label=text))
    ax.set_xlabel(axis)
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles)
    fig.tight_layout()
    return fig


def plot_accuracy(histories: Any, path: PathLike, **options: Any) -> Path:
    """Plot train and validation accuracy per evaluation of one or several runs to ``path``.

    Parameters
    ----------
    histories : history, list of histories, or dict
        One run's history (a :class:`~xpmlp.train.History`, its dict, or a ``history.json`` path),
        a list of them, or ``{label: history}``.
    path : str or path
        The PNG file to write (atomically).
    **options
        :func:`accuracy_figure`'s: ``labels``, ``x``, ``title``, ``figsize``, ``dpi``.

    Returns
    -------
    Path
        The path written.
    """
    return _save(accuracy_figure(histories, **options), path)


# -- weight grid --------------------------------------------------------------

def _image_shape(image_shape: Sequence[int], channels_last: bool) -> tuple[int, int, int]:
    """``(H, W)`` or ``(H, W, C)`` (``(C, H, W)`` when not channels_last) as ``(H, W, C)``, C in {1, 3}."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"image_shape must be (H, W) or (H, W, C) with positive sizes, got {tuple(image_shape)}")
    h, w, c = shape if channels_last else (shape[1], shape[2], shape[0])
    if c not in (1, 3):
        raise InputError(f"image_shape has {c} channels; use 1 (grey) or 3 (colour), or check channels_last")
    return h, w, c


def _scale_tiles(tiles: np.ndarray) -> np.ndarray:
    """Scale each tile (first axis) to [0, 1] on its own; a constant tile becomes flat 0.5, not NaN."""
    flat = tiles.reshape(tiles.shape[0], -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = hi - lo
    # Divide only where the span is nonzero: no 0/0, hence no NaN and no RuntimeWarning.
    out = np.divide(flat - lo, span, out=np.full_like(flat, 0.5), where=span > 0)
    return out.reshape(tiles.shape)


def tile_weights(
    W: Any,
    image_shape: Sequence[int],
    max_tiles: int = 100,
    units_axis: int = 1,
    pad: int = 1,
    pad_value: float = 0.0,
    channels_last: bool = True,
) -> np.ndarray:
    """Compose first-layer weights into one image grid, each unit's tile scaled to [0, 1].

    The first ``max_tiles`` units are laid out row by row in a near-square grid.

    Parameters
    ----------
    W : array
        ``(D, H)`` (``units_axis=1``) or ``(H, D)`` (``units_axis=0``) with
        ``D == prod(image_shape)``; any backend's array.
    image_shape : sequence of int
        ``(height, width)`` or ``(height, width, channels)`` of one input image.
    max_tiles : int, default 100
        How many units to draw.
    units_axis : {1, 0}, default 1
        The axis of ``W`` that runs over the units.
    pad : int, default 1
        Pixels between tiles.
    pad_value : float, default 0.0
        Their value.
    channels_last : bool, default True
        Whether ``image_shape`` (and each unit's D weights) is (H, W, C) rather than (C, H, W).

    Returns
    -------
    numpy.ndarray
        float64 ``(rows, cols)`` for grey images or ``(rows, cols, 3)`` for colour.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp.plots import tile_weights
    >>> tile_weights(np.ones((784, 4)), (28, 28)).shape
    (57, 57)
    """
    w = np.asarray(to_numpy(W), dtype=np.float64)
    if w.ndim != 2:
        raise InputError(f"W has shape {w.shape}; pass the first layer's 2-D weight matrix (D, H)")
    if units_axis not in (0, 1):
        raise InputError(f"units_axis must be 1 for W of shape (D, H) or 0 for (H, D), got {units_axis!r}")
    if isinstance(max_tiles, bool) or not isinstance(max_tiles, (int, np.integer)) or max_tiles < 1:
        raise InputError(f"max_tiles must be an integer >= 1, got {max_tiles!r}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise InputError(f"pad must be an integer >= 0, got {pad!r}")
    h, w_img, c = _image_shape(image_shape, channels_last)
    units = w if units_axis == 0 else w.T  # (H, D): one row per hidden unit
    d = h * w_img * c
    if units.shape[1] != d:
        raise InputError(
            f"W has {units.shape[1]} inputs per unit but image_shape {tuple(image_shape)} has {d}; "
            f"pass the image shape the data was flattened from (or units_axis=0 if W is (H, D))"
        )
    if not np.all(np.isfinite(units)):
        raise InputError("W contains NaN or inf; the training diverged, plot weights from an earlier checkpoint")
    n = min(units.shape[0], int(max_tiles))
    if channels_last:
        tiles = units[:n].reshape(n, h, w_img, c)
    else:
        tiles = units[:n].reshape(n, c, h, w_img).transpose(0, 2, 3, 1)
    return _layout(_scale_tiles(tiles), int(pad), float(pad_value))


def _layout(tiles: np.ndarray, pad: int, pad_value: float) -> np.ndarray:
    """Place ``(n, h, w, c)`` tiles row by row in a near-square grid separated by ``pad`` pixels."""
    n, h, w, c = tiles.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), pad_value, dtype=np.float64)
    for k in range(n):
        r, q = divmod(k, cols)
        y, x = r * (h + pad), q * (w + pad)
        grid[y:y + h, x:x + w] = tiles[k]
    return grid[:, :, 0] if c == 1 else grid


def weight_grid(
    W: Any,
    image_shape: Sequence[int],
    path: PathLike,
    max_tiles: int = 100,
    units_axis: int = 1,
    pad: int = 1,
    pad_value: float = 0.0,
    channels_last: bool = True,
    title: str | None = "First-layer weights",
    figsize: tuple[float, float] = (6.0, 6.0),
    dpi: float = 100,
) -> tuple[Path, np.ndarray]:
    """Draw the first layer's weights as a grid of image tiles to ``path``.

    Parameters
    ----------
    W, image_shape, max_tiles, units_axis, pad, pad_value, channels_last
        As :func:`tile_weights`.
    path : str or path
        The PNG file to write (atomically).
    title : str or None, default "First-layer weights"
        The figure's title.
    figsize : (float, float), default (6.0, 6.0)
        Size in inches.
    dpi : float, default 100
        Resolution.

    Returns
    -------
    path : Path
        The path written.
    grid : numpy.ndarray
        The composed float grid.
    """
    grid = tile_weights(W, image_shape, max_tiles, units_axis, pad, pad_value, channels_last)
    fig = _new_figure(figsize, dpi)
    ax = fig.add_subplot()
    # nearest: each weight stays one crisp block instead of being blurred into its neighbours.
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save(fig, path), grid
