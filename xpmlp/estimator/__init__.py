"""scikit-learn's ``MLPClassifier`` on xpmlp: ``from xpmlp import MLPClassifier`` (needs ``xpmlp[sklearn]``).

- :mod:`~xpmlp.estimator.classifier`: the estimator (fit, partial_fit, predict, pickling, tags).
- :mod:`~xpmlp.estimator.loop`: scikit-learn's stochastic solver on xpmlp's model and optimizers.
- :mod:`~xpmlp.estimator.hooks`: scikit-learn's callbacks (``sklearn.callback``) around the epochs.
- :mod:`~xpmlp.estimator.params`: the constructor parameters, checked at fit time.
- :mod:`~xpmlp.estimator.arrays`: which device an input array lives on (:func:`backend_of`).
"""

from __future__ import annotations

try:
    import sklearn  # noqa: F401
except ImportError:
    raise ImportError("xpmlp.MLPClassifier needs scikit-learn: pip install 'xpmlp[sklearn]'") from None

from .arrays import backend_of
from .classifier import MLPClassifier, expected_failed_checks

__all__ = ["MLPClassifier", "backend_of", "expected_failed_checks"]
