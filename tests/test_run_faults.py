"""The run lifecycle under misuse, interruption and faults: ``xpmlp train`` as a careless or hostile user runs it.

Runs are real ``python -m xpmlp train`` processes on a tiny MNIST-format data set written here,
so signals, locks, exit codes and streams are the real ones.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpmlp import checkpoint as ckpt
from xpmlp import runs
from xpmlp.cli import main
from xpmlp.errors import CheckpointError

pytestmark = pytest.mark.timeout(300)


def write_tiny_mnist(folder: Path, n_train: int = 400, n_test: int = 100, seed: int = 1) -> Path:
    """A learnable 10-class MNIST-format set (28x28 uint8, gzipped IDX files) in ``folder``."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, (10, 28, 28))
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10)
        images = np.clip(prototypes[labels] + rng.integers(-40, 41, (n, 28, 28)), 0, 255).astype(np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("data") / "mnist")


def base_args(data_dir: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--no-download", "--hidden", "16",
            "--val-size", "50", "--batch-size", "25", "--device", "cpu", "--dtype", "float64", *extra]


def xpmlp(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "xpmlp", *argv], capture_output=True, text=True, env=env,
                          timeout=240, **kwargs)


def start(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.Popen([sys.executable, "-m", "xpmlp", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def strict_json(path: Path):
    def refuse(name: str):
        raise AssertionError(f"{name} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


# -- 1. one run per folder ------------------------------------------------------------------------

def test_a_second_run_into_a_locked_folder_is_refused_and_changes_nothing(tmp_path, data_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with filelock.FileLock(str(out / ".xpmlp.lock"), timeout=0):  # another run holds the folder
        line = one_error_line(xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out))))
    assert "in use by another xpmlp run" in line
    assert sorted(p.name for p in out.iterdir()) == [".xpmlp.lock", "notes.txt"]


def test_two_concurrent_runs_the_second_is_refused_the_first_completes_untouched(tmp_path, data_dir):
    out = tmp_path / "run"
    first = start(*base_args(data_dir, "--epochs", "40", "--hidden", "64", "--seed", "1", "--out", str(out)))
    wait_for(out / "config.json", first)
    second = xpmlp(*base_args(data_dir, "--epochs", "3", "--hidden", "32", "32", "--seed", "2", "--out", str(out)))
    line = one_error_line(second)
    assert "in use by another xpmlp run" in line or "already holds a run" in line
    first_out, first_err = first.communicate(timeout=240)
    assert first.returncode == 0, first_err
    config, metrics = strict_json(out / "config.json"), strict_json(out / "metrics.json")
    assert config["hidden"] == [64] and config["seed"] == 1 and metrics["sizes"] == [784, 64, 10]
    assert ckpt.load(out / "checkpoint.npz")["config"]["hidden"] == [64]


def test_a_finished_run_is_not_overwritten_without_overwrite(tmp_path, data_dir):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out))).returncode == 0
    before = (out / "metrics.json").read_bytes()
    line = one_error_line(xpmlp(*base_args(data_dir, "--epochs", "2", "--out", str(out))))
    assert "--resume" in line and "--overwrite" in line
    assert (out / "metrics.json").read_bytes() == before
    again = xpmlp(*base_args(data_dir, "--epochs", "2", "--hidden", "8", "--out", str(out), "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert strict_json(out / "metrics.json")["sizes"] == [784, 8, 10]


def test_default_run_names_are_unique_per_process(tmp_path, data_dir):
    procs = [start(*base_args(data_dir, "--epochs", "1"), cwd=tmp_path) for _ in range(2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    assert len(list((tmp_path / "runs").iterdir())) == 2


# -- 2. resume applies what may change, refuses what may not ---------------------------------------

def test_resume_applies_new_settings_and_says_so(tmp_path, data_dir):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "2", "--out", str(out))).returncode == 0
    resumed = xpmlp("train", "--resume", str(out / "checkpoint.npz"), "--epochs", "4", "--lr", "0.01")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming with lr 0.01 (was 0.1)" in resumed.stdout and "resuming with epochs 4 (was 2)" in resumed.stdout
    history = strict_json(out / "history.json")
    assert [round(e["epoch"]) for e in history["eval"]] == [1, 2, 3, 4]
    assert [e["lr"] for e in history["eval"]] == [0.1, 0.1, 0.01, 0.01]
    assert strict_json(out / "config.json")["lr"] == 0.01


@pytest.mark.parametrize("flag", [["--hidden", "64"], ["--dtype", "float32"], ["--activation", "tanh"],
                                  ["--iterations", "10"], ["--preprocess", "standardize"]])
def test_resume_refuses_settings_that_would_make_another_run(tmp_path, data_dir, flag):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out))).returncode == 0
    before = (out / "checkpoint.npz").read_bytes()
    line = one_error_line(xpmlp("train", "--resume", str(out / "checkpoint.npz"), *flag))
    assert flag[0] in line
    assert (out / "checkpoint.npz").read_bytes() == before


