"""One training run as ``xpmlp train`` does it: data, model, trainer, and the run folder.

The run folder holds ``config.json``, ``history.json``, ``metrics.json``,
``checkpoint.npz`` (last and best weights, optimizer and trainer state, preprocessing
statistics), ``loss.png`` and ``accuracy.png``. Every file is written atomically.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint as ckpt
from . import plots
from .augment import check_augment
from .backend import FLOAT_DTYPES, get_backend
from .data import check_fingerprint, prepare, resolve_root
from .errors import CheckpointError, DivergenceError, InputError
from .io import atomic_write_json
from .model import MLP
from .network import activation_label, check_stack, layer_from_config, normalize_activation
from .runfolder import RunFolder
from .settings import DEFAULTS, TRAIN_KEYS
from .train import TrainConfig, Trainer, evaluate

#: Settings a resumed run may change (each change is said once); any other must match the checkpoint.
CHANGEABLE_ON_RESUME = ("epochs", "iterations", "lr", "lr_schedule", "reg", "early_stopping", "early_stopping_metric",
                        "log_every", "train_eval_size", "device", "data_dir", "download")
#: A checkpoint is good when its last loss is at most this many times the first evaluated loss.
EXPLODING = 10.0
#: A run whose losses stayed finite has diverged when its last loss is this many times its first.
DIVERGED_GROWTH = 1000.0


def make_config(**overrides: Any) -> dict[str, Any]:
    """The run settings: ``DEFAULTS`` updated with ``overrides``.

    Parameters
    ----------
    **overrides
        Settings by name (``hidden=[500, 500]``, ``activation=["tanh", "relu"]``, ``epochs=5``, ...).

    Returns
    -------
    dict
        Every setting, hidden widths as ints and a one-name activation list as the name.

    Raises
    ------
    InputError
        A hidden width that is not positive.
    """
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown run settings {unknown}; known: {', '.join(DEFAULTS)}")
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in overrides.items()})
    cfg["hidden"] = [int(h) for h in cfg["hidden"]]
    cfg["activation"] = normalize_activation(cfg["activation"])  # --activation relu gives ["relu"]
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
    return {
        "config": cfg,
        "model_config": trainer.model.config(),
        **trainer_state(trainer),
        "prep": prepared.preprocessor.state_dict(),
        "data": {"classes": list(prepared.classes), "image_shape": list(prepared.image_shape),
                 "fingerprint": getattr(prepared, "fingerprint", None), "source": str(prepared.source)},
    }


def _check_finite(path: str | Path, arrays: dict[str, Any], what: str) -> None:
    for name, value in arrays.items():
        if not np.isfinite(np.asarray(value)).all():
            raise CheckpointError(f"{path}: the {what} {name} holds NaN or infinite values (the run had "
                                  "diverged); use an earlier checkpoint or train again with a lower --lr")


def checked_model_config(path: str | Path, config: Any) -> dict[str, Any]:
    """A checkpoint's model config, or a CheckpointError naming what is missing or wrong."""
    if not isinstance(config, dict) or not {"sizes", "activation", "init", "dtype", "seed"} <= set(config):
        raise CheckpointError(f"{path}: the checkpoint's model config is incomplete; use another checkpoint")
    sizes = config["sizes"]
    if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                              for s in sizes):
        raise CheckpointError(f"{path}: the checkpoint's layer sizes {sizes!r} are not positive integers")
    if config["dtype"] not in FLOAT_DTYPES:
        raise CheckpointError(f"{path}: the checkpoint's dtype {config['dtype']!r} is not float32 or float64")
    return config


