"""The estimator's training loop: scikit-learn's stochastic solver, step for step, on any backend.

What happens in one ``fit`` is what scikit-learn's ``_fit_stochastic`` does, so the same
hyper-parameters mean the same training:

* each epoch (scikit-learn's "iteration") shuffles the sample order with the estimator's
  ``RandomState`` (``sklearn.utils.shuffle``, the same draws) and walks it in minibatches of
  ``batch_size`` (the last one shorter);
* each minibatch B minimises  Σ_{i∈B} wᵢ ℓᵢ / Σ_{i∈B} wᵢ + α/(2 Σ_{i∈B} wᵢ) · Σₖ‖Wₖ‖²_F
  (wᵢ = 1 without weights, so the penalty is α/(2|B|)·‖W‖²): xpmlp's loss with
  λ = α / Σ_{i∈B} wᵢ, computed on the host per batch;
* Adam adds its ε to √v rather than to √v̂ as scikit-learn does (xpmlp's Adam is told
  ε' = ε / √(1 − β₂ᵗ) before each step, which is the same update);
* after each epoch: the mean training loss, the tolerance test (training loss, or the
  validation accuracy with ``early_stopping``), ``invscaling`` / ``adaptive`` learning rates.

Off the hot path, as xpmlp's Trainer: the data moves to the device once per fit, the batch
order once per epoch (one transfer), each step gathers its batch with ``xp.take``; the
per-step losses stay on the device and are read once per epoch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend
from ..errors import NonFiniteWeightsError
from ..model import MLP
from ..optim import Adam, Optimizer, make_optimizer
from ..sparse import is_sparse, take_rows
from .hooks import NO_HOOKS, EpochHooks, user_stacklevel
from .params import Settings

Array = Any


@dataclass
class FitData:
    """The training data of one fit, on the model's device."""

    X: Array
    y: Array                        # class indices (int64, softmax) or float targets (N, K)
    w: Array | None                 # sample weights (model dtype); None: unweighted
    w_host: np.ndarray | None       # the same weights on the host (per-batch sums)
    y_host: np.ndarray              # the same targets on the host (the stratified split)
    n_classes: int                  # the network's outputs
    rows: np.ndarray | None = None  # the training rows when a validation split is held out
    X_val: Array | None = None
    y_val: Array | None = None
    w_val: Array | None = None

    @property
    def n_train(self) -> int:
        return int(self.X.shape[0]) if self.rows is None else len(self.rows)


def make_solver(s: Settings, backend: Backend) -> Optimizer:
    """xpmlp's optimizer for the settings (SGD / momentum / Nesterov, Adam, AdamW), bound to ``backend``."""
    if s.optimizer in ("adam", "adamw"):
        kw: dict[str, float] = {"beta1": s.beta_1, "beta2": s.beta_2, "eps": s.epsilon}
        if s.optimizer == "adamw":
            kw["weight_decay"] = s.weight_decay
        return make_optimizer(s.optimizer, s.lr, backend=backend, **kw)
    return make_optimizer(s.optimizer, s.lr, momentum=s.momentum, backend=backend)


def batch_plan(n: int, batch: int, rows: np.ndarray | None, w_host: np.ndarray | None,
               alpha: float) -> list[tuple[int, int, float]]:
    """``(start, stop, λ)`` of each minibatch of an epoch, λ = α / Σ_{i∈B} wᵢ (wᵢ = 1 unweighted).

    A batch whose weights are all zero carries no information and is skipped (scikit-learn
    would divide by zero there).
    """
    starts = np.arange(0, n, batch)
    stops = np.minimum(starts + batch, n)
    if w_host is None:
        sums = (stops - starts).astype(np.float64)
    else:
        sums = np.add.reduceat(w_host if rows is None else w_host[rows], starts)
    return [(int(a), int(b), alpha / float(t)) for a, b, t in zip(starts, stops, sums) if t > 0]


def class_indices(model: MLP, X: Array) -> Array:
    """argmax of the logits of an already checked device X, in batches (on the device)."""
    xp = model.xp
    parts = [xp.argmax(z, axis=1) for _, _, z in model.batched_logits(X)]
    with model.backend.context():
        return xp.concat(parts, axis=0) if len(parts) != 1 else parts[0]


