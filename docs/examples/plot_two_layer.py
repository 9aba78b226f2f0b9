"""
A two-layer network and its training curves
===========================================

Train a 2-64-3 network on three interleaved spirals (2,400 points, made here) with plain SGD,
then plot the training loss of every step and the accuracy after every epoch. The same lines run
on a GPU with ``backend="cuda"``.
"""

import matplotlib.pyplot as plt
import numpy as np

from xpmlp.model import MLP
from xpmlp.train import evaluate, train


def spirals(n_per_class: int, classes: int = 3, noise: float = 0.25, seed: int = 0):
    """Points on ``classes`` interleaved spiral arms, labelled by arm."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), classes)
    label = np.repeat(np.arange(classes), n_per_class)
    angle = 4.0 * radius + label * 2 * np.pi / classes + rng.normal(0, noise, radius.size)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
    return X, label.astype(np.int64)


X, y = spirals(1000)
order = np.random.default_rng(1).permutation(len(y))
X, y = X[order], y[order]
X_train, y_train, X_val, y_val = X[:2400], y[:2400], X[2400:], y[2400:]

# %%
# Build the network and train it for 40 epochs of minibatches of 32.

model = MLP([2, 64, 3], activation="relu", backend="cpu", seed=0)
history = train(model, X_train, y_train, X_val, y_val, epochs=40, lr=0.2, batch_size=32,
                optimizer="momentum", log=None, progress=None)
val_loss, val_acc = evaluate(model, X_val, y_val)
print(f"validation loss {val_loss:.4f}, accuracy {val_acc:.4f}")

# %%
# The history holds the loss of every step and one record per evaluation.

epochs = [record["epoch"] for record in history.eval]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(history.iteration_loss, lw=0.5, alpha=0.6)
left.set(xlabel="step", ylabel="training loss", yscale="log", title="Loss per step")
right.plot(epochs, [r["train_acc"] for r in history.eval], label="train")
right.plot(epochs, [r["val_acc"] for r in history.eval], label="validation")
right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy per epoch")
right.legend()
fig.tight_layout()

# %%
# What the network learned: its decision regions over the plane.

grid = np.linspace(-1.2, 1.2, 200, dtype=np.float32)
gx, gy = np.meshgrid(grid, grid)
regions = model.predict(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
fig, ax = plt.subplots(figsize=(5, 5))
ax.contourf(gx, gy, np.asarray(regions), levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3, cmap="viridis")
ax.scatter(X_val[:, 0], X_val[:, 1], c=y_val, s=6, cmap="viridis")
ax.set(title=f"Decision regions (validation accuracy {val_acc:.3f})", aspect="equal")
