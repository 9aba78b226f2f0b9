"""
Layer by layer: a Tanh → ReLU network
=====================================

Layers can be made without a backend and placed on one when the network is built. Here a
784-500-500-10 network with a tanh after the first hidden layer, a ReLU and dropout after the
second, trained on 5,000 Fashion-MNIST images; ``summary()`` prints its layers and parameter
counts. The one-line equivalent is ``MLP([784, 500, 500, 10], activation=["tanh", "relu"])``.
"""

import matplotlib.pyplot as plt

from xpmlp.data import prepare
from xpmlp.layers import Dropout, Linear, ReLU, Tanh
from xpmlp.model import Sequential
from xpmlp.train import evaluate, train

net = Sequential([Linear(784, 500), Tanh(), Linear(500, 500), ReLU(), Dropout(0.2), Linear(500, 10)],
                 backend="cpu", seed=0)
print(net.summary())

# %%
# It trains like any other model.

data = prepare("fashion-mnist", subset=5000, val_size=1000, seed=0, log=None)
history = train(net, data.x_train, data.y_train, data.x_val, data.y_val, epochs=5, lr=0.05, batch_size=64,
                optimizer="momentum", log=None, progress=None)
test_loss, test_acc = evaluate(net, data.x_test, data.y_test)
print(f"test loss {test_loss:.4f}, accuracy {test_acc:.4f}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot([r["epoch"] for r in history.eval], [r["train_acc"] for r in history.eval], marker="o", label="train")
ax.plot([r["epoch"] for r in history.eval], [r["val_acc"] for r in history.eval], marker="o", label="validation")
ax.set(xlabel="epoch", ylabel="accuracy", title="Linear-Tanh-Linear-ReLU-Dropout-Linear")
ax.legend()
