"""
What the first layer sees: a weight grid
========================================

Each unit of the first layer has one weight per pixel, so its 784 weights can be drawn as a
28×28 picture of what excites it. Train 784-100-10 on 6,000 Fashion-MNIST images and draw the
first 100 units with :func:`xpmlp.plots.tile_weights` (``xpmlp compare`` writes the same grids
as ``W1_<activation>.png``).
"""

import matplotlib.pyplot as plt

from xpmlp.backend import to_numpy
from xpmlp.data import prepare
from xpmlp.model import MLP
from xpmlp.plots import tile_weights
from xpmlp.train import evaluate, train

data = prepare("fashion-mnist", subset=6000, val_size=1000, seed=0, log=None)
model = MLP([784, 100, 10], activation="relu", backend="cpu", seed=0)
train(model, data.x_train, data.y_train, data.x_val, data.y_val, epochs=6, lr=0.05, batch_size=64,
      optimizer="momentum", reg=1e-3, log=None, progress=None)
test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
print(f"test loss {test_loss:.4f}, accuracy {test_acc:.4f}")

# %%
# ``params["W1"]`` is (784, 100): one column per unit. ``tile_weights`` scales each tile to [0, 1].

W1 = to_numpy(model.params["W1"])
grid = tile_weights(W1, data.image_shape, max_tiles=100)
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(grid, cmap="gray", interpolation="nearest")
ax.set_axis_off()
ax.set_title("First-layer weights of 784-100-10 (ReLU)")
