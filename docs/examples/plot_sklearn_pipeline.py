"""
The estimator in a scikit-learn pipeline
========================================

:class:`xpmlp.MLPClassifier` takes scikit-learn's ``MLPClassifier`` parameters, so it drops into a
``Pipeline``, a grid search or ``cross_val_score`` unchanged. Here: scale, reduce to 50 principal
components, classify 5,000 Fashion-MNIST images, then a two-fold grid search over ``alpha``.
``device="cuda"`` would train the same pipeline's network on a GPU.
"""

import warnings

import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xpmlp import MLPClassifier
from xpmlp.data import prepare

# max_iter is kept small for the build: scikit-learn would warn that the fits have not converged
warnings.filterwarnings("ignore", category=ConvergenceWarning)

data = prepare("fashion-mnist", subset=5000, val_size=500, seed=0, log=None)
X_train, y_train = data.x_train, data.y_train
X_test, y_test = data.x_test[:2000], data.y_test[:2000]

pipe = make_pipeline(StandardScaler(), PCA(n_components=50, random_state=0),
                     MLPClassifier(hidden_layer_sizes=(128,), solver="nesterov", learning_rate_init=0.01,
                                   max_iter=15, random_state=0, device="cpu"))
pipe.fit(X_train, y_train)
print(f"test accuracy {pipe.score(X_test, y_test):.4f} after {pipe[-1].n_iter_} epochs")

# %%
# A grid search sees xpmlp's parameters like scikit-learn's.

search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2)
search.fit(X_train, y_train)
print("best:", search.best_params_, f"cross-validated accuracy {search.best_score_:.4f}")

# %%
# Which classes the network confuses with which.

fig, ax = plt.subplots(figsize=(7, 7))
ConfusionMatrixDisplay.from_estimator(search.best_estimator_, X_test, y_test, display_labels=data.classes,
                                      xticks_rotation=60, colorbar=False, ax=ax)
ax.set_title("Confusion matrix on 2,000 test images")
fig.tight_layout()