# -- 3. the data a run resumes on are the data it started on ---------------------------------------

def test_resume_on_other_data_is_refused_and_a_relative_data_dir_is_recorded_absolute(tmp_path, data_dir):
    other = write_tiny_mnist(tmp_path / "other" / "mnist", seed=9)
    out = tmp_path / "run"
    args = base_args(Path(os.path.relpath(data_dir, tmp_path)), "--epochs", "1", "--out", "run")
    assert xpmlp(*args, cwd=tmp_path).returncode == 0
    assert strict_json(out / "config.json")["data_dir"] == str(data_dir)
    line = one_error_line(xpmlp("train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                                "--data-dir", str(other)))
    assert "differ" in line
    moved = xpmlp("train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2")  # from another folder
    assert moved.returncode == 0, moved.stderr


def test_an_explicit_data_dir_without_the_data_is_one_line(tmp_path, data_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(xpmlp(*base_args(empty, "--epochs", "1", "--out", str(tmp_path / "run"))))
    assert str(empty) in line
    assert not (tmp_path / "run").exists()


# -- 4. only good checkpoints are kept, bad ones are refused --------------------------------------

def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = xpmlp(*base_args(data_dir, "--epochs", "2", "--lr", "1e6", "--preprocess", "standardize",
                            "--out", str(out)))
    line = one_error_line(proc)
    assert "diverged" in line and "no checkpoint was written" in line
    assert "RuntimeWarning" not in proc.stderr
    assert not (out / "checkpoint.npz").exists()
    history = strict_json(out / "history.json")  # strict JSON: the NaN loss is null
    assert history["stopped"].startswith("diverged") and history["iteration_loss"][-1] is None


def test_an_exploding_but_finite_loss_is_not_a_good_checkpoint():
    trainer = runs._build_trainer(runs.make_config(dataset="blobs", hidden=[4], epochs=1, device="cpu"),
                                  runs.get_backend("cpu"), _Prepared(), Path("."), print, "none")
    trainer.history.iteration_loss = [2.3, 2.0, 1.9]
    trainer.history.eval = [{"train_loss": 2.0}]
    assert runs.is_good_checkpoint(trainer)
    trainer.history.iteration_loss.append(4e19)
    assert not runs.is_good_checkpoint(trainer)
    trainer.history.iteration_loss.append(1.5)
    assert runs.is_good_checkpoint(trainer)
    trainer.model.params["W1"][0, 0] = float("nan")
    assert not runs.is_good_checkpoint(trainer)


class _Prepared:
    x_train = np.zeros((8, 3))
    classes = ["a", "b"]


def _tamper(path: Path, change) -> Path:
    tree = ckpt.load(path)
    change(tree)
    ckpt.save(path, tree)
    return path


@pytest.mark.parametrize("name,change,words", [
    ("nan", lambda t: t["model"]["W1"].__setitem__((0, 0), np.nan), ["NaN or infinite", "W1"]),
    ("float16", lambda t: t["model"].__setitem__("W1", t["model"]["W1"].astype(np.float16)), ["float16"]),
    ("complex", lambda t: t["model"].__setitem__("b1", t["model"]["b1"].astype(np.complex128)), ["complex"]),
    ("no-sizes", lambda t: t["model_config"].pop("sizes"), ["model config is incomplete"]),
    ("bad-sizes", lambda t: t["model_config"].__setitem__("sizes", [784, 2.7, 10]), ["not positive integers"]),
    ("step", lambda t: t["trainer"].__setitem__("step", 2.5), ["step 2.5"]),
])
def test_a_tampered_checkpoint_is_refused_in_one_line(tmp_path, data_dir, name, change, words):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out))).returncode == 0
    path = _tamper(out / "checkpoint.npz", change)
    for argv in (["train", "--resume", str(path)], ["evaluate", str(path), "--device", "cpu", "--data-dir",
                                                      str(data_dir), "--no-download"]):
        if name == "step" and argv[0] == "evaluate":
            continue  # evaluate reads the weights only
        line = one_error_line(xpmlp(*argv))
        for word in words:
            assert word in line, (argv[0], line)


