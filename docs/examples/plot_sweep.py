"""
A small Optuna search
=====================

A sweep spec with a ``space`` is searched by Optuna (here its TPE sampler, with Hyperband pruning
of trials that fall behind), exactly as ``xpmlp sweep SPEC --out D`` does. Eight trials of a
784-H-10 network on 3,000 Fashion-MNIST images, ranked by validation accuracy; the test accuracy
is reported, never used to choose.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from xpmlp.studies import sweep

spec = {
    "dataset": "fashion-mnist",
    "base": {"epochs": 4, "optimizer": "nesterov", "lr_schedule": "cosine", "subset": 3000, "val_size": 500,
             "batch_size": 64, "device": "cpu"},
    "search": "tpe",
    "trials": 8,
    "seed": 0,
    "prune": "hyperband",
    "space": {"lr": {"low": 1e-3, "high": 0.3, "log": True},
              "hidden": {"choices": [[32], [128], [256]]}},
}
out = Path(tempfile.mkdtemp()) / "search"
results = sweep(spec, out, log=lambda line: None)

# %%
# The ranking of the complete trials, and the trials the pruner stopped early.

print(f"{'rank':<6}{'hidden':<10}{'lr':>10}{'best val acc':>14}{'test acc':>10}")
for row in results["ranking"]:
    print(f"{row['rank']:<6}{str(row['config']['hidden']):<10}{row['config']['lr']:>10.4f}"
          f"{row['metrics']['best_val_acc']:>14.4f}{row['metrics']['test_acc']:>10.4f}")
for row in results["pruned"]:
    print(f"pruned: trial {row['trial']} ({row['metrics']['stopped']})")

# %%
# Validation accuracy against the learning rate of each trial: pruned ones hollow.

colours = {32: "C0", 128: "C1", 256: "C2"}
fig, ax = plt.subplots(figsize=(7, 4))
for rows, style in ((results["ranking"], {}), (results["pruned"], {"facecolors": "none"})):
    for row in rows:
        width = row["config"]["hidden"][0]
        ax.scatter(row["config"]["lr"], row["metrics"]["best_val_acc"], s=40, edgecolors=colours[width],
                   color=colours[width], **style)
for width, colour in colours.items():
    ax.scatter([], [], color=colour, label=f"784-{width}-10")
ax.set(xscale="log", xlabel="learning rate", ylabel="best validation accuracy",
       title="Optuna TPE search, 8 trials")
ax.legend()