class StochasticLoop:
    """The epochs of ``fit`` / ``partial_fit``; mixed into the estimator, whose attributes it updates."""

    verbose: Any
    shuffle: bool
    _random_state: Any
    _optimizer: Optimizer | None

    def _loss(self) -> Any:  # the estimator's output loss (BaseMLP)
        raise NotImplementedError

    def _validation_score(self, model: MLP, X: Array, y: Array, w: Array | None) -> float:
        """The held-out score of early stopping: accuracy (classifier) or R² (regressor), one read."""
        raise NotImplementedError

    def _stratified_split(self, data: FitData) -> bool:
        """Whether early stopping's split is stratified by the (one-column) targets."""
        return False

    def _init_records(self, early_stopping: bool) -> None:
        """scikit-learn's fitted bookkeeping, fresh (first fit, or a fit without warm_start)."""
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self._best_params: dict[str, Array] | None = None
        if early_stopping:
            self.validation_scores_: list[float] | None = []
            self.best_validation_score_: float | None = -math.inf
            self.best_loss_: float | None = None
        else:
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = math.inf, None, None

    def _fit_stochastic(self, model: MLP, data: FitData, s: Settings, incremental: bool,
                        early_stopping: bool, hooks: EpochHooks = NO_HOOKS) -> None:
        """Epochs until max_iter, the tolerance test or a callback (``hooks``) says stop; one if ``incremental``."""
        if not incremental or self._optimizer is None:
            self._optimizer = make_solver(s, model.backend)
        opt = self._optimizer.bind(model.backend)
        if early_stopping:
            self._split_validation(model, data, s)
        n = data.n_train
        batch = min(200, n) if s.batch_size is None else s.batch_size
        if batch > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=user_stacklevel())
            batch = n
        order = np.arange(n)
        diverged = False
        try:
            self.n_iter_ = 0
            for _ in range(s.max_iter):
                hooks.begin_epoch()
                if self.shuffle:
                    order = _shuffled(order, self._random_state)
                rows = (order if data.rows is None else data.rows[order]) if self.shuffle else data.rows
                self.loss_ = self._run_epoch(model, opt, data, rows, batch, s) / n
                diverged = not math.isfinite(self.loss_)
                stop = self._end_of_epoch(model, opt, data, s, n, incremental) or diverged
                if hooks.end_epoch() or stop:
                    break
        except KeyboardInterrupt:
            hooks.abandon_epoch()
            warnings.warn("Training interrupted by user.", stacklevel=user_stacklevel())
        best = getattr(self, "_best_params", None) if early_stopping else None
        if best is not None:
            with model.backend.context():
                for name, value in best.items():
                    model.net.set_param(name, value * 1.0)  # a copy: later training must not move the best
        if diverged:
            self._report_divergence(best is not None)

    def _report_divergence(self, best_kept: bool) -> None:
        """A non-finite epoch loss stopped the epochs (later ones could not recover): warn when early
        stopping's best weights are kept, as scikit-learn then fits without error; raise otherwise."""
        from sklearn.exceptions import ConvergenceWarning

        where = f"the loss is {self.loss_} after epoch {self.n_iter_}"
        fix = "lower learning_rate_init, standardise X (e.g. StandardScaler) or raise alpha"
        if best_kept:
            warnings.warn(f"Training diverged ({where}); early stopping's best weights (validation score "
                          f"{self.best_validation_score_:g}) are kept. To train further, {fix}.", ConvergenceWarning,
                          stacklevel=user_stacklevel())
            return
        raise NonFiniteWeightsError(f"Solver produced non-finite parameter weights. The input data may contain large "
                                    f"values and need to be preprocessed: {where}; {fix}")

    def _run_epoch(self, model: MLP, opt: Optimizer, data: FitData, rows: np.ndarray | None, batch: int,
                   s: Settings) -> float:
        """One pass over the training rows (``rows`` None: all of X in order); Σ batch loss · batch size."""
        backend, xp = model.backend, model.xp
        n = data.n_train
        plan = batch_plan(n, batch, rows, data.w_host, s.alpha)
        adam = isinstance(opt, Adam)
        fused = opt.can_fuse
        loss_fn = self._loss()
        losses = []
        with backend.context():
            y, w, rows_dev = data.y, data.w, None
            if rows is not None:
                rows_dev = backend.asarray(rows)  # one transfer per epoch
                # labels and weights in this epoch's order at once: one gather each instead of one per step
                y = xp.take(data.y, rows_dev, axis=0)
                w = None if data.w is None else xp.take(data.w, rows_dev, axis=0)
            for start, stop, reg in plan:
                yb, wb = y[start:stop, ...], None if w is None else w[start:stop]
                Xb = _batch(data.X, rows_dev, start, stop, xp)
                if adam:  # scikit-learn's ε on √v: xpmlp's Adam adds ε'·√(1−β₂ᵗ) to √v
                    opt.eps = s.epsilon / math.sqrt(1.0 - s.beta_2 ** (opt.t + 1))
                if fused:  # SGD family: the update folded into each weight-gradient GEMM (same numbers)
                    loss = model.fused_step(Xb, yb, reg, opt, sample_weight=wb, loss_fn=loss_fn)
                else:
                    loss, grads = model.loss(Xb, yb, reg, check=False, sample_weight=wb, loss_fn=loss_fn)
                    opt.step(model.params, grads)
                losses.append(loss)
            if not losses:
                return 0.0
            values = backend.to_numpy(xp.stack(losses)).astype(np.float64)  # the epoch's one read
        return float(values @ np.array([stop - start for start, stop, _ in plan], dtype=np.float64))

    def _end_of_epoch(self, model: MLP, opt: Optimizer, data: FitData, s: Settings, n: int,
                      incremental: bool) -> bool:
        """scikit-learn's end-of-iteration bookkeeping; True when training stops here."""
        self.n_iter_ += 1
        self.t_ += n
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        self._update_no_improvement_count(model, data, s)
        if not math.isfinite(self.loss_):
            return True
        if s.sgd_family and s.learning_rate == "invscaling":
            opt.lr = s.lr / (self.t_ + 1) ** s.power_t
        if self._no_improvement_count > s.n_iter_no_change:
            if self._trigger_stopping(opt, s, data.X_val is not None):
                return True
            self._no_improvement_count = 0
        if incremental:
            return True
        if self.n_iter_ == s.max_iter:
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({s.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning, stacklevel=user_stacklevel())
        return False

    def _update_no_improvement_count(self, model: MLP, data: FitData, s: Settings) -> None:
        if data.X_val is not None:
            score = self._validation_score(model, data.X_val, data.y_val, data.w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            best = self.best_validation_score_
            self._no_improvement_count = self._no_improvement_count + 1 if score < best + s.tol else 0
            if score > best:
                self.best_validation_score_ = score
                with model.backend.context():
                    self._best_params = {k: v * 1.0 for k, v in model.params.items()}  # device copies
        else:
            loss = self.loss_curve_[-1]
            self._no_improvement_count = self._no_improvement_count + 1 if loss > self.best_loss_ - s.tol else 0
            self.best_loss_ = min(self.best_loss_, loss)

    def _trigger_stopping(self, opt: Optimizer, s: Settings, early_stopping: bool) -> bool:
        """Stop, or with ``learning_rate='adaptive'`` (SGD family) divide the learning rate by 5."""
        what = "Validation score did not improve" if early_stopping else "Training loss did not improve"
        msg = f"{what} more than tol={s.tol:f} for {s.n_iter_no_change:g} consecutive epochs."
        if not (s.sgd_family and s.learning_rate == "adaptive"):
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if opt.lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        opt.lr /= 5.0
        if self.verbose:
            print(msg + f" Setting learning rate to {opt.lr:f}")
        return False

    def _split_validation(self, model: MLP, data: FitData, s: Settings) -> None:
        """Hold out ``validation_fraction`` of the rows with scikit-learn's draws (stratified for two classes)."""
        from sklearn.model_selection import train_test_split

        rows = np.arange(int(data.X.shape[0]))
        # scikit-learn stratifies a classifier's split only when its output is one logistic unit: two classes
        stratify = data.y_host > 0.5 if self._stratified_split(data) else None  # an (n, 1) bool column, as scikit-learn
        train, val = train_test_split(rows, random_state=self._random_state, test_size=s.validation_fraction,
                                      stratify=stratify)
        if len(val) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        backend, xp = model.backend, model.xp
        data.rows = train
        with backend.context():
            val_dev = backend.asarray(val)
            data.X_val = take_rows(data.X, val) if is_sparse(data.X) else xp.take(data.X, val_dev, axis=0)
            data.y_val = xp.take(data.y, val_dev, axis=0)
            data.w_val = None if data.w is None else xp.take(data.w, val_dev, axis=0)


def _batch(X: Array, rows_dev: Array | None, start: int, stop: int, xp: Any) -> Array:
    """The minibatch X[rows[start:stop]] (X[start:stop] without an order): a gather on the device, or
    the sparse rows (CSR) of a sparse X; the epoch's order is on the device already (no transfer)."""
    if is_sparse(X):
        return X[start:stop] if rows_dev is None else take_rows(X, rows_dev[start:stop])
    return X[start:stop, ...] if rows_dev is None else xp.take(X, rows_dev[start:stop], axis=0)


def _shuffled(order: np.ndarray, random_state: Any) -> np.ndarray:
    from sklearn.utils import shuffle

    return shuffle(order, random_state=random_state)