def _check_weights(path: str | Path, config: dict[str, Any], state: Any) -> None:
    """The weights are real floating arrays of the config's dtype, finite."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint holds no weights; use another checkpoint")
    for name, value in state.items():
        if not isinstance(value, np.ndarray) or value.dtype != np.dtype(config["dtype"]):
            kind = getattr(value, "dtype", type(value).__name__)
            raise CheckpointError(f"{path}: weight {name} is {kind}, not {config['dtype']}; the checkpoint was "
                                  "altered or damaged: use another checkpoint")
    _check_finite(path, state, "weight")


def load_model(path: str | Path, device: str = "auto", weights: str = "last") -> tuple[MLP, dict[str, Any]]:
    """A model from a checkpoint on any backend.

    Parameters
    ----------
    path : str or Path
        A ``checkpoint.npz`` of a run folder.
    device : str, default "auto"
        The backend to load onto (a device spec).
    weights : {"last", "best"}, default "last"
        The last weights, or the best-validation ones.

    Returns
    -------
    (MLP, dict)
        The model (a ``Sequential`` for a network built from layers; an old checkpoint with one
        activation name loads as the ``MLP`` it was) and the whole checkpoint tree (config,
        preprocessing state, ...).

    Raises
    ------
    CheckpointError
        A file that is not an xpmlp checkpoint, or damaged, altered or incomplete.
    """
    if weights not in ("last", "best"):
        raise InputError(f"weights must be 'last' or 'best', not {weights!r}")
    tree = ckpt.load(path)
    for key in ("model_config", "model"):
        if key not in tree:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry; it was not written by xpmlp train")
    if weights == "best" and "best" not in tree:
        raise CheckpointError(f"{path}: checkpoint holds no best-validation weights; use --weights last")
    config = checked_model_config(path, tree["model_config"])
    state = tree["best" if weights == "best" else "model"]
    _check_weights(path, config, state)
    model = _rebuild(path, config, state, get_backend(device, config["dtype"]))
    model.load_state_dict(state)
    return model, tree


def _rebuild(path: str | Path, config: dict[str, Any], state: dict[str, Any], backend: Any) -> MLP:
    """The checkpoint's network (weights of its seed), after checking its weights' shapes against its
    sizes, so that an altered file cannot make it allocate more than the file holds."""
    sizes = config["sizes"]
    expected = {f"W{i}": (a, b) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), start=1)}
    if any(tuple(getattr(state.get(k), "shape", ())) != shape for k, shape in expected.items()):
        raise CheckpointError(f"{path}: the checkpoint's weights do not have the shapes of its layer sizes "
                              f"{sizes}; the file was altered or damaged: use another checkpoint")
    try:
        layers = config.get("layers")
        if layers is not None:  # a network of layers: its widths, before anything is allocated
            if not isinstance(layers, list):
                raise InputError(f"its layers are a {type(layers).__name__}, not a list")
            widths = check_stack([layer_from_config(c) for c in layers], allow_stacked_activations=True)
            if widths != sizes:
                raise InputError(f"its layers give sizes {widths}, not its recorded {sizes}")
        return MLP.from_config(config, backend)
    except InputError as exc:
        raise CheckpointError(f"{path}: the checkpoint's network cannot be rebuilt ({exc}); the file was altered "
                              "or damaged: use another checkpoint") from None


def resume_settings(given: dict[str, Any], saved: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """The checkpoint's settings with the ones given now applied where a run can change them.

    Settings that may change on resume (``CHANGEABLE_ON_RESUME``) are applied and each change is
    said once ("resuming with lr 0.01 (was 1000)"); any other setting given with another value
    than the checkpoint's is refused: it would make the second half of the run another run.
    A setting newer than the checkpoint (absent from it) takes its default: what the run had then.
    """
    saved = {**DEFAULTS, **saved}
    cfg = dict(saved)
    for key, value in given.items():
        if value is None or key not in DEFAULTS or value == saved.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        if key not in CHANGEABLE_ON_RESUME:
            raise InputError(f"{flag} {value!r} differs from the checkpoint's {saved.get(key)!r}; a resumed run "
                             f"keeps its {key.replace('_', ' ')} (start a new run to change it)")
        if key in ("epochs", "iterations") and saved.get(key) is None:
            raise InputError(f"{flag}: the checkpoint's run counts "
                             f"{'iterations' if key == 'epochs' else 'epochs'}; a resumed run keeps its regime")
        cfg[key] = value
        say(f"resuming with {key.replace('_', ' ')} {value} (was {saved.get(key)})")
    return cfg


def _load_resume(resume: str | Path) -> dict[str, Any]:
    """The checkpoint tree of a run to resume, checked: a training checkpoint with finite weights."""
    state = ckpt.load(resume)
    if not {"config", "trainer", "model", "optim"} <= set(state) or not isinstance(state["trainer"], dict):
        raise CheckpointError(f"{resume}: not a training checkpoint; give a run's checkpoint.npz")
    _check_weights(resume, checked_model_config(resume, state.get("model_config")), state["model"])
    step = state["trainer"].get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{resume}: the checkpoint's step {step!r} is not a count of steps; it is damaged")
    return state


def _check_same_data(state: dict[str, Any], prepared: Any, resume: str | Path, say: Callable[[str], None]) -> None:
    """A resumed run trains on the data it started on: the training data's fingerprints must match."""
    expected = state.get("data", {}).get("fingerprint") if isinstance(state.get("data"), dict) else None
    found = getattr(prepared, "fingerprint", None)
    if expected is None or found is None:
        say(f"{resume}: the checkpoint holds no data fingerprint; the training data were not compared")
        return
    check_fingerprint(expected, found, str(resume))


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """The weights, optimizer and trainer state a checkpoint holds, as host arrays (``restore_trainer``'s input)."""
    backend = trainer.model.backend
    state: dict[str, Any] = {"model": trainer.model.state_dict(),
                             "optim": trainer.optimizer.state_dict(backend.to_numpy), "trainer": trainer.state()}
    if trainer.best_state is not None:
        state["best"] = {k: backend.to_numpy(v).copy() for k, v in trainer.best_state.items()}
    return state