def test_load_model_refuses_nan_weights(tmp_path, data_dir):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out))).returncode == 0
    _tamper(out / "checkpoint.npz", lambda t: t["model"]["b2"].__setitem__(0, np.inf))
    with pytest.raises(CheckpointError, match="b2 holds NaN or infinite"):
        runs.load_model(out / "checkpoint.npz", "cpu")


# -- 11. signals: checkpoint, the resume command on stderr, 130 / 143, and an exact resume ---------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir, sig, code):
    full = tmp_path / "full"
    assert xpmlp(*base_args(data_dir, "--epochs", "30", "--out", str(full), "--quiet")).returncode == 0
    out = tmp_path / "part"
    proc = start(*base_args(data_dir, "--epochs", "30", "--out", str(out), "--quiet"))
    wait_for(out / "checkpoint.npz", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == code, err
    assert f"resume with: xpmlp train --resume {out / 'checkpoint.npz'}" in err  # even with --quiet
    assert signal.Signals(sig).name in err
    stopped = ckpt.load(out / "checkpoint.npz")["trainer"]["step"]
    assert 0 < stopped < 30 * 18
    resumed = xpmlp("train", "--resume", str(out / "checkpoint.npz"), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = ckpt.load(full / "checkpoint.npz"), ckpt.load(out / "checkpoint.npz")
    for key, value in a["model"].items():
        np.testing.assert_array_equal(b["model"][key], value)
    assert strict_json(out / "metrics.json")["stopped"] == "completed"


# -- 12. SIGKILL at random moments, mid-write included ----------------------------------------------

def test_sigkill_at_random_moments_never_loses_the_previous_checkpoint(tmp_path, data_dir):
    out = tmp_path / "run"
    path = out / "checkpoint.npz"
    rng = random.Random(7)
    first = start(*base_args(data_dir, "--epochs", "400", "--hidden", "64", "--out", str(out), "--quiet"))
    wait_for(path, first)
    steps = []
    for trial in range(10):
        proc = first if trial == 0 else start("train", "--resume", str(path), "--quiet")
        time.sleep(rng.uniform(0.0, 0.5) if trial == 0 else rng.uniform(1.0, 4.0))
        proc.kill()  # SIGKILL: no handler runs, a checkpoint write may be cut anywhere
        proc.wait()
        tree = ckpt.load(path)  # always whole: the new file is renamed over the old one only when complete
        assert all(np.isfinite(v).all() for v in tree["model"].values())
        steps.append(tree["trainer"]["step"])
    assert steps == sorted(steps) and steps[-1] > steps[0], steps  # the kills hit a run that was training
    stale = out / ".checkpoint.npz.killed.tmp"
    stale.write_bytes(b"half a checkpoint")  # what a kill between write and rename leaves
    finish = xpmlp("train", "--resume", str(path), "--epochs", "1", "--quiet")
    assert finish.returncode == 0, finish.stderr
    assert not stale.exists() and not list(out.glob(".*.tmp"))


# -- 13. a closed stdout never stops training --------------------------------------------------------

def test_a_closed_stdout_does_not_stop_training(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = start(*base_args(data_dir, "--epochs", "5", "--out", str(out)))
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=240) == 0, err
    assert first.startswith("data:") and "Traceback" not in err and "BrokenPipe" not in err
    assert strict_json(out / "metrics.json")["stopped"] == "completed"


# -- 15. disk full and unwritable output: one line, the previous checkpoint intact -------------------

def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path, data_dir, monkeypatch,
                                                                            capsys):
    out = tmp_path / "run"
    assert main(base_args(data_dir, "--epochs", "1", "--out", str(out), "--quiet")) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("xpmlp.io.os.fsync", full)
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "3", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    monkeypatch.undo()
    assert (out / "checkpoint.npz").read_bytes() == before and not list(out.glob(".*.tmp"))


def test_a_file_size_limit_in_a_real_process_is_one_line(tmp_path, data_dir):
    out = tmp_path / "run"
    assert xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out), "--hidden", "64")).returncode == 0
    before = (out / "checkpoint.npz").read_bytes()

    def limit():  # files may not grow past 64 kB: the next checkpoint (~400 kB) cannot be written
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    proc = xpmlp("train", "--resume", str(out / "checkpoint.npz"), "--epochs", "3", "--quiet", preexec_fn=limit)
    line = one_error_line(proc, code=1)
    assert "File too large" in line
    assert (out / "checkpoint.npz").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: an unwritable folder cannot be made")
