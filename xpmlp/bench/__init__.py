"""The benchmark: xpmlp against PyTorch, scikit-learn and the bare matrix products, in one run.

Every contender trains the same network (default the second study's 784-500-500-10 ReLU net)
on the same data, in the same dtype, with the same batch size, plain SGD at the same learning
rate and the same number of steps per epoch:

* ``xpmlp``: the real public API -- :class:`xpmlp.model.MLP` trained by
  :class:`xpmlp.train.Trainer` (``train_eval_size=0``, no validation set), one ``fit`` call per
  timed epoch, on the backend given by ``--device`` (key ``xpmlp``, the base of the ratios) and
  on every backend of ``--xpmlp-devices`` (keys ``xpmlp:SPEC``; default every usable one of
  NumPy, PyTorch CPU, CuPy and PyTorch CUDA -- not array-api-strict, a correctness backend); the
  report names the fastest. The training set is moved to the device and checked once before
  timing; ``fit`` still re-checks it (a NaN scan) on every call, which is part of what users run
  and therefore timed; its cost is measured separately and reported.
* ``torch``: ``nn.Sequential`` of ``Linear``/``ReLU``, ``torch.optim.SGD``, the data preloaded as
  tensors on the same device, a plain minibatch loop over a per-epoch ``torch.randperm``,
  ``F.cross_entropy``, ``zero_grad(set_to_none=True)``, ``backward``, ``step``.
* ``sklearn``: ``MLPClassifier(solver="sgd", momentum=0, alpha=0, learning_rate="constant")``
  with early stopping off, trained one epoch per ``partial_fit`` call on float32 input (so it
  computes in float32). CPU only.
* ``gemm``: only the matrix products of each training step (forward ``h_i @ W_i``; backward
  ``h_iᵀ @ d_i`` for every layer and ``d_i @ W_iᵀ`` for every layer but the first), with
  NumPy on the CPU (CuPy / torch on a GPU), on the same shapes and the same number of steps:
  the physical ceiling of any implementation of this network.

Measurement: contenders are interleaved (A B C, A B C, ...) for ``--rounds`` rounds of
``--epochs`` timed epochs each, after one untimed warm-up pass per contender (on a throwaway
copy of its model, so warm-up does not count as training). Each reports the median and the
min-max of its samples per second; ratios are ratios of medians. Every contender trains from its
own initialisation for the same total number of epochs, and is then scored on the test set, so
nobody wins by computing less.

Memory: after the timed rounds each contender is set up again in a fresh child process and
trained one epoch; its peak resident memory beyond the loaded data (and on a GPU the device
memory its allocator counts) is reported -- see :mod:`~xpmlp.bench.memory` for the method.

Cost growth over widths and batch sizes: :mod:`~xpmlp.bench.sweep` (``scripts/bench_sweep.py``).

FLOP accounting: one training step on ``B`` samples of a network with ``P`` parameters
(weights and biases) costs ``6 * P * B`` floating-point operations -- ``2 * P * B`` for the
forward pass and ``4 * P * B`` for the backward pass (two matrix products per layer). Achieved
GFLOP/s is ``6 * P * samples / seconds / 1e9`` for every contender, the GEMM-only one included,
so GFLOP/s are proportional to samples per second and comparable across rows. (The GEMM-only
contender actually performs slightly fewer: it skips the first layer's ``dx``.)

Modules: :mod:`~xpmlp.bench.config` (settings and data), :mod:`~xpmlp.bench.contenders` (xpmlp,
PyTorch, scikit-learn), :mod:`~xpmlp.bench.gemm` (the GEMM-only contender and rate),
:mod:`~xpmlp.bench.lineup` (who races, on which backends), :mod:`~xpmlp.bench.memory` (peak
memory, measured by ``memory_child``),
:mod:`~xpmlp.bench.machine` (CPU, GPU, BLAS, threads), :mod:`~xpmlp.bench.runner` (the run),
:mod:`~xpmlp.bench.report` (the result, its text and its JSON file), :mod:`~xpmlp.bench.command`
(the command line).
"""

from __future__ import annotations

from .command import add_arguments, config_from_args, main, run
from .config import CONTENDERS, LABELS, BenchConfig, BenchData, generated_data, load_data, num_parameters
from .contenders import Contender, SklearnContender, TorchContender, Unavailable, XpmlpContender
from .gemm import GemmContender, gemm_backend_for, matmul_into_for, measure_gemm_rates
from .lineup import FAST_BACKENDS, default_contenders, default_xpmlp_devices, lineup, make_contender, xpmlp_backends
from .machine import ThreadLimit, available_cores, cpu_model, gpu_name, machine_info
from .memory import PeakRss, measure_contender, measure_in_child
from .report import FLOPS_FORMULA, SCHEMA, format_report, write_json
from .runner import Race, run_benchmark

__all__ = [
    "add_arguments", "run", "main", "config_from_args", "run_benchmark", "default_contenders",
    "format_report", "write_json", "SCHEMA", "FLOPS_FORMULA",
    "BenchConfig", "BenchData", "generated_data", "load_data", "num_parameters", "CONTENDERS", "LABELS",
    "Contender", "Unavailable", "XpmlpContender", "TorchContender", "SklearnContender", "GemmContender",
    "gemm_backend_for", "matmul_into_for", "measure_gemm_rates", "Race",
    "FAST_BACKENDS", "default_xpmlp_devices", "xpmlp_backends", "lineup", "make_contender",
    "PeakRss", "measure_contender", "measure_in_child",
    "machine_info", "gpu_name", "cpu_model", "available_cores", "ThreadLimit",
]