def restore_trainer(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimizer and trainer state back (what ``--resume`` does)."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optim"], trainer.backend.asarray)
    trainer.load_state(state["trainer"], state.get("best"))


def is_good_checkpoint(trainer: Trainer) -> bool:
    """Whether the trainer's state is worth keeping: finite weights, and a last loss that is finite
    and not exploding (at most ``EXPLODING`` times the first evaluated training loss)."""
    history = trainer.history
    if not history.iteration_loss or not math.isfinite(history.iteration_loss[-1]):
        return False
    first = history.eval[0]["train_loss"] if history.eval else history.iteration_loss[0]
    if history.iteration_loss[-1] > EXPLODING * max(first, 1e-12):
        return False
    xp = trainer.model.xp
    with trainer.backend.context():  # one reduction per parameter, at an evaluation point only
        return all(bool(xp.all(xp.isfinite(p))) for p in trainer.model.params.values())


class _Checkpointer:
    """The trainer's ``on_checkpoint``: writes history.json, and checkpoint.npz when the state is good."""

    def __init__(self, out: Path, cfg: dict[str, Any], prepared: Any) -> None:
        self.out, self.cfg, self.prepared = out, cfg, prepared
        self.last_good_step: int | None = None

    def __call__(self, trainer: Trainer) -> None:
        atomic_write_json(self.out / "history.json", trainer.history.to_dict())
        if is_good_checkpoint(trainer):
            ckpt.save(self.out / "checkpoint.npz", _checkpoint_tree(trainer, self.cfg, self.prepared))
            self.last_good_step = trainer.step

    def kept(self) -> str:
        path = self.out / "checkpoint.npz"
        if self.last_good_step is not None:
            return f"the last good checkpoint (step {self.last_good_step}) is kept in {path}"
        if path.exists():
            return f"the checkpoint this run resumed from is kept in {path}"
        return "no checkpoint was written"


def _say_interrupted(trainer: Trainer, out: Path) -> None:
    # to stderr, even with --quiet: the one thing an interrupted user must see
    path = out / "checkpoint.npz"
    print(f"{trainer.interrupted_by or 'interrupted'}: stopped at step {trainer.step}; checkpoint written to "
          f"{path}; resume with: xpmlp train --resume {path} --out {out}", file=sys.stderr, flush=True)


