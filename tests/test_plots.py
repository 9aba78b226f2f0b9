"""Tests for xpmlp.plots: PNG sizes, device inputs, weight-grid scaling and layout, errors."""

from __future__ import annotations

import json
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from xpmlp import plots
from xpmlp.plots import (
    accuracy_figure,
    loss_figure,
    moving_average,
    plot_accuracy,
    plot_loss,
    tile_weights,
    weight_grid,
)

# Small figures keep rendering fast; pixel size is figsize * dpi.
FIGSIZE, DPI = (4.0, 3.0), 50
PIXELS = (int(FIGSIZE[1] * DPI), int(FIGSIZE[0] * DPI))  # (rows, cols) as imread returns them


def make_history(n_iter: int = 60, n_eval: int = 4, epoch_based: bool = False, seed: int = 0) -> dict:
    """A history shaped like the trainer's, with a decaying noisy loss."""
    rng = np.random.default_rng(seed)
    loss = (2.3 * np.exp(-np.arange(n_iter) / 20) + 0.1 * rng.random(n_iter)).tolist()
    evals = []
    for k in range(1, n_eval + 1):
        it = k * n_iter // n_eval
        evals.append({
            "iteration": it,
            "epoch": k if epoch_based else it / n_iter * 0.75,
            "train_acc": 0.5 + 0.1 * k,
            "val_acc": 0.45 + 0.1 * k,
            "val_loss": 1.0 / k,
            "lr": 0.1,
            "time": float(k),
        })
    return {"iteration_loss": loss, "eval": evals}


def read_png_shape(path) -> tuple[int, int]:
    return mpimg.imread(path).shape[:2]


# -- device arrays -------------------------------------------------------------

def _strict(a):
    import array_api_strict as xps

    return xps.asarray(np.asarray(a, dtype=np.float64))


def _torch(a):
    torch = pytest.importorskip("torch")
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


@pytest.fixture(params=["numpy", "strict", "torch"])
def to_dev(request):
    """Turn a host array into the parametrised library's array (torch skipped when absent)."""
    if request.param == "numpy":
        return lambda a: np.asarray(a, dtype=np.float64)
    if request.param == "strict":
        return _strict
    pytest.importorskip("torch")
    return _torch


def device_history(to_dev, **kw) -> dict:
    """A history whose loss is one device array and whose eval numbers are device 0-d arrays."""
    h = make_history(**kw)
    h["iteration_loss"] = to_dev(h["iteration_loss"])
    h["eval"] = [{k: to_dev(v) for k, v in e.items()} for e in h["eval"]]
    return h


def test_plot_loss_png_size(tmp_path, to_dev):
    out = plot_loss(device_history(to_dev), tmp_path / "loss.png", figsize=FIGSIZE, dpi=DPI)
    assert out == tmp_path / "loss.png"
    assert read_png_shape(out) == PIXELS


def test_plot_loss_from_list_of_device_scalars(tmp_path, to_dev):
    h = make_history()
    h["iteration_loss"] = [to_dev(v) for v in h["iteration_loss"]]
    out = plot_loss(h, tmp_path / "loss.png", figsize=FIGSIZE, dpi=DPI)
    assert read_png_shape(out) == PIXELS


def test_plot_accuracy_png_size(tmp_path, to_dev):
    out = plot_accuracy(device_history(to_dev), tmp_path / "acc.png", figsize=FIGSIZE, dpi=DPI)
    assert read_png_shape(out) == PIXELS


def test_weight_grid_png_size_and_same_grid_on_every_backend(tmp_path, to_dev):
    W = np.random.default_rng(1).normal(size=(4 * 3, 5))
    out, grid = weight_grid(to_dev(W), (4, 3, 1), tmp_path / "w.png", figsize=FIGSIZE, dpi=DPI)
    assert read_png_shape(out) == PIXELS
    assert isinstance(grid, np.ndarray)
    np.testing.assert_allclose(grid, tile_weights(W, (4, 3, 1)))


# -- weight grid -----------------------------------------------------------------

def test_constant_tile_is_flat_grey_without_warnings(tmp_path):
    W = np.random.default_rng(2).normal(size=(6 * 5, 4))
    W[:, 1] = 3.0  # unit 1 is constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grid = weight_grid(W, (6, 5), tmp_path / "w.png", figsize=FIGSIZE, dpi=DPI)
    assert not np.isnan(grid).any()
    # 4 units -> 2x2 grid; unit 1 is row 0, column 1, after one 1-pixel separator.
    np.testing.assert_array_equal(grid[0:6, 6:11], 0.5)


