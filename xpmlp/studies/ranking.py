"""Ranking a study's finished runs by validation accuracy (never by test accuracy), and their table rows."""

from __future__ import annotations

from typing import Any

from .report import fmt

RANKING_HEADER = ["rank", "structure", "activation", "optimizer", "epochs", "lr", "λ", "best val acc",
                  "final test acc", "selected"]


def rank_by_validation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by best validation accuracy, highest first (ties: fewer parameters first)."""
    def key(r: dict[str, Any]) -> tuple[float, int]:
        val = r["metrics"].get("best_val_acc")
        return (-(val if val is not None else -1.0), r["metrics"].get("params") or 0)
    return sorted(rows, key=key)


def structure(r: dict[str, Any]) -> str:
    """``784-500-500-10``: the layer sizes of a row's network."""
    c, m = r["config"], r["metrics"] or {}
    return "-".join(str(s) for s in m["sizes"]) if m.get("sizes") else "-".join(map(str, c["hidden"]))


def ranking_row(rank: int, r: dict[str, Any], top: int) -> list[str]:
    """One line of ``RANKING_HEADER``."""
    c, m = r["config"], r["metrics"]
    return [str(rank), structure(r), c["activation"], c["optimizer"], str(c["epochs"] or c["iterations"]),
            f"{c['lr']:g}", f"{c['reg']:g}", fmt(m["best_val_acc"]), fmt(m["test_acc"]),
            "yes" if rank <= top else ""]