def test_an_unwritable_out_is_one_line_before_any_data_is_read(tmp_path, data_dir):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    line = one_error_line(xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(locked / "run"))))
    assert "not writable" in line


def test_an_out_that_is_a_file_is_one_line_and_creates_nothing(tmp_path, data_dir):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is a file" in one_error_line(xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(afile))))
    assert "under the file" in one_error_line(xpmlp(*base_args(data_dir, "--epochs", "1",
                                                                "--out", str(afile / "run"))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("extra,words", [
    (["--seed", "-1"], ["seed", ">= 0"]),
    (["--reg", "inf"], ["reg", "finite"]),
    (["--lr-schedule", "step:1e-300:0.5"], ["learning rate", "step:1e-300:0.5"]),
    (["--batch-size", "100000"], ["batch size"]),
])
def test_bad_settings_are_one_line_and_leave_no_folder(tmp_path, data_dir, extra, words):
    out = tmp_path / "run"
    line = one_error_line(xpmlp(*base_args(data_dir, "--epochs", "1", "--out", str(out), *extra)))
    for word in words:
        assert word in line
    assert not out.exists()


def test_gradcheck_refuses_a_negative_tolerance():
    line = one_error_line(xpmlp("gradcheck", "--tol", "-1"))
    assert "--tol" in line and "positive" in line


# -- the fuzz: success or one line, never a traceback ----------------------------------------------

FLAG_VALUES = {
    "--epochs": ["1", "0", "-3", "x", "1e9999"], "--lr": ["0.05", "0", "-1", "nan", "inf", "abc"],
    "--hidden": ["8", "0", "-2", "x", "8 8"], "--batch-size": ["25", "0", "100000", "2.5"],
    "--activation": ["relu", "tanh", "leaky_relu:0.2", "leaky_relu:x", "nope"], "--reg": ["0", "1e-3", "-1", "inf"],
    "--optimizer": ["sgd", "adam", "nesterov", "rmsprop"], "--lr-schedule": ["constant", "exp:0.9", "exp:2", "bad:1"],
    "--init": ["he", "xavier", "std:1e-2", "std:-1", "glorot"], "--seed": ["0", "-1", "x"],
    "--dtype": ["float32", "float16"], "--device": ["cpu", "strict", "gpu", "cuda:x"],
    "--val-size": ["50", "-5", "100000"], "--momentum": ["0.9", "1.5"], "--iterations": ["5", "0"],
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(FLAG_VALUES)), st.integers(0, 5), min_size=1, max_size=4))
def test_fuzzed_train_arguments_succeed_or_fail_in_one_line(tmp_path_factory, data_dir, choice):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    argv = base_args(data_dir, "--out", str(out), "--quiet")
    if "--epochs" not in choice and "--iterations" not in choice:
        argv += ["--epochs", "1"]
    for flag, index in choice.items():
        values = FLAG_VALUES[flag]
        argv += [flag, *values[index % len(values)].split()]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), np.errstate(all="ignore"):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    lines = stderr.getvalue().strip().splitlines()
    assert code in (0, 2), (argv, code, stderr.getvalue())
    if code:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr.getvalue())
    assert "Traceback" not in stderr.getvalue()
