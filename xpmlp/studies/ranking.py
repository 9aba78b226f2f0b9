"""Ranking a study's finished runs by validation accuracy (never by test accuracy), and their table rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..network import activation_label
from .report import fmt

RANKING_HEADER = ["rank", "structure", "activation", "optimizer", "epochs", "lr", "λ", "best val acc",
                  "final test acc", "selected"]
#: Settings that get a column of their own when they differ between the ranked runs.
EXTRA_COLUMNS = ("dropout", "augment", "batch_size", "momentum", "lr_schedule", "weight_decay", "init",
                 "preprocess", "seed")


def varying_settings(rows: list[dict[str, Any]]) -> list[str]:
    """The ``EXTRA_COLUMNS`` whose value is not the same in every row (so the table tells the runs apart)."""
    return [key for key in EXTRA_COLUMNS if len({repr(r["config"].get(key)) for r in rows}) > 1]


def ranking_header(extra: Sequence[str]) -> list[str]:
    """``RANKING_HEADER`` with a column for each of ``extra`` before the accuracies."""
    return RANKING_HEADER[:7] + [key.replace("_", " ") for key in extra] + RANKING_HEADER[7:]


def rank_by_validation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by best validation accuracy, highest first (ties: fewer parameters first).

    Parameters
    ----------
    rows : list of dict
        Finished runs, each with ``metrics`` holding ``best_val_acc`` and ``params``.

    Returns
    -------
    list of dict
        The same rows, best first; the test accuracy plays no part.
    """
    def key(r: dict[str, Any]) -> tuple[float, int]:
        val = r["metrics"].get("best_val_acc")
        return (-(val if val is not None else -1.0), r["metrics"].get("params") or 0)
    return sorted(rows, key=key)


def structure(r: dict[str, Any]) -> str:
    """``784-500-500-10``: the layer sizes of a row's network."""
    c, m = r["config"], r["metrics"] or {}
    return "-".join(str(s) for s in m["sizes"]) if m.get("sizes") else "-".join(map(str, c["hidden"]))


def ranking_row(rank: int, r: dict[str, Any], top: int, extra: Sequence[str] = ()) -> list[str]:
    """One line of ``ranking_header(extra)``."""
    c, m = r["config"], r["metrics"]
    extras = [f"{c.get(key):g}" if isinstance(c.get(key), float) else str(c.get(key)) for key in extra]
    return [str(rank), structure(r), activation_label(c["activation"]), c["optimizer"],
            str(c["epochs"] or c["iterations"]),
            f"{c['lr']:g}", f"{c['reg']:g}", *extras, fmt(m["best_val_acc"]), fmt(m["test_acc"]),
            "yes" if rank <= top else ""]
