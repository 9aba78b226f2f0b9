"""Where a study's runs train: the engine options, and the Dask engine on loopback clusters (the embedded
LocalCluster, a cluster reached by its address, GPU resources, a killed worker, Ctrl-C and a rerun, a run
that raises)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from test_studies import QUICK, write_idx_dataset

from xpmlp import studies
from xpmlp.cli import main
from xpmlp.errors import InputError
from xpmlp.studies import dask_engine
from xpmlp.studies.checks import make_configs
from xpmlp.studies.engines import make_engine
from xpmlp.studies.execute import BatchSource, LocalEngine, RunContext, Task, run_tasks
from xpmlp.studies.runfolders import prepare_task

BASE = {k: v for k, v in QUICK.items() if k != "dataset"}
SAME = ("test_acc", "test_loss", "best_val_acc", "final_val_acc", "final_loss", "final_train_acc", "steps", "stopped")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "mnist")


def write_spec(path: Path, base: dict, candidates: list[dict]) -> Path:
    path.write_text(json.dumps({"name": "engines", "dataset": "mnist", "base": {**BASE, **base},
                                "candidates": candidates}))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------------------------------------------
# the options (no cluster)
# ---------------------------------------------------------------------------------------------------

def test_make_engine_checks_every_combination():
    assert make_engine("local") == LocalEngine(1)
    assert make_engine("local", jobs=3) == LocalEngine(3) == make_engine("local", workers=3)
    with pytest.raises(InputError, match="add --engine dask"):
        make_engine("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(InputError, match="disagree"):
        make_engine("local", jobs=2, workers=3)
    with pytest.raises(InputError, match="use local"):
        make_engine("spark")


@pytest.mark.parametrize("argv, words", [
    (["--scheduler", "tcp://127.0.0.1:1"], "add --engine dask"),
    (["--jobs", "2", "--workers", "3"], "disagree"),
])
def test_bad_engine_options_are_one_line_and_create_nothing(tmp_path, data_dir, capsys, argv, words):
    spec = write_spec(tmp_path / "spec.json", {}, [{"lr": 0.05}])
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--data-dir", str(data_dir), *argv]) == 2
    assert words in one_line_error(capsys) and not out.exists()


def test_without_dask_the_engine_says_what_to_install(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    spec = write_spec(tmp_path / "spec.json", {}, [{"lr": 0.05}])
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--engine", "dask", "--workers", "2"]) == 2
    assert "pip install 'xpmlp[dask]'" in one_line_error(capsys) and not out.exists()


def test_a_retried_task_reads_its_folder_again(tmp_path, data_dir):
    cfg = make_configs({**BASE, "dataset": "mnist", "data_dir": str(data_dir), "epochs": 2}, [{}])[0]
    task = Task(0, cfg, tmp_path / "run")
    assert prepare_task(task) is None and task.resume is None and not task.overwrite
    rows: list = [None]
    run_tasks(BatchSource([Task(0, cfg, task.run_dir)], rows), LocalEngine(1),
              RunContext(1, 1, frozenset({"cpu"}), {}, lambda line: None))
    assert prepare_task(Task(0, cfg, task.run_dir))["stopped"] == "completed"  # finished: nothing to train
    (task.run_dir / "metrics.json").unlink()  # as if the worker died after its last checkpoint
    again = Task(0, cfg, task.run_dir)
    assert prepare_task(again) is None and again.resume == task.run_dir / "checkpoint.npz"


def test_the_stop_watcher_interrupts_the_running_trainer():
    flag = threading.Event()
    interrupted = []

    class FakeTrainer:
        def request_interrupt(self, name):
            interrupted.append(name)

    with dask_engine.StopWatcher(flag.is_set, period=0.01, signal_name=lambda: "SIGTERM") as watcher:
        watcher.on_train_begin(FakeTrainer())
        flag.set()
        deadline = time.monotonic() + 5
        while not interrupted and time.monotonic() < deadline:
            time.sleep(0.01)
    assert interrupted == ["SIGTERM"] and watcher.fired == "SIGTERM"


# ---------------------------------------------------------------------------------------------------
# on loopback clusters
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("distributed")


def local_cluster(**kwargs):
    import distributed

    return distributed.LocalCluster(**{"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                       "dashboard_address": None, "host": "127.0.0.1",
                                       "silence_logs": logging.ERROR, **kwargs})


@pytest.fixture(scope="module")
def cluster(distributed):
    with local_cluster() as c:
        yield c


def test_a_sweep_on_a_two_worker_local_cluster_gives_the_local_engines_numbers(tmp_path, data_dir, capsys,
                                                                              distributed):
    spec = write_spec(tmp_path / "spec.json", {"hidden": [16], "epochs": 3, "dtype": "float64"},
                      [{"lr": 0.05}, {"lr": 0.02}, {"lr": 0.01, "activation": "tanh"}])
    common = ["sweep", str(spec), "--data-dir", str(data_dir)]
    # the same BLAS threads per run as the cluster's workers (one each on two cores): OpenBLAS's float64 GEMM
    # of the test-set evaluation may differ in the last bit between 1 and 2 threads, on either engine
    assert main([*common, "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "dask"), "--engine", "dask", "--workers", "2"]) == 0
    assert "dask: started a LocalCluster of 2 workers" in capsys.readouterr().out
    local, dask = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("local", "dask"))
    assert len(local["ranking"]) == len(dask["ranking"]) == 3
    for a, b in zip(local["ranking"], dask["ranking"]):
        assert a["config"] == b["config"]
        assert {k: a["metrics"][k] for k in SAME} == {k: b["metrics"][k] for k in SAME}
        histories = [json.loads((Path(r["run_dir"]) / "history.json").read_text()) for r in (a, b)]
        assert histories[0]["iteration_loss"] == histories[1]["iteration_loss"]


def test_no_worker_runs_two_gpu_jobs_at_once(tmp_path, distributed):
    def job(i: int) -> tuple[str, float, float]:
        from distributed import get_worker

        start = time.time()
        time.sleep(0.3)
        return get_worker().address, start, time.time()

    # two threads a worker: only the resource GPU=1 keeps a worker from running two jobs together
    with local_cluster(threads_per_worker=2, resources={"GPU": 1}) as gpu_cluster:
        engine = dask_engine.DaskEngine(scheduler=gpu_cluster.scheduler_address)
        context = RunContext(6, 6, frozenset({"cuda"}), {}, lambda line: None)
        with engine.open(context) as runner:
            assert runner.capacity() == 2  # one slot per GPU, not per thread
            futures = [runner.submit_call(job, i, task=Task(i, {}, tmp_path / f"job{i}")) for i in range(6)]
            intervals = [f.result(timeout=120) for f in futures]
    by_worker: dict[str, list] = {}
    for worker, start, end in intervals:
        by_worker.setdefault(worker, []).append((start, end))
    assert len(by_worker) == 2
    for spans in by_worker.values():
        spans.sort()
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans


def test_a_gpu_cluster_pins_one_gpu_per_worker(monkeypatch, distributed):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    engine = dask_engine.DaskEngine(workers=2, gpus=2)
    cluster, client, workers = engine._start(distributed, {"cuda"})
    try:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        resources = [w["resources"] for w in dask_engine.cluster_workers(client).values()]
    finally:
        client.close()
        cluster.close()
    assert workers == 2 and sorted(seen.values()) == ["3", "5"] and resources == [{"GPU": 1}, {"GPU": 1}]


def _kill_a_busy_worker(cluster, runs: Path, killed: dict) -> None:
    """SIGKILL the process of a worker that is training, once some run has written a checkpoint."""
    import distributed

    with distributed.Client(cluster.scheduler_address) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if runs.is_dir() and any((d / "checkpoint.npz").exists() for d in runs.iterdir()):
                busy = client.run(lambda dask_worker: len(dask_worker.state.executing))
                pids = client.run(os.getpid)
                victim = next((w for w, n in busy.items() if n), None)
                if victim is not None:
                    os.kill(pids[victim], signal.SIGKILL)
                    killed["worker"] = victim
                    return
            time.sleep(0.05)


def test_a_worker_killed_mid_run_is_replaced_and_the_sweep_completes(tmp_path, data_dir, cluster):
    spec = {"dataset": "mnist", "base": {**BASE, "hidden": [64], "epochs": 25},
            "candidates": [{"lr": 0.05}, {"lr": 0.02}, {"lr": 0.01}]}
    out = tmp_path / "study"
    killed: dict = {}
    killer = threading.Thread(target=_kill_a_busy_worker, args=(cluster, out / "runs", killed))
    killer.start()
    results = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lambda line: None,
                            jobs=dask_engine.DaskEngine(scheduler=cluster.scheduler_address))
    killer.join()
    assert killed, "no worker was killed"
    assert results["status"] == "complete" and len(results["ranking"]) == 3
    for r in results["ranking"]:
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert metrics["stopped"] == "completed" and metrics["steps"] == 25 * 16


def test_connecting_by_address_and_an_interrupted_sweep_resumes(tmp_path, data_dir, cluster, capsys):
    spec = write_spec(tmp_path / "spec.json", {"hidden": [64], "epochs": 100},
                      [{"lr": 0.05, "epochs": 1}, {"lr": 0.02}, {"lr": 0.01}, {"lr": 0.03}])
    out = tmp_path / "study"
    argv = ["sweep", str(spec), "--out", str(out), "--data-dir", str(data_dir), "--engine", "dask",
            "--scheduler", cluster.scheduler_address]

    def ctrl_c_once_a_run_finished_and_another_checkpointed() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            dirs = list((out / "runs").iterdir()) if (out / "runs").is_dir() else []
            if any((d / "metrics.json").exists() for d in dirs) and \
                    any((d / "checkpoint.npz").exists() and not (d / "metrics.json").exists() for d in dirs):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=ctrl_c_once_a_run_finished_and_another_checkpointed)
    thread.start()
    assert main(argv) == 130
    thread.join()
    first = capsys.readouterr().out
    assert f"dask: connected to {cluster.scheduler_address} (" in first
    results = json.loads((out / "results.json").read_text())
    interrupted = [r for r in results["unfinished"] if r["status"] == "interrupted"]
    assert len(results["ranking"]) == 1 and interrupted
    for r in interrupted:
        assert json.loads((Path(r["run_dir"]) / "metrics.json").read_text())["stopped"].startswith("interrupted")
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "already finished, skipped" in again
    for r in interrupted:
        assert f"resuming {Path(r['run_dir']).name} from its checkpoint" in again
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete"
    assert sorted(r["metrics"]["steps"] for r in results["ranking"]) == [16, 100 * 16, 100 * 16, 100 * 16]


def test_a_run_that_raises_is_a_failed_row_and_is_not_retried(tmp_path, data_dir, cluster):
    class Boom:  # a task hook: its callbacks() runs on the worker, inside the run
        def __init__(self, marker: str) -> None:
            self.marker = marker

        def callbacks(self):
            with open(self.marker, "a") as f:
                f.write("x")
            raise RuntimeError("boom in the run")

    marker = tmp_path / "attempts"
    cfg = make_configs({**BASE, "dataset": "mnist", "data_dir": str(data_dir)}, [{}])[0]
    rows: list = [None]
    task = Task(0, cfg, tmp_path / "runs" / "r", hooks=(Boom(str(marker)),))
    run_tasks(BatchSource([task], rows), dask_engine.DaskEngine(scheduler=cluster.scheduler_address),
              RunContext(1, 1, frozenset({"cpu"}), {}, lambda line: None))
    assert rows[0]["status"] == "failed" and "RuntimeError: boom in the run" in rows[0]["error"]
    assert marker.read_text() == "x"  # once: an error of the run is not retried


def test_an_unreachable_scheduler_is_one_line(tmp_path, data_dir, capsys, monkeypatch, distributed):
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", "1s")
    spec = write_spec(tmp_path / "spec.json", {}, [{"lr": 0.05}])
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--data-dir", str(data_dir), "--engine", "dask",
                 "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in one_line_error(capsys)
    assert not (out / "runs").exists()


def test_compare_on_the_cluster_stopped_by_sigterm_exits_143_and_resumes(tmp_path, data_dir, cluster, capsys):
    out = tmp_path / "compare"
    argv = ["compare", "--preset", "mnist", "--activations", "relu", "tanh", "--hidden", "32", "--epochs", "60",
            "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "16", "--val-size", "50", "--device", "cpu",
            "--data-dir", str(data_dir), "--no-download", "--out", str(out), "--engine", "dask",
            "--scheduler", cluster.scheduler_address]

    def sigterm_once_a_run_checkpointed() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "runs").is_dir() and any((d / "checkpoint.npz").exists() for d in (out / "runs").iterdir()):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=sigterm_once_a_run_checkpointed)
    thread.start()
    assert main(argv) == 143
    thread.join()
    results = json.loads((out / "results.json").read_text())
    stopped = [r for r in results["runs"] if r["status"] == "interrupted"]
    assert stopped and all(r["metrics"]["interrupted_by"] == "SIGTERM" for r in stopped)
    capsys.readouterr()
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["finished", "finished"]
    assert all(r["metrics"]["steps"] == 60 * 16 for r in results["runs"])
