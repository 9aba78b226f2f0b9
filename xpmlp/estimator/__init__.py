"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` on xpmlp: ``from xpmlp import MLPClassifier``
(needs ``xpmlp[sklearn]``).

- :mod:`~xpmlp.estimator.classifier`, :mod:`~xpmlp.estimator.regressor`: the estimators.
- :mod:`~xpmlp.estimator.base`: what they share (fitting on any device, the network, pickling).
- :mod:`~xpmlp.estimator.outputs`: the output layers (softmax, logistic, identity, exp) and scores.
- :mod:`~xpmlp.estimator.weights`: ``coefs_`` / ``intercepts_``, read and set.
- :mod:`~xpmlp.estimator.loop`: scikit-learn's stochastic solver on xpmlp's model and optimizers.
- :mod:`~xpmlp.estimator.lbfgs_fit`: scikit-learn's L-BFGS solver on the device.
- :mod:`~xpmlp.estimator.hooks`: scikit-learn's callbacks (``sklearn.callback``) around the epochs.
- :mod:`~xpmlp.estimator.params`: the constructor parameters, checked at fit time.
- :mod:`~xpmlp.estimator.arrays`: which device an input array lives on (:func:`backend_of`).
"""

from __future__ import annotations

try:
    import sklearn  # noqa: F401
except ImportError:
    raise ImportError("xpmlp.MLPClassifier and MLPRegressor need scikit-learn: pip install 'xpmlp[sklearn]'") from None

from .arrays import backend_of
from .classifier import MLPClassifier, expected_failed_checks
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "backend_of", "expected_failed_checks"]