def test_each_tile_scaled_to_its_own_range():
    rng = np.random.default_rng(3)
    h, w, n = 5, 4, 6
    # Very different scales and offsets per unit: a global scaling would squash most tiles.
    W = rng.normal(size=(h * w, n)) * np.logspace(-3, 3, n) + np.arange(n) * 100
    grid = tile_weights(W, (h, w), pad=1)
    cols = 3  # ceil(sqrt(6))
    for k in range(n):
        r, q = divmod(k, cols)
        tile = grid[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w]
        assert tile.min() == pytest.approx(0.0)
        assert tile.max() == pytest.approx(1.0)
        expected = (W[:, k] - W[:, k].min()) / np.ptp(W[:, k])
        np.testing.assert_allclose(tile, expected.reshape(h, w))


def test_max_tiles_caps_the_grid():
    W = np.random.default_rng(4).normal(size=(5 * 4, 7))
    capped = tile_weights(W, (5, 4, 1), max_tiles=4, pad=1)
    assert capped.shape == (2 * 5 + 1, 2 * 4 + 1)  # 4 tiles -> 2x2
    full = tile_weights(W, (5, 4, 1), pad=1)
    assert full.shape == (3 * 5 + 2, 3 * 4 + 2)  # 7 tiles -> 3x3, two cells empty
    # The cap keeps the first units, in order.
    np.testing.assert_allclose(capped[6:11, 5:9], full[6:11, 0:4])  # unit 3: (1, 1) capped, (1, 0) full
    # Empty cells and separators hold the pad value.
    np.testing.assert_array_equal(full[12:17, 5:14], 0.0)


def test_colour_and_grey_shapes_and_channel_order():
    rng = np.random.default_rng(5)
    img = rng.random((4, 3, 3))  # (H, W, C) in [0, 1)
    W = np.stack([img.reshape(-1), -img.reshape(-1)], axis=1)  # unit 1 is the negative
    colour = tile_weights(W, (4, 3, 3))
    assert colour.shape == (4, 2 * 3 + 1, 3)
    # Colour tiles are scaled jointly over channels, so hues are preserved.
    np.testing.assert_allclose(colour[:, :3], (img - img.min()) / np.ptp(img))
    assert tile_weights(W[:12], (4, 3, 1)).shape == (4, 7)
    assert tile_weights(W[:12], (4, 3)).shape == (4, 7)


def test_channels_first_matches_channels_last():
    rng = np.random.default_rng(6)
    imgs = rng.normal(size=(5, 4, 3, 3))  # (units, H, W, C)
    W_hwc = imgs.reshape(5, -1).T
    W_chw = imgs.transpose(0, 3, 1, 2).reshape(5, -1).T
    np.testing.assert_allclose(
        tile_weights(W_chw, (3, 4, 3), channels_last=False), tile_weights(W_hwc, (4, 3, 3))
    )


def test_units_axis_zero_takes_h_by_d():
    W = np.random.default_rng(7).normal(size=(12, 5))
    np.testing.assert_allclose(tile_weights(W.T, (4, 3), units_axis=0), tile_weights(W, (4, 3)))


def test_wrong_input_size_raises():
    W = np.zeros((28 * 28, 10))
    with pytest.raises(ValueError, match=r"784 inputs per unit but image_shape \(32, 32, 3\) has 3072"):
        tile_weights(W, (32, 32, 3))
    with pytest.raises(ValueError, match="channels"):
        tile_weights(np.zeros((28 * 28 * 2, 3)), (28, 28, 2))


def test_non_finite_weights_raise():
    W = np.ones((4, 2))
    W[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tile_weights(W, (2, 2))


# -- curves ----------------------------------------------------------------------

def test_three_runs_overlay_one_file_three_legend_entries(tmp_path):
    runs = [make_history(seed=s) for s in range(3)]
    labels = ["relu", "tanh", "sigmoid"]
    out = plot_loss(runs, tmp_path / "loss.png", labels=labels, figsize=FIGSIZE, dpi=DPI)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]  # no temp files left either
    assert read_png_shape(out) == PIXELS
    ax = loss_figure(runs, labels=labels).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    # Raw + smoothed line per run, each pair in its own colour.
    colours = [line.get_color() for line in ax.get_lines()]
    assert len(colours) == 6 and len(set(colours)) == 3


