"""One training run as ``xpmlp train`` does it: data, model, trainer, and the run folder.

The run folder holds ``config.json``, ``history.json``, ``metrics.json``,
``checkpoint.npz`` (last and best weights, optimizer and trainer state, preprocessing
statistics), ``loss.png`` and ``accuracy.png``. Every file is written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import plots
from .backend import get_backend
from .data import prepare
from .errors import CheckpointError, DivergenceError, InputError
from .io import atomic_write_json
from .model import MLP
from .settings import DEFAULTS, TRAIN_KEYS
from .train import TrainConfig, Trainer, evaluate


def make_config(**overrides: Any) -> dict[str, Any]:
    """DEFAULTS updated with ``overrides``; unknown keys are an error naming the known ones."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown run settings {unknown}; known: {', '.join(DEFAULTS)}")
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in overrides.items()})
    cfg["hidden"] = [int(h) for h in cfg["hidden"]]
    if any(h < 1 for h in cfg["hidden"]):
        raise InputError(f"hidden widths {cfg['hidden']} must be positive integers, e.g. --hidden 500 500")
    return cfg


def train_config(cfg: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: cfg[k] for k in TRAIN_KEYS})


def load_data(cfg: dict[str, Any], log: Callable[[str], None]) -> Any:
    """Prepared data for a run config (host arrays, preprocessing fitted on the train split)."""
    t0 = time.perf_counter()
    prepared = prepare(cfg["dataset"], root=cfg["data_dir"], val_size=cfg["val_size"], subset=cfg["subset"],
                       preprocess=cfg["preprocess"], seed=cfg["seed"], download=cfg["download"])
    log(f"data: {cfg['dataset']} from {prepared.source}: train {prepared.x_train.shape}, "
        f"val {prepared.x_val.shape}, test {prepared.x_test.shape} ({time.perf_counter() - t0:.1f}s)")
    return prepared


def _checkpoint_tree(trainer: Trainer, cfg: dict[str, Any], prepared: Any) -> dict[str, Any]:
    model, backend = trainer.model, trainer.model.backend
    tree: dict[str, Any] = {
        "config": cfg,
        "model_config": model.config(),
        "model": model.state_dict(),
        "optim": trainer.optimizer.state_dict(backend.to_numpy),
        "trainer": trainer.state(),
        "prep": prepared.preprocessor.state_dict(),
        "data": {"classes": list(prepared.classes), "image_shape": list(prepared.image_shape)},
    }
    if trainer.best_state is not None:
        tree["best"] = {k: backend.to_numpy(v).copy() for k, v in trainer.best_state.items()}
    return tree


def load_model(path: str | Path, device: str = "auto", weights: str = "last") -> tuple[MLP, dict[str, Any]]:
    """A model from a checkpoint on any backend; ``weights`` is ``"last"`` or ``"best"``.

    Returns the model and the whole checkpoint tree (config, preprocessing state, ...).
    """
    tree = ckpt.load(path)
    for key in ("model_config", "model"):
        if key not in tree:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry; it was not written by xpmlp train")
    mc = tree["model_config"]
    model = MLP.from_config(mc, get_backend(device, mc["dtype"]))
    if weights == "best" and "best" not in tree:
        raise CheckpointError(f"{path}: checkpoint holds no best-validation weights; use --weights last")
    if weights not in ("last", "best"):
        raise InputError(f"weights must be 'last' or 'best', not {weights!r}")
    model.load_state_dict(tree[weights if weights == "best" else "model"])
    return model, tree


def _resume_config(cfg: dict[str, Any], resume: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's tree and its run config (the device given now wins)."""
    state = ckpt.load(resume)
    if "config" not in state or "trainer" not in state:
        raise CheckpointError(f"{resume}: not a training checkpoint; give a run's checkpoint.npz")
    return state, {**state["config"], "device": cfg.get("device") or state["config"]["device"]}


def _restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimizer and trainer state back."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optim"], trainer.backend.asarray)
    trainer.load_state(state["trainer"], state.get("best"))


