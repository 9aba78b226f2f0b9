"""What a study writes besides its runs: tables, the unfinished runs, and the Ctrl-C ending."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, atomic_write_text
from .execute import Log, StudyInterrupted


def command_line() -> str:
    return "xpmlp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "xpmlp"


def fmt(v: Any, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_or_note(header: list[str], rows: list[list[str]]) -> str:
    """The markdown table, or a note when no run has finished."""
    return markdown_table(header, rows) if rows else "No run has finished yet."


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt_line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt_line.format(*header), fmt_line.format(*("-" * w for w in widths))]
                     + [fmt_line.format(*r) for r in rows])


def history(run_dir: str) -> dict[str, Any] | None:
    """A run's history, or None when it has no evaluation to plot (it diverged before the first)."""
    path = Path(run_dir) / "history.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("eval") else None


def histories(run_dirs: dict[str, str]) -> dict[str, Any]:
    """{label: history} of the runs that have something to plot."""
    found = {label: history(run_dir) for label, run_dir in run_dirs.items()}
    return {k: h for k, h in found.items() if h is not None}


def finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "finished"]


def unfinished_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] != "finished"]


def unfinished_section(rows: list[dict[str, Any]]) -> list[str]:
    """report.md lines listing the runs that did not finish (none: no lines)."""
    left = unfinished_rows(rows)
    if not left:
        return []
    table = [[Path(r["run_dir"]).name, r["status"] + (f" ({r['metrics']['stopped']})" if r["metrics"] else ""),
              fmt((r["metrics"] or {}).get("best_val_acc"))] for r in left]
    return ["## Unfinished runs", "",
            f"The study was interrupted (Ctrl-C): {len(left)} of {len(rows)} runs did not finish. They are not "
            "ranked or compared with the finished ones. Run the same command again to finish them: an "
            "interrupted run continues from its checkpoint.", "",
            markdown_table(["run", "status", "best val acc so far"], table), ""]


def results_of(study: str, command: str | None, rows: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """results.json's contents: the study, its command, whether it is complete, ``fields``, the unfinished runs."""
    return {"study": study, "command": command or command_line(),
            "status": "interrupted" if unfinished_rows(rows) else "complete", **fields,
            "unfinished": unfinished_rows(rows), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def finish(out: Path, results: dict[str, Any], report: list[str], rows: list[dict[str, Any]],
           log: Log) -> dict[str, Any]:
    """Write results.json and report.md atomically (strict JSON: NaN and infinities as null); return
    ``results`` of a complete study, or raise StudyInterrupted (exit 130) when Ctrl-C stopped it."""
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", "\n".join(report) + "\n")
    log(f"report: {out / 'report.md'}")
    left = unfinished_rows(rows)
    if not left:
        return results
    message = (f"study interrupted: {len(rows) - len(left)} of {len(rows)} runs finished; "
               f"{out / 'report.md'} marks the others; run the same command again to resume")
    log(message)
    raise StudyInterrupted(message, results, next((r["signal"] for r in left if r.get("signal")), "SIGINT"))