def train_run(cfg: dict[str, Any], out: str | Path, *, resume: str | Path | None = None, overwrite: bool = False,
              log: Callable[[str], None] | None = print, progress: str = "auto",
              prepared: Any = None, model: MLP | None = None) -> dict[str, Any]:
    """Train one model as ``xpmlp train`` does and write its run folder.

    Parameters
    ----------
    cfg : dict
        The run settings (:func:`make_config`).
    out : str or Path
        The run folder (config.json, history.json, metrics.json, checkpoint.npz, plots).
    resume : str or Path, optional
        Continue from this checkpoint; ``cfg`` then holds the settings given now (see
        ``resume_settings``).
    overwrite : bool, default False
        Replace a finished run in ``out`` (refused otherwise, unless resuming).
    log : callable or None, default print
        Where progress lines go (None: silent).
    progress : str, default "auto"
        The Trainer's progress display.
    prepared : Prepared, optional
        Already loaded data (studies train many models on one data set).
    model : MLP, optional
        A network of your own (``Sequential([...])``) instead of the one ``cfg``'s ``hidden`` and
        ``activation`` name; the run records its layers, so ``xpmlp evaluate`` and ``xpmlp train
        --resume`` rebuild it from the checkpoint.

    Returns
    -------
    dict
        The metrics (as metrics.json holds them).

    Raises
    ------
    InputError
        Bad settings, or a model whose input or class count does not fit the data.
    """
    say = log or (lambda line: None)
    cfg, state, model = _settle(cfg, resume, model, say)
    backend = model.backend if model is not None else get_backend(cfg["device"], cfg["dtype"])
    with RunFolder(out, resume=resume is not None, overwrite=overwrite) as folder:
        prepared = prepared if prepared is not None else load_data(cfg, say)
        if state is not None:
            _check_same_data(state, prepared, resume, say)
        if backend.note:
            say(backend.note)
        trainer = _build_trainer(cfg, backend, prepared, folder.path, say, progress if log else "lines", model)
        if state is not None:
            restore_trainer(trainer, state)
            say(f"resuming from {resume} at step {trainer.step}")
        atomic_write_json(folder.path / "config.json",
                          {**cfg, "data": prepared.config, "sizes": trainer.model.sizes, "backend": backend.spec})
        _fit(trainer, prepared)
        if trainer.interrupted:
            _say_interrupted(trainer, folder.path)
        else:
            _flag_divergence(trainer, len(prepared.classes), cfg)
        trainer.on_checkpoint(trainer)
        metrics = _final_metrics(trainer, prepared, cfg)
        atomic_write_json(folder.path / "metrics.json", metrics)
        _write_plots(trainer, cfg, folder.path, say)
    say(f"test accuracy {metrics['test_acc']:.4f} (loss {metrics['test_loss']:.4f}); best val acc "
        f"{metrics['best_val_acc'] if metrics['best_val_acc'] is not None else float('nan'):.4f}; "
        f"{trainer.train_seconds:.1f}s training, {metrics['samples_per_second'] or 0:,.0f} samples/s on "
        f"{backend.spec}; run folder {folder.path}")
    return metrics


def _settle(cfg: dict[str, Any], resume: str | Path | None, model: MLP | None,
            say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any] | None, MLP | None]:
    """The run's checked settings, the checkpoint to resume (or None) and the model given or recorded.

    Everything a bad flag or a bad checkpoint can fail happens here, before the run folder is touched.
    """
    state = None
    if resume is not None:
        state = _load_resume(resume)
        cfg = resume_settings(cfg, state["config"], say)
    train_config(cfg).validate()
    check_augment(cfg["augment"], cfg["dataset"])
    if cfg.get("data_dir") is not None:
        cfg = {**cfg, "data_dir": resolve_root(cfg["data_dir"])}  # recorded absolute: resumable from anywhere
    if model is None and state is not None and "layers" in state.get("model_config", {}):
        model = _rebuild(resume, checked_model_config(resume, state["model_config"]), state.get("model", {}),
                         get_backend(cfg["device"], cfg["dtype"]))  # a network built from layers
    if model is not None:
        cfg = _config_of_model(cfg, model)
    return cfg, state, model


def divergence(history: Any, num_classes: int) -> str | None:
    """Why a run whose losses stayed finite has still gone wrong, or None when it has not.

    Parameters
    ----------
    history : History
        The finished run's record.
    num_classes : int
        The number of classes (chance accuracy is 1 / num_classes).

    Returns
    -------
    str or None
        ``"the loss grew from A to B"`` when the last step's loss is over ``DIVERGED_GROWTH`` times
        the first's, ``"accuracy ... at chance ..."`` when after the first epoch (or window) the
        last evaluation is at most 1.5x chance while its training loss rose; else None.
    """
    losses = [x for x in history.iteration_loss if math.isfinite(x)]
    if len(losses) >= 2 and losses[-1] > DIVERGED_GROWTH * max(losses[0], 1e-12):
        return f"the loss grew from {losses[0]:.4g} to {losses[-1]:.4g}, over {DIVERGED_GROWTH:g}x"
    if len(history.eval) >= 2:
        first, last = history.eval[0], history.eval[-1]
        acc = last.get("val_acc") if last.get("val_acc") is not None else last.get("train_acc")
        if acc is not None and acc <= 1.5 / num_classes and last["train_loss"] > first["train_loss"]:
            return (f"accuracy {acc:.3f} is at chance (1/{num_classes}) while the training loss rose from "
                    f"{first['train_loss']:.4g} to {last['train_loss']:.4g}")
    return None