def train_run(cfg: dict[str, Any], out: str | Path, *, resume: str | Path | None = None,
              log: Callable[[str], None] | None = print, progress: str = "auto",
              prepared: Any = None) -> dict[str, Any]:
    """Train one model as ``xpmlp train`` does and write its run folder; returns metrics.

    ``resume`` continues from a checkpoint (its config wins, except the device).
    ``prepared`` reuses already loaded data (studies train many models on one dataset).
    """
    say = log or (lambda line: None)
    out = Path(out)
    state = None
    if resume is not None:
        state, cfg = _resume_config(cfg, resume)
    train_config(cfg).validate()
    backend = get_backend(cfg["device"], cfg["dtype"])  # an unusable device fails before any data is read
    prepared = prepared if prepared is not None else load_data(cfg, say)
    if backend.note:
        say(backend.note)
    sizes = [prepared.x_train.shape[1], *cfg["hidden"], len(prepared.classes)]
    model = MLP(sizes, cfg["activation"], backend=backend, dtype=cfg["dtype"], seed=cfg["seed"], init=cfg["init"])
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"

    def write_checkpoint(t: Trainer) -> None:
        ckpt.save(ckpt_path, _checkpoint_tree(t, cfg, prepared))
        atomic_write_json(out / "history.json", t.history.to_dict())

    trainer = Trainer(model, train_config(cfg), log=say, progress=progress if log else "lines",
                      on_checkpoint=write_checkpoint)
    if state is not None:
        _restore(trainer, state)
        say(f"resuming from {resume} at step {trainer.step}")
    atomic_write_json(out / "config.json", {**cfg, "data": prepared.config, "sizes": sizes, "backend": backend.spec})
    try:
        trainer.fit(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val)
    except DivergenceError:
        atomic_write_json(out / "history.json", trainer.history.to_dict())
        raise
    if trainer.interrupted:
        say(f"stopped at step {trainer.step}; checkpoint written to {ckpt_path}; resume with: "
            f"xpmlp train --resume {ckpt_path} --out {out}")
    write_checkpoint(trainer)
    metrics = _final_metrics(trainer, prepared, cfg)
    atomic_write_json(out / "metrics.json", metrics)
    _write_plots(trainer, cfg, out, say)
    say(f"test accuracy {metrics['test_acc']:.4f} (loss {metrics['test_loss']:.4f}); best val acc "
        f"{metrics['best_val_acc'] if metrics['best_val_acc'] is not None else float('nan'):.4f}; "
        f"{trainer.train_seconds:.1f}s training, {metrics['samples_per_second'] or 0:,.0f} samples/s on "
        f"{backend.spec}; run folder {out}")
    return metrics


def _final_metrics(trainer: Trainer, prepared: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """metrics.json: the test set's loss and accuracy and how the run went."""
    model, history = trainer.model, trainer.history
    X_test, y_test = model.check_x(prepared.x_test), model.check_y(prepared.y_test, len(prepared.y_test))
    test_loss, test_acc = evaluate(model, X_test, y_test)
    last = history.eval[-1] if history.eval else {}
    seconds = trainer.train_seconds
    return {
        "final_val_acc": last.get("val_acc"), "best_val_acc": history.best.get("val_acc"),
        "test_acc": test_acc, "test_loss": test_loss,
        # the epoch's mean minibatch loss (epochs), or the loss at the last log point (iterations)
        "final_loss": last.get("train_loss", history.iteration_loss[-1] if history.iteration_loss else None),
        "final_train_acc": last.get("train_acc"),
        "train_seconds": seconds,
        "samples_per_second": trainer.samples_seen / seconds if seconds else None,
        "steps": trainer.step, "epochs_done": last.get("epoch"),
        "device": str(model.backend.device), "backend": model.backend.spec, "dtype": cfg["dtype"],
        "params": model.num_params(), "sizes": model.sizes, "stopped": history.stopped,
    }


def _write_plots(trainer: Trainer, cfg: dict[str, Any], out: Path, say: Callable[[str], None]) -> None:
    """loss.png and accuracy.png; a plot that fails is a warning, never a lost run."""
    history = trainer.history.to_dict()
    try:
        plots.plot_loss(history, out / "loss.png", title=f"Training loss ({cfg['activation']})")
        if history["eval"]:
            plots.plot_accuracy(history, out / "accuracy.png")
    except Exception as exc:  # a plot must never cost the user a finished run
        say(f"warning: plots not written ({type(exc).__name__}: {exc})")
