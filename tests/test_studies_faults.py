"""Studies that never lose, mix or mislabel results: Ctrl-C, validation before any run, run folders
that stay under --out, specs that cannot ask for gigabytes, strict JSON, and a fuzz of sweep specs.

Each numbered section is the regression test of one item of the issue.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_studies import QUICK, write_idx_dataset

from xpmlp import studies
from xpmlp.cli import main
from xpmlp.errors import InputError
from xpmlp.studies import execute, report
from xpmlp.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
BASE = {k: v for k, v in QUICK.items() if k != "dataset"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "mnist")


def strict_json(path: Path):
    def refuse(name: str):
        raise AssertionError(f"{name} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


def quiet(line: str) -> None:
    pass


def one_line_error(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text, text
    return text


# ---------------------------------------------------------------------------------------------------
# 5. Ctrl-C stops the whole study; the report marks unfinished runs; a rerun resumes from the checkpoint
# ---------------------------------------------------------------------------------------------------

def interrupt_fit(monkeypatch, fit_number: int, at_step: int) -> None:
    """Send a real SIGINT to this process right after step ``at_step`` of the ``fit_number``-th fit."""
    fits = {"n": 0}
    real_fit, real_step = Trainer.fit, Trainer._step

    def fit(self, *args, **kwargs):
        fits["n"] += 1
        self._armed = fits["n"] == fit_number
        return real_fit(self, *args, **kwargs)

    def step(self, *args, **kwargs):
        real_step(self, *args, **kwargs)
        if getattr(self, "_armed", False) and self.step == at_step:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Trainer, "fit", fit)
    monkeypatch.setattr(Trainer, "_step", step)


CTRL_C_BASE = {**BASE, "hidden": [16], "epochs": 3, "dtype": "float64"}
CTRL_C_SPEC = {"name": "ctrl-c", "dataset": "mnist", "base": CTRL_C_BASE,
               "candidates": [{"lr": 0.05}, {"lr": 0.02}, {"lr": 0.01}]}
SAME = ("test_acc", "test_loss", "best_val_acc", "final_val_acc", "final_loss", "final_train_acc", "steps", "stopped")


def test_ctrl_c_stops_the_sweep_marks_the_run_unfinished_and_a_rerun_resumes_it_exactly(tmp_path, data_dir,
                                                                                       monkeypatch, capsys):
    reference = studies.sweep(CTRL_C_SPEC, tmp_path / "full", overrides={"data_dir": str(data_dir)}, log=quiet)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(CTRL_C_SPEC))
    out = tmp_path / "study"
    interrupt_fit(monkeypatch, fit_number=2, at_step=20)  # the second run, in its second epoch
    code = main(["sweep", str(spec_path), "--out", str(out), "--data-dir", str(data_dir)])
    assert code == 130
    assert "study interrupted: 1 of 3 runs finished" in capsys.readouterr().out
    results = strict_json(out / "results.json")
    assert results["status"] == "interrupted"
    assert [r["config"]["lr"] for r in results["ranking"]] == [0.05]  # only the finished run is ranked
    assert [(r["config"]["lr"], r["status"]) for r in results["unfinished"]] == [(0.02, "interrupted"),
                                                                               (0.01, "not started")]
    interrupted, not_started = (Path(r["run_dir"]) for r in results["unfinished"])
    assert not not_started.exists()  # the study stopped: the third run never began
    metrics = strict_json(interrupted / "metrics.json")
    assert metrics["stopped"].startswith("interrupted") and 0 < metrics["steps"] < 48
    report_md = (out / "report.md").read_text()
    ranking_part, unfinished_part = report_md.split("## Unfinished runs")
    assert interrupted.name not in ranking_part and interrupted.name in unfinished_part
    assert not_started.name in unfinished_part and "not started" in unfinished_part
    # the rerun skips the finished run, resumes the interrupted one, trains the last one
    monkeypatch.undo()
    lines: list[str] = []
    again = studies.sweep(CTRL_C_SPEC, out, overrides={"data_dir": str(data_dir)}, log=lines.append)
    assert again["status"] == "complete" and again["unfinished"] == []
    assert any(f"resuming {interrupted.name} from its checkpoint" in line for line in lines)
    assert sum("already finished, skipped" in line for line in lines) == 1
    by_lr = {r["config"]["lr"]: r["metrics"] for r in again["ranking"]}
    for r in reference["ranking"]:
        for key in SAME:
            assert by_lr[r["config"]["lr"]][key] == r["metrics"][key], (r["config"]["lr"], key)
    full_history = strict_json(Path(reference["ranking"][0]["run_dir"]).parent / interrupted.name / "history.json")
    assert strict_json(interrupted / "history.json")["iteration_loss"] == full_history["iteration_loss"]
    assert "## Unfinished runs" not in (out / "report.md").read_text()


def test_ctrl_c_in_compare_lists_the_unfinished_activations_apart(tmp_path, data_dir, monkeypatch):
    interrupt_fit(monkeypatch, fit_number=1, at_step=5)
    settings_ = {**BASE, "data_dir": str(data_dir), "activations": ["relu", "tanh"]}
    with pytest.raises(studies.StudyInterrupted) as exc:
        studies.compare(dict(settings_), tmp_path / "c", log=quiet)
    assert exc.value.signal_name == "SIGINT" and isinstance(exc.value, KeyboardInterrupt)
    results = strict_json(tmp_path / "c" / "results.json")
    assert [r["status"] for r in results["runs"]] == ["interrupted", "not started"]
    report_md = (tmp_path / "c" / "report.md").read_text()
    assert "No run has finished yet." in report_md and "## Unfinished runs" in report_md
    assert not (tmp_path / "c" / "W1_relu.png").exists()  # no weight grid of an unfinished network
    monkeypatch.undo()
    again = studies.compare(dict(settings_), tmp_path / "c", log=quiet)
    assert [r["status"] for r in again["runs"]] == ["finished", "finished"]


def test_ctrl_c_between_runs_starts_no_further_run(tmp_path, data_dir, monkeypatch):
    real_check, real_load = execute.check_data, execute.load_data
    checked = []

    def check_data(tasks, log):
        cache = real_check(tasks, log)
        checked.append(True)
        return cache

    def load_then_ctrl_c(cfg, log):  # the study loads the first run's data after the checks: Ctrl-C then
        prepared = real_load(cfg, log)
        if checked:
            os.kill(os.getpid(), signal.SIGINT)
        return prepared

    monkeypatch.setattr(execute, "check_data", check_data)
    monkeypatch.setattr(execute, "load_data", load_then_ctrl_c)
    spec = {"dataset": "mnist", "base": BASE, "grid": {"lr": [0.05, 0.02], "preprocess": ["scale", "standardize"]}}
    with pytest.raises(studies.StudyInterrupted):
        studies.sweep(spec, tmp_path / "s", overrides={"data_dir": str(data_dir)}, log=quiet)
    results = strict_json(tmp_path / "s" / "results.json")
    assert results["ranking"] == [] and {r["status"] for r in results["unfinished"]} == {"not started"}
    assert not (tmp_path / "s" / "runs").exists()


def _wait_for_checkpoint(runs: Path, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while not (runs.is_dir() and any((d / "checkpoint.npz").exists() for d in runs.iterdir())):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no run wrote a checkpoint"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_with_jobs_cancels_pending_runs_and_running_ones_checkpoint(tmp_path, data_dir):
    base = {**BASE, "hidden": [64], "epochs": 8, "dtype": "float64"}
    spec = {"dataset": "mnist", "base": base, "candidates": [{"lr": lr} for lr in (0.05, 0.04, 0.03, 0.02, 0.01)]}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "study"
    argv = ["sweep", str(spec_path), "--out", str(out), "--data-dir", str(data_dir), "--jobs", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "xpmlp", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    _wait_for_checkpoint(out / "runs", proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    results = strict_json(out / "results.json")
    statuses = [r["status"] for r in results["ranking"] + results["unfinished"]]
    assert results["status"] == "interrupted" and "not started" in statuses and "interrupted" in statuses
    for r in results["unfinished"]:
        if r["status"] == "not started":
            assert not Path(r["run_dir"]).exists()
        else:
            assert (Path(r["run_dir"]) / "checkpoint.npz").is_file()
            assert strict_json(Path(r["run_dir"]) / "metrics.json")["stopped"].startswith("interrupted")
    lines: list[str] = []
    again = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lines.append)
    assert again["status"] == "complete" and len(again["ranking"]) == 5
    resumed = [r for r in results["unfinished"] if r["status"] == "interrupted"]
    for r in resumed:
        assert any(f"resuming {Path(r['run_dir']).name}" in line for line in lines)
    assert all(r["metrics"]["steps"] == 8 * 16 for r in again["ranking"])


# ---------------------------------------------------------------------------------------------------
# 6. Every configuration is checked before the first run; each error is one line naming the key
# ---------------------------------------------------------------------------------------------------

BAD_SPECS = [
    ({"grid": {"optimizer": ["sgd", "momentum", "sgdd"]}}, "configuration 3 of 3 (optimizer sgdd): unknown optimizer"),
    ({"grid": {"lr": [0.1]}, "select_top": 0}, "select_top must be a positive integer"),
    ({"grid": {"lr": [0.1]}, "name": 5}, "name must be a string"),
    ({"grid": None}, "grid must be a mapping"),
    ({"candidates": [1, 2]}, "candidate 1 must be a mapping"),
    ({"candidates": []}, "candidates must be a non-empty list"),
    ({"grid": {"lr": [0.1]}, "base": 5}, "base must be a mapping"),
    ({"grid": {"lr": [0.1]}, "search": "random", "samples": -1}, "samples must be a positive integer"),
    ({"grid": {"lr": [0.1]}, "seed": "abc"}, "seed must be a non-negative integer"),
    ({"grid": {"lr": "abc"}}, "lr must be a finite number, got 'abc'"),
    ({"grid": {"hidden": ["abc"]}}, "hidden must be a list"),
    ({"grid": {"hidden": []}}, "write [[]] for no hidden layer"),
    ({"grid": {"hidden": [8, [8]]}}, "mixes widths and lists"),
    ({"grid": {"lr": []}}, "gives no value"),
    ({"candidates": [{"lr": 0.1}], "grid": {"lr": [0.1]}}, "either 'grid'"),
    ({"candidates": [{"epochs": 0}]}, "epochs must be a positive integer"),
    ({"candidates": [{"batch_size": 10_000}]}, "larger than the training set"),
    ({"candidates": [{"activation": "nope"}]}, "unknown activation"),
    ({"candidates": [{"init": "std:-1"}]}, "bad init"),
    ({"candidates": [{"lr_schedule": "exp:2"}]}, "bad learning-rate schedule"),
    ({"candidates": [{"preprocess": "pixels"}]}, "unknown preprocess"),
    ({"candidates": [{"momentum": "x"}]}, "momentum must be a finite number"),
    ({"candidates": [{"lr": float("nan")}]}, "lr must be a finite number"),
    ({"candidates": [{"reg": True}]}, "reg must be a finite number"),
    ({"grid": {"lr": [0.1]}, "base": {"dtype": "float16"}}, "dtype must be one of float32, float64"),
    ({"grid": {"lr": [0.1]}, "base": {"device": "cuda:x"}}, "device"),
    ({"grid": {"lr": [0.1]}, "dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"grid": {"lr": [0.1]}, "base": {"early_stopping": 2, "val_size": 0}}, "val_size is 0"),
    ({"grid": {"lr": [0.1]}, "base": {"hidden": [10**7]}}, "widths from 1 to 100000"),
]


@pytest.mark.parametrize("spec, words", BAD_SPECS)
def test_a_bad_spec_fails_in_one_line_before_any_run_or_file(tmp_path, data_dir, monkeypatch, spec, words):
    def never(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(execute, "train_run", never)
    full = {"dataset": "mnist", **spec, "base": {**BASE, **spec["base"]} if isinstance(spec.get("base"), dict)
            else spec.get("base", BASE)}
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        studies.sweep(full, out, overrides={"data_dir": str(data_dir)}, log=quiet)
    assert words in one_line_error(exc)
    assert not out.exists()


def test_a_bad_compare_setting_fails_before_any_run(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(execute, "train_run", lambda *a, **k: pytest.fail("a run started"))
    for activations, words in ((["relu", "nope"], "configuration 2 of 2 (activation nope): unknown activation"),
                               (["relu", "relu"], "listed more than once"), ([], "at least one activation"),
                               ("relu", "at least one activation"), ([5], "must be a name or a list of names")):
        with pytest.raises(InputError) as exc:
            studies.compare({**BASE, "data_dir": str(data_dir), "activations": activations}, tmp_path / "c", log=quiet)
        assert words in one_line_error(exc)
    assert not (tmp_path / "c").exists()


def test_the_cli_exits_2_with_one_line_and_creates_nothing(tmp_path, data_dir, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("dataset: mnist\ngrid:\n  optimizer: [sgd, momentum, sgdd]\n")
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--data-dir", str(data_dir), "--no-download",
                 "--device", "cpu", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "sgdd" in err[0]
    assert not out.exists()
    (tmp_path / "file").write_text("x")  # --out that is a file
    code = main(["sweep", str(ROOT / "scripts" / "specs" / "fashion-homework.yaml"), "--out", str(tmp_path / "file"),
                 "--data-dir", str(data_dir), "--device", "cpu"])
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------
# 7. Run folders are named from validated values only and never leave --out
# ---------------------------------------------------------------------------------------------------

def test_a_sweep_value_cannot_create_anything_outside_out(tmp_path, data_dir):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    spec = {"dataset": "mnist", "base": BASE, "grid": {"optimizer": ["../../../outside", "sgd"],
                                                       "activation": ["../../x"]}}
    with pytest.raises(InputError) as exc:
        studies.sweep(spec, work / "out", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert "unknown" in one_line_error(exc)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/c"]


def test_run_folder_names_use_only_safe_characters():
    from xpmlp.runs import make_config
    for activation in ("leaky_relu:0.1", " RELU ", "leaky_relu:1e-2"):
        key = studies.run_key(make_config(**{**QUICK, "activation": activation}))
        assert all(c.isalnum() or c in "._-" for c in key), key
        assert ".." not in key.split("_")[0] and "/" not in key


def test_a_run_folder_that_would_leave_out_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(execute, "run_key", lambda cfg: "../../escaped")
    spec = {"dataset": "mnist", "base": BASE, "candidates": [{"lr": 0.05}]}
    with pytest.raises(InputError) as exc:
        studies.sweep(spec, tmp_path / "out", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert "outside the study folder" in one_line_error(exc)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# 8. A spec cannot ask for gigabytes: size, aliases, string lengths, configuration count, nesting
# ---------------------------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
name: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


@pytest.mark.parametrize("text, words", [
    (BILLION_LAUGHS, "anchors and aliases"),
    ("base: &b {lr: 0.1}\ngrid: {lr: [0.1]}\n", "anchors and aliases"),
    ("base: {lr: 0.1}\ncandidates: [{<<: *b}]\n", "aliases"),
    ("grid: " + "[" * 50 + "]" * 50 + "\n", "nested deeper"),
    ("name: " + "x" * 201 + "\ngrid: {lr: [0.1]}\n", "201 characters"),
    ("name: t\ngrid: {activation: [" + "y" * 300 + "]}\n", "300 characters"),
    ("grid: {lr: [" + ", ".join(str(i / 1000) for i in range(1, 101)) + "], reg: ["
     + ", ".join(str(i) for i in range(101)) + "]}\n", "10,100 combinations"),
    ("candidates:\n" + "  - {lr: 0.1}\n" * 10_001, "10,001 candidates"),
    ("grid: {lr: [0.1]}\nname: 2020-01-01\n", "is not a plain value"),
    ("grid: {lr: [0.1]}\n? [a]\n: 1\n", "not valid YAML"),
    ("grid: {lr: [0.1]}\n1: 2\n", "is not a string"),
])
def test_a_spec_that_would_expand_or_nest_is_refused_in_one_line(tmp_path, text, words):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        studies.load_spec(path)
    assert words in one_line_error(exc)


def test_spec_files_over_1_mib_and_not_utf8_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 120_000 + "grid: {lr: [0.1]}\n")
    with pytest.raises(InputError, match="larger than 1 MiB"):
        studies.load_spec(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\ngrid: {lr: [0.1]}\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        studies.load_spec(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="not valid JSON"):
        studies.load_spec(deep)
    with pytest.raises(InputError, match="cannot read"):
        studies.load_spec(tmp_path)


def test_a_random_search_draws_from_a_huge_grid_without_building_it():
    grid = {k: [0.1 * i for i in range(1, 31)] for k in ("lr", "reg", "momentum", "weight_decay")}
    grid.update({"batch_size": list(range(1, 31)), "epochs": list(range(1, 31))})  # 30**6 = 729 million
    spec = studies.check_spec({"grid": grid, "search": "random", "samples": 5, "seed": 1})
    combos = studies.expand_spec(spec)
    assert len(combos) == 5 and combos == studies.expand_spec(spec)
    with pytest.raises(InputError, match="combinations"):
        studies.expand_spec({"grid": grid})


def test_the_shipped_random_search_still_draws_the_same_configurations():
    spec = studies.load_spec(ROOT / "scripts" / "specs" / "fashion-search.yaml")
    drawn = [(tuple(c["hidden"]), c["lr"], c["reg"]) for c in studies.expand_spec(spec)]
    assert drawn == [((1024, 512), 0.05, 1e-4), ((1024, 512), 0.05, 5e-4), ((1024, 512), 0.1, 1e-4),
                     ((512, 512), 0.05, 5e-4), ((512, 512), 0.1, 1e-4), ((512, 512), 0.1, 5e-4)]


# ---------------------------------------------------------------------------------------------------
# results.json and report.md: atomic, strict JSON
# ---------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_results_and_report_are_written_atomically_as_strict_json(tmp_path, data_dir, monkeypatch):
    written: list[str] = []
    for name in ("atomic_write_json", "atomic_write_text"):
        real = getattr(report, name)
        monkeypatch.setattr(report, name,
                            lambda path, obj, real=real: written.append(Path(path).name) or real(path, obj))
    spec = {"dataset": "mnist", "base": BASE, "candidates": [{"lr": 1e30}, {"lr": 0.02}]}
    studies.sweep(spec, tmp_path / "s", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert written == ["results.json", "report.md"]
    results = strict_json(tmp_path / "s" / "results.json")
    assert results["ranking"][1]["metrics"]["test_acc"] is None  # the diverged run: null, never NaN
    assert not [p for p in (tmp_path / "s").rglob("*.tmp")]


# ---------------------------------------------------------------------------------------------------
# fuzz: every spec either trains or fails with one line (InputError), never another exception
# ---------------------------------------------------------------------------------------------------

# (valid values, invalid values) of each setting and spec key; a value is valid four times in five
SETTING_VALUES = {
    "hidden": ([[8], [4, 4], [[8], [4]], [[]]], [[], [0], ["abc"], 5, [8, [4]], [10**7], True]),
    "activation": (["relu", "tanh", "leaky_relu:0.2"], ["nope", "../x", 3, None, "a" * 250]),
    "optimizer": (["sgd", "adam", "momentum"], ["sgdd", "../../../outside", [], 1.5]),
    "lr": ([0.05, [0.05, 0.01]], [0, -1, "abc", float("nan"), float("inf"), True]),
    "reg": ([0, 1e-4], [-1, "x", float("inf")]),
    "epochs": ([1, 2], [0, -1, 2.5, "x", None]),
    "batch_size": ([16, 32], [0, 100_000, "x"]),
    "lr_schedule": (["constant", "cosine", "exp:0.9"], ["exp:2", "bad", 5]),
    "init": (["he", "xavier", "std:0.01"], ["std:-1", "glorot", 0.1]),
    "momentum": ([0.9, 0.0], [1.5, "x"]),
    "preprocess": (["scale", "standardize"], ["pixels", None]),
    "colour": ([], ["red"]),
}
TOP_VALUES = {
    "name": (["t"], [5, "x" * 300, None]), "search": (["grid", "random"], ["bayes"]),
    "samples": ([1, 2], [0, -1, "x"]), "seed": ([0, 3], [-1, "abc", 1.5]), "select_top": ([1, 2], [0, "x"]),
    "dataset": (["mnist"], ["imagenet", 7]), "base": ([{}, {"hidden": [8]}], [5, None, {"colour": 1}]),
    "extra": ([], [1]),
}


def value_of(choices: tuple[list, list]) -> st.SearchStrategy:
    valid, invalid = choices
    if not valid:
        return st.sampled_from(invalid)
    return st.integers(0, 4).flatmap(lambda i: st.sampled_from(valid if i or not invalid else invalid))


def entry(table: dict) -> st.SearchStrategy:
    return st.sampled_from(sorted(table)).flatmap(lambda k: st.tuples(st.just(k), value_of(table[k])))


block = st.lists(entry(SETTING_VALUES), max_size=2).map(dict)
grid = st.lists(entry(SETTING_VALUES).map(lambda kv: (kv[0], kv[1] if isinstance(kv[1], list) else [kv[1]])),
                max_size=2).map(dict)
top = st.lists(entry(TOP_VALUES), max_size=3).map(dict)
specs = st.one_of(
    st.tuples(top, grid).map(lambda t: {**t[0], "grid": t[1]}),
    st.tuples(top, st.lists(block, min_size=1, max_size=2)).map(lambda t: {**t[0], "candidates": t[1]}),
    st.tuples(top, st.sampled_from([None, 3, "x", [], {}])).map(lambda t: {**t[0], "grid": t[1]}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spec=specs, as_yaml=st.booleans())
def test_fuzzed_specs_train_or_fail_in_one_line(tmp_path_factory, data_dir, spec, as_yaml):
    folder = tmp_path_factory.mktemp("fuzz")
    spec = {"dataset": "mnist", **spec}
    if isinstance(spec.get("base"), dict):
        spec["base"] = {"hidden": [8], "val_size": 50, **spec["base"]}
    path = folder / ("spec.yaml" if as_yaml else "spec.json")
    path.write_text(yaml.safe_dump(spec) if as_yaml else json.dumps(spec))
    out = folder / "out"
    overrides = {"data_dir": str(data_dir), "device": "cpu", "download": False, "epochs": 1, "iterations": None,
                 "val_size": 50}
    try:
        with np.errstate(all="ignore"), contextlib.redirect_stderr(io.StringIO()):
            results = studies.sweep(studies.load_spec(path), out, overrides=overrides, log=quiet)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        assert not out.exists(), str(exc)
        event("refused: " + str(exc).replace(str(path), "spec")[:40])
        return
    assert results["status"] == "complete" and results["ranking"]
    strict_json(out / "results.json")
    event("trained")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
       suffix=st.sampled_from([".yaml", ".json"]))
def test_fuzzed_spec_text_loads_or_fails_in_one_line(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("text") / f"spec{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        spec = studies.load_spec(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        return
    assert isinstance(spec, dict)
