"""
Same numbers on every backend
=============================

The question ``xpmlp parity`` answers: does another array library (array-api-strict, PyTorch,
CuPy on a GPU) train the same network to the same numbers as NumPy? Here the backends usable on
the machine that built this page train one seeded 64-32-32-10 network for 200 SGD steps, in
float64 and float32, and we plot how far each loss curve strays from NumPy's in the same dtype.
On a GPU machine the same call adds ``cuda:0``.
"""

import matplotlib.pyplot as plt
import numpy as np

from xpmlp.backend import available_specs, get_backend
from xpmlp.parity import ParitySettings, format_table, run_parity, train_trace

specs = available_specs(include_gpu=False)
print("backends here:", ", ".join(specs))
result = run_parity(specs, dtypes=("float64", "float32"), steps=200)
print(format_table(result))

# %%
# The table judges the final weights and the whole loss curve against a bound per dtype
# (see :doc:`/devices`). The curves themselves: each backend's loss minus NumPy's, step by step.

cfg = ParitySettings(steps=200)
rng = np.random.default_rng(0)
centres = rng.normal(0, 1, (10, 64))
labels = rng.integers(0, 10, 2560)
points = centres[labels] + rng.normal(0, 2.5, (2560, 64))
data = {"x": points[:2048], "y": labels[:2048], "x_test": points[2048:], "y_test": labels[2048:]}

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
for ax, dtype in zip(axes, ("float64", "float32")):
    reference = train_trace(get_backend("cpu", dtype=dtype), data, cfg).losses
    for spec in specs:
        if spec == "cpu":
            continue
        losses = train_trace(get_backend(spec, dtype=dtype), data, cfg).losses
        gap = np.abs(losses - reference)
        ax.plot(np.maximum(gap, 1e-18), label=spec)
    ax.set(yscale="log", xlabel="step", ylabel="|loss − loss on NumPy|", title=dtype)
    ax.legend()
fig.tight_layout()
