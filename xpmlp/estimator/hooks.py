"""scikit-learn's callback API (``sklearn.callback``, scikit-learn >= 1.9) around the estimator's epochs.

The task tree follows the protocol scikit-learn's own estimators use: ``fit`` is the root task
(``partial_fit`` for ``partial_fit``) with one sequential subtask ``epoch`` per epoch, at most
``max_iter`` of them (one for ``partial_fit``). Every task's begin and end hooks receive ``X``,
``y`` (the labels, on the host) and ``metadata`` (``{"sample_weight": ...}`` when given); the end
hooks can also ask for ``fitted_estimator``, a copy that predicts as the estimator does at that
point. That copy, the only thing that touches the weights, is built lazily: only when a callback
asks for it, at the end of an epoch, never per minibatch, so callbacks that do not ask add no
host synchronisation. An end hook that returns True stops the epochs, as it stops scikit-learn's.

On scikit-learn < 1.9 (no ``sklearn.callback``) :class:`CallbackSupportMixin` adds nothing and the
hooks are skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import sklearn

#: Frames in these folders are xpmlp's or scikit-learn's, never the user's line a warning should name.
_LIBRARY_DIRS = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
                 os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the user's line.

    The first frame outside xpmlp and scikit-learn (whose callback wrapper, when present, adds a
    frame between ``fit`` and xpmlp's code), counted from the caller of this function.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level

try:
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # scikit-learn < 1.9 has no callback API
    class CallbackSupportMixin:  # type: ignore[no-redef]
        """Stand-in for scikit-learn < 1.9: no ``set_callbacks``, no callback context."""

        def _init_callback_context(self, **kwargs: Any) -> None:
            return None

    def with_callbacks(method: Callable[..., Any]) -> Callable[..., Any]:  # type: ignore[no-redef]
        """Stand-in for scikit-learn < 1.9: ``method`` itself."""
        return method


class EpochHooks:
    """The callback hooks of one ``fit`` / ``partial_fit``: its root task and one subtask per epoch.

    Parameters
    ----------
    estimator : MLPClassifier
        The estimator being fitted.
    ctx : sklearn.callback.CallbackContext or None
        The fit's root context (``estimator._init_callback_context(...)``); None: no hooks.
    snapshot : callable
        Returns the attributes that make a copy of ``estimator`` predict as it does now; called
        only when a callback asks for ``fitted_estimator``.
    **fields : Any
        ``X``, ``y``, ``metadata``: what every hook is given.
    """

    def __init__(self, estimator: Any, ctx: Any, snapshot: Callable[[], dict[str, Any]], **fields: Any) -> None:
        self.estimator, self.ctx, self.snapshot, self.fields = estimator, ctx, snapshot, fields
        self._epoch: Any = None

    def begin_fit(self) -> None:
        """The root task's begin hooks."""
        if self.ctx is not None:
            self.ctx.call_on_fit_task_begin(estimator=self.estimator, **self.fields)

    def end_fit(self) -> None:
        """The root task's end hooks (after the epochs; a stop request here has nothing left to stop)."""
        if self.ctx is not None:
            self.ctx.call_on_fit_task_end(estimator=self.estimator, reconstruction_attributes=self.snapshot,
                                          **self.fields)

    def begin_epoch(self) -> None:
        """A new ``epoch`` subtask and its begin hooks."""
        if self.ctx is not None:
            self._epoch = self.ctx.subcontext(task_name="epoch")
            self._epoch.call_on_fit_task_begin(estimator=self.estimator, **self.fields)

    def end_epoch(self) -> bool:
        """The epoch's end hooks, after the epoch's bookkeeping; True when a callback asks to stop."""
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return False
        return bool(epoch.call_on_fit_task_end(estimator=self.estimator, reconstruction_attributes=self.snapshot,
                                               **self.fields))

    def abandon_epoch(self) -> None:
        """End an epoch cut short (Ctrl-C) as an empty task, so every begin has its end."""
        epoch, self._epoch = self._epoch, None
        if epoch is not None:
            epoch.call_on_fit_task_end(estimator=self.estimator)


NO_HOOKS = EpochHooks(None, None, dict)