def _flag_divergence(trainer: Trainer, num_classes: int, cfg: dict[str, Any]) -> None:
    """A run that completed but went wrong says so: a warning on stderr and ``stopped: diverged: ...``."""
    reason = divergence(trainer.history, num_classes)
    if reason is None:
        return
    trainer.history.stopped = f"diverged: {reason}"
    print(f"warning: the run diverged: {reason}; the learning rate ({cfg['lr']:g}) is most likely too high: "
          "lower --lr (e.g. by 10x), or add --reg or --lr-schedule", file=sys.stderr, flush=True)


def _config_of_model(cfg: dict[str, Any], model: MLP) -> dict[str, Any]:
    """``cfg`` describing a given model: its hidden widths, activations, dtype and device."""
    if not isinstance(model, MLP):
        raise InputError(f"model must be an xpmlp model (MLP or Sequential), not {type(model).__name__}")
    return {**cfg, "hidden": model.sizes[1:-1], "activation": model.activation, "dtype": model.dtype,
            "device": model.backend.spec, "dropout": model.dropout}


def _build_trainer(cfg: dict[str, Any], backend: Any, prepared: Any, out: Path, say: Callable[[str], None],
                   progress: str, model: MLP | None = None) -> Trainer:
    sizes = [prepared.x_train.shape[1], *cfg["hidden"], len(prepared.classes)]
    if model is None:
        model = MLP(sizes, cfg["activation"], backend=backend, dtype=cfg["dtype"], seed=cfg["seed"],
                    init=cfg["init"], dropout=cfg["dropout"])
    elif [model.sizes[0], model.sizes[-1]] != [sizes[0], sizes[-1]]:
        raise InputError(f"the model takes {model.sizes[0]} inputs and gives {model.sizes[-1]} classes, but "
                         f"{cfg['dataset']} has {sizes[0]} and {sizes[-1]}; build its first Linear with "
                         f"{sizes[0]} inputs and its last with {sizes[-1]} outputs")
    return Trainer(model, train_config(cfg), log=say, progress=progress,
                   on_checkpoint=_Checkpointer(out, cfg, prepared), image_shape=_image_shape(prepared))


def _image_shape(prepared: Any) -> tuple[int, int, int] | None:
    """(H, W, C) of the prepared data's images (None for data a program passed in without one)."""
    shape = getattr(prepared, "image_shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def _fit(trainer: Trainer, prepared: Any) -> None:
    """Trainer.fit; on divergence, history.json says so and the error says which checkpoint is kept."""
    checkpointer = trainer.on_checkpoint
    try:
        with np.errstate(all="ignore"):  # overflow on the way to a divergence is reported once, by the trainer
            trainer.fit(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val)
    except DivergenceError as exc:
        atomic_write_json(checkpointer.out / "history.json", trainer.history.to_dict())
        raise DivergenceError(f"{exc}; {checkpointer.kept()}") from None


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
        "diverged": history.stopped.startswith("diverged"), "interrupted_by": trainer.interrupted_by or None,
    }


def _write_plots(trainer: Trainer, cfg: dict[str, Any], out: Path, say: Callable[[str], None]) -> None:
    """loss.png and accuracy.png; a plot that fails is a warning, never a lost run."""
    history = trainer.history.to_dict()
    try:
        plots.plot_loss(history, out / "loss.png", title=f"Training loss ({activation_label(cfg['activation'])})")
        if history["eval"]:
            plots.plot_accuracy(history, out / "accuracy.png")
    except Exception as exc:  # a plot must never cost the user a finished run
        say(f"warning: plots not written ({type(exc).__name__}: {exc})")
