"""The homework studies as one command each: ``compare`` (activations) and ``sweep`` (tuning).

Each study writes to its output folder ``report.md`` (the command, the settings, the
tables and the plots), ``results.json``, and one run folder per configuration exactly as
``xpmlp train`` writes it. Every configuration is checked before the first run starts and
before anything is written (one-line ``InputError``). A run whose folder already holds a
``metrics.json`` for the same configuration is not trained again, and one that Ctrl-C
interrupted continues from its checkpoint, so a stopped study resumes where it stopped.

- :mod:`~xpmlp.studies.spec`: sweep specs (reading, limits, expansion).
- :mod:`~xpmlp.studies.checks`: run settings' types and values.
- :mod:`~xpmlp.studies.execute`: run folders, resuming, local worker processes, Ctrl-C.
- :mod:`~xpmlp.studies.report`: tables, results.json and report.md.
- :mod:`~xpmlp.studies.compare_study`, :mod:`~xpmlp.studies.sweep_study`: the two studies.
"""

from __future__ import annotations

from .checks import make_configs
from .compare_study import PRESETS, compare
from .execute import StudyInterrupted, finished_metrics, run_key, run_many
from .report import markdown_table, text_table
from .spec import SWEEP_KEYS, check_spec, expand_spec, load_spec
from .sweep_study import rank_by_validation, sweep

__all__ = [
    "PRESETS", "SWEEP_KEYS", "StudyInterrupted", "check_spec", "compare", "expand_spec", "finished_metrics",
    "load_spec", "make_configs", "markdown_table", "rank_by_validation", "run_key", "run_many", "sweep",
    "text_table",
]
