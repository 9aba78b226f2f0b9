"""
Comparing activations
=====================

The homework's second study in miniature: one network, 784-128-128-10, trained once per
activation on 4,000 Fashion-MNIST images with plain SGD, through :func:`xpmlp.studies.compare`,
the function behind ``xpmlp compare``. It writes a run folder per activation, a report and its
table; here we print the table and plot the validation accuracy of each run.
"""

import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from xpmlp.studies import compare

out = Path(tempfile.mkdtemp()) / "compare"
settings = {"dataset": "fashion-mnist", "subset": 4000, "val_size": 1000, "hidden": [128, 128],
            "epochs": 8, "lr": 0.1, "batch_size": 64, "device": "cpu",
            "activations": ["sigmoid", "tanh", "relu", "selu"]}
results = compare(settings, out, log=lambda line: None)

# %%
# The study's table: the same one ``report.md`` holds.

table = [(r["config"]["activation"], r["metrics"]["best_val_acc"], r["metrics"]["test_acc"],
          r["metrics"]["train_seconds"]) for r in results["runs"]]
print(f"{'activation':<12}{'best val acc':>14}{'test acc':>10}{'train s':>9}")
for activation, val_acc, test_acc, seconds in table:
    print(f"{activation:<12}{val_acc:>14.4f}{test_acc:>10.4f}{seconds:>9.1f}")

# %%
# Each run's folder holds its history; plot the validation accuracy per epoch.

fig, ax = plt.subplots(figsize=(7, 4))
for run in results["runs"]:
    history = json.loads((Path(run["run_dir"]) / "history.json").read_text())
    ax.plot([e["epoch"] for e in history["eval"]], [e["val_acc"] for e in history["eval"]], marker="o",
            label=run["config"]["activation"])
ax.set(xlabel="epoch", ylabel="validation accuracy", title="784-128-128-10 on 4,000 Fashion-MNIST images")
ax.legend()