def test_dict_of_runs_uses_keys_as_labels():
    fig = loss_figure({"a": make_history(), "b": make_history(seed=1)})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]


def test_history_from_json_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(make_history()))
    fig = loss_figure(path, smooth=None)
    assert isinstance(fig, Figure)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), make_history()["iteration_loss"])


def test_smoothing_window_and_raw_line():
    h = make_history(n_iter=200)
    ax = loss_figure(h, smooth=10).axes[0]
    raw, smoothed = ax.get_lines()
    assert raw.get_alpha() < 1  # raw drawn faint
    np.testing.assert_allclose(smoothed.get_ydata(), moving_average(h["iteration_loss"], 10))
    assert "10" in ax.get_legend().get_title().get_text()
    assert len(loss_figure(h, smooth=None).axes[0].get_lines()) == 1


def test_moving_average_values():
    np.testing.assert_allclose(moving_average([1.0, 2.0, 3.0, 4.0], 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_average([5.0, 5.0, 5.0], 1), [5.0, 5.0, 5.0])
    # A NaN is skipped rather than spread over the rest of the curve.
    np.testing.assert_allclose(moving_average([1.0, np.nan, 3.0, 5.0], 2), [1.0, 1.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0], 0)


def test_accuracy_styles_and_colours():
    ax = accuracy_figure([make_history(), make_history(seed=1)], labels=["a", "b"]).axes[0]
    lines = ax.get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "-", "--", "-"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    np.testing.assert_allclose(lines[1].get_ydata(), [e["val_acc"] for e in make_history()["eval"]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "train", "validation"]


def test_accuracy_x_axis_choice():
    epoch_run, iter_run = make_history(epoch_based=True), make_history()
    assert accuracy_figure(epoch_run).axes[0].get_xlabel() == "epoch"
    assert accuracy_figure(iter_run).axes[0].get_xlabel() == "iteration"
    # One iteration-based run makes the shared axis iterations.
    assert accuracy_figure([epoch_run, iter_run]).axes[0].get_xlabel() == "iteration"
    ax = accuracy_figure(epoch_run, x="iteration").axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [e["iteration"] for e in epoch_run["eval"]])
    with pytest.raises(ValueError, match="x must be"):
        accuracy_figure(iter_run, x="time")


def test_missing_val_acc_is_left_out():
    h = make_history()
    for e in h["eval"]:
        e["val_acc"] = None
    ax = accuracy_figure(h).axes[0]
    assert [line.get_linestyle() for line in ax.get_lines()] == ["--"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["run 1", "train"]


# -- errors and atomic writes -----------------------------------------------------

@pytest.mark.parametrize("empty", [[], {}, ()])
def test_empty_histories_raise(tmp_path, empty):
    with pytest.raises(ValueError, match="no histories"):
        plot_loss(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_history_without_data_raises(tmp_path):
    with pytest.raises(ValueError, match="no 'iteration_loss'"):
        plot_loss({"iteration_loss": [], "eval": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no 'eval'"):
        plot_accuracy({"iteration_loss": [1.0], "eval": []}, tmp_path / "x.png")


def test_mismatched_labels_raise(tmp_path):
    with pytest.raises(ValueError, match="2 labels for 3 histories"):
        plot_loss([make_history()] * 3, tmp_path / "x.png", labels=["a", "b"])
    with pytest.raises(ValueError, match="2 labels for 1 histories"):
        plot_accuracy(make_history(), tmp_path / "x.png", labels=["a", "b"])


def test_not_a_history_raises():
    with pytest.raises(ValueError, match="not a history"):
        loss_figure([make_history(), 3])


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "loss.png"
    path.write_bytes(b"old")

    def broken_savefig(self, fname, **kwargs):
        if hasattr(fname, "write"):  # a buffer
            fname.write(b"partial")
        else:
            with open(fname, "wb") as f:
                f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_loss(make_history(), path)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]


def test_overwrite_and_create_parent_folder(tmp_path):
    path = tmp_path / "new" / "acc.png"
    plot_accuracy(make_history(), path, figsize=FIGSIZE, dpi=DPI)
    plot_accuracy(make_history(), path, figsize=(2.0, 2.0), dpi=DPI)
    assert read_png_shape(path) == (100, 100)
